#!/usr/bin/env python3
"""Segmented calibration equals whole-model calibration.

quench-compile --calib runs the model segment by segment (cut between
layers, docs/calibration.md); the statistics must not depend on where it
is cut. For each model below, the cache of one run with
--calib-segment-mb=0 (the whole model at once) is compared with the cache
of a run with a tiny budget (every piece between two cuts its own
segment; the run must report more than one segment):

- a 3-layer LLaMA-shaped model from bench/gen_llama_onnx.py (random
  weights; always available);
- the real stories260K model (5 layers) converted by
  examples/stories260k_to_onnx.py, when ../shared/models/stories260K.bin
  is present (else that part is SKIPPED).

Compared: tensor names, layers, channels, row/element/non-finite counts
exactly; min, max and per-channel max |x| to 1e-5 relative; per-channel
sum |x| and the Gram matrices (double) to 1e-6 relative to their largest
entry; histograms: the same limit, and counts that differ in at most
0.01 % of the elements (a value on a bin edge may move by one bin when
the float code is fused differently across a cut). The largest differences
are printed.

Usage: calibration_segments.py --build BUILD_DIR [--keep DIR]
"""

import argparse
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from calibration import make_llama_samples, read_cache, rel, run  # noqa: E402,E501

SRC = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PY = "/usr/bin/python3"


def calibrate(qc, model, samples, cache, segment_mb):
    p = run([qc, model, "-o", cache + ".o", "--emit=obj",
             "--calib=" + samples, "--calib-cache=" + cache,
             "--calib-segment-mb=" + segment_mb,
             "--stop-after-stage=calibrate"])
    return p.stderr


def compare(whole, seg):
    """Returns a list of failures."""
    fails = []
    if list(whole["tensors"]) != list(seg["tensors"]):
        return ["tensor names/order differ: %s vs %s" %
                (list(whole["tensors"]), list(seg["tensors"]))]
    worst = {"minmax": 0.0, "absmax": 0.0, "abssum": 0.0, "gram": 0.0,
             "hist": 0.0}
    for name, a in whole["tensors"].items():
        b = seg["tensors"][name]
        for key in ("layers", "channels", "rows", "count", "nonfinite"):
            if a[key] != b[key]:
                fails.append(f"{name}: {key} {a[key]} vs {b[key]}")
        worst["minmax"] = max(worst["minmax"], rel(a["min"], b["min"]),
                              rel(a["max"], b["max"]))
        worst["absmax"] = max(worst["absmax"], rel(a["absmax"], b["absmax"]))
        worst["abssum"] = max(worst["abssum"], rel(a["abssum"], b["abssum"]))
        if ("gram" in a) != ("gram" in b):
            fails.append(f"{name}: Gram matrix in one cache only")
        elif "gram" in a:
            worst["gram"] = max(worst["gram"], rel(a["gram"], b["gram"]))
        if a["limit"] != b["limit"] and rel(a["limit"], b["limit"]) > 1e-5:
            fails.append(f"{name}: histogram limit {a['limit']} vs "
                         f"{b['limit']}")
        elif len(a["hist"]) == len(b["hist"]):
            moved = np.abs(a["hist"].astype(np.int64) -
                           b["hist"].astype(np.int64)).sum() / 2
            worst["hist"] = max(worst["hist"], moved / max(a["count"], 1))
    limits = {"minmax": 1e-5, "absmax": 1e-5, "abssum": 1e-6, "gram": 1e-6,
              "hist": 1e-4}
    print("  largest differences: " + ", ".join(
        f"{k} {v:.2e}" for k, v in worst.items()))
    for k, v in worst.items():
        if v > limits[k]:
            fails.append(f"{k} differs by {v:.2e} (limit {limits[k]:.0e})")
    return fails


def check(qc, name, model, samples, work):
    whole_cache = os.path.join(work, name + "-whole.calib")
    seg_cache = os.path.join(work, name + "-seg.calib")
    err_whole = calibrate(qc, model, samples, whole_cache, "0")
    err_seg = calibrate(qc, model, samples, seg_cache, "0.000001")
    fails = []
    if "in 1 segment " not in err_whole:
        fails.append("--calib-segment-mb=0 did not run one segment:\n" +
                     err_whole)
    line = next((l for l in err_seg.splitlines() if " segments " in l), "")
    print(f"{name}: {line}")
    if not line:
        fails.append("the tiny budget did not cut the model:\n" + err_seg)
    fails += compare(read_cache(whole_cache), read_cache(seg_cache))
    for f in fails:
        print(f"FAIL ({name}): {f}")
    if not fails:
        print(f"ok ({name}): segmented statistics equal whole-model ones")
    return len(fails)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--keep")
    args = ap.parse_args()
    qc = os.path.join(args.build, "bin", "quench-compile")
    work = args.keep or tempfile.mkdtemp(prefix="quench-calib-seg-")
    os.makedirs(work, exist_ok=True)
    failures = 0
    rng = np.random.default_rng(3)
    try:
        model, samples = make_llama_samples(work, "llama3-samples", 3, rng)
        failures += check(qc, "llama3", model, samples, work)

        bin_path = os.path.join(SRC, "..", "shared", "models",
                                "stories260K.bin")
        if not os.path.exists(bin_path):
            print("stories260K: SKIPPED (../shared/models/stories260K.bin "
                  "is absent)")
        else:
            model = os.path.join(work, "stories260k.onnx")
            run([PY, os.path.join(SRC, "examples", "stories260k_to_onnx.py"),
                 "--bin", bin_path, "-o", model, "--seq", "32"])
            samples = os.path.join(work, "stories-samples")
            for i in range(4):
                d = os.path.join(samples, "%02d" % i)
                os.makedirs(d, exist_ok=True)
                np.save(os.path.join(d, "input_ids.npy"),
                        rng.integers(0, 512, size=(1, 32)).astype(np.int64))
            failures += check(qc, "stories260K", model, samples, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"calibration-segments: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
