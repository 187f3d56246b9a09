#!/usr/bin/env python3
"""End-to-end check of calibration (quench-compile --calib / --calib-cache).

A small ONNX model (made here with onnx.helper) has four linear layers:
two read the graph input x directly (one observed tensor with two layers;
observed from the input itself), one reads relu(x W1 + b1) and one the
rotation concat(x[:, 6:], x[:, :6]) (both observed as extra results of the
instrumented model; the concatenation makes the compiled code call the
runtime's strided memrefCopy, which the JIT must resolve). The first dim of
x is dynamic, and the samples have different row counts.

1. Statistics. quench-compile --calib=DIR --calib-cache=FILE calibrates on
   four samples; the cache (read here with an independent parser of the
   format in docs/calibration.md) must hold, for both observed tensors and
   against NumPy over all samples: the row and element counts, min/max
   exactly, per-channel max |x| exactly, per-channel sum |x| and the Gram
   matrix X^T X to 1e-9 relative, and a histogram of |x| that counts every
   element with bins consistent with the values.
2. Cache behaviour. A second run with the same cache and samples reads the
   cache (says so, same file); --calib-cache alone reads it; changed
   samples are recalibrated; a cache made for another model is refused
   without --calib; a corrupted cache is refused with a clear message.
3. Errors. A missing directory, a sample without the input file, an input
   of the wrong dtype, a missing cache without --calib and an unknown
   --calib-method give one clear message and a nonzero exit, and no output.

Usage: calibration.py --build BUILD_DIR [--keep DIR]
"""

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(7)
K, H, N = 12, 20, 5


def make_model(path, seed):
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(K, H)).astype(np.float32)
    b1 = rng.normal(size=(H,)).astype(np.float32)
    w2 = rng.normal(size=(H, N)).astype(np.float32)
    w3 = rng.normal(size=(K, N)).astype(np.float32)
    w4 = rng.normal(size=(K, N)).astype(np.float32)
    half = K // 2
    nodes = [
        helper.make_node("Slice", ["x", "s_hi", "e_hi", "axis1"], ["x_hi"],
                         name="slice_hi"),
        helper.make_node("Slice", ["x", "s_lo", "e_lo", "axis1"], ["x_lo"],
                         name="slice_lo"),
        helper.make_node("Concat", ["x_hi", "x_lo"], ["r"], axis=1,
                         name="rotate"),
        helper.make_node("MatMul", ["x", "w1"], ["h0"], name="fc1"),
        helper.make_node("Add", ["h0", "b1"], ["h1"], name="fc1_bias"),
        helper.make_node("Relu", ["h1"], ["h"], name="relu"),
        helper.make_node("MatMul", ["h", "w2"], ["y"], name="fc2"),
        helper.make_node("MatMul", ["r", "w3"], ["z"], name="side"),
        helper.make_node("MatMul", ["x", "w4"], ["g"], name="gate"),
    ]
    ints = lambda name, v: numpy_helper.from_array(np.array(v, np.int64), name)
    graph = helper.make_graph(
        nodes, "calib",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", N]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, ["rows", N]),
         helper.make_tensor_value_info("g", TensorProto.FLOAT, ["rows", N])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"),
         numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(w3, "w3"),
         numpy_helper.from_array(w4, "w4"), ints("s_hi", [half]),
         ints("e_hi", [K]), ints("s_lo", [0]), ints("e_lo", [half]),
         ints("axis1", [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return w1, b1


def read_cache(path):
    """Independent reader of the cache format (docs/calibration.md)."""
    data = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return vals if len(vals) > 1 else vals[0]

    def string():
        nonlocal pos
        n = take("I")
        s = data[pos:pos + n].decode()
        pos += n
        return s

    def array(dtype):
        nonlocal pos
        n = take("Q")
        a = np.frombuffer(data, dtype=dtype, count=n, offset=pos)
        pos += a.nbytes
        return a

    assert data[:8] == b"QNCCALIB", "magic"
    pos = 8
    out = {"version": take("I"), "model": string(), "data": string(),
           "samples": take("Q"), "tensors": {}}
    for _ in range(take("Q")):
        t = {"name": string()}
        t["layers"] = [string() for _ in range(take("Q"))]
        t["channels"], t["rows"], t["count"], t["nonfinite"] = take("qQQQ")
        t["min"], t["max"] = take("ff")
        t["limit"] = take("d")
        t["hist"] = array("<u8")
        flags = take("B")
        if flags & 1:
            t["absmax"] = array("<f4")
            t["abssum"] = array("<f8")
        if flags & 2:
            t["gram"] = array("<f8").reshape(t["channels"], t["channels"])
        out["tensors"][t["name"]] = t
    assert pos == len(data) - 8, "trailing bytes"
    return out


def check_stats(t, xs, exact):
    """exact: xs are the model's inputs themselves (bit-exact statistics);
    else values the model computed, which NumPy reproduces to rounding."""
    x = np.concatenate([a.reshape(-1, a.shape[-1]) for a in xs]).astype(np.float64)
    ok = True

    def expect(cond, what):
        nonlocal ok
        if not cond:
            print(f"FAIL {t['name']}: {what}")
            ok = False

    expect(t["channels"] == x.shape[1], f"channels {t['channels']}")
    expect(t["rows"] == x.shape[0], f"rows {t['rows']} != {x.shape[0]}")
    expect(t["count"] == x.size, f"count {t['count']}")
    rtol = 1e-9 if exact else 1e-5
    absmax = np.abs(x).max(axis=0).astype(np.float32)
    if exact:
        expect(np.array_equal(t["absmax"], absmax), "per-channel absmax")
        expect(t["min"] == np.float32(x.min()), f"min {t['min']} != {x.min()}")
        expect(t["max"] == np.float32(x.max()), f"max {t['max']} != {x.max()}")
    else:
        expect(np.allclose(t["absmax"], absmax, rtol=rtol), "per-channel absmax")
        expect(np.isclose(t["min"], x.min(), rtol=rtol), f"min {t['min']}")
        expect(np.isclose(t["max"], x.max(), rtol=rtol), f"max {t['max']}")
    abssum = np.abs(x).sum(axis=0)
    expect(np.allclose(t["abssum"], abssum, rtol=rtol, atol=0),
           "per-channel sum |x|")
    gram = x.T @ x
    expect(np.allclose(t["gram"], gram, rtol=rtol,
                       atol=rtol * np.abs(gram).max()), "Gram matrix")
    hist = t["hist"]
    expect(int(hist.sum()) == x.size, f"histogram total {hist.sum()}")
    expect(t["limit"] > np.abs(x).max(), "histogram limit above max |x|")
    width = t["limit"] / len(hist)
    ref = np.bincount(np.minimum((np.abs(x) / width).astype(np.int64),
                                 len(hist) - 1).ravel(), minlength=len(hist))
    # Bin edges computed in float vs double may differ for values on an
    # edge: allow a handful of moves between neighbours.
    expect(np.abs(ref - hist).sum() <= (4 if exact else x.size // 100 + 4),
           "histogram bins")
    return ok


def run(cmd, expect_ok=True, env=None, timeout=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env,
                       timeout=timeout)
    if expect_ok and p.returncode != 0:
        print("FAIL: command failed:", " ".join(cmd))
        print(p.stdout + p.stderr)
        sys.exit(1)
    return p


def rel(a, b):
    """max |a - b| relative to the larger of max |a| and max |b|."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    scale = max(np.abs(a).max(initial=0), np.abs(b).max(initial=0), 1e-30)
    return float(np.abs(a - b).max(initial=0) / scale)


def make_llama_samples(work, samples_dir, count, rng, seq=16):
    """A 3-layer LLaMA-shaped model (bench/gen_llama_onnx.py: dim 64, GQA
    4/2, vocab 128) at WORK/llama3.onnx and `count` samples of random
    input_ids [1, seq] under WORK/SAMPLES_DIR/NN; returns (model, samples)."""
    src = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    model = os.path.join(work, "llama3.onnx")
    run(["/usr/bin/python3", os.path.join(src, "bench", "gen_llama_onnx.py"),
         model, "--dim", "64", "--layers", "3", "--heads", "4",
         "--kv-heads", "2", "--hidden", "96", "--vocab", "128", "--seq",
         str(seq)])
    samples = os.path.join(work, samples_dir)
    for i in range(count):
        d = os.path.join(samples, "%02d" % i)
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, "input_ids.npy"),
                rng.integers(0, 128, size=(1, seq)).astype(np.int64))
    return model, samples


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--keep")
    args = ap.parse_args()
    qc = os.path.join(args.build, "bin", "quench-compile")
    work = args.keep or tempfile.mkdtemp(prefix="quench-calib-")
    os.makedirs(work, exist_ok=True)
    failures = 0

    model = os.path.join(work, "model.onnx")
    w1, b1 = make_model(model, 1)
    other = os.path.join(work, "other.onnx")
    make_model(other, 2)

    samples = os.path.join(work, "samples")
    shutil.rmtree(samples, ignore_errors=True)
    xs = []
    for i, rows in enumerate([3, 7, 1, 16]):
        x = RNG.normal(scale=1.0 + i, size=(rows, K)).astype(np.float32)
        x[0, 0] = -9.5 if i == 2 else x[0, 0]
        os.makedirs(os.path.join(samples, f"s{i}"))
        np.save(os.path.join(samples, f"s{i}", "x.npy"), x)
        xs.append(x)
    hs = [np.maximum(x.astype(np.float64) @ w1 + b1, 0) for x in xs]

    cache = os.path.join(work, "model.calib")
    if os.path.exists(cache):
        os.remove(cache)
    out = os.path.join(work, "m")
    p = run([qc, model, "-o", out, "--calib=" + samples,
             "--calib-cache=" + cache])
    if "sample 4/4" not in p.stderr:
        print("FAIL: no progress on stderr:", p.stderr)
        failures += 1
    c = read_cache(cache)
    print(f"cache: version {c['version']}, {c['samples']} samples, "
          f"tensors {sorted(c['tensors'])}")
    if c["samples"] != 4 or len(c["tensors"]) != 3:
        print("FAIL: expected 4 samples and 3 observed tensors")
        failures += 1
    by_layers = {tuple(sorted(t["layers"])): t for t in c["tensors"].values()}
    if sorted(by_layers) != [("fc1", "gate"), ("fc2",), ("side",)]:
        print("FAIL: layers per tensor", sorted(by_layers))
        failures += 1
    else:
        rs = [np.concatenate([x[:, K // 2:], x[:, :K // 2]], axis=1) for x in xs]
        failures += not check_stats(by_layers[("fc1", "gate")], xs, True)
        failures += not check_stats(by_layers[("side",)], rs, True)
        failures += not check_stats(by_layers[("fc2",)], hs, False)
        print("stats of x (fc1, gate), the rotation (side) and the relu "
              "output (fc2) match NumPy")

    # 2. Cache behaviour.
    before = open(cache, "rb").read()
    p = run([qc, model, "-o", out, "--calib=" + samples,
             "--calib-cache=" + cache])
    if "using the calibration statistics" not in p.stderr or \
            "calibrate:" in p.stderr or open(cache, "rb").read() != before:
        print("FAIL: the cache was not reused:", p.stderr)
        failures += 1
    p = run([qc, model, "-o", out, "--calib-cache=" + cache])
    if "using the calibration statistics" not in p.stderr:
        print("FAIL: --calib-cache alone did not read the cache:", p.stderr)
        failures += 1
    np.save(os.path.join(samples, "s1", "x.npy"), xs[1] * 2)
    p = run([qc, model, "-o", out, "--calib=" + samples,
             "--calib-cache=" + cache])
    if "recalibrating" not in p.stderr or read_cache(cache)["tensors"] == c["tensors"]:
        print("FAIL: changed samples were not recalibrated:", p.stderr)
        failures += 1
    np.save(os.path.join(samples, "s1", "x.npy"), xs[1])

    def expect_error(cmd, needle, what):
        nonlocal failures
        if os.path.exists(out):
            os.remove(out)
        p = run(cmd, expect_ok=False)
        err = p.stderr.strip()
        if p.returncode == 0 or needle not in err or os.path.exists(out):
            print(f"FAIL ({what}): rc {p.returncode}, stderr: {err}")
            failures += 1
        else:
            print(f"ok ({what}): {err.splitlines()[-1]}")

    expect_error([qc, other, "-o", out, "--calib-cache=" + cache],
                 "was made for another model", "cache of another model")
    bad = os.path.join(work, "bad.calib")
    data = bytearray(open(cache, "rb").read())
    data[len(data) // 2] ^= 0x10
    open(bad, "wb").write(bytes(data))
    expect_error([qc, model, "-o", out, "--calib-cache=" + bad],
                 "checksum mismatch", "corrupted cache")
    expect_error([qc, model, "-o", out, "--calib=" + work + "/nope"],
                 "does not exist", "missing directory")
    lacking = os.path.join(work, "lacking")
    os.makedirs(os.path.join(lacking, "a"), exist_ok=True)
    open(os.path.join(lacking, "a", "y.npy"), "wb").close()
    expect_error([qc, model, "-o", out, "--calib=" + lacking],
                 "lacks x.npy", "sample without the input")
    wrong = os.path.join(work, "wrong")
    os.makedirs(os.path.join(wrong, "a"), exist_ok=True)
    np.save(os.path.join(wrong, "a", "x.npy"), np.zeros((2, K), np.int32))
    expect_error([qc, model, "-o", out, "--calib=" + wrong],
                 "expected f32", "wrong dtype")
    expect_error([qc, model, "-o", out, "--calib-cache=" + work + "/none.calib"],
                 "does not exist", "missing cache")
    expect_error([qc, model, "-o", out, "--calib=" + samples,
                  "--calib-method=kl"], "unknown --calib-method", "bad method")

    if failures:
        print(f"calibration: {failures} failure(s)")
        return 1
    print("calibration: all checks passed")
    if not args.keep:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
