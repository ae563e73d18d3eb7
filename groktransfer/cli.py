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
import os
import sys
import warnings
from typing import Optional, Sequence

from . import __version__
from .config import ConfigError
from .executors import EXECUTORS
from .names import METHODS, REPRODUCTION_ALIASES, REPRODUCTION_ORDER

EXIT_USAGE = 2  # bad input: nothing was written (a fault while running: commands.EXIT_RUNTIME, 1)


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
    reproduce.add_argument("name", help="one of: " + ", ".join([*REPRODUCTION_ORDER, *REPRODUCTION_ALIASES]) + ", or all")
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _build_parser()
    try:
        # parse_known_args: `run` takes its config file and key=value items before or
        # after the options, which a plain nargs="*" positional would not.
        args, extra = parser.parse_known_args(argv)  # --help and --version exit here, before any heavy import
        if args.command is None:
            raise UsageError("a command is required: demo, run, resume, plot, presets, compare, tune, reproduce or "
                             "inspect-weak")
        positional = {"run": "items", "compare": "overrides", "tune": "overrides", "reproduce": "overrides"}.get(
            args.command)
        unknown = [item for item in extra if item.startswith("-") or positional is None]
        if unknown:
            raise UsageError(f"unrecognized arguments: {' '.join(unknown)}")
        if positional is not None:
            setattr(args, positional, list(getattr(args, positional)) + extra)
        if getattr(args, "out", None) == "":
            raise ConfigError("--out: empty; give a directory to write the run to")
    except (UsageError, ConfigError) as err:
        print(f"groktransfer: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    import torch

    from . import commands
    from .commands import EXIT_RUNTIME
    from .pipeline import WeakModelWarning, WeakStageError
    from .stops import hearing_lost_stops, sigterm_like_sigint
    from .training import RunInterrupted

    try:
        # SIGTERM stops as SIGINT does, from the first moment; a stop whose exception Python drops
        # (in a finalizer or an at-fork callback) is recorded, not printed, and the command's
        # waiting loops and its trainer act on it (groktransfer.stops).
        with warnings.catch_warnings(), sigterm_like_sigint(), hearing_lost_stops():
            # The pipeline's warnings are printed through its log and under the result table.
            warnings.simplefilter("ignore", WeakModelWarning)
            args.argv = list(argv) if argv is not None else sys.argv[1:]
            code = commands.run_command(args)
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
        then = (f"checkpoint written, continue with {stop.resume_with}" if stop.checkpointed else
                "no checkpoint at this point (weak stages of several candidates or runs start again): "
                "`groktransfer resume DIR` for one run, the same command for a sweep (finished runs are reused)")
        print(f"groktransfer: stopped{where}; {then}", file=sys.stderr)
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
