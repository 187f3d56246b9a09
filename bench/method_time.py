#!/usr/bin/python3
"""Compile time of every quantization method on the 125M LLaMA-shaped model
(issue #15 point 9).

Generates the model once (bench/gen_llama_onnx.py --preset 125m --seq SEQ
--external-data; 124.7M parameters, 0.50 GB of fp32 external data) and
SAMPLES calibration sequences of SEQ random token ids (seeded; enough for
timing: calibration cost is linear in the tokens), then compiles it to an
executable with each method and records the wall time, quench-compile's
peak RSS (/usr/bin/time %M), whether it printed progress on stderr (lines
of the calibration, GPTQ, HQQ, ... progress reports), and the issue's
bound: 120 s for every method that is not GPTQ-based (GPTQ-based ones are
reported, not bounded). The calibration statistics are computed once per
method that needs them (--calib DIR, no cache: the cost is part of the
method), so calibrated methods include one calibration run.

Usage: bench/method_time.py [--build build] [--work DIR] [--seq 32]
           [--samples 8] [--only REGEX] [--threads N] [--json OUT] [--keep]
Prints a markdown table; exit status 1 if a compile failed or a bound was
missed.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"
BOUND_S = 120.0

# (label, quench-compile flags (@CALIB@: the samples directory), bounded)
METHODS = [
    ("float (no quantization)", [], True),
    ("W8A16 RTN", ["--quant=w8a16"], True),
    ("W4A16 g32 RTN", ["--quant=w4a16"], True),
    ("W4A16 g32 RTN, int4 embeddings",
     ["--quant=w4a16", "--quant-embeddings=int4"], True),
    ("W4A16 g32 HQQ", ["--quant=w4a16", "--algo=hqq"], True),
    ("W3A16 g32 HQQ", ["--quant=w3a16", "--algo=hqq"], True),
    ("W4A16 bits budget 4.5 (calibrated)",
     ["--quant=w4a16", "--bits-budget=4.5", "--calib=@CALIB@"], True),
    ("W8A8 dynamic", ["--quant=w8a8-dynamic"], True),
    ("W8A8 static", ["--quant=w8a8", "--calib=@CALIB@"], True),
    ("W8A8 static, SmoothQuant auto",
     ["--quant=w8a8", "--smooth=auto", "--calib=@CALIB@"], True),
    ("W4A16 g32 AWQ", ["--quant=w4a16", "--algo=awq", "--calib=@CALIB@"],
     True),
    ("W8A8 static, outliers auto",
     ["--quant=w8a8", "--outliers=auto", "--calib=@CALIB@"], True),
    ("W8A8 dynamic, 8 outlier channels",
     ["--quant=w8a8-dynamic", "--outliers=8", "--calib=@CALIB@"], True),
    ("W4A16 g32, 2:4 magnitude", ["--quant=w4a16", "--sparsity=2:4"], True),
    ("W4A16 g32 + rotation", ["--quant=w4a16", "--rotate=hadamard"], True),
    ("W8A8 dynamic + online rotation",
     ["--quant=w8a8-dynamic", "--rotate=hadamard", "--rotate-online"], True),
    # GPTQ-based (SparseGPT is GPTQ's column sweep with a mask choice).
    ("W4A16 g32 AWQ+GPTQ",
     ["--quant=w4a16", "--algo=awq+gptq", "--calib=@CALIB@"], False),
    ("W4A16 g32 GPTQ, 2:4 SparseGPT",
     ["--quant=w4a16", "--algo=gptq", "--sparsity=2:4", "--prune=sparsegpt",
      "--calib=@CALIB@"], False),
    ("W8A16 GPTQ", ["--quant=w8a16", "--algo=gptq", "--calib=@CALIB@"],
     False),
    ("W4A16 g32 GPTQ", ["--quant=w4a16", "--algo=gptq", "--calib=@CALIB@"],
     False),
]


def run_timed(cmd, log, out=None):
    """Runs cmd under /usr/bin/time; returns (rc, wall s, peak RSS GB,
    stderr text). stdout goes to the file `out` (None: discarded)."""
    start = time.time()
    with open(log, "w") as err, \
            open(out or os.devnull, "w") as stdout:
        p = subprocess.run(["/usr/bin/time", "-f", "@@time %e %M"] + cmd,
                           stdout=stdout, stderr=err)
    wall = time.time() - start
    text = open(log).read()
    m = re.search(r"@@time ([0-9.]+) ([0-9]+)", text)
    rss = int(m.group(2)) * 1024 / 1e9 if m else float("nan")
    return p.returncode, wall, rss, text


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--work")
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--only", metavar="REGEX")
    ap.add_argument("--threads", type=int, default=0,
                    help="--quant-threads (0: all cores)")
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true",
                    help="keep each method's executable, stdout (the size "
                    "table: each layer's scheme) and stderr as WORK/mN.exe, "
                    "WORK/mN.out, WORK/mN.err (N: the method's index), to "
                    "compare the output of two builds")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="quench-method-time-")
    os.makedirs(work, exist_ok=True)
    model = os.path.join(work, "m125.onnx")
    if not os.path.isfile(model):
        subprocess.run([PY, os.path.join(ROOT, "bench", "gen_llama_onnx.py"),
                        model, "--preset", "125m", "--seq", str(a.seq),
                        "--external-data"], check=True,
                       stdout=subprocess.DEVNULL)
    calib = os.path.join(work, "calib")
    rng = np.random.default_rng(0)
    for i in range(a.samples):
        d = os.path.join(calib, "%03d" % i)
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, "input_ids.npy"),
                rng.integers(0, 32000, (1, a.seq)).astype(np.int64))
    compiler = os.path.join(a.build, "bin", "quench-compile")
    rows, failed = [], False
    for index, (label, flags, bounded) in enumerate(METHODS):
        if a.only and not re.search(a.only, label):
            continue
        exe = os.path.join(work, "m")
        flags = [f.replace("@CALIB@", calib) for f in flags]
        cmd = [compiler, model, "-o", exe, "--quant-threads=%d" % a.threads] \
            if flags else [compiler, model, "-o", exe]
        log = os.path.join(work, "log.txt")
        kept = os.path.join(work, "m%d" % index)
        rc, wall, rss, err = run_timed(cmd + flags, log,
                                       kept + ".out" if a.keep else None)
        progress = sum(1 for line in err.splitlines()
                       if re.match(r"(calibrate|quantize|smooth|awq|prune|"
                                   r"rotate|hqq|budget)\b", line))
        ok = rc == 0 and (not bounded or wall <= BOUND_S)
        failed |= not ok
        rows.append(dict(method=label, flags=" ".join(
            f if not f.startswith("--calib=") else "--calib=DIR"
            for f in flags), seconds=round(wall, 1), peak_gb=round(rss, 2),
            progress_lines=progress, bounded=bounded, ok=ok, rc=rc))
        print("%s %-40s %6.1f s %5.2f GB progress lines %d%s" % (
            "ok  " if ok else "FAIL", label, wall, rss, progress,
            "" if rc == 0 else " (exit %d: %s)" % (rc, err.strip()[-300:])),
            flush=True)
        if a.keep:
            with open(kept + ".err", "w") as f:
                f.write(err)
        if os.path.exists(exe):
            if a.keep:
                os.replace(exe, kept + ".exe")
            else:
                os.remove(exe)
    print("\n| method | flags | wall s | peak RSS GB | progress lines | "
          "bound |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for r in rows:
        print("| %s | `%s` | %.1f | %.2f | %d | %s |" % (
            r["method"], r["flags"], r["seconds"], r["peak_gb"],
            r["progress_lines"],
            ("<= %d s: %s" % (BOUND_S, "met" if r["ok"] else "MISSED"))
            if r["bounded"] else "GPTQ: reported"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
