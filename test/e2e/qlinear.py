#!/usr/bin/env python3
"""End-to-end check of W8A8 linear layers (quench.qlinear) and of the
W8A8 quantization presets (quench-compile --quant=w8a8-dynamic, and the
pass's static mode through quench-opt).

1. Kernels. One module holds quench.qlinear ops with random int8 weights
   (the full range -128..127, so the products reach their extremes), f32
   per-channel scales, with and without bias, static (per-tensor scale,
   inputs beyond the range saturate) and dynamic (per-row scales), one row
   (GEMV), several rows, batch dims, a dynamic row count, K not a multiple
   of the SIMD width (odd, and every residue modulo 4), N not a multiple of
   the int8 kernel's panels, rows of zeros, and worst-case magnitudes: codes
   +-127 times weights -128 / 127 / alternating +-127 in every column, at
   K = 1000 and at K = 132104, the verifier's bound, where |acc| reaches
   2147482624 = 2^31 - 1024 (and vpdpbusd's biased sum of (q + 128) * w,
   -4.3e9, wraps around). It is compiled with quench-compile --emit=exe
   once per code path the host can run: the host's own (vpdpbusd with
   AVX512-VNNI), --cpu=x86-64-v3 (AVX2: vpmaddwd), x86-64-v3 +avxvnni
   (256-bit vpdpbusd), x86-64-v4 (AVX-512BW: 512-bit vpmaddwd) and
   --int8-dot=false (the generic contraction); each compile's LLVM IR must
   call the expected intrinsic. Every output is compared with a NumPy model
   of the op's exact semantics (QuenchOps.td): s = max|x_row| / 127 (1 for
   a zero row) or the static scale, q = clip(rint(x / s), -127, 127) in
   f32, the int32 sum of q * w computed exactly in int64, y = f32(acc) * s *
   w_scale[n] + bias[n]. Only the final f32 rescale has a tolerance:
   |y - ref| <= 4e-7 * (|acc| * s * |w_scale| + |bias|) + 1e-30 (two f32
   roundings, possibly fused into an FMA). One wrong activation code
   changes acc by a whole weight, far beyond the bound.

2. Quantization. A float model of linear layers is compiled with
   --quant=w8a8-dynamic, and (quench-opt --quench-quantize-weights=
   "activations=static static-input-range=R", then quench-compile) in
   static mode; outputs must match the NumPy reference of the whole scheme
   (weights: absmax / 127 per output channel, f32 scales, round half to
   even) within the same bound, layer by layer: the model also returns
   layer 1's output, and layer 2's reference starts from the values the
   compiled layer 1 produced (a reference value one ulp away could round
   to another code). --quant=w8a8 without calibration must
   fail with the documented message naming every layer.

3. Fused requantization. Chains linear -> tanh -> linear (with bias)
   quantized static and dynamic through quench-opt, so that the int8
   kernel's product goes straight into its only user (int32 -> f32
   rescale, bias, tanh and, static, the next layer's quantization to int8:
   an epilogue fused into the kernel's register tiles). Shapes: one row, 1-D,
   partial row tiles, batch dims, a dynamic row count, N not a multiple of
   the panels. Every code path's outputs must equal the generic path's
   (--int8-dot=false) bit for bit: the kernel's int32 products are exact
   and the epilogue is the same elementwise computation.

Usage: qlinear.py --build BUILD_DIR [--keep DIR]
Run through CTest: `ctest -L e2e -R qlinear`.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

RNG = np.random.default_rng(2024)
F32 = np.float32


def hexdata(a):
    return '"0x' + np.ascontiguousarray(a).tobytes().hex().upper() + '"'


def mlir_type(shape, dtype):
    name = {np.dtype("float32"): "f32", np.dtype("int8"): "i8"}[np.dtype(dtype)]
    return "tensor<" + "x".join(
        "?" if d is None else str(d) for d in shape) + "x" + name + ">"


def qlinear_ref(x, w, ws, bias, input_scale):
    """NumPy model of quench.qlinear: returns (y, bound) in float64.

    x [..., K] f32, w [N, K] int8, ws [N] f32, bias [N] f32 or None,
    input_scale: float (static) or None (dynamic)."""
    x = x.astype(F32)
    rows = x.reshape(-1, x.shape[-1])
    if input_scale is None:
        amax = np.abs(rows).max(axis=1) if rows.shape[1] else np.zeros(len(rows), F32)
        s = (amax / F32(127)).astype(F32)
        s = np.where(amax == 0, F32(1), s).astype(F32)
    else:
        s = np.full(len(rows), F32(input_scale), dtype=F32)
    with np.errstate(invalid="ignore"):
        r = np.rint((rows / s[:, None]).astype(F32))
    r = np.where(np.isnan(r), F32(0), r)
    q = np.clip(r, -127, 127).astype(np.int64)
    acc = q @ w.astype(np.int64).T  # exact
    assert np.abs(acc).max(initial=0) < 2 ** 31
    y = (acc.astype(F32) * s[:, None]).astype(F32) * ws[None, :]
    mag = np.abs(acc).astype(np.float64) * s[:, None] * np.abs(ws)[None, :]
    if bias is not None:
        y = y + bias[None, :]
        mag = mag + np.abs(bias)[None, :]
    shape = x.shape[:-1] + (w.shape[0],)
    return (y.astype(np.float64).reshape(shape),
            (4e-7 * mag + 1e-30).reshape(shape))


class Case:
    """One quench.qlinear with random int8 weights and scales."""

    def __init__(self, name, n, k, xshape, bias=False, input_scale=None,
                 extreme=False):
        self.name, self.n, self.k, self.xshape = name, n, k, xshape
        self.input_scale = input_scale
        self.extreme = extreme
        self.w = RNG.integers(-128, 128, size=(n, k)).astype(np.int8)
        if extreme:
            # Columns of -128, of 127 and of alternating +-127.
            alt = np.where(np.arange(k) % 2 == 0, 127, -127)
            for col in range(n):
                self.w[col] = (-128, 127)[col % 3] if col % 3 < 2 else alt
        self.ws = (RNG.random(n) * 0.02 + 0.001).astype(F32)
        self.bias = RNG.standard_normal(n).astype(F32) if bias else None

    def ir(self, args):
        """Appends this case's input; returns (body lines, result type)."""
        xname = f"%x_{self.name}"
        xtype = mlir_type(self.xshape, F32)
        args.append(f'{xname}: {xtype} {{quench.name = "x_{self.name}"}}')
        wtype = mlir_type(self.w.shape, np.int8)
        stype = mlir_type(self.ws.shape, F32)
        lines = [f"%w_{self.name} = quench.constant dense<{hexdata(self.w)}>"
                 f" : {wtype}",
                 f"%s_{self.name} = quench.constant dense<{hexdata(self.ws)}>"
                 f" : {stype}"]
        operands = f"{xname}, %w_{self.name}, %s_{self.name}"
        types = [xtype, wtype, stype]
        if self.bias is not None:
            btype = mlir_type(self.bias.shape, F32)
            lines.append(f"%b_{self.name} = quench.constant "
                         f"dense<{hexdata(self.bias)}> : {btype}")
            operands += f" bias(%b_{self.name})"
            types.append(btype)
        if self.input_scale is not None:
            operands += f" input_scale({float(self.input_scale)!r})"
        rtype = mlir_type(list(self.xshape[:-1]) + [self.n], F32)
        lines.append(f"%y_{self.name} = quench.qlinear {operands} : "
                     f"({', '.join(types)}) -> {rtype}")
        return lines, rtype

    def input(self):
        shape = tuple(5 if d is None else d for d in self.xshape)
        x = RNG.standard_normal(shape).astype(F32)
        flat = x.reshape(-1, shape[-1])
        if self.extreme:
            # Every code +-127: rows of +1, of -1, and alternating signs
            # (times the alternating weights: every product +127 * 127).
            alt = np.where(np.arange(shape[-1]) % 2 == 0, 1, -1)
            for r in range(flat.shape[0]):
                flat[r] = (1, -1, alt)[r % 3]
            return x
        if flat.shape[0] > 1:
            flat[1, :] = 0  # a row of zeros
        if self.input_scale is not None:
            # Beyond the static range (127 * scale): saturates to +-127.
            flat[0, :3] = [500 * self.input_scale, -500 * self.input_scale,
                           127.5 * self.input_scale]
        # Exact ties of x / s (half to even) in static mode.
        if self.input_scale is not None and flat.shape[1] > 6:
            flat[-1, 4:7] = F32(self.input_scale) * F32(2.5), \
                F32(self.input_scale) * F32(-3.5), F32(self.input_scale) * F32(0.5)
        return x


CASES = [
    Case("dyn_gemv", 40, 64, (1, 64)),
    Case("dyn_bias", 33, 67, (6, 67), bias=True),
    Case("dyn_batch", 20, 72, (2, 3, 72), bias=True),
    Case("dyn_rows", 50, 40, (None, 40)),
    Case("dyn_1d", 24, 19, (19,)),
    Case("dyn_wide", 300, 200, (9, 200), bias=True),
    Case("st_gemv", 40, 64, (1, 64), bias=True, input_scale=0.0125),
    Case("st_rows", 33, 67, (7, 67), input_scale=0.02),
    Case("st_batch", 20, 72, (2, 3, 72), bias=True, input_scale=0.03),
    Case("st_dynrows", 50, 40, (None, 40), input_scale=0.015),
    # The int8 kernel's edges: N not a multiple of its panels (16 to 64
    # columns), K % 4 = 3, 1, 2, one row, 5 rows (one partial row tile), 33
    # (full tiles of 6 or 4 and a rest).
    Case("odd_gemv", 70, 131, (1, 131)),
    Case("odd_m5", 70, 133, (5, 133), bias=True),
    Case("m33", 150, 258, (33, 258)),
    Case("st_m33", 97, 67, (33, 67), bias=True, input_scale=0.02),
    Case("extreme", 50, 1000, (3, 1000), extreme=True),
    Case("extreme_gemv", 7, 1001, (1, 1001), extreme=True),
    Case("max_k", 9, 132104, (3, 132104), extreme=True),
]

# Code paths: (label, quench-compile flags, /proc/cpuinfo flags the host
# needs to run the code, intrinsic the LLVM IR must call or None).
VARIANTS = [
    ("host", [], [], None),
    ("avx2 (vpmaddwd)", ["--cpu=x86-64-v3"], ["avx2", "fma", "bmi2"],
     "llvm.x86.avx2.pmadd.wd"),
    ("avx-vnni (vpdpbusd ymm)", ["--cpu=x86-64-v3", "--cpu-features=+avxvnni"],
     ["avx2", "fma", "bmi2", "avx_vnni"], "llvm.x86.avx512.vpdpbusd.256"),
    ("avx512bw (vpmaddwd zmm)", ["--cpu=x86-64-v4"],
     ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"],
     "llvm.x86.avx512.pmaddw.d.512"),
    ("generic", ["--int8-dot=false"], [], None),
]


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def run(cmd, expect_fail=False, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if (res.returncode != 0) != expect_fail:
        sys.stderr.write(f"command {'succeeded' if expect_fail else 'failed'}"
                         f": {' '.join(cmd)}\n{res.stdout}{res.stderr}\n")
        sys.exit(1)
    return res


def compare(name, got, ref, bound, failures):
    err = np.abs(got - ref)
    ok = got.shape == ref.shape and bool(np.all(err <= bound))
    worst = float(np.max(err / bound)) if err.size else 0.0
    print(f"{'ok  ' if ok else 'FAIL'} {name}: shape {got.shape}, max |err| "
          f"{float(err.max()) if err.size else 0:.3g} ({worst:.2f} of the "
          f"bound)")
    if not ok:
        failures.append(name)


def kernels(build, work, failures):
    args, body, results = [], [], []
    for c in CASES:
        lines, rtype = c.ir(args)
        body += lines
        results.append((f"%y_{c.name}", rtype, c.name))
    text = ("func.func @main(" + ", ".join(args) + ")\n    -> (" +
            ", ".join(f'{t} {{quench.name = "y_{n}"}}' for _, t, n in results)
            + ") {\n  " + "\n  ".join(body) + "\n  return " +
            ", ".join(v for v, _, _ in results) + " : " +
            ", ".join(t for _, t, _ in results) + "\n}\n")
    model = os.path.join(work, "qlinear.mlir")
    with open(model, "w") as f:
        f.write(text)
    xs, inputs = {}, []
    for c in CASES:
        xs[c.name] = c.input()
        path = os.path.join(work, f"x_{c.name}.npy")
        np.save(path, xs[c.name])
        inputs += ["--input", f"x_{c.name}={path}"]
    refs = {c.name: qlinear_ref(xs[c.name], c.w, c.ws, c.bias, c.input_scale)
            for c in CASES}
    qc = os.path.join(build, "bin", "quench-compile")
    have = cpu_flags()
    for label, flags, needs, intrinsic in VARIANTS:
        missing = [f for f in needs if f not in have]
        if missing:
            print(f"skip {label}: the host lacks {', '.join(missing)}")
            continue
        if intrinsic:
            ll = os.path.join(work, "qlinear.ll")
            run([qc, model, "-o", ll, "--emit=llvm"] + flags)
            with open(ll) as f:
                called = f"@{intrinsic}(" in f.read()
            print(f"{'ok  ' if called else 'FAIL'} [{label}] LLVM IR calls "
                  f"{intrinsic}")
            if not called:
                failures.append(f"{label}: no {intrinsic}")
        exe = os.path.join(work, "qlinear")
        run([qc, model, "-o", exe] + flags)
        odir = os.path.join(work, "out")
        os.makedirs(odir, exist_ok=True)
        run([exe, "--output-dir", odir] + inputs)
        for c in CASES:
            got = np.load(os.path.join(odir, f"y_{c.name}.npy")).astype(
                np.float64)
            ref, bound = refs[c.name]
            compare(f"[{label}] qlinear {c.name}", got, ref, bound, failures)


def quantize_weight(w):
    """The pass's W8A8 weights: per-channel symmetric absmax / 127, f32
    scales (1 for a zero row), codes round half to even in [-127, 127]."""
    amax = np.abs(w).max(axis=1)
    s = (amax / F32(127)).astype(F32)
    s = np.where(amax == 0, F32(1), s).astype(F32)
    q = np.clip(np.rint((w / s[:, None]).astype(F32)), -127, 127)
    return q.astype(np.int8), s


LAYERS = [(48, 67), (24, 48)]  # (N, K): x[.., 67] -> 48 -> 24


def quantization(build, work, failures):
    ws = [(RNG.standard_normal((n, k)) * 0.2).astype(F32) for n, k in LAYERS]
    ws[0][3, :] = 0  # an all-zero weight row
    bias = RNG.standard_normal(LAYERS[0][0]).astype(F32)
    m = 6
    lines = [f"%w0 = quench.constant dense<{hexdata(ws[0])}> : "
             f"tensor<{LAYERS[0][0]}x{LAYERS[0][1]}xf32>",
             f"%b0 = quench.constant dense<{hexdata(bias)}> : "
             f"tensor<{LAYERS[0][0]}xf32>",
             f"%w1 = quench.constant dense<{hexdata(ws[1])}> : "
             f"tensor<{LAYERS[1][0]}x{LAYERS[1][1]}xf32>",
             f"%h0 = quench.linear %x, %w0, %b0 : (tensor<{m}x{LAYERS[0][1]}xf32>, "
             f"tensor<{LAYERS[0][0]}x{LAYERS[0][1]}xf32>, tensor<{LAYERS[0][0]}xf32>)"
             f" -> tensor<{m}x{LAYERS[0][0]}xf32> loc(\"/l0/Gemm\")",
             f"%h1 = quench.linear %h0, %w1 : (tensor<{m}x{LAYERS[1][1]}xf32>, "
             f"tensor<{LAYERS[1][0]}x{LAYERS[1][1]}xf32>) -> "
             f"tensor<{m}x{LAYERS[1][0]}xf32> loc(\"/l1/MatMul\")"]
    h0type = f"tensor<{m}x{LAYERS[0][0]}xf32>"
    ytype = f"tensor<{m}x{LAYERS[-1][0]}xf32>"
    text = (f'func.func @main(%x: tensor<{m}x{LAYERS[0][1]}xf32> '
            f'{{quench.name = "x"}}) -> ({h0type} {{quench.name = "h"}}, '
            f'{ytype} {{quench.name = "y"}}) {{\n  ' + "\n  ".join(lines) +
            f"\n  return %h0, %h1 : {h0type}, {ytype}\n}}\n")
    model = os.path.join(work, "float.mlir")
    with open(model, "w") as f:
        f.write(text)
    x = RNG.standard_normal((m, LAYERS[0][1])).astype(F32)
    x[2, :] = 0
    xpath = os.path.join(work, "x.npy")
    np.save(xpath, x)
    qc = os.path.join(build, "bin", "quench-compile")
    qo = os.path.join(build, "bin", "quench-opt")
    qw = [quantize_weight(w) for w in ws]

    def check_model(label, exe, input_scale):
        odir = os.path.join(work, "out")
        os.makedirs(odir, exist_ok=True)
        run([exe, "--input", f"x={xpath}", "--output-dir", odir])
        got_h = np.load(os.path.join(odir, "h.npy"))
        got = np.load(os.path.join(odir, "y.npy")).astype(np.float64)
        ref, bound = qlinear_ref(x, qw[0][0], qw[0][1], bias, input_scale)
        compare(label + " layer 1", got_h.astype(np.float64), ref, bound,
                failures)
        ref, bound = qlinear_ref(got_h.astype(F32), qw[1][0], qw[1][1], None,
                                 input_scale)
        compare(label + " layer 2", got, ref, bound, failures)

    exe = os.path.join(work, "dyn")
    run([qc, model, "-o", exe, "--quant=w8a8-dynamic"])
    check_model("--quant=w8a8-dynamic", exe, None)

    # Static, one range for every layer (the pass's test option).
    qmodel = os.path.join(work, "static.mlir")
    run([qo, model, "--quench-prepare",
         "--quench-quantize-weights=activations=static static-input-range=3.5",
         "-o", qmodel])
    exe = os.path.join(work, "st")
    run([qc, qmodel, "-o", exe])
    check_model("activations=static static-input-range=3.5", exe, 3.5 / 127)

    res = run([qc, model, "-o", os.path.join(work, "nocal"), "--quant=w8a8"],
              expect_fail=True)
    want = ("--quant=w8a8 needs calibration (--calib or --calib-cache); "
            "no range for layers: /l0/Gemm, /l1/MatMul")
    ok = want in res.stderr
    print(f"{'ok  ' if ok else 'FAIL'} --quant=w8a8 without calibration")
    if not ok:
        sys.stderr.write(res.stderr)
        failures.append("w8a8 without calibration")


# (name, x shape (None: dynamic), K, N1, N2) of the fused chains.
CHAINS = [
    ("gemv", (1, 70), 70, 90, 33),
    ("vec", (45,), 45, 64, 20),
    ("rows7", (7, 67), 67, 150, 40),
    ("batch", (2, 3, 36), 36, 48, 70),
    ("dynrows", (None, 40), 40, 130, 17),
]


def chains(build, work, failures):
    args, lines, results = [], [], []
    xs, inputs = {}, []
    for name, xshape, k, n1, n2 in CHAINS:
        xt = mlir_type(xshape, F32)
        ht = mlir_type(list(xshape[:-1]) + [n1], F32)
        yt = mlir_type(list(xshape[:-1]) + [n2], F32)
        w1 = (RNG.standard_normal((n1, k)) * 0.3).astype(F32)
        b1 = RNG.standard_normal(n1).astype(F32)
        w2 = (RNG.standard_normal((n2, n1)) * 0.3).astype(F32)
        b2 = RNG.standard_normal(n2).astype(F32)
        args.append(f'%x_{name}: {xt} {{quench.name = "x_{name}"}}')
        lines += [
            f"%w1_{name} = quench.constant dense<{hexdata(w1)}> : "
            f"tensor<{n1}x{k}xf32>",
            f"%b1_{name} = quench.constant dense<{hexdata(b1)}> : "
            f"tensor<{n1}xf32>",
            f"%w2_{name} = quench.constant dense<{hexdata(w2)}> : "
            f"tensor<{n2}x{n1}xf32>",
            f"%b2_{name} = quench.constant dense<{hexdata(b2)}> : "
            f"tensor<{n2}xf32>",
            f"%h_{name} = quench.linear %x_{name}, %w1_{name}, %b1_{name} : "
            f"({xt}, tensor<{n1}x{k}xf32>, tensor<{n1}xf32>) -> {ht}",
            f"%t_{name} = quench.tanh %h_{name} : {ht}",
            f"%y_{name} = quench.linear %t_{name}, %w2_{name}, %b2_{name} : "
            f"({ht}, tensor<{n2}x{n1}xf32>, tensor<{n2}xf32>) -> {yt}"]
        results.append((f"%y_{name}", yt, name))
        x = RNG.standard_normal(
            tuple(5 if d is None else d for d in xshape)).astype(F32)
        xs[name] = x
        path = os.path.join(work, f"cx_{name}.npy")
        np.save(path, x)
        inputs += ["--input", f"x_{name}={path}"]
    text = ("func.func @main(" + ", ".join(args) + ")\n    -> (" +
            ", ".join(f'{t} {{quench.name = "y_{n}"}}' for _, t, n in results)
            + ") {\n  " + "\n  ".join(lines) + "\n  return " +
            ", ".join(v for v, _, _ in results) + " : " +
            ", ".join(t for _, t, _ in results) + "\n}\n")
    model = os.path.join(work, "chains.mlir")
    with open(model, "w") as f:
        f.write(text)
    qc = os.path.join(build, "bin", "quench-compile")
    qo = os.path.join(build, "bin", "quench-opt")
    have = cpu_flags()
    for mode in ("static static-input-range=3", "dynamic"):
        qmodel = os.path.join(work, "chains.q.mlir")
        run([qo, model, "--quench-prepare",
             f"--quench-quantize-weights=activations={mode}", "-o", qmodel])
        outs = {}
        for label, flags, needs, _ in reversed(VARIANTS):  # generic first
            if any(f not in have for f in needs):
                continue
            exe = os.path.join(work, "chains")
            run([qc, qmodel, "-o", exe] + flags)
            odir = os.path.join(work, "cout")
            os.makedirs(odir, exist_ok=True)
            run([exe, "--output-dir", odir] + inputs)
            outs[label] = {c[0]: np.load(os.path.join(odir, f"y_{c[0]}.npy"))
                           for c in CHAINS}
        ref = outs["generic"]
        for label, got in outs.items():
            if label == "generic":
                continue
            for name, *_ in CHAINS:
                same = (got[name].shape == ref[name].shape and
                        np.array_equal(got[name].view(np.uint32),
                                       ref[name].view(np.uint32)))
                print(f"{'ok  ' if same else 'FAIL'} [{label}] chain {name} "
                      f"({mode.split()[0]}): bit-identical to generic")
                if not same:
                    failures.append(f"{label}: chain {name} {mode}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--keep", help="keep the work files in this directory")
    a = ap.parse_args()
    work = a.keep or tempfile.mkdtemp(prefix="quench-qlinear-")
    os.makedirs(work, exist_ok=True)
    failures = []
    kernels(os.path.abspath(a.build), work, failures)
    quantization(os.path.abspath(a.build), work, failures)
    chains(os.path.abspath(a.build), work, failures)
    if failures:
        print(f"qlinear: {len(failures)} failed: {', '.join(failures)}")
        return 1
    print("qlinear: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
