"""Readiness numbers against independent computations, and the rule."""

import math

import pytest
import torch

from groktransfer.config import ConfigError, ReadinessConfig, TaskConfig
from groktransfer.readiness import discrete_log_order, fourier_shares, judge_readiness, primitive_root, weak_report


def brute_force_shares(rows: torch.Tensor) -> list[float]:
    """Energy of the projection of the centred rows on cos and sin of each frequency, by explicit sums."""
    x = rows.double() - rows.double().mean(dim=0)
    n = x.shape[0]
    energies = []
    for k in range(1, n // 2 + 1):
        total = 0.0
        for column in x.T:
            c = sum(float(column[a]) * math.cos(2 * math.pi * k * a / n) for a in range(n))
            s = sum(float(column[a]) * math.sin(2 * math.pi * k * a / n) for a in range(n))
            # |F_k|² + |F_{n-k}|² = 2(c² + s²), except at the Nyquist frequency, which is its own mirror.
            total += (c * c + s * s) * (1 if 2 * k == n else 2)
        energies.append(total)
    whole = sum(energies)
    return [e / whole for e in energies]


@pytest.mark.parametrize("n", [13, 16])
def test_fourier_shares_equal_an_explicit_projection(n):
    rows = torch.randn(n, 3, generator=torch.Generator().manual_seed(n))
    assert fourier_shares(rows).tolist() == pytest.approx(brute_force_shares(rows), abs=1e-12)
    assert float(fourier_shares(rows).sum()) == pytest.approx(1.0)


def test_primitive_roots_generate_every_nonzero_residue():
    for p in (3, 5, 7, 11, 13, 47, 97, 113):
        g = primitive_root(p)
        assert sorted(discrete_log_order(p)) == list(range(1, p))
        assert all(pow(g, j, p) != 1 for j in range(1, p - 1)) and pow(g, p - 1, p) == 1
        # The smallest: no smaller base generates the group.
        assert all(len({pow(h, j, p) for j in range(p - 1)}) < p - 1 for h in range(2, g))


def circle(values: torch.Tensor, k: int, n: int, radius: float = 1.0) -> torch.Tensor:
    angle = 2 * math.pi * k * values.double() / n
    return torch.stack([angle.cos(), angle.sin()], dim=1) * radius


def test_a_planted_additive_circle_is_one_frequency():
    p = 113
    report = weak_report(circle(torch.arange(p), 17, p), TaskConfig(op="add", p=p), test_acc=0.9)
    assert report["fourier_basis"] == "additive"
    assert report["fourier_top_frequencies"][0][0] == 17
    assert report["fourier_top1_share"] == pytest.approx(1.0)
    assert report["effective_rank"] == pytest.approx(2.0, rel=1e-6)  # two equal singular values


def test_two_circles_share_their_energy_and_double_the_effective_rank():
    p = 113
    residues = torch.arange(p)
    both = torch.cat([circle(residues, 5, p, 2.0), circle(residues, 30, p, 1.0)], dim=1)  # energies 4 : 1
    report = weak_report(both, TaskConfig(op="sub", p=p), test_acc=None)
    assert [k for k, _ in report["fourier_top_frequencies"][:2]] == [5, 30]
    assert report["fourier_top1_share"] == pytest.approx(0.8)
    assert report["fourier_top2_share"] == pytest.approx(1.0)
    assert 2.0 < report["effective_rank"] < 4.0


def test_multiplication_is_read_in_the_discrete_log_basis():
    p = 113
    order = discrete_log_order(p)  # order[j] = g^j
    log = torch.zeros(p, dtype=torch.long)
    log[torch.tensor(order)] = torch.arange(p - 1)
    rows = circle(log, 9, p - 1)  # a circle over the logarithms; residue 0's row is left out of the basis
    rows[0] = 0.0
    report = weak_report(rows, TaskConfig(op="mul", p=p), test_acc=0.99)
    assert report["fourier_basis"] == "multiplicative"
    assert report["fourier_top_frequencies"][0][0] == 9
    assert report["fourier_top1_share"] == pytest.approx(1.0)
    assert report["fourier_odd_share"] == pytest.approx(1.0)  # 9 is odd: tells a from -a
    # The same circle over the residues themselves is spread over many additive frequencies.
    assert weak_report(rows, TaskConfig(op="add", p=p), test_acc=0.99)["fourier_top1_share"] < 0.5
    # An even frequency takes one value at a and at -a.
    even = circle(log, 42, p - 1)
    even[0] = 0.0
    assert torch.allclose(even[p - 5], even[5])
    assert weak_report(even, TaskConfig(op="mul", p=p), test_acc=0.99)["fourier_odd_share"] == pytest.approx(0.0)


def test_no_fourier_view_where_no_group_structure_applies():
    vector = weak_report(torch.randn(40, 16), TaskConfig(kind="parity"), test_acc=0.7)
    assert vector["fourier_basis"] is None and "fourier_top1_share" not in vector
    # div needs a prime modulus; mul mod a composite has no cyclic group to take logarithms in.
    assert weak_report(torch.randn(12, 4), TaskConfig(op="mul", p=12), test_acc=0.5)["fourier_basis"] is None


def test_the_rule_checks_what_is_set_and_says_why():
    p = 113
    one_circle = weak_report(circle(torch.arange(p), 3, p), TaskConfig(op="add", p=p), test_acc=0.6)
    verdict = judge_readiness(ReadinessConfig(), one_circle)
    assert not verdict.ready
    assert any("test accuracy 0.600 < 0.7" in r for r in verdict.reasons)
    assert any("top Fourier frequency holds 1.00" in r for r in verdict.reasons)
    off = ReadinessConfig(min_test_acc=None, max_fourier_top1_share=None)
    assert judge_readiness(off, one_circle).ready
    rank_rule = ReadinessConfig(min_test_acc=None, max_fourier_top1_share=None, min_effective_rank_fraction=0.9)
    assert judge_readiness(rank_rule, one_circle).ready  # a circle fills both of its dimensions
    padded = torch.cat([circle(torch.arange(p), 3, p), torch.zeros(p, 2)], dim=1)
    rank = judge_readiness(rank_rule, weak_report(padded, TaskConfig(op="add", p=p), test_acc=0.9))
    assert not rank.ready and "effective rank 2.00 of 4 (fraction 0.50 < 0.9)" in rank.text()
    parity = weak_report(torch.randn(40, 16), TaskConfig(kind="parity"), test_acc=0.9)
    assert judge_readiness(ReadinessConfig(), parity).ready  # the Fourier threshold does not apply there
    with pytest.raises(ConfigError, match="max_fourier_top1_share: got 1.5"):
        ReadinessConfig(max_fourier_top1_share=1.5)


@pytest.mark.parametrize("task", [TaskConfig(op="add", p=113), TaskConfig(op="mul", p=113), TaskConfig(kind="parity")],
                         ids=["add", "mul", "parity"])
def test_an_embedding_with_identical_rows_or_nan_is_never_ready(task):
    """Even with every threshold switched off and a perfect test accuracy."""
    rows = 113 if task.kind == "modular" else 40
    no_rule = ReadinessConfig(min_test_acc=None, max_fourier_top1_share=None, min_fourier_odd_share=None)
    for matrix in (torch.zeros(rows, 8), torch.full((rows, 8), 0.7), torch.ones(rows, 1) * torch.randn(1, 8)):
        verdict = judge_readiness(no_rule, weak_report(matrix, task, test_acc=1.0))
        assert not verdict.ready and "every row of the embedding is the same" in verdict.text()
    broken = torch.randn(rows, 8)
    broken[3, 2] = float("nan")
    verdict = judge_readiness(no_rule, weak_report(broken, task, test_acc=1.0))
    assert not verdict.ready and "NaN or infinite" in verdict.text()
    healthy = judge_readiness(no_rule, weak_report(torch.randn(rows, 8), task, test_acc=1.0))
    assert healthy.ready  # the checks refuse only what they should
