#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/TARGET/.

The seeds are checked in (small files, named seed-*); this script documents
and regenerates them. Regression inputs of findings are checked in next to
them (named crash-* / regress-*) and never regenerated. Needs numpy and onnx
(Debian's /usr/bin/python3).

Usage: /usr/bin/python3 fuzz/make_seeds.py [--out fuzz/corpus]
"""

import argparse
import glob
import io
import json
import os
import shutil
import struct

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def put(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def npy_bytes(arr, version=None):
    buf = io.BytesIO()
    if version is None:
        np.save(buf, arr)
    else:
        np.lib.format.write_array(buf, arr, version=version)
    return buf.getvalue()


def npy_seeds(out):
    rng = np.random.default_rng(0)
    arrays = {
        "f32-2x3": rng.standard_normal((2, 3)).astype(np.float32),
        "f16-4": rng.standard_normal(4).astype(np.float16),
        "f64-scalar": np.array(1.5),
        "i64-1x5": np.arange(5, dtype=np.int64).reshape(1, 5),
        "i32-empty": np.zeros((0, 3), np.int32),
        "u8-8": np.arange(8, dtype=np.uint8),
        "i8-2x2x2": np.arange(8, dtype=np.int8).reshape(2, 2, 2),
        "bool-3": np.array([True, False, True]),
        "u16-2": np.array([1, 65535], np.uint16),
        "fortran-2x2": np.asfortranarray(np.eye(2, dtype=np.float32)),
    }
    for name, arr in arrays.items():
        put(out, "npy-fuzzer", name + ".npy", npy_bytes(arr))
    put(out, "npy-fuzzer", "v2-f32.npy",
        npy_bytes(np.ones(3, np.float32), version=(2, 0)))
    put(out, "npy-fuzzer", "big-endian.npy",
        npy_bytes(np.ones(2, dtype=">f4")))


def cache_bytes(tensors, model="m" * 16, data="d" * 16, samples=2):
    """A calibration cache (lib/Calibration/Statistics.cpp, CacheWriter)."""
    def s(x):
        b = x.encode()
        return struct.pack("<I", len(b)) + b

    def arr(fmt, values):
        return struct.pack("<Q", len(values)) + struct.pack(
            "<" + fmt * len(values), *values)

    b = b"QNCCALIB" + struct.pack("<I", 1) + s(model) + s(data)
    b += struct.pack("<QQ", samples, len(tensors))
    for name, layers, channels, per_channel, gram in tensors:
        b += s(name) + struct.pack("<Q", len(layers))
        for l in layers:
            b += s(l)
        b += struct.pack("<qQQQffd", channels, 4, 4 * channels, 0, -1.0, 2.0,
                         2.0)
        b += arr("Q", [1, 2, 3, 0, 4, 0, 0, 2])
        flags = (1 if per_channel else 0) | (2 if gram else 0)
        b += struct.pack("<B", flags)
        if per_channel:
            b += arr("f", [1.0] * channels) + arr("d", [2.0] * channels)
        if gram:
            b += arr("d", [float(i) for i in range(channels * channels)])
    h = 0xcbf29ce484222325
    for byte in b:
        h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return b + struct.pack("<Q", h)


def cache_seeds(out):
    put(out, "calib-cache-fuzzer", "empty.qcal", cache_bytes([]))
    put(out, "calib-cache-fuzzer", "one.qcal",
        cache_bytes([("/mm:input", ["/mm"], 4, False, False)]))
    put(out, "calib-cache-fuzzer", "per-channel-gram.qcal",
        cache_bytes([("/a:input", ["/a", "/b"], 3, True, True),
                     ("/c:input", [], 2, False, True)]))


def recipe_seeds(out):
    recipes = {
        "default": {"version": 1, "default": {"bits": 4, "group_size": 32}},
        "layers": {"version": 1, "default": {"bits": 8},
                   "layers": [{"match": "*/attn/*", "skip": True},
                              {"match": "model.layers.[0-9]*", "bits": 4,
                               "group_size": 16, "symmetric": False,
                               "scale_type": "f32"}]},
        "gptq": {"version": 1, "layers": [
            {"match": "*", "algo": "gptq", "gptq_act_order": False,
             "gptq_dampening": 0.05}]},
        "sparsity": {"version": 1, "default": {"sparsity": "2:4"},
                     "layers": [{"match": "lm_*", "sparsity": "unstructured:0.5"},
                                {"match": "{a,b}*", "sparsity": "none",
                                 "outliers": "auto"}]},
        "awq": {"version": 1, "layers": [{"match": "/h.?/*", "algo": "awq+gptq",
                                          "outliers": 4, "bits": 3}]},
    }
    for name, r in recipes.items():
        put(out, "recipe-fuzzer", name + ".json", json.dumps(r).encode())


def onnx_seeds(out):
    # The importer's own text-syntax tests, and a few binary models.
    for p in sorted(glob.glob(os.path.join(ROOT, "test/Frontend/ONNX/*.onnxtxt"))):
        with open(p, "rb") as f:
            text = f.read()
        # Only the model (from its '<' on): the lit comments are noise.
        put(out, "onnx-import-fuzzer", os.path.basename(p), text[text.index(b"\n<") + 1:])
    rng = np.random.default_rng(0)

    def model(nodes, inputs, outputs, inits=()):
        g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        return m.SerializeToString()

    vi = helper.make_tensor_value_info
    w = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "W")
    put(out, "onnx-import-fuzzer", "matmul.onnx", model(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm"),
         helper.make_node("Relu", ["y"], ["z"])],
        [vi("x", TensorProto.FLOAT, ["B", 8])], [vi("z", TensorProto.FLOAT, ["B", 4])], [w]))
    table = numpy_helper.from_array(np.arange(32, dtype=np.float32).reshape(8, 4), "T")
    put(out, "onnx-import-fuzzer", "gather-reshape.onnx", model(
        [helper.make_node("Gather", ["T", "ids"], ["e"]),
         helper.make_node("Shape", ["e"], ["s"]),
         helper.make_node("Reshape", ["e", "s"], ["r"]),
         helper.make_node("ReduceMean", ["r"], ["m"], axes=[-1], keepdims=1),
         helper.make_node("Div", ["r", "m"], ["y"])],
        [vi("ids", TensorProto.INT64, [1, "T"])], [vi("y", TensorProto.FLOAT, None)], [table]))
    shape = numpy_helper.from_array(np.array([2, 3], np.int64), "shape")
    put(out, "onnx-import-fuzzer", "constant-folding.onnx", model(
        [helper.make_node("ConstantOfShape", ["shape"], ["c"],
                          value=numpy_helper.from_array(np.array([7], np.int64))),
         helper.make_node("Range", ["zero", "six", "one"], ["r"]),
         helper.make_node("Reshape", ["r", "shape"], ["r2"]),
         helper.make_node("Div", ["c", "r2"], ["y"])],
        [], [vi("y", TensorProto.INT64, [2, 3])],
        [shape, numpy_helper.from_array(np.array(0, np.int64), "zero"),
         numpy_helper.from_array(np.array(6, np.int64), "six"),
         numpy_helper.from_array(np.array(1, np.int64), "one")]))


def gguf_seeds(out):
    # Small GGUF files from test/e2e/gguf_model.py's writer: every metadata
    # value type (scalars, strings, arrays), a tensor of every ggml type the
    # reader sizes (one or two blocks), a tiny llama model, an alignment
    # other than 32 and a version-2 file.
    import sys
    sys.path.insert(0, os.path.join(ROOT, "test", "e2e"))
    import gguf_model as g
    rng = np.random.default_rng(0)

    w = g.GGUFWriter()
    w.add("general.architecture", g.STR, "llama")
    for vt, v in [(g.U8, 200), (g.I8, -3), (g.U16, 60000), (g.I16, -300),
                  (g.U32, 7), (g.I32, -7), (g.F32V, 0.5), (g.BOOL, True),
                  (g.U64, 1 << 40), (g.I64, -(1 << 40)), (g.F64V, 2.25)]:
        w.add("seed.scalar%d" % vt, vt, v)
    w.add("seed.strings", g.ARR, ["a", "", "ccc"], g.STR)
    w.add("seed.floats", g.ARR, [1.0, -2.0], g.F32V)
    w.add("seed.ints", g.ARR, [1, 2, 3], g.I32)
    for t in [g.F32, g.F16, g.BF16]:
        raw, _ = g.encode_float(t, rng.standard_normal(8))
        w.tensor("float.%d" % t, [4, 2], t, raw)
    for t in g.QUANT_TYPES:
        elems, _ = g.BLOCK[t]
        w.tensor("quant.%d" % t, [elems, 1], t,
                 g.random_blocks(t, 1, rng).tobytes())
    put(out, "gguf-fuzzer", "types.gguf", w.to_bytes())

    w = g.GGUFWriter(alignment=64, version=2)
    w.add("general.alignment", g.U32, 64)
    w.tensor("a", [32, 2], g.Q8_0, g.random_blocks(g.Q8_0, 2, rng).tobytes())
    w.tensor("b", [3], g.F32, np.ones(3, np.float32).tobytes())
    put(out, "gguf-fuzzer", "v2-align64.gguf", w.to_bytes())

    w = g.GGUFWriter()
    g.make_model(None, rng, dim=8, layers=1, heads=2, kv_heads=1, ff=16,
                 vocab=6, writer=w)
    put(out, "gguf-fuzzer", "tiny-llama.gguf", w.to_bytes())
    put(out, "gguf-fuzzer", "empty.gguf", g.GGUFWriter().to_bytes())


def model_run_seeds(out):
    # ModelRunFuzzer.cpp's layout: a flags byte, then per input (4 and a
    # spare) dtype byte, rank byte, one byte per dim, a NULL-data byte;
    # the rest is element data. Bytes below 0xf0 / 0xe0 keep what the
    # model declares.
    def inputs(t, s, m, extra=b""):
        ids = bytes([0, 0, 0, t, 0])
        x = bytes([0, 0, s, 0, 0])
        a = bytes([0, 0, m, 0])
        b = bytes([0, 0, m, 0])
        return bytes([0]) + ids + x + a + b + bytes([0, 0, 0, 0, 0]) + extra
    put(out, "model-run-fuzzer", "good", inputs(3, 3, 2, bytes(range(1, 64))))
    put(out, "model-run-fuzzer", "empty", inputs(0, 0, 0))
    put(out, "model-run-fuzzer", "mismatch", inputs(3, 4, 2, bytes(range(1, 64))))
    put(out, "model-run-fuzzer", "wrong-dtype",
        bytes([0, 0xf9, 0, 0, 2, 0]) + inputs(1, 1, 1)[6:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "corpus"))
    a = ap.parse_args()
    for d in glob.glob(os.path.join(a.out, "*", "seed-*")):
        os.remove(d)
    npy_seeds(a.out)
    cache_seeds(a.out)
    recipe_seeds(a.out)
    onnx_seeds(a.out)
    gguf_seeds(a.out)
    model_run_seeds(a.out)


if __name__ == "__main__":
    main()
