#!/usr/bin/python3
"""Generates a LLaMA-shaped fp32 ONNX model with random weights, at any size,
without torch (onnx.helper + numpy), for import/compile-scale benchmarks.

Default: dim 768, 12 layers, 12 heads (4 kv heads), SwiGLU hidden 2048,
vocab 16000 -> ~97M parameters (~390 MB). The graph is what torch exports
for LLaMA at opset 17: decomposed RMSNorm (Pow/ReduceMean/Add/Sqrt/Div/Mul),
rotary embeddings (rotate-half with Slice/Neg/Concat), grouped-query attention
(Expand + Reshape of k/v), causal mask, Softmax, SwiGLU with Sigmoid*Mul.

Usage: gen_llama_onnx.py OUT.onnx [--dim 768 --layers 12 --heads 12
       --kv-heads 4 --hidden 2048 --vocab 16000 --seq 32] [--external-data]
"""

import argparse
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build(a):
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    hd = a.dim // a.heads
    kvd = a.kv_heads * hd
    rep = a.heads // a.kv_heads
    counter = [0]

    def name(p):
        counter[0] += 1
        return "%s_%d" % (p, counter[0])

    def const(arr, p="c"):
        n = name(p)
        inits.append(numpy_helper.from_array(np.asarray(arr), n))
        return n

    def weight(shape, p):
        w = (rng.standard_normal(shape, dtype=np.float32) /
             np.sqrt(shape[0])).astype(np.float32)
        return const(w, p)

    def op(t, ins, n_out=1, **attrs):
        outs = [name(t.lower()) for _ in range(n_out)]
        nodes.append(helper.make_node(t, ins, outs, name=name(t), **attrs))
        return outs[0] if n_out == 1 else outs

    two = const(np.array(2.0, np.float32))
    eps = const(np.array(1e-5, np.float32))
    axes_last = const(np.array([-1], np.int64))

    def rmsnorm(x, dim):
        w = const(np.ones(dim, np.float32), "norm")
        p = op("Pow", [x, two])
        m = op("ReduceMean", [p], axes=[-1], keepdims=1)
        s = op("Sqrt", [op("Add", [m, eps])])
        return op("Mul", [op("Div", [x, s]), w])

    seq = a.seq
    # Rotary tables (rotate-half convention), precomputed like HF does.
    inv = 1.0 / (10000 ** (np.arange(0, hd, 2, dtype=np.float32) / hd))
    ang = np.outer(np.arange(seq, dtype=np.float32), inv)
    emb = np.concatenate([ang, ang], axis=-1)
    cos = const(np.cos(emb)[None, None].astype(np.float32), "cos")
    sin = const(np.sin(emb)[None, None].astype(np.float32), "sin")
    half = hd // 2
    s0 = const(np.array([0], np.int64)); s1 = const(np.array([half], np.int64))
    s2 = const(np.array([hd], np.int64)); ax3 = const(np.array([3], np.int64))

    def rope(x):
        x1 = op("Slice", [x, s0, s1, ax3])
        x2 = op("Slice", [x, s1, s2, ax3])
        rot = op("Concat", [op("Neg", [x2]), x1], axis=3)
        return op("Add", [op("Mul", [x, cos]), op("Mul", [rot, sin])])

    mask = np.triu(np.full((seq, seq), -1e9, np.float32), 1)
    mask_c = const(mask[None, None], "mask")
    scale = const(np.array(1.0 / np.sqrt(hd), np.float32))
    shp_q = const(np.array([1, seq, a.heads, hd], np.int64))
    shp_kv = const(np.array([1, seq, a.kv_heads, hd], np.int64))
    shp_kv5 = const(np.array([1, a.kv_heads, 1, seq, hd], np.int64))
    shp_rep = const(np.array([1, a.kv_heads, rep, seq, hd], np.int64))
    shp_kvh = const(np.array([1, a.heads, seq, hd], np.int64))
    shp_o = const(np.array([1, seq, a.dim], np.int64))

    tok = weight((a.vocab, a.dim), "tok_embeddings")
    x = op("Gather", [tok, "input_ids"], axis=0)
    for _ in range(a.layers):
        h = rmsnorm(x, a.dim)
        q = op("MatMul", [h, weight((a.dim, a.dim), "wq")])
        k = op("MatMul", [h, weight((a.dim, kvd), "wk")])
        v = op("MatMul", [h, weight((a.dim, kvd), "wv")])
        q = op("Transpose", [op("Reshape", [q, shp_q])], perm=[0, 2, 1, 3])
        k = op("Transpose", [op("Reshape", [k, shp_kv])], perm=[0, 2, 1, 3])
        v = op("Transpose", [op("Reshape", [v, shp_kv])], perm=[0, 2, 1, 3])
        q, k = rope(q), rope(k)
        def repeat(t):
            t = op("Expand", [op("Reshape", [t, shp_kv5]), shp_rep])
            return op("Reshape", [t, shp_kvh])
        k, v = repeat(k), repeat(v)
        sc = op("Mul", [op("MatMul", [q, op("Transpose", [k], perm=[0, 1, 3, 2])]), scale])
        p = op("Softmax", [op("Add", [sc, mask_c])], axis=-1)
        o = op("Reshape", [op("Transpose", [op("MatMul", [p, v])], perm=[0, 2, 1, 3]), shp_o])
        x = op("Add", [x, op("MatMul", [o, weight((a.dim, a.dim), "wo")])])
        h = rmsnorm(x, a.dim)
        g = op("MatMul", [h, weight((a.dim, a.hidden), "w1")])
        g = op("Mul", [g, op("Sigmoid", [g])])
        u = op("MatMul", [h, weight((a.dim, a.hidden), "w3")])
        x = op("Add", [x, op("MatMul", [op("Mul", [g, u]), weight((a.hidden, a.dim), "w2")])])
    x = rmsnorm(x, a.dim)
    nodes.append(helper.make_node("MatMul", [x, weight((a.dim, a.vocab), "output")],
                                  ["logits"], name="lm_head"))
    graph = helper.make_graph(
        nodes, "llama",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, seq])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, seq, a.vocab])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    params = sum(int(np.prod(t.dims)) for t in inits if t.data_type == TensorProto.FLOAT
                 and ("cos" not in t.name and "sin" not in t.name and "mask" not in t.name))
    return model, params


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--vocab", type=int, default=16000)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--external-data", action="store_true",
                    help="store weights in OUT.data next to the model")
    a = ap.parse_args()
    if a.dim % a.heads or a.heads % a.kv_heads:
        sys.exit("gen_llama_onnx: dim must divide by heads, heads by kv-heads")
    model, params = build(a)
    tmp = a.out + ".tmp"
    if a.external_data:
        onnx.save(model, tmp, save_as_external_data=True, all_tensors_to_one_file=True,
                  location=os.path.basename(a.out) + ".data", size_threshold=1024)
    else:
        onnx.save(model, tmp)
    os.replace(tmp, a.out)
    print("gen_llama_onnx: wrote %s: %.1fM parameters, %d nodes" %
          (a.out, params / 1e6, len(model.graph.node)))


if __name__ == "__main__":
    main()
