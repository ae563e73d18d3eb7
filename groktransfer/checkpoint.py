"""Checkpoints: one safetensors file holding every tensor of a run's state, with the rest as
JSON in its metadata.

Usage::

    save_checkpoint(path, {"model": model.state_dict(), "step": 120, ...})
    state = load_checkpoint(path)      # the same nested structure back

Nested dicts, lists and tuples of tensors, numbers, strings, booleans and None round-trip
exactly: tensors are stored bit for bit, and Python floats are written with ``repr``, which
reads back to the same double. Nothing is unpickled. The file is written to a temporary
name, fsynced and renamed, so a kill at any moment leaves either the previous checkpoint or
the new one, never a torn file.
"""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path
from typing import Any, Union

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file

from .config import ConfigError

_TENSOR = "__tensor__"
_TUPLE = "__tuple__"
_INT_KEYS = "__int_keys__"


def flatten(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "t") -> Any:
    """Replace every tensor in ``obj`` by a reference, collecting tensors in ``tensors``."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}"
        # A copy: safetensors refuses tensors that share storage (tied weights, views).
        tensors[key] = obj.detach().to("cpu").clone().contiguous()
        return {_TENSOR: key}
    if isinstance(obj, dict):
        # JSON keys are strings; optimizer state uses int keys, which must come back as ints.
        int_keys = all(isinstance(k, int) for k in obj) and bool(obj)
        out = {str(k): flatten(v, tensors, f"{prefix}.{k}") for k, v in obj.items()}
        return {_INT_KEYS: out} if int_keys else out
    if isinstance(obj, (list, tuple)):
        items = [flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
        return {_TUPLE: items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"checkpoint: cannot store {type(obj).__name__} at {prefix}")


def unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {_TENSOR}:
            return tensors[obj[_TENSOR]]
        if set(obj) == {_TUPLE}:
            return tuple(unflatten(v, tensors) for v in obj[_TUPLE])
        if set(obj) == {_INT_KEYS}:
            return {int(k): unflatten(v, tensors) for k, v in obj[_INT_KEYS].items()}
        return {k: unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unflatten(v, tensors) for v in obj]
    return obj


def write_safetensors_atomically(path: Union[str, Path], tensors: dict[str, torch.Tensor], metadata: dict) -> None:
    """Write to a temporary name, fsync, rename: a kill leaves the old file or the new one. A
    failed write (full disk, file-size limit) removes the temporary file and is raised as the
    OSError it is (safetensors reports it as its own error type, which names no file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as err:
            code = re.search(r"(?:os error|code:) (\d+)", str(err))
            number = int(code.group(1)) if code else errno.EIO
            raise OSError(number, os.strerror(number), str(path)) from None
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave a half-written file; the old one stays
        raise


def save_checkpoint(path: Union[str, Path], state: dict) -> None:
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten(state, tensors)
    write_safetensors_atomically(path, tensors, {"state": json.dumps(skeleton)})


def _skeleton(head: bytes) -> Any:
    """The state's layout stored in a safetensors header (the file's first bytes: an 8-byte
    length, then the JSON header); tensors stand in it as references."""
    header = json.loads(head[8: 8 + int.from_bytes(head[:8], "little")])
    return json.loads(header["__metadata__"]["state"])


def _unreadable(path: Path, err: Exception) -> ConfigError:
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    return ConfigError(f"checkpoint {str(path)!r}: unreadable ({first})")


def load_checkpoint(path: Union[str, Path]) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {str(path)!r}: not found")
    try:
        # Read into memory, not mapped: a mapped file that someone cuts short while it is read
        # kills the process (SIGBUS) instead of raising. The package itself never writes in place.
        data = path.read_bytes()
        skeleton = _skeleton(data)
        tensors = load_safetensors(data)
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as err:
        raise _unreadable(path, err) from None
    try:
        return unflatten(skeleton, tensors)
    except KeyError as err:
        raise ConfigError(f"checkpoint {str(path)!r}: damaged (tensor {err.args[0]!r} is missing)") from None
    except (TypeError, AttributeError, ValueError) as err:
        raise ConfigError(f"checkpoint {str(path)!r}: damaged (its layout cannot be read: {err})") from None


def checkpoint_layout(path: Union[str, Path]) -> Any:
    """A checkpoint's state without its tensors (they stay references), read from the header
    alone: for a caller that needs only its plain values (a batch checkpoint's identity) and
    should not load every weight to get them. Unreadable: ConfigError naming the file."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            length = handle.read(8)
            return _skeleton(length + handle.read(int.from_bytes(length, "little")))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise _unreadable(path, err) from None
