#!/usr/bin/env python3
"""End-to-end check of the generated parallel loops (convert-scf-to-quench-runtime).

Compiles a small quench model with a large elementwise chain and a matmul
(whose outer tile loops the CPU pipeline leaves as scf.forall and runs on the
runtime's thread pool) into a standalone executable with
`quench-compile --emit=exe`, runs it with --threads 1 and --threads 2, and
checks that
  * the generated code calls quench_parallel_for_work (the loops are
    threaded),
  * the outputs of both runs are bitwise identical (every output element is
    computed by one iteration, whatever the chunking), also when the 2-thread
    run is told that dispatch costs nothing (QUENCH_DISPATCH_NS=0: every
    loop of two or more iterations is split; QUENCH_TRACE_PARALLEL shows
    that some loop ran in several chunks),
  * they match NumPy: matmul within 1e-5 * sum(|a| |b|) per element (f32
    accumulation order differs from NumPy's), the elementwise chain within
    a relative 2e-6 (libm vs NumPy exp/tanh);
and runs a second model with dynamic shapes on empty and non-empty inputs
(run-time trip counts, zero-trip loops).

Usage: threads.py --build BUILD_DIR [--keep DIR]
Run through CTest: `ctest -L e2e -R threads`.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

M, K, N = 96, 320, 200  # matmul sizes (N not a multiple of the tiles)
R, C = 700, 1031  # elementwise tensor

MODEL = f"""
func.func @main(%a: tensor<{M}x{K}xf32>, %b: tensor<{K}x{N}xf32>,
                %x: tensor<{R}x{C}xf32>)
    -> (tensor<{M}x{N}xf32>, tensor<{R}x{C}xf32>) {{
  %mm = quench.matmul %a, %b
      : (tensor<{M}x{K}xf32>, tensor<{K}x{N}xf32>) -> tensor<{M}x{N}xf32>
  %e = quench.exp %x : tensor<{R}x{C}xf32>
  %t = quench.tanh %x : tensor<{R}x{C}xf32>
  %p = quench.mul %e, %t
      : (tensor<{R}x{C}xf32>, tensor<{R}x{C}xf32>) -> tensor<{R}x{C}xf32>
  %y = quench.add %p, %x
      : (tensor<{R}x{C}xf32>, tensor<{R}x{C}xf32>) -> tensor<{R}x{C}xf32>
  return %mm, %y : tensor<{M}x{N}xf32>, tensor<{R}x{C}xf32>
}}
"""


DYN_MODEL = """
func.func @main(%a: tensor<?x64xf32>, %b: tensor<64x?xf32>, %x: tensor<?x?xf32>)
    -> (tensor<?x?xf32>, tensor<?x?xf32>) {
  %mm = quench.matmul %a, %b
      : (tensor<?x64xf32>, tensor<64x?xf32>) -> tensor<?x?xf32>
  %e = quench.exp %x : tensor<?x?xf32>
  return %mm, %e : tensor<?x?xf32>, tensor<?x?xf32>
}
"""
# (M, N, R, C) of the dynamic model's runs.
DYN_SHAPES = [(0, 5, 0, 3), (37, 0, 2, 0), (130, 77, 1501, 13)]


def run(cmd, env=None):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True,
                          env=dict(os.environ, **env) if env else None)
    if proc.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)} exited with {proc.returncode}\n"
                 f"{proc.stdout}{proc.stderr}")
    return proc.stdout, proc.stderr


# Dispatch taken as free, with one trace line per loop on stderr.
SPLIT_ALL = {"QUENCH_DISPATCH_NS": "0", "QUENCH_TRACE_PARALLEL": "1"}


def split_loops(trace):
    """How many loops of a QUENCH_TRACE_PARALLEL trace ran in > 1 chunk."""
    return sum(1 for line in trace.splitlines()
               if line.startswith("quench-parallel: n ")
               and int(line.split(" chunks ")[1].split()[0]) > 1)


def run_exe(exe, work, tag, values, threads, env=None):
    """Runs `exe` on `values` with --threads `threads`; returns the outputs
    and the standard error."""
    args = []
    for i, value in enumerate(values):
        path = os.path.join(work, f"{tag}_input_{i}.npy")
        np.save(path, value)
        args += ["--input", f"input_{i}={path}"]
    out_dir = os.path.join(work, f"{tag}_out{threads}{'e' if env else ''}")
    os.makedirs(out_dir, exist_ok=True)
    _, err = run([exe] + args + ["--threads", str(threads), "--output-dir",
                                 out_dir], env)
    return ([np.load(os.path.join(out_dir, f"output_{i}.npy"))
             for i in range(2)], err)


def check_dynamic(compiler, work):
    model = os.path.join(work, "threads_dyn.mlir")
    with open(model, "w") as f:
        f.write(DYN_MODEL)
    exe = os.path.join(work, "threads_dyn")
    run([compiler, model, "-o", exe, "--emit=exe"])
    rng = np.random.default_rng(11)
    failures = []
    for m, n, r, c in DYN_SHAPES:
        a = rng.standard_normal((m, 64)).astype(np.float32)
        b = rng.standard_normal((64, n)).astype(np.float32)
        x = rng.uniform(-3, 3, (r, c)).astype(np.float32)
        tag = f"dyn_{m}x{n}_{r}x{c}"
        out1, _ = run_exe(exe, work, tag, (a, b, x), 1)
        out2, _ = run_exe(exe, work, tag, (a, b, x), 2, SPLIT_ALL)
        ref = (a.astype(np.float64) @ b.astype(np.float64),
               np.exp(x.astype(np.float64)))
        for i in range(2):
            if not np.array_equal(out1[i], out2[i]):
                failures.append(f"{tag} output_{i}: thread counts differ")
            if out2[i].shape != ref[i].shape or not np.allclose(
                    out2[i], ref[i], rtol=2e-6, atol=1e-4 if i == 0 else 0):
                failures.append(f"{tag} output_{i}: does not match NumPy")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", required=True, help="Quench build directory")
    parser.add_argument("--keep", help="work in this directory and keep it")
    args = parser.parse_args()

    compiler = os.path.join(args.build, "bin", "quench-compile")
    if not os.path.exists(compiler):
        sys.exit(f"FAIL: {compiler} not found (build the quench-compile target)")

    work = args.keep or tempfile.mkdtemp(prefix="quench-threads-")
    os.makedirs(work, exist_ok=True)
    model = os.path.join(work, "threads.mlir")
    with open(model, "w") as f:
        f.write(MODEL)

    # The loops must really go through the runtime's pool.
    llvm_ir = os.path.join(work, "threads.ll")
    run([compiler, model, "-o", llvm_ir, "--emit=llvm"])
    with open(llvm_ir) as f:
        calls = f.read().count("call i32 @quench_parallel_for_work(")
    if calls < 2:
        sys.exit(f"FAIL: expected parallel loops for the matmul and the "
                 f"elementwise chain, found {calls} quench_parallel_for_work "
                 f"calls")

    exe = os.path.join(work, "threads")
    run([compiler, model, "-o", exe, "--emit=exe"])

    rng = np.random.default_rng(7)
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    x = rng.uniform(-3, 3, (R, C)).astype(np.float32)
    outputs = {t: run_exe(exe, work, "static", (a, b, x), t)[0]
               for t in (1, 2)}
    outputs["split"], trace = run_exe(exe, work, "static", (a, b, x), 2,
                                      SPLIT_ALL)

    failures = []
    if split_loops(trace) < 2:
        failures.append(f"with QUENCH_DISPATCH_NS=0, fewer than 2 loops ran "
                        f"in several chunks:\n{trace}")
    for i in range(2):
        for other in (2, "split"):
            if not np.array_equal(outputs[1][i], outputs[other][i]):
                diff = np.abs(outputs[1][i] - outputs[other][i]).max()
                failures.append(f"output_{i}: --threads 1 and --threads 2 "
                                f"({other}) differ (max |diff| {diff})")

    mm, y = outputs["split"]
    a64, b64, x64 = a.astype(np.float64), b.astype(np.float64), x.astype(np.float64)
    ref_mm = a64 @ b64
    bound = 1e-5 * (np.abs(a64) @ np.abs(b64))
    if mm.shape != ref_mm.shape or np.any(np.abs(mm - ref_mm) > bound):
        failures.append(f"matmul: max |err| {np.abs(mm - ref_mm).max()}")
    ref_y = np.exp(x64) * np.tanh(x64) + x64
    tol = 2e-6 * (np.abs(np.exp(x64) * np.tanh(x64)) + np.abs(x64)) + 1e-7
    if y.shape != ref_y.shape or np.any(np.abs(y - ref_y) > tol):
        failures.append(f"elementwise: max |err| {np.abs(y - ref_y).max()}")

    failures += check_dynamic(compiler, work)
    if failures:
        sys.exit("FAIL:\n  " + "\n  ".join(failures) + f"\n(files in {work})")
    print(f"PASS: {calls} parallel loops; --threads 1 == --threads 2; "
          f"matches NumPy; dynamic shapes {DYN_SHAPES}")
    if not args.keep:
        import shutil
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
