#!/usr/bin/env bash
# Generated fp32 GEMM/GEMV vs the machine's FMA peak, measured in the same run.
#
# For each shape (M x K) * (K x N) a one-op quench model (quench.matmul on
# two inputs) is compiled with quench-compile (host CPU, -O3) into an
# executable; its --bench median latency gives GFLOPS = 2*M*N*K / time,
# compared with bench/fma_peak.c (independent FMA chains on registers) on
# 1 thread and on all threads. The results are checked against NumPy.
# Usage: bench/gemm.sh [BUILD_DIR] [WORK_DIR]     (env RUNS, THREADS, SHAPES)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
WORK=${2:-$(mktemp -d)}
RUNS=${RUNS:-20}
NPROC=$(nproc)
THREADS=${THREADS:-"1 $NPROC"}
SHAPES=${SHAPES:-"512x512x512 1024x1024x1024 128x4096x4096 32x4096x4096 1x4096x4096"}
PY=/usr/bin/python3
mkdir -p "$WORK"

/usr/lib/llvm-22/bin/clang -O2 -march=native "$ROOT/bench/fma_peak.c" \
  -lpthread -o "$WORK/fma_peak"
PEAK=$("$WORK/fma_peak" "$NPROC")
echo "$PEAK"
PEAK1=$(echo "$PEAK" | sed -E 's/.*1 thread ([0-9.]+) GFLOPS.*/\1/')
PEAKN=$(echo "$PEAK" | sed -E 's/.*threads ([0-9.]+) GFLOPS.*/\1/')

printf "%-16s %7s %10s %9s %8s\n" "M x K x N" threads "median ms" GFLOPS "of peak"
for shape in $SHAPES; do
  IFS=x read -r M K N <<<"$shape"
  base=$WORK/mm_$shape
  cat > "$base.mlir" <<MLIR
func.func @main(%a: tensor<${M}x${K}xf32> {quench.name = "a"},
                %b: tensor<${K}x${N}xf32> {quench.name = "b"})
    -> (tensor<${M}x${N}xf32> {quench.name = "c"}) {
  %0 = quench.matmul %a, %b : (tensor<${M}x${K}xf32>, tensor<${K}x${N}xf32>) -> tensor<${M}x${N}xf32>
  return %0 : tensor<${M}x${N}xf32>
}
MLIR
  "$BUILD/bin/quench-compile" "$base.mlir" -o "$base" --name mm
  $PY - "$base" "$M" "$K" "$N" <<'PYEOF'
import sys, numpy as np
base, m, k, n = sys.argv[1], *map(int, sys.argv[2:])
rng = np.random.default_rng(0)
np.save(base + ".a.npy", rng.standard_normal((m, k), dtype=np.float32))
np.save(base + ".b.npy", rng.standard_normal((k, n), dtype=np.float32))
PYEOF
  mkdir -p "$base.out"
  "$base" --input a="$base.a.npy" --input b="$base.b.npy" --output-dir "$base.out" >/dev/null
  $PY - "$base" <<'PYEOF'
import sys, numpy as np
base = sys.argv[1]
a, b = np.load(base + ".a.npy"), np.load(base + ".b.npy")
want = a.astype(np.float64) @ b.astype(np.float64)
got = np.load(base + ".out/c.npy")
err = np.abs(got - want).max() / np.abs(want).max()
if not err < 1e-5:
    sys.exit("gemm %s: wrong result, max rel err %.3g" % (base, err))
PYEOF
  for t in $THREADS; do
    line=$("$base" --input a="$base.a.npy" --input b="$base.b.npy" --bench "$RUNS" --threads "$t" | grep '^bench:')
    med=$(echo "$line" | sed -E 's/.*median ([0-9.e+-]+) ms.*/\1/')
    peak=$PEAK1; [ "$t" = 1 ] || peak=$PEAKN
    awk -v s="$shape" -v t="$t" -v ms="$med" -v m="$M" -v k="$K" -v n="$N" -v p="$peak" \
      'BEGIN { g = 2*m*n*k / (ms*1e-3) / 1e9;
               printf "%-16s %7d %10.3f %9.1f %7.0f%%\n", s, t, ms, g, 100*g/p }'
  done
done
