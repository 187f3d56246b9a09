#!/usr/bin/env python3
"""End-to-end check of the CUDA backend's 2:4 sparse tensor-core kernels
(quench-gpu-mma-sp-gemm, lib/Codegen/GPU/MmaSpGemm.cpp, docs/gpu.md
"Sparse tensor-core GEMM") without a GPU.

One module holds quench.sparse_linear layers (2:4, compressed values and
2-bit indices as quench-pack-sparse-weights writes them) with f16 operands
(f32 sums) and with i8 operands (i32 sums, the W8A8 contraction): a dynamic
row count with partial row tiles, batch dims folded into the rows, a
decode-sized row count, K over several mma.sp K steps, N not a multiple of
the block's 64 features.

1. Numerics: compiled with --target=cuda --cuda-emulate (the kernel's grid,
   warp tiles, lane addresses, metadata words and mma.sp by its PTX
   definition run on the CPU) and for the host (the specification loops),
   every output is compared with NumPy's product by the DENSE pruned
   weight (zeros where pruned): f16 within 1e-5 (|ref| + sum |x||w|)
   (f32 sums of exact f16 products), int8 exactly.
   A dense f16 quench.linear whose constant weight is 2:4 takes the same
   kernel (compressed at compile time), its f16 result within 2^-10.
2. Kernels: the PTX holds one kernel with mma.sp m16n8k32 (f16) or m16n8k64
   (int8) per layer and no dense mma.sync, and ptxas assembles the module for sm_80 and sm_90
   (--emit=obj) where the CUDA Toolkit is installed.

3. W8A8: an f32 linear compiled with --sparsity=2:4 --quant=w8a8-dynamic
   (its int8 weight is 2:4) runs on mma.sp m16n8k64 and equals the CPU
   backend's W8A8 kernels on the same pruned model.

With --device, the executable is also compiled without --cuda-emulate and
run on the GPU (needs a CUDA driver and GPU), the same comparisons.

Usage: mma_sp_gemm.py --build BUILD_DIR [--keep DIR] [--device]
Run through CTest: `ctest -L e2e -R mma-sp-gemm`.
"""

import argparse
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The dense tensor-core test's model writer and helpers.
from mma_gemm import hexdata, run, toolkit, ttype, write_model  # noqa: E402

RNG = np.random.default_rng(2424)

# name, x shape (None: dynamic), runtime rows of the dynamic dim, N, dtype.
CASES = [
    # 70 dynamic rows (3 row tiles, the last partial), K = 96 (3 K steps),
    # N = 48 (3 of the block's 4 warps).
    ("f16_dyn", (None, 96), 70, 48, "f16"),
    # [2, 5, 64] x 80: batch dims folded into 10 rows, 2 column blocks.
    ("f16_batch", (2, 5, 64), None, 80, "f16"),
    # Decode: one row.
    ("f16_decode", (1, 128), None, 32, "f16"),
    # int8: 37 rows, K = 192 (3 m16n8k64 steps), N = 32.
    ("i8", (37, 192), None, 32, "i8"),
    # A dense f16 quench.linear whose constant weight is 2:4 (pruned
    # elsewhere): the pass compresses it at compile time; f16 result.
    ("f16_dense_weight", (None, 64), 40, 48, "dense16"),
    # The same with the weight stored [K, N] (quench.matmul by a constant:
    # an ONNX MatMul's initializer), read transposed at compile time.
    ("f16_dense_kn", (3, 11, 96), None, 32, "dense16kn"),
]


def prune_pack(w):
    """2:4 magnitude pruning of w [N, K] along K: the pruned dense weight,
    the kept values [N, K / 2] and the packed 2-bit indices [N, K / 8]
    (slot s at bits [2s, 2s + 2) of the row's byte stream, first index of a
    group in the low bits)."""
    n, k = w.shape
    groups = np.abs(w.astype(np.float64)).reshape(n, k // 4, 4)
    # Two largest |w| per group, ties the lower index; kept in column order.
    order = np.argsort(-groups, axis=2, kind="stable")[:, :, :2]
    idx = np.sort(order, axis=2)
    vals = np.take_along_axis(w.reshape(n, k // 4, 4), idx, axis=2)
    dense = np.zeros_like(w).reshape(n, k // 4, 4)
    np.put_along_axis(dense, idx, vals, axis=2)
    slots = idx.reshape(n, k // 2).astype(np.uint8)
    packed = np.zeros((n, k // 8), np.uint8)
    for s in range(4):
        packed |= (slots[:, s::4] << (2 * s)).astype(np.uint8)
    return dense.reshape(n, k), vals.reshape(n, k // 2), packed


def build_model(work):
    args, body, results, inputs = [], [], [], {}
    for name, xshape, rows, n, dt in CASES:
        shape = tuple(rows if d is None else d for d in xshape)
        k = xshape[-1]
        if dt in ("f16", "dense16", "dense16kn"):
            x = RNG.standard_normal(shape).astype(np.float16)
            w = RNG.standard_normal((n, k)).astype(np.float16)
            out_dt = "f32"
        else:
            x = RNG.integers(-128, 128, shape).astype(np.int8)
            w = RNG.integers(-127, 128, (n, k)).astype(np.int8)
            out_dt = "i32"
        dense, vals, packed = prune_pack(w)
        inputs[f"x_{name}"] = x
        if dt in ("dense16", "dense16kn"):
            kn = dt == "dense16kn"
            xt = ttype(xshape, "f16")
            wt = ttype((k, n) if kn else (n, k), "f16")
            args.append(f'%x_{name}: {xt} {{quench.name = "x_{name}"}}')
            stored = np.ascontiguousarray(dense.T) if kn else dense
            body.append(f"%w_{name} = quench.constant dense<{hexdata(stored)}>"
                        f" : {wt}")
            ot = ttype(xshape[:-1] + (n,), "f16")
            body.append(f"%y_{name} = quench.{'matmul' if kn else 'linear'} "
                        f"%x_{name}, %w_{name} : ({xt}, {wt}) -> {ot}")
            ref = x.astype(np.float64) @ dense.astype(np.float64).T
            absref = np.abs(x.astype(np.float64)) @ np.abs(
                dense.astype(np.float64)).T
            results.append((f"%y_{name}", ot, name, ref, absref))
            continue
        args.append(f'%x_{name}: {ttype(xshape, dt)} '
                    f'{{quench.name = "x_{name}"}}')
        vt, it = ttype((n, k // 2), dt), ttype((n, k // 8), "i8")
        body.append(f"%v_{name} = quench.constant dense<{hexdata(vals)}> : "
                    f"{vt}")
        body.append(f"%i_{name} = quench.constant "
                    f"dense<{hexdata(packed.view(np.int8))}> : {it}")
        oshape = xshape[:-1] + (n,)
        ot = ttype(oshape, out_dt)
        body.append(f"%y_{name} = quench.sparse_linear %x_{name}, %v_{name}, "
                    f"%i_{name} {{group = 4, keep = 2}} : "
                    f"({ttype(xshape, dt)}, {vt}, {it}) -> {ot}")
        if dt == "f16":
            ref = x.astype(np.float64) @ dense.astype(np.float64).T
            absref = np.abs(x.astype(np.float64)) @ np.abs(
                dense.astype(np.float64)).T
        else:
            ref = x.astype(np.int64) @ dense.astype(np.int64).T
            absref = None
        results.append((f"%y_{name}", ot, name, ref, absref))
    return write_model(work, "sparse.mlir", args, body, results, inputs)


def numerics(build, work, model, inputs, results, label, flags, failures):
    exe = os.path.join(work, "sparse_" + label)
    out = os.path.join(work, "out_" + label)
    os.makedirs(out, exist_ok=True)
    run([os.path.join(build, "bin", "quench-compile"), model, "-o", exe] +
        flags)
    run([exe, "--output-dir", out] + inputs)
    for _, _, name, ref, absref in results:
        got = np.load(os.path.join(out, f"y_{name}.npy"))
        if got.shape != ref.shape:
            ok, msg = False, f"shape {got.shape}, want {ref.shape}"
        elif absref is None:
            diff = int(np.max(np.abs(got.astype(np.int64) - ref)))
            ok = got.dtype == np.int32 and diff == 0
            msg = f"max |y - ref| = {diff} (exact)"
        else:
            err = np.abs(got.astype(np.float64) - ref) / (np.abs(ref) +
                                                          absref)
            # f16 results are rounded to f16 (2^-11 relative).
            tol = 2.0**-10 if got.dtype == np.float16 else 1e-5
            ok = bool(np.all(err <= tol))
            msg = f"max |y - ref| / (|ref| + sum|x||w|) = {err.max():.2e}"
        print(f"{'ok  ' if ok else 'FAIL'} {name} ({label}) vs the dense "
              f"pruned weight: {msg}")
        if not ok:
            failures.append(f"{name} ({label})")


def kernels(build, work, model, failures):
    out = os.path.join(work, "sparse.ptx")
    qc = os.path.join(build, "bin", "quench-compile")
    run([qc, model, "-o", out, "--emit=ptx", "--target=cuda"])
    with open(out) as f:
        entries = f.read().split(".entry ")[1:]
    f16 = [k for k in entries
           if "mma.sp.sync.aligned.m16n8k32.row.col.f32.f16.f16.f32" in k]
    dense = [k for k in entries if "mma.sync" in k]
    i8 = [k for k in entries
          if "mma.sp.sync.aligned.m16n8k64.row.col.satfinite.s32.s8.s8.s32"
          in k]
    want16 = sum(1 for c in CASES if c[4] in ("f16", "dense16", "dense16kn"))
    ok = len(f16) == want16 and len(i8) == 1 and not dense
    print(f"{'ok  ' if ok else 'FAIL'} sparse tensor-core kernels: "
          f"{len(f16)} m16n8k32 f16 (want {want16}), {len(i8)} m16n8k64 s8 "
          f"(want 1), {len(dense)} dense mma.sync (want 0) of "
          f"{len(entries)} kernels")
    if not ok:
        failures.append("mma.sp kernel count")
    if not toolkit():
        print("skip ptxas: no CUDA Toolkit")
        return
    for arch in ("sm_80", "sm_90"):
        odir = os.path.join(work, "obj_" + arch)
        os.makedirs(odir, exist_ok=True)
        run([qc, model, "-o", os.path.join(odir, "sparse"), "--emit=obj",
             "--target=cuda", "--cuda-arch=" + arch])
        print(f"ok   ptxas assembles the module for {arch}")


def w8a8(build, work, failures, device):
    """--sparsity=2:4 --quant=w8a8-dynamic: the pruned int8 weight of the
    W8A8 contraction is 2:4, so the CUDA target runs it on mma.sp
    m16n8k64 (compressed at compile time); the emulation must equal the
    CPU backend's W8A8 kernels on the same pruned model (exact i32 sums,
    the same scale epilogue)."""
    w = RNG.standard_normal((48, 256)).astype(np.float32)
    x = RNG.standard_normal((2, 29, 256)).astype(np.float32)
    model = os.path.join(work, "w8a8.mlir")
    with open(model, "w") as f:
        f.write('func.func @main(%x: tensor<2x?x256xf32> {quench.name = "x"})'
                ' -> (tensor<2x?x48xf32> {quench.name = "y"}) {\n'
                f'  %w = quench.constant dense<{hexdata(w)}> : '
                'tensor<48x256xf32>\n'
                '  %y = quench.linear %x, %w : (tensor<2x?x256xf32>, '
                'tensor<48x256xf32>) -> tensor<2x?x48xf32>\n'
                '  return %y : tensor<2x?x48xf32>\n}\n')
    xpath = os.path.join(work, "w8a8_x.npy")
    np.save(xpath, x)
    qc = os.path.join(build, "bin", "quench-compile")
    flags = ["--sparsity=2:4", "--sparsity-head", "--quant=w8a8-dynamic"]
    labels = [("host", []), ("cuda-emulate", ["--target=cuda",
                                              "--cuda-emulate"])]
    if device:
        labels.append(("cuda", ["--target=cuda"]))
    outs = {}
    for label, extra in labels:
        exe = os.path.join(work, "w8a8_" + label)
        out = os.path.join(work, "w8a8_out_" + label)
        os.makedirs(out, exist_ok=True)
        run([qc, model, "-o", exe] + flags + extra)
        run([exe, "--input", f"x={xpath}", "--output-dir", out])
        outs[label] = np.load(os.path.join(out, "y.npy")).astype(np.float64)
    ref = outs.pop("host")
    for label, got in outs.items():
        err = (float(np.max(np.abs(got - ref))) / float(np.max(np.abs(ref)))
               if got.shape == ref.shape else float("nan"))
        ok = got.shape == ref.shape and err <= 1e-6
        print(f"{'ok  ' if ok else 'FAIL'} 2:4 W8A8 linear ({label}) vs the "
              f"CPU backend: max |y - ref| / max |ref| = {err:.2e}")
        if not ok:
            failures.append(f"2:4 W8A8 ({label})")
    ptx = os.path.join(work, "w8a8.ptx")
    run([qc, model, "-o", ptx, "--emit=ptx", "--target=cuda"] + flags)
    with open(ptx) as f:
        entries = f.read().split(".entry ")[1:]
    sp = [k for k in entries if "mma.sp.sync.aligned.m16n8k64" in k]
    dense = [k for k in entries if "mma.sync" in k]
    ok = len(sp) == 1 and not dense
    print(f"{'ok  ' if ok else 'FAIL'} 2:4 W8A8: {len(sp)} mma.sp m16n8k64 "
          f"kernel (want 1), {len(dense)} dense mma.sync (want 0)")
    if not ok:
        failures.append("2:4 W8A8 kernel count")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--keep", help="keep the work files in this directory")
    ap.add_argument("--device", action="store_true",
                    help="also run the kernels on the GPU")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    work = a.keep or tempfile.mkdtemp(prefix="quench-mma-sp-gemm-")
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
        print(f"mma-sp-gemm: {len(failures)} failed: {', '.join(failures)}")
        return 1
    print("mma-sp-gemm: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
