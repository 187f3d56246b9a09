#!/usr/bin/env bash
# The test command: on a fresh Debian 12 machine (as root, or with sudo) it
# installs every dependency, configures, builds and runs the whole suite.
# Idempotent; rerunning reuses the build directory and ccache.
#
#   scripts/test.sh            # everything
#   QUENCH_BUILD_DIR=out scripts/test.sh
#   QUENCH_SKIP_ASAN=1 scripts/test.sh   # without the sanitized build
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${QUENCH_BUILD_DIR:-$ROOT/build}
JOBS=${QUENCH_JOBS:-$(nproc)}

bash scripts/setup-deps.sh
# ONNX Runtime (npm onnxruntime-node) is a peer to compare against, not a
# dependency: installed when node and npm are there; e2e/ort-quant skips
# itself without it.
if command -v node >/dev/null && command -v npm >/dev/null; then
  bash bench/ort/setup.sh \
    || echo "test.sh: onnxruntime-node not installed; e2e/ort-quant will be skipped"
fi

export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/quench-ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-2G}

start=$(date +%s)
cmake -G Ninja -S "$ROOT" -B "$BUILD_DIR" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
  -DLLVM_USE_LINKER=lld
ninja -C "$BUILD_DIR" -j "$JOBS"
echo "test.sh: configure + build took $(( $(date +%s) - start )) s"

ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"

# The sanitized part (docs/testing.md, "Sanitizers"): clang-22 with
# -fsanitize=address,undefined (and libFuzzer's instrumentation, so that
# scripts/fuzz.sh fuzzes from the same build) in its own build directory;
# the fuzz targets replay their corpora, and the unit tests of the runtime
# and of the calibration cache run. QUENCH_SKIP_ASAN=1 skips it.
if [ "${QUENCH_SKIP_ASAN:-0}" != 1 ]; then
  ASAN_DIR=${QUENCH_ASAN_BUILD_DIR:-$ROOT/build-asan}
  start=$(date +%s)
  cmake -G Ninja -S "$ROOT" -B "$ASAN_DIR" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
    -DLLVM_USE_LINKER=lld -DQUENCH_BUILD_FUZZERS=ON \
    -DQUENCH_FUZZ_QUENCH_COMPILE="$BUILD_DIR/bin/quench-compile"
  ninja -C "$ASAN_DIR" -j "$JOBS" quench-sanitized-tests
  echo "test.sh: sanitized configure + build took $(( $(date +%s) - start )) s"
  ctest --test-dir "$ASAN_DIR" --output-on-failure -j "$JOBS" \
    -R '^(fuzz/|runtime\.|calib\.)'
fi
