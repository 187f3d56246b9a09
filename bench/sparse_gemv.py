#!/usr/bin/python3
"""Compressed sparse vs dense matrix-vector products (issue #16 point 4).

For each shape K x N a one-op ONNX model y = x @ W (W constant [K, N],
random normal) is compiled dense and 2:4 pruned (--sparsity=2:4
--sparsity-head: the one linear is the model's output, which pruning
skips by default), in fp32 and W8A16 (int8 per output channel, f16
scales): the pruned layers are stored compressed (docs/sparsity.md,
"Compressed storage") and run the sparse kernel; W4A16 (int4 g32, f16
scales) 2:4 likewise (kept 4-bit codes two per byte, 2-bit indices).
"w4a16 2:4 dense" is the same pruned codes in the dense W4A16 format and
kernel (`--sparse-storage=dense`): "vs dense" of "X 2:4" is against "X 2:4
dense" when that scheme runs too, else against "X" (the unpruned weight,
as many bytes). "w8a16 u50" is 50 % unstructured W8A16 in bitmask storage (a mask
bit per weight plus the kept codes, expanded by vpexpandb; dense codes on
hosts without AVX512-VBMI2). Every executable runs with --bench RUNS at
1 and 2 threads in the same run, the schemes alternated ROUNDS times (median of the round
medians). The table gives the weight bytes streamed per product (the size
report's bytes after: values, indices, scales), the median latency, GB/s,
the share of bench/read_bw.c's bandwidth at that thread count (measured in
the same run), the time the bytes would take at that bandwidth (the
bytes-streamed roofline), and the sparse / dense speedup next to the
ratio of their bytes (the roofline speedup); "cpu ms" is the CPU time
per product (the rusage of a run of RUNS + 1 products minus that of one
product: loading cancels, and the time a loaded machine keeps the process
waiting does not count), "cpu x" the dense / sparse ratio of it. Outputs are checked against
NumPy (dense: the float product; 2:4: the product with the pruned
weights; the quantized ones within int8 rounding).

Usage: bench/sparse_gemv.py [--build BUILD] [--work DIR]
       [--shapes 4096x14336,768x2048,2048x768] [--runs 30] [--rounds 3]
       [--threads 1,2] [--cpu-flags "--cpu=x86-64-v3"] [--copies C]

--copies C: C distinct weights of the shape, y_i = x @ W_i (C outputs),
so that one product streams C times the bytes (e.g. beyond the caches).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMES = {
    "fp32": [],
    "fp32 2:4": ["--sparsity=2:4", "--sparsity-head"],
    "w8a16": ["--quant=w8a16"],
    "w8a16 2:4": ["--quant=w8a16", "--sparsity=2:4", "--sparsity-head"],
    "w4a16": ["--quant=w4a16"],
    "w4a16 2:4": ["--quant=w4a16", "--sparsity=2:4", "--sparsity-head"],
    "w4a16 2:4 dense": ["--quant=w4a16", "--sparsity=2:4", "--sparsity-head",
                        "--sparse-storage=dense"],
    # The int16 kernel's gather form (vpshufb of the activations), as on
    # AVX512-VNNI hosts without VBMI2; the host's default on VBMI2 hosts is
    # the expand form (vpexpandb of the codes).
    "w4a16 2:4 gather": ["--quant=w4a16", "--sparsity=2:4", "--sparsity-head",
                         "--cpu=cascadelake"],
    "w8a16 u50": ["--quant=w8a16", "--sparsity=unstructured:0.5",
                  "--sparsity-head"],
}


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("FAILED: %s\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
    return r.stdout


def mask24(w):
    """2:4 magnitude mask of the [K, N] weight along K (ties: lower k)."""
    k, n = w.shape
    a = np.abs(w).reshape(k // 4, 4, n)
    order = np.argsort(-a, axis=1, kind="stable")
    keep = np.zeros_like(a, dtype=bool)
    np.put_along_axis(keep, order[:, :2, :], True, axis=1)
    return keep.reshape(k, n)


def mask_unstructured(w, frac):
    """Unstructured magnitude mask of the [K, N] weight: per output column
    keep the K - round(frac K) largest |w| (ties: lower k)."""
    k, n = w.shape
    drop = int(np.floor(frac * k + 0.5))
    order = np.argsort(-np.abs(w), axis=0, kind="stable")
    keep = np.zeros_like(w, dtype=bool)
    np.put_along_axis(keep, order[:k - drop, :], True, axis=0)
    return keep


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--work")
    ap.add_argument("--shapes", default="4096x14336,768x2048,2048x768")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--schemes", default=",".join(
        s for s in SCHEMES
        if s not in ("w4a16 2:4 dense", "w4a16 2:4 gather")))
    ap.add_argument("--copies", type=int, default=1)
    ap.add_argument("--cpu-flags", default="")
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="quench-sparse-gemv-")
    os.makedirs(work, exist_ok=True)
    qc = os.path.join(args.build, "bin", "quench-compile")
    schemes = args.schemes.split(",")
    threads = [int(t) for t in args.threads.split(",")]
    bw_exe = os.path.join(work, "read_bw")
    run(["/usr/lib/llvm-22/bin/clang", "-O2", "-march=native",
         os.path.join(ROOT, "bench", "read_bw.c"), "-lpthread", "-o", bw_exe])
    bw = {}
    for t in threads:
        line = run([bw_exe, "1024", str(t)]).strip()
        print(line)
        bw[t] = float(line.split()[1])
    print("load average: %s" % open("/proc/loadavg").read().split()[:3])
    print("quench-compile flags: %s; runs %d, rounds %d, copies %d" %
          (args.cpu_flags or "(host)", args.runs, args.rounds, args.copies))
    print("%-10s %-16s %3s %9s %9s %7s %8s %9s %8s %8s" % (
        "K x N", "scheme", "thr", "weight MB", "median ms", "GB/s",
        "of read", "roof ms", "vs dense", "roof x") + " %7s %8s" % (
            "cpu ms", "cpu x"))
    for shape in args.shapes.split(","):
        k, n = map(int, shape.split("x"))
        copies = args.copies
        base = os.path.join(work, "lin_%s" % shape +
                            ("_x%d" % copies if copies > 1 else ""))
        rng = np.random.default_rng(0)
        ws = [rng.standard_normal((k, n), dtype=np.float32) * np.float32(0.02)
              for _ in range(copies)]
        outs = ["y"] if copies == 1 else ["y%d" % i for i in range(copies)]
        g = helper.make_graph(
            [helper.make_node("MatMul", ["x", "W%d" % i], [o],
                              name="/lin%s/MatMul" % (i or ""))
             for i, o in enumerate(outs)],
            "lin", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                  [1, k])],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, [1, n])
             for o in outs],
            [numpy_helper.from_array(w, "W%d" % i) for i, w in enumerate(ws)])
        onnx.save(helper.make_model(
            g, opset_imports=[helper.make_opsetid("", 17)]), base + ".onnx")
        x = rng.standard_normal((1, k), dtype=np.float32)
        np.save(base + ".x.npy", x)
        xd = x.astype(np.float64)
        dense_y = [xd @ w.astype(np.float64) for w in ws]
        sparse_y = [xd @ np.where(mask24(w), w, 0) for w in ws]
        unstr_y = [xd @ np.where(mask_unstructured(w, 0.5), w, 0) for w in ws]
        size = {}
        for s in schemes:
            exe = "%s.%s" % (base, s.replace(" ", "_").replace(":", ""))
            run([qc, base + ".onnx", "-o", exe, "--name", "lin",
                 "--report=" + exe + ".json"] + SCHEMES[s] +
                args.cpu_flags.split())
            with open(exe + ".json") as f:
                r = json.load(f)
                size[s] = r["linear_weight_bytes_after"] if r["layers"] \
                    else r["constant_bytes_after"]
            od = exe + ".out"
            os.makedirs(od, exist_ok=True)
            run([exe, "--input", "x=" + base + ".x.npy", "--output-dir", od])
            for i, o in enumerate(outs):
                y = np.load(os.path.join(od, o + ".npy"))
                want = (sparse_y if "2:4" in s else
                        unstr_y if "u50" in s else dense_y)[i]
                err = np.abs(y - want).max() / np.abs(want).max()
                tol = {"fp32": 1e-4, "w8a16": 2e-2,
                       "w4a16": 2e-1}[s.split()[0]]
                if not err < tol:
                    sys.exit("sparse_gemv: %s %s %s: max rel err %.3g "
                             "(bound %g)" % (shape, s, o, err, tol))
        for t in threads:
            times = {s: [] for s in schemes}
            cpu = {s: [] for s in schemes}
            for _ in range(args.rounds):
                for s in schemes:
                    exe = "%s.%s" % (base, s.replace(" ", "_").replace(":", ""))
                    used = []
                    for n in [1, args.runs + 1]:
                        before = resource.getrusage(resource.RUSAGE_CHILDREN)
                        out = run([exe, "--input", "x=" + base + ".x.npy",
                                   "--bench", str(n), "--threads", str(t)])
                        after = resource.getrusage(resource.RUSAGE_CHILDREN)
                        used.append(after.ru_utime + after.ru_stime -
                                    before.ru_utime - before.ru_stime)
                    # CPU ms per product: the difference of the two runs
                    # (loading cancels); steal and waiting for the core
                    # under load do not count, unlike the wall medians.
                    cpu[s].append((used[1] - used[0]) * 1e3 / args.runs)
                    med = [l for l in out.splitlines() if l.startswith("bench:")]
                    times[s].append(float(
                        med[0].split(" median ")[1].split()[0]))
            med = {s: statistics.median(v) for s, v in times.items()}
            cpumed = {s: statistics.median(v) for s, v in cpu.items()}
            for s in schemes:
                b = size[s]
                gbs = b / (med[s] * 1e-3) / 1e9
                roof = b / (bw[t] * 1e9) * 1e3
                dense = s.split()[0]
                sp = s[:-len(" gather")] if s.endswith(" gather") else s
                if sp + " dense" in med:
                    dense = sp + " dense"
                elif s.endswith(" dense"):
                    dense = s
                ratio = med[dense] / med[s] if dense in med else 1.0
                cratio = cpumed[dense] / cpumed[s] if dense in med else 1.0
                roofx = size[dense] / b if dense in size else 1.0
                print("%-10s %-16s %3d %9.2f %9.3f %7.1f %7.0f%% %9.3f "
                      "%7.2fx %7.2fx %7.3f %7.2fx" % (
                          shape, s, t, b / 1e6, med[s], gbs,
                          100 * gbs / bw[t], roof, ratio, roofx, cpumed[s],
                          cratio))
    print("work directory: %s" % work)


if __name__ == "__main__":
    main()
