"""A rule stated before it was tested: A and B at 0.05 × when the transferred weak model finished
(its final test accuracy >= 0.95, the weak stage's own stop), at 0.2 × when it stopped short.
Its outcome read from paired runs of an `ab-finished` study (the same weak model at both rates),
against each rate alone.

    python scripts/ab_rate_by_weak.py results/ab-finished-8200 [results/ab-finished ...]
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

FAST, SLOW = "0.2 ×, test >= 0.7 (today)", "0.05 ×, test >= 0.7"
FINISHED = 0.95


def main(folders: list[str]) -> None:
    print("| study | target | op | 0.2 × | 0.05 × | by weak model (0.05 × if weak test >= 0.95, else 0.2 ×) | weak models short of 0.95 |")
    print("|---|---|---|---|---|---|---|")
    for folder in folders:
        rows = list(csv.DictReader(open(Path(folder) / "runs.csv", encoding="utf-8")))
        runs = {(r["target"], r["variant"], r["op"], r["seed"]): r for r in rows}
        groups = sorted({(r["target"], r["op"]) for r in rows})
        for target, op in groups:
            seeds = sorted({r["seed"] for r in rows if (r["target"], r["op"]) == (target, op)})
            reached = {FAST: 0, SLOW: 0, "rule": 0}
            short = 0
            for seed in seeds:
                fast, slow = runs[(target, FAST, op, seed)], runs[(target, SLOW, op, seed)]
                if fast["weak_test_acc"] != slow["weak_test_acc"]:
                    raise SystemExit(f"{folder}: {target} {op} seed {seed}: the two rates did not share a weak model")
                finished = float(fast["weak_test_acc"]) >= FINISHED
                short += not finished
                for name, run in ((FAST, fast), (SLOW, slow), ("rule", slow if finished else fast)):
                    reached[name] += bool(run["target_99_step"])
            n = len(seeds)
            print(f"| {Path(folder).name} | {target} | {op} | {reached[FAST]}/{n} | {reached[SLOW]}/{n} | "
                  f"{reached['rule']}/{n} | {short} |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["results/ab-finished-8200"])
