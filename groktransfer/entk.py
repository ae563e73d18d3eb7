"""The empirical pseudo-NTK diagnostic of the paper's Fig. 3.

For a model f with C outputs, the pseudo-NTK on inputs x1, x2 is

    Θ(x1, x2) = ⟨∇θ Σ_i f_i(x1), ∇θ Σ_i f_i(x2)⟩ / C

(the gradient of the summed logits, so one backward pass per input instead of C). On a fixed
probe set of n inputs, Θ is the n × n matrix J Jᵀ / C, J the n × |θ| Jacobian of the summed
logits. How much Θ moves between evaluations, ‖Θ_t − Θ_prev‖_F, tells a lazy (kernel)
regime, where Θ barely changes, from feature learning, where it does.

Usage::

    kernel = pseudo_ntk(model, x_probe)              # n × n
    tracker = EntkTracker(x_probe)                   # or train.entk_probe: N in a config
    tracker(model)  # {"entk_norm": ‖Θ‖_F, "entk_change": ‖Θ − Θ_prev‖_F (NaN the first time)}

Memory: J has n × |θ| entries (64 probes × the paper's 4.7·10⁵-parameter target FNN is
~120 MB in float32).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from torch.func import functional_call, grad, vmap


def summed_logit_jacobian(model: nn.Module, x_probe: torch.Tensor) -> torch.Tensor:
    """n × |θ|: row k is ∇θ Σ_i f_i(x_k) over the model's trainable parameters, flattened in
    ``named_parameters`` order."""
    params = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    frozen = {name: p.detach() for name, p in model.named_parameters() if not p.requires_grad}
    buffers = {name: b.detach() for name, b in model.named_buffers()}

    def summed_logits(trainable, x):
        out = functional_call(model, ({**trainable, **frozen}, buffers), (x.unsqueeze(0),))
        return out.sum()

    per_input = vmap(grad(summed_logits), in_dims=(None, 0))(params, x_probe)
    return torch.cat([g.reshape(x_probe.shape[0], -1) for g in per_input.values()], dim=1)


def pseudo_ntk(model: nn.Module, x_probe: torch.Tensor) -> torch.Tensor:
    """The n × n pseudo-NTK Θ = J Jᵀ / C on ``x_probe`` (C = the model's number of outputs)."""
    with torch.no_grad():
        n_outputs = model(x_probe[:1]).shape[-1]
    jacobian = summed_logit_jacobian(model, x_probe)
    return jacobian @ jacobian.T / n_outputs


class EntkTracker:
    """Θ on a fixed probe set at each call, and how far it moved since the previous call."""

    def __init__(self, x_probe: torch.Tensor) -> None:
        self.x_probe = x_probe
        self.previous: Optional[torch.Tensor] = None

    def __call__(self, model: nn.Module) -> dict[str, torch.Tensor]:
        kernel = pseudo_ntk(model, self.x_probe.to(next(model.parameters()).device)).double()
        if self.previous is None or self.previous.shape != kernel.shape:
            change = torch.full((), float("nan"), dtype=torch.float64, device=kernel.device)
        else:
            change = torch.linalg.matrix_norm(kernel - self.previous)
        self.previous = kernel
        return {"entk_norm": torch.linalg.matrix_norm(kernel), "entk_change": change}
