#!/usr/bin/env python3
"""The first run after load reuses warmed buffers (issue #18 point 6).

Builds a small static-shape model (y = softmax(relu(x @ W1 + b) @ W2) with
x f32[8, 64]: intermediate buffers and an output), compiles it with
`quench-compile --emit=obj --name m`, links first_run.c with it and with the
runtime's sources, and runs it: the descriptor must carry a buffer size
table (model ABI version 5), quench_model_load must warm the buffer cache,
the first run must take every buffer from it (the cache holds the same
bytes before and after the run), a second run must give the same bits, and
the output must match NumPy (max abs error 1e-5).

Usage: first_run.py --build BUILD_DIR [--cc CC] [--work DIR]
Run through CTest: `ctest -R e2e/first-run`.
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def make_model(path):
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((64, 256)) / 8).astype(np.float32)
    b = rng.standard_normal(256).astype(np.float32)
    w2 = (rng.standard_normal((256, 32)) / 16).astype(np.float32)
    vi = helper.make_tensor_value_info
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W1"], ["h"], name="fc1"),
         helper.make_node("Add", ["h", "b"], ["hb"], name="bias"),
         helper.make_node("Relu", ["hb"], ["a"]),
         helper.make_node("MatMul", ["a", "W2"], ["z"], name="fc2"),
         helper.make_node("Softmax", ["z"], ["y"], axis=-1)],
        "g", [vi("x", TensorProto.FLOAT, [8, 64])],
        [vi("y", TensorProto.FLOAT, [8, 32])],
        [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(b, "b"),
         numpy_helper.from_array(w2, "W2")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)
    return w1, b, w2


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        raise SystemExit(f"FAIL: {' '.join(cmd)} exited {r.returncode}")
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--cc", default="cc")
    ap.add_argument("--work")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="quench-first-run-")
    os.makedirs(work, exist_ok=True)
    try:
        w1, b, w2 = make_model(os.path.join(work, "m.onnx"))
        run([os.path.join(a.build, "bin", "quench-compile"),
             os.path.join(work, "m.onnx"), "--emit=obj", "--name", "m",
             "-o", os.path.join(work, "m.o")])
        exe = os.path.join(work, "first_run")
        run([a.cc, "-std=c11", "-O2", "-pthread",
             "-I", os.path.join(ROOT, "runtime/include"), "-I", work,
             os.path.join(HERE, "first_run.c"), os.path.join(work, "m.o"),
             *sorted(glob.glob(os.path.join(ROOT, "runtime/lib/*.c"))),
             "-o", exe, "-lm", "-ldl"])
        x = np.random.default_rng(1).standard_normal((8, 64)).astype(
            np.float32)
        np.save(os.path.join(work, "x.npy"), x)
        out = os.path.join(work, "y.npy")
        sys.stdout.write(run([exe, os.path.join(work, "x.npy"), out]).stdout)
        z = np.maximum(x @ w1 + b, 0) @ w2
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        want = e / e.sum(axis=-1, keepdims=True)
        err = float(np.abs(np.load(out) - want).max())
        if err > 1e-5:
            raise SystemExit(f"FAIL: output differs from NumPy by {err}")
        print(f"output: max |error| vs NumPy {err:.2e}")
    finally:
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)
    print("first-run: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
