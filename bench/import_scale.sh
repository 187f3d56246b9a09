#!/usr/bin/env bash
# Import at scale: generates a ~100M-parameter LLaMA-shaped fp32 ONNX model
# (bench/gen_llama_onnx.py) and reports wall time and peak memory of
# quench-import (textual and bytecode output) and of quench-raise-ops.
# Usage: bench/import_scale.sh [BUILD_DIR] [WORK_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
WORK=${2:-$(mktemp -d)}
mkdir -p "$WORK"
PY=/usr/bin/python3

measure() {  # label, command...
  local label=$1; shift
  local out
  out=$( { /usr/bin/time -f "%e %M" "$@" >/dev/null; } 2>&1 | tail -1)
  set -- $out
  printf "%-40s %8.2f s %8.0f MB peak\n" "$label" "$1" "$(( $2 / 1024 ))"
}

if [ ! -f "$WORK/llama100m.onnx" ]; then
  $PY "$ROOT/bench/gen_llama_onnx.py" "$WORK/llama100m.onnx"
fi
ls -l "$WORK/llama100m.onnx" | awk '{printf "model: %.0f MB\n", $5/1e6}'
measure "quench-import (text, weights as hex)" \
  "$BUILD/bin/quench-import" "$WORK/llama100m.onnx" -o "$WORK/llama100m.mlir"
measure "quench-import --emit-bytecode" \
  "$BUILD/bin/quench-import" "$WORK/llama100m.onnx" --emit-bytecode -o "$WORK/llama100m.mlirbc"
measure "quench-import --elide-weights" \
  "$BUILD/bin/quench-import" "$WORK/llama100m.onnx" --elide-weights -o /dev/null
measure "quench-opt --quench-raise-ops (bytecode)" \
  "$BUILD/bin/quench-opt" "$WORK/llama100m.mlirbc" --quench-raise-ops --emit-bytecode -o "$WORK/raised.mlirbc"
