#!/usr/bin/env python3
"""Malformed and unsupported GGUF files: quench-import (and quench-compile
for a few) must fail with exit status 1, exactly one error message naming
the problem, no crash and no output file. Each case is a small valid llama
model (test/e2e/gguf_model.py) with one thing broken: truncation (in the
header, the key/values, the data), bad magic, bad version, data offsets
past the end or misaligned, tensors with the wrong element count or a row
not a multiple of their block, duplicate tensor names and keys, missing
metadata and tensors, metadata of the wrong type, hostile counts and
lengths, an unsupported architecture, unsupported and unknown tensor types.
A valid model under another extension is recognized by its magic.

Usage: gguf_errors.py --build BUILD_DIR
Run through CTest: `ctest -L e2e -R gguf-errors`.
"""

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gguf_model as gm  # noqa: E402

SMALL = dict(dim=64, layers=2, heads=4, kv_heads=2, ff=128, vocab=50)


def model(mutate=None, **kw):
    """Bytes of a small llama model, after mutate(writer) if given."""
    w = gm.GGUFWriter()
    gm.make_model(None, np.random.default_rng(7), writer=w,
                  **dict(SMALL, **kw))
    if mutate:
        mutate(w)
    return w.to_bytes()


def set_kv(key, vtype, value):
    def f(w):
        w.kv = [(k, vtype, value, None) if k == key else (k, t, v, e)
                for k, t, v, e in w.kv]
    return f


def drop_kv(key):
    def f(w):
        w.kv = [x for x in w.kv if x[0] != key]
    return f


def edit_tensor(name, **changes):
    def f(w):
        out = []
        for n, dims, gtype, raw, off in w.tensors:
            if n == name:
                dims = changes.get("dims", dims)
                gtype = changes.get("gtype", gtype)
                raw = changes.get("raw", raw)
                off = changes.get("offset", off)
            out.append((n, dims, gtype, raw, off))
        w.tensors = out
    return f


def drop_tensor(name):
    def f(w):
        w.tensors = [t for t in w.tensors if t[0] != name]
    return f


def cases():
    good = model()
    head_end = good.index(b"blk.0.attn_norm.weight")
    c = []
    c.append(("empty file", b"", "truncated"))
    c.append(("bad magic", b"GGUX" + good[4:], "bad magic"))
    c.append(("version 1", good[:4] + struct.pack("<I", 1) + good[8:],
              "unsupported GGUF version 1"))
    c.append(("truncated header", good[:20], "truncated"))
    c.append(("truncated key/values",
              good[:good.index(b"tokenizer.ggml.tokens") + 60],
              "truncated"))
    c.append(("truncated tensor infos", good[:head_end + 10],
              "truncated"))
    c.append(("truncated data", good[:-100], "extends past the end"))
    c.append(("huge tensor count",
              good[:8] + struct.pack("<Q", 1 << 60) + good[16:],
              "cannot fit in the"))
    c.append(("huge key/value count",
              good[:16] + struct.pack("<Q", 1 << 60) + good[24:],
              "cannot fit in the"))
    # The first key's length field (right after the 24-byte header).
    c.append(("huge string length",
              good[:24] + struct.pack("<Q", 1 << 62) + good[32:],
              "truncated"))
    c.append(("offset past the end",
              model(edit_tensor("blk.1.ffn_up.weight", offset=1 << 40)),
              "extends past the end"))
    c.append(("misaligned offset",
              model(edit_tensor("blk.0.attn_q.weight", offset=4)),
              "not a multiple of the alignment"))
    c.append(("wrong element count",
              model(edit_tensor("blk.0.attn_q.weight", dims=[64, 32],
                                raw=b"\0" * (64 * 32 * 4))),
              "'blk.0.attn_q.weight' has dims [64, 32], expected [64, 64]"))
    c.append(("row not a multiple of the block",
              model(edit_tensor("blk.0.attn_k.weight", dims=[48, 32],
                                gtype=gm.Q4_0, raw=b"\0" * (32 * 18 + 18 * 16))),
              "not a multiple of the type's block of 32"))
    c.append(("zero dimension",
              model(edit_tensor("blk.0.attn_k.weight", dims=[64, 0])),
              "invalid or too large dimension 0"))
    c.append(("duplicate tensor",
              model(lambda w: w.tensors.append(
                  [t for t in w.tensors if t[0] == "blk.0.attn_q.weight"][0])),
              "duplicate tensor name 'blk.0.attn_q.weight'"))
    c.append(("duplicate key",
              model(lambda w: w.kv.append(w.kv[2])),
              "duplicate metadata key 'llama.context_length'"))
    c.append(("missing metadata key", model(drop_kv("llama.block_count")),
              "metadata key 'llama.block_count' is missing"))
    c.append(("missing architecture", model(drop_kv("general.architecture")),
              "'general.architecture' is missing"))
    c.append(("metadata of the wrong type",
              model(set_kv("llama.embedding_length", gm.STR, "64")),
              "'llama.embedding_length' must be an integer, got string"))
    c.append(("bad alignment",
              model(lambda w: w.kv.append(("general.alignment", gm.U32, 24,
                                           None))),
              "general.alignment 24 is not a power of two"))
    c.append(("unknown value type",
              model(lambda w: w.kv.append(("x.y", 13, 0, None))),
              "metadata 'x.y' has unknown value type 13"))
    c.append(("unsupported architecture",
              model(set_kv("general.architecture", gm.STR, "gpt2")),
              "architecture 'gpt2' is not supported"))
    c.append(("missing tensor", model(drop_tensor("blk.1.ffn_up.weight")),
              "has no tensor 'blk.1.ffn_up.weight'"))
    c.append(("unsupported tensor type (q8_K)",
              model(edit_tensor("blk.0.attn_v.weight", dims=[256, 8],
                                gtype=15, raw=b"\0" * 292 * 8)),
              "has type q8_K, which Quench does not support"))
    c.append(("unsupported tensor type (iq2_xxs)",
              model(edit_tensor("blk.0.attn_v.weight", gtype=16)),
              "has type iq2_xxs, which Quench does not support"))
    c.append(("unknown tensor type",
              model(edit_tensor("blk.0.attn_v.weight", gtype=77)),
              "unknown ggml type 77"))
    c.append(("unsupported RoPE scaling",
              model(lambda w: w.kv.append(("llama.rope.scaling.type", gm.STR,
                                           "yarn", None))),
              "RoPE scaling 'yarn' is not supported"))
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    a = ap.parse_args()
    importer = os.path.join(a.build, "bin", "quench-import")
    compile_ = os.path.join(a.build, "bin", "quench-compile")
    work = tempfile.mkdtemp(prefix="quench-gguf-errors-")
    failures = 0
    try:
        all_cases = cases()
        for i, (name, data, expect) in enumerate(all_cases):
            path = os.path.join(work, "m%d.gguf" % i)
            with open(path, "wb") as f:
                f.write(data)
            tools = [(importer, [path, "-o", path + ".mlir"], path + ".mlir")]
            if i % 5 == 0:
                tools.append((compile_, [path, "-o", path + ".exe"],
                              path + ".exe"))
            for tool, args, out in tools:
                res = subprocess.run([tool] + args, capture_output=True,
                                     text=True)
                errors = res.stderr.count("error:")
                problems = []
                if res.returncode != 1:
                    problems.append(f"exit status {res.returncode}")
                if errors != 1:
                    problems.append(f"{errors} error messages")
                if expect not in res.stderr:
                    problems.append(f"no '{expect}' in the message")
                if os.path.exists(out):
                    problems.append("an output file was written")
                tname = os.path.basename(tool)
                if problems:
                    failures += 1
                    print(f"FAIL {name} ({tname}): {', '.join(problems)}\n"
                          f"     stderr: {res.stderr.strip()}")
                else:
                    print(f"ok   {name} ({tname}): "
                          f"{res.stderr.strip().splitlines()[-1]}")
        # A valid model is recognized by its magic under another name.
        path = os.path.join(work, "model.bin")
        with open(path, "wb") as f:
            f.write(model())
        res = subprocess.run([importer, path, "-o", path + ".mlir"],
                             capture_output=True, text=True)
        if res.returncode != 0 or not os.path.exists(path + ".mlir"):
            failures += 1
            print(f"FAIL GGUF magic under .bin: {res.stderr.strip()}")
        else:
            print("ok   GGUF recognized by its magic (model.bin)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        sys.exit(f"{failures} GGUF error check(s) failed")
    print("all GGUF error checks passed")


if __name__ == "__main__":
    main()
