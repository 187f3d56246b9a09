#!/usr/bin/env python3
"""End-to-end check of f32 models whose weights are stored in half precision
(f16/bf16 initializers, each feeding a Cast to float before its product):
quench-raise-ops makes the half-precision constant the weight of the
quench.linear (docs/scaling.md, "f16 weights"), so --quant quantizes it and
--quant=none keeps it in half precision with f32 arithmetic.

1. Patterns. A chain of five layers written the ways exporters write them,
   all with cast weights (and cast biases): MatMul + Add, Gemm transB=1,
   Gemm transB=0, MatMul of Transpose(Cast(W)), MatMul of
   Cast(Transpose(W)) with a bf16 W. --quant=none must compute the f32
   model with the weights widened exactly (NumPy in f64, |err| <= 1e-5 *
   (1 + max |y|)) and leave every linear's weight in half precision (the
   prepared IR); --quant=w8a16 must quantize all five (size report: 2 bytes
   per weight before) and, with --int8-dot=false (the float kernel), match
   NumPy's dequantize-then-matmul of the documented RTN scheme
   (test/e2e/quant_matmul.py's reference) to the same bound; the default
   build (int16 activations on a VNNI host) must stay within 5 * 2^-14 of
   max |y| of that run.

2. A LLaMA-shaped model (bench/gen_llama_onnx.py, dim 64, 2 layers, GQA
   4/2, vocab 128, seq 8) with f16 weights in both of the generator's
   styles: --f16-style cast (the f32 graph above) and torch (the graph
   computes in f16). At --quant=w4a16 the cast-style size report must list
   every linear layer (7 per block and the head) as quantized, with the
   same bytes before and after as the torch-style model; its logits'
   error against its own float model (relative RMS) must be at most 1.5x
   the torch-style model's against its float model plus 1e-3, and the two
   float models must agree (relative RMS below 1e-2: f16 activations).

Usage: half_weights.py --build BUILD_DIR [--keep DIR]
Run through CTest: `ctest -L e2e -R half-weights`.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from quant_matmul import rtn_reference  # noqa: E402

PY = sys.executable
RNG = np.random.default_rng(20261206)


def run(cmd):
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(f"command failed: {' '.join(cmd)}\n{res.stdout}"
                         f"{res.stderr}\n")
        sys.exit(1)
    return res


def bf16_round(a):
    """float32 -> the nearest bf16 value (ties to even), as float32."""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16
    return u.astype(np.uint32).view(np.float32)


def bf16_tensor(name, a):
    """A BFLOAT16 initializer holding bf16_round(a)."""
    bits = (bf16_round(a).view(np.uint32) >> 16).astype(np.uint16)
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.BFLOAT16
    t.dims.extend(a.shape)
    t.raw_data = bits.tobytes()
    return t


def pattern_model(path):
    """Five layers, N = 64, K = 72 for the first (not a multiple of the
    quantizer's 16-row blocks of transposed reads) and 64 after, every
    weight and bias a cast initializer. Returns the layers as (weight
    [N, K] float64, bias or None)."""
    k, k0 = 64, 72
    inits, nodes, layers = [], [], []
    x = "x"

    def cast(name):
        out = name + "_f32"
        nodes.append(helper.make_node("Cast", [name], [out], to=TensorProto.FLOAT))
        return out

    def weight(i, shape, dtype=np.float16):
        w = (RNG.standard_normal(shape) / np.sqrt(k)).astype(np.float32)
        name = f"w{i}"
        if dtype == "bf16":
            inits.append(bf16_tensor(name, w))
            w = bf16_round(w)
        else:
            w = w.astype(np.float16)
            inits.append(numpy_helper.from_array(w, name))
        return name, w.astype(np.float64)

    def bias(i):
        b = (RNG.standard_normal(k) * 0.1).astype(np.float16)
        inits.append(numpy_helper.from_array(b, f"b{i}"))
        return cast(f"b{i}"), b.astype(np.float64)

    # 0: MatMul(x, Cast(W [K, N])) + Cast(b)
    w, wv = weight(0, (k0, k))
    b, bv = bias(0)
    nodes.append(helper.make_node("MatMul", [x, cast(w)], ["m0"], name="mm0"))
    nodes.append(helper.make_node("Add", ["m0", b], ["y0"]))
    layers.append((wv.T, bv))
    # 1: Gemm(x, Cast(W [N, K]), Cast(b), transB=1)
    w, wv = weight(1, (k, k))
    b, bv = bias(1)
    nodes.append(helper.make_node("Gemm", ["y0", cast(w), b], ["y1"],
                                  name="gemm1", transB=1))
    layers.append((wv, bv))
    # 2: Gemm(x, Cast(W [K, N]), Cast(b)), transB=0
    w, wv = weight(2, (k, k))
    b, bv = bias(2)
    nodes.append(helper.make_node("Gemm", ["y1", cast(w), b], ["y2"],
                                  name="gemm2"))
    layers.append((wv.T, bv))
    # 3: MatMul(x, Transpose(Cast(W [N, K])))
    w, wv = weight(3, (k, k))
    nodes.append(helper.make_node("Transpose", [cast(w)], ["t3"], perm=[1, 0]))
    nodes.append(helper.make_node("MatMul", ["y2", "t3"], ["y3"], name="mm3"))
    layers.append((wv, None))
    # 4: MatMul(x, Cast(Transpose(W [N, K] bf16)))
    w, wv = weight(4, (k, k), "bf16")
    nodes.append(helper.make_node("Transpose", [w], ["t4"], perm=[1, 0]))
    nodes.append(helper.make_node("MatMul", ["y3", cast("t4")], ["y"],
                                  name="mm4"))
    layers.append((wv, None))
    graph = helper.make_graph(
        nodes, "half_weights",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, k0])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, k])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return layers


def forward(x, layers, weight=lambda w: w):
    h = x.astype(np.float64)
    for w, b in layers:
        h = h @ weight(w).astype(np.float64).T
        if b is not None:
            h = h + b
    return h


def patterns(build, work, failures):
    qc = os.path.join(build, "bin", "quench-compile")
    model = os.path.join(work, "patterns.onnx")
    layers = pattern_model(model)
    x = RNG.standard_normal((3, 72)).astype(np.float32)
    xpath = os.path.join(work, "x.npy")
    np.save(xpath, x)

    # The prepared IR: five linears, each weight the half-precision constant.
    ir = run([qc, model, "-o", "-", "--stop-after-stage=prepare"]).stdout
    lin = [l for l in ir.splitlines() if "quench.linear" in l]
    half = [l for l in lin if re.search(r"tensor<64x\d+xb?f16>", l)]
    ok = len(lin) == 5 and len(half) == 5 and "quench.matmul " not in ir
    print(f"{'ok  ' if ok else 'FAIL'} patterns: {len(lin)} linears, "
          f"{len(half)} with half-precision weights")
    if not ok:
        failures.append("patterns raised")

    # The W8A16 reference is exact for the float kernel (--int8-dot=false);
    # with int8-dot on a VNNI host the kernel rounds each layer's input to
    # int16 per row and block (docs/lowering.md, "Int16 activations"):
    # that run is compared with the float one, within 2^-14 of max |y| per
    # layer (five layers).
    outputs = {}
    for quant, extra in (("none", []), ("w8a16", ["--int8-dot=false"]),
                         ("w8a16", [])):
        tag = quant + "".join(extra).replace("--", "-").replace("=", "-")
        exe = os.path.join(work, "patterns-" + tag)
        report = os.path.join(work, f"patterns-{tag}.json")
        run([qc, model, "-o", exe, f"--quant={quant}",
             f"--report={report}"] + extra)
        odir = os.path.join(work, "out-" + tag)
        os.makedirs(odir, exist_ok=True)
        run([exe, "--input", f"x={xpath}", "--output-dir", odir])
        got = np.load(os.path.join(odir, "y.npy")).astype(np.float64)
        outputs[tag] = got
        label = " ".join([f"patterns --quant={quant}"] + extra)
        if quant == "w8a16" and not extra:
            ref = outputs["w8a16-int8-dot-false"]
            err = float(np.max(np.abs(got - ref)))
            bound = 5 * 2.0 ** -14 * float(np.max(np.abs(ref)))
            ok = got.shape == ref.shape and err <= bound
            print(f"{'ok  ' if ok else 'FAIL'} {label} (against "
                  f"--int8-dot=false): max |diff| {err:.3g} "
                  f"(bound {bound:.3g})")
            if not ok:
                failures.append(label)
            continue
        if quant == "none":
            ref = forward(x, layers)
        else:
            with open(report) as f:
                rep = json.load(f)
            quantized = [l for l in rep["layers"]
                         if l["scheme"].startswith("int8")]
            before = rep["linear_weight_bytes_before"]
            want = (4 * 64 + 72) * 64 * 2
            if len(quantized) != 5 or before != want:
                print(f"FAIL {label}: {len(quantized)} of 5 layers quantized, "
                      f"{before} weight bytes before (expected {want})")
                failures.append(label + " report")
            ref = forward(x, layers, lambda w: rtn_reference(
                w.astype(np.float32), 8, 0, True, "f16"))
        err = float(np.max(np.abs(got - ref)))
        bound = 1e-5 * (1 + float(np.max(np.abs(ref))))
        ok = got.shape == ref.shape and err <= bound
        print(f"{'ok  ' if ok else 'FAIL'} {label}: max |err| {err:.3g} "
              f"(bound {bound:.3g})")
        if not ok:
            failures.append(label)


def llama(build, work, failures):
    qc = os.path.join(build, "bin", "quench-compile")
    seq, vocab = 8, 128
    ids = RNG.integers(0, vocab, size=(1, seq)).astype(np.int64)
    ids_path = os.path.join(work, "ids.npy")
    np.save(ids_path, ids)
    logits, reports = {}, {}
    for style in ("cast", "torch"):
        model = os.path.join(work, f"llama-{style}.onnx")
        run([PY, os.path.join(SRC, "bench", "gen_llama_onnx.py"), model,
             "--dim", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2",
             "--hidden", "96", "--vocab", str(vocab), "--seq", str(seq),
             "--dtype", "f16", "--f16-style", style])
        for quant in ("none", "w4a16"):
            exe = os.path.join(work, f"llama-{style}-{quant}")
            report = os.path.join(work, f"llama-{style}-{quant}.json")
            run([qc, model, "-o", exe, f"--quant={quant}",
                 f"--report={report}"])
            if quant != "none":
                with open(report) as f:
                    reports[style] = json.load(f)
            odir = os.path.join(work, f"out-{style}-{quant}")
            os.makedirs(odir, exist_ok=True)
            run([exe, "--input", f"input_ids={ids_path}", "--output-dir", odir])
            logits[style, quant] = np.load(
                os.path.join(odir, "logits.npy")).astype(np.float64)

    rep = reports["cast"]
    layers = [l for l in rep["layers"] if l.get("kind") != "embedding"]
    quantized = [l for l in layers if l["scheme"].startswith("int4")]
    expected = 7 * 2 + 1
    same_bytes = all(rep[k] == reports["torch"][k] for k in
                     ("linear_weight_bytes_before", "linear_weight_bytes_after"))
    ok = (len(layers) == expected and len(quantized) == expected and
          rep["linear_weight_bytes_before"] > 0 and same_bytes)
    print(f"{'ok  ' if ok else 'FAIL'} llama cast-style --quant=w4a16: "
          f"{len(quantized)} of {len(layers)} layers quantized (expected "
          f"{expected}), weights {rep['linear_weight_bytes_before']} -> "
          f"{rep['linear_weight_bytes_after']} bytes (torch style: "
          f"{reports['torch']['linear_weight_bytes_before']} -> "
          f"{reports['torch']['linear_weight_bytes_after']})")
    if not ok:
        failures.append("llama report")

    def rel(a, b):
        return float(np.sqrt(np.mean((a - b) ** 2) / np.mean(b ** 2)))

    floats = rel(logits["cast", "none"], logits["torch", "none"])
    e_cast = rel(logits["cast", "w4a16"], logits["cast", "none"])
    e_torch = rel(logits["torch", "w4a16"], logits["torch", "none"])
    finite = all(np.all(np.isfinite(v)) for v in logits.values())
    ok = finite and floats < 1e-2 and 0 < e_cast <= 1.5 * e_torch + 1e-3
    print(f"{'ok  ' if ok else 'FAIL'} llama logits (relative RMS): float "
          f"cast vs torch style {floats:.3g}; w4a16 vs float: cast style "
          f"{e_cast:.3g}, torch style {e_torch:.3g}")
    if not ok:
        failures.append("llama accuracy")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--keep", help="keep the work files in this directory")
    a = ap.parse_args()
    work = a.keep or tempfile.mkdtemp(prefix="quench-half-weights-")
    os.makedirs(work, exist_ok=True)
    failures = []
    try:
        patterns(os.path.abspath(a.build), work, failures)
        llama(os.path.abspath(a.build), work, failures)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        print(f"half-weights: {len(failures)} failed: {', '.join(failures)}")
        return 1
    print("half-weights: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
