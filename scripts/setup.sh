#!/usr/bin/env bash
# Install groktransfer from this checkout (editable).
#
#   bash scripts/setup.sh         the package
#   bash scripts/setup.sh test    the package and the test dependencies (pytest, and the
#                                 [hf]/[tl] extras, whose integration tests build tiny models)
#
# torch is a dependency of groktransfer but is never pinned by it: bring the build you
# want (CPU, CUDA, ROCm) before running this. Only when no torch is importable does this
# script install one, $TORCH_SPEC (default torch==2.13.0), which on CPU-only machines that
# carry its CPU wheel is a quick local install; a bare `torch` would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if ! "$PYTHON" -c "import torch" >/dev/null 2>&1; then
    echo "setup: no torch found; installing $TORCH_SPEC"
    "$PYTHON" -m pip install --quiet "$TORCH_SPEC"
fi
extra=""
if [ "${1:-}" = "test" ]; then
    extra="[test]"
fi
"$PYTHON" -m pip install --quiet --disable-pip-version-check -e ".${extra}"
"$PYTHON" -c "import groktransfer, torch; print(f'setup: groktransfer {groktransfer.__version__} with torch {torch.__version__}')"
