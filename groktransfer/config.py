"""Typed, validated configuration for every run.

Configs are plain dataclasses. Every field has a default with a comment saying why it
has that value. Validation happens in ``__post_init__``, so one layer checks configs
read from files, ``key=value`` overrides from the command line and objects built in
Python alike. A bad value raises :class:`ConfigError` with a one-line message that
names the field and what it allows.

A run is described by :class:`RunConfig`::

    task:     what to learn (modular arithmetic)
    seed:     model-initialisation seed (the data split has its own, task.data_seed)
    weak:     the small model and how long to train it (null: no weak stage)
    target:   the large model trained with the transferred embedding (null: skip)
    scratch:  the large model trained from scratch, for comparison (null: skip)
    transfer: how E_T = A·B is initialised and trained
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml


def is_int(value: Any) -> bool:
    """An integer and not a bool (which Python counts as one): what a count or a step read from a file must be."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_prime(n: int) -> bool:
    """Whether n is a prime (trial division: moduli here are small enough)."""
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


class ConfigError(ValueError):
    """A configuration value is invalid. The message is one line naming the field."""


_SCIENTIFIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _shown(value: Any) -> str:
    """A value for a one-line message: its repr, cut short when it is long."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _coerce(value: Any, tp: Any, name: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert where lossless (int -> float)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _coerce(value, non_none[0], name)
        raise TypeError(f"unsupported annotation {tp}")  # pragma: no cover - programming error
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{name}: got {_shown(value)}; allowed: {', '.join(repr(a) for a in args)}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)) or not value:
            raise ConfigError(f"{name}: got {_shown(value)}; expected a non-empty list")
        return [_coerce(v, args[0], f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{name}: got {_shown(value)}; expected a list of {len(args)} numbers")
        return tuple(_coerce(v, a, f"{name}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: got {_shown(value)}; expected a mapping")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, Config):  # e.g. a StageConfig where a WeakStageConfig goes: its values, as given
            value = value.to_dict()
        return from_dict(tp, value, prefix=name + ".")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: got {_shown(value)}; expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: got {_shown(value)}; expected an integer")
        return value
    if tp is float:
        if isinstance(value, str) and _SCIENTIFIC.match(value.strip()):
            # YAML 1.1 (PyYAML) reads 1e-3 without a decimal point as a string; users mean a number.
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: got {_shown(value)}; expected a number")
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float
            number = math.inf
        if not math.isfinite(number):
            # Whatever the spelling (.inf, 1e400, nan): no setting here means anything at infinity.
            raise ConfigError(f"{name}: got {_shown(value)}; expected a finite number")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: got {_shown(value)}; expected a string")
        return value
    raise TypeError(f"unsupported annotation {tp}")  # pragma: no cover - programming error


class Config:
    """Base class: type-checks every field, then runs the class's own range checks."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            setattr(self, f.name, _coerce(getattr(self, f.name), hints[f.name], f.name))
        self.check()

    def check(self) -> None:
        """Range and cross-field rules; raise ConfigError naming the field."""

    def to_dict(self) -> dict:
        def plain(v: Any) -> Any:
            if isinstance(v, Config):
                return v.to_dict()
            if isinstance(v, (tuple, list)):
                return [plain(x) for x in v]
            return v

        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


# Every seed field and --seeds: 0 ≤ seed ≤ SEED_MAX. Seeds derived from one (a weak candidate's
# seed + 1000·j, the target's seed + 1, B's seed + 2) stay far below torch's 2^63 limit.
SEED_MAX = 2**32 - 1


def check_seed(name: str, seed: int) -> None:
    _require(0 <= seed <= SEED_MAX, f"{name}: got {seed}; must be in [0, {SEED_MAX}]")


def from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Build config class ``cls`` from a mapping, refusing unknown keys.

    Errors raised while checking a nested field are re-raised with the full dotted
    path (``target.train.lr: ...``) so the user knows exactly which line to fix.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping of keys, got {data!r}")
    allowed = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{prefix}{key}: unknown key; allowed: {', '.join(allowed)}")
    try:
        return cls(**data)
    except ConfigError as err:
        message = str(err)
        if prefix and not message.startswith(prefix):
            message = prefix + message
        raise ConfigError(message) from None


# ---------------------------------------------------------------------------------------
# The pieces of a run


OPERATION_NAMES = ("add", "sub", "mul", "div", "x^2+y^2", "x^2+xy+y^2", "x^3+xy")


@dataclass
class TaskConfig(Config):
    """Modular arithmetic: every pair (a, b) with 0 <= a, b < p, label a ∘ b mod p.
    Or (kind: parity) (n, k) sparse parity: random n-bit strings labelled by the XOR of k of their bits."""

    op: str = "add"  # one of OPERATION_NAMES; a Python function only through the API (configs run no code)
    p: int = 113  # the paper's modulus
    train_fraction: float = 0.25  # the paper trains on 25% of all pairs
    data_seed: int = 0  # seeds the train/test split (parity: the samples and the k relevant bits), not the model
    kind: Literal["modular", "parity", "mnist"] = "modular"  # parity/mnist use the fields below, not op, p, train_fraction
    n_bits: int = 40  # parity: bits per sample (the paper's n = 40)
    k: int = 3  # parity: relevant bits (the paper's k = 3)
    n_train: int = 1000  # parity and mnist: training samples (the paper: 1000 for parity, 200 for MNIST)
    n_test: int = 1000  # parity and mnist: test samples (the paper: 400 for MNIST)
    data_dir: Optional[str] = None  # mnist: a folder with the MNIST IDX files; None = scikit-learn's 8×8 digits

    def fields_in_use(self) -> tuple[str, ...]:
        """The fields this kind of task reads (the others keep their defaults and are ignored)."""
        return {"modular": ("kind", "op", "p", "train_fraction", "data_seed"),
                "parity": ("kind", "n_bits", "k", "n_train", "n_test", "data_seed"),
                "mnist": ("kind", "n_train", "n_test", "data_seed", "data_dir")}[self.kind]

    def check(self) -> None:
        check_seed("data_seed", self.data_seed)
        if self.kind == "mnist":
            _require(self.n_train >= 1, f"n_train: got {self.n_train}; must be >= 1")
            _require(self.n_test >= 1, f"n_test: got {self.n_test}; must be >= 1")
            return
        if self.kind == "parity":
            _require(self.n_bits >= 1, f"n_bits: got {self.n_bits}; must be >= 1")
            _require(1 <= self.k <= self.n_bits, f"k: got {self.k}; must be in [1, n_bits={self.n_bits}]")
            _require(self.n_train >= 1, f"n_train: got {self.n_train}; must be >= 1")
            _require(self.n_test >= 1, f"n_test: got {self.n_test}; must be >= 1")
            return
        _require(self.op in OPERATION_NAMES, f"op: got {self.op!r}; allowed: {', '.join(OPERATION_NAMES)}")
        _require(self.p >= 2, f"p: got {self.p}; must be an integer >= 2")
        _require(0.0 < self.train_fraction < 1.0, f"train_fraction: got {self.train_fraction}; must be in (0, 1)")
        if self.op == "div":

            _require(is_prime(self.p), f"p: got {self.p}; op 'div' needs a prime modulus")


@dataclass
class TransformerConfig(Config):
    """A decoder-only transformer (groktransfer.transformer); its d_model is ModelConfig.embed_dim."""

    n_layers: int = 2  # transformer blocks (Fig. 8(a): 8, Fig. 8(b): 2)
    n_heads: int = 4  # attention heads
    d_head: Optional[int] = None  # per-head width; None = embed_dim // n_heads
    d_mlp: int = 512  # MLP hidden width (Fig. 8(b) prints 512; its appendix says 128)
    style: Literal["nanda", "grokfast"] = "nanda"  # nanda: no LayerNorm, ReLU; grokfast: pre-LN, GELU, final LN
    input_format: Literal["pair", "equation"] = "pair"  # pair: (a, b), the paper's; equation: a ∘ b = (peers')

    def check(self) -> None:
        for name in ("n_layers", "n_heads", "d_mlp"):
            _require(getattr(self, name) >= 1, f"{name}: got {getattr(self, name)}; must be >= 1")
        _require(self.d_head is None or self.d_head >= 1, f"d_head: got {self.d_head}; must be >= 1 or null")


@dataclass
class ModelConfig(Config):
    """A bias-free FNN (ReLU, or x²) over one embedding table shared by both operands, or a transformer."""

    embed_dim: int = 128  # the paper's target; the weak model uses 4 (a transformer's d_model)
    width: int = 512  # FNN hidden width; the paper's target uses 512, the weak model 16
    depth: int = 2  # FNN hidden layers (target 2, weak 1)
    bias: bool = False  # FNN biases; the paper's FNNs have none
    init_scale: float = 1.0  # every parameter = PyTorch default init × init_scale (Omnigrok convention)
    transformer: Optional[TransformerConfig] = None  # set = a transformer instead of an FNN (width/depth/bias unused)
    # the input is a vector (parity bits as ±1) multiplied by E, instead of tokens looked up in E (models.VectorFNN)
    vector_input: bool = False
    # a fixed, frozen input encoding instead of a learned embedding (Fig. 2): one_hot, binary, fourier, text
    # (a pretrained text model; the [text] extra) or a path to a .npy file (encodings.py); embed_dim is
    # then the encoding's width and is ignored
    encoding: Optional[str] = None
    # FNNs: the read-out as two linear maps through this many dimensions (hidden → rank → classes)
    # instead of one dense map; null = dense, as in the paper. Not the weak model's default: with it
    # the weak model generalises in about half the steps, but on multiplication 4 of 12 of its
    # embeddings started targets that never reached 99% test (results/weak-readout/)
    readout_rank: Optional[int] = None
    # FNNs: the hidden activation, relu (the paper's) or square (x², models.Square; see
    # WeakModelConfig); unused by a transformer, like width, depth and bias
    activation: Literal["relu", "square"] = "relu"

    def check(self) -> None:
        for name in ("embed_dim", "width"):
            _require(getattr(self, name) >= 1, f"{name}: got {getattr(self, name)}; must be >= 1")
        _require(self.readout_rank is None or self.readout_rank >= 1,
                 f"readout_rank: got {self.readout_rank}; must be >= 1 or null (a dense read-out)")
        _require(self.readout_rank is None or self.transformer is None,
                 "readout_rank: only FNNs have it; a transformer's read-out is dense")
        # A vector-input MLP may have no hidden layer after x·E (the paper's 2-layer MNIST weak model).
        least = 0 if self.vector_input else 1
        _require(self.depth >= least, f"depth: got {self.depth}; must be >= {least}")
        _require(self.init_scale > 0, f"init_scale: got {self.init_scale}; must be > 0")
        _require(not (self.vector_input and self.transformer is not None),
                 "vector_input: a transformer reads tokens; use vector_input with an FNN")
        _require(self.encoding is None or self.encoding in ("one_hot", "binary", "fourier", "text")
                 or self.encoding.endswith(".npy"),
                 f"encoding: got {self.encoding!r}; allowed: one_hot, binary, fourier, text or a .npy file")
        _require(self.encoding is None or (self.transformer is None and not self.vector_input),
                 "encoding: fixed encodings are for token FNNs (not transformers or vector_input)")


@dataclass
class TrainConfig(Config):
    """AdamW training with scheduled evaluation and early stopping.

    A *step* is one optimizer update. With the default full batch one step is one epoch,
    which is the unit of the paper's curves.
    """

    lr: float = 1e-3  # AdamW learning rate (after warm-up)
    weight_decay: float = 1.0  # weight decay (see weight_decay_style), applied to every parameter including A and B
    # decoupled: AdamW's, θ ← θ − lr·wd·θ beside the Adam step (torch.optim.AdamW); coupled: Adam
    # with an L2 penalty, wd·θ added to the gradient before Adam's moments (torch.optim.Adam's
    # weight_decay). The paper says "AdamW"; which one its code used is not given (docs/paper-scale.md)
    weight_decay_style: Literal["decoupled", "coupled"] = "decoupled"
    betas: tuple[float, float] = (0.9, 0.999)  # PyTorch's AdamW default; the paper does not give them
    eps: float = 1e-8  # PyTorch's AdamW default
    warmup_steps: int = 0  # linear warm-up from 0 to lr over this many steps; 0 = none
    max_steps: int = 10_000  # step budget
    batch_size: Optional[int] = None  # None = full batch (the paper's curves are per epoch)
    eval_dense_until: int = 100  # evaluate after every step up to here: memorisation happens early
    eval_schedule: Literal["linear", "log"] = "linear"  # after the dense phase: every eval_every, or log-spaced
    eval_every: int = 10  # linear: the period; log: the largest gap allowed between evaluations
    eval_log_factor: float = 1.02  # log schedule: next evaluation at step × factor (openai/grok's choice)
    stop_at_test_acc: Optional[float] = 0.99  # stop once test accuracy >= this ...; None = run the whole budget
    stop_patience: int = 1  # ... for this many consecutive evaluations
    dtype: Literal["float32", "float64"] = "float32"  # the paper trains in float32
    diagnostics: bool = True  # log per-parameter norms, softmax collapse, zero loss, A·B rank at each evaluation
    # The Fig. 3 eNTK diagnostic on the first N training inputs (entk_norm, entk_change at each
    # evaluation); 0 = off. Costs one backward pass per probe input per evaluation; runs one at a time.
    entk_probe: int = 0
    check_finite_every_step: bool = False  # stop at the first NaN/inf loss at once (one host sync per step)
    # Opt-in faster matmuls: "tf32" lets CUDA matmuls use TensorFloat-32 (no effect on CPU);
    # "bf16" runs forward passes under bfloat16 autocast. "full" = plain float32/float64 (the default).
    precision: Literal["full", "tf32", "bf16"] = "full"
    # Opt-in torch.compile of the step's forward + loss (CUDA graphs on CUDA), eager if compiling
    # fails. Off by default: on 2 CPU cores it was slower, and compiling costs seconds per run.
    compile: bool = False

    def check(self) -> None:
        _require(self.lr > 0, f"lr: got {self.lr}; must be > 0")
        _require(self.weight_decay >= 0, f"weight_decay: got {self.weight_decay}; must be >= 0")
        for i, b in enumerate(self.betas):
            _require(0.0 <= b < 1.0, f"betas[{i}]: got {b}; must be in [0, 1)")
        _require(self.eps > 0, f"eps: got {self.eps}; must be > 0")
        _require(self.warmup_steps >= 0, f"warmup_steps: got {self.warmup_steps}; must be >= 0")
        _require(self.max_steps >= 1, f"max_steps: got {self.max_steps}; must be >= 1")
        _require(
            self.batch_size is None or self.batch_size >= 1,
            f"batch_size: got {self.batch_size}; must be >= 1 or null for full batch",
        )
        _require(self.eval_dense_until >= 0, f"eval_dense_until: got {self.eval_dense_until}; must be >= 0")
        _require(self.entk_probe >= 0, f"entk_probe: got {self.entk_probe}; must be >= 0 (0 = off)")
        _require(self.entk_probe == 0 or self.diagnostics, "entk_probe: the eNTK is a diagnostic; set diagnostics: true")
        _require(self.eval_every >= 1, f"eval_every: got {self.eval_every}; must be >= 1")
        _require(self.eval_log_factor > 1.0, f"eval_log_factor: got {self.eval_log_factor}; must be > 1")
        _require(
            self.stop_at_test_acc is None or 0.0 < self.stop_at_test_acc <= 1.0,
            f"stop_at_test_acc: got {self.stop_at_test_acc}; must be in (0, 1] or null",
        )
        _require(self.stop_patience >= 1, f"stop_patience: got {self.stop_patience}; must be >= 1")
        _require(
            self.precision == "full" or self.dtype == "float32",
            f"precision: {self.precision!r} needs dtype float32 (got {self.dtype})",
        )


@dataclass
class GrokFastConfig(Config):
    """GrokFast's gradient filter (Lee et al. 2024); see groktransfer.methods.grokfast."""

    filter: Literal["ema", "ma"] = "ema"  # exponential or windowed moving average of past gradients
    alpha: float = 0.98  # EMA momentum (reference default)
    lamb: Optional[float] = None  # amplification λ; None = the reference default, 2.0 for ema and 5.0 for ma
    window: int = 100  # MA window (reference default)
    start_step: int = 0  # the filter is off before this step
    warmup_steps: int = 0  # λ ramps linearly from 0 over this many steps after start_step

    def check(self) -> None:
        _require(0.0 <= self.alpha < 1.0, f"alpha: got {self.alpha}; must be in [0, 1)")
        _require(self.lamb is None or self.lamb >= 0, f"lamb: got {self.lamb}; must be >= 0")
        _require(self.window >= 1, f"window: got {self.window}; must be >= 1")
        _require(self.start_step >= 0, f"start_step: got {self.start_step}; must be >= 0")
        _require(self.warmup_steps >= 0, f"warmup_steps: got {self.warmup_steps}; must be >= 0")

    def resolved_lamb(self) -> float:
        if self.lamb is not None:
            return self.lamb
        return 2.0 if self.filter == "ema" else 5.0


@dataclass
class MethodsConfig(Config):
    """Grokking accelerators applied while a stage trains (all off by default)."""

    grokfast: Optional[GrokFastConfig] = None  # gradient low-pass filter; None = off
    orthograd: bool = False  # ⊥Grad: keep only the gradient component orthogonal to the weights
    loss: Literal["cross_entropy", "stablemax"] = "cross_entropy"  # stablemax: Prieto et al.'s float64 loss
    norm_constraint: Optional[float] = None  # Omnigrok: keep the total weight norm at this × its initial value

    def check(self) -> None:
        _require(
            self.norm_constraint is None or self.norm_constraint > 0,
            f"norm_constraint: got {self.norm_constraint}; must be > 0 or null",
        )


@dataclass
class StageConfig(Config):
    """One model trained one way."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    methods: MethodsConfig = field(default_factory=MethodsConfig)

    def check(self) -> None:
        # Decay would fight the constraint every step; Omnigrok trains the constrained net without it.
        _require(
            self.methods.norm_constraint is None or self.train.weight_decay == 0,
            "methods.norm_constraint: needs train.weight_decay: 0 (the constraint replaces weight decay)",
        )


@dataclass
class ReadinessConfig(Config):
    """When a weak model's embedding may start a target (groktransfer.readiness). Every
    threshold that is set must hold; null = not checked. Chosen on p = 113 in the earlier readiness
    studies (seeds 100-104, 900-904, 1200-1204) and validated on fresh seeds 1500-1504
    (results/readiness-validate/; docs/weak-stage.md says how well it predicts the target's success)."""

    # general: the weak model's test accuracy at transfer. 0.7, not 0.85: a candidate that ends its
    # round at 72-83% test started targets that reached 99% on 39 of 42 target seeds (14 models,
    # readiness-validate), and refusing it costs a whole fresh round. With the weak stage's
    # readiness stop (weak.stop_when_ready: true) a candidate stops here
    min_test_acc: Optional[float] = 0.7
    min_effective_rank_fraction: Optional[float] = None  # general: effective rank of E_W / d_W
    max_fourier_top1_share: Optional[float] = 0.8  # modular tasks: the largest Fourier frequency's energy share
    # mul/div: the energy share of the odd frequencies of the multiplicative characters, the
    # only ones that tell a from -a. 0.3, not 0.18: embeddings at 0.21-0.27 started targets that
    # reached 99% on 9 of 13 target seeds (readiness-validate and the narrow comparison's seed 19),
    # and a target that fails costs its whole budget where a refusal costs one fresh round
    min_fourier_odd_share: Optional[float] = 0.3

    def check(self) -> None:
        for name in ("min_test_acc", "min_effective_rank_fraction", "max_fourier_top1_share",
                     "min_fourier_odd_share"):
            value = getattr(self, name)
            _require(value is None or 0.0 <= value <= 1.0, f"{name}: got {value}; must be in [0, 1] or null")


@dataclass
class WeakModelConfig(ModelConfig):
    """The weak model's defaults: a small FNN (see WeakStageConfig for why this size)."""

    embed_dim: int = 8  # twice the paper's 4: at p = 113 embedding 4 rarely learns a usable map (results/weak-size/)
    width: int = 32  # 4 × embed_dim, the paper's ratio
    depth: int = 1  # one hidden layer, as the paper's weak FNN
    # x², not the paper's ReLU: the transferred weak model needs a third to a fifth of the steps
    # (median 110-160 against 370-500 on seeds 7100-7107), and its targets reach 99% as often once
    # their own settings are tuned for it (results/weak-square/; docs/weak-stage.md, "A quadratic
    # weak model"); validated on seeds 10-19 (docs/results.md)
    activation: Literal["relu", "square"] = "square"


@dataclass
class WeakTrainConfig(TrainConfig):
    """The weak model's training defaults (AdamW, full batch)."""

    # lr 0.05 with weight decay 1 for the x² weak model (ReLU's was 0.03: ready in about half the
    # steps of lr 0.01, results/weak-speed/); x² at 0.03 gave slower whole runs on addition and
    # fewer multiplication targets at 99% (5/8 against 6/8, seeds 7100-7107, results/weak-square/).
    # Weight decay >= 2 fails with ReLU (results/weak-speed/).
    lr: float = 0.05
    weight_decay: float = 1.0
    # a candidate not ready by then gives way to a fresh one (WeakStageConfig.max_rounds). 500 (was
    # 1,000): with the readiness rule's 70% test a candidate is usually ready by then, and on the
    # narrow target (seeds 2000-2009) 500-step rounds cut the median weak FLOPs by 23% (addition)
    # and 38% (multiplication) with as many targets at 99% (9/10 and 10/10, against 9/10 and
    # 9/10; results/weak-round-study/); checked on seeds 10-19 and 4300-4309 (docs/results.md)
    max_steps: int = 500
    stop_at_test_acc: Optional[float] = 0.95  # a candidate stops here (with stop_when_ready: at its first ready evaluation)
    # no dense phase (it was every step up to 100): no weak model is near 95% test that early
    eval_dense_until: int = 0
    # the stop is found within 20 steps (was 50, then 10). An evaluation costs the weak FNN about two
    # of its steps; every 20 made the stage about an eighth shorter than every 10 with every target
    # still at 99% (seeds 600-609, both operations, results/weak-eval-cadence/); every 50 lost two of 20
    eval_every: int = 20


@dataclass
class WeakStageConfig(StageConfig):
    """The weak stage: a population of weak models trained as one batch, and the embedding of
    the first (or best) one that the readiness rule accepts (groktransfer.weak_stage)."""

    # candidates per round, trained together as one batched computation; candidate j of a run
    # with seed s (j counted over every round) is built from seed s + 1000·j. 1: a batch of k
    # costs k times a candidate's step on a CPU, and a lone candidate at lr 0.03 is ready first
    # time on 11 of 12 seeds, so fresh rounds are cheaper than a population (results/weak-speed/;
    # docs/weak-stage.md, "A faster weak stage"). On a GPU a population costs about what one does.
    population: int = 1
    lrs: Optional[list[float]] = None  # candidate j trains at lrs[j % len(lrs)]; null = train.lr for all
    # rounds of `population` fresh candidates before giving up: 10 × 500 steps, the budget of the
    # earlier 5 × 1,000 (one multiplication seed of ten needed 5 rounds in results/weak-round-study/)
    max_rounds: int = 10
    # first_ready: stop the population at the first evaluation where a candidate is ready (its
    # cost ends there); best_ready: train every candidate to its end, take the most accurate ready one
    select: Literal["first_ready", "best_ready"] = "first_ready"
    # when no candidate is ready after max_rounds: stop (no target; an error naming what failed),
    # or transfer from the most accurate candidate anyway, with a warning (the paper's behaviour)
    if_none_ready: Literal["stop", "transfer_best"] = "stop"
    # true: a candidate also stops at the first evaluation where the readiness rule accepts its
    # embedding (so at readiness.min_test_acc at the earliest), status "ready"; false: it stops
    # only at train.stop_at_test_acc or its budget, and is judged then. Off by default: the last
    # steps from 85% to 95% test cost little at lr 0.03, and the targets they start need fewer
    # steps and fail less (seeds 600-609: results/weak-default-choice/, the stop95 rows; measured
    # on seeds 10-19 in results/compare-p113-{add,mul}/narrow10-stop95/; results/weak-readiness-today/)
    stop_when_ready: bool = False
    # while a candidate trains, its evaluations score the test set on a fixed draw of this many
    # test rows (seeded by the run's seed; null: every row). At p = 113 the 9,577 test pairs are
    # three times the training rows and an evaluation costs two to three training steps
    # (results/bench_evaluation_cpu.json); 2,048 rows measure 95% test accuracy to about ±0.5%
    # and make the stage 10-20% shorter (results/weak-eval-rows/). A candidate's final test
    # accuracy, which the readiness rule and the summary use, is measured on the whole test set.
    eval_test_rows: Optional[int] = 2048
    readiness: ReadinessConfig = field(default_factory=ReadinessConfig)
    model: WeakModelConfig = field(default_factory=WeakModelConfig)
    train: WeakTrainConfig = field(default_factory=WeakTrainConfig)

    def check(self) -> None:
        super().check()
        stop, least = self.train.stop_at_test_acc, self.readiness.min_test_acc
        _require(self.if_none_ready != "stop" or stop is None or least is None or stop >= least,
                 f"train.stop_at_test_acc: got {stop}; every candidate would stop before readiness.min_test_acc "
                 f"({least}) could hold: raise it, lower the readiness threshold, or set if_none_ready: transfer_best")
        _require(not self.stop_when_ready or least is not None,
                 "stop_when_ready: needs readiness.min_test_acc (the structure checks alone can pass on an "
                 "untrained embedding); set it, or stop_when_ready: false")
        _require(self.population >= 1, f"population: got {self.population}; must be >= 1")
        _require(self.max_rounds >= 1, f"max_rounds: got {self.max_rounds}; must be >= 1")
        _require(self.eval_test_rows is None or self.eval_test_rows >= 1,
                 f"eval_test_rows: got {self.eval_test_rows}; must be >= 1 or null (every test row)")
        if self.lrs is not None:
            for i, lr in enumerate(self.lrs):
                _require(lr > 0, f"lrs[{i}]: got {lr}; must be > 0")


@dataclass
class TransferConfig(Config):
    """How the target's input embedding E_T = A·B is set up (paper §1; choices it leaves open)."""

    a_init: Literal["weak", "random"] = "weak"  # 'random' is the paper's control (Fig. 15a)
    b_init: Literal["uniform", "normal"] = "uniform"  # uniform = nn.Linear's default U(±1/sqrt(d_W)); × target init_scale
    freeze_a: bool = False  # the paper trains A and B; freezing A is an ablation
    # A and B train at this × the target's learning rate (and so decay at it: AdamW's decay is lr × wd).
    # The paper's reading is 1.0. 0.2 (results/target-start/): at 1.0 a target started from a weak
    # embedding whose energy sits in even frequencies stalled near 47% test on multiplication.
    # 0.05 (was 0.2): after the x² weak model, the narrow target at the paper's setting sometimes
    # stalls, unable to fit its training set, at 0.2 and rarely at 0.05. Chosen on seeds the
    # comparisons do not report: 7600-7609 (results/ab-scale-square/, 79 of 80 targets at 99%
    # against 75), 7800-7814 (results/ab-finished/, 59 of 60 against 55) and 20-29 with the
    # comparisons' tuned settings (results/ab-rate-seeds20/, 39 of 40 against 38). The price: a few
    # more target steps, and at the paper's width a weak model stopped short of 95% test can leave
    # the target at 94% (seeds 10-19, docs/results.md), hence ab_lr_scale_unfinished.
    ab_lr_scale: float = 0.05
    # A weak model handed over short of finished (its test accuracy below weak_finished_test_acc;
    # the readiness rule accepts from 70%) leaves more for the target to change in A·B, and at
    # 0.05 × some such targets stall near 94% test; A and B then train at this scale instead.
    # Used only when the weak model's test accuracy is known (a weak stage, or a weak embedding
    # file whose metadata has it). null = always ab_lr_scale. Stated before it was tested on fresh
    # seeds (scripts/ab_rate_by_weak.py); docs/weak-stage.md has the study.
    ab_lr_scale_unfinished: Optional[float] = 0.2
    weak_finished_test_acc: float = 0.95  # the weak stage's own stop (weak.train.stop_at_test_acc's default)
    merge_at_step: Optional[int] = None  # replace A·B by one dense matrix at this step (Fig. 15b); None = never
    weak_embedding_file: Optional[str] = None  # reuse a saved weak embedding (.safetensors) instead of a weak stage
    random_a_dim: int = 4  # rank d_W of a random A when neither a weak stage nor a file gives it (the paper's d_W)
    # rows of A for target tokens the weak model lacks (a transformer's ∘ and =): random at the
    # weak rows' rms scale, or zero (see transfer.transfer_embedding)
    extra_rows: Literal["random", "zero"] = "random"

    def check(self) -> None:
        _require(
            self.merge_at_step is None or self.merge_at_step >= 1,
            f"merge_at_step: got {self.merge_at_step}; must be >= 1 or null",
        )
        _require(self.random_a_dim >= 1, f"random_a_dim: got {self.random_a_dim}; must be >= 1")
        _require(self.ab_lr_scale > 0, f"ab_lr_scale: got {self.ab_lr_scale}; must be > 0")
        _require(self.ab_lr_scale_unfinished is None or self.ab_lr_scale_unfinished > 0,
                 f"ab_lr_scale_unfinished: got {self.ab_lr_scale_unfinished}; must be > 0 or null")
        _require(0 < self.weak_finished_test_acc <= 1,
                 f"weak_finished_test_acc: got {self.weak_finished_test_acc}; must be in (0, 1]")

    def ab_lr_scale_for(self, weak_test_acc: Optional[float]) -> float:
        """A and B's learning-rate scale after a weak model of this test accuracy (None: unknown)."""
        if self.ab_lr_scale_unfinished is None or weak_test_acc is None:
            return self.ab_lr_scale
        return self.ab_lr_scale_unfinished if weak_test_acc < self.weak_finished_test_acc else self.ab_lr_scale


@dataclass
class CheckpointConfig(Config):
    """How often a run directory's checkpoint.safetensors is refreshed (also at every stage end and on SIGINT/SIGTERM)."""

    every_steps: Optional[int] = 2000  # steps between checkpoints; None = not by steps
    every_seconds: Optional[float] = 300.0  # seconds between checkpoints; None = not by time

    def check(self) -> None:
        _require(self.every_steps is None or self.every_steps >= 1, f"every_steps: got {self.every_steps}; must be >= 1 or null")
        _require(
            self.every_seconds is None or self.every_seconds > 0,
            f"every_seconds: got {self.every_seconds}; must be > 0 or null",
        )


DEVICES = ("auto", "cpu", "cuda", "mps")
TRACKER_NAMES = ("tensorboard", "wandb", "mlflow")  # groktransfer.tracking


@dataclass
class RunConfig(Config):
    """A whole experiment: optional weak stage, GrokTransfer target, from-scratch baseline."""

    task: TaskConfig = field(default_factory=TaskConfig)
    seed: int = 0  # model seed; the target and scratch models share it, so they differ only in the embedding
    device: str = "auto"  # auto picks cuda, then mps, then cpu
    weak: Optional[WeakStageConfig] = None  # the weak stage; None with transfer.weak_embedding_file or a_init random
    target: Optional[StageConfig] = None  # the GrokTransfer target
    scratch: Optional[StageConfig] = None  # the same target architecture trained from scratch
    transfer: TransferConfig = field(default_factory=TransferConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)  # for `groktransfer resume`
    name: str = "run"  # a label for tables and plots
    # experiment trackers fed from the evaluations, inside the run directory: tensorboard, wandb
    # (offline unless WANDB_MODE says otherwise), mlflow (a local file store); see groktransfer.tracking
    trackers: Optional[list[str]] = None

    def check(self) -> None:
        check_seed("seed", self.seed)
        _require(self.device in DEVICES, f"device: got {self.device!r}; allowed: {', '.join(DEVICES)}")
        for i, name in enumerate(self.trackers or []):
            _require(name in TRACKER_NAMES, f"trackers[{i}]: got {name!r}; allowed: {', '.join(TRACKER_NAMES)}")
        _require(self.trackers is None or len(set(self.trackers)) == len(self.trackers),
                 f"trackers: got {self.trackers}; each at most once")
        _require(
            self.target is not None or self.scratch is not None or self.weak is not None,
            "config: nothing to run; give at least one of weak, target, scratch",
        )
        if self.target is not None and self.transfer.a_init == "weak":
            _require(
                self.weak is not None or self.transfer.weak_embedding_file is not None,
                "target: needs a weak stage or transfer.weak_embedding_file (or transfer.a_init: random)",
            )
        if self.weak is not None and self.transfer.weak_embedding_file is not None:
            raise ConfigError("transfer.weak_embedding_file: give either a weak stage or a weak embedding file, not both")


# ---------------------------------------------------------------------------------------
# Reading, overriding and writing


def parse_override(text: str) -> tuple[list[str], Any]:
    """``target.train.lr=0.01`` -> (['target', 'train', 'lr'], 0.01). Values are parsed as YAML scalars."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value, e.g. target.train.lr=0.01")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {text!r}: empty key part")
    try:
        value = yaml.load(raw, Loader=_ConfigLoader) if raw.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"override {text!r}: value is not valid YAML") from None
    except RecursionError:  # PyYAML builds nested values recursively
        raise ConfigError(f"override {key.strip()}: value nested more than {MAX_CONFIG_DEPTH} levels deep") from None
    _check_plain(value, f"override {key.strip()}")
    return parts, value


def deep_merge(base: dict, extra: dict) -> dict:
    """``base`` updated by ``extra``, recursing into mappings present in both (inputs are not modified)."""
    out = dict(base)
    for key, value in extra.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = deep_merge(out[key], value) if both else value
    return out


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``key=value`` overrides to a config mapping (a copy is returned)."""
    data = json.loads(json.dumps(data))  # deep copy of plain data
    for text in overrides:
        parts, value = parse_override(text)
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                # e.g. `scratch.train.lr=...` on a preset without a scratch stage creates it with defaults
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {'.'.join(parts[: i + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return data


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no code runs), refusing a key given twice in one mapping: with the
    plain loader the last one silently wins."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} given twice (line {line})",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


MAX_CONFIG_NODES = 100_000  # a config is a few hundred values; YAML aliases can expand to billions
MAX_CONFIG_DEPTH = 64  # a config nests about 5 levels; deeper is a damaged or hostile file


def _check_plain(data: Any, where: str) -> None:
    """Refuse what a config cannot hold: values YAML can make but JSON cannot (bytes from !!binary,
    dates, sets), and alias chains that expand beyond MAX_CONFIG_NODES values. Stops at the limit,
    so a 'billion laughs' file is refused at once."""
    count = 0
    stack = [("", data, 0)]
    while stack:
        path, value, depth = stack.pop()
        count += 1
        if count > MAX_CONFIG_NODES:
            raise ConfigError(f"{where}: more than {MAX_CONFIG_NODES} values once its YAML aliases are expanded")
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(f"{where}: nested more than {MAX_CONFIG_DEPTH} levels deep")
        if isinstance(value, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v, depth + 1) for k, v in value.items())
            if not all(isinstance(k, str) for k in value):
                raise ConfigError(f"{where}: {path or 'top level'}: keys must be strings")
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v, depth + 1) for i, v in enumerate(value))
        elif not (value is None or isinstance(value, (bool, int, float, str))):
            raise ConfigError(f"{where}: {path}: a YAML {type(value).__name__} value is not allowed in a config")


def load_config_file(path: str | Path) -> dict:
    """Read a YAML or JSON config file with a safe loader (no code is ever executed)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r}: not found")
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.load(text, Loader=_ConfigLoader)  # YAML is a superset of JSON
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"config file {str(path)!r}: cannot be parsed ({first})") from None
    except RecursionError:  # PyYAML builds nested values recursively
        raise ConfigError(f"config file {str(path)!r}: nested more than {MAX_CONFIG_DEPTH} levels deep") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r}: expected a mapping at the top level")
    _check_plain(data, f"config file {str(path)!r}")
    return data


def run_config_from_dict(data: dict) -> RunConfig:
    return from_dict(RunConfig, data)


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
