#!/usr/bin/env bash
# The speed benchmarks on a GPU, in under 5 minutes; installs nothing.
#
#   bash benchmarks/gpu.sh                 # on a machine with CUDA: writes $OUT (default results/gpu-<date>)
#   DRY_RUN=1 bash benchmarks/gpu.sh       # the same steps on the CPU at toy sizes (checks the script)
#
# (a) one run against a peer-style loop; (b) sweep throughput for K in 1, 8, 64, 256 on the paper's
# weak and target FNNs and the Fig. 8(b) transformer, full precision and TF32; (c) the Fig. 1(b) grid (a quarter of it, 3000-step
# budget; FULL_GRID=1 for all 845 configurations at the preset's 10^4 steps). Each part has its own
# time limit so the whole script ends in time; (e) train.compile (CUDA graphs) against eager; a part cut off leaves a note in $OUT/log.txt.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-results/gpu-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
LOG="$OUT/log.txt"
python3 -c "import torch, groktransfer" 2>/dev/null || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [ "${DRY_RUN:-0}" = 1 ]; then
  DEVICE=cpu; KS=1,2; BUDGET=0.2; MODELS=demo-weak; STEPS=20; SETTINGS=demo-target; CMODEL=demo-weak; CKS=1,2; GRID="--fraction 0.003 --max-steps 20"; LIMIT=100
else
  DEVICE=cuda; KS=1,8,64,256; BUDGET=1; MODELS=paper-weak,paper-target,transformer-2l; STEPS=300; SETTINGS=paper-target; LIMIT=90
  GRID="--fraction 0.25 --max-steps 3000"; CMODEL=paper-target; CKS=1,64
  [ "${FULL_GRID:-0}" = 1 ] && GRID=""
fi

part() {  # part NAME LIMIT_S COMMAND...
  local name=$1 limit=$2; shift 2
  echo "== $name: $*" | tee -a "$LOG"
  local start=$SECONDS
  timeout "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$LOG"
}

{ nvidia-smi 2>/dev/null || echo "no nvidia-smi"; python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"; } >>"$LOG" 2>&1
part "(a) one run" 30 python3 benchmarks/single_run.py --device "$DEVICE" --steps "$STEPS" --settings "$SETTINGS" --out "$OUT/single_run.json"
part "(b) throughput, full precision" 60 python3 benchmarks/multirun.py --device "$DEVICE" --models "$MODELS" --ks "$KS" --budget-s "$BUDGET" --end-to-end "" --out "$OUT/multirun_full.json"
part "(b) throughput, tf32" 60 python3 benchmarks/multirun.py --device "$DEVICE" --precision tf32 --models "$MODELS" --ks "$KS" --budget-s "$BUDGET" --end-to-end "" --out "$OUT/multirun_tf32.json"
part "(c) Fig. 1(b) grid" "$LIMIT" python3 benchmarks/fig1b_grid.py --device "$DEVICE" --precision tf32 $GRID --out "$OUT/fig1b_grid.json"
part "(e) compile" 45 python3 benchmarks/compile.py --device "$DEVICE" --precision tf32 --models "$CMODEL" --ks "$CKS" --steps "$((STEPS < 100 ? 100 : STEPS))" --repeats 1 --out "$OUT/compile.json"
echo "results in $OUT" | tee -a "$LOG"
