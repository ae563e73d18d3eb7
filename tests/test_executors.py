"""Sweeps through real engines: a local Ray cluster and Submitit's local executor write the same
run directories as the local executor, a killed worker is retried, a failing task is reported."""

import csv
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

from groktransfer.cli import main
from groktransfer.config import ConfigError
from groktransfer.executors import ExecutorConfig, Task, executor_config, gpu_share, worker_pythonpath
from groktransfer.sweep import run_many

# 3 methods × 2 seeds: scratch and GrokFast-EMA train one run per task, GrokTransfer's two seeds
# train as one batch (weak ×2), so the sweep has 5 tasks of two kinds.
TINY = ["task.p=11", "task.train_fraction=0.5", "train.max_steps=300", "weak.train.max_steps=200",
        "train.eval_every=10", "weak.max_rounds=1", "weak.if_none_ready=transfer_best"]
COMPARE = ["compare", "--spec", "demo", "--methods", "scratch,grokfast-ema,groktransfer", "--seeds", "2",
           "--no-progress", *TINY]


def metrics_without_time(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in csv.DictReader(handle)]


def assert_same_runs(expected: Path, got: Path) -> None:
    runs = sorted(p.parent.relative_to(expected) for p in expected.glob("runs/*/seed*/metrics.csv"))
    assert len(runs) == 6
    for run in runs:
        assert metrics_without_time(got / run) == metrics_without_time(expected / run), run
        assert (got / run / "summary.json").is_file() and (got / run / "config.yaml").is_file()


@pytest.fixture(scope="module")
def local_result(tmp_path_factory):
    """The local executor's output, trained with the one thread a remote task uses (the float sums
    of a matrix product depend on the thread count)."""
    out = tmp_path_factory.mktemp("local") / "cmp"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*COMPARE, "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": worker_pythonpath()}})
    yield ray
    ray.shutdown()


def test_executor_options_are_checked():
    assert executor_config(None) == ExecutorConfig()
    assert executor_config("ray", cpus_per_task=2, num_cpus=4, retries=None).cpus_per_task == 2
    for bad in ({"kind": "dask"}, {"cpus_per_task": 0}, {"retries": -1}, {"gpus_per_task": -0.5},
                {"slurm_time_min": 0}, {"submitit_cluster": "pbs"}, {"nope": 1},
                {"kind": "submitit", "gpus_per_task": 0.5}):
        with pytest.raises(ConfigError):
            executor_config(bad)


def test_a_task_larger_than_the_local_ray_cluster_is_refused_before_it_starts(monkeypatch):
    """It would wait forever for CPUs the cluster this process starts can never have."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(ConfigError, match="--cpus-per-task: got 3; the local Ray cluster would have 2 CPUs"):
        executor_config("ray", num_cpus=2, cpus_per_task=3)
    import socket

    with socket.create_server(("127.0.0.1", 0)) as head:  # something that answers, as a cluster's head does
        address = f"127.0.0.1:{head.getsockname()[1]}"
        executor_config("ray", ray_address=address, cpus_per_task=64)  # a cluster joined may be larger (or grow)


def test_a_ray_address_where_nothing_answers_is_refused_in_seconds(monkeypatch):
    """Ray itself waits minutes (and retries) for a cluster that is not there."""
    import socket
    import time

    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]  # free once closed: nothing listens there
    started = time.time()
    with pytest.raises(ConfigError, match=f"--ray-address 127.0.0.1:{port}: nothing answers there"):
        executor_config("ray", ray_address=f"127.0.0.1:{port}")
    monkeypatch.setenv("RAY_ADDRESS", f"ray://127.0.0.1:{port}")
    with pytest.raises(ConfigError, match=f"RAY_ADDRESS ray://127.0.0.1:{port}: nothing answers there"):
        executor_config("ray")
    assert time.time() - started < 12


def test_gpu_share_follows_the_batch_memory():
    cpu = Task([], {}, uses_cuda=False, memory_bytes=1e9)
    gpu = Task([], {}, uses_cuda=True, memory_bytes=10e9)
    assert gpu_share(cpu, ExecutorConfig(kind="ray"), 80e9) == 0.0
    assert gpu_share(gpu, ExecutorConfig(kind="ray"), 80e9) == pytest.approx(0.25)  # twice the estimate
    assert gpu_share(Task([], {}, uses_cuda=True, memory_bytes=1e3), ExecutorConfig(kind="ray"), 80e9) == 0.05
    assert gpu_share(gpu, ExecutorConfig(kind="ray"), 10e9) == 1.0
    assert gpu_share(gpu, ExecutorConfig(kind="ray"), None) == 1.0  # no GPU here to measure: a whole one
    assert gpu_share(gpu, ExecutorConfig(kind="ray", gpus_per_task=0.5), 80e9) == 0.5


def test_bad_executor_options_exit_2_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main([*COMPARE, "--out", str(out), "--executor", "ray", "--cpus-per-task", "0"]) == 2
    assert "--cpus-per-task" in capsys.readouterr().err and not out.exists()


def test_an_executor_without_a_sweep_is_refused(tmp_path, capsys):
    out = tmp_path / "one"
    assert main(["run", "--preset", "demo", "--out", str(out), "--executor", "ray"]) == 2
    assert "only with --seeds" in capsys.readouterr().err and not out.exists()


def test_a_missing_engine_is_named_with_its_extra_before_anything_is_written(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("ray", "submitit") else real(name, *a))
    out = tmp_path / "cmp"
    assert main([*COMPARE, "--out", str(out), "--executor", "ray"]) == 2
    assert "groktransfer[ray]" in capsys.readouterr().err and not out.exists()
    with pytest.raises(ConfigError, match=r"groktransfer\[slurm\]"):
        ExecutorConfig(kind="submitit")


def test_compare_on_a_local_ray_cluster_equals_the_local_executor(tmp_path, local_result, ray_cluster, capsys):
    out = tmp_path / "cmp"
    assert main([*COMPARE, "--out", str(out), "--executor", "ray"]) == 0
    assert "Ray task: 1 CPU, 0 GPU" in capsys.readouterr().out
    assert_same_runs(local_result, out)
    assert ray_cluster.is_initialized()  # a cluster the caller started is left running


def _worker_pids(function_name: str) -> list[int]:
    """Processes whose title Ray set to ``ray::<function>`` while they run it."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if title.startswith(f"ray::{function_name}"):
                pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds Ray's worker through /proc")
def test_a_worker_killed_mid_task_is_retried_and_the_result_is_unchanged(tmp_path, ray_cluster):
    # Two scratch runs long enough (3,000 steps, a few seconds each) to be killed in the middle.
    longer = ["compare", "--spec", "demo", "--methods", "scratch", "--seeds", "2", "--no-progress",
              "task.p=11", "task.train_fraction=0.5", "train.max_steps=3000", "train.eval_every=100"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*longer, "--out", str(tmp_path / "local")]) == 0
    finally:
        torch.set_num_threads(threads)
    killed = []

    def kill_a_worker_mid_task() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            for pid in _worker_pids("in_worker"):
                time.sleep(0.5)
                if pid in _worker_pids("in_worker"):  # still inside the task
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker_mid_task)
    killer.start()
    out = tmp_path / "ray"
    try:
        assert main([*longer, "--out", str(out), "--executor", "ray", "--retries", "2"]) == 0
    finally:
        killer.join()
    assert killed, "no Ray worker was seen running a task"
    for seed in (0, 1):
        run = Path("runs") / "scratch" / f"seed{seed}"
        assert metrics_without_time(out / run) == metrics_without_time(tmp_path / "local" / run)


def test_a_task_that_keeps_failing_is_reported_and_the_others_are_kept(tmp_path, ray_cluster):
    from groktransfer.compare import load_comparison, method_run_config

    spec = load_comparison("demo", TINY)
    config = method_run_config(spec, "scratch", 0)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    jobs = [(config, tmp_path / "good"), (method_run_config(spec, "scratch", 1), blocker / "run")]
    messages = []
    summaries = run_many(jobs, parallel=1, executor="ray", log=messages.append)
    assert summaries[0]["complete"] and (tmp_path / "good" / "summary.json").is_file()
    assert summaries[1]["complete"] is False and summaries[1]["failed"]
    assert any("failed" in m for m in messages)


def test_compare_through_submitits_local_executor_equals_the_local_executor(tmp_path, local_result):
    pytest.importorskip("submitit")
    out = tmp_path / "cmp"
    config = ExecutorConfig(kind="submitit", submitit_cluster="local", submitit_folder=str(tmp_path / "jobs"))
    from groktransfer.compare import load_comparison, run_comparison

    spec = load_comparison("demo", TINY)
    path = os.environ.get("PYTHONPATH")
    run_comparison(spec, ["scratch", "grokfast-ema", "groktransfer"], [0, 1], out, executor=config)
    assert_same_runs(local_result, out)
    assert os.environ.get("PYTHONPATH") == path  # set for the job subprocesses only while they run
    assert any((tmp_path / "jobs").iterdir())  # the jobs' files and logs


def test_a_reproduction_runs_its_sweep_on_the_executor_it_is_given(tmp_path):
    """What `reproduce --executor` relies on: the executor is an argument that reaches the sweep
    of a reproduction made of several runs (here Fig. 3's three encodings, tiny)."""
    pytest.importorskip("submitit")
    from groktransfer.reproduce import reproduce

    jobs = tmp_path / "jobs"
    threads = torch.get_num_threads()
    record = reproduce("fig3", tmp_path / "fig3", quick=True, parallel=1,
                       overrides=["p=11", "max_steps=20", "width=16", "probe=4", "eval_every=10"],
                       executor=ExecutorConfig(kind="submitit", submitit_cluster="debug", submitit_folder=str(jobs)))
    assert record["size"] == "quick" and set(record["measured"]) == {"one_hot", "binary", "fourier"}
    assert jobs.is_dir() and any(jobs.iterdir())  # the runs went through Submitit (its job files and logs)
    assert torch.get_num_threads() == threads  # the debug executor ran the tasks here: threads restored
    # Without an executor it runs here: no new job files.
    before = sorted(jobs.rglob("*"))
    local = reproduce("fig3", tmp_path / "fig3-local", quick=True, parallel=1,
                      overrides=["p=11", "max_steps=20", "width=16", "probe=4", "eval_every=10"])
    assert sorted(jobs.rglob("*")) == before
    # The same numbers, to float32 rounding: a Submitit task runs with its own thread count
    # (cpus_per_task), and a reduction over a different number of threads rounds differently
    # (the eNTK's kernel movement differed in its 8th digit).
    assert _close(local["measured"], record["measured"])


def _close(a, b, rel: float = 1e-5) -> bool:
    """Equal structure and non-float values; floats equal to ``rel``."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rel) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=rel)
    return a == b


def test_a_job_that_finds_its_stop_file_stops_before_it_begins(tmp_path):
    """A stop that comes while a Submitit local job is still starting is not heard by it (its job
    process ignores SIGTERM until the run listens): the command writes the stop file first, and a
    job that finds it never calls its function; without the file it runs as usual."""
    from groktransfer.executors import in_worker

    called = []
    task = Task(jobs=[], per_stage={}, description="t")
    stop = tmp_path / "groktransfer-stop-x"
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert in_worker(lambda t: called.append(t) or [1], task, str(stop)) == [1]
        stop.touch()
        with pytest.raises(KeyboardInterrupt):
            in_worker(lambda t: called.append(t) or [2], task, str(stop))
        assert called == [task]
        with pytest.raises(KeyboardInterrupt):  # and a SIGTERM is heard from the job's first line
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    finally:
        signal.signal(signal.SIGTERM, previous)
