"""Is a weak model's embedding ready to start a target? The numbers and the rule.

Usage::

    report = weak_report(weak_model, task, test_acc=0.96)   # or an embedding matrix instead of the model
    verdict = judge_readiness(ReadinessConfig(), report)               # Verdict(ready, reasons)

What a report holds, for an embedding ``E_W`` (V × d_W):

- ``test_acc``: the weak model's test accuracy when its embedding was taken (general).
- ``finite`` (no NaN or inf) and ``row_spread``, the rows' spread about their mean relative to
  their size (0 when every row is the same): an embedding that fails either is never ready.
- ``singular_values`` of ``E_W`` and its ``effective_rank``, exp of the entropy of the
  normalised singular values (Roy & Vetterli 2007), with ``effective_rank_fraction`` =
  effective rank / d_W (general: any embedding or first-layer matrix).
- Modular arithmetic only: the **Fourier spectrum** of the rows of ``E_W``. Row ``a`` is the
  embedding of residue ``a``; the rows are centred and transformed along the residue axis.
  ``fourier_shares[k]`` is the share of the (non-constant) energy at frequency ``k``, a
  frequency and its mirror image ``n − k`` counted together (one "circle").
  ``fourier_top1_share`` and ``fourier_top2_share`` are the largest share and the sum of the
  two largest. The basis depends on the operation:

  - ``add``, ``sub`` and the polynomial operations: the additive characters of Z_p,
    ``exp(2πi·k·a/p)``, over residues 0 … p−1 (n = p);
  - ``mul`` and ``div`` with a prime p: the multiplicative characters,
    ``exp(2πi·k·log_g(a)/(p−1))`` over the non-zero residues ordered by their discrete
    logarithm to the smallest primitive root g (n = p − 1; residue 0 is left out). In this
    basis multiplication is addition of logarithms, so a multiplication network's
    embedding is as "circular" as an addition network's is in the additive one.
    ``fourier_odd_share`` is the energy share of the odd frequencies: −1 = g^((p−1)/2), so
    a character with an even k takes the same value at a and −a, and only the odd ones tell
    them apart. A weak model that keeps most of its energy in even frequencies gives the
    target a map in which a and −a nearly coincide, and the product is then known only up
    to its sign.

Why these (measured in ``results/weak-readiness/``): at p = 113 a weak model's test
accuracy alone lets through embeddings the target cannot use; those put most of their
energy in one frequency (addition) or in frequencies that do not separate a from −a
(multiplication: even frequencies). Which rule is the default, and how well it predicts
the target's success, is in that study.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Union

import torch
from torch import nn

from .config import ReadinessConfig, TaskConfig, is_prime

ADDITIVE_OPS = ("add", "sub", "x^2+y^2", "x^2+xy+y^2", "x^3+xy")
MULTIPLICATIVE_OPS = ("mul", "div")


def primitive_root(p: int) -> int:
    """The smallest generator of the multiplicative group mod the prime ``p``."""
    if p == 2:
        return 1
    order = p - 1
    factors, n, q = set(), order, 2
    while q * q <= n:
        while n % q == 0:
            factors.add(q)
            n //= q
        q += 1
    if n > 1:
        factors.add(n)
    for g in range(2, p):
        if all(pow(g, order // q, p) != 1 for q in factors):
            return g
    raise ValueError(f"{p} has no primitive root (not prime)")  # pragma: no cover - callers pass primes


def discrete_log_order(p: int) -> list[int]:
    """The non-zero residues mod the prime ``p`` in the order g^0, g^1, …, g^(p−2)."""
    g = primitive_root(p)
    return [pow(g, j, p) for j in range(p - 1)]


def fourier_shares(rows: torch.Tensor) -> torch.Tensor:
    """Energy share per frequency k = 1 … n//2 of the centred rows (n × d) along the row axis,
    k and n − k counted together. Sums to 1 (all zeros when the rows are constant)."""
    x = rows.detach().double()
    x = x - x.mean(dim=0)
    n = x.shape[0]
    power = torch.fft.fft(x, dim=0).abs().pow(2).sum(dim=1)  # |F_k|² summed over columns, k = 0 … n−1
    half = n // 2
    shares = torch.stack([power[k] + (power[n - k] if n - k != k else 0.0) for k in range(1, half + 1)])
    total = shares.sum()
    return shares / total if total > 0 else torch.zeros_like(shares)


def fourier_basis(task: Union[TaskConfig, object]) -> Optional[str]:
    """'additive', 'multiplicative' or None (no Fourier view for this task)."""
    kind = getattr(task, "kind", "modular")
    op = getattr(task, "op", None) or getattr(task, "op_name", None)
    p = getattr(task, "p", None)
    if kind != "modular" or not isinstance(op, str) or p is None:
        return None
    if op in ADDITIVE_OPS:
        return "additive"
    if op in MULTIPLICATIVE_OPS and is_prime(p) and p > 2:
        return "multiplicative"
    return None


def embedding_of(weak: Union[nn.Module, torch.Tensor]) -> torch.Tensor:
    from .transfer import weak_embedding_matrix

    return weak_embedding_matrix(weak).detach().to("cpu", torch.float64)


def weak_report(weak: Union[nn.Module, torch.Tensor], task, test_acc: Optional[float]) -> dict:
    """Every readiness number of one weak embedding (see the module docstring).

    ``task`` is a task object (``ModularTask`` …) or a :class:`TaskConfig`; it decides
    whether and how the Fourier spectrum is computed. ``test_acc`` is the weak model's test
    accuracy at transfer (None when unknown, e.g. a bare matrix)."""
    matrix = embedding_of(weak)
    finite = bool(torch.isfinite(matrix).all())
    if not finite:  # nothing below means anything (and an SVD of NaN may not converge)
        matrix = torch.nan_to_num(matrix, nan=0.0, posinf=0.0, neginf=0.0)
    # the rows' spread about their mean, relative to their size: 0 when every token has the
    # same embedding (all-zero or constant), which carries nothing to transfer
    centred = float((matrix - matrix.mean(0)).norm())
    spread = centred / max(float(matrix.norm()), 1e-30) if centred > 0 else 0.0
    singular = torch.linalg.svdvals(matrix)
    p = singular / singular.sum() if singular.sum() > 0 else singular
    entropy = -sum(float(x) * math.log(float(x)) for x in p if x > 0)
    eff_rank = math.exp(entropy)
    report = {
        "test_acc": None if test_acc is None else float(test_acc),
        "rows": matrix.shape[0],
        "dim": matrix.shape[1],
        "singular_values": [float(s) for s in singular],
        "effective_rank": eff_rank,
        "effective_rank_fraction": eff_rank / matrix.shape[1],
        "fourier_basis": None,
        "finite": finite,
        "row_spread": spread,
    }
    basis = fourier_basis(task)
    if basis is not None and matrix.shape[0] == task.p and spread > 0:
        if basis == "multiplicative":
            rows = matrix[discrete_log_order(task.p)]
        else:
            rows = matrix
        shares = fourier_shares(rows)
        order = torch.argsort(shares, descending=True)
        n = rows.shape[0]
        report.update({
            "fourier_basis": basis,
            "fourier_top_frequencies": [[int(k) + 1, float(shares[k])] for k in order[:4]],
            "fourier_top1_share": float(shares[order[0]]),
            "fourier_top2_share": float(shares[order[:2]].sum()),
        })
        if basis == "multiplicative":
            report["fourier_odd_share"] = sum(float(shares[k - 1]) for k in range(1, n // 2 + 1) if k % 2 == 1)
    return report


@dataclass
class Verdict:
    ready: bool
    reasons: list[str] = field(default_factory=list)  # one per failed check; empty when ready

    def text(self) -> str:
        return "ready" if self.ready else "not ready: " + "; ".join(self.reasons)


def judge_readiness(rule: ReadinessConfig, report: dict) -> Verdict:
    """Apply ``rule`` to ``report``: every threshold that is set and applies must hold.
    Fourier thresholds apply only when the report has a Fourier spectrum."""
    reasons = []
    # always checked, whatever the rule: an embedding with NaN/inf or with identical rows
    # cannot start a target, and the thresholds below can pass on one by accident
    if report.get("finite") is False:
        reasons.append("the embedding holds NaN or infinite values")
    elif report.get("row_spread", 1.0) <= 1e-6:
        reasons.append("every row of the embedding is the same (all-zero or constant): it carries nothing to transfer")
    acc = report.get("test_acc")
    if rule.min_test_acc is not None and acc is not None and acc < rule.min_test_acc:
        reasons.append(f"test accuracy {acc:.3f} < {rule.min_test_acc}")
    if rule.min_effective_rank_fraction is not None and report["effective_rank_fraction"] < rule.min_effective_rank_fraction:
        reasons.append(f"effective rank {report['effective_rank']:.2f} of {report['dim']} "
                       f"(fraction {report['effective_rank_fraction']:.2f} < {rule.min_effective_rank_fraction})")
    if report.get("fourier_basis") is not None:
        if rule.max_fourier_top1_share is not None and report["fourier_top1_share"] > rule.max_fourier_top1_share:
            reasons.append(f"top Fourier frequency holds {report['fourier_top1_share']:.2f} of the energy "
                           f"(> {rule.max_fourier_top1_share})")
        if (rule.min_fourier_odd_share is not None and report["fourier_basis"] == "multiplicative"
                and report["fourier_odd_share"] < rule.min_fourier_odd_share):
            reasons.append(f"odd frequencies (which tell a from -a) hold {report['fourier_odd_share']:.2f} of the "
                           f"energy (< {rule.min_fourier_odd_share})")
    return Verdict(not reasons, reasons)


def format_report(report: dict, verdict: Optional[Verdict] = None) -> str:
    """A few lines for the terminal (``groktransfer inspect-weak``)."""
    acc = report.get("test_acc")
    lines = []
    if verdict is not None:
        lines.append(f"verdict: {verdict.text()}")
    lines.append(f"test accuracy: {'unknown' if acc is None else f'{acc:.3f}'}")
    lines.append(f"embedding: {report['rows']} × {report['dim']}, singular values "
                 + ", ".join(f"{s:.2f}" for s in report["singular_values"]))
    lines.append(f"effective rank: {report['effective_rank']:.2f} of {report['dim']} "
                 f"({report['effective_rank_fraction']:.2f})")
    if report.get("fourier_basis"):
        tops = ", ".join(f"k={k}: {share:.2f}" for k, share in report["fourier_top_frequencies"])
        lines.append(f"Fourier ({report['fourier_basis']} characters): top-1 share {report['fourier_top1_share']:.2f}, "
                     f"top-2 share {report['fourier_top2_share']:.2f}; largest {tops}")
        if report["fourier_basis"] == "multiplicative":
            lines.append(f"odd frequencies (tell a from -a): {report['fourier_odd_share']:.2f} of the energy")
    elif report.get("row_spread", 1.0) == 0:
        lines.append("Fourier: not computed (every row of the embedding is the same)")
    else:
        lines.append("Fourier: not computed (not a modular task with a known group structure)")
    return "\n".join(lines)


__all__ = ["Verdict", "discrete_log_order", "format_report", "fourier_shares", "judge_readiness", "primitive_root", "weak_report"]
