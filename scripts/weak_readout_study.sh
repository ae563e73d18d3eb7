#!/usr/bin/env bash
# A factorised read-out for the weak model (weak.model.readout_rank), chosen on the target it serves:
# GrokTransfer on the narrow comparison target (32 / 2 x 128, 5,000 steps) at p = 113, 25% train,
# with the narrow comparison's tuned target settings (results/compare-p113-OP/narrow10-r500), for
# each read-out rank (none = the dense read-out of the paper) and both operations.
#
#   bash scripts/weak_readout_study.sh                  seeds 6000-6011 (the choice), ranks none 4 8 16
#   SEEDS=6100-6109 RANKS="none 4" OUT=results/weak-readout/validate bash scripts/weak_readout_study.sh
#
# Writes OUT/OP-rRANK/ (a compare result) and prints one table row per (operation, rank) from
# scripts/weak_stage_report.py. The two operations run side by side, one thread each.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
seeds=${SEEDS:-6000-6011}
ranks=${RANKS:-none 4 8 16}
out=${OUT:-results/weak-readout/choice}
first=${seeds%-*}; last=${seeds#*-}
list=$(seq -s, "$first" "$last")
run_op() {
  local op=$1
  for r in $ranks; do
    local set=""
    [ "$r" != none ] && set="weak.model.readout_rank=$r"
    groktransfer compare --spec paper-fnn --task "$op" --methods groktransfer --seeds "$list" \
        --tuned "results/compare-p113-$op/narrow10-r500/tune-groktransfer/best.yaml" --out "$out/$op-r$r" \
        --no-progress model.embed_dim=32 model.width=128 train.max_steps=5000 $set > /dev/null
  done
}
run_op add & a=$!
run_op mul & m=$!
wait $a; wait $m
for op in add mul; do
  python scripts/weak_stage_report.py $(for r in $ranks; do echo "$out/$op-r$r"; done)
done
