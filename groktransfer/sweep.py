"""Many runs of the pipeline at once: what ``compare``, ``tune`` and ``run --seeds`` use.

Usage::

    jobs = [(config_for(seed), Path(f"runs/sweep/seed{seed}")) for seed in range(8)]
    summaries = run_many(jobs, parallel="auto")      # one summary.json dict per job, in order

Each job is a RunConfig and its run directory. A directory that already holds a complete
run of the same config is reused; one with a checkpoint of the same config continues
from it. The rest are grouped: jobs whose configs differ only in per-run settings (seed,
data seed, init scale, AdamW lr / weight decay / betas / eps / warm-up, GrokFast α and λ,
the Omnigrok factor; see :func:`sweep_key`) train together, stage by stage, through the
batched engine (:mod:`groktransfer.engine`): all the weak models as one computation,
then all the targets, then all the scratch models. The run directories are the same
files as a single run writes, plus each stage's ``batch_runs`` in summary.json.

``parallel``: the most runs in one batch, or "auto":

- CPU: batching pays only while a run is too small to keep the cores busy; a stage is
  batched (up to 16 runs) when one training step of it costs at most
  ``CPU_BATCH_MAX_FLOPS`` (measured with benchmarks/multirun.py), otherwise its runs go
  one at a time.
- CUDA: as many runs as fit in half of the free memory (estimated from one run's
  parameters, optimizer and filter state and activations), at most 256.

Stages that train one run at a time, and configs the engine does not batch (an A·B merge
event), go through :func:`groktransfer.pipeline.run_experiment`, with its checkpoints.
A batch that runs out of GPU memory is split in two halves that start again from the
initial weights (recursively, down to single runs).

A batch keeps one checkpoint, ``batch_checkpoint.safetensors`` in its first run's directory:
after its weak stages, after each part of a later stage, every ``checkpoint.every_steps`` /
``every_seconds`` of the first run's config while a stage trains, and on SIGINT/SIGTERM. It
holds every run's summary and evaluations so far, the weak embeddings they transfer and the
engine's state of the part in training. The next invocation on the same runs (``run --seeds
--resume``, ``compare`` and ``tune`` again) takes it back when the batch is the same (the same
run directories, configs and batch sizes) and goes on bit for bit; otherwise the batch starts
again. Weak stages are not checkpointed inside: an interruption there starts them again.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Callable, Optional, Union

import torch
import yaml

from .config import ConfigError, RunConfig, StageConfig, run_config_from_dict
from .executors import ExecutorConfig, Task, executor_config, run_tasks
from .methods import describe_methods, loss_function
from .engine import RunSpec, train_many
from .pipeline import (
    CHECKPOINT_FILE,
    WEAK_EMBEDDING_FILE,
    RunRecorder,
    WeakStageError,
    _stop_on_signals,
    build_model,
    new_summary,
    prepare,
    resume_experiment,
    run_experiment,
    stage_bytes,
    stage_loop,
    weak_metadata,
)
from .checkpoint import load_checkpoint, save_checkpoint
from .records import RunDirectory, read_summary
from .transfer import save_weak_embedding, weak_embedding_matrix
from .tasks import ModularTask, build_task
from .training import Checkpointer, CheckpointMismatch, RunInterrupted, _measure_flops, resolve_device
from .weak_stage import train_weak_stages

CPU_BATCH_MAX_FLOPS = 2e7  # one run's training-step FLOPs below which batching beat one-at-a-time on 2 CPU cores
CPU_MAX_PARALLEL = 16
CUDA_MAX_PARALLEL = 256
STAGES = ("weak", "target", "scratch")
BATCH_CHECKPOINT_FILE = "batch_checkpoint.safetensors"  # in the batch's first run directory
BATCH_CHECKPOINT_VERSION = 1  # its layout

# Settings that may differ between runs of one batch (everything else must be equal).
PER_RUN_PATHS = (
    ("name",), ("seed",), ("task", "data_seed"), ("checkpoint",),
    *[(stage, "model", "init_scale") for stage in STAGES],
    *[(stage, "train", key) for stage in STAGES for key in ("lr", "weight_decay", "weight_decay_style", "betas", "eps",
                                                             "warmup_steps")],
    *[(stage, "methods", "grokfast", key) for stage in STAGES for key in ("alpha", "lamb")],
    # A and B's learning-rate scale is per run in the engine (the rule gives one per weak model)
    ("transfer", "ab_lr_scale"), ("transfer", "ab_lr_scale_unfinished"), ("transfer", "weak_finished_test_acc"),
)


def sweep_key(config: RunConfig) -> str:
    """What a config shares with every config it can be batched with (a canonical string)."""
    data = config.to_dict()
    for path in PER_RUN_PATHS:
        node = data
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node:
            node[path[-1]] = "<per run>"
    for stage in STAGES:
        methods = (data.get(stage) or {}).get("methods")
        if methods is not None and methods.get("norm_constraint") is not None:
            methods["norm_constraint"] = "<per run>"
    transfer = data.get("transfer") or {}
    if transfer.get("weak_embedding_file"):  # each run's A comes from its own file (Fig. 7's checkpoints)
        transfer["weak_embedding_file"] = "<per run>"
    return json.dumps(data, sort_keys=True)


def weak_stage_key(config: RunConfig) -> str:
    """What decides a run's weak stage: its weak settings, task, seed and device (two runs with
    the same key get the same weak stage, whatever their targets)."""
    return json.dumps([config.weak.to_dict() if config.weak is not None else None, config.task.to_dict(),
                       config.seed, config.device], sort_keys=True)


def batchable(config: RunConfig) -> bool:
    """Merge events and the eNTK diagnostic run one at a time."""
    if any(getattr(config, s) is not None and getattr(config, s).train.entk_probe for s in STAGES):
        return False
    return config.transfer.merge_at_step is None or config.target is None


def what_runs(config: RunConfig) -> dict:
    """The parts of a config that change what a run does: ``transfer`` only matters when a target
    trains, so a weak-only or scratch-only run is the same run whatever its transfer settings."""
    data = config.to_dict()
    if config.target is None:
        data.pop("transfer")
    return data


def reusable(config: RunConfig, out: Path) -> Optional[str]:
    """'complete' or 'checkpoint' when ``out`` holds a run of this very config, else None."""
    return _reuse_state(config, out)[0]


def _reuse_state(config: RunConfig, out: Path) -> tuple[Optional[str], Optional[dict]]:
    """reusable's answer, and the run's summary when it is complete (read once, checked)."""
    summary_path, config_path = out / "summary.json", out / "config.yaml"
    if not (summary_path.is_file() or (out / CHECKPOINT_FILE).is_file()) or not config_path.is_file():
        return None, None
    try:
        # Through the config parser, so that a run saved before an option was added (with a
        # default that reproduces the old behaviour) still counts as the same config.
        saved = run_config_from_dict(yaml.safe_load(config_path.read_text()))
        same = what_runs(saved) == what_runs(config)
    except (OSError, ValueError, TypeError, AttributeError, yaml.YAMLError, ConfigError):
        return None, None
    if not same:
        return None, None
    try:
        done = read_summary(summary_path) if summary_path.is_file() else {}
    except ConfigError:  # damaged: the checkpoint (which holds the whole summary) writes it again
        done = {}
    if done.get("complete"):
        return "complete", done
    return ("checkpoint" if (out / CHECKPOINT_FILE).is_file() else None), None


def reused(config: RunConfig, out: Path, *, resume: bool, progress: bool, plots: bool,
           log: Callable[[str], None] = lambda message: None) -> Optional[dict]:
    """The summary of this config's run already in ``out``: read when it is complete, continued
    from its checkpoint when ``resume``; None when it is still to train. The one reuse triage of
    run_many and of its tasks, wherever they run."""
    state, summary = _reuse_state(config, out)
    if state == "checkpoint" and resume:
        log(f"[sweep] {out}: continuing from its checkpoint")
        return resume_experiment(out, progress=progress, plots=plots)
    return summary


def parse_parallel(value: Union[int, str]) -> Union[int, str]:
    if value == "auto":
        return value
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--parallel: got {value!r}; expected a positive integer or auto") from None
    if k < 1:
        raise ConfigError(f"--parallel: got {k}; must be >= 1 (1 = one run at a time)")
    return k


def choose_parallel(
    n_runs: int, device: torch.device, step_flops: float, bytes_per_run: float, free_bytes: Optional[float]
) -> int:
    """How many runs of a stage to batch under ``parallel="auto"`` (see the module docstring)."""
    if device.type == "cuda":
        if free_bytes is None or bytes_per_run <= 0:
            return min(n_runs, CUDA_MAX_PARALLEL)
        return max(1, min(n_runs, CUDA_MAX_PARALLEL, int(0.5 * free_bytes // bytes_per_run)))
    if device.type == "cpu":
        return min(n_runs, CPU_MAX_PARALLEL) if step_flops <= CPU_BATCH_MAX_FLOPS else 1
    return min(n_runs, CPU_MAX_PARALLEL)


def _stage_cost(config: RunConfig, stage: str, task: ModularTask) -> tuple[float, float]:
    """One run of ``stage``: (training-step FLOPs, measured on the built model; estimated bytes
    on the device, the same estimate that refuses a run too large for the machine)."""
    stage_config: StageConfig = getattr(config, stage)
    # The target's A·B embedding is left out of the FLOPs: forming A·B costs little next to the rest.
    model = build_model(stage_config, task, 0)
    batch = stage_config.train.batch_size
    x, y = (task.x_train, task.y_train) if batch is None else (task.x_train[:batch], task.y_train[:batch])
    step_flops, _ = _measure_flops(model, loss_function(stage_config.methods), x, y, [])
    return float(step_flops), stage_bytes(stage, stage_config, task)


def _parallel_per_stage(configs: list[RunConfig], parallel: Union[int, str]) -> dict[str, int]:
    first = configs[0]
    stages = [s for s in STAGES if getattr(first, s) is not None]
    if parallel != "auto":
        return {s: min(int(parallel), len(configs)) for s in stages}
    device = resolve_device(first.device)
    task = build_task(first.task, device=device)
    free = None
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
    out = {}
    for stage in stages:
        flops, nbytes = _stage_cost(first, stage, task)
        out[stage] = choose_parallel(len(configs), device, flops, nbytes, free)
    return out


def run_many(
    jobs: list[tuple[RunConfig, Path]],
    *,
    parallel: Union[int, str] = "auto",
    progress: bool = False,
    plots: bool = False,
    log: Callable[[str], None] = lambda message: None,
    executor: Union[None, str, ExecutorConfig, dict] = None,
) -> list[dict]:
    """Run every job (see the module docstring); return their summaries in order.

    ``executor`` (local, ray, submitit or an :class:`~groktransfer.executors.ExecutorConfig`)
    says where each batch group runs; local, the default, runs them here one after another.
    """
    parallel = parse_parallel(parallel)
    executor = executor_config(executor)
    summaries: list[Optional[dict]] = [None] * len(jobs)
    groups: dict[str, list[int]] = {}
    for i, (config, out) in enumerate(jobs):
        # remote executors continue a checkpoint in the worker (run_task), with the task's other runs
        summaries[i] = reused(config, Path(out), resume=executor.kind == "local", progress=progress, plots=plots,
                              log=log)
        if summaries[i] is None:
            key = sweep_key(config) if batchable(config) else f"single:{i}"
            groups.setdefault(key, []).append(i)

    tasks: list[Task] = []
    members_of: list[list[int]] = []
    for members in groups.values():
        prepare(jobs[members[0]][0])  # a config this machine cannot run is refused before it is measured
        configs = [jobs[i][0] for i in members]
        per_stage = _parallel_per_stage(configs, parallel) if len(members) > 1 else {}
        chunk = max(per_stage.values(), default=1)
        together = chunk > 1
        parts = [members[s : s + chunk] for s in range(0, len(members), chunk)] if together else [[i] for i in members]
        # A Ray task asks for a GPU share from its batch's estimated memory (per run, once per group).
        bytes_per_run = _cuda_bytes_per_run(configs[0]) if executor.kind == "ray" else None
        for part in parts:
            # e.g. "[sweep] 4 runs trained as one batch (weak stages 4 at a time, targets 2 at a time): runs/x/seed0 …"
            sizes = ", ".join(f"{stage} stages {k} at a time" if stage == "weak" else f"{stage} runs {k} at a time"
                              for stage, k in per_stage.items())
            description = (f"[sweep] {len(part)} runs trained as one batch ({sizes}): {jobs[part[0]][1]} …"
                           if together else f"[sweep] {jobs[part[0]][1]}")
            if together and (Path(jobs[part[0]][1]) / BATCH_CHECKPOINT_FILE).is_file():
                description += " (a batch checkpoint is there: the batch goes on from it if it is this batch's)"
            task = Task([(jobs[i][0], Path(jobs[i][1])) for i in part], per_stage if together else {},
                        progress=progress, plots=plots, description=description)
            if bytes_per_run is not None:
                task.uses_cuda = True
                task.memory_bytes = max(b * min(per_stage.get(s, 1), len(part)) for s, b in bytes_per_run.items())
            tasks.append(task)
            members_of.append(part)

    def done(index: int, results: list[dict]) -> None:
        for i, summary in zip(members_of[index], results):
            summaries[i] = summary

    def failed(index: int, reason: str) -> None:
        log(f"{tasks[index].description}: failed ({reason}); its runs are reported as failed")
        for i in members_of[index]:
            summaries[i] = failed_summary(jobs[i][0], reason)

    run_tasks(run_task, tasks, executor, done, failed, log)
    return summaries  # type: ignore[return-value]


def run_task(task: Task) -> list[dict]:
    """One task of run_many, wherever it runs: its runs' summaries, in order, run directories written.

    Runs already complete in their directory are read (a retried task, a task that was reused
    on another machine); a run with a checkpoint continues from it; the others train: as one
    batch when the task is a batch group, else one by one through run_experiment.
    """
    results = [reused(config, Path(out), resume=True, progress=task.progress, plots=task.plots)
               for config, out in task.jobs]
    todo = [i for i, result in enumerate(results) if result is None]
    if task.per_stage and len(todo) > 1:
        together = _run_together([task.jobs[i] for i in todo], task.per_stage, task.progress, task.plots)
        for i, summary in zip(todo, together):
            results[i] = summary
    else:
        for i in todo:
            config, out = task.jobs[i]
            try:
                results[i] = run_experiment(config, out, overwrite=True, progress=task.progress, plots=task.plots)
            except WeakStageError as stopped:  # a sweep records it (the run directory says why) and goes on
                results[i] = stopped.summary
    return results  # type: ignore[return-value]


def failed_summary(config: RunConfig, reason: str) -> dict:
    """What a run whose task kept failing reports: no stage, the reason."""
    return {"name": config.name, "complete": False, "failed": reason, "stages": {}, "warnings": []}


def _cuda_bytes_per_run(config: RunConfig) -> Optional[dict[str, float]]:
    """Each stage's estimated device memory for one run, when the runs train on CUDA; else None."""
    device = resolve_device(config.device)
    if device.type != "cuda":
        return None
    task = build_task(config.task, device=torch.device("cpu"))
    return {s: _stage_cost(config, s, task)[1] for s in STAGES if getattr(config, s) is not None}


def _batch_identity(jobs: list[tuple[RunConfig, Path]], per_stage: dict[str, int]) -> str:
    """What a batch checkpoint must match to be taken back: the run directories, what each run
    does (:func:`what_runs`) and the batch sizes."""
    return json.dumps({"runs": [str(Path(out).resolve()) for _, out in jobs],
                       "configs": [what_runs(config) for config, _ in jobs], "per_stage": per_stage},
                      sort_keys=True, default=list)


def _saved_batch(jobs: list[tuple[RunConfig, Path]], identity: str) -> Optional[dict]:
    """This very batch's checkpoint, when its first run directory holds one; None when there is
    none or it is another batch's (other runs, configs or batch sizes: the batch starts again).
    A damaged one is refused with one line naming it (ConfigError), as a run's checkpoint is."""
    path = Path(jobs[0][1]) / BATCH_CHECKPOINT_FILE
    if not path.is_file():
        return None
    state = load_checkpoint(path)  # unreadable: ConfigError naming the file
    if not isinstance(state, dict) or state.get("identity") != identity:  # another batch's (_batch_identity)
        return None
    k = len(jobs)
    problem = None
    if state.get("version") != BATCH_CHECKPOINT_VERSION:
        problem = f"format version {state.get('version')!r}; this groktransfer reads {BATCH_CHECKPOINT_VERSION}"
    elif state.get("stage") not in STAGES[1:]:
        problem = f"stage {state.get('stage')!r}"
    elif isinstance(state.get("part"), bool) or not isinstance(state.get("part"), int) or state["part"] < 0:
        problem = f"part {state.get('part')!r}"
    elif state.get("train") is not None and not isinstance(state["train"], dict):
        problem = "its training state is not an object"
    else:
        for key, kind in (("weak", (dict, type(None))), ("summaries", dict), ("histories", dict)):
            values = state.get(key)
            if not isinstance(values, list) or len(values) != k or not all(isinstance(v, kind) for v in values):
                problem = f"{key}: expected one entry per run ({k})"
                break
    if problem is not None:
        raise ConfigError(f"batch checkpoint {str(path)!r}: damaged ({problem}); delete it to train the batch again")
    return state


def _run_together(jobs: list[tuple[RunConfig, Path]], per_stage: dict[str, int], progress: bool, plots: bool) -> list[dict]:
    """The pipeline of run_experiment for configs that share a sweep_key, stage by stage."""
    configs = [config for config, _ in jobs]
    prepared = [prepare(c) for c in configs]
    device = prepared[0][0]
    tasks = [task for _, task, _ in prepared]
    weak_files = [matrix for _, _, matrix in prepared]
    identity = _batch_identity(jobs, per_stage)
    saved = _saved_batch(jobs, identity)  # read before the run directories are made afresh below
    if saved is not None:
        summaries, histories = saved["summaries"], saved["histories"]
    else:
        summaries = [new_summary(config, task, device) for config, task in zip(configs, tasks)]
        histories = [{} for _ in configs]
    outcomes: list = [None] * len(configs)  # each run's weak stage (every candidate; the chosen one)
    home = Path(jobs[0][1]) / BATCH_CHECKPOINT_FILE
    # Every run directory is made and locked before the batch trains, and held until its records
    # are written: a second sweep on the same --out is refused instead of training the batch again.
    recorders: list[RunRecorder] = []
    try:
        for (config, out), summary in zip(jobs, summaries):
            recorders.append(RunRecorder(config, RunDirectory(out, overwrite=True), summary, done=[], histories={},
                                         resume_state=None, log=lambda message: None))
            if saved is not None and len(recorders) == 1:
                save_checkpoint(home, saved)  # its directory was just emptied: the checkpoint goes back first
        try:
            weak = _train_together(configs, tasks, weak_files, summaries, histories, outcomes, per_stage, progress,
                                   saved=saved, save=lambda state: save_checkpoint(home, dict(
                                       state, version=BATCH_CHECKPOINT_VERSION, identity=identity)))
        except RunInterrupted as stop:
            stop.resume_with = (f"the same command again (`run --seeds ... --resume`; `compare`, `tune` as they "
                                f"were): the batch's checkpoint is {home}")
            raise
        except CheckpointMismatch as err:  # the engine's state did not fit the batch's models
            raise ConfigError(f"batch checkpoint {str(home)!r}: {err}; delete it to train the batch again") from None
        for recorder, history, outcome, shown in zip(recorders, histories, outcomes, weak):
            if outcome is None and shown is not None:  # a weak stage finished before an interruption
                save_weak_embedding(shown["matrix"], recorder.run_dir.path / WEAK_EMBEDDING_FILE, shown["metadata"])
            recorder.write_batch_run(history, outcome, plots)
        home.unlink(missing_ok=True)  # the batch's own checkpoint, under its lock, once every record is written
    finally:
        for recorder in recorders:
            recorder.close()
    return summaries


def _train_together(configs, tasks, weak_files, summaries, histories, outcomes, per_stage, progress, *,
                    saved: Optional[dict] = None, save: Callable[[dict], None] = lambda state: None) -> list:
    """Train the runs' stages as batches, filling in their summaries, histories and weak outcomes.
    ``saved``: the batch's checkpoint to go on from; ``save`` writes one. Returns each run's shown
    weak embedding and its file's metadata (None without a weak stage) as the checkpoint holds it."""
    weak = list(saved["weak"]) if saved is not None else [None] * len(configs)  # None: no weak stage (yet)
    position = {"stage": saved["stage"], "part": saved["part"]} if saved is not None else {"stage": None, "part": 0}
    resume_train = saved["train"] if saved is not None else None
    first = configs[0]

    def checkpoint(stage: str, part: int, train_state: Optional[dict]) -> None:
        save({"stage": stage, "part": part, "train": train_state, "weak": weak, "summaries": summaries,
              "histories": histories})

    def train_stage(stage: str, members: list[int], models: dict[int, torch.nn.Module], weak_matrices=None) -> None:
        nonlocal resume_train
        if position["stage"] is not None and STAGES.index(stage) < STAGES.index(position["stage"]):
            return  # finished before the interruption: its results are in the checkpoint
        k = per_stage[stage]
        going_on = position["stage"] == stage
        if not going_on:
            checkpoint(stage, 0, None)  # the earlier stages' results, before this one trains
        for start in range(0, len(members), k):
            part = members[start : start + k]
            if going_on and start < position["part"]:
                continue  # trained before the interruption: its results are in the checkpoint
            resume, resume_train = (resume_train if going_on and start == position["part"] else None), None
            specs = []
            for i in part:
                stage_config: StageConfig = getattr(configs[i], stage)
                weak_matrix = None if weak_matrices is None else weak_matrices[i]
                specs.append(RunSpec(models[i], tasks[i], stage_config.train, seed=configs[i].seed,
                                     methods=stage_config.methods, stage=stage,
                                     weak_matrix=weak_matrix if stage_config.train.diagnostics else None))
            with _stop_on_signals() as flag:
                checkpointer = Checkpointer(save=lambda state, start=start: checkpoint(stage, start, state),
                                            every_steps=first.checkpoint.every_steps,
                                            every_seconds=first.checkpoint.every_seconds,
                                            stop_requested=lambda: flag["stop"])
                results = _train_splitting_on_oom(specs, lambda: flag["stop"], progress, checkpointer, resume)
            for i, (result, size) in zip(part, results):
                methods = describe_methods(getattr(configs[i], stage).methods)
                summaries[i]["stages"][stage] = dict(result.summary(), methods=methods, batch_runs=size)
                histories[i][stage] = result.history
            checkpoint(stage, start + k, None)

    weak_batch_runs: dict[int, int] = {}
    shared_with: dict[int, int] = {}

    def train_weak(todo: list[int]) -> dict:
        # Runs whose weak stages are the same (same weak settings, task and seed: tune trials and
        # comparisons that only change the target) share ONE weak stage; each of them is charged
        # its whole cost (summary.json says with how many runs it was shared).
        keys = {i: weak_stage_key(configs[i]) for i in todo}
        first_of: dict[str, int] = {}
        for i in todo:
            first_of.setdefault(keys[i], i)
        sharers = Counter(keys.values())
        unique = list(first_of.values())
        got = {}
        k = per_stage["weak"]
        for start in range(0, len(unique), k):
            part = unique[start : start + k]
            with _stop_on_signals() as flag:
                outcomes = train_weak_stages([(configs[i].weak, tasks[i], configs[i].seed) for i in part],
                                             stop_requested=lambda: flag["stop"], progress=progress)
            for i, outcome in zip(part, outcomes):
                got[i] = outcome
                weak_batch_runs[i] = len(part) * configs[i].weak.population
        for i in todo:
            first = first_of[keys[i]]
            got[i], weak_batch_runs[i] = got[first], weak_batch_runs[first]
            shared_with[i] = sharers[keys[i]]
        return got

    def keep_weak_outcome(i: int, outcome) -> None:
        outcomes[i] = outcome
        summaries[i]["stages"]["weak"]["batch_runs"] = weak_batch_runs[i]
        summaries[i]["stages"]["weak"]["shared_by_runs"] = shared_with[i]
        histories[i]["weak"] = outcome.shown.result.history
        # in its own dtype, so that a target built from it after an interruption is the same bits
        weak[i] = {"matrix": weak_embedding_matrix(outcome.shown.model).to("cpu").clone(),
                   "metadata": weak_metadata(outcome, configs[i])}

    # Only the weak stage is skipped by name; a later stage skips its finished parts (train_stage).
    stage_loop(configs, tasks, summaries, weak_files, train_weak=train_weak, train_stage=train_stage,
               on_weak_outcome=keep_weak_outcome, done=[["weak"] if w is not None else [] for w in weak],
               weak_from_disk=lambda i: weak[i]["matrix"].to(tasks[i].x_train.device))
    return weak


def _train_splitting_on_oom(specs: list[RunSpec], stop_requested, progress: bool,
                            checkpointer: Optional[Checkpointer] = None, resume: Optional[dict] = None) -> list[tuple]:
    """(TrainResult, batch size) per run. A batch that runs out of GPU memory starts again as
    two halves, from the initial weights (saved here: finished runs have written theirs back).
    The halves keep no checkpoint: the batch's checkpoint is for the batch as it was made."""
    initial = [{k: v.detach().clone() for k, v in spec.model.state_dict().items()} for spec in specs]
    try:
        return [(result, len(specs)) for result in train_many(specs, stop_requested=stop_requested, progress=progress,
                                                              checkpointer=checkpointer, resume=resume)]
    except torch.cuda.OutOfMemoryError:
        if len(specs) == 1:
            raise
        for spec, state in zip(specs, initial):
            spec.model.load_state_dict(state)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        half = len(specs) // 2
        return (_train_splitting_on_oom(specs[:half], stop_requested, progress)
                + _train_splitting_on_oom(specs[half:], stop_requested, progress))


__all__ = ["choose_parallel", "failed_summary", "parse_parallel", "run_many", "run_task", "sweep_key"]
