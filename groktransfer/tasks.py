"""Modular-arithmetic tasks: every pair (a, b) with 0 <= a, b < p, label a ∘ b mod p.

Usage::

    task = ModularTask("add", p=113, train_fraction=0.25, data_seed=0, device="cpu")
    task.x_train  # LongTensor (n_train, 2) of operand pairs, on the device
    task.y_train  # LongTensor (n_train,) of labels

The whole dataset lives on the chosen device: these tasks are tiny, and moving batches
from the host every step would cost more than the step itself.

For ``div`` the pairs with b = 0 are left out (no inverse) and p must be prime. A user
operation is a Python function ``f(a, b, p)`` on int64 tensors (elementwise, vectorised);
its result is taken mod p.
"""

from __future__ import annotations

import gzip
import zlib
import os
from pathlib import Path

from typing import Callable, Optional, Union

import numpy as np
import torch

from .config import OPERATION_NAMES, ConfigError, TaskConfig

Operation = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def _inverse_table(p: int) -> torch.Tensor:
    # Fermat: b^(p-2) is b's inverse mod a prime p; index 0 has none and is never used.
    return torch.tensor([0] + [pow(b, p - 2, p) for b in range(1, p)], dtype=torch.long)


def apply_operation(op: str, a: torch.Tensor, b: torch.Tensor, p: int) -> torch.Tensor:
    """The label of every pair, for a named operation (int64 arithmetic, then mod p)."""
    if op == "add":
        y = a + b
    elif op == "sub":
        y = a - b
    elif op == "mul":
        y = a * b
    elif op == "div":
        y = a * _inverse_table(p).to(b.device)[b]
    elif op == "x^2+y^2":
        y = a * a + b * b
    elif op == "x^2+xy+y^2":
        y = a * a + a * b + b * b
    elif op == "x^3+xy":
        y = a * a * a + a * b
    else:
        raise ConfigError(f"op: got {op!r}; allowed: {', '.join(OPERATION_NAMES)}")
    return torch.remainder(y, p)


# Bytes per pair while a modular task is built: the operand grids, the stacked pairs, the
# labels, the shuffled order and the train/test copies, all int64 (measured peak ≈ 8 × 8 bytes).
BYTES_PER_PAIR = 64


def machine_memory_bytes() -> Optional[int]:
    """Physical memory of this machine, where the OS says (None elsewhere)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def check_fits_in_memory(p: int) -> None:
    """Refuse a modulus whose p² pairs would not fit in this machine's memory, before allocating any."""
    needed = p * p * BYTES_PER_PAIR
    have = machine_memory_bytes()
    if have is not None and needed > have:
        raise ConfigError(f"task.p: {p} needs ~{needed / 1e9:.0f} GB for its {p * p:,} pairs; "
                          f"this machine has {have / 1e9:.0f} GB")


class ModularTask:
    """All pairs of residues mod p, split at random (per ``data_seed``) into train and test."""

    def __init__(
        self,
        op: Union[str, Operation] = "add",
        p: int = 113,
        train_fraction: float = 0.25,
        data_seed: int = 0,
        device: Union[str, torch.device] = "cpu",
    ) -> None:
        if callable(op):
            # Validate the rest with a named placeholder, then use the user's function.
            TaskConfig(op="add", p=p, train_fraction=train_fraction, data_seed=data_seed)
            self.op_name = getattr(op, "__name__", "custom")
        else:
            TaskConfig(op=op, p=p, train_fraction=train_fraction, data_seed=data_seed)
            self.op_name = op
        check_fits_in_memory(p)
        self.p = p
        self.train_fraction = train_fraction
        self.data_seed = data_seed
        self.vocab_size = p  # input tokens are the residues 0..p-1
        self.n_classes = p  # output classes are the residues 0..p-1
        self.n_inputs = 2  # tokens per sample: a and b

        a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
        a, b = a.reshape(-1), b.reshape(-1)
        if self.op_name == "div" and not callable(op):
            keep = b != 0
            a, b = a[keep], b[keep]
        if callable(op):
            y = op(a.clone(), b.clone(), p)
            if not isinstance(y, torch.Tensor) or y.shape != a.shape:
                raise ConfigError("op: a custom operation must return a tensor shaped like its inputs")
            y = torch.remainder(y.long(), p)
        else:
            y = apply_operation(op, a, b, p)
        x = torch.stack([a, b], dim=1)

        n = x.shape[0]
        n_train = int(round(train_fraction * n))
        if not 1 <= n_train <= n - 1:
            raise ConfigError(
                f"train_fraction: {train_fraction} of {n} pairs leaves an empty train or test set"
            )
        generator = torch.Generator().manual_seed(data_seed)
        order = torch.randperm(n, generator=generator)
        train_idx, test_idx = order[:n_train], order[n_train:]
        self.x_train, self.y_train = x[train_idx].to(device), y[train_idx].to(device)
        self.x_test, self.y_test = x[test_idx].to(device), y[test_idx].to(device)

    @classmethod
    def from_config(cls, config: TaskConfig, device: Union[str, torch.device] = "cpu") -> "ModularTask":
        return cls(config.op, config.p, config.train_fraction, config.data_seed, device)

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    def __repr__(self) -> str:
        return (
            f"ModularTask(op={self.op_name!r}, p={self.p}, train={len(self.y_train)}, "
            f"test={len(self.y_test)}, data_seed={self.data_seed})"
        )


class SparseParityTask:
    """(n, k) sparse parity: uniform random n-bit strings, labelled by the XOR of k fixed bits.

    The k relevant positions are drawn from ``data_seed`` (and kept in ``relevant``); the
    training and test samples are drawn independently from the same seed, so the test set
    is fresh samples (a repeat of a training string has probability about n_train / 2^n).
    Bits are tokens 0/1, so token models (FNNs with an embedding, transformers) read them
    as a sequence of ``n_bits`` tokens; labels are the classes 0/1.
    """

    def __init__(self, n_bits: int = 40, k: int = 3, n_train: int = 1000, n_test: int = 1000, data_seed: int = 0,
                 device: Union[str, torch.device] = "cpu") -> None:
        TaskConfig(kind="parity", n_bits=n_bits, k=k, n_train=n_train, n_test=n_test, data_seed=data_seed)
        self.n_bits, self.k, self.data_seed = n_bits, k, data_seed
        generator = torch.Generator().manual_seed(data_seed)
        self.relevant = torch.randperm(n_bits, generator=generator)[:k].sort().values
        x = torch.randint(0, 2, (n_train + n_test, n_bits), generator=generator)
        y = x[:, self.relevant].sum(dim=1) % 2
        self.vocab_size, self.n_classes, self.n_inputs = 2, 2, n_bits
        self.x_train, self.y_train = x[:n_train].to(device), y[:n_train].to(device)
        self.x_test, self.y_test = x[n_train:].to(device), y[n_train:].to(device)

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    def __repr__(self) -> str:
        return (f"SparseParityTask(n_bits={self.n_bits}, k={self.k}, train={len(self.y_train)}, "
                f"test={len(self.y_test)}, data_seed={self.data_seed})")


class DigitsTask:
    """Handwritten digits for the paper's MNIST experiment (Fig. 14): ``n_train`` training and
    ``n_test`` test images, drawn without replacement by ``data_seed``, pixels scaled to [0, 1]
    and flattened; labels 0-9.

    ``data_dir`` is a folder holding the MNIST IDX files (``train-images-idx3-ubyte`` etc.,
    optionally ``.gz``), directly or in torchvision's ``MNIST/raw/`` layout; training images
    come from the training file and test images from the test file. Without one, the 1797
    8×8 digits that ship inside scikit-learn are used (a smaller, easier stand-in; ``source``
    says which). Nothing is downloaded.
    """

    def __init__(self, n_train: int = 200, n_test: int = 400, data_seed: int = 0, data_dir: Optional[str] = None,
                 device: Union[str, torch.device] = "cpu") -> None:
        generator = torch.Generator().manual_seed(data_seed)
        if data_dir is not None:
            (x_tr, y_tr), (x_te, y_te) = _read_mnist(Path(data_dir))
            self.source = f"MNIST from {data_dir} (28×28)"
            train_idx = _draw(len(y_tr), n_train, generator, "training")
            test_idx = _draw(len(y_te), n_test, generator, "test")
            x_train, y_train, x_test, y_test = x_tr[train_idx], y_tr[train_idx], x_te[test_idx], y_te[test_idx]
        else:
            try:
                from sklearn.datasets import load_digits
            except ImportError:
                raise ConfigError("task.data_dir: not given, and scikit-learn (for its built-in 8×8 digits) is not "
                                  "installed: pip install scikit-learn, or give a folder with the MNIST files") from None
            digits = load_digits()
            x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
            y = torch.tensor(digits.target, dtype=torch.long)
            self.source = "scikit-learn's 8×8 digits (no MNIST folder given)"
            order = _draw(len(y), n_train + n_test, generator, "training + test")
            x_train, y_train = x[order[:n_train]], y[order[:n_train]]
            x_test, y_test = x[order[n_train:]], y[order[n_train:]]
        self.n_inputs, self.n_classes, self.vocab_size = x_train.shape[1], 10, x_train.shape[1]
        self.data_seed = data_seed
        self.x_train, self.y_train = x_train.to(device), y_train.to(device)
        self.x_test, self.y_test = x_test.to(device), y_test.to(device)

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    def __repr__(self) -> str:
        return f"DigitsTask({self.source}, train={len(self.y_train)}, test={len(self.y_test)}, data_seed={self.data_seed})"


def _draw(available: int, wanted: int, generator: torch.Generator, what: str) -> torch.Tensor:
    if wanted > available:
        raise ConfigError(f"task: asked for {wanted} {what} images, the data has {available}")
    return torch.randperm(available, generator=generator)[:wanted]


MAX_IDX_BYTES = 200_000_000  # MNIST's largest file is 47 MB unpacked; more is not MNIST (or a gzip bomb)


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped): the big-endian header, then unsigned bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read(MAX_IDX_BYTES + 1)  # never unpacks more than the cap
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise ConfigError(f"task.data_dir: {str(path)!r} cannot be read ({err})") from None
    if len(data) > MAX_IDX_BYTES:
        raise ConfigError(f"task.data_dir: {str(path)!r} unpacks to more than {MAX_IDX_BYTES:,} bytes; not an MNIST file")
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise ConfigError(f"task.data_dir: {str(path)!r} is not an IDX file of unsigned bytes")
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    array = np.frombuffer(data, dtype=np.uint8, offset=min(4 + 4 * dims, len(data)))
    if len(data) < 4 + 4 * dims or array.size != int(np.prod(shape)):
        raise ConfigError(f"task.data_dir: {str(path)!r} is truncated")
    return array.reshape(shape)


def _read_mnist_pair(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One split's images (n × 784 in [0, 1]) and labels, checked against each other."""
    images, labels = _read_idx(images_path), _read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ConfigError(f"task.data_dir: {str(images_path)!r} holds images of shape {images.shape[1:]}; "
                          f"MNIST's are 28 × 28")
    if labels.ndim != 1:
        raise ConfigError(f"task.data_dir: {str(labels_path)!r} is not a list of labels (shape {labels.shape})")
    if len(images) != len(labels):
        raise ConfigError(f"task.data_dir: {len(images)} images in {images_path.name} but {len(labels)} labels "
                          f"in {labels_path.name}")
    if labels.size and int(labels.max()) > 9:
        raise ConfigError(f"task.data_dir: {str(labels_path)!r} holds a label {int(labels.max())}; digits are 0-9")
    return (torch.tensor(images.reshape(-1, 784).astype(np.float32)) / 255,
            torch.tensor(labels.astype(np.int64)))


def _read_mnist(folder: Path):
    for candidate in (folder, folder / "MNIST" / "raw"):
        found = {}
        for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                     "t10k-labels-idx1-ubyte"):
            for suffix in ("", ".gz"):
                if (candidate / (name + suffix)).is_file():
                    found[name] = candidate / (name + suffix)
        if len(found) == 4:
            return tuple(_read_mnist_pair(found[f"{s}-images-idx3-ubyte"], found[f"{s}-labels-idx1-ubyte"])
                         for s in ("train", "t10k"))
    raise ConfigError(f"task.data_dir: {str(folder)!r} holds no MNIST IDX files (train-images-idx3-ubyte[.gz], ...)")


def build_task(config: TaskConfig, device: Union[str, torch.device] = "cpu"):
    """The task a TaskConfig describes (modular arithmetic, sparse parity or digits)."""
    if config.kind == "mnist":
        return DigitsTask(config.n_train, config.n_test, config.data_seed, config.data_dir, device)
    if config.kind == "parity":
        return SparseParityTask(config.n_bits, config.k, config.n_train, config.n_test, config.data_seed, device)
    return ModularTask.from_config(config, device=device)
