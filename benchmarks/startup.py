"""Benchmark: a whole short `groktransfer run` process, start-up included, this checkout against another.

    git worktree add /tmp/before HEAD~1
    python benchmarks/startup.py --baseline /tmp/before --repeats 7 --out results/bench_startup_cpu.json

writes the JSON and, beside it, the same figures as a Markdown table (.md).

What a user waits for when a command trains little: the demo preset with 50 steps per stage
(one weak candidate), run as `python -m groktransfer.cli run --preset demo ...` in a fresh
process, once from this checkout (A) and once from ``--baseline`` (B), alternating A B A B so
that drift in the machine's speed hits both; the ratio is taken pair by pair and its median
reported. Also records whether the process imported torch._dynamo (about a second of start-up
on a 2-core CPU, pulled in by torch's FlopCounterMode). Not a test: timings depend on the
machine, which the JSON records.
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

from groktransfer.records import atomic_write_text, environment

HERE = Path(__file__).resolve().parents[1]
OVERRIDES = ["weak.train.max_steps=50", "weak.if_none_ready=transfer_best", "weak.max_rounds=1", "weak.population=1",
             "target.train.max_steps=50", "scratch.train.max_steps=50", "device=cpu"]
PROBE = ("import runpy, sys, atexit\n"
         "atexit.register(lambda: print('DYNAMO', 'torch._dynamo' in sys.modules))\n"
         "sys.argv = ['groktransfer'] + sys.argv[1:]\n"
         "runpy.run_module('groktransfer.cli', run_name='__main__')\n")


def one_run(tree: Path, out: Path) -> tuple[float, bool]:
    """Wall seconds of one whole process from ``tree``, and whether it imported torch._dynamo."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    start = time.perf_counter()
    # cwd outside both trees: `python -c` puts the working directory first on sys.path
    done = subprocess.run([sys.executable, "-c", PROBE, "run", "--preset", "demo", "--out", str(out), "--no-progress",
                           *OVERRIDES], env=env, capture_output=True, text=True, cwd=out.parent)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{tree}: the run failed:\n{done.stderr[-2000:]}")
    return seconds, "DYNAMO True" in done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="another checkout of groktransfer (B)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    trees = {"this": HERE, "baseline": Path(args.baseline).resolve()}
    seconds: dict[str, list[float]] = {name: [] for name in trees}
    dynamo: dict[str, bool] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats + 1):  # the first pair warms the file cache and is not counted
            for name, tree in trees.items():
                took, dynamo[name] = one_run(tree, Path(tmp) / f"{name}{i}")
                if i:
                    seconds[name].append(took)
    ratios = [a / b for a, b in zip(seconds["this"], seconds["baseline"])]
    record = {"command": "python benchmarks/startup.py " + " ".join(sys.argv[1:]), "overrides": OVERRIDES,
              "seconds": seconds, "median_s": {k: statistics.median(v) for k, v in seconds.items()},
              "ratio_this_over_baseline": {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)},
              "imports_torch_dynamo": dynamo, "environment": environment(torch.device("cpu"))}
    atomic_write_text(Path(args.out), json.dumps(record, indent=2) + "\n")
    ratio = record["ratio_this_over_baseline"]
    table = ("| checkout | whole process, s (median of {n}) | imports torch._dynamo |\n|---|---|---|\n"
             "| baseline | {b:.2f} | {db} |\n| this | {a:.2f} | {da} |\n"
             "| ratio this / baseline (pair by pair: median [min–max]) | {r:.2f} [{lo:.2f}–{hi:.2f}] | |\n").format(
        n=args.repeats, b=record["median_s"]["baseline"], a=record["median_s"]["this"], db=dynamo["baseline"],
        da=dynamo["this"], r=ratio["median"], lo=ratio["min"], hi=ratio["max"])
    atomic_write_text(Path(args.out).with_suffix(".md"), table)  # the table docs/speed.md shows
    print(f"this {record['median_s']['this']:.2f} s, baseline {record['median_s']['baseline']:.2f} s, "
          f"ratio {record['ratio_this_over_baseline']['median']:.2f}; torch._dynamo imported: {dynamo}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
