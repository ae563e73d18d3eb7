"""Benchmark: training steps whose weights hold denormals, with the flush-to-zero flag set in the
calling thread only (before: torch.set_flush_denormal) and in every intra-op thread (after:
training.cpu_flush_denormal), on 2 threads.

    python benchmarks/denormals.py --out results/bench_denormals_cpu.json

The model is the paper's target FNN (128 / 2 × 512) on (a·b) mod 113 (25% train, full batch);
before each timed block a share of its hidden weights (5%, as in a long run whose loss spiked
and whose weight decay then drove them down; 1e-40) and of AdamW's first moments is made
denormal. Before and after alternate in rounds in one process; reported: the median
milliseconds per step of each and the ratio after/before. Not a test: timings depend on the
machine, which the JSON records.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from groktransfer import FNN, ModularTask
from groktransfer.records import atomic_write_text, environment
from groktransfer.training import _set_flush_denormal_everywhere, cpu_flush_denormal


def seed_denormals(model: torch.nn.Module, optimizer: torch.optim.Optimizer, share: float, generator) -> None:
    with torch.no_grad():
        for p in model.parameters():
            mask = torch.rand(p.shape, generator=generator) < share
            p[mask] = 1e-40
            state = optimizer.state.get(p)
            if state:
                state["exp_avg"][torch.rand(p.shape, generator=generator) < 0.5] = 1e-40


def timed_steps(model, optimizer, task, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(task.x_train), task.y_train)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--share", type=float, default=0.05)
    parser.add_argument("--out", default="results/bench_denormals_cpu.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    task = ModularTask(op="mul", p=113, train_fraction=0.25, data_seed=0)
    model = FNN(task.vocab_size, task.n_classes, embed_dim=128, width=512, depth=2, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=3.0)
    timed_steps(model, optimizer, task, 2)  # AdamW's state exists
    generator = torch.Generator().manual_seed(0)
    before, after = [], []
    for _ in range(args.rounds):
        seed_denormals(model, optimizer, args.share, generator)
        torch.set_flush_denormal(True)  # what the package did: the calling thread only
        before.append(timed_steps(model, optimizer, task, args.steps))
        _set_flush_denormal_everywhere(False)
        seed_denormals(model, optimizer, args.share, generator)
        with cpu_flush_denormal(torch.device("cpu")):  # today: every thread
            after.append(timed_steps(model, optimizer, task, args.steps))
    row = {"before_ms_per_step": statistics.median(before), "after_ms_per_step": statistics.median(after)}
    row["ratio"] = row["after_ms_per_step"] / row["before_ms_per_step"]
    record = {"benchmark": "denormals", "command": "python " + " ".join(sys.argv), **row, "rounds": args.rounds,
              "steps": args.steps, "share": args.share, **environment(torch.device("cpu"))}
    atomic_write_text(Path(args.out), json.dumps(record, indent=2) + "\n")
    print(f"\n| flush-to-zero set in | ms per step | ratio |\n|---|---|---|")
    print(f"| the calling thread (before) | {row['before_ms_per_step']:.1f} | 1.00 |")
    print(f"| every intra-op thread (after) | {row['after_ms_per_step']:.1f} | {row['ratio']:.2f} |")


if __name__ == "__main__":
    main()
