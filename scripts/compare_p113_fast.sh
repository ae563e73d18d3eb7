#!/usr/bin/env bash
# The comparison users read first, with the fast weak stage: every method at p = 113, 25% train,
# compared on seeds 10-19 (never used for tuning, the weak-stage studies or their validation).
#
#   bash scripts/compare_p113_fast.sh add narrow     all seven methods, target 32 / 2 x 128, 5,000 steps
#   bash scripts/compare_p113_fast.sh mul paper      GrokTransfer, scratch, GrokFast-EMA and -MA at the
#                                                    paper's width (128 / 2 x 512), 3,000 steps
#   METHODS=groktransfer bash scripts/compare_p113_fast.sh add narrow   only some methods (the rest of
#                                                    the table is read from finished runs)
#   EXTRA="train.max_steps=20" OUT=/tmp/x ...        extra overrides and another folder (a quick check)
#
# Tuning, the same budget for every method (4 configurations x seeds 0-1 x the whole budget, each
# method's own setting plus 3 draws from scripts/p113_grid.yaml, fastest to 99% test kept):
# - the six baselines keep the tuning of the earlier comparisons, whose code has not changed since:
#   narrow from results/compare-p113-OP/narrow/tune (the CPU), paper from
#   results/compare-p113-OP/wide/tune (an H200, the same width; tuning picks by steps, not seconds);
# - GrokTransfer is tuned again here with the new weak stage ($out/tune-groktransfer), same rule.
# Writes results/compare-p113-OP/narrow10 or paper10; $out/tune-groktransfer/union.yaml is the union of the
# baselines' tuning and GrokTransfer's (inside the tuning's folder: compare takes an --out that holds
# nothing but folders groktransfer marked); compare then trains seeds 10-19. One thread per process.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
op=$1
part=$2
extra=${EXTRA:-}
out=${OUT:-results/compare-p113-$op/${part}10}
if [ "$part" = narrow ]; then
  all=scratch,grokfast-ema,grokfast-ma,omnigrok,stablemax,orthograd,groktransfer
  SET="model.embed_dim=32 model.width=128 train.max_steps=5000"
  baseline_tune=results/compare-p113-$op/narrow/tune/best.yaml
else
  all=scratch,grokfast-ema,grokfast-ma,groktransfer
  SET="train.max_steps=3000"
  baseline_tune=results/compare-p113-$op/wide/tune/best.yaml
fi
methods=${METHODS:-$all}
SET="$SET $extra"
groktransfer tune --spec paper-fnn --task "$op" --methods groktransfer --seeds 2 --configs 4 --with-defaults \
    --grid scripts/p113_grid.yaml --out "$out/tune-groktransfer" --no-progress $SET
python3 - "$baseline_tune" "$out/tune-groktransfer/best.yaml" "$out/tune-groktransfer/union.yaml" <<'PY'
import sys, yaml
base, ours = (yaml.safe_load(open(p)) for p in sys.argv[1:3])
dest = sys.argv[3]
base["hyperparameters"]["groktransfer"] = ours["hyperparameters"]["groktransfer"]
open(dest, "w").write(yaml.safe_dump(base, sort_keys=False))
PY
groktransfer compare --spec paper-fnn --task "$op" --methods "$methods" --seeds 10,11,12,13,14,15,16,17,18,19 \
    --tuned "$out/tune-groktransfer/union.yaml" --out "$out" --no-progress $SET
