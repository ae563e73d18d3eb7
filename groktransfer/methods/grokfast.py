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


class _GradientFilter:
    def __init__(self, model: nn.Module, lamb: float, start_step: int, warmup_steps: int) -> None:
        _check(lamb, start_step, warmup_steps)
        self.model, self.lamb, self.start_step, self.warmup_steps = model, lamb, start_step, warmup_steps

    def _grads(self) -> list[tuple[str, torch.Tensor]]:
        return [(n, p.grad) for n, p in self.model.named_parameters() if p.grad is not None]

    def _lamb_at(self, step: int) -> float:
        if self.warmup_steps == 0:
            return self.lamb
        return self.lamb * min(1.0, (step - self.start_step + 1) / self.warmup_steps)

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


class GrokFastMA(_GradientFilter):
    def __init__(self, model: nn.Module, window: int = 100, lamb: float = 5.0, start_step: int = 0, warmup_steps: int = 0) -> None:
        if window < 1:
            raise ConfigError(f"grokfast.window: got {window}; must be >= 1")
        super().__init__(model, lamb, start_step, warmup_steps)
        self.window = window
        self.history: dict[str, deque] = {}
        # A running sum of each window makes a step O(parameters) instead of O(window × parameters).
        self._sums: dict[str, torch.Tensor] = {}
        self._updates_since_resum: dict[str, int] = {}

    def _filter(self, name: str, grad: torch.Tensor, lamb: float) -> None:
        queue = self.history.setdefault(name, deque())
        g = grad.detach().clone()  # a copy: never alias p.grad
        queue.append(g)
        if name not in self._sums:
            self._sums[name] = g.clone()
            self._updates_since_resum[name] = 0
        else:
            self._sums[name].add_(g)
        if len(queue) > self.window:
            self._sums[name].sub_(queue.popleft())
        self._updates_since_resum[name] += 1
        if self._updates_since_resum[name] >= self.window:
            # An exact re-sum once per window bounds the rounding drift of the running sum.
            self._sums[name] = torch.stack(tuple(queue)).sum(dim=0)
            self._updates_since_resum[name] = 0
        if len(queue) == self.window:
            grad.add_(self._sums[name], alpha=lamb / self.window)

    def state_dict(self) -> dict:
        # The running sums and re-sum counters are saved too, so a reloaded filter continues bit for bit.
        return {
            "history": {k: [t.clone() for t in q] for k, q in self.history.items()},
            "sums": {k: v.clone() for k, v in self._sums.items()},
            "updates_since_resum": dict(self._updates_since_resum),
        }

    def load_state_dict(self, state: dict) -> None:
        self.history = {k: deque(t.clone() for t in q) for k, q in state["history"].items()}
        self._sums = {k: v.clone() for k, v in state["sums"].items()}
        self._updates_since_resum = dict(state["updates_since_resum"])
