#!/usr/bin/python3
"""Precision of W8A16's int16-activation kernel (docs/lowering.md, "Int16
activations", 8-bit codes) against its float form on chained layers: L
random 1024 x 1024 MatMuls (weights normal / sqrt(K), seed 7) applied to
x [M, K] (normal), compiled with --quant=w8a16 once with the default
--int8-dot (int16 activations on a VNNI host) and once with
--int8-dot=false (codes converted to f32); prints max |difference| over
max |y|, overall and per row.

Usage: bench/w8a16_chain.py BUILD_DIR WORK_DIR
"""
import sys, subprocess, os
import numpy as np, onnx
from onnx import TensorProto, helper, numpy_helper
build, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
L, K, M = 8, 1024, 4
rng = np.random.default_rng(7)
nodes, inits = [], []
prev = "x"
for i in range(L):
    w = (rng.standard_normal((K, K)) / np.sqrt(K)).astype(np.float32)
    inits.append(numpy_helper.from_array(w, f"W{i}"))
    out = "y" if i == L - 1 else f"h{i}"
    nodes.append(helper.make_node("MatMul", [prev, f"W{i}"], [out], name=f"/l{i}/MatMul"))
    prev = out
g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [M, K])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [M, K])], inits)
model = os.path.join(work, "chain.onnx")
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), model)
x = rng.standard_normal((M, K)).astype(np.float32)
np.save(os.path.join(work, "x.npy"), x)
outs = {}
for label, flags in (("int16", []), ("float", ["--int8-dot=false"])):
    exe = os.path.join(work, "chain_" + label)
    subprocess.run([os.path.join(build, "bin", "quench-compile"), model, "-o", exe, "--quant=w8a16"] + flags, check=True, capture_output=True)
    od = os.path.join(work, "out_" + label); os.makedirs(od, exist_ok=True)
    subprocess.run([exe, "--input", "x=" + os.path.join(work, "x.npy"), "--output-dir", od], check=True, capture_output=True)
    outs[label] = np.load(os.path.join(od, "y.npy")).astype(np.float64)
a, b = outs["int16"], outs["float"]
print(f"{L} chained {K}x{K} W8A16 layers, M={M}: max|int16 - float| / max|y| = {np.abs(a-b).max()/np.abs(b).max():.3g}; per row: " +
      ", ".join(f"{np.abs(a[r]-b[r]).max()/np.abs(b[r]).max():.3g}" for r in range(M)))
