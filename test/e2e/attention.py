#!/usr/bin/env python3
"""End-to-end numerics of quench.attention on the CPU (quench-cpu-attention).

Builds small quench functions with one `quench.attention` (f32 / f16 / i8 +
scales keys and values, grouped-query attention with 1, 2, 3, 4 and 8 query heads
per kv head, 10 split into task groups of 5, bias [1,1,S,T], [1,H,S,T],
[B,1,1,T], [1,1,1,1] or none, S = 1 and 37, T = 1, 15, 16, 17, 300, D = Dv
= 16, 64, 80, 128 and D != Dv, static and dynamic batch / S / T), compiles each
with `quench-compile --emit=exe` (the vectorized kernel; some cases at
--vector-bits 128 and 256 too, whose key steps are 4 and 8 lanes), runs it
and compares with a NumPy float64 reference computed on the dequantized
keys and values (f16: exact; i8: codes x scale):

  per output row, max |out - ref| <= tol * max |V| of its (batch, kv head),
  tol = 1e-5 + eps_f32 * max_t sum_d |q_d k_d scale| (the rounding of the
  row's f32 scores, which the softmax turns into relative errors),

with exact NaN positions (a row masked with -inf everywhere is NaN, as with
the unfused softmax). The data has rows of large scores (queries x 30), keys
masked with -3.4e38 (causal), and rows whose first keys are masked with
-inf (the online softmax must not compute -inf - -inf). With
--attention-kernel=false (quench-decompose-attention, the linalg
decomposition) every case is compiled a second time and must agree with
NumPy just as well; the outputs of --threads 1 and 2 must be identical;
and the kernel's LLVM IR must not call exp (libm or intrinsic): the exps
are polynomials on vectors.

Usage: attention.py --build BUILD_DIR [--keep DIR] [--only SUBSTRING]
Run through CTest: `ctest -L e2e -R attention`.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

EPS32 = np.finfo(np.float32).eps


class Case:
    def __init__(self, name, b=1, h=4, hk=4, s=1, t=16, d=16, dv=None,
                 kv="f32", bias=None, dyn="", bits=None, special=""):
        self.name, self.b, self.h, self.hk, self.s, self.t = name, b, h, hk, s, t
        self.d, self.dv = d, dv if dv is not None else d
        self.kv = kv          # f32, f16 or i8
        self.bias = bias      # None or "1HST"-style pattern: full dims in caps
        self.dyn = dyn        # dims given as '?': any of "bst"
        self.bits = bits      # --vector-bits (None: the host's)
        self.special = special  # "pad": -inf prefix masks; "allmasked": a row all -inf


CASES = [
    # Decode (S = 1), grouped-query, the tail of T, bias shapes.
    Case("decode_gqa3_t17", h=12, hk=4, t=17, d=64, bias="11ST", dyn="t"),
    Case("decode_gqa4_t300_f16", h=8, hk=2, t=300, d=64, kv="f16",
         bias="11ST", dyn="t"),
    Case("decode_gqa3_t300_i8", h=6, hk=2, t=300, d=64, kv="i8",
         bias="11ST", dyn="t"),
    Case("decode_mha_t1", h=4, hk=4, t=1, d=16),
    Case("decode_mha_t15_nobias", h=2, hk=2, t=15, d=80, dyn="bt"),
    Case("decode_gqa3_t16_fullbias", h=6, hk=2, t=16, d=16, bias="BHST"),
    Case("decode_gqa3_t16_bias1", h=6, hk=2, t=16, d=16, bias="1111"),
    # Prefill (S = 37: blocks of positions and a remainder), causal masks.
    Case("prefill_mha_s37_t37", h=3, hk=3, s=37, t=37, d=64, bias="11ST"),
    Case("prefill_gqa3_s37_t300_hbias", h=6, hk=2, s=37, t=300, d=64,
         bias="1HST", dyn="st"),
    Case("prefill_gqa2_s37_t300_i8", h=4, hk=2, s=37, t=300, d=80, kv="i8",
         bias="11ST", dyn="bst"),
    Case("prefill_gqa4_s37_f16", h=8, hk=2, s=37, t=37, d=16, kv="f16",
         bias="11ST", dyn="s"),
    # Batch 2 with a per-batch padding mask [B,1,1,T], D != Dv.
    Case("batch2_pad", b=2, h=6, hk=2, s=37, t=40, d=64, dv=16, bias="B11T",
         dyn="b", special="pad"),
    Case("batch2_pad_decode", b=2, h=6, hk=2, s=1, t=40, d=16, dv=80,
         bias="B11T", dyn="bst", special="pad"),
    # 10 heads per kv head: tasks of 5 heads.
    Case("mqa_rep10", h=10, hk=1, s=3, t=33, d=64, bias="11ST"),
    # LLaMA-7B-like head dim 128 with 8 query heads per kv head (the
    # largest unrolled block: 8 rows x 8 vectors at 512 bits).
    Case("gqa8_d128", h=16, hk=2, s=2, t=70, d=128, bias="11ST", dyn="t"),
    # A row masked everywhere: NaN like the unfused softmax.
    Case("all_masked_row", h=4, hk=2, s=5, t=20, d=16, bias="11ST",
         special="allmasked"),
    # Other vector widths: 4 and 8 keys per step.
    Case("bits128_gqa3_t17", h=6, hk=2, s=2, t=17, d=80, bias="111T",
         bits=128),
    Case("bits256_gqa3_t300_i8", h=6, hk=2, s=37, t=300, d=64, kv="i8",
         bias="11ST", dyn="st", bits=256),
    Case("bits256_mha_f16_dv", h=2, hk=2, s=37, t=17, d=16, dv=64, kv="f16",
         bits=256),
]


def shape_str(dims, dyn_mask):
    return "x".join("?" if dyn else str(d) for d, dyn in zip(dims, dyn_mask))


def tensor(dims, dyn_mask, et):
    return f"tensor<{shape_str(dims, dyn_mask)}x{et}>"


def bias_dims(case):
    full = (case.b, case.h, case.s, case.t)
    return tuple(f if c.isupper() else 1 for c, f in zip(case.bias, full))


def model_text(case):
    """The quench function of `case` (inputs: q, k, v[, ks, vs][, bias])."""
    db, ds, dt = "b" in case.dyn, "s" in case.dyn, "t" in case.dyn
    et = {"f32": "f32", "f16": "f16", "i8": "i8"}[case.kv]
    qt = tensor((case.b, case.h, case.s, case.d), (db, 0, ds, 0), "f32")
    kt = tensor((case.b, case.hk, case.t, case.d), (db, 0, dt, 0), et)
    vt = tensor((case.b, case.hk, case.t, case.dv), (db, 0, dt, 0), et)
    rt = tensor((case.b, case.h, case.s, case.dv), (db, 0, ds, 0), "f32")
    args = [f"%q: {qt}", f"%k: {kt}", f"%v: {vt}"]
    operands, types, extra = ["%q", "%k", "%v"], [qt, kt, vt], ""
    if case.kv == "i8":
        st = tensor((case.b, case.hk, case.t, 1), (db, 0, dt, 0), "f32")
        args += [f"%ks: {st}", f"%vs: {st}"]
        types += [st, st]
        extra += " key_scale(%ks) value_scale(%vs)"
    if case.bias:
        dims = bias_dims(case)
        mask = tuple(c.isupper() and d in case.dyn for c, d in
                     zip(case.bias, "bhst"))
        bt = tensor(dims, mask, "f32")
        args.append(f"%m: {bt}")
        types.append(bt)
        extra += " bias(%m)"
    scale = 1.0 / np.sqrt(case.d)
    return (f"func.func @main({', '.join(args)}) -> {rt} {{\n"
            f"  %r = quench.attention {', '.join(operands)}{extra} "
            f"{{scale = {scale!r} : f64}} : ({', '.join(types)}) -> {rt}\n"
            f"  return %r : {rt}\n}}\n")


def make_inputs(case, rng):
    """Inputs (list, in argument order) and the float64 reference pieces."""
    q = rng.standard_normal((case.b, case.h, case.s, case.d)).astype(np.float32)
    # Rows of large scores: some queries 30x larger.
    q[:, ::3, ::2, :] *= 30.0
    k = rng.standard_normal((case.b, case.hk, case.t, case.d))
    v = rng.standard_normal((case.b, case.hk, case.t, case.dv))
    inputs, kf, vf = [q], None, None
    if case.kv == "i8":
        kc = rng.integers(-127, 128, k.shape).astype(np.int8)
        vc = rng.integers(-127, 128, v.shape).astype(np.int8)
        ks = rng.uniform(0.005, 0.02, (case.b, case.hk, case.t, 1)).astype(np.float32)
        vs = rng.uniform(0.005, 0.02, (case.b, case.hk, case.t, 1)).astype(np.float32)
        inputs += [kc, vc, ks, vs]
        kf = kc.astype(np.float64) * ks.astype(np.float64)
        vf = vc.astype(np.float64) * vs.astype(np.float64)
    else:
        dt = np.float16 if case.kv == "f16" else np.float32
        k, v = k.astype(dt), v.astype(dt)
        inputs += [k, v]
        kf, vf = k.astype(np.float64), v.astype(np.float64)
    bias = None
    if case.bias:
        dims = bias_dims(case)
        bias = (0.5 * rng.standard_normal(dims)).astype(np.float32)
        if dims[2] == case.s and dims[3] == case.t and case.s > 1:
            # Causal: position i sees keys up to T - S + i.
            i = np.arange(case.s)[:, None]
            j = np.arange(case.t)[None, :]
            bias[..., j > case.t - case.s + i] = np.float32(-3.4e38)
        if case.special == "pad":
            # Left padding of batch 1 (first 19 keys: more than a 16-key
            # step) with -inf; batch 0 unpadded.
            bias[1, ..., :19] = -np.inf
        if case.special == "allmasked":
            bias[..., 2, :] = -np.inf
        inputs.append(bias)
    return inputs, (q.astype(np.float64), kf, vf,
                    None if bias is None else bias.astype(np.float64))


def reference(case, q, k, v, bias):
    """float64 softmax(q k^T scale + bias) v and the scores' magnitudes."""
    rep = case.h // case.hk
    kh = np.repeat(k, rep, axis=1)
    vh = np.repeat(v, rep, axis=1)
    s = np.einsum("bhsd,bhtd->bhst", q, kh) * (1.0 / np.sqrt(case.d))
    # The rounding of f32 scores grows with sum_d |q_d k_d|.
    mag = np.einsum("bhsd,bhtd->bhst", np.abs(q), np.abs(kh)) / np.sqrt(case.d)
    if bias is not None:
        s = s + bias
    with np.errstate(invalid="ignore", over="ignore"):
        m = s.max(axis=-1, keepdims=True)
        p = np.exp(s - m)
        out = np.einsum("bhst,bhte->bhse", p, vh) / p.sum(axis=-1, keepdims=True)
    vmax = np.abs(vh).max(axis=(2, 3))[:, :, None]
    return out, mag.max(axis=-1) if case.t else np.zeros(out.shape[:3]), vmax


def run(cmd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}\n"
                           f"{proc.stdout}{proc.stderr}")
    return proc.stdout


def run_exe(exe, work, tag, inputs, threads):
    args = []
    for i, value in enumerate(inputs):
        path = os.path.join(work, f"{tag}_in{i}.npy")
        np.save(path, value)
        args += ["--input", f"input_{i}={path}"]
    out_dir = os.path.join(work, f"{tag}_out{threads}")
    os.makedirs(out_dir, exist_ok=True)
    run([exe] + args + ["--threads", str(threads), "--output-dir", out_dir])
    return np.load(os.path.join(out_dir, "output_0.npy"))


def compare(case, out, ref, mag, vmax):
    """An error message, or None when `out` matches the reference."""
    if out.shape != ref.shape:
        return f"shape {out.shape}, expected {ref.shape}"
    nan_ref, nan_out = np.isnan(ref), np.isnan(out)
    if not np.array_equal(nan_ref, nan_out):
        return (f"NaN at {np.argwhere(nan_out != nan_ref)[:4].tolist()} "
                f"(out NaN: {nan_out.sum()}, reference NaN: {nan_ref.sum()})")
    tol = np.broadcast_to((1e-5 + EPS32 * mag)[..., None] * vmax[..., None],
                          ref.shape)
    with np.errstate(invalid="ignore"):
        err = np.where(nan_ref, 0.0, np.abs(out - ref))
    worst = np.unravel_index(np.argmax(err / tol), err.shape)
    if err[worst] > tol[worst]:
        return (f"|err| {err[worst]:.3g} > {tol[worst]:.3g} at "
                f"{list(worst)} (out {out[worst]}, ref {ref[worst]})")
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", required=True, help="Quench build directory")
    parser.add_argument("--keep", help="work in this directory and keep it")
    parser.add_argument("--only", help="run the cases whose name contains this")
    args = parser.parse_args()

    compiler = os.path.join(args.build, "bin", "quench-compile")
    if not os.path.exists(compiler):
        sys.exit(f"FAIL: {compiler} not found (build the quench-compile target)")
    work = args.keep or tempfile.mkdtemp(prefix="quench-attention-")
    os.makedirs(work, exist_ok=True)

    rng = np.random.default_rng(14)
    failures, passed = [], 0
    # The kernel's exps are polynomials on vectors (quench-cpu-lower-vector),
    # not an LLVM exp intrinsic or a libm call per lane.
    model = os.path.join(work, "exp_check.mlir")
    with open(model, "w") as f:
        f.write(model_text(CASES[0]))
    llvm_ir = os.path.join(work, "exp_check.ll")
    run([compiler, model, "-o", llvm_ir, "--emit=llvm"])
    with open(llvm_ir) as f:
        ir = f.read()
    if re.search(r"@(expf|exp|llvm\.exp\.[a-z0-9]+)\(", ir):
        failures.append("exp_check: the kernel calls exp (libm or intrinsic)")
    for case in CASES:
        if args.only and args.only not in case.name:
            continue
        model = os.path.join(work, f"{case.name}.mlir")
        with open(model, "w") as f:
            f.write(model_text(case))
        inputs, pieces = make_inputs(case, rng)
        ref, mag, vmax = reference(case, *pieces)
        bits = [] if case.bits is None else [f"--vector-bits={case.bits}"]
        for kernel in (True, False):
            tag = case.name + ("" if kernel else "_decomposed")
            exe = os.path.join(work, tag)
            try:
                run([compiler, model, "-o", exe, "--emit=exe",
                     f"--attention-kernel={'true' if kernel else 'false'}"]
                    + bits)
                out1 = run_exe(exe, work, tag, inputs, 1)
                out2 = run_exe(exe, work, tag, inputs, 2)
            except RuntimeError as e:
                failures.append(f"{tag}: {e}")
                continue
            if not np.array_equal(out1, out2, equal_nan=True):
                failures.append(f"{tag}: --threads 1 and 2 differ")
            msg = compare(case, out2, ref, mag, vmax)
            if msg:
                failures.append(f"{tag}: {msg}")
            else:
                passed += 1
    if failures:
        sys.exit("FAIL:\n  " + "\n  ".join(failures) + f"\n(files in {work})")
    print(f"PASS: {passed} compilations (kernel and decomposition) match "
          f"NumPy")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
