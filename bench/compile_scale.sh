#!/usr/bin/env bash
# Compile at scale: generates a ~100M-parameter LLaMA-shaped fp32 ONNX model
# with random weights (bench/gen_llama_onnx.py) and reports the wall time and
# peak memory of quench-compile --emit=obj (and its per-phase times).
# Targets (issue #3): under 2 minutes, under 8 GB.
# Usage: bench/compile_scale.sh [BUILD_DIR] [WORK_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
WORK=${2:-$(mktemp -d)}
mkdir -p "$WORK"
if [ ! -f "$WORK/llama100m.onnx" ]; then
  /usr/bin/python3 "$ROOT/bench/gen_llama_onnx.py" "$WORK/llama100m.onnx"
fi
ls -l "$WORK/llama100m.onnx" | awk '{printf "model: %.0f MB of ONNX\n", $5/1e6}'
/usr/bin/time -f "%e %M" -o "$WORK/time.txt" \
  "$BUILD/bin/quench-compile" "$WORK/llama100m.onnx" -o "$WORK/llama100m" \
  --emit=obj --time
read -r secs kb < "$WORK/time.txt"
ls -l "$WORK/llama100m.o" | awk '{printf "object: %.0f MB\n", $5/1e6}'
printf "quench-compile --emit=obj: %.1f s wall, %.0f MB peak (targets: < 120 s, < 8192 MB)\n" \
  "$secs" "$((kb / 1024))"
