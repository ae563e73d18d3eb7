"""The default weak stage's steps and seconds on each (operation, seed), for one checkout of the code.

    python scripts/weak_stage_steps.py --out results/weak-stage-rounding/engine/study.json
    python scripts/weak_stage_steps.py --code /path/to/an/older/checkout --out .../before-engine/study.json
    python scripts/weak_stage_steps.py --table A/study.json B/study.json   # B against A, seed by seed

Why: the weak stage's outcome on a seed depends on the last bits of its arithmetic (when a
candidate first passes the readiness rule is a chaotic function of its trajectory). Running
the same stage, seeds and splits on two versions of the code shows how much a change of
rounding alone moves it. ``--code`` imports groktransfer from that folder instead of this one
(its commit is what the record names). p = 113, 25% train, data seed = run seed, one thread.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def table(before: dict, after: dict) -> str:
    """Two records of the same seeds, per operation: steps in total, how many seeds took more,
    fewer or the same steps, and the milliseconds per step."""
    lines = ["| operation | seeds | candidate steps, before | after | seeds with more steps | fewer | same | "
             "ms per step, before | after |", "|---|---|---|---|---|---|---|---|---|"]
    for op in ("add", "mul"):
        pairs = [(a, b) for a, b in zip(before["rows"], after["rows"]) if a["op"] == op]
        assert all((a["op"], a["seed"]) == (b["op"], b["seed"]) for a, b in pairs), "the records' seeds differ"
        diff = [b["candidate_steps"] - a["candidate_steps"] for a, b in pairs]
        ms = [1e3 * sum(r["wall_clock_s"] for r in side) / sum(r["candidate_steps"] for r in side)
              for side in ([a for a, _ in pairs], [b for _, b in pairs])]
        lines.append(f"| {op} | {pairs[0][0]['seed']}–{pairs[-1][0]['seed']} | {sum(a['candidate_steps'] for a, _ in pairs)} | "
                     f"{sum(b['candidate_steps'] for _, b in pairs)} | {sum(d > 0 for d in diff)} | {sum(d < 0 for d in diff)} | "
                     f"{sum(d == 0 for d in diff)} | {ms[0]:.2f} | {ms[1]:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", default=None, help="a checkout of groktransfer to import instead of this one")
    parser.add_argument("--seeds", default="500-509")
    parser.add_argument("--out")
    parser.add_argument("--table", nargs=2, metavar=("BEFORE", "AFTER"), help="print the comparison of two records")
    args = parser.parse_args()
    if args.table:
        print(table(*(json.loads(Path(p).read_text()) for p in args.table)))
        return 0
    if not args.out:
        parser.error("--out is required (or --table)")
    if args.code:
        sys.path.insert(0, str(Path(args.code).resolve()))
    import torch

    import groktransfer as gt
    from groktransfer.config import WeakStageConfig
    from groktransfer.records import environment
    from groktransfer.weak_stage import train_weak_stages

    torch.set_num_threads(1)
    first, _, last = args.seeds.partition("-")
    seeds = list(range(int(first), int(last or first) + 1))
    rows = []
    for op in ("add", "mul"):
        for seed in seeds:
            task = gt.ModularTask(op=op, p=113, train_fraction=0.25, data_seed=seed)
            outcome = train_weak_stages([(WeakStageConfig(), task, seed)])[0]
            rows.append({"op": op, "seed": seed, "candidate_steps": sum(c.result.steps for c in outcome.candidates),
                         "candidates": len(outcome.candidates), "ready": outcome.ready,
                         "wall_clock_s": outcome.wall_clock_s})
            print(rows[-1], flush=True)
    steps = sum(r["candidate_steps"] for r in rows)
    seconds = sum(r["wall_clock_s"] for r in rows)
    record = {"command": "python scripts/weak_stage_steps.py " + " ".join(sys.argv[1:]),
              "code": str(Path(gt.__file__).resolve().parent.parent), "rows": rows,
              "total_candidate_steps": steps, "total_wall_clock_s": seconds, "ms_per_step": 1e3 * seconds / steps,
              "ready": sum(r["ready"] for r in rows), "environment": environment(torch.device("cpu"))}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{len(rows)} weak stages: {steps} candidate steps, {seconds:.1f} s ({record['ms_per_step']:.2f} ms per step), "
          f"{record['ready']} ready; written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
