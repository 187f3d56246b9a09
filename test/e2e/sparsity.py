#!/usr/bin/python3
"""End-to-end pruning (quench-compile --sparsity, docs/sparsity.md).

A small ONNX MLP (MatMul initializers stored [K, N], a Gemm with transB
stored [N, K], biases, ReLU; the last MatMul is the output head) is
compiled with pruning and run; NumPy applies the same mask to the weights:

  * --sparsity=2:4 / 4:8 / unstructured:0.5 with --prune=magnitude: the
    executable's output equals the float model with the masked weights
    (<= 1e-4 relative); the head stays dense unless --sparsity-head;
  * joint with --quant=w8a16 (per channel, symmetric, f16 scales) and
    --quant=w4a16 --asymmetric: equals the masked weights quantized by
    NumPy's RTN; the size report gives each layer's sparsity and density;
  * every other scheme (W8A8 static and dynamic, HQQ, GPTQ, W3A16, a bits
    budget) composes, and a recipe gives layers their own pattern;
  * --prune=sparsegpt with calibration on correlated inputs: each pruned
    layer has the pattern's density and the output error on the
    calibration inputs is below magnitude pruning's;
  * compressed storage (--sparse-storage, default auto: N:M layers of f32
    and 8-bit symmetric weights become quench.sparse_linear on the CPU):
    2:4 and 4:8, f32 and W8A16, 8 rows, 1 row (decode) and [2, 3] rows
    (dynamic batch and sequence), AVX-512 (the host), AVX2
    (--cpu=x86-64-v3) and scalar loops (--vector-bits=0) equal NumPy's
    masked model; 128-bit vectors keep the layers dense; the report gives each layer's storage and its
    compressed bytes; --sparse-storage=dense gives the same outputs;
  * bitmask storage of unstructured:0.5 W8A16 (AVX512-VBMI2 and VNNI
    hosts: a mask bit per weight plus the kept codes, vpexpandb): 8 rows
    and 1 row bit-identical to the dense W8A16 kernel and within 1e-4 of
    NumPy's RTN of the masked weights, exact bytes in the report; dense
    with the reason on x86-64-v3;
  * bad uses fail with one message: a bad pattern, --prune without
    --sparsity, sparsegpt without calibration, a bad --sparse-storage.

Usage: sparsity.py --build BUILD_DIR [--keep DIR]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F32 = np.float32
B, D0, D1, D2, D3, V = 8, 64, 48, 32, 40, 12


def run(cmd):
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit("FAILED: %s\n%s%s" % (" ".join(cmd), res.stdout, res.stderr))
    return res


def make_model(rng, path, batch=B):
    """x [B, D0] -> MatMul W1 [D0, D1] + b1 -> ReLU -> MatMul W2 [D1, D2] ->
    Gemm(transB) W3 [D3, D2] + b3 -> ReLU -> MatMul W4 [D3, V] (the head).
    Returns the weights in the linear layout [N, K] by layer name."""
    w1 = rng.standard_normal((D0, D1)).astype(F32) / 8
    b1 = rng.standard_normal(D1).astype(F32) / 4
    w2 = rng.standard_normal((D1, D2)).astype(F32) / 7
    w3 = rng.standard_normal((D3, D2)).astype(F32) / 6
    b3 = rng.standard_normal(D3).astype(F32) / 4
    w4 = rng.standard_normal((D3, V)).astype(F32) / 6
    # A tie inside a 2:4 group of W1 (lower index kept).
    w1[0:4, 0] = [0.5, -0.5, 0.5, 0.1]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h1"], name="/l1/MatMul"),
        helper.make_node("Add", ["h1", "b1"], ["h1b"], name="/l1/Add"),
        helper.make_node("Relu", ["h1b"], ["a1"], name="/l1/Relu"),
        helper.make_node("MatMul", ["a1", "w2"], ["h2"], name="/l2/MatMul"),
        helper.make_node("Gemm", ["h2", "w3", "b3"], ["h3"], name="/l3/Gemm",
                         transB=1),
        helper.make_node("Relu", ["h3"], ["a3"], name="/l3/Relu"),
        helper.make_node("MatMul", ["a3", "w4"], ["y"], name="/head/MatMul"),
    ]
    inits = [numpy_helper.from_array(a, n) for n, a in
             [("w1", w1), ("b1", b1), ("w2", w2), ("w3", w3), ("b3", b3),
              ("w4", w4)]]
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, D0])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, V])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    weights = {"/l1/MatMul": w1.T.copy(), "/l2/MatMul": w2.T.copy(),
               "/l3/Gemm": w3.copy(), "/head/MatMul": w4.T.copy()}
    return weights, b1, b3


def forward(x, w, b1, b3):
    """The model with the linear-layout weights `w` ([N, K] each)."""
    a1 = np.maximum(x @ w["/l1/MatMul"].T + b1, 0)
    h2 = a1 @ w["/l2/MatMul"].T
    a3 = np.maximum(h2 @ w["/l3/Gemm"].T + b3, 0)
    return a3 @ w["/head/MatMul"].T


def magnitude_mask(w, pattern):
    """Keep mask of the [N, K] weight: N:M keeps the n largest |w| of each
    group of m along K, unstructured the largest of each row; ties keep the
    lower index (a stable sort of -|w|)."""
    n_out, k = w.shape
    mask = np.zeros_like(w, dtype=bool)
    a = np.abs(w.astype(np.float64))
    if pattern.startswith("unstructured:"):
        frac = float(pattern.split(":")[1])
        keep = k - int(np.floor(frac * k + 0.5))
        spans = [(0, k, keep)]
    else:
        n, m = map(int, pattern.split(":"))
        spans = [(c, min(c + m, k), min(n, k - c)) for c in range(0, k, m)]
    for r in range(n_out):
        for c0, c1, keep in spans:
            order = np.argsort(-a[r, c0:c1], kind="stable")
            mask[r, c0 + order[:keep]] = True
    return mask


def rtn(w, bits, group, symmetric):
    """Dequantized round-to-nearest codes (lib/Quant/RTN.h): symmetric
    scale max|w| / (2^(b-1) - 1), asymmetric (max - min) / (2^b - 1) with
    0 in range and zero point round(-min / scale); f16 scales."""
    n_out, k = w.shape
    g = group if group else k
    out = np.zeros_like(w)
    for r in range(n_out):
        for c0 in range(0, k, g):
            v = w[r, c0:c0 + g].astype(F32)
            if symmetric:
                qmax = 2 ** (bits - 1) - 1
                s = F32(np.float16(np.abs(v).max() / F32(qmax)))
                if s == 0:
                    continue
                q = np.clip(np.rint(v / s), -qmax - 1, qmax)
                out[r, c0:c0 + g] = q.astype(F32) * s
            else:
                lo, hi = min(F32(0), v.min()), max(F32(0), v.max())
                s = F32(np.float16((hi - lo) / F32(2 ** bits - 1)))
                if s == 0:
                    continue
                z = np.clip(np.rint(-lo / s), 0, 2 ** bits - 1)
                q = np.clip(np.rint(v / s) + z, 0, 2 ** bits - 1)
                out[r, c0:c0 + g] = (q - z).astype(F32) * s
    return out


def rel_err(got, want):
    return float(np.abs(got - want).max() / np.abs(want).max())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--keep")
    args = ap.parse_args()
    qc = os.path.join(args.build, "bin", "quench-compile")
    work = args.keep or tempfile.mkdtemp(prefix="quench-sparsity-")
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(7)
    onnx_path = os.path.join(work, "mlp.onnx")
    weights, b1, b3 = make_model(rng, onnx_path)
    # Correlated inputs of different scales (as activations are).
    mix = np.eye(D0, dtype=F32) + rng.standard_normal((D0, D0)).astype(F32) / 4
    scales = np.exp(rng.standard_normal(D0) / 2).astype(F32)

    def sample():
        return ((rng.standard_normal((B, D0)).astype(F32) @ mix) *
                scales).astype(F32)

    x = sample()
    x_path = os.path.join(work, "x.npy")
    np.save(x_path, x)
    calib = os.path.join(work, "calib")
    calib_x = []
    for i in range(6):
        os.makedirs(os.path.join(calib, str(i)), exist_ok=True)
        calib_x.append(sample())
        np.save(os.path.join(calib, str(i), "x.npy"), calib_x[-1])

    def compile_run(name, flags, inputs=(x_path,)):
        exe = os.path.join(work, name)
        report = exe + ".json"
        run([qc, onnx_path, "-o", exe, "--report=" + report] + flags)
        outs = []
        for i, path in enumerate(inputs):
            od = os.path.join(work, "%s.out%d" % (name, i))
            os.makedirs(od, exist_ok=True)
            run([exe, "--input", "x=" + path, "--output-dir", od])
            outs.append(np.load(os.path.join(od, "y.npy")))
        with open(report) as f:
            return outs, {l["name"]: l for l in json.load(f)["layers"]}

    failures = []

    def check(cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            failures.append(what)

    # Magnitude pruning == the float model with the masked weights.
    for pattern, head in [("2:4", False), ("4:8", False),
                          ("unstructured:0.5", False), ("2:4", True)]:
        flags = ["--sparsity=" + pattern] + (["--sparsity-head"] if head
                                             else [])
        name = "mag_" + pattern.replace(":", "_") + ("_head" if head else "")
        (y,), layers = compile_run(name, flags)
        masked = {}
        for layer, w in weights.items():
            if layer == "/head/MatMul" and not head:
                masked[layer] = w
            else:
                masked[layer] = np.where(magnitude_mask(w, pattern), w, 0)
        want = forward(x.astype(np.float64),
                       {k: v.astype(np.float64) for k, v in masked.items()},
                       b1, b3)
        err = rel_err(y, want)
        check(err <= 1e-4, "%s: output vs masked float model, rel err %.2e"
              % (" ".join(flags), err))
        dense = forward(x.astype(np.float64), weights, b1, b3)
        check(rel_err(y, dense) > 1e-2, "%s: pruning changed the output"
              % " ".join(flags))
        for layer, rec in layers.items():
            want_d = 1.0 if layer == "/head/MatMul" and not head else \
                float(np.count_nonzero(masked[layer])) / masked[layer].size
            check(abs(rec["density"] - want_d) < 1e-9 and
                  rec["sparsity"] == ("dense (output head)"
                                      if want_d == 1.0 else
                                      pattern + " magnitude"),
                  "%s: report of %s: %s, density %.4f" %
                  (" ".join(flags), layer, rec["sparsity"], rec["density"]))

    # Pruned, then quantized: zeros stay zeros, the rest is RTN's.
    for quant, bits, group, sym in [("w8a16", 8, 0, True),
                                    ("w4a16", 4, 32, False)]:
        flags = ["--sparsity=2:4", "--quant=" + quant] + \
            ([] if sym else ["--asymmetric"])
        (y,), layers = compile_run("q_" + quant, flags)
        qw = {}
        for layer, w in weights.items():
            m = w if layer == "/head/MatMul" else \
                np.where(magnitude_mask(w, "2:4"), w, 0)
            g = group if group and group < m.shape[1] else 0
            qw[layer] = rtn(m, bits, g, sym)
            if layer != "/head/MatMul":
                assert np.all(qw[layer][m == 0] == 0)
        want = forward(x.astype(np.float64),
                       {k: v.astype(np.float64) for k, v in qw.items()},
                       b1, b3)
        err = rel_err(y, want)
        check(err <= 1e-4, "%s: output vs NumPy (mask, then RTN), rel err "
              "%.2e" % (" ".join(flags), err))
        rec = layers["/l2/MatMul"]
        check(rec["scheme"].startswith("int%d" % bits) and
              rec["density"] == 0.5 and rec["sparsity"] == "2:4 magnitude",
              "%s: report of /l2/MatMul: %s, %s, density %s" %
              (" ".join(flags), rec["scheme"], rec["sparsity"],
               rec["density"]))

    # Every other quantization scheme composes (the quantizer checks that
    # pruned weights dequantize to exactly 0 and fails otherwise).
    masked24 = {k: (v if k == "/head/MatMul" else
                    np.where(magnitude_mask(v, "2:4"), v, 0))
                for k, v in weights.items()}
    want24 = forward(x.astype(np.float64), masked24, b1, b3)
    for flags, tol in [(["--quant=w8a8-dynamic"], 0.05),
                       (["--quant=w8a8", "--calib=" + calib], 0.05),
                       (["--quant=w4a16", "--algo=hqq"], 0.2),
                       (["--quant=w4a16", "--algo=gptq", "--calib=" + calib],
                        0.2),
                       (["--quant=w3a16", "--group-size=16"], 0.5),
                       (["--quant=w8a16", "--bits-budget=6",
                         "--calib=" + calib], 0.2)]:
        flags = ["--sparsity=2:4"] + flags
        (y,), layers = compile_run(
            "any_" + "_".join(f.split("=")[-1].split("/")[-1]
                              for f in flags[1:]), flags)
        err = rel_err(y, want24)
        check(np.all(np.isfinite(y)) and err < tol and all(
            layers[l]["density"] == 0.5 for l in masked24
            if l != "/head/MatMul"),
              "%s: densities 0.5, rel err vs masked float %.2e (< %g)" %
              (" ".join(flags), err, tol))

    # Compressed storage: kept values plus 2-bit (M = 4) or 4-bit (M = 8)
    # indices, read by the sparse kernel (AVX-512 on this host, AVX2 with
    # x86-64-v3) or the specification's loops (--vector-bits=0); one row
    # (decode) and eight.
    onnx1 = os.path.join(work, "mlp1.onnx")
    weights1, b1_1, b3_1 = make_model(np.random.default_rng(11), onnx1, 1)
    x1_path = os.path.join(work, "x1.npy")
    np.save(x1_path, x[:1])

    def packed_bytes(w, pattern, int8):
        n, m = map(int, pattern.split(":"))
        rows, k = w.shape
        slots = k // m * n
        ib = 2 if m <= 4 else 4
        return rows * slots * (1 if int8 else 4) + \
            rows * ((slots * ib + 7) // 8) + (rows * 2 if int8 else 0)

    for cpu in [[], ["--cpu=x86-64-v3"], ["--vector-bits=0"]]:
        for pattern, quant in [("2:4", None), ("4:8", "w8a16"),
                               ("2:4", "w8a16"), ("4:8", None)]:
            if cpu and (pattern, quant) not in [("2:4", None),
                                                ("4:8", "w8a16")]:
                continue
            for rows in [8, 1]:
                if cpu == ["--vector-bits=0"] and rows == 1:
                    continue
                flags = ["--sparsity=" + pattern] + cpu + \
                    (["--quant=" + quant] if quant else [])
                ws, bb1, bb3 = (weights, b1, b3) if rows == 8 else \
                    (weights1, b1_1, b3_1)
                exe = os.path.join(work, "cs_%d_%s_%s_%s" % (
                    rows, pattern.replace(":", "_"), quant,
                    "_".join(f.split("=")[-1] for f in cpu)))
                run([qc, onnx_path if rows == 8 else onnx1, "-o", exe,
                     "--report=" + exe + ".json"] + flags)
                od = exe + ".out"
                os.makedirs(od, exist_ok=True)
                run([exe, "--input", "x=" + (x_path if rows == 8 else
                                             x1_path), "--output-dir", od])
                y = np.load(os.path.join(od, "y.npy"))
                with open(exe + ".json") as f:
                    layers = {l["name"]: l for l in json.load(f)["layers"]}
                want_w = {}
                for layer, w in ws.items():
                    m = w if layer == "/head/MatMul" else \
                        np.where(magnitude_mask(w, pattern), w, 0)
                    want_w[layer] = rtn(m, 8, 0, True) if quant else m
                want = forward(x[:rows].astype(np.float64),
                               {k: v.astype(np.float64)
                                for k, v in want_w.items()}, bb1, bb3)
                err = rel_err(y, want)
                check(err <= 1e-4, "%s (%d rows): compressed storage vs "
                      "NumPy's masked model, rel err %.2e"
                      % (" ".join(flags), rows, err))
                kind = "int8" if quant else "f32"
                for layer in ["/l1/MatMul", "/l2/MatMul", "/l3/Gemm"]:
                    rec = layers[layer]
                    want_b = packed_bytes(ws[layer], pattern, bool(quant))
                    check(rec.get("storage") ==
                          "%s compressed %s" % (pattern, kind) and
                          rec["bytes_after"] == want_b and
                          rec["bytes_dense"] > want_b,
                          "%s: %s stored %s, %d bytes (dense %d)" %
                          (" ".join(flags), layer, rec.get("storage"),
                           rec["bytes_after"], rec.get("bytes_dense", -1)))
                check("storage" not in layers["/head/MatMul"],
                      "%s: the dense head has no storage record" %
                      " ".join(flags))
    # Batch and sequence dims (dynamic, [B, S, K]: rows collapsed in the
    # kernel, the bias added after), f32 and int8 values.
    onnx3 = os.path.join(work, "mlp3.onnx")
    w3d = rng.standard_normal((D0, D1)).astype(F32)
    b3d = rng.standard_normal(D1).astype(F32)
    g3d = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"], name="/l/MatMul"),
         helper.make_node("Add", ["h", "b"], ["y"], name="/l/Add")], "m3",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                       ["B", "S", D0])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                       ["B", "S", D1])],
        [numpy_helper.from_array(w3d, "w"), numpy_helper.from_array(b3d, "b")])
    onnx.save(helper.make_model(
        g3d, opset_imports=[helper.make_opsetid("", 17)]), onnx3)
    x3 = rng.standard_normal((2, 3, D0)).astype(F32)
    x3_path = os.path.join(work, "x3.npy")
    np.save(x3_path, x3)
    m3 = np.where(magnitude_mask(w3d.T, "2:4"), w3d.T, 0)
    for quant in [None, "w8a16"]:
        flags = ["--sparsity=2:4", "--sparsity-head"] + \
            (["--quant=" + quant] if quant else [])
        exe = os.path.join(work, "cs3_%s" % quant)
        run([qc, onnx3, "-o", exe, "--report=" + exe + ".json"] + flags)
        od = exe + ".out"
        os.makedirs(od, exist_ok=True)
        run([exe, "--input", "x=" + x3_path, "--output-dir", od])
        y = np.load(os.path.join(od, "y.npy"))
        wq = rtn(m3, 8, 0, True) if quant else m3
        want = x3.astype(np.float64) @ wq.T.astype(np.float64) + b3d
        with open(exe + ".json") as f:
            st = json.load(f)["layers"][0].get("storage")
        err = rel_err(y, want)
        check(err <= 1e-4 and y.shape == (2, 3, D1) and
              st == "2:4 compressed %s" % ("int8" if quant else "f32"),
              "%s, x [2, 3, %d] (dynamic batch and sequence): %s, rel err "
              "%.2e" % (" ".join(flags), D0, st, err))

    # Forced dense storage: the same outputs as the compressed kernels.
    (yd,), ld = compile_run("cs_dense", ["--sparsity=2:4",
                                         "--sparse-storage=dense"])
    (yc,), lc = compile_run("cs_auto", ["--sparsity=2:4"])
    check(rel_err(yc, yd) <= 1e-5 and "storage" not in ld["/l1/MatMul"] and
          lc["/l1/MatMul"]["storage"] == "2:4 compressed f32",
          "--sparse-storage=dense vs compressed: rel err %.2e" %
          rel_err(yc, yd))
    # 128-bit vectors have no sparse kernel: auto keeps the layers dense
    # (the same outputs), compressed fails.
    (y128,), l128 = compile_run("cs_v128", ["--sparsity=2:4",
                                           "--vector-bits=128"])
    check(rel_err(y128, yd) <= 1e-5 and "storage" not in l128["/l1/MatMul"],
          "--vector-bits=128: dense storage, rel err vs dense %.2e" %
          rel_err(y128, yd))
    # 3-bit codes and unstructured f32 patterns stay dense, with the reason
    # (2:4 4-bit codes: test/e2e/sparse_int4.py).
    _, l4 = compile_run("cs_w3", ["--sparsity=2:4", "--quant=w3a16"])
    _, lu = compile_run("cs_unstr", ["--sparsity=unstructured:0.5"])
    check(l4["/l1/MatMul"]["storage"] ==
          "dense (3-bit codes: no compressed format yet)" and
          lu["/l1/MatMul"]["storage"] ==
          "dense (unstructured f32: no bitmask kernel yet)",
          "dense storage reasons: %s; %s" % (l4["/l1/MatMul"]["storage"],
                                             lu["/l1/MatMul"]["storage"]))

    # Unstructured W8A16 in bitmask storage (a mask bit per weight plus the
    # kept codes; vpexpandb, AVX512-VBMI2 and VNNI): bit-identical to the
    # dense W8A16 kernel (the same int16 arithmetic on the expanded codes)
    # and NumPy's RTN of the masked weights; other hosts keep it dense.
    flags_ = open("/proc/cpuinfo").read().split()
    vbmi2 = "avx512_vbmi2" in flags_ and "avx512_vnni" in flags_
    for rows, path, ws in [(8, onnx_path, weights), (1, onnx1, weights1)]:
        xp = x_path if rows == 8 else x1_path
        outs = {}
        recs = {}
        for storage in ["auto", "dense"]:
            exe = os.path.join(work, "bm_%d_%s" % (rows, storage))
            run([qc, path, "-o", exe, "--report=" + exe + ".json",
                 "--sparsity=unstructured:0.5", "--quant=w8a16",
                 "--sparse-storage=" + storage])
            od = exe + ".out"
            os.makedirs(od, exist_ok=True)
            run([exe, "--input", "x=" + xp, "--output-dir", od])
            outs[storage] = np.load(os.path.join(od, "y.npy"))
            with open(exe + ".json") as f:
                recs[storage] = {l["name"]: l for l in json.load(f)["layers"]}
        want_w = {layer: rtn(w if layer == "/head/MatMul" else
                             np.where(magnitude_mask(w, "unstructured:0.5"),
                                      w, 0), 8, 0, True)
                  for layer, w in ws.items()}
        bb1, bb3 = (b1, b3) if rows == 8 else (b1_1, b3_1)
        want = forward(x[:rows].astype(np.float64),
                       {k: v.astype(np.float64) for k, v in want_w.items()},
                       bb1, bb3)
        err = rel_err(outs["auto"], want)
        check(err <= 1e-4 and np.array_equal(outs["auto"], outs["dense"]),
              "unstructured:0.5 W8A16 (%d rows) bitmask storage: rel err "
              "%.2e vs NumPy, bit-identical to dense W8A16: %s" %
              (rows, err, np.array_equal(outs["auto"], outs["dense"])))
        for layer in ["/l1/MatMul", "/l2/MatMul", "/l3/Gemm"]:
            rec = recs["auto"][layer]
            q = want_w[layer]
            nnz = int(np.count_nonzero(q))
            want_b = q.size // 8 + (q.size % 8 > 0) + nnz + q.shape[0] * 2
            if vbmi2:
                ok = rec.get("storage") == "unstructured bitmask int8" and \
                    rec["bytes_after"] == want_b and \
                    rec["bytes_dense"] > want_b
            else:
                ok = rec.get("storage", "").startswith("dense (")
            check(ok, "unstructured W8A16 %s: %s, %d bytes (want %d; "
                  "dense %d)" % (layer, rec.get("storage"),
                                 rec["bytes_after"], want_b,
                                 rec.get("bytes_dense", -1)))
    # AVX2 (x86-64-v3) has no expand kernel: dense, the reason reported.
    _, lv3 = compile_run("bm_v3", ["--sparsity=unstructured:0.5",
                                   "--quant=w8a16", "--cpu=x86-64-v3"])
    check(lv3["/l1/MatMul"]["storage"] ==
          "dense (unstructured: no bitmask kernel on this target)",
          "unstructured W8A16 on x86-64-v3: %s" %
          lv3["/l1/MatMul"]["storage"])

    # A recipe gives layers their own pattern ("none": dense), also without
    # --quant.
    recipe = os.path.join(work, "recipe.json")
    with open(recipe, "w") as f:
        json.dump({"version": 1, "layers": [
            {"match": "/l2/*", "sparsity": "none"},
            {"match": "/l3/*", "sparsity": "unstructured:0.25"}]}, f)
    for extra in [[], ["--quant=w8a16"]]:
        flags = ["--sparsity=2:4", "--quant-recipe=" + recipe] + extra
        _, layers = compile_run("recipe%d" % len(extra), flags)
        got = {l: (r["sparsity"], r["density"]) for l, r in layers.items()}
        check(got == {"/l1/MatMul": ("2:4 magnitude", 0.5),
                      "/l2/MatMul": ("dense", 1.0),
                      "/l3/Gemm": ("unstructured:0.25 magnitude", 0.75),
                      "/head/MatMul": ("dense (output head)", 1.0)},
              "%s: per-layer patterns %s" % (" ".join(flags), got))

    # SparseGPT: pattern density, lower error than magnitude on the
    # calibration inputs.
    calib_paths = [os.path.join(calib, str(i), "x.npy") for i in range(6)]
    dense = [forward(c.astype(np.float64), weights, b1, b3) for c in calib_x]
    for pattern in ["2:4", "unstructured:0.5"]:
        errs = {}
        for method in ["magnitude", "sparsegpt"]:
            flags = ["--sparsity=" + pattern, "--prune=" + method,
                     "--calib=" + calib]
            ys, layers = compile_run(
                "sgpt_%s_%s" % (method, pattern.replace(":", "_")), flags,
                calib_paths)
            errs[method] = sum(float(((y - d) ** 2).sum())
                               for y, d in zip(ys, dense))
            for layer in ["/l1/MatMul", "/l2/MatMul", "/l3/Gemm"]:
                check(abs(layers[layer]["density"] - 0.5) < 1e-9,
                      "%s: density of %s %.4f" %
                      (" ".join(flags), layer, layers[layer]["density"]))
        check(errs["sparsegpt"] < errs["magnitude"],
              "--sparsity=%s: output error on the calibration inputs, "
              "SparseGPT %.4g < magnitude %.4g" %
              (pattern, errs["sparsegpt"], errs["magnitude"]))

    # Bad uses: one message, nonzero exit, no artifact.
    for flags, message in [
            (["--sparsity=3:2"], "sparsity '3:2': use N:M"),
            (["--prune=sparsegpt"], "--prune, --sparsity-head and "
             "--sparse-storage need --sparsity"),
            (["--sparse-storage=dense"], "--prune, --sparsity-head and "
             "--sparse-storage need --sparsity"),
            (["--sparsity=2:4", "--sparse-storage=packed"],
             "--sparse-storage must be auto, compressed or dense, got "
             "'packed'"),
            (["--sparsity=2:4", "--sparse-storage=compressed",
              "--target=cuda"], "--sparse-storage=compressed: the CUDA "
             "target has no sparse kernels"),
            (["--sparsity=2:4", "--sparse-storage=compressed",
              "--vector-bits=128"], "--sparse-storage=compressed: the CPU "
             "target has no sparse kernels with these options"),
            (["--sparsity=2:4", "--prune=obs"], "--prune must be magnitude "
             "or sparsegpt"),
            (["--sparsity=2:4", "--prune=sparsegpt"],
             "--prune=sparsegpt needs calibration (--calib or "
             "--calib-cache); no input statistics for layers: /l1/MatMul, "
             "/l2/MatMul, /l3/Gemm")]:
        exe = os.path.join(work, "bad")
        r = subprocess.run([qc, onnx_path, "-o", exe] + flags,
                           capture_output=True, text=True)
        check(r.returncode != 0 and message in r.stderr and
              not os.path.exists(exe),
              "%s fails: %s" % (" ".join(flags), r.stderr.strip()[:200]))

    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        sys.exit("%d failure(s)" % len(failures))
    print("all sparsity checks passed")


if __name__ == "__main__":
    main()
