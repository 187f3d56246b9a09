#!/usr/bin/env python3
"""quench-compile-mpi across processes equals quench-compile in one.

`mpirun -np 2 quench-compile-mpi` splits the calibration samples and the
GPTQ layers between two processes (docs/scaling.md, "Beyond one
machine"). On a 3-layer LLaMA-shaped model (bench/gen_llama_onnx.py) with
5 calibration samples (an odd count: the processes get 3 and 2), at
W4A16 GPTQ, against plain quench-compile:

- the calibration caches: names, layers, channels, row/element counts and
  histograms (limit and every bin) exactly; min, max and per-channel
  max |x| exactly; per-channel sum |x| and the Gram matrices to 1e-12
  relative to their largest entry (only the order of the sums differs);
- the executables' logits on two inputs: within 1e-5 of the largest
  |logit| (the codes come from statistics equal up to summation order;
  in practice they are identical);
- W8A8 with static ranges from the histograms' 99.9th percentile and RTN
  weights (split by layers): byte-identical objects;
- rank 0 alone writes: the output, the cache and the report, and no
  scratch file or cache temporary is left next to them;
- errors: a --calib directory that does not exist, and a sample only the
  second process reads (a truncated .npy): a nonzero exit of the job, the
  message once, no output written; likewise a GPTQ layer that fails
  (singular Gram matrix, no dampening) on the second process.

Needs quench-compile-mpi (built when CMake finds MPI) and mpirun; exits 77
(CTest's SKIP_RETURN_CODE) with the reason when either is missing. Runs as
root with OMPI_ALLOW_RUN_AS_ROOT; --oversubscribe for machines with fewer
than 2 cores.

Usage: mpi_compile.py --build BUILD_DIR [--keep DIR]
"""

import argparse
import glob
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from calibration import make_llama_samples, read_cache, rel  # noqa: E402
from calibration import run as run_command  # noqa: E402

SKIP = 77
MPIRUN = ["mpirun", "-np", "2", "--oversubscribe", "--bind-to", "none"]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1",
           OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")

failures = []


def fail(msg):
    print("FAIL: " + msg)
    failures.append(msg)


def run(cmd, expect_ok=True):
    return run_command(cmd, expect_ok, env=ENV, timeout=600)


def compare_caches(one, two):
    if one["samples"] != two["samples"]:
        fail(f"sample counts {one['samples']} vs {two['samples']}")
    if list(one["tensors"]) != list(two["tensors"]):
        fail("tensor names/order differ: %s vs %s" %
             (list(one["tensors"]), list(two["tensors"])))
        return
    worst = {"abssum": 0.0, "gram": 0.0}
    for name, a in one["tensors"].items():
        b = two["tensors"][name]
        for key in ("layers", "channels", "rows", "count", "nonfinite",
                    "min", "max", "limit"):
            if a[key] != b[key]:
                fail(f"{name}: {key} {a[key]} vs {b[key]}")
        for key in ("absmax", "hist"):
            if not np.array_equal(a[key], b[key]):
                fail(f"{name}: {key} differs")
        worst["abssum"] = max(worst["abssum"], rel(a["abssum"], b["abssum"]))
        if ("gram" in a) != ("gram" in b):
            fail(f"{name}: Gram matrix in one cache only")
        elif "gram" in a:
            worst["gram"] = max(worst["gram"], rel(a["gram"], b["gram"]))
    print("  statistics: largest relative differences " + ", ".join(
        f"{k} {v:.1e}" for k, v in worst.items()))
    for k, v in worst.items():
        if v > 1e-12:
            fail(f"{k} differs by {v:.2e} (limit 1e-12)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--keep")
    args = ap.parse_args()
    qc = os.path.join(args.build, "bin", "quench-compile")
    qcm = os.path.join(args.build, "bin", "quench-compile-mpi")
    if not os.path.exists(qcm):
        print("mpi_compile.py: SKIPPED: quench-compile-mpi was not built "
              "(CMake found no MPI; install libopenmpi-dev openmpi-bin)")
        return SKIP
    if not shutil.which("mpirun"):
        print("mpi_compile.py: SKIPPED: no mpirun on PATH (openmpi-bin)")
        return SKIP
    work = args.keep or tempfile.mkdtemp(prefix="quench-mpi-")
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(11)
    try:
        seq = 16
        model, samples = make_llama_samples(work, "samples", 5, rng, seq)
        common = ["--quant=w4a16", "--algo=gptq", "--calib=" + samples,
                  "--name=model"]

        # One process, then two.
        out1 = os.path.join(work, "one", "model")
        out2 = os.path.join(work, "two", "model")
        for out in (out1, out2):
            os.makedirs(os.path.dirname(out))
        run([qc, model, "-o", out1, "--calib-cache=" + out1 + ".calib",
             "--report=" + out1 + ".json"] + common)
        p = run(MPIRUN + [qcm, model, "-o", out2,
                          "--calib-cache=" + out2 + ".calib",
                          "--report=" + out2 + ".json"] + common)
        if "on 2 processes (3 here)" not in p.stderr:
            fail("the two processes did not split the 5 samples 3 + 2:\n" +
                 p.stderr)
        summaries = [l for l in p.stderr.splitlines() if ": rank " in l]
        print("\n".join("  " + l for l in summaries))
        if len(summaries) != 2:
            fail("expected one summary line per rank:\n" + p.stderr)
        # Rank 0 printed the size report once.
        if p.stdout.count("linear weights") != 1:
            fail("the size report was not printed exactly once:\n" +
                 p.stdout)
        written = sorted(os.listdir(os.path.dirname(out2)))
        if written != ["model", "model.calib", "model.json"]:
            fail(f"two processes wrote {written}, expected model, "
                 "model.calib and model.json")
        compare_caches(read_cache(out1 + ".calib"),
                       read_cache(out2 + ".calib"))

        # The executables agree.
        worst = 0.0
        for i in range(2):
            x = os.path.join(work, f"x{i}.npy")
            np.save(x, rng.integers(0, 128, size=(1, seq)).astype(np.int64))
            logits = []
            for out in (out1, out2):
                d = out + f"-out{i}"
                os.makedirs(d, exist_ok=True)
                run([out, "--input", "input_ids=" + x, "--output-dir", d])
                logits.append(np.load(os.path.join(d, "logits.npy")))
            worst = max(worst, rel(logits[0], logits[1]))
        print(f"  logits: largest difference {worst:.1e} of the largest "
              "|logit|")
        if worst > 1e-5:
            fail(f"the executables' logits differ by {worst:.2e} "
                 "(limit 1e-5)")

        # W8A8 with static ranges from the percentile of the histograms
        # (merged across the processes) and RTN weights split by layers:
        # the same object, byte for byte.
        objs = []
        for tag, cmd in (("one", [qc]), ("two", MPIRUN + [qcm])):
            out = os.path.join(work, tag, "w8a8")
            run(cmd + [model, "-o", out, "--emit=obj", "--name=model",
                       "--quant=w8a8", "--calib-method=percentile",
                       "--calib-percentile=99.9", "--calib=" + samples])
            objs.append(open(out + ".o", "rb").read())
        if objs[0] != objs[1]:
            fail("W8A8 (percentile ranges, RTN): the objects of one and two "
                 "processes differ")
        else:
            print("  W8A8 percentile + RTN: identical objects")

        # Errors: the job fails, one message, nothing written.
        def expect_error(name, cmd, out, needle):
            p = run(cmd, expect_ok=False)
            # (The driver's "stage 'X' failed (see above)" follows a
            # stage's message, as in one process.)
            errors = [l for l in p.stderr.splitlines()
                      if "quench-compile-mpi: error" in l and
                      "failed (see above)" not in l]
            left = glob.glob(out + "*")
            if p.returncode == 0:
                fail(f"{name}: the job exited 0")
            elif len(errors) != 1 or needle not in errors[0]:
                fail(f"{name}: expected one error naming '{needle}', got:\n"
                     + p.stderr)
            elif left:
                fail(f"{name}: output left behind: {left}")
            else:
                print(f"  {name}: exit {p.returncode}: {errors[0]}")

        bad = os.path.join(work, "bad", "model")
        os.makedirs(os.path.dirname(bad))
        expect_error("missing --calib", MPIRUN + [
            qcm, model, "-o", bad, "--calib-cache=" + bad + ".calib",
            "--quant=w4a16", "--algo=gptq",
            "--calib=" + os.path.join(work, "nowhere")], bad, "nowhere")
        # Sample 01 is rank 1's: truncate it (only that process reads it).
        broken = os.path.join(work, "broken")
        shutil.copytree(samples, broken)
        path = os.path.join(broken, "01", "input_ids.npy")
        data = open(path, "rb").read()
        open(path, "wb").write(data[:len(data) - 40])
        expect_error("truncated sample of rank 1", MPIRUN + [
            qcm, model, "-o", bad, "--calib-cache=" + bad + ".calib",
            "--quant=w4a16", "--algo=gptq", "--calib=" + broken], bad,
            "calibration sample '01'")
        # A GPTQ layer that only the second process quantizes fails: the
        # FFN down projections (K = 96 > the 80 calibration rows: a
        # singular Gram matrix) are the three largest layers, dealt out
        # largest first to the least loaded process: the first to rank 0,
        # the second to rank 1. Without dampening its Cholesky factorization
        # fails; rank 0 reports rank 1's message.
        import json
        layers = json.load(open(out1 + ".json"))["layers"]
        downs = [l["name"] for l in layers if l["in_features"] == 96]
        recipe = os.path.join(work, "recipe.json")
        with open(recipe, "w") as f:
            json.dump({"version": 1, "layers": [
                {"match": downs[1], "algo": "gptq", "gptq_dampening": 0}]}, f)
        expect_error("GPTQ failure on rank 1", MPIRUN + [
            qcm, model, "-o", bad, "--quant=w4a16", "--algo=gptq",
            "--quant-recipe=" + recipe, "--calib=" + samples], bad,
            "layer '%s'" % downs[1])
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"mpi_compile: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
