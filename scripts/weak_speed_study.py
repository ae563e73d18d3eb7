"""How fast can a weak model deliver a ready embedding? A grid of weak training settings at the
paper's task size (p = 113, 25% train), both operations.

    python scripts/weak_speed_study.py [--seeds 300-305] [--out results/weak-speed]

Every (setting, operation, seed) is ONE weak candidate (the default weak FNN, embedding 8,
width 32); the seeds of one setting train as one batch (groktransfer.engine.train_many).
Each candidate is evaluated every 10 steps (no dense phase) and stops at the first evaluation
where the default readiness rule accepts its embedding (the weak stage's ``stop_when_ready``),
at ``--stop`` test accuracy, or at its step budget; its embedding is then judged. Written per candidate: the steps to its stop, whether it was ready,
and its FLOPs; per setting: how often it delivered, median steps, and the expected cost of a
population of 1, 2 and 4 until one candidate is ready (measured, not modelled: the population's
cost is its candidates' steps up to the first ready one, summed over the population).

The target is not trained here: scripts/weak_stage_study.py readiness-fast does that for the
settings this study picks.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from groktransfer.config import ReadinessConfig, WeakStageConfig, from_dict, TaskConfig
from groktransfer.models import build_model
from groktransfer.engine import RunSpec, train_many
from groktransfer.readiness import judge_readiness, weak_report
from groktransfer.records import atomic_write_text, environment
from groktransfer.tasks import build_task
from groktransfer.weak_stage import ready_now

# (lr, weight decay): today's default (0.01, 1) and faster ones; AdamW's decay per step is lr × wd.
SETTINGS = ((0.01, 1.0), (0.02, 1.0), (0.03, 1.0), (0.05, 1.0), (0.01, 3.0), (0.02, 2.0), (0.02, 3.0),
            (0.03, 2.0), (0.03, 3.0), (0.05, 2.0))


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def population_cost(steps_ready: list, k: int) -> list:
    """Cost in candidate-steps of a population of k (consecutive seeds) until its first ready
    candidate, for each group of k seeds; None when no candidate of the group was ready."""
    out = []
    for start in range(0, len(steps_ready) - k + 1, k):
        group = steps_ready[start:start + k]
        ready = [s for s, r in group if r]
        if not ready:
            out.append(None)
            continue
        first = min(ready)
        out.append(sum(min(s, first) for s, _ in group))
    return out


def train_setting(op: str, lr: float, wd: float, seeds: list[int], args) -> list[dict]:
    """One candidate per seed at (lr, wd), trained as one batch; a row per candidate."""
    specs, keys = [], []
    for seed in seeds:
        stage = from_dict(WeakStageConfig, {"train": {
            "lr": lr, "weight_decay": wd, "max_steps": args.max_steps, "stop_at_test_acc": args.stop,
            "eval_every": 10, "eval_dense_until": 0, "diagnostics": False}})
        task = build_task(from_dict(TaskConfig, {"op": op, "p": 113, "train_fraction": 0.25, "data_seed": seed}))
        model = build_model(stage, task, seed)
        specs.append(RunSpec(model, task, stage.train, seed=seed, stage="weak"))
        keys.append((seed, stage, task, model))

    def stop_check(run: int, row: dict, load) -> object:
        _, stage, task, model = keys[run]
        return ready_now(stage, task, model, row, load)

    start = time.perf_counter()
    results = train_many(specs, stop_check=stop_check)
    print(f"{op} lr {lr} wd {wd}: {len(specs)} candidates in {time.perf_counter() - start:.1f} s", flush=True)
    rows = []
    for (seed, stage, task, model), result in zip(keys, results):
        test_acc = result.history[-1]["test_acc"]
        report = weak_report(model, task, test_acc) if result.status != "diverged" else None
        verdict = judge_readiness(ReadinessConfig(), report) if report else None
        rows.append({"op": op, "lr": lr, "weight_decay": wd, "seed": seed, "status": result.status,
                     "steps": result.steps, "test_acc": round(test_acc, 4), "ready": bool(verdict and verdict.ready),
                     "reasons": "; ".join(verdict.reasons) if verdict else "diverged", "flops": result.flops,
                     "top1": report and round(report.get("fourier_top1_share") or 0, 3),
                     "odd": report and report.get("fourier_odd_share") and round(report["fourier_odd_share"], 3)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="300-305")
    parser.add_argument("--out", default="results/weak-speed")
    parser.add_argument("--stop", type=float, default=0.95)
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--ops", default="add,mul")
    args = parser.parse_args()
    seeds = parse_seeds(args.seeds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for op in args.ops.split(","):
        for lr, wd in SETTINGS:
            rows += train_setting(op, lr, wd, seeds, args)
    with open(out / "candidates.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| op | lr | wd | ready | steps to stop (median [min–max]) | population 1 / 2 / 4: delivered, median candidate-steps |",
             "|---|---|---|---|---|---|"]
    for op in args.ops.split(","):
        for lr, wd in SETTINGS:
            mine = [r for r in rows if r["op"] == op and r["lr"] == lr and r["weight_decay"] == wd]
            steps = [r["steps"] for r in mine]
            pairs = [(r["steps"], r["ready"]) for r in mine]
            pops = []
            for k in (1, 2, 4):
                costs = population_cost(pairs, k)
                ok = [c for c in costs if c is not None]
                pops.append(f"{len(ok)}/{len(costs)}, {statistics.median(ok):.0f}" if ok else f"0/{len(costs)}")
            lines.append(f"| {op} | {lr} | {wd} | {sum(r['ready'] for r in mine)}/{len(mine)} | "
                         f"{statistics.median(steps):.0f} [{min(steps)}–{max(steps)}] | {' ; '.join(pops)} |")
    table = "\n".join(lines) + "\n"
    atomic_write_text(out / "table.md", table)
    env = environment(torch.device("cpu"))
    atomic_write_text(out / "study.json", json.dumps(
        {"command": "python " + " ".join(sys.argv), "seeds": seeds, "stop": args.stop, "max_steps": args.max_steps,
         "settings": SETTINGS, **env}, indent=2) + "\n")
    print(table)


if __name__ == "__main__":
    main()
