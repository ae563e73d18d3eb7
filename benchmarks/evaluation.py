"""Benchmark: one evaluation (train and test sets, p = 113, 25% train) with accuracy read by
argmax (before) and by groktransfer.training.accuracy (after), for the weak FNN 8/32, the
comparisons' narrow target 32 / 2 × 128 and the paper's target 128 / 2 × 512.

    OMP_NUM_THREADS=1 python benchmarks/evaluation.py --out results/bench_evaluation_cpu.json

Both run what the engine's evaluation of one run does (losses and training.accuracy on both sets), on the same
model and task in one process, alternating before/after in rounds so that drift in the
machine's speed hits both; reported per model: the median milliseconds of each and the ratio
after/before, and of one full-batch AdamW training step beside them, for scale. Not a test:
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

import groktransfer.training as training
from groktransfer import FNN, ModularTask
from groktransfer.records import atomic_write_text, environment

sys.path.insert(0, str(Path(__file__).resolve().parent))
from denormals import timed_steps  # noqa: E402  (the same training step as the denormal benchmark)

MODELS = {"weak 8/32": (8, 32, 1), "narrow target 32/2x128": (32, 128, 2), "paper target 128/2x512": (128, 512, 2)}


def argmax_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(dim=-1) == labels).float().mean(dim=-1)


def timed(model, task, repeats: int) -> float:
    """Milliseconds per evaluation as the engine makes one for a run of one: losses and
    accuracies on both sets (training.evaluate), the weight norm, one read back to the host."""
    loss = torch.nn.functional.cross_entropy
    start = time.perf_counter()
    for _ in range(repeats):
        with torch.no_grad():
            values = []
            for x, y in ((task.x_train, task.y_train), (task.x_test, task.y_test)):
                logits = model(x)
                values += [loss(logits, y).double(), training.accuracy(logits, y).double()]
            norm = torch.sqrt(sum(p.double().pow(2).sum() for p in model.parameters()))
            torch.stack(values + [norm]).tolist()
    return (time.perf_counter() - start) / repeats * 1e3


def step_ms(model, task, repeats: int) -> float:
    """One full-batch AdamW training step, for scale: what an evaluation costs in steps."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1.0)
    return timed_steps(model, optimizer, task, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default="results/bench_evaluation_cpu.json")
    args = parser.parse_args()
    task = ModularTask(op="add", p=113, train_fraction=0.25, data_seed=0)
    new_accuracy = training.accuracy
    rows = []
    for name, (embed, width, depth) in MODELS.items():
        model = FNN(task.vocab_size, task.n_classes, embed_dim=embed, width=width, depth=depth, seed=0)
        before, after, steps = [], [], []
        for _ in range(args.rounds):
            for accuracy, times in ((argmax_accuracy, before), (new_accuracy, after)):
                training.accuracy = accuracy
                timed(model, task, 2)  # warm
                times.append(timed(model, task, args.repeats))
            steps.append(step_ms(model, task, args.repeats))
        training.accuracy = new_accuracy
        row = {"model": name, "before_ms": statistics.median(before), "after_ms": statistics.median(after),
               "train_step_ms": statistics.median(steps)}
        row["ratio"] = row["after_ms"] / row["before_ms"]
        rows.append(row)
        print(f"{name}: before {row['before_ms']:.2f} ms, after {row['after_ms']:.2f} ms, ratio {row['ratio']:.2f}",
              flush=True)
    record = {"benchmark": "evaluation", "command": "python " + " ".join(sys.argv), "rows": rows,
              **environment(torch.device("cpu"))}
    atomic_write_text(Path(args.out), json.dumps(record, indent=2) + "\n")
    print("\n| model | argmax, ms per evaluation | training.accuracy, ms | ratio | one training step, ms |\n"
          "|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['model']} | {row['before_ms']:.2f} | {row['after_ms']:.2f} | {row['ratio']:.2f} | "
              f"{row['train_step_ms']:.2f} |")


if __name__ == "__main__":
    main()
