"""Benchmark: a sweep through the local executor and through a local Ray cluster; thread oversubscription.

    python benchmarks/executors.py --out results/bench_executors_cpu.json
    python benchmarks/speed_table.py results/bench_executors_cpu.json

(a) The same sweep (``--runs`` seeds of the demo's scratch FNN, trained one run per task, the
    way ``auto`` trains it on a CPU) through ``run_many`` twice: locally (one process, PyTorch's
    default threads) and on a local Ray cluster of ``--workers`` CPUs (one task per CPU, one
    thread each). Both write their run directories; the ratio compares the two wall-clocks, and
    the Ray time is given with and without starting the cluster.
(b) Oversubscription: N training processes at once, each with PyTorch's default thread count
    (one per core) and each with one thread, against one process alone. Each process trains
    the demo's target-sized FNN for ``--seconds`` and reports its steps per second.

Not a test: timings depend on the machine, which the JSON records.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from groktransfer.compare import load_comparison, method_run_config  # noqa: E402
from groktransfer.executors import ExecutorConfig  # noqa: E402
from groktransfer.records import environment  # noqa: E402
from groktransfer.sweep import run_many  # noqa: E402


def sweep(runs: int, steps: int, workers: int) -> dict:
    spec = load_comparison("demo", [f"train.max_steps={steps}", "train.stop_at_test_acc=null", "train.eval_every=100"])
    configs = [method_run_config(spec, "scratch", seed) for seed in range(runs)]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run_many([(c, Path(tmp) / "local" / f"seed{i}") for i, c in enumerate(configs)], parallel=1)
        local_s = time.perf_counter() - start

        import ray

        start = time.perf_counter()
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
        cluster_s = time.perf_counter() - start
        try:
            start = time.perf_counter()
            run_many([(c, Path(tmp) / "ray" / f"seed{i}") for i, c in enumerate(configs)], parallel=1,
                     executor=ExecutorConfig(kind="ray", cpus_per_task=1))
            ray_s = time.perf_counter() - start
        finally:
            ray.shutdown()
    return {"runs": runs, "steps": steps, "workers": workers, "local_s": local_s, "ray_s": ray_s,
            "ray_cluster_start_s": cluster_s, "speedup": local_s / ray_s,
            "speedup_with_cluster_start": local_s / (ray_s + cluster_s)}


WORKER = """
import sys, time, torch
sys.path.insert(0, {root!r})
import groktransfer as gt
from groktransfer.tasks import ModularTask
torch.manual_seed(0)
task = ModularTask("add", 47, 0.4)
model = gt.FNN(47, 47, embed_dim=64, width=256, depth=2)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
steps, start = 0, time.perf_counter()
while time.perf_counter() - start < {seconds}:
    loss = torch.nn.functional.cross_entropy(model(task.x_train), task.y_train)
    opt.zero_grad(); loss.backward(); opt.step(); steps += 1
print(steps / (time.perf_counter() - start))
"""


def concurrent(processes: int, threads: int | None, seconds: float) -> list[float]:
    """Steps/s of each of ``processes`` processes started together (threads None: PyTorch's default)."""
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    code = WORKER.format(root=str(ROOT), seconds=seconds)
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(processes)]
    return [float(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    record = {"benchmark": "executors", "command": "python " + " ".join(sys.argv),
              "environment": environment(torch.device("cpu")), "cores": cores}
    record["sweep"] = sweep(args.runs, args.steps, args.workers)
    print(json.dumps(record["sweep"], indent=1))
    rows = []
    for processes, threads in ((1, None), (cores, None), (cores, 1), (2 * cores, None), (2 * cores, 1)):
        rates = concurrent(processes, threads, args.seconds)
        rows.append({"processes": processes, "threads": "default" if threads is None else threads,
                     "steps_per_s_each": sum(rates) / len(rates), "steps_per_s_total": sum(rates)})
        print(rows[-1])
    alone = rows[0]["steps_per_s_each"]
    for row in rows:
        row["each_vs_alone"] = row["steps_per_s_each"] / alone
    record["oversubscription"] = rows
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
