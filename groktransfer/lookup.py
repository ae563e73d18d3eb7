"""Embedding lookups with a cheaper backward on the CPU.

``nn.functional.embedding``'s backward on the CPU (``embedding_dense_backward``) costs 2-3x what
``index_select``'s does (``index_add_``) for the models here: about 430 µs against 130 µs for a
full batch of 3,192 token pairs into a 113 × 8 table, one thread
(``benchmarks/embedding_backward.py``). For the weak FNN that is a tenth of a training step.
Both accumulate the rows of each token in the same order, so the gradients are the same bits
(``tests/test_lookup.py`` checks it against ``nn.functional.embedding``).

On other devices the lookup stays ``nn.functional.embedding``: CUDA's ``index_add_`` accumulates
with atomics, whose order (and so the last bits) changes from run to run.
"""

from __future__ import annotations

import torch
from torch import nn


def embedding_rows(weight: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """``weight[tokens]``, shape ``(*tokens.shape, d)``: the values and gradient of
    ``nn.functional.embedding(tokens, weight)``, through ``index_select`` on the CPU."""
    if weight.device.type != "cpu":
        return nn.functional.embedding(tokens, weight)
    return weight.index_select(0, tokens.reshape(-1)).view(*tokens.shape, weight.shape[-1])


class Embedding(nn.Embedding):
    """``nn.Embedding`` whose plain lookup (no padding index, max norm, frequency scaling or
    sparse gradient) goes through :func:`embedding_rows`; anything else is nn.Embedding's own.
    Its parameters, state dict and hooks are nn.Embedding's."""

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.padding_idx is None and self.max_norm is None and not self.scale_grad_by_freq and not self.sparse:
            return embedding_rows(self.weight, tokens)
        return super().forward(tokens)


__all__ = ["Embedding", "embedding_rows"]
