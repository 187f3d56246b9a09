#!/usr/bin/env bash
# Quantized vs fp32 matrix-vector and small-batch products, against the
# machine's read bandwidth measured in the same run (issue #4 point 8).
#
# For each shape K x N a one-op ONNX model y = x @ W (W a constant [K, N],
# random normal; imported as quench.linear) is compiled three times with
# quench-compile: fp32, --quant=w8a16 (int8 per output channel, f16 scales),
# --quant=w4a16 (int4, groups of 32, f16 scales) and --quant=w8a8-dynamic
# (int8 weights and int8 activations with per-row scales: quench.qlinear,
# an i8 x i8 -> i32 contraction). Each executable runs
# on x [M, K] with --bench; the table gives the median latency, the weight
# bytes streamed per run (codes + scales for quantized) in GB/s and as a
# share of bench/read_bw.c's bandwidth, nanoseconds and cycles (at the
# nominal clock from /proc/cpuinfo) per 32 weights, and the speedup over
# fp32. Outputs are checked against NumPy's float product, within each
# scheme's quantization error (max error relative to max |y|).
# Scheme w8a8-generic is w8a8-dynamic compiled with --int8-dot=false (the
# generic i32 contraction instead of the vpmaddwd / vpdpbusd kernel).
# w8a8 (static) and the outlier-splitting schemes w8a8-oC / w8a8-dynamic-oC
# (--outliers=C --outlier-cap=C: C input channels in float, their product
# computed inside the int8 kernel's tiles; docs/quantization.md "Outlier
# splitting") are calibrated on the run's own input x (--calib); the
# "weight MB" of those includes the f32 outlier columns.
# CPU_FLAGS go to every quench-compile (e.g. --cpu=x86-64-v3); with
# ROUNDS > 1 the schemes are timed alternately ROUNDS times and the table
# gives the median of the rounds' medians (and their range).
# A scheme written SCHEME@base is compiled by BASE_BUILD's quench-compile
# (another build, e.g. of main: the old code path in the same run).
# With LLAMA_CPP (a llama.cpp source tree; its build in LLAMA_BUILD,
# default LLAMA_CPP/build) bench/ggml_matmul.c is built against it and
# times ggml's product for each of LLAMA_TYPES (ggml type names) on the
# same shape, M and thread count (RUNS runs; LLAMA_BUFFER names the weight
# buffer type, default: llama.cpp's choice), printed as rows "ggml:TYPE"
# in the same rounds; "vs fp32" is then fp32's time over the peer's.
# The load average is printed at the start and the end. TIME=cpu times
# CPU instead of wall-clock time (for a machine loaded by other work, with
# THREADS=1): per run, the process CPU time of --bench RUNS minus that of
# --bench 1, over RUNS - 1 (ggml_matmul: its median CPU time per run).
# Usage: bench/quant_gemv.sh [BUILD_DIR] [WORK_DIR]
#   env SHAPES="4096x4096 4096x14336" MS="1 32 128" RUNS=30 THREADS=1
#       SCHEMES="fp32 w8a16 w4a16 w8a8-dynamic" CPU_FLAGS= ROUNDS=1
#       BASE_BUILD= LLAMA_CPP= LLAMA_BUILD= LLAMA_TYPES="f32 q4_0 q4_K"
#       LLAMA_BUFFER= TIME=wall
# Small batches (issue #18 point 2; docs/benchmarks.md "Small batches"):
#   SHAPES=4096x14336 MS="1 2 4 8 16 32" SCHEMES="fp32 fp32@base w4a16
#   w4a16@base" BASE_BUILD=/path/to/main/build LLAMA_CPP=/work/llama.cpp
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
WORK=${2:-$(mktemp -d)}
SHAPES=${SHAPES:-"4096x4096 4096x14336"}
MS=${MS:-"1 32 128"}
RUNS=${RUNS:-30}
THREADS=${THREADS:-1}
SCHEMES=${SCHEMES:-"fp32 w8a16 w4a16 w8a8-dynamic"}
ROUNDS=${ROUNDS:-1}
read -r -a CPU_ARGS <<<"${CPU_FLAGS:-}"
BASE_BUILD=${BASE_BUILD:-}
LLAMA_CPP=${LLAMA_CPP:-}
LLAMA_BUILD=${LLAMA_BUILD:-${LLAMA_CPP:+$LLAMA_CPP/build}}
LLAMA_TYPES=${LLAMA_TYPES:-"f32 q4_0 q4_K"}
LLAMA_BUFFER=${LLAMA_BUFFER:-}
TIME=${TIME:-wall}
[ "$TIME" = wall ] || [ "$TIME" = cpu ] ||
  { echo "quant_gemv: TIME must be wall or cpu" >&2; exit 1; }
# CPU ms per run of an executable (TIME=cpu): --bench RUNS minus --bench 1.
cpu_per_run() {
  $PY - "$RUNS" "$@" <<'PYEOF'
import resource, subprocess, sys
runs, cmd = int(sys.argv[1]), sys.argv[2:]
def cpu(n):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd + ["--bench", str(n)], check=True,
                   stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
print("%.4f" % ((cpu(runs) - cpu(1)) * 1e3 / (runs - 1)))
PYEOF
}
PY=/usr/bin/python3
mkdir -p "$WORK"
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
case " $SCHEMES " in
  *@base*) [ -x "$BASE_BUILD/bin/quench-compile" ] ||
    { echo "quant_gemv: SCHEME@base needs BASE_BUILD with bin/quench-compile" >&2; exit 1; } ;;
esac
PEERS=()
if [ -n "$LLAMA_CPP" ]; then
  [ -f "$LLAMA_CPP/ggml/include/ggml.h" ] && [ -d "$LLAMA_BUILD/bin" ] ||
    { echo "quant_gemv: no ggml/include/ggml.h in $LLAMA_CPP or no $LLAMA_BUILD/bin" >&2; exit 1; }
  /usr/lib/llvm-22/bin/clang -O2 -I "$LLAMA_CPP/ggml/include" \
    "$ROOT/bench/ggml_matmul.c" -o "$WORK/ggml_matmul" -L "$LLAMA_BUILD/bin" \
    -lggml -lggml-base -lggml-cpu -lm -Wl,-rpath,"$LLAMA_BUILD/bin"
  echo "llama.cpp: $(git -C "$LLAMA_CPP" rev-parse --short HEAD 2>/dev/null || echo '?')"
  for t in $LLAMA_TYPES; do PEERS+=("ggml:$t"); done
fi

/usr/lib/llvm-22/bin/clang -O2 -march=native "$ROOT/bench/read_bw.c" \
  -o "$WORK/read_bw"
BW_LINE=$("$WORK/read_bw" 1024)
echo "$BW_LINE"
BW=$(echo "$BW_LINE" | sed -E 's/read-bw: ([0-9.]+) GB.*/\1/')
MHZ=$(awk -F: '/cpu MHz/ {print $2; exit}' /proc/cpuinfo | tr -d ' ')
echo "clock: ${MHZ} MHz (nominal, /proc/cpuinfo); threads: $THREADS"

echo "quench-compile flags: ${CPU_FLAGS:-(host)}; rounds: $ROUNDS; time: $TIME"
printf "%-11s %4s %-12s %9s %9s %9s %8s %9s %8s %7s %s\n" "K x N" M scheme \
  "median ms" "weight MB" "GB/s" "of read" "ns/32w" "cyc/32w" "vs fp32" \
  "range of round medians"
for shape in $SHAPES; do
  IFS=x read -r K N <<<"$shape"
  base=$WORK/lin_$shape
  $PY - "$base" "$K" "$N" <<'PYEOF'
import sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
base, k, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
w = (rng.standard_normal((k, n), dtype=np.float32) * 0.02)
g = helper.make_graph(
    [helper.make_node("MatMul", ["x", "W"], ["y"], name="/lin/MatMul")],
    "lin", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["M", k])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", n])],
    [numpy_helper.from_array(w, "W")])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]),
          base + ".onnx")
PYEOF
  declare -A MED=()
  for M in $MS; do
    $PY - "$base" "$M" "$K" <<'PYEOF'
import os, sys, numpy as np
base, m, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
x = np.random.default_rng(1).standard_normal((m, k), dtype=np.float32)
np.save("%s.x%d.npy" % (base, m), x)
os.makedirs("%s.calib%d" % (base, m), exist_ok=True)
np.save("%s.calib%d/x.npy" % (base, m), x)
PYEOF
    # Static shapes: the row count is known at compile time (a dynamic M
    # takes the masked multi-row path, slow for one row).
    for scheme in $SCHEMES; do
      flags=()
      calib=$base.calib$M
      compiler=$BUILD/bin/quench-compile
      [ "${scheme%@base}" = "$scheme" ] || compiler=$BASE_BUILD/bin/quench-compile
      plain=${scheme%@base}
      case $plain in
        fp32) ;;
        w8a8-generic) flags=(--quant=w8a8-dynamic --int8-dot=false) ;;
        w8a8) flags=(--quant=w8a8 --calib="$calib") ;;
        w8a8-o*) c=${plain#w8a8-o}
          flags=(--quant=w8a8 --outliers="$c" --outlier-cap="$c" --calib="$calib") ;;
        w8a8-dynamic-o*) c=${plain#w8a8-dynamic-o}
          flags=(--quant=w8a8-dynamic --outliers="$c" --outlier-cap="$c" --calib="$calib") ;;
        *) flags=(--quant=$plain) ;;
      esac
      "$compiler" "$base.onnx" -o "$base.$scheme" --name lin \
        --shape x=${M}x${K} --report="$base.$scheme.json" "${flags[@]}" \
        ${CPU_ARGS[@]+"${CPU_ARGS[@]}"} >/dev/null
    done
    declare -A ALL=()
    for scheme in $SCHEMES; do
      exe=$base.$scheme
      out=$base.out.$scheme.$M
      mkdir -p "$out"
      "$exe" --input x="$base.x$M.npy" --output-dir "$out" >/dev/null
      ALL[$scheme]=""
    done
    # Alternate the schemes: the machine's load changes over a run.
    for peer in ${PEERS[@]+"${PEERS[@]}"}; do ALL[$peer]=""; done
    for ((round = 0; round < ROUNDS; round++)); do
      for scheme in $SCHEMES; do
        if [ "$TIME" = cpu ]; then
          med=$(cpu_per_run "$base.$scheme" --input x="$base.x$M.npy" \
                  --threads "$THREADS")
        else
          med=$("$base.$scheme" --input x="$base.x$M.npy" --bench "$RUNS" \
                  --threads "$THREADS" |
                sed -n 's/^bench: .* median \([0-9.]*\) ms.*/\1/p')
        fi
        ALL[$scheme]="${ALL[$scheme]} $med"
      done
      pat='s/^ggml: .* median \([0-9.]*\) ms.*/\1/p'
      [ "$TIME" = wall ] || pat='s/^ggml: .* cpu \([0-9.]*\) ms.*/\1/p'
      for peer in ${PEERS[@]+"${PEERS[@]}"}; do
        med=$("$WORK/ggml_matmul" "${peer#ggml:}" "$K" "$N" "$M" "$THREADS" \
                "$RUNS" $LLAMA_BUFFER 2>/dev/null | sed -n "$pat")
        [ -n "$med" ] || { echo "quant_gemv: ggml_matmul ${peer#ggml:} failed" >&2; exit 1; }
        ALL[$peer]="${ALL[$peer]} $med"
      done
    done
    for scheme in $SCHEMES ${PEERS[@]+"${PEERS[@]}"}; do
      MED[$scheme]=$($PY -c "import sys, statistics; \
print(statistics.median(float(v) for v in sys.argv[1:]))" ${ALL[$scheme]})
    done
    for peer in ${PEERS[@]+"${PEERS[@]}"}; do
      $PY - "$shape" "$M" "$peer" "${MED[$peer]}" "${MED[fp32]:-${MED[$peer]}}" \
          ${ALL[$peer]} <<'PYEOF'
import sys
shape, m, peer, med, f32 = sys.argv[1:6]
rounds = [float(v) for v in sys.argv[6:]]
print("%-11s %4s %-12s %9.3f %9s %9s %8s %9s %8s %6.2fx %s" % (
    shape, m, peer, float(med), "-", "-", "-", "-", "-",
    float(f32) / float(med),
    "%.3f-%.3f" % (min(rounds), max(rounds)) if len(rounds) > 1 else ""))
PYEOF
    done
    for scheme in $SCHEMES; do
      med=${MED[$scheme]}
      bytes=$($PY -c "import json,sys; r=json.load(open(sys.argv[1])); \
print(r['linear_weight_bytes_after'] if r['layers'] else r['constant_bytes_after'])" \
        "$base.$scheme.json")
      $PY - "$shape" "$M" "$scheme" "$med" "$bytes" "$BW" "$MHZ" \
          "${MED[fp32]:-$med}" "$K" "$N" ${ALL[$scheme]} <<'PYEOF'
import sys
shape, m, scheme, med, b, bw, mhz, f32, k, n = sys.argv[1:11]
rounds = [float(v) for v in sys.argv[11:]]
med, b, bw, mhz, f32 = float(med), int(b), float(bw), float(mhz), float(f32)
k, n = int(k), int(n)
gbs = b / (med * 1e-3) / 1e9
ns32 = med * 1e6 / (k * n / 32)
print("%-11s %4s %-12s %9.3f %9.2f %9.1f %7.0f%% %9.3f %8.2f %6.2fx %s" % (
    shape, m, scheme, med, b / 1e6, gbs, 100 * gbs / bw, ns32,
    ns32 * mhz / 1e3, f32 / med,
    "%.3f-%.3f" % (min(rounds), max(rounds)) if len(rounds) > 1 else ""))
PYEOF
    done
  done
  # Numbers are only worth printing for correct code.
  $PY - "$base" "$MS" "$SCHEMES" <<'PYEOF'
import sys, numpy as np
base, ms, schemes = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
import onnx
from onnx import numpy_helper
w = numpy_helper.to_array(onnx.load(base + ".onnx").graph.initializer[0])
for m in ms:
    x = np.load("%s.x%s.npy" % (base, m)).astype(np.float64)
    want = x @ w.astype(np.float64)
    for scheme in schemes:
        plain = scheme.split("@")[0]
        tol = {"fp32": 1e-4, "w8a16": 2e-2, "w4a16": 2e-1}.get(
            plain, 5e-2 if plain.startswith("w8a8") else None)
        if tol is None:
            continue
        got = np.load("%s.out.%s.%s/y.npy" % (base, scheme, m))
        err = np.abs(got - want).max() / np.abs(want).max()
        if not err < tol:
            sys.exit("quant_gemv: %s M=%s %s: max rel err %.3g vs float "
                     "(quantization error bound %g)" % (base, m, scheme, err,
                                                        tol))
PYEOF
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "work directory: $WORK"
