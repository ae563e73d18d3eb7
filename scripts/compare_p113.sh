#!/usr/bin/env bash
# Every method, tuned with an equal budget, on modular addition and multiplication at the
# paper's data size (p = 113, 25% train), 10 seeds. Writes results/compare-p113-{add,mul}/.
#
#   bash scripts/compare_p113.sh              both operations, parts narrow and paper
#   bash scripts/compare_p113.sh mul narrow   one operation, one part
#   SEEDS=5 bash scripts/compare_p113.sh add narrow   compare on seeds 0-4 (default 10)
#   bash scripts/compare_p113.sh "add mul" wide        all seven methods at the paper's width (GPU)
#   EXTRA="train.max_steps=20" ...            extra overrides (a quick check of the script)
#
# narrow: all seven methods on a narrower target FNN (embedding 32, two hidden layers of
#   128; the paper's is 128 / 512, which trains at ~20 steps/s on 2 CPU cores,
#   results/bench_multirun_cpu.json, too slow for 7 methods × (4 × 2 tuning + 10) runs of
#   5,000 steps). GrokTransfer's weak stage is the package's default.
# paper: GrokTransfer and scratch on the paper's target width (embedding 128, 2 × 512), the
#   same tuning rule, 3,000 steps.
# wide: all seven methods on the paper's target width, 5,000 steps (the narrow part's budget);
#   made on a GPU, where the width costs little.
# Tuning, both parts: `tune --with-defaults --configs 4` on scripts/p113_grid.yaml, seeds
#   0-1: each method tries its own setting in the spec (the paper's, or the reference
#   recommendation) and 3 grid draws, each for the whole budget; the fastest to 99% test
#   (mean over the 2 seeds, failures last) is kept. Then `compare` on seeds 0-9 ($SEEDS: 0 .. SEEDS-1).
# One thread (OMP_NUM_THREADS=1) so that two of these can share the 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
ops=${1:-"add mul"}
parts=${2:-"narrow paper"}
seeds=${SEEDS:-10}
extra=${EXTRA:-}
for op in $ops; do
  for part in $parts; do
    out=results/compare-p113-$op/$part
    if [ "$part" = narrow ]; then
      M=scratch,grokfast-ema,grokfast-ma,omnigrok,stablemax,orthograd,groktransfer
      SET="model.embed_dim=32 model.width=128 train.max_steps=5000"
    elif [ "$part" = wide ]; then
      M=scratch,grokfast-ema,grokfast-ma,omnigrok,stablemax,orthograd,groktransfer
      SET="train.max_steps=5000"
    else
      M=scratch,groktransfer
      SET="train.max_steps=3000"
    fi
    SET="$SET $extra"
    groktransfer tune --spec paper-fnn --task "$op" --methods $M --seeds 2 --configs 4 --with-defaults \
        --grid scripts/p113_grid.yaml --out "$out/tune" --no-progress $SET
    groktransfer compare --spec paper-fnn --task "$op" --methods $M --seeds "$seeds" \
        --tuned "$out/tune/best.yaml" --out "$out" --no-progress $SET
  done
done
