#!/usr/bin/env bash
# Tune, then compare, every method on modular addition and multiplication at the paper's
# data size (p = 113, 25% train), sized for 2 CPU cores. Writes results/compare-p113-{add,mul}/.
#
#   bash scripts/compare_p113.sh            both operations
#   bash scripts/compare_p113.sh mul        one of them
#
# What is shrunk from the paper, and why (a paper-size target trains at ~20 steps/s on 2 cores,
# results/bench_multirun_cpu.json, so the tune + compare below would take hours per operation
# at the paper's width):
#   - the target FNN: embedding 32, 2 hidden layers of width 128 (paper: 128 / 512); the weak
#     FNN is the paper's (embedding 4, width 16, 10^4 steps);
#   - tuning: the `small` grid, 3 configurations per method, 2 seeds, 2,000 steps each;
#   - the comparison: 5 seeds, 5,000 full-batch steps, stop at 99% test accuracy.
# One thread (OMP_NUM_THREADS=1) so that the wall-clock column does not depend on other work
# sharing the machine's second core.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
M=scratch,grokfast-ema,grokfast-ma,omnigrok,stablemax,orthograd,groktransfer
SHRINK="model.embed_dim=32 model.width=128"
for op in "${@:-add mul}"; do
  for o in $op; do
    out=results/compare-p113-$o
    groktransfer tune --spec paper-fnn --task "$o" --methods $M --seeds 2 --configs 3 \
        --out "$out/tune" --no-progress $SHRINK train.max_steps=2000
    groktransfer compare --spec paper-fnn --task "$o" --methods $M --seeds 5 \
        --tuned "$out/tune/best.yaml" --out "$out" --no-progress $SHRINK train.max_steps=5000
  done
done
