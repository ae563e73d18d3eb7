"""How long the paper-scale sweeps would take, from measured step costs: runs × steps ÷ (run-steps/s × workers).

    python scripts/projection.py      # writes results/projection/table.md and projection.json

Inputs, each read from a stored benchmark (none typed here):
- CPU: one run of the paper's target FNN (p = 113, 128 / 2 × 512) on a 2-core machine,
  results/bench_multirun_cpu.json (K = 1, steps/s); a worker is such a 2-core slot.
- GPU: the run-steps per second of the Fig. 1(b) sweep on one H200 (a quarter of the grid,
  batched, TF32, evaluation included), results/gpu-h200-20261129/fig1b_grid.json.

Every run is counted at its whole budget (10⁴ steps, the paper's): an upper bound, since a run
stops once it reaches 99% test (the measured quarter grid averaged the fraction of its budget
given in the table). Scaling is assumed linear in workers, with no scheduling overhead; the
Ray benchmark in docs/speed.md shows what one machine's overhead looks like.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "projection"
CPU_RECORD = "results/bench_multirun_cpu.json"
GPU_RECORD = "results/gpu-h200-20261129/fig1b_grid.json"
STEPS = 10_000  # the paper's budget per run
# The paper's hyperparameter grid per method (16 × 8 × 9) and the seven methods compared here.
PAPER_GRID = 16 * 8 * 9
METHODS = 7
SWEEPS = (
    ("Fig. 1(b) grid (810 GrokTransfer + 35 scratch)", 845),
    (f"full grid, {METHODS} methods × {PAPER_GRID} configurations, 1 seed", METHODS * PAPER_GRID),
    (f"full grid, {METHODS} methods × {PAPER_GRID} configurations, 10 seeds", METHODS * PAPER_GRID * 10),
)
CPU_WORKERS = (1, 32)  # 2-core slots: this machine, a 64-core node
GPU_WORKERS = (1, 8)


def hours(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def main() -> int:
    cpu = json.loads((ROOT / CPU_RECORD).read_text())
    gpu = json.loads((ROOT / GPU_RECORD).read_text())
    cpu_rate = next(r["one_run_steps_per_s"] for r in cpu["throughput"] if r["model"] == "paper-target" and r["k"] == 1)
    gpu_rate = gpu["run_steps_per_s"]
    quarter_runs = gpu["groktransfer_configs"] + gpu["scratch_configs"]
    used = gpu["run_steps"] / (quarter_runs * gpu["max_steps"])
    header = (["sweep", "runs", "run-steps (≤)"] + [f"CPU, {w} × 2 cores" for w in CPU_WORKERS]
              + [f"{w} × H200" for w in GPU_WORKERS])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = []
    for name, runs in SWEEPS:
        run_steps = runs * STEPS
        cells = [hours(run_steps / (cpu_rate * w)) for w in CPU_WORKERS] + [hours(run_steps / (gpu_rate * w)) for w in GPU_WORKERS]
        lines.append(f"| {name} | {runs:,} | {run_steps:.2g} | " + " | ".join(cells) + " |")
        rows.append({"sweep": name, "runs": runs, "run_steps": run_steps, "cells": dict(zip(header[3:], cells))})
    lines += ["", f"Rates: CPU {cpu_rate:.1f} steps/s per 2-core slot ({CPU_RECORD}); GPU {gpu_rate:.0f} run-steps/s "
                  f"per H200 ({GPU_RECORD}). Runs counted at their whole {STEPS:,}-step budget; the measured quarter "
                  f"grid (budget {gpu['max_steps']}) used {used:.0%} of the run-steps its budget allowed (runs stop at 99% test)."]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "table.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (OUT / "projection.json").write_text(json.dumps({
        "command": "python scripts/projection.py", "inputs": {"cpu": CPU_RECORD, "gpu": GPU_RECORD},
        "cpu_steps_per_s_per_slot": cpu_rate, "gpu_run_steps_per_s": gpu_rate, "steps_per_run": STEPS,
        "quarter_grid_fraction_of_budget_used": used, "rows": rows}, indent=2) + "\n", encoding="utf-8")
    print("\n".join(lines))
    print(f"\nwritten: {OUT / 'table.md'}, {OUT / 'projection.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
