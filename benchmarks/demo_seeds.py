"""Benchmark: GrokTransfer (weak + target) against scratch on the demo task, over seeds.

    python benchmarks/demo_seeds.py --seeds 0 1 2 --out results/demo_seeds

Seed s sets both the model seed and the data split (``seed=s``, ``task.data_seed=s``), so
both methods see the same split and the target and scratch models share their non-embedding
initial weights. Each seed's full run directory is kept under OUT/seed<s>/;
OUT/benchmark.json holds the per-seed numbers, the medians and ranges, the command and the
hardware. Wall-clock includes the weak stage for GrokTransfer. Not a test: timings vary with
the machine.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path

import groktransfer as gt
from groktransfer.records import environment
from groktransfer.training import resolve_device

METRICS = (
    ("train_acc_95_step", "steps to 95% train"),
    ("test_acc_95_step", "steps to 95% test"),
    ("test_acc_99_step", "steps to 99% test"),
    ("time_gap", "Time Gap"),
    ("wall_clock_s", "wall-clock s"),
)


def method_numbers(summary: dict) -> dict[str, dict]:
    stages = summary["stages"]
    target = dict(stages["target"], wall_clock_s=summary["groktransfer"]["wall_clock_s"])
    return {"groktransfer": target, "scratch": stages["scratch"]}


def spread(values: list) -> dict:
    """Median and range; a run that never reached a threshold makes the median 'never' if most did not."""
    reached = sorted(v for v in values if v is not None)
    missing = len(values) - len(reached)
    if missing * 2 >= len(values) or not reached:
        return {"median": None, "min": reached[0] if reached else None, "max": None, "n_missing": missing}
    padded = reached + [float("inf")] * missing
    return {"median": statistics.median(padded), "min": reached[0],
            "max": None if missing else reached[-1], "n_missing": missing}


def fmt(stats: dict, digits: int) -> str:
    def one(v):
        return "never" if v is None else f"{v:.{digits}f}"

    return f"{one(stats['median'])} [{one(stats['min'])}–{one(stats['max'])}]"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--out", default="results/demo_seeds")
    args = parser.parse_args(argv)
    out = Path(args.out)
    per_seed = {}
    for seed in args.seeds:
        config = gt.load_preset(args.preset, [f"seed={seed}", f"task.data_seed={seed}"])
        summary = gt.run_experiment(config, out / f"seed{seed}", overwrite=True)
        per_seed[seed] = method_numbers(summary)
        print(f"seed {seed}: GrokTransfer gap {per_seed[seed]['groktransfer']['time_gap']}, "
              f"scratch gap {per_seed[seed]['scratch']['time_gap']}", flush=True)

    aggregate = {
        method: {key: spread([per_seed[s][method][key] for s in args.seeds]) for key, _ in METRICS}
        for method in ("groktransfer", "scratch")
    }
    record = {
        "command": "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])]),
        "preset": args.preset,
        "seeds": args.seeds,
        "environment": environment(resolve_device("auto")),
        "per_seed": {str(s): {m: {k: v[k] for k, _ in METRICS} for m, v in per_seed[s].items()} for s in args.seeds},
        "aggregate": aggregate,
    }
    (out / "benchmark.json").write_text(json.dumps(record, indent=2) + "\n")

    header = "| method | " + " | ".join(label for _, label in METRICS) + " |"
    print(f"\nmedian [min–max] over seeds {args.seeds}\n")
    print(header)
    print("|" + "---|" * (len(METRICS) + 1))
    names = {"groktransfer": "GrokTransfer (weak + target)", "scratch": "from scratch"}
    for method, label in names.items():
        cells = [fmt(aggregate[method][key], 1 if key == "wall_clock_s" else 0) for key, _ in METRICS]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(f"\nwritten: {out / 'benchmark.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
