"""StableMax cross-entropy (Prieto et al. 2025).

Softmax's ``exp`` is replaced by ``s(x) = x + 1`` for ``x >= 0`` and ``1 / (1 - x)`` for
``x < 0``; probabilities are ``s(x_i) / sum_j s(x_j)``. The loss is computed in float64,
so large logits cannot collapse the probabilities to exactly 0 or 1 in floating point
(softmax collapse), which the authors identify as what stalls grokking.

Usage::

    loss = stablemax_cross_entropy(logits, labels)   # mean over the batch, float64
"""

from __future__ import annotations

import torch


def stablemax_s(x: torch.Tensor) -> torch.Tensor:
    # clamp keeps the branch not taken finite: torch.where would otherwise pass a NaN
    # gradient from 1/(1-x) at x = 1 into the x >= 0 branch.
    return torch.where(x >= 0, x + 1.0, 1.0 / (1.0 - torch.clamp(x, max=0.0)))


def log_stablemax(logits: torch.Tensor) -> torch.Tensor:
    s = stablemax_s(logits.double())
    return torch.log(s) - torch.log(s.sum(dim=-1, keepdim=True))


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    log_probs = log_stablemax(logits)
    return -log_probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1).mean()
