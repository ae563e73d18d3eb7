#!/usr/bin/env bash
# The weak round's length and stop (weak.train.max_steps, weak.train.stop_at_test_acc), chosen on
# seeds 2000-2009, which no other study, tuning or comparison used: GrokTransfer on the narrow
# target (32 / 2 x 128) with the paper-fnn spec's own GrokTransfer settings (init 0.3, lr 0.005,
# weight decay 3), 2,000 target steps, for four weak settings:
#   default  the weak stage of the time (1,000-step rounds, to 95% test)
#   r500     500-step rounds
#   s90      stopped at 90% test
#   r500s90  both
# The two operations side by side, one thread each. Writes results/weak-round-study/OP-SETTING/.
#   bash scripts/weak_round_study.sh            # both operations
#   bash scripts/weak_round_study.sh add        # one
# Every setting is written out (5 rounds each), so that the runs are those recorded whatever
# today's defaults are; the records were made with the settings given on the command line only.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
seeds=2000,2001,2002,2003,2004,2005,2006,2007,2008,2009
one() {
  local op=$1 setting extra
  for setting in default r500 s90 r500s90; do
    case $setting in
      default) extra="weak.train.max_steps=1000 weak.train.stop_at_test_acc=0.95";;
      r500) extra="weak.train.max_steps=500 weak.train.stop_at_test_acc=0.95";;
      s90) extra="weak.train.max_steps=1000 weak.train.stop_at_test_acc=0.9";;
      r500s90) extra="weak.train.max_steps=500 weak.train.stop_at_test_acc=0.9";;
    esac
    # shellcheck disable=SC2086
    groktransfer compare --spec paper-fnn --task "$op" --methods groktransfer --seeds $seeds \
      --out "results/weak-round-study/$op-$setting" --no-progress \
      model.embed_dim=32 model.width=128 train.max_steps=2000 weak.max_rounds=5 $extra
  done
}
if [ $# -gt 0 ]; then
  one "$1"
else
  one add & one mul & wait
fi
for d in results/weak-round-study/*-*; do python scripts/weak_stage_report.py "$d"; done
