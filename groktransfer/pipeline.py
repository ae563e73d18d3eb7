"""GrokTransfer end to end: weak stage -> transfer -> target, and the from-scratch baseline.

Usage::

    config = load_preset("demo")                 # or RunConfig(...) / from_dict(RunConfig, {...})
    summary = run_experiment(config, out="runs/demo")
    summary["stages"]["target"]["time_gap"], summary["stages"]["scratch"]["time_gap"]

Seeds: the weak model is built from ``seed``; the target and the scratch model are both
built from ``seed + 1`` (so they share every weight except the input embedding), and B is
drawn from ``seed + 2``. The data split depends on ``task.data_seed`` only, so every
stage sees the same split.

Everything the user can get wrong (the config, the output directory, the weak embedding
file) is checked before the run directory is created, so bad input writes nothing.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional, Union

import torch
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint
from .config import ConfigError, ReadinessConfig, RunConfig, StageConfig, dump_yaml, load_config_file, run_config_from_dict
from .methods import describe_methods
from .models import build_model, parameter_count
from .plots import plot_run
from .readiness import judge_readiness, weak_report
from .records import (RunDirectory, check_new_run_dir, check_summary_stages, check_writable_out, environment,
                      read_summary, remove_owned)
from .stops import lost_stop
from .tasks import ModularTask, build_task, machine_memory_bytes
from .tracking import Trackers, check_trackers
from .engine import RunSpec, train_many
from .training import Checkpointer, CheckpointMismatch, check_history, resolve_device
from .transfer import load_weak_embedding, merge_factorized_embedding, save_weak_embedding, transfer_embedding
from .weak_stage import WeakOutcome, train_weak_stages

WEAK_EMBEDDING_FILE = "weak_embedding.safetensors"


class WeakModelWarning(UserWarning):
    """The weak model's embedding was transferred although the readiness rule did not accept it."""


class WeakStageError(RuntimeError):
    """No weak candidate was ready (``weak.if_none_ready: stop``): the run stopped after its weak
    stage. ``summary`` is the run's summary (also in the run directory), every candidate included."""

    def __init__(self, message: str, summary: dict) -> None:
        super().__init__(message)
        self.summary = summary


def build_target(config: RunConfig, task: ModularTask, weak_source,
                 ab_lr_scale: Optional[float] = None) -> tuple[nn.Module, Optional[torch.Tensor]]:
    """The target model with E_T = A·B installed; also the initial A that diagnostics compare A·B to
    (None for a random A). ``weak_source`` is the weak model or its embedding matrix, or None for a
    random A; ``ab_lr_scale`` A and B's learning-rate scale (None: ``transfer.ab_lr_scale``)."""
    target = build_model(config.target, task, config.seed + 1)
    if weak_source is None:  # a random A (the paper's control) only needs a shape
        weak_source = torch.zeros(task.vocab_size, config.transfer.random_a_dim)
    installed = transfer_embedding(
        weak_source,
        target,
        b_init=config.transfer.b_init,
        b_scale=config.target.model.init_scale,
        freeze_a=config.transfer.freeze_a,
        random_a=config.transfer.a_init == "random",
        extra_rows=config.transfer.extra_rows,
        seed=config.seed + 2,
        lr_scale=config.transfer.ab_lr_scale if ab_lr_scale is None else ab_lr_scale,
    )
    initial_a = installed.A.detach().clone() if config.transfer.a_init == "weak" else None
    return target, initial_a


def transferred_test_acc(summary: dict, weak_stage: str) -> Optional[float]:
    """The test accuracy of the weak model whose embedding the target starts from: the weak
    stage's transferred candidate, or a weak embedding file's metadata (None when it has none)."""
    if weak_stage == "trained":
        return summary["stages"]["weak"].get("final_test_acc")
    if weak_stage == "file":
        return ((summary.get("weak_file") or {}).get("readiness") or {}).get("test_acc")
    return None


def choose_ab_lr_scale(config: RunConfig, summary: dict, weak_stage: str) -> float:
    """A and B's learning-rate scale for this run's target (``TransferConfig.ab_lr_scale_for``),
    recorded in the summary's ``transfer`` entry with the weak test accuracy it was chosen on."""
    acc = transferred_test_acc(summary, weak_stage) if config.transfer.a_init == "weak" else None
    scale = config.transfer.ab_lr_scale_for(acc)
    summary["transfer"] = {"ab_lr_scale": scale, "weak_test_acc": acc,
                           "weak_finished": None if acc is None else acc >= config.transfer.weak_finished_test_acc}
    return scale


def add_groktransfer_cost(summary: dict, weak_stage: str) -> None:
    """GrokTransfer's whole cost: the weak stage (when one ran) plus the target."""
    stages = summary["stages"]
    weak_summary = stages.get("weak", {})
    summary["groktransfer"] = {
        "weak_stage": weak_stage,
        "wall_clock_s": weak_summary.get("wall_clock_s", 0.0) + stages["target"]["wall_clock_s"],
        "flops": weak_summary.get("flops", 0.0) + stages["target"]["flops"],
    }


def check_weak_file(config: RunConfig, task: ModularTask) -> Optional[torch.Tensor]:
    path = config.transfer.weak_embedding_file
    if path is None:
        return None
    matrix, _ = load_weak_embedding(path)
    # A vector-input model's embedding has a row per input coordinate, a token model's a row per token.
    vector = config.target is not None and config.target.model.vector_input
    rows, what = (task.n_inputs, "input size") if vector else (task.vocab_size, "vocabulary")
    if matrix.shape[0] != rows:
        raise ConfigError(f"transfer.weak_embedding_file: has {matrix.shape[0]} rows but the task's {what} has {rows}")
    return matrix


def judge_weak_file(summary: dict, config: RunConfig, task, log: Callable[[str], None]) -> None:
    """A weak embedding given as a file is judged by the default readiness rule (its test
    accuracy comes from the file's metadata): recorded as ``weak_file``, and a warning when it
    is not ready. Nothing more can be drawn, so the target trains from it either way."""
    matrix, metadata = load_weak_embedding(config.transfer.weak_embedding_file)
    report = weak_report(matrix, task, metadata.get("test_acc"))
    verdict = judge_readiness(ReadinessConfig(), report)
    summary["weak_file"] = {"path": config.transfer.weak_embedding_file, "ready": verdict.ready,
                            "reasons": verdict.reasons, "readiness": report}
    if not verdict.ready:
        message = f"the weak embedding file is not ready by the default rule ({'; '.join(verdict.reasons)})"
        summary["warnings"].append(message)
        warnings.warn(message, WeakModelWarning, stacklevel=3)
        log(f"warning: {message}")


CHECKPOINT_FILE = "checkpoint.safetensors"


@contextmanager
def _stop_on_signals():
    """SIGINT/SIGTERM set a flag that the trainer polls: it checkpoints and stops cleanly. A stop
    whose exception was dropped before (``groktransfer.stops``) sets it from the start."""
    flag = {"stop": lost_stop()}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        flag["stop"] = True

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def stage_bytes(name: str, stage: StageConfig, task) -> float:
    """One run's estimated memory for a stage, from its config alone (no model is built): the
    parameters with their gradient and AdamW moments (and a GrokFast filter's history), times a
    weak population's candidates, and the activations of an evaluation on the larger of the two
    sets, forward and backward. The one estimate behind both the refusal below and a sweep's
    choice of how many runs to batch (``sweep.run_many``)."""
    rows = max(task.x_train.shape[0], task.x_test.shape[0])
    m = stage.model
    params = parameter_count(m, task.vocab_size, task.n_classes, task.n_inputs)
    element = 8 if stage.train.dtype == "float64" else 4
    gf = stage.methods.grokfast
    copies = 4 + (0 if gf is None else (1 if gf.filter == "ema" else gf.window + 1))
    if m.transformer is not None:
        t = m.transformer
        inner = t.n_heads * (t.d_head if t.d_head is not None else max(1, m.embed_dim // t.n_heads))
        n_ctx = 4 if t.input_format == "equation" else task.n_inputs
        per_row = n_ctx * (8 * m.embed_dim + 2 * t.d_mlp + 3 * inner + t.n_heads * n_ctx) + task.n_classes
    else:
        per_row = task.n_inputs * m.embed_dim + m.depth * m.width + task.n_classes
    runs = stage.population if name == "weak" else 1
    return float(runs * (params * copies + 3 * rows * per_row) * element)


def check_fits_in_memory(config: RunConfig, task, device: torch.device) -> None:
    """Refuse a config whose training would not fit in this machine's memory (the GPU's on CUDA),
    estimated by :func:`stage_bytes` before any model is built."""
    if device.type == "cuda":
        have = torch.cuda.get_device_properties(device).total_memory
    else:
        have = machine_memory_bytes()
    if have is None:  # pragma: no cover - the OS does not say
        return
    for name in ("weak", "target", "scratch"):
        stage = getattr(config, name)
        if stage is None:
            continue
        needed = stage_bytes(name, stage, task)
        if needed > have:
            params = parameter_count(stage.model, task.vocab_size, task.n_classes, task.n_inputs)
            runs = stage.population if name == "weak" else 1
            raise ConfigError(f"{name}.model: needs ~{needed / 1e9:.0f} GB to train ({params:,} parameters"
                              f"{f' × {runs} candidates' if runs > 1 else ''}); this {device.type} has "
                              f"{have / 1e9:.0f} GB")


def prepare(config: RunConfig):
    """Everything a run needs that the user can get wrong, checked before anything is written:
    the device, the task, a weak embedding file, fixed encodings, memory. Returns (device, task,
    the weak embedding file's matrix or None)."""
    device = resolve_device(config.device)
    task = build_task(config.task, device=device)
    check_fits_in_memory(config, task, device)
    weak_matrix = check_weak_file(config, task)
    check_encodings(config, task)
    check_trackers(config.trackers or [])
    return device, task, weak_matrix


def check_encodings(config: RunConfig, task) -> None:
    """Build every fixed encoding the stages ask for, so that a missing .npy file or text-model
    package is refused before anything is written (the text model's vectors are cached)."""
    from .encodings import fixed_encoding

    for stage in (config.weak, config.target, config.scratch):
        if stage is not None and stage.model.encoding is not None:
            fixed_encoding(stage.model.encoding, task.vocab_size)


def record_row(run_dir: RunDirectory, trackers: Optional[Trackers], stage: str, row: dict) -> None:
    """What one evaluation writes: a metrics.csv row, a diagnostics.csv row, the trackers' scalars.
    A single run writes each as it comes; a batch writes its runs' rows once the batch ends."""
    run_dir.append_metrics(stage, row)
    if "diagnostics" in row:
        run_dir.append_diagnostics(stage, row["step"], row["diagnostics"])
    if trackers is not None:
        trackers.log(stage, row)


def new_summary(config: RunConfig, task, device: torch.device) -> dict:
    """A run's summary.json before its first stage (one run's and a batch's alike)."""
    summary = environment(device)
    summary.update({"name": config.name, "task": repr(task), "complete": False, "stages": {}, "warnings": []})
    return summary


def later_stages(config: RunConfig, summary: dict, weak_stage: str, weak_source) -> tuple[bool, bool]:
    """(train the target, train scratch) once the weak stage is settled.

    A weak stage with nothing ready ends the run: no target, and no scratch run to compare it
    with. A weak stage with nothing to transfer (diverged) skips the target; scratch still runs.
    """
    go_on = not summary.get("stopped")
    target = go_on and config.target is not None and not (weak_stage == "trained" and weak_source is None)
    return target, go_on and config.scratch is not None


def finish_run(run_dir: Optional[RunDirectory], summary: dict, config: RunConfig, plots: bool) -> None:
    """A run's last records, one run's and a batch's alike: its completed summary, then its plots."""
    complete_summary(summary)
    if run_dir is not None:
        run_dir.write_summary(summary)
        if plots:
            plot_run(run_dir.path, title=config.name)


def complete_summary(summary: dict) -> None:
    """The run is finished: its total wall-clock, and ``complete`` (sweeps reuse such run directories)."""
    summary["total_wall_clock_s"] = sum(stage["wall_clock_s"] for stage in summary["stages"].values())
    summary["complete"] = True


def stage_loop(
    configs: list[RunConfig],
    tasks: list,
    summaries: list[dict],
    weak_files: list[Optional[torch.Tensor]],
    *,
    train_weak: Callable[[list[int]], dict[int, WeakOutcome]],
    train_stage: Callable[[str, list[int], dict[int, nn.Module], Optional[dict[int, Optional[torch.Tensor]]]], None],
    on_weak_outcome: Callable[[int, WeakOutcome], None] = lambda i, outcome: None,
    done: Optional[list[list[str]]] = None,
    weak_from_disk: Callable[[int], torch.Tensor] = lambda i: None,
    log: Callable[[str], None] = lambda message: None,
) -> dict[int, str]:
    """The stages of K runs that share their stage layout, in order: weak (or a weak-embedding
    file), target, scratch. One run (``run_experiment``, K = 1) and a batch (``run_many``) both
    go through it; they differ only in how a stage trains (``train_weak`` for the runs whose
    weak stage is still to do, ``train_stage(stage, runs, models, initial A·B)``) and in what
    they do with a weak outcome (``on_weak_outcome``). ``done``: the stages each run finished
    before an interruption (``weak_from_disk(i)`` then reloads its transferred embedding).

    Returns the runs whose weak stage had nothing ready (their message): they train no later stage.
    """
    everyone = list(range(len(configs)))
    done = done or [[] for _ in everyone]
    first = configs[0]
    not_ready: dict[int, str] = {}
    sources: dict[int, object] = {i: None for i in everyone}
    weak_stage = "none"
    if first.weak is not None:
        weak_stage = "trained"
        todo = [i for i in everyone if "weak" not in done[i]]
        outcomes = train_weak(todo) if todo else {}
        for i in everyone:
            if i in outcomes:
                outcome = outcomes[i]
                record_weak_outcome(summaries[i], outcome, log)
                sources[i] = None if outcome.chosen is None else outcome.chosen.model
                if configs[i].target is not None and summaries[i]["stages"]["weak"]["status"] == "not_ready":
                    not_ready[i] = outcome.message
                    summaries[i]["stopped"] = "no weak candidate was ready"
                on_weak_outcome(i, outcome)
            elif summaries[i]["stages"]["weak"]["population"]["chosen"] is not None:
                sources[i] = weak_from_disk(i)  # finished before an interruption
    elif weak_files[0] is not None:
        weak_stage = "file"
        for i in everyone:
            sources[i] = weak_files[i]
            if "weak_file" not in summaries[i] and configs[i].target is not None:
                judge_weak_file(summaries[i], configs[i], tasks[i], log)

    plans = {i: later_stages(configs[i], summaries[i], weak_stage, sources[i]) for i in everyone}
    members = [i for i in everyone if plans[i][0] and "target" not in done[i]]
    if members:
        built = {i: build_target(configs[i], tasks[i], sources[i], choose_ab_lr_scale(configs[i], summaries[i], weak_stage))
                 for i in members}
        train_stage("target", members, {i: built[i][0] for i in members}, {i: built[i][1] for i in members})
    for i in everyone:
        if plans[i][0]:
            add_groktransfer_cost(summaries[i], weak_stage)
    members = [i for i in everyone if plans[i][1] and "scratch" not in done[i]]
    if members:
        train_stage("scratch", members, {i: build_model(configs[i].scratch, tasks[i], configs[i].seed + 1)
                                         for i in members}, None)
    return not_ready


class RunRecorder:
    """Everything one run writes, in one place: its run directory (config.yaml, the CSVs of its
    evaluations, summary.json), its trackers, its checkpoints, and which stages are done. A run
    without a directory (``out`` None) keeps its summary and writes nothing.

    ``open`` makes a fresh directory or replays a checkpoint's; ``one_run_io`` is what a stage
    trained as one run hands the engine (checkpoints, the state to resume from, its rows);
    ``end_stage`` records a finished stage; ``write_batch_run`` writes a run that trained in a
    batch (``run_many``); ``close`` releases the directory's lock and the trackers.
    """

    def __init__(self, config: RunConfig, run_dir: Optional[RunDirectory], summary: dict, done: list[str],
                 histories: dict[str, list[dict]], resume_state: Optional[dict], log: Callable[[str], None]) -> None:
        self.config, self.run_dir, self.summary, self.log = config, run_dir, summary, log
        self.done = done
        self.histories = histories  # finished stages' evaluations: a checkpoint rewrites the CSVs from them
        self.resume_state = resume_state
        self.trackers: Optional[Trackers] = None

    @classmethod
    def open(cls, config: RunConfig, out, overwrite: bool, resume_state: Optional[dict], task, device,
             log: Callable[[str], None]) -> "RunRecorder":
        if resume_state is not None:
            summary, done, histories = resume_state["summary"], list(resume_state["done"]), resume_state["histories"]
            replay = [(stage, row) for stage in done for row in histories[stage]]
            if resume_state["train"] is not None:
                replay += [(resume_state["stage"], row) for row in resume_state["train"]["history"]]
            run_dir = RunDirectory(out, replay=replay)
        else:
            summary, done, histories = new_summary(config, task, device), [], {}
            run_dir = RunDirectory(out, overwrite) if out is not None else None
            if run_dir is not None:
                run_dir.write_config_yaml(dump_yaml(config))
        recorder = cls(config, run_dir, summary, done, histories, resume_state, log)
        if config.trackers and run_dir is not None:
            recorder._start_trackers()
        return recorder

    def _start_trackers(self) -> None:
        config, resume_state, run_dir = self.config, self.resume_state, self.run_dir
        # After a resume, what a stage logged past its checkpoint (or a stage not finished at all) is dropped.
        purge = {} if resume_state is None else {
            stage: (resume_state["train"]["step"] if stage == resume_state["stage"] and resume_state["train"] else 0)
            for stage in ("weak", "target", "scratch") if stage not in self.done}
        try:
            self.trackers = Trackers(config.trackers, run_dir.path, config.name, config.to_dict(), purge)
        except Exception as err:  # a tracker that cannot start: one line, and a fresh directory removed
            run_dir.close()
            if resume_state is None:  # the files this run wrote so far (the directory itself is kept)
                remove_owned(run_dir.path)
            if isinstance(err, ConfigError):  # already one line naming what is wrong (a damaged tracker file)
                raise
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"trackers: {config.trackers} could not start ({first})") from None

    def row(self, stage: str, row: dict) -> None:
        if self.run_dir is not None:
            record_row(self.run_dir, self.trackers, stage, row)

    def checkpoint(self, stage: Optional[str], train_state: Optional[dict]) -> None:
        # the config travels with the checkpoint, so that resume can tell it belongs to this run
        state = {"version": CHECKPOINT_VERSION, "done": list(self.done), "stage": stage, "train": train_state,
                 "summary": self.summary, "histories": self.histories, "config": self.config.to_dict()}
        self.run_dir.commit()  # the replayed CSVs go in place before the checkpoint that continues them
        save_checkpoint(self.run_dir.path / CHECKPOINT_FILE, state)

    def one_run_io(self, name: str, stop_flag: dict) -> dict:
        """What a stage trained as one run takes besides its spec: its checkpoints, the state it
        resumes from, and where its evaluation rows go (the engine's keyword arguments)."""
        resume = None
        if self.resume_state is not None and self.resume_state["stage"] == name:
            resume = self.resume_state["train"]
            self.log(f"[{name}] resuming at step {resume['step']}")
        if self.run_dir is None:
            return {"resume": resume}
        checkpointer = Checkpointer(
            save=lambda train_state: self.checkpoint(name, train_state),
            every_steps=self.config.checkpoint.every_steps,
            every_seconds=self.config.checkpoint.every_seconds,
            stop_requested=lambda: stop_flag["stop"],
        )
        return {"resume": resume, "checkpointer": checkpointer, "on_eval": lambda _, row: self.row(name, row)}

    def write_batch_run(self, histories: dict[str, list[dict]], outcome: Optional[WeakOutcome], plots: bool) -> None:
        """A run trained in a batch writes everything at once, once the batch has trained (its
        directory was made and locked before): config.yaml, its evaluations (and its trackers,
        started here, when the run has them all), its weak embedding, then summary.json and plots."""
        self.run_dir.write_config_yaml(dump_yaml(self.config))
        if self.config.trackers:
            self._start_trackers()
        for stage, rows in histories.items():
            for row in rows:
                self.row(stage, row)
        if outcome is not None:
            save_weak_outcome(self.run_dir.path, outcome, self.config)
        finish_run(self.run_dir, self.summary, self.config, plots)

    def end_stage(self, name: str, history: list[dict]) -> None:
        self.done.append(name)
        self.histories[name] = history
        if self.run_dir is not None:
            self.run_dir.write_summary(self.summary)
            self.checkpoint(None, None)

    def close(self) -> None:
        if self.trackers is not None:
            self.trackers.close()
        if self.run_dir is not None:
            self.run_dir.close()


def run_experiment(
    config: RunConfig,
    out: Optional[Union[str, Path]] = None,
    *,
    overwrite: bool = False,
    progress: bool = False,
    plots: bool = True,
    log: Callable[[str], None] = lambda message: None,
    resume_state: Optional[dict] = None,
) -> dict:
    """Run every stage ``config`` asks for; write a run directory when ``out`` is given.

    ``plots=False`` skips accuracy.png/loss.png (sweeps draw their own summary plots;
    ``groktransfer plot RUN_DIR`` draws them later from metrics.csv). With a run
    directory, the run is checkpointed (``config.checkpoint``, every stage end, and on
    SIGINT/SIGTERM, which then raise :class:`RunInterrupted`); ``resume_state`` is such a
    checkpoint, used by :func:`resume_experiment`.

    Returns the summary dict (the content of ``summary.json``).
    """
    if out is not None and resume_state is None:
        check_new_run_dir(out, overwrite)
    device, task, weak_matrix = prepare(config)
    if config.trackers and out is None:
        raise ConfigError("trackers: they write into the run directory; give one (out)")
    recorder = RunRecorder.open(config, out, overwrite, resume_state, task, device, log)
    summary = recorder.summary

    def run_stage(name: str, model, stage: StageConfig, stop_flag: dict, events=None, weak_matrix=None) -> None:
        log(f"[{name}] training {sum(p.numel() for p in model.parameters()):,} parameters on {task}")
        spec = RunSpec(model, task, stage.train, seed=config.seed, methods=stage.methods, weak_matrix=weak_matrix,
                       stage=name)
        result = train_many([spec], events=events, stop_requested=lambda: stop_flag["stop"], progress=progress,
                            **recorder.one_run_io(name, stop_flag))[0]
        log(f"[{name}] {result.status} after {result.steps} steps, test accuracy {result.history[-1]['test_acc']:.3f}")
        summary["stages"][name] = dict(result.summary(), methods=describe_methods(stage.methods))
        recorder.end_stage(name, result.history)

    def weak_stage_outcome(stop_flag: dict) -> WeakOutcome:
        """The weak stage. One weak model in one round is checkpointed and resumed like any stage;
        a population, or several rounds, trains as batches that start again from the beginning if
        the run is interrupted."""
        stage = config.weak
        one = stage.population == 1 and stage.max_rounds == 1
        if not one:
            log(f"[weak] a population of {stage.population} weak models per round (at most {stage.max_rounds} "
                f"rounds), trained as one batch on {task}")
        outcome = train_weak_stages([(stage, task, config.seed)], stop_requested=lambda: stop_flag["stop"],
                                    progress=progress, **(recorder.one_run_io("weak", stop_flag) if one else {}))[0]
        if not one:
            for row in outcome.shown.result.history:
                recorder.row("weak", row)
        return outcome

    try:
        with _stop_on_signals() as stop_flag:
            def keep_weak_outcome(i: int, outcome: WeakOutcome) -> None:
                if recorder.run_dir is not None:
                    save_weak_outcome(recorder.run_dir.path, outcome, config)
                recorder.end_stage("weak", outcome.shown.result.history)

            def one_stage(name: str, runs: list[int], models: dict, initial: Optional[dict]) -> None:
                events = {}
                if name == "target" and config.transfer.merge_at_step is not None:
                    events[config.transfer.merge_at_step] = merge_factorized_embedding
                run_stage(name, models[0], getattr(config, name), stop_flag, events,
                          weak_matrix=None if initial is None else initial[0])

            not_ready = stage_loop(
                [config], [task], [summary], [weak_matrix], train_weak=lambda todo: {0: weak_stage_outcome(stop_flag)},
                train_stage=one_stage, on_weak_outcome=keep_weak_outcome, done=[recorder.done], log=log,
                weak_from_disk=lambda i: load_weak_embedding(recorder.run_dir.path / WEAK_EMBEDDING_FILE)[0].to(device),
            ).get(0)
        finish_run(recorder.run_dir, summary, config, plots)  # still under the run directory's lock
    finally:
        recorder.close()

    if not_ready is not None:
        raise WeakStageError(not_ready, summary)
    return summary


def record_weak_outcome(summary: dict, outcome: WeakOutcome, log: Callable[[str], None]) -> None:
    """The weak stage's entry in the summary, and its warning when nothing was ready."""
    summary["stages"]["weak"] = outcome.summary()
    shown = outcome.shown
    verdict = "ready" if outcome.ready else "not ready"
    log(f"[weak] {len(outcome.candidates)} candidate(s) in {outcome.rounds} round(s); "
        f"{'transferring from' if outcome.chosen is not None else 'most accurate:'} candidate {shown.index} "
        f"(seed {shown.seed}, lr {shown.lr:g}): {shown.result.status} after {shown.result.steps} steps, "
        f"test accuracy {shown.test_acc:.3f}, {verdict}")
    if outcome.message is not None:
        summary["warnings"].append(outcome.message)
        if outcome.chosen is not None:  # transferred although not ready: a warning, not an error
            warnings.warn(outcome.message, WeakModelWarning, stacklevel=3)
        log(f"warning: {outcome.message}")


def weak_metadata(outcome: WeakOutcome, config: RunConfig) -> dict:
    """What the weak embedding file says about the candidate it holds."""
    shown = outcome.shown
    return {"step": shown.result.steps, "test_acc": shown.test_acc, "seed": shown.seed, "lr": shown.lr,
            "candidate": shown.index, "chosen": outcome.chosen is not None, "ready": outcome.ready,
            "task": config.task.to_dict(), "model": config.weak.model.to_dict()}


def save_weak_outcome(run_dir: Path, outcome: WeakOutcome, config: RunConfig) -> None:
    """The shown candidate's embedding (the chosen one's, or the most accurate one's) with its metadata."""
    save_weak_embedding(outcome.shown.model, run_dir / WEAK_EMBEDDING_FILE, metadata=weak_metadata(outcome, config))


def resume_experiment(
    run_dir: Union[str, Path],
    *,
    device: Optional[str] = None,
    progress: bool = False,
    plots: bool = True,
    log: Callable[[str], None] = lambda message: None,
) -> dict:
    """Continue an interrupted run from its last checkpoint (a finished run is returned as is).

    On the CPU the resumed run's metrics.csv (but for the elapsed_s column) and final
    weights equal those of a run that was never interrupted. ``device`` overrides the
    config's device for this continuation (e.g. "cpu" after running out of GPU memory).
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise ConfigError(f"resume: {str(run_dir)!r} is not a run directory (no config.yaml)")
    config = run_config_from_dict(load_config_file(config_path))
    if device is not None:
        resolve_device(device)  # refused here, whatever state the run is in, if this machine lacks it
        config = dataclasses.replace(config, device=device)
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        try:
            finished = read_summary(summary_path)
        except ConfigError:  # damaged: the checkpoint decides, and the summary is written again
            finished = {}
        if finished.get("complete"):
            log(f"{run_dir} is already complete")
            return finished
    check_writable_out(run_dir, "resume")  # a folder made read-only since: one line now, not a fault mid-run
    if not (run_dir / CHECKPOINT_FILE).is_file():
        log(f"{run_dir} has no checkpoint yet: starting it again")
        return run_experiment(config, run_dir, overwrite=True, progress=progress, plots=plots, log=log)
    state = load_checkpoint(run_dir / CHECKPOINT_FILE)
    check_checkpoint(state, config, run_dir / CHECKPOINT_FILE)
    try:
        return run_experiment(config, run_dir, progress=progress, plots=plots, log=log, resume_state=state)
    except CheckpointMismatch as err:  # found when the stage's state is put back into its model
        raise ConfigError(f"checkpoint {str(run_dir / CHECKPOINT_FILE)!r}: {err}") from None


CHECKPOINT_VERSION = 1  # the run checkpoint's layout (what checkpoint() in run_experiment writes)


def _what_trains(config: RunConfig) -> dict:
    """A config without the fields that do not change the arithmetic (where it runs, its label,
    trackers, how often it checkpoints): what a checkpoint and its run must agree on."""
    data = config.to_dict()
    for key in ("device", "name", "trackers", "checkpoint"):
        data.pop(key, None)
    return data


def check_checkpoint(state: dict, config: RunConfig, path: Path) -> None:
    """Refuse a checkpoint that this run cannot continue: another format version, stages or a
    step its config does not have, or (checkpoints that carry their config) a config other than
    the run's config.yaml, edited or another run's. One line naming the file."""
    where = f"checkpoint {str(path)!r}"
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        version = state.get("version") if isinstance(state, dict) else None
        raise ConfigError(f"{where}: format version {version!r}; this groktransfer reads {CHECKPOINT_VERSION}")
    stages = {name for name in ("weak", "target", "scratch") if getattr(config, name) is not None}
    stage, done = state.get("stage"), state.get("done")
    if (stage is not None and stage not in stages) or not isinstance(done, list) or not set(done) <= stages:
        raise ConfigError(f"{where}: names stages ({stage!r}, done {done!r}) that this run's config.yaml does not "
                          f"have; it belongs to another run")
    histories, summary = state.get("histories"), state.get("summary")
    try:
        if not isinstance(histories, dict) or not set(done) <= set(histories):
            raise ValueError("histories: one per finished stage expected")
        for name in done:
            check_history(histories[name])
        if not isinstance(summary, dict):
            raise ValueError("summary: not an object")
        check_summary_stages(summary.get("stages"), lambda why: ValueError(why))
    except ValueError as err:
        raise ConfigError(f"{where}: damaged ({err})") from None
    train = state.get("train")
    if stage is not None:
        step = train.get("step") if isinstance(train, dict) else None
        budget = getattr(config, stage).train.max_steps
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= budget:
            raise ConfigError(f"{where}: stage {stage!r} at step {step!r}, outside its budget of {budget} steps")
    saved = state.get("config")
    if saved is not None:  # checkpoints written before it was stored carry none
        try:
            same = _what_trains(run_config_from_dict(saved)) == _what_trains(config)
        except (ConfigError, TypeError, AttributeError):
            same = False
        if not same:
            raise ConfigError(f"{where}: written by another configuration than {str(path.parent / 'config.yaml')!r} "
                              f"(the file was edited, or the checkpoint is another run's); resume needs the two to match")


def _fmt(value, digits: int = 0) -> str:
    if value is None:
        return "never"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_table(summary: dict) -> str:
    """A plain-text table: per method, steps to thresholds, Time Gap and wall-clock."""
    stages = summary["stages"]
    header = ("method", "95% train", "95% test", "99% test", "Time Gap", "final test", "wall-clock s")
    rows = []
    if "weak" in stages:
        s = stages["weak"]
        rows.append(("weak stage", s["train_acc_95_step"], s["test_acc_95_step"], s["test_acc_99_step"],
                     s["time_gap"], s["final_test_acc"], s["wall_clock_s"]))
    if "target" in stages:
        s = stages["target"]
        rows.append(("GrokTransfer (weak + target)", s["train_acc_95_step"], s["test_acc_95_step"],
                     s["test_acc_99_step"], s["time_gap"], s["final_test_acc"], summary["groktransfer"]["wall_clock_s"]))
    if "scratch" in stages:
        s = stages["scratch"]
        label = "from scratch" + (f" ({s['methods']})" if s.get("methods") else "")
        rows.append((label, s["train_acc_95_step"], s["test_acc_95_step"], s["test_acc_99_step"],
                     s["time_gap"], s["final_test_acc"], s["wall_clock_s"]))
    cells = [header] + [
        (r[0], _fmt(r[1]), _fmt(r[2]), _fmt(r[3]), _fmt(r[4]), _fmt(r[5], 3), _fmt(r[6], 1)) for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    population = stages.get("weak", {}).get("population")
    if population is not None:
        n, rounds = len(population["candidates"]), population["rounds"]
        chosen = population["chosen"]
        what = "none transferred" if chosen is None else (
            f"transferred candidate {chosen} ({'ready' if stages['weak']['ready'] else 'NOT ready'})")
        lines.append(f"weak stage: {n} candidate{'s' if n > 1 else ''} in {rounds} round{'s' if rounds > 1 else ''}, "
                     f"{what}; its wall-clock and FLOPs count every candidate")
    return "\n".join(lines)
