#!/usr/bin/env python3
"""End-to-end check of quantized matmuls (quench.matmul_nbits) and of
round-to-nearest weight quantization (quench-compile --quant).

1. Kernels. One module holds quench.matmul_nbits ops covering the layouts
   the lowering distinguishes (lib/Conversion/QuenchToLinalg/MatMulNBits.cpp):
   2/4/8 bits with constant operands (fused fast form: K-major codes,
   unpacking in registers), 3 bits and a weight passed at run time (general
   form), symmetric codes (implicit zero point), packed ui8 and float zero
   points, f16 and f32 scales, K not a multiple of the block (padding), one
   row (GEMV), batch dims, a dynamic row count, a bias, and widths that
   exercise the CPU kernel's tasks, tiles and remainders. It is compiled
   with quench-compile --emit=exe for the host and with --vector-bits=256,
   each with and without --int8-dot (on an AVX512-VNNI host: 4-bit codes
   times int16 activations by vpdpbusd at 512 and 256 bits, the
   table-lookup form and the conversion form of the 4/2-bit kernel), and
   with --target=cuda --cuda-emulate (the CUDA backend's kernels, among
   them the GEMV kernel of docs/gpu.md, run by the CPU; its PTX must hold
   one GEMV kernel per case it applies to), run on random inputs, and
   every output is compared with a NumPy dequantize-then-matmul reference:
   |y - ref| <= 1e-5 * sum_k |x| |w| + 1e-6 (f32 accumulation order), plus,
   where activations may be rounded to int16 (--int8-dot on),
   sum_k |w[n, k]| * amax(row, group of k) / 65534 (half a step of
   amax / 32767 per element; 65278 for 8-bit codes, whose step is amax /
   32639; docs/lowering.md, "Int16 activations"). On an AVX512-VNNI host
   the 8-bit cases of the --int8-dot runs are also compared, within the
   first bound alone, with a reference computed from the int16-rounded
   activations (the kernel's activation blocks: groups over 512 codes, 256
   with zero points, split), and rows of x that are all zero must give
   exactly 0.

2. Quantization. A float model of linear layers is compiled with
   --quant=w8a16, w4a16 (g32, f16 scales), w4a16 --asymmetric
   --scale-type=f32, w2a16 --group-size=16; its outputs must match an
   independent NumPy implementation of the documented scheme
   (docs/quantization.md: absmax / (2^(b-1) - 1) symmetric, (max - min) /
   (2^b - 1) with zero inside the range asymmetric, scales rounded to their
   storage type before the codes are chosen, round half to even,
   saturation) within the same bound. The size report must list every
   layer.

Usage: quant_matmul.py --build BUILD_DIR [--keep DIR]
Run through CTest: `ctest -L e2e -R quant-matmul`.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

RNG = np.random.default_rng(1234)


def hexdata(a):
    return '"0x' + np.ascontiguousarray(a).tobytes().hex().upper() + '"'


def mlir_type(shape, dtype):
    name = {np.dtype("float32"): "f32", np.dtype("float16"): "f16",
            np.dtype("uint8"): "ui8"}[np.dtype(dtype)]
    return "tensor<" + "x".join(
        "?" if d is None else str(d) for d in shape) + "x" + name + ">"


def pack_codes(codes, bits):
    """Little-endian bit stream of codes (uint8 array) -> bytes."""
    out = np.zeros((codes.size * bits + 7) // 8, dtype=np.uint8)
    for i, c in enumerate(codes.astype(np.uint32)):
        bit = i * bits
        out[bit // 8] |= (c << (bit % 8)) & 0xFF
        if bit % 8 + bits > 8:
            out[bit // 8 + 1] |= c >> (8 - bit % 8)
    return out


def unpack_codes(data, count, bits):
    data = data.astype(np.uint32)
    out = np.zeros(count, dtype=np.int64)
    for i in range(count):
        bit = i * bits
        v = data[bit // 8] >> (bit % 8)
        if bit % 8 + bits > 8:
            v |= data[bit // 8 + 1] << (8 - bit % 8)
        out[i] = v & ((1 << bits) - 1)
    return out


class Case:
    """One quench.matmul_nbits with random codes, scales, zero points."""

    def __init__(self, name, n, k, bits, block, zp, scale_dtype, xshape,
                 bias=False, weight_input=False, zero_rows=(), dyn_rows=7):
        self.name, self.n, self.k, self.bits, self.block = name, n, k, bits, block
        self.dyn_rows = dyn_rows  # run-time extent of a dynamic dimension
        self.zp_kind, self.xshape = zp, xshape
        self.weight_input = weight_input
        self.zero_rows = zero_rows  # rows of x (flattened) set to 0
        self.blocks = (k + block - 1) // block
        codes = RNG.integers(0, 1 << bits, size=(n, self.blocks, block))
        self.codes = codes
        self.w = np.stack([np.stack([pack_codes(codes[r, b], bits)
                                     for b in range(self.blocks)])
                           for r in range(n)])
        self.scales = (RNG.random((n * self.blocks,)) * 0.1 + 0.01).astype(
            scale_dtype)
        if zp == "packed":
            zcodes = RNG.integers(0, 1 << bits, size=(n, self.blocks))
            self.zcodes = zcodes
            self.zp = np.concatenate([pack_codes(zcodes[r], bits)
                                      for r in range(n)])
        elif zp == "float":
            self.zp = (RNG.random((n * self.blocks,)) * (1 << bits)).astype(
                scale_dtype)
        else:
            self.zp = None
        self.bias = RNG.standard_normal(n).astype(np.float32) if bias else None

    def dequantized(self):
        s = self.scales.astype(np.float32).reshape(self.n, self.blocks)
        if self.zp_kind == "packed":
            z = self.zcodes.astype(np.float32)
        elif self.zp_kind == "float":
            z = self.zp.astype(np.float32).reshape(self.n, self.blocks)
        else:
            z = np.full((self.n, self.blocks), 1 << (self.bits - 1),
                        dtype=np.float32)
        q = self.codes.astype(np.float32)  # [n, blocks, block]
        w = (q - z[:, :, None]) * s[:, :, None]
        return w.reshape(self.n, -1)[:, :self.k]

    def ir(self, args, arg_types):
        """Appends this case's operands; returns (body lines, result type)."""
        xname = f"%x_{self.name}"
        args.append(f'{xname}: {mlir_type(self.xshape, np.float32)} '
                    f'{{quench.name = "x_{self.name}"}}')
        lines = []
        wtype = mlir_type(self.w.shape, np.uint8)
        if self.weight_input:
            wname = f"%w_{self.name}"
            args.append(f'{wname}: {wtype} {{quench.name = "w_{self.name}"}}')
        else:
            wname = f"%w_{self.name}"
            lines.append(f"{wname} = quench.constant dense<{hexdata(self.w)}>"
                         f" : {wtype}")
        stype = mlir_type(self.scales.shape, self.scales.dtype)
        lines.append(f"%s_{self.name} = quench.constant "
                     f"dense<{hexdata(self.scales)}> : {stype}")
        operands = f"{xname}, {wname}, %s_{self.name}"
        types = [mlir_type(self.xshape, np.float32), wtype, stype]
        if self.zp is not None:
            ztype = mlir_type(self.zp.shape, self.zp.dtype)
            lines.append(f"%z_{self.name} = quench.constant "
                         f"dense<{hexdata(self.zp)}> : {ztype}")
            operands += f" zp(%z_{self.name})"
            types.append(ztype)
        if self.bias is not None:
            btype = mlir_type(self.bias.shape, np.float32)
            lines.append(f"%b_{self.name} = quench.constant "
                         f"dense<{hexdata(self.bias)}> : {btype}")
            operands += f" bias(%b_{self.name})"
            types.append(btype)
        rshape = list(self.xshape[:-1]) + [self.n]
        rtype = mlir_type(rshape, np.float32)
        lines.append(
            f"%y_{self.name} = quench.matmul_nbits {operands} "
            f"{{in_features = {self.k} : i64, out_features = {self.n} : i64, "
            f"bits = {self.bits} : i64, block_size = {self.block} : i64}} "
            f": ({', '.join(types)}) -> {rtype}")
        return lines, rtype


CASES = [
    Case("b4_sym", 40, 64, 4, 32, None, np.float32, (5, 64), bias=True),
    Case("b4_zp_gemv", 33, 48, 4, 16, "packed", np.float16, (1, 48)),
    Case("b8_channel", 20, 72, 8, 72, None, np.float16, (2, 3, 72)),
    Case("b2_pad", 24, 80, 2, 32, "packed", np.float32, (4, 80), bias=True),
    Case("b3_general", 16, 64, 3, 32, "packed", np.float32, (3, 64)),
    Case("b4_fzp_dyn", 50, 64, 4, 32, "float", np.float32, (None, 64)),
    Case("b4_runtime_w", 12, 32, 4, 16, None, np.float32, (3, 32),
         weight_input=True),
    # The CPU kernel's tiling (lib/Codegen/CPU/DequantMatmul.cpp): several
    # parallel tasks of 128 features, whole register tiles and a masked
    # remainder, row tiles plus remainder rows.
    Case("b4_wide_gemv", 328, 96, 4, 32, "packed", np.float16, (1, 96)),
    Case("b4_wide_rows", 300, 64, 4, 32, None, np.float32, (13, 64)),
    Case("b8_wide_rows", 264, 64, 8, 32, "packed", np.float16, (7, 64)),
    # The CUDA backend's GEMV kernel (lib/Codegen/GPU/DequantGemv.cpp: N a
    # multiple of 16, at most 8 rows or a dynamic count): one row and odd
    # multiples of 16, each bit width and zero point kind, batch dims (6
    # rows: two row tiles), a dynamic count (7 x 3 = 21 rows: 6 row tiles),
    # K split over whole groups (with padding) and inside one group (per
    # channel).
    Case("g4_gemv", 48, 64, 4, 32, "packed", np.float16, (1, 64)),
    Case("g8_batch", 80, 96, 8, 32, None, np.float32, (2, 3, 96), bias=True),
    Case("g2_gemv", 112, 128, 2, 64, "packed", np.float16, (1, 128)),
    Case("g4_fzp_dyn", 32, 64, 4, 16, "float", np.float16, (None, 3, 64)),
    Case("g4_split", 48, 1000, 4, 128, None, np.float16, (1, 1000)),
    Case("g8_split_channel", 16, 1024, 8, 1024, "packed", np.float32,
         (2, 1024)),
    # Groups of 10 code rows: the kernel's row loop by 4 and its remainder.
    Case("g4_rows_rest", 32, 100, 4, 20, "packed", np.float32, (3, 100)),
    # 8-bit codes times int16 activations (VNNI): per channel groups over
    # 512 codes split into activation blocks (1100 -> 3 x 368, x padded;
    # 768 -> 2 x 384; with zero points 600 -> 3 x 200), K not a multiple
    # of the group (200 = 3 x 64 + 8), N not a multiple of 16, one row and
    # row tiles with remainders, all-zero rows.
    Case("b8_ch_split", 72, 1100, 8, 1100, None, np.float16, (5, 1100),
         zero_rows=(0, 3)),
    Case("b8_ch_gemv", 200, 768, 8, 768, None, np.float16, (1, 768)),
    Case("b8_ch_zp_gemv", 40, 600, 8, 600, "packed", np.float32, (1, 600)),
    Case("b8_g64_fzp", 24, 200, 8, 64, "float", np.float32, (6, 200),
         zero_rows=(2,)),
    # Groups of 6 codes: activation blocks padded to 8. Float zero points
    # on a split group (600 -> 3 x 200, the zero points repeated).
    Case("b8_g6_pad", 24, 30, 8, 6, "packed", np.float32, (3, 30)),
    Case("b8_ch_fzp", 16, 600, 8, 600, "float", np.float16, (2, 600)),
    # A dynamic row count run with one row: the int16 form's one-row tiles
    # of 4 panels under scf.if (N = 328: two tasks of whole wide tiles,
    # then panels and a masked vector); zero points packed and none.
    Case("b4_dyn_one", 328, 64, 4, 32, "packed", np.float16, (None, 64),
         dyn_rows=1),
    Case("b8_dyn_one", 200, 96, 8, 32, None, np.float16, (None, 96),
         dyn_rows=1),
]


def run(cmd, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if res.returncode != 0:
        sys.stderr.write(f"command failed: {' '.join(cmd)}\n{res.stdout}"
                         f"{res.stderr}\n")
        sys.exit(1)
    return res


def int16_step(x, k, block, bits):
    """Half an int16 step per element of x: amax of its row and group of
    `block` along the last axis (of k), / 65534 (8 bits: / 65278)."""
    x = np.asarray(x, dtype=np.float64)
    blocks = (k + block - 1) // block
    pad = np.zeros(x.shape[:-1] + (blocks * block,))
    pad[..., :k] = np.abs(x)
    amax = pad.reshape(x.shape[:-1] + (blocks, block)).max(axis=-1)
    return np.repeat(amax, block, axis=-1)[..., :k] / (
        65278 if bits == 8 else 65534)


def int8_step(x, c):
    """Half an int8 step per element of x (--prefill-activations=int8):
    amax of its row and activation block / 254 (the blocks of
    int16_activations)."""
    return _block_amax(x, c) / 254


def _block_amax(x, c):
    limit = 256 if c.zp is not None else 512
    split = -(-c.block // limit) if c.bits == 8 else 1
    length = -(-(-(-c.block // split)) // 4) * 4
    blocks = (c.k + c.block - 1) // c.block
    x = np.abs(np.asarray(x, dtype=np.float64))
    g = np.zeros(x.shape[:-1] + (blocks, split * length))
    g[..., :c.block] = np.pad(
        x, [(0, 0)] * (x.ndim - 1) + [(0, blocks * c.block - c.k)]).reshape(
            x.shape[:-1] + (blocks, c.block))
    g = g.reshape(x.shape[:-1] + (blocks, split, length))
    amax = np.broadcast_to(g.max(axis=-1, keepdims=True), g.shape)
    amax = amax.reshape(x.shape[:-1] + (blocks, split * length))[..., :c.block]
    return amax.reshape(x.shape[:-1] + (blocks * c.block,))[..., :c.k]


def int16_activations(x, c, qmax=32639):
    """x as the 8-bit int16 kernel sees it (docs/lowering.md, "Int16
    activations"): per row and activation block (a group of J codes, split
    into ceil(J / L) blocks of equal length rounded up to 4, L = 512, or
    256 with zero points), q = round(x * 32639 / amax) half away from zero
    in f32, returned dequantized (q * amax / 32639, float64). With qmax =
    127, x as the int8 prefill form sees it (4-bit codes: one block per
    group; docs/lowering.md, "Int8 activations for prefill")."""
    limit = 256 if c.zp is not None else 512
    split = -(-c.block // limit) if c.bits == 8 else 1
    length = -(-(-(-c.block // split)) // 4) * 4
    blocks = (c.k + c.block - 1) // c.block
    x = np.asarray(x, dtype=np.float32)
    g = np.zeros(x.shape[:-1] + (blocks, split * length), dtype=np.float32)
    g[..., :c.block] = np.pad(
        x, [(0, 0)] * (x.ndim - 1) + [(0, blocks * c.block - c.k)]).reshape(
            x.shape[:-1] + (blocks, c.block))
    g = g.reshape(x.shape[:-1] + (blocks, split, length))
    amax = np.abs(g).max(axis=-1, keepdims=True)
    inv = np.where(amax > 0, np.float32(qmax) / np.where(amax > 0, amax, 1),
                   np.float32(0)).astype(np.float32)
    t = (g * inv).astype(np.float32) + np.where(
        g < 0, np.float32(-0.5), np.float32(0.5))
    q = np.trunc(t.astype(np.float32)).astype(np.float64)
    xq = q * amax.astype(np.float64) / qmax
    xq = xq.reshape(x.shape[:-1] + (blocks, split * length))[..., :c.block]
    return xq.reshape(x.shape[:-1] + (blocks * c.block,))[..., :c.k]


def host_vnni():
    try:
        with open("/proc/cpuinfo") as f:
            return "avx512_vnni" in f.read().split()
    except OSError:
        return False


def check(name, got, x, w, bias, failures, act_step=None):
    ref = x.astype(np.float64) @ w.astype(np.float64).T
    if bias is not None:
        ref = ref + bias
    bound = 1e-5 * (np.abs(x).astype(np.float64) @
                    np.abs(w).astype(np.float64).T) + 1e-6
    if act_step is not None:
        bound = bound + act_step @ np.abs(w).astype(np.float64).T
    err = np.abs(got - ref)
    worst = float(np.max(err / bound)) if err.size else 0.0
    ok = got.shape == ref.shape and np.all(err <= bound)
    print(f"{'ok  ' if ok else 'FAIL'} {name}: shape {got.shape}, "
          f"max |err| {float(err.max()) if err.size else 0:.3g} "
          f"({worst:.2f} of the bound)")
    if not ok:
        failures.append(name)


def kernels(build, work, failures):
    args, body, rtypes, rnames = [], [], [], []
    for c in CASES:
        lines, rtype = c.ir(args, None)
        body += lines
        rtypes.append(f'{rtype} {{quench.name = "y_{c.name}"}}')
        rnames.append((f"%y_{c.name}", rtype))
    text = ("func.func @main(" + ", ".join(args) + ")\n    -> (" +
            ", ".join(rtypes) + ") {\n  " + "\n  ".join(body) +
            "\n  return " + ", ".join(n for n, _ in rnames) + " : " +
            ", ".join(t for _, t in rnames) + "\n}\n")
    model = os.path.join(work, "nbits.mlir")
    with open(model, "w") as f:
        f.write(text)
    # The host's kernel (on AVX-512: 4/2-bit codes by table lookup) and the
    # 256-bit one (conversion) on the same inputs.
    xs = {}
    inputs = []
    vnni = host_vnni()
    for c in CASES:
        shape = tuple(c.dyn_rows if d is None else d for d in c.xshape)
        xs[c.name] = RNG.standard_normal(shape).astype(np.float32)
        flat = xs[c.name].reshape(-1, c.k)
        for r in c.zero_rows:
            flat[r] = 0
        path = os.path.join(work, f"x_{c.name}.npy")
        np.save(path, xs[c.name])
        inputs += ["--input", f"x_{c.name}={path}"]
        if c.weight_input:
            wpath = os.path.join(work, f"w_{c.name}.npy")
            np.save(wpath, c.w)
            inputs += ["--input", f"w_{c.name}={wpath}"]
    # "host" and "256-bit" keep int16 activations at every row count
    # (--prefill-activations=float); the "int8 prefill" runs take the int8
    # form from 2 rows up for 4- and 8-bit codes (docs/lowering.md, "Int8 activations for
    # prefill").
    for label, flags in (("host", ["--prefill-activations=float"]),
                         ("host, int8 prefill", ["--prefill-rows=2",
                                                 "--prefill-activations=int8"]),
                         ("host, float", ["--int8-dot=false"]),
                         ("256-bit", ["--vector-bits=256",
                                      "--prefill-activations=float"]),
                         ("256-bit, int8 prefill", ["--vector-bits=256",
                                                    "--prefill-rows=2",
                                                    "--prefill-activations=int8"]),
                         ("256-bit, float", ["--vector-bits=256",
                                             "--int8-dot=false"]),
                         # The CUDA backend's kernels run by the CPU.
                         ("cuda-emulate", ["--target=cuda",
                                           "--cuda-emulate"])):
        exe = os.path.join(work, "nbits_" + label)
        out = os.path.join(work, "out_" + label)
        os.makedirs(out, exist_ok=True)
        run([os.path.join(build, "bin", "quench-compile"), model, "-o", exe] +
            flags)
        run([exe, "--output-dir", out] + inputs)
        for c in CASES:
            got = np.load(os.path.join(out, f"y_{c.name}.npy")).astype(
                np.float64)
            int16 = not ("--int8-dot=false" in flags or
                         "--target=cuda" in flags)
            # The int8 form: rows >= 2, codes of 4 or 8 bits in the int16
            # form's layout (VNNI host, constant weights; 4 bits: groups
            # of whole code words, at most 1024 codes).
            rows = int(np.prod(xs[c.name].shape[:-1]))
            int8 = ("--prefill-rows=2" in flags and vnni and rows >= 2 and
                    c.bits in (4, 8) and not c.weight_input and
                    (c.bits == 8 or (c.block % 8 == 0 and c.block <= 1024)))
            step = (int8_step(xs[c.name], c) if int8 else
                    int16_step(xs[c.name], c.k, c.block, c.bits)
                    if int16 else None)
            check(f"matmul_nbits {c.name} ({label})", got, xs[c.name],
                  c.dequantized(), c.bias, failures, step)
            if int8:
                check(f"matmul_nbits {c.name} ({label}, int8 reference)",
                      got, int16_activations(xs[c.name], c, 127),
                      c.dequantized(), c.bias, failures)
            elif int16 and c.bits == 8 and not c.weight_input and vnni:
                check(f"matmul_nbits {c.name} ({label}, int16 reference)",
                      got, int16_activations(xs[c.name], c),
                      c.dequantized(), c.bias, failures)
            if c.zero_rows:
                rows = got.reshape(-1, c.n)[list(c.zero_rows)]
                ok = not np.any(rows)
                print(f"{'ok  ' if ok else 'FAIL'} matmul_nbits {c.name} "
                      f"({label}): all-zero rows of x give exactly 0")
                if not ok:
                    failures.append(f"{c.name} ({label}) zero rows")
    gemv_kernels(build, model, failures)


def gemv_kernels(build, model, failures):
    """The cases the CUDA GEMV kernel must take are GEMV kernels in the PTX
    (one `or` with 0x4B000000, the 2^23 + code trick, and a 128-bit code
    load each), the others are not: the emulation above checked their
    numbers, this that they ran the kernel."""
    want = sum(1 for c in CASES
               if c.n % 16 == 0 and c.bits in (2, 4, 8) and not c.weight_input
               and (None in c.xshape or np.prod(c.xshape[:-1]) <= 8))
    out = os.path.splitext(model)[0] + ".ptx"
    run([os.path.join(build, "bin", "quench-compile"), model, "-o", out,
         "--emit=ptx", "--target=cuda"])
    with open(out) as f:
        ptx = f.read()
    kernels = ptx.split(".entry ")[1:]
    gemv = [k for k in kernels
            if ", 1258291200;" in k and "ld.global.v4.b32" in k]
    ok = len(gemv) == want
    print(f"{'ok  ' if ok else 'FAIL'} CUDA GEMV kernels: {len(gemv)} of "
          f"{len(kernels)} kernels, want {want}")
    if not ok:
        failures.append("CUDA GEMV kernel count")


def rtn_reference(w, bits, group, symmetric, scale_type):
    """NumPy round-to-nearest quantize-dequantize of w [N, K] (the scheme of
    docs/quantization.md)."""
    n, k = w.shape
    group = group or ((k + 7) // 8 * 8)
    blocks = (k + group - 1) // group
    padded = np.zeros((n, blocks * group), dtype=np.float32)
    padded[:, :k] = w
    g = padded.reshape(n, blocks, group)
    levels = (1 << bits) - 1
    if symmetric:
        amax = np.abs(g).max(axis=2)
        scale = (amax / np.float32((1 << (bits - 1)) - 1)).astype(np.float32)
        zp = np.full((n, blocks), 1 << (bits - 1), dtype=np.float32)
        zero = amax == 0
    else:
        lo = np.minimum(g.min(axis=2), 0)
        hi = np.maximum(g.max(axis=2), 0)
        scale = ((hi - lo) / np.float32(levels)).astype(np.float32)
        zero = hi == lo
    if scale_type == "f16":
        scale = scale.astype(np.float16).astype(np.float32)
        scale = np.maximum(scale, np.float32(2.0 ** -24))
    else:
        scale = np.maximum(scale, np.float32(np.finfo(np.float32).smallest_subnormal))
    # All-zero groups: scale 0, codes = the zero point (docs/quantization.md).
    scale = np.where(zero, np.float32(0), scale).astype(np.float32)
    safe = np.where(zero, np.float32(1), scale)
    if not symmetric:
        zp = np.clip(np.rint(-lo / safe), 0, levels).astype(np.float32)
        zp = np.where(zero, np.float32(0), zp)
    q = np.clip(np.rint(g / safe[:, :, None]) + zp[:, :, None], 0, levels)
    deq = (q - zp[:, :, None]) * scale[:, :, None]
    return deq.reshape(n, -1)[:, :k].astype(np.float32)


LAYERS = [(48, 64), (24, 48)]  # (N, K): x[.., 64] -> 48 -> 24


def quantization(build, work, failures):
    ws = [RNG.standard_normal((n, k)).astype(np.float32) * 0.2
          for n, k in LAYERS]
    ws[0][3, :] = 0  # an all-zero row: scale 0, exact zeros
    # The last layer's outputs are observed directly: output 5 has all-zero
    # weights (every group), output 7 one all-zero group of 16 (of the
    # grouped configurations). Output 5 must be exactly 0.
    ws[1][5, :] = 0
    ws[1][7, 16:32] = 0
    m = 6
    lines, v = [], "%x"
    for i, (w, (n, k)) in enumerate(zip(ws, LAYERS)):
        lines.append(f"%w{i} = quench.constant dense<{hexdata(w)}> : "
                     f"tensor<{n}x{k}xf32>")
        lines.append(f"%h{i} = quench.linear {v}, %w{i} : (tensor<{m}x{k}xf32>, "
                     f"tensor<{n}x{k}xf32>) -> tensor<{m}x{n}xf32>")
        v = f"%h{i}"
    text = (f'func.func @main(%x: tensor<{m}x{LAYERS[0][1]}xf32> '
            f'{{quench.name = "x"}}) -> (tensor<{m}x{LAYERS[-1][0]}xf32> '
            f'{{quench.name = "y"}}) {{\n  ' + "\n  ".join(lines) +
            f"\n  return {v} : tensor<{m}x{LAYERS[-1][0]}xf32>\n}}\n")
    model = os.path.join(work, "float.mlir")
    with open(model, "w") as f:
        f.write(text)
    x = RNG.standard_normal((m, LAYERS[0][1])).astype(np.float32)
    xpath = os.path.join(work, "x.npy")
    np.save(xpath, x)
    configs = [
        ("w8a16", [], 8, 0, True, "f16"),
        ("w4a16", [], 4, 32, True, "f16"),
        ("w4a16", ["--asymmetric", "--scale-type=f32"], 4, 32, False, "f32"),
        ("w2a16", ["--group-size=16"], 2, 16, True, "f16"),
    ]
    for quant, extra, bits, group, sym, st in configs:
        label = " ".join([f"--quant={quant}"] + extra)
        exe = os.path.join(work, "q")
        report = os.path.join(work, "report.json")
        out = run([os.path.join(build, "bin", "quench-compile"), model, "-o",
                   exe, f"--quant={quant}", f"--report={report}"] + extra)
        with open(report) as f:
            rep = json.load(f)
        if len(rep["layers"]) != len(LAYERS) or "size report" not in out.stdout:
            print(f"FAIL {label}: size report incomplete")
            failures.append(label)
        odir = os.path.join(work, "out")
        os.makedirs(odir, exist_ok=True)
        run([exe, "--input", f"x={xpath}", "--output-dir", odir])
        got = np.load(os.path.join(odir, "y.npy")).astype(np.float64)
        # Reference: both layers with the dequantized weights, the bound
        # accumulated through both.
        wq0 = rtn_reference(ws[0], bits, group, sym, st)
        wq1 = rtn_reference(ws[1], bits, group, sym, st)
        h0 = x.astype(np.float64) @ wq0.astype(np.float64).T
        ref = h0 @ wq1.astype(np.float64).T
        bound = 1e-5 * ((np.abs(x) @ np.abs(wq0).T) @ np.abs(wq1).T) + 1e-5
        err = np.abs(got - ref)
        zero_out = not np.any(got[:, 5])
        ok = np.all(err <= bound) and zero_out
        print(f"{'ok  ' if ok else 'FAIL'} {label}: max |err| "
              f"{float(err.max()):.3g}, all-zero output exactly 0 {zero_out}, "
              f"weights {rep['linear_weight_bytes_before']}"
              f" -> {rep['linear_weight_bytes_after']} bytes")
        if not ok:
            failures.append(label)


# --quant-embeddings variants: (label, flags, table scheme (bits, group,
# symmetric, scale type), head scheme). int8 keeps its own form (i8 codes,
# f32 row scales); the others are matmul_nbits-layout codes expanded by
# quench.dequantize_nbits after the lookup.
EMBEDDING_CASES = [
    ("int8", ["--quant-embeddings"], (8, 0, True, "f32"), True),
    ("int4", ["--quant-embeddings=int4"], (4, 32, True, "f16"), True),
    ("int4 per row f32", ["--quant-embeddings=int4", "--embedding-group-size=0",
                          "--scale-type=f32"], (4, 0, True, "f32"), True),
    ("int2 g8 asym", ["--quant-embeddings=int2", "--embedding-group-size=8",
                      "--asymmetric"], (2, 8, False, "f16"), False),
]


def embeddings(build, work, failures):
    """--quant-embeddings[=int8|int4|int2]: a table [V, D] looked up by token
    ids [2, 5], tied to an output projection (the table is also the head's
    weight, as in models with shared embeddings); the lookup must equal the
    table's round-to-nearest rows (the NumPy reference of the scheme)
    exactly, the head the W8A16 reference, the report must give the table's
    bytes, and no float copy of the table may remain."""
    v, d, b, t = 50, 72, 2, 5  # 72 = 2 x 32 + 8: a padded last group
    table = RNG.standard_normal((v, d)).astype(np.float32)
    table[7] = 0  # an all-zero row: scale 0, exact zeros
    ids = RNG.integers(0, v, (b, t)).astype(np.int64)
    ids[0, 0] = 7
    text = (f'func.func @main(%ids: tensor<{b}x{t}xi64> {{quench.name = "ids"}})'
            f' -> (tensor<{b}x{t}x{d}xf32> {{quench.name = "emb"}}, '
            f'tensor<{b}x{t}x{v}xf32> {{quench.name = "logits"}}) {{\n'
            f'  %w = quench.constant dense<{hexdata(table)}> : tensor<{v}x{d}xf32>\n'
            f'  %e = quench.gather %w[%ids] {{axis = 0 : i64}} : (tensor<{v}x{d}xf32>,'
            f' tensor<{b}x{t}xi64>) -> tensor<{b}x{t}x{d}xf32>\n'
            f'  %l = quench.linear %e, %w : (tensor<{b}x{t}x{d}xf32>, '
            f'tensor<{v}x{d}xf32>) -> tensor<{b}x{t}x{v}xf32>\n'
            f'  return %e, %l : tensor<{b}x{t}x{d}xf32>, tensor<{b}x{t}x{v}xf32>\n}}\n')
    model = os.path.join(work, "embedding.mlir")
    with open(model, "w") as f:
        f.write(text)
    idpath = os.path.join(work, "ids.npy")
    np.save(idpath, ids)
    for n, (label, flags, (bits, group, sym, stype), head_sym) in \
            enumerate(EMBEDDING_CASES):
        exe = os.path.join(work, f"emb{n}")
        report = os.path.join(work, f"emb{n}.json")
        run([os.path.join(build, "bin", "quench-compile"), model, "-o", exe,
             "--quant=w8a16", f"--report={report}"] + flags)
        with open(report) as f:
            rep = json.load(f)
        odir = os.path.join(work, f"emb{n}-out")
        os.makedirs(odir, exist_ok=True)
        run([exe, "--input", f"ids={idpath}", "--output-dir", odir])
        emb = np.load(os.path.join(odir, "emb.npy"))
        logits = np.load(os.path.join(odir, "logits.npy")).astype(np.float64)
        deq = rtn_reference(table, bits, group, sym, stype)
        ok_emb = np.array_equal(emb, deq[ids])
        head_stype = "f32" if "--scale-type=f32" in flags else "f16"
        wq = rtn_reference(table, 8, 0, head_sym, head_stype).astype(np.float64)
        ref = emb.astype(np.float64) @ wq.T
        # The fused kernel applies a group's scale to sum x*q - zp*sum x
        # (docs/lowering.md), so its rounding also scales with zp * scale *
        # sum|x|; the all-zero row (scale 0) gives exactly 0.
        absmax = np.abs(table).max(axis=1)
        bound = (1e-5 * (np.abs(emb) @ np.abs(wq).T) +
                 2e-6 * 256 * np.abs(emb).sum(-1, keepdims=True) * absmax / 127
                 + 1e-6)
        ok_head = np.all(np.abs(logits - ref) <= bound) and \
            not np.any(logits[:, :, 7])
        # The table's bytes: codes, scales (and float zero points), as the
        # report states them; the head is its own W8A16 copy; nothing float
        # is left.
        g = group or (d + 7) // 8 * 8
        groups = (d + g - 1) // g
        sbytes = 4 if stype == "f32" else 2
        if bits == 8 and group == 0:
            expect = v * d + 4 * v
        else:
            expect = (v * groups * g * bits // 8 + v * groups * sbytes *
                      (1 if sym else 2))
        tables = [l for l in rep["layers"] if l.get("kind") == "embedding"]
        ok_size = (len(tables) == 1 and tables[0]["bytes_after"] == expect and
                   rep["embedding_bytes_after"] == expect and
                   rep["constant_bytes_after"] <=
                   expect + rep["linear_weight_bytes_after"] + 64 and
                   not any(l["float_weight_kept"] for l in rep["layers"]))
        ok = ok_emb and ok_head and ok_size
        print(f"{'ok  ' if ok else 'FAIL'} --quant-embeddings {label}: lookup "
              f"exact {ok_emb}, head within bound {ok_head}, table "
              f"{rep['embedding_bytes_before']} -> "
              f"{rep['embedding_bytes_after']} bytes (expected {expect}), "
              f"constants {rep['constant_bytes_before']} -> "
              f"{rep['constant_bytes_after']}")
        if not ok:
            failures.append(f"--quant-embeddings {label}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--keep", help="keep the work files in this directory")
    a = ap.parse_args()
    work = a.keep or tempfile.mkdtemp(prefix="quench-quant-matmul-")
    os.makedirs(work, exist_ok=True)
    failures = []
    kernels(os.path.abspath(a.build), work, failures)
    quantization(os.path.abspath(a.build), work, failures)
    embeddings(os.path.abspath(a.build), work, failures)
    if failures:
        print(f"quant-matmul: {len(failures)} failed: {', '.join(failures)}")
        return 1
    print("quant-matmul: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
