#!/usr/bin/env bash
# Compile time and peak memory of two quench-compile builds on the same
# model, alternated (for refactorings that must not change the compiler's
# cost; the objects are compared too, so a difference in generated code
# shows up). The model defaults to bench/gen_llama_onnx.py's 100M-parameter
# LLaMA-shaped one.
# Usage: bench/compile_compare.sh OLD_BIN_DIR NEW_BIN_DIR [WORK_DIR] [ROUNDS]
#   e.g. bench/compile_compare.sh /tmp/old/build/bin build/bin /tmp/cc 2
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OLD=$1
NEW=$2
WORK=${3:-$(mktemp -d)}
ROUNDS=${4:-2}
mkdir -p "$WORK"
MODEL=$WORK/llama100m.onnx
[ -f "$MODEL" ] || /usr/bin/python3 "$ROOT/bench/gen_llama_onnx.py" "$MODEL"
for round in $(seq "$ROUNDS"); do
  for quant in none w4a16; do
    for side in old new; do
      bin=$OLD
      [ $side = new ] && bin=$NEW
      /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$bin/quench-compile" \
        "$MODEL" -o "$WORK/$side" --name=m --emit=obj --quant=$quant \
        > /dev/null 2>&1
      read -r secs kb < "$WORK/time.txt"
      printf "round %s --quant=%-6s %s: %6.1f s wall, %5d MB peak\n" \
        "$round" "$quant" "$side" "$secs" "$((kb / 1024))"
    done
    if cmp -s "$WORK/old.o" "$WORK/new.o"; then
      echo "  objects identical"
    else
      echo "  objects DIFFER"
    fi
  done
done
