"""Benchmark: the embedding lookup through nn.functional.embedding (before) and through
groktransfer.lookup's index_select (after), at p = 113 (25% train), one thread.

    OMP_NUM_THREADS=1 python benchmarks/embedding_backward.py --out results/bench_embedding_backward_cpu.json

Two measurements, each alternating before/after in rounds in one process so that drift in the
machine's speed hits both:
- one full-batch training step (forward, backward, AdamW) of the weak FNN 8/32, GrokTransfer's
  narrow target (32 / 2 × 128 over an 8 × 32 A·B) and the paper's target (128 / 2 × 512 over A·B);
- the whole default weak stage (``train_weak_stages``, every round, as the comparisons charge it)
  on the given seeds of both operations; "before" and "after" train the same candidates to the
  same steps (their gradients are the same bits), so the ratio is one of seconds alone.
Reported: median milliseconds (per step) or seconds (per stage) and the median ratio
after/before. Not a test: timings depend on the machine, which the JSON records.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from groktransfer import FNN, ModularTask
from groktransfer.config import TaskConfig, WeakStageConfig, from_dict
from groktransfer.lookup import Embedding
from groktransfer.records import atomic_write_text, environment
from groktransfer.tasks import build_task
from groktransfer.transfer import FactorizedEmbedding
from groktransfer.weak_stage import train_weak_stages

sys.path.insert(0, str(Path(__file__).resolve().parent))
from denormals import timed_steps  # noqa: E402  (a plain full-batch AdamW step)
from weak_stage import parse_seeds  # noqa: E402


@contextlib.contextmanager
def dense_backward():
    """The lookups as they were: nn.functional.embedding, whose CPU backward is embedding_dense_backward."""
    saved = Embedding.forward, FactorizedEmbedding.forward
    Embedding.forward = nn.Embedding.forward
    FactorizedEmbedding.forward = lambda self, tokens: nn.functional.embedding(tokens, self.A @ self.B)
    try:
        yield
    finally:
        Embedding.forward, FactorizedEmbedding.forward = saved


def models(task) -> dict[str, nn.Module]:
    weak = FNN(task.vocab_size, task.n_classes, embed_dim=8, width=32, depth=1, seed=0)
    out = {"weak 8/32": weak}
    for name, (d, w) in {"narrow target 32/2x128, A·B": (32, 128), "paper target 128/2x512, A·B": (128, 512)}.items():
        target = FNN(task.vocab_size, task.n_classes, embed_dim=d, width=w, depth=2, seed=1)
        b = torch.randn(8, d, generator=torch.Generator().manual_seed(2)) / 8 ** 0.5
        target.set_input_embeddings(FactorizedEmbedding(weak.embedding.weight.detach(), b))
        out[name] = target
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seeds", default="500-504")
    parser.add_argument("--out", default="results/bench_embedding_backward_cpu.json")
    args = parser.parse_args()
    task = ModularTask(op="add", p=113, train_fraction=0.25, data_seed=0)
    steps = {}
    for name, model in models(task).items():
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1.0)
        timed_steps(model, optimizer, task, 2)  # AdamW's state exists
        before, after = [], []
        for _ in range(args.rounds):
            with dense_backward():
                before.append(timed_steps(model, optimizer, task, args.steps))
            after.append(timed_steps(model, optimizer, task, args.steps))
        steps[name] = {"before_ms": statistics.median(before), "after_ms": statistics.median(after),
                       "ratio": statistics.median(a / b for a, b in zip(after, before))}
        print(f"{name}: {steps[name]['before_ms']:.2f} ms -> {steps[name]['after_ms']:.2f} ms per step, "
              f"ratio {steps[name]['ratio']:.2f}", flush=True)
    stages = []
    for op in ("add", "mul"):
        for seed in parse_seeds(args.seeds):
            stage_task = build_task(from_dict(TaskConfig, {"op": op, "p": 113, "train_fraction": 0.25, "data_seed": seed}))
            row = {"op": op, "seed": seed}
            for label in ("before", "after"):
                with dense_backward() if label == "before" else contextlib.nullcontext():
                    outcome = train_weak_stages([(from_dict(WeakStageConfig, {}), stage_task, seed)])[0]
                row[f"{label}_s"] = outcome.wall_clock_s
                row[f"{label}_steps"] = sum(c.result.steps for c in outcome.candidates)
            row["ratio"] = row["after_s"] / row["before_s"]
            stages.append(row)
            print(f"weak stage {op} seed {seed}: {row['before_s']:.2f} s -> {row['after_s']:.2f} s "
                  f"({row['before_steps']} / {row['after_steps']} steps), ratio {row['ratio']:.2f}", flush=True)
    summary = {"step": steps, "weak_stage": {"median_before_s": statistics.median(r["before_s"] for r in stages),
                                             "median_after_s": statistics.median(r["after_s"] for r in stages),
                                             "median_ratio": statistics.median(r["ratio"] for r in stages),
                                             "same_steps": all(r["before_steps"] == r["after_steps"] for r in stages),
                                             "rows": stages}}
    print(f"weak stage: median ratio {summary['weak_stage']['median_ratio']:.2f}", flush=True)
    record = {"benchmark": "embedding_backward", "command": "python " + " ".join(sys.argv), **summary,
              **environment(torch.device("cpu"))}
    atomic_write_text(Path(args.out), json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
