#!/usr/bin/env python3
"""Calibration and GPTQ of a model that computes in f16.

A Hugging Face LLaMA loaded in float16 exports a graph whose linears read
f16 activations (bench/gen_llama_onnx.py --dtype f16, the torch style).
Calibration observes them widened to f32 (docs/calibration.md). Checked on
a 2-layer LLaMA-shaped model (random weights) against the same model in
f32 (the generator draws the same weights in f32 and rounds them to f16):

1. both calibrate (--stop-after-stage=calibrate, --calib-cache): the f16
   model has as many observed tensors as the f32 one (every linear: 4 per
   layer and the output), in the same order, with the same channels, rows
   and element counts (all finite);
2. its statistics equal the f32 model's up to f16 rounding: min, max,
   per-channel max |x| and sum |x|, and the Gram matrices within 3e-2
   relative to their largest entry (the measured gap is ~1e-3);
3. W4A16 GPTQ of the f16 model from that cache (--algo=gptq
   --calib-cache) compiles, quantizes every linear with GPTQ ("GPTQ of 15
   layers": 7 per layer and the output), and its executable's logits are finite and close to the f16
   float executable's (relative RMS difference < 0.5: 4-bit weights).

Usage: calibration_f16.py --build BUILD_DIR [--keep DIR]
"""

import argparse
import os
import re
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from calibration import read_cache, run  # noqa: E402

SRC = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PY = "/usr/bin/python3"
DIMS = ["--dim", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2",
        "--hidden", "160", "--vocab", "97", "--seq", "8"]


def rel(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    scale = max(np.abs(a).max(initial=0), np.abs(b).max(initial=0), 1e-30)
    return float(np.abs(a - b).max(initial=0) / scale)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--keep", help="work in this directory and keep it")
    a = ap.parse_args()
    qc = os.path.join(a.build, "bin", "quench-compile")
    work = a.keep or tempfile.mkdtemp(prefix="calib-f16-")
    os.makedirs(work, exist_ok=True)
    fails = []
    try:
        models = {}
        for dt in ("f32", "f16"):
            models[dt] = os.path.join(work, "llama_%s.onnx" % dt)
            run([PY, os.path.join(SRC, "bench", "gen_llama_onnx.py"),
                 models[dt], "--dtype", dt] + DIMS)
        samples = os.path.join(work, "samples")
        rng = np.random.default_rng(3)
        for s in range(3):
            d = os.path.join(samples, "%02d" % s)
            os.makedirs(d, exist_ok=True)
            np.save(os.path.join(d, "input_ids.npy"),
                    rng.integers(0, 97, size=(1, 8), dtype=np.int64))

        caches = {}
        for dt, m in models.items():
            caches[dt] = os.path.join(work, dt + ".calib")
            run([qc, m, "-o", os.path.join(work, dt + ".o"), "--emit=obj",
                 "--calib=" + samples, "--calib-cache=" + caches[dt],
                 "--stop-after-stage=calibrate"])
        c32, c16 = read_cache(caches["f32"]), read_cache(caches["f16"])
        t32, t16 = list(c32["tensors"].values()), list(c16["tensors"].values())
        print("observed tensors: f32 %d, f16 %d" % (len(t32), len(t16)))
        if len(t32) != 9 or len(t16) != len(t32):
            fails.append("expected 9 observed tensors in both models, got "
                         "%d (f32) and %d (f16)" % (len(t32), len(t16)))
        worst = {"minmax": 0.0, "absmax": 0.0, "abssum": 0.0, "gram": 0.0}
        for x, y in zip(t32, t16):
            for key in ("channels", "rows", "count", "nonfinite"):
                if x[key] != y[key]:
                    fails.append("%s / %s: %s %s vs %s" % (
                        x["name"], y["name"], key, x[key], y[key]))
            if y["rows"] != 3 * 8 or y["count"] != y["rows"] * y["channels"]:
                fails.append("%s: %d rows, %d elements (expected 24 rows, "
                             "all finite)" % (y["name"], y["rows"], y["count"]))
            if "gram" not in y:
                fails.append(y["name"] + ": no Gram matrix")
                continue
            worst["minmax"] = max(worst["minmax"],
                                  rel([x["min"], x["max"]], [y["min"], y["max"]]))
            for key in ("absmax", "abssum", "gram"):
                worst[key] = max(worst[key], rel(x[key], y[key]))
        print("largest relative differences f16 vs f32: " +
              ", ".join("%s %.2e" % kv for kv in worst.items()))
        for key, v in worst.items():
            if not v <= 3e-2:
                fails.append("f16 statistics differ from f32 in %s by %.2e" %
                             (key, v))

        # GPTQ of the f16 model from its cache, and the executables.
        exe = os.path.join(work, "f16_gptq")
        p = run([qc, models["f16"], "-o", exe, "--emit=exe", "--quant=w4a16",
                 "--algo=gptq", "--calib-cache=" + caches["f16"]])
        m = re.search(r"GPTQ of (\d+) layers", p.stderr)
        if not m or int(m.group(1)) != 15:
            fails.append("expected 'GPTQ of 15 layers' in:\n" + p.stderr[-2000:])
        ref = os.path.join(work, "f16_float")
        run([qc, models["f16"], "-o", ref, "--emit=exe"])
        ids = os.path.join(samples, "00", "input_ids.npy")
        logits = {}
        for name, e in (("gptq", exe), ("float", ref)):
            od = os.path.join(work, "out-" + name)
            os.makedirs(od, exist_ok=True)
            run([e, "--input", "input_ids=" + ids, "--output-dir", od])
            logits[name] = np.load(os.path.join(od, "logits.npy")).astype(np.float64)
        q, f = logits["gptq"], logits["float"]
        err = float(np.sqrt(np.mean((q - f) ** 2) / max(np.mean(f ** 2), 1e-30)))
        print("W4A16 GPTQ vs float logits (f16 model): relative RMS %.3f" % err)
        if not np.isfinite(q).all():
            fails.append("GPTQ executable: non-finite logits")
        elif not err < 0.5:
            fails.append("GPTQ logits too far from float: relative RMS %.3f" % err)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    for f in fails:
        print("FAIL:", f)
    if fails:
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
