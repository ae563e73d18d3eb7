"""The CPU embedding lookup (index_select) against nn.functional.embedding: same values, same
gradient bits, the same behaviour under vmap, and nn.Embedding's own path for its options."""

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from groktransfer.lookup import Embedding, embedding_rows
from groktransfer.transfer import FactorizedEmbedding


@pytest.mark.parametrize("shape", [(97, 2), (5, 3, 4), (11,)])
@pytest.mark.parametrize("dim", [1, 8, 33])
def test_lookup_matches_embedding_values_and_gradient_bits(shape, dim):
    g = torch.Generator().manual_seed(dim)
    tokens = torch.randint(0, 13, shape, generator=g)  # few rows: many tokens repeat, so rows accumulate
    weight = torch.randn(13, dim, generator=g, requires_grad=True)
    upstream = torch.randn(*shape, dim, generator=g)
    reference = nn.functional.embedding(tokens, weight)
    (expected,) = torch.autograd.grad(reference, weight, upstream)
    ours = embedding_rows(weight, tokens)
    (got,) = torch.autograd.grad(ours, weight, upstream)
    assert torch.equal(ours, reference)
    assert torch.equal(got, expected)


def test_lookup_is_the_same_under_vmap_over_stacked_tables():
    tokens = torch.randint(0, 7, (20, 2), generator=torch.Generator().manual_seed(0))
    weights = torch.randn(3, 7, 4, generator=torch.Generator().manual_seed(1))

    def total(weight, fn):
        return (fn(weight, tokens) ** 2).sum()

    ours = vmap(grad(lambda w: total(w, embedding_rows)))(weights)
    reference = torch.stack([grad(lambda w: total(w, lambda w_, t: nn.functional.embedding(t, w_)))(w) for w in weights])
    assert torch.equal(ours, reference)


def test_embedding_keeps_nn_embedding_state_and_options():
    torch.manual_seed(0)
    plain = nn.Embedding(9, 3)
    torch.manual_seed(0)
    ours = Embedding(9, 3)
    assert torch.equal(plain.weight, ours.weight)  # drawn the same way: seeds give the same models as before
    assert ours.state_dict().keys() == plain.state_dict().keys()
    padded = Embedding(9, 3, padding_idx=0)  # not a plain lookup: nn.Embedding's own (padding row gets no gradient)
    padded(torch.tensor([0, 1, 0])).sum().backward()
    assert padded.weight.grad[0].abs().sum() == 0 and padded.weight.grad[1].abs().sum() > 0
    with pytest.raises(IndexError):
        ours(torch.tensor([9]))


def test_factorized_embedding_gradients_match_the_dense_lookup():
    a = torch.randn(11, 4, generator=torch.Generator().manual_seed(2))
    b = torch.randn(4, 6, generator=torch.Generator().manual_seed(3))
    module = FactorizedEmbedding(a, b)
    tokens = torch.randint(0, 11, (50, 2), generator=torch.Generator().manual_seed(4))
    params = dict(module.named_parameters())
    ours = torch.autograd.grad(functional_call(module, params, (tokens,)).pow(2).sum(), list(params.values()))
    reference = torch.autograd.grad(nn.functional.embedding(tokens, params["A"] @ params["B"]).pow(2).sum(),
                                    list(params.values()))
    for x, y in zip(ours, reference):
        assert torch.equal(x, y)
