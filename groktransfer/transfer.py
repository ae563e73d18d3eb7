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
import types
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Literal, Optional, Union

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from .checkpoint import write_safetensors_atomically
from .config import ConfigError
from .lookup import Embedding, embedding_rows


class FactorizedEmbedding(nn.Module):
    """An input embedding computed as the product ``A·B`` (vocab × d_W times d_W × d_T)."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, freeze_a: bool = False, lr_scale: float = 1.0) -> None:
        super().__init__()
        if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
            raise ConfigError(f"FactorizedEmbedding: shapes {tuple(a.shape)} and {tuple(b.shape)} do not chain")
        if not lr_scale > 0:
            raise ConfigError(f"lr_scale: got {lr_scale}; must be > 0")
        self.A = nn.Parameter(a.detach().clone(), requires_grad=not freeze_a)
        self.B = nn.Parameter(b.detach().clone())
        # A and B train at lr_scale × the model's learning rate (groktransfer's trainers read this).
        self.lr_scale = float(lr_scale)

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
        return embedding_rows(self.A @ self.B, tokens)

    @property
    def W_E(self) -> torch.Tensor:
        """TransformerLens' name for the embedding matrix (code reading ``model.embed.W_E`` keeps working)."""
        return self.weight

    def merged(self) -> nn.Embedding:
        """One dense embedding equal to A·B now (the paper's Fig. 15b ablation)."""
        merged = Embedding(self.num_embeddings, self.embedding_dim, device=self.A.device, dtype=self.A.dtype)
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


@dataclass
class EmbeddingSlot:
    """Where a model keeps its input embedding: the current matrix and how to replace the module."""

    matrix: torch.Tensor  # V × d
    install: Callable[[nn.Module], None]
    where: str  # for messages: "get_input_embeddings()", "embed.W_E", or the attribute path


def _set_submodule(model: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, module)


def locate_input_embedding(model: nn.Module, attribute: Optional[str] = None) -> EmbeddingSlot:
    """Find a model's input embedding, in this order:

    1. ``attribute``, a dotted path to an embedding module (e.g. ``"tok_emb"``), when given;
    2. ``get_input_embeddings()``/``set_input_embeddings()`` (groktransfer's models, Hugging Face);
    3. TransformerLens: a ``HookedTransformer``'s ``embed`` module with its ``W_E`` matrix;
    4. the model's only ``nn.Embedding`` whose rows are the vocabulary (several: ambiguous).
    """
    if attribute is not None:
        try:
            module = model.get_submodule(attribute)
        except AttributeError:
            raise ConfigError(f"transfer: {type(model).__name__} has no submodule {attribute!r}") from None
        if not is_embedding(module):
            raise ConfigError(f"transfer: attribute {attribute!r} is a {type(module).__name__}, not an input embedding "
                              "(nn.Embedding, a FactorizedEmbedding or TransformerLens' Embed)")
        return EmbeddingSlot(embedding_matrix(module), lambda m: _set_submodule(model, attribute, m), attribute)
    if callable(getattr(model, "get_input_embeddings", None)) and callable(getattr(model, "set_input_embeddings", None)):
        return EmbeddingSlot(embedding_matrix(model.get_input_embeddings()), model.set_input_embeddings,
                             "get_input_embeddings()")
    embed = getattr(model, "embed", None)
    if isinstance(embed, nn.Module) and isinstance(getattr(embed, "W_E", None), torch.Tensor):
        return EmbeddingSlot(embed.W_E, lambda m: setattr(model, "embed", m), "embed.W_E")
    # An A·B embedding (a model transferred before) counts too: a second transfer replaces it.
    found = [(name, module) for name, module in model.named_modules()
             if isinstance(module, (nn.Embedding, FactorizedEmbedding))]
    if len(found) == 1:
        name, module = found[0]
        return EmbeddingSlot(module.weight, lambda m: _set_submodule(model, name, m), name)
    if not found:
        raise ConfigError(f"transfer: no input embedding found in {type(model).__name__}; "
                          "pass attribute='path.to.embedding'")
    raise ConfigError(f"transfer: {type(model).__name__} has several embeddings ({', '.join(n for n, _ in found)}): "
                      "ambiguous; pass attribute= to choose one")


def is_embedding(module: nn.Module) -> bool:
    """An input embedding: nn.Embedding, an A·B embedding, or TransformerLens' Embed (a W_E matrix)."""
    return isinstance(module, (nn.Embedding, FactorizedEmbedding)) or isinstance(getattr(module, "W_E", None),
                                                                                  torch.Tensor)


def embedding_matrix(module: nn.Module) -> torch.Tensor:
    """The V × d matrix of an embedding module (nn.Embedding, FactorizedEmbedding, TransformerLens Embed)."""
    weight = getattr(module, "weight", None)
    if weight is None:
        weight = getattr(module, "W_E", None)
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


def _check_transfer_arguments(weak, target, b_init, b_scale, seed, lr_scale) -> None:
    """transfer_embedding's arguments, checked before anything is built or drawn."""
    if not isinstance(target, nn.Module):
        raise TypeError(f"transfer_embedding: target must be an nn.Module, got {type(target).__name__}")
    if not isinstance(weak, (str, Path, torch.Tensor, nn.Module)):
        raise TypeError("transfer_embedding: weak must be a weak model, its embedding matrix or a "
                        f".safetensors path, got {type(weak).__name__}")
    if b_init not in ("uniform", "normal"):
        raise ConfigError(f"transfer_embedding: b_init: got {b_init!r}; allowed: 'uniform', 'normal'")
    for name, value in (("b_scale", b_scale), ("lr_scale", lr_scale)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"transfer_embedding: {name} must be a number, got {type(value).__name__}")
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"transfer_embedding: {name}: got {value}; must be a finite number > 0")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"transfer_embedding: seed must be an int or None, got {type(seed).__name__}")
        if not 0 <= seed < 2**63:  # torch.Generator's range (the pipeline passes run seed + 2)
            raise ConfigError(f"transfer_embedding: seed: got {seed}; must be in [0, 2**63 - 1]")


def transfer_embedding(
    weak: WeakSource,
    target: nn.Module,
    *,
    b_init: Literal["uniform", "normal"] = "uniform",
    b_scale: float = 1.0,
    freeze_a: bool = False,
    random_a: bool = False,
    extra_rows: Optional[Literal["random", "zero"]] = None,
    attribute: Optional[str] = None,
    seed: Optional[int] = None,
    lr_scale: float = 1.0,
) -> FactorizedEmbedding:
    """Install ``E_T = A·B`` in ``target`` with ``A = E_W``; return the new module.

    ``weak`` is a trained weak model, its embedding matrix, or a saved embedding file.
    ``target`` is any module whose input embedding :func:`locate_input_embedding` finds
    (``attribute`` names it explicitly). ``random_a=True`` replaces A by a random matrix of
    the same shape (the paper's random-A·B control), drawn like ``nn.Embedding``'s init,
    N(0, 1), times ``b_scale``.

    ``extra_rows``: when the target's vocabulary is larger than the weak one (a transformer's
    extra ``∘`` and ``=`` tokens), A gets one more row per extra token: ``"random"`` draws
    them N(0, rms²) with rms the root-mean-square entry of E_W, so an extra token starts at
    the typical scale of a weak token without carrying any of its structure; ``"zero"``
    starts them at 0 (the positional embedding still tells those positions apart). None
    refuses a mismatch.

    A Hugging Face model whose output layer is tied to its input embedding (GPT-2) is untied:
    the output layer keeps its current weights as its own parameter.

    ``lr_scale``: A and B train at this multiple of the model's learning rate under
    groktransfer's trainers (``train``, ``train_many``); another training loop can read it
    from the returned module's ``lr_scale`` to build its own parameter groups.
    """
    _check_transfer_arguments(weak, target, b_init, b_scale, seed, lr_scale)
    slot = locate_input_embedding(target, attribute)
    target_matrix = slot.matrix
    a = weak_embedding_matrix(weak)
    if a.dim() != 2:
        raise ConfigError(f"weak embedding: expected a 2-D matrix, got shape {tuple(a.shape)}")
    if a.numel() == 0:
        raise ConfigError(f"weak embedding: empty, shape {tuple(a.shape)}")
    if not torch.isfinite(a).all():
        raise ConfigError("weak embedding: holds NaN or infinite values (did the weak model diverge?)")
    vocab, d_target = target_matrix.shape
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    a = a.detach().to("cpu", torch.float32)
    if a.shape[0] != vocab:
        if extra_rows is None or a.shape[0] > vocab:
            hint = " (extra_rows='random' or 'zero' adds the missing rows)" if a.shape[0] < vocab else ""
            raise ConfigError(
                f"transfer: vocabulary sizes differ: weak embedding has {a.shape[0]} rows, "
                f"target's {slot.where} has {vocab}{hint}"
            )
        if extra_rows not in ("random", "zero"):
            raise ConfigError(f"extra_rows: got {extra_rows!r}; allowed: 'random', 'zero'")
        n_extra = vocab - a.shape[0]
        if extra_rows == "random":
            rms = a.pow(2).mean().sqrt()
            extra = torch.randn(n_extra, a.shape[1], generator=generator) * rms
        else:
            extra = torch.zeros(n_extra, a.shape[1])
        a = torch.cat([a, extra])
    if random_a:
        a = torch.randn(a.shape, generator=generator) * b_scale
    b = random_b(a.shape[1], d_target, b_init, b_scale, generator)
    module = FactorizedEmbedding(a, b, freeze_a=freeze_a, lr_scale=lr_scale)
    module.to(device=target_matrix.device, dtype=target_matrix.dtype)
    _untie_output_layer(target, target_matrix)
    slot.install(module)
    if callable(getattr(target, "resize_token_embeddings", None)) and hasattr(target, "config"):
        # Hugging Face's own resize knows only nn.Embedding; this one grows A and lets it resize the rest.
        # A bound method, so that a copy of the model (copy.deepcopy) resizes itself, not this one.
        target.resize_token_embeddings = types.MethodType(resize_method, target)
    return module


def _untie_output_layer(model: nn.Module, embedding_weight: torch.Tensor) -> None:
    """Give an output layer that shares the embedding's weight tensor its own copy."""
    getter = getattr(model, "get_output_embeddings", None)
    output = getter() if callable(getter) else None
    if output is not None and getattr(output, "weight", None) is embedding_weight:
        output.weight = nn.Parameter(embedding_weight.detach().clone())
        if hasattr(model, "config") and hasattr(model.config, "tie_word_embeddings"):
            model.config.tie_word_embeddings = False  # so that HF does not tie them again on save/load


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
    write_safetensors_atomically(path, {EMBEDDING_KEY: matrix}, meta)


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
    if not torch.isfinite(tensors[EMBEDDING_KEY]).all():
        raise ConfigError(f"weak embedding file {str(path)!r}: holds NaN or infinite values")
    if not isinstance(metadata, dict):
        raise ConfigError(f"weak embedding file {str(path)!r}: its metadata is not a JSON object")
    return tensors[EMBEDDING_KEY], metadata


def resize_token_embeddings(model: nn.Module, new_num_tokens: int, seed: Optional[int] = None):
    """Resize a transferred Hugging Face model's vocabulary: A gets (or loses) rows, new ones drawn
    N(0, rms²) with rms the root-mean-square entry of the old A; the library resizes the rest."""
    getter = getattr(model, "get_input_embeddings", None)
    embedding = getter() if callable(getter) else None
    if not isinstance(embedding, FactorizedEmbedding):
        raise ConfigError("resize_token_embeddings: the model's input embedding is not an A·B embedding")
    if new_num_tokens < 1:
        raise ConfigError(f"resize_token_embeddings: got {new_num_tokens}; must be >= 1")
    old = embedding.A.shape[0]
    with torch.no_grad():
        a = embedding.A.detach()
        if new_num_tokens > old:
            generator = torch.Generator().manual_seed(seed) if seed is not None else None
            rms = a.pow(2).mean().sqrt().item()
            extra = torch.randn(new_num_tokens - old, a.shape[1], generator=generator) * rms
            a = torch.cat([a, extra.to(a.device, a.dtype)])
        else:
            a = a[:new_num_tokens]
    resized = FactorizedEmbedding(a, embedding.B.detach(), freeze_a=not embedding.A.requires_grad,
                                  lr_scale=embedding.lr_scale)
    # The library resizes what else depends on the vocabulary (output layer, config) around a stand-in.
    stand_in = nn.Embedding(old, embedding.embedding_dim, device=a.device, dtype=a.dtype)
    model.set_input_embeddings(stand_in)
    try:
        type(model).resize_token_embeddings(model, new_num_tokens)
    finally:
        model.set_input_embeddings(resized)
    return resized


def resize_method(self, new_num_tokens: int, *args, **kwargs):
    """What a transferred Hugging Face model's ``resize_token_embeddings`` becomes (bound to it)."""
    return resize_token_embeddings(self, new_num_tokens)
