"""Omnigrok's constrained weight norm (Liu et al. ICLR 2023).

Grokking follows the weight norm: a large initial norm (``init_scale``) delays
generalisation. Omnigrok removes most of the delay by keeping the total L2 norm of all
parameters fixed: after every optimizer step, every parameter is multiplied by
``target / current``. The target is ``factor ×`` the norm at construction (the
initialisation), so ``factor = 1`` keeps the initial norm. Use it with weight decay 0:
the constraint replaces decay.

Usage::

    constraint = NormConstraint(model, factor=1.0)
    optimizer.step(); constraint.after_step(step)
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ConfigError
from ..training import weight_norm


class NormConstraint:
    def __init__(self, model: nn.Module, factor: float = 1.0) -> None:
        if not factor > 0:
            raise ConfigError(f"norm_constraint: got {factor}; must be > 0")
        self.model = model
        self.target = weight_norm(model) * factor  # a device tensor: no host sync per step

    def after_backward(self, step: int) -> None:
        pass

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        scale = (self.target / weight_norm(self.model)).float()
        for p in self.model.parameters():
            p.mul_(scale.to(p.dtype))

    def state_dict(self) -> dict:
        return {"target": self.target.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.target = state["target"].clone()
