#!/usr/bin/env python3
"""Fused parallel linears compute exactly what the separate layers compute.

A small LLaMA-shaped model (bench/gen_llama_onnx.py: separate q/k/v and
gate/up projections, GQA) is compiled with and without the fuse-linears
stage (quench-fuse-parallel-linears) at fp32, W8A16 and W4A16 g32 (RTN);
the logits of both executables must be bit-identical, and the fused module
must have fewer products: per layer one q/k/v product and one gate/up
product (checked on --stop-after-stage=fuse-linears output). A recipe that
gives one k projection another scheme (8 bits per channel in a W4A16
model) keeps that layer apart and fuses its q and v.

  fuse_linears.py --build BUILD [--work-dir DIR]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = "/usr/bin/python3"
LAYERS = 2


def run(cmd, timeout=600):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        sys.exit("command failed (%d): %s\n%s%s" %
                 (r.returncode, " ".join(cmd), r.stdout, r.stderr))
    return r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--work-dir")
    args = ap.parse_args()
    compiler = os.path.join(args.build, "bin", "quench-compile")
    work = args.work_dir or tempfile.mkdtemp(prefix="fuse-linears-")
    os.makedirs(work, exist_ok=True)
    model = os.path.join(work, "llama.onnx")
    run([PY, os.path.join(SRC, "bench", "gen_llama_onnx.py"), model,
         "--dim", "128", "--layers", str(LAYERS), "--heads", "4",
         "--kv-heads", "2", "--hidden", "256", "--vocab", "96", "--seq", "8"])
    ids = os.path.join(work, "ids.npy")
    np.save(ids, np.random.default_rng(0).integers(0, 96, (1, 8)).astype(np.int64))

    # A recipe that gives layer 0's k projection (the second MatMul) 8 bits
    # per channel: q and v of layer 0 are fused, k stays apart.
    import onnx
    matmuls = [n.name for n in onnx.load(model, load_external_data=False)
               .graph.node if n.op_type == "MatMul"]
    recipe = os.path.join(work, "recipe.json")
    with open(recipe, "w") as f:
        f.write('{"version": 1, "layers": [{"match": "%s", "bits": 8, '
                '"group_size": 0}]}' % matmuls[1])

    failures = []
    for quant in (["--quant=none"], ["--quant=w8a16"],
                  ["--quant=w4a16", "--group-size=32"],
                  ["--quant=w4a16", "--group-size=32",
                   "--quant-recipe=" + recipe]):
        name = quant[0].split("=")[1] + ("-recipe" if len(quant) > 2 else "")
        # The fused module: one product per group of parallel linears.
        mlir = run([compiler, model, "-o", "-", "--emit=mlir",
                    "--stop-after-stage=fuse-linears"] + quant)
        op = "quench.linear" if name == "none" else "quench.matmul_nbits"
        products = len(re.findall(r"= %s " % re.escape(op), mlir))
        splits = len(re.findall(r"= quench\.split ", mlir))
        # Per layer: q/k/v and gate/up fused, o and down alone; the head.
        # With the recipe, layer 0's k is a product of its own.
        want = 4 * LAYERS + 1 + (1 if "recipe" in name else 0)
        if products != want or splits != 2 * LAYERS:
            failures.append("%s: %d products, %d splits after fuse-linears "
                            "(want %d and %d)" % (name, products, splits, want,
                                                  2 * LAYERS))
        outs = {}
        for fuse in ("1", "0"):
            exe = os.path.join(work, "m_%s_%s" % (name, fuse))
            run([compiler, model, "-o", exe, "--fuse-linears=" + fuse] + quant)
            out = os.path.join(work, "out_%s_%s" % (name, fuse))
            os.makedirs(out, exist_ok=True)
            run([exe, "--input", "input_ids=" + ids, "--output-dir", out])
            outs[fuse] = np.load(os.path.join(out, "logits.npy"))
        same = np.array_equal(outs["1"].view(np.uint32), outs["0"].view(np.uint32))
        print("%-5s fused vs separate: %s (max |diff| %.3g)" % (
            name, "bit-identical" if same else "DIFFERENT",
            float(np.abs(outs["1"] - outs["0"]).max())))
        if not same:
            failures.append("%s: fused and separate logits differ" % name)
    if failures:
        sys.exit("FAIL:\n  " + "\n  ".join(failures))
    print("PASS")


if __name__ == "__main__":
    main()
