#!/usr/bin/python3
"""Text generation speed (issue #14 point 7): prefill and decode tokens/s of
the 125M LLaMA-shaped model with a KV cache, Quench against ONNX Runtime and
llama.cpp on the same weights, 1 and 2 threads, in one run.

The model is bench/gen_llama_onnx.py's `--preset 125m --with-past` (random
weights, seed 0; past key/values in the Optimum / ORT GenAI convention). The
prompt is PROMPT seeded token ids (default 128); a run generates GEN + 1
tokens greedily: the prefill's argmax and GEN decode steps (default 64, the
tg64 of llama-bench). Times are medians of RUNS runs after a warm-up run.

  * Quench: `quench-compile MODEL -o EXE [--quant=...]` for fp32, W8A16,
    W4A16 (g32) and W8A8-dynamic, then `EXE --input input_ids=PROMPT.npy
    --generate GEN+1 --bench RUNS --threads T` (its prefill/decode lines).
    With --no-past-ref the seq-1 model without past (the same weights:
    gen_llama_onnx.py --seq 1 --data-from) is compiled too and its step
    timed (`--bench 20`): the decode step with no cache, a floor for the
    per-token time of the generation executable.
  * ONNX Runtime (bench/ort/generate.js, onnxruntime-node, bench/ort/setup.sh):
    the same with-past file as a prefill + decode loop that feeds each
    step's present.* back as past.* (ORT's Concat copies the cache each
    step); for the quantized schemes, files made here with
    bench/e2e_decode.py's rewrites of every MatMul with a constant weight:
    MatMulNBits 4-bit and 8-bit, blocks of 32 (ORT's weight-only format), and
    ORT's dynamic quantization graph (DynamicQuantizeLinear -> MatMulInteger,
    which ORT fuses into DynamicQuantizeMatMul; quantize_dynamic writes
    this graph, but it is part of ORT's Python package, not of
    onnxruntime-node).
  * llama.cpp (a source tree LLAMA_CPP with a build: bin/llama-bench,
    bin/llama-quantize, libllama.so): the weights written as a GGUF f32 file
    by bench/llama_to_gguf.py with LLAMA_CPP's own gguf-py (MatMul weights
    transposed, q/k rows permuted from rotate-half to llama.cpp's
    interleaved RoPE pairs; --builtin-gguf: llamacpp_scale.py's writer,
    the same tensors), checked
    against the ONNX model before anything is timed: bench/llamacpp_logits.c
    (built here against LLAMA_CPP's llama.h and libllama) computes the
    prompt's logits with an f32 KV cache and the greedy continuation; the
    logits must match ONNX Runtime's on the same file to 1e-4 (relative to
    the largest) and the ids are compared with ORT's and Quench's fp32 ids.
    Then llama-quantize makes q8_0, q4_0 and q4_K_S (TYPES), and
    `llama-bench -p PROMPT -n GEN -t 1,2 -r RUNS -o json` measures them
    (its default f16 KV cache; its pp computes only the last position's
    logits, where Quench's and ORT's prefill compute all of them).

Pairs (equal bits per weight): fp32 / ORT fp32 / llama.cpp f32; W8A16 /
ORT MatMulNBits 8-bit / q8_0; W8A8-dynamic / ORT dynamic int8 / q8_0;
W4A16 g32 / ORT MatMulNBits 4-bit / q4_0 and q4_K_S. The table gives
tokens/s and Quench / peer for prefill and decode, and the issue's goals
(decode >= 1.2x llama.cpp, prefill >= llama.cpp) per pair.

Context growth (--long-prompt L, default 1024; 0 skips): decode ms/token
after a prompt of L tokens against after PROMPT tokens, at the largest
thread count, for Quench (CONTEXT_SCHEMES), ORT fp32, and llama.cpp
(CONTEXT_TYPES; bench/llamacpp_logits.c times GEN decode steps after each
prompt in one process, RUNS runs after a first, f16 cache as llama-bench:
this llama-bench has no depth option, and (pg L,GEN - pp L) / GEN from its
tests drowns in the prefill's noise).

Usage: bench/generation.py LLAMA_CPP [--llama-build DIR] [--build build]
         [--work DIR] [--prompt 128] [--gen 64] [--runs 3] [--threads 1,2]
         [--schemes fp32,w8a16,w4a16,w8a8-dynamic] [--gen-for SCHEME=N ...]
         [--types q8_0,q4_0,q4_k_s] [--long-prompt 1024]
         [--context-schemes fp32,w4a16] [--context-types f32,q4_0]
         [--no-past-ref] [--no-ort] [--quench-flag FLAG ...]
         [--no-llamacpp] [--builtin-gguf] [--rt] [--json OUT.json]
--gen-for fp32=8 lets one Quench scheme generate fewer tokens (when its
decode is too slow for GEN tokens x RUNS in the time at hand; its ms/token
is still a median over whole generations). The machine's load average is
printed at the start and at the end (and stored with --json): rerun when it
was disturbed. On a machine shared with other work, --rt runs every
timed command under `chrt -f 50` (real-time priority, as bench/scale.py
--rt): both engines' worker threads wait on each other at every parallel
loop, so a core taken by another process for a time slice stalls a whole
step (2-thread decode steps measured 5-20x slower at load average 3).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import onnx

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = "/usr/bin/python3"
sys.path.insert(0, HERE)
from e2e_decode import dynamic_int8, matmul_nbits, rewrite  # noqa: E402
import llama_to_gguf  # noqa: E402

QUENCH_FLAGS = {"fp32": [], "w8a16": ["--quant=w8a16"],
                "w4a16": ["--quant=w4a16", "--group-size=32"],
                "w8a8-dynamic": ["--quant=w8a8-dynamic"]}
QUENCH_LABEL = {"fp32": "fp32", "w8a16": "W8A16", "w4a16": "W4A16 g32",
                "w8a8-dynamic": "W8A8-dynamic"}
# ONNX Runtime file per scheme: (label, rewrite or None for the float file).
ORT_PEER = {"fp32": ("ORT fp32", None),
            "w8a16": ("ORT MatMulNBits 8-bit g32", matmul_nbits(8)),
            "w4a16": ("ORT MatMulNBits 4-bit g32", matmul_nbits(4)),
            "w8a8-dynamic": ("ORT dynamic int8", dynamic_int8)}
LLAMA_PEER = {"fp32": ["f32"], "w8a16": ["q8_0"], "w8a8-dynamic": ["q8_0"],
              "w4a16": ["q4_0", "q4_k_s", "q4_k_m", "q4_k"]}
LLAMA_LABEL = {"f32": "f32", "q8_0": "q8_0", "q4_0": "q4_0",
               "q4_k_s": "q4_K_S", "q4_k_m": "q4_K_M", "q4_k": "q4_K"}


def log(msg):
    print(msg, flush=True)


RT = []  # --rt: the prefix that runs a timed command under chrt -f 50


def run(cmd, **kw):
    log("$ " + " ".join(cmd))
    return subprocess.run(cmd, check=True, **kw)


def timed(cmd, **kw):
    return run(RT + cmd, **kw)


def load():
    return "%.2f %.2f %.2f" % os.getloadavg()


def git_short(tree):
    """The short commit of a git tree (the repository, or LLAMA_CPP)."""
    return subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()


def check_tools(prog, build, llama_cpp=None, llama_build=None):
    """quench-compile of BUILD and, given LLAMA_CPP, its bin directory
    (LLAMA_BUILD/bin, default LLAMA_CPP/build/bin) with llama-bench,
    llama-quantize and include/llama.h; exits naming what is missing.
    Returns (quench-compile, llama.cpp bin directory or None)."""
    qc = os.path.join(build, "bin", "quench-compile")
    if not os.access(qc, os.X_OK):
        sys.exit("%s: no %s" % (prog, qc))
    if llama_cpp is None:
        return qc, None
    lbin = os.path.join(llama_build or os.path.join(llama_cpp, "build"), "bin")
    for f in ("llama-bench", "llama-quantize"):
        if not os.access(os.path.join(lbin, f), os.X_OK):
            sys.exit("%s: no %s in %s" % (prog, f, lbin))
    if not os.path.isfile(os.path.join(llama_cpp, "include", "llama.h")):
        sys.exit("%s: no include/llama.h in %s" % (prog, llama_cpp))
    return qc, lbin


def quench_generate(exe, prompt, gen, runs, threads, capacity):
    p = timed([exe, "--input", "input_ids=" + prompt, "--generate", str(gen + 1),
             "--bench", str(runs), "--threads", str(threads), "--capacity",
             str(capacity)], capture_output=True, text=True)
    out = p.stdout
    ids = [int(x) for x in re.search(r"generated \d+ tokens:([ 0-9]*)",
                                     out).group(1).split()]
    pre = re.search(r"prefill: (\d+) tokens in ([0-9.]+) ms", out)
    dec = re.search(r"decode: (\d+) tokens in ([0-9.]+) ms", out)
    if not pre or not dec:
        raise RuntimeError("no prefill/decode lines in:\n" + out)
    return dict(prompt=int(pre.group(1)), prefill_ms=float(pre.group(2)),
                steps=int(dec.group(1)), decode_ms=float(dec.group(2)), ids=ids)


def ort_generate(model, prompt, gen, runs, threads, kv_heads, head_dim,
                 logits_out=None):
    cmd = ["node", os.path.join(HERE, "ort", "generate.js"), model, "--input",
           "input_ids=" + prompt, "--kv-heads", str(kv_heads), "--head-dim",
           str(head_dim), "--generate", str(gen + 1), "--runs", str(runs),
           "--threads", str(threads)]
    if logits_out:
        cmd += ["--logits-out", logits_out]
    r = json.loads(timed(cmd, capture_output=True, text=True).stdout)
    return dict(prompt=r["prompt"], prefill_ms=r["prefill_ms"],
                steps=r["decode_steps"], decode_ms=r["decode_ms"], ids=r["ids"])


def rates(r):
    """prefill tokens/s, decode tokens/s, decode ms/token."""
    return (1e3 * r["prompt"] / r["prefill_ms"], 1e3 * r["steps"] / r["decode_ms"],
            r["decode_ms"] / r["steps"])


def same_prefix(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("llama_cpp", help="llama.cpp source tree (include/llama.h)")
    ap.add_argument("--llama-build", help="its build directory (default "
                    "LLAMA_CPP/build): bin/llama-bench, bin/llama-quantize")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="Quench build directory (bin/quench-compile)")
    ap.add_argument("--work", default="/tmp/quench-generation")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--gen", type=int, default=64, help="decode steps")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--schemes", default="fp32,w8a16,w4a16,w8a8-dynamic")
    ap.add_argument("--gen-for", action="append", default=[],
                    metavar="SCHEME=N", help="Quench decode steps for SCHEME")
    ap.add_argument("--types", default="q8_0,q4_0,q4_k_s",
                    help="llama-quantize types (f32 is always measured)")
    ap.add_argument("--long-prompt", type=int, default=1024)
    ap.add_argument("--quench-flag", action="append", default=[],
                    metavar="FLAG",
                    help="extra quench-compile flag for the models with past "
                         "(repeatable), e.g. --quench-flag=--kv-cache=int8 "
                         "or --quench-flag=--fuse-attention=0 for A/B runs")
    ap.add_argument("--context-schemes", default="fp32,w4a16")
    ap.add_argument("--context-types", default="f32,q4_0")
    ap.add_argument("--no-past-ref", action="store_true",
                    help="also time the seq-1 model without past")
    ap.add_argument("--no-ort", action="store_true")
    ap.add_argument("--no-llamacpp", action="store_true")
    ap.add_argument("--builtin-gguf", action="store_true",
                    help="write the GGUF file with llamacpp_scale.py's writer "
                    "instead of LLAMA_CPP/gguf-py")
    ap.add_argument("--json", help="write every measurement here")
    ap.add_argument("--rt", action="store_true",
                    help="run every timed command under `chrt -f 50` (as "
                    "bench/scale.py --rt: not preempted by other processes; "
                    "needs root)")
    a = ap.parse_args()
    if a.rt:
        RT.extend(["chrt", "-f", "50"])
    threads = [int(t) for t in a.threads.split(",")]
    tmax = max(threads)
    schemes = a.schemes.split(",")
    for s in schemes:
        if s not in QUENCH_FLAGS:
            sys.exit("generation.py: unknown scheme %s (%s)" %
                     (s, ", ".join(QUENCH_FLAGS)))
    gen_for = {}
    for item in a.gen_for:
        s, _, n = item.partition("=")
        if s not in QUENCH_FLAGS or not n.isdigit() or int(n) < 1:
            sys.exit("generation.py: --gen-for expects SCHEME=N, got " + item)
        gen_for[s] = int(n)
    qc, lbin = check_tools("generation.py", a.build,
                           None if a.no_llamacpp else a.llama_cpp,
                           a.llama_build)
    work = os.path.abspath(a.work)
    os.makedirs(work, exist_ok=True)
    info = dict(date=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                commit=git_short(ROOT), command=" ".join(sys.argv),
                load_start=load(), rt=a.rt)
    log("generation.py: %(date)s, commit %(commit)s, load average %(load_start)s"
        % info)

    # The model (with past) and, for --no-past-ref, the seq-1 model without
    # past over the same data file.
    model = os.path.join(work, "m125_past.onnx")
    if not os.path.isfile(model):
        run([PY, os.path.join(HERE, "gen_llama_onnx.py"), model, "--preset",
             "125m", "--with-past"])
    with open(os.path.join(work, "m125_past.json")) as f:
        manifest = json.load(f)
    cfg = manifest["config"]
    kv_heads, head_dim = cfg["kv_heads"], cfg["dim"] // cfg["heads"]
    if a.long_prompt and a.long_prompt + a.gen + 1 > cfg["max_pos"]:
        sys.exit("generation.py: --long-prompt + --gen exceeds the model's "
                 "%d positions" % cfg["max_pos"])
    capacity = max(a.prompt, a.long_prompt) + a.gen + 1
    rng = np.random.default_rng(7)
    prompt = os.path.join(work, "prompt%d.npy" % a.prompt)
    np.save(prompt, rng.integers(3, cfg["vocab"], (1, a.prompt)).astype(np.int64))
    long_prompt = os.path.join(work, "prompt%d.npy" % a.long_prompt)
    if a.long_prompt:
        np.save(long_prompt, np.random.default_rng(8).integers(
            3, cfg["vocab"], (1, a.long_prompt)).astype(np.int64))

    res = dict(info=info, quench={}, ort={}, llama={}, context={}, noPast={},
               check={})

    # --- Quench ---------------------------------------------------------
    exes = {}
    for s in schemes:
        exe = os.path.join(work, "q_" + s)
        t0 = time.time()
        run([qc, model, "-o", exe, "--max-seq", str(capacity)] + QUENCH_FLAGS[s]
            + a.quench_flag, stdout=subprocess.DEVNULL)
        log("   compiled %s in %.1f s" % (s, time.time() - t0))
        exes[s] = exe
    for t in threads:
        for s in schemes:
            r = quench_generate(exes[s], prompt, gen_for.get(s, a.gen), a.runs,
                                t, capacity)
            res["quench"][(s, t)] = r
            log("   Quench %s, %d threads: prefill %.1f tok/s, decode %.1f tok/s "
                "(%.3f ms/token)" % ((s, t) + rates(r)))
    if a.no_past_ref:
        s1 = os.path.join(work, "m125_s1.onnx")
        run([PY, os.path.join(HERE, "gen_llama_onnx.py"), s1, "--preset", "125m",
             "--seq", "1", "--data-from", model + ".data"],
            stdout=subprocess.DEVNULL)
        tok = os.path.join(work, "tok1.npy")
        np.save(tok, np.array([[5]], np.int64))
        for s in schemes:
            exe = os.path.join(work, "s1_" + s)
            run([qc, s1, "-o", exe] + QUENCH_FLAGS[s], stdout=subprocess.DEVNULL)
            for t in threads:
                p = timed([exe, "--input", "input_ids=" + tok, "--bench", "20",
                         "--threads", str(t)], capture_output=True, text=True)
                m = re.search(r"median ([0-9.]+) ms", p.stdout)
                res["noPast"][(s, t)] = float(m.group(1))
                log("   Quench %s seq-1 model without past, %d threads: %.3f ms"
                    % (s, t, float(m.group(1))))

    # --- ONNX Runtime ---------------------------------------------------
    ort_files = {}
    if not a.no_ort:
        run(["bash", os.path.join(HERE, "ort", "setup.sh")])
        float_model = None
        if os.path.exists(os.path.join(work, "ort_logits.npy")):
            os.unlink(os.path.join(work, "ort_logits.npy"))
        for s in schemes:
            label, make = ORT_PEER[s]
            if make is None:
                ort_files[s] = model
                continue
            out = os.path.join(work, "ort_%s.onnx" % s)
            if float_model is None:
                float_model = onnx.load(model)
            onnx.save(rewrite(float_model, make), out)
            ort_files[s] = out
        float_model = None
        for t in threads:
            for s in schemes:
                logits = (os.path.join(work, "ort_logits.npy")
                          if s == "fp32" and t == threads[0] else None)
                r = ort_generate(ort_files[s], prompt, a.gen, a.runs, t,
                                 kv_heads, head_dim, logits)
                res["ort"][(s, t)] = r
                log("   %s, %d threads: prefill %.1f tok/s, decode %.1f tok/s "
                    "(%.3f ms/token)" % ((ORT_PEER[s][0], t) + rates(r)))

    # --- llama.cpp ------------------------------------------------------
    if not a.no_llamacpp:
        info["llama_cpp"] = git_short(a.llama_cpp)
        gguf = {"f32": os.path.join(work, "m125-f32.gguf")}
        llama_to_gguf.write(model, gguf["f32"], "quench-generation-125m",
                            None if a.builtin_gguf else a.llama_cpp)
        # Check: same function as the ONNX model.
        tool = os.path.join(work, "llamacpp_logits")
        run(["cc", "-O2", "-I", os.path.join(a.llama_cpp, "include"), "-I",
             os.path.join(a.llama_cpp, "ggml", "include"),
             os.path.join(HERE, "llamacpp_logits.c"), "-o", tool, "-L", lbin,
             "-lllama", "-Wl,-rpath," + lbin])
        ptxt = os.path.join(work, "prompt.txt")
        with open(ptxt, "w") as f:
            f.write(" ".join(str(int(x)) for x in np.load(prompt)[0]))
        lfile = os.path.join(work, "llama_logits.f32")
        p = run([tool, gguf["f32"], ptxt, str(a.gen + 1), lfile, str(tmax)],
                capture_output=True, text=True)
        lids = [int(x) for x in re.search(r"^ids:([ 0-9]*)$", p.stdout,
                                          re.M).group(1).split()]
        check = dict(llama_ids=lids)
        ort_logits = os.path.join(work, "ort_logits.npy")
        if res["ort"] and os.path.isfile(ort_logits):
            ref = np.load(ort_logits)[0]
            got = np.fromfile(lfile, np.float32).reshape(ref.shape)
            err = float(np.abs(got - ref).max() / np.abs(ref).max())
            check.update(logits_rel=err, argmax_equal=float(
                (got.argmax(-1) == ref.argmax(-1)).mean()))
            ort_ids = res["ort"][("fp32", threads[0])]["ids"]
            check["llama_vs_ort_ids"] = same_prefix(lids, ort_ids)
            log("   check: llama.cpp f32 GGUF vs ONNX Runtime on the ONNX file: "
                "prompt logits max rel. diff %.2e, argmax equal at %.0f%% of %d "
                "positions; greedy ids equal for %d of %d" % (
                    err, 100 * check["argmax_equal"], a.prompt,
                    check["llama_vs_ort_ids"], len(lids)))
            if err > 1e-4:
                sys.exit("generation.py: the GGUF file does not compute the "
                         "ONNX model's function (%.2e)" % err)
        if "fp32" in schemes:
            qids = res["quench"][("fp32", threads[0])]["ids"]
            check["quench_vs_llama_ids"] = same_prefix(qids, lids)
            log("   check: Quench fp32 greedy ids equal llama.cpp's for %d of %d"
                % (check["quench_vs_llama_ids"], len(qids)))
        res["check"] = check

        types = ["f32"] + [t for t in a.types.split(",") if t]
        for typ in types:
            if typ != "f32":
                gguf[typ] = os.path.join(work, "m125-%s.gguf" % typ)
                run([os.path.join(lbin, "llama-quantize"), gguf["f32"],
                     gguf[typ], typ.upper(), str(tmax)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            p = timed([os.path.join(lbin, "llama-bench"), "-m", gguf[typ], "-p",
                     str(a.prompt), "-n", str(a.gen), "-t", a.threads, "-r",
                     str(a.runs), "-o", "json"], capture_output=True, text=True)
            for r in json.loads(p.stdout):
                t = r["n_threads"]
                e = res["llama"].setdefault((typ, t), dict(
                    size=r["model_size"]))
                if r["n_prompt"] > 0 and r["n_gen"] == 0:
                    e.update(prompt=r["n_prompt"], prefill_ms=r["avg_ns"] / 1e6,
                             pp_sd=r["stddev_ts"])
                elif r["n_gen"] > 0 and r["n_prompt"] == 0:
                    e.update(steps=r["n_gen"], decode_ms=r["avg_ns"] / 1e6,
                             tg_sd=r["stddev_ts"])
            for t in threads:
                log("   llama.cpp %s, %d threads: prefill %.1f tok/s, decode "
                    "%.1f tok/s (%.3f ms/token)" % ((typ, t) +
                                                    rates(res["llama"][(typ, t)])))

    # --- Context growth -------------------------------------------------
    if a.long_prompt:
        for s in a.context_schemes.split(","):
            if s not in exes:
                continue
            r = quench_generate(exes[s], long_prompt, gen_for.get(s, a.gen),
                                a.runs, tmax, capacity)
            res["context"][("Quench " + QUENCH_LABEL[s], tmax)] = (
                res["quench"][(s, tmax)], r)
            log("   Quench %s after %d tokens: %.3f ms/token" % (
                s, a.long_prompt, rates(r)[2]))
        if not a.no_ort and "fp32" in ort_files:
            r = ort_generate(ort_files["fp32"], long_prompt, a.gen, a.runs,
                             tmax, kv_heads, head_dim)
            res["context"][("ORT fp32", tmax)] = (res["ort"][("fp32", tmax)], r)
            log("   ORT fp32 after %d tokens: %.3f ms/token" % (
                a.long_prompt, rates(r)[2]))
        if not a.no_llamacpp:
            # llama-bench (this version) has no depth option: both contexts
            # are timed by llamacpp_logits in one process each (RUNS timed
            # runs after a first, medians), with llama.cpp's default f16
            # cache as llama-bench.
            ltxt = os.path.join(work, "prompt_long.txt")
            with open(ltxt, "w") as f:
                f.write(" ".join(str(int(x)) for x in np.load(long_prompt)[0]))
            for typ in a.context_types.split(","):
                if typ not in gguf:
                    continue
                pair = []
                for ptxt_, plen in ((ptxt, a.prompt), (ltxt, a.long_prompt)):
                    p = timed([tool, gguf[typ], ptxt_, str(a.gen + 1), "-",
                               str(tmax), "f16", str(a.runs)],
                              capture_output=True, text=True)
                    m = re.search(r"prefill_ms: ([0-9.]+) decode_ms: ([0-9.]+)",
                                  p.stdout)
                    pair.append(dict(prompt=plen, prefill_ms=float(m.group(1)),
                                     steps=a.gen, decode_ms=float(m.group(2))))
                res["context"][("llama.cpp " + LLAMA_LABEL.get(typ, typ),
                                tmax)] = tuple(pair)
                log("   llama.cpp %s: %.3f ms/token after %d tokens, %.3f "
                    "after %d" % (typ, rates(pair[0])[2], a.prompt,
                                  rates(pair[1])[2], a.long_prompt))
    if not a.no_llamacpp:
        for f in gguf.values():
            os.unlink(f)
    info["load_end"] = load()

    # --- Tables ---------------------------------------------------------
    print()
    print("generation.py: %s, commit %s%s; load average %s at the start, %s "
          "at the end" % (info["date"], info["commit"],
                          ", llama.cpp " + info["llama_cpp"]
                          if "llama_cpp" in info else "",
                          info["load_start"], info["load_end"]))
    print("$ " + info["command"] + ("  (timed commands under chrt -f 50)" if info["rt"] else ""))
    print()
    print("| threads | Quench | prefill tok/s | decode tok/s (ms/token) | peer "
          "| prefill tok/s | decode tok/s (ms/token) | prefill Quench/peer | "
          "decode Quench/peer |")
    print("| --: | --- | --: | --: | --- | --: | --: | --: | --: |")
    goals = []
    for t in threads:
        for s in schemes:
            q = res["quench"][(s, t)]
            qp, qd, qms = rates(q)
            qlabel = QUENCH_LABEL[s] + ("" if s not in gen_for else
                                        " (%d steps)" % gen_for[s])
            peers = []
            if (s, t) in res["ort"]:
                peers.append((ORT_PEER[s][0], res["ort"][(s, t)]))
            for typ in LLAMA_PEER[s]:
                if (typ, t) in res["llama"]:
                    peers.append(("llama.cpp " + LLAMA_LABEL[typ],
                                  res["llama"][(typ, t)]))
            if not peers:
                peers.append(("-", None))
            for name, r in peers:
                if r is None:
                    print("| %d | %s | %.1f | %.1f (%.2f) | - | | | | |" % (
                        t, qlabel, qp, qd, qms))
                    continue
                pp_, pd, pms = rates(r)
                print("| %d | %s | %.1f | %.1f (%.2f) | %s | %.1f | %.1f (%.2f) "
                      "| %.2f | %.2f |" % (t, qlabel, qp, qd, qms, name, pp_,
                                           pd, pms, qp / pp_, qd / pd))
                if name.startswith("llama.cpp"):
                    goals.append((t, QUENCH_LABEL[s], name, qd / pd, qp / pp_))
    if goals:
        print()
        print("Goals (issue #14): decode >= 1.2x llama.cpp, prefill >= 1.0x")
        for t, s, name, d, p in goals:
            print("  %d threads, %s vs %s: decode %.2fx (%s), prefill %.2fx (%s)"
                  % (t, s, name, d, "holds" if d >= 1.2 else "does not hold",
                     p, "holds" if p >= 1.0 else "does not hold"))
    if res["noPast"]:
        print()
        print("Quench decode ms/token with the cache vs the seq-1 step of the "
              "model without past (same weights):")
        for (s, t), ms in res["noPast"].items():
            print("  %s, %d threads: %.3f ms vs %.3f ms (%.1fx)" % (
                QUENCH_LABEL[s], t, rates(res["quench"][(s, t)])[2], ms,
                rates(res["quench"][(s, t)])[2] / ms))
    if res["context"]:
        print()
        print("| engine | threads | decode ms/token after %d tokens | after %d "
              "tokens | growth |" % (a.prompt, a.long_prompt))
        print("| --- | --: | --: | --: | --: |")
        for (name, t), (short, longr) in res["context"].items():
            m1, m2 = rates(short)[2], rates(longr)[2]
            print("| %s | %d | %.3f | %.3f | %.2fx |" % (name, t, m1, m2, m2 / m1))
    if a.json:
        def keyed(d):
            return {"%s@%s" % k: v for k, v in d.items()}
        with open(a.json, "w") as f:
            json.dump(dict(info=info, check=res["check"],
                           quench=keyed(res["quench"]), ort=keyed(res["ort"]),
                           llama=keyed(res["llama"]), noPast=keyed(res["noPast"]),
                           context={"%s@%s" % k: v for k, v in
                                    res["context"].items()}), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
