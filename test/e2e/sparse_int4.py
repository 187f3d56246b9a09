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
  * 4:8 int4 (4-bit indices: as many bytes as the dense codes) and
    asymmetric codes stay dense with the reason.
"""

import argparse
import json
import os
import sys
import tempfile

import numpy as np

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
