"""The ``groktransfer`` command.

    groktransfer demo [--out DIR]                       the main job: weak -> GrokTransfer target vs scratch
    groktransfer run --preset NAME --out DIR [k=v ...]  a preset, with dotted overrides (target.train.lr=0.01)
    groktransfer run CONFIG.yaml --out DIR [k=v ...]    a config file (YAML or JSON)
    groktransfer run ... --seeds 8 [--parallel auto|K]  one run per seed in DIR/seed<S>, batched where faster
    groktransfer resume RUN_DIR                         continue an interrupted run from its last checkpoint
    groktransfer plot RUN_DIR                           redraw accuracy.png and loss.png from metrics.csv
    groktransfer presets [NAME]                         list presets, or print one as YAML
    groktransfer compare --methods A,B --seeds 5 --out DIR [--spec NAME|FILE] [--task OP] [--tuned best.yaml]
    groktransfer tune --methods A,B --seeds 2 --out DIR [--spec ...] [--grid small|paper|FILE] [--configs K]
    groktransfer reproduce NAME [--quick] [--out DIR] [k=v ...]   re-run a paper experiment, write claim.json
    groktransfer inspect-weak RUN_DIR|FILE [--json]     is a weak embedding ready to transfer? the verdict and numbers

Bad input (unknown preset, key or value, unreadable file, existing run directory) gives a
one-line message and exit code 2, and writes nothing. A fault while running (full disk, GPU
memory) gives one line and exit code 1 with the last checkpoint kept; SIGINT/SIGTERM
checkpoint and exit with 130. A weak stage in which no candidate became ready stops the run
after it (the run directory records every candidate): one line and exit code 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import warnings
from datetime import datetime
from pathlib import Path
from typing import Optional, Sequence

import torch

from . import __version__
from .compare import METHODS, load_comparison, load_tuned, method_run_config, parse_methods, run_comparison
from .config import (
    SEED_MAX,
    ConfigError,
    ReadinessConfig,
    TaskConfig,
    apply_overrides,
    dump_yaml,
    from_dict,
    load_config_file,
    run_config_from_dict,
)
from .pipeline import (
    WEAK_EMBEDDING_FILE,
    WeakModelWarning,
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
from .training import RunInterrupted
from .executors import EXECUTORS, ExecutorConfig, executor_config, use_executor
from .sweep import parse_parallel, run_many
from .reproduce import ALIASES, REPRODUCTIONS, reproduce, reproduce_all
from .tune import run_tune

EXIT_USAGE = 2  # bad input: nothing was written
MAX_SEEDS = 10_000  # --seeds N: more runs than any sweep here could train
EXIT_RUNTIME = 1  # a fault while running (disk full, GPU memory): the last checkpoint is kept


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage block) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="groktransfer", description="GrokTransfer: remove grokking by embedding transfer.")
    parser.add_argument("--version", action="version", version=f"groktransfer {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    demo = sub.add_parser("demo", help="GrokTransfer against a from-scratch run on (a+b) mod 47")
    demo.add_argument("--out", help="run directory (default: runs/demo-<time>)")
    demo.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.add_argument("--log", help="experiment trackers, comma-separated: tensorboard, wandb, mlflow")

    run = sub.add_parser("run", help="run a preset or a config file")
    run.add_argument("items", nargs="*", metavar="CONFIG_OR_KEY=VALUE", help="a config file and/or key=value overrides")
    run.add_argument("--preset", help="a named preset (see `groktransfer presets`)")
    run.add_argument("--out", required=True, help="run directory to create")
    run.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")

    run.add_argument("--log", help="experiment trackers, comma-separated: tensorboard, wandb, mlflow "
                                   "(the config's trackers field)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out if it was interrupted")
    run.add_argument("--seeds", help="N (seeds 0..N-1) or a list like 0,3,7: one run per seed in --out/seed<S>, "
                                     "each seed setting seed and task.data_seed; batched where faster")
    run.add_argument("--parallel", default="auto", help="with --seeds: most runs trained together, or auto (default)")
    _add_executor_options(run)

    resume = sub.add_parser("resume", help="continue an interrupted run from its last checkpoint")
    resume.add_argument("run_dir")
    resume.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="continue on this device instead")
    resume.add_argument("--no-progress", action="store_true", help="no progress bars")

    plot = sub.add_parser("plot", help="redraw the plots of a run directory from its metrics.csv")
    plot.add_argument("run_dir")

    inspect = sub.add_parser("inspect-weak", help="is a weak embedding ready to transfer? the verdict and its numbers")
    inspect.add_argument("source", metavar="RUN_DIR|FILE", help="a run directory or a weak_embedding.safetensors file")
    inspect.add_argument("--json", action="store_true", help="print the report as JSON")

    presets = sub.add_parser("presets", help="list the presets, or print one")
    presets.add_argument("name", nargs="?")

    reproduce = sub.add_parser("reproduce", help="re-run one of the paper's experiments and test its claim")
    reproduce.add_argument("name", help="one of: " + ", ".join([*REPRODUCTIONS, *ALIASES]) + ", or all")
    reproduce.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides of the preset")
    reproduce.add_argument("--quick", action="store_true", help="the CPU-sized version (see claim.json for what changes)")
    reproduce.add_argument("--out", help="output directory (default: runs/reproduce-NAME[-quick])")
    reproduce.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    reproduce.add_argument("--no-progress", action="store_true", help="no progress bars")
    reproduce.add_argument("--parallel", default="auto",
                           help="reproductions of several runs: most trained together as one batch, or auto (default)")
    _add_executor_options(reproduce)

    for name, helptext in (("compare", "every method on the same seeds, splits and budget"),
                           ("tune", "hyperparameter search with an equal budget per method")):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides of the comparison spec")
        cmd.add_argument("--spec", default="paper-fnn", help="a comparison spec name or YAML file (default paper-fnn)")
        cmd.add_argument("--task", help="shortcut for task.op=OP")
        cmd.add_argument("--methods", required=True, help="comma-separated: " + ", ".join(METHODS))
        cmd.add_argument("--seeds", default="5", help="N (seeds 0..N-1) or a list like 0,3,7 (default 5)")
        cmd.add_argument("--out", required=True, help="output directory; finished runs in it are reused")
        cmd.add_argument("--no-progress", action="store_true", help="no progress bars")
        cmd.add_argument("--parallel", default="auto",
                         help="most runs trained together as one batched computation, or auto (default)")
        _add_executor_options(cmd)
        if name == "compare":
            cmd.add_argument("--tuned", help="best.yaml written by `groktransfer tune`")
        else:
            cmd.add_argument("--grid", default="small", help="small, paper, or a YAML file of dotted key: [values]")
            cmd.add_argument("--configs", type=int, help="configurations per method (default: the whole space)")
            cmd.add_argument("--metric", default="test_acc_99_step", help="selection metric (default test_acc_99_step)")
            cmd.add_argument("--with-defaults", action="store_true",
                             help="each method's first configuration is its own setting in the spec; the rest "
                                  "come from the grid")
            cmd.add_argument("--search", default="grid", choices=["grid", "optuna"],
                             help="grid: a seeded draw of --configs points (default); optuna: TPE proposals, "
                                  "--trials-at-once at a time, trained as one batch (needs --configs)")
            cmd.add_argument("--trials-at-once", type=int, default=4,
                             help="with --search optuna: trials asked and trained together (default 4)")
    return parser


def _add_executor_options(cmd: argparse.ArgumentParser) -> None:
    """Where the batch groups of a sweep run (groktransfer.executors); local keeps them in this process."""
    group = cmd.add_argument_group("executor (where the sweep's batch groups run)")
    group.add_argument("--executor", default="local", choices=EXECUTORS,
                       help="local (default: this process), ray (a Ray cluster) or submitit (SLURM, or local jobs)")
    group.add_argument("--ray-address", help="Ray: the cluster to join (default: RAY_ADDRESS, else start a local one)")
    group.add_argument("--num-cpus", type=int, help="Ray: CPUs of a local cluster started here (default: all)")
    group.add_argument("--cpus-per-task", type=int, help="CPUs (and threads) per task (default 1)")
    group.add_argument("--gpus-per-task", type=float, help="GPU share per task (default: from the batch's memory)")
    group.add_argument("--retries", type=int, help="times a task whose worker died is run again (default 2)")
    group.add_argument("--slurm-partition", help="Submitit: the SLURM partition")
    group.add_argument("--slurm-time", type=int, help="Submitit: time limit per job in minutes (default 60)")
    group.add_argument("--submitit-folder", help="Submitit: job files and logs (default ./submitit-logs)")


def _executor_from(args: argparse.Namespace) -> ExecutorConfig:
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


def _sweep(args: argparse.Namespace) -> int:
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
                                log=print)
        print(f"\n{record['table']}\n\nwritten: {out / 'compare.json'}, {out / 'test_accuracy.png'}, {out / 'time_to_99.png'}")
    else:
        record = run_tune(spec, methods, seeds, out, grid=args.grid, configs=args.configs, metric=args.metric,
                          with_defaults=args.with_defaults, parallel=parallel, progress=progress, log=print,
                          search=args.search, trials_at_once=args.trials_at_once)
        print(f"\nconfigurations per method: {record['configs_per_method']}")
        print(f"written: {out / 'best.yaml'} (use with compare --tuned), {out / 'trials.csv'}")
    return 0


def _run_seeds(config, out: Path, args: argparse.Namespace) -> int:
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
    summaries = run_many(jobs, parallel=parallel, progress=not args.no_progress, plots=True, log=print)
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
    inside = sorted(p.parent for p in path.glob(f"*/{needs}")) if path.is_dir() else []
    hint = f"; runs inside it: {', '.join(str(p) for p in inside[:3])}{' ...' if len(inside) > 3 else ''}" if inside else ""
    raise ConfigError(f"{command}: {str(path)!r} is not a run directory (no {needs}){hint}")


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
        weak = json.loads((run_dir / "summary.json").read_text(encoding="utf-8")).get("stages", {}).get("weak", {})
        candidates = (weak.get("population") or {}).get("candidates", [])
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


def _command(args: argparse.Namespace) -> int:
    if args.command == "demo":
        out = Path(args.out) if args.out else Path("runs") / f"demo-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
        config = with_trackers(load_preset("demo"), args.log)
        print(f"groktransfer demo: {preset_description('demo')}\n")
        summary = _start_run(config, out, overwrite=args.overwrite, progress=not args.no_progress)
        _print_result(summary, out)
        return 0
    if args.command == "run":
        config = _config_for_run(args)
        out = Path(args.out)
        if args.seeds is not None:
            return _run_seeds(config, out, args)
        resume = args.resume and (out / "config.yaml").is_file()
        if resume and load_config_file(out / "config.yaml") != config.to_dict():
            raise ConfigError(f"--resume: the config differs from the one in {str(out)!r}; "
                              f"use `groktransfer resume {out}` to continue that run")
        summary = _start_run(config, out, overwrite=args.overwrite, progress=not args.no_progress, resume=resume)
        _print_result(summary, out)
        return 0
    if args.command == "resume":
        out = _find_run(Path(args.run_dir), "config.yaml", "resume")
        summary = resume_experiment(out, device=args.device, progress=not args.no_progress, log=print)
        _print_result(summary, out)
        return 0
    if args.command == "plot":
        run_dir = _find_run(Path(args.run_dir), "metrics.csv", "plot")
        with locked(run_dir):  # a run still writing there is left alone
            paths = plot_run(run_dir)
        for path in paths:
            print(path)
        return 0
    if args.command == "inspect-weak":
        return _inspect_weak(Path(args.source), as_json=args.json)
    if args.command in ("compare", "tune"):
        return _sweep(args)
    if args.command == "reproduce":
        out = Path(args.out) if args.out else Path("runs") / f"reproduce-{args.name}{'-quick' if args.quick else ''}"
        command = "groktransfer " + " ".join(args.argv)
        if args.name == "all":
            if args.overrides:
                raise ConfigError("reproduce all: takes no key=value overrides (each reproduction has its own)")
            reproduce_all(out, quick=args.quick, overwrite=args.overwrite, progress=not args.no_progress,
                          command=command, log=print, parallel=parse_parallel(args.parallel))
            print(f"\n{(out / 'all.md').read_text()}\nwritten: {out / 'all.md'}, {out / 'all.json'}, {out}/NAME/")
            return 0
        record = reproduce(args.name, out, quick=args.quick, overrides=args.overrides, overwrite=args.overwrite,
                           progress=not args.no_progress, command=command, log=print,
                           parallel=parse_parallel(args.parallel))
        details = out / ("run" if record["preset"] else "summary.json")
        if record["preset"]:
            print(f"\n{record['run_table']}")
        print(f"\n{(out / 'table.md').read_text()}")
        print(f"claim: {record['claim']}\ncriterion: {record['criterion']}\nholds: {str(record['holds']).lower()}")
        print(f"\nwritten: {out / 'claim.json'}, {out / 'table.md'}, {details}")
        return 0
    if args.command == "presets":
        if args.name:
            print(f"# {preset_description(args.name)}")
            print(dump_yaml(load_preset(args.name)), end="")
        else:
            for name in preset_names():
                print(f"{name:10s} {preset_description(name)}")
        return 0
    raise UsageError("a command is required: demo, run, resume, plot, presets, compare, tune, reproduce or inspect-weak")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _build_parser()
    try:
        # parse_known_args: `run` takes its config file and key=value items before or
        # after the options, which a plain nargs="*" positional would not.
        args, extra = parser.parse_known_args(argv)
        positional = {"run": "items", "compare": "overrides", "tune": "overrides", "reproduce": "overrides"}.get(
            args.command)
        unknown = [item for item in extra if item.startswith("-") or positional is None]
        if unknown:
            raise UsageError(f"unrecognized arguments: {' '.join(unknown)}")
        if positional is not None:
            setattr(args, positional, list(getattr(args, positional)) + extra)
        if getattr(args, "out", None) == "":
            raise ConfigError("--out: empty; give a directory to write the run to")
        with warnings.catch_warnings():
            # The pipeline's warnings are printed through its log and under the result table.
            warnings.simplefilter("ignore", WeakModelWarning)
            args.argv = list(argv) if argv is not None else sys.argv[1:]
            executor = _executor_from(args) if hasattr(args, "executor") else None  # refused before any work
            if args.command == "run" and executor.kind != "local" and not args.seeds:
                raise ConfigError(f"--executor {executor.kind}: only with --seeds (a single run trains in this process)")
            with use_executor(executor):
                code = _command(args)
            sys.stdout.flush()  # a closed pipe shows here, inside the handlers below, not at exit
            return code
    except (UsageError, ConfigError) as err:
        print(f"groktransfer: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except WeakStageError as stopped:
        print(f"groktransfer: error: {stopped}", file=sys.stderr)
        return EXIT_RUNTIME
    except RunInterrupted as stop:
        where = f" ({stop})" if str(stop) else ""
        print(f"groktransfer: stopped{where}; checkpoint written, continue with `groktransfer resume DIR`",
              file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("groktransfer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`groktransfer presets | head`): stop quietly, as Unix tools do.
        # stdout is pointed at devnull so that Python's own flush at exit does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except torch.cuda.OutOfMemoryError:
        print("groktransfer: error: out of GPU memory; the last checkpoint is kept: continue on the CPU with "
              "`groktransfer resume DIR --device cpu`", file=sys.stderr)
        return EXIT_RUNTIME
    except OSError as err:
        # A full disk or an unwritable file mid-run: not bad input, but the user must act.
        target = f" {err.filename}" if err.filename else ""
        print(f"groktransfer: error: cannot write{target}: {err.strerror or err}; "
              "the last good checkpoint is kept", file=sys.stderr)
        return EXIT_RUNTIME


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
