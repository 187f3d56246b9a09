#!/usr/bin/python3
"""llama.cpp on the same weights as bench/scale.py: writes the random
weights of a bench/gen_llama_onnx.py preset model as a GGUF file that
llama.cpp loads, quantizes it with llama-quantize, and runs llama-bench
(prefill pp and decode tg tokens/s) for comparison with Quench's decode step.

The weights are read back from the model's .data file (the generator's
manifest gives every tensor's offset, shape and dtype), so they are exactly
Quench's input, one tensor in memory at a time:
  * MatMul weights [in, out] are transposed to llama.cpp's [out, in] rows;
  * q and k rows are permuted per head from rotate-half (the ONNX graph's
    RoPE, Hugging Face's layout) to llama.cpp's interleaved pairs: output
    row 2i+j of a head is input row j*head_dim/2 + i - the permutation that
    makes llama.cpp compute the same function (what llama.cpp's own HF
    converter does). Checked once (2026-12-06, not by this script): on a
    small model (dim 256, 2 layers, GQA 4/2, 8 positions) llama.cpp with an
    f32 KV cache gave the logits of the Quench executable to 8.8e-7
    relative (argmax equal at every position); the f16 torch-style graph
    agreed to 1.4e-3 (Quench computes its activations in f16 there,
    llama.cpp in f32). The numbers of this script are speed only;
  * the base GGUF keeps the model's storage type (F32 for 125m/1.1b, F16 for
    7b); norm weights are F32 (as llama.cpp's converter writes them);
  * the vocabulary is synthetic (llama.cpp's SPM layout: <unk>, <s>, </s>,
    256 byte tokens <0x00>..<0xFF>, then "▁tN"), as the weights are random.
Other types come from `llama-quantize BASE OUT TYPE 2` (q8_0, q4_0, q4_k_s,
...). Each is measured with
  llama-bench -m FILE -p PP -n TG -t THREADS -r REPS -o json
(llama.cpp's default f16 KV cache, mmap on) and deleted afterwards; the base
GGUF is deleted at the end unless --keep. llama.cpp's decode (tg) runs with a
KV cache (attention over up to PP+TG positions grows with the context);
Quench's seq-1 executable attends to one position only - at these sizes the
weights dominate a step either way.

Usage: bench/llamacpp_scale.py LLAMA_CPP_DIR [--work DIR] [--presets 125m]
         [--types base,q8_0,q4_0,q4_k_s] [-p 128] [-n 32] [-t 2] [-r 3]
         [--quench RESULTS.json] [--keep]
LLAMA_CPP_DIR is a llama.cpp build directory (holding bin/llama-bench and
bin/llama-quantize) or a checkout with such a build/ (build it outside this
repository: ../shared/toolchain/NOTES.md, "Peers"). --work shares
bench/scale.py's model cache (WORK/models); --quench reads the results file
that `bench/scale.py --json` writes and prints them beside llama.cpp's.
"""

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from scale import generate  # noqa: E402  (same model cache as scale.py)

# GGUF (v3) value types and ggml tensor types used here.
U32, I32, F32V, STR, ARR = 4, 5, 6, 8, 9
GGML_F32, GGML_F16 = 0, 1
ALIGN = 32  # GGUF's default general.alignment
# Quench scheme that each llama.cpp type is set against in --quench tables.
PEER = {"base": "none", "q8_0": "w8a16", "q4_0": "w4a16", "q4_k_s": "w4a16",
        "q4_k_m": "w4a16"}


class GGUF:
    """A minimal GGUF v3 writer: header, key/values and tensor infos first,
    then each tensor's data streamed in the declared order."""

    def __init__(self):
        self.kv = []
        self.tensors = []  # (name, numpy shape, ggml type, nbytes, source)

    def add(self, key, vtype, value, etype=None):
        self.kv.append((key, vtype, value, etype))

    def tensor(self, name, shape, gtype, source):
        n = int(np.prod(shape)) * (4 if gtype == GGML_F32 else 2)
        self.tensors.append((name, tuple(shape), gtype, n, source))

    @staticmethod
    def _str(s):
        b = s.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    def _value(self, vtype, v, etype):
        if vtype == STR:
            return self._str(v)
        if vtype == ARR:
            head = struct.pack("<IQ", etype, len(v))
            if etype == STR:
                return head + b"".join(self._str(s) for s in v)
            dt = {F32V: "<f4", I32: "<i4", U32: "<u4"}[etype]
            return head + np.asarray(v, dt).tobytes()
        return struct.pack({U32: "<I", I32: "<i", F32V: "<f"}[vtype], v)

    def write(self, path):
        head = [b"GGUF", struct.pack("<IQQ", 3, len(self.tensors), len(self.kv))]
        for key, vtype, v, etype in self.kv:
            head += [self._str(key), struct.pack("<I", vtype),
                     self._value(vtype, v, etype)]
        off = 0
        for name, shape, gtype, n, _ in self.tensors:
            dims = list(reversed(shape))  # ggml ne[0] is the contiguous axis
            head += [self._str(name), struct.pack("<I", len(dims)),
                     struct.pack("<%dQ" % len(dims), *dims),
                     struct.pack("<IQ", gtype, off)]
            off += n + (-n % ALIGN)
        with open(path + ".tmp", "wb") as f:
            h = b"".join(head)
            f.write(h + b"\0" * (-len(h) % ALIGN))
            for name, shape, gtype, n, source in self.tensors:
                arr = np.ascontiguousarray(
                    source(), np.float32 if gtype == GGML_F32 else np.float16)
                assert arr.shape == shape and arr.nbytes == n, name
                f.write(memoryview(arr).cast("B"))
                f.write(b"\0" * (-n % ALIGN))
                del arr
        os.replace(path + ".tmp", path)


def rope_interleave(w, heads):
    """Rows [heads * hd, in] from rotate-half to interleaved-pair order."""
    out, k = w.shape
    hd = out // heads
    return w.reshape(heads, 2, hd // 2, k).swapaxes(1, 2).reshape(out, k)


def gguf_plan(model, manifest, name):
    """The GGUF file of a bench/gen_llama_onnx.py model (with or without
    past): its key/values [(key, GGUF value type, value, element type)] and
    its tensors [(name, numpy shape, ggml type, loader)], each loader
    returning the tensor in llama.cpp's layout (one tensor in memory at a
    time). Used by write_gguf below and by bench/llama_to_gguf.py (which
    writes the same plan with llama.cpp's own gguf-py)."""
    cfg = manifest["config"]
    base = os.path.dirname(model)
    data = os.path.join(base, manifest["data"])
    onnx_model = onnx.load(model, load_external_data=False)
    ext = {t["name"]: t for t in manifest["tensors"]}
    inits = {}
    order = []
    for t in onnx_model.graph.initializer:
        role = t.name.rsplit("_", 1)[0]
        if role in ("tok_embeddings", "wq", "wk", "wv", "wo", "w1", "w2",
                    "w3", "output", "norm"):
            inits[t.name] = t
            order.append((role, t.name))

    def loader(tname, transpose=False, heads=None):
        def load():
            if tname in ext:
                e = ext[tname]
                a = np.memmap(data, np.dtype(e["dtype"]), "r", e["offset"],
                              tuple(e["shape"]))
            else:
                a = numpy_helper.to_array(inits[tname])
            if transpose:
                a = a.T
            if heads:
                a = rope_interleave(a, heads)
            return a
        return load

    f16 = cfg["dtype"] == "f16"
    wtype = GGML_F16 if f16 else GGML_F32
    kv = []

    def add(key, vtype, value, etype=None):
        kv.append((key, vtype, value, etype))

    L, dim, hd = cfg["layers"], cfg["dim"], cfg["dim"] // cfg["heads"]
    add("general.architecture", STR, "llama")
    add("general.name", STR, name)
    add("general.file_type", U32, 1 if f16 else 0)
    add("llama.vocab_size", U32, cfg["vocab"])
    add("llama.context_length", U32, 4096 if dim >= 4096 else 2048)
    add("llama.embedding_length", U32, dim)
    add("llama.block_count", U32, L)
    add("llama.feed_forward_length", U32, cfg["hidden"])
    add("llama.attention.head_count", U32, cfg["heads"])
    add("llama.attention.head_count_kv", U32, cfg["kv_heads"])
    add("llama.rope.dimension_count", U32, hd)
    add("llama.rope.freq_base", F32V, cfg["rope_theta"])
    add("llama.attention.layer_norm_rms_epsilon", F32V, cfg["norm_eps"])
    n = cfg["vocab"]
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    toks += ["\u2581t%d" % i for i in range(n - len(toks))]
    types = [2, 3, 3] + [6] * 256 + [1] * (n - 259)
    add("tokenizer.ggml.model", STR, "llama")
    add("tokenizer.ggml.tokens", ARR, toks, STR)
    add("tokenizer.ggml.scores", ARR,
        [0.0] * 259 + [-float(i) for i in range(n - 259)], F32V)
    add("tokenizer.ggml.token_type", ARR, types, I32)
    add("tokenizer.ggml.bos_token_id", U32, 1)
    add("tokenizer.ggml.eos_token_id", U32, 2)
    add("tokenizer.ggml.unknown_token_id", U32, 0)

    names = {"wq": "attn_q", "wk": "attn_k", "wv": "attn_v", "wo": "attn_output",
             "w1": "ffn_gate", "w3": "ffn_up", "w2": "ffn_down"}
    tensors = []
    count = {}
    norms = 0
    for role, tname in order:
        shape = tuple(inits[tname].dims)
        if role == "tok_embeddings":
            tensors.append(("token_embd.weight", shape, wtype, loader(tname)))
        elif role == "output":
            tensors.append(("output.weight", shape[::-1], wtype,
                            loader(tname, True)))
        elif role == "norm":
            kind = "attn_norm" if norms % 2 == 0 else "ffn_norm"
            gname = ("blk.%d.%s.weight" % (norms // 2, kind) if norms < 2 * L
                     else "output_norm.weight")
            tensors.append((gname, shape, GGML_F32, loader(tname)))
            norms += 1
        else:
            i = count.get(role, 0)
            count[role] = i + 1
            heads = {"wq": cfg["heads"], "wk": cfg["kv_heads"]}.get(role)
            tensors.append(("blk.%d.%s.weight" % (i, names[role]), shape[::-1],
                            wtype, loader(tname, True, heads)))
    if norms != 2 * L + 1 or any(c != L for c in count.values()) or len(count) != 7:
        sys.exit("llamacpp_scale.py: unexpected initializers in " + model)
    return kv, tensors


def write_gguf(model, manifest, path, name):
    """Writes gguf_plan(...) with the GGUF class above."""
    kv, tensors = gguf_plan(model, manifest, name)
    g = GGUF()
    for item in kv:
        g.add(*item)
    for tname, shape, gtype, load in tensors:
        g.tensor(tname, shape, gtype, load)
    g.write(path)


def run(cmd, **kw):
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("llama_cpp")
    ap.add_argument("--work")
    ap.add_argument("--presets", default="125m")
    ap.add_argument("--types", default="base,q8_0,q4_0,q4_k_s")
    ap.add_argument("-p", type=int, default=128, help="prefill tokens (pp)")
    ap.add_argument("-n", type=int, default=32, help="decoded tokens (tg)")
    ap.add_argument("-t", type=int, default=2, help="threads")
    ap.add_argument("-r", type=int, default=3, help="llama-bench repetitions")
    ap.add_argument("--quench", help="bench/scale.py --json results to compare")
    ap.add_argument("--keep", action="store_true", help="keep the GGUF files")
    ap.add_argument("--rt", action="store_true",
                    help="run llama-bench under `chrt -f 50` (as bench/scale.py "
                    "--rt: not preempted by other processes; needs root)")
    a = ap.parse_args()
    bindir = None
    for d in (os.path.join(a.llama_cpp, "bin"),
              os.path.join(a.llama_cpp, "build", "bin")):
        if os.access(os.path.join(d, "llama-bench"), os.X_OK):
            bindir = d
            break
    if not bindir:
        sys.exit("llamacpp_scale.py: no bin/llama-bench under " + a.llama_cpp)
    presets = (["125m", "1.1b", "7b"] if a.presets == "all"
               else a.presets.split(","))
    types = a.types.split(",")
    tmp_work = a.work is None
    work = os.path.abspath(a.work or tempfile.mkdtemp(prefix="quench-llamacpp-"))
    gdir = os.path.join(work, "gguf")
    os.makedirs(gdir, exist_ok=True)
    commit = subprocess.run(["git", "-C", a.llama_cpp, "rev-parse", "--short",
                             "HEAD"], capture_output=True, text=True).stdout.strip()
    rows = []
    try:
        for preset in presets:
            model, manifest = generate(work, preset, 1)
            base_t = manifest["config"]["dtype"]
            base = os.path.join(gdir, "%s-%s.gguf" % (preset, base_t))
            if not os.path.isfile(base):
                write_gguf(model, manifest, base, "quench-bench-" + preset)
            for t in types:
                label = base_t if t == "base" else t
                f = base if t == "base" else os.path.join(
                    gdir, "%s-%s.gguf" % (preset, t))
                if t != "base":
                    run([os.path.join(bindir, "llama-quantize"), base, f,
                         t.upper(), str(a.t)], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
                p = run((["chrt", "-f", "50"] if a.rt else []) +
                        [os.path.join(bindir, "llama-bench"), "-m", f, "-p",
                         str(a.p), "-n", str(a.n), "-t", str(a.t), "-r",
                         str(a.r), "-o", "json"], capture_output=True, text=True)
                res = json.loads(p.stdout)
                pp = [r for r in res if r["n_prompt"] > 0 and r["n_gen"] == 0]
                tg = [r for r in res if r["n_gen"] > 0 and r["n_prompt"] == 0]
                row = dict(preset=preset, type=label, key=t,
                           size=res[0]["model_size"],
                           pp=pp[0]["avg_ts"], pp_sd=pp[0]["stddev_ts"],
                           tg=tg[0]["avg_ts"], tg_sd=tg[0]["stddev_ts"])
                rows.append(row)
                print("   %s %s: %.0f MB, pp%d %.1f ± %.1f t/s, tg%d %.1f ± %.1f t/s"
                      % (preset, label, row["size"] / 1e6, a.p, row["pp"],
                         row["pp_sd"], a.n, row["tg"], row["tg_sd"]), flush=True)
                if t != "base" and not a.keep:
                    os.unlink(f)
            if not a.keep:
                os.unlink(base)
    finally:
        if tmp_work:
            shutil.rmtree(work, ignore_errors=True)
        elif not a.keep:
            shutil.rmtree(gdir, ignore_errors=True)

    quench = {}
    if a.quench:
        with open(a.quench) as f:
            for r in json.load(f)["rows"]:
                if "ms" in r:
                    quench[(r["preset"], r["seq"], r["scheme"])] = r
    print()
    print("llama.cpp %s, llama-bench -p %d -n %d -t %d -r %d" % (
        commit or "?", a.p, a.n, a.t, a.r))
    print()
    head = "| model | llama.cpp type | size | pp%d t/s | tg%d t/s | decode ms/token |" % (a.p, a.n)
    sep = "| --- | --- | --: | --: | --: | --: |"
    if quench:
        head += " Quench scheme | Quench decode-step ms | Quench prefill t/s | Quench / llama.cpp decode |"
        sep += " --- | --: | --: | --: |"
    print(head)
    print(sep)
    for r in rows:
        line = "| %s | %s | %.0f MB | %.1f ± %.1f | %.1f ± %.1f | %.2f |" % (
            r["preset"], r["type"], r["size"] / 1e6, r["pp"], r["pp_sd"],
            r["tg"], r["tg_sd"], 1e3 / r["tg"])
        if quench:
            s = PEER.get(r["key"])
            q = quench.get((r["preset"], 1, s))
            qp = [v for k, v in quench.items() if k[0] == r["preset"] and
                  k[2] == s and k[1] > 1]
            line += " %s | %s | %s | %s |" % (
                s or "-", "-" if not q else "%.2f" % q["ms"],
                "-" if not qp else "%.0f" % (qp[0]["seq"] * 1e3 / qp[0]["ms"]),
                "-" if not q else "%.2f" % (q["ms"] / (1e3 / r["tg"])))
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
