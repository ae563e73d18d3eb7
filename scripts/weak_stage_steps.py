"""The default weak stage's steps and seconds on each (operation, seed), for one checkout of the code.

    python scripts/weak_stage_steps.py --out results/weak-stage-rounding/engine/study.json
    python scripts/weak_stage_steps.py --code /path/to/an/older/checkout --out .../before-engine/study.json

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", default=None, help="a checkout of groktransfer to import instead of this one")
    parser.add_argument("--seeds", default="500-509")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
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
