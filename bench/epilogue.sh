#!/usr/bin/env bash
# Epilogue fusion (docs/lowering.md): a transformer MLP block compiled by two
# Quench builds (e.g. before and after a codegen change) and timed
# alternately in one run, one thread.
#
# The block is y = x + W2 · gelu(W1 · x + b1) + b2 on x [M, D] with W1
# [H, D], W2 [D, H] (random constants). Schemes: fp32; --quant=w8a8-dynamic;
# W8A8 static (quench-opt --quench-quantize-weights="activations=static
# static-input-range=4 quantize-head", then quench-compile): there the
# int32 accumulators of W1 · x are rescaled, biased, put through GELU and
# requantized for W2 in one epilogue. Outputs of the two builds must agree
# (max |difference| <= 1e-4 * max |y|); the table gives the median of the
# rounds' `--bench` medians and the best minimum.
#
# Usage: bench/epilogue.sh BUILD BASE_BUILD [WORK_DIR]
# Environment: SHAPES="32x192x768 128x768x3072" (M x D x H), RUNS=200,
#              ROUNDS=3, SCHEMES="fp32 w8a8-dynamic w8a8-static"
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:?usage: bench/epilogue.sh BUILD BASE_BUILD [WORK_DIR]}
BASE=${2:?usage: bench/epilogue.sh BUILD BASE_BUILD [WORK_DIR]}
WORK=${3:-$(mktemp -d)}
SHAPES=${SHAPES:-"32x192x768 128x768x3072"}
SCHEMES=${SCHEMES:-"fp32 w8a8-dynamic w8a8-static"}
RUNS=${RUNS:-200}
ROUNDS=${ROUNDS:-3}
PY=/usr/bin/python3
mkdir -p "$WORK"

bench_line() {  # "median min" from a `bench:` line on stdin
  sed -n 's/^bench: .* median \([0-9.]*\) ms, min \([0-9.]*\) ms.*/\1 \2/p'
}

printf "%-14s %-13s %-22s %-22s %s\n" "M x D x H" scheme "base: median (min) ms" \
  "build: median (min) ms" "build/base"
for shape in $SHAPES; do
  IFS=x read -r M D H <<<"$shape"
  src=$WORK/mlp_$shape.mlir
  $PY - "$src" "$M" "$D" "$H" "$WORK/mlp_$shape.x.npy" <<'PYEOF'
import sys
import numpy as np
path, m, d, h, xpath = sys.argv[1], *map(int, sys.argv[2:5]), sys.argv[5]
rng = np.random.default_rng(0)
def blob(a):
    return '"0x04000000' + a.astype(np.float32).tobytes().hex().upper() + '"'
w1 = rng.standard_normal((h, d)) / np.sqrt(d)
b1 = rng.standard_normal(h) * 0.1
w2 = rng.standard_normal((d, h)) / np.sqrt(h)
b2 = rng.standard_normal(d) * 0.1
np.save(xpath, rng.standard_normal((m, d)).astype(np.float32))
t = lambda *s: "tensor<" + "x".join(map(str, s)) + "xf32>"
with open(path, "w") as f:
    f.write(f"""func.func @main(%x: {t(m, d)} {{quench.name = "x"}}) -> ({t(m, d)} {{quench.name = "y"}}) {{
  %w1 = quench.constant dense_resource<w1> : {t(h, d)}
  %b1 = quench.constant dense_resource<b1> : {t(h)}
  %w2 = quench.constant dense_resource<w2> : {t(d, h)}
  %b2 = quench.constant dense_resource<b2> : {t(d)}
  %0 = quench.linear %x, %w1, %b1 : ({t(m, d)}, {t(h, d)}, {t(h)}) -> {t(m, h)} loc("fc1")
  %1 = quench.gelu %0 : {t(m, h)}
  %2 = quench.linear %1, %w2, %b2 : ({t(m, h)}, {t(d, h)}, {t(d)}) -> {t(m, d)} loc("fc2")
  %3 = quench.add %x, %2 : ({t(m, d)}, {t(m, d)}) -> {t(m, d)}
  return %3 : {t(m, d)}
}}
{{-#
  dialect_resources: {{
    builtin: {{
      w1: {blob(w1)},
      b1: {blob(b1)},
      w2: {blob(w2)},
      b2: {blob(b2)}
    }}
  }}
#-}}
""")
PYEOF
  for scheme in $SCHEMES; do
    for side in base build; do
      b=$BUILD; [ $side = base ] && b=$BASE
      exe=$WORK/mlp_${shape}_${scheme}_$side
      in=$src
      flags=()
      case $scheme in
        fp32) ;;
        w8a8-dynamic) flags=(--quant=w8a8-dynamic) ;;
        w8a8-static)
          in=$WORK/mlp_${shape}_static_$side.mlir
          "$b/bin/quench-opt" "$src" -o "$in" --quench-quantize-weights="activations=static static-input-range=4 quantize-head" ;;
        *) echo "epilogue.sh: unknown scheme $scheme" >&2; exit 1 ;;
      esac
      "$b/bin/quench-compile" "$in" -o "$exe" --emit=exe --name mlp "${flags[@]}" >/dev/null
      mkdir -p "$exe.out"
      "$exe" --input x="$WORK/mlp_$shape.x.npy" --output-dir "$exe.out" >/dev/null
    done
    $PY - "$WORK/mlp_${shape}_${scheme}_base.out/y.npy" \
        "$WORK/mlp_${shape}_${scheme}_build.out/y.npy" <<'PYEOF'
import sys
import numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
d = float(np.abs(a.astype(np.float64) - b).max())
if not d <= 1e-4 * float(np.abs(a).max()):
    sys.exit(f"epilogue.sh: outputs differ by {d:.3g}")
PYEOF
    declare -A meds=() mins=()
    for r in $(seq "$ROUNDS"); do
      for side in base build; do
        exe=$WORK/mlp_${shape}_${scheme}_$side
        read -r med min < <("$exe" --input x="$WORK/mlp_$shape.x.npy" --bench "$RUNS" --threads 1 | bench_line)
        meds[$side]="${meds[$side]:-} $med"
        mins[$side]="${mins[$side]:-} $min"
      done
    done
    $PY - "$shape" "$scheme" "${meds[base]}" "${mins[base]}" "${meds[build]}" "${mins[build]}" <<'PYEOF'
import sys
import statistics as st
shape, scheme = sys.argv[1:3]
f = lambda s: [float(v) for v in s.split()]
bm, bn, nm, nn = (f(s) for s in sys.argv[3:7])
print("%-14s %-13s %-22s %-22s %.2f" % (
    shape, scheme, "%.3f (%.3f)" % (st.median(bm), min(bn)),
    "%.3f (%.3f)" % (st.median(nm), min(nn)), st.median(nm) / st.median(bm)))
PYEOF
    unset meds mins
  done
done
