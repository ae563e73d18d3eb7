#!/usr/bin/env bash
# The demo and the fast test layer, each alone and then side by side on this machine, with
# libgomp's default spin (GOMP_SPINCOUNT=300000, what torch does without groktransfer's setting)
# and with groktransfer's (10000). Prints wall-clock seconds; writes nothing else but /tmp runs.
#   bash benchmarks/demo_beside_tests.sh | tee results/bench_sharing_demo_tests.log
cd "$(dirname "$0")/.."
echo "# $(git rev-parse --short HEAD) $(uname -m) $(nproc) cores $(date -u +%FT%TZ)"
for spin in 300000 10000; do
  export GOMP_SPINCOUNT=$spin
  s=$SECONDS; groktransfer demo --out /tmp/dsolo --overwrite --no-progress >/dev/null 2>&1; echo "spin=$spin demo alone $((SECONDS-s)) s"
  s=$SECONDS; python -m pytest -q -m "not slow" -p no:cacheprovider >/dev/null 2>&1; echo "spin=$spin tests alone $((SECONDS-s)) s"
  s=$SECONDS
  (groktransfer demo --out /tmp/dpair --overwrite --no-progress >/dev/null 2>&1; echo "spin=$spin demo beside tests $((SECONDS-s)) s") &
  python -m pytest -q -m "not slow" -p no:cacheprovider >/dev/null 2>&1; echo "spin=$spin tests beside demo $((SECONDS-s)) s"
  wait
done
