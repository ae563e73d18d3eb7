"""Small pieces GrokFast's filters share: the running window of the MA filter and λ's warm-up ramp."""

from __future__ import annotations

from collections import deque
from typing import Optional

import torch


def lamb_ramp(step: int, start_step: int, warmup_steps: int) -> float:
    """The fraction of λ in force at ``step``: a linear ramp over ``warmup_steps`` after ``start_step``."""
    if warmup_steps == 0:
        return 1.0
    return min(1.0, (step - start_step + 1) / warmup_steps)


class RunningWindow:
    """The last ``window`` tensors pushed and their sum.

    A running sum makes a push O(size) instead of O(window × size); an exact re-sum once per
    window bounds its rounding drift."""

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
