#!/usr/bin/python3
"""fp32 products of a decoder's shapes, streamed from memory: GB/s per shape
against the read bandwidth, for one or more Quench builds side by side.

A model's linears are small (a 768 x 768 projection is 2.4 MB, inside the
L3 cache), so one product alone would be timed from cache. For each shape
K x N this writes a chain of L products that alternate K -> N and N -> K
(or K -> K when N = K), every one with its own random weight, L chosen so
that the weights exceed --min-mb (default 96 MB: three times a 32 MB L3),
with a dynamic row count M (as a decoder's linears: the prefill and decode
steps share one function). Each build compiles the chain
(`quench-compile chain.onnx -o EXE`); each executable runs on x [M, K]
(`EXE --input x=... --bench RUNS --threads T`), builds alternately, ROUNDS
times; the table gives the median of the round medians (and their range),
the weight bytes over that time in GB/s, and bench/read_bw.c's bandwidth
measured before every round (1 thread; a loaded machine shows there).

Usage: bench/gemv_shapes.py [--build DIR ...] [--shapes 768x768,768x2048,...]
         [--rows 1,8,128] [--threads 1,2] [--runs 20] [--rounds 3]
         [--min-mb 96] [--work DIR] [--rt]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def write_chain(path, k, n, min_bytes):
    """Writes the chain model for K x N; returns its weight bytes."""
    rng = np.random.default_rng(0)
    per_pair = 4 * k * n * (1 if n == k else 2)
    layers = max(1, -(-min_bytes // per_pair)) * (1 if n == k else 2)
    nodes, inits, cur, dim, total = [], [], "x", k, 0
    for i in range(layers):
        nd = n if dim == k else k
        w = rng.standard_normal((dim, nd), dtype=np.float32) / np.sqrt(dim)
        total += w.nbytes
        inits.append(numpy_helper.from_array(w, "W%d" % i))
        nodes.append(helper.make_node("MatMul", [cur, "W%d" % i], ["y%d" % i],
                                      name="/l%d/MatMul" % i))
        cur, dim = "y%d" % i, nd
    g = helper.make_graph(
        nodes, "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["M", k])],
        [helper.make_tensor_value_info(cur, TensorProto.FLOAT, ["M", dim])],
        inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]),
              path, save_as_external_data=True,
              location=os.path.basename(path) + ".data")
    return total, layers


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", action="append",
                    help="Quench build directory (repeatable; default build)")
    ap.add_argument("--shapes", default="768x768,768x256,768x2048,768x32000")
    ap.add_argument("--rows", default="1")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-mb", type=int, default=96)
    ap.add_argument("--work")
    ap.add_argument("--rt", action="store_true",
                    help="run the timed commands under `chrt -f 50`")
    a = ap.parse_args()
    builds = a.build or [os.path.join(ROOT, "build")]
    work = a.work or tempfile.mkdtemp(prefix="gemv-shapes-")
    os.makedirs(work, exist_ok=True)
    rt = ["chrt", "-f", "50"] if a.rt else []
    bw_exe = os.path.join(work, "read_bw")
    subprocess.run(["/usr/lib/llvm-22/bin/clang", "-O2", "-march=native",
                    os.path.join(HERE, "read_bw.c"), "-o", bw_exe], check=True)

    def read_bw():
        out = subprocess.run(rt + [bw_exe, "1024"], capture_output=True,
                             text=True, check=True).stdout
        return float(re.search(r"read-bw: ([0-9.]+) GB", out).group(1))

    rows = [int(r) for r in a.rows.split(",")]
    threads = [int(t) for t in a.threads.split(",")]
    print("gemv_shapes.py: builds %s, work %s" % (", ".join(builds), work))
    print("%-10s %4s %3s %-28s %9s %7s %-17s %s" % (
        "K x N", "M", "T", "build", "median ms", "GB/s", "range ms",
        "read-bw GB/s (1 thread, per round)"))
    for shape in a.shapes.split(","):
        k, n = (int(v) for v in shape.split("x"))
        base = os.path.join(work, "chain_%s" % shape)
        nbytes, layers = write_chain(base + ".onnx", k, n, a.min_mb << 20)
        rng = np.random.default_rng(1)
        exes = []
        for i, b in enumerate(builds):
            exe = "%s_b%d" % (base, i)
            subprocess.run([os.path.join(b, "bin", "quench-compile"),
                            base + ".onnx", "-o", exe], check=True,
                           stdout=subprocess.DEVNULL)
            exes.append(exe)
        for m in rows:
            x = "%s_x%d.npy" % (base, m)
            np.save(x, rng.standard_normal((m, k), dtype=np.float32))
            for t in threads:
                med = {i: [] for i in range(len(exes))}
                bws = []
                for _ in range(a.rounds):
                    bws.append(read_bw())
                    for i, exe in enumerate(exes):
                        out = subprocess.run(
                            rt + [exe, "--input", "x=" + x, "--bench",
                                  str(a.runs), "--threads", str(t)],
                            capture_output=True, text=True, check=True).stdout
                        med[i].append(float(re.search(
                            r"median ([0-9.]+) ms", out).group(1)))
                for i, b in enumerate(builds):
                    ms = statistics.median(med[i])
                    print("%-10s %4d %3d %-28s %9.3f %7.1f %-17s %s" % (
                        shape, m, t, os.path.basename(b.rstrip("/")), ms,
                        nbytes / ms / 1e6,
                        "%.3f-%.3f" % (min(med[i]), max(med[i])),
                        " ".join("%.1f" % v for v in bws)))
                sys.stdout.flush()
        print("   %s: %d products, %.1f MB of weights" % (shape, layers,
                                                          nbytes / 1e6))


if __name__ == "__main__":
    main()
