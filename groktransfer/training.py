"""What the training loop is made of: its result, evaluation schedule, stopping rule, device and
precision settings, the checks of its inputs and of a checkpoint's state. The loop itself is
:mod:`groktransfer.engine` (``train`` for one run, ``train_many`` for many: one loop).

Usage::

    result = gt.train(model, task, TrainConfig(lr=1e-3, weight_decay=1.0, max_steps=20_000))
    result.status      # "target_reached", "max_steps" or "diverged"
    result.history     # one dict per evaluation (step, losses, accuracies, weight norm, time)
    result.summary()   # threshold steps, Time Gap, wall-clock, FLOPs

Why the loop looks the way it does:

- The data stays on the device, and the loop never reads a value back to the host between
  evaluations. A NaN/inf loss is remembered in a device tensor (the first step it
  happened) and read at the next evaluation, so divergence costs no per-step sync.
- Evaluation follows a schedule: after every step while memorisation happens, then every
  ``eval_every`` steps or log-spaced. Evaluating every step would cost as much as training.
- Denormal floats are flushed to zero on the CPU. Large weight decay drives weights into
  the denormal range, where one run slowed about 10x without the flush.
- ``events`` maps a step to a function that edits the model (e.g. merging A·B into one
  matrix). Parameters that survived the edit keep their AdamW state; new ones start fresh.
"""

from __future__ import annotations

import ctypes
import math
import os
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from .config import ConfigError, TrainConfig, is_int
from .metrics import summarize_history
from .methods.stablemax import stablemax_cross_entropy

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
HISTORY_KEYS = ("step", "train_loss", "train_acc", "test_loss", "test_acc", "weight_norm", "elapsed_s")


# One evaluation reads these back from the device in one sync, in this order, then the
# diagnostics: [train_loss, train_acc, test_loss, test_acc, weight_norm, first_bad_step, *diagnostics].
def history_row(step: int, values: list[float], elapsed: float, diagnostic_names) -> dict:
    """The history row of one evaluation (what metrics.csv and diagnostics.csv hold)."""
    row = dict(zip(HISTORY_KEYS, [step, *values[:5], elapsed]))
    if len(values) > 6:
        row["diagnostics"] = dict(zip(diagnostic_names, values[6:]))
    return row


def stopping_rule(values: list[float], test_acc_hits: int, step: int, config: "TrainConfig"):
    """After one evaluation, whether the run stops: (status or None, diverged step, consecutive hits).

    Diverged: a non-finite loss since the last evaluation (its first step) or a non-finite
    number now. Target reached: test accuracy >= ``stop_at_test_acc`` at ``stop_patience``
    evaluations in a row. Max steps: the budget is used up. Shared by ``train`` and the batched
    engine, so that one run and a batch of runs stop on the same evaluation.
    """
    first_bad = int(values[5])
    if first_bad >= 0 or not all(math.isfinite(v) for v in values[:5]):
        return "diverged", first_bad if first_bad >= 0 else step, test_acc_hits
    if config.stop_at_test_acc is not None and values[3] >= config.stop_at_test_acc:
        test_acc_hits += 1
        if test_acc_hits >= config.stop_patience:
            return "target_reached", None, test_acc_hits
    else:
        test_acc_hits = 0
    if step >= config.max_steps:
        return "max_steps", None, test_acc_hits
    return None, None, test_acc_hits


# stop_check(run index, evaluation row, load): a status to end the run with now, or None.
# load() puts the run's current weights into its model (a batch keeps them elsewhere).
StopCheck = Callable[[int, dict, Callable[[], None]], Optional[str]]


def epoch_order(n_train: int, generator: torch.Generator) -> torch.Tensor:
    """The order of the training examples for one pass of mini-batches (one run's own generator)."""
    return torch.randperm(n_train, generator=generator)


class EvalSchedule:
    """Which steps are evaluated: 0..dense_until, then linear or log-spaced."""

    def __init__(self, config: TrainConfig) -> None:
        self.dense_until = config.eval_dense_until
        self.mode = config.eval_schedule
        self.every = config.eval_every
        self.factor = config.eval_log_factor

    def next_after(self, step: int) -> int:
        if step < self.dense_until:
            return step + 1
        if self.mode == "linear":
            return (step // self.every + 1) * self.every
        return max(step + 1, min(step + self.every, math.ceil(step * self.factor)))

    def steps(self, max_steps: int) -> list[int]:
        """Every step evaluated in a run of ``max_steps`` steps (the last is always included)."""
        out, step = [], 0
        while step < max_steps:
            out.append(step)
            step = self.next_after(step)
        return out + [max_steps]


def _flushing_denormals() -> bool:
    """Whether the CPU flushes denormals to zero now (torch offers a setter, not a getter)."""
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # a float32 denormal
    return bool((tiny * 1.0 == 0).item())


def _openmp_library():
    """The OpenMP runtime torch computes with (GNU libgomp, or LLVM's, which speaks the same
    GOMP_parallel), as a ctypes library: the one inside torch's own folder, else the only one
    loaded. None where it cannot be told (not Linux, another threading backend, or several
    runtimes none of which is torch's: scikit-learn, for one, brings its own libgomp, and its
    threads are not torch's)."""
    global _OPENMP
    if _OPENMP is None:
        _OPENMP = False
        try:
            with open("/proc/self/maps", encoding="utf-8") as maps:
                paths = sorted({line.split()[-1] for line in maps if "/" in line
                                and any(name in line.rsplit("/", 1)[-1] for name in ("libgomp", "libomp", "libiomp"))})
            torch_dir = str(Path(torch.__file__).resolve().parent) + os.sep
            own = [path for path in paths if str(Path(path).resolve()).startswith(torch_dir)]
            chosen = own[:1] or (paths if len(paths) == 1 else [])
            for path in chosen:
                library = ctypes.CDLL(path)
                if hasattr(library, "GOMP_parallel"):
                    library.GOMP_parallel.argtypes = [_OMP_CALLBACK, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
                    library.GOMP_parallel.restype = None
                    _OPENMP = library
        except (OSError, AttributeError):
            pass
    return _OPENMP or None


_OPENMP = None
_OMP_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _set_flush_denormal_everywhere(flag: bool) -> None:
    """torch.set_flush_denormal sets the flag of the calling thread only, so with several
    intra-op threads the others went on making denormals (half the elements of an op, on two
    threads), and a run whose weights decay towards them slowed down step after step
    (benchmarks/denormals.py). This sets it in every thread of torch's OpenMP team too."""
    torch.set_flush_denormal(flag)
    library = _openmp_library()
    threads = torch.get_num_threads()
    if library is not None and threads > 1:
        callback = _OMP_CALLBACK(lambda _: torch.set_flush_denormal(flag))
        library.GOMP_parallel(callback, None, threads, 0)


@contextmanager
def cpu_flush_denormal(device: torch.device):
    """Flush denormals to zero on the CPU while training, and restore the setting afterwards.

    Only a speed setting: values below ~1e-38 become 0, far below anything that matters here,
    and large weight decay drives weights there, where CPU arithmetic is many times slower.
    It is a CPU flag, set in every thread torch computes with, that also changes Python's own
    float arithmetic, so it is not left on for the caller's code."""
    if device.type != "cpu":
        yield
        return
    before = _flushing_denormals()
    _set_flush_denormal_everywhere(True)
    try:
        yield
    finally:
        _set_flush_denormal_everywhere(before)


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def resolve_device(name: str = "auto") -> torch.device:
    """The device a config names; "auto" picks cuda, then mps, then cpu. A device this machine
    lacks is refused here, before anything is written, with a ConfigError naming it."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} is not available on this machine (no CUDA device or no CUDA build "
                          "of torch); use cpu or auto")
    if device.type == "mps" and not _mps_available():
        raise ConfigError(f"device: {name!r} is not available on this machine; use cpu or auto")
    return device


@contextmanager
def matmul_precision(precision: str, device: torch.device):
    """Turn TF32 on for CUDA matmuls while training (restored after); other settings change nothing here."""
    if precision != "tf32" or device.type != "cuda":
        yield
        return
    previous = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous


def forward_precision(precision: str, device: torch.device):
    """bfloat16 autocast around forward passes when asked for; a no-op context otherwise."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Share of rows whose label's logit is strictly the largest, over the second-to-last
    dimension (one value per run for a batch's (K, N, C) logits).

    Strictly: a tie for the top counts as wrong, where argmax would credit whichever class comes
    first (class 0 for a collapsed model). Ties aside it is argmax's answer, about twice as fast
    on the CPU (an evaluation costs a small model two to three training steps). Labels that are not
    class indices (a caller's own loss with float targets) are compared with argmax as before."""
    if labels.is_floating_point() or labels.dtype == torch.bool or labels.shape != logits.shape[:-1]:
        return (logits.argmax(dim=-1) == labels).float().mean(dim=-1)
    index = labels.unsqueeze(-1)
    own = logits.gather(-1, index).squeeze(-1)
    others = logits.scatter(-1, index, float("-inf")).amax(dim=-1)
    return (own > others).float().mean(dim=-1)


@dataclass
class TrainResult:
    stage: str
    status: str  # "target_reached" | "max_steps" | "diverged" | "stopped" (ended by train_many's on_finish)
    steps: int  # optimizer steps taken
    diverged_step: Optional[int]  # the first step whose training loss was NaN/inf
    history: list[dict] = field(repr=False)
    wall_clock_s: float = 0.0
    flops: float = 0.0  # estimate: measured FLOPs of one training step × steps + of one evaluation × evaluations
    flops_per_step: float = 0.0
    n_params: int = 0
    compiled: bool = False  # the step ran through torch.compile to the end (train.compile and no fallback)

    def summary(self) -> dict:
        out = {
            "status": self.status,
            "steps": self.steps,
            "diverged_step": self.diverged_step,
            "wall_clock_s": self.wall_clock_s,
            "flops": self.flops,
            "flops_per_step": self.flops_per_step,
            "n_params": self.n_params,
            "n_evals": len(self.history),
            "compiled": self.compiled,
        }
        out.update(summarize_history(self.history))
        return out


class CheckpointMismatch(ConfigError):
    """A checkpoint's training state that cannot be put back into the run's model, optimizer or
    methods (resume names the file)."""


class RunInterrupted(KeyboardInterrupt):
    """Training stopped on request (SIGINT/SIGTERM); ``checkpointed`` says whether its state was
    saved first (a run with a checkpointer) or not (a batch of runs, a run without one). A
    KeyboardInterrupt, so that a caller's loop over runs (or a test runner) stops too, as it
    would on a Ctrl-C anywhere else."""

    def __init__(self, stage: str, step: int, checkpointed: bool = True) -> None:
        super().__init__(f"interrupted in stage {stage!r} at step {step}")
        self.stage, self.step, self.checkpointed = stage, step, checkpointed
        self.resume_with = "`groktransfer resume DIR`"  # how to continue from the checkpoint (a batch: its command)


@dataclass
class Checkpointer:
    """When and how the trainer saves its state. ``save`` receives the state dict that
    ``train(resume=...)`` accepts; states are taken at step boundaries, before the step's
    evaluation and update."""

    save: Callable[[dict], None]
    every_steps: Optional[int] = None  # checkpoint after this many steps since the last one
    every_seconds: Optional[float] = None  # ... or after this many seconds
    stop_requested: Callable[[], bool] = lambda: False  # checked every step: save, then raise RunInterrupted


def param_lr_scales(model: nn.Module) -> dict[str, float]:
    """Parameters whose learning rate is a multiple of the stage's: those held directly by a
    module with an ``lr_scale`` attribute other than 1 (a FactorizedEmbedding built with
    ``transfer.ab_lr_scale``). AdamW's decoupled decay, lr × wd per step, scales with it."""
    scales = {}
    for prefix, module in model.named_modules():
        scale = getattr(module, "lr_scale", 1.0)
        if scale != 1.0:
            for name, _ in module.named_parameters(recurse=False):
                scales[f"{prefix}.{name}" if prefix else name] = float(scale)
    return scales


def _measure_flops(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor, eval_sets) -> tuple[int, int]:
    """FLOPs of one training step's forward+backward, and of one evaluation: by formula for the
    package's FNNs under its own losses (models.fnn_flops, which counts what FlopCounterMode would
    and spares every command the second its import of torch._dynamo takes), else counted by torch."""
    from .models import fnn_flops

    if loss_fn in CLASS_LOSSES:
        step = fnn_flops(model, x.shape[0], backward=True)
        if step is not None:
            return step, sum(fnn_flops(model, xe.shape[0], backward=False) for xe, _ in eval_sets)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        loss_fn(model(x), y).backward()
    step_flops = counter.get_total_flops()
    model.zero_grad(set_to_none=True)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        for xe, _ in eval_sets:
            model(xe)
    return step_flops, counter.get_total_flops()


# Losses that read integer class labels (a caller's own loss_fn may read anything).
CLASS_LOSSES = (nn.functional.cross_entropy, stablemax_cross_entropy)


def _embedding_rows(model: nn.Module):
    """How many tokens the model's input embedding holds, when it has one that can be found."""
    from .transfer import locate_input_embedding  # transfer imports nothing of training's

    try:
        return int(locate_input_embedding(model).matrix.shape[0])
    except (ConfigError, AttributeError, TypeError, IndexError):
        return None


def check_model_fits_task(model: nn.Module, task, config, class_labels: bool = True) -> None:
    """Refuse arguments that would train nonsense or fail deep inside PyTorch: a config that is
    not a TrainConfig, a task without its four tensors, empty sets or inputs and labels of
    different lengths, a model without trainable parameters, a model whose vocabulary or number
    of outputs does not match the task's (one forward pass on two training inputs), tokens
    outside its embedding, and labels outside its outputs (or not integers, when
    ``class_labels``: the package's losses read class labels)."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"train: config must be a TrainConfig, got {type(config).__name__}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"train: model must be an nn.Module, got {type(model).__name__}")
    for name in ("x_train", "y_train", "x_test", "y_test"):
        if not isinstance(getattr(task, name, None), torch.Tensor):
            raise TypeError(f"train: task must hold tensors x_train, y_train, x_test and y_test "
                            f"(got {type(task).__name__})")
    for split in ("train", "test"):
        x, y = getattr(task, f"x_{split}"), getattr(task, f"y_{split}")
        if x.shape[0] == 0:
            raise ConfigError(f"task: the {split} set is empty")
        if y.shape[0] != x.shape[0]:
            raise ConfigError(f"task: x_{split} holds {x.shape[0]} inputs, y_{split} {y.shape[0]} labels")
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError(f"model: {type(model).__name__} has no trainable parameters")
    # A transformer's own tokens (∘, =) come on top of the operands: compare the operands it reads.
    model_vocab = getattr(model, "operand_vocab", getattr(model, "vocab_size", None))
    task_vocab = getattr(task, "vocab_size", None)
    if isinstance(model_vocab, int) and isinstance(task_vocab, int) and model_vocab != task_vocab:
        raise ConfigError(f"model: its embedding reads {model_vocab} tokens, the task has {task_vocab}")
    if task.x_test.dtype != task.x_train.dtype:
        raise ConfigError(f"task: x_test holds {task.x_test.dtype} values, x_train {task.x_train.dtype}")
    rows = _embedding_rows(model)
    for split in ("train", "test"):
        x = getattr(task, f"x_{split}")
        if rows is not None and not x.is_floating_point() and x.dtype != torch.bool:
            low, high = int(x.min()), int(x.max())
            if low < 0 or high >= rows:
                raise ConfigError(f"task: x_{split} holds token {low if low < 0 else high}; the model's "
                                  f"embedding has {rows} rows (tokens 0 to {rows - 1})")
    x = task.x_train[:2]
    param = next(model.parameters(), None)
    if param is not None:  # the model may not be on the task's device or dtype yet: train() moves it later
        x = x.to(param.device, dtype=param.dtype if x.is_floating_point() else x.dtype)
    try:
        with torch.no_grad():
            out = model(x)
    except (IndexError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"model: cannot read the task's inputs ({first})") from None
    n_classes = getattr(task, "n_classes", None)
    if isinstance(n_classes, int) and out.shape[-1] != n_classes:
        raise ConfigError(f"model: gives {out.shape[-1]} outputs per input, the task has {n_classes} classes")
    classes = out.shape[-1]
    for split in ("train", "test"):
        y = getattr(task, f"y_{split}")
        if y.is_floating_point() or y.dtype == torch.bool:
            if class_labels:
                raise ConfigError(f"task: y_{split} holds {y.dtype} values; the loss reads integer class labels")
            continue  # targets of a loss_fn of the caller's (a regression, ±1 margins): not class labels
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= classes:
            raise ConfigError(f"task: y_{split} holds label {low if low < 0 else high}; "
                              f"the model gives {classes} outputs (labels 0 to {classes - 1})")


def check_history(history) -> None:
    """A list of evaluation rows as history_row makes them; a ValueError says what is not."""
    if not isinstance(history, list):
        raise ValueError("history: not a list of evaluations")
    for row in history:
        if not isinstance(row, dict) or not is_int(row.get("step")) or any(
                isinstance(row.get(k), bool) or not isinstance(row.get(k), (int, float)) for k in HISTORY_KEYS):
            raise ValueError(f"history: an evaluation row is malformed ({str(row)[:80]})")
        diagnostics = row.get("diagnostics", {})
        if not isinstance(diagnostics, dict) or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) for v in diagnostics.values()):
            raise ValueError(f"history: the diagnostics of step {row['step']} are malformed")


def check_train_state(resume, n_train: int) -> None:
    """A checkpoint's training state has the layout train() writes: counters that are integers
    in range, a history of evaluation rows, tensors of the right kind. A ValueError says what is not."""
    if not isinstance(resume, dict):
        raise ValueError(f"the training state is a {type(resume).__name__}, not an object")
    for key in ("step", "next_eval", "hits", "cursor"):
        if not is_int(resume.get(key)) or resume[key] < 0:
            raise ValueError(f"{key}: got {resume.get(key)!r}; expected an integer >= 0")
    if resume["cursor"] > n_train:
        raise ValueError(f"cursor: got {resume['cursor']}; the task has {n_train} training examples")
    elapsed = resume.get("elapsed_s")
    if isinstance(elapsed, bool) or not isinstance(elapsed, (int, float)) or not 0 <= elapsed < float("inf"):
        raise ValueError(f"elapsed_s: got {elapsed!r}")
    check_history(resume.get("history"))
    for key, kind in (("model", dict), ("optimizer", dict), ("hooks", list)):
        if not isinstance(resume.get(key), kind):
            raise ValueError(f"{key}: got a {type(resume.get(key)).__name__}")
    bad_step = resume.get("first_bad_step")
    if not isinstance(bad_step, torch.Tensor) or bad_step.numel() != 1 or bad_step.is_floating_point():
        raise ValueError("first_bad_step: expected one integer")
    resume["first_bad_step"] = bad_step.reshape(()).long()
    generator = resume.get("batch_generator")
    if not isinstance(generator, torch.Tensor) or generator.dtype != torch.uint8:
        raise ValueError("batch_generator: expected the generator's byte state")
    order = resume.get("order")
    if order is not None and (not isinstance(order, torch.Tensor) or order.dim() != 1 or order.is_floating_point()
                              or not torch.equal(order.cpu().sort().values, torch.arange(n_train))):
        raise ValueError("order: expected a permutation of the training examples")
