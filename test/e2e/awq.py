#!/usr/bin/python3
"""AWQ (quench-compile --algo=awq, docs/quantization.md "AWQ") end to end.

A small ONNX model with salient input channels: y = W2 (relu(W1 n) *
(W3 n)), n = LayerNorm(x) whose scale is 8x on every 16th channel (the
LLaMA MLP's shape: the norm absorbs the scales of the W1/W3 group, W3's
rows those of W2's input). Calibrated on 16 random inputs, compiled with
W4A16 g32 and W3A16 g32 by RTN, GPTQ (printed only), AWQ and AWQ+GPTQ,
and run on 16 other inputs: AWQ's output error (relative squared error
against the float executable) must be at most 0.8x RTN's, and AWQ+GPTQ's
below RTN's. The compile's remark must say that AWQ scaled the norm's
group (W2's input, without salient channels, is measured to quantize
best unscaled); --algo=awq without calibration fails with one message
and writes nothing.

Usage: awq.py --build BUILD_DIR [--work DIR]
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROWS, DIM, HIDDEN = 8, 64, 128


def make_model(path):
    rng = np.random.default_rng(0)
    gamma = np.ones(DIM, np.float32)
    gamma[3::16] = 8.0  # salient channels
    inits = [numpy_helper.from_array(gamma, "gamma"),
             numpy_helper.from_array(np.zeros(DIM, np.float32), "beta")]
    for name, shape in [("w1", (DIM, HIDDEN)), ("w3", (DIM, HIDDEN)),
                        ("w2", (HIDDEN, DIM))]:
        w = rng.normal(0, shape[0] ** -0.5, size=shape).astype(np.float32)
        inits.append(numpy_helper.from_array(w, name))
    nodes = [
        helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["n"],
                         axis=-1, epsilon=1e-5, name="/norm"),
        helper.make_node("MatMul", ["n", "w1"], ["a"], name="/w1/MatMul"),
        helper.make_node("Relu", ["a"], ["r"], name="/relu"),
        helper.make_node("MatMul", ["n", "w3"], ["b"], name="/w3/MatMul"),
        helper.make_node("Mul", ["r", "b"], ["h"], name="/mul"),
        helper.make_node("MatMul", ["h", "w2"], ["y"], name="/w2/MatMul"),
    ]
    graph = helper.make_graph(
        nodes, "awq_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [ROWS, DIM])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [ROWS, DIM])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)


def inputs(n, seed):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(ROWS, DIM)).astype(np.float32) for _ in range(n)]


def compile_model(qc, onnx_path, out, flags):
    r = subprocess.run([qc, onnx_path, "-o", out] + flags,
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("quench-compile %s failed:\n%s" % (" ".join(flags), r.stderr))
    return r.stderr


def run(exe, x, tmp):
    path = os.path.join(tmp, "x.npy")
    np.save(path, x)
    subprocess.run([exe, "--input", "x=" + path, "--output-dir", tmp],
                   check=True, stdout=subprocess.DEVNULL)
    return np.load(os.path.join(tmp, "y.npy")).astype(np.float64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--work")
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="quench-awq-")
    os.makedirs(work, exist_ok=True)
    qc = os.path.join(args.build, "bin", "quench-compile")
    onnx_path = os.path.join(work, "mlp.onnx")
    make_model(onnx_path)
    calib = os.path.join(work, "calib")
    for i, x in enumerate(inputs(16, seed=1)):
        os.makedirs(os.path.join(calib, "%02d" % i), exist_ok=True)
        np.save(os.path.join(calib, "%02d" % i, "x.npy"), x)
    tests = inputs(16, seed=2)
    tmp = tempfile.mkdtemp(dir=work)

    f32 = os.path.join(work, "mlp_f32")
    compile_model(qc, onnx_path, f32, [])
    ref = [run(f32, x, tmp) for x in tests]
    energy = sum(float((r ** 2).sum()) for r in ref)
    failures = []
    cache = os.path.join(work, "mlp.calib")
    for quant in ["w4a16", "w3a16"]:
        errors = {}
        for algo in ["rtn", "gptq", "awq", "awq+gptq"]:
            exe = os.path.join(work, "mlp_%s_%s" % (quant, algo))
            flags = ["--quant=" + quant, "--group-size=32", "--algo=" + algo]
            if algo != "rtn":
                flags += ["--calib=" + calib, "--calib-cache=" + cache]
            log = compile_model(qc, onnx_path, exe, flags)
            # The W1/W3 group (salient channels) is scaled; W2's input
            # has none and is measured to quantize best unscaled.
            if algo.startswith("awq") and \
                    "AWQ: scales migrated into 2 linears (1 of 2 groups)" \
                    not in log:
                failures.append("%s %s: AWQ did not scale the norm's group:"
                                "\n%s" % (quant, algo, log))
            errors[algo] = sum(float(((run(exe, x, tmp) - r) ** 2).sum())
                               for x, r in zip(tests, ref)) / energy
        print("%s g32 relative squared output error: RTN %.3e, GPTQ %.3e "
              "(%.2fx), AWQ %.3e (%.2fx), AWQ+GPTQ %.3e (%.2fx)" % (
                  quant, errors["rtn"], errors["gptq"],
                  errors["gptq"] / errors["rtn"], errors["awq"],
                  errors["awq"] / errors["rtn"], errors["awq+gptq"],
                  errors["awq+gptq"] / errors["rtn"]))
        if not errors["awq"] <= 0.8 * errors["rtn"]:
            failures.append("%s: AWQ's error %.3e is not at most 0.8x RTN's "
                            "%.3e" % (quant, errors["awq"], errors["rtn"]))
        if not errors["awq+gptq"] < errors["rtn"]:
            failures.append("%s: AWQ+GPTQ's error %.3e is not below RTN's "
                            "%.3e" % (quant, errors["awq+gptq"],
                                      errors["rtn"]))

    # Without calibration: one error naming the layers, no output.
    out = os.path.join(work, "nocalib")
    r = subprocess.run([qc, onnx_path, "-o", out, "--quant=w4a16",
                        "--algo=awq"], capture_output=True, text=True)
    errors = [l for l in r.stderr.splitlines() if "error:" in l]
    if r.returncode == 0 or os.path.exists(out) or not errors or \
            "AWQ needs calibration" not in errors[0] or \
            "/w1/MatMul, /w3/MatMul, /w2/MatMul" not in errors[0]:
        failures.append("--algo=awq without calibration: rc %d, stderr:\n%s"
                        % (r.returncode, r.stderr))
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
