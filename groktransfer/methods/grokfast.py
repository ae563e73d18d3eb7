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
"""

from __future__ import annotations

from collections import deque
from typing import Optional

import torch
from torch import nn

from ..config import ConfigError


def _check(lamb: float, start_step: int, warmup_steps: int) -> None:
    if not lamb >= 0:
        raise ConfigError(f"grokfast.lamb: got {lamb}; must be >= 0")
    if start_step < 0:
        raise ConfigError(f"grokfast.start_step: got {start_step}; must be >= 0")
    if warmup_steps < 0:
        raise ConfigError(f"grokfast.warmup_steps: got {warmup_steps}; must be >= 0")


def lamb_ramp(step: int, start_step: int, warmup_steps: int) -> float:
    """The fraction of λ in force at ``step``: a linear ramp over ``warmup_steps`` after ``start_step``."""
    if warmup_steps == 0:
        return 1.0
    return min(1.0, (step - start_step + 1) / warmup_steps)


class _GradientFilter:
    def __init__(self, model: nn.Module, lamb: float, start_step: int, warmup_steps: int) -> None:
        _check(lamb, start_step, warmup_steps)
        self.model, self.lamb, self.start_step, self.warmup_steps = model, lamb, start_step, warmup_steps

    def _grads(self) -> list[tuple[str, torch.Tensor]]:
        return [(n, p.grad) for n, p in self.model.named_parameters() if p.grad is not None]

    def _lamb_at(self, step: int) -> float:
        return self.lamb * lamb_ramp(step, self.start_step, self.warmup_steps)

    @torch.no_grad()
    def after_backward(self, step: int) -> None:
        if step < self.start_step:
            return
        lamb = self._lamb_at(step)
        for name, grad in self._grads():
            self._filter(name, grad, lamb)

    def _filter(self, name: str, grad: torch.Tensor, lamb: float) -> None:
        raise NotImplementedError

    def after_step(self, step: int) -> None:
        pass


class GrokFastEMA(_GradientFilter):
    def __init__(self, model: nn.Module, alpha: float = 0.98, lamb: float = 2.0, start_step: int = 0, warmup_steps: int = 0) -> None:
        if not 0.0 <= alpha < 1.0:
            raise ConfigError(f"grokfast.alpha: got {alpha}; must be in [0, 1)")
        super().__init__(model, lamb, start_step, warmup_steps)
        self.alpha = alpha
        self.ema: dict[str, torch.Tensor] = {}

    def _filter(self, name: str, grad: torch.Tensor, lamb: float) -> None:
        h = self.ema.get(name)
        if h is None:
            h = self.ema[name] = grad.detach().clone()  # a copy: never alias p.grad
        else:
            h.mul_(self.alpha).add_(grad, alpha=1.0 - self.alpha)
        grad.add_(h, alpha=lamb)

    def state_dict(self) -> dict:
        return {"ema": {k: v.clone() for k, v in self.ema.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.ema = {k: v.clone() for k, v in state["ema"].items()}


class RunningWindow:
    """The last ``window`` tensors pushed and their sum.

    A running sum makes a push O(size) instead of O(window × size); an exact re-sum once per
    window bounds its rounding drift. Shared by GrokFastMA and its batched twin."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.queue: deque = deque()
        self.sum: Optional[torch.Tensor] = None
        self.since_resum = 0

    def push(self, g: torch.Tensor) -> Optional[torch.Tensor]:
        """Add ``g`` (kept as is: pass a copy); return the window's sum once it is full, else None."""
        self.queue.append(g)
        if self.sum is None:
            self.sum = g.clone()
            self.since_resum = 0
        else:
            self.sum.add_(g)
        if len(self.queue) > self.window:
            self.sum.sub_(self.queue.popleft())
        self.since_resum += 1
        if self.since_resum >= self.window:
            self.sum = torch.stack(tuple(self.queue)).sum(dim=0)
            self.since_resum = 0
        return self.sum if len(self.queue) == self.window else None


class GrokFastMA(_GradientFilter):
    def __init__(self, model: nn.Module, window: int = 100, lamb: float = 5.0, start_step: int = 0, warmup_steps: int = 0) -> None:
        if window < 1:
            raise ConfigError(f"grokfast.window: got {window}; must be >= 1")
        super().__init__(model, lamb, start_step, warmup_steps)
        self.window = window
        self.windows: dict[str, RunningWindow] = {}

    def _filter(self, name: str, grad: torch.Tensor, lamb: float) -> None:
        window = self.windows.setdefault(name, RunningWindow(self.window))
        total = window.push(grad.detach().clone())  # a copy: never alias p.grad
        if total is not None:
            grad.add_(total, alpha=lamb / self.window)

    def state_dict(self) -> dict:
        # The running sums and re-sum counters are saved too, so a reloaded filter continues bit for bit.
        return {
            "history": {k: [t.clone() for t in w.queue] for k, w in self.windows.items()},
            "sums": {k: w.sum.clone() for k, w in self.windows.items()},
            "updates_since_resum": {k: w.since_resum for k, w in self.windows.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.windows = {}
        for name, history in state["history"].items():
            window = self.windows[name] = RunningWindow(self.window)
            window.queue = deque(t.clone() for t in history)
            window.sum = state["sums"][name].clone()
            window.since_resum = int(state["updates_since_resum"][name])
