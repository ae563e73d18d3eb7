"""What each ``groktransfer`` command does, once groktransfer.cli has parsed it.

Kept apart from the parser so that ``groktransfer --help``, ``--version`` and a usage error
answer before torch and the training code are imported.
"""


from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Optional

import torch
import yaml

from .compare import load_comparison, load_tuned, method_run_config, parse_methods, run_comparison
from .config import (
    SEED_MAX,
    ConfigError,
    ReadinessConfig,
    TaskConfig,
    apply_overrides,
    from_dict,
    load_config_file,
    run_config_from_dict,
)
from .pipeline import (
    WEAK_EMBEDDING_FILE,
    WeakStageError,
    format_table,
    prepare,
    resume_experiment,
    run_experiment,
)
from .transfer import load_weak_embedding
from .plots import plot_run
from .records import atomic_write_text, check_new_run_dir, claim_dir, locked, remove_owned
from .presets import load_preset, preset_description, preset_names, preset_path
from .executors import ExecutorConfig, executor_config
from .sweep import parse_parallel, run_many
from .reproduce import reproduce, reproduce_all
from .tune import run_tune

EXIT_RUNTIME = 1  # a fault while running (disk full, GPU memory): the last checkpoint is kept
MAX_SEEDS = 10_000  # --seeds N: more runs than any sweep here could train


def executor_from(args: argparse.Namespace) -> ExecutorConfig:
    return executor_config(args.executor, ray_address=args.ray_address, num_cpus=args.num_cpus,
                           cpus_per_task=args.cpus_per_task, gpus_per_task=args.gpus_per_task, retries=args.retries,
                           slurm_partition=args.slurm_partition, slurm_time_min=args.slurm_time,
                           submitit_folder=args.submitit_folder)


def _parse_seeds(text: str) -> list[int]:
    try:
        if "," in text:
            seeds = [int(part) for part in text.split(",") if part.strip()]
        else:
            count = int(text)
            seeds = list(range(count)) if count <= MAX_SEEDS else None
    except ValueError:
        raise ConfigError(f"--seeds: got {text!r}; expected N or a comma-separated list of integers") from None
    if seeds is None:
        raise ConfigError(f"--seeds: got {text!r}; at most {MAX_SEEDS} seeds")
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: got {text!r}; expected at least one distinct non-negative seed")
    if max(seeds) > SEED_MAX:
        raise ConfigError(f"--seeds: got {text!r}; every seed must be in [0, {SEED_MAX}]")
    return seeds


def _sweep(args: argparse.Namespace, executor: ExecutorConfig) -> int:
    overrides = list(args.overrides) + ([f"task.op={args.task}"] if args.task else [])
    spec = load_comparison(args.spec, overrides)
    methods = parse_methods(args.methods)
    seeds = _parse_seeds(args.seeds)
    parallel = parse_parallel(args.parallel)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r}: exists and is not a directory")
    progress = not args.no_progress
    if args.command == "compare":
        tuned = load_tuned(args.tuned) if args.tuned else None
        for method in methods:  # validate every run before training any
            method_run_config(spec, method, seeds[0], (tuned or spec.hyperparameters).get(method, {}))
        record = run_comparison(spec, methods, seeds, out, tuned=tuned, parallel=parallel, progress=progress,
                                log=print, executor=executor)
        print(f"\n{record['table']}\n\nwritten: {out / 'compare.json'}, {out / 'test_accuracy.png'}, {out / 'time_to_99.png'}")
    else:
        record = run_tune(spec, methods, seeds, out, grid=args.grid, configs=args.configs, metric=args.metric,
                          with_defaults=args.with_defaults, parallel=parallel, progress=progress, log=print,
                          search=args.search, trials_at_once=args.trials_at_once, executor=executor)
        print(f"\nconfigurations per method: {record['configs_per_method']}")
        print(f"written: {out / 'best.yaml'} (use with compare --tuned), {out / 'trials.csv'}")
    return 0


def _run_seeds(config, out: Path, args: argparse.Namespace, executor: ExecutorConfig) -> int:
    """``run --seeds``: the same config on several seeds, batched where faster; one table line per seed."""
    seeds = _parse_seeds(args.seeds)
    parallel = parse_parallel(args.parallel)
    prepare(config)  # what this machine cannot run is refused before anything is written (or replaced)
    if not args.resume:
        check_new_run_dir(out, args.overwrite)
        if args.overwrite:
            remove_owned(out)
        claim_dir(out)
    configs = [dataclasses.replace(config, seed=s, task=dataclasses.replace(config.task, data_seed=s)) for s in seeds]
    jobs = [(c, out / f"seed{s}") for c, s in zip(configs, seeds)]
    summaries = run_many(jobs, parallel=parallel, progress=not args.no_progress, plots=True, log=print,
                         executor=executor)
    header = ("seed", "stage", "95% train", "95% test", "99% test", "Time Gap", "final test", "wall-clock s")
    rows = [header]
    for seed, summary in zip(seeds, summaries):
        for stage, numbers in summary["stages"].items():
            rows.append((str(seed), stage, *(str(numbers[k]) if numbers[k] is not None else "never" for k in
                         ("train_acc_95_step", "test_acc_95_step", "test_acc_99_step", "time_gap")),
                         f"{numbers['final_test_acc']:.3f}", f"{numbers['wall_clock_s']:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    table = "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])
    atomic_write_text(out / "seeds.md", table + "\n")
    print(f"\n{table}\n\nrun directories: {out}/seed<S>; table: {out / 'seeds.md'}")
    stopped = [(seed, summary) for seed, summary in zip(seeds, summaries) if summary.get("stopped")]
    for seed, summary in stopped:
        print(f"seed {seed}: {summary['warnings'][-1]}", file=sys.stderr)
    return EXIT_RUNTIME if stopped else 0


def _find_run(path: Path, needs: str, command: str) -> Path:
    """The run directory a command was pointed at: ``path`` itself, or the run inside a
    reproduction's folder (``path/run``); otherwise a one-line error that says where runs are."""
    if (path / needs).is_file():
        return path
    if (path / "run" / needs).is_file():
        print(f"{command}: using the reproduction's run directory {path / 'run'}")
        return path / "run"
    batch = _interrupted_batch_of(path) if command == "resume" else None
    if batch is not None:
        raise ConfigError(f"resume: {str(path)!r} is a run of an interrupted batch, whose checkpoint is {str(batch)!r}; "
                          "continue it with the command that started it (`run --seeds ... --resume`; `compare`, "
                          "`tune` as they were)")
    inside = sorted(p.parent for p in path.glob(f"*/{needs}")) if path.is_dir() else []
    hint = f"; runs inside it: {', '.join(str(p) for p in inside[:3])}{' ...' if len(inside) > 3 else ''}" if inside else ""
    raise ConfigError(f"{command}: {str(path)!r} is not a run directory (no {needs}){hint}")


def _interrupted_batch_of(path: Path) -> Optional[Path]:
    """The batch checkpoint (sweep.BATCH_CHECKPOINT_FILE, kept in a batch's first run directory)
    whose batch holds ``path`` as one of its runs, looked for in ``path`` and its siblings; None
    when there is none. Only reads: a damaged or foreign checkpoint is simply not this run's."""
    from .checkpoint import checkpoint_layout
    from .sweep import BATCH_CHECKPOINT_FILE

    if not path.is_dir():
        return None
    me = str(path.resolve())
    for candidate in sorted(path.resolve().parent.glob(f"*/{BATCH_CHECKPOINT_FILE}")):
        try:
            runs = json.loads(checkpoint_layout(candidate)["identity"])["runs"]  # the header only, not the weights
        except (ConfigError, KeyError, TypeError, ValueError):
            continue
        if isinstance(runs, list) and me in runs:
            return candidate
    return None


def _inspect_weak(source: Path, as_json: bool) -> int:
    """``inspect-weak``: the readiness verdict of a run's weak embedding (and of each of its
    candidates), or of a weak embedding file judged by the default rule."""
    import json

    from .readiness import format_report, judge_readiness, weak_report

    run_dir = _find_run(source, WEAK_EMBEDDING_FILE, "inspect-weak") if source.is_dir() else None
    path = run_dir / WEAK_EMBEDDING_FILE if run_dir is not None else source
    matrix, metadata = load_weak_embedding(path)
    rule, task = ReadinessConfig(), None
    if run_dir is not None and (run_dir / "config.yaml").is_file():
        config = run_config_from_dict(load_config_file(run_dir / "config.yaml"))
        task = config.task
        if config.weak is not None:
            rule = config.weak.readiness
    elif isinstance(metadata.get("task"), dict):
        task = from_dict(TaskConfig, metadata["task"], prefix="task.")
    report = weak_report(matrix, task, metadata.get("test_acc"))
    verdict = judge_readiness(rule, report)
    candidates = []
    if run_dir is not None and (run_dir / "summary.json").is_file():
        try:
            summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
            weak = summary.get("stages", {}).get("weak", {}) or {}
            candidates = list((weak.get("population") or {}).get("candidates", []))
        except (OSError, UnicodeDecodeError, ValueError, AttributeError, TypeError):
            raise ConfigError(f"inspect-weak: {str(run_dir / 'summary.json')!r} is damaged (not the JSON this "
                              f"package writes); the embedding's verdict alone: inspect-weak "
                              f"{run_dir / WEAK_EMBEDDING_FILE}") from None
    if as_json:
        print(json.dumps({"source": str(source), "ready": verdict.ready, "reasons": verdict.reasons,
                          "rule": rule.to_dict(), "report": report, "metadata": metadata, "candidates": candidates},
                         indent=2))
        return 0
    print(f"{path}: candidate {metadata.get('candidate', 0)}, seed {metadata.get('seed', '?')}, "
          f"step {metadata.get('step', '?')}")
    print(format_report(report, verdict))
    print("rule: " + ", ".join(f"{k} {v}" for k, v in rule.to_dict().items() if v is not None))
    if candidates:
        print(f"\ncandidates ({len(candidates)}):")
        print("  index  seed       lr      status           steps  test acc  verdict")
        for c in candidates:
            verdict_text = "stopped (another was ready)" if c["ready"] is None else (
                "ready" if c["ready"] else "not ready: " + "; ".join(c["reasons"]))
            print(f"  {c['index']:5d}  {c['seed']:5d}  {c['lr']:7.4g}  {c['status']:15s}  {c['steps']:5d}  "
                  f"{c['final_test_acc']:8.3f}  {verdict_text}")
    return 0


def _print_result(summary: dict, out: Path) -> None:
    print()
    print(format_table(summary))
    for message in summary.get("warnings", []):
        print(f"warning: {message}")
    print(f"\nrun directory: {out}")
    print(f"plot: {out / 'accuracy.png'}")


def _config_for_run(args: argparse.Namespace):
    files = [item for item in args.items if "=" not in item]
    overrides = [item for item in args.items if "=" in item]
    if len(files) > 1:
        raise ConfigError(f"run: at most one config file, got {', '.join(files)}")
    if files and args.preset:
        raise ConfigError("run: give a config file or --preset, not both")
    if not files and not args.preset:
        raise ConfigError("run: give a config file or --preset NAME")
    data = load_config_file(files[0]) if files else load_config_file(preset_path(args.preset))
    return with_trackers(run_config_from_dict(apply_overrides(data, overrides)), args.log)


def with_trackers(config, text: Optional[str]):
    """``--log a,b``: the config's trackers field (validated like any other field)."""
    if text is None:
        return config
    names = [name.strip() for name in text.split(",") if name.strip()]
    try:
        return dataclasses.replace(config, trackers=names or None)
    except ConfigError as err:
        raise ConfigError(f"--log: {err}") from None


def _start_run(config, out: Path, *, overwrite: bool, progress: bool, resume: bool = False) -> dict:
    """Run (or resume) ``config`` in ``out``. If the GPU runs out of memory under device
    'auto', continue on the CPU from the last checkpoint; an explicit device is the user's
    choice, so that case is reported instead. A run whose weak stage found nothing ready
    prints its table before the error."""
    try:
        return _start_run_on_some_device(config, out, overwrite=overwrite, progress=progress, resume=resume)
    except WeakStageError as stopped:
        print()
        print(format_table(stopped.summary))
        print(f"\nrun directory: {out} (see `groktransfer inspect-weak {out}`)")
        raise


def _start_run_on_some_device(config, out: Path, *, overwrite: bool, progress: bool, resume: bool) -> dict:
    try:
        if resume:
            return resume_experiment(out, progress=progress, log=print)
        return run_experiment(config, out, overwrite=overwrite, progress=progress, log=print)
    except torch.cuda.OutOfMemoryError:
        if config.device != "auto" or not (out / "config.yaml").is_file():
            raise
        print("groktransfer: out of GPU memory; continuing on the CPU from the last checkpoint", file=sys.stderr)
        return resume_experiment(out, device="cpu", progress=progress, log=print)


def _print_presets(name: Optional[str], width: int = 100) -> None:
    """``presets``: one line per preset (its description cut to the line); ``presets NAME``: the
    whole description as comment lines, then the preset as YAML with only the task fields its
    kind reads (a run directory's config.yaml keeps every field)."""
    if name:
        config = load_preset(name)
        print("\n".join(textwrap.wrap(preset_description(name), width - 2, initial_indent="# ",
                                       subsequent_indent="# ")))
        data = config.to_dict()
        data["task"] = {key: data["task"][key] for key in config.task.fields_in_use()}
        print(yaml.safe_dump(data, sort_keys=False), end="")
        return
    names = preset_names()
    column = max(len(n) for n in names) + 2
    for preset in names:
        print(f"{preset:{column}s}{textwrap.shorten(preset_description(preset), width - column, placeholder=' …')}")
    print("\n`groktransfer presets NAME` prints one in full.")


# One handler per command: handler(args, executor) -> exit code. ``executor`` is where sweeps run
# (--executor; local when the command has no such option).

def _demo(args: argparse.Namespace, executor: ExecutorConfig) -> int:
    out = Path(args.out) if args.out else Path("runs") / f"demo-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    config = with_trackers(load_preset("demo"), args.log)
    print(f"groktransfer demo: {preset_description('demo')}\n")
    summary = _start_run(config, out, overwrite=args.overwrite, progress=not args.no_progress)
    _print_result(summary, out)
    return 0


def _run(args: argparse.Namespace, executor: ExecutorConfig) -> int:
    config = _config_for_run(args)
    out = Path(args.out)
    if args.seeds is not None:
        return _run_seeds(config, out, args, executor)
    if executor.kind != "local":
        raise ConfigError(f"--executor {executor.kind}: only with --seeds (a single run trains in this process)")
    resume = args.resume and (out / "config.yaml").is_file()
    if resume and load_config_file(out / "config.yaml") != config.to_dict():
        raise ConfigError(f"--resume: the config differs from the one in {str(out)!r}; "
                          f"use `groktransfer resume {out}` to continue that run")
    summary = _start_run(config, out, overwrite=args.overwrite, progress=not args.no_progress, resume=resume)
    _print_result(summary, out)
    return 0


def _resume(args: argparse.Namespace, executor: ExecutorConfig) -> int:
    out = _find_run(Path(args.run_dir), "config.yaml", "resume")
    summary = resume_experiment(out, device=args.device, progress=not args.no_progress, log=print)
    _print_result(summary, out)
    return 0


def _plot(args: argparse.Namespace, executor: ExecutorConfig) -> int:
    run_dir = _find_run(Path(args.run_dir), "metrics.csv", "plot")
    with locked(run_dir):  # a run still writing there is left alone
        paths = plot_run(run_dir)
    for path in paths:
        print(path)
    return 0


def _reproduce(args: argparse.Namespace, executor: ExecutorConfig) -> int:
    out = Path(args.out) if args.out else Path("runs") / f"reproduce-{args.name}{'-quick' if args.quick else ''}"
    command = "groktransfer " + " ".join(args.argv)
    if args.name == "all":
        if args.overrides:
            raise ConfigError("reproduce all: takes no key=value overrides (each reproduction has its own)")
        reproduce_all(out, quick=args.quick, overwrite=args.overwrite, progress=not args.no_progress,
                      command=command, log=print, parallel=parse_parallel(args.parallel), executor=executor)
        print(f"\n{(out / 'all.md').read_text()}\nwritten: {out / 'all.md'}, {out / 'all.json'}, {out}/NAME/")
        return 0
    record = reproduce(args.name, out, quick=args.quick, overrides=args.overrides, overwrite=args.overwrite,
                       progress=not args.no_progress, command=command, log=print,
                       parallel=parse_parallel(args.parallel), executor=executor)
    details = out / ("run" if record["preset"] else "summary.json")
    if record["preset"]:
        print(f"\n{record['run_table']}")
    print(f"\n{(out / 'table.md').read_text()}")
    print(f"claim: {record['claim']}\ncriterion: {record['criterion']}\nholds: {str(record['holds']).lower()}")
    print(f"\nwritten: {out / 'claim.json'}, {out / 'table.md'}, {details}")
    return 0


def _presets(args: argparse.Namespace, executor: ExecutorConfig) -> int:
    _print_presets(args.name)
    return 0


HANDLERS = {
    "demo": _demo, "run": _run, "resume": _resume, "plot": _plot, "presets": _presets, "compare": _sweep,
    "tune": _sweep, "reproduce": _reproduce,
    "inspect-weak": lambda args, executor: _inspect_weak(Path(args.source), as_json=args.json),
}


def run_command(args: argparse.Namespace) -> int:
    """The parsed command line's command; sweeps run on the executor its options name."""
    executor = executor_from(args) if hasattr(args, "executor") else ExecutorConfig()  # refused before any work
    return HANDLERS[args.command](args, executor)
