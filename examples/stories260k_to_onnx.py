#!/usr/bin/python3
"""Converts the llama2.c checkpoint stories260K.bin into an ONNX model.

The checkpoint (legacy llama2.c "v0" format, see shared/models/README.md) is
loaded into a small PyTorch LLaMA module (RMSNorm, rotary embeddings on
interleaved pairs, grouped-query attention, SwiGLU, classifier shared with
the token embedding), which is checked against the known greedy
continuation from BOS and then exported with torch.onnx.export:

  input  `input_ids`  int64 [1, seq]
  output `logits`     float32 [1, seq, vocab]

Usage:
  stories260k_to_onnx.py [--bin PATH] [-o OUT.onnx] [--seq 32]
                         [--dynamic-seq] [--opset 13|17] [--save-reference]
  stories260k_to_onnx.py --with-past [--bin PATH] [-o OUT.onnx]
                         [--opset 13|17] [--prompt 1,374,...] [--gen 40]
                         [--save-reference]

--save-reference also writes OUT.input_ids.npy (BOS followed by the greedy
continuation, seq tokens) and OUT.logits.npy (PyTorch's logits for it) next
to the model.

--with-past exports the same model with past key/values instead
(default OUT stories260k_past.onnx), in the convention of
examples/decoder_past.py (Hugging Face Optimum / ONNX Runtime GenAI names;
`seq` and `past_seq` dynamic; docs/frontend-onnx.md). Before renaming the
file into place it checks that the greedy continuation of --prompt computed
without a cache (whole sequence every step) equals the one computed with
the cache by the with-past PyTorch module (prefill, then one token per
step), and that the ONNX graph reproduces the with-past module's logits and
presents on a prefill and two decode steps (relative 1e-4; evaluated by
onnx.reference when the installed onnx has it, else by decoder_past's NumPy
evaluator). With --save-reference it writes OUT.prompt_ids.npy (int64
[1, P]) and OUT.greedy_ids.npy (int64 [1, --gen], the continuation without
a cache).

Exits with status 1 when a check fails and 2 when the checkpoint is missing
or malformed. Needs Debian's /usr/bin/python3 (torch, onnx, numpy).
"""

import argparse
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

BOS = 1
# Default --with-past prompt: BOS and five tokens that are not the model's
# own greedy continuation, picked among random prompts for a clear greedy
# path: over its 40 greedy tokens the top-1 logit leads the runner-up by at
# least 0.069 (other prompts had near-ties down to 4e-5, which rounding in
# another implementation could flip).
DEFAULT_PROMPT = [BOS, 374, 324, 279, 287, 478]
# Greedy decoding from BOS, checked against the reference C implementation.
EXPECTED_GREEDY = [461, 461, 401, 401, 401, 461, 378, 455, 473, 456,
                   435, 299, 362, 409, 283, 264, 283, 452, 288, 13]
HEADER = struct.Struct("<7i")
RMS_EPS = 1e-5
ROPE_THETA = 10000.0


class CheckpointError(Exception):
    pass


def default_checkpoint():
    # <repo>/examples/ -> <repo>/../shared/models/stories260K.bin
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.normpath(
        os.path.join(repo, "..", "shared", "models", "stories260K.bin"))


def read_checkpoint(path):
    """Returns (config dict, dict of float32 numpy arrays)."""
    if not os.path.isfile(path):
        raise CheckpointError("checkpoint '%s' does not exist" % path)
    size = os.path.getsize(path)
    if size < HEADER.size:
        raise CheckpointError("'%s' is %d bytes, too short for the llama2.c "
                              "header" % (path, size))
    with open(path, "rb") as f:
        raw = f.read()
    dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len = \
        HEADER.unpack_from(raw, 0)
    shared = vocab > 0
    vocab = abs(vocab)
    if min(dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len) <= 0 \
            or dim % n_heads or n_heads % n_kv_heads or \
            (dim // n_heads) % 2 or max(dim, hidden, vocab, seq_len) > 1 << 20:
        raise CheckpointError(
            "'%s' does not have a valid llama2.c header (dim=%d hidden_dim=%d "
            "n_layers=%d n_heads=%d n_kv_heads=%d vocab_size=%d seq_len=%d)" %
            (path, dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len))
    head = dim // n_heads
    kv_dim = n_kv_heads * head
    L = n_layers
    layout = [
        ("tok_embeddings", (vocab, dim)),
        ("rms_att", (L, dim)),
        ("wq", (L, dim, dim)),
        ("wk", (L, kv_dim, dim)),
        ("wv", (L, kv_dim, dim)),
        ("wo", (L, dim, dim)),
        ("rms_ffn", (L, dim)),
        ("w1", (L, hidden, dim)),
        ("w2", (L, dim, hidden)),
        ("w3", (L, hidden, dim)),
        ("rms_final", (dim,)),
        ("freq_cis_real", (seq_len, head // 2)),  # unused (old RoPE tables)
        ("freq_cis_imag", (seq_len, head // 2)),
    ]
    if not shared:
        layout.append(("wcls", (vocab, dim)))
    expected = HEADER.size + 4 * sum(int(np.prod(s)) for _, s in layout)
    if size != expected:
        raise CheckpointError(
            "'%s' is %d bytes but its header (dim=%d hidden_dim=%d n_layers=%d "
            "n_heads=%d n_kv_heads=%d vocab_size=%d seq_len=%d) describes a "
            "%d-byte checkpoint" % (path, size, dim, hidden, n_layers, n_heads,
                                    n_kv_heads, vocab, seq_len, expected))
    weights = {}
    offset = HEADER.size
    for name, shape in layout:
        count = int(np.prod(shape))
        weights[name] = np.frombuffer(raw, dtype="<f4", count=count,
                                      offset=offset).reshape(shape).copy()
        offset += 4 * count
    for name, w in weights.items():
        if not np.all(np.isfinite(w)):
            raise CheckpointError("'%s': weights '%s' are not finite" %
                                  (path, name))
    config = dict(dim=dim, hidden_dim=hidden, n_layers=n_layers,
                  n_heads=n_heads, n_kv_heads=n_kv_heads, vocab_size=vocab,
                  seq_len=seq_len, shared_classifier=shared)
    return config, weights


class RMSNorm(nn.Module):
    def __init__(self, weight):
        super().__init__()
        self.weight = nn.Parameter(torch.from_numpy(weight))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + RMS_EPS) * \
            self.weight


def linear(w):
    layer = nn.Linear(w.shape[1], w.shape[0], bias=False)
    layer.weight = nn.Parameter(torch.from_numpy(w))
    return layer


def apply_rope(x, cos, sin):
    """Rotary embedding on interleaved pairs (2i, 2i+1), as llama2.c.

    x: [batch, heads, seq, head_dim]; cos/sin: [seq, head_dim/2]."""
    b, h, t, d = x.shape
    pairs = x.reshape(b, h, t, d // 2, 2)
    x0, x1 = pairs[..., 0], pairs[..., 1]
    out = torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)
    return out.reshape(b, h, t, d)


class Block(nn.Module):
    def __init__(self, cfg, w, i, use_trilu):
        super().__init__()
        self.n_heads, self.n_kv_heads = cfg["n_heads"], cfg["n_kv_heads"]
        self.head_dim = cfg["dim"] // cfg["n_heads"]
        self.use_trilu = use_trilu
        self.attention_norm = RMSNorm(w["rms_att"][i])
        self.wq, self.wk = linear(w["wq"][i]), linear(w["wk"][i])
        self.wv, self.wo = linear(w["wv"][i]), linear(w["wo"][i])
        self.ffn_norm = RMSNorm(w["rms_ffn"][i])
        self.w1, self.w2, self.w3 = (linear(w["w1"][i]), linear(w["w2"][i]),
                                     linear(w["w3"][i]))

    def project(self, x, cos, sin):
        """Queries, keys and values [b, heads, t, hd], q and k rotated."""
        b, t, _ = x.shape
        hd = self.head_dim
        q = self.wq(x).view(b, t, self.n_heads, hd).transpose(1, 2)
        k = self.wk(x).view(b, t, self.n_kv_heads, hd).transpose(1, 2)
        v = self.wv(x).view(b, t, self.n_kv_heads, hd).transpose(1, 2)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def attend(self, q, k, v, mask):
        """softmax(q·kᵀ/√hd + mask)·v through wo; k, v [b, kv_heads, n, hd]."""
        b, _, t, hd = q.shape
        n = k.shape[2]
        # Grouped-query attention: query head h reads kv head h // n_rep.
        n_rep = self.n_heads // self.n_kv_heads
        if n_rep > 1:
            k = k[:, :, None].expand(b, self.n_kv_heads, n_rep, n, hd) \
                .reshape(b, self.n_heads, n, hd)
            v = v[:, :, None].expand(b, self.n_kv_heads, n_rep, n, hd) \
                .reshape(b, self.n_heads, n, hd)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(hd)
        probs = F.softmax(scores + mask, dim=-1)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(b, t, -1)
        return self.wo(out)

    def attention(self, x, cos, sin):
        t = x.shape[1]
        q, k, v = self.project(x, cos, sin)
        if self.use_trilu:  # Trilu: opset >= 14
            mask = torch.triu(torch.full((t, t), float("-inf")), diagonal=1)
        else:
            i = torch.arange(t).unsqueeze(1)
            j = torch.arange(t).unsqueeze(0)
            mask = torch.where(j > i, torch.tensor(float("-inf")),
                               torch.tensor(0.0))
        return self.attend(q, k, v, mask)

    def forward(self, x, cos, sin):
        x = x + self.attention(self.attention_norm(x), cos, sin)
        h = self.ffn_norm(x)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))


class Llama2c(nn.Module):
    def __init__(self, cfg, w, use_trilu=True):
        super().__init__()
        self.tok_embeddings = nn.Embedding(cfg["vocab_size"], cfg["dim"])
        self.tok_embeddings.weight = nn.Parameter(
            torch.from_numpy(w["tok_embeddings"]))
        self.layers = nn.ModuleList([Block(cfg, w, i, use_trilu)
                                     for i in range(cfg["n_layers"])])
        self.norm = RMSNorm(w["rms_final"])
        self.output = None if cfg["shared_classifier"] else linear(w["wcls"])
        head = cfg["dim"] // cfg["n_heads"]
        # freq_i = theta^(-2i/head_size), computed in float32 like run.c.
        inv_freq = 1.0 / (ROPE_THETA ** (
            torch.arange(0, head, 2, dtype=torch.float32) / head))
        angles = torch.outer(
            torch.arange(cfg["seq_len"], dtype=torch.float32), inv_freq)
        self.register_buffer("rope_cos", torch.cos(angles))
        self.register_buffer("rope_sin", torch.sin(angles))

    def forward(self, input_ids):
        t = input_ids.shape[1]
        x = self.tok_embeddings(input_ids)
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]
        for layer in self.layers:
            x = layer(x, cos, sin)
        x = self.norm(x)
        if self.output is None:
            return F.linear(x, self.tok_embeddings.weight)
        return self.output(x)


def additive_causal_mask(attention_mask, seq, past):
    """[1, 1, seq, past+seq] float mask for queries at positions past ..
    past+seq-1 over keys 0 .. past+seq-1: 0 where key <= query and
    attention_mask is 1, float32's lowest value elsewhere (as Hugging
    Face's LLaMA builds it)."""
    total = attention_mask.shape[1]
    query = torch.arange(seq).unsqueeze(1) + past
    key = torch.arange(total).unsqueeze(0)
    allowed = (key <= query).unsqueeze(0).unsqueeze(0) & \
        (attention_mask[:, None, None, :] != 0)
    return torch.where(allowed, torch.tensor(0.0),
                       torch.tensor(torch.finfo(torch.float32).min))


def attention_with_past(block, x, cos, sin, past_k, past_v, mask):
    """Block.attention over the cached past: returns (output, present key,
    present value); the presents are Concat(past, new) on the sequence axis,
    keys after the rotary embedding, both before the GQA repetition."""
    q, k, v = block.project(x, cos, sin)
    present_k = torch.cat([past_k, k], dim=2)
    present_v = torch.cat([past_v, v], dim=2)
    return block.attend(q, present_k, present_v, mask), present_k, present_v


class Llama2cWithPast(nn.Module):
    """The same model (it shares the parameters of `model`) in the
    decoder-with-past convention of examples/decoder_past.py:
    forward(input_ids, attention_mask, position_ids, *past) ->
    (logits, *present), past and present flattened as key0, value0, key1,
    ... The rotary tables are gathered at position_ids."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, *past):
        m = self.model
        x = m.tok_embeddings(input_ids)
        cos = m.rope_cos[position_ids].unsqueeze(1)  # [1, 1, seq, head/2]
        sin = m.rope_sin[position_ids].unsqueeze(1)
        mask = additive_causal_mask(attention_mask, input_ids.shape[1],
                                    past[0].shape[2])
        present = []
        for i, layer in enumerate(m.layers):
            h, k, v = attention_with_past(layer, layer.attention_norm(x),
                                          cos, sin, past[2 * i],
                                          past[2 * i + 1], mask)
            x = x + h
            h = layer.ffn_norm(x)
            x = x + layer.w2(F.silu(layer.w1(h)) * layer.w3(h))
            present += [k, v]
        x = m.norm(x)
        if m.output is None:
            logits = F.linear(x, m.tok_embeddings.weight)
        else:
            logits = m.output(x)
        return (logits, *present)


def export_with_past(model, cfg, path, opset, prompt, n_gen, log=print):
    """Exports Llama2cWithPast(model) to `path` after the checks of
    decoder_past.export_checked; returns (greedy ids, margins)."""
    import decoder_past
    head = cfg["dim"] // cfg["n_heads"]
    return decoder_past.export_checked(
        model, Llama2cWithPast(model).eval(), path, cfg["n_layers"],
        cfg["n_kv_heads"], head, cfg["vocab_size"], prompt, n_gen, opset,
        log)


def greedy(model, n, start=BOS):
    ids = [start]
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([ids], dtype=torch.long))
            ids.append(int(torch.argmax(logits[0, -1])))
    return ids


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Convert llama2.c stories260K.bin to ONNX (verified "
        "with PyTorch first).")
    ap.add_argument("--bin", default=default_checkpoint(),
                    help="checkpoint (default: %(default)s)")
    ap.add_argument("-o", "--output",
                    help="ONNX file to write (default: stories260K.onnx; "
                    "with --with-past stories260k_past.onnx)")
    ap.add_argument("--seq", type=int, default=32,
                    help="sequence length of the exported input (default 32)")
    ap.add_argument("--dynamic-seq", action="store_true",
                    help="export the sequence axis as dynamic ('seq')")
    ap.add_argument("--opset", type=int, default=17, choices=(13, 17))
    ap.add_argument("--save-reference", action="store_true",
                    help="also write OUT.input_ids.npy and OUT.logits.npy "
                    "(with --with-past: OUT.prompt_ids.npy and "
                    "OUT.greedy_ids.npy)")
    ap.add_argument("--with-past", action="store_true",
                    help="export with past key/values (decoder_past.py)")
    ap.add_argument("--prompt", default=",".join(map(str, DEFAULT_PROMPT)),
                    help="--with-past: comma-separated prompt ids "
                    "(default: %(default)s)")
    ap.add_argument("--gen", type=int, default=40,
                    help="--with-past: greedy tokens to check and save "
                    "(default 40)")
    args = ap.parse_args(argv)
    if args.output is None:
        args.output = ("stories260k_past.onnx" if args.with_past
                       else "stories260K.onnx")
    if args.with_past and args.dynamic_seq:
        ap.error("--dynamic-seq does not apply to --with-past (its seq and "
                 "past axes are always dynamic)")

    try:
        cfg, weights = read_checkpoint(args.bin)
    except CheckpointError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    if not 1 <= args.seq <= cfg["seq_len"]:
        ap.error("--seq must be in [1, %d]" % cfg["seq_len"])
    print("checkpoint %s: dim=%d hidden_dim=%d n_layers=%d n_heads=%d "
          "n_kv_heads=%d vocab_size=%d seq_len=%d shared_classifier=%s" % (
              args.bin, cfg["dim"], cfg["hidden_dim"], cfg["n_layers"],
              cfg["n_heads"], cfg["n_kv_heads"], cfg["vocab_size"],
              cfg["seq_len"], cfg["shared_classifier"]))

    torch.set_num_threads(1)
    model = Llama2c(cfg, weights, use_trilu=args.opset >= 14).eval()

    # Verify the PyTorch module: greedy decoding from BOS, re-running the
    # whole sequence for every token.
    n_check = len(EXPECTED_GREEDY)
    tokens = greedy(model, max(n_check, args.seq - 1))
    got = tokens[1:1 + n_check]
    print("greedy from BOS: %s" % " ".join(map(str, got)))
    if got != EXPECTED_GREEDY:
        print("error: expected        %s" % " ".join(map(str, EXPECTED_GREEDY)),
              file=sys.stderr)
        return 1
    print("greedy check: OK (%d tokens match the reference)" % n_check)

    out = os.path.abspath(args.output)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if args.with_past:
        return main_with_past(args, cfg, model, out, ap)
    example = torch.tensor([tokens[:args.seq]], dtype=torch.long)
    dynamic_axes = None
    if args.dynamic_seq:
        dynamic_axes = {"input_ids": {1: "seq"}, "logits": {1: "seq"}}
    import warnings
    warnings.filterwarnings("ignore")
    tmp = out + ".tmp"
    with torch.no_grad():
        torch.onnx.export(model, (example,), tmp, input_names=["input_ids"],
                          output_names=["logits"], dynamic_axes=dynamic_axes,
                          opset_version=args.opset, do_constant_folding=True)
    import onnx
    onnx.checker.check_model(onnx.load(tmp))
    os.replace(tmp, out)
    print("wrote %s (opset %d, input_ids [1, %s])" % (
        out, args.opset, "seq" if args.dynamic_seq else args.seq))

    if args.save_reference:
        with torch.no_grad():
            logits = model(example)
        base = out[:-5] if out.endswith(".onnx") else out
        for key, arr in (("input_ids", example.numpy()),
                         ("logits", logits.numpy().astype(np.float32))):
            path = "%s.%s.npy" % (base, key)
            np.save(path, arr)
            print("wrote %s %s" % (path, list(arr.shape)))
    return 0


def main_with_past(args, cfg, model, out, ap):
    try:
        prompt = [int(t) for t in args.prompt.split(",")]
    except ValueError:
        ap.error("--prompt must be comma-separated token ids")
    if not prompt or min(prompt) < 0 or max(prompt) >= cfg["vocab_size"]:
        ap.error("--prompt ids must be in [0, %d)" % cfg["vocab_size"])
    if args.gen < 1 or len(prompt) + args.gen > cfg["seq_len"]:
        ap.error("--gen must be >= 1 and prompt + gen <= %d" % cfg["seq_len"])
    try:
        ids, _ = export_with_past(model, cfg, out, args.opset, prompt,
                                  args.gen)
    except ValueError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    head = cfg["dim"] // cfg["n_heads"]
    print("wrote %s (opset %d; input_ids [1, seq], attention_mask [1, "
          "past_seq+seq], position_ids [1, seq], past_key_values.{0..%d}."
          "key|value [1, %d, past_seq, %d] -> logits [1, seq, %d], "
          "present.{0..%d}.key|value [1, %d, past_seq+seq, %d])" % (
              out, args.opset, cfg["n_layers"] - 1, cfg["n_kv_heads"], head,
              cfg["vocab_size"], cfg["n_layers"] - 1, cfg["n_kv_heads"],
              head))
    print("greedy from %s: %s" % (prompt, " ".join(map(str, ids))))
    if args.save_reference:
        base = out[:-5] if out.endswith(".onnx") else out
        for key, arr in (("prompt_ids", np.array([prompt], np.int64)),
                         ("greedy_ids", np.array([ids], np.int64))):
            path = "%s.%s.npy" % (base, key)
            np.save(path, arr)
            print("wrote %s %s" % (path, list(arr.shape)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
