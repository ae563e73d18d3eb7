"""Benchmark: one run's training speed, groktransfer's loop against a peer-style loop and a bare AdamW loop.

    python benchmarks/single_run.py --steps 300 --out results/bench_single_run.json

The peer-style loop is written the way the public grokking scripts are: eager PyTorch,
``loss.item()`` after every step, and a full train + test evaluation (with ``.item()``)
after every step. groktransfer's ``train`` evaluates on its default schedule (every step
up to 100, then every 10) and reads values back only then. The bare loop is torch.optim.AdamW
evaluating on that same schedule with nothing else: the floor any trainer adds to
(``speed_vs_bare_adamw`` is its time over groktransfer's). All train the same model from
the same initial weights with the same AdamW settings, for the same number of steps, in
one process, alternating A B C A B C so that drift in the machine's speed hits both. Not a
test: timings depend on the machine, which the JSON records.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

import groktransfer as gt
from groktransfer.records import environment
from groktransfer.training import resolve_device

SETTINGS = {
    # name: (task kwargs, model kwargs)
    "demo-target": ({"op": "add", "p": 47, "train_fraction": 0.4}, {"embed_dim": 64, "width": 256, "depth": 2}),
    "paper-target": ({"op": "add", "p": 113, "train_fraction": 0.25}, {"embed_dim": 128, "width": 512, "depth": 2}),
}


def peer_style(model: nn.Module, task, steps: int, lr: float, wd: float) -> float:
    """Seconds for ``steps`` steps of an eager loop that syncs and evaluates every step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    log = []
    start = time.perf_counter()
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(task.x_train), task.y_train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            train_acc = (model(task.x_train).argmax(-1) == task.y_train).float().mean().item()
            test_logits = model(task.x_test)
            test_loss = nn.functional.cross_entropy(test_logits, task.y_test).item()
            test_acc = (test_logits.argmax(-1) == task.y_test).float().mean().item()
        log.append((loss.item(), train_acc, test_loss, test_acc))
    return time.perf_counter() - start


def bare(model: nn.Module, task, steps: int, lr: float, wd: float) -> float:
    """Seconds for a bare loop with torch.optim.AdamW that evaluates on the same schedule as
    ``train`` (losses and accuracies on both sets, one host read): the floor a trainer adds to."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    evaluated = set(gt.EvalSchedule(gt.TrainConfig(max_steps=steps)).steps(steps))
    start = time.perf_counter()
    for step in range(steps + 1):
        if step in evaluated:
            with torch.no_grad():
                train_logits, test_logits = model(task.x_train), model(task.x_test)
                torch.stack([nn.functional.cross_entropy(train_logits, task.y_train),
                             (train_logits.argmax(-1) == task.y_train).float().mean(),
                             nn.functional.cross_entropy(test_logits, task.y_test),
                             (test_logits.argmax(-1) == task.y_test).float().mean()]).tolist()
        if step == steps:
            break
        loss = nn.functional.cross_entropy(model(task.x_train), task.y_train)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def ours(model: nn.Module, task, steps: int, lr: float, wd: float) -> float:
    config = gt.TrainConfig(lr=lr, weight_decay=wd, max_steps=steps, stop_at_test_acc=None)
    start = time.perf_counter()
    gt.train(model, task, config)
    return time.perf_counter() - start  # train() ends with a host read of the last evaluation: the device is synced


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--out", default="results/bench_single_run.json")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    torch.set_flush_denormal(True)  # both loops get the same CPU setting
    results = {}
    for name in args.settings:
        task_kwargs, model_kwargs = SETTINGS[name]
        task = gt.ModularTask(**task_kwargs, data_seed=0, device=device)
        times = {"peer_style": [], "bare_adamw": [], "groktransfer": []}
        for _ in range(args.repeats):
            for label, loop in (("peer_style", peer_style), ("bare_adamw", bare), ("groktransfer", ours)):
                model = gt.FNN(task.vocab_size, task.n_classes, seed=0, **model_kwargs).to(device)
                times[label].append(loop(model, task, args.steps, 1e-3, 1.0))
        medians = {k: statistics.median(v) for k, v in times.items()}
        results[name] = {
            "steps": args.steps,
            "seconds": times,
            "steps_per_s": {k: args.steps / v for k, v in medians.items()},
            "speedup": medians["peer_style"] / medians["groktransfer"],
            "speed_vs_bare_adamw": medians["bare_adamw"] / medians["groktransfer"],
            "ms_per_step_groktransfer": 1e3 * medians["groktransfer"] / args.steps,
        }
        print(f"{name}: peer-style {results[name]['steps_per_s']['peer_style']:.1f} steps/s, "
              f"groktransfer {results[name]['steps_per_s']['groktransfer']:.1f} steps/s, "
              f"speed-up {results[name]['speedup']:.2f}x, {results[name]['speed_vs_bare_adamw']:.2f}x a bare AdamW loop "
              f"(median of {args.repeats})", flush=True)
    record = {
        "command": "python benchmarks/single_run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "precision": "float32",
        "environment": environment(device),
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
