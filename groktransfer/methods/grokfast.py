"""GrokFast (Lee et al. 2024): amplify the slow component of the gradient.

Between ``backward()`` and ``optimizer.step()`` a low-pass filter of the gradient history
is added to the current gradient:

- EMA: ``h <- alpha·h + (1 - alpha)·g`` (h starts as the first g), then ``g <- g + lamb·h``.
  Reference defaults alpha = 0.98, lamb = 2.0.
- MA: keep the last ``window`` gradients; once the window is full, ``g <- g + lamb·mean``.
  Reference defaults window = 100, lamb = 5.0.

Usage::

    grokfast = GrokFastEMA(model, alpha=0.98, lamb=2.0)
    loss.backward(); grokfast.after_backward(step); optimizer.step()

What peers got wrong and this does not: the filter state is a copy, never an alias of
``p.grad`` (with ``zero_grad(set_to_none=False)`` an alias degenerates the filter to
scaling by 1 + lamb); parameters without a gradient are skipped; the state round-trips
through ``state_dict``.

``start_step``: the filter neither records nor changes gradients before this step.
``warmup_steps``: lamb ramps linearly from 0 to its value over this many steps after
``start_step`` (the history is recorded meanwhile).

The arithmetic is :mod:`groktransfer.methods.batched`'s, applied to this one model as a batch
of one; these classes check the settings and keep the state in a single model's shapes.
"""

from __future__ import annotations

from torch import nn

from ..config import ConfigError
from .batched import BatchedGrokFastEMA, BatchedGrokFastMA, OnOneModel, one
from .window import RunningWindow, lamb_ramp


def _check(lamb: float, start_step: int, warmup_steps: int) -> None:
    if not lamb >= 0:
        raise ConfigError(f"grokfast.lamb: got {lamb}; must be >= 0")
    if start_step < 0:
        raise ConfigError(f"grokfast.start_step: got {start_step}; must be >= 0")
    if warmup_steps < 0:
        raise ConfigError(f"grokfast.warmup_steps: got {warmup_steps}; must be >= 0")


class GrokFastEMA(OnOneModel):
    def __init__(self, model: nn.Module, alpha: float = 0.98, lamb: float = 2.0, start_step: int = 0, warmup_steps: int = 0) -> None:
        if not 0.0 <= alpha < 1.0:
            raise ConfigError(f"grokfast.alpha: got {alpha}; must be in [0, 1)")
        _check(lamb, start_step, warmup_steps)
        super().__init__(model, BatchedGrokFastEMA(one(alpha, model), one(lamb, model), start_step, warmup_steps))
        self.alpha, self.lamb, self.start_step, self.warmup_steps = alpha, lamb, start_step, warmup_steps

    @property
    def ema(self) -> dict:
        """The filtered gradient of each parameter (a copy, never an alias of ``p.grad``)."""
        return {k: v[0] for k, v in self.batched.ema.items()}


class GrokFastMA(OnOneModel):
    def __init__(self, model: nn.Module, window: int = 100, lamb: float = 5.0, start_step: int = 0, warmup_steps: int = 0) -> None:
        if window < 1:
            raise ConfigError(f"grokfast.window: got {window}; must be >= 1")
        _check(lamb, start_step, warmup_steps)
        super().__init__(model, BatchedGrokFastMA(window, one(lamb, model), start_step, warmup_steps))
        self.window, self.lamb, self.start_step, self.warmup_steps = window, lamb, start_step, warmup_steps


__all__ = ["GrokFastEMA", "GrokFastMA", "RunningWindow", "lamb_ramp"]
