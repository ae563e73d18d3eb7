"""Where :func:`groktransfer.sweep.run_many`'s tasks run: here, on a Ray cluster, or on SLURM.

A *task* is one unit of a sweep: one batch group (the runs that ``--parallel`` trains as one
vmapped computation) or one run trained alone. The executor only decides where each task's
function runs; the function (``sweep.run_task``) is the same everywhere and writes its run
directories itself, exactly as a local sweep writes them. So every executor needs the run
directories on a filesystem the workers and this process share (one machine, NFS, …).

- ``local`` (the default): in this process, one task after another: the behaviour the package
  always had.
- ``ray``: each task is a Ray task (``ray.remote``) on the cluster at ``ray_address`` (or
  ``RAY_ADDRESS``), else on a local cluster started here with ``num_cpus`` CPUs. It asks for
  ``cpus_per_task`` CPUs and, for runs on CUDA, a share of a GPU (``gpus_per_task``, or the
  batch's estimated memory over the GPU's). A worker killed or lost mid-task is retried up to
  ``retries`` times by Ray itself; a task that raises is not retried (the same error would come
  back) and is reported as failed.
- ``submitit``: each task is a Submitit job: SLURM when ``sbatch`` is there, else Submitit's
  local executor (subprocesses on this machine), or ``submitit_cluster`` to choose. A job that
  dies is submitted again, up to ``retries`` times.

Thread hygiene: workers on one machine that each keep PyTorch's default thread count (one per
core) slow each other down far below an even share of the cores (5× to 30× on 2 cores,
docs/scale-out.md), so a remote task sets its own thread count to the CPUs it asked for
(``torch.set_num_threads`` and ``OMP_NUM_THREADS``).

Finished runs survive failures: each task writes its runs when it ends, the driver collects
every task that ends, and a task that keeps failing only marks its own runs as failed (their
summaries carry ``"failed": reason``; ``compare`` and ``tune`` count them as never reaching
anything). A retried task first reuses what its runs already wrote: a complete run is read,
a run with a checkpoint continues from it, the rest start again from their initial weights.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Optional, Union

from .config import ConfigError
from .stops import hearing_lost_stops, raise_if_lost, sigterm_as_interrupt

EXECUTORS = ("local", "ray", "submitit")
# what Ray's init accepts as an address, checked before anything starts (a malformed one was a traceback)
_RAY_ADDRESS = re.compile(r"auto|local|(?:ray://)?(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:]+\]):(?P<port>[0-9]{1,5})")
ENGINES = {"ray": ("ray", "ray"), "submitit": ("submitit", "slurm")}  # executor: (module, the package's extra)


# Ray waits minutes for a cluster that does not answer; a TCP connection tells in seconds.
REACH_TIMEOUT_S = 5.0


def check_reachable(address: str, label: str) -> None:
    """Refuse a HOST:PORT (or ray://HOST:PORT) where nothing accepts a connection within
    REACH_TIMEOUT_S, before anything starts."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_TIMEOUT_S).close()
    except OSError as err:
        why = (f"no answer within {REACH_TIMEOUT_S:g} s" if isinstance(err, socket.timeout)
               else err.strerror or str(err) or type(err).__name__)
        raise ConfigError(f"{label} {address}: nothing answers there ({why}); is the Ray cluster running?") from None


@dataclass(frozen=True)
class ExecutorConfig:
    kind: str = "local"  # local | ray | submitit
    ray_address: Optional[str] = None  # a Ray cluster; None: RAY_ADDRESS, else start a local cluster
    num_cpus: Optional[int] = None  # CPUs of a local Ray cluster started here; None: every core
    cpus_per_task: int = 1  # CPUs a task asks for, and the threads it trains with
    gpus_per_task: Optional[float] = None  # a GPU share per task (Ray) or GPUs per job (Submitit); None: estimated
    retries: int = 2  # times a task whose worker died is run again (Ray: max_retries)
    submitit_folder: str = "submitit-logs"  # Submitit's job files and logs; on SLURM it must be on a shared filesystem
    submitit_cluster: Optional[str] = None  # None: SLURM if there, else local; or "slurm", "local", "debug"
    slurm_partition: Optional[str] = None  # SLURM partition
    slurm_time_min: int = 60  # SLURM time limit per job, minutes

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ConfigError(f"--executor: got {self.kind!r}; allowed: {', '.join(EXECUTORS)}")
        if self.cpus_per_task < 1:
            raise ConfigError(f"--cpus-per-task: got {self.cpus_per_task}; must be >= 1")
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ConfigError(f"--num-cpus: got {self.num_cpus}; must be >= 1")
        if self.gpus_per_task is not None and not 0 <= self.gpus_per_task <= 64:
            raise ConfigError(f"--gpus-per-task: got {self.gpus_per_task}; must be in [0, 64]")
        if not 0 <= self.retries <= 100:
            raise ConfigError(f"--retries: got {self.retries}; must be in [0, 100]")
        if self.ray_address is not None:
            match = _RAY_ADDRESS.fullmatch(self.ray_address)
            if self.kind != "ray":
                raise ConfigError(f"--ray-address: only with --executor ray (got --executor {self.kind})")
            if match is None or (match.group("port") and not 1 <= int(match.group("port")) <= 65535):
                raise ConfigError(f"--ray-address: got {self.ray_address!r}; expected HOST:PORT, ray://HOST:PORT, "
                                  f"auto or local")
            if match.group("port"):
                check_reachable(self.ray_address, "--ray-address")
        elif self.kind == "ray" and _RAY_ADDRESS.fullmatch(os.environ.get("RAY_ADDRESS", "")):
            if _RAY_ADDRESS.fullmatch(os.environ["RAY_ADDRESS"]).group("port"):
                check_reachable(os.environ["RAY_ADDRESS"], "RAY_ADDRESS")
        if self.kind == "ray" and self.ray_address is None and not os.environ.get("RAY_ADDRESS"):
            cpus = self.num_cpus or os.cpu_count() or 1  # the local cluster this process would start
            if self.cpus_per_task > cpus:
                raise ConfigError(f"--cpus-per-task: got {self.cpus_per_task}; the local Ray cluster would have "
                                  f"{cpus} CPUs, so no task could start")
        if self.slurm_time_min < 1:
            raise ConfigError(f"--slurm-time: got {self.slurm_time_min}; must be >= 1 minute")
        if self.submitit_cluster not in (None, "slurm", "local", "debug"):
            raise ConfigError(f"submitit_cluster: got {self.submitit_cluster!r}; allowed: slurm, local, debug")
        if self.kind == "submitit" and self.gpus_per_task is not None and self.gpus_per_task != int(self.gpus_per_task):
            raise ConfigError(f"--gpus-per-task: got {self.gpus_per_task}; SLURM takes whole GPUs per job")
        # Refused before anything is written, not when the first task is handed over.
        module, extra = ENGINES.get(self.kind, (None, None))
        if module is not None and importlib.util.find_spec(module) is None:
            raise ConfigError(f"--executor {self.kind} needs {module}: pip install 'groktransfer[{extra}]'")


@dataclass
class Task:
    """One unit of a sweep (built by run_many, run by sweep.run_task wherever the executor puts it)."""

    jobs: list  # [(RunConfig, run directory)]
    per_stage: dict  # stage -> batch size; {} trains each job alone (run_experiment, with checkpoints)
    progress: bool = False
    plots: bool = False
    description: str = ""  # the log line of this task
    threads: Optional[int] = None  # set in the worker (remote executors)
    uses_cuda: bool = False
    memory_bytes: float = 0.0  # estimated device memory of the task's largest batch


def executor_config(value: Union[None, str, ExecutorConfig, dict], **options: Any) -> ExecutorConfig:
    """An ExecutorConfig from a name, a dict or a config (options override)."""
    if value is None:
        value = "local"
    if isinstance(value, str):
        value = ExecutorConfig(kind=value)
    elif isinstance(value, dict):
        known = {f.name for f in fields(ExecutorConfig)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ConfigError(f"executor: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        value = ExecutorConfig(**value)
    elif not isinstance(value, ExecutorConfig):
        raise ConfigError(f"executor: expected local, ray, submitit or an ExecutorConfig, got {type(value).__name__}")
    given = {k: v for k, v in options.items() if v is not None}
    return replace(value, **given) if given else value


def gpu_share(task: Task, config: ExecutorConfig, gpu_bytes: Optional[float]) -> float:
    """The GPU a task asks Ray for: none on the CPU; the configured share; else the batch's
    estimated memory over one GPU's (at least 5%, at most the whole GPU; a whole GPU when this
    process cannot see one to measure)."""
    if not task.uses_cuda:
        return 0.0
    if config.gpus_per_task is not None:
        return float(config.gpus_per_task)
    if not gpu_bytes or task.memory_bytes <= 0:
        return 1.0
    # Twice the estimate: the estimate leaves out the allocator's slack and CUDA's own context.
    return float(min(1.0, max(0.05, 2 * task.memory_bytes / gpu_bytes)))


def in_worker(function: Callable[[Task], list], task: Task, stop_file: Optional[str] = None) -> list:
    """Run ``function(task)`` with the task's thread count (what a remote worker calls). The
    previous count comes back afterwards: Submitit's debug executor runs tasks in this process.

    ``stop_file`` (a Submitit local job): a stop may come before this process can hear it.
    Submitit's job process ignores SIGTERM until the run installs its own handler, and its
    controller drops a SIGTERM that comes before it started the job; so the command writes this
    file before it signals, and a job that finds it here stops before it begins."""
    if stop_file is not None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, sigterm_as_interrupt)
        if Path(stop_file).exists():  # checked after the handler is in place: no stop falls between
            raise KeyboardInterrupt("stopped before the job began")
    if task.threads is None:
        return function(task)
    import torch

    threads, omp = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(task.threads)
    torch.set_num_threads(task.threads)
    try:
        return function(task)
    finally:
        torch.set_num_threads(threads)
        if omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = omp


Done = Callable[[int, list], None]
Failed = Callable[[int, str], None]


def run_tasks(function: Callable[[Task], list], tasks: list[Task], config: ExecutorConfig,
              on_done: Done, on_failed: Failed, log: Callable[[str], None]) -> None:
    """Run every task through the configured executor; each ends in ``on_done`` or ``on_failed``."""
    if config.kind == "local":
        for index, task in enumerate(tasks):
            log(task.description)
            on_done(index, function(task))  # an error stops the sweep, as it always has
        return
    for task in tasks:
        task.threads = config.cpus_per_task
    # A stop can be dropped by Python while this process waits (in a finalizer; Ray's start forks
    # its processes under Ray's SIGTERM handler, and an at-fork callback once swallowed one): it is
    # heard through groktransfer.stops, and the loops below poll it.
    with hearing_lost_stops():
        if config.kind == "ray":
            _run_on_ray(function, tasks, config, on_done, on_failed, log)
        else:
            _run_on_submitit(function, tasks, config, Path(config.submitit_folder), on_done, on_failed, log)


# ---------------------------------------------------------------------------------------
# Ray


def worker_pythonpath() -> str:
    """PYTHONPATH for workers on this machine: this very package first, also from a source tree."""
    root = str(Path(__file__).resolve().parents[1])
    return os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)


def _run_on_ray(function, tasks, config, on_done, on_failed, log) -> None:
    import ray  # present: ExecutorConfig checked it

    started_here = False
    # Ray's init installs a SIGTERM handler that exits with code 15; the package's stop path (exit
    # 130, like SIGINT) is put back once it returns, and a SIGTERM during init is turned into it.
    main_thread = threading.current_thread() is threading.main_thread()
    own_sigterm = signal.getsignal(signal.SIGTERM) if main_thread else None
    if not ray.is_initialized():
        address = config.ray_address or os.environ.get("RAY_ADDRESS")
        try:
            if address:
                try:
                    ray.init(address=address, log_to_driver=False)
                except Exception as error:  # noqa: BLE001 - Ray raises several types for an unusable address
                    raise ConfigError(f"--ray-address {address}: cannot join the cluster "
                                      f"({_first_line(error)})") from None
            else:
                ray.init(num_cpus=config.num_cpus, include_dashboard=False, log_to_driver=False,
                         runtime_env={"env_vars": {"PYTHONPATH": worker_pythonpath()}})
        except SystemExit as exit_:
            if exit_.code == signal.SIGTERM:
                raise KeyboardInterrupt("stopped by SIGTERM while the Ray cluster started") from None
            raise
        started_here = True
    if main_thread:
        signal.signal(signal.SIGTERM, sigterm_as_interrupt)
    try:
        raise_if_lost("stopped by SIGTERM while the Ray cluster started")
        # A task asking for more CPUs than the cluster has waits forever. A cluster started here
        # is checked before anything runs (ExecutorConfig); a joined one may autoscale, so it is said.
        cpus = ray.cluster_resources().get("CPU", 0)
        if config.cpus_per_task > cpus:
            log(f"warning: --cpus-per-task {config.cpus_per_task}: the Ray cluster has {cpus:g} CPUs now; "
                f"no task starts unless it grows")
        gpu_bytes = None
        if any(t.uses_cuda for t in tasks):
            import torch

            if torch.cuda.is_available():
                gpu_bytes = torch.cuda.get_device_properties(0).total_memory
        remote = ray.remote(in_worker)
        pending = {}
        for index, task in enumerate(tasks):
            options = dict(num_cpus=config.cpus_per_task, num_gpus=gpu_share(task, config, gpu_bytes),
                           max_retries=config.retries, retry_exceptions=False)
            log(f"{task.description} (Ray task: {options['num_cpus']} CPU, {options['num_gpus']:g} GPU)")
            pending[remote.options(**options).remote(function, task)] = index
        while pending:
            # A short wait, again and again: a stop (SIGINT/SIGTERM) is heard only when this
            # thread runs Python, and a wait without a timeout could block past it for good.
            done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            raise_if_lost()
            if not done:
                continue
            index = pending.pop(done[0])
            try:
                results = ray.get(done[0])
            except Exception as error:  # noqa: BLE001 - a failed task is reported, the others go on
                on_failed(index, _first_line(error))
            else:
                on_done(index, results)
    finally:
        if main_thread and own_sigterm is not None:
            signal.signal(signal.SIGTERM, own_sigterm)
        if started_here:
            ray.shutdown()


# ---------------------------------------------------------------------------------------
# Submitit


def _run_on_submitit(function, tasks, config, folder: Path, on_done, on_failed, log) -> None:
    import submitit  # present: ExecutorConfig checked it

    executor = submitit.AutoExecutor(folder=str(folder), cluster=config.submitit_cluster)
    gpus = config.gpus_per_task
    parameters = dict(timeout_min=config.slurm_time_min, cpus_per_task=config.cpus_per_task,
                      gpus_per_node=int(gpus) if gpus is not None else (1 if any(t.uses_cuda for t in tasks) else 0),
                      name="groktransfer")
    if config.slurm_partition is not None:
        parameters["slurm_partition"] = config.slurm_partition
    local = executor.cluster == "local"
    if local and not parameters["gpus_per_node"]:
        del parameters["gpus_per_node"]
    executor.update_parameters(**parameters)
    previous_path = os.environ.get("PYTHONPATH")
    if local:  # its jobs are subprocesses started at submission: they must import this very package
        os.environ["PYTHONPATH"] = worker_pythonpath()
    # A stop (SIGINT, or SIGTERM turned into the same) ends every job still pending: a local job's
    # controller is sent SIGTERM, which it forwards to the run, which checkpoints and stops (its
    # cancel() sends SIGINT, which the controller answers with a traceback); on SLURM, scancel.
    main_thread = threading.current_thread() is threading.main_thread()
    own_sigterm = signal.getsignal(signal.SIGTERM) if main_thread else None
    if main_thread:
        signal.signal(signal.SIGTERM, sigterm_as_interrupt)
    # A file only this command's jobs look for (see in_worker); written before any job is signalled.
    stop_file = str(folder / f"groktransfer-stop-{uuid.uuid4().hex}") if local else None
    pending = {}
    try:
        attempts = {index: 0 for index in range(len(tasks))}
        for index, task in enumerate(tasks):
            log(f"{task.description} (Submitit job on {executor.cluster})")
            pending[index] = executor.submit(in_worker, function, task, stop_file)
        while pending:
            raise_if_lost()
            finished = [i for i, job in pending.items() if job.done()]
            if not finished:
                time.sleep(0.2)
                continue
            for index in finished:
                job = pending.pop(index)
                try:
                    results = job.result()
                except Exception as error:  # noqa: BLE001 - a failed task is reported, the others go on
                    if _job_died(error) and attempts[index] < config.retries:
                        attempts[index] += 1
                        log(f"{tasks[index].description}: the job died ({_first_line(error)}); "
                            f"submitting it again ({attempts[index]}/{config.retries})")
                        pending[index] = executor.submit(in_worker, function, tasks[index], stop_file)
                    else:
                        on_failed(index, _first_line(error))
                else:
                    on_done(index, results)
    except BaseException:
        if stop_file is not None and pending:
            try:
                Path(stop_file).touch()
            except OSError:  # the jobs' folder cannot be written: the signals below still go out
                pass
        for job in pending.values():
            try:
                process = getattr(job, "_process", None) if local else None
                if process is not None:
                    process.send_signal(signal.SIGTERM)
                else:
                    job.cancel(check=False)
            except Exception:  # noqa: BLE001 - a job that already ended cannot be cancelled; the rest are
                pass
        if local:  # a local job ends within seconds of its SIGTERM (its checkpoint written); SLURM's are cancelled
            ended = [_wait_briefly(job) for job in pending.values()]
            if stop_file is not None and all(ended):
                try:
                    Path(stop_file).unlink(missing_ok=True)  # kept while a job may still start and read it
                except OSError:
                    pass
        raise
    finally:
        if main_thread and own_sigterm is not None:
            signal.signal(signal.SIGTERM, own_sigterm)
        if local:
            if previous_path is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = previous_path


def _wait_briefly(job, seconds: float = 30.0) -> bool:
    """Wait up to ``seconds`` for a local job sent SIGTERM to end; whether it did."""
    deadline = time.time() + seconds
    try:
        while not job.done():
            if time.time() >= deadline:
                return False
            time.sleep(0.1)
        return True
    except Exception:  # noqa: BLE001 - the job's state cannot be read: nothing more to wait for, it may still run
        return False


def _job_died(error: BaseException) -> bool:
    """A job whose process was killed or lost (worth another try), not one whose function raised:
    Submitit raises FailedJobError for the latter, its parent UncompletedJobError for the former."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    return isinstance(error, UncompletedJobError) and not isinstance(error, FailedJobError)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    tail = [line for line in text if line.strip()]
    return f"{type(error).__name__}: {tail[-1] if tail else ''}".strip()


__all__ = ["ENGINES", "EXECUTORS", "ExecutorConfig", "Task", "executor_config", "gpu_share", "run_tasks",
           "worker_pythonpath"]
