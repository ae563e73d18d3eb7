"""The methods, written once, for K runs stacked along a leading dimension (see
:mod:`groktransfer.engine`); the single-run hooks of this package (``GrokFastEMA``,
``OrthoGrad``, ...) apply these same classes to one model as a batch of one.

Per-run settings (GrokFast's α and λ, the norm factor) are held as length-K tensors. Settings
that change the *shape* of the computation (the MA window, start step and warm-up) are shared
by the batch. Gradients and parameters are dicts
``name -> (K, ...) tensor``; only parameters that train have a gradient entry.

``select(keep)`` keeps the runs at positions ``keep`` (a LongTensor) when finished runs
leave the batch. ``tests/test_methods.py`` checks each against a reference written step by step.
"""

from __future__ import annotations

from collections import deque
from typing import Optional

import torch

from ..config import MethodsConfig
from .window import RunningWindow, lamb_ramp


def per_run(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Shape a (K,) tensor so that it broadcasts over a (K, ...) tensor, in its dtype and on its device."""
    return values.to(like.device, like.dtype).view((-1,) + (1,) * (like.dim() - 1))


def stacked_norm(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each run's L2 norm over all its parameters, accumulated in float64 (K,)."""
    return torch.sqrt(sum(p.detach().double().pow(2).flatten(1).sum(dim=1) for p in params.values()))


class _BatchedFilter:
    def __init__(self, lambs: torch.Tensor, start_step: int, warmup_steps: int) -> None:
        self.lamb, self.start_step, self.warmup_steps = lambs, start_step, warmup_steps

    @torch.no_grad()
    def after_backward(self, params, grads, step: int) -> None:
        if step < self.start_step:
            return
        lamb = self.lamb * lamb_ramp(step, self.start_step, self.warmup_steps)
        for name, grad in grads.items():
            self._filter(name, grad, lamb)

    def after_step(self, params, step: int) -> None:
        pass


class BatchedGrokFastEMA(_BatchedFilter):
    def __init__(self, alphas: torch.Tensor, lambs: torch.Tensor, start_step: int = 0, warmup_steps: int = 0) -> None:
        super().__init__(lambs, start_step, warmup_steps)
        self.alpha = alphas
        self.ema: dict[str, torch.Tensor] = {}

    def _filter(self, name: str, grad: torch.Tensor, lamb: torch.Tensor) -> None:
        h = self.ema.get(name)
        if h is None:
            h = self.ema[name] = grad.detach().clone()
        else:
            alpha = per_run(self.alpha, h)
            h.mul_(alpha).add_(grad * (1.0 - alpha))
        grad.add_(h * per_run(lamb, grad))

    def select(self, keep: torch.Tensor) -> None:
        self.alpha, self.lamb = self.alpha[keep], self.lamb[keep]
        self.ema = {k: v[keep] for k, v in self.ema.items()}

    def state_dict(self) -> dict:
        return {"ema": dict(self.ema)}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.ema = {k: v.to(device).clone() for k, v in state["ema"].items()}


class BatchedGrokFastMA(_BatchedFilter):
    def __init__(self, window: int, lambs: torch.Tensor, start_step: int = 0, warmup_steps: int = 0) -> None:
        super().__init__(lambs, start_step, warmup_steps)
        self.window = window
        self.windows: dict[str, RunningWindow] = {}

    def _filter(self, name: str, grad: torch.Tensor, lamb: torch.Tensor) -> None:
        window = self.windows.setdefault(name, RunningWindow(self.window))
        total = window.push(grad.detach().clone())
        if total is not None:
            grad.add_(total * per_run(lamb / self.window, grad))

    def select(self, keep: torch.Tensor) -> None:
        self.lamb = self.lamb[keep]
        for window in self.windows.values():
            window.queue = deque(t[keep] for t in window.queue)
            window.sum = window.sum[keep]

    def state_dict(self) -> dict:
        # the running sums and re-sum counters too, so that a reloaded filter continues bit for bit
        return {"history": {k: list(w.queue) for k, w in self.windows.items()},
                "sums": {k: w.sum for k, w in self.windows.items()},
                "updates_since_resum": {k: w.since_resum for k, w in self.windows.items()}}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.windows = {}
        for name, history in state["history"].items():
            window = self.windows[name] = RunningWindow(self.window)
            window.queue = deque(t.to(device).clone() for t in history)
            window.sum = state["sums"][name].to(device).clone()
            window.since_resum = int(state["updates_since_resum"][name])


class BatchedOrthoGrad:
    def __init__(self, eps: float = 1e-30) -> None:
        self.eps = eps

    @torch.no_grad()
    def after_backward(self, params, grads, step: int) -> None:
        for name, grad in grads.items():
            w = params[name].detach().flatten(1).double()
            g = grad.flatten(1).double()
            ww = (w * w).sum(dim=1, keepdim=True)
            g_perp = g - ((w * g).sum(dim=1, keepdim=True) / ww.clamp_min(self.eps)) * w
            scale = g.norm(dim=1, keepdim=True) / g_perp.norm(dim=1, keepdim=True).clamp_min(self.eps)
            # A run whose weights are all zero keeps its gradient, as in OrthoGrad.
            projected = torch.where(ww > self.eps, g_perp * scale, g)
            grad.copy_(projected.view_as(grad).to(grad.dtype))

    def after_step(self, params, step: int) -> None:
        pass

    def select(self, keep: torch.Tensor) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        pass


class BatchedNormConstraint:
    def __init__(self, params: dict[str, torch.Tensor], factors: torch.Tensor) -> None:
        self.target = stacked_norm(params) * factors.double()

    def after_backward(self, params, grads, step: int) -> None:
        pass

    @torch.no_grad()
    def after_step(self, params, step: int) -> None:
        scale = (self.target / stacked_norm(params)).float()
        for p in params.values():
            p.mul_(per_run(scale, p))

    def select(self, keep: torch.Tensor) -> None:
        self.target = self.target[keep]

    def state_dict(self) -> dict:
        return {"target": self.target}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.target = state["target"].to(device=device, dtype=torch.float64).clone()


class OnOneModel:
    """A batched method applied to one ``nn.Module``: its parameters and gradients seen as a
    batch of one (views, so the method edits them in place). The single-run hooks of this
    package are this, so each method's arithmetic exists once."""

    def __init__(self, model, batched) -> None:
        self.model, self.batched = model, batched

    def _params(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().unsqueeze(0) for n, p in self.model.named_parameters()}

    def _grads(self) -> dict[str, torch.Tensor]:
        return {n: p.grad.unsqueeze(0) for n, p in self.model.named_parameters() if p.grad is not None}

    @torch.no_grad()
    def after_backward(self, step: int) -> None:
        self.batched.after_backward(self._params(), self._grads(), step)

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        self.batched.after_step(self._params(), step)

    def state_dict(self) -> dict:
        """The batched method's state in this model's shapes (the batch dimension of one dropped)."""
        return _map_tensors(self.batched.state_dict(), lambda t: t[0].clone())

    def load_state_dict(self, state: dict) -> None:
        param = next(self.model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        self.batched.load_state_dict(_map_tensors(state, lambda t: t.unsqueeze(0)), device)


def _map_tensors(obj, fn):
    """``obj`` (nested dicts and lists) with every tensor replaced by ``fn(tensor)``."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(v, fn) for v in obj)
    return obj


def one(value: float, model) -> torch.Tensor:
    """A setting as the length-1 float64 tensor a batched method holds, on the model's device."""
    param = next(model.parameters(), None)
    return torch.tensor([value], dtype=torch.float64, device=None if param is None else param.device)


def build_batched_hooks(
    params: dict[str, torch.Tensor], methods: list[MethodsConfig], device: torch.device
) -> list:
    """The batched hooks for runs whose method structure is shared (see engine.batch_key),
    in the order build_hooks uses: GrokFast -> ⊥Grad -> norm constraint."""
    first = methods[0]
    hooks: list = []

    def tensor(values) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float64, device=device)

    gf: Optional[object] = first.grokfast
    if gf is not None:
        lambs = tensor([m.grokfast.resolved_lamb() for m in methods])
        if gf.filter == "ema":
            hooks.append(BatchedGrokFastEMA(tensor([m.grokfast.alpha for m in methods]), lambs, gf.start_step, gf.warmup_steps))
        else:
            hooks.append(BatchedGrokFastMA(gf.window, lambs, gf.start_step, gf.warmup_steps))
    if first.orthograd:
        hooks.append(BatchedOrthoGrad())
    if first.norm_constraint is not None:
        hooks.append(BatchedNormConstraint(params, tensor([m.norm_constraint for m in methods])))
    return hooks
