#!/usr/bin/env bash
# Weak-stage variants judged on the target they serve: GrokTransfer on the narrow comparison
# target (32 / 2 x 128, 5,000 steps) at p = 113, 25% train, with the narrow comparison's tuned
# target settings (results/compare-p113-OP/narrow10-r500), for each variant and both operations.
# A variant is NAME=OVERRIDES (weak.* overrides joined by commas; "default" = none).
#
#   bash scripts/weak_target_study.sh      the factorised read-out study (weak.model.readout_rank):
#                                          seeds 6000-6011, results/weak-readout/choice
#   VARIANTS="relu=weak.model.activation=relu square=" SEEDS=7200-7211 OUT=results/weak-square/choice \
#       bash scripts/weak_target_study.sh  another set of variants on other seeds
#
#   SUMMARY_ONLY=1 bash scripts/weak_target_study.sh   only the table, from the finished runs (a variant
#                                          with no runs for an operation has no row for it)
#   TUNED_OP=add ...                       every operation's target at the settings tuned for addition
#
# Writes OUT/OP-NAME/ (a compare result; its weak_stage.md from scripts/weak_stage_report.py) and
# OUT/table.md: per (operation, variant) the weak stage's cost, the transferred embeddings' largest
# Fourier share (how concentrated on one frequency they are) and how the targets did. The two
# operations run side by side, one thread each.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
seeds=${SEEDS:-6000-6011}
# the read-out study's variants and folder names (rnone, r4, ...) are the defaults
variants=${VARIANTS:-rnone=weak.model.activation=relu r4=weak.model.activation=relu,weak.model.readout_rank=4 r8=weak.model.activation=relu,weak.model.readout_rank=8 r16=weak.model.activation=relu,weak.model.readout_rank=16}
names=$(for v in $variants; do echo "${v%%=*}"; done)
out=${OUT:-results/weak-readout/choice}
first=${seeds%-*}; last=${seeds#*-}
list=$(seq -s, "$first" "$last")
run_op() {
  local op=$1
  for v in $variants; do
    local name=${v%%=*} set
    set=$(echo "${v#*=}" | tr ',' ' ')
    groktransfer compare --spec paper-fnn --task "$op" --methods groktransfer --seeds "$list" \
        --tuned "results/compare-p113-${TUNED_OP:-$op}/narrow10-r500/tune-groktransfer/best.yaml" --out "$out/$op-$name" \
        --no-progress model.embed_dim=32 model.width=128 train.max_steps=5000 $set > /dev/null
  done
}
if [ -z "${SUMMARY_ONLY:-}" ]; then
  run_op add & a=$!
  run_op mul & m=$!
  wait $a; wait $m
  python3 -c "from groktransfer.records import drop_run_weights; drop_run_weights('$out')"  # records, not weights
fi
for op in add mul; do
  folders=$(for n in $names; do if [ -d "$out/$op-$n" ]; then echo "$out/$op-$n"; fi; done)
  if [ -n "$folders" ]; then python scripts/weak_stage_report.py $folders > /dev/null; fi
done
python3 - "$out" $names <<'PY'
import json, statistics, sys
from pathlib import Path
out, names = Path(sys.argv[1]), sys.argv[2:]
rows = ["| op | weak variant | weak steps of the transferred model (median) | weak stage s (median) | "
        "top-1 Fourier share of E_W (median [min–max]) | target reached 99% | target steps to 99% (median of those) | "
        "time to 99%, weak included (median s; never counts as slowest) | best test accuracy of the targets "
        "that missed 99% (min–max) |", "|---|---|---|---|---|---|---|---|---|"]
for op in ("add", "mul"):
    for r in names:
        runs = [json.loads(p.read_text()) for p in sorted((out / f"{op}-{r}").glob("runs/groktransfer/seed*/summary.json"))]
        if not runs:
            continue
        weak = [s["stages"]["weak"] for s in runs]
        target = [s["stages"]["target"] for s in runs]
        top1 = [w["readiness"]["fourier_top1_share"] for w in weak]
        hit = [t["test_acc_99_step"] for t in target if t["test_acc_99_step"] is not None]
        # a target stops at 99% test, so a run that reached it took its whole wall-clock to get there
        times = [s["groktransfer"]["wall_clock_s"] if t["test_acc_99_step"] is not None else float("inf")
                 for s, t in zip(runs, target)]
        med = statistics.median(times)
        missed = [t["best_test_acc"] for t in target if t["test_acc_99_step"] is None]
        missed_text = f"{min(missed):.2f}–{max(missed):.2f}" if missed else "—"
        rows.append(f"| {op} | {r} | {statistics.median(w['steps'] for w in weak):g} | "
                    f"{statistics.median(w['wall_clock_s'] for w in weak):.1f} | {statistics.median(top1):.2f} "
                    f"[{min(top1):.2f}–{max(top1):.2f}] | {len(hit)}/{len(runs)} | "
                    f"{statistics.median(hit) if hit else 'never':g} | {'never' if med == float('inf') else f'{med:.1f}'} | "
                    f"{missed_text} |")
(out / "table.md").write_text("\n".join(rows) + "\n", encoding="utf-8")
print("\n".join(rows))
PY
