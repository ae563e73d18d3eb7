"""Benchmark: the weak stage before and after the faster defaults, at p = 113 (25% train).

    python benchmarks/weak_stage.py --seeds 500-504 --out results/bench_weak_stage_cpu.json

"before" is the weak stage of the earlier defaults (a population of 4 weak FNNs 8/32 trained as
one vmapped batch, lr 0.01, wd 1, until the first reaches 95% test accuracy with a ready
embedding, 3 rounds of up to 5,000 steps; evaluated every step up to 100, then every 50).
"after" is today's default: one candidate at a time at lr 0.03, stopped at its first evaluation
the readiness rule accepts, a fresh one after 1,000 steps (up to 5 rounds), evaluated every 10
steps. Both run the whole stage (every round) through groktransfer.weak_stage.train_weak_stages
on the same seeds and splits, in one process, alternating before/after so that drift in the
machine's speed hits both. Reported per run: the stage's wall-clock (as the comparisons charge
it), its steps and whether it delivered; and the median ratio after/before. Not a test:
timings depend on the machine, which the JSON records.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from groktransfer.config import TaskConfig, WeakStageConfig, from_dict
from groktransfer.records import atomic_write_text, environment
from groktransfer.tasks import build_task
from groktransfer.weak_stage import train_weak_stages

BEFORE = {"population": 4, "max_rounds": 3, "stop_when_ready": False,
          "train": {"lr": 0.01, "weight_decay": 1.0, "max_steps": 5000, "stop_at_test_acc": 0.95,
                    "eval_dense_until": 100, "eval_every": 50}}
AFTER: dict = {}  # today's defaults


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def one(settings: dict, op: str, seed: int) -> dict:
    stage = from_dict(WeakStageConfig, settings)
    task = build_task(from_dict(TaskConfig, {"op": op, "p": 113, "train_fraction": 0.25, "data_seed": seed}))
    start = time.perf_counter()
    outcome = train_weak_stages([(stage, task, seed)])[0]
    return {"op": op, "seed": seed, "wall_clock_s": outcome.wall_clock_s, "process_s": time.perf_counter() - start,
            "rounds": outcome.rounds, "ready": outcome.ready,
            "steps": outcome.chosen.result.steps if outcome.chosen else None,
            "candidate_steps": sum(c.result.steps for c in outcome.candidates),
            "flops": sum(c.result.flops for c in outcome.candidates)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="500-502")
    parser.add_argument("--ops", default="add,mul")
    parser.add_argument("--out", default="results/bench_weak_stage_cpu.json")
    args = parser.parse_args()
    rows = []
    for op in args.ops.split(","):
        for seed in parse_seeds(args.seeds):
            before, after = one(BEFORE, op, seed), one(AFTER, op, seed)
            rows.append({"op": op, "seed": seed, "before": before, "after": after,
                         "ratio_wall_clock": after["wall_clock_s"] / before["wall_clock_s"]})
            print(f"{op} seed {seed}: before {before['wall_clock_s']:.2f} s ({before['steps']} steps, "
                  f"{before['rounds']} round(s)), after {after['wall_clock_s']:.2f} s ({after['steps']} steps, "
                  f"{after['rounds']} round(s)), ratio {rows[-1]['ratio_wall_clock']:.2f}", flush=True)
    summary = {"median_ratio_wall_clock": statistics.median(r["ratio_wall_clock"] for r in rows),
               "median_before_s": statistics.median(r["before"]["wall_clock_s"] for r in rows),
               "median_after_s": statistics.median(r["after"]["wall_clock_s"] for r in rows),
               "ratio_of_medians_flops": statistics.median(r["after"]["flops"] for r in rows)
               / statistics.median(r["before"]["flops"] for r in rows)}
    record = {"benchmark": "weak_stage", "command": "python " + " ".join(sys.argv), "before": BEFORE,
              "after": "the defaults", **summary, "rows": rows, **environment(torch.device("cpu"))}
    atomic_write_text(Path(args.out), json.dumps(record, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
