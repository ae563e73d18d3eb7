"""Benchmark: train.compile (torch.compile of the step) against eager, one run and a batch.

    python benchmarks/compile.py --out results/bench_compile_cpu.json
    python benchmarks/compile.py --device cuda --out $OUT/bench_compile_cuda.json

For each model and K (K = 1 is ``train``, K > 1 is ``train_many``), eager and compiled runs
of the same initial weights are timed for ``--steps`` steps, alternating eager / compiled
over ``--repeats`` rounds (medians recorded). Two numbers per mode: the whole run, which
includes the compilation, and ms per step after the first tenth of the run (read from the
run's evaluation clock, evaluations every tenth), the steady state once compiled. The JSON
records both, the hardware, torch version and precision. Not a test: timings depend on the
machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from groktransfer.engine import train_many
from groktransfer.records import atomic_write_text, environment
from groktransfer.engine import train
from groktransfer.training import resolve_device

sys.path.insert(0, str(Path(__file__).resolve().parent))
from multirun import MODELS, _specs, _sync  # noqa: E402  (the same models as the multi-run benchmark)


def _time(name: str, k: int, steps: int, device: torch.device, precision: str, compile_on: bool) -> tuple[float, float]:
    """(seconds for the whole run, ms per step after the first tenth of the run)."""
    specs = _specs(name, k, steps, device, precision)
    warm = steps // 10  # evaluations at 0, warm, 2·warm, ...: the clock is read at each
    for spec in specs:
        spec.train = dataclasses.replace(spec.train, compile=compile_on, eval_every=warm)
    torch._dynamo.reset()  # every measurement pays its own compilation
    _sync(device)
    start = time.perf_counter()
    if k == 1:
        results = [train(specs[0].model, specs[0].task, specs[0].train)]
    else:
        results = train_many(specs)
    _sync(device)
    elapsed = time.perf_counter() - start
    if compile_on and not all(r.compiled for r in results):
        raise SystemExit("compile fell back to eager; nothing to measure")
    times = {row["step"]: row["elapsed_s"] for row in results[0].history}
    return elapsed, 1000 * (times[steps] - times[warm]) / (steps - warm)


def measure(name: str, k: int, steps: int, repeats: int, device: torch.device, precision: str) -> dict:
    times = {mode: [] for mode in ("eager", "compiled")}
    for _ in range(repeats):
        for mode in times:
            times[mode].append(_time(name, k, steps, device, precision, mode == "compiled"))
    row = {"model": name, "k": k, "steps": steps, "repeats": repeats}
    for mode, values in times.items():
        row[f"{mode}_total_s"] = statistics.median(v[0] for v in values)
        row[f"{mode}_ms_per_step"] = statistics.median(v[1] for v in values)
    row["steady_speedup"] = row["eager_ms_per_step"] / row["compiled_ms_per_step"]
    row["end_to_end_speedup"] = row["eager_total_s"] / row["compiled_total_s"]
    print(f"{name:13s} K={k:3d} eager {row['eager_ms_per_step']:.2f} ms/step, compiled "
          f"{row['compiled_ms_per_step']:.2f} ms/step (x{row['steady_speedup']:.2f} after warm-up); "
          f"{steps} steps end to end {row['eager_total_s']:.1f} s vs {row['compiled_total_s']:.1f} s "
          f"(x{row['end_to_end_speedup']:.2f})", flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="full", choices=["full", "tf32", "bf16"])
    parser.add_argument("--models", default="demo-weak,demo-target", help=f"from {', '.join(MODELS)}")
    parser.add_argument("--ks", default="1,8")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    rows = [measure(name, int(k), args.steps, args.repeats, device, args.precision)
            for name in args.models.split(",") for k in args.ks.split(",")]
    report = {"benchmark": "compile", "precision": args.precision, "threads": torch.get_num_threads(), "environment": environment(device),
              "command": "python " + " ".join(sys.argv), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out), json.dumps(report, indent=2))
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
