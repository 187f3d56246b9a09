#!/usr/bin/env python3
"""Decode-step attention: the vectorized kernel vs the linalg decomposition.

One `quench.attention` with the 125M LLaMA shape (H = 12 query heads, Hk = 4
kv heads, head dim 64, S = 1 query position, a [1, 1, 1, T] mask) over T =
128 / 512 / 1024 / 2048 cached positions, for f32, f16 and int8 (+ f32
scales per position) keys and values, compiled twice with quench-compile
(default: quench-cpu-attention; --attention-kernel=false:
quench-decompose-attention) and run with the executables' --bench loop
(the same inputs every call: K and V stay in the caches between calls).
Prints the median time per call (ms) per thread count, and the bytes of K
and V (plus scales) per call, to compare with bench/read_bw.c.

With --layers N each call runs N attentions in a chain (the output of one
is the query of the next, K and V shared), as N layers of a decode step do.

Usage: attention.py --build BUILD_DIR [--threads 1,2] [--runs 2000]
                    [--kv f32,f16,i8] [--t 128,512,1024,2048] [--layers N]
                    [--work DIR]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

H, HK, D = 12, 4, 64


def model(t, kv, layers=1):
    et = {"f32": "f32", "f16": "f16", "i8": "i8"}[kv]
    q = f"tensor<1x{H}x1x{D}xf32>"
    k = f"tensor<1x{HK}x{t}x{D}x{et}>"
    m = f"tensor<1x1x1x{t}xf32>"
    sc = f"tensor<1x{HK}x{t}x1xf32>"
    args, types, extra = [f"%q: {q}", f"%k: {k}", f"%v: {k}"], [q, k, k], ""
    if kv == "i8":
        args += [f"%ks: {sc}", f"%vs: {sc}"]
        types += [sc, sc]
        extra = " key_scale(%ks) value_scale(%vs)"
    args.append(f"%m: {m}")
    types.append(m)
    # Layers chain: each one's output is the next one's query (Dv = D).
    body, prev = [], "%q"
    for i in range(layers):
        body.append(f"  %r{i} = quench.attention {prev}, %k, %v{extra} "
                    f"bias(%m) {{scale = 0.125 : f64}} : "
                    f"({', '.join(types)}) -> {q}\n")
        prev = f"%r{i}"
    return (f"func.func @main({', '.join(args)}) -> {q} {{\n" + "".join(body)
            + f"  return {prev} : {q}\n}}\n")


def inputs(t, kv, rng):
    q = rng.standard_normal((1, H, 1, D)).astype(np.float32)
    m = np.zeros((1, 1, 1, t), np.float32)
    if kv == "i8":
        k = rng.integers(-127, 128, (1, HK, t, D)).astype(np.int8)
        v = rng.integers(-127, 128, (1, HK, t, D)).astype(np.int8)
        s = rng.uniform(0.005, 0.02, (1, HK, t, 1)).astype(np.float32)
        return [q, k, v, s, s.copy(), m]
    dt = np.float16 if kv == "f16" else np.float32
    k = rng.standard_normal((1, HK, t, D)).astype(dt)
    v = rng.standard_normal((1, HK, t, D)).astype(dt)
    return [q, k, v, m]


def run(cmd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout}")
    return proc.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", required=True)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--kv", default="f32,f16,i8")
    parser.add_argument("--t", default="128,512,1024,2048")
    parser.add_argument("--layers", type=int, default=1,
                        help="chain this many attentions per call (times "
                             "are per call; the pool's workers stay awake "
                             "between the loops of one call)")
    parser.add_argument("--work")
    args = parser.parse_args()
    compiler = os.path.join(args.build, "bin", "quench-compile")
    work = args.work or tempfile.mkdtemp(prefix="quench-attn-bench-")
    os.makedirs(work, exist_ok=True)
    threads = [int(x) for x in args.threads.split(",")]
    rng = np.random.default_rng(0)
    print(f"| cache | T | K+V MB | " +
          " | ".join(f"kernel {n}t | decomposed {n}t" for n in threads) +
          f" |  (ms per call of {args.layers} attention(s), median)")
    for kv in args.kv.split(","):
        for t in [int(x) for x in args.t.split(",")]:
            src = os.path.join(work, f"attn_{kv}_{t}.mlir")
            with open(src, "w") as f:
                f.write(model(t, kv, args.layers))
            flags = []
            for i, value in enumerate(inputs(t, kv, rng)):
                path = os.path.join(work, f"attn_{kv}_{t}_in{i}.npy")
                np.save(path, value)
                flags += ["--input", f"input_{i}={path}"]
            exes = {}
            for name, flag in (("kernel", "true"), ("decomposed", "false")):
                exes[name] = os.path.join(work, f"attn_{kv}_{t}_{name}")
                run([compiler, src, "-o", exes[name],
                     f"--attention-kernel={flag}"])
            row = []
            for n in threads:
                for name in ("kernel", "decomposed"):
                    out = run([exes[name]] + flags +
                              ["--bench", str(args.runs), "--threads", str(n)])
                    row.append(re.search(r"median ([0-9.]+) ms", out).group(1))
            elem = {"f32": 4, "f16": 2, "i8": 1}[kv]
            mb = 2 * HK * t * D * elem / 1e6 + (2 * HK * t * 4 / 1e6 if kv == "i8" else 0)
            print(f"| {kv} | {t} | {mb:.2f} | " + " | ".join(row) + " |")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
