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

The arithmetic is :mod:`groktransfer.methods.batched`'s, on this model as a batch of one.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ConfigError
from .batched import BatchedNormConstraint, OnOneModel, one


class NormConstraint(OnOneModel):
    def __init__(self, model: nn.Module, factor: float = 1.0) -> None:
        if not factor > 0:
            raise ConfigError(f"norm_constraint: got {factor}; must be > 0")
        super().__init__(model, None)
        self.batched = BatchedNormConstraint(self._params(), one(factor, model))

    @property
    def target(self) -> torch.Tensor:
        """The total weight norm kept after every step (float64, on the model's device)."""
        return self.batched.target[0]
