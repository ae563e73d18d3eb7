"""Diagnostics logged at evaluation points, beside accuracy and loss.

- ``norm/<parameter>``: the L2 norm of each parameter tensor (Omnigrok's view of grokking).
- ``softmax_collapse``: the fraction of training samples whose float32 softmax has
  collapsed, i.e. ``sum(exp(logit - max)) == 1`` exactly: every other class underflowed,
  so the gradient of those samples is exactly zero (Prieto et al. 2025).
- ``zero_loss``: the fraction of training samples whose float32 cross-entropy is exactly 0.
- For an A·B input embedding: ``embedding_rank`` (numerical rank of A·B),
  ``embedding_effective_rank`` (exp of the entropy of the normalised singular values,
  Roy & Vetterli 2007) and ``embedding_cka_to_weak``, the linear CKA similarity
  (Kornblith et al. 2019) between A·B and the weak embedding E_W. CKA compares the two
  matrices' row geometry, so their widths (d_T and d_W) may differ.
- With ``train.entk_probe: N``: ``entk_norm`` and ``entk_change``, the pseudo-NTK on the first
  N training inputs and its change since the previous evaluation (see :mod:`groktransfer.entk`).

All values are device tensors; the trainer reads them back in its one sync per evaluation.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .entk import EntkTracker
from .transfer import FactorizedEmbedding


def collapse_fractions(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Softmax collapse and zero loss over the rows of ``logits`` (N × C, or K × N × C: one value per run)."""
    logits = logits.detach().float()
    top = logits.max(dim=-1, keepdim=True).values
    collapsed = (logits - top).exp().sum(dim=-1) == 1.0
    if labels.is_floating_point() or labels.shape != logits.shape[:-1]:  # not class indices: the loss itself
        losses = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                             reduction="none").view(labels.shape)
        zero = losses == 0
    else:
        # The float32 cross-entropy log(Σ exp(z - max)) - (z_label - max) is exactly 0 only when both
        # terms are: the softmax has collapsed (the sum is 1) onto the label. Read that way it costs
        # no second pass over the logits (an evaluation of the weak FNN is a few training steps).
        zero = collapsed & (logits.gather(-1, labels.unsqueeze(-1)) == top).squeeze(-1)
    return {"softmax_collapse": collapsed.float().mean(dim=-1), "zero_loss": zero.float().mean(dim=-1)}


def effective_rank(matrix: torch.Tensor) -> torch.Tensor:
    """exp(entropy of the normalised singular values); leading dimensions are a batch."""
    s = torch.linalg.svdvals(matrix.detach().double())
    p = s / s.sum(dim=-1, keepdim=True).clamp_min(1e-300)
    # 0·log 0 = 0, written without boolean indexing so that a batch of matrices works too.
    plogp = torch.where(p > 0, p * p.clamp_min(1e-300).log(), torch.zeros_like(p))
    return torch.exp(-plogp.sum(dim=-1))


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Linear CKA between two representations of the same rows (n × d1, n × d2; leading dimensions are a batch)."""
    x = x.detach().double()
    y = y.detach().double()
    x = x - x.mean(dim=-2, keepdim=True)
    y = y - y.mean(dim=-2, keepdim=True)
    cross = (y.mT @ x).pow(2).sum(dim=(-2, -1))
    norms = torch.linalg.matrix_norm(x.mT @ x) * torch.linalg.matrix_norm(y.mT @ y)
    return cross / norms.clamp_min(1e-300)


def embedding_spectrum(product: torch.Tensor) -> dict[str, torch.Tensor]:
    """Rank and effective rank of A·B (leading dimensions are a batch), on the product's device.

    The singular values are computed on the CPU: the matrices are tiny (vocabulary × width),
    and GPU SVDs (float64 above all) are slow for them. On an H200, GrokTransfer's target stage,
    evaluated every step, took ~110 ms per step against ~7 ms for scratch, whose evaluation
    lacks only these SVDs (inferred from the summaries, not profiled). The evaluation reads
    its numbers back to the host anyway, so this adds no extra wait.
    """
    on_cpu = product.detach().cpu()
    return {
        # The rank tolerance must be that of the dtype A·B was computed in: float32 rounding
        # leaves singular values near 1e-7 that a float64 tolerance would count.
        "embedding_rank": torch.linalg.matrix_rank(on_cpu).double().to(product.device),
        "embedding_effective_rank": effective_rank(on_cpu).to(product.device),
    }


def factorized_embedding_names(model: nn.Module) -> Optional[tuple[str, str]]:
    """The parameter names of A and B when the model's input embedding is A·B."""
    getter = getattr(model, "get_input_embeddings", None)
    embedding = getter() if getter is not None else None
    if not isinstance(embedding, FactorizedEmbedding):
        return None
    for prefix, module in model.named_modules():
        if module is embedding:
            dot = f"{prefix}." if prefix else ""
            return f"{dot}A", f"{dot}B"
    return None


@torch.no_grad()
def stacked_diagnostics(params: dict[str, torch.Tensor], logits: torch.Tensor, labels: torch.Tensor,
                        embedding_names: Optional[tuple[str, str]],
                        weak_matrix: Optional[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every diagnostic but the eNTK for K runs at once, one (K,) tensor each: ``params`` maps a
    name to its (K, ...) stacked values, ``logits`` are (K, N, C) on the training set, ``labels``
    (K, N), ``weak_matrix`` (K, V, d_W) or None. One run is a batch of one (:class:`Diagnostics`)."""
    out = collapse_fractions(logits, labels)
    for name, p in params.items():
        out[f"norm/{name}"] = p.detach().float().flatten(1).norm(dim=1)
    if embedding_names is not None:
        a, b = (params[n].detach() for n in embedding_names)
        product = a @ b
        out.update(embedding_spectrum(product))
        if weak_matrix is not None:
            out["embedding_cka_to_weak"] = linear_cka(product, weak_matrix.to(product.device))
    return out


class Diagnostics:
    """Computes every diagnostic of a model at an evaluation point."""

    def __init__(self, weak_matrix: Optional[torch.Tensor] = None, entk: Optional[EntkTracker] = None) -> None:
        self.weak_matrix = None if weak_matrix is None else weak_matrix.detach().clone()
        self.entk = entk

    @torch.no_grad()
    def __call__(self, model: nn.Module, train_logits: torch.Tensor, train_labels: torch.Tensor) -> dict[str, torch.Tensor]:
        params = {name: p.detach().unsqueeze(0) for name, p in model.named_parameters()}
        weak = None if self.weak_matrix is None else self.weak_matrix.unsqueeze(0)
        values = stacked_diagnostics(params, train_logits.unsqueeze(0), train_labels.unsqueeze(0),
                                     factorized_embedding_names(model), weak)
        values = {name: value[0] for name, value in values.items()}
        if self.entk is not None:
            values.update(self.entk(model))
        return values
