"""Benchmark: where a default weak stage's time goes, op by op (torch's profiler), at p = 113.

    OMP_NUM_THREADS=1 python benchmarks/weak_step_profile.py --out results/bench_weak_step_profile_cpu.json

One default weak candidate (FNN 8/32, full batch; since 2026-12-04 x² at lr 0.05, and the
committed record, made before, the ReLU one at lr 0.03: an x² step costs what a ReLU step does,
the same products and one elementwise op) on (a·b) mod 113 with 25% of the
pairs for training, trained for 500 steps with its evaluations, once to warm up and once under
torch.profiler. Writes the ops' shares of the profiled CPU time (self time, largest first) as
JSON and as a Markdown table beside it (.md), which docs/weak-stage.md shows: whether a weak
step is bound by its arithmetic (matrix products) or by overheads a faster loop could remove.
Not a test: timings depend on the machine, which the JSON records.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import groktransfer as gt
from groktransfer.config import WeakStageConfig
from groktransfer.records import atomic_write_text, environment
from groktransfer.weak_stage import train_weak_stages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=6000)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--rows", type=int, default=8, help="ops shown in the table (the rest summed)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    from torch.profiler import ProfilerActivity, profile

    stage = WeakStageConfig()
    stage.train.stop_at_test_acc, stage.train.max_steps = None, args.steps  # exactly this many steps
    stage.max_rounds, stage.if_none_ready = 1, "transfer_best"
    task = gt.ModularTask(op="mul", p=113, train_fraction=0.25, data_seed=args.seed)
    train_weak_stages([(stage, task, args.seed)])  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        outcome = train_weak_stages([(stage, task, args.seed)])[0]
    ops = sorted(((e.key, e.self_cpu_time_total) for e in prof.key_averages()), key=lambda kv: -kv[1])
    total = sum(us for _, us in ops)
    shown = ops[: args.rows]
    rest = total - sum(us for _, us in shown)
    record = {"command": "python benchmarks/weak_step_profile.py " + " ".join(sys.argv[1:]), "seed": args.seed,
              "steps": args.steps, "stage_wall_clock_s": outcome.wall_clock_s, "total_self_cpu_us": total,
              "ops": [{"op": k, "self_cpu_us": us, "share": us / total} for k, us in ops],
              "environment": environment(torch.device("cpu"))}
    atomic_write_text(Path(args.out), json.dumps(record, indent=2) + "\n")
    lines = ["| op | share of the profiled CPU time | µs per step |", "|---|---|---|"]
    lines += [f"| `{k}` | {us / total:.0%} | {us / args.steps:.0f} |" for k, us in shown]
    lines.append(f"| everything else | {rest / total:.0%} | {rest / args.steps:.0f} |")
    atomic_write_text(Path(args.out).with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
