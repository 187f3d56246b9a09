#!/usr/bin/env bash
# Runs one libFuzzer target for a given time (docs/testing.md, "Fuzzing").
#
#   scripts/fuzz.sh TARGET SECONDS [libFuzzer options...]
#   scripts/fuzz.sh --list
#
# Builds the fuzzers in the sanitized build directory of scripts/test.sh
# (QUENCH_ASAN_BUILD_DIR, default build-asan) with clang-22 and
# -fsanitize=fuzzer,address,undefined;
# model-run-fuzzer's model is compiled by the regular build's quench-compile
# (QUENCH_BUILD_DIR, default build: build it first). The corpus grows in
# BUILD/corpus/TARGET, starting from fuzz/corpus/TARGET; findings (crash-*,
# leak-*, timeout-*, oom-*) land in BUILD/findings/TARGET and the script
# exits nonzero. Copy a finding into fuzz/corpus/TARGET as regress-NAME once
# it is fixed: CTest's fuzz/TARGET replays it in every build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGETS="npy-fuzzer calib-cache-fuzzer recipe-fuzzer onnx-import-fuzzer gguf-fuzzer model-run-fuzzer"
if [ "${1:-}" = "--list" ]; then
  tr ' ' '\n' <<<"$TARGETS"
  exit 0
fi
if [ $# -lt 2 ]; then
  echo "usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer options...]" >&2
  exit 2
fi
TARGET=$1 SECONDS_=$2
shift 2
case " $TARGETS " in *" $TARGET "*) ;; *)
  echo "fuzz.sh: unknown target '$TARGET' (--list)" >&2; exit 2;; esac
FUZZ_DIR=${QUENCH_ASAN_BUILD_DIR:-$ROOT/build-asan}
BUILD_DIR=${QUENCH_BUILD_DIR:-$ROOT/build}
JOBS=${QUENCH_JOBS:-$(nproc)}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/quench-ccache}

if [ ! -f "$FUZZ_DIR/build.ninja" ]; then
  cmake -G Ninja -S "$ROOT" -B "$FUZZ_DIR" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
    -DLLVM_USE_LINKER=lld -DQUENCH_BUILD_FUZZERS=ON \
    -DQUENCH_FUZZ_QUENCH_COMPILE="$BUILD_DIR/bin/quench-compile"
fi
if [ "$TARGET" = model-run-fuzzer ] && [ ! -x "$BUILD_DIR/bin/quench-compile" ]; then
  echo "fuzz.sh: model-run-fuzzer needs $BUILD_DIR/bin/quench-compile (build it first)" >&2
  exit 2
fi
ninja -C "$FUZZ_DIR" -j "$JOBS" "$TARGET"

CORPUS=$FUZZ_DIR/corpus/$TARGET
FINDINGS=$FUZZ_DIR/findings/$TARGET
mkdir -p "$CORPUS" "$FINDINGS"
LOG=$FUZZ_DIR/findings/$TARGET.log
echo "fuzz.sh: $TARGET for $SECONDS_ s; corpus $CORPUS, log $LOG"
set +e
"$FUZZ_DIR/fuzz/$TARGET" -max_total_time="$SECONDS_" -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$FINDINGS/" \
  "$@" "$CORPUS" "$ROOT/fuzz/corpus/$TARGET" >"$LOG" 2>&1
rc=$?
set -e
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOG" | tail -1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$LOG" | tail -1)
found=$(find "$FINDINGS" -type f | wc -l)
echo "fuzz.sh: $TARGET: ${runs:-?} executions (${rate:-?}/s, at most $SECONDS_ s)," \
     "corpus $(ls "$CORPUS" | wc -l) files, $found findings, exit $rc"
if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
  grep -m1 -A12 "ERROR\|fuzz check failed" "$LOG" || tail -20 "$LOG"
  exit 1
fi
