#!/usr/bin/env python3
"""2:4 W4A16 in compressed storage (docs/sparsity.md, "Compressed storage"):
kept 4-bit codes two per byte plus 2-bit indices, read by the fused CPU
kernel (lib/Codegen/CPU/SparseMatmul.cpp) that decodes the nibbles in
registers.

On test/e2e/sparsity.py's MLP, `--sparsity=2:4 --quant=w4a16` (magnitude,
RTN g32 symmetric) with 8 rows and 1 row (decode), on the host and with
`--cpu=x86-64-v3` (AVX2), and the specification's loops (`--vector-bits=0`):

  * each pruned layer's storage is "2:4 compressed int4" with the exact
    bytes (ceil(slots / 2) code bytes + 2-bit indices per row + f16 scales),
    fewer than the dense codes;
  * with `--int8-dot=false` (the dense head's kernel in its f32 lookup form
    too) the outputs equal the dense W4A16 lookup kernel on the same pruned
    codes (`--sparse-storage=dense`: f32 sums, so within float
    reassociation, <= 1e-5 relative); by default they are within 1e-4 of
    the dense W4A16 kernel (int16 activations on VNNI hosts) and of
    NumPy's RTN of the masked weights;
  * on a one-layer model whose K is a multiple of the scale block (every
    layer takes the sparse kernel's int16 form on AVX512-VNNI hosts) the
    compressed layer is bit-identical to the dense W4A16 kernel on the same
    pruned codes (the same int16 activations and exact int32 block sums),
    in the expand form (AVX512-VBMI2 hosts) and the gather form
    (`--cpu=cascadelake`);
    elsewhere within 1e-5; likewise with batch and sequence dims [2, 3,
    128];
  * 1:4 int4 (one kept code per group) against NumPy's RTN of the masked
    weights;
  * 4:8 int4 (4-bit indices: as many bytes as the dense codes) and
    asymmetric codes stay dense with the reason.
"""

import argparse
import json
import os
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sparsity import (B, D0, F32, forward, magnitude_mask,  # noqa: E402
                      make_model, rel_err, rtn, run)

LAYERS = ["/l1/MatMul", "/l2/MatMul", "/l3/Gemm"]
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def int4_bytes(w, group=32):
    """Compressed 2:4 int4 bytes of an [N, K] weight: per row ceil(S / 2)
    code bytes and ceil(S * 2 / 8) index bytes (S = K / 2 slots), plus the
    f16 scales of the dense layout ([N, ceil(K / group)])."""
    n, k = w.shape
    slots = k // 4 * 2
    return n * ((slots + 1) // 2 + (slots * 2 + 7) // 8) + \
        n * -(-k // group) * 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--keep")
    args = ap.parse_args()
    qc = os.path.join(args.build, "bin", "quench-compile")
    work = args.keep or tempfile.mkdtemp(prefix="quench-sparse-int4-")
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(5)
    models = {}
    for rows in [8, 1]:
        path = os.path.join(work, "mlp%d.onnx" % rows)
        weights, b1, b3 = make_model(rng, path, rows)
        x = rng.standard_normal((rows, D0)).astype(F32)
        xp = os.path.join(work, "x%d.npy" % rows)
        np.save(xp, x)
        models[rows] = (path, xp, x, weights, b1, b3)

    def compile_run(name, rows, flags):
        path, xp = models[rows][:2]
        exe = os.path.join(work, name)
        run([qc, path, "-o", exe, "--report=" + exe + ".json"] + flags)
        od = exe + ".out"
        os.makedirs(od, exist_ok=True)
        run([exe, "--input", "x=" + xp, "--output-dir", od])
        with open(exe + ".json") as f:
            layers = {l["name"]: l for l in json.load(f)["layers"]}
        return np.load(os.path.join(od, "y.npy")), layers

    base = ["--sparsity=2:4", "--quant=w4a16"]
    for cpu in [[], ["--cpu=x86-64-v3"], ["--vector-bits=0"]]:
        for rows in [8, 1]:
            if cpu == ["--vector-bits=0"] and rows == 1:
                continue
            tag = "%d_%s" % (rows, "_".join(f.split("=")[-1] for f in cpu))
            x, weights, b1, b3 = models[rows][2:]
            y, layers = compile_run("sp_" + tag, rows, base + cpu)
            yd, _ = compile_run("dense_" + tag, rows,
                                base + cpu + ["--sparse-storage=dense"])
            desc = "%s (%d rows)" % (" ".join(base + cpu), rows)
            want_w = {}
            for layer, w in weights.items():
                m = w if layer == "/head/MatMul" else \
                    np.where(magnitude_mask(w, "2:4"), w, 0)
                want_w[layer] = rtn(m, 4, 32, True)
            want = forward(x.astype(np.float64),
                           {k: v.astype(np.float64)
                            for k, v in want_w.items()}, b1, b3)
            err = rel_err(y, want)
            check(err <= 1e-4, "%s: vs NumPy's RTN of the masked weights, "
                  "rel err %.2e" % (desc, err))
            err = rel_err(y, yd)
            check(err <= 1e-4, "%s: vs the dense W4A16 kernel, rel err %.2e"
                  % (desc, err))
            if not cpu:
                # The lookup form of the dense kernel sums f32 products of
                # the same codes: only the order of the sums differs
                # (--int8-dot=false for both: the dense head's kernel too).
                yl, _ = compile_run("lookup_" + tag, rows,
                                    base + ["--sparse-storage=dense",
                                            "--int8-dot=false"])
                ys, _ = compile_run("sp_lookup_" + tag, rows,
                                    base + ["--int8-dot=false"])
                err = rel_err(ys, yl)
                check(err <= 1e-5, "%s: vs the dense W4A16 lookup kernel "
                      "(--int8-dot=false), rel err %.2e" % (desc, err))
            for layer in LAYERS:
                rec = layers[layer]
                want_b = int4_bytes(weights[layer])
                check(rec.get("storage") == "2:4 compressed int4" and
                      rec["bytes_after"] == want_b and
                      rec["bytes_dense"] > want_b,
                      "%s: %s stored %s, %d bytes (want %d, dense %d)" %
                      (desc, layer, rec.get("storage"), rec["bytes_after"],
                       want_b, rec.get("bytes_dense", -1)))

    # One layer [R, 128] -> 64 (scale blocks of 32 = 4 steps of the int16
    # form), pruned with --sparsity-head: bit-identical to the dense W4A16
    # kernel where the host has AVX512-VNNI (the int16 form on both sides).
    flags = open("/proc/cpuinfo").read().split()
    vnni = "avx512_vnni" in flags and "avx512bw" in flags
    # On AVX512-VBMI2 hosts the int16 form expands the kept codes
    # (vpexpandb); --cpu=cascadelake (VNNI, no VBMI2) takes its gather form
    # (vpshufb of the activations): both bit-identical to the dense kernel.
    forms = [("sp", [])]
    if vnni and "avx512_vbmi2" in flags:
        forms.append(("sp_gather", ["--cpu=cascadelake"]))
    wl = (rng.standard_normal((128, 64)) / 8).astype(F32)
    one = os.path.join(work, "one.onnx")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="/one/MatMul")],
        "one", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                              ["R", 128])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["R", 64])],
        [numpy_helper.from_array(wl, "w")])
    onnx.save(helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 17)]), one)
    for rows in [1, 5]:
        xo = os.path.join(work, "xone%d.npy" % rows)
        np.save(xo, rng.standard_normal((rows, 128)).astype(F32))
        ys = {}
        for name, extra in forms + [("dense", ["--sparse-storage=dense"])]:
            exe = os.path.join(work, "one_%s_%d" % (name, rows))
            run([qc, one, "-o", exe, "--report=" + exe + ".json"] + base +
                ["--sparsity-head"] + extra)
            od = exe + ".out"
            os.makedirs(od, exist_ok=True)
            run([exe, "--input", "x=" + xo, "--output-dir", od])
            ys[name] = np.load(os.path.join(od, "y.npy"))
            with open(exe + ".json") as f:
                st = json.load(f)["layers"][0].get("storage")
            if name != "dense":
                check(st == "2:4 compressed int4", "one layer: storage %s" % st)
        for name, _ in forms:
            err = rel_err(ys[name], ys["dense"])
            if vnni:
                check(np.array_equal(ys[name], ys["dense"]),
                      "one layer, %d rows (%s): compressed bit-identical to "
                      "the dense W4A16 kernel (int16 forms), rel err %.2e" %
                      (rows, name, err))
            else:
                check(err <= 1e-5, "one layer, %d rows: compressed vs dense "
                      "W4A16, rel err %.2e" % (rows, err))

    # Batch and sequence dims [2, 3, 128] (rows collapsed in the kernel,
    # the int16 prepass over all six rows).
    one3 = os.path.join(work, "one3.onnx")
    g3 = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="/one/MatMul")],
        "one3", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                               ["B", "S", 128])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", "S", 64])],
        [numpy_helper.from_array(wl, "w")])
    onnx.save(helper.make_model(
        g3, opset_imports=[helper.make_opsetid("", 17)]), one3)
    x3 = os.path.join(work, "x3.npy")
    np.save(x3, rng.standard_normal((2, 3, 128)).astype(F32))
    y3 = {}
    for name, extra in forms + [("dense", ["--sparse-storage=dense"])]:
        exe = os.path.join(work, "one3_" + name)
        run([qc, one3, "-o", exe] + base + ["--sparsity-head"] + extra)
        od = exe + ".out"
        os.makedirs(od, exist_ok=True)
        run([exe, "--input", "x=" + x3, "--output-dir", od])
        y3[name] = np.load(os.path.join(od, "y.npy"))
    for name, _ in forms:
        err = rel_err(y3[name], y3["dense"])
        check(y3[name].shape == (2, 3, 64) and
              (np.array_equal(y3[name], y3["dense"]) if vnni
               else err <= 1e-5),
              "x [2, 3, 128] (%s): compressed vs dense W4A16, rel err %.2e" %
              (name, err))

    # 1:4 (one kept code per group: the last nibble of a row's bytes
    # unused) against NumPy's RTN of the masked weights.
    x, weights, b1, b3 = models[8][2:]
    y14, l14 = compile_run("sp14", 8, ["--sparsity=1:4", "--quant=w4a16"])
    want_w = {k: (v if k == "/head/MatMul" else
                  rtn(np.where(magnitude_mask(v, "1:4"), v, 0), 4, 32, True))
              for k, v in weights.items()}
    want_w["/head/MatMul"] = rtn(weights["/head/MatMul"], 4, 32, True)
    err = rel_err(y14, forward(x.astype(np.float64),
                               {k: v.astype(np.float64)
                                for k, v in want_w.items()}, b1, b3))
    check(err <= 1e-4 and l14["/l1/MatMul"]["storage"] ==
          "1:4 compressed int4", "1:4 int4: %s, rel err vs NumPy %.2e" %
          (l14["/l1/MatMul"]["storage"], err))

    # 4:8 int4 is not smaller than the dense codes; zero points have no
    # compressed format: both stay dense and say why.
    _, l48 = compile_run("sp48", 8, ["--sparsity=4:8", "--quant=w4a16"])
    _, lasym = compile_run("spasym", 8, base + ["--asymmetric"])
    check(l48["/l1/MatMul"]["storage"].startswith(
              "dense (compressed int4 not smaller") and
          lasym["/l1/MatMul"]["storage"] ==
          "dense (zero points: no compressed format)",
          "dense reasons: %s; %s" % (l48["/l1/MatMul"]["storage"],
                                     lasym["/l1/MatMul"]["storage"]))
    if failures:
        sys.exit("%d checks failed" % len(failures))
    print("all sparse int4 checks passed")


if __name__ == "__main__":
    main()
