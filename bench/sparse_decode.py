#!/usr/bin/python3
"""Decode step of a LLaMA-shaped model with 2:4 W4A16 linear layers in
compressed storage against the dense W4A16 kernel (issue #16 point 4,
"the 125M model's decode step").

The model is bench/gen_llama_onnx.py's `--preset 125m --with-past` (random
weights, seed 0; written to WORK unless --model names one). Three
executables, `quench-compile MODEL -o EXE --max-seq CAP --quant=w4a16
--group-size=32` plus:

  * "w4a16":           nothing (the unpruned weights, dense);
  * "w4a16 2:4 dense": `--sparsity=2:4 --sparse-storage=dense` (the pruned
                       codes in the dense format and kernel);
  * "w4a16 2:4":       `--sparsity=2:4` (compressed: kept 4-bit codes two
                       per byte plus 2-bit indices, the sparse kernel).

Each runs `EXE --input input_ids=PROMPT --generate GEN+1 --bench RUNS
--threads T` (prompt of PROMPT_LEN seeded ids), the three alternated ROUNDS
times per thread count; the table gives the median over rounds of the
decode milliseconds per token and the ratio against "w4a16 2:4 dense" (the
same pruned codes), next to the ratio of the linear weights' bytes from
the size reports. The greedy tokens of the two 2:4 executables must agree
(the same weights; float reassociation and the dense kernel's int16
activations aside, a divergence would show a wrong kernel), checked and
printed. The load average is printed before and after: on a shared
machine only the ratios within one run mean anything.

Usage: bench/sparse_decode.py [--build BUILD] [--work DIR] [--model X.onnx]
       [--threads 1,2] [--rounds 5] [--runs 3] [--gen 32] [--prompt-len 16]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMES = {
    "w4a16": [],
    "w4a16 2:4 dense": ["--sparsity=2:4", "--sparse-storage=dense"],
    "w4a16 2:4": ["--sparsity=2:4"],
}


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("FAILED: %s\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
    return r.stdout


def load():
    return "%.2f %.2f %.2f" % os.getloadavg()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--work", default="/tmp/quench-sparse-decode")
    ap.add_argument("--model")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--prompt-len", type=int, default=16)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    qc = os.path.join(a.build, "bin", "quench-compile")
    model = a.model or os.path.join(a.work, "m125.onnx")
    if not os.path.exists(model):
        run([sys.executable, os.path.join(ROOT, "bench", "gen_llama_onnx.py"),
             "--preset", "125m", "--with-past", model])
    cap = a.prompt_len + a.gen + 1
    prompt = os.path.join(a.work, "prompt.npy")
    np.save(prompt, np.random.default_rng(1).integers(
        1, 32000, size=(1, a.prompt_len)).astype(np.int64))
    exes, size = {}, {}
    for s, flags in SCHEMES.items():
        exe = os.path.join(a.work, s.replace(" ", "_").replace(":", ""))
        if not os.path.exists(exe):
            run([qc, model, "-o", exe, "--max-seq", str(cap), "--quant=w4a16",
                 "--group-size=32", "--report=" + exe + ".json"] + flags)
        with open(exe + ".json") as f:
            size[s] = json.load(f)["linear_weight_bytes_after"]
        exes[s] = exe
    print("load average before: %s" % load())
    print("%-16s %3s %10s %12s %9s %8s" % ("scheme", "thr", "linear MB",
                                          "decode ms/t", "vs 2:4 d",
                                          "bytes x"))
    for t in [int(x) for x in a.threads.split(",")]:
        times = {s: [] for s in SCHEMES}
        ids = {}
        for _ in range(a.rounds):
            for s, exe in exes.items():
                out = run([exe, "--input", "input_ids=" + prompt, "--generate",
                           str(a.gen + 1), "--bench", str(a.runs), "--threads",
                           str(t), "--capacity", str(cap)])
                dec = re.search(r"decode: (\d+) tokens in ([0-9.]+) ms", out)
                gen = re.search(r"generated \d+ tokens:([ 0-9]*)", out)
                if not dec or not gen:
                    sys.exit("no decode line in:\n" + out)
                times[s].append(float(dec.group(2)) / int(dec.group(1)))
                ids[s] = gen.group(1).split()
        ref = "w4a16 2:4 dense"
        med = {s: statistics.median(v) for s, v in times.items()}
        for s in SCHEMES:
            print("%-16s %3d %10.2f %12.3f %8.2fx %7.2fx" % (
                s, t, size[s] / 1e6, med[s], med[ref] / med[s],
                size[ref] / size[s]))
        same = sum(x == y for x, y in zip(ids["w4a16 2:4"], ids[ref]))
        print("greedy tokens, 2:4 compressed vs 2:4 dense: %d of %d equal" %
              (same, len(ids[ref])))
    print("load average after: %s" % load())


if __name__ == "__main__":
    main()
