#!/usr/bin/python3
"""Generates a LLaMA-shaped ONNX model with random weights, at any size,
without torch (onnx.helper + numpy), for import/compile-scale benchmarks.

Default: dim 768, 12 layers, 12 heads (4 kv heads), SwiGLU hidden 2048,
vocab 16000 -> ~97M parameters (~390 MB fp32, weights inside the .onnx).
The graph is what torch exports for LLaMA at opset 17: decomposed RMSNorm
(Pow/ReduceMean/Add/Sqrt/Div/Mul), rotary embeddings (rotate-half with
Slice/Neg/Concat), grouped-query attention (Expand + Reshape of k/v), causal
mask, Softmax, SwiGLU with Sigmoid*Mul. No KV cache: a --seq 1 model is one
decode step (every linear layer a GEMV), --seq 128 a prefill.

--external-data streams the weights: each tensor is generated (in chunks of
rows) and written to OUT.data as soon as it is made, at an offset aligned to
4096 bytes, and the graph gets a TensorProto with data_location = EXTERNAL
(location/offset/length); the generator's memory stays ~ one chunk of one
tensor whatever the model size. Only weights (linear, embedding, norm) go
there, and only those of 1024 bytes or more, so the data file is the same
for every --seq: --data-from X.onnx.data writes just a graph (e.g. --seq 128
for prefill) over the data file of an earlier run, generating nothing.
Weights are the same numbers with or without --external-data (one numpy
Generator, seed 0, tensors in graph order, row chunks of one stream). A
manifest, OUT's name with .json (the dimensions; every weight's role,
layer, shape, dtype, offset), lets bench/llamacpp_scale.py put the same
weights into a GGUF file.

--dtype f16 stores the weights as float16. --f16-style picks the graph
around them:
  torch  (default) what torch.onnx.export (and Optimum, which calls it) writes
         for a Hugging Face LlamaForCausalLM in float16: the model computes in
         f16, except that LlamaRMSNorm casts to f32 for the variance and back
         (Cast, Pow, ReduceMean, Add, Sqrt, Div in f32, Cast to f16, Mul by the
         f16 weight) and eager attention runs Softmax in f32 (Cast, Softmax,
         Cast); the causal mask is finfo(f16).min; logits are cast to f32 at
         the end (LlamaForCausalLM's logits.float()).
  cast   f16 storage only: each f16 weight feeds a Cast(to=FLOAT) (the
         embedding table: Gather, then Cast of the gathered rows) and the rest
         of the graph is the f32 model.
The random weights are standard normal / sqrt(rows): every linear layer keeps
the mean square of its input, so the residual stream's RMS grows only like
sqrt(~1.4 x layers) (about 7 after 32 layers) and f16 activations stay finite.

Presets (--preset; explicit flags override them; presets imply
--external-data and --vocab 32000):
  125m  dim 768, 12 layers, 12/4 heads, ffn 2048        (~125M, fp32)
  1.1b  dim 2048, 22 layers, 32/4 heads, ffn 5632       (TinyLlama, fp32, 4.4 GB)
  7b    dim 4096, 32 layers, 32/32 heads, ffn 11008     (Llama-2-7B, f16, 13.5 GB)

--with-past writes the same model (same weights: same generator stream,
same data file layout, so --data-from works across the two forms) with past
key/values, in the convention of examples/decoder_past.py (Hugging Face
Optimum / ONNX Runtime GenAI; docs/frontend-onnx.md): inputs input_ids
[1, seq], attention_mask [1, past_seq+seq], position_ids [1, seq],
past_key_values.{i}.key|value [1, kv_heads, past_seq, head_dim]; outputs
logits [1, seq, vocab], present.{i}.key|value [1, kv_heads, past_seq+seq,
head_dim] = Concat(past, new) (keys after the rotary embedding, before the
GQA repetition); seq and past_seq dynamic, so one file runs the prefill and
the decode steps. The rotary tables cover --max-pos positions (default
2048) and are gathered at position_ids; the additive causal mask is built
from the shapes and attention_mask (Range, LessOrEqual, And, Where); the
cache tensors have the activations' type (float16 for --dtype f16 in the
torch style, else float32). --seq does not apply. --verify (small models:
it holds a second, in-graph copy of the weights) then checks the written
file with examples/decoder_past.py's NumPy evaluator: a prefill of 5
seeded tokens and 3 decode steps give the logits of the model without past
on the 8 tokens (relative 1e-4; 2e-2 for f16 activations).

--dynamic-seq writes the model without past with a dynamic seq, as
torch.onnx.export does with dynamic_axes: the rotary tables cover --max-pos
positions and are sliced to [0, seq) (Slice ending at Shape(input_ids)[1]),
the reshape targets hold -1, the GQA repetition is Unsqueeze + Expand by
[1, 1, rep, 1, 1] + Reshape, the causal mask is Trilu(Expand(neg, [seq,
seq]), k = 1). Same weights as the other forms; the input of
`quench-compile --derive-kv-cache` (docs/generation.md).

Usage: gen_llama_onnx.py OUT.onnx [--preset 125m|1.1b|7b] [--dim 768
       --layers 12 --heads 12 --kv-heads 4 --hidden 2048 --vocab 16000
       --seq 32] [--external-data] [--dtype f32|f16] [--f16-style torch|cast]
       [--data-from X.onnx.data] [--with-past [--max-pos 2048] [--verify]]
"""

import argparse
import json
import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "examples"))
import decoder_past  # noqa: E402

PRESETS = {
    "125m": dict(dim=768, layers=12, heads=12, kv_heads=4, hidden=2048,
                 vocab=32000, dtype="f32"),
    "1.1b": dict(dim=2048, layers=22, heads=32, kv_heads=4, hidden=5632,
                 vocab=32000, dtype="f32"),
    "7b": dict(dim=4096, layers=32, heads=32, kv_heads=32, hidden=11008,
               vocab=32000, dtype="f16"),
}
DEFAULTS = dict(dim=768, layers=12, heads=12, kv_heads=4, hidden=2048,
                vocab=16000, seq=32, dtype="f32", f16_style="torch",
                max_pos=2048)
ALIGN = 4096          # offset alignment of external tensors (a page)
THRESHOLD = 1024      # tensors smaller than this stay in the graph
CHUNK = 1 << 22       # elements generated at once when streaming (16 MB f32)
SEED = 0
EPS = 1e-5
ROPE_THETA = 10000.0
ONNX_TYPE = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16,
             "int64": TensorProto.INT64}
NP_TYPE = {v: k for k, v in ONNX_TYPE.items()}
VERIFY_PROMPT, VERIFY_STEPS = 5, 3  # --verify: prefill, then decode steps


class Store:
    """The model's initializers: in the graph (data_path None), or the
    weights streamed into one external data file as they are made (dry: only
    their offsets, for a graph over an existing data file)."""

    def __init__(self, data_path=None, location=None, dry=False):
        self.inits = []
        self.manifest = []
        self.external = bool(data_path) or dry
        self.file = open(data_path, "wb") if data_path and not dry else None
        self.location = location
        self.pos = 0

    def _external(self, name, dims, dtype):
        pad = -self.pos % ALIGN
        if pad and self.file:
            self.file.write(b"\0" * pad)
        self.pos += pad
        t = TensorProto()
        t.name = name
        t.data_type = ONNX_TYPE[np.dtype(dtype).name]
        t.dims.extend(dims)
        t.data_location = TensorProto.EXTERNAL
        self.inits.append(t)
        return t, self.pos

    def _finish(self, t, offset, role, layer):
        length = self.pos - offset
        for k, v in (("location", self.location), ("offset", str(offset)),
                     ("length", str(length))):
            e = t.external_data.add()
            e.key, e.value = k, v
        self.manifest.append(dict(
            name=t.name, role=role, layer=layer, shape=list(t.dims),
            dtype=NP_TYPE[t.data_type],
            offset=offset, length=length))

    def _write(self, arr):
        arr = np.ascontiguousarray(arr)
        if self.file:
            self.file.write(memoryview(arr).cast("B"))
        self.pos += arr.nbytes

    def array(self, arr, name, role=None, layer=None):
        """A constant; external only if it is a weight (role: the norms),
        so that the data file does not depend on --seq."""
        arr = np.asarray(arr)
        if not self.external or arr.nbytes < THRESHOLD or role is None:
            self.inits.append(numpy_helper.from_array(arr, name))
            return
        t, offset = self._external(name, arr.shape, arr.dtype)
        self._write(arr)
        self._finish(t, offset, role, layer)

    def random(self, rng, shape, dtype, name, role, layer):
        """standard_normal(shape) / sqrt(shape[0]) in f32, stored as dtype."""
        scale = np.sqrt(shape[0])
        if not self.external:
            w = (rng.standard_normal(shape, dtype=np.float32) / scale).astype(np.float32)
            self.inits.append(numpy_helper.from_array(w.astype(dtype, copy=False), name))
            return
        t, offset = self._external(name, shape, dtype)
        if self.file is None:  # dry
            self.pos += int(np.prod(shape)) * np.dtype(dtype).itemsize
            self._finish(t, offset, role, layer)
            return
        rows = max(1, CHUNK // shape[1])
        for r in range(0, shape[0], rows):
            n = min(rows, shape[0] - r)
            w = rng.standard_normal((n, shape[1]), dtype=np.float32)
            w /= scale  # as above: a float32 division by the rounded scale
            self._write(w.astype(dtype, copy=False))
            del w
        self._finish(t, offset, role, layer)

    def close(self):
        if self.file:
            self.file.close()


def build(a, store):
    rng = np.random.default_rng(SEED)
    nodes = []
    f16 = a.dtype == "f16"
    torch16 = f16 and a.f16_style == "torch"   # computes in f16
    wdt = np.float16 if f16 else np.float32     # stored weights
    cdt = np.float16 if torch16 else np.float32  # activations
    cty = TensorProto.FLOAT16 if torch16 else TensorProto.FLOAT
    hd = a.dim // a.heads
    kvd = a.kv_heads * hd
    rep = a.heads // a.kv_heads
    counter = [0]
    layer = [None]

    def name(p):
        counter[0] += 1
        return "%s_%d" % (p, counter[0])

    def const(arr, p="c", role=None):
        n = name(p)
        store.array(np.asarray(arr), n, role, layer[0])
        return n

    def op(t, ins, n_out=1, **attrs):
        outs = [name(t.lower()) for _ in range(n_out)]
        nodes.append(helper.make_node(t, ins, outs, name=name(t), **attrs))
        return outs[0] if n_out == 1 else outs

    def cast(x, to):
        return op("Cast", [x], to=to)

    def weight(shape, p):
        n = name(p)
        store.random(rng, shape, wdt, n, p, layer[0])
        if f16 and not torch16 and p != "tok_embeddings":
            return cast(n, TensorProto.FLOAT)
        return n

    two = const(np.array(2.0, np.float32))
    eps = const(np.array(EPS, np.float32))
    axes_last = const(np.array([-1], np.int64))  # noqa: F841 (kept: names)

    def rmsnorm(x, dim):
        w = const(np.ones(dim, cdt), "norm", role="norm")
        if torch16:
            x = cast(x, TensorProto.FLOAT)
        p = op("Pow", [x, two])
        m = op("ReduceMean", [p], axes=[-1], keepdims=1)
        s = op("Sqrt", [op("Add", [m, eps])])
        y = op("Div", [x, s])
        if torch16:
            y = cast(y, TensorProto.FLOAT16)
        return op("Mul", [y, w])

    seq = a.seq
    past = a.with_past
    dyn = a.dynamic_seq  # no past, seq dynamic (the tables cover max_pos)
    # Rotary tables (rotate-half convention), precomputed like HF does: for
    # the positions 0..seq-1, or (with past) for 0..max_pos-1, gathered at
    # position_ids below.
    inv = 1.0 / (ROPE_THETA ** (np.arange(0, hd, 2, dtype=np.float32) / hd))
    ang = np.outer(np.arange(a.max_pos if past or dyn else seq,
                             dtype=np.float32), inv)
    emb = np.concatenate([ang, ang], axis=-1)
    if past or dyn:
        cos = const(np.cos(emb).astype(np.float32).astype(cdt), "cos")
        sin = const(np.sin(emb).astype(np.float32).astype(cdt), "sin")
    else:
        cos = const(np.cos(emb)[None, None].astype(np.float32).astype(cdt),
                    "cos")
        sin = const(np.sin(emb)[None, None].astype(np.float32).astype(cdt),
                    "sin")
    half = hd // 2
    s0 = const(np.array([0], np.int64)); s1 = const(np.array([half], np.int64))
    s2 = const(np.array([hd], np.int64)); ax3 = const(np.array([3], np.int64))

    def rope(x):
        x1 = op("Slice", [x, s0, s1, ax3])
        x2 = op("Slice", [x, s1, s2, ax3])
        rot = op("Concat", [op("Neg", [x2]), x1], axis=3)
        return op("Add", [op("Mul", [x, cos]), op("Mul", [rot, sin])])

    neg = np.finfo(np.float16).min if torch16 else -1e9
    if past or dyn:
        # seq and past_seq are dynamic: -1 in the reshape targets, the GQA
        # repetition an Expand by [1, 1, rep, 1, 1] (broadcast), the mask
        # computed from the shapes below.
        scale = const(np.array(1.0 / np.sqrt(hd), np.float32).astype(cdt))
        shp_q = const(np.array([1, -1, a.heads, hd], np.int64))
        shp_kv = const(np.array([1, -1, a.kv_heads, hd], np.int64))
        ax2 = const(np.array([2], np.int64))
        shp_rep = const(np.array([1, 1, rep, 1, 1], np.int64))
        shp_kvh = const(np.array([1, a.heads, -1, hd], np.int64))
        shp_o = const(np.array([1, -1, a.dim], np.int64))
    else:
        mask = np.triu(np.full((seq, seq), neg, np.float32), 1).astype(cdt)
        mask_c = const(mask[None, None], "mask")
        scale = const(np.array(1.0 / np.sqrt(hd), np.float32).astype(cdt))
        shp_q = const(np.array([1, seq, a.heads, hd], np.int64))
        shp_kv = const(np.array([1, seq, a.kv_heads, hd], np.int64))
        shp_kv5 = const(np.array([1, a.kv_heads, 1, seq, hd], np.int64))
        shp_rep = const(np.array([1, a.kv_heads, rep, seq, hd], np.int64))
        shp_kvh = const(np.array([1, a.heads, seq, hd], np.int64))
        shp_o = const(np.array([1, seq, a.dim], np.int64))

    tok = weight((a.vocab, a.dim), "tok_embeddings")
    x = op("Gather", [tok, "input_ids"], axis=0)
    if f16 and not torch16:
        x = cast(x, TensorProto.FLOAT)
    if dyn:
        # What torch exports for a dynamic seq: the tables sliced to
        # [0, seq), the mask Trilu(Expand(neg, [seq, seq]), k = 1).
        seq_1d = op("Shape", ["input_ids"], start=1, end=2)
        zero_1d = const(np.array([0], np.int64))
        cos = op("Slice", [cos, zero_1d, seq_1d, zero_1d])
        sin = op("Slice", [sin, zero_1d, seq_1d, zero_1d])
        mask_c = op("Trilu", [op("Expand", [
            const(np.array(neg, np.float32).astype(cdt)),
            op("Concat", [seq_1d, seq_1d], axis=0)]),
            const(np.array(1, np.int64))], upper=1)
    if past:
        # Rotary tables at position_ids: [1, 1, seq, head_dim].
        ax1 = const(np.array([1], np.int64))
        cos = op("Unsqueeze", [op("Gather", [cos, "position_ids"], axis=0),
                               ax1])
        sin = op("Unsqueeze", [op("Gather", [sin, "position_ids"], axis=0),
                               ax1])
        # Additive causal mask [1, 1, seq, past_seq + seq] as Hugging Face
        # LLaMA builds it: query j (position past_seq + j) sees key k iff
        # k <= past_seq + j and attention_mask[k] != 0; else `neg`.
        def dim_of(t, d):
            return op("Squeeze", [op("Shape", [t], start=d, end=d + 1)])
        past_len = dim_of("past_key_values.0.key", 2)
        one = const(np.array(1, np.int64))
        zero = const(np.array(0, np.int64))
        q_pos = op("Range", [past_len, op("Add", [past_len, dim_of(
            "input_ids", 1)]), one])
        k_pos = op("Range", [zero, dim_of("attention_mask", 1), one])
        ax0 = const(np.array([0], np.int64))
        causal = op("LessOrEqual", [op("Unsqueeze", [k_pos, ax0]),
                                    op("Unsqueeze", [q_pos, ax1])])
        keep = op("Unsqueeze", [op("Cast", ["attention_mask"],
                                   to=TensorProto.BOOL),
                                const(np.array([1, 2], np.int64))])
        mask_c = op("Where", [op("And", [causal, keep]),
                              const(np.array(0, np.float32).astype(cdt)),
                              const(np.array(neg, np.float32).astype(cdt))])
    for i in range(a.layers):
        layer[0] = i
        h = rmsnorm(x, a.dim)
        q = op("MatMul", [h, weight((a.dim, a.dim), "wq")])
        k = op("MatMul", [h, weight((a.dim, kvd), "wk")])
        v = op("MatMul", [h, weight((a.dim, kvd), "wv")])
        q = op("Transpose", [op("Reshape", [q, shp_q])], perm=[0, 2, 1, 3])
        k = op("Transpose", [op("Reshape", [k, shp_kv])], perm=[0, 2, 1, 3])
        v = op("Transpose", [op("Reshape", [v, shp_kv])], perm=[0, 2, 1, 3])
        q, k = rope(q), rope(k)
        if past:
            # present = Concat(past, new) on the sequence axis, keys after
            # the rotary embedding, before the GQA repetition.
            for t, kind in ((k, "key"), (v, "value")):
                nodes.append(helper.make_node(
                    "Concat", ["past_key_values.%d.%s" % (i, kind), t],
                    ["present.%d.%s" % (i, kind)],
                    name="present_%d_%s" % (i, kind), axis=2))
            k, v = "present.%d.key" % i, "present.%d.value" % i

        def repeat(t):
            if past or dyn:
                t = op("Expand", [op("Unsqueeze", [t, ax2]), shp_rep])
                return op("Reshape", [t, shp_kvh])
            t = op("Expand", [op("Reshape", [t, shp_kv5]), shp_rep])
            return op("Reshape", [t, shp_kvh])
        k, v = repeat(k), repeat(v)
        sc = op("Mul", [op("MatMul", [q, op("Transpose", [k], perm=[0, 1, 3, 2])]), scale])
        sc = op("Add", [sc, mask_c])
        if torch16:
            sc = cast(sc, TensorProto.FLOAT)
        p = op("Softmax", [sc], axis=-1)
        if torch16:
            p = cast(p, TensorProto.FLOAT16)
        o = op("Reshape", [op("Transpose", [op("MatMul", [p, v])], perm=[0, 2, 1, 3]), shp_o])
        x = op("Add", [x, op("MatMul", [o, weight((a.dim, a.dim), "wo")])])
        h = rmsnorm(x, a.dim)
        g = op("MatMul", [h, weight((a.dim, a.hidden), "w1")])
        g = op("Mul", [g, op("Sigmoid", [g])])
        u = op("MatMul", [h, weight((a.dim, a.hidden), "w3")])
        x = op("Add", [x, op("MatMul", [op("Mul", [g, u]), weight((a.hidden, a.dim), "w2")])])
    layer[0] = None
    x = rmsnorm(x, a.dim)
    head = weight((a.dim, a.vocab), "output")
    if torch16:
        nodes.append(helper.make_node("MatMul", [x, head], ["logits_f16"],
                                      name="lm_head"))
        nodes.append(helper.make_node("Cast", ["logits_f16"], ["logits"],
                                      name="logits_float", to=TensorProto.FLOAT))
    else:
        nodes.append(helper.make_node("MatMul", [x, head], ["logits"],
                                      name="lm_head"))
    s_dim = "seq" if dyn else seq
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, s_dim])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, s_dim, a.vocab])]
    if past:
        # examples/decoder_past.py's convention (names, order, dims).
        sig_in, sig_out = decoder_past.signature(a.layers, a.kv_heads, hd,
                                                 a.vocab, cty)
        inputs = [helper.make_tensor_value_info(*s) for s in sig_in]
        outputs = [helper.make_tensor_value_info(*s) for s in sig_out]
    graph = helper.make_graph(nodes, "llama", inputs, outputs, store.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    params = sum(int(np.prod(t.dims)) for t in store.inits
                 if t.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)
                 and ("cos" not in t.name and "sin" not in t.name and "mask" not in t.name))
    return model, params


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--preset", choices=sorted(PRESETS))
    ap.add_argument("--dim", type=int)
    ap.add_argument("--layers", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--kv-heads", type=int)
    ap.add_argument("--hidden", type=int)
    ap.add_argument("--vocab", type=int)
    ap.add_argument("--seq", type=int)
    ap.add_argument("--dtype", choices=("f32", "f16"),
                    help="storage of the float weights (default f32; 7b: f16)")
    ap.add_argument("--f16-style", choices=("torch", "cast"),
                    help="graph of an f16 model (default torch, see above)")
    ap.add_argument("--external-data", action="store_true",
                    help="stream the weights into OUT.data (presets: always)")
    ap.add_argument("--data-from", metavar="X.onnx.data",
                    help="write only the graph, over this existing data file "
                         "(same directory; made by this script with the same "
                         "dimensions and dtype, any --seq, with or without "
                         "past)")
    ap.add_argument("--with-past", action="store_true",
                    help="with past key/values (decoder_past.py convention)")
    ap.add_argument("--dynamic-seq", action="store_true",
                    help="without past, seq dynamic: the rotary tables "
                         "(--max-pos positions) sliced to [0, seq), the mask "
                         "a Trilu of the shape (torch's dynamic export)")
    ap.add_argument("--max-pos", type=int,
                    help="--with-past, --dynamic-seq: positions of the "
                         "rotary tables (default 2048)")
    ap.add_argument("--verify", action="store_true",
                    help="--with-past: check the file against the model "
                         "without past (NumPy; small models)")
    a = ap.parse_args()
    base = dict(DEFAULTS)
    if a.preset:
        base.update(PRESETS[a.preset])
        a.external_data = True
    for k, v in base.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.dim % a.heads or a.heads % a.kv_heads or (a.dim // a.heads) % 2:
        sys.exit("gen_llama_onnx: dim must divide by heads (even head size), "
                 "heads by kv-heads")
    if a.dynamic_seq and a.with_past:
        sys.exit("gen_llama_onnx: --dynamic-seq is a form without past")
    if a.verify and not a.with_past:
        sys.exit("gen_llama_onnx: --verify needs --with-past")
    if a.max_pos != DEFAULTS["max_pos"] and not (a.with_past or
                                                 a.dynamic_seq):
        sys.exit("gen_llama_onnx: --max-pos needs --with-past or "
                 "--dynamic-seq")
    if a.max_pos < VERIFY_PROMPT + VERIFY_STEPS:
        sys.exit("gen_llama_onnx: --max-pos must be at least %d" %
                 (VERIFY_PROMPT + VERIFY_STEPS))
    tmp = a.out + ".tmp"
    outdir = os.path.dirname(os.path.abspath(a.out))
    if a.data_from:
        a.external_data = True
        if os.path.dirname(os.path.abspath(a.data_from)) != outdir:
            sys.exit("gen_llama_onnx: --data-from must be in the directory of OUT")
        loc = os.path.basename(a.data_from)
        data = os.path.abspath(a.data_from)
        store = Store(None, loc, dry=True)
    else:
        loc = os.path.basename(a.out) + ".data"
        data = os.path.join(outdir, loc)
        store = Store(data + ".tmp" if a.external_data else None, loc)
    try:
        model, params = build(a, store)
    except BaseException:
        store.close()
        if store.file:
            os.unlink(data + ".tmp")
        raise
    store.close()
    if a.data_from:
        other = os.path.splitext(data[:-len(".data")])[0] + ".json"
        # Names carry a node counter that differs between the graphs with
        # and without past; role, layer, shape, dtype and offset do not.
        key = lambda ts: [(t["role"], t["layer"], t["shape"], t["dtype"],
                           t["offset"]) for t in ts]
        ok = os.path.getsize(data) == store.pos
        if ok and os.path.isfile(other):
            with open(other) as f:
                ok = key(json.load(f)["tensors"]) == key(store.manifest)
        if not ok:
            sys.exit("gen_llama_onnx: %s does not hold this model's weights" % data)
    with open(tmp, "wb") as f:
        f.write(model.SerializeToString())
    if store.file:
        os.replace(data + ".tmp", data)
    if a.external_data:
        manifest = dict(
            model=os.path.basename(a.out), data=loc, seed=SEED,
            config=dict(dim=a.dim, layers=a.layers, heads=a.heads,
                        kv_heads=a.kv_heads, hidden=a.hidden, vocab=a.vocab,
                        seq=a.seq, dtype=a.dtype, f16_style=a.f16_style,
                        norm_eps=EPS, rope_theta=ROPE_THETA, rope="rotate-half",
                        layout="MatMul weights are [in, out] (x @ W)"),
            tensors=store.manifest)
        if a.with_past:  # seq is dynamic
            manifest["config"].update(seq=None, with_past=True,
                                      max_pos=a.max_pos)
        elif a.dynamic_seq:
            manifest["config"].update(seq=None, max_pos=a.max_pos)
        with open(a.out + ".json.tmp", "w") as f:
            json.dump(manifest, f, indent=1)
        os.replace(a.out + ".json.tmp", os.path.splitext(a.out)[0] + ".json")
    os.replace(tmp, a.out)
    size = os.path.getsize(a.out) + (os.path.getsize(data) if store.file else 0)
    print("gen_llama_onnx: wrote %s: %.1fM parameters, %d nodes, %s, %.2f GB" %
          (a.out, params / 1e6, len(model.graph.node),
           a.dtype + ("" if a.dtype == "f32" else " " + a.f16_style), size / 1e9))

    if a.verify:
        verify_past(a, a.out)


def verify_past(a, path):
    """--verify: the with-past model at `path`, run by decoder_past's
    evaluator on a prefill of VERIFY_PROMPT seeded tokens and VERIFY_STEPS
    decode steps, gives the logits of the same model without past (built
    again in memory) on all the tokens."""
    import argparse as _argparse
    import onnx
    twin_args = _argparse.Namespace(**vars(a))
    twin_args.with_past = False
    twin_args.seq = VERIFY_PROMPT + VERIFY_STEPS
    twin, _ = build(twin_args, Store())
    model = onnx.load(path)
    ids = np.random.default_rng(1).integers(
        0, a.vocab, (1, VERIFY_PROMPT + VERIFY_STEPS)).astype(np.int64)
    want = decoder_past.run_onnx(twin, [ids])[0].astype(np.float32)
    hd = a.dim // a.heads
    kv_type = np.float16 if a.dtype == "f16" and a.f16_style == "torch" \
        else np.float32
    tol = 2e-2 if kv_type == np.float16 else 1e-4
    past = [x.astype(kv_type) for x in
            decoder_past.empty_past(a.layers, a.kv_heads, hd)]
    pos, worst = 0, 0.0
    for n in [VERIFY_PROMPT] + [1] * VERIFY_STEPS:
        feeds = decoder_past.step_inputs(ids[:, pos:pos + n], past)
        feeds[3:] = past  # keep the cache's type
        outs = decoder_past.run_onnx(model, feeds)
        got, past = outs[0].astype(np.float32), outs[1:]
        ref = want[:, pos:pos + n]
        err = float(np.max(np.abs(got - ref))) / \
            max(1.0, float(np.max(np.abs(ref))))
        worst = max(worst, err)
        if got.shape != ref.shape or not err <= tol:
            sys.exit("gen_llama_onnx: --verify: logits of the step at past "
                     "%d, seq %d differ from the model without past by %.3g "
                     "(relative), more than %g" % (pos, n, err, tol))
        pos += n
    print("gen_llama_onnx: verified %s: prefill of %d tokens + %d decode "
          "steps == the model without past (max relative difference %.2g; "
          "%s)" % (path, VERIFY_PROMPT, VERIFY_STEPS, worst,
                   decoder_past.evaluator_name()))


if __name__ == "__main__":
    main()
