"""Where does training from scratch grok at p = 113? The paper's open readings, one at a time.

    python scripts/paper_scale_study.py [--seeds 800-802] [--width narrow|paper] [--shard 0/2]
                                        [--figures fig1b,fig6a] [--readings base,batch512] [--epochs 3000]
                                        [--out results/paper-scale-regime-WIDTH]

The paper prints the scratch baselines' (init, lr, weight decay) for Figs. 1(b), 6(a) and 6(b)
but not how its code reads them. Each *reading* below changes one thing the paper leaves open
(or several together) and trains, on the same seeds and splits, both the scratch baseline and
GrokTransfer (default weak stage) at the figure's printed settings:

- weight decay decoupled (torch AdamW, the base reading) or coupled (Adam + L2);
- full batch (the base) or mini-batches of 512, with the budget and the evaluations counted in
  epochs as the paper counts them (7 steps an epoch at 3,192 training pairs);
- AdamW betas (0.9, 0.999) (PyTorch's, the base) or (0.9, 0.98) (Nanda et al.'s, Power et al.'s);
- all three at once;
- the training fraction: 20% or 15% of the pairs instead of the printed 25% (a smaller fraction
  lengthens grokking's delay), full batch.

A reading *groks* (the issue's test) when scratch's Time Gap (first epoch at 95% test minus
first epoch at 95% train; "never" when 95% test is not reached in the budget) is at least 10x
GrokTransfer's on at least 3 seeds of a figure. --width narrow searches cheaply (target 32 /
2 x 128); --width paper confirms at the paper's width (128 / 2 x 512).

Every run goes through the package (groktransfer.sweep.run_many) into OUT/runs/; finished runs
are reused, so an interrupted study continues, and --shard i/n runs every n-th job only (two
processes, one thread each, share two cores); the run without --shard writes the table.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from groktransfer.config import RunConfig, from_dict
from groktransfer.records import atomic_write_text, drop_run_weights, environment
from groktransfer.sweep import run_many
from groktransfer.training import resolve_device

P = 113
N_TRAIN = 3192  # 25% of 113^2 pairs
WIDTHS = {"narrow": {"embed_dim": 32, "width": 128, "depth": 2}, "paper": {"embed_dim": 128, "width": 512, "depth": 2}}
# (operation, scratch (init, lr, wd), GrokTransfer target (init, lr, wd)) as printed in the paper
FIGURES = {
    "fig1b": ("add", (1.0, 0.05, 3.0), (0.3, 0.005, 3.0)),
    "fig6a": ("add", (0.1, 0.1, 2.0), (0.3, 0.001, 1.0)),
    "fig6b": ("mul", (0.1, 0.1, 2.0), (0.3, 0.005, 3.0)),
}
READINGS = {
    "base": {},
    "coupled": {"weight_decay_style": "coupled"},
    "batch512": {"batch_size": 512},
    "betas98": {"betas": [0.9, 0.98]},
    "all three": {"weight_decay_style": "coupled", "batch_size": 512, "betas": [0.9, 0.98]},
    # The training fraction is printed (25%), but grokking's delay grows as it shrinks (Power et
    # al.): does a little less data bring the delay back where 25% shows none?
    "frac20": {"train_fraction": 0.2},
    "frac15": {"train_fraction": 0.15},
}
WEAK: dict = {}  # the package's default weak stage
EPOCHS = 3000  # the budget in epochs (the paper's scratch curves run to 10^4; ours stop at 99% test)
EVAL_EPOCHS = 10  # evaluations log-spaced (x1.02 a time, every step at first), at most 10 epochs apart


def steps_per_epoch(reading: dict) -> int:
    batch = reading.get("batch_size")
    return 1 if batch is None else math.ceil(N_TRAIN / batch)


def stage(model: dict, printed: tuple, reading: dict) -> dict:
    init, lr, wd = printed
    spe = steps_per_epoch(reading)
    reading = {k: v for k, v in reading.items() if k != "train_fraction"}  # a task setting, not a training one
    train = {"lr": lr, "weight_decay": wd, "max_steps": EPOCHS * spe, "stop_at_test_acc": 0.99,
             "eval_dense_until": 0, "eval_schedule": "log", "eval_every": EVAL_EPOCHS * spe, **reading}
    return {"model": dict(model, init_scale=init), "train": train}


def jobs(args) -> list[tuple[tuple, RunConfig, Path]]:
    out = []
    for figure, (op, scratch, target) in FIGURES.items():
        for name, reading in READINGS.items():
            if figure not in args.figures or name not in args.readings:
                continue
            for seed in args.seeds:
                for method in ("scratch", "groktransfer"):
                    data = {"name": f"{figure}-{method}", "seed": seed, "device": "cpu",
                            "task": {"op": op, "p": P, "train_fraction": reading.get("train_fraction", 0.25),
                                     "data_seed": seed}}
                    if method == "scratch":
                        data["scratch"] = stage(WIDTHS[args.width], scratch, reading)
                    else:
                        data["weak"] = dict(WEAK)  # the default weak stage, the same under every reading
                        data["target"] = stage(WIDTHS[args.width], target, reading)
                    path = args.out / "runs" / figure / name.replace(" ", "-") / method / f"seed{seed}"
                    out.append(((figure, name, seed, method), from_dict(RunConfig, data), path))
    return out


def numbers(summary: dict, method: str, spe: int) -> dict:
    st = summary["stages"].get("scratch" if method == "scratch" else "target") or {}  # no target: weak stage failed

    def epoch(step):
        return None if step is None else step / spe
    gap = None
    if st.get("train_acc_95_step") is not None and st.get("test_acc_95_step") is not None:
        gap = (st["test_acc_95_step"] - st["train_acc_95_step"]) / spe
    return {"train95": epoch(st.get("train_acc_95_step")), "test95": epoch(st.get("test_acc_95_step")),
            "test99": epoch(st.get("test_acc_99_step")), "gap": gap, "best": st.get("best_test_acc"),
            "status": st.get("status")}


def fmt(epochs) -> str:
    return "never" if epochs is None else f"{epochs:g}" if epochs < 10 else f"{epochs:.0f}"


def gap_text(row: dict) -> str:
    """The Time Gap, or why there is none: never fitted (no 95% train), or fitted and never generalised."""
    return "no fit" if row["train95"] is None else fmt(row["gap"])


def groks(scratch: dict, gt: dict) -> bool:
    """Scratch's Time Gap >= 10x GrokTransfer's (never = infinite; a GrokTransfer gap of 0 counts as 1 epoch)."""
    if gt["gap"] is None:
        return False
    if scratch["train95"] is None:  # scratch never fits: no gap, no grokking
        return False
    if scratch["gap"] is None:  # fits, never generalises within the budget
        return True
    return scratch["gap"] >= 10 * max(gt["gap"], 1)


def main() -> None:
    global P, N_TRAIN, EPOCHS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="800-802")
    parser.add_argument("--width", choices=sorted(WIDTHS), default="narrow")
    parser.add_argument("--shard", default=None, help="i/n: run every n-th job from the i-th, write no table")
    parser.add_argument("--figures", default=",".join(FIGURES), help="comma-separated, from " + ", ".join(FIGURES))
    parser.add_argument("--readings", default=",".join(READINGS), help="comma-separated, from " + ", ".join(READINGS))
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"the budget in epochs (default {EPOCHS})")
    parser.add_argument("--weak-max-steps", type=int, default=None,
                        help="the weak stage's steps per round (default: the package's, 1,000); a smaller training "
                             "fraction makes the weak model grok later too")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true", help="a seconds-long version (p = 23, 20 epochs) that checks "
                                                             "the script runs; its numbers mean nothing")
    args = parser.parse_args()
    EPOCHS = args.epochs
    args.figures, args.readings = args.figures.split(","), args.readings.split(",")
    unknown = sorted(set(args.figures) - set(FIGURES)) + sorted(set(args.readings) - set(READINGS))
    if unknown:
        parser.error(f"unknown figure or reading: {', '.join(unknown)}")
    if args.smoke:
        P, N_TRAIN, EPOCHS = 23, 132, 20
        WEAK.update(max_rounds=1, if_none_ready="transfer_best", train={"max_steps": 40})
        WIDTHS["narrow"] = {"embed_dim": 8, "width": 16, "depth": 2}
        READINGS["batch512"]["batch_size"] = READINGS["all three"]["batch_size"] = 64
    if args.weak_max_steps is not None:
        if args.weak_max_steps < 1:
            parser.error(f"--weak-max-steps: got {args.weak_max_steps}; a positive number of steps")
        WEAK["train"] = {"max_steps": args.weak_max_steps}
    lo, _, hi = args.seeds.partition("-")
    args.seeds = list(range(int(lo), int(hi or lo) + 1)) if "," not in args.seeds else [int(s) for s in args.seeds.split(",")]
    args.out = args.out or Path(f"results/paper-scale-regime-{args.width}")
    todo = jobs(args)
    if args.shard:
        i, n = (int(v) for v in args.shard.split("/"))
        todo = todo[i::n]
    summaries = run_many([(config, path) for _, config, path in todo], parallel=1, log=print)
    drop_run_weights(args.out)  # the study keeps configs, metrics and summaries, not weights or diagnostics
    if args.shard:
        return
    rows = {}
    for (key, _, _), summary in zip(todo, summaries):
        figure, reading, seed, method = key
        rows[key] = numbers(summary, method, steps_per_epoch(READINGS[reading]))
    lines = ["| figure | reading | seed | scratch: 95% train | 95% test | Time Gap | best test | "
             "GrokTransfer: 95% train | 95% test | Time Gap | scratch groks (gap >= 10x) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    verdicts = {}
    for figure in args.figures:
        for reading in args.readings:
            n = 0
            for seed in args.seeds:
                s, g = rows[(figure, reading, seed, "scratch")], rows[(figure, reading, seed, "groktransfer")]
                ok = groks(s, g)
                n += ok
                lines.append(f"| {figure} | {reading} | {seed} | {fmt(s['train95'])} | {fmt(s['test95'])} | "
                             f"{gap_text(s)} | {s['best'] or 0:.3f} | {fmt(g['train95'])} | {fmt(g['test95'])} | "
                             f"{gap_text(g)} | {'yes' if ok else 'no'} |")
            verdicts[f"{figure} / {reading}"] = n
    summary_lines = ["| figure / reading | seeds where scratch groks | verdict (>= 3 seeds) |", "|---|---|---|"]
    for key, n in verdicts.items():
        summary_lines.append(f"| {key} | {n}/{len(args.seeds)} | {'groks' if n >= 3 else 'no'} |")
    env = environment(resolve_device("cpu"))
    record = {"command": "python " + " ".join(sys.argv), **env, "width": args.width, "seeds": args.seeds,
              "epochs": EPOCHS, "figures": FIGURES, "readings": READINGS, "weak": WEAK,
              "rows": [dict(zip(("figure", "reading", "seed", "method"), k), **v) for k, v in rows.items()],
              "verdicts": verdicts}
    atomic_write_text(args.out / "study.json", json.dumps(record, indent=2) + "\n")
    readme = [f"# Where does scratch grok at p = 113? The paper's open readings ({args.width} target)", "",
              "```bash", record["command"], "```", "",
              f"- at commit {(env.get('git_commit') or 'unknown')[:10]}{' (uncommitted changes)' if env.get('git_dirty') else ''}, "
              f"{env.get('created_utc')}; {env.get('platform')}, torch {env.get('torch_version')}, "
              f"{env.get('torch_threads')} thread(s)",
              f"- budget {EPOCHS} epochs, evaluations log-spaced (every number is in epochs, to within "
              f"{EVAL_EPOCHS} at most, finer early); each run stops at 99% test",
              "- a figure's reading groks when scratch's Time Gap is >= 10x GrokTransfer's on >= 3 seeds",
              f"- GrokTransfer's weak stage: the package's default{f', with {WEAK}' if WEAK else ''}",
              "", "\n".join(summary_lines), "", "\n".join(lines), "",
              "Files: `study.json` (every row, the settings, the machine), `runs/` (every run directory, "
              "without weights).", ""]
    atomic_write_text(args.out / "README.md", "\n".join(readme))
    print("\n".join(summary_lines))


if __name__ == "__main__":
    main()
