#!/usr/bin/python3
"""Accuracy of quantized char-GPT executables against the float one.

Runs every executable (built by quench-compile from chargpt.t32.onnx) on
the same held-out windows of the KJV text (the last 5 % that training never
sees, chargpt.py split_data) and compares each quantized model's logits with
the float model's: mean KL(p_float || p_quant) per position (nats) and top-1
agreement of the next-character predictions.

Usage:
  quant_eval.py --model-dir DIR --float EXE --quant NAME=EXE [...]
                [--sequences 64] [--json OUT.json]
DIR holds chargpt.pt (for the vocabulary), written by `chargpt.py train`.
Needs Debian's python3 with numpy and torch, and bible-kjv.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chargpt  # noqa: E402


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def run_exe(exe, tokens, tmp, input_name="tokens", output_name="logits"):
    path = os.path.join(tmp, "t.npy")
    np.save(path, tokens[None, :].astype(np.int64))
    subprocess.run([os.path.abspath(exe), "--input", input_name + "=" + path,
                    "--output-dir", tmp], check=True, stdout=subprocess.DEVNULL)
    return np.load(os.path.join(tmp, output_name + ".npy"))[0].astype(
        np.float64)


def text_windows(model_dir, count, block, seed=0, part="held-out"):
    """`count` random windows of `block` token ids from the KJV text's
    training split (part="train") or held-out split (part="held-out")."""
    import torch
    ckpt = torch.load(os.path.join(model_dir, "chargpt.pt"),
                      map_location="cpu", weights_only=False)
    ids = chargpt.encode(chargpt.load_kjv_text(), ckpt["vocab"])
    train, val = chargpt.split_data(ids)
    data = train if part == "train" else val
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(data) - block, size=count)
    return [data[s:s + block] for s in starts]


def held_out_windows(model_dir, count, block, seed=0):
    return text_windows(model_dir, count, block, seed)


def compare(float_exe, quant_exes, windows, input_name="tokens", gap=0.1,
            perplexity=None):
    """{name: (mean KL, top-1 agreement, top-1 agreement where the float
    model's two best log-probabilities differ by more than `gap`)} over all
    positions of windows. The last number leaves out near-ties, where any
    perturbation (even f16 rounding of the weights) flips the argmax.
    `perplexity` (a dict), when given, gets {name: perplexity of the
    windows' own next tokens} for every model and "float": exp of the mean
    negative log-likelihood of token t + 1 at position t."""
    kl = {name: [] for name in quant_exes}
    agree = {name: [] for name in quant_exes}
    nll = {name: [] for name in list(quant_exes) + ["float"]}
    decisive = []

    def next_token_nll(logp, w):
        return -logp[np.arange(len(w) - 1), w[1:]]

    with tempfile.TemporaryDirectory() as tmp:
        for w in windows:
            w = np.asarray(w).reshape(-1)
            ref = log_softmax(run_exe(float_exe, w, tmp, input_name))
            nll["float"].append(next_token_nll(ref, w))
            top2 = np.sort(ref, axis=-1)[..., -2:]
            decisive.append((top2[..., 1] - top2[..., 0]) > gap)
            for name, exe in quant_exes.items():
                got = log_softmax(run_exe(exe, w, tmp, input_name))
                kl[name].append((np.exp(ref) * (ref - got)).sum(-1))
                agree[name].append(ref.argmax(-1) == got.argmax(-1))
                nll[name].append(next_token_nll(got, w))
    if perplexity is not None:
        for name, values in nll.items():
            perplexity[name] = float(np.exp(np.concatenate(values).mean()))
    d = np.concatenate(decisive)
    out = {}
    for name in quant_exes:
        a = np.concatenate(agree[name])
        out[name] = (float(np.concatenate(kl[name]).mean()), float(a.mean()),
                     float(a[d].mean()) if d.any() else 1.0)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--float", required=True, dest="float_exe")
    ap.add_argument("--quant", action="append", default=[],
                    metavar="NAME=EXE")
    ap.add_argument("--sequences", type=int, default=64)
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--json")
    a = ap.parse_args()
    quant = dict(q.split("=", 1) for q in a.quant)
    windows = held_out_windows(a.model_dir, a.sequences, a.block)
    res = compare(a.float_exe, quant, windows)
    print("%-22s %14s %10s" % ("model", "mean KL (nats)", "top-1"))
    for name, (k, t, _) in res.items():
        print("%-22s %14.2e %9.2f%%" % (name, k, 100 * t))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"sequences": a.sequences, "block": a.block,
                       "results": {n: {"mean_kl": k, "top1": t}
                                   for n, (k, t, _) in res.items()}}, f,
                      indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
