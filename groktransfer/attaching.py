"""Any grokking method on any optimizer, in any training loop, without changing the loop.

Usage::

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1.0)
    handle = gt.attach(optimizer, model, "grokfast-ema", alpha=0.98, lamb=2.0)
    for x, y in batches:                        # your loop, as it was
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()                        # the method runs inside step()
    torch.save({"method": handle.state_dict(), ...}, path)   # handle.load_state_dict(...) restores it
    handle.remove()                             # detach it

The method runs through the optimizer's own step hooks: what edits gradients (GrokFast,
⊥Grad) in ``register_step_pre_hook``, between ``backward()`` and the update, and what edits
weights (Omnigrok's norm constraint) in ``register_step_post_hook``, right after it; the
same objects, in the same order, as :func:`groktransfer.train` runs them, so a loop with an
attached method and ``gt.train`` give the same weights (tests/test_attach.py, float64).

Names and their settings (combine with ``+``, e.g. ``"grokfast-ema+orthograd"``, settings
passed once for all):

=============== ===========================================================
``grokfast-ema`` ``alpha`` (0.98), ``lamb`` (2.0), ``start_step``, ``warmup_steps``
``grokfast-ma``  ``window`` (100), ``lamb`` (5.0), ``start_step``, ``warmup_steps``
``orthograd``    none
``omnigrok``     ``factor`` (1.0): the total weight norm is kept at factor × its value
                 at attach time; use the optimizer with weight decay 0
=============== ===========================================================

StableMax is a loss, not a step: use :func:`groktransfer.methods.stablemax_cross_entropy`
as your loss function. GrokTransfer is :func:`groktransfer.transfer_embedding`.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import nn

from .config import ConfigError, GrokFastConfig, MethodsConfig
from .methods import build_hooks

ATTACHABLE = ("grokfast-ema", "grokfast-ma", "orthograd", "omnigrok")
SETTINGS = {
    "grokfast-ema": ("alpha", "lamb", "start_step", "warmup_steps"),
    "grokfast-ma": ("window", "lamb", "start_step", "warmup_steps"),
    "orthograd": (),
    "omnigrok": ("factor",),
}

# The handle attached to each optimizer: a second attach would run two methods' hooks in an
# order the caller did not choose (combine methods with "+" in one attach instead).
_ATTACHED: "weakref.WeakKeyDictionary[torch.optim.Optimizer, MethodHandle]" = weakref.WeakKeyDictionary()


class MethodHandle:
    """What :func:`attach` returns: the method's state and how to remove it."""

    def __init__(self, optimizer: torch.optim.Optimizer, hooks: list, name: str) -> None:
        self.name, self.hooks, self.step = name, hooks, 0
        self._optimizer = weakref.ref(optimizer)
        self._pre = optimizer.register_step_pre_hook(self._before_step)
        self._post = optimizer.register_step_post_hook(self._after_step)

    def _before_step(self, optimizer, args, kwargs) -> None:
        for hook in self.hooks:
            hook.after_backward(self.step)

    def _after_step(self, optimizer, args, kwargs) -> None:
        for hook in self.hooks:
            hook.after_step(self.step)
        self.step += 1

    def state_dict(self) -> dict:
        """The method's state (filter histories, the norm target) and its step count."""
        return {"name": self.name, "step": self.step, "hooks": [hook.state_dict() for hook in self.hooks]}

    def load_state_dict(self, state: dict) -> None:
        if state.get("name") != self.name or len(state.get("hooks", ())) != len(self.hooks):
            raise ConfigError(f"attach: this state is of {state.get('name')!r}, the handle runs {self.name!r}")
        self.step = int(state["step"])
        for hook, hook_state in zip(self.hooks, state["hooks"]):
            hook.load_state_dict(hook_state)

    def remove(self) -> None:
        """Detach the method: the optimizer steps as it did before ``attach``."""
        self._pre.remove()
        self._post.remove()
        optimizer = self._optimizer()
        if optimizer is not None and _ATTACHED.get(optimizer) is self:
            del _ATTACHED[optimizer]


def attach(optimizer: torch.optim.Optimizer, model: nn.Module, method: str, **settings: Any) -> MethodHandle:
    """Install ``method`` (see the module docstring) on ``optimizer`` for ``model``'s parameters."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"attach: optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if optimizer in _ATTACHED:
        raise ConfigError(f"attach: this optimizer already runs {_ATTACHED[optimizer].name!r}; combine methods "
                          "with + in one attach, or call remove() on the first handle")
    if isinstance(model, nn.Module):
        held = {id(param) for group in optimizer.param_groups for param in group["params"]}
        if not any(id(param) in held for param in model.parameters()):
            raise ConfigError(f"attach: the optimizer holds none of the {type(model).__name__}'s parameters "
                              "(build it from model.parameters())")
    name, hooks = method_hooks(model, method, **settings)
    handle = MethodHandle(optimizer, hooks, name)
    _ATTACHED[optimizer] = handle
    return handle


def method_hooks(model: nn.Module, method: str, **settings: Any) -> tuple[str, list]:
    """The canonical name and the hook objects of ``method`` for ``model`` (what attach installs;
    the training-framework callbacks call the same hooks from their own events)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"attach: model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(method, str):
        raise TypeError(f"attach: method must be a name such as 'grokfast-ema', got {type(method).__name__}")
    parts = [part.strip() for part in method.split("+")]
    allowed = {key for part in parts for key in SETTINGS.get(part, ())}
    for part in parts:
        if part == "stablemax":
            raise ConfigError("attach: stablemax is a loss, not a step: use "
                              "groktransfer.methods.stablemax_cross_entropy as the loss function")
        if part not in ATTACHABLE:
            raise ConfigError(f"attach: method {part!r}: unknown; allowed: {', '.join(ATTACHABLE)} (combine with +)")
    if len(set(parts)) != len(parts) or {"grokfast-ema", "grokfast-ma"} <= set(parts):
        raise ConfigError(f"attach: method {method!r}: a method twice, or both GrokFast filters")
    for key in settings:
        if key not in allowed:
            raise ConfigError(f"attach: {key}: not a setting of {method}; allowed: {', '.join(sorted(allowed)) or 'none'}")
    factor = settings.get("factor", 1.0)
    if isinstance(factor, bool) or not isinstance(factor, (int, float)):
        raise TypeError(f"attach: factor must be a number, got {type(factor).__name__}")
    grokfast = None
    for part in parts:
        if part.startswith("grokfast"):
            grokfast = GrokFastConfig(filter=part.split("-")[1],
                                      **{k: settings[k] for k in SETTINGS[part] if k in settings})
    config = MethodsConfig(grokfast=grokfast, orthograd="orthograd" in parts,
                           norm_constraint=float(factor) if "omnigrok" in parts else None)
    return "+".join(parts), build_hooks(model, config)


__all__ = ["ATTACHABLE", "MethodHandle", "attach", "method_hooks"]
