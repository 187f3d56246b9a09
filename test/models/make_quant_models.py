#!/usr/bin/python3
"""Writes small pre-quantized ONNX models (QDQ, integer ops, MatMulNBits).

The models exercise every form of pre-quantized matmul that Quench imports
(docs/quantization.md, "Pre-quantized ONNX"), built with onnx.helper and
NumPy only (seeded, deterministic):

  qdq_*               QuantizeLinear(x) -> DequantizeLinear -> MatMul/Gemm
                      with a DequantizeLinear'd int8 weight, with or without
                      an output QuantizeLinear (quench-fold-qdq's patterns):
                      u8 activations x s8 weights per tensor and per output
                      column, an s8 x s8 variant, a Gemm (transB) with bias
  qlinear_matmul_*    QLinearMatMul, u8 x s8 per column and u8 x u8
  matmul_integer_*    MatMulInteger with zero points, u8 x s8 and u8 x u8
  dyn_matmul_integer  DynamicQuantizeLinear + MatMulInteger + Cast + Mul
                      (ONNX Runtime's dynamic quantization format)
  nbits_b{4,8}_g*     com.microsoft MatMulNBits, 4 and 8 bits, blocks of
                      16/32/128, with/without zero points and bias, K not a
                      multiple of the block
  saturation_u8s8     MatMulInteger whose u8 x s8 pair sums exceed int16
                      (ONNX Runtime's AVX2 vpmaddubsw path saturates them)

Weights of the u8 x s8 models other than saturation_u8s8 use 7-bit codes
([-64, 63], ONNX Runtime's `reduce_range`), so that no product pair
exceeds int16 and ONNX Runtime's AVX2 kernels are exact on them.

For every model NAME the output directory receives NAME.onnx, one
NAME.in.<input>.npy per graph input, and, where the result is defined
exactly by integer arithmetic, NAME.ref.<output>.npy (NumPy, int64 math);
manifest.json lists the models, inputs, outputs and their kinds ("int":
compared bit-exactly, "float": within a tolerance) and, for QDQ models,
the op quench-fold-qdq must produce ("folded_to").

Usage: make_quant_models.py --out-dir DIR [--only NAME ...] [--list]
"""

import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F32 = np.float32
OPSET = 17
MS_DOMAIN = "com.microsoft"

NP_TO_ONNX = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.uint8): TensorProto.UINT8,
    np.dtype(np.int8): TensorProto.INT8,
    np.dtype(np.int32): TensorProto.INT32,
}


class Model:
    """One graph under construction: nodes, initializers, inputs (with
    their saved values) and outputs."""

    def __init__(self, name, seed):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []
        self.values = {}  # input name -> array
        self.refs = {}  # output name -> exact reference
        self.kinds = {}  # output name -> "int" | "float"
        self.ms = False
        # The quench op quench-fold-qdq must turn the QDQ product into.
        self.folded_to = None

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def input(self, name, array):
        self.values[name] = array
        self.inputs.append(helper.make_tensor_value_info(
            name, NP_TO_ONNX[array.dtype], list(array.shape)))
        return name

    def output(self, name, dtype, shape, kind, ref=None):
        self.outputs.append(helper.make_tensor_value_info(
            name, NP_TO_ONNX[np.dtype(dtype)], list(shape)))
        self.kinds[name] = kind
        if ref is not None:
            self.refs[name] = ref

    def node(self, op, ins, outs, domain=None, **attrs):
        self.nodes.append(helper.make_node(
            op, ins, outs, name=f"/{op}_{len(self.nodes)}", domain=domain,
            **attrs))
        if domain == MS_DOMAIN:
            self.ms = True

    def write(self, out_dir):
        graph = helper.make_graph(self.nodes, self.name, self.inputs,
                                  self.outputs, self.inits)
        opsets = [helper.make_opsetid("", OPSET)]
        if self.ms:
            opsets.append(helper.make_opsetid(MS_DOMAIN, 1))
        model = helper.make_model(graph, opset_imports=opsets,
                                  producer_name="quench-make-quant-models")
        model.ir_version = 8
        if not self.ms:  # the checker does not know contrib operators
            onnx.checker.check_model(model)
        onnx.save(model, os.path.join(out_dir, self.name + ".onnx"))
        for n, v in self.values.items():
            np.save(os.path.join(out_dir, f"{self.name}.in.{n}.npy"), v)
        for n, v in self.refs.items():
            np.save(os.path.join(out_dir, f"{self.name}.ref.{n}.npy"), v)
        return {"name": self.name, "inputs": list(self.values),
                "folded_to": self.folded_to,
                "outputs": [{"name": o.name, "kind": self.kinds[o.name],
                             "exact_ref": o.name in self.refs}
                            for o in self.outputs]}


# ---------------------------------------------------------------------------
# Quantization helpers (the calibration a quantizer would have done)
# ---------------------------------------------------------------------------
def u8_params(x):
    """Asymmetric u8 scale / zero point covering [min(x, 0), max(x, 0)]."""
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = F32((hi - lo) / 255.0)
    zp = np.uint8(np.clip(np.rint(-lo / scale), 0, 255))
    return np.array(scale, F32), np.array(zp, np.uint8)


def s8_weight(w, axis, qmax=63):
    """Symmetric int8 codes of `w` in [-qmax-1, qmax] per tensor (axis
    None) or per index of `axis`; returns codes, scale, zero point."""
    if axis is None:
        scale = np.array(np.abs(w).max() / qmax, F32)
    else:
        red = tuple(d for d in range(w.ndim) if d != axis)
        scale = (np.abs(w).max(axis=red) / qmax).astype(F32)
    shape = [1] * w.ndim
    if axis is not None:
        shape[axis] = -1
    q = np.clip(np.rint(w / scale.reshape(shape)), -qmax - 1, qmax)
    return q.astype(np.int8), scale, np.zeros(scale.shape, np.int8)


def act(m, shape, spread=1.0):
    return (m.rng.standard_normal(shape) * spread).astype(F32)


# ---------------------------------------------------------------------------
# QDQ models
# ---------------------------------------------------------------------------
def qdq_matmul(name, per_channel, out_q, s8_act=False, seed=0):
    """Q(x) -> DQ -> MatMul(., DQ(W)) [-> Q]: x [2, 5, 96], W [96, 40]."""
    m = Model(name, seed)
    k, n = 96, 40
    x = act(m, (2, 5, k))
    w = (m.rng.standard_normal((k, n)) * 0.1).astype(F32)
    if s8_act:
        xs = np.array(np.abs(x).max() / 127, F32)
        xz = np.array(0, np.int8)
    else:
        xs, xz = u8_params(x)
    wq, ws, wz = s8_weight(w, 1 if per_channel else None)
    m.input("x", x)
    m.node("QuantizeLinear", ["x", m.const("x_scale", xs),
                              m.const("x_zp", xz)], ["xq"])
    m.node("DequantizeLinear", ["xq", "x_scale", "x_zp"], ["xd"])
    m.node("DequantizeLinear", [m.const("w_q", wq), m.const("w_scale", ws),
                                m.const("w_zp", wz)], ["wd"], axis=1)
    m.folded_to = "quench.qlinear_matmul" if out_q else "quench.matmul_integer"
    if not out_q:
        m.node("MatMul", ["xd", "wd"], ["y"])
        m.output("y", F32, (2, 5, n), "float")
        return m
    m.node("MatMul", ["xd", "wd"], ["yf"])
    # Output range from the float product (what calibration would record).
    ys, yz = u8_params(x @ w)
    m.node("QuantizeLinear", ["yf", m.const("y_scale", ys),
                              m.const("y_zp", yz)], ["y"])
    m.output("y", np.uint8, (2, 5, n), "int")
    return m


def qdq_gemm_bias(name, seed=0):
    """Gemm(DQ(Q(x)), DQ(W [N, K]) per row, bias, transB=1): a linear."""
    m = Model(name, seed)
    k, n = 64, 24
    x = act(m, (7, k))
    w = (m.rng.standard_normal((n, k)) * 0.1).astype(F32)
    b = (m.rng.standard_normal(n) * 0.5).astype(F32)
    xs, xz = u8_params(x)
    wq, ws, wz = s8_weight(w, 0)
    m.input("x", x)
    m.node("QuantizeLinear", ["x", m.const("x_scale", xs),
                              m.const("x_zp", xz)], ["xq"])
    m.node("DequantizeLinear", ["xq", "x_scale", "x_zp"], ["xd"])
    m.node("DequantizeLinear", [m.const("w_q", wq), m.const("w_scale", ws),
                                m.const("w_zp", wz)], ["wd"], axis=0)
    m.node("Gemm", ["xd", "wd", m.const("bias", b)], ["y"], transB=1)
    m.folded_to = "quench.matmul_integer"
    m.output("y", F32, (7, n), "float")
    return m


# ---------------------------------------------------------------------------
# Integer operators
# ---------------------------------------------------------------------------
def matmul_integer_ref(a, b, az, bz):
    return ((a.astype(np.int64) - az.astype(np.int64)) @
            (b.astype(np.int64) - bz.astype(np.int64))).astype(np.int32)


def qlinear_matmul(name, signed_b, seed=0):
    """QLinearMatMul: a u8 [6, 80] x b [80, 32] (s8 per column, or u8 per
    tensor) -> u8."""
    m = Model(name, seed)
    k, n = 80, 32
    a = m.rng.integers(0, 256, (6, k)).astype(np.uint8)
    if signed_b:
        b = m.rng.integers(-64, 64, (k, n)).astype(np.int8)
        bs = (m.rng.uniform(0.5, 2.0, n) * 1e-3).astype(F32)
        bz = np.zeros(n, np.int8)
    else:
        b = m.rng.integers(0, 256, (k, n)).astype(np.uint8)
        bs = np.array(1.3e-3, F32)
        bz = np.array(131, np.uint8)
    az = np.array(121, np.uint8)
    acc = matmul_integer_ref(a, b, az, bz).astype(np.float64)
    real = acc * 0.02 * bs.astype(np.float64)
    ys = np.array((real.max() - real.min()) / 255, F32)
    yz = np.array(np.clip(np.rint(-real.min() / ys), 0, 255), np.uint8)
    m.input("a", a)
    m.node("QLinearMatMul",
           ["a", m.const("a_scale", np.array(0.02, F32)), m.const("a_zp", az),
            m.const("b", b), m.const("b_scale", bs), m.const("b_zp", bz),
            m.const("y_scale", ys), m.const("y_zp", yz)], ["y"])
    m.output("y", np.uint8, (6, n), "int")
    return m


def matmul_integer(name, signed_b, seed=0):
    """MatMulInteger: a u8 [3, 4, 72] x b [72, 20] with zero points (per
    column for s8 b) -> i32; NumPy's exact product saved as reference."""
    m = Model(name, seed)
    k, n = 72, 20
    a = m.rng.integers(0, 256, (3, 4, k)).astype(np.uint8)
    az = np.array(117, np.uint8)
    if signed_b:
        b = m.rng.integers(-64, 64, (k, n)).astype(np.int8)
        bz = m.rng.integers(-3, 4, n).astype(np.int8)
    else:
        b = m.rng.integers(0, 256, (k, n)).astype(np.uint8)
        bz = np.array(140, np.uint8)
    m.input("a", a)
    m.node("MatMulInteger", ["a", m.const("b", b), m.const("a_zp", az),
                             m.const("b_zp", bz)], ["y"])
    m.output("y", np.int32, (3, 4, n), "int", matmul_integer_ref(a, b, az, bz))
    return m


def dyn_matmul_integer(name, seed=0):
    """ONNX Runtime's dynamic quantization of a MatMul: x f32 [2, 6, 64] ->
    DynamicQuantizeLinear -> MatMulInteger(s8 weight) -> Cast -> Mul by
    x_scale * w_scale -> f32."""
    m = Model(name, seed)
    k, n = 64, 48
    x = act(m, (2, 6, k), 2.0)
    w = (m.rng.standard_normal((k, n)) * 0.05).astype(F32)
    wq, ws, _ = s8_weight(w, None)
    m.input("x", x)
    m.node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"])
    m.node("MatMulInteger", ["xq", m.const("w_q", wq), "xz"], ["acc"])
    m.node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT)
    m.node("Mul", ["xs", m.const("w_scale", ws)], ["s"])
    m.node("Mul", ["accf", "s"], ["y"])
    m.output("y", F32, (2, 6, n), "float")
    return m


def saturation(name, seed=0):
    """MatMulInteger u8 [4, 64] (values 250..255) x s8 [64, 16] (127/126 and
    -128/-127 in pairs along K): every pair sum a0*b0 + a1*b1 is about
    +-64000, far outside int16. No zero points."""
    m = Model(name, seed)
    k, n = 64, 16
    a = m.rng.integers(250, 256, (4, k)).astype(np.uint8)
    sign = np.where(m.rng.integers(0, 2, (k // 2, n)) == 1, 1, -1)
    sign = np.repeat(sign, 2, axis=0)  # both values of a K pair share a sign
    # Columns 0-3 keep one sign along K: the exact sums (~ +-2e6) are far
    # from anything a saturated pair sum could give.
    sign[:, :2] = 1
    sign[:, 2:4] = -1
    mag = m.rng.integers(0, 2, (k, n))
    b = np.where(sign > 0, 127 - mag, -128 + mag).astype(np.int8)
    m.input("a", a)
    m.node("MatMulInteger", ["a", m.const("b", b)], ["y"])
    zero = np.array(0, np.int64)
    m.output("y", np.int32, (4, n), "int", matmul_integer_ref(a, b, zero, zero))
    return m


# ---------------------------------------------------------------------------
# MatMulNBits
# ---------------------------------------------------------------------------
def pack(codes, bits):
    """Little-endian bit stream of unsigned `bits`-bit codes along the last
    axis (low nibble first for 4 bits)."""
    if bits == 8:
        return codes.astype(np.uint8)
    assert bits == 4 and codes.shape[-1] % 2 == 0
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)


def nbits(bits, block, with_zp, with_bias, k, seed=0):
    """MatMulNBits: x f32 [2, 3, K] x W [N=40, K] quantized in blocks of
    `block` along K (asymmetric with zero points, else symmetric around
    2^(bits-1)); K need not be a multiple of the block."""
    name = (f"nbits_b{bits}_g{block}_k{k}" + ("_zp" if with_zp else "") +
            ("_bias" if with_bias else ""))
    m = Model(name, seed)
    n = 40
    blocks = (k + block - 1) // block
    x = act(m, (2, 3, k))
    w = (m.rng.standard_normal((n, blocks * block)) * 0.1).astype(F32)
    w[:, k:] = 0
    wb = w.reshape(n, blocks, block)
    qmax = 2 ** bits - 1
    if with_zp:
        lo = np.minimum(wb.min(axis=2), 0)
        hi = np.maximum(wb.max(axis=2), 0)
        scale = ((hi - lo) / qmax).astype(F32)
        scale[scale == 0] = 1
        zp = np.clip(np.rint(-lo / scale), 0, qmax).astype(np.int64)
    else:
        scale = (np.abs(wb).max(axis=2) / (2 ** (bits - 1) - 1)).astype(F32)
        scale[scale == 0] = 1
        zp = np.full((n, blocks), 2 ** (bits - 1), np.int64)
    codes = np.clip(np.rint(wb / scale[..., None]) + zp[..., None], 0, qmax)
    codes = codes.astype(np.uint8)
    m.input("x", x)
    ins = ["x", m.const("w_q", pack(codes, bits).reshape(n, blocks, -1)),
           m.const("scales", scale.reshape(-1))]
    if with_zp:
        zrow = zp.astype(np.uint8)
        if bits == 4 and blocks % 2:
            zrow = np.concatenate([zrow, np.zeros((n, 1), np.uint8)], axis=1)
        ins.append(m.const("zero_points", pack(zrow, bits).reshape(-1)))
    elif with_bias:
        ins.append("")
    if with_bias:
        ins += ["", m.const("bias", (m.rng.standard_normal(n)).astype(F32))]
    m.node("MatMulNBits", ins, ["y"], domain=MS_DOMAIN, K=k, N=n, bits=bits,
           block_size=block)
    m.output("y", F32, (2, 3, n), "float")
    return m


def all_models():
    """name -> builder, in a fixed order."""
    out = {}

    def add(build, *args, **kw):
        mdl = build(*args, **kw)
        out[mdl.name] = mdl

    add(qdq_matmul, "qdq_matmul_u8s8_pt_q", False, True, seed=1)
    add(qdq_matmul, "qdq_matmul_u8s8_pc_q", True, True, seed=2)
    add(qdq_matmul, "qdq_matmul_u8s8_pt", False, False, seed=3)
    add(qdq_matmul, "qdq_matmul_u8s8_pc", True, False, seed=4)
    add(qdq_matmul, "qdq_matmul_s8s8_pc_q", True, True, s8_act=True, seed=5)
    add(qdq_gemm_bias, "qdq_gemm_u8s8_pc_bias", seed=6)
    add(qlinear_matmul, "qlinear_matmul_u8s8_pc", True, seed=7)
    add(qlinear_matmul, "qlinear_matmul_u8u8", False, seed=8)
    add(matmul_integer, "matmul_integer_u8s8", True, seed=9)
    add(matmul_integer, "matmul_integer_u8u8", False, seed=10)
    add(dyn_matmul_integer, "dyn_matmul_integer", seed=11)
    seed = 20
    for bits, block, zp, bias, k in [(4, 16, False, False, 256),
                                     (4, 32, True, False, 256),
                                     (4, 128, True, True, 200),
                                     (4, 32, False, True, 200),
                                     (8, 16, True, False, 256),
                                     (8, 32, False, False, 256),
                                     (8, 128, False, True, 256),
                                     (8, 32, True, True, 200)]:
        seed += 1
        add(nbits, bits, block, zp, bias, k, seed=seed)
    add(saturation, "saturation_u8s8", seed=40)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", required=False)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    models = all_models()
    if args.list:
        print("\n".join(models))
        return 0
    if not args.out_dir:
        ap.error("--out-dir is required")
    unknown = [n for n in args.only or [] if n not in models]
    if unknown:
        print(f"make_quant_models.py: error: unknown model(s) {unknown}",
              file=sys.stderr)
        return 1
    os.makedirs(args.out_dir, exist_ok=True)
    manifest = [mdl.write(args.out_dir) for name, mdl in models.items()
                if args.only is None or name in args.only]
    with open(os.path.join(args.out_dir, "manifest.json"), "w") as f:
        json.dump({"models": manifest}, f, indent=1)
    print(f"make_quant_models.py: wrote {len(manifest)} models to "
          f"{args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
