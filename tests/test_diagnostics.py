"""Diagnostics against independent computations."""

import pytest
import torch

from groktransfer import FNN, transfer_embedding
from groktransfer.diagnostics import Diagnostics, collapse_fractions, effective_rank, linear_cka


def test_softmax_collapse_and_zero_loss():
    logits = torch.tensor([[0.0, -200.0, -200.0], [0.0, -1.0, -1.0], [5.0, -300.0, -300.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 0])
    out = collapse_fractions(logits, labels)
    # Rows 0 and 2: every other class underflows to 0 in float32.
    assert out["softmax_collapse"].item() == 0.5
    # Only row 0 has exactly zero loss (row 2 is collapsed but predicts the wrong class).
    assert out["zero_loss"].item() == 0.25


@pytest.mark.parametrize("scale", [1.0, 30.0, 120.0])
def test_zero_loss_is_exactly_where_float32_cross_entropy_is_zero(scale):
    g = torch.Generator().manual_seed(int(scale))
    logits = torch.randn(3, 400, 9, generator=g) * scale  # K runs × N rows × C classes; large scales collapse
    labels = torch.randint(0, 9, (3, 400), generator=g)
    labels[:, :100] = logits[:, :100].argmax(dim=-1)  # many rows whose label is the top class
    out = collapse_fractions(logits, labels)
    for k in range(3):
        losses = torch.nn.functional.cross_entropy(logits[k], labels[k], reduction="none")
        assert out["zero_loss"][k].item() == (losses == 0).float().mean().item()


def test_effective_rank():
    assert effective_rank(torch.eye(7)).item() == pytest.approx(7.0)
    assert effective_rank(torch.outer(torch.randn(9), torch.randn(5))).item() == pytest.approx(1.0, abs=1e-6)


def hsic_cka(x, y):
    """CKA by its definition: HSIC of the centred linear kernels."""
    n = x.shape[0]
    h = torch.eye(n, dtype=torch.float64) - 1.0 / n
    k, l_ = x.double() @ x.double().T, y.double() @ y.double().T
    hsic = lambda a, b: torch.trace(a @ h @ b @ h)  # noqa: E731
    return hsic(k, l_) / torch.sqrt(hsic(k, k) * hsic(l_, l_))


def test_linear_cka_matches_the_hsic_definition_and_its_invariances():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 4, generator=g), torch.randn(20, 9, generator=g)
    assert linear_cka(x, y).item() == pytest.approx(hsic_cka(x, y).item(), rel=1e-9)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g))
    assert linear_cka(x, 3.0 * x @ q).item() == pytest.approx(1.0)
    assert 0.0 <= linear_cka(x, y).item() < 1.0


def test_diagnostics_of_a_transferred_model():
    weak = FNN(13, 13, embed_dim=4, width=8, depth=1, seed=0)
    target = FNN(13, 13, embed_dim=32, width=16, depth=1, seed=1)
    module = transfer_embedding(weak, target, seed=0)
    x = torch.randint(0, 13, (30, 2))
    values = Diagnostics(weak.embedding.weight)(target, target(x), x.sum(1) % 13)
    assert values["embedding_rank"].item() == 4  # A·B has rank d_W
    assert values["norm/embedding.A"].item() == pytest.approx(module.A.norm().item())
    # Right after transfer A·B is E_W times a random 4 × 32 matrix of full rank: same row geometry up to B.
    assert 0.0 < values["embedding_cka_to_weak"].item() <= 1.0
    assert set(values) >= {"softmax_collapse", "zero_loss", "norm/mlp.0.weight", "embedding_effective_rank"}
