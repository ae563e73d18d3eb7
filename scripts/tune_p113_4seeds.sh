#!/usr/bin/env bash
# Does a larger tuning budget see fragile settings? GrokTransfer and the two best baselines
# (GrokFast-EMA and -MA) on the narrow comparison's task (p = 113, 25% train, target 32 / 2 x 128,
# 5,000 steps), each tuned with 4 configurations (its own setting plus 3 draws from
# scripts/p113_grid.yaml) x 4 seeds (0-3) instead of 2. A setting that fails on a tuning seed
# ranks below every setting that does not (groktransfer.tune), so a setting that fails often
# should lose here. Prints each method's pick beside the 2-seed pick of
# results/compare-p113-OP/narrow10-rows; the comparison on seeds 10-19 is that folder's whenever
# the picks agree.
#
#   bash scripts/tune_p113_4seeds.sh add       (and: mul; one thread, so both can run side by side)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
op=$1
out=${OUT:-results/compare-p113-$op/narrow10-tune4}
groktransfer tune --spec paper-fnn --task "$op" --methods groktransfer,grokfast-ema,grokfast-ma --seeds 4 --configs 4 \
    --with-defaults --grid scripts/p113_grid.yaml --out "$out/tune" --no-progress \
    model.embed_dim=32 model.width=128 train.max_steps=5000 ${EXTRA:-}
python3 - "$out/tune/best.yaml" "results/compare-p113-$op/narrow10-rows/tune-groktransfer/union.yaml" <<'PY'
import sys, yaml
four, two = (yaml.safe_load(open(p))["hyperparameters"] for p in sys.argv[1:3])
for method, setting in four.items():
    print(f"{method}: 4 seeds pick {setting}; 2 seeds picked {two[method]}; {'same' if setting == two[method] else 'DIFFERENT'}")
PY
