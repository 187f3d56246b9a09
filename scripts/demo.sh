#!/usr/bin/env bash
# The main job on a bundled default: sets everything up, builds the tools,
# creates a small GPT-2-style model with the project's own export script,
# imports it into the quench dialect, raises the exporter's decomposed
# patterns, and prints size, op statistics and timings.
#
#   scripts/demo.sh [MODEL]     MODEL: a name from
#                               `test/models/export_models.py --list`
#                               (default gpt2_op17_dynamic) or a path to .onnx
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${QUENCH_BUILD_DIR:-$ROOT/build}
MODEL=${1:-gpt2_op17_dynamic}
PY=/usr/bin/python3

bash scripts/setup-deps.sh
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/quench-ccache}
cmake -G Ninja -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
  -DLLVM_USE_LINKER=lld >/dev/null
ninja -C "$BUILD_DIR" quench-import quench-opt

WORK=$BUILD_DIR/demo
mkdir -p "$WORK"
ms() { date +%s%N | cut -c1-13; }

echo
echo "== 1. Model"
if [ -f "$MODEL" ]; then
  ONNX=$MODEL
else
  t0=$(ms)
  $PY test/models/export_models.py --out-dir "$WORK" --only "$MODEL" >/dev/null
  echo "exported $MODEL with test/models/export_models.py in $(( $(ms) - t0 )) ms"
  ONNX=$WORK/$MODEL.onnx
fi
$PY - "$ONNX" <<'PYEOF'
import sys, onnx, numpy as np
m = onnx.load(sys.argv[1])
params = sum(int(np.prod(t.dims)) for t in m.graph.initializer)
ops = {}
for n in m.graph.node:
    ops[n.op_type] = ops.get(n.op_type, 0) + 1
print("%s: %d ONNX nodes, %d parameters (%.2f MB as fp32), opset %s" % (
    sys.argv[1], len(m.graph.node), params, params * 4 / 1e6,
    ",".join(str(o.version) for o in m.opset_import)))
PYEOF

echo
echo "== 2. Import (quench-import)"
t0=$(ms)
"$BUILD_DIR/bin/quench-import" "$ONNX" -o "$WORK/model.mlir"
echo "imported in $(( $(ms) - t0 )) ms -> $WORK/model.mlir"

echo
echo "== 3. Prepare: fold, raise decomposed patterns, CSE (quench-opt --quench-prepare)"
t0=$(ms)
"$BUILD_DIR/bin/quench-opt" "$WORK/model.mlir" --quench-prepare \
  -o "$WORK/model.raised.mlir"
echo "raised in $(( $(ms) - t0 )) ms -> $WORK/model.raised.mlir"

echo
echo "== 4. Operations before -> after raising"
count() { grep -oE '(= |^ *)quench\.[a-z_]+' "$1" | sed 's/.*quench/quench/' |
          sort | uniq -c | awk '{print $2, $1}'; }
join -a1 -a2 -e0 -o 0,1.2,2.2 <(count "$WORK/model.mlir" | sort) \
  <(count "$WORK/model.raised.mlir" | sort) |
  awk 'BEGIN{printf "%-26s %8s %8s\n", "op", "import", "raised"}
       {printf "%-26s %8d %8d\n", $1, $2, $3; a+=$2; b+=$3}
       END{printf "%-26s %8d %8d\n", "total", a, b}'

echo
echo "Native code generation and quantization build on this IR (CPU backend"
echo "and quantization core: in progress); the demo will grow to compile, run"
echo "and compare the quantized model against the float one."
