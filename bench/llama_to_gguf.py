#!/usr/bin/python3
"""Writes the weights of a bench/gen_llama_onnx.py model (with or without
past; external data and its .json manifest) as a GGUF file that llama.cpp
loads, with llama.cpp's own gguf-py (LLAMA_CPP/gguf-py, from the llama.cpp
source tree given; llama.cpp stays outside this repository).

The file's contents come from bench/llamacpp_scale.py's gguf_plan: MatMul
weights [in, out] transposed to llama.cpp's [out, in] rows; the q and k rows
of every head permuted from rotate-half (the ONNX graph's RoPE, Hugging
Face's layout: pairs (x_i, x_{i+hd/2})) to llama.cpp's interleaved pairs
(x_{2i}, x_{2i+1}); norm weights F32; a synthetic SPM vocabulary (the
weights are random). gguf-py writes it, one tensor in memory at a time
(GGUFWriter.add_tensor_info, then write_tensor_data per tensor).

gguf-py imports `sentencepiece` (gguf/vocab.py) and `yaml` (gguf/metadata.py)
when the package loads; neither is used to write tensors, so when they are
not installed (Debian's python3 has neither) empty stand-in modules are
registered first (../shared/toolchain/NOTES.md, "Peers").

--builtin writes the same plan with llamacpp_scale.py's minimal GGUF writer
instead (no llama.cpp source tree needed). bench/generation.py checks the
result against the ONNX model (llama.cpp's logits with an f32 KV cache
against ONNX Runtime's on the same prompt) before timing it.

Usage: bench/llama_to_gguf.py MODEL.onnx OUT.gguf (--llama-cpp SRC | --builtin)
         [--name NAME]
"""

import argparse
import importlib
import json
import os
import sys
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from llamacpp_scale import (ARR, F32V, GGML_F16, I32, STR, U32,  # noqa: E402
                            gguf_plan, write_gguf)


def import_gguf(llama_cpp):
    """llama.cpp's gguf package from LLAMA_CPP/gguf-py."""
    path = os.path.join(llama_cpp, "gguf-py")
    if not os.path.isfile(os.path.join(path, "gguf", "gguf_writer.py")):
        sys.exit("llama_to_gguf.py: no gguf-py/gguf/gguf_writer.py in " + llama_cpp)
    for mod in ("sentencepiece", "yaml"):
        try:
            importlib.import_module(mod)
        except ImportError:
            stub = types.ModuleType(mod)
            if mod == "sentencepiece":
                stub.SentencePieceProcessor = None  # vocab.py imports it by name
            sys.modules[mod] = stub
    sys.path.insert(0, path)
    import gguf  # noqa: E402  (llama.cpp's gguf-py)
    return gguf


def write_with_gguf_py(model, manifest, path, name, llama_cpp):
    gguf = import_gguf(llama_cpp)
    kv, tensors = gguf_plan(model, manifest, name)
    w = gguf.GGUFWriter(path + ".tmp", "llama")
    scalar = {U32: w.add_uint32, I32: w.add_int32, F32V: w.add_float32,
              STR: w.add_string}
    for key, vtype, value, etype in kv:
        if key == "general.architecture":
            continue  # GGUFWriter writes it from its arch argument
        if vtype == ARR:
            # add_array takes the element type from the first element
            # (str -> STRING, float -> FLOAT32, int -> INT32), which are
            # the element types of the plan.
            assert etype in (STR, F32V, I32), key
            w.add_array(key, list(value))
        else:
            scalar[vtype](key, value)
    np_type = {True: "float16", False: "float32"}
    for tname, shape, gtype, _ in tensors:
        dtype = np_type[gtype == GGML_F16]
        n = 1
        for d in shape:
            n *= d
        w.add_tensor_info(tname, shape, np.dtype(dtype),
                          n * np.dtype(dtype).itemsize)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for tname, shape, gtype, load in tensors:
        arr = np.ascontiguousarray(load(), np_type[gtype == GGML_F16])
        assert arr.shape == tuple(shape), tname
        w.write_tensor_data(arr)
        del arr
    w.close()
    os.replace(path + ".tmp", path)


def write(model, path, name, llama_cpp=None):
    """MODEL's weights as GGUF at PATH: with gguf-py from LLAMA_CPP, or the
    builtin writer when llama_cpp is None."""
    with open(os.path.splitext(model)[0] + ".json") as f:
        manifest = json.load(f)
    if llama_cpp:
        write_with_gguf_py(model, manifest, path, name, llama_cpp)
    else:
        write_gguf(model, manifest, path, name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("out")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--llama-cpp", help="llama.cpp source tree (gguf-py)")
    g.add_argument("--builtin", action="store_true",
                   help="llamacpp_scale.py's GGUF writer instead of gguf-py")
    ap.add_argument("--name", default="quench-bench")
    a = ap.parse_args()
    if not os.path.isfile(os.path.splitext(a.model)[0] + ".json"):
        sys.exit("llama_to_gguf.py: no manifest %s.json (models of "
                 "bench/gen_llama_onnx.py with external data have one)"
                 % os.path.splitext(a.model)[0])
    write(a.model, a.out, a.name, a.llama_cpp)
    print("llama_to_gguf.py: wrote %s (%.1f MB)" % (
        a.out, os.path.getsize(a.out) / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
