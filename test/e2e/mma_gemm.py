#!/usr/bin/env python3
"""End-to-end check of the CUDA backend's tensor-core GEMM kernels
(quench-gpu-mma-gemm, lib/Codegen/GPU/MmaGemm.cpp, docs/gpu.md
"Tensor-core GEMM") without a GPU.

One module holds f16 matmuls covering what the kernel distinguishes: a
dynamic row count (partial row tiles), B stored [K, N] (ldmatrix .trans) and
[N, K] (a linear layer's constant weight, batch dims folded into the rows),
a batched B (grid z), K below one K tile, K spanning more K tiles than
pipeline stages (the stage ring wraps), N and K not multiples of the tiles
(zero-filled copies, predicated stores), and a decode-sized static M that
must stay on the generic kernels.

1. Numerics: the module is compiled with --target=cuda --cuda-emulate (the
   kernel's grid, tiles, copies, pipeline order, accumulator layout and
   epilogue run on the CPU) and for the host, run on random inputs, and
   every output is compared with NumPy (f16 operands, f64 sums, the result
   rounded to f16): |y - ref| <= 2^-10 |ref| + 1e-4 sum_k |a| |b|.
2. Kernels: the PTX (--emit=ptx --target=cuda) holds one kernel with
   mma.sync.aligned.m16n8k16 f32.f16.f16.f32, ldmatrix and cp.async per
   case it applies to, and ptxas assembles the module for sm_80 and sm_90
   (--emit=obj) where the CUDA Toolkit is installed.

3. W8A8 (int8 tensor cores, mma.sync m16n8k32): an f32 linear layer
   (x [2, 37 dynamic, 208] x W [72, 208]: 74 rows, 4 K tiles, a partial
   column tile) compiled with --quant=w8a8-dynamic: the emulation must
   equal the CPU backend's W8A8 kernels (the i32 sums are exact, the
   per-token and per-channel scales are applied by the same epilogue;
   bound 1e-6 |y| max), its PTX holds one m16n8k32 kernel, and ptxas
   assembles it for sm_80 and sm_90.

With --device, the executables are also compiled without --cuda-emulate
and run on the GPU (needs a CUDA driver and GPU), the same comparisons.

Usage: mma_gemm.py --build BUILD_DIR [--keep DIR] [--device]
Run through CTest: `ctest -L e2e -R mma-gemm`.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

RNG = np.random.default_rng(4321)


def ttype(shape, dt="f16"):
    return "tensor<" + "x".join("?" if d is None else str(d)
                                for d in shape) + f"x{dt}>"


def hexdata(a):
    return '"0x' + np.ascontiguousarray(a).tobytes().hex().upper() + '"'


# name, A shape (None: dynamic, runtime size in `rows`), B shape, kind,
# runtime rows, whether the tensor-core kernel applies.
CASES = [
    # [M, K] x [K, N]: dynamic M = 70 (2 row tiles, partial), K = 40 (a
    # full and a partial K tile), N = 72 (2 column tiles, partial).
    ("kn_dyn", (None, 40), (40, 72), "matmul", 70, True),
    # [2, 37, 48] x W[56, 48]^T (linear, constant weight): 74 rows.
    ("linear", (2, 37, 48), (56, 48), "linear", None, True),
    # Batched: [3, 33, 24] x [3, 24, 40]: grid z, K below one K tile.
    ("batched", (3, 33, 24), (3, 24, 40), "matmul", None, True),
    # K = 200: 7 K tiles through 3 stages; M = 130, N = 136.
    ("deep", (130, 200), (200, 136), "matmul", None, True),
    # Decode: 4 static rows stay generic.
    ("decode", (4, 64), (64, 32), "matmul", None, False),
]


def build_model(work):
    args, body, results = [], [], []
    inputs = {}
    for name, ashape, bshape, kind, rows, _ in CASES:
        a = RNG.standard_normal(
            tuple(rows if d is None else d for d in ashape)).astype(np.float16)
        b = RNG.standard_normal(bshape).astype(np.float16)
        inputs[f"a_{name}"] = a
        args.append(f'%a_{name}: {ttype(ashape)} '
                    f'{{quench.name = "a_{name}"}}')
        if kind == "linear":
            body.append(f"%b_{name} = quench.constant dense<{hexdata(b)}> : "
                        f"{ttype(bshape)}")
            ref = a.astype(np.float64) @ b.astype(np.float64).T
            absref = np.abs(a.astype(np.float64)) @ np.abs(
                b.astype(np.float64)).T
            oshape = ashape[:-1] + (bshape[0],)
            body.append(f"%y_{name} = quench.linear %a_{name}, %b_{name} : "
                        f"({ttype(ashape)}, {ttype(bshape)}) -> "
                        f"{ttype(oshape)}")
        else:
            inputs[f"b_{name}"] = b
            args.append(f'%b_{name}: {ttype(bshape)} '
                        f'{{quench.name = "b_{name}"}}')
            ref = a.astype(np.float64) @ b.astype(np.float64)
            absref = np.abs(a.astype(np.float64)) @ np.abs(
                b.astype(np.float64))
            oshape = ashape[:-1] + (bshape[-1],)
            body.append(f"%y_{name} = quench.matmul %a_{name}, %b_{name} : "
                        f"({ttype(ashape)}, {ttype(bshape)}) -> "
                        f"{ttype(oshape)}")
        results.append((f"%y_{name}", ttype(oshape), name, ref, absref))
    return write_model(work, "gemm.mlir", args, body, results, inputs)


def write_model(work, filename, args, body, results, inputs):
    """Writes @main(ARGS) with BODY returning RESULTS' values (tuples
    (value, type, name, ...): outputs named y_NAME) to WORK/FILENAME and
    each input as WORK/KEY.npy; returns (model path, --input flags,
    results)."""
    text = ("func.func @main(" + ", ".join(args) + ")\n    -> (" +
            ", ".join(f'{r[1]} {{quench.name = "y_{r[2]}"}}'
                      for r in results) +
            ") {\n  " + "\n  ".join(body) + "\n  return " +
            ", ".join(r[0] for r in results) + " : " +
            ", ".join(r[1] for r in results) + "\n}\n")
    model = os.path.join(work, filename)
    with open(model, "w") as f:
        f.write(text)
    flags = []
    for k, v in inputs.items():
        path = os.path.join(work, f"{k}.npy")
        np.save(path, v)
        flags += ["--input", f"{k}={path}"]
    return model, flags, results


def run(cmd):
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(f"command failed: {' '.join(cmd)}\n{res.stdout}"
                         f"{res.stderr}\n")
        sys.exit(1)
    return res


def numerics(build, work, model, inputs, results, label, flags, failures):
    exe = os.path.join(work, "gemm_" + label)
    out = os.path.join(work, "out_" + label)
    os.makedirs(out, exist_ok=True)
    run([os.path.join(build, "bin", "quench-compile"), model, "-o", exe] +
        flags)
    run([exe, "--output-dir", out] + inputs)
    for _, _, name, ref, absref in results:
        got = np.load(os.path.join(out, f"y_{name}.npy")).astype(np.float64)
        bound = 2.0**-10 * np.abs(ref) + 1e-4 * absref
        ok = got.shape == ref.shape and bool(np.all(np.abs(got - ref) <=
                                                    bound))
        err = (float(np.max(np.abs(got - ref) / (np.abs(ref) + absref)))
               if got.shape == ref.shape else float("nan"))
        print(f"{'ok  ' if ok else 'FAIL'} {name} ({label}): shape "
              f"{got.shape}, max |y - ref| / (|ref| + sum|a||b|) = {err:.2e}")
        if not ok:
            failures.append(f"{name} ({label})")


def kernels(build, work, model, failures):
    want = sum(1 for c in CASES if c[5])
    out = os.path.join(work, "gemm.ptx")
    run([os.path.join(build, "bin", "quench-compile"), model, "-o", out,
         "--emit=ptx", "--target=cuda"])
    with open(out) as f:
        ptx = f.read()
    entries = ptx.split(".entry ")[1:]
    mma = [k for k in entries
           if "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32" in k and
           "ldmatrix.sync.aligned.m8n8.x4.shared.b16" in k and
           "cp.async.cg.shared.global" in k and "cp.async.wait_group" in k]
    trans = [k for k in mma if "ldmatrix.sync.aligned.m8n8.x4.trans" in k]
    ok = len(mma) == want and len(trans) == want - 1
    print(f"{'ok  ' if ok else 'FAIL'} tensor-core kernels: {len(mma)} of "
          f"{len(entries)} kernels ({len(trans)} with ldmatrix .trans), "
          f"want {want} ({want - 1})")
    if not ok:
        failures.append("tensor-core kernel count")
    if not toolkit():
        print("skip ptxas: no CUDA Toolkit")
        return
    for arch in ("sm_80", "sm_90"):
        odir = os.path.join(work, "obj_" + arch)
        os.makedirs(odir, exist_ok=True)
        run([os.path.join(build, "bin", "quench-compile"), model, "-o",
             os.path.join(odir, "gemm"), "--emit=obj", "--target=cuda",
             "--cuda-arch=" + arch])
        print(f"ok   ptxas assembles the module for {arch}")


def toolkit():
    return next((d for d in (os.environ.get("CUDA_HOME"), "/usr/local/cuda")
                 if d and os.access(os.path.join(d, "bin", "ptxas"),
                                    os.X_OK)), None)


def w8a8(build, work, failures, device):
    w = RNG.standard_normal((72, 208)).astype(np.float32)
    x = RNG.standard_normal((2, 37, 208)).astype(np.float32)
    model = os.path.join(work, "w8a8.mlir")
    with open(model, "w") as f:
        f.write('func.func @main(%x: tensor<2x?x208xf32> {quench.name = "x"})'
                ' -> (tensor<2x?x72xf32> {quench.name = "y"}) {\n'
                f'  %w = quench.constant dense<{hexdata(w)}> : '
                'tensor<72x208xf32>\n'
                '  %y = quench.linear %x, %w : (tensor<2x?x208xf32>, '
                'tensor<72x208xf32>) -> tensor<2x?x72xf32>\n'
                '  return %y : tensor<2x?x72xf32>\n}\n')
    xpath = os.path.join(work, "w8a8_x.npy")
    np.save(xpath, x)
    qc = os.path.join(build, "bin", "quench-compile")
    quant = ["--quant=w8a8-dynamic"]
    outs = {}
    labels = [("host", []), ("cuda-emulate", ["--target=cuda",
                                              "--cuda-emulate"])]
    if device:
        labels.append(("cuda", ["--target=cuda"]))
    for label, flags in labels:
        exe = os.path.join(work, "w8a8_" + label)
        out = os.path.join(work, "w8a8_out_" + label)
        os.makedirs(out, exist_ok=True)
        run([qc, model, "-o", exe] + quant + flags)
        run([exe, "--input", f"x={xpath}", "--output-dir", out])
        outs[label] = np.load(os.path.join(out, "y.npy")).astype(np.float64)
    ref = outs["host"]
    for label in outs:
        if label == "host":
            continue
        got = outs[label]
        err = (float(np.max(np.abs(got - ref))) / float(np.max(np.abs(ref)))
               if got.shape == ref.shape else float("nan"))
        ok = got.shape == ref.shape and err <= 1e-6
        print(f"{'ok  ' if ok else 'FAIL'} W8A8 linear ({label}) vs the CPU "
              f"backend: shape {got.shape}, max |y - ref| / max |ref| = "
              f"{err:.2e}")
        if not ok:
            failures.append(f"W8A8 ({label})")
    ptx = os.path.join(work, "w8a8.ptx")
    run([qc, model, "-o", ptx, "--emit=ptx", "--target=cuda"] + quant)
    with open(ptx) as f:
        entries = f.read().split(".entry ")[1:]
    mma = [k for k in entries
           if "mma.sync.aligned.m16n8k32.row.col.satfinite.s32.s8.s8.s32" in k
           and "ldmatrix.sync.aligned.m8n8.x4.shared.b16" in k and
           "cp.async.cg.shared.global" in k]
    ok = len(mma) == 1
    print(f"{'ok  ' if ok else 'FAIL'} int8 tensor-core kernels: {len(mma)} "
          f"of {len(entries)} kernels, want 1")
    if not ok:
        failures.append("int8 tensor-core kernel count")
    if toolkit():
        for arch in ("sm_80", "sm_90"):
            run([qc, model, "-o", os.path.join(work, "w8a8_" + arch),
                 "--emit=obj", "--target=cuda", "--cuda-arch=" + arch] +
                quant)
            print(f"ok   ptxas assembles the W8A8 module for {arch}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--keep", help="keep the work files in this directory")
    ap.add_argument("--device", action="store_true",
                    help="also run the kernels on the GPU")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    work = a.keep or tempfile.mkdtemp(prefix="quench-mma-gemm-")
    os.makedirs(work, exist_ok=True)
    failures = []
    model, inputs, results = build_model(work)
    numerics(build, work, model, inputs, results, "cuda-emulate",
             ["--target=cuda", "--cuda-emulate"], failures)
    numerics(build, work, model, inputs, results, "host", [], failures)
    kernels(build, work, model, failures)
    if a.device:
        numerics(build, work, model, inputs, results, "cuda",
                 ["--target=cuda"], failures)
    w8a8(build, work, failures, a.device)
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print(f"mma-gemm: {len(failures)} failed: {', '.join(failures)}")
        return 1
    print("mma-gemm: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
