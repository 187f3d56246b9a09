#!/usr/bin/python3
"""GPTQ vs round to nearest on stories260K's real weights (a simulation).

Loads ../shared/models/stories260K.bin into the PyTorch module of
examples/stories260k_to_onnx.py, records the input Gram matrix X^T X of
every linear layer (wq wk wv wo w1 w3 w2 of each block, and the classifier,
which shares the token embedding: only its use as the output head is
quantized, the embedding lookup stays float as in quench-compile) on
calibration stories sampled from the float model, quantizes each weight
with Quench's own lib/Quant (RTN or GPTQ, through bench/quant_layer.cpp,
built here with the host C++ compiler), and reports

  * the proxy loss tr(dW H dW^T) summed over the layers (GPTQ vs RTN), and
  * the full quantized model's logits against the float model on held-out
    stories: mean KL(p_float || p_quant) over all positions and top-1
    agreement (the metrics of bench/accuracy.py), plus top-1 agreement on
    the positions where the float model's two best logits differ by more
    than 0.1 (about 10 % of the sampled positions are near-ties that any
    perturbation flips; see docs/quantization.md), and, as yardsticks, the
    model with its weights rounded to f16 and to bf16.

The simulation runs the float PyTorch model with dequantized weights; it is
what the compiled quench.matmul_nbits computes up to float summation order.
Every scheme runs RTN and four GPTQ variants: natural or act order, with
Gram matrices from the float model ("one-shot") or "sequential", layer by
layer from the model whose earlier layers are already quantized (the
paper's procedure). --keep-float-blocks N leaves the first N transformer
blocks float (mixed precision).

Usage:
  bench/gptq_stories.py [--bin PATH] [--calib-seqs 16] [--eval-seqs 64]
                        [--seq 32] [--schemes w8,w8g32,w4g32,...]
                        [--keep-float-blocks N] [--markdown FILE]
Needs Debian's /usr/bin/python3 (torch, numpy) and a C++17 compiler.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))
import stories260k_to_onnx as s  # noqa: E402
sys.path.insert(0, os.path.join(ROOT, "bench"))
import accuracy  # noqa: E402

# name -> (bits, group size (0: per output channel), symmetric)
SCHEMES = {
    "w8": (8, 0, True),
    "w8g64": (8, 64, True),
    "w8g32": (8, 32, True),
    "w8g16": (8, 16, True),
    "w8g8": (8, 8, True),
    "w4g32": (4, 32, True),
    "w4g32a": (4, 32, False),
}


def build_tool(work):
    exe = os.path.join(work, "quant_layer")
    cxx = os.environ.get("CXX", "c++")
    cmd = [cxx, "-std=c++17", "-O2", "-I", os.path.join(ROOT, "include"),
           os.path.join(ROOT, "bench", "quant_layer.cpp"),
           os.path.join(ROOT, "lib", "Quant", "RTN.cpp"),
           os.path.join(ROOT, "lib", "Quant", "GPTQ.cpp"), "-o", exe]
    subprocess.run(cmd, check=True)
    return exe


def sample_stories(model, n, seq, seed):
    return torch.tensor(np.stack(accuracy.sample_stories(model, n, seq, seed)),
                        dtype=torch.long)


def layer_list(model):
    """(name, module attribute owner, attribute) in forward order; the head
    last (owner None: the classifier that shares the embedding)."""
    layers = []
    for i, blk in enumerate(model.layers):
        for a in ("wq", "wk", "wv", "wo", "w1", "w3", "w2"):
            layers.append(("layers.%d.%s" % (i, a), blk, a))
    layers.append(("head", None, None))
    return layers


def weight_of(model, owner, attr):
    if owner is None:
        return (model.output.weight if model.output is not None
                else model.tok_embeddings.weight)
    return getattr(owner, attr).weight


def set_weight(model, owner, attr, w):
    t = torch.from_numpy(w)
    if owner is None:
        # The classifier gets its own (quantized) weight; the embedding
        # lookup keeps the float table.
        model.output = s.linear(w.copy())
    else:
        getattr(owner, attr).weight = torch.nn.Parameter(t.clone())


def grams(model, ids, wanted=None):
    """{layer name: X^T X (float64)} of the inputs of the linears."""
    acts = {}
    hooks = []
    for name, owner, attr in layer_list(model):
        if wanted is not None and name not in wanted:
            continue
        if owner is None:
            mod = model.norm  # the head's input is the final norm's output
        else:
            mod = getattr(owner, attr)

        def hook(m, inp, out, name=name, head=owner is None):
            x = out if head else inp[0]
            x = x.reshape(-1, x.shape[-1]).double()
            acts[name] = acts.get(name, 0) + (x.T @ x).numpy()
        hooks.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        model(ids)
    for h in hooks:
        h.remove()
    return acts


def quantize(tool, work, w, h, bits, group, sym, algo, act_order):
    rows, cols = w.shape
    wp, hp, op = (os.path.join(work, n) for n in ("w.f32", "h.f64", "q.f32"))
    np.ascontiguousarray(w, dtype="<f4").tofile(wp)
    np.ascontiguousarray(h, dtype="<f8").tofile(hp)
    res = subprocess.run([tool, wp, hp, op, str(rows), str(cols), str(bits),
                          str(group), str(int(sym)), algo,
                          str(int(act_order))],
                         check=True, capture_output=True, text=True)
    f = res.stdout.split()
    q = np.fromfile(op, dtype="<f4").reshape(rows, cols)
    return q, float(f[1]), float(f[3])


GAP = 0.1  # top-2 logit gap of the float model above which top-1 counts


def evaluate(model, ref_logp, ids):
    """(mean KL, top-1 agreement, top-1 agreement where the float model's
    top-2 log-probability gap exceeds GAP)."""
    with torch.no_grad():
        logp = F.log_softmax(model(ids).double(), -1)
    kl = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    top1 = (ref_logp.argmax(-1) == logp.argmax(-1)).double()
    best2 = ref_logp.topk(2, -1).values
    sure = (best2[..., 0] - best2[..., 1]) > GAP
    return float(kl.mean()), float(top1.mean()), float(top1[sure].mean())


def run_scheme(cfg, weights, tool, work, calib, eval_ids, ref_logp, scheme,
               algo, act_order, sequential, float_grams, float_blocks):
    bits, group, sym = SCHEMES[scheme]
    model = s.Llama2c(cfg, weights).eval()
    proxy = 0.0
    for name, owner, attr in layer_list(model):
        if owner is not None and list(model.layers).index(owner) < float_blocks:
            continue  # mixed precision: the first blocks stay float
        w = weight_of(model, owner, attr).detach().numpy().astype(np.float32)
        if sequential and algo == "gptq":
            h = grams(model, calib, {name})[name]
        else:
            h = float_grams[name]
        q, _, _ = quantize(tool, work, w, h, bits, group, sym, algo,
                                  act_order)
        # The proxy losses against the float model's Gram matrices, so that
        # all variants are compared on the same yardstick.
        dq = (w.astype(np.float64) - q)
        proxy += float(np.einsum("ij,jk,ik->", dq, float_grams[name], dq))
        set_weight(model, owner, attr, q)
    return (proxy,) + evaluate(model, ref_logp, eval_ids)


def rounded_model(cfg, weights, dtype):
    """The float model with every linear weight (and the classifier)
    rounded to `dtype` (a torch dtype)."""
    model = s.Llama2c(cfg, weights).eval()
    for name, owner, attr in layer_list(model):
        w = weight_of(model, owner, attr).detach()
        set_weight(model, owner, attr, w.to(dtype).float().numpy())
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=s.default_checkpoint())
    ap.add_argument("--calib-seqs", type=int, default=16)
    ap.add_argument("--eval-seqs", type=int, default=64)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--schemes", default="w8,w8g32,w4g32")
    ap.add_argument("--keep-float-blocks", type=int, default=0,
                    help="leave the first N transformer blocks float")
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args(argv)
    for sc in args.schemes.split(","):
        if sc not in SCHEMES:
            ap.error("unknown scheme '%s' (known: %s)" %
                     (sc, ", ".join(SCHEMES)))
    try:
        cfg, weights = s.read_checkpoint(args.bin)
    except s.CheckpointError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    torch.manual_seed(0)
    base = s.Llama2c(cfg, weights).eval()
    # Held-out stories: the ones bench/accuracy.py uses (seed 0);
    # calibration stories from another seed.
    eval_ids = sample_stories(base, args.eval_seqs, args.seq, 0)
    calib = sample_stories(base, args.calib_seqs, args.seq, 1)
    with torch.no_grad():
        ref_logp = F.log_softmax(base(eval_ids).double(), -1)
    float_grams = grams(base, calib)
    rows = []

    def report(sc, label, proxy, kl, top1, sure):
        rows.append((sc, label, proxy, kl, top1, sure))
        print("%-7s %-26s proxy %.4e  KL %.3e  top-1 %6.2f %%  (gap > %g: "
              "%6.2f %%)" % (sc, label, proxy, kl, 100 * top1, GAP,
                             100 * sure), flush=True)

    best2 = ref_logp.topk(2, -1).values
    print("positions whose float top-2 log-probabilities differ by < %g: "
          "%.1f %%" % (GAP, 100 * float(
              ((best2[..., 0] - best2[..., 1]) <= GAP).double().mean())))
    for dtype, label in ((torch.float16, "f16"), (torch.bfloat16, "bf16")):
        report("-", "weights rounded to " + label, float("nan"),
               *evaluate(rounded_model(cfg, weights, dtype), ref_logp,
                         eval_ids))
    with tempfile.TemporaryDirectory() as work:
        tool = build_tool(work)
        for sc in args.schemes.split(","):
            for algo, act, seq in (("rtn", False, False),
                                   ("gptq", False, False),
                                   ("gptq", True, False),
                                   ("gptq", False, True),
                                   ("gptq", True, True)):
                label = algo
                if act:
                    label += " act-order"
                if seq:
                    label += " sequential"
                report(sc, label, *run_scheme(
                    cfg, weights, tool, work, calib, eval_ids, ref_logp, sc,
                    algo, act, seq, float_grams, args.keep_float_blocks))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("| scheme | algorithm | proxy loss | mean KL | top-1 | "
                    "top-1 (gap > %g) |\n"
                    "| --- | --- | ---: | ---: | ---: | ---: |\n" % GAP)
            for sc, label, proxy, kl, top1, sure in rows:
                f.write("| %s | %s | %.3e | %.2e | %.2f %% | %.2f %% |\n" % (
                    sc, label, proxy, kl, 100 * top1, 100 * sure))
    return 0


if __name__ == "__main__":
    sys.exit(main())
