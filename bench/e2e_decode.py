#!/usr/bin/python3
"""End-to-end decode step of the two reference models: Quench (fp32 and
quantized) against ONNX Runtime (fp32, MatMulNBits and dynamic int8 models).

A decode step is one new token: the models are run on a [1, 1] token input
(the char-GPT's dynamic-length export with --shape tokens=1x1; stories260K
exported with --seq 1), which makes every linear layer a GEMV - the
memory-bound shape of autoregressive generation. (The exports have no KV
cache, so attention sees one position; the linear layers, which hold the
weights, are what the formats differ in.)

ONNX Runtime models are made here from the float ONNX file, every MatMul
with a constant [K, N] weight rewritten:
  * MatMulNBits 4-bit, blocks of 32 (symmetric: no zero points) and 8-bit
    per block of 32 (com.microsoft.MatMulNBits, ORT's weight-only format);
  * dynamic int8: DynamicQuantizeLinear -> MatMulInteger (s8 weights,
    symmetric per output column) -> Cast -> Mul by the scales, the graph
    ORT's quantize_dynamic writes (ORT fuses it into DynamicQuantizeMatMul).
Quench compiles the float model with --quant=none / w8a16 / w4a16 (g32) /
w8a8-dynamic, and also the 4-bit MatMulNBits file itself.

Every executable and ORT session runs the same input: `--bench RUNS` after a
warm-up, median and minimum latency, 1 thread. ORT's times include the
Node.js binding's per-call cost (N-API, output allocation); the script
measures that floor on a one-Identity-node model in the same run. Outputs of Quench and ORT on
the MatMulNBits file are compared (they must agree to 1e-4 relative).

Usage: bench/e2e_decode.py [--build build] [--work DIR] [--runs 2000]
         [--chargpt-dir build/chargpt] [--stories PATH]
Needs onnxruntime-node (bench/ort/setup.sh).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"
MS = "com.microsoft"


def matmul_weights(model):
    """{node index: weight} of the MatMul nodes whose second input is a
    2-D float initializer."""
    inits = {t.name: t for t in model.graph.initializer}
    out = {}
    for i, node in enumerate(model.graph.node):
        if node.op_type == "MatMul" and node.input[1] in inits:
            w = numpy_helper.to_array(inits[node.input[1]])
            if w.ndim == 2 and w.dtype == np.float32:
                out[i] = w
    return out


def rewrite(model, make):
    """Replaces every MatMul with a constant weight by make(node, w) ->
    (nodes, initializers); unused weight initializers are dropped."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    new_nodes, used = [], set()
    targets = matmul_weights(model)
    for i, node in enumerate(model.graph.node):
        if i in targets:
            nodes, inits = make(node, targets[i])
            new_nodes += nodes
            model.graph.initializer.extend(inits)
        else:
            new_nodes.append(onnx.NodeProto.FromString(node.SerializeToString()))
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    for n in new_nodes:
        used.update(n.input)
    if not any(o.domain == MS for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS, 1))
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    return model


def matmul_nbits(bits, block=32):
    def make(node, w):
        k, n = w.shape
        blocks = (k + block - 1) // block
        wt = np.zeros((n, blocks * block), np.float32)
        wt[:, :k] = w.T
        wb = wt.reshape(n, blocks, block)
        half = 2 ** (bits - 1)
        scale = (np.abs(wb).max(axis=2) / (half - 1)).astype(np.float32)
        scale[scale == 0] = 1
        codes = np.clip(np.rint(wb / scale[..., None]) + half, 0,
                        2 ** bits - 1).astype(np.uint8)
        if bits == 4:
            codes = codes[..., 0::2] | (codes[..., 1::2] << 4)
        p = node.name or node.output[0]
        wq = numpy_helper.from_array(codes.reshape(n, blocks, -1), p + "_q")
        sc = numpy_helper.from_array(scale.reshape(-1), p + "_scales")
        mm = helper.make_node("MatMulNBits", [node.input[0], wq.name, sc.name],
                              list(node.output), name=node.name, domain=MS,
                              K=k, N=n, bits=bits, block_size=block)
        return [mm], [wq, sc]
    return make


def dynamic_int8(node, w):
    p = node.name or node.output[0]
    scale = (np.abs(w).max(axis=0) / 127).astype(np.float32)
    scale[scale == 0] = 1
    wq = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    x = node.input[0]
    names = [p + s for s in ("_xq", "_xs", "_xzp", "_acc", "_accf", "_s")]
    nodes = [
        helper.make_node("DynamicQuantizeLinear", [x], names[:3]),
        helper.make_node("MatMulInteger", [names[0], p + "_wq", names[2],
                                           p + "_wzp"], [names[3]]),
        helper.make_node("Cast", [names[3]], [names[4]], to=TensorProto.FLOAT),
        helper.make_node("Mul", [names[1], p + "_ws"], [names[5]]),
        helper.make_node("Mul", [names[4], names[5]], list(node.output),
                         name=node.name),
    ]
    inits = [numpy_helper.from_array(wq, p + "_wq"),
             numpy_helper.from_array(np.zeros(w.shape[1], np.int8), p + "_wzp"),
             numpy_helper.from_array(scale, p + "_ws")]
    return nodes, inits


def bench_line(text):
    m = re.search(r"median ([0-9.]+) ms, min ([0-9.]+) ms", text)
    if not m:
        raise RuntimeError("no bench line in:\n" + text)
    return float(m.group(1)), float(m.group(2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--work")
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--chargpt-dir", default=os.path.join(ROOT, "build",
                                                         "chargpt"))
    ap.add_argument("--stories", default=os.path.join(
        os.path.dirname(ROOT), "shared", "models", "stories260K.bin"))
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="quench-decode-")
    os.makedirs(work, exist_ok=True)
    qc = os.path.join(args.build, "bin", "quench-compile")
    runjs = os.path.join(ROOT, "bench", "ort", "run.js")

    models = []  # (label, float onnx, input name, extra quench flags)
    cg = os.path.join(args.chargpt_dir, "chargpt.onnx")
    if os.path.isfile(cg):
        models.append(("char-GPT (2.7M)", cg, "tokens", ["--shape",
                                                         "tokens=1x1"]))
    else:
        print("char-GPT skipped: no", cg)
    if os.path.isfile(args.stories):
        st = os.path.join(work, "stories_t1.onnx")
        subprocess.run([PY, os.path.join(ROOT, "examples",
                                         "stories260k_to_onnx.py"),
                        "--bin", args.stories, "-o", st, "--seq", "1"],
                       check=True, stdout=subprocess.DEVNULL)
        models.append(("stories260K", st, "input_ids", []))
    else:
        print("stories260K skipped:", args.stories, "not found")

    rows = []
    for label, path, inp, shape_flags in models:
        stem = os.path.join(work, label.split()[0].lower().replace("-", ""))
        tok = stem + ".tok.npy"
        np.save(tok, np.array([[5]], dtype=np.int64))
        fp = onnx.load(path)
        ort_models = {"fp32": path}
        for name, make in (("MatMulNBits 4-bit g32", matmul_nbits(4)),
                           ("MatMulNBits 8-bit g32", matmul_nbits(8)),
                           ("dynamic int8 (MatMulInteger)", dynamic_int8)):
            out = stem + "_" + name.split()[0].lower() + name.split()[1] + ".onnx"
            onnx.save(rewrite(fp, make), out)
            ort_models[name] = out
        quench = {"fp32": [], "W8A16": ["--quant=w8a16"],
                  "W4A16 g32": ["--quant=w4a16", "--group-size=32"],
                  "W8A8 dynamic": ["--quant=w8a8-dynamic"]}
        exes = {}
        for name, flags in quench.items():
            exe = stem + "_q_" + name.split()[0].lower()
            subprocess.run([qc, path, "-o", exe] + shape_flags + flags,
                           check=True, stdout=subprocess.DEVNULL)
            exes["Quench " + name] = exe
        exe = stem + "_q_nbits4"
        subprocess.run([qc, ort_models["MatMulNBits 4-bit g32"], "-o", exe] +
                       shape_flags, check=True, stdout=subprocess.DEVNULL)
        exes["Quench on the MatMulNBits 4-bit file"] = exe

        # Agreement on the same MatMulNBits file.
        od, qd = stem + "_ort_out", stem + "_q_out"
        os.makedirs(od, exist_ok=True)
        os.makedirs(qd, exist_ok=True)
        subprocess.run(["node", runjs, ort_models["MatMulNBits 4-bit g32"],
                        "--input", inp + "=" + tok, "--output-dir", od,
                        "--threads", "1"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([exe, "--input", inp + "=" + tok, "--output-dir", qd],
                       check=True, stdout=subprocess.DEVNULL)
        out_name = [f for f in os.listdir(od) if f.endswith(".npy")][0]
        a, b = np.load(os.path.join(od, out_name)), np.load(os.path.join(qd, out_name))
        err = float(np.abs(a - b).max() / max(1.0, np.abs(a).max()))
        if err > 1e-4:
            print("FAIL: Quench and ORT disagree on the MatMulNBits file: %.2e"
                  % err)
            return 1

        for name, exe in exes.items():
            p = subprocess.run([exe, "--input", inp + "=" + tok, "--bench",
                                str(args.runs), "--threads", "1"],
                               check=True, capture_output=True, text=True)
            rows.append((label, name, *bench_line(p.stdout + p.stderr)))
        for name, m in ort_models.items():
            p = subprocess.run(["node", runjs, m, "--input", inp + "=" + tok,
                                "--bench", str(args.runs), "--threads", "1"],
                               check=True, capture_output=True, text=True)
            rows.append((label, "ORT " + name, *bench_line(p.stdout + p.stderr)))
        print("%s: Quench vs ORT on the MatMulNBits file: max rel. diff %.1e"
              % (label, err))

    # ORT's floor through Node (N-API call, output tensor): a graph with one
    # Identity node on the same input.
    floor = os.path.join(work, "identity.onnx")
    g = helper.make_graph(
        [helper.make_node("Identity", ["t"], ["u"])], "identity",
        [helper.make_tensor_value_info("t", TensorProto.INT64, [1, 1])],
        [helper.make_tensor_value_info("u", TensorProto.INT64, [1, 1])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]),
              floor)
    tok = os.path.join(work, "identity.tok.npy")
    np.save(tok, np.array([[5]], dtype=np.int64))
    p = subprocess.run(["node", runjs, floor, "--input", "t=" + tok, "--bench",
                        str(args.runs), "--threads", "1"], check=True,
                       capture_output=True, text=True)
    med, mn = bench_line(p.stdout + p.stderr)
    print("ORT call floor (one Identity node through onnxruntime-node): "
          "median %.4f ms, min %.4f ms" % (med, mn))

    base = {}
    for label, name, med, _ in rows:
        if name == "Quench fp32":
            base[label] = med
    print("| model | engine / format | median (ms) | min (ms) | vs Quench fp32 |")
    print("| --- | --- | ---: | ---: | ---: |")
    for label, name, med, mn in rows:
        print("| %s | %s | %.4f | %.4f | %.2fx |" % (
            label, name, med, mn, base[label] / med))
    return 0


if __name__ == "__main__":
    sys.exit(main())
