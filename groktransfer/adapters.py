"""Train other libraries' models with groktransfer's loop.

Usage::

    from transformers import GPT2Config, GPT2LMHeadModel
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=23, n_positions=2, n_embd=64, n_layer=2, n_head=4))
    gt.transfer_embedding(weak, gpt2, seed=0)             # finds wte through get_input_embeddings()
    model = gt.LastPositionLogits(gpt2, n_classes=23)      # (N, 2) token pairs -> (N, 23) logits
    gt.train(model, task, gt.TrainConfig(lr=1e-3))

The trainer needs ``model(tokens) -> (N, n_classes)``. Sequence models return a logit per
position (Hugging Face wraps them in an output object with ``.logits``; TransformerLens
returns the tensor); this wrapper reads the last position, as the paper's transformers do,
and keeps the first ``n_classes`` entries (the task's answers are tokens 0 … n_classes - 1).
"""

from __future__ import annotations

import torch
from torch import nn


class LastPositionLogits(nn.Module):
    def __init__(self, model: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.model, self.n_classes = model, n_classes

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out = self.model(tokens)
        logits = getattr(out, "logits", out)
        return logits[:, -1, : self.n_classes]


__all__ = ["LastPositionLogits"]
