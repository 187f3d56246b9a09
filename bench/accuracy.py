#!/usr/bin/python3
"""Accuracy of weight quantization on the project's two reference models.

For the trained char-GPT (examples/chargpt: needs CHARGPT_DIR/chargpt.pt from
`chargpt.py train`) and stories260K (../shared/models/stories260K.bin,
converted by examples/stories260k_to_onnx.py), compiles the float model and
each quantization scheme with quench-compile, runs all executables on the
same held-out sequences and reports the mean KL divergence KL(p_float ||
p_quant) of the next-token distributions and the top-1 agreement with the
float model, over every position:
  * char-GPT: windows of the KJV text's held-out 5 % (never trained on);
  * stories260K: stories sampled from the float PyTorch model (temperature
    1, from BOS; seeded), which follow its training distribution.
A model whose inputs are missing is skipped (and said so).

Usage:
  bench/accuracy.py [--build build] [--work DIR] [--chargpt-dir build/chargpt]
                    [--stories PATH] [--sequences 64] [--markdown docs/accuracy.md]
                    [--check] [--all] [--sparsity] [--only REGEX]
                    [--plot DIR]
--all adds EXTRA_SCHEMES (HQQ, AWQ, W3A16, bits budgets, outlier splitting,
int4 embeddings, rotation; not in the e2e test); --only (or --schemes)
keeps only the schemes whose label matches REGEX (Python re.search), to
measure a few without compiling all; --plot DIR writes one PNG per model:
KL against bits per weight per method;
the table's bits per weight is the size report's (codes, scales, zero
points of the linear layers);
--sparsity measures SPARSITY_SCHEMES (pruning, docs/sparsity.md) instead,
with the density of the linear weights;
--markdown (re)writes the accuracy document with the table and the command;
--check exits 1 unless every measured model meets the bounds in BOUNDS
(char-GPT W8A16: top-1 >= 99 %, KL <= 1e-3; see BOUNDS for the others).
"""

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples", "chargpt"))
sys.path.insert(0, os.path.join(ROOT, "examples"))
import quant_eval  # noqa: E402

PY = "/usr/bin/python3"
# --markdown keeps what follows this line of the document (sections
# measured with other commands, each stating its own).
KEEP_MARKER = ("<!-- Sections below are kept by bench/accuracy.py "
               "--markdown; each states its command. -->")
SCHEMES = [  # (label, quench-compile flags, needs calibration)
    ("W8A16 per channel", ["--quant=w8a16"], False),
    ("W8A16 per channel GPTQ", ["--quant=w8a16", "--algo=gptq"], True),
    ("W4A16 g32", ["--quant=w4a16", "--group-size=32"], False),
    ("W4A16 g32 GPTQ", ["--quant=w4a16", "--group-size=32", "--algo=gptq"],
     True),
    ("W4A16 g128", ["--quant=w4a16", "--group-size=128"], False),
    ("W4A16 g32 HQQ", ["--quant=w4a16", "--group-size=32", "--algo=hqq"],
     False),
    ("W4A16 g32 AWQ", ["--quant=w4a16", "--group-size=32", "--algo=awq"],
     True),
    ("W8A8 static", ["--quant=w8a8"], True),
    ("W8A8 static SmoothQuant 0.5", ["--quant=w8a8", "--smooth=0.5"], True),
    ("W8A8 static SmoothQuant auto", ["--quant=w8a8", "--smooth=auto"],
     True),
    ("W8A8 dynamic", ["--quant=w8a8-dynamic"], False),
]
# Measured with --all only (the e2e test keeps to SCHEMES): HQQ (data-free,
# asymmetric) against RTN with the same zero points and GPTQ, AWQ (alone
# and with GPTQ; also with scales not rounded to powers of two) against
# both, at 4 and 3 bits, and mixed precision under a bits budget against
# the uniform schemes of the same bits (docs/quantization.md).
EXTRA_SCHEMES = [
    ("W4A16 g32 asym", ["--quant=w4a16", "--group-size=32", "--asymmetric"],
     False),
    ("W4A16 g128 asym", ["--quant=w4a16", "--group-size=128",
                         "--asymmetric"], False),
    ("W4A16 g128 HQQ", ["--quant=w4a16", "--group-size=128", "--algo=hqq"],
     False),
    ("W4A16 g128 GPTQ", ["--quant=w4a16", "--group-size=128", "--algo=gptq"],
     True),
    ("W4A16 g32 AWQ, exact scales", ["--quant=w4a16", "--group-size=32",
                                     "--algo=awq", "--awq-power-of-two=false"],
     True),
    ("W4A16 g32 AWQ+GPTQ", ["--quant=w4a16", "--group-size=32",
                            "--algo=awq+gptq"], True),
    ("W4A16 g128 AWQ", ["--quant=w4a16", "--group-size=128", "--algo=awq"],
     True),
    ("W4A16 g128 AWQ+GPTQ", ["--quant=w4a16", "--group-size=128",
                             "--algo=awq+gptq"], True),
    ("W4A16 g128 AWQ, exact scales", ["--quant=w4a16", "--group-size=128",
                                      "--algo=awq",
                                      "--awq-power-of-two=false"], True),
    ("W3A16 g32", ["--quant=w3a16", "--group-size=32"], False),
    ("W3A16 g32 asym", ["--quant=w3a16", "--group-size=32", "--asymmetric"],
     False),
    ("W3A16 g32 GPTQ", ["--quant=w3a16", "--group-size=32", "--algo=gptq"],
     True),
    ("W3A16 g32 HQQ", ["--quant=w3a16", "--group-size=32", "--algo=hqq"],
     False),
    ("W3A16 g32 AWQ", ["--quant=w3a16", "--group-size=32", "--algo=awq"],
     True),
    ("W3A16 g32 AWQ+GPTQ", ["--quant=w3a16", "--group-size=32",
                            "--algo=awq+gptq"], True),
    ("W3A16 g32 AWQ, exact scales", ["--quant=w3a16", "--group-size=32",
                                     "--algo=awq",
                                     "--awq-power-of-two=false"], True),
    ("budget 4.5", ["--quant=w4a16", "--bits-budget=4.5"], True),
    ("budget 3.5", ["--quant=w4a16", "--bits-budget=3.5"], True),
    ("budget 4.5, no calibration", ["--quant=w4a16", "--bits-budget=4.5"],
     False),
    # Embedding tables quantized too (the bits column counts linears only).
    ("W8A16 per channel, int8 embeddings",
     ["--quant=w8a16", "--quant-embeddings=int8"], False),
    ("W8A16 per channel, int4 embeddings",
     ["--quant=w8a16", "--quant-embeddings=int4"], False),
    ("W8A16 per channel, int4 g16 embeddings",
     ["--quant=w8a16", "--quant-embeddings=int4", "--embedding-group-size=16"],
     False),
    ("W8A16 per channel, int4 g8 embeddings",
     ["--quant=w8a16", "--quant-embeddings=int4", "--embedding-group-size=8"],
     False),
    ("W4A16 g32, int4 embeddings",
     ["--quant=w4a16", "--group-size=32", "--quant-embeddings=int4"], False),
    # Outlier splitting (LLM.int8(), docs/quantization.md "Outlier
    # splitting"): the channels chosen from the calibration maxima stay in
    # float; dynamic schemes with outliers are calibrated for that choice.
    ("W8A8 static outliers auto", ["--quant=w8a8", "--outliers=auto"], True),
    ("W8A8 static outliers 4", ["--quant=w8a8", "--outliers=4"], True),
    ("W8A8 static outliers 8", ["--quant=w8a8", "--outliers=8"], True),
    ("W8A8 static outliers auto T2",
     ["--quant=w8a8", "--outliers=auto", "--outlier-threshold=2"], True),
    ("W8A8 static SmoothQuant auto outliers auto",
     ["--quant=w8a8", "--smooth=auto", "--outliers=auto"], True),
    ("W8A8 static SmoothQuant auto outliers 4",
     ["--quant=w8a8", "--smooth=auto", "--outliers=4"], True),
    ("W8A8 static SmoothQuant auto outliers auto T2",
     ["--quant=w8a8", "--smooth=auto", "--outliers=auto",
      "--outlier-threshold=2"], True),
    ("W8A8 dynamic outliers auto", ["--quant=w8a8-dynamic",
                                    "--outliers=auto"], True),
    ("W8A8 dynamic outliers 4", ["--quant=w8a8-dynamic", "--outliers=4"],
     True),
    ("W8A8 dynamic outliers 8", ["--quant=w8a8-dynamic", "--outliers=8"],
     True),
    ("W8A8 dynamic outliers auto T2",
     ["--quant=w8a8-dynamic", "--outliers=auto", "--outlier-threshold=2"],
     True),
    # Residual-stream rotation (--rotate=hadamard, docs/quantization.md
    # "Rotation"); LayerNorm streams (the char-GPT) are centered first.
    ("W4A16 g32 + rotation", ["--quant=w4a16", "--group-size=32",
                              "--rotate=hadamard"], False),
    ("W4A16 g32 GPTQ + rotation", ["--quant=w4a16", "--group-size=32",
                                   "--algo=gptq", "--rotate=hadamard"], True),
    ("W8A8 dynamic + rotation", ["--quant=w8a8-dynamic", "--rotate=hadamard"],
     False),
    ("W4A16 g32 AWQ+GPTQ + rotation", ["--quant=w4a16", "--group-size=32",
                                       "--algo=awq+gptq",
                                       "--rotate=hadamard"], True),
    ("W8A16 per channel GPTQ + rotation", ["--quant=w8a16", "--algo=gptq",
                                          "--rotate=hadamard"], True),
    ("W8A16 g32 GPTQ", ["--quant=w8a16", "--group-size=32", "--algo=gptq"],
     True),
    ("W8A16 g32 GPTQ + rotation", ["--quant=w8a16", "--group-size=32",
                                   "--algo=gptq", "--rotate=hadamard"], True),
    ("W3A16 g32 + rotation", ["--quant=w3a16", "--group-size=32",
                              "--rotate=hadamard"], False),
    ("W4A16 g32 + online rotation", ["--quant=w4a16", "--group-size=32",
                                     "--rotate=hadamard", "--rotate-online"],
     False),
    ("W8A8 dynamic + online rotation", ["--quant=w8a8-dynamic",
                                        "--rotate=hadamard",
                                        "--rotate-online"], False),
    # Prefill activations (docs/accuracy.md, "Int8 activations for
    # prefill"): the default (auto) quantizes them to int8 from 16 rows up
    # on VNNI hosts for 4-bit weights only; these rows measure the other
    # choice, the 16-bit form for 4 bits and int8 for W8A16.
    ("W8A16 per channel, int8 prefill", ["--quant=w8a16",
                                         "--prefill-activations=int8"],
     False),
    ("W4A16 g32, 16-bit prefill", ["--quant=w4a16", "--group-size=32",
                                   "--prefill-activations=float"], False),
    ("W4A16 g128, 16-bit prefill", ["--quant=w4a16", "--group-size=128",
                                    "--prefill-activations=float"], False),
    ("W4A16 g32 asym, 16-bit prefill", ["--quant=w4a16", "--group-size=32",
                                        "--asymmetric",
                                        "--prefill-activations=float"], False),
    ("W4A16 g32 GPTQ, 16-bit prefill", ["--quant=w4a16", "--group-size=32",
                                        "--algo=gptq",
                                        "--prefill-activations=float"], True),
]
# Pruning (docs/sparsity.md), measured with --sparsity only (instead of the
# quantization schemes): magnitude against SparseGPT at 50 % unstructured,
# 2:4 and 4:8, in float and joint with W8A16 and W4A16 g32 (magnitude
# pruning then RTN; SparseGPT then GPTQ with the mask fixed). The output
# heads (the char-GPT's classifier, stories260K's tied embedding) stay dense
# (--sparsity-head is off).
SPARSITY_SCHEMES = []
for _pattern in ["unstructured:0.5", "2:4", "4:8"]:
    for _qlabel, _qflags in [("float", []), ("W8A16", ["--quant=w8a16"]),
                             ("W4A16 g32", ["--quant=w4a16",
                                            "--group-size=32"])]:
        SPARSITY_SCHEMES.append(
            ("%s %s magnitude" % (_pattern, _qlabel),
             ["--sparsity=" + _pattern] + _qflags, False))
        SPARSITY_SCHEMES.append(
            ("%s %s SparseGPT" % (_pattern, _qlabel),
             ["--sparsity=" + _pattern, "--prune=sparsegpt"] + _qflags +
             (["--algo=gptq"] if _qflags else []), True))
# With --sparsity, on stories260K only: milder unstructured sparsity (it
# does not survive 50 %).
SPARSITY_MODEL_SCHEMES = {
    "stories260K": [
        ("unstructured:%s float %s" % (f, label),
         ["--sparsity=unstructured:" + f] +
         (["--prune=sparsegpt"] if calibrated else []), calibrated)
        for f in ["0.1", "0.25"]
        for label, calibrated in [("magnitude", False), ("SparseGPT", True)]],
}
# Schemes measured on one model only: stories260K with its two most
# sensitive blocks (0 and 1) kept in float and int8 groups of 8 with GPTQ
# elsewhere, the mixed precision that meets the KL bound there
# (docs/quantization.md "GPTQ").
STORIES_RECIPE = {"version": 1,
                  "layers": [{"match": "/layers.[01]/*", "skip": True}]}
MODEL_SCHEMES = {
    "stories260K": [("W8A16 g8 GPTQ, blocks 0-1 float",
                     ["--quant=w8a16", "--group-size=8", "--algo=gptq",
                      "--quant-recipe={recipe}"], True)],
}
# (min top-1, max mean KL) asserted by --check, per model and scheme; a
# third number, when present, is the minimum top-1 over the decisive
# positions (the float model's two best log-probabilities more than 0.1
# apart). The char-GPT's W8A16 bound is issue #4's. stories260K cannot meet
# it with int8 weights on every layer (it needs ~10.5-bit weights; even f16
# weights agree on only 98.3 % of its positions, the rest being near-ties):
# the KL bound is asserted on the mixed-precision scheme, with the
# top-1 over decisive positions; the others are regression bounds around
# what was measured (docs/accuracy.md, docs/quantization.md).
BOUNDS = {
    "char-GPT (2.7M)": {"W8A16 per channel": (0.99, 1e-3),
                        "W8A16 per channel GPTQ": (0.99, 1e-3),
                        "W4A16 g32": (0.93, 1e-2),
                        "W4A16 g32 HQQ": (0.94, 5e-3),
                        "W4A16 g32 AWQ": (0.94, 5e-3),
                        "W8A8 static": (0.97, 3e-3),
                        "W8A8 static SmoothQuant auto": (0.97, 3e-3),
                        "W8A8 dynamic": (0.98, 2e-3)},
    "stories260K": {"W8A16 per channel": (0.80, 5e-2),
                    "W8A16 per channel GPTQ": (0.85, 3e-2),
                    "W8A16 g8 GPTQ, blocks 0-1 float": (0.94, 1e-3, 0.99),
                    "W8A8 static SmoothQuant auto": (0.70, 1.3e-1),
                    "W8A8 dynamic": (0.75, 8e-2),
                    # HQQ and AWQ below RTN's 2.15 (docs/quantization.md
                    # "HQQ", "AWQ").
                    "W4A16 g32 HQQ": (0.28, 1.9),
                    "W4A16 g32 AWQ": (0.28, 1.95)},
}
# (model, scheme, baseline, factor): --check also asserts that the scheme's
# mean KL is below factor x the baseline's (issue #15: SmoothQuant improves
# W8A8 static; on the char-GPT the gain is within the noise of 32
# sequences, so only the bound above is asserted there). The last two are
# the nearest bounds to issue #15's stories260K goals that any method
# reaches at those sizes (1/4 and 1/2 of RTN's are out of reach:
# docs/quantization.md, "Accuracy goals on stories260K"); they are measured
# with --all.
BETTER_THAN = [
    ("stories260K", "W8A8 static SmoothQuant auto", "W8A8 static", 1.0),
    ("stories260K", "W8A16 per channel GPTQ + rotation", "W8A16 per channel",
     0.5),
    ("stories260K", "W4A16 g32 AWQ+GPTQ + rotation", "W4A16 g32", 0.65),
]
# Calibration samples per model (never the evaluation sequences): char-GPT
# windows of the training split, stories260K stories sampled with another
# seed.
CALIB_SAMPLES = 32


def write_samples(seqs, directory, input_name):
    """One directory per sample holding INPUT.npy of shape [1, T]
    (docs/calibration.md)."""
    os.makedirs(directory, exist_ok=True)
    for i, s in enumerate(seqs):
        d = os.path.join(directory, "%03d" % i)
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, input_name + ".npy"),
                np.asarray(s, dtype=np.int64).reshape(1, -1))
    return directory


def bits_per_weight(report):
    """The size report's average bits per linear weight (0 if absent)."""
    m = re.search(r"bits per linear weight: ([0-9.]+)", report)
    return float(m.group(1)) if m else 0.0


def density(report):
    """The size report's density of the linear weights (1 if absent)."""
    m = re.search(r"density of the linear weights: ([0-9.]+)", report)
    return float(m.group(1)) if m else 1.0


def outlier_channels(report):
    """Float outlier channels over all layers in the size table (0 if
    none) and the number of layers that have some."""
    counts = [int(n) for n in re.findall(r"(\d+) f32 outlier channels?",
                                         report)]
    return sum(counts), len(counts)


def compile_all(build, onnx_path, work, stem, calib_dir, model, schemes,
                outliers=None, notes=None, schemes_re=None):
    """Compiles the float model and each scheme (and the model's own
    schemes of MODEL_SCHEMES, or SPARSITY_MODEL_SCHEMES with the sparsity
    schemes, whose labels match the regex `schemes_re` if given); returns
    the float executable, {label: executable} and {label: (bits per linear
    weight, density of the linear weights)}; fills `outliers` ({label:
    (channels, layers)}) for schemes with float outlier channels. A
    --rotate scheme that quench-compile refuses (a model the rotation cannot
    pass through) is left out, and said so in `notes`."""
    qc = os.path.join(build, "bin", "quench-compile")
    exes, bits = {}, {}
    f32 = os.path.join(work, stem + "_f32")
    subprocess.run([qc, onnx_path, "-o", f32], check=True,
                   stdout=subprocess.DEVNULL)
    cache = os.path.join(work, stem + ".calib")
    refused = {}  # quench-compile's error -> the labels it refused
    recipe = os.path.join(work, stem + ".recipe.json")
    with open(recipe, "w") as f:
        json.dump(STORIES_RECIPE, f)
    extra = (SPARSITY_MODEL_SCHEMES if schemes is SPARSITY_SCHEMES
             else MODEL_SCHEMES).get(model, [])
    extra = [sc for sc in extra
             if not schemes_re or re.search(schemes_re, sc[0])]
    for label, flags, calibrated in schemes + extra:
        flags = [f.format(recipe=recipe) for f in flags]
        exe = os.path.join(work, stem + "_" +
                           "_".join(label.lower().split()))
        if calibrated:
            flags = flags + ["--calib=" + calib_dir, "--calib-cache=" + cache]
        rotated = "--rotate=hadamard" in flags and notes is not None
        p = subprocess.run([qc, onnx_path, "-o", exe] + flags,
                           check=not rotated, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE if rotated else None,
                           text=True)
        if p.returncode != 0:
            errors = [ln for ln in p.stderr.splitlines() if "error:" in ln]
            why = errors[0] if errors else p.stderr.strip()
            refused.setdefault(why.split("error: ")[-1].split(": ", 1)[-1],
                               []).append(label)
            continue
        exes[label] = exe
        bits[label] = (bits_per_weight(p.stdout), density(p.stdout))
        if outliers is not None and "--outliers" in " ".join(flags):
            outliers[label] = outlier_channels(p.stdout)
    for why, labels in refused.items():
        notes.append("%s: %s refused by quench-compile (%s)" % (
            model, ", ".join(labels), why))
    return f32, exes, bits


def chargpt_windows(model_dir, n):
    return quant_eval.held_out_windows(model_dir, n, 32, seed=0)


def chargpt_train_windows(model_dir, n, block=32, seed=1):
    return quant_eval.text_windows(model_dir, n, block, seed, part="train")


def sample_stories(model, n, seq=32, seed=0):
    """n token sequences of length seq sampled from `model` (a
    stories260k_to_onnx.Llama2c) at temperature 1, from BOS; seeded."""
    import torch
    import stories260k_to_onnx as s
    gen = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for _ in range(n):
            ids = [s.BOS]
            while len(ids) < seq:
                logits = model(torch.tensor([ids]))[0, -1]
                p = torch.softmax(logits, -1)
                ids.append(int(torch.multinomial(p, 1, generator=gen)))
            out.append(np.array(ids, dtype=np.int64))
    return out


def stories_sequences(bin_path, n, seq=32, seed=0):
    import torch
    import stories260k_to_onnx as s
    cfg, w = s.read_checkpoint(bin_path)
    torch.set_num_threads(1)
    return sample_stories(s.Llama2c(cfg, w).eval(), n, seq, seed)


def measure(args, work):
    results = {}  # model -> {scheme: (kl, top1, decisive top-1)}
    bits = {}  # model -> {scheme: bits per linear weight}
    ppl = {}  # model -> {scheme or "float": perplexity}
    notes = []
    schemes = SPARSITY_SCHEMES if args.sparsity else \
        SCHEMES + (EXTRA_SCHEMES if args.all else [])
    if args.only:
        schemes = [sc for sc in schemes if re.search(args.only, sc[0])]
    cdir = args.chargpt_dir
    if os.path.isfile(os.path.join(cdir, "chargpt.pt")):
        onnx_path = os.path.join(cdir, "chargpt.t32.onnx")
        if not os.path.isfile(onnx_path):
            subprocess.run([PY, os.path.join(ROOT, "examples", "chargpt",
                                             "chargpt.py"), "export",
                            "--out", cdir], check=True,
                           stdout=subprocess.DEVNULL)
        calib = write_samples(chargpt_train_windows(cdir, CALIB_SAMPLES),
                              os.path.join(work, "calib-chargpt"), "tokens")
        outl = {}
        f32, exes, bits["char-GPT (2.7M)"] = compile_all(
            args.build, onnx_path, work, "chargpt", calib, "char-GPT (2.7M)",
            schemes, outl, notes, args.only)
        notes += ["char-GPT (2.7M) %s: %d float outlier channels in %d "
                  "layers" % (k, c, n) for k, (c, n) in outl.items()]
        ppl["char-GPT (2.7M)"] = {}
        results["char-GPT (2.7M)"] = quant_eval.compare(
            f32, exes, chargpt_windows(cdir, args.sequences), "tokens",
            perplexity=ppl["char-GPT (2.7M)"])
    else:
        notes.append("char-GPT skipped: no %s/chargpt.pt (run "
                     "examples/chargpt/chargpt.py train --out %s)" % (cdir, cdir))
    if os.path.isfile(args.stories):
        onnx_path = os.path.join(work, "stories260K.onnx")
        subprocess.run([PY, os.path.join(ROOT, "examples",
                                         "stories260k_to_onnx.py"),
                        "--bin", args.stories, "-o", onnx_path, "--seq", "32"],
                       check=True, stdout=subprocess.DEVNULL)
        calib = write_samples(
            stories_sequences(args.stories, CALIB_SAMPLES, seed=1),
            os.path.join(work, "calib-stories"), "input_ids")
        outl = {}
        f32, exes, bits["stories260K"] = compile_all(
            args.build, onnx_path, work, "stories", calib, "stories260K",
            schemes, outl, notes, args.only)
        notes += ["stories260K %s: %d float outlier channels in %d layers"
                  % (k, c, n) for k, (c, n) in outl.items()]
        ppl["stories260K"] = {}
        results["stories260K"] = quant_eval.compare(
            f32, exes, stories_sequences(args.stories, args.sequences),
            "input_ids", perplexity=ppl["stories260K"])
    else:
        notes.append("stories260K skipped: %s not found" % args.stories)
    return results, bits, ppl, notes


def table(results, bits, ppl, sequences, sparsity=False):
    """The Markdown table; with `sparsity` a column for the density of the
    linear weights (the size report's; weights stored dense). Perplexity:
    of the evaluation sequences' own next tokens (the float model's in the
    first row of each model)."""
    lines = ["| model | scheme | bits per weight |%s mean KL (nats) | "
             "top-1 agreement | top-1, decisive positions | perplexity |" %
             (" density |" if sparsity else ""),
             "| --- | --- | ---: |%s ---: | ---: | ---: | ---: |" %
             (" ---: |" if sparsity else "")]
    for model, res in results.items():
        if "float" in ppl.get(model, {}):
            lines.append("| %s | float (reference) | 32 |%s 0 | 100 %% | "
                         "100 %% | %.3f |" % (model, " 1 |" if sparsity else
                                               "", ppl[model]["float"]))
        for scheme, (kl, top1, decisive) in res.items():
            b, d = bits[model][scheme]
            lines.append("| %s | %s | %.3f |%s %.2e | %.2f %% | %.2f %% | "
                         "%s |" % (
                             model, scheme, b, " %.3f |" % d if sparsity
                             else "", kl, 100 * top1, 100 * decisive,
                             "%.3f" % ppl[model][scheme]
                             if scheme in ppl.get(model, {}) else "-"))
    return "\n".join(lines)


def goals(results, bits):
    """Issue #15's accuracy goals on stories260K, checked against what was
    measured (Markdown lines; empty without stories260K's rows): the best
    scheme at <= 8.5 bits per linear weight against 1/4 of per-channel
    RTN's KL, the best at <= 4.5 bits against 1/2 of RTN g32's, and W8A8
    static with SmoothQuant (or outlier splitting) against 2x dynamic.
    Embedding-table variants are left out (their bits column counts the
    linears only)."""
    res = results.get("stories260K")
    if not res:
        return []
    b = bits["stories260K"]

    def best(limit, exclude=r"embeddings|W8A8"):
        rows = [(kl, sc) for sc, (kl, _, _) in res.items()
                if b[sc][0] <= limit + 1e-9 and not re.search(exclude, sc)]
        return min(rows) if rows else None

    out = ["", "## Goals on stories260K (issue #15)", "",
           "Computed from the table above by the script (weight-only "
           "schemes; bits per linear weight include scales and zero "
           "points).", ""]

    def line(goal, base_label, limit, factor):
        if base_label not in res:
            return
        target = factor * res[base_label][0]
        found = best(limit)
        if not found:
            out.append("* %s: no scheme measured at <= %g bits." %
                       (goal, limit))
            return
        kl, sc = found
        out.append("* %s (KL <= %.3g): best at <= %g bits is %s, KL %.3g "
                   "= %.2fx %s's (%.3f bits) — **%s**." % (
                       goal, target, limit, sc, kl, kl / res[base_label][0],
                       base_label, b[sc][0],
                       "met" if kl <= target else "not met"))

    line("<= 8.5 bits, KL <= 1/4 of per-channel RTN's", "W8A16 per channel",
         8.5, 0.25)
    # Groups of 32 with f16 scales are 4.5 bits per weight nominally;
    # stories260K's rows of 172 features pad their last group (4.611), so
    # the 4-bit goal compares schemes at RTN g32's own size too.
    line("<= 4.5 bits, KL <= 1/2 of RTN g32's", "W4A16 g32", 4.5, 0.5)
    if "W4A16 g32" in res and b["W4A16 g32"][0] > 4.5:
        line("at RTN g32's size, KL <= 1/2 of RTN g32's", "W4A16 g32",
             b["W4A16 g32"][0], 0.5)
    if "W8A8 dynamic" in res:
        dyn = res["W8A8 dynamic"][0]
        static = [(kl, sc) for sc, (kl, _, _) in res.items()
                  if sc.startswith("W8A8 static") and
                  re.search("SmoothQuant|outliers", sc)]
        if static:
            kl, sc = min(static)
            out.append("* W8A8 static with SmoothQuant or outlier splitting "
                       "within 2x of dynamic (%.3g): best is %s, KL %.3g = "
                       "%.2fx — **%s**." % (2 * dyn, sc, kl, kl / dyn,
                                            "met" if kl <= 2 * dyn
                                            else "not met"))
    out.append("")
    out.append("Why the two weight-only goals are out of reach on this "
               "model, and the nearest bounds: docs/quantization.md, "
               "\"Accuracy goals on stories260K\".")
    return out


# Method of a scheme label, for the plots: the first pattern that matches
# (combinations name their most specific method first).
PLOT_METHODS = [
    ("W8A8", r"W8A8"),
    ("AWQ", r"AWQ"),
    ("rotation", r"rotation"),
    ("sparsity", r"sparsity|2:4|4:8|unstructured"),
    ("GPTQ", r"GPTQ"),
    ("HQQ", r"HQQ"),
    ("bits budget", r"budget"),
    ("RTN", r""),
]


def plot(results, bits, directory):
    """One PNG per model: mean KL (log scale) against bits per linear
    weight, one marker series per method (PLOT_METHODS), every point
    labelled with its scheme. Needs python3-matplotlib (scripts/setup-deps.sh
    --bench installs it)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("accuracy: --plot needs python3-matplotlib "
                 "(bash scripts/setup-deps.sh --bench installs it)")
    os.makedirs(directory, exist_ok=True)
    written = []
    for model, res in results.items():
        fig, ax = plt.subplots(figsize=(10, 6.5), dpi=110)
        series = {}
        for scheme, (kl, _, _) in res.items():
            if "embeddings" in scheme:
                continue  # the bits column counts linears only
            method = next(m for m, pat in PLOT_METHODS
                          if re.search(pat, scheme))
            series.setdefault(method, []).append(
                (bits[model][scheme][0], max(kl, 1e-9), scheme))
        markers = "osD^vP*Xh"
        for i, (method, pts) in enumerate(sorted(series.items())):
            pts.sort()
            ax.scatter([p[0] for p in pts], [p[1] for p in pts],
                       marker=markers[i % len(markers)], s=46, label=method)
            for x, y, scheme in pts:
                ax.annotate(scheme, (x, y), fontsize=6, xytext=(4, 3),
                            textcoords="offset points")
        ax.set_yscale("log")
        ax.set_xlabel("bits per linear weight (codes, scales, zero points)")
        ax.set_ylabel("mean KL(p_float || p_quant), nats")
        ax.set_title("%s: accuracy against size" % model)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        name = re.sub(r"[^A-Za-z0-9]+", "_", model).strip("_") + ".png"
        path = os.path.join(directory, name)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--work")
    ap.add_argument("--chargpt-dir", default=os.path.join(ROOT, "build",
                                                         "chargpt"))
    ap.add_argument("--stories", default=os.path.join(
        os.path.dirname(ROOT), "shared", "models", "stories260K.bin"))
    ap.add_argument("--sequences", type=int, default=64)
    ap.add_argument("--markdown")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--plot", metavar="DIR",
                    help="write one PNG per model (KL against bits per "
                         "weight, per method) into DIR")
    ap.add_argument("--only", "--schemes", metavar="REGEX", dest="only",
                    help="measure only the schemes whose label matches "
                         "(with --all: among all of them; --check then "
                         "checks those); not with --markdown")
    ap.add_argument("--all", action="store_true",
                    help="also the schemes of EXTRA_SCHEMES (HQQ, AWQ, "
                         "W3A16, bits budgets, outlier splitting, int4 "
                         "embeddings)")
    ap.add_argument("--sparsity", action="store_true",
                    help="measure the pruning schemes of SPARSITY_SCHEMES "
                         "instead (docs/sparsity.md; no --check bounds)")
    args = ap.parse_args()
    if args.only and args.markdown:
        ap.error("--only measures a subset: not with --markdown")
    if args.sparsity and (args.all or args.check or args.markdown):
        ap.error("--sparsity goes without --all, --check and --markdown "
                 "(its table is recorded in docs/sparsity.md)")
    work = args.work or tempfile.mkdtemp(prefix="quench-accuracy-")
    os.makedirs(work, exist_ok=True)
    results, bits, ppl, notes = measure(args, work)
    text = table(results, bits, ppl, args.sequences, args.sparsity)
    if not args.sparsity:
        text += "\n".join([""] + goals(results, bits))
    print(text)
    for n in notes:
        print(n)
    if args.plot:
        for path in plot(results, bits, args.plot):
            print("wrote", path)
    if args.markdown:
        cmd = "bench/accuracy.py --sequences %d%s --markdown %s" % (
            args.sequences, " --all" if args.all else "",
            os.path.relpath(args.markdown, ROOT))
        # Sections measured by other means (another script, a subset of
        # schemes) follow KEEP_MARKER in the document and are kept.
        kept = ""
        if os.path.isfile(args.markdown):
            with open(args.markdown) as f:
                old = f.read()
            if KEEP_MARKER in old:
                kept = old[old.index(KEEP_MARKER):]
        with open(args.markdown, "w") as f:
            f.write("# Accuracy of weight quantization\n\n"
                    "Generated by `%s` on %s (UTC); do not edit by hand.\n\n"
                    "Each quantized executable (`quench-compile --quant=...`) "
                    "against the float executable on the same %d sequences "
                    "of 32 tokens: mean KL(p_float || p_quant) of the "
                    "next-token distributions over all positions, and "
                    "top-1 agreement (over all positions, and over the "
                    "decisive ones, where the float model's two best "
                    "log-probabilities differ by more than 0.1). "
                    "char-GPT: windows of the KJV text's "
                    "held-out 5 %%; stories260K: stories sampled from the "
                    "float PyTorch model (temperature 1). Scales are f16, "
                    "codes symmetric except HQQ's (docs/quantization.md). "
                    "GPTQ, AWQ and W8A8 "
                    "static are calibrated on %d other sequences (char-GPT: "
                    "windows of the training split; stories260K: stories "
                    "sampled with another seed), docs/calibration.md; "
                    "W8A8 static uses the minmax range, with SmoothQuant "
                    "(`--smooth`) at alpha 0.5 or chosen per group "
                    "(`auto`). Outlier splitting (`--outliers`) is "
                    "measured with `--all`: docs/quantization.md, "
                    "\"Outlier splitting\". `+ rotation`: the residual "
                    "stream rotated first (`--rotate=hadamard`, seed 0; "
                    "`online`: also `--rotate-online`; docs/quantization.md, "
                    "\"Rotation\"; a LayerNorm model's stream is centered "
                    "first).\n\n%s\n"
                    % (cmd, datetime.datetime.utcnow().strftime(
                        "%Y-%m-%d %H:%M"), args.sequences, CALIB_SAMPLES,
                       text))
            for n in notes:
                f.write("\n%s\n" % n)
            if kept:
                f.write("\n" + kept)
    if args.check:
        bad = []
        for model, res in results.items():
            for scheme, bound in BOUNDS[model].items():
                if scheme not in res:  # left out by --only
                    continue
                top1_min, kl_max = bound[:2]
                kl, top1, decisive = res[scheme]
                if top1 < top1_min or kl > kl_max or (
                        len(bound) > 2 and decisive < bound[2]):
                    bad.append("%s %s: KL %.2e (max %.0e), top-1 %.2f %% "
                               "(min %.0f %%), decisive %.2f %%%s" % (
                                   model, scheme, kl, kl_max, 100 * top1,
                                   100 * top1_min, 100 * decisive,
                                   " (min %.0f %%)" % (100 * bound[2])
                                   if len(bound) > 2 else ""))
        for model, scheme, baseline, factor in BETTER_THAN:
            res = results.get(model, {})
            if scheme in res and baseline in res and \
                    not res[scheme][0] < factor * res[baseline][0]:
                bad.append("%s %s: KL %.2e not below %g x %s's %.2e" % (
                    model, scheme, results[model][scheme][0], factor,
                    baseline, results[model][baseline][0]))
        for b in bad:
            print("FAIL", b)
        if bad:
            return 1
        print("accuracy: %d model(s) within the bounds" % len(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
