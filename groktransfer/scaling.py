"""The init-scale convention shared by every model family (FNNs and transformers)."""

import torch
from torch import nn


@torch.no_grad()
def scale_parameters(module: nn.Module, factor: float) -> None:
    """Multiply every parameter by ``factor`` (the Omnigrok init-scale convention)."""
    for p in module.parameters():
        p.mul_(factor)
