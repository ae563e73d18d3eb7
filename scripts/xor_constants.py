"""Theorem 3.2's constants, searched: does any target width m, v_init and learning rate in the
theorem's family make the XOR target near-perfect on fresh data after ONE gradient step?

The full-size `reproduce xor` takes the printed v_init 0.4, lr 2.0 and m = 512 and fails (fresh
test 0.52-0.98 on 5 seeds, whole clusters missed). The theorem asks v_init <= C log^{-3/2} n,
sqrt(m) v_init / C <= lr <= sqrt(m) v_init and m >= 2 log^3 n, leaving C open. Here each seed's
weak model is trained once (exactly as `reproduce xor` trains it), and targets over a grid of
(m, v_init, lr) are built on it and scored on one fresh test set. Each target's signs are drawn
from the same generator state, the one `reproduce xor` draws its target from, so the printed
setting's row repeats that record exactly (a check of this script), and a row differs from
another of the same width only in scale.

    python scripts/xor_constants.py --out results/xor-constants            # 5 seeds, ~5 minutes
    python scripts/xor_constants.py --out /tmp/x --seeds 1 --p 2000 --n-test 500   # a quick look

Writes OUT/study.json (settings, every target's accuracies, machine, command) and OUT/table.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from pathlib import Path

import torch

from groktransfer.records import atomic_write_text, environment
from groktransfer.xor import TransferredTarget, accuracy, fresh_accuracies, gradient_descent, weak_model, xor_data

PRINTED = {"width": 512, "v_init": 0.4, "lr": 2.0}


def grid(widths: list[int], v_inits: list[float], lr_fractions: list[float]) -> list[dict]:
    """The printed setting, then every (m, v_init, lr = sqrt(m) v_init * fraction): fraction 1 is
    the theorem's largest rate, 1/C its smallest for that C."""
    rows = [dict(PRINTED, fraction=PRINTED["lr"] / (math.sqrt(PRINTED["width"]) * PRINTED["v_init"]))]
    for m, v, f in itertools.product(widths, v_inits, lr_fractions):
        rows.append({"width": m, "v_init": v, "lr": math.sqrt(m) * v * f, "fraction": f})
    return rows


def one_seed(seed: int, settings: list[dict], *, p: int, n: int, eps: float, n_test: int) -> list[dict]:
    """xor_theory's weak model and generator stream; every setting's target after one step."""
    generator = torch.Generator().manual_seed(seed)
    x, y = xor_data(n, p, eps, generator, "cpu")
    weak = weak_model(p, 3, generator, "cpu")
    gradient_descent(weak, x, y, 0.1, 0.1, 1000)  # xor_theory's defaults: lr 0.1, wd 0.1, 1000 steps
    U = weak.W.T.contiguous()
    start = generator.get_state()
    targets = {}
    for i, s in enumerate(settings):
        generator.set_state(start)
        target = TransferredTarget(U, s["width"], s["v_init"], generator)
        target.step(x, y, s["lr"])
        targets[i] = target
    # The fresh test set comes after a 512-wide target's draw, as in xor_theory: the printed row's
    # test set is the record's.
    generator.set_state(start)
    TransferredTarget(U, PRINTED["width"], PRINTED["v_init"], generator)
    tested = fresh_accuracies(targets, n_test, p, eps, generator)
    rows = []
    for i, s in enumerate(settings):
        per_cluster = {k: v for k, v in tested[i].items() if k != "all"}
        rows.append({**s, "seed": seed, "train_acc": accuracy(targets[i], x, y), "test_acc": tested[i]["all"],
                     "worst_cluster_acc": min(per_cluster.values()), "test_acc_per_cluster": per_cluster})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| m | v_init | lr | lr / (√m·v_init) | train acc = 1 | fresh test ≥ 0.99 | fresh test, min – max | worst cluster, min |",
             "|---|---|---|---|---|---|---|---|"]
    keys = []
    for r in rows:
        key = (r["width"], r["v_init"], r["lr"])
        if key not in keys:
            keys.append(key)
    for key in keys:
        mine = [r for r in rows if (r["width"], r["v_init"], r["lr"]) == key]
        tests = [r["test_acc"] for r in mine]
        printed = " (printed)" if key == (PRINTED["width"], PRINTED["v_init"], PRINTED["lr"]) else ""
        lines.append(f"| {key[0]}{printed} | {key[1]:g} | {key[2]:.3g} | {mine[0]['fraction']:.3g} | "
                     f"{sum(r['train_acc'] == 1.0 for r in mine)}/{len(mine)} | {sum(t >= 0.99 for t in tests)}/{len(mine)} | "
                     f"{min(tests):.3f} – {max(tests):.3f} | {min(r['worst_cluster_acc'] for r in mine):.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1 (reproduce xor's five)")
    parser.add_argument("--p", type=int, default=80_000)
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--eps", type=float, default=0.05)
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--widths", default="512,2048,8192")
    parser.add_argument("--v-inits", default="0.05,0.1,0.4")
    parser.add_argument("--lr-fractions", default="1,0.25,0.0625")
    args = parser.parse_args(argv)
    try:
        widths = [int(v) for v in args.widths.split(",")]
        v_inits = [float(v) for v in args.v_inits.split(",")]
        fractions = [float(v) for v in args.lr_fractions.split(",")]
    except ValueError as error:
        parser.error(f"--widths, --v-inits, --lr-fractions: comma-separated numbers ({error})")
    if args.seeds < 1 or min(widths) < 1 or min(v_inits) <= 0 or min(fractions) <= 0:
        parser.error("--seeds, --widths, --v-inits and --lr-fractions must be positive")
    settings = grid(widths, v_inits, fractions)
    seeds = list(range(args.seeds))
    rows = []
    for seed in seeds:
        rows += one_seed(seed, settings, p=args.p, n=args.n, eps=args.eps, n_test=args.n_test)
        print(f"seed {seed} done", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    text = table(rows)
    claim = ("Theorem 3.2 (our search of its open constant C): some target width m, v_init and learning rate in "
             "the theorem's family give, after ONE gradient step, training accuracy 1 and fresh test accuracy "
             "≥ 0.99 on every seed.")
    by_key = {}
    for r in rows:
        by_key.setdefault((r["width"], r["v_init"], r["lr"]), []).append(r)
    holds = any(all(r["train_acc"] == 1.0 and r["test_acc"] >= 0.99 for r in rs) for rs in by_key.values())
    data = {"study": "xor-constants", "command": "python " + " ".join(sys.argv), **environment(torch.device("cpu")),
            "claim": claim, "holds": holds, "p": args.p, "n": args.n, "eps": args.eps, "n_test": args.n_test,
            "seeds": seeds, "theorem_width_bound": 2 * math.log(args.n) ** 3, "rows": rows}
    atomic_write_text(args.out / "study.json", json.dumps(data, indent=2) + "\n")
    atomic_write_text(args.out / "table.md", text + "\n")
    print(text)
    print(f"holds: {holds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
