"""⊥Grad (Prieto et al. 2025): only the gradient component orthogonal to the weights.

For each parameter tensor ``w`` with gradient ``g``::

    g_perp = g - (<w, g> / <w, w>) w
    g     <- g_perp · ||g|| / ||g_perp||      (the original norm is kept)

Growing the weights along their own direction is what drives the logits towards
softmax collapse; removing that component keeps training on the generalising path.
A parameter that is all zeros is left unchanged (no direction to remove), and a gradient
that is entirely parallel to the weights becomes zero.

Usage::

    ortho = OrthoGrad(model)
    loss.backward(); ortho.after_backward(step); optimizer.step()

The arithmetic (in float64) is :mod:`groktransfer.methods.batched`'s, on this model as a batch of one.
"""

from __future__ import annotations

from torch import nn

from .batched import BatchedOrthoGrad, OnOneModel


class OrthoGrad(OnOneModel):
    def __init__(self, model: nn.Module, eps: float = 1e-30) -> None:
        super().__init__(model, BatchedOrthoGrad(eps))
        self.eps = eps
