#!/usr/bin/env bash
# The GPU check (issue #13 point 5), run on a machine with an NVIDIA GPU and
# its driver, from the bundle bench/gpu/prepare.py made on a development
# machine (the GPU machine needs no compiler, LLVM or Python):
#
#   bench/gpu/prepare.py --arch sm_90          # here: writes build-gpu-check/
#   bench/gpu/check.sh build-gpu-check         # there: ~1-2 minutes
#
# The bundle includes 2:4 sparse tensor-core layers (mma.sp, f16 and int8;
# docs/gpu.md "Sparse tensor-core GEMM") next to dense layers of the same
# shapes (bench/gpu/prepare.py --sparse); the summary ends with their
# kernel-time ratios.
#
# For every executable of the bundle: runs it on its input and compares its
# output with the CPU backend's (max |gpu - cpu| / max |cpu| <= tolerance,
# 1e-5 for the f32 kernels), then times it (--bench N: median latency of a
# whole run, host copies and synchronization included), then runs it once
# more with the runtime's kernel profiler (QUENCH_CUDA_PROFILE=$WORK/NAME.prof,
# --bench 10: 11 runs; docs/runtime.md, "Kernel profiler") and prints a
# sub-line: the kernel time per run and the top 3 kernels by total time
# (mean us per launch, share of the GPU time). Measures the device's copy
# bandwidth (gpucheck bw: cuMemcpyDtoD, read + write) as the memory ceiling
# and, for the GEMV layer (manifest column 7, weight bytes != 0), gives its
# weight bytes per run over the kernel time of one run (the sum of all its
# kernels: a dequantizing GEMV may be a main and a reduce kernel) as a share
# of it: from the mean kernel time per run (all 11 runs) and from the best
# (each kernel's fastest launch); without a profile, from the whole-run
# median (an upper bound on the time). Writes the summary to $OUT/summary.txt
# (the device tool's output folder) or BUNDLE/summary.txt, and prints
# it. Exit status: 0 when every comparison passed.
set -uo pipefail
BUNDLE=${1:-build-gpu-check}
cd "$BUNDLE" || { echo "no bundle '$BUNDLE' (bench/gpu/prepare.py)"; exit 2; }
SUMMARY=${OUT:+$OUT/summary.txt}
SUMMARY=${SUMMARY:-$PWD/summary.txt}
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
    # Kernel times: rows "calls total-ms mean-us min-us share grid block
    # name..." (grid "-": a copy or memset), totals "# kernels ...; runs N".
    prof="$WORK/$name.prof"
    rm -f "$prof"
    profline=""
    kmean="" kbest=""
    if QUENCH_CUDA_PROFILE="$prof" timeout 120 "./$exe" "${args[@]}" \
        --bench 10 > "$WORK/$name.prof.log" 2>&1 && [ -s "$prof" ]; then
      read -r kmean kbest profline < <(awk '
        /^# kernels / { for (i = 1; i <= NF; ++i) if ($i == "runs") runs = $(i + 1) + 0 }
        /^#/ || NF < 8 || $6 == "-" { next }
        { n = $8; for (i = 9; i <= NF; ++i) n = n " " $i
          mean += $2; best += $4 * 1e-3 * $1
          if (++k <= 3) top = top sprintf("%s%s %.1f us (%s)", k > 1 ? ", " : "", n, $3, $5) }
        END { if (runs < 1) runs = 1
              printf "%.6f %.6f kernels %.3f ms/run (best %.3f, %d runs); top: %s\n",
                mean / runs, best / runs, mean / runs, best / runs, runs, top }' "$prof")
    else
      profline="profile run failed: $(tail -1 "$WORK/$name.prof.log")"
    fi
    note=""
    if [ "$wbytes" != 0 ] && [ -n "$kmean" ]; then
      note=$(awk -v b="$wbytes" -v t="$kmean" -v tb="$kbest" -v bw="$BW" 'BEGIN {
        gbs = b / (t * 1e-3) / 1e9; best = tb > 0 ? b / (tb * 1e-3) / 1e9 : 0;
        if (bw + 0 > 0) printf "weights/kernel time %.1f GB/s = %.0f%% of the copy bandwidth (best %.0f%%)", gbs, 100 * gbs / bw, 100 * best / bw;
        else printf "weights/kernel time %.1f GB/s (best %.1f)", gbs, best }')
    elif [ "$wbytes" != 0 ] && [ -n "$median" ]; then
      note=$(awk -v b="$wbytes" -v t="$median" -v bw="$BW" 'BEGIN {
        gbs = b / (t * 1e-3) / 1e9;
        if (bw + 0 > 0) printf "weights/whole run %.1f GB/s = %.0f%% of the copy bandwidth", gbs, 100 * gbs / bw;
        else printf "weights/whole run %.1f GB/s", gbs }')
    fi
    [ -n "$kmean" ] && printf '%s\t%s\n' "$name" "$kmean" >> "$WORK/kernel_ms.tsv"
    printf '%-34s %-6s %-10s %12s %12s %s\n' "$name" "$result" "$rel" "${median:-?}" "${first:-?}" "$note"
    printf '%-34s %s\n' "" "$profline"
  done < manifest.tsv
  # 2:4 sparse (mma.sp) vs dense, kernel time per run of the same run:
  # sp_f16_* vs dense_f16_* (same shapes), *.w8a8-dynamic-24 vs
  # *.w8a8-dynamic (--sparsity=2:4 vs dense W8A8 of one model).
  if [ -s "$WORK/kernel_ms.tsv" ]; then
    echo "2:4 sparse vs dense (kernel ms per run; dense / sparse > 1: sparse faster):"
    awk -F'\t' '{ t[$1] = $2; order[++n] = $1 }
      END { for (i = 1; i <= n; ++i) { s = order[i]; d = ""
              if (s ~ /^sp_f16_/) { d = s; sub(/^sp_f16_/, "dense_f16_", d) }
              else if (s ~ /\.w8a8-dynamic-24$/) { d = s; sub(/-24$/, "", d) }
              if (d != "" && (d in t) && t[s] > 0)
                printf "  %-34s %9.4f ms  vs %-34s %9.4f ms  = %.2fx\n", s, t[s], d, t[d], t[d] / t[s] } }' \
      "$WORK/kernel_ms.tsv"
  fi
  [ $fail -eq 0 ] && echo "all comparisons passed" || echo "SOME CHECKS FAILED"
} 2>&1 | tee "$SUMMARY"
grep -q "^all comparisons passed" "$SUMMARY"
