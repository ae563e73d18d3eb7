"""GrokTransfer: initialise a target model's input embedding from a weak model's.

Usage::

    transfer_embedding(weak_model, target_model)          # E_T = A·B, A = E_W, B random
    save_weak_embedding(weak_model, "weak_embedding.safetensors", metadata={...})
    transfer_embedding("weak_embedding.safetensors", target_model)

The target's embedding becomes a :class:`FactorizedEmbedding` computing ``E = A·B``
with ``A ∈ R^{V×d_W}`` copied from the weak embedding and ``B ∈ R^{d_W×d_T}`` random.
Both are trainable by default: nothing is frozen in the paper.

Choices the paper leaves open (all configurable):

- ``B`` is drawn like an ``nn.Linear(d_W, d_T)`` weight, ``U(-1/sqrt(d_W), 1/sqrt(d_W))``
  (``b_init="uniform"``) or ``N(0, 1/d_W)`` (``"normal"``), then multiplied by
  ``b_scale`` (the pipeline passes the target's ``init_scale``, the Omnigrok convention).
- ``A`` is copied raw, without rescaling.
- Weight decay applies to A and B like every other parameter.

Models expose their input embedding through ``get_input_embeddings()`` and
``set_input_embeddings(module)`` (Hugging Face's convention); any ``nn.Module`` with those
two methods works as a weak or target model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal, Optional, Union

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .config import ConfigError


class FactorizedEmbedding(nn.Module):
    """An input embedding computed as the product ``A·B`` (vocab × d_W times d_W × d_T)."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, freeze_a: bool = False) -> None:
        super().__init__()
        if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
            raise ConfigError(f"FactorizedEmbedding: shapes {tuple(a.shape)} and {tuple(b.shape)} do not chain")
        self.A = nn.Parameter(a.detach().clone(), requires_grad=not freeze_a)
        self.B = nn.Parameter(b.detach().clone())

    @property
    def num_embeddings(self) -> int:
        return self.A.shape[0]

    @property
    def embedding_dim(self) -> int:
        return self.B.shape[1]

    @property
    def weight(self) -> torch.Tensor:
        """The effective V × d_T embedding matrix (differentiable)."""
        return self.A @ self.B

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # Forming A·B once (V × d_T) is cheaper than projecting every looked-up row
        # whenever the batch holds more tokens than the vocabulary, as full batches do.
        return nn.functional.embedding(tokens, self.A @ self.B)

    def merged(self) -> nn.Embedding:
        """One dense embedding equal to A·B now (the paper's Fig. 15b ablation)."""
        merged = nn.Embedding(self.num_embeddings, self.embedding_dim, device=self.A.device, dtype=self.A.dtype)
        with torch.no_grad():
            merged.weight.copy_(self.A @ self.B)
        return merged


def get_input_embedding(model: nn.Module) -> nn.Module:
    getter = getattr(model, "get_input_embeddings", None)
    if getter is None:
        raise ConfigError(
            f"{type(model).__name__}: has no get_input_embeddings(); "
            "add get_input_embeddings()/set_input_embeddings() to use it with GrokTransfer"
        )
    return getter()


def embedding_matrix(module: nn.Module) -> torch.Tensor:
    """The V × d matrix of an embedding module (nn.Embedding or FactorizedEmbedding)."""
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise ConfigError(f"{type(module).__name__}: not an embedding with a 2-D weight matrix")
    return weight


def random_b(
    d_weak: int,
    d_target: int,
    init: Literal["uniform", "normal"] = "uniform",
    scale: float = 1.0,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    bound = 1.0 / math.sqrt(d_weak)
    if init == "uniform":
        b = (torch.rand(d_weak, d_target, generator=generator) * 2 - 1) * bound
    elif init == "normal":
        b = torch.randn(d_weak, d_target, generator=generator) * bound
    else:
        raise ConfigError(f"b_init: got {init!r}; allowed: 'uniform', 'normal'")
    return b * scale


WeakSource = Union[nn.Module, torch.Tensor, str, Path]


def weak_embedding_matrix(weak: WeakSource) -> torch.Tensor:
    """E_W from a weak model, a tensor, or a saved ``.safetensors`` file."""
    if isinstance(weak, (str, Path)):
        return load_weak_embedding(weak)[0]
    if isinstance(weak, torch.Tensor):
        return weak.detach()
    return embedding_matrix(get_input_embedding(weak)).detach()


def transfer_embedding(
    weak: WeakSource,
    target: nn.Module,
    *,
    b_init: Literal["uniform", "normal"] = "uniform",
    b_scale: float = 1.0,
    freeze_a: bool = False,
    random_a: bool = False,
    seed: Optional[int] = None,
) -> FactorizedEmbedding:
    """Install ``E_T = A·B`` in ``target`` with ``A = E_W``; return the new module.

    ``weak`` is a trained weak model, its embedding matrix, or a saved embedding file.
    ``random_a=True`` replaces A by a random matrix of the same shape (the paper's
    random-A·B control), drawn like ``nn.Embedding``'s init, N(0, 1), times ``b_scale``.
    """
    current = get_input_embedding(target)
    target_matrix = embedding_matrix(current)
    a = weak_embedding_matrix(weak)
    if a.dim() != 2:
        raise ConfigError(f"weak embedding: expected a 2-D matrix, got shape {tuple(a.shape)}")
    vocab, d_target = target_matrix.shape
    if a.shape[0] != vocab:
        raise ConfigError(
            f"transfer: vocabulary sizes differ: weak embedding has {a.shape[0]} rows, target has {vocab}"
        )
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    if random_a:
        a = torch.randn(a.shape, generator=generator) * b_scale
    b = random_b(a.shape[1], d_target, b_init, b_scale, generator)
    module = FactorizedEmbedding(a.float(), b, freeze_a=freeze_a)
    module.to(device=target_matrix.device, dtype=target_matrix.dtype)
    target.set_input_embeddings(module)
    return module


def merge_factorized_embedding(model: nn.Module) -> bool:
    """Replace a model's A·B embedding by one dense matrix; False if it was not factorised."""
    current = get_input_embedding(model)
    if not isinstance(current, FactorizedEmbedding):
        return False
    model.set_input_embeddings(current.merged())
    return True


# ---------------------------------------------------------------------------------------
# The weak embedding file: a safetensors file with one tensor and JSON metadata.

EMBEDDING_KEY = "embedding"


def save_weak_embedding(weak: WeakSource, path: Union[str, Path], metadata: Optional[dict] = None) -> None:
    """Write E_W to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    matrix = weak_embedding_matrix(weak).detach().to("cpu", torch.float32).contiguous()
    meta = {"metadata": json.dumps(metadata or {}, sort_keys=True)}
    tmp = path.with_name(path.name + ".tmp")
    save_file({EMBEDDING_KEY: matrix}, str(tmp), metadata=meta)
    tmp.replace(path)


def load_weak_embedding(path: Union[str, Path]) -> tuple[torch.Tensor, dict]:
    """Read a weak embedding file; a missing, corrupt or wrong file gives a clear error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"weak embedding file {str(path)!r}: not found")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            raw_meta = handle.metadata() or {}
        metadata = json.loads(raw_meta.get("metadata", "{}"))
    except (SafetensorError, OSError, ValueError) as err:
        raise ConfigError(f"weak embedding file {str(path)!r}: unreadable ({str(err).splitlines()[0]})") from None
    if set(tensors) != {EMBEDDING_KEY} or tensors[EMBEDDING_KEY].dim() != 2:
        raise ConfigError(f"weak embedding file {str(path)!r}: expected one 2-D tensor named {EMBEDDING_KEY!r}")
    return tensors[EMBEDDING_KEY], metadata
