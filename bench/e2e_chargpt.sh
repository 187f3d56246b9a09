#!/usr/bin/env bash
# End-to-end latency of the bundled char-GPT (examples/chargpt/chargpt.py):
# ONNX Runtime 1.30 (CPU execution provider, through onnxruntime-node) versus
# the executable quench-compile builds from the same ONNX file.
#
# Usage: bench/e2e_chargpt.sh [WORK_DIR]
#   WORK_DIR        scratch directory (default: a new temporary directory)
# Environment:
#   BUILD=build     Quench build directory (the Quench side is skipped when
#                   BUILD/bin/quench-compile does not exist; when it exists
#                   but fails, ORT is still timed and the script exits 1)
#   CHARGPT=build/chargpt  where `chargpt.py train` put its checkpoint: when
#                   CHARGPT/chargpt.pt exists the trained model is used, else
#                   seeded random weights (`chargpt.py export --random`)
#   RUNS=300        timed runs per measurement (after one warm-up run)
#   QUENCH_RUNS=$RUNS  timed runs for the Quench executable (lower it while
#                   Quench's code is much slower than ORT's)
#   ROUNDS=3        measurements per engine and thread count, alternating
#                   ORT and Quench; the table shows the median of the rounds'
#                   medians (and the best minimum)
#   THREADS="1 2"   thread counts to measure
#   TOL=1e-3        largest accepted max |difference| between the outputs
#
# The model is the static-shape export (tokens int64 [1, 32] -> logits
# float32 [1, 32, 65]) and the input is NAME.tokens.npy. Outputs of ORT and
# Quench are compared with each other and with PyTorch's reference logits
# (Debian's /usr/bin/python3 + numpy); the script exits 1 when they differ by
# more than TOL.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
CHARGPT=${CHARGPT:-$ROOT/build/chargpt}
RUNS=${RUNS:-300}
QUENCH_RUNS=${QUENCH_RUNS:-$RUNS}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-1 2}
TOL=${TOL:-1e-3}
WORK=${1:-$(mktemp -d)}
PY=/usr/bin/python3
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

# --- model ---------------------------------------------------------------
if [ -f "$CHARGPT/chargpt.pt" ]; then
  NAME=chargpt
  MODELDIR=$CHARGPT
  if [ ! -f "$MODELDIR/$NAME.t32.onnx" ] ||
     [ "$MODELDIR/$NAME.t32.onnx" -ot "$MODELDIR/chargpt.pt" ]; then
    $PY "$ROOT/examples/chargpt/chargpt.py" export --out "$MODELDIR"
  fi
else
  NAME=chargpt_random
  MODELDIR=$WORK
  if [ ! -f "$MODELDIR/$NAME.t32.onnx" ]; then
    $PY "$ROOT/examples/chargpt/chargpt.py" export --random --out "$MODELDIR"
  fi
fi
MODEL=$MODELDIR/$NAME.t32.onnx
TOKENS=$MODELDIR/$NAME.tokens.npy
REF=$MODELDIR/$NAME.logits.npy
echo "model: $MODEL ($(stat -c %s "$MODEL") bytes); input $TOKENS"

# --- engines -------------------------------------------------------------
"$ROOT/bench/ort/setup.sh" >/dev/null
ort_cmd() {  # threads [extra args...]
  local t=$1; shift
  node "$ROOT/bench/ort/run.js" "$MODEL" --input "tokens=$TOKENS" \
    --threads "$t" "$@"
}

HAVE_QUENCH=0
COMPILE_FAILED=0
EXE=$WORK/chargpt
if [ -x "$BUILD/bin/quench-compile" ]; then
  echo "quench-compile: $MODEL -> $EXE"
  rm -f "$EXE"
  start=$(date +%s%N)
  if "$BUILD/bin/quench-compile" "$MODEL" -o "$EXE" --emit=exe &&
     [ -x "$EXE" ]; then
    echo "quench-compile took $(( ($(date +%s%N) - start) / 1000000 )) ms"
    HAVE_QUENCH=1
  else
    echo "quench-compile failed; timing ONNX Runtime only" >&2
    COMPILE_FAILED=1
  fi
else
  echo "quench: $BUILD/bin/quench-compile not found; timing ONNX Runtime only"
fi
quench_cmd() {  # threads [extra args...]
  local t=$1; shift
  "$EXE" --input "tokens=$TOKENS" --threads "$t" "$@"
}

# --- outputs agree? ------------------------------------------------------
mkdir -p "$WORK/out_ort" "$WORK/out_quench"
rm -f "$WORK/out_ort/logits.npy" "$WORK/out_quench/logits.npy"
ort_cmd 1 --output-dir "$WORK/out_ort" >/dev/null
if [ $HAVE_QUENCH = 1 ]; then
  quench_cmd 1 --output-dir "$WORK/out_quench" >/dev/null
fi
CHECK_OK=1
$PY - "$REF" "$WORK/out_ort/logits.npy" "$WORK/out_quench/logits.npy" \
    "$HAVE_QUENCH" "$TOL" <<'EOF' || CHECK_OK=0
import sys
import numpy as np
ref_path, ort_path, quench_path, have_quench, tol = sys.argv[1:]
tol = float(tol)
out = {"torch": np.load(ref_path), "ort": np.load(ort_path)}
if have_quench == "1":
    out["quench"] = np.load(quench_path)
ok = True
names = list(out)
for i, a in enumerate(names):
    for b in names[i + 1:]:
        x, y = out[a], out[b]
        if x.shape != y.shape or x.dtype != y.dtype:
            print("check: %s %s%s vs %s %s%s: MISMATCH" % (
                a, x.dtype, x.shape, b, y.dtype, y.shape))
            ok = False
            continue
        d = float(np.max(np.abs(x.astype(np.float64) - y)))
        same_argmax = float(np.mean(x.argmax(-1) == y.argmax(-1)))
        good = d <= tol
        ok &= good
        print("check: max |%s - %s| = %.3g (argmax agrees on %.0f%% of "
              "positions) %s" % (a, b, d, 100 * same_argmax,
                                 "ok" if good else "MISMATCH > %g" % tol))
sys.exit(0 if ok else 1)
EOF

# --- timings -------------------------------------------------------------
bench_line() {  # extracts "median min" from a `bench:` line on stdin
  sed -n 's/^bench: .* median \([0-9.]*\) ms, min \([0-9.]*\) ms.*/\1 \2/p'
}
declare -A MED
measure() {  # engine threads round
  local v n=$RUNS
  [ "$1" = quench ] && n=$QUENCH_RUNS
  v=$("${1}_cmd" "$2" --bench "$n" | bench_line)
  [ -n "$v" ] || { echo "e2e_chargpt: no bench line from $1" >&2; exit 1; }
  set -- "$1" "$2" "$3" $v
  printf "%-6s %s thread(s), round %s: median %s ms, min %s ms\n" "$@"
  MED[$1,$2]+="$4 $5 "
}
for t in $THREADS; do
  for r in $(seq "$ROUNDS"); do
    measure ort "$t" "$r"
    if [ $HAVE_QUENCH = 1 ]; then
      measure quench "$t" "$r"
    fi
  done
done
# MED[engine,t] holds "median min median min ..." over the rounds.
summary() {  # -> "median-of-medians best-min"
  $PY -c 'import sys, statistics as s
v = [float(x) for x in sys.argv[1].split()]
print("%.4f %.4f" % (s.median(v[0::2]), min(v[1::2])))' "$1"
}

echo
echo "char-GPT ($NAME, seq 32), $RUNS runs (Quench: $QUENCH_RUNS) x $ROUNDS" \
  "rounds; latency in ms"
echo "(median of the rounds' medians; best minimum, and the ratio of the"
echo "minimums, in parentheses)"
echo
printf "| threads | %-22s | %-22s | %-15s |\n" "ONNX Runtime 1.30 CPU" "Quench" \
  "Quench/ORT"
printf "| ------: | %22s | %22s | %15s |\n" "---------------------:" \
  "---------------------:" "--------------:"
for t in $THREADS; do
  read -r om on <<<"$(summary "${MED[ort,$t]}")"
  if [ $HAVE_QUENCH = 1 ]; then
    read -r qm qn <<<"$(summary "${MED[quench,$t]}")"
    ratio=$(awk -v q="$qm" -v o="$om" -v a="$qn" -v b="$on" \
            'BEGIN { printf "%.2f (%.2f)", q / o, a / b }')
    printf "| %7s | %22s | %22s | %15s |\n" "$t" "$om ($on)" "$qm ($qn)" \
      "$ratio"
  else
    printf "| %7s | %22s | %22s | %15s |\n" "$t" "$om ($on)" "n/a" "n/a"
  fi
done
echo
echo "work directory: $WORK"
if [ $CHECK_OK = 0 ]; then
  echo "e2e_chargpt: outputs differ (see check lines above)" >&2
  exit 1
fi
if [ $COMPILE_FAILED = 1 ]; then
  echo "e2e_chargpt: quench-compile failed (see above)" >&2
  exit 1
fi
