#!/usr/bin/python3
"""End-to-end numerics of the quantization ops' lowering (convert-quench-to-linalg).

The ONNX node tests have one tiny case per operator; this test compiles
quench functions with `quench-compile --emit=exe` (the real CPU pipeline:
tiling, vectorization, native code) and checks, bit-exactly against NumPy
models of the semantics in docs/lowering.md:

  * quantize_linear: ties of x / scale (half to even), saturation of
    out-of-range values and ±inf, NaN -> the lower end of the range, per
    tensor and per axis, with and without zero point, ui8/i8/ui16/i16/i32
    results, f16 input, a per-axis scale of dynamic length (one element at
    run time: per tensor);
  * dequantize_linear: per axis, ui8 and i32 inputs (x - zp in i64);
  * dynamic_quantize_linear: random data, all-negative, all-positive,
    all-zero input (scale 1/255, the ONNX reference implementation's choice),
    NaN elements (skipped by min/max);
  * matmul_integer: full-range ui8 x i8 with K = 300 (sums far beyond i16),
    per-row / per-column zero points, batch broadcasting, 1-D operands,
    dynamic shapes with a 1-element zero point at run time, a 100x64x300
    product (several parallel tasks, full vector tiles);
  * qlinear_matmul: per-tensor and per-column rhs scales and zero points,
    the multiplier a_scale * b_scale / y_scale and the product in f32.

Usage: quantization.py --build BUILD_DIR [--keep DIR]
Run through CTest: `ctest -L e2e -R quantization`.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

F32 = np.float32


def iinfo(dt):
    return np.iinfo(dt).min, np.iinfo(dt).max


def axis_shape(p, x, axis):
    """How a scale or zero point broadcasts against x: one element (0-D or
    1-D) per tensor, a longer vector along `axis`."""
    if p.size == 1:
        return ()
    shape = [1] * x.ndim
    shape[axis] = -1
    return shape


def ref_quantize(x, scale, zp, axis, dt):
    """rint(x / scale) in the input's precision (f32 for f16) + zp,
    saturated; NaN -> the lower bound."""
    shape = axis_shape(scale, x, axis)
    q = np.rint(x.astype(F32) / scale.astype(F32).reshape(shape))
    v = q.astype(np.float64)
    if zp is not None:
        v = v + zp.astype(np.float64).reshape(shape)
    lo, hi = iinfo(dt)
    v = np.where(np.isnan(v), lo, v)
    return np.clip(v, lo, hi).astype(dt)


def ref_dequantize(x, scale, zp, axis):
    shape = axis_shape(scale, x, axis)
    d = x.astype(np.int64) - zp.astype(np.int64).reshape(shape)
    return d.astype(F32) * scale.reshape(shape)


def ref_dynamic_quantize(x):
    """The ONNX reference implementation (onnx/reference/ops/
    op_dynamic_quantize_linear.py), with NaN elements left out of min/max."""
    mx = F32(max(0, np.nanmax(x)))
    mn = F32(min(0, np.nanmin(x)))
    scale = F32(F32(1.0) if mx == mn else mx - mn) / F32(255)
    zp = np.rint(F32(max(0, min(255, F32(0) - mn / scale))))
    with np.errstate(invalid="ignore"):
        y = np.rint(x / scale) + zp
    y = np.clip(np.where(np.isnan(y), 0, y), 0, 255).astype(np.uint8)
    return y, np.array(scale, F32), np.array(zp, np.uint8)


def ref_matmul_integer(a, b, az, bz):
    """Exact Σ (a - az)(b - bz); az per tensor or per row ([M]), bz per
    tensor or per column ([N])."""
    ai = a.astype(np.int64)
    bi = b.astype(np.int64)
    if az is not None:
        azi = az.astype(np.int64)
        ai = ai - (azi.reshape(-1, 1) if azi.size > 1 else azi.reshape(()))
    if bz is not None:
        bzi = bz.astype(np.int64)
        bi = bi - (bzi.reshape(-1) if bzi.size > 1 else bzi.reshape(()))
    r = np.matmul(ai, bi)
    assert np.all(np.abs(r) < 2**31)
    return r.astype(np.int32)


def ref_qlinear(a, a_s, az, b, b_s, bz, y_s, yz, dt):
    acc = ref_matmul_integer(a, b, az, bz)
    m = (a_s.astype(F32).reshape(-1) * b_s.astype(F32).reshape(-1)) / \
        y_s.astype(F32).reshape(-1)
    m = m.astype(F32)
    v = (acc.astype(F32) * m).astype(F32)
    v = np.rint(v).astype(np.float64) + yz.astype(np.float64).reshape(())
    lo, hi = iinfo(dt)
    return np.clip(v, lo, hi).astype(dt)


MLIR_ELEM = {np.dtype(np.float32): "f32", np.dtype(np.float16): "f16",
             np.dtype(np.uint8): "ui8", np.dtype(np.int8): "i8",
             np.dtype(np.uint16): "ui16", np.dtype(np.int16): "i16",
             np.dtype(np.int32): "i32"}


def ttype(shape, dt):
    dims = "".join(f"{d}x" for d in shape)
    return f"tensor<{dims}{MLIR_ELEM[np.dtype(dt)]}>"


def build_cases(rng):
    """(name, op template, [(input array, declared shape or None)],
    [(result shape, dtype)], reference outputs)."""
    cases = []

    def add(name, op, inputs, results, want):
        cases.append((name, op, inputs, results, want))

    # quantize_linear, per tensor: ties, saturation, inf, NaN.
    s = np.array(0.5, F32)
    x = np.concatenate([
        (np.arange(-20, 20) * F32(0.5) + F32(0.25)).astype(F32),  # ties
        np.array([1e9, -1e9, np.inf, -np.inf, np.nan, 63.74, -64.26, 0.0,
                  -0.0, 127.75], F32),
        rng.standard_normal(200).astype(F32) * F32(80)])
    for dt, zp in [(np.uint8, np.array(128, np.uint8)),
                   (np.int8, np.array(-3, np.int8)),
                   (np.int8, None),
                   (np.uint16, np.array(30000, np.uint16)),
                   (np.int16, np.array(-7, np.int16)),
                   (np.int32, np.array(-2**31 + 5, np.int32))]:
        xs = x * F32(1e4 if dt == np.int16 or dt == np.uint16 else 1)
        if dt == np.int32:
            xs = x * F32(1e8)
        ins = [(xs, None), (s, None)] + ([(zp, None)] if zp is not None else [])
        name = f"q_{np.dtype(dt).name}_{'zp' if zp is not None else 'nozp'}"
        add(name, "quench.quantize_linear {args} {{axis = 0 : i64}}",
            ins, [(xs.shape, dt)], [ref_quantize(xs, s, zp, 0, dt)])

    # quantize_linear per axis (axis 1 of 3-D), f16 input, dynamic scale.
    x3 = (rng.standard_normal((2, 3, 40)) * 40).astype(F32)
    sc = np.array([0.25, 0.5, 1.5], F32)
    zp3 = np.array([10, 128, 250], np.uint8)
    add("q_axis", "quench.quantize_linear {args} {{axis = 1 : i64}}",
        [(x3, None), (sc, None), (zp3, None)], [(x3.shape, np.uint8)],
        [ref_quantize(x3, sc, zp3, 1, np.uint8)])
    zpi = np.array([-5, 0, 7], np.int8)
    add("q_axis_dyn", "quench.quantize_linear {args} {{axis = 1 : i64}}",
        [(x3, (2, None, None)), (sc, (None,)), (zpi, (None,))],
        [((2, None, None), np.int8)], [ref_quantize(x3, sc, zpi, 1, np.int8)])
    s1 = np.array([0.75], F32)
    z1 = np.array([3], np.int8)
    add("q_axis_dyn_single", "quench.quantize_linear {args} {{axis = 1 : i64}}",
        [(x3, (2, None, None)), (s1, (None,)), (z1, (None,))],
        [((2, None, None), np.int8)],
        [ref_quantize(x3, s1.reshape(()), z1.reshape(()), 1, np.int8)])
    xh = (rng.standard_normal(64) * 30).astype(np.float16)
    sh = np.array(0.3, np.float16)
    add("q_f16", "quench.quantize_linear {args} {{axis = 0 : i64}}",
        [(xh, None), (sh, None)], [(xh.shape, np.uint8)],
        [ref_quantize(xh, sh, None, 0, np.uint8)])

    # dequantize_linear.
    xq = rng.integers(0, 256, (4, 3, 5)).astype(np.uint8)
    add("dq_axis", "quench.dequantize_linear {args} {{axis = 1 : i64}}",
        [(xq, None), (sc, None), (zp3, None)], [(xq.shape, F32)],
        [ref_dequantize(xq, sc, zp3, 1)])
    x32 = np.array([2**31 - 1, -2**31, 0, 12345678], np.int32)
    z32 = np.array([-2**31, 2**31 - 1, 5, -12345678], np.int32)
    s32 = np.array([1.0, 0.5, 3.0, 0.125], F32)
    add("dq_i32", "quench.dequantize_linear {args} {{axis = 0 : i64}}",
        [(x32, None), (s32, None), (z32, None)], [(x32.shape, F32)],
        [ref_dequantize(x32, s32, z32, 0)])

    # dynamic_quantize_linear.
    dql = "quench.dynamic_quantize_linear {args}"
    for name, xd in [
            ("dql_random", (rng.standard_normal((7, 33)) * 3).astype(F32)),
            ("dql_negative", -np.abs(rng.standard_normal((5, 9))).astype(F32)),
            ("dql_positive", np.abs(rng.standard_normal((5, 9))).astype(F32)),
            ("dql_zero", np.zeros((3, 4), F32)),
            ("dql_nan", np.array([[1.0, np.nan, -2.0, 0.5]], F32))]:
        add(name, dql, [(xd, (None, None))],
            [((None, None), np.uint8), ((), F32), ((), np.uint8)],
            list(ref_dynamic_quantize(xd)))

    # matmul_integer: K = 300, full ranges.
    K = 300
    a = rng.integers(0, 256, (2, 1, 17, K)).astype(np.uint8)
    b = rng.integers(-128, 128, (3, K, 19)).astype(np.int8)
    az = rng.integers(0, 256, (17,)).astype(np.uint8)
    bz = rng.integers(-128, 128, (19,)).astype(np.int8)
    mmi = "quench.matmul_integer {lhs}, {rhs} {zps}"
    add("mmi_batch_rowcol", mmi.format(lhs="{0}", rhs="{1}",
                                       zps="zp({2}) rhs_zp({3})"),
        [(a, None), (b, None), (az, None), (bz, None)],
        [((2, 3, 17, 19), np.int32)], [ref_matmul_integer(a, b, az, bz)])
    a2 = rng.integers(-128, 128, (23, K)).astype(np.int8)
    b2 = rng.integers(0, 256, (K, 29)).astype(np.uint8)
    az2 = np.array(-100, np.int8)
    bz2 = np.array(200, np.uint8)
    add("mmi_2d_tensor", mmi.format(lhs="{0}", rhs="{1}",
                                    zps="zp({2}) rhs_zp({3})"),
        [(a2, None), (b2, None), (az2, None), (bz2, None)],
        [((23, 29), np.int32)], [ref_matmul_integer(a2, b2, az2, bz2)])
    add("mmi_lhs_zp_only", mmi.format(lhs="{0}", rhs="{1}", zps="zp({2})"),
        [(a2, None), (b2, None), (az2, None)],
        [((23, 29), np.int32)], [ref_matmul_integer(a2, b2, az2, None)])
    add("mmi_rhs_zp_only", mmi.format(lhs="{0}", rhs="{1}", zps="rhs_zp({2})"),
        [(a2, None), (b2, None), (bz2, None)],
        [((23, 29), np.int32)], [ref_matmul_integer(a2, b2, None, bz2)])
    add("mmi_no_zp", mmi.format(lhs="{0}", rhs="{1}", zps=""),
        [(a2, None), (b2, None)],
        [((23, 29), np.int32)], [ref_matmul_integer(a2, b2, None, None)])
    # Large enough for several parallel tasks and full vector tiles.
    a3 = rng.integers(0, 256, (100, 64)).astype(np.uint8)
    b3 = rng.integers(-128, 128, (64, 300)).astype(np.int8)
    az3 = rng.integers(0, 256, (100,)).astype(np.uint8)
    bz3 = np.array(-1, np.int8)
    add("mmi_large", mmi.format(lhs="{0}", rhs="{1}",
                                zps="zp({2}) rhs_zp({3})"),
        [(a3, None), (b3, None), (az3, None), (bz3, None)],
        [((100, 300), np.int32)], [ref_matmul_integer(a3, b3, az3, bz3)])
    v = rng.integers(0, 256, (K,)).astype(np.uint8)
    vz = np.array([77], np.uint8)
    add("mmi_vec_mat", mmi.format(lhs="{0}", rhs="{1}",
                                  zps="zp({2}) rhs_zp({3})"),
        [(v, None), (b, None), (vz, None), (bz, None)],
        [((3, 19), np.int32)], [ref_matmul_integer(v, b, vz, bz)])
    add("mmi_mat_vec", mmi.format(lhs="{0}", rhs="{1}",
                                  zps="zp({2}) rhs_zp({3})"),
        [(a2, None), (v, None), (az2, None), (vz, None)],
        [((23,), np.int32)], [ref_matmul_integer(a2, v, az2, vz)])
    one = np.array([9], np.uint8)
    add("mmi_dyn_single_zp", mmi.format(lhs="{0}", rhs="{1}",
                                        zps="zp({2}) rhs_zp({3})"),
        [(a[0, 0], (None, None)), (b[1], (None, None)), (one, (None,)),
         (bz, (None,))],
        [((None, None), np.int32)],
        [ref_matmul_integer(a[0, 0], b[1], one, bz)])
    add("mmi_dyn_row_zp", mmi.format(lhs="{0}", rhs="{1}",
                                     zps="zp({2}) rhs_zp({3})"),
        [(a[1, 0], (None, None)), (b[2], (None, None)), (az, (None,)),
         (bz, (None,))],
        [((None, None), np.int32)],
        [ref_matmul_integer(a[1, 0], b[2], az, bz)])

    # qlinear_matmul.
    qa = rng.integers(0, 256, (3, 9, 40)).astype(np.uint8)
    qb = rng.integers(-128, 128, (40, 11)).astype(np.int8)
    a_s, a_z = np.array(0.02, F32), np.array(120, np.uint8)
    b_s = (rng.random(11) * 0.01 + 0.001).astype(F32)
    b_z = rng.integers(-10, 10, (11,)).astype(np.int8)
    y_s, y_z = np.array(0.05, F32), np.array(-3, np.int8)
    add("qlmm_percol", "quench.qlinear_matmul {args}",
        [(qa, None), (a_s, None), (a_z, None), (qb, None), (b_s, None),
         (b_z, None), (y_s, None), (y_z, None)],
        [((3, 9, 11), np.int8)],
        [ref_qlinear(qa, a_s, a_z, qb, b_s, b_z, y_s, y_z, np.int8)])
    ub = rng.integers(0, 256, (40, 11)).astype(np.uint8)
    ub_s, ub_z = np.array([0.007], F32), np.array([130], np.uint8)
    uy_s, uy_z = np.array([0.3], F32), np.array([128], np.uint8)
    add("qlmm_tensor_dyn", "quench.qlinear_matmul {args}",
        [(qa[0], (None, None)), (a_s.reshape(1), (None,)),
         (a_z.reshape(1), (None,)), (ub, (None, None)), (ub_s, (None,)),
         (ub_z, (None,)), (uy_s, (None,)), (uy_z, (None,))],
        [((None, None), np.uint8)],
        [ref_qlinear(qa[0], a_s, a_z, ub, ub_s, ub_z, uy_s, uy_z, np.uint8)])
    return cases


def declared(arr, shape):
    if shape is None:
        return ttype(arr.shape, arr.dtype)
    return ttype(["?" if d is None else d for d in shape], arr.dtype)


def model_text(case):
    name, op, inputs, results, _ = case
    args = [f"%a{i}: {declared(arr, sh)}" for i, (arr, sh) in enumerate(inputs)]
    arg_types = [declared(arr, sh) for arr, sh in inputs]
    res_types = [ttype(["?" if d is None else d for d in sh], dt)
                 for sh, dt in results]
    names = [f"%a{i}" for i in range(len(inputs))]
    if "{args}" in op:
        text = op.format(args=", ".join(names))
    else:
        text = op.format(*names)
    if name.startswith("dql"):
        sig = f"{arg_types[0]} -> {', '.join(res_types)}"
    else:
        sig = f"({', '.join(arg_types)}) -> {res_types[0]}"
    outs = ", ".join(f"%r#{i}" for i in range(len(results))) \
        if len(results) > 1 else "%r"
    lhs = f"%r:{len(results)}" if len(results) > 1 else "%r"
    return (f"func.func @main({', '.join(args)}) -> ({', '.join(res_types)}) {{\n"
            f"  {lhs} = {text} : {sig}\n"
            f"  return {outs} : {', '.join(res_types)}\n}}\n")


def run(cmd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    return proc.returncode, proc.stdout + proc.stderr


def check(case, compiler, work):
    name, _, inputs, results, want = case
    model = os.path.join(work, name + ".mlir")
    with open(model, "w") as f:
        f.write(model_text(case))
    exe = os.path.join(work, name)
    rc, out = run([compiler, model, "-o", exe, "--emit=exe", "-O1"])
    if rc != 0:
        return [f"{name}: quench-compile failed:\n{out}"]
    args = []
    for i, (arr, _) in enumerate(inputs):
        path = os.path.join(work, f"{name}_input_{i}.npy")
        np.save(path, arr)
        args += ["--input", f"input_{i}={path}"]
    out_dir = os.path.join(work, name + "_out")
    os.makedirs(out_dir, exist_ok=True)
    rc, out = run([exe] + args + ["--output-dir", out_dir])
    if rc != 0:
        return [f"{name}: the executable failed:\n{out}"]
    failures = []
    for i, w in enumerate(want):
        got = np.load(os.path.join(out_dir, f"output_{i}.npy"))
        w = np.asarray(w)
        if got.dtype != w.dtype or got.shape != w.shape:
            failures.append(f"{name} output_{i}: {got.dtype}{got.shape}, "
                            f"want {w.dtype}{w.shape}")
        elif not np.array_equal(got, w, equal_nan=got.dtype.kind == "f"):
            bad = np.argwhere(got != w)
            failures.append(f"{name} output_{i}: {len(bad)} elements differ, "
                            f"first at {tuple(bad[0])}: got "
                            f"{got[tuple(bad[0])]}, want {w[tuple(bad[0])]}")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", required=True, help="Quench build directory")
    parser.add_argument("--keep", help="work in this directory and keep it")
    parser.add_argument("--filter", help="only cases whose name contains this")
    args = parser.parse_args()
    compiler = os.path.join(args.build, "bin", "quench-compile")
    if not os.path.exists(compiler):
        sys.exit(f"FAIL: {compiler} not found (build the quench-compile target)")
    work = args.keep or tempfile.mkdtemp(prefix="quench-quantization-")
    os.makedirs(work, exist_ok=True)
    with np.errstate(invalid="ignore", over="ignore"):
        cases = build_cases(np.random.default_rng(2024))
    failures = []
    count = 0
    for case in cases:
        if args.filter and args.filter not in case[0]:
            continue
        count += 1
        f = check(case, compiler, work)
        print(("FAIL   " if f else "PASS   ") + case[0], flush=True)
        failures += f
    if not args.keep:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    for f in failures:
        print("FAIL: " + f)
    print(f"quantization: {count - len({f.split(':')[0].split()[0] for f in failures})}"
          f" of {count} cases pass")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
