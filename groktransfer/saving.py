"""Models with an A·B embedding, saved and loaded by the ecosystem's own means.

A transferred model's input embedding is a :class:`~groktransfer.transfer.FactorizedEmbedding`
(parameters ``A`` and ``B``). A fresh model of the same class has a plain embedding there, so
its own loaders do not know where ``…A``/``…B`` go (Hugging Face's ``from_pretrained`` would
report them as unexpected and leave a random embedding). Two ways out, both tested in
``tests/test_saving.py`` to give identical logits:

- **Keep A and B** (to go on training them): ``gt.save_pretrained(model, path)`` writes the
  model with the library's own ``save_pretrained`` plus ``groktransfer.json``, which says where
  the factorised embedding sits; ``gt.from_pretrained(ModelClass, path)`` builds the model from
  its config, puts an A·B embedding of the saved shapes there and loads every weight.
  For a model that is not a Hugging Face one (groktransfer's, TransformerLens', any
  ``nn.Module``), ``gt.load_state_dict(model, state)`` does the same with a state dict.
- **Merge** (to hand the model to anyone): ``gt.save_pretrained(model, path, merge=True)`` writes
  A·B as one plain embedding matrix; the library's own ``from_pretrained`` then loads it.

``gt.resize_token_embeddings(model, n)`` (also installed as the model's own
``resize_token_embeddings`` by :func:`~groktransfer.transfer_embedding` on Hugging Face models)
adds rows to A, drawn at the root-mean-square scale of its existing rows, and lets the library
resize everything else (the output layer, ``config.vocab_size``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Union

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from .config import ConfigError
from .records import atomic_write_text
from .transfer import FactorizedEmbedding, resize_token_embeddings

SIDECAR = "groktransfer.json"


def factorized_embeddings(model: nn.Module) -> dict[str, FactorizedEmbedding]:
    """Every A·B embedding in ``model``, by module path."""
    return {name: module for name, module in model.named_modules() if isinstance(module, FactorizedEmbedding)}


def _set(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, module)


def save_pretrained(model: nn.Module, path: Union[str, Path], *, merge: bool = False, **kwargs) -> None:
    """A Hugging Face model's ``save_pretrained``, with its A·B embedding kept (and described in
    ``groktransfer.json``) or merged into one plain matrix (``merge=True``)."""
    if not callable(getattr(model, "save_pretrained", None)):
        raise ConfigError(f"save_pretrained: {type(model).__name__} has no save_pretrained (not a Hugging Face "
                          "model); save model.state_dict() and restore it with gt.load_state_dict")
    path = Path(path)
    found = factorized_embeddings(model)
    if not merge:
        model.save_pretrained(path, **kwargs)
        sidecar = {name: {"rows": m.A.shape[0], "rank": m.A.shape[1], "dim": m.B.shape[1], "lr_scale": m.lr_scale,
                          "freeze_a": not m.A.requires_grad} for name, m in found.items()}
        atomic_write_text(path / SIDECAR, json.dumps({"factorized_embeddings": sidecar}, indent=2) + "\n")
        return
    for name, module in found.items():  # swapped for its merged matrix while the library writes
        _set(model, name, module.merged())
    try:
        model.save_pretrained(path, **kwargs)
    finally:
        for name, module in found.items():
            _set(model, name, module)
    (path / SIDECAR).unlink(missing_ok=True)


def _install(model: nn.Module, described: dict) -> None:
    """Put an A·B embedding of each described shape where the description says (zeros: loading fills it)."""
    for name, shape in described.items():
        try:
            current = model.get_submodule(name)
        except AttributeError:
            raise ConfigError(f"load: {type(model).__name__} has no module {name!r} to hold the saved A·B "
                              "embedding") from None
        param = next(current.parameters(), None)
        a = torch.zeros(shape["rows"], shape["rank"])
        b = torch.zeros(shape["rank"], shape["dim"])
        module = FactorizedEmbedding(a, b, freeze_a=shape.get("freeze_a", False), lr_scale=shape.get("lr_scale", 1.0))
        if param is not None:
            module.to(device=param.device, dtype=param.dtype)
        _set(model, name, module)


def from_pretrained(model_class, path: Union[str, Path], **kwargs):
    """``model_class.from_pretrained(path)`` for a model saved by :func:`save_pretrained` with its A·B
    embedding: built from its config, the A·B embedding put back, every weight loaded."""
    if not (isinstance(model_class, type) and callable(getattr(model_class, "from_pretrained", None))
            and hasattr(model_class, "config_class")):
        shown = model_class.__name__ if isinstance(model_class, type) else type(model_class).__name__
        raise TypeError(f"from_pretrained: model_class must be a Hugging Face model class, got {shown} "
                        "(for any other module: gt.load_state_dict(model, state))")
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"from_pretrained: {str(path)!r}: not a directory")
    if not (path / "config.json").is_file():
        raise ConfigError(f"from_pretrained: {str(path / 'config.json')!r}: not found (was the model saved "
                          "with save_pretrained?)")
    sidecar = path / SIDECAR
    try:
        if not sidecar.exists():  # merged, or never transferred: the library loads it as it is
            return model_class.from_pretrained(path, **kwargs)
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise ConfigError(f"from_pretrained: {str(path)!r} holds no .safetensors weights")
        described = read_sidecar(sidecar, files)
        config = model_class.config_class.from_pretrained(path)
    except (OSError, ValueError, EnvironmentError) as err:
        if isinstance(err, ConfigError):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"from_pretrained: {str(path)!r}: cannot load ({first})") from None
    model = model_class(config)
    _install(model, described)
    from safetensors.torch import load_file

    state: dict = {}
    for file in files:
        try:
            state.update(load_file(str(file)))
        except (SafetensorError, OSError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"from_pretrained: {str(file)!r}: unreadable ({first})") from None
    _tie_or_load(model, state)
    model.eval()
    return model


def read_sidecar(sidecar: Path, weight_files: list[Path]) -> dict:
    """``groktransfer.json``, checked: each described A·B embedding has positive integer shapes
    that agree with the A and B tensors the weight files hold (read from their headers, so an
    absurd shape is refused before anything is allocated). One line naming the file otherwise."""
    def refuse(why: str) -> ConfigError:
        return ConfigError(f"from_pretrained: {str(sidecar)!r}: {why}")

    if not sidecar.is_file():
        raise refuse("not a file")
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise refuse(f"unreadable ({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
    described = data.get("factorized_embeddings") if isinstance(data, dict) else None
    if not isinstance(described, dict) or not described:
        raise refuse("expected {\"factorized_embeddings\": {module: {rows, rank, dim}, ...}}")
    shapes: dict[str, tuple] = {}
    for file in weight_files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                shapes.update({key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()})
        except (SafetensorError, OSError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"from_pretrained: {str(file)!r}: unreadable ({first})") from None
    for name, shape in described.items():
        if not isinstance(shape, dict):
            raise refuse(f"{name!r}: expected {{rows, rank, dim}}, got {type(shape).__name__}")
        for key in ("rows", "rank", "dim"):
            value = shape.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise refuse(f"{name!r}: {key} must be a positive integer, got {value!r}")
        lr_scale = shape.get("lr_scale", 1.0)
        if isinstance(lr_scale, bool) or not isinstance(lr_scale, (int, float)) or not 0 < lr_scale < float("inf"):
            raise refuse(f"{name!r}: lr_scale must be a finite number > 0, got {lr_scale!r}")
        if not isinstance(shape.get("freeze_a", False), bool):
            raise refuse(f"{name!r}: freeze_a must be true or false, got {shape.get('freeze_a')!r}")
        want = {f"{name}.A": (shape["rows"], shape["rank"]), f"{name}.B": (shape["rank"], shape["dim"])}
        for key, expected in want.items():
            if shapes.get(key) != expected:
                got = "absent" if key not in shapes else f"{list(shapes[key])}"
                raise refuse(f"{name!r} says {key!r} is {list(expected)}; the weights hold {got}")
    return described


def _tie_or_load(model: nn.Module, state: dict) -> None:
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Hugging Face leaves out what it ties (an output layer sharing a weight); anything else missing is an error.
    tied = set(getattr(model, "_tied_weights_keys", None) or [])
    missing = [key for key in missing if key not in tied]
    if missing or unexpected:
        raise ConfigError(f"load: the saved weights do not fit {type(model).__name__} "
                          f"(missing {missing[:3]}, unexpected {unexpected[:3]})")


def load_state_dict(model: nn.Module, state: dict, strict: bool = True):
    """``model.load_state_dict(state)`` where ``state`` comes from a transferred model: every
    ``X.A``/``X.B`` pair whose module X is a plain embedding in ``model`` first becomes an A·B
    embedding of the saved shapes. Works for groktransfer's models, TransformerLens' and any module."""
    described = {}
    for key, value in state.items():
        if key.endswith(".A") and key[:-2] + ".B" in state:
            name = key[:-2]
            try:
                current = model.get_submodule(name)
            except AttributeError:
                continue
            if not isinstance(current, FactorizedEmbedding):
                described[name] = {"rows": value.shape[0], "rank": value.shape[1],
                                   "dim": state[name + ".B"].shape[1]}
    _install(model, described)
    return model.load_state_dict(state, strict=strict)


__all__ = ["from_pretrained", "load_state_dict", "resize_token_embeddings", "save_pretrained"]
