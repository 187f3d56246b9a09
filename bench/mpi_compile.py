#!/usr/bin/python3
"""quench-compile-mpi against quench-compile: calibration and GPTQ across
processes of this machine (docs/scaling.md, "Beyond one machine").

Generates a LLaMA-shaped model (bench/gen_llama_onnx.py --preset, default
125m, with --seq S tokens per sample) and N calibration samples of random
token ids, once, into WORK (reused when there), then compiles it at
W4A16 GPTQ (--emit=obj: code generation and linking are rank 0's alone and
the same in both runs; --time prints every stage):

  1. one process:  /usr/bin/time -f "%e %M" quench-compile MODEL ...
       --calib-threads T --quant-threads T        (T = all cores)
  2. P processes:  /usr/bin/time -f "%e %M" mpirun -np P --bind-to none
       quench-compile-mpi MODEL ...               (each process gets
       cores / P threads: the cores are used equally)

then both again with the caches they wrote (--calib-cache: calibration is
skipped, the quantize stage alone splits), and prints, per run, the wall
time, the CPU time (user + sys of every process), the calibrate and quantize stage
times (rank 0's --time lines), every process's peak RSS and the bytes it
sent and received (quench-compile-mpi's summary lines; for one process,
/usr/bin/time's %M), the load average before and after (other work on
the machine skews the times), and whether the two calibration caches hold
the same statistics (Gram matrices to 1e-12 relative) and the two objects
are byte-identical.

Usage: bench/mpi_compile.py [--build DIR] [--work DIR] [--preset 125m]
         [--seq 64] [--samples 8] [--np 2] [--json OUT.json]
As root it sets OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM); it passes
--oversubscribe so that P may exceed the cores.
Exit status 1 if a run failed or the results differ.
"""

import argparse
import json
import os
import re
import subprocess
import sys

import numpy as np

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SRC, "test", "e2e"))
from calibration import read_cache  # noqa: E402

PY = "/usr/bin/python3"


def timed(cmd, env, log):
    load = os.getloadavg()[0]
    p = subprocess.run(["/usr/bin/time", "-f", "TIME %e %M %U %S"] + cmd,
                       capture_output=True, text=True, env=env)
    with open(log, "w") as f:
        f.write(" ".join(cmd) + "\n" + p.stdout + p.stderr)
    if p.returncode != 0:
        print(p.stdout + p.stderr)
        sys.exit(f"failed: {' '.join(cmd)} (log: {log})")
    m = re.search(r"^TIME ([\d.]+) (\d+) ([\d.]+) ([\d.]+)$", p.stderr, re.M)
    r = {"wall_s": float(m.group(1)), "time_max_rss_mb": int(m.group(2)) / 1024,
         "cpu_s": float(m.group(3)) + float(m.group(4)),
         "load_before": load, "load_after": os.getloadavg()[0]}
    for stage in ("calibrate", "quantize", "total"):
        s = re.search(r"^time: %s\s+([\d.]+) s" % stage, p.stderr, re.M)
        r[stage + "_s"] = float(s.group(1)) if s else None
    # With --time the kernel's mark is reset at every phase: the line
    # "peak memory" (the largest phase's) is the process's peak.
    pk = re.search(r"^peak memory: ([\d.]+) MB", p.stderr, re.M)
    r["peak_rss_mb"] = float(pk.group(1)) if pk else r["time_max_rss_mb"]
    ranks = re.findall(r"rank (\d+)/\d+: peak RSS (\d+) MB, sent ([\d.]+) MB, "
                       r"received ([\d.]+) MB", p.stderr)
    r["ranks"] = [{"rank": int(a), "peak_rss_mb": int(b), "sent_mb": float(c),
                   "received_mb": float(d)} for a, b, c, d in ranks]
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--work", default="/tmp/quench-mpi-bench")
    ap.add_argument("--preset", default="125m")
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--np", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args()
    bin_dir = os.path.join(a.build, "bin")
    os.makedirs(a.work, exist_ok=True)
    model = os.path.join(a.work, f"{a.preset}.s{a.seq}.onnx")
    if not os.path.exists(model):
        subprocess.run([PY, os.path.join(SRC, "bench", "gen_llama_onnx.py"),
                        model, "--preset", a.preset, "--seq", str(a.seq)],
                       check=True, stdout=subprocess.DEVNULL)
    vocab = 32000
    samples = os.path.join(a.work, f"samples.s{a.seq}.n{a.samples}")
    if not os.path.isdir(samples):
        rng = np.random.default_rng(5)
        for i in range(a.samples):
            d = os.path.join(samples, "%03d" % i)
            os.makedirs(d)
            np.save(os.path.join(d, "input_ids.npy"),
                    rng.integers(0, vocab, size=(1, a.seq)).astype(np.int64))
    cores = os.cpu_count()
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    common = [model, "--emit=obj", "--name=model", "--quant=w4a16",
              "--algo=gptq", "--calib=" + samples, "--time"]
    out1 = os.path.join(a.work, "np1")
    outp = os.path.join(a.work, f"np{a.np}")
    for f in (out1, outp):
        for ext in (".o", ".h", ".calib"):
            if os.path.exists(f + ext):
                os.remove(f + ext)
    print(f"model {model}, {a.samples} samples of {a.seq} tokens, "
          f"{cores} cores")
    runs = []
    for cached in (False, True):
        tag = "-cached" if cached else ""
        one = timed([os.path.join(bin_dir, "quench-compile")] + common +
                    ["-o", out1, "--calib-cache=" + out1 + ".calib",
                     f"--calib-threads={cores}", f"--quant-threads={cores}"],
                    env, out1 + tag + ".log")
        one["ranks"] = [{"rank": 0,
                         "peak_rss_mb": round(one["peak_rss_mb"]),
                         "sent_mb": 0.0, "received_mb": 0.0}]
        many = timed(["mpirun", "-np", str(a.np), "--oversubscribe",
                      "--bind-to", "none",
                      os.path.join(bin_dir, "quench-compile-mpi")] + common +
                     ["-o", outp, "--calib-cache=" + outp + ".calib"],
                     env, outp + tag + ".log")
        runs += [(1, cached, one), (a.np, cached, many)]
        if not cached:
            identical = (open(out1 + ".o", "rb").read() ==
                         open(outp + ".o", "rb").read())
    # Exactness.
    c1, cp = read_cache(out1 + ".calib"), read_cache(outp + ".calib")
    worst = 0.0
    same = list(c1["tensors"]) == list(cp["tensors"])
    for name, t in c1["tensors"].items():
        u = cp["tensors"].get(name)
        if u is None:
            same = False
            continue
        for key in ("rows", "count", "min", "max", "limit"):
            same &= t[key] == u[key]
        same &= bool(np.array_equal(t["hist"], u["hist"]))
        g, h = t["gram"], u["gram"]
        worst = max(worst, float(np.abs(g - h).max() /
                                 max(np.abs(g).max(), 1e-30)))
    print(f"\n| processes | calibration | wall s | CPU s | calibrate s | "
          f"quantize s | peak RSS per process MB | sent / received per "
          f"process MB | load avg before/after |")
    print("| --- | --- | --: | --: | --: | --: | --- | --- | --- |")
    for n, cached, r in runs:
        rss = ", ".join(str(x["peak_rss_mb"]) for x in r["ranks"])
        io = ", ".join(f"{x['sent_mb']:.1f} / {x['received_mb']:.1f}"
                       for x in r["ranks"])
        print(f"| {n} | {'cache' if cached else 'run'} | {r['wall_s']:.1f} | "
              f"{r['cpu_s']:.1f} | {r['calibrate_s']:.1f} | "
              f"{r['quantize_s']:.1f} | {rss} | {io} | "
              f"{r['load_before']:.1f} / {r['load_after']:.1f} |")
    print(f"\nstatistics: histograms, counts and ranges "
          f"{'equal' if same else 'DIFFER'}; Gram matrices within "
          f"{worst:.1e} relative; objects "
          f"{'byte-identical' if identical else 'differ'}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"runs": [{"processes": n, "cached": c, **r}
                                for n, c, r in runs], "np": a.np,
                       "stats_equal": same, "gram_rel": worst,
                       "objects_identical": identical}, f, indent=1)
    return 0 if same and worst <= 1e-12 else 1


if __name__ == "__main__":
    sys.exit(main())
