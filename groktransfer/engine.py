"""The training engine: one loop for one run or many, and the package's one AdamW.

Usage::

    runs = [RunSpec(FNN(47, 47, 8, 32, 1, seed=s), task, TrainConfig(lr=lr), seed=s)
            for s, lr in [(0, 1e-3), (1, 1e-3), (0, 3e-3)]]
    results = train_many(runs)     # one TrainResult per run
    runs[0].model                  # holds run 0's final weights

``train(model, task, config)`` is ``train_many`` of one run, and so is a
pipeline's stage: every run, alone or in a batch, takes the same path from its config to
the update (``docs/layout.md`` draws it).

A run of one trains its model's own parameters in place, through its own ``forward``; that is
what lets it take what only a model of its own allows (a caller's loss and hooks, structural
events such as the A·B merge, checkpoints and exact resume). Several runs are stacked along
a new leading dimension (``torch.func.stack_module_state``) and the model's ``forward`` is
vectorised over it with ``torch.func.vmap`` + ``functional_call``: any ``nn.Module`` whose
forward vmap can trace works unchanged. One backward pass of the summed losses gives every
run its own gradient (the runs share no parameter). Both layouts then run the same methods
(:mod:`groktransfer.methods.batched`, written once over (K, ...) tensors) and the same AdamW
with per-run settings (with Python scalars for one run: torch.optim.AdamW's arithmetic,
bit for bit).

Per run: model initialisation (so init scale and seed), data split (a batch with
different splits stacks them), mini-batch order, AdamW lr / weight decay / betas / eps /
warm-up, each parameter's learning-rate scale (A and B's ``transfer.ab_lr_scale`` follows
the run's weak model), GrokFast α and λ, the Omnigrok norm factor, and the weak matrix that
diagnostics compare A·B to. Shared by the batch (:func:`batch_key` lists them): the
architecture, the data shapes, the step budget, evaluation schedule and stopping rule,
dtype, precision and the structure of the methods (which ones, GrokFast's window,
start step and warm-up).

Per-run stopping: every run is evaluated on the shared schedule; a run that reaches its
target accuracy, diverges, or exhausts the budget copies its final weights back into its
own model and leaves the batch, and the batch is compacted at once, so a finished run
costs nothing afterwards. Compaction copies the survivors' state: O(parameters), far
cheaper than the evaluation it follows.

A batch of runs is equal to its runs trained one at a time up to floating-point rounding
(tests/test_multirun.py compares them step by step). Wall-clock figures of a batched run are
the batch's: ``elapsed_s`` is the time since the batch started, and a run's ``wall_clock_s``
is the time until it left the batch.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .compiling import CompiledStep
from .config import ConfigError, MethodsConfig, TrainConfig, is_int
from .diagnostics import Diagnostics, factorized_embedding_names, stacked_diagnostics
from .entk import EntkTracker
from .methods import build_hooks, loss_function
from .methods.batched import build_batched_hooks, per_run, stacked_norm
from .progress import Progress
from .training import (
    CLASS_LOSSES,
    Checkpointer,
    CheckpointMismatch,
    EvalSchedule,
    LossFn,
    RunInterrupted,
    StopCheck,
    TrainResult,
    accuracy,
    _measure_flops,
    check_model_fits_task,
    check_history,
    check_train_state,
    cpu_flush_denormal,
    epoch_order,
    forward_precision,
    history_row,
    matmul_precision,
    param_lr_scales,
    stopping_rule,
)

SHARED_TRAIN_FIELDS = (
    "max_steps", "batch_size", "eval_dense_until", "eval_schedule", "eval_every", "eval_log_factor",
    "stop_at_test_acc", "stop_patience", "dtype", "diagnostics", "check_finite_every_step", "precision",
    "compile",
)


@dataclass
class RunSpec:
    """One run for :func:`train_many`: what ``train(model, task, train, seed=seed, ...)`` takes."""

    model: nn.Module  # built as the sequential path builds it (same seed = same initial weights)
    task: object  # anything with x_train, y_train, x_test, y_test tensors on one device
    train: TrainConfig
    seed: int = 0  # mini-batch order, as train(seed=...)
    methods: MethodsConfig = field(default_factory=MethodsConfig)
    weak_matrix: Optional[torch.Tensor] = None  # diagnostics: A·B's CKA to this matrix
    stage: str = "train"


def batch_key(spec: RunSpec) -> dict:
    """What runs must share to train in one batch, by name."""
    model = spec.model
    task = spec.task
    gf = spec.methods.grokfast
    return {
        # repr shows the module tree; shapes show the rest of what functional_call relies on.
        "model": (type(model).__qualname__, repr(model),
                  tuple((n, tuple(p.shape), p.requires_grad) for n, p in model.named_parameters()),
                  tuple((n, tuple(b.shape)) for n, b in model.named_buffers())),
        "data": tuple(tuple(t.shape) for t in (task.x_train, task.y_train, task.x_test, task.y_test))
        + (str(task.x_train.device),),
        **{f"train.{name}": getattr(spec.train, name) for name in SHARED_TRAIN_FIELDS},
        "methods.loss": spec.methods.loss,
        "methods.orthograd": spec.methods.orthograd,
        "methods.norm_constraint": spec.methods.norm_constraint is not None,
        "methods.grokfast": None if gf is None else (gf.filter, gf.window if gf.filter == "ma" else None,
                                                     gf.start_step, gf.warmup_steps),
        "diagnostics.weak_matrix": None if spec.weak_matrix is None else tuple(spec.weak_matrix.shape),
    }


def check_batchable(specs: Sequence[RunSpec]) -> None:
    if specs[0].train.entk_probe:
        raise ConfigError("train_many: train.entk_probe (the eNTK diagnostic) is computed one run at a time; "
                          "train it as a run of its own or set entk_probe: 0")
    first = batch_key(specs[0])
    for i, spec in enumerate(specs[1:], start=1):
        key = batch_key(spec)
        for name, value in first.items():
            if key[name] != value:
                raise ConfigError(f"train_many: runs 0 and {i} differ in {name}, which a batch must share")


def _stack_data(tensors: list[torch.Tensor]) -> tuple[torch.Tensor, Optional[int]]:
    """One tensor and its vmap dimension: shared (None) when every run has the same data."""
    first = tensors[0]
    if all(t is first or torch.equal(t, first) for t in tensors[1:]):
        return first, None
    return torch.stack(tensors), 0


class _OnBatch:
    """A batched method bound to the batch's current tensors, so that the loop calls every hook
    the same way (``after_backward(step)``, ``after_step(step)``) whether it edits a model's own
    parameters (a run of one) or the stacked ones."""

    def __init__(self, method, batch: "_Batch") -> None:
        self.method, self.batch = method, batch

    def after_backward(self, step: int) -> None:
        self.method.after_backward(self.batch.params, self.batch.grads, step)

    def after_step(self, step: int) -> None:
        self.method.after_step(self.batch.params, step)


class _Batch:
    """The state of the runs still training (positions map to ``index``) and the one AdamW.

    Two layouts of the same state. A run of one trains its model's own parameters: ``params``
    are (1, ...) views of them, the forward pass is the model's, gradients land in ``p.grad``
    (where a caller's hooks look for them), and structural events (the A·B merge) can edit the
    model. Several runs are stacked copies (``stack_module_state``), trained through ``vmap``.
    The update, the per-run settings and the bookkeeping are the same code for both."""

    def __init__(self, specs: Sequence[RunSpec], device: torch.device, dtype: torch.dtype, direct: bool) -> None:
        self.index = list(range(len(specs)))
        self.direct = direct
        self.model = specs[0].model if direct else None
        if direct:
            self.bind_model()
        else:
            params, buffers = stack_module_state([s.model for s in specs])
            trainable = {n: p.requires_grad for n, p in specs[0].model.named_parameters()}
            self.params = {n: p.detach().clone().requires_grad_(trainable[n]) for n, p in params.items()}
            self.buffers = {n: b.detach().clone() for n, b in buffers.items()}
            self.trainable = [n for n in self.params if trainable[n]]
        self.grads: dict[str, torch.Tensor] = {}
        # AdamW's state, made at a parameter's first update (as torch.optim.AdamW makes it), with
        # its own count of updates: a parameter an event creates starts its bias correction afresh.
        self.exp_avg: dict[str, torch.Tensor] = {}
        self.exp_avg_sq: dict[str, torch.Tensor] = {}
        self.updates: dict[str, int] = {}

        # Per-run settings: host values (a batch of one updates with Python scalars, exactly
        # torch.optim.AdamW's single-tensor arithmetic) and (K,) device tensors for the stacked form.
        coupled = [s.train.weight_decay_style == "coupled" for s in specs]
        self.settings = [
            {"lr": s.train.lr, "weight_decay": 0.0 if c else s.train.weight_decay, "l2": s.train.weight_decay if c else 0.0,
             "beta1": s.train.betas[0], "beta2": s.train.betas[1], "eps": s.train.eps, "warmup": s.train.warmup_steps,
             "lr_scale": param_lr_scales(s.model)}
            for s, c in zip(specs, coupled)]
        self.any_l2 = any(coupled)
        self._per_run_tensors(device)
        # The stacked methods, compacted with the batch (a run of one uses its model's own hooks).
        self.methods = [] if direct else build_batched_hooks(self.params, [s.methods for s in specs], device)
        tasks = [s.task for s in specs]
        self.x_train, self.x_train_dim = _stack_data([t.x_train for t in tasks])
        self.y_train, self.y_train_dim = _stack_data([t.y_train for t in tasks])
        self.x_test, self.x_test_dim = _stack_data([t.x_test for t in tasks])
        self.y_test, self.y_test_dim = _stack_data([t.y_test for t in tasks])
        weak = [s.weak_matrix for s in specs]
        self.weak_matrix = None if weak[0] is None else torch.stack([w.to(device) for w in weak])
        self.first_bad_step = torch.full((len(specs),), -1, dtype=torch.long, device=device)
        self.generators = [torch.Generator().manual_seed(s.seed) for s in specs]
        self.order: Optional[torch.Tensor] = None  # mini-batches: each run's permutation of the training set
        self.cursor = 0

    def _per_run_tensors(self, device: torch.device) -> None:
        for name in ("lr", "weight_decay", "l2", "beta1", "beta2", "eps", "warmup"):
            setattr(self, name, torch.tensor([s[name] for s in self.settings], dtype=torch.float64, device=device))
        # each parameter's learning-rate scale per run: (K,), 1 where a run's model gives none
        scaled = sorted({n for s in self.settings for n in s["lr_scale"]})
        self.lr_scales = {n: torch.tensor([s["lr_scale"].get(n, 1.0) for s in self.settings], dtype=torch.float64,
                                          device=device) for n in scaled}

    def bind_model(self) -> None:
        """(Re)read a run of one's parameters from its model, after it was built or edited."""
        model = self.model
        self.params = {n: p.detach().unsqueeze(0) for n, p in model.named_parameters()}
        self.buffers = {n: b.detach().unsqueeze(0) for n, b in model.named_buffers()}
        self.trainable = [n for n, p in model.named_parameters() if p.requires_grad]

    def apply_event(self, event: Callable[[nn.Module], None], device: torch.device, dtype: torch.dtype) -> None:
        """A structural edit of a run of one's model (the A·B merge). Parameters that survive it
        keep their AdamW state; new ones start fresh."""
        before = dict(self.model.named_parameters())
        event(self.model)
        self.model.to(device=device, dtype=dtype)
        after = dict(self.model.named_parameters())
        survivors = {n for n, p in after.items() if before.get(n) is p}
        for state in (self.exp_avg, self.exp_avg_sq, self.updates):
            for name in [n for n in state if n not in survivors]:
                del state[name]
        self.bind_model()
        self.settings[0]["lr_scale"] = param_lr_scales(self.model)  # an event may add or drop scaled parameters

    def gradients(self) -> dict[str, torch.Tensor]:
        """Each trainable parameter's gradient now, as (K, ...) tensors (absent: no gradient)."""
        if not self.direct:
            return self.grads
        return {n: p.grad.unsqueeze(0) for n, p in self.model.named_parameters()
                if p.requires_grad and p.grad is not None}

    def __len__(self) -> int:
        return len(self.index)

    def select(self, keep: list[int]) -> None:
        """Keep only the runs at these positions (a stacked batch; a run of one simply ends)."""
        device = self.lr.device
        k = torch.tensor(keep, dtype=torch.long, device=device)
        self.index = [self.index[i] for i in keep]
        self.settings = [self.settings[i] for i in keep]
        self.params = {n: p.detach()[k].requires_grad_(p.requires_grad) for n, p in self.params.items()}
        self.buffers = {n: b[k] for n, b in self.buffers.items()}
        self.exp_avg = {n: v[k] for n, v in self.exp_avg.items()}
        self.exp_avg_sq = {n: v[k] for n, v in self.exp_avg_sq.items()}
        self._per_run_tensors(device)
        self.first_bad_step = self.first_bad_step[k]
        for method in self.methods:
            method.select(k)
        for name in ("x_train", "y_train", "x_test", "y_test"):
            if getattr(self, f"{name}_dim") == 0:
                setattr(self, name, getattr(self, name)[k])
        if self.weak_matrix is not None:
            self.weak_matrix = self.weak_matrix[k]
        self.generators = [self.generators[i] for i in keep]
        if self.order is not None:
            self.order = self.order[k]

    def _updated(self, grads: dict[str, torch.Tensor]):
        """(name, parameter, gradient, first moment, second moment, its update count) of each
        trainable parameter with a gradient; a moment is made at a parameter's first update."""
        for name in self.trainable:
            if name not in grads:
                continue
            p = self.params[name]
            if name not in self.exp_avg:
                self.exp_avg[name], self.exp_avg_sq[name] = torch.zeros_like(p), torch.zeros_like(p)
            count = self.updates[name] = self.updates.get(name, 0) + 1
            yield name, p, grads[name], self.exp_avg[name], self.exp_avg_sq[name], count

    @torch.no_grad()
    def adamw_step(self, grads: dict[str, torch.Tensor], step: int) -> None:
        """torch.optim.AdamW's update (single-tensor form) with per-run settings, the package's only
        optimizer; ``step`` counts from 1 and drives the linear warm-up. A run with coupled weight
        decay has its decay in ``l2`` (torch.optim.Adam's: added to the gradient) and 0 in
        ``weight_decay``; a decoupled one the reverse. Parameters without a gradient are skipped."""
        if len(self.settings) == 1:
            return self._adamw_one(grads, step, self.settings[0])
        warm = torch.where(self.warmup > 0, (step / self.warmup.clamp_min(1)).clamp(max=1.0), torch.ones_like(self.lr))
        lr = self.lr * warm
        for name, p, g, m, v, count in self._updated(grads):
            if self.any_l2:
                g = g + p * per_run(self.l2, p)
            lr_p = lr * self.lr_scales[name] if name in self.lr_scales else lr
            bias_correction1 = 1 - self.beta1 ** count
            bias_correction2_sqrt = (1 - self.beta2 ** count).sqrt()
            p.mul_(per_run(1 - lr_p * self.weight_decay, p))
            m.lerp_(g, per_run(1 - self.beta1, m))
            v.mul_(per_run(self.beta2, v)).add_(g * g * per_run(1 - self.beta2, v))
            denom = (v.sqrt() / per_run(bias_correction2_sqrt, v)).add_(per_run(self.eps, v))
            p.sub_(m / denom * per_run(lr_p / bias_correction1, p))

    def _adamw_one(self, grads: dict[str, torch.Tensor], step: int, s: dict) -> None:
        """The same update for one run with Python scalars: torch.optim.AdamW's own operations in
        its order, so a run of one matches it bit for bit (tests/test_training.py)."""
        lr = s["lr"] * step / s["warmup"] if step <= s["warmup"] else s["lr"]
        beta1, beta2 = s["beta1"], s["beta2"]
        for name, p, g, m, v, count in self._updated(grads):
            if s["l2"]:
                g = g.add(p, alpha=s["l2"])
            lr_p = lr * s["lr_scale"].get(name, 1.0)
            p.mul_(1 - lr_p * s["weight_decay"])
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            bias_correction1 = 1 - beta1 ** count
            bias_correction2_sqrt = math.sqrt(1 - beta2 ** count)
            denom = (v.sqrt() / bias_correction2_sqrt).add_(s["eps"])
            p.addcdiv_(m, denom, value=-(lr_p / bias_correction1))

    def optimizer_state(self) -> dict:
        """A run of one's AdamW state, for its checkpoint."""
        return {"exp_avg": {n: t[0] for n, t in self.exp_avg.items()},
                "exp_avg_sq": {n: t[0] for n, t in self.exp_avg_sq.items()},
                "updates": dict(self.updates)}

    def load_optimizer_state(self, state: dict) -> None:
        """Put a checkpoint's AdamW state back (a ValueError says what does not fit)."""
        if "param_groups" in state:  # written by torch.optim.AdamW, before the package kept its own
            state = _from_torch_optimizer(state, self.model)
        if not isinstance(state, dict) or set(state) != {"exp_avg", "exp_avg_sq", "updates"}:
            raise ValueError("optimizer: expected exp_avg, exp_avg_sq and updates")
        names = set(state["updates"])
        if names != set(state["exp_avg"]) or names != set(state["exp_avg_sq"]) or not names <= set(self.trainable):
            raise ValueError(f"optimizer: state for parameters {sorted(names)[:4]} of a model that trains "
                             f"{self.trainable[:4]}")
        for name in names:
            count = state["updates"][name]
            if not is_int(count) or count < 1:
                raise ValueError(f"optimizer updates of {name}: got {count!r}")
            param = self.params[name][0]
            for key in ("exp_avg", "exp_avg_sq"):
                value = state[key][name]
                if not isinstance(value, torch.Tensor) or value.shape != param.shape or not value.is_floating_point():
                    raise ValueError(f"optimizer {key} of {name}: expected a float tensor of shape {list(param.shape)}")
        self.updates = dict(state["updates"])
        for key in ("exp_avg", "exp_avg_sq"):
            setattr(self, key, {n: t.to(self.params[n]).unsqueeze(0).clone() for n, t in state[key].items()})


def _from_torch_optimizer(state: dict, model: nn.Module) -> dict:
    """A torch.optim.AdamW state dict as the package wrote it (one group per learning-rate scale,
    parameters in ``named_parameters`` order) in the engine's layout, so that runs checkpointed
    before the engine kept its own AdamW resume exactly."""
    scales = param_lr_scales(model)
    groups: dict[float, list[str]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault(scales.get(name, 1.0), []).append(name)
    order = [name for names in groups.values() for name in names]
    ids = [i for group in state["param_groups"] for i in group["params"]]
    if len(ids) != len(order):
        raise ValueError(f"optimizer: {len(ids)} parameters for a model that trains {len(order)}")
    out: dict = {"exp_avg": {}, "exp_avg_sq": {}, "updates": {}}
    for i, name in zip(ids, order):
        entry = state["state"].get(i)
        if entry is None:
            continue
        step = entry["step"]
        out["updates"][name] = int(step.item() if isinstance(step, torch.Tensor) else step)
        out["exp_avg"][name], out["exp_avg_sq"][name] = entry["exp_avg"], entry["exp_avg_sq"]
    return out


def train_many(
    specs: Sequence[RunSpec],
    *,
    on_eval: Optional[Callable[[int, dict], None]] = None,
    stop_requested: Callable[[], bool] = lambda: False,
    progress: bool = False,
    on_finish: Optional[Callable[[int, TrainResult], Iterable[int]]] = None,
    stop_check: Optional[StopCheck] = None,
    loss_fn: Optional[LossFn] = None,
    hooks: Sequence = (),
    events: Optional[dict[int, Callable[[nn.Module], None]]] = None,
    diagnostics=None,
    checkpointer: Optional[Checkpointer] = None,
    resume: Optional[dict] = None,
) -> list[TrainResult]:
    """Train every run in ``specs`` together; return one TrainResult per run, in order. This is
    the package's one training loop: :func:`train` is a batch of one.

    ``on_eval(i, row)`` receives run i's history rows as they are made. ``stop_requested``
    is polled every step; when it returns True the loop checkpoints (if it has a
    ``checkpointer``) and raises :class:`~groktransfer.training.RunInterrupted`.
    ``on_finish(i, result)`` is called when run i ends (its model holds its final weights) and
    returns the runs to end now as well, with status ``"stopped"`` at the current evaluation
    (the weak stage stops a population this way once one of its candidates is ready).
    ``stop_check(i, row, load)``, after every evaluation of run i that the stopping rule lets
    pass, may end run i with the status it returns; ``load()`` first copies run i's current
    weights into its model.

    ``checkpointer`` / ``resume`` (see ``train``) work for any batch: a batch's state holds its
    live runs' stacked weights, AdamW moments and method state and each finished run's result
    and final weights, and ``resume`` takes it back only for the same runs (``specs`` built as
    before, in the same order), which then go on bit for bit as if never interrupted.

    A batch of one run also takes what only a model of its own allows: ``loss_fn`` (instead of
    the spec's ``methods.loss``), ``hooks`` (method objects bound to the model, run after the
    spec's methods), ``events`` (step -> a function that edits the model) and ``diagnostics``
    (a callable ``(model, train_logits, train_labels) -> dict``; ``False`` for none; None
    follows ``train.diagnostics``).
    """
    if not specs:
        return []
    one_run_only = {"hooks": bool(hooks), "events": bool(events), "diagnostics": callable(diagnostics)}
    if len(specs) > 1 and any(one_run_only.values()):
        names = ", ".join(name for name, given in one_run_only.items() if given)
        raise ConfigError(f"train_many: {names} act on one model; give them with a single run")
    loss_fn = loss_fn if loss_fn is not None else loss_function(specs[0].methods)
    for spec in specs:
        check_model_fits_task(spec.model, spec.task, spec.train, class_labels=loss_fn in CLASS_LOSSES)
    if len(specs) > 1:
        check_batchable(specs)
    config = specs[0].train
    device = specs[0].task.x_train.device
    with matmul_precision(config.precision, device), cpu_flush_denormal(device):
        return _train_many(specs, device, on_eval, stop_requested, progress, on_finish, stop_check, loss_fn,
                           list(hooks), dict(events or {}), diagnostics, checkpointer, resume)


def _train_many(specs, device, on_eval, stop_requested, progress, on_finish, stop_check, loss_fn, hooks, events,
                diagnostics, checkpointer, resume) -> list[TrainResult]:
    first = specs[0]
    config = first.train
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    for spec in specs:
        spec.model.to(device=device, dtype=dtype)
    bf16 = config.precision == "bf16"
    n_train = first.task.x_train.shape[0]
    full_batch = config.batch_size is None or config.batch_size >= n_train

    # FLOPs are those of one run (every run in a batch does the same work).
    step_flops, eval_flops = _measure_flops(
        first.model, loss_fn,
        first.task.x_train if full_batch else first.task.x_train[: config.batch_size],
        first.task.y_train if full_batch else first.task.y_train[: config.batch_size],
        [(first.task.x_train, first.task.y_train), (first.task.x_test, first.task.y_test)],
    )
    direct = len(specs) == 1
    # Stacked runs call the module tree through functional_call with the batch's weights; a run of
    # one calls its own model (no copy of a caller's possibly large model is made).
    template = None if direct else copy.deepcopy(first.model).to("meta")

    def forward_one(params, buffers, x):
        with forward_precision(config.precision, device):
            logits = functional_call(template, (params, buffers), (x,))
        return logits.float() if bf16 else logits

    def loss_one(params, buffers, x, y):
        return loss_fn(forward_one(params, buffers, x), y)

    def model_loss(xb, yb):
        """A run of one: its own model's forward and loss."""
        with forward_precision(config.precision, device):
            logits = first.model(xb)
        return loss_fn(logits.float() if bf16 else logits, yb)

    # A stacked batch compacted to its last run calls the model's forward on views of the (1, ...)
    # tensors: the same arithmetic without vmap's per-op overhead.
    def only(stacked: dict) -> dict:
        return {name: value[0] for name, value in stacked.items()}

    def per_run_logits(batch, x, x_dim):
        if batch.direct:
            with forward_precision(config.precision, device):
                logits = first.model(x)
            return (logits.float() if bf16 else logits).unsqueeze(0)
        if len(batch) == 1:
            return forward_one(only(batch.params), only(batch.buffers), x[0] if x_dim == 0 else x).unsqueeze(0)
        return vmap(forward_one, in_dims=(0, 0, x_dim))(batch.params, batch.buffers, x)

    def per_run_loss(logits, y):
        if logits.shape[0] == 1:
            return loss_fn(logits[0], y[0]).unsqueeze(0)
        return vmap(loss_fn)(logits, y)

    def all_losses(params, buffers, xb, yb, x_dim, y_dim):
        if next(iter(params.values())).shape[0] == 1:
            return loss_one(only(params), only(buffers), xb[0] if x_dim == 0 else xb,
                            yb[0] if y_dim == 0 else yb).unsqueeze(0)
        return vmap(loss_one, in_dims=(0, 0, x_dim, y_dim))(params, buffers, xb, yb)

    step_losses = CompiledStep(model_loss if direct else all_losses, device, config.compile)
    batch = _Batch(specs, device, dtype, direct)
    if direct:
        hooks = build_hooks(first.model, first.methods) + hooks
        if diagnostics is None and config.diagnostics:
            probe = first.task.x_train[: config.entk_probe] if config.entk_probe else None
            diagnostics = Diagnostics(first.weak_matrix, EntkTracker(probe) if probe is not None else None)
        diagnose = diagnostics if callable(diagnostics) else None
    else:
        hooks = [_OnBatch(method, batch) for method in batch.methods]
        diagnose = None
    embedding_names = factorized_embedding_names(first.model) if config.diagnostics and not direct else None
    schedule = EvalSchedule(config)
    histories: list[list[dict]] = [[] for _ in specs]
    hits = [0] * len(specs)
    results: list[Optional[TrainResult]] = [None] * len(specs)
    next_eval, step, elapsed_before = 0, 0, 0.0
    if resume is not None and direct:
        step, next_eval, hits[0], elapsed_before = _restore(resume, batch, hooks, events, device, dtype, n_train)
        histories[0] = list(resume["history"])
    elif resume is not None:
        step, next_eval, elapsed_before = _restore_batch(resume, batch, specs, hits, histories, results, device, dtype,
                                                         n_train)
    bar = Progress(config.max_steps, first.stage if direct else f"{first.stage} ×{len(specs)}", enabled=progress)
    start = time.perf_counter() - elapsed_before

    def state() -> dict:
        """The whole training state: what ``resume`` takes (a run of one's, or a batch's)."""
        if not direct:
            return _batch_state(batch, specs, step, next_eval, hits, histories, results, time.perf_counter() - start)
        return {
            "step": step, "next_eval": next_eval, "hits": hits[0], "elapsed_s": time.perf_counter() - start,
            "history": histories[0], "model": first.model.state_dict(), "optimizer": batch.optimizer_state(),
            "hooks": [hook.state_dict() for hook in hooks], "first_bad_step": batch.first_bad_step[0],
            "batch_generator": batch.generators[0].get_state(),
            "order": None if batch.order is None else batch.order[0], "cursor": batch.cursor,
        }

    def load(position: int) -> None:
        """Copy the run at ``position`` of the batch into its own model (a run of one trains it in place)."""
        if batch.direct:
            return
        run = batch.index[position]
        with torch.no_grad():
            for name, p in specs[run].model.named_parameters():
                p.copy_(batch.params[name][position])
            for name, b in specs[run].model.named_buffers():
                b.copy_(batch.buffers[name][position])

    def finish(position: int, status: str, diverged_step: Optional[int]) -> None:
        run = batch.index[position]
        load(position)
        history = histories[run]
        results[run] = TrainResult(
            stage=specs[run].stage, status=status, steps=step, diverged_step=diverged_step, history=history,
            wall_clock_s=time.perf_counter() - start,
            flops=float(step_flops * step + eval_flops * len(history)),
            flops_per_step=float(step_flops), n_params=sum(p.numel() for p in specs[run].model.parameters()),
            compiled=step_losses.active,
        )

    last_checkpoint_step, last_checkpoint_time = step, time.perf_counter()
    while len(batch):
        stop_now = stop_requested() or (checkpointer is not None and checkpointer.stop_requested())
        if stop_now:
            if checkpointer is not None:
                checkpointer.save(state())
            raise RunInterrupted(first.stage if direct else f"{first.stage} ×{len(specs)}", step,
                                 checkpointed=checkpointer is not None)
        if checkpointer is not None:
            due_steps = checkpointer.every_steps is not None and step - last_checkpoint_step >= checkpointer.every_steps
            due_time = (checkpointer.every_seconds is not None
                        and time.perf_counter() - last_checkpoint_time >= checkpointer.every_seconds)
            if due_steps or due_time:
                checkpointer.save(state())
                last_checkpoint_step, last_checkpoint_time = step, time.perf_counter()

        if step in events:
            batch.apply_event(events.pop(step), device, dtype)

        if step == next_eval or step == config.max_steps:
            values, names = _evaluate(batch, per_run_logits, per_run_loss, embedding_names,
                                      config.diagnostics and not direct, diagnose)
            elapsed = time.perf_counter() - start
            done: dict[int, tuple[str, Optional[int]]] = {}
            for position, run in enumerate(batch.index):
                row = history_row(step, values[position], elapsed, names)
                histories[run].append(row)
                if on_eval is not None:
                    on_eval(run, row)
                stop, diverged_step, hits[run] = stopping_rule(values[position], hits[run], step, config)
                if stop is None and stop_check is not None:
                    stop = stop_check(run, row, lambda position=position: load(position))
                if stop is not None:
                    done[position] = (stop, diverged_step)
            if direct:
                bar.update(step, train=values[0][1], test=values[0][3])
            else:
                bar.update(step, active=len(batch) - len(done))
            if done:
                for position, (status, diverged_step) in list(done.items()):
                    finish(position, status, diverged_step)
                    stop = on_finish(batch.index[position], results[batch.index[position]]) if on_finish else ()
                    for run in stop:
                        if run in batch.index and batch.index.index(run) not in done:
                            done[batch.index.index(run)] = ("stopped", None)
                            finish(batch.index.index(run), "stopped", None)
                if len(done) == len(batch):
                    break
                batch.select([p for p in range(len(batch)) if p not in done])
            next_eval = schedule.next_after(step)

        if full_batch:
            xb, x_dim, yb, y_dim = batch.x_train, batch.x_train_dim, batch.y_train, batch.y_train_dim
        else:
            xb, yb = _minibatch(batch, config.batch_size, n_train, device)
            x_dim = y_dim = 0
        if direct:
            loss = step_losses(xb[0] if x_dim == 0 else xb, yb[0] if y_dim == 0 else yb)
            first.model.zero_grad(set_to_none=True)
            loss.backward()  # into p.grad, where the model's hooks (and a caller's) edit gradients
            losses = loss.detach().unsqueeze(0)
        else:
            losses = step_losses(batch.params, batch.buffers, xb, yb, x_dim, y_dim)
            trainable = [batch.params[n] for n in batch.trainable]
            batch.grads = dict(zip(batch.trainable, torch.autograd.grad(losses.sum(), trainable)))
            losses = losses.detach()
        for hook in hooks:
            hook.after_backward(step)
        batch.adamw_step(batch.gradients(), step + 1)
        for hook in hooks:
            hook.after_step(step)
        bad_now = ~torch.isfinite(losses)
        batch.first_bad_step = torch.where(bad_now & (batch.first_bad_step < 0), step, batch.first_bad_step)
        step += 1
        if config.check_finite_every_step and bool(bad_now.any()):
            next_eval = step

    bar.close()
    return results  # type: ignore[return-value]


def train(
    model: nn.Module,
    task,
    config: TrainConfig,
    *,
    stage: str = "train",
    seed: int = 0,
    loss_fn: LossFn = nn.functional.cross_entropy,
    events: Optional[dict[int, Callable[[nn.Module], None]]] = None,
    hooks: Sequence = (),
    diagnostics: Optional[Callable[[nn.Module, torch.Tensor, torch.Tensor], dict]] = None,
    checkpointer: Optional[Checkpointer] = None,
    resume: Optional[dict] = None,
    on_eval: Optional[Callable[[dict], None]] = None,
    stop_check: Optional[StopCheck] = None,
    stop_requested: Optional[Callable[[], bool]] = None,
    progress: bool = False,
) -> TrainResult:
    """Train ``model`` on ``task`` (anything with x_train, y_train, x_test, y_test tensors).

    ``hooks`` are method objects (see :mod:`groktransfer.methods`): each one's
    ``after_backward(step)`` runs between ``backward()`` and the optimizer step, and its
    ``after_step(step)`` right after the optimizer step, in list order.
    ``diagnostics(model, train_logits, train_labels)`` returns named device tensors that are
    read back with the evaluation and stored in each history row under ``"diagnostics"``.
    ``checkpointer`` saves the loop's whole state now and then; ``resume`` is such a state,
    from which training continues exactly as if it had never stopped (given the same model
    construction, hooks and events).
    ``config.precision`` "tf32" turns TF32 on for CUDA matmuls for the duration of this call.
    ``stop_check(0, row, load)``, after every evaluation the stopping rule lets pass, may end
    the run with the status it returns (the weak stage stops a candidate whose embedding is
    ready this way; ``load()`` is a no-op here, the model holds the current weights).
    ``stop_requested()`` is polled before every step: when it returns True (SIGINT/SIGTERM) the
    run checkpoints through ``checkpointer`` and raises :class:`RunInterrupted`, or without a
    checkpointer raises it at once.
    """
    spec = RunSpec(model, task, config, seed=seed, stage=stage)
    return train_many(
        [spec], loss_fn=loss_fn, hooks=hooks, events=events, diagnostics=diagnostics or False,
        checkpointer=checkpointer, resume=resume, on_eval=None if on_eval is None else (lambda _, row: on_eval(row)),
        stop_check=stop_check, stop_requested=stop_requested or (lambda: False), progress=progress,
    )[0]


def _restore(resume: dict, batch: _Batch, hooks: Sequence, events: dict, device, dtype, n_train: int):
    """Put a checkpoint's model, AdamW, hook and mini-batch state back into a run of one; the
    loop's counters (step, next evaluation, consecutive hits, seconds so far). Structural events
    before the checkpoint's step (the A·B merge) are replayed first, so that the weights fit the
    model they were saved from."""
    try:
        check_train_state(resume, n_train)
        for event_step in sorted(events):
            if event_step < resume["step"]:
                batch.apply_event(events.pop(event_step), device, dtype)
        batch.model.load_state_dict(resume["model"])
        batch.load_optimizer_state(resume["optimizer"])
        if len(resume["hooks"]) != len(hooks):
            raise ValueError(f"{len(resume['hooks'])} method states for {len(hooks)} methods")
        for hook, hook_state in zip(hooks, resume["hooks"]):
            hook.load_state_dict(hook_state)
        batch.generators[0].set_state(resume["batch_generator"])
    except (KeyError, IndexError, RuntimeError, TypeError, ValueError, AttributeError) as err:
        text = str(err).strip()
        detail = " ".join(text.split()) if text else type(err).__name__
        raise CheckpointMismatch(f"its state does not fit the run's model ({detail[:300]})") from None
    batch.first_bad_step = resume["first_bad_step"].to(device).reshape(1)
    batch.order = None if resume["order"] is None else resume["order"].to(device).unsqueeze(0)
    batch.cursor = resume["cursor"]
    return resume["step"], resume["next_eval"], resume["hits"], resume["elapsed_s"]


BATCH_STATE_KEYS = ("runs", "index", "hits", "histories", "params", "buffers", "optimizer", "methods",
                    "first_bad_step", "generators", "order", "cursor", "finished")


def _batch_state(batch: _Batch, specs, step: int, next_eval: int, hits: list, histories: list, results: list,
                 elapsed: float) -> dict:
    """A stacked batch's whole training state: its live runs' stacked weights, AdamW moments,
    method state, generators and counters, and each finished run's result and final weights."""
    return {
        "step": step, "next_eval": next_eval, "elapsed_s": elapsed, "runs": len(specs), "index": list(batch.index),
        "hits": list(hits), "histories": [list(h) for h in histories],
        "params": {n: p.detach() for n, p in batch.params.items()}, "buffers": dict(batch.buffers),
        "optimizer": {"exp_avg": dict(batch.exp_avg), "exp_avg_sq": dict(batch.exp_avg_sq),
                      "updates": dict(batch.updates)},
        "methods": [method.state_dict() for method in batch.methods],
        "first_bad_step": batch.first_bad_step, "generators": [g.get_state() for g in batch.generators],
        "order": batch.order, "cursor": batch.cursor,
        "finished": [None if r is None else {"status": r.status, "steps": r.steps, "diverged_step": r.diverged_step,
                                             "wall_clock_s": r.wall_clock_s, "flops": r.flops,
                                             "flops_per_step": r.flops_per_step, "n_params": r.n_params,
                                             "compiled": r.compiled, "model": specs[i].model.state_dict()}
                     for i, r in enumerate(results)],
    }


def _restore_batch(resume: dict, batch: _Batch, specs, hits: list, histories: list, results: list, device, dtype,
                   n_train: int) -> tuple[int, int, float]:
    """Put a stacked batch's state (:func:`_batch_state`) back: the same runs at the same positions,
    so that the batch goes on with the very arithmetic it would have done uninterrupted."""
    try:
        missing = [key for key in BATCH_STATE_KEYS if key not in resume]
        if missing:
            raise ValueError(f"not a batch's state (no {', '.join(missing)})")
        if resume["runs"] != len(specs):
            raise ValueError(f"a batch of {resume['runs']} runs, not {len(specs)}")
        live = [int(i) for i in resume["index"]]
        if not live or live != sorted(set(live)) or live[-1] >= len(specs):
            raise ValueError(f"index: got {live!r}")
        if len(live) < len(specs):
            batch.select(live)
        for name in batch.params:
            saved = resume["params"][name].to(device=device, dtype=batch.params[name].dtype)
            if saved.shape != batch.params[name].shape:
                raise ValueError(f"{name}: shape {tuple(saved.shape)}, the batch's is {tuple(batch.params[name].shape)}")
            batch.params[name] = saved.requires_grad_(batch.params[name].requires_grad)
        for name in batch.buffers:
            batch.buffers[name] = resume["buffers"][name].to(device)
        optimizer = resume["optimizer"]
        batch.exp_avg = {n: t.to(device=device, dtype=dtype) for n, t in optimizer["exp_avg"].items()}
        batch.exp_avg_sq = {n: t.to(device=device, dtype=dtype) for n, t in optimizer["exp_avg_sq"].items()}
        batch.updates = {n: int(c) for n, c in optimizer["updates"].items()}
        if len(resume["methods"]) != len(batch.methods):
            raise ValueError(f"{len(resume['methods'])} method states for {len(batch.methods)} methods")
        for method, state in zip(batch.methods, resume["methods"]):
            method.load_state_dict(state, device)
        for generator, state in zip(batch.generators, resume["generators"], strict=True):
            generator.set_state(state)
        batch.first_bad_step = resume["first_bad_step"].to(device).long().reshape(len(live))
        batch.order = None if resume["order"] is None else resume["order"].to(device)
        batch.cursor = int(resume["cursor"])
        if not 0 <= batch.cursor <= n_train:
            raise ValueError(f"cursor: got {batch.cursor}")
        for run in range(len(specs)):
            check_history(resume["histories"][run])
            histories[run] = list(resume["histories"][run])
            hits[run] = int(resume["hits"][run])
            done = resume["finished"][run]
            if done is not None:
                specs[run].model.load_state_dict(done.pop("model"))
                results[run] = TrainResult(stage=specs[run].stage, history=histories[run], **done)
    except (KeyError, IndexError, RuntimeError, TypeError, ValueError, AttributeError) as err:
        text = str(err).strip()
        detail = " ".join(text.split()) if text else type(err).__name__
        raise CheckpointMismatch(f"its state does not fit the batch ({detail[:300]})") from None
    return int(resume["step"]), int(resume["next_eval"]), float(resume["elapsed_s"])


def _minibatch(batch: _Batch, size: int, n_train: int, device: torch.device):
    """Each run's next mini-batch, drawn from its own generator exactly as train() draws it."""
    if batch.order is None or batch.cursor + size > n_train:
        batch.order = torch.stack([epoch_order(n_train, g) for g in batch.generators]).to(device)
        batch.cursor = 0
    idx = batch.order[:, batch.cursor : batch.cursor + size]
    batch.cursor += size
    k = len(batch)
    x = batch.x_train if batch.x_train_dim == 0 else batch.x_train.expand(k, *batch.x_train.shape)
    y = batch.y_train if batch.y_train_dim == 0 else batch.y_train.expand(k, *batch.y_train.shape)
    rows = torch.arange(k, device=device).unsqueeze(1)
    return x[rows, idx], y[rows, idx]


@torch.no_grad()
def _evaluate(batch: _Batch, per_run_logits, per_run_loss, embedding_names, stacked: bool, diagnose):
    """Every active run's evaluation numbers, read back in ONE host sync: (K rows, diagnostic names).
    A run of one takes its diagnostics from ``diagnose(model, train_logits, train_labels)``, a
    stacked batch computes the same ones over its stacked tensors when ``stacked``."""
    train_logits = per_run_logits(batch, batch.x_train, batch.x_train_dim)
    test_logits = per_run_logits(batch, batch.x_test, batch.x_test_dim)
    k = len(batch)
    y_train = batch.y_train if batch.y_train_dim == 0 else batch.y_train.expand(k, *batch.y_train.shape)
    y_test = batch.y_test if batch.y_test_dim == 0 else batch.y_test.expand(k, *batch.y_test.shape)
    columns = [
        per_run_loss(train_logits, y_train),
        accuracy(train_logits, y_train),
        per_run_loss(test_logits, y_test),
        accuracy(test_logits, y_test),
        stacked_norm(batch.params),
        batch.first_bad_step,
    ]
    if diagnose is not None:
        extra = {name: value.reshape(1) for name, value in diagnose(batch.model, train_logits[0], y_train[0]).items()}
    elif stacked:
        extra = stacked_diagnostics(batch.params, train_logits, y_train, embedding_names, batch.weak_matrix)
    else:
        extra = {}
    values = torch.stack([c.double() for c in columns] + [v.double() for v in extra.values()], dim=1).tolist()
    return values, list(extra)


__all__ = ["RunSpec", "batch_key", "check_batchable", "train", "train_many"]
