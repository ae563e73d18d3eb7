"""Ways to speed up grokking, each usable on any ``nn.Module``.

A method is a *hook* with ``after_backward(step)`` (edit gradients before the optimizer
step), ``after_step(step)`` (edit weights after it) and ``state_dict``/``load_state_dict``,
or a replacement loss. The trainer calls hooks in list order; :func:`build_hooks` orders
them GrokFast filter -> ⊥Grad projection (both on gradients) -> norm constraint (on weights).

    GrokFastEMA / GrokFastMA   gradient low-pass filter added to the gradient (Lee et al. 2024)
    OrthoGrad                  gradient projected orthogonal to the weights (Prieto et al. 2025)
    stablemax_cross_entropy    StableMax loss in float64 (Prieto et al. 2025)
    NormConstraint             fixed total weight norm after every step (Omnigrok, Liu et al. 2023)

The init-scale part of Omnigrok is ``ModelConfig.init_scale``; GrokTransfer itself is
:mod:`groktransfer.transfer`.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..config import MethodsConfig
from .grokfast import GrokFastEMA, GrokFastMA
from .norm_constraint import NormConstraint
from .orthograd import OrthoGrad
from .stablemax import log_stablemax, stablemax_cross_entropy

LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross_entropy": nn.functional.cross_entropy,
    "stablemax": stablemax_cross_entropy,
}


def build_hooks(model: nn.Module, methods: MethodsConfig) -> list:
    """The hook objects a stage's ``methods`` config asks for, in the order they must run."""
    hooks: list = []
    gf = methods.grokfast
    if gf is not None:
        if gf.filter == "ema":
            hooks.append(GrokFastEMA(model, gf.alpha, gf.resolved_lamb(), gf.start_step, gf.warmup_steps))
        else:
            hooks.append(GrokFastMA(model, gf.window, gf.resolved_lamb(), gf.start_step, gf.warmup_steps))
    if methods.orthograd:
        hooks.append(OrthoGrad(model))
    if methods.norm_constraint is not None:
        hooks.append(NormConstraint(model, methods.norm_constraint))
    return hooks


def describe_methods(methods: MethodsConfig) -> str:
    """A short label of the methods a stage uses ("" for plain AdamW), for tables."""
    parts = []
    if methods.grokfast is not None:
        parts.append(f"GrokFast-{methods.grokfast.filter.upper()}")
    if methods.orthograd:
        parts.append("⊥Grad")
    if methods.loss == "stablemax":
        parts.append("StableMax")
    if methods.norm_constraint is not None:
        parts.append("norm constraint")
    return " + ".join(parts)


def loss_function(methods: MethodsConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return LOSSES[methods.loss]


__all__ = [
    "GrokFastEMA",
    "GrokFastMA",
    "LOSSES",
    "NormConstraint",
    "OrthoGrad",
    "build_hooks",
    "describe_methods",
    "log_stablemax",
    "loss_function",
    "stablemax_cross_entropy",
]
