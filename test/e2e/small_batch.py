#!/usr/bin/env python3
"""End-to-end check of small-batch fp32 products (docs/lowering.md,
"Small batches"): a linear y = x @ W with a constant W of at least 4 MiB and
a static row count M <= 32 takes the matrix-vector plan (W streamed once,
the reduction outermost, W in panels of one register tile where N allows).

For M in {2, 3, 8, 17, 32} and two weights — 1024 x 1024 (N a multiple of
every panel width: packed) and 1001 x 1056 (odd K; N not a multiple of the
128-column panel of M < 4: [K, N] with a peeled remainder) — the ONNX model
is compiled with --shape x=MxK, run on random x, and compared with NumPy's
float64 product: |y - ref| <= 1e-5 * sum_k |x| |w| + 1e-6 (f32 accumulation
order), and with the same model compiled with a dynamic row count (the
blocked or row-by-row kernel, unchanged by the small-batch plan) within the
same bound, on 1 and 2 threads.

Usage: small_batch.py --build BUILD_DIR [--keep DIR]
Run through CTest: `ctest -L e2e -R small-batch`.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROWS = (2, 3, 8, 17, 32)
SHAPES = ((1024, 1024), (1001, 1056))


def run(cmd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    if proc.returncode != 0:
        sys.exit("small_batch: %s failed (%d):\n%s%s" % (
            " ".join(cmd), proc.returncode, proc.stdout, proc.stderr))
    return proc.stdout


def write_model(path, w):
    k, n = w.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="/lin/MatMul")],
        "lin", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                              ["M", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", n])],
        [numpy_helper.from_array(w, "W")])
    onnx.save(helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", 17)]), path)


def run_exe(exe, x, work, tag, threads):
    xin = os.path.join(work, tag + ".x.npy")
    out = os.path.join(work, tag + ".out")
    os.makedirs(out, exist_ok=True)
    np.save(xin, x)
    run([exe, "--input", "x=" + xin, "--output-dir", out, "--threads",
         str(threads)])
    return np.load(os.path.join(out, "y.npy"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--keep", help="keep the work files in this directory")
    args = ap.parse_args()
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        check(args.build, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="quench-small-batch-") as work:
            check(args.build, work)


def check(build, work):
    """Compiles, runs and compares every case in `work`; exits on failure."""
    compiler = os.path.join(build, "bin", "quench-compile")
    rng = np.random.default_rng(18)
    failures = []
    for k, n in SHAPES:
        w = (rng.standard_normal((k, n)) * 0.05).astype(np.float32)
        assert w.nbytes >= 4 << 20  # the small-batch plan's threshold
        model = os.path.join(work, "lin_%dx%d.onnx" % (k, n))
        write_model(model, w)
        dynamic = os.path.join(work, "lin_%dx%d.dyn" % (k, n))
        run([compiler, model, "-o", dynamic, "--name", "lin"])
        w64 = w.astype(np.float64)
        for m in ROWS:
            exe = os.path.join(work, "lin_%dx%d.m%d" % (k, n, m))
            run([compiler, model, "-o", exe, "--name", "lin",
                 "--shape", "x=%dx%d" % (m, k)])
            x = rng.standard_normal((m, k)).astype(np.float32)
            ref = x.astype(np.float64) @ w64
            bound = 1e-5 * (np.abs(x).astype(np.float64) @ np.abs(w64)) + 1e-6
            other = run_exe(dynamic, x, work, "dyn_%d_%d" % (k, m), 1)
            for threads in (1, 2):
                tag = "%dx%d M=%d threads=%d" % (k, n, m, threads)
                y = run_exe(exe, x, work, "m%d_%d_%d" % (k, m, threads),
                            threads)
                if y.shape != (m, n):
                    failures.append("%s: shape %s" % (tag, y.shape))
                    continue
                for name, want in (("float64 reference", ref),
                                   ("dynamic-M kernel", other)):
                    excess = np.abs(y - want) - bound
                    if not np.all(excess <= 0):
                        i = np.unravel_index(np.argmax(excess), excess.shape)
                        failures.append(
                            "%s vs %s: |diff| %.3g > bound %.3g at %s" % (
                                tag, name, abs(y[i] - want[i]), bound[i], i))
                print("small_batch: %s ok (max |y - ref| / bound %.3f)" % (
                    tag, float(np.max(np.abs(y - ref) / bound))))
    if failures:
        sys.exit("small_batch: FAILED\n  " + "\n  ".join(failures))
    print("small_batch: all cases pass")


if __name__ == "__main__":
    main()
