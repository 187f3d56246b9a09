#!/usr/bin/env python3
"""Prefill GEMM speed of the int8-activation form (issue #18 point 3).

One-op ONNX model y = x @ W (W a constant [K, N], random normal, x [rows, K]
with a dynamic row count, as in a decoder whose prefill and decode share one
function) compiled with quench-compile for each scheme twice: the default
(--prefill-activations=int8: from --prefill-rows rows up the activations are
quantized to int8 per row and block) and --prefill-activations=float (the
16-bit form, today's path). Each executable runs x [M, K] for every M with
--bench; llama.cpp's ggml_mul_mat (bench/ggml_matmul.c, built against the
llama.cpp source and build trees given) runs the same shape with q4_0 / q8_0
weights, in the buffer type --peer-buffer names (default CPU: host memory,
no repacking, as the recorded numbers; "auto": the type llama.cpp's model
loader picks, e.g. AMX or the repacked layouts). The schemes and the peer are timed alternately, ROUNDS times; the
table gives the median of the round medians and the ratios measured in the
same run: float / int8 (speedup over the 16-bit form) and peer / int8.
The int8 outputs are compared with the float form's (max relative error).
Load averages are printed before and after: on a shared machine, compare
ratios only.

Usage: prefill_int8.py --build BUILD --llama-src SRC --llama-bin BIN
         [--shape 4096x14336] [--ms 32,64,128,512] [--threads 1]
         [--runs 5] [--rounds 3] [--schemes w4a16,w8a16] [--work DIR]
       prefill_int8.py --logits DIR --prefix P --vocab V [--input tokens]
         [--sequences 32] [--seq 32]
--logits compares the executables bench/accuracy.py left in its work
directory DIR whose names start with P (chargpt_, stories_): the int8
form against the 16-bit one, i.e. "NAME" (default, int8 at 4 bits) against
"NAME,_16-bit_prefill" and "NAME,_int8_prefill" against "NAME" (default,
16-bit at 8 bits), on the same random token sequences (ids < V, the input
named by --input, [1, seq]): relative error of the logits,
||a - b|| / ||b|| over all positions and max |a - b| / max |b|.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = {"w4a16": "q4_0", "w4a16-g128": "q4_0", "w8a16": "q8_0"}
QUANT = {"w4a16": ["--quant=w4a16"],
         "w4a16-g128": ["--quant=w4a16", "--group-size=128"],
         "w8a16": ["--quant=w8a16"]}


def run(cmd):
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{res.stdout}{res.stderr}")
    return res.stdout


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def write_model(path, k, n):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    w = np.random.default_rng(0).standard_normal((k, n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", n])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph,
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)


def bench_exe(exe, xpath, threads, runs):
    out = run([exe, "--input", f"x={xpath}", "--bench", str(runs),
               "--threads", str(threads)])
    m = re.search(r"median ([0-9.e+-]+) ms", out)
    if not m:
        sys.exit(f"no median in the output of {exe}:\n{out}")
    return float(m.group(1))


def bench_peer(tool, ptype, m, k, n, threads, runs, buffer):
    out = run([tool, ptype, str(k), str(n), str(m), str(threads), str(runs)] +
              ([buffer] if buffer else []))
    return float(re.search(r"median ([0-9.]+) ms", out).group(1))


def compare_logits(work, prefix, vocab, input_name, sequences, seq):
    rng = np.random.default_rng(5)
    names = [n for n in os.listdir(work) if n.startswith(prefix)]
    pairs = sorted(
        [(n[:-len(",_16-bit_prefill")], n) for n in names
         if n.endswith(",_16-bit_prefill")] +
        [(n, n[:-len(",_int8_prefill")]) for n in names
         if n.endswith(",_int8_prefill")])
    if not pairs:
        sys.exit(f"no NAME,_16-bit_prefill / NAME,_int8_prefill "
                 f"executables in {work}")
    toks = [rng.integers(0, vocab, (1, seq)).astype(np.int64)
            for _ in range(sequences)]
    tmp = tempfile.mkdtemp(prefix="prefill_logits_")
    for int8_exe, float_exe in pairs:
        outs = {}
        for exe in (int8_exe, float_exe):
            got = []
            for i, t in enumerate(toks):
                path = os.path.join(tmp, "t.npy")
                np.save(path, t)
                run([os.path.join(work, exe), "--input", f"{input_name}={path}",
                     "--output-dir", tmp])
                got.append(np.load(os.path.join(tmp, "logits.npy")))
            outs[exe] = np.concatenate(got).astype(np.float64)
        a, b = outs[int8_exe], outs[float_exe]
        print(f"{int8_exe}: int8 vs 16-bit prefill logits, ||a - b|| / ||b|| = "
              f"{np.linalg.norm(a - b) / np.linalg.norm(b):.2e}, "
              f"max |a - b| / max |b| = "
              f"{np.abs(a - b).max() / np.abs(b).max():.2e} "
              f"({sequences} sequences of {seq} tokens)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--logits", metavar="DIR")
    ap.add_argument("--vocab", type=int)
    ap.add_argument("--prefix", default="")
    ap.add_argument("--input", default="tokens")
    ap.add_argument("--sequences", type=int, default=32)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--build")
    ap.add_argument("--llama-src", help="llama.cpp source tree (ggml/include)")
    ap.add_argument("--llama-bin", help="llama.cpp build's bin (libggml*.so)")
    ap.add_argument("--shape", default="4096x14336")
    ap.add_argument("--ms", default="32,64,128,512")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--schemes", default="w4a16,w8a16")
    ap.add_argument("--compile-flags", default="",
                    help="extra quench-compile flags for every executable")
    ap.add_argument("--peer-buffer", default="CPU",
                    help="ggml buffer type of the peer's weight (CPU, AMX, "
                         "CPU_AARCH64, ...; auto: llama.cpp's choice)")
    ap.add_argument("--work")
    args = ap.parse_args()
    if args.logits:
        if not args.vocab:
            ap.error("--logits needs --vocab")
        compare_logits(args.logits, args.prefix, args.vocab, args.input,
                       args.sequences, args.seq)
        return
    if not (args.build and args.llama_src and args.llama_bin):
        ap.error("--build, --llama-src and --llama-bin are required")
    k, n = map(int, args.shape.split("x"))
    ms = [int(v) for v in args.ms.split(",")]
    schemes = args.schemes.split(",")
    for s in schemes:
        if s not in QUANT:
            sys.exit(f"unknown scheme '{s}' (known: {', '.join(QUANT)})")
    inc = os.path.join(args.llama_src, "ggml", "include")
    if not os.path.isfile(os.path.join(inc, "ggml.h")):
        sys.exit(f"no ggml/include/ggml.h under {args.llama_src}")
    work = args.work or tempfile.mkdtemp(prefix="prefill_int8_")
    os.makedirs(work, exist_ok=True)
    print(f"load average at start: {load()}")

    tool = os.path.join(work, "ggml_matmul")
    run(["clang-22", "-O2", "-march=native", "-I", inc,
         os.path.join(HERE, "ggml_matmul.c"), "-o", tool, "-L",
         args.llama_bin, "-lggml", "-lggml-base", "-lggml-cpu",
         "-Wl,-rpath," + args.llama_bin, "-lm"])
    model = os.path.join(work, f"gemm_{k}x{n}.onnx")
    write_model(model, k, n)
    extra = args.compile_flags.split()
    exes = {}
    for s in schemes:
        for form in ("int8", "float"):
            exe = os.path.join(work, f"{s}_{form}")
            if not os.path.exists(exe):
                run([os.path.join(args.build, "bin", "quench-compile"), model,
                     "-o", exe, f"--prefill-activations={form}"] + QUANT[s] +
                    extra)
            exes[(s, form)] = exe
    rng = np.random.default_rng(1)
    xs = {}
    for m in ms:
        xs[m] = os.path.join(work, f"x_{m}.npy")
        np.save(xs[m], rng.standard_normal((m, k)).astype(np.float32))
        # Accuracy of the int8 form against the float form.
        for s in schemes:
            outs = []
            for form in ("int8", "float"):
                od = os.path.join(work, f"out_{s}_{form}_{m}")
                os.makedirs(od, exist_ok=True)
                run([exes[(s, form)], "--input", f"x={xs[m]}",
                     "--output-dir", od])
                outs.append(np.load(os.path.join(od, "y.npy")))
            err = np.abs(outs[0] - outs[1]).max() / np.abs(outs[1]).max()
            print(f"{s} M = {m}: int8 vs float form, max |diff| / max |y| "
                  f"= {err:.2e}")

    times = {}
    for r in range(args.rounds):
        for m in ms:
            for s in schemes:
                for form in ("int8", "float"):
                    times.setdefault((s, form, m), []).append(
                        bench_exe(exes[(s, form)], xs[m], args.threads,
                                  args.runs))
            for p in sorted({PEER[s] for s in schemes}):
                times.setdefault((p, "ggml", m), []).append(
                    bench_peer(tool, p, m, k, n, args.threads, args.runs,
                               None if args.peer_buffer == "auto"
                               else args.peer_buffer))
    med = {key: float(np.median(v)) for key, v in times.items()}
    print(f"load average at end: {load()}")
    print(f"\n{k}x{n}, {args.threads} thread(s), median of {args.rounds} "
          f"round medians ({args.runs} runs each), ms")
    print("| scheme | M | int8 prefill | 16-bit (float) form | llama.cpp | "
          "float / int8 | llama.cpp / int8 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for s in schemes:
        for m in ms:
            a, b = med[(s, "int8", m)], med[(s, "float", m)]
            p = med[(PEER[s], "ggml", m)]
            print(f"| {s} | {m} | {a:.2f} | {b:.2f} | {PEER[s]} {p:.2f} | "
                  f"{b / a:.2f} | {p / a:.2f} |")


if __name__ == "__main__":
    main()
