"""The default weak stage against variants of it, weak stage only (no target), at p = 113, 25% train.

    python scripts/weak_variants.py --seeds 5000-5005 --out results/weak-variants/study.json \
        --variant train.batch_size=1024 --variant train.batch_size=512 --variant train.batch_size=256 \
        --variant model.width=16 --variant model.width=24 --variant model.embed_dim=6,model.width=24 \
        --variant train.precision=bf16

Each ``--variant`` is a comma-separated list of overrides of ``WeakStageConfig`` (dotted names
below the weak stage, as ``weak.*`` on the command line); the default stage is always run first.
For every (variant, operation, seed): whether a ready embedding came out, the rounds, the
candidate steps and the stage's seconds (one thread). Prints one table row per (variant,
operation) and writes every row with the machine's description to ``--out``.

Why: a cheaper weak stage is the lever issue [fast-weak] asks for; this measures what a change
costs and whether the stage still delivers before any target is trained on it.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="5000-5005")
    parser.add_argument("--variant", action="append", default=[], help="overrides, e.g. train.batch_size=512,model.width=24")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    import torch

    import groktransfer as gt
    from groktransfer.config import WeakStageConfig, apply_overrides, from_dict
    from groktransfer.records import atomic_write_text, environment
    from groktransfer.weak_stage import train_weak_stages

    torch.set_num_threads(1)
    first, _, last = args.seeds.partition("-")
    seeds = list(range(int(first), int(last or first) + 1))
    variants = [""] + args.variant
    rows, lines = [], ["| variant | op | ready | rounds (median) | candidate steps (median) | ms per step | "
                       "weak stage s (median [min–max]) |", "|---|---|---|---|---|---|---|"]
    for variant in variants:
        # commas inside brackets belong to a list value (train.betas=[0.9,0.98])
        overrides = [o for o in re.split(r",(?![^\[]*\])", variant) if o]
        stage = from_dict(WeakStageConfig, apply_overrides(WeakStageConfig().to_dict(), overrides))
        for op in ("add", "mul"):
            mine = []
            for seed in seeds:
                task = gt.ModularTask(op=op, p=113, train_fraction=0.25, data_seed=seed)
                outcome = train_weak_stages([(stage, task, seed)])[0]
                steps = sum(c.result.steps for c in outcome.candidates)
                mine.append({"variant": variant or "default", "op": op, "seed": seed, "ready": outcome.ready,
                             "rounds": len({c.round for c in outcome.candidates}), "candidate_steps": steps,
                             "wall_clock_s": outcome.wall_clock_s})
            rows += mine
            secs = [r["wall_clock_s"] for r in mine]
            ms = 1e3 * sum(secs) / sum(r["candidate_steps"] for r in mine)
            lines.append(f"| {variant or 'default'} | {op} | {sum(r['ready'] for r in mine)}/{len(mine)} | "
                         f"{statistics.median(r['rounds'] for r in mine):g} | "
                         f"{statistics.median(r['candidate_steps'] for r in mine):g} | {ms:.2f} | "
                         f"{statistics.median(secs):.2f} [{min(secs):.2f}–{max(secs):.2f}] |")
            print(lines[-1], flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": "python scripts/weak_variants.py " + " ".join(sys.argv[1:]), "seeds": seeds,
              "variants": variants, "rows": rows, "table": "\n".join(lines), "environment": environment(torch.device("cpu"))}
    atomic_write_text(out, json.dumps(record, indent=2) + "\n")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
