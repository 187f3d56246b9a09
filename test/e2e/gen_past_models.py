#!/usr/bin/python3
"""Writes tiny random-weight decoder models with and without past key/values,
and their greedy references, for the text-generation e2e tests.

Two styles, each from the project's own PyTorch modules:
  llama  examples/stories260k_to_onnx.py's Llama2c: RMSNorm, rotary
         embeddings on interleaved pairs gathered at position_ids, GQA
         (4 heads, 2 kv heads, head_dim 16), SwiGLU, untied classifier;
         additive float mask (Hugging Face LLaMA's form).
  gpt2   examples/chargpt/chargpt.py's CharGPT: MHA (4 heads, head_dim 16),
         learned position embeddings gathered at position_ids, fused qkv
         with biases, LayerNorm, erf GELU, tied head; mask as Hugging Face
         GPT-2 (causal buffer sliced by the past length, Where, then the
         attention_mask term added).
Both: dim 64, 2 layers, vocabulary 96, at most 64 positions, opset 17.

For each style NAME, OUTDIR receives
  NAME_past.onnx        with past key/values, examples/decoder_past.py's
                        convention (input_ids [1, seq], attention_mask
                        [1, past_seq+seq], position_ids [1, seq],
                        past_key_values.{0,1}.key|value [1, kv, past_seq, 16]
                        -> logits [1, seq, 96], present.{0,1}.key|value
                        [1, kv, past_seq+seq, 16]; kv = 2 (llama), 4 (gpt2))
  NAME.onnx             its twin without past, the same weights: the usual
                        export of forward, input_ids [1, seq] -> logits
                        [1, seq, 96] (seq dynamic)
  NAME.prompt_ids.npy   int64 [1, 5] seeded prompt
  NAME.greedy_ids.npy   int64 [1, 16] greedy continuation computed WITHOUT a
                        cache (whole sequence every step, argmax over the
                        vocabulary of the last position)
  NAME.logits.npy       float32 [1, 20, 96] PyTorch's logits of the no-past
                        model on prompt + greedy[:-1] (row j = the logits
                        that chose token j+1; for debugging step mismatches)
and manifest.json (dimensions, names, the smallest top-1/top-2 margin of
each greedy reference).

Checks before writing each model (exit 1 otherwise): greedy with the cache
(prefill + decode steps of the with-past PyTorch module) == greedy without;
the with-past ONNX graph == PyTorch on a prefill (past 0) and two decode
steps; the no-past ONNX graph == PyTorch's logits on the 20-token sequence
(traced at another length), relative 1e-4. The ONNX graphs are evaluated by
onnx.reference when the installed onnx has it, else by decoder_past's NumPy
evaluator (Debian's onnx 1.12). The prompt is the first seeded one whose
greedy path has top-1/top-2 margins >= 0.05 and at least 5 distinct ids
(weights are scaled so that logits are far from uniform).

Usage: gen_past_models.py OUTDIR [--only llama|gpt2]
Needs Debian's /usr/bin/python3 (torch, onnx, numpy). Takes a few seconds.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "examples"))
sys.path.insert(0, os.path.join(REPO, "examples", "chargpt"))

import torch  # noqa: E402

import chargpt  # noqa: E402
import decoder_past  # noqa: E402
import stories260k_to_onnx as stories  # noqa: E402

DIM, LAYERS, HEADS, VOCAB, MAX_POS = 64, 2, 4, 96, 64
LLAMA_KV_HEADS, LLAMA_HIDDEN = 2, 176
PROMPT_LEN, N_GEN = 5, 16
MIN_MARGIN, MIN_DISTINCT = 0.05, 5
OPSET = 17
TOL = 1e-4


def llama_model(seed):
    """stories260k_to_onnx.Llama2c with seeded random weights."""
    rng = np.random.default_rng(seed)
    hd = DIM // HEADS
    kv = LLAMA_KV_HEADS * hd
    L = LAYERS

    def linear(*shape):  # rows of [out, in] keep the input's scale
        return (rng.standard_normal(shape) / np.sqrt(shape[-1])) \
            .astype(np.float32)

    def gain(*shape):
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    w = dict(tok_embeddings=rng.standard_normal((VOCAB, DIM))
             .astype(np.float32),
             rms_att=gain(L, DIM), wq=linear(L, DIM, DIM),
             wk=linear(L, kv, DIM), wv=linear(L, kv, DIM),
             wo=linear(L, DIM, DIM), rms_ffn=gain(L, DIM),
             w1=linear(L, LLAMA_HIDDEN, DIM), w2=linear(L, DIM, LLAMA_HIDDEN),
             w3=linear(L, LLAMA_HIDDEN, DIM), rms_final=gain(DIM),
             wcls=linear(VOCAB, DIM) * 4.0)
    cfg = dict(dim=DIM, hidden_dim=LLAMA_HIDDEN, n_layers=L, n_heads=HEADS,
               n_kv_heads=LLAMA_KV_HEADS, vocab_size=VOCAB, seq_len=MAX_POS,
               shared_classifier=False)
    model = stories.Llama2c(cfg, w, use_trilu=True).eval()
    return model, stories.Llama2cWithPast(model).eval(), LLAMA_KV_HEADS


def gpt2_model(seed):
    """chargpt.CharGPT with seeded random weights. With a tied head and
    small random weights the greedy path repeats one token (the residual
    stream is the token's own embedding); position embeddings twice the
    token embeddings and q/k/v weights 3x the scale that keeps activations'
    size (sharp attention) make it vary with the prompt instead."""
    torch.manual_seed(seed)
    model = chargpt.CharGPT(vocab_size=VOCAB, block_size=MAX_POS, n_embd=DIM,
                            n_head=HEADS, n_layer=LAYERS)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and name.endswith("weight"):  # LayerNorm gains
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif name == "wte.weight":
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif name == "wpe.weight":
                p.copy_(torch.randn(p.shape, generator=g))
            else:  # nn.Linear [out, in]
                scale = 3.0 if name.endswith("qkv.weight") else 1.0
                p.copy_(scale * torch.randn(p.shape, generator=g) /
                        p.shape[1] ** 0.5)
    model.eval()
    return model, chargpt.CharGPTWithPast(model).eval(), HEADS


STYLES = {"llama": (llama_model, 1), "gpt2": (gpt2_model, 2)}


def pick_prompt(model, seed):
    """The first seeded prompt whose greedy path is clear and varied."""
    for attempt in range(100):
        g = torch.Generator().manual_seed(seed * 1000 + attempt)
        prompt = [int(i) for i in torch.randint(0, VOCAB, (PROMPT_LEN,),
                                                generator=g)]
        ids, margins = decoder_past.greedy_full(model, prompt, N_GEN)
        if min(margins) >= MIN_MARGIN and len(set(ids)) >= MIN_DISTINCT:
            return prompt
    raise ValueError("no seeded prompt gives a greedy path with margins >= "
                     "%g and %d distinct ids" % (MIN_MARGIN, MIN_DISTINCT))


def export_no_past(model, path, seq_logits, sequence):
    """The twin without past: forward(input_ids) -> logits, seq dynamic,
    traced at 7 tokens and checked against PyTorch at len(sequence)."""
    import warnings
    import onnx
    tmp = path + ".tmp"
    example = torch.zeros(1, 7, dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(model, (example,), tmp,
                              input_names=["input_ids"],
                              output_names=["logits"],
                              dynamic_axes={"input_ids": {1: "seq"},
                                            "logits": {1: "seq"}},
                              opset_version=OPSET, do_constant_folding=True)
    try:
        m = onnx.load(tmp)
        onnx.checker.check_model(m)
        got = decoder_past.run_onnx(m, [np.array([sequence], np.int64)])[0]
        err = float(np.max(np.abs(got - seq_logits))) / \
            max(1.0, float(np.max(np.abs(seq_logits))))
        if not err <= TOL:
            raise ValueError("%s: ONNX logits differ from PyTorch's by %.3g "
                             "(relative), more than %g" % (path, err, TOL))
    except BaseException:
        os.unlink(tmp)
        raise
    os.replace(tmp, path)
    return err


def write_style(name, out_dir, log):
    make, seed = STYLES[name]
    model, past_model, kv_heads = make(seed)
    hd = DIM // HEADS
    prompt = pick_prompt(model, seed)
    base = os.path.join(out_dir, name)
    ids, margins = decoder_past.export_checked(
        model, past_model, base + "_past.onnx", LAYERS, kv_heads, hd, VOCAB,
        prompt, N_GEN, OPSET, log=lambda m: log("%s: %s" % (name, m)))
    sequence = prompt + ids[:-1]
    with torch.no_grad():
        seq_logits = model(torch.tensor([sequence])).numpy()
    err = export_no_past(model, base + ".onnx", seq_logits, sequence)
    log("%s: ONNX without past == PyTorch on %d tokens: OK (max relative "
        "difference %.2g)" % (name, len(sequence), err))
    np.save(base + ".prompt_ids.npy", np.array([prompt], np.int64))
    np.save(base + ".greedy_ids.npy", np.array([ids], np.int64))
    np.save(base + ".logits.npy", seq_logits.astype(np.float32))
    log("%s: prompt %s -> greedy %s" % (name, prompt, ids))
    return dict(with_past=name + "_past.onnx", without_past=name + ".onnx",
                prompt_ids=name + ".prompt_ids.npy",
                greedy_ids=name + ".greedy_ids.npy",
                logits=name + ".logits.npy", n_layers=LAYERS, n_heads=HEADS,
                kv_heads=kv_heads, head_dim=hd, dim=DIM, vocab=VOCAB,
                max_positions=MAX_POS, opset=OPSET, prompt=prompt,
                greedy=ids, min_margin=round(min(margins), 4))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--only", choices=sorted(STYLES), action="append",
                    help="write only this style (repeatable)")
    args = ap.parse_args(argv)
    t0 = time.time()
    torch.set_num_threads(1)
    os.makedirs(args.out_dir, exist_ok=True)
    manifest = {}
    try:
        for name in args.only or sorted(STYLES):
            manifest[name] = write_style(name, args.out_dir, print)
    except ValueError as e:
        print("gen_past_models: error: %s" % e, file=sys.stderr)
        return 1
    path = os.path.join(args.out_dir, "manifest.json")
    with open(path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(path + ".tmp", path)
    print("gen_past_models: wrote %s in %s (%.1f s)" % (
        ", ".join(sorted(manifest)), args.out_dir, time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
