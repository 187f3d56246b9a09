#!/usr/bin/env bash
# The main job on a bundled default: sets everything up, builds the tools,
# creates the project's character-level GPT (examples/chargpt/chargpt.py:
# trains it on the KJV Bible for a couple of minutes the first time, then
# reuses the checkpoint), compiles its ONNX export to a native executable
# with quench-compile, runs it, and prints its outputs, agreement with the
# PyTorch model and timing; then quantizes it (W8A16, W4A16) and prints the
# float vs quantized sizes, accuracy (KL, top-1 on held-out text) and speed;
# then generates text with a KV cache from its export with past key/values
# and prints prefill and decode tokens/s; then a small T5 (examples/t5qa,
# trained for 300 steps the first time) answers questions through its
# compiled encoder and decoders, float and W8A16, with tokens/s.
#
#   scripts/demo.sh                  QUENCH_DEMO_TRAIN_MINUTES (default 2)
#                                    sets the first training run's budget
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${QUENCH_BUILD_DIR:-$ROOT/build}
PY=/usr/bin/python3
MINUTES=${QUENCH_DEMO_TRAIN_MINUTES:-2}

bash scripts/setup-deps.sh
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/quench-ccache}
cmake -G Ninja -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
  -DLLVM_USE_LINKER=lld >/dev/null
ninja -C "$BUILD_DIR" quench-compile quench-import quench-opt quench_runtime

WORK=$BUILD_DIR/demo
mkdir -p "$WORK"
ms() { date +%s%N | cut -c1-13; }

echo
echo "== 1. Model: character-level GPT (examples/chargpt/chargpt.py)"
if [ ! -f "$WORK/chargpt.pt" ]; then
  echo "training for $MINUTES min on the KJV text (once; the checkpoint is kept in $WORK)"
  $PY examples/chargpt/chargpt.py train --out "$WORK" --minutes "$MINUTES" |
    tail -3
fi
$PY examples/chargpt/chargpt.py export --out "$WORK" >/dev/null
$PY - "$WORK/chargpt.json" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
c = d["config"]
print("chargpt: %d layers, %d heads, n_embd %d, block %d, vocab %d: "
      "%d parameters, %.2f MB of fp32 weights" % (
          c["n_layer"], c["n_head"], c["n_embd"], c["block_size"],
          c["vocab_size"], d["parameters"], d["fp32_weight_bytes"] / 1e6))
PYEOF

echo
echo "== 2. Compile: quench-compile chargpt.onnx -o chargpt (import, CPU pipeline, native code)"
t0=$(ms)
"$BUILD_DIR/bin/quench-compile" "$WORK/chargpt.onnx" -o "$WORK/chargpt"
echo "compiled in $(( $(ms) - t0 )) ms -> $WORK/chargpt ($(stat -c %s "$WORK/chargpt") bytes)"
"$WORK/chargpt" --help | sed -n '/^Model:/,$p'

echo
echo "== 3. Run: chargpt --input tokens=chargpt.tokens.npy --output-dir out"
rm -rf "$WORK/out" && mkdir -p "$WORK/out"
"$WORK/chargpt" --input tokens="$WORK/chargpt.tokens.npy" --output-dir "$WORK/out"
"$WORK/chargpt" --input tokens="$WORK/chargpt.tokens.npy"
$PY - "$WORK" <<'PYEOF'
import ast, json, sys
import numpy as np
w = sys.argv[1]
vocab = json.load(open(w + "/chargpt.json"))["vocab"]
if isinstance(vocab, str):
    vocab = ast.literal_eval(vocab)
tokens = np.load(w + "/chargpt.tokens.npy")[0]
got = np.load(w + "/out/logits.npy")[0]
want = np.load(w + "/chargpt.logits.npy")[0]
dec = lambda ids: "".join(vocab[i] if i < len(vocab) else "" for i in ids)
print("input text:            %r" % dec(tokens))
print("next chars (compiled): %r" % dec(got.argmax(-1)))
print("next chars (PyTorch):  %r" % dec(want.argmax(-1)))
print("compiled vs PyTorch: max |diff| %.2e (logits up to %.1f), top-1 agreement %.1f%%"
      % (np.abs(got - want).max(), np.abs(want).max(),
         100 * (got.argmax(-1) == want.argmax(-1)).mean()))
PYEOF

echo
echo "== 4. Speed: 50 runs at T=32"
for t in 1 2; do
  "$WORK/chargpt" --input tokens="$WORK/chargpt.tokens.npy" --bench 50 --threads $t |
    grep bench:
done

echo
echo "== 5. Quantize: int8 weights per channel (W8A16), int4 in groups of 32 with GPTQ (W4A16),"
echo "      and int8 weights x int8 activations with per-token scales (W8A8)"
echo "-- calibration samples: 32 windows of the training text (docs/calibration.md)"
$PY - "$WORK" <<'PYEOF'
import os, sys
sys.path[:0] = ["bench", "examples/chargpt"]
import accuracy
w = sys.argv[1]
accuracy.write_samples(accuracy.chargpt_train_windows(w, 32), w + "/calib", "tokens")
PYEOF
quant_flags() {
  case $1 in
    w8a16) echo "--quant=w8a16" ;;
    w4a16) echo "--quant=w4a16 --algo=gptq --calib=$WORK/calib --calib-cache=$WORK/chargpt.calib" ;;
    w8a8) echo "--quant=w8a8-dynamic" ;;
  esac
}
for q in w8a16 w4a16 w8a8; do
  echo "-- quench-compile chargpt.t32.onnx -o chargpt_$q $(quant_flags $q | sed "s#$WORK/##g")"
  # shellcheck disable=SC2046
  "$BUILD_DIR/bin/quench-compile" "$WORK/chargpt.t32.onnx" -o "$WORK/chargpt_$q" \
    $(quant_flags $q) --report="$WORK/chargpt_$q.report.json" | tail -2
done
"$BUILD_DIR/bin/quench-compile" "$WORK/chargpt.t32.onnx" -o "$WORK/chargpt_f32"
$PY - "$WORK" <<'PYEOF'
import json, os, sys
w = sys.argv[1]
print("%-8s %22s %14s" % ("", "weights (constants)", "executable"))
f32 = json.load(open(w + "/chargpt_w8a16.report.json"))["constant_bytes_before"]
print("%-8s %19.2f MB %11.2f MB" % ("fp32", f32 / 1e6,
                                     os.path.getsize(w + "/chargpt_f32") / 1e6))
for q in ("w8a16", "w4a16", "w8a8"):
    r = json.load(open(w + "/chargpt_%s.report.json" % q))
    print("%-8s %19.2f MB %11.2f MB" % (q, r["constant_bytes_after"] / 1e6,
                                         r["artifact_bytes"] / 1e6))
PYEOF
echo "-- accuracy against the float model on 32 held-out windows of 32 characters"
$PY examples/chargpt/quant_eval.py --model-dir "$WORK" --sequences 32 \
  --float "$WORK/chargpt_f32" --quant w8a16="$WORK/chargpt_w8a16" \
  --quant "w4a16 g32 gptq=$WORK/chargpt_w4a16" \
  --quant "w8a8 dynamic=$WORK/chargpt_w8a8"
echo "-- speed: 50 runs at T=32, 1 thread"
for m in f32 w8a16 w4a16 w8a8; do
  printf "%-6s " $m
  "$WORK/chargpt_$m" --input tokens="$WORK/chargpt.tokens.npy" --bench 50 --threads 1 |
    grep bench: | sed 's/^bench: //'
done

echo
echo "== 6. Generate with a KV cache (docs/generation.md): chargpt exported with past"
echo "      key/values, compiled float and W8A16; the prompt in one run, then one run per"
echo "      character that reads the earlier keys/values from the session's cache"
$PY examples/chargpt/chargpt.py export --out "$WORK" --with-past >/dev/null
for q in f32 w8a16; do
  flags=""
  [ $q = w8a16 ] && flags="--quant=w8a16"
  # shellcheck disable=SC2086
  "$BUILD_DIR/bin/quench-compile" "$WORK/chargpt_past.onnx" -o "$WORK/chargpt_gen_$q" $flags >/dev/null
  echo "-- chargpt_gen_$q --input input_ids=chargpt_past.prompt_ids.npy --generate 20 --threads 1"
  rm -rf "$WORK/gen_$q" && mkdir -p "$WORK/gen_$q"
  "$WORK/chargpt_gen_$q" --input input_ids="$WORK/chargpt_past.prompt_ids.npy" \
    --generate 20 --threads 1 --bench 20 --output-dir "$WORK/gen_$q" |
    grep -E "prefill|decode"
done
$PY - "$WORK" <<'PYEOF'
import ast, json, sys
import numpy as np
w = sys.argv[1]
vocab = json.load(open(w + "/chargpt.json"))["vocab"]
if isinstance(vocab, str):
    vocab = ast.literal_eval(vocab)
dec = lambda ids: "".join(vocab[i] if i < len(vocab) else "" for i in ids)
prompt = np.load(w + "/chargpt_past.prompt_ids.npy")[0]
want = np.load(w + "/chargpt_past.greedy_ids.npy")[0]
for q in ("f32", "w8a16"):
    got = np.load(w + "/gen_%s/generated_ids.npy" % q)[0]
    n = min(len(got), len(want))
    print("%-6s %r  (greedy ids %s PyTorch's without a cache)" % (
        q, dec(prompt) + dec(got),
        "equal to" if (got[:n] == want[:n]).all() else
        "differ in %d of %d places from" % ((got[:n] != want[:n]).sum(), n)))
PYEOF

echo
echo "== 7. Encoder-decoder (docs/generation.md): a small T5 (examples/t5qa) answers questions,"
echo "      compiled from Optimum's three-file split: the encoder and the cross-attention"
echo "      keys/values once per question, the decoder's own keys/values in a session's cache"
if [ ! -f "$WORK/t5qa/t5qa.pt" ]; then
  echo "training for 300 steps (once; the checkpoint is kept in $WORK/t5qa)"
  $PY examples/t5qa/t5qa.py train --steps 300 --threads 1 --out "$WORK/t5qa" |
    grep "exact match"
fi
$PY examples/t5qa/t5qa.py export --out "$WORK/t5qa" --calib-samples 0 >/dev/null
for q in f32 w8a16; do
  flags=""
  [ $q = w8a16 ] && flags="--quant=w8a16"
  d="$WORK/t5qa_$q"
  mkdir -p "$d"
  t5c() {  # GRAPH NAME: compile one of the three graphs to an object
    # shellcheck disable=SC2086
    "$BUILD_DIR/bin/quench-compile" "$WORK/t5qa/t5qa/$1.onnx" -o "$d/$2" \
      --emit=obj --name "$2" $flags >/dev/null
  }
  t5c encoder_model t5qa_encoder & pid=$!
  t5c decoder_model t5qa_decoder
  wait $pid
  t5c decoder_with_past_model t5qa_decoder_past
  cc -std=c11 -O2 -I runtime/include -I "$d" examples/t5qa/t5qa.c \
    "$d/t5qa_encoder.o" "$d/t5qa_decoder.o" "$d/t5qa_decoder_past.o" \
    "$BUILD_DIR/lib/libquench_runtime.a" -lm -lpthread -ldl -o "$d/t5qa"
  echo "-- t5qa ($q: examples/t5qa/t5qa.c + 3 compiled models) --tokenizer tokenizer.json QUESTION... --bench 20"
  "$d/t5qa" --tokenizer "$WORK/t5qa/t5qa/tokenizer.json" --bench 20 \
    "where is delhi?" "what is the capital of india?" "where is the eiffel tower?" \
    "which city is the capital of france?" "where is dubai?" |
    grep -E " -> |decoder with past|answers:"
done
