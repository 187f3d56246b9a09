#!/usr/bin/env python3
"""End-to-end check of `quench-compile MODEL.onnx --quant=... --emit=gguf`
for ONNX LLaMA decoders (lib/Frontend/GGUF/GGUFExportLlama.cpp, docs/gguf.md
"Export of ONNX models"): the LLaMA is recognized by its structure, the
exported GGUF `llama` file, imported again by Quench's own GGUF import and
compiled, must compute what the ONNX model compiled by Quench at the same
quantization computes (logits <= 1e-5 relative: the same codes, the q/k rows
permuted from rotate-half into llama.cpp's interleaved pairs), with the
metadata the graph implies.

Models (all random, 2 layers, width 64, 4 query / 2 key-value heads):
  hf           a Hugging Face LlamaForCausalLM-shaped torch module (its
               module names: model.layers.N.self_attn.q_proj, mlp.gate_proj,
               input_layernorm, lm_head, ...; rotary cos/sin computed in the
               graph from inv_freq and position ids, base 500000, RMSNorm
               epsilon 1e-6), exported by torch.onnx.export with a dynamic
               sequence: the MatMul weights are anonymous `onnx::MatMul_N`
  gen          bench/gen_llama_onnx.py --dynamic-seq (rotate-half with
               precomputed cos/sin tables of 64 positions, base 10000)
  interleaved  test/models/export_models.py's TinyLlama with RoPE on
               interleaved pairs (llama2.c's layout: no permutation) and the
               classifier tied to the embedding, static sequence of 8 (its
               rotary tables folded to 8 positions: context length 8)
Schemes: w4a16 --group-size=32 (q4_0) and w8a16 --group-size=32 (q8_0) and
no --quant (F32 matrices) on `hf`, q4_0 on `gen`, q8_0 and q4_0 with
--algo=awq (its scales migrated into the norm and projection weights, which
the export writes from the module) on `interleaved`, q4_0 with
--rotate=hadamard (folded into the embedding, norm and projection weights)
on `hf`.
The ONNX model is compiled with --int8-dot=false: a GGUF import keeps float
activations, and so must the model it is compared with.

stories260K (skipped when ../shared/models/stories260K.bin is absent):
examples/stories260k_to_onnx.py's ONNX export of the real llama2.c model
(interleaved RoPE, tied head, 5 layers, 8/4 heads), exported to an F32 GGUF
file: its greedy continuation from BOS, through Quench's KV cache and
through llama.cpp, must be llama2.c's 20 tokens.

Errors: a GPT-2-shaped ONNX model (LayerNorm, GELU) is refused as "not
recognized as a LLaMA decoder" naming what did not match; per-channel int8
(w8a16) is refused naming the GGUF tensor; --rotate-online is refused; no
file is left.

llama.cpp (skipped when absent; --llama-cpp SRC, default ../llama.cpp next
to the source tree, with its build in SRC/build/bin): bench/llamacpp_logits.c
is built against it and run on the exported files: the F32 export and the
llama-quantize F32 dequantization of each quantized export must give
Quench's logits (<= 1e-4 relative); llama.cpp on the q4_0/q8_0 files
themselves (q8_0 activations in its products) is printed with its argmax
agreement.

Usage: gguf_export_onnx.py --build BUILD_DIR [--keep DIR] [--llama-cpp SRC]
Run through CTest: `ctest -L e2e -R gguf-export-onnx`.
"""

import argparse
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(SRC, "test", "models"))
import gguf_model as gm  # noqa: E402
from gguf_export import read_tensor_types, run  # noqa: E402

TOL = 1e-5          # exported file vs the ONNX model, both by Quench
LLAMA_TOL = 1e-4    # llama.cpp on F32 data vs Quench
SEQ = 8
DIM, LAYERS, HEADS, KV_HEADS, FFN = 64, 2, 4, 2, 128


def read_kv(path):
    """{key: value} of a GGUF file's scalar and string key/values."""
    with open(path, "rb") as f:
        b = f.read()
    _, _, nkv = struct.unpack_from("<IQQ", b, 4)
    at = 24
    fmt = {gm.U32: "<I", gm.I32: "<i", gm.F32V: "<f", gm.U64: "<Q",
           gm.F64V: "<d", gm.U8: "<B", gm.BOOL: "<B"}

    def string(at):
        n, = struct.unpack_from("<Q", b, at)
        return b[at + 8:at + 8 + n].decode(), at + 8 + n
    kv = {}
    for _ in range(nkv):
        key, at = string(at)
        t, = struct.unpack_from("<I", b, at)
        at += 4
        if t == gm.STR:
            kv[key], at = string(at)
        elif t in fmt:
            kv[key], = struct.unpack_from(fmt[t], b, at)
            at += struct.calcsize(fmt[t])
        else:
            raise ValueError("read_kv: type %d of %s" % (t, key))
    return kv


# --------------------------------------------------------------------------
# A Hugging Face LlamaForCausalLM-shaped module (written from the
# architecture, with transformers' module names), without `transformers`.
# --------------------------------------------------------------------------
def hf_model(vocab, theta, eps):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from export_models import causal_additive_mask

    hd = DIM // HEADS

    class RMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(DIM))

        def forward(self, x):
            var = x.pow(2).mean(-1, keepdim=True)
            return self.weight * (x * torch.rsqrt(var + eps))

    def rotate_half(x):
        return torch.cat([-x[..., hd // 2:], x[..., :hd // 2]], dim=-1)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj = nn.Linear(DIM, HEADS * hd, bias=False)
            self.k_proj = nn.Linear(DIM, KV_HEADS * hd, bias=False)
            self.v_proj = nn.Linear(DIM, KV_HEADS * hd, bias=False)
            self.o_proj = nn.Linear(HEADS * hd, DIM, bias=False)

        def forward(self, x, cos, sin):
            b, t, _ = x.shape
            q = self.q_proj(x).view(b, t, HEADS, hd).transpose(1, 2)
            k = self.k_proj(x).view(b, t, KV_HEADS, hd).transpose(1, 2)
            v = self.v_proj(x).view(b, t, KV_HEADS, hd).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            rep = HEADS // KV_HEADS
            k = k[:, :, None].expand(b, KV_HEADS, rep, t, hd).reshape(
                b, HEADS, t, hd)
            v = v[:, :, None].expand(b, KV_HEADS, rep, t, hd).reshape(
                b, HEADS, t, hd)
            s = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(hd)
            s = s + causal_additive_mask(t, s, True)
            p = F.softmax(s, dim=-1)
            return self.o_proj(
                torch.matmul(p, v).transpose(1, 2).reshape(b, t, -1))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate_proj = nn.Linear(DIM, FFN, bias=False)
            self.up_proj = nn.Linear(DIM, FFN, bias=False)
            self.down_proj = nn.Linear(FFN, DIM, bias=False)

        def forward(self, x):
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))

    class DecoderLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attn = Attention()
            self.mlp = MLP()
            self.input_layernorm = RMSNorm()
            self.post_attention_layernorm = RMSNorm()

        def forward(self, x, cos, sin):
            x = x + self.self_attn(self.input_layernorm(x), cos, sin)
            return x + self.mlp(self.post_attention_layernorm(x))

    class Rotary(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("inv_freq", 1.0 / (theta ** (
                torch.arange(0, hd, 2).float() / hd)))

        def forward(self, position_ids):
            freqs = (self.inv_freq[None, :, None] @
                     position_ids[:, None, :].float()).transpose(1, 2)
            emb = torch.cat([freqs, freqs], dim=-1)
            return emb.cos()[:, None], emb.sin()[:, None]

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(vocab, DIM)
            self.layers = nn.ModuleList([DecoderLayer()
                                         for _ in range(LAYERS)])
            self.norm = RMSNorm()
            self.rotary_emb = Rotary()

    class LlamaForCausalLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = Model()
            self.lm_head = nn.Linear(DIM, vocab, bias=False)

        def forward(self, input_ids):
            pos = torch.arange(input_ids.shape[1])[None]
            cos, sin = self.model.rotary_emb(pos)
            x = self.model.embed_tokens(input_ids)
            for layer in self.model.layers:
                x = layer(x, cos, sin)
            return self.lm_head(self.model.norm(x))

    return LlamaForCausalLM()


def export_torch(model, path, dynamic):
    import torch
    import warnings
    warnings.filterwarnings("ignore")
    from export_models import randomize
    model = randomize(model, 7).eval()
    example = torch.zeros((1, SEQ), dtype=torch.long)
    with torch.no_grad():
        torch.onnx.export(
            model, (example,), path, input_names=["input_ids"],
            output_names=["logits"], opset_version=17,
            do_constant_folding=True,
            dynamic_axes={"input_ids": {1: "seq"}, "logits": {1: "seq"}}
            if dynamic else None)


def logits(exe, ids, work):
    np.save(os.path.join(work, "ids.npy"), np.array([ids], np.int64))
    out = os.path.join(work, "out")
    run([exe, "--input", "input_ids=" + os.path.join(work, "ids.npy"),
         "--output-dir", out])
    return np.load(os.path.join(out, "logits.npy"))


def rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--keep", help="keep the work files in this directory")
    ap.add_argument("--stories", default=os.path.normpath(os.path.join(
        SRC, "..", "shared", "models", "stories260K.bin")))
    ap.add_argument("--llama-cpp", default=os.path.join(SRC, "..",
                                                        "llama.cpp"),
                    help="llama.cpp source tree with its build in build/bin "
                    "(checked when present)")
    a = ap.parse_args()
    qc = os.path.join(a.build, "bin", "quench-compile")
    work = a.keep or tempfile.mkdtemp(prefix="quench-gguf-export-onnx-")
    os.makedirs(os.path.join(work, "out"), exist_ok=True)
    failures = 0

    def report(ok, what):
        nonlocal failures
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)

    llama = None
    lbin = os.path.join(a.llama_cpp, "build", "bin")
    if os.path.isfile(os.path.join(lbin, "llama-quantize")) and \
            os.path.isfile(os.path.join(a.llama_cpp, "include", "llama.h")):
        llama = os.path.join(work, "llamacpp_logits")
        res = run(["cc", "-O2", "-I", os.path.join(a.llama_cpp, "include"),
                   "-I", os.path.join(a.llama_cpp, "ggml", "include"),
                   os.path.join(SRC, "bench", "llamacpp_logits.c"), "-o",
                   llama, "-L", lbin, "-lllama", "-Wl,-rpath," + lbin],
                  ok=False)
        if res.returncode != 0:
            print("skip llama.cpp: llamacpp_logits.c does not build:\n"
                  + res.stderr[-2000:])
            llama = None
    else:
        print(f"skip llama.cpp checks: no {lbin}/llama-quantize")

    def llama_logits(gguf, ids, n=1):
        """llama.cpp's logits of `ids` ([len, vocab]) and its n greedy
        ids."""
        prompt = os.path.join(work, "prompt.txt")
        with open(prompt, "w") as f:
            f.write(" ".join(map(str, ids)))
        out = os.path.join(work, "llama.f32")
        res = run([llama, gguf, prompt, str(n), out, "1", "f32"])
        greedy = [int(x) for x in re.search(
            r"^ids:([ 0-9]*)$", res.stdout, re.M).group(1).split()]
        return np.fromfile(out, np.float32).reshape(len(ids), -1), greedy

    try:
        vocab = 96
        models = {}
        models["hf"] = os.path.join(work, "hf.onnx")
        export_torch(hf_model(vocab, 500000.0, 1e-6), models["hf"], True)
        models["gen"] = os.path.join(work, "gen.onnx")
        run([sys.executable, os.path.join(SRC, "bench", "gen_llama_onnx.py"),
             models["gen"], "--dim", str(DIM), "--layers", str(LAYERS),
             "--heads", str(HEADS), "--kv-heads", str(KV_HEADS), "--hidden",
             str(FFN), "--vocab", str(vocab), "--dynamic-seq", "--max-pos",
             "64"])
        from export_models import TinyLlama
        models["interleaved"] = os.path.join(work, "interleaved.onnx")
        export_torch(TinyLlama(vocab=vocab, d=DIM, hidden=FFN,
                               n_layers=LAYERS, n_heads=HEADS,
                               n_kv_heads=KV_HEADS, max_pos=32,
                               interleaved=True, shared_classifier=True),
                     models["interleaved"], False)
        expect_kv = {  # model: (rope base, epsilon, context length)
            "hf": (500000.0, 1e-6, 2048), "gen": (10000.0, 1e-5, 64),
            "interleaved": (10000.0, 1e-5, SEQ)}
        ids = np.random.default_rng(5).integers(0, vocab, SEQ).tolist()

        calib = os.path.join(work, "calib")
        os.makedirs(calib, exist_ok=True)
        np.save(os.path.join(calib, "input_ids.npy"), np.array(
            [np.random.default_rng(6).integers(0, vocab, SEQ)], np.int64))
        cases = [("hf", "w4a16"), ("hf", "w8a16"), ("hf", "f32"),
                 ("hf", "w4a16-rotate"), ("gen", "w4a16"),
                 ("interleaved", "w8a16"), ("interleaved", "w4a16-awq")]
        flags_of = {"w4a16": ["--quant=w4a16", "--group-size=32"],
                    "w8a16": ["--quant=w8a16", "--group-size=32"],
                    "w4a16-awq": ["--quant=w4a16", "--group-size=32",
                                  "--algo=awq", "--calib=" + calib],
                    "w4a16-rotate": ["--quant=w4a16", "--group-size=32",
                                     "--rotate=hadamard"],
                    "f32": []}
        type_of = {"w4a16": gm.Q4_0, "w8a16": gm.Q8_0, "f32": gm.F32,
                   "w4a16-awq": gm.Q4_0, "w4a16-rotate": gm.Q4_0}
        for model, scheme in cases:
            name = f"{model}-{scheme}"
            flags = flags_of[scheme]
            out = os.path.join(work, name + ".gguf")
            res = run([qc, models[model], "-o", out, "--emit=gguf"] + flags)
            if "rotate" in scheme:
                # The rotation is folded into the embedding table, the norm
                # weights (now ones) and the projections in the module.
                report("residual stream of width" in res.stderr,
                       f"{name}: rotation folded ("
                       + (re.search(r"residual stream of width[^\n]*",
                                    res.stderr) or [res.stderr[-200:]])[0]
                       + ")")
            if "awq" in scheme:
                # AWQ's scales, migrated into norm and projection weights
                # in the module, are in the file: the logits below match.
                report("AWQ: scales migrated into" in res.stderr,
                       f"{name}: AWQ migrated scales ("
                       + (re.search(r"AWQ: scales migrated into [^;]*",
                                    res.stderr) or [res.stderr[-200:]])[0]
                       + ")")
            types, _ = read_tensor_types(out)
            want = {"token_embd.weight": gm.F32,
                    "output_norm.weight": gm.F32,
                    "output.weight": type_of[scheme]}
            for i in range(LAYERS):
                for t in ("attn_norm", "ffn_norm"):
                    want[f"blk.{i}.{t}.weight"] = gm.F32
                for t in ("attn_q", "attn_k", "attn_v", "attn_output",
                          "ffn_gate", "ffn_up", "ffn_down"):
                    want[f"blk.{i}.{t}.weight"] = type_of[scheme]
            kv = read_kv(out)
            base, eps, ctx = expect_kv[model]
            kv_ok = (kv.get("general.architecture") == "llama" and
                     kv.get("llama.block_count") == LAYERS and
                     kv.get("llama.embedding_length") == DIM and
                     kv.get("llama.feed_forward_length") == FFN and
                     kv.get("llama.attention.head_count") == HEADS and
                     kv.get("llama.attention.head_count_kv") == KV_HEADS and
                     kv.get("llama.rope.dimension_count") == DIM // HEADS and
                     kv.get("llama.vocab_size") == vocab and
                     kv.get("llama.context_length") == ctx and
                     kv.get("llama.rope.freq_base") == np.float32(base) and
                     kv.get("llama.attention.layer_norm_rms_epsilon") ==
                     np.float32(eps) and
                     kv.get("tokenizer.ggml.model") == "no_vocab")
            report(types == want and kv_ok,
                   f"{name}: tensors "
                   f"{'as expected' if types == want else types}"
                   f" ({gm.TYPE_NAMES[type_of[scheme]]} matrices), metadata "
                   f"{'as expected' if kv_ok else kv}")
            onnx_exe = os.path.join(work, name + "_onnx")
            back_exe = os.path.join(work, name + "_back")
            run([qc, models[model], "-o", onnx_exe, "--int8-dot=false"]
                + flags)
            run([qc, out, "-o", back_exe])
            ref = logits(onnx_exe, ids, work)
            got = logits(back_exe, ids, work)
            err = rel(got, ref)
            report(err <= TOL, f"{name}: exported file vs the ONNX model "
                   f"(both compiled by Quench): max |err| / max |ref| = "
                   f"{err:.2e} (limit {TOL:g})")
            if not llama:
                continue
            f32 = out
            if scheme != "f32":
                f32 = os.path.join(work, name + "_deq.gguf")
                run([os.path.join(lbin, "llama-quantize"),
                     "--allow-requantize", out, f32, "F32", "1"])
            lerr = rel(llama_logits(f32, ids)[0], got[0])
            report(lerr <= LLAMA_TOL, f"{name}: llama.cpp on the "
                   f"{'exported F32' if scheme == 'f32' else 'dequantized'} "
                   f"file vs Quench: {lerr:.2e} (limit {LLAMA_TOL:g})")
            if scheme != "f32":
                lq = llama_logits(out, ids)[0]
                agree = float(np.mean(lq.argmax(-1) == got[0].argmax(-1)))
                print(f"info {name}: llama.cpp on the {scheme} file itself "
                      f"(q8_0 activations): {rel(lq, got[0]):.2e}, argmax "
                      f"equal at {agree:.0%} of {SEQ} positions")

        failures += check_stories(qc, work, a.stories, llama_logits
                                  if llama else None)

        # Errors: one message, exit status 1, no output.
        from export_models import TinyGPT2
        gpt2 = os.path.join(work, "gpt2.onnx")
        export_torch(TinyGPT2(vocab=vocab, d=64), gpt2, False)
        bad = [("GPT-2", gpt2, ["--quant=w4a16"],
                r"--emit=gguf: '.*gpt2\.onnx' is not recognized as a LLaMA "
                r"decoder \(GGUF architecture 'llama'\): the LM head's input "
                r"is not an RMSNorm"),
               ("online rotation", models["hf"],
                ["--quant=w4a16", "--rotate=hadamard", "--rotate-online"],
                r"--emit=gguf does not carry --rotate-online"),
               ("per-channel int8", models["hf"], ["--quant=w8a16"],
                r"layer 'blk\.0\.attn_q\.weight' \(int8 symmetric per "
                r"output channel\): no GGUF block type")]
        for what, model, flags, pattern in bad:
            out = os.path.join(work, "bad.gguf")
            res = run([qc, model, "-o", out, "--emit=gguf"] + flags,
                      ok=False)
            errors = [l for l in res.stderr.splitlines() if "error" in l]
            ok = (res.returncode == 1 and len(errors) == 1 and
                  re.search(pattern, errors[0]) is not None and
                  not os.path.exists(out))
            report(ok, f"error, {what}: "
                   + (errors[0] if errors else f"rc {res.returncode}, "
                      f"stderr {res.stderr!r}"))
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        sys.exit(f"{failures} ONNX-to-GGUF export check(s) failed")
    print("all ONNX-to-GGUF export checks passed")


def check_stories(qc, work, bin_path, llama_logits):
    """stories260K's ONNX export as an F32 GGUF file generates llama2.c's
    greedy tokens, through Quench and through llama.cpp."""
    if not os.path.isfile(bin_path):
        print(f"skip stories260K: {bin_path} is absent")
        return 0
    sys.path.insert(0, os.path.join(SRC, "examples"))
    from stories260k_to_onnx import BOS, EXPECTED_GREEDY
    onnx = os.path.join(work, "stories.onnx")
    run([sys.executable, os.path.join(SRC, "examples",
                                      "stories260k_to_onnx.py"),
         "--bin", bin_path, "-o", onnx, "--dynamic-seq"])
    out = os.path.join(work, "stories.gguf")
    run([qc, onnx, "-o", out, "--emit=gguf"])
    kv = read_kv(out)
    exe = os.path.join(work, "stories_gen")
    run([qc, out, "-o", exe, "--derive-kv-cache"])
    np.save(os.path.join(work, "bos.npy"), np.array([[BOS]], np.int64))
    n = len(EXPECTED_GREEDY)
    run([exe, "--input", "input_ids=" + os.path.join(work, "bos.npy"),
         "--generate", str(n), "--output-dir", os.path.join(work, "out")])
    ours = np.load(os.path.join(work, "out",
                                "generated_ids.npy"))[0].tolist()
    shape = (kv.get("llama.block_count"), kv.get("llama.attention.head_count"),
             kv.get("llama.attention.head_count_kv"))
    ok = ours == EXPECTED_GREEDY and shape == (5, 8, 4)
    print(f"{'ok  ' if ok else 'FAIL'} stories260K ONNX -> F32 GGUF "
          f"(layers, heads, kv heads {shape}): Quench's greedy generation "
          f"from the file {'is' if ours == EXPECTED_GREEDY else 'is not'} "
          f"llama2.c's {n} tokens" + ("" if ok else f": {ours}"))
    if llama_logits:
        _, theirs = llama_logits(out, [BOS], n)
        same = theirs == EXPECTED_GREEDY
        print(f"{'ok  ' if same else 'FAIL'} stories260K: llama.cpp's greedy "
              f"generation from the file {'is' if same else 'is not'} "
              f"llama2.c's {n} tokens" + ("" if same else f": {theirs}"))
        ok = ok and same
    return int(not ok)


if __name__ == "__main__":
    main()
