"""Two PyTorch processes on one small machine: alone, and side by side, with and without
groktransfer's OpenMP setting (``GOMP_SPINCOUNT=10000``, set when the package is imported).

    python benchmarks/sharing.py [--seconds 8] [--out results/bench_sharing_cpu.json]

Each process trains a target FNN (embedding 64, two hidden layers of 256, full batch of 3,192
pairs, AdamW) with torch's default thread count (one per core) for a fixed time and reports its
steps per second. OpenMP's waiting threads spin ~300,000 times by default (libgomp) before they
sleep; two such processes then take turns spinning on each other's cores. The setting keeps
one process's speed and lets two share the cores. Ratios are taken within this one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

WORKER = r"""
import sys, time, torch
torch.manual_seed(0)
p = 113
x, y = torch.randint(0, p, (3192, 2)), torch.randint(0, p, (3192,))
emb = torch.nn.Embedding(p, 64)
net = torch.nn.Sequential(torch.nn.Linear(128, 256, bias=False), torch.nn.ReLU(),
                          torch.nn.Linear(256, 256, bias=False), torch.nn.ReLU(), torch.nn.Linear(256, p, bias=False))
opt = torch.optim.AdamW(list(emb.parameters()) + list(net.parameters()), lr=1e-3)
def step():
    loss = torch.nn.functional.cross_entropy(net(emb(x).flatten(1)), y)
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(20):
    step()
start, n = time.perf_counter(), 0
while time.perf_counter() - start < float(sys.argv[1]):
    step(); n += 1
print(n / (time.perf_counter() - start))
"""


def run(env: dict, copies: int, seconds: float) -> list[float]:
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(seconds)], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(copies)]
    return [float(p.communicate()[0]) for p in procs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--out", default="results/bench_sharing_cpu.json")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import torch

    from groktransfer.records import atomic_write_text, environment

    base = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    variants = {"torch default": base, "groktransfer (GOMP_SPINCOUNT=10000)": dict(base, GOMP_SPINCOUNT="10000")}
    rows = {}
    for name, env in variants.items():
        solo = run(env, 1, args.seconds)[0]
        pair = run(env, 2, args.seconds)
        rows[name] = {"solo_steps_per_s": solo, "pair_steps_per_s": pair,
                      "pair_over_solo": [v / solo for v in pair]}
        print(f"{name}: alone {solo:.1f} steps/s; side by side {pair[0]:.1f} and {pair[1]:.1f} "
              f"({min(pair) / solo:.2f}x of alone)")
    ours, theirs = rows["groktransfer (GOMP_SPINCOUNT=10000)"], rows["torch default"]
    summary = {"alone, groktransfer / torch default": ours["solo_steps_per_s"] / theirs["solo_steps_per_s"],
               "side by side, slower of the two / alone (groktransfer)": min(ours["pair_over_solo"]),
               "side by side, slower of the two / alone (torch default)": min(theirs["pair_over_solo"])}
    for key, value in summary.items():
        print(f"{key}: {value:.2f}")
    record = {"command": "python " + " ".join(sys.argv), "seconds": args.seconds, "variants": rows,
              "summary": summary, **environment(torch.device("cpu"))}
    atomic_write_text(Path(args.out), json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
