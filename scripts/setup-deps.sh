#!/usr/bin/env bash
# Installs every system package Quench needs to build and test, from Debian's
# archive only. Idempotent: packages already present are skipped by apt.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build ccache git
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools clang-22 lld-22 libclang-rt-22-dev
  libonnx-dev libprotobuf-dev protobuf-compiler libonnx-testdata
  python3 python3-numpy python3-onnx python3-torch libopenblas0-pthread time
  libgtest-dev
  libopenmpi-dev openmpi-bin
  bible-kjv
)

# --bench: also what the bench/ scripts use beyond the build and tests
# (bench/accuracy.py --plot).
if [ "${1:-}" = "--bench" ]; then
  PKGS+=(python3-matplotlib)
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-deps: done"
