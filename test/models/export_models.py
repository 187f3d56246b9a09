#!/usr/bin/python3
"""Exports small GPT-2-, LLaMA- and T5-style language models to ONNX.

The models are written here in plain PyTorch (no `transformers`), with seeded
random weights, so the export is deterministic and needs nothing but torch,
onnx and numpy (Debian's /usr/bin/python3: torch 1.13, onnx 1.12).

Each architecture is exported at opset 13 and 17, once with static shapes
(input_ids [1, 8]) and once with dynamic batch and sequence axes: 12 models.
For every model NAME the output directory receives

  NAME.onnx             the model: input `input_ids` (int64 [batch, seq]),
                        output `logits` (float32 [batch, seq, vocab])
  NAME.input_ids.npy    the reference input: [1, 8] for the static models,
                        [2, 7] for the dynamic ones (the static twin of a
                        dynamic model has the same weights)
  NAME.logits.npy       PyTorch's output for that input

plus `manifest.json` describing all models written by the run.

Usage: export_models.py --out-dir DIR [--only NAME ...] [--list]
Nothing is written outside --out-dir.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 96
STATIC_SHAPE = (1, 8)
DYNAMIC_REF_SHAPE = (2, 7)  # reference input of the dynamic-shape models
OPSETS = (13, 17)


# --------------------------------------------------------------------------
# GPT-2 style
# --------------------------------------------------------------------------
def gelu_tanh(x):
    # GPT-2's GELU ("gelu_new"), written out.
    return 0.5 * x * (1.0 + torch.tanh(
        math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class GPT2Attention(nn.Module):
    def __init__(self, d, n_heads, max_pos):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d // n_heads
        self.c_attn = nn.Linear(d, 3 * d)  # fused q, k, v
        self.c_proj = nn.Linear(d, d)
        # Like GPT-2: a lower-triangular buffer sliced to the sequence length.
        self.register_buffer(
            "bias",
            torch.tril(torch.ones(max_pos, max_pos, dtype=torch.bool)).view(
                1, 1, max_pos, max_pos))

    def _heads(self, x):
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        att = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        mask = self.bias[:, :, :t, :t]
        att = torch.where(mask, att,
                          torch.tensor(torch.finfo(att.dtype).min,
                                       dtype=att.dtype))
        att = F.softmax(att, dim=-1)
        y = torch.matmul(att, v)
        y = y.transpose(1, 2).contiguous().view(b, t, d)
        return self.c_proj(y)


class GPT2Block(nn.Module):
    def __init__(self, d, n_heads, max_pos):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d, eps=1e-5)
        self.attn = GPT2Attention(d, n_heads, max_pos)
        self.ln_2 = nn.LayerNorm(d, eps=1e-5)
        self.c_fc = nn.Linear(d, 4 * d)
        self.c_proj = nn.Linear(4 * d, d)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.c_proj(gelu_tanh(self.c_fc(self.ln_2(x))))


class TinyGPT2(nn.Module):
    def __init__(self, vocab=VOCAB, d=48, n_heads=4, n_layers=2, max_pos=32,
                 opset=17):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(max_pos, d)
        self.h = nn.ModuleList(
            [GPT2Block(d, n_heads, max_pos) for _ in range(n_layers)])
        self.ln_f = nn.LayerNorm(d, eps=1e-5)

    def forward(self, input_ids):
        t = input_ids.shape[1]
        pos = torch.arange(t, dtype=torch.long, device=input_ids.device)
        x = self.wte(input_ids) + self.wpe(pos).unsqueeze(0)
        for block in self.h:
            x = block(x)
        x = self.ln_f(x)
        return F.linear(x, self.wte.weight)  # lm head tied to the embedding


# --------------------------------------------------------------------------
# LLaMA style
# --------------------------------------------------------------------------
class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * \
            self.weight


def rope_tables(head_dim, max_pos, theta=10000.0):
    """cos/sin [max_pos, head_dim/2] with freq_i = theta^(-2i/head_dim)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2).float() /
                                head_dim))
    angles = torch.outer(torch.arange(max_pos).float(), inv_freq)
    return torch.cos(angles), torch.sin(angles)


def rotate_half(x, cos, sin):
    """HF-LLaMA rotary embedding: pairs (i, i + head_dim/2).

    x: [b, h, t, hd]; cos/sin: [t, hd/2]."""
    cos = torch.cat([cos, cos], dim=-1)
    sin = torch.cat([sin, sin], dim=-1)
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def rotate_interleaved(x, cos, sin):
    """Meta/llama2.c rotary embedding: pairs (2i, 2i + 1).

    x: [b, h, t, hd]; cos/sin: [t, hd/2]."""
    shape = x.shape
    xp = x.reshape(shape[0], shape[1], shape[2], shape[3] // 2, 2)
    x0, x1 = xp[..., 0], xp[..., 1]
    out = torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)
    return out.reshape(shape)


def causal_additive_mask(t, ref, use_trilu):
    """[t, t] float mask: 0 on and below the diagonal, -inf above."""
    if use_trilu:  # Trilu needs opset >= 14
        return torch.triu(
            torch.full((t, t), float("-inf"), dtype=ref.dtype), diagonal=1)
    i = torch.arange(t).unsqueeze(1)
    j = torch.arange(t).unsqueeze(0)
    zero = torch.zeros((), dtype=ref.dtype)
    return torch.where(j > i, torch.tensor(float("-inf"), dtype=ref.dtype),
                       zero)


class LlamaAttention(nn.Module):
    def __init__(self, d, n_heads, n_kv_heads, interleaved, use_trilu):
        super().__init__()
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.head_dim = d // n_heads
        self.interleaved = interleaved
        self.use_trilu = use_trilu
        self.wq = nn.Linear(d, n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(d, n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(d, n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(n_heads * self.head_dim, d, bias=False)

    def _repeat_kv(self, x):
        n_rep = self.n_heads // self.n_kv_heads
        if n_rep == 1:
            return x
        b, h, t, hd = x.shape
        return x[:, :, None, :, :].expand(b, h, n_rep, t, hd).reshape(
            b, h * n_rep, t, hd)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        q = self.wq(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.wk(x).view(b, t, self.n_kv_heads,
                            self.head_dim).transpose(1, 2)
        v = self.wv(x).view(b, t, self.n_kv_heads,
                            self.head_dim).transpose(1, 2)
        rope = rotate_interleaved if self.interleaved else rotate_half
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        k, v = self._repeat_kv(k), self._repeat_kv(v)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim)
        scores = scores + causal_additive_mask(t, scores, self.use_trilu)
        probs = F.softmax(scores.float(), dim=-1).type_as(q)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(b, t, -1)
        return self.wo(out)


class LlamaFeedForward(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.w1 = nn.Linear(d, hidden, bias=False)
        self.w2 = nn.Linear(hidden, d, bias=False)
        self.w3 = nn.Linear(d, hidden, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))  # SwiGLU


class LlamaBlock(nn.Module):
    def __init__(self, d, hidden, n_heads, n_kv_heads, eps, interleaved,
                 use_trilu):
        super().__init__()
        self.attention_norm = RMSNorm(d, eps)
        self.attention = LlamaAttention(d, n_heads, n_kv_heads, interleaved,
                                        use_trilu)
        self.ffn_norm = RMSNorm(d, eps)
        self.feed_forward = LlamaFeedForward(d, hidden)

    def forward(self, x, cos, sin):
        x = x + self.attention(self.attention_norm(x), cos, sin)
        return x + self.feed_forward(self.ffn_norm(x))


class TinyLlama(nn.Module):
    """LLaMA architecture. Also used (with interleaved RoPE and a shared
    classifier) by examples/stories260k_to_onnx.py."""

    def __init__(self, vocab=VOCAB, d=48, hidden=128, n_layers=2, n_heads=6,
                 n_kv_heads=2, max_pos=32, eps=1e-5, interleaved=False,
                 shared_classifier=False, opset=17):
        super().__init__()
        self.tok_embeddings = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList([
            LlamaBlock(d, hidden, n_heads, n_kv_heads, eps, interleaved,
                       use_trilu=opset >= 14) for _ in range(n_layers)])
        self.norm = RMSNorm(d, eps)
        self.shared_classifier = shared_classifier
        if not shared_classifier:
            self.output = nn.Linear(d, vocab, bias=False)
        cos, sin = rope_tables(d // n_heads, max_pos)
        self.register_buffer("rope_cos", cos)
        self.register_buffer("rope_sin", sin)

    def forward(self, input_ids):
        t = input_ids.shape[1]
        x = self.tok_embeddings(input_ids)
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]
        for layer in self.layers:
            x = layer(x, cos, sin)
        x = self.norm(x)
        if self.shared_classifier:
            return F.linear(x, self.tok_embeddings.weight)
        return self.output(x)


# --------------------------------------------------------------------------
# T5 style (encoder + a small decoder with cross-attention)
# --------------------------------------------------------------------------
class T5LayerNorm(nn.Module):
    """RMS norm without mean subtraction and without bias."""

    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        variance = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + self.eps))


def relative_position_bucket(rel, bidirectional, num_buckets, max_distance):
    """T5's bucketing of relative positions (memory - query), in the graph."""
    buckets = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (rel > 0).to(torch.long) * num_buckets
        rel = torch.abs(rel)
    else:
        rel = -torch.min(rel, torch.zeros_like(rel))
    max_exact = num_buckets // 2
    is_small = rel < max_exact
    # rel == 0 gives log(0) = -inf here; those positions take the `is_small`
    # branch. Clamping to 1 keeps the discarded branch finite.
    large = max_exact + (
        torch.log(torch.clamp(rel, min=1).float() / max_exact) /
        math.log(max_distance / max_exact) *
        (num_buckets - max_exact)).to(torch.long)
    large = torch.min(large, torch.full_like(large, num_buckets - 1))
    return buckets + torch.where(is_small, rel, large)


class T5Attention(nn.Module):
    def __init__(self, d, n_heads, d_kv, has_bias, bidirectional,
                 num_buckets=16, max_distance=32):
        super().__init__()
        self.n_heads, self.d_kv = n_heads, d_kv
        self.q = nn.Linear(d, n_heads * d_kv, bias=False)
        self.k = nn.Linear(d, n_heads * d_kv, bias=False)
        self.v = nn.Linear(d, n_heads * d_kv, bias=False)
        self.o = nn.Linear(n_heads * d_kv, d, bias=False)
        self.bidirectional = bidirectional
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.relative_attention_bias = (nn.Embedding(num_buckets, n_heads)
                                        if has_bias else None)

    def position_bias(self, q_len, k_len):
        ctx = torch.arange(q_len, dtype=torch.long)[:, None]
        mem = torch.arange(k_len, dtype=torch.long)[None, :]
        buckets = relative_position_bucket(mem - ctx, self.bidirectional,
                                           self.num_buckets,
                                           self.max_distance)
        values = self.relative_attention_bias(buckets)  # [q, k, heads]
        return values.permute(2, 0, 1).unsqueeze(0)  # [1, heads, q, k]

    def _heads(self, x):
        b = x.shape[0]
        return x.view(b, -1, self.n_heads, self.d_kv).transpose(1, 2)

    def forward(self, x, kv, bias):
        b, t, _ = x.shape
        q, k, v = self._heads(self.q(x)), self._heads(self.k(kv)), \
            self._heads(self.v(kv))
        scores = torch.matmul(q, k.transpose(3, 2))  # T5: no 1/sqrt(d) scale
        if bias is not None:
            scores = scores + bias
        probs = F.softmax(scores.float(), dim=-1).type_as(scores)
        out = torch.matmul(probs, v).transpose(1, 2).contiguous()
        return self.o(out.view(b, -1, self.n_heads * self.d_kv))


class T5GatedGelu(nn.Module):
    def __init__(self, d, d_ff):
        super().__init__()
        self.wi_0 = nn.Linear(d, d_ff, bias=False)
        self.wi_1 = nn.Linear(d, d_ff, bias=False)
        self.wo = nn.Linear(d_ff, d, bias=False)

    def forward(self, x):
        return self.wo(F.gelu(self.wi_0(x)) * self.wi_1(x))  # erf GELU


class T5EncoderLayer(nn.Module):
    def __init__(self, d, d_ff, n_heads, d_kv, has_bias):
        super().__init__()
        self.ln_attn = T5LayerNorm(d)
        self.attn = T5Attention(d, n_heads, d_kv, has_bias, bidirectional=True)
        self.ln_ff = T5LayerNorm(d)
        self.ff = T5GatedGelu(d, d_ff)

    def forward(self, x, bias):
        h = self.ln_attn(x)
        x = x + self.attn(h, h, bias)
        return x + self.ff(self.ln_ff(x))


class T5DecoderLayer(nn.Module):
    def __init__(self, d, d_ff, n_heads, d_kv, has_bias):
        super().__init__()
        self.ln_self = T5LayerNorm(d)
        self.self_attn = T5Attention(d, n_heads, d_kv, has_bias,
                                     bidirectional=False)
        self.ln_cross = T5LayerNorm(d)
        self.cross_attn = T5Attention(d, n_heads, d_kv, False,
                                      bidirectional=True)
        self.ln_ff = T5LayerNorm(d)
        self.ff = T5GatedGelu(d, d_ff)

    def forward(self, x, enc, self_bias):
        h = self.ln_self(x)
        x = x + self.self_attn(h, h, self_bias)
        x = x + self.cross_attn(self.ln_cross(x), enc, None)
        return x + self.ff(self.ln_ff(x))


class TinyT5(nn.Module):
    """Encoder over input_ids; the decoder reads input_ids shifted right by
    one (decoder start token 0), as in teacher-forced training."""

    def __init__(self, vocab=VOCAB, d=32, d_ff=64, n_heads=4, d_kv=8,
                 n_enc=2, n_dec=1, opset=17):
        super().__init__()
        self.d = d
        self.shared = nn.Embedding(vocab, d)
        self.encoder = nn.ModuleList([
            T5EncoderLayer(d, d_ff, n_heads, d_kv, has_bias=(i == 0))
            for i in range(n_enc)])
        self.enc_final = T5LayerNorm(d)
        self.decoder = nn.ModuleList([
            T5DecoderLayer(d, d_ff, n_heads, d_kv, has_bias=(i == 0))
            for i in range(n_dec)])
        self.dec_final = T5LayerNorm(d)

    def forward(self, input_ids):
        b, t = input_ids.shape
        # Encoder: the first layer computes the relative position bias, the
        # others reuse it.
        x = self.shared(input_ids)
        enc_bias = self.encoder[0].attn.position_bias(t, t)
        for layer in self.encoder:
            x = layer(x, enc_bias)
        enc = self.enc_final(x)

        start = torch.zeros((b, 1), dtype=input_ids.dtype)
        dec_ids = torch.cat([start, input_ids[:, :-1]], dim=1)
        y = self.shared(dec_ids)
        i = torch.arange(t)[:, None]
        j = torch.arange(t)[None, :]
        causal = torch.where(j <= i, torch.tensor(0.0),
                             torch.tensor(torch.finfo(torch.float32).min))
        dec_bias = self.decoder[0].self_attn.position_bias(t, t) + causal
        for layer in self.decoder:
            y = layer(y, enc, dec_bias)
        y = self.dec_final(y)
        y = y * (self.d ** -0.5)  # tied lm head, rescaled like T5
        return F.linear(y, self.shared.weight)


# --------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------
ARCHS = {
    # name: (constructor, seed)
    "gpt2": (TinyGPT2, 1002),
    "llama": (TinyLlama, 1003),
    "t5": (TinyT5, 1005),
}


def randomize(model, seed):
    """Deterministic weights. Norm gains get values around 1 (not exactly
    1) so that they matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("weight") and p.dim() == 1:  # norm gains
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:  # biases
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
            else:
                std = 0.5 if "embedding" in name or "wte" in name or \
                    "wpe" in name or name.startswith("shared") else \
                    1.0 / math.sqrt(p.shape[-1])
                p.copy_(std * torch.randn(p.shape, generator=g))
    return model


def model_specs():
    specs = []
    for arch in ARCHS:
        for opset in OPSETS:
            for dynamic in (False, True):
                name = "%s_op%d_%s" % (arch, opset,
                                       "dynamic" if dynamic else "static")
                specs.append(dict(name=name, arch=arch, opset=opset,
                                  dynamic=dynamic))
    return specs


def export_one(spec, out_dir):
    ctor, seed = ARCHS[spec["arch"]]
    torch.manual_seed(seed)
    model = randomize(ctor(opset=spec["opset"]), seed).eval()
    shape = DYNAMIC_REF_SHAPE if spec["dynamic"] else STATIC_SHAPE
    g = torch.Generator().manual_seed(seed + 7)
    input_ids = torch.randint(0, VOCAB, shape, generator=g, dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids)
        # Export with the static example shape; dynamic axes make batch and
        # sequence symbolic.
        example = input_ids if not spec["dynamic"] else \
            torch.randint(0, VOCAB, STATIC_SHAPE, generator=g,
                          dtype=torch.long)
        onnx_path = os.path.join(out_dir, spec["name"] + ".onnx")
        tmp_path = onnx_path + ".tmp"
        dynamic_axes = None
        if spec["dynamic"]:
            dynamic_axes = {"input_ids": {0: "batch", 1: "seq"},
                            "logits": {0: "batch", 1: "seq"}}
        torch.onnx.export(model, (example,), tmp_path,
                          input_names=["input_ids"], output_names=["logits"],
                          dynamic_axes=dynamic_axes,
                          opset_version=spec["opset"],
                          do_constant_folding=True)
        os.replace(tmp_path, onnx_path)
    files = [onnx_path]
    for key, arr in (("input_ids", input_ids.numpy()),
                     ("logits", logits.numpy().astype(np.float32))):
        path = os.path.join(out_dir, "%s.%s.npy" % (spec["name"], key))
        np.save(path, arr)
        files.append(path)
    entry = dict(spec)
    entry.update(
        onnx=os.path.basename(onnx_path),
        input_ids=os.path.basename(files[1]),
        logits=os.path.basename(files[2]),
        input_shape=list(shape),
        logits_shape=list(logits.shape),
        onnx_input_shape=(["batch", "seq"] if spec["dynamic"]
                          else list(STATIC_SHAPE)))
    return entry, files


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", help="directory to write into (created)")
    ap.add_argument("--only", nargs="+", metavar="NAME",
                    help="export only these models (names as in --list, or "
                    "an architecture: gpt2, llama, t5)")
    ap.add_argument("--list", action="store_true",
                    help="print the model names and exit")
    args = ap.parse_args(argv)

    specs = model_specs()
    if args.list:
        for s in specs:
            print(s["name"])
        return 0
    if not args.out_dir:
        ap.error("--out-dir is required")
    if args.only:
        known = {s["name"] for s in specs} | set(ARCHS)
        unknown = [n for n in args.only if n not in known]
        if unknown:
            ap.error("unknown model(s): %s (known: %s)" % (
                ", ".join(unknown), ", ".join(sorted(known))))
        specs = [s for s in specs
                 if s["name"] in args.only or s["arch"] in args.only]

    os.makedirs(args.out_dir, exist_ok=True)
    torch.set_num_threads(1)
    # torch.onnx.export prints diagnostics for every model; keep the output
    # to one line per model.
    import warnings
    warnings.filterwarnings("ignore")

    start = time.time()
    manifest = []
    for spec in specs:
        t0 = time.time()
        entry, files = export_one(spec, args.out_dir)
        manifest.append(entry)
        print("wrote %s (%s) in %.2fs" % (
            files[0], ", ".join(os.path.basename(f) for f in files[1:]),
            time.time() - t0), flush=True)
    manifest_path = os.path.join(args.out_dir, "manifest.json")
    with open(manifest_path, "w") as f:
        json.dump({"models": manifest}, f, indent=1)
    print("wrote %s" % manifest_path)
    print("exported %d model(s) in %.1fs" % (len(manifest),
                                              time.time() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
