"""Many runs of one architecture trained as ONE computation.

Usage::

    runs = [RunSpec(FNN(47, 47, 8, 32, 1, seed=s), task, TrainConfig(lr=lr), seed=s)
            for s, lr in [(0, 1e-3), (1, 1e-3), (0, 3e-3)]]
    results = train_many(runs)     # one TrainResult per run, exactly what train() returns
    runs[0].model                  # holds run 0's final weights

How: the K models' parameters are stacked along a new leading dimension
(``torch.func.stack_module_state``) and the model's own ``forward`` is vectorised over that
dimension with ``torch.func.vmap`` + ``functional_call``. Any ``nn.Module`` whose forward
vmap can trace works unchanged; no model is rewritten for batching. One backward pass of
the summed losses gives every run its own gradient (the runs share no parameter), and
AdamW is applied to the stacked tensors with per-run settings held as (K, 1, ...) tensors.

Per run: model initialisation (so init scale and seed), data split (a batch with
different splits stacks them), mini-batch order, AdamW lr / weight decay / betas / eps /
warm-up, GrokFast α and λ, the Omnigrok norm factor, and the weak matrix that
diagnostics compare A·B to. Shared by the batch (:func:`batch_key` lists them): the
architecture, the data shapes, the step budget, evaluation schedule and stopping rule,
dtype, precision and the structure of the methods (which ones, GrokFast's window,
start step and warm-up).

Per-run stopping: every run is evaluated on the shared schedule; a run that reaches its
target accuracy, diverges, or exhausts the budget copies its final weights back into its
own model and leaves the batch, and the batch is compacted at once, so a finished run
costs nothing afterwards. Compaction copies the survivors' state: O(parameters), far
cheaper than the evaluation it follows.

Equality with :func:`groktransfer.training.train`: the same initial weights, data, batch
order, update rule and evaluation schedule; the results differ only by floating-point
rounding (tests/test_multirun.py runs both and compares them step by step).

Not done here (such runs go through ``train()`` one at a time): structural events such
as the A·B merge, and checkpoint/resume within a stage. Wall-clock figures of a batched
run are the batch's: ``elapsed_s`` is the time since the batch started, and a run's
``wall_clock_s`` is the time until it left the batch.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .compiling import CompiledStep
from .config import ConfigError, MethodsConfig, TrainConfig
from .methods import loss_function
from .methods.batched import build_batched_hooks, per_run, stacked_norm
from .progress import Progress
from .training import (
    EvalSchedule,
    StopCheck,
    TrainResult,
    accuracy,
    _measure_flops,
    check_model_fits_task,
    cpu_flush_denormal,
    epoch_order,
    forward_precision,
    history_row,
    matmul_precision,
    param_lr_scales,
    stopping_rule,
)
from .transfer import FactorizedEmbedding

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
        "learning-rate scales": tuple(sorted(param_lr_scales(model).items())),
    }


def check_batchable(specs: Sequence[RunSpec]) -> None:
    if specs[0].train.entk_probe:
        raise ConfigError("train_many: train.entk_probe (the eNTK diagnostic) is computed one run at a time; "
                          "use train() or entk_probe: 0")
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


def _embedding_names(model: nn.Module) -> Optional[tuple[str, str]]:
    """The parameter names of A and B when the model's input embedding is A·B."""
    getter = getattr(model, "get_input_embeddings", None)
    embedding = getter() if getter is not None else None
    if not isinstance(embedding, FactorizedEmbedding):
        return None
    for prefix, module in model.named_modules():
        if module is embedding:
            dot = f"{prefix}." if prefix else ""
            return f"{dot}A", f"{dot}B"
    return None


class _Batch:
    """The stacked state of the runs still training (positions map to ``index``)."""

    def __init__(self, specs: Sequence[RunSpec], device: torch.device, dtype: torch.dtype) -> None:
        self.index = list(range(len(specs)))
        params, buffers = stack_module_state([s.model for s in specs])
        trainable = {n: p.requires_grad for n, p in specs[0].model.named_parameters()}
        self.params = {n: p.detach().clone().requires_grad_(trainable[n]) for n, p in params.items()}
        self.buffers = {n: b.detach().clone() for n, b in buffers.items()}
        self.trainable = [n for n in self.params if trainable[n]]
        self.lr_scale = param_lr_scales(specs[0].model)  # shared by the batch (batch_key)
        self.exp_avg = {n: torch.zeros_like(self.params[n]) for n in self.trainable}
        self.exp_avg_sq = {n: torch.zeros_like(self.params[n]) for n in self.trainable}

        def per_run_values(values) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float64, device=device)

        self.lr = per_run_values([s.train.lr for s in specs])
        coupled = [s.train.weight_decay_style == "coupled" for s in specs]
        self.weight_decay = per_run_values([0.0 if c else s.train.weight_decay for s, c in zip(specs, coupled)])
        self.l2 = per_run_values([s.train.weight_decay if c else 0.0 for s, c in zip(specs, coupled)])
        self.any_l2 = any(coupled)
        self.beta1 = per_run_values([s.train.betas[0] for s in specs])
        self.beta2 = per_run_values([s.train.betas[1] for s in specs])
        self.eps = per_run_values([s.train.eps for s in specs])
        self.warmup = per_run_values([s.train.warmup_steps for s in specs])
        self.hooks = build_batched_hooks(self.params, [s.methods for s in specs], device)
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

    def __len__(self) -> int:
        return len(self.index)

    def select(self, keep: list[int]) -> None:
        """Keep only the runs at these positions."""
        device = self.lr.device
        k = torch.tensor(keep, dtype=torch.long, device=device)
        self.index = [self.index[i] for i in keep]
        self.params = {n: p.detach()[k].requires_grad_(p.requires_grad) for n, p in self.params.items()}
        self.buffers = {n: b[k] for n, b in self.buffers.items()}
        self.exp_avg = {n: v[k] for n, v in self.exp_avg.items()}
        self.exp_avg_sq = {n: v[k] for n, v in self.exp_avg_sq.items()}
        for name in ("lr", "weight_decay", "l2", "beta1", "beta2", "eps", "warmup", "first_bad_step"):
            setattr(self, name, getattr(self, name)[k])
        for hook in self.hooks:
            hook.select(k)
        for name in ("x_train", "y_train", "x_test", "y_test"):
            if getattr(self, f"{name}_dim") == 0:
                setattr(self, name, getattr(self, name)[k])
        if self.weak_matrix is not None:
            self.weak_matrix = self.weak_matrix[k]
        self.generators = [self.generators[i] for i in keep]
        if self.order is not None:
            self.order = self.order[k]

    @torch.no_grad()
    def adamw_step(self, grads: dict[str, torch.Tensor], step: int) -> None:
        """torch.optim.AdamW's update (single-tensor form), with per-run settings; ``step`` counts from 1.
        A run with coupled weight decay has its decay in ``l2`` (torch.optim.Adam's: added to the
        gradient) and 0 in ``weight_decay``; a decoupled one the reverse."""
        warm = torch.where(self.warmup > 0, ((step) / self.warmup.clamp_min(1)).clamp(max=1.0), torch.ones_like(self.lr))
        lr = self.lr * warm
        bias_correction1 = 1 - self.beta1 ** step
        bias_correction2_sqrt = (1 - self.beta2 ** step).sqrt()
        for name in self.trainable:
            p, g = self.params[name], grads[name]
            if self.any_l2:
                g = g + p * per_run(self.l2, p)
            m, v = self.exp_avg[name], self.exp_avg_sq[name]
            lr_p = lr * self.lr_scale.get(name, 1.0)
            p.mul_(per_run(1 - lr_p * self.weight_decay, p))
            m.lerp_(g, per_run(1 - self.beta1, m))
            v.mul_(per_run(self.beta2, v)).add_(g * g * per_run(1 - self.beta2, v))
            denom = (v.sqrt() / per_run(bias_correction2_sqrt, v)).add_(per_run(self.eps, v))
            p.sub_(m / denom * per_run(lr_p / bias_correction1, p))


def train_many(
    specs: Sequence[RunSpec],
    *,
    on_eval: Optional[Callable[[int, dict], None]] = None,
    stop_requested: Callable[[], bool] = lambda: False,
    progress: bool = False,
    on_finish: Optional[Callable[[int, TrainResult], Iterable[int]]] = None,
    stop_check: Optional[StopCheck] = None,
) -> list[TrainResult]:
    """Train every run in ``specs`` together; return one TrainResult per run, in order.

    ``on_eval(i, row)`` receives run i's history rows as they are made. ``stop_requested``
    is polled every step; when it returns True a :class:`KeyboardInterrupt` is raised (a
    batch keeps no checkpoint: its runs must start again). ``on_finish(i, result)`` is
    called when run i ends (its model holds its final weights) and returns the runs to end
    now as well, with status ``"stopped"`` at the current evaluation (the weak stage stops a
    population this way once one of its candidates is ready). ``stop_check(i, row, load)``,
    after every evaluation of run i that the stopping rule lets pass, may end run i with the
    status it returns; ``load()`` first copies run i's current weights into its model.
    """
    if not specs:
        return []
    for spec in specs:
        check_model_fits_task(spec.model, spec.task, spec.train)
    check_batchable(specs)
    first = specs[0]
    config = first.train
    device = first.task.x_train.device
    with matmul_precision(config.precision, device), cpu_flush_denormal(device):
        return _train_many(specs, device, on_eval, stop_requested, progress, on_finish, stop_check)


def _train_many(specs, device, on_eval, stop_requested, progress, on_finish, stop_check) -> list[TrainResult]:
    first = specs[0]
    config = first.train
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    for spec in specs:
        spec.model.to(device=device, dtype=dtype)
    loss_fn = loss_function(first.methods)
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
    n_params = sum(p.numel() for p in first.model.parameters())

    template = copy.deepcopy(first.model).to("meta")  # the module tree only; weights come from the batch

    def forward_one(params, buffers, x):
        with forward_precision(config.precision, device):
            logits = functional_call(template, (params, buffers), (x,))
        return logits.float() if bf16 else logits

    def loss_one(params, buffers, x, y):
        return loss_fn(forward_one(params, buffers, x), y)

    # A batch of one run (a weak stage of one candidate, a batch compacted to its last run)
    # calls the model directly on views of the (1, ...) stacked tensors: the same arithmetic
    # without vmap's per-op overhead, through the same update and evaluation code.
    def only(stacked: dict) -> dict:
        return {name: value[0] for name, value in stacked.items()}

    def per_run_logits(batch, x, x_dim):
        if len(batch) == 1:
            return forward_one(only(batch.params), only(batch.buffers), x[0] if x_dim == 0 else x).unsqueeze(0)
        return vmap(forward_one, in_dims=(0, 0, x_dim))(batch.params, batch.buffers, x)

    def per_run_loss(batch, logits, y, y_dim):
        if logits.shape[0] == 1:
            return loss_fn(logits[0], y[0] if y_dim == 0 else y).unsqueeze(0)
        return vmap(loss_fn, in_dims=(0, y_dim))(logits, y)

    def all_losses(params, buffers, xb, yb, x_dim, y_dim):
        if next(iter(params.values())).shape[0] == 1:
            return loss_one(only(params), only(buffers), xb[0] if x_dim == 0 else xb,
                            yb[0] if y_dim == 0 else yb).unsqueeze(0)
        return vmap(loss_one, in_dims=(0, 0, x_dim, y_dim))(params, buffers, xb, yb)

    step_losses = CompiledStep(all_losses, device, config.compile)
    embedding_names = _embedding_names(first.model) if config.diagnostics else None
    batch = _Batch(specs, device, dtype)
    schedule = EvalSchedule(config)
    histories: list[list[dict]] = [[] for _ in specs]
    hits = [0] * len(specs)
    results: list[Optional[TrainResult]] = [None] * len(specs)
    next_eval, step = 0, 0
    bar = Progress(config.max_steps, f"{first.stage} ×{len(specs)}", enabled=progress)
    start = time.perf_counter()

    def load(position: int) -> None:
        """Copy the run at ``position`` of the batch into its own model."""
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
            flops_per_step=float(step_flops), n_params=n_params, compiled=step_losses.active,
        )

    while len(batch):
        if stop_requested():
            raise KeyboardInterrupt(f"batch of {len(specs)} runs stopped at step {step}")
        if step == next_eval or step == config.max_steps:
            values, names = _evaluate(batch, per_run_logits, per_run_loss, embedding_names, config.diagnostics)
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
            bar.update(step, active=len(batch) - len(done))
            if done:
                for position, (status, diverged_step) in list(done.items()):
                    finish(position, status, diverged_step)
                    stop = on_finish(batch.index[position], results[batch.index[position]]) if on_finish else ()
                    for run in stop:
                        if run in batch.index and batch.index.index(run) not in done:
                            done[batch.index.index(run)] = ("stopped", None)
                            finish(batch.index.index(run), "stopped", None)
                batch.select([p for p in range(len(batch)) if p not in done])
                if not len(batch):
                    break
            next_eval = schedule.next_after(step)

        if full_batch:
            xb, x_dim, yb, y_dim = batch.x_train, batch.x_train_dim, batch.y_train, batch.y_train_dim
        else:
            xb, yb = _minibatch(batch, config.batch_size, n_train, device)
            x_dim = y_dim = 0
        losses = step_losses(batch.params, batch.buffers, xb, yb, x_dim, y_dim)
        trainable = [batch.params[n] for n in batch.trainable]
        grads = dict(zip(batch.trainable, torch.autograd.grad(losses.sum(), trainable)))
        for hook in batch.hooks:
            hook.after_backward(batch.params, grads, step)
        batch.adamw_step(grads, step + 1)
        for hook in batch.hooks:
            hook.after_step(batch.params, step)
        bad_now = ~torch.isfinite(losses.detach())
        batch.first_bad_step = torch.where(bad_now & (batch.first_bad_step < 0), step, batch.first_bad_step)
        step += 1
        if config.check_finite_every_step and bool(bad_now.any()):
            next_eval = step

    bar.close()
    return results  # type: ignore[return-value]


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
def _evaluate(batch: _Batch, per_run_logits, per_run_loss, embedding_names, with_diagnostics: bool):
    """Every active run's evaluation numbers, read back in ONE host sync: (K rows, diagnostic names)."""
    train_logits = per_run_logits(batch, batch.x_train, batch.x_train_dim)
    test_logits = per_run_logits(batch, batch.x_test, batch.x_test_dim)
    k = len(batch)
    y_train = batch.y_train if batch.y_train_dim == 0 else batch.y_train.expand(k, *batch.y_train.shape)
    y_test = batch.y_test if batch.y_test_dim == 0 else batch.y_test.expand(k, *batch.y_test.shape)
    columns = [
        per_run_loss(batch, train_logits, y_train, 0),
        accuracy(train_logits, y_train),
        per_run_loss(batch, test_logits, y_test, 0),
        accuracy(test_logits, y_test),
        stacked_norm(batch.params),
        batch.first_bad_step,
    ]
    extra = _batched_diagnostics(batch, train_logits, y_train, embedding_names) if with_diagnostics else {}
    values = torch.stack([c.double() for c in columns] + [v.double() for v in extra.values()], dim=1).tolist()
    return values, list(extra)


def _batched_diagnostics(batch: _Batch, logits: torch.Tensor, labels: torch.Tensor, embedding_names) -> dict:
    """The diagnostics of groktransfer.diagnostics.Diagnostics, one value per run, same names and order."""
    from .diagnostics import embedding_spectrum, linear_cka

    logits = logits.detach().float()
    shifted = logits - logits.max(dim=-1, keepdim=True).values
    losses = nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(labels.shape)
    out = {
        "softmax_collapse": (shifted.exp().sum(dim=-1) == 1.0).float().mean(dim=-1),
        "zero_loss": (losses == 0).float().mean(dim=-1),
    }
    for name, p in batch.params.items():
        out[f"norm/{name}"] = p.detach().float().flatten(1).norm(dim=1)
    if embedding_names is not None:
        a, b = (batch.params[n].detach() for n in embedding_names)
        product = a @ b
        out.update(embedding_spectrum(product))
        if batch.weak_matrix is not None:
            out["embedding_cka_to_weak"] = linear_cka(product, batch.weak_matrix)
    return out


__all__ = ["RunSpec", "batch_key", "check_batchable", "train_many"]
