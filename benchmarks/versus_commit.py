"""This package against an earlier commit of it, on the same machine, one run after the other.

A result re-run days later can take much longer than it did (`reproduce all --quick`: 35 min
against 15): the machine or the code? Both commits run the same command — a from-scratch FNN of
the quick Fig. 1(b) size, 2,000 steps, no stop — in turn (A B A B …), so a drift of the machine's
speed during the call moves both; the ratio is taken pair by pair and its median reported.

    python benchmarks/versus_commit.py 1b52b78 --pairs 3 --out results/bench_versus_1b52b78_cpu.json

The earlier commit is checked out in a temporary git worktree (removed afterwards); nothing is
installed. Writes the JSON named by --out (the command, each pair's seconds, the median ratio,
the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from groktransfer.records import atomic_write_text, environment  # noqa: E402

CONFIG = """name: versus-commit
seed: 0
device: cpu
task: {op: add, p: 47, train_fraction: 0.4}
scratch:
  model: {embed_dim: 64, width: 256, depth: 2, init_scale: 1.0}
  train: {lr: 0.001, weight_decay: 1.0, max_steps: 2000, stop_at_test_acc: null}
"""


def timed_run(package_root: Path, config: Path, out: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(package_root))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "groktransfer.cli", "run", str(config), "--out", str(out),
                           "--no-progress"], env=env, capture_output=True, text=True, cwd=out.parent)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the run at {package_root} failed: {done.stderr.strip().splitlines()[-1:]}")
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("commit", help="the earlier commit (B)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error(f"--pairs: got {args.pairs}; must be >= 1")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = tmp / "old"
        added = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old), args.commit],
                               capture_output=True, text=True)
        if added.returncode != 0:
            parser.error(f"commit {args.commit}: {added.stderr.strip()}")
        try:
            config = tmp / "config.yaml"
            config.write_text(CONFIG)
            pairs = []
            for i in range(args.pairs + 1):  # the first pair warms the caches and is not counted
                a = timed_run(ROOT, config, tmp / f"a{i}")
                b = timed_run(old, config, tmp / f"b{i}")
                if i:
                    pairs.append({"this_s": a, "earlier_s": b, "ratio": a / b})
                    print(f"pair {i}: this {a:.1f} s, {args.commit} {b:.1f} s, ratio {a / b:.3f}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], capture_output=True)
    result = {"benchmark": f"versus {args.commit}", "command": "python " + " ".join(
                  [str(Path(sys.argv[0]).resolve().relative_to(ROOT)) if Path(sys.argv[0]).exists() else sys.argv[0],
                   *sys.argv[1:]]),
              "config": CONFIG, "earlier_commit": args.commit, "pairs": pairs,
              "median_ratio_this_over_earlier": statistics.median(p["ratio"] for p in pairs),
              "environment": environment(torch.device("cpu"))}
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(f"median ratio (this / {args.commit}): {result['median_ratio_this_over_earlier']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
