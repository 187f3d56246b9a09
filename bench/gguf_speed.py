#!/usr/bin/python3
"""GGUF speed (issue #19 point 6): decode and prefill tokens/s of Quench on
GGUF files against llama.cpp's llama-bench on the very same files, 1 and 2
threads, in one run.

The files: the 125M LLaMA-shaped model of bench/gen_llama_onnx.py
(`--preset 125m`, random weights, seed 0) written as a GGUF F32 file by
bench/llama_to_gguf.py with LLAMA_CPP's own gguf-py, then quantized by
LLAMA_CPP's llama-quantize to Q8_0, Q4_0 and Q4_K_M (TYPES). Each file is
then

  * compiled by Quench as it is: `quench-compile FILE.gguf --derive-kv-cache
    --max-seq CAP -o EXE` (the GGUF importer keeps every block type in its
    format, docs/gguf.md), once with the default exact activations and once
    with `--gguf-activations=int16` (the 4- and 8-bit codes multiplied with
    int16-quantized activations, like llama.cpp's q8 activations but
    finer), and run as `EXE --input input_ids=PROMPT.npy --generate GEN+1
    --bench RUNS --threads T`: a prefill of PROMPT tokens (default 128)
    and GEN decode steps (default 64), medians of RUNS runs after a warm-up;
  * measured by `llama-bench -m FILE -p PROMPT -n GEN -t 1,2 -r RUNS`
    (llama.cpp's default f16 KV cache; its pp computes only the last
    position's logits, Quench's prefill computes all of them).

Before timing, the greedy ids of Quench (exact activations) on the F32 file
are compared with llama.cpp's (bench/llamacpp_logits.c, f32 KV cache): the
same file must give the same continuation. For the quantized types
llama.cpp rounds its activations to q8, so only the shared prefix is
reported.

The table gives tokens/s and Quench / llama.cpp per type and thread count,
and the issue's goal (decode >= 1.5x llama.cpp at each type).

Usage: bench/gguf_speed.py LLAMA_CPP [--llama-build DIR] [--build build]
         [--work DIR] [--types f32,q8_0,q4_0,q4_k_m] [--prompt 128]
         [--gen 64] [--runs 3] [--threads 1,2] [--rt] [--reuse]
         [--json OUT.json]
--rt runs every timed command under `chrt -f 50` (as bench/generation.py).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = "/usr/bin/python3"
sys.path.insert(0, HERE)
import generation  # noqa: E402
from generation import (check_tools, git_short, load, log,  # noqa: E402
                        quench_generate, rates, run, same_prefix, timed)
import llama_to_gguf  # noqa: E402

LABEL = {"f32": "F32", "f16": "F16", "q8_0": "Q8_0", "q4_0": "Q4_0",
         "q4_1": "Q4_1", "q5_0": "Q5_0", "q5_1": "Q5_1", "q4_k_s": "Q4_K_S",
         "q4_k_m": "Q4_K_M", "q5_k_m": "Q5_K_M", "q6_k": "Q6_K"}
MODES = {"exact": [], "int16": ["--gguf-activations=int16"]}
GOAL = 1.5


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("llama_cpp", help="llama.cpp source tree (include/llama.h)")
    ap.add_argument("--llama-build", help="its build directory (default "
                    "LLAMA_CPP/build)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="Quench build directory")
    ap.add_argument("--work", default="/tmp/quench-gguf-speed")
    ap.add_argument("--types", default="f32,q8_0,q4_0,q4_k_m")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--gen", type=int, default=64, help="decode steps")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rt", action="store_true",
                    help="timed commands under chrt -f 50 (needs root)")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the executables an earlier run left in WORK "
                    "(compile on a busy machine, time on a quiet one)")
    ap.add_argument("--json", help="write every measurement here")
    a = ap.parse_args()
    if a.rt:
        generation.RT.extend(["chrt", "-f", "50"])
    threads = [int(t) for t in a.threads.split(",")]
    types = [t for t in a.types.split(",") if t]
    for t in types:
        if t not in LABEL:
            sys.exit("gguf_speed.py: unknown type %s (%s)" % (t, ", ".join(LABEL)))
    qc, lbin = check_tools("gguf_speed.py", a.build, a.llama_cpp,
                           a.llama_build)
    work = os.path.abspath(a.work)
    os.makedirs(work, exist_ok=True)
    info = dict(date=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                commit=git_short(ROOT), llama_cpp=git_short(a.llama_cpp),
                command=" ".join(sys.argv), load_start=load(), rt=a.rt)
    log("gguf_speed.py: %(date)s, commit %(commit)s, llama.cpp %(llama_cpp)s, "
        "load average %(load_start)s" % info)

    # The files.
    model = os.path.join(work, "m125.onnx")
    if not os.path.isfile(model):
        run([PY, os.path.join(HERE, "gen_llama_onnx.py"), model, "--preset",
             "125m"])
    with open(os.path.join(work, "m125.json")) as f:
        cfg = json.load(f)["config"]
    capacity = a.prompt + a.gen + 1
    prompt = os.path.join(work, "prompt%d.npy" % a.prompt)
    np.save(prompt, np.random.default_rng(7).integers(
        3, cfg["vocab"], (1, a.prompt)).astype(np.int64))
    gguf = {"f32": os.path.join(work, "m125-f32.gguf")}
    if not os.path.isfile(gguf["f32"]):
        llama_to_gguf.write(model, gguf["f32"], "quench-gguf-speed-125m",
                            a.llama_cpp)
    for typ in types:
        if typ == "f32":
            continue
        gguf[typ] = os.path.join(work, "m125-%s.gguf" % typ)
        if not os.path.isfile(gguf[typ]):
            run([os.path.join(lbin, "llama-quantize"), gguf["f32"], gguf[typ],
                 typ.upper(), str(max(threads))], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)

    res = dict(info=info, quench={}, llama={}, check={}, size={})
    # --- Quench ---------------------------------------------------------
    exes = {}
    for typ in types:
        res["size"][typ] = os.path.getsize(gguf[typ])
        for mode, flags in MODES.items():
            if typ == "f32" and mode != "exact":
                continue  # no block-quantized products: the same code
            exe = os.path.join(work, "q_%s_%s" % (typ, mode))
            exes[(typ, mode)] = exe
            if a.reuse and os.access(exe, os.X_OK):
                log("   reusing " + exe)
                continue
            t0 = time.time()
            run([qc, gguf[typ], "--derive-kv-cache", "--max-seq", str(capacity),
                 "-o", exe] + flags, stdout=subprocess.DEVNULL)
            log("   compiled %s (%s) in %.1f s" % (typ, mode, time.time() - t0))
    for t in threads:
        for (typ, mode), exe in exes.items():
            r = quench_generate(exe, prompt, a.gen, a.runs, t, capacity)
            res["quench"][(typ, mode, t)] = r
            log("   Quench %s %s, %d threads: prefill %.1f tok/s, decode %.1f "
                "tok/s (%.3f ms/token)" % ((typ, mode, t) + rates(r)))

    # --- the same continuation on the F32 file --------------------------
    if "f32" in types:
        tool = os.path.join(work, "llamacpp_logits")
        run(["cc", "-O2", "-I", os.path.join(a.llama_cpp, "include"), "-I",
             os.path.join(a.llama_cpp, "ggml", "include"),
             os.path.join(HERE, "llamacpp_logits.c"), "-o", tool, "-L", lbin,
             "-lllama", "-Wl,-rpath," + lbin])
        ptxt = os.path.join(work, "prompt.txt")
        with open(ptxt, "w") as f:
            f.write(" ".join(str(int(x)) for x in np.load(prompt)[0]))
        p = run([tool, gguf["f32"], ptxt, str(a.gen + 1), "-", str(max(threads))],
                capture_output=True, text=True)
        lids = [int(x) for x in re.search(r"^ids:([ 0-9]*)$", p.stdout,
                                          re.M).group(1).split()]
        qids = res["quench"][("f32", "exact", threads[0])]["ids"]
        same = same_prefix(qids, lids)
        res["check"] = dict(f32_same_ids=same, of=len(lids))
        log("   check: Quench's greedy ids on the F32 file equal llama.cpp's "
            "(f32 cache) for %d of %d" % (same, len(lids)))
        if same != len(lids):
            sys.exit("gguf_speed.py: Quench and llama.cpp disagree on the F32 "
                     "file's continuation")

    # --- llama.cpp ------------------------------------------------------
    for typ in types:
        p = timed([os.path.join(lbin, "llama-bench"), "-m", gguf[typ], "-p",
                   str(a.prompt), "-n", str(a.gen), "-t", a.threads, "-r",
                   str(a.runs), "-o", "json"], capture_output=True, text=True)
        for r in json.loads(p.stdout):
            e = res["llama"].setdefault((typ, r["n_threads"]), {})
            if r["n_prompt"] > 0 and r["n_gen"] == 0:
                e.update(prompt=r["n_prompt"], prefill_ms=r["avg_ns"] / 1e6)
            elif r["n_gen"] > 0 and r["n_prompt"] == 0:
                e.update(steps=r["n_gen"], decode_ms=r["avg_ns"] / 1e6)
        for t in threads:
            log("   llama.cpp %s, %d threads: prefill %.1f tok/s, decode %.1f "
                "tok/s (%.3f ms/token)" % ((typ, t) + rates(res["llama"][(typ, t)])))
    info["load_end"] = load()

    # --- Table ----------------------------------------------------------
    print()
    print("gguf_speed.py: %s, commit %s, llama.cpp %s; load average %s at the "
          "start, %s at the end" % (info["date"], info["commit"],
                                    info["llama_cpp"], info["load_start"],
                                    info["load_end"]))
    print("$ " + info["command"] + ("  (timed commands under chrt -f 50)"
                                    if info["rt"] else ""))
    print()
    print("| file | MB | threads | Quench activations | prefill tok/s | decode "
          "tok/s (ms/token) | llama-bench prefill tok/s | decode tok/s "
          "(ms/token) | prefill Quench/llama.cpp | decode Quench/llama.cpp |")
    print("| --- | --: | --: | --- | --: | --: | --: | --: | --: | --: |")
    best = {}
    for typ in types:
        for t in threads:
            lp, ld, lms = rates(res["llama"][(typ, t)])
            for mode in MODES:
                r = res["quench"].get((typ, mode, t))
                if r is None:
                    continue
                qp, qd, qms = rates(r)
                best[(typ, t)] = max(best.get((typ, t), 0), qd / ld)
                print("| %s | %.1f | %d | %s | %.1f | %.1f (%.2f) | %.1f | %.1f "
                      "(%.2f) | %.2f | %.2f |" % (
                          LABEL[typ], res["size"][typ] / 1e6, t, mode, qp, qd,
                          qms, lp, ld, lms, qp / lp, qd / ld))
    print()
    print("Goal: decode >= %.1fx llama.cpp on the same file (best Quench mode):"
          % GOAL)
    for (typ, t), ratio in best.items():
        print("  %s, %d threads: %.2fx %s" % (LABEL[typ], t, ratio,
                                            "met" if ratio >= GOAL else "NOT met"))
    if a.json:
        def keyed(d):
            return {",".join(map(str, k)): v for k, v in d.items()}
        out = dict(info=info, check=res["check"], size=res["size"],
                   quench=keyed(res["quench"]), llama=keyed(res["llama"]))
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
