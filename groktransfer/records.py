"""Run directories: the files that prove what a run did.

A run directory holds::

    config.yaml                  the resolved config (every default filled in)
    metrics.csv                  one row per evaluation: stage, step, losses, accuracies, weight norm, time
    diagnostics.csv              long format (stage, step, name, value): per-parameter norms, softmax
                                 collapse, zero-loss fraction, A·B rank/effective rank/CKA to E_W
    summary.json                 per-stage results and the environment (schema below)
    weak_embedding.safetensors   the weak model's embedding E_W, when a weak stage ran
    accuracy.png, loss.png       curves against step on a log-x axis

``summary.json`` (``schema_version`` 1)::

    schema_version, groktransfer_version, git_commit and git_dirty (of the code the process
    imported; dirty = uncommitted changes to groktransfer/, scripts/, benchmarks/ or
    pyproject.toml), torch_version, python_version,
    platform, cpu, torch_threads, device, device_name, created_utc, name,
    task (the data actually used, e.g. which digits source),
    complete (true once every stage has finished),
    stages: {weak|target|scratch: {status, steps, diverged_step, train_acc_95_step,
             test_acc_95_step, test_acc_99_step, time_gap, inverse_time_gap, final_step,
             final_train_acc, final_test_acc, final_train_loss, final_test_loss, best_test_acc,
             wall_clock_s, flops, flops_per_step, n_params, n_evals,
             methods ("" or e.g. "GrokFast-EMA"),
             batch_runs (only when the stage trained in a batch of runs: how many; its clock is the batch's)}},
    groktransfer: {wall_clock_s, flops, weak_stage: "trained"|"file"|"none"} (when a target ran),
    transfer: {ab_lr_scale, weak_test_acc, weak_finished} (A and B's rate, chosen by the weak model;
              when a target ran),
    total_wall_clock_s (every stage),
    warnings: [...]

``time_gap`` is null when it is infinite (95% test accuracy never reached).
Files that are rewritten (summary, config) are written to a temporary file and renamed,
so a crash never leaves a half-written one; ``metrics.csv`` is appended row by row and
flushed, so it holds every evaluation made before a crash.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import os
import platform
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Union

import torch
from filelock import FileLock, Timeout

from .config import ConfigError, is_int
from .version import __version__

METRICS_FIELDS = ("stage", "step", "train_loss", "train_acc", "test_loss", "test_acc", "weight_norm", "elapsed_s")
SCHEMA_VERSION = 1


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # the previous version of the file stays intact
        raise


def check_new_run_dir(path: Union[str, Path], overwrite: bool = False) -> Path:
    """Refuse an existing non-empty run directory unless ``overwrite`` (nothing is touched here)."""
    if str(path).strip() == "":
        raise ConfigError("--out: empty; give a directory to write the run to")
    path = Path(path)
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except OSError as err:  # e.g. a name longer than the filesystem allows
        raise ConfigError(f"--out {str(path)[:80]!r}: unusable ({err.strerror})") from None
    if exists and not is_dir:
        raise ConfigError(f"--out {str(path)!r}: exists and is not a directory")
    if is_dir and any(path.iterdir()) and not overwrite:
        raise ConfigError(f"--out {str(path)!r}: already exists; choose another directory or pass --overwrite")
    check_writable_out(path)
    return path


def check_writable_out(path: Union[str, Path], label: str = "--out") -> None:
    """Refuse an output location this process cannot write: a folder without write permission (its
    own, or the nearest existing one above it), one under a file, a read-only file system. Probed
    by creating and removing a file of its own there, so that the answer is the file system's,
    capabilities and mount options included. Nothing is left behind."""
    path = Path(path)
    where = path
    try:
        while not where.exists():
            if where.is_symlink():  # a dangling link: mkdir would fail on it
                raise ConfigError(f"{label} {str(path)!r}: {str(where)!r} is a link to nothing")
            if where.parent == where:
                break
            where = where.parent
        if not where.is_dir():
            raise ConfigError(f"{label} {str(path)!r}: {str(where)!r} is a file, not a directory")
        handle, probe = tempfile.mkstemp(prefix=".groktransfer-probe-", dir=where)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise ConfigError(f"{label} {str(path)!r}: cannot write in {str(where)!r} ({err.strerror or err})") from None


LOCK_FILE = ".lock"
# Written first into every directory groktransfer creates for its output (a run, a sweep, a
# reproduction): the proof that --overwrite may delete it. A directory without it is never deleted.
OWNER_FILE = ".groktransfer"


def claim_dir(path: Union[str, Path]) -> Path:
    """Create ``path`` (and parents) if needed and mark it as groktransfer's output directory."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        owner = path / OWNER_FILE
        if not owner.exists():
            owner.write_text("This directory was written by groktransfer; `--overwrite` may replace it.\n",
                             encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"--out {str(path)!r}: cannot create ({err.strerror or err})") from None
    return path


def claim_sweep_dir(path: Union[str, Path], record_file: str) -> Path:
    """The --out folder of a sweep (``compare``, ``tune``), which writes fixed names into it
    (``record_file``, table.md, runs.csv, best.yaml, ...) and reuses the runs it finds there.
    Taken when it is new or empty, when groktransfer marked it, when it holds this command's
    own record from before the marker existed (a JSON with the package's environment block), or
    when all it holds is folders groktransfer marked, none named as the sweep's own (a ``tune/``
    written beside a comparison, as the comparison scripts do); refused with one line otherwise,
    so that no file of the user's is replaced."""
    path = Path(path)
    check_writable_out(path)
    if path.is_dir() and any(path.iterdir()) and not (path / OWNER_FILE).is_file() and not _only_our_folders(path):
        try:
            record = json.loads((path / record_file).read_text(encoding="utf-8"))
            ours = "groktransfer_version" in record.get("environment", {})
        except (OSError, UnicodeDecodeError, ValueError, AttributeError, TypeError):
            ours = False
        if not ours:
            names = ", ".join(sorted(p.name for p in path.iterdir())[:3])
            raise ConfigError(f"--out {str(path)!r}: holds files groktransfer did not write ({names}, ...); "
                              f"choose a new or empty directory")
        return path  # its record proves it, each time: nothing is added to it before the sweep's checks
    return claim_dir(path)


SWEEP_FOLDERS = ("runs", "trials")  # what compare and tune write their runs into


def _only_our_folders(path: Path) -> bool:
    """Every entry of ``path`` is a real folder groktransfer marked, and none is one the sweep writes into."""
    return all(entry.is_dir() and not entry.is_symlink() and entry.name not in SWEEP_FOLDERS
               and (entry / OWNER_FILE).is_file() for entry in path.iterdir())


# The names groktransfer writes inside its output directories (a run, `run --seeds`, a
# reproduction, and what a comparison or tuning writes, should one be pointed at), matched with
# fnmatch at any depth. --overwrite deletes a marked directory only when every file in it, at
# every depth, has one of these names: a file of any other name is a user's, and the directory is
# left whole. Folders are descended into, whatever their name (seed<S>/, runs/<arm>/, run/, weak/).
OUTPUT_FILE_NAMES = (
    ".groktransfer", ".lock", "*.tmp", "*.replay",  # the marker, the lock, an interrupted atomic write, a resume's CSVs
    "config.yaml", "metrics.csv", "diagnostics.csv", "summary.json", "accuracy.png", "loss.png",  # a run
    "weak_embedding.safetensors", "checkpoint.safetensors", "batch_checkpoint.safetensors", "mlflow_run_id",
    "seeds.md",  # run --seeds
    "claim.json", "table.md", "all.md", "all.json", "fig*.png", "xor.png", "step*.safetensors",  # reproduce
    "compare.json", "runs.csv", "test_accuracy.png", "time_to_99.png", "tune.json", "trials.csv", "best.yaml",
)
# Folders a tracker library writes into at groktransfer's request (names chosen by the library):
# taken whole.
TRACKER_FOLDERS = ("tensorboard", "wandb", "mlruns")


def foreign_entries(path: Union[str, Path]) -> list[Path]:
    """The entries under ``path`` that groktransfer does not write: files (and links) whose name is
    none of OUTPUT_FILE_NAMES, at any depth, tracker folders aside; sorted."""
    foreign = []
    for entry in sorted(Path(path).iterdir()):
        if entry.is_symlink() or not (entry.is_dir() or entry.is_file()):
            foreign.append(entry)  # groktransfer makes neither links nor special files
        elif entry.is_dir():
            if entry.name not in TRACKER_FOLDERS:
                foreign += foreign_entries(entry)
        elif not any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in OUTPUT_FILE_NAMES):
            foreign.append(entry)
    return foreign


def remove_owned(path: Union[str, Path]) -> None:
    """Delete the output directory ``path`` for --overwrite: only a directory groktransfer made (its
    OWNER_FILE is there) and only when every file in it has a name groktransfer writes
    (:func:`foreign_entries`: a user's notes or data in it keep all of it), never the working
    directory or one above it, and only under its lock (a directory another process is writing
    is refused). Call it after every other check."""
    path = Path(path)
    if not path.is_dir() or not any(path.iterdir()):
        return
    here = Path.cwd().resolve()
    if path.resolve() in (here, *here.parents):
        raise ConfigError(f"--out {str(path)!r}: is the working directory or contains it; --overwrite will not "
                          "delete it")
    if path.is_symlink():
        raise ConfigError(f"--out {str(path)!r}: is a symbolic link; --overwrite will not delete through it")
    if not (path / OWNER_FILE).is_file():
        raise ConfigError(f"--out {str(path)!r}: was not written by groktransfer (no {OWNER_FILE} in it), so "
                          "--overwrite will not delete it; choose another directory or empty it yourself")
    # Its own lock and that of every run directory inside it (a sweep's seed<S>/ may be live).
    locks = [_lock(path)]
    try:
        for inner in sorted(path.rglob(LOCK_FILE)):
            if inner.parent != path:
                locks.append(_lock(inner.parent))
        try:
            foreign = foreign_entries(path)
        except OSError as err:  # a folder inside that this process may not read: its files are unknown
            raise ConfigError(f"--out {str(path)!r}: cannot read {str(err.filename)!r} ({err.strerror or err}); "
                              "--overwrite will not delete what it cannot see") from None
        if foreign:
            names = ", ".join(str(p.relative_to(path)) for p in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise ConfigError(f"--out {str(path)!r}: holds {len(foreign)} file(s) groktransfer did not write ({names}); "
                              "--overwrite will not delete them: move them out, or choose another --out")
        for entry in path.iterdir():
            if entry.name == LOCK_FILE:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    finally:
        for lock in locks:
            lock.release()
    (path / LOCK_FILE).unlink(missing_ok=True)


def _lock(path: Path) -> FileLock:
    """An exclusive, non-blocking lock on ``path/.lock`` (filelock: flock on POSIX, msvcrt on Windows)."""
    lock = FileLock(str(path / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(f"--out {str(path)!r}: in use by another groktransfer process") from None
    except OSError as err:  # a folder made read-only since the run began, say
        raise ConfigError(f"{str(path)!r}: cannot write its lock file ({err.strerror or err})") from None
    return lock


@contextmanager
def locked(path: Path):
    """Hold a run directory's lock for a command that writes into an existing run (``plot``)."""
    lock = _lock(Path(path))
    try:
        yield
    finally:
        lock.release()


# What a finished run directory holds besides its config, metrics and summary: the weights
# (resume, the weak embedding) and the per-parameter diagnostics. The studies under results/
# keep neither.
WEIGHT_FILES = ("checkpoint.safetensors", "batch_checkpoint.safetensors", "weak_embedding.safetensors", "diagnostics.csv")


def drop_run_weights(root: Union[str, Path]) -> None:
    """Delete WEIGHT_FILES from every finished run directory under ``root`` (itself included):
    only in a directory groktransfer made (its OWNER_FILE) and finished (its summary.json), only
    those names, each run under its lock (a run another process is writing is refused)."""
    for marker in sorted(Path(root).rglob(OWNER_FILE)):
        run_dir = marker.parent
        if not (run_dir / "summary.json").is_file():
            continue
        with locked(run_dir):
            for name in WEIGHT_FILES:
                (run_dir / name).unlink(missing_ok=True)


REPLAY_SUFFIX = ".replay"  # a resumed run's rewritten CSVs, until its first new record


# What a stage's entry in summary.json must hold for the package's own readers (tables,
# comparisons, tuning): steps and step counts are integers (or null: never reached), the rest numbers.
SUMMARY_STAGE_FIELDS = {
    "status": (str,), "steps": (int,), "wall_clock_s": (int, float), "final_test_acc": (int, float),
    "train_acc_95_step": (int, type(None)), "test_acc_95_step": (int, type(None)),
    "test_acc_99_step": (int, type(None)), "time_gap": (int, type(None)), "flops": (int, float, type(None)),
}


def read_summary(path: Union[str, Path]) -> dict:
    """A run's ``summary.json``, checked against the schema above before anyone reads it: a JSON
    object with ``complete`` (true/false) and ``stages`` ({name: {status, steps, …}}). Anything
    else is refused with one line naming the file."""
    path = Path(path)

    def refuse(why: str) -> ConfigError:
        return ConfigError(f"summary {str(path)!r}: {why}")

    try:
        if path.stat().st_size > 64 * 2**20:  # a run's summary is a few kB, a batch's a few hundred
            raise refuse("over 64 MB; not a summary this package wrote")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise refuse("not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise refuse(f"unreadable ({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
    if not isinstance(data, dict):
        raise refuse(f"expected a JSON object, got {type(data).__name__}")
    if not isinstance(data.get("complete"), bool):
        raise refuse(f"complete: expected true or false, got {data.get('complete')!r}")
    check_summary_stages(data.get("stages"), refuse)
    return data


def check_summary_stages(stages, refuse) -> None:
    """A summary's ``stages``: {name: entry} with every SUMMARY_STAGE_FIELDS field of its type;
    ``refuse(why)`` makes the exception raised otherwise."""
    if not isinstance(stages, dict):
        raise refuse(f"stages: expected an object, got {type(stages).__name__}")
    for name, entry in stages.items():
        if not isinstance(entry, dict):
            raise refuse(f"stages.{name}: expected an object, got {type(entry).__name__}")
        for field, types in SUMMARY_STAGE_FIELDS.items():
            value = entry.get(field)
            if field not in entry or isinstance(value, bool) or not isinstance(value, types):
                raise refuse(f"stages.{name}.{field}: got {value!r}" if field in entry
                             else f"stages.{name}: {field} is missing")
        if "ready" in entry and not isinstance(entry["ready"], bool):
            raise refuse(f"stages.{name}.ready: got {entry['ready']!r}")
        population = entry.get("population")  # a weak stage's candidates (the run table reads them)
        if population is not None and not _is_population(population):
            raise refuse(f"stages.{name}.population: not the weak stage's record (rounds, chosen, candidates)")


def _is_population(population) -> bool:
    """A weak stage's population record: candidates (a list), rounds (>= 1), chosen (an index or null)."""
    if not isinstance(population, dict) or not isinstance(population.get("candidates"), list):
        return False
    rounds, chosen = population.get("rounds"), population.get("chosen")
    return is_int(rounds) and rounds >= 1 and (chosen is None or is_int(chosen))


class RunDirectory:
    """Creates a run directory and writes its files.

    The directory is locked while it is open: a second process started on the same
    directory (even with --overwrite) is refused instead of corrupting it.
    """

    def __init__(
        self,
        path: Union[str, Path],
        overwrite: bool = False,
        replay: Optional[list[tuple[str, dict]]] = None,
    ) -> None:
        """``replay`` reopens an existing run for resuming: metrics.csv and diagnostics.csv are
        rewritten from these (stage, history row) pairs, whatever state the files are in. The
        rewritten files replace the old ones only with the run's first new record: a checkpoint
        refused while it is put back into its model leaves every file as it was."""
        if replay is None:
            self.path = check_new_run_dir(path, overwrite)
            if overwrite:
                remove_owned(self.path)  # only a directory groktransfer wrote, and no live one
        else:
            self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"--out {str(self.path)!r}: cannot create ({err.strerror})") from None
        # The lock comes before any file is touched: a run still live in this directory keeps all of its files.
        self._lock = _lock(self.path)
        claim_dir(self.path)
        # While replaying, the CSVs are written beside the old ones (…csv.replay) until commit().
        self._pending = replay is not None
        self._metrics = open(self._csv("metrics.csv"), "w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._metrics, fieldnames=METRICS_FIELDS)
        self._writer.writeheader()
        self._metrics.flush()
        self._diagnostics = None  # opened on the first diagnostics row
        for stage, row in replay or []:
            self._append_metrics(stage, row)
            if "diagnostics" in row:
                self._append_diagnostics(stage, row["step"], row["diagnostics"])

    def _csv(self, name: str) -> Path:
        return self.path / (name + REPLAY_SUFFIX if self._pending else name)

    def commit(self) -> None:
        """Put the replayed CSVs in place of the old ones (a no-op once done, or for a new run)."""
        if not self._pending:
            return
        self._pending = False
        os.replace(self.path / ("metrics.csv" + REPLAY_SUFFIX), self.path / "metrics.csv")
        if self._diagnostics is not None:
            os.replace(self.path / ("diagnostics.csv" + REPLAY_SUFFIX), self.path / "diagnostics.csv")
        else:
            (self.path / "diagnostics.csv").unlink(missing_ok=True)  # the replay had none: the run starts it again

    def _append_diagnostics(self, stage: str, step: int, values: dict) -> None:
        if self._diagnostics is None:
            self._diagnostics = open(self._csv("diagnostics.csv"), "w", newline="", encoding="utf-8")
            self._diagnostics.write("stage,step,name,value\n")
        self._diagnostics.writelines(f"{stage},{step},{name},{value!r}\n" for name, value in values.items())
        self._diagnostics.flush()

    def append_diagnostics(self, stage: str, step: int, values: dict) -> None:
        self.commit()
        self._append_diagnostics(stage, step, values)

    def write_config_yaml(self, text: str) -> None:
        atomic_write_text(self.path / "config.yaml", text)

    def _append_metrics(self, stage: str, row: dict) -> None:
        self._writer.writerow({"stage": stage, **{k: row[k] for k in METRICS_FIELDS if k != "stage"}})
        self._metrics.flush()

    def append_metrics(self, stage: str, row: dict) -> None:
        self.commit()
        self._append_metrics(stage, row)

    def write_summary(self, summary: dict) -> None:
        self.commit()
        atomic_write_text(self.path / "summary.json", json.dumps(summary, indent=2, sort_keys=False) + "\n")

    def close(self) -> None:
        self._metrics.close()
        if self._diagnostics is not None:
            self._diagnostics.close()
        if self._pending:  # nothing new was recorded: the old CSVs stay, the replayed copies go
            for name in ("metrics.csv", "diagnostics.csv"):
                (self.path / (name + REPLAY_SUFFIX)).unlink(missing_ok=True)
        self._lock.release()


def read_metrics(path: Union[str, Path]) -> dict[str, list[dict]]:
    """``metrics.csv`` as {stage: [rows]}, with numbers parsed."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.csv"
    if not path.is_file():
        raise ConfigError(f"metrics file {str(path)!r}: not found")
    stages: dict[str, list[dict]] = {}
    try:
        text = path.read_text(encoding="utf-8")
        if text and not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]  # a row cut short by a kill is not a row yet
        with io.StringIO(text, newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or list(reader.fieldnames) != list(METRICS_FIELDS):
                raise ConfigError(f"metrics file {str(path)!r}: unexpected header {reader.fieldnames}")
            for line_no, raw in enumerate(reader, start=2):
                try:
                    row = {k: float(raw[k]) for k in METRICS_FIELDS if k != "stage"}
                except (TypeError, ValueError):
                    raise ConfigError(f"metrics file {str(path)!r}: line {line_no} is malformed") from None
                row["step"] = int(row["step"])
                stages.setdefault(raw["stage"], []).append(row)
    except UnicodeDecodeError:
        raise ConfigError(f"metrics file {str(path)!r}: not a text file") from None
    return stages


def _git(*args: str) -> Optional[str]:
    try:
        out = subprocess.run(
            ["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


CODE_PATHS = (":/groktransfer", ":/scripts", ":/benchmarks", ":/pyproject.toml")


def _code_version() -> tuple[Optional[str], Optional[bool]]:
    """The commit of the code this process imported, and whether it had uncommitted changes
    (to the code: results/ and run directories are its outputs). Read once, when the process
    loads this module: a long sweep keeps recording the code it runs even if the checkout moves on."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = _git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS)
    return commit, (bool(status) if status is not None else None)


CODE_VERSION = _code_version()


def environment(device: torch.device) -> dict:
    """Versions, commit and hardware, recorded with every run."""
    commit, dirty = CODE_VERSION
    device_name = platform.processor() or platform.machine()
    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
    return {
        "schema_version": SCHEMA_VERSION,
        "groktransfer_version": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "cpu": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": device_name,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
