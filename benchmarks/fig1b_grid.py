"""Benchmark (c): end-to-end wall-clock of the paper's Fig. 1(b) hyperparameter grid.

    python benchmarks/fig1b_grid.py --fraction 0.01 --max-steps 200 --out results/bench_fig1b_grid_cpu.json
    python benchmarks/fig1b_grid.py --device cuda --precision tf32 --out $OUT/fig1b_grid.json     # full size

The grid (the issue's sizes; the paper gives only the ranges, the split is ours):

- GrokTransfer targets: 15 init scales (0.1 … 1.5) × 6 learning rates (1e-4 … 1e-1)
  × 9 weight decays (1e-4 … 5) = 810 configurations;
- scratch: 5 learning rates (1e-3 … 1e-1) × 7 weight decays (1e-2 … 5) = 35, at init 1.

All on (a+b) mod 113 with 25% training data and the paper's FNNs (the fig1b preset), early
stopping at 99% test accuracy, one seed. The weak model is trained ONCE and every
GrokTransfer configuration starts from its saved embedding (``transfer.weak_embedding_file``),
as a user sweeping target settings would; its time is included. Everything goes through
``run_many`` (the batched engine where it helps, ``--parallel``).

``--fraction F`` keeps an evenly spaced F of each grid and ``--max-steps`` caps the budget:
the CPU-sized version. The JSON records the fraction, the budget and the wall-clock, and
extrapolates nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from groktransfer.config import run_config_from_dict
from groktransfer.pipeline import WEAK_EMBEDDING_FILE, run_experiment
from groktransfer.presets import load_preset
from groktransfer.records import environment
from groktransfer.sweep import parse_parallel, run_many
from groktransfer.training import resolve_device

GT_INITS = [round(0.1 * i, 1) for i in range(1, 16)]
GT_LRS = [1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 1e-1]
WDS = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 2.0, 3.0, 4.0, 5.0]
SCRATCH_LRS = [1e-3, 5e-3, 1e-2, 5e-2, 1e-1]
SCRATCH_WDS = [1e-2, 1e-1, 1.0, 2.0, 3.0, 4.0, 5.0]


def evenly(items: list, fraction: float) -> list:
    n = max(1, round(len(items) * fraction))
    return [items[round(i * (len(items) - 1) / max(1, n - 1))] for i in range(n)] if n > 1 else [items[len(items) // 2]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="full", choices=["full", "tf32", "bf16"])
    parser.add_argument("--fraction", type=float, default=1.0, help="evenly spaced share of each grid to run")
    parser.add_argument("--max-steps", type=int, help="step budget per run (default: the preset's 10^4)")
    parser.add_argument("--parallel", default="auto")
    parser.add_argument("--work", help="directory for the run directories (default: a temporary one, removed)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="weak model test accuracy")
    parallel = parse_parallel(args.parallel)
    device = resolve_device(args.device)
    preset = load_preset("fig1b").to_dict()
    preset["device"] = args.device
    for stage in ("weak", "target", "scratch"):
        preset[stage]["train"]["precision"] = args.precision
        preset[stage]["train"]["diagnostics"] = False
        if args.max_steps is not None:
            preset[stage]["train"]["max_steps"] = args.max_steps

    gt_grid = [(i, lr, wd) for i in GT_INITS for lr in GT_LRS for wd in WDS]
    scratch_grid = [(1.0, lr, wd) for lr in SCRATCH_LRS for wd in SCRATCH_WDS]
    gt_grid, scratch_grid = evenly(gt_grid, args.fraction), evenly(scratch_grid, args.fraction)

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gt-fig1b-"))
    try:
        start = time.perf_counter()
        weak_config = run_config_from_dict(dict(preset, target=None, scratch=None, name="fig1b-weak"))
        run_experiment(weak_config, work / "weak", overwrite=True, plots=False)
        weak_s = time.perf_counter() - start
        jobs = []
        for i, (init, lr, wd) in enumerate(gt_grid):
            data = json.loads(json.dumps(preset))
            data.update(name=f"gt-{i}", weak=None, scratch=None)
            data["transfer"] = {"weak_embedding_file": str(work / "weak" / WEAK_EMBEDDING_FILE)}
            data["target"]["model"]["init_scale"] = init
            data["target"]["train"].update(lr=lr, weight_decay=wd)
            jobs.append((run_config_from_dict(data), work / "gt" / f"{i:04d}"))
        for i, (init, lr, wd) in enumerate(scratch_grid):
            data = json.loads(json.dumps(preset))
            data.update(name=f"scratch-{i}", weak=None, target=None)
            data["scratch"]["model"]["init_scale"] = init
            data["scratch"]["train"].update(lr=lr, weight_decay=wd)
            jobs.append((run_config_from_dict(data), work / "scratch" / f"{i:04d}"))
        summaries = run_many(jobs, parallel=parallel, log=lambda m: print(m, flush=True))
        total_s = time.perf_counter() - start
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)

    def reached(kind: str) -> int:
        return sum(1 for (c, _), s in zip(jobs, summaries) if c.name.startswith(kind)
                   and next(iter(v for k, v in s["stages"].items() if k != "weak"))["test_acc_99_step"] is not None)

    steps = sum(stage["steps"] for s in summaries for stage in s["stages"].values())
    record = {
        "benchmark": "fig1b_grid", "command": "python " + " ".join(sys.argv), "precision": args.precision,
        "environment": environment(device), "threads": torch.get_num_threads(), "parallel": args.parallel,
        "fraction": args.fraction, "max_steps": preset["target"]["train"]["max_steps"],
        "groktransfer_configs": len(gt_grid), "scratch_configs": len(scratch_grid),
        "full_grid": {"groktransfer_configs": 15 * 6 * 9, "scratch_configs": 5 * 7},
        "weak_stage_s": weak_s, "total_wall_clock_s": total_s, "run_steps": steps,
        "run_steps_per_s": steps / total_s,
        "groktransfer_reached_99": reached("gt-"), "scratch_reached_99": reached("scratch-"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "environment"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
