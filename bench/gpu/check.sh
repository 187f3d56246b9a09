#!/usr/bin/env bash
# The GPU check (issue #13 point 5), run on a machine with an NVIDIA GPU and
# its driver, from the bundle bench/gpu/prepare.py made on a development
# machine (the GPU machine needs no compiler, LLVM or Python):
#
#   bench/gpu/prepare.py --arch sm_90          # here: writes build-gpu-check/
#   bench/gpu/check.sh build-gpu-check         # there: ~1-2 minutes
#
# For every executable of the bundle: runs it on its input and compares its
# output with the CPU backend's (max |gpu - cpu| / max |cpu| <= tolerance,
# 1e-5 for the f32 kernels), then times it (--bench N: median latency of a
# whole run, host copies and synchronization included). Measures the
# device's copy bandwidth (gpucheck bw: cuMemcpyDtoD, read + write) as the
# memory ceiling of the run and, for the GEMV layer, gives its weight
# bytes per median run as a share of it (an upper bound on the time: the
# run's fixed costs are included). Writes the summary to $OUT/summary.txt
# (the device tool's output folder) or ./gpu-check-summary.txt, and prints
# it. Exit status: 0 when every comparison passed.
set -uo pipefail
BUNDLE=${1:-build-gpu-check}
cd "$BUNDLE" || { echo "no bundle '$BUNDLE' (bench/gpu/prepare.py)"; exit 2; }
SUMMARY=${OUT:-$PWD/..}/$( [ -n "${OUT:-}" ] && echo summary.txt || echo gpu-check-summary.txt )
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail=0
{
  echo "# Quench GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
  cat README 2>/dev/null
  echo "GPU: $(./gpucheck name 2>&1)"
  command -v nvidia-smi >/dev/null &&
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv,noheader
  BW=$(./gpucheck bw 2048 2>&1)
  echo "device copy bandwidth (cuMemcpyDtoD 2 GiB, read + write): $BW GB/s"
  printf '%-34s %-6s %-10s %12s %12s %s\n' test result "max rel" "median ms" "first ms" "note"
  while IFS=$'\t' read -r name exe inputs ref tol runs wbytes outname; do
    [ -z "$name" ] && continue
    args=()
    IFS=';' read -ra ins <<< "$inputs"
    for a in "${ins[@]}"; do args+=(--input "$a"); done
    mkdir -p "$WORK/$name"
    if ! timeout 120 "./$exe" "${args[@]}" --output-dir "$WORK/$name" \
        > "$WORK/$name.log" 2>&1; then
      printf '%-34s %-6s %s\n' "$name" FAIL "run: $(tail -1 "$WORK/$name.log")"
      fail=1
      continue
    fi
    rel=$(./gpucheck cmp "$WORK/$name/$outname" "$ref" "$tol" 2>&1)
    status=$?
    result=PASS
    if [ $status -ne 0 ]; then result=FAIL; fail=1; fi
    bench=$(timeout 120 "./$exe" "${args[@]}" --bench "$runs" 2>&1 | grep '^bench:')
    median=$(sed -n 's/.*median \([0-9.]*\) ms.*/\1/p' <<< "$bench")
    first=$(sed -n 's/.*first run \([0-9.]*\) ms.*/\1/p' <<< "$bench")
    note=""
    if [ "$wbytes" != 0 ] && [ -n "$median" ]; then
      note=$(awk -v b="$wbytes" -v t="$median" -v bw="$BW" 'BEGIN {
        gbs = b / (t * 1e-3) / 1e9;
        if (bw + 0 > 0) printf "weights %.1f GB/s = %.0f%% of the copy bandwidth", gbs, 100 * gbs / bw;
        else printf "weights %.1f GB/s", gbs }')
    fi
    printf '%-34s %-6s %-10s %12s %12s %s\n' "$name" "$result" "$rel" "${median:-?}" "${first:-?}" "$note"
  done < manifest.tsv
  [ $fail -eq 0 ] && echo "all comparisons passed" || echo "SOME CHECKS FAILED"
} 2>&1 | tee "$SUMMARY"
grep -q "^all comparisons passed" "$SUMMARY"
