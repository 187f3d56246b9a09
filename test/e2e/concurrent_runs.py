#!/usr/bin/env python3
"""One compiled model run from several threads at once, and a soak run.

Builds a small model (y = (relu(x @ W1) + r) @ W2 with run-time batch, and
an embedding lookup e = table[ids]), compiles it with
`quench-compile --emit=obj --name m`, links concurrent_runs.c with it and
with the runtime's sources (runtime/lib/*.c), and runs

  * the thread test: THREADS threads, each with its own inputs and output
    buffers, ITERATIONS runs each (half on a pool they all share), every
    good run bit-identical to that thread's reference and every bad input
    (an extent or an id that the generated code's checks reject) failing
    cleanly;
  * the soak: SOAK runs on one thread, a tenth of them bad inputs that fail
    after the run has allocated buffers; VmRSS may not grow by more than
    2 MiB between the first tenth of the runs and the end.

Then, when the C compiler has ThreadSanitizer, the thread test again with
the runtime built with -fsanitize=thread (races in the runtime; the
generated code is not instrumented).

Usage: concurrent_runs.py --build BUILD_DIR [--cc CC] [--threads 8]
           [--iterations 150] [--soak 2000] [--work DIR]
The soak of issue #17 (10,000 runs): `--threads 0 --soak 10000`.
Run through CTest: `ctest -R e2e/concurrent-runs`.
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
    w1 = numpy_helper.from_array(
        (rng.standard_normal((64, 128)) / 8).astype(np.float32), "W1")
    w2 = numpy_helper.from_array(
        (rng.standard_normal((128, 32)) / 8).astype(np.float32), "W2")
    table = numpy_helper.from_array(
        rng.standard_normal((16, 8)).astype(np.float32), "table")
    vi = helper.make_tensor_value_info
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W1"], ["h"], name="fc1"),
         helper.make_node("Relu", ["h"], ["a"]),
         helper.make_node("Add", ["a", "r"], ["s"], name="add_r"),
         helper.make_node("MatMul", ["s", "W2"], ["y"], name="fc2"),
         helper.make_node("Gather", ["table", "ids"], ["e"], name="emb")],
        "g",
        [vi("x", TensorProto.FLOAT, ["B", 64]),
         vi("r", TensorProto.FLOAT, ["R", 128]),
         vi("ids", TensorProto.INT64, [1, "T"])],
        [vi("y", TensorProto.FLOAT, ["B", 32]),
         vi("e", TensorProto.FLOAT, [1, "T", 8])],
        [w1, w2, table])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        raise SystemExit(f"FAIL: {' '.join(cmd)} exited {r.returncode}")
    return r


def link(cc, work, name, extra):
    exe = os.path.join(work, name)
    run([cc, "-std=c11", "-O2", "-pthread", *extra,
         "-I", os.path.join(ROOT, "runtime/include"), "-I", work,
         os.path.join(HERE, "concurrent_runs.c"), os.path.join(work, "m.o"),
         *sorted(glob.glob(os.path.join(ROOT, "runtime/lib/*.c"))),
         "-o", exe, "-lm", "-ldl"])
    return exe


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--cc", default="cc")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--soak", type=int, default=2000)
    ap.add_argument("--work")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="quench-concurrent-")
    os.makedirs(work, exist_ok=True)
    try:
        make_model(os.path.join(work, "m.onnx"))
        run([os.path.join(a.build, "bin", "quench-compile"),
             os.path.join(work, "m.onnx"), "--emit=obj", "--name", "m",
             "-o", os.path.join(work, "m.o")])
        exe = link(a.cc, work, "concurrent", [])
        r = run([exe, str(a.threads), str(a.iterations), str(a.soak)],
                timeout=1200)
        sys.stdout.write(r.stdout)
        if a.threads > 0:
            probe = subprocess.run(
                [a.cc, "-fsanitize=thread", "-x", "c", "-", "-o",
                 os.path.join(work, "probe")],
                input="int main(void){return 0;}", capture_output=True,
                text=True)
            if probe.returncode == 0:
                tsan = link(a.cc, work, "concurrent-tsan",
                            ["-fsanitize=thread", "-g"])
                r = run([tsan, str(a.threads), str(max(a.iterations // 5, 3)),
                         "0"], timeout=1200,
                        env=dict(os.environ, TSAN_OPTIONS="halt_on_error=1"))
                sys.stdout.write("tsan " + r.stdout)
            else:
                print("tsan: skipped (the C compiler has no -fsanitize=thread)")
    finally:
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)
    print("concurrent-runs: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
