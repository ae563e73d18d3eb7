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
"""

from __future__ import annotations

import torch
from torch import nn


class OrthoGrad:
    def __init__(self, model: nn.Module, eps: float = 1e-30) -> None:
        self.model, self.eps = model, eps

    @torch.no_grad()
    def after_backward(self, step: int) -> None:
        for p in self.model.parameters():
            if p.grad is None:
                continue
            w, g = p.detach().reshape(-1).double(), p.grad.reshape(-1).double()
            ww = w.dot(w)
            if ww <= self.eps:
                continue
            g_perp = g - (w.dot(g) / ww) * w
            scale = g.norm() / g_perp.norm().clamp_min(self.eps)
            p.grad.copy_((g_perp * scale).reshape(p.grad.shape).to(p.grad.dtype))

    def after_step(self, step: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
