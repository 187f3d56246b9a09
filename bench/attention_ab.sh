#!/bin/bash
# Fused attention A/B on a decoder with past (docs/generation.md, "Fused
# attention"): the CPU kernel (default), the generic decomposition
# (--attention-kernel=false) and the exported chain (--fuse-attention=0),
# each with an f32 and an int8 KV cache, W4A16 g32; decode ms/token and
# prefill ms after a 128- and a 1024-token prompt at 1 and 2 threads,
# ROUNDS rounds (medians printed at the end).
#
# Usage: bench/attention_ab.sh BUILD MODEL_PAST.onnx WORK [ROUNDS]
#   MODEL_PAST.onnx: e.g. bench/generation.py's WORK/m125_past.onnx
#   (bench/gen_llama_onnx.py --preset 125m --with-past); vocabulary 32000.
# Timed runs use `chrt -f 50` when run as root (not preempted by others).
set -euo pipefail
BUILD=$1 MODEL=$2 WORK=$3 ROUNDS=${4:-3}
mkdir -p "$WORK"
RT=()
[ "$(id -u)" = 0 ] && RT=(chrt -f 50)
/usr/bin/python3 - "$WORK" <<'PY'
import sys, numpy as np
for n, seed in ((128, 7), (1024, 8)):
    np.save(f"{sys.argv[1]}/p{n}.npy",
            np.random.default_rng(seed).integers(3, 32000, (1, n)).astype(np.int64))
PY
declare -A FLAGS=([k]="" [d]="--attention-kernel=false" [u]="--fuse-attention=0")
for cache in f32 int8; do
  for v in k d u; do
    "$BUILD/bin/quench-compile" "$MODEL" -o "$WORK/${cache}_$v" --max-seq 1100 \
      --quant=w4a16 --group-size=32 --kv-cache=$cache ${FLAGS[$v]} >/dev/null
  done
done
LOG=$WORK/ab.log
: > "$LOG"
for round in $(seq "$ROUNDS"); do
  for cache in f32 int8; do
    for v in k d u; do
      for t in 1 2; do
        for p in 128 1024; do
          out=$("${RT[@]}" "$WORK/${cache}_$v" --generate 64 \
                  --input input_ids="$WORK/p$p.npy" --threads $t 2>&1 |
                grep -E '^(prefill|decode):' |
                sed 's/.* in \([0-9.]*\) ms.*/\1/' | tr '\n' ' ')
          echo "$round $cache $v $t $p $out" | tee -a "$LOG"
        done
      done
    done
  done
done
/usr/bin/python3 - "$LOG" <<'PY'
import collections, statistics, sys
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    _, cache, v, t, p, pre, dec = line.split()
    d[(cache, t, p, v)].append((float(pre), float(dec) / 63))
print("| cache | threads | prompt | kernel | decomposition | exported chain |")
print("| --- | --: | --: | --: | --: | --: |")
for cache in ("f32", "int8"):
    for t in ("1", "2"):
        for p in ("128", "1024"):
            cells = ["%.2f (%.0f)" % (statistics.median(x[1] for x in d[(cache, t, p, v)]),
                                      statistics.median(x[0] for x in d[(cache, t, p, v)]))
                     for v in "kdu"]
            print("| %s | %s | %s | %s |" % (cache, t, p, " | ".join(cells)))
print("decode ms/token (prefill ms), medians of the rounds")
PY
