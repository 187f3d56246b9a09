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
                    [--check] [--all] [--only REGEX]
--all adds EXTRA_SCHEMES (HQQ, W3A16, bits budgets, rotation; not in the e2e
test); --only REGEX keeps the schemes whose label matches;
the table's bits per weight is the size report's (codes, scales, zero
points of the linear layers);
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
SCHEMES = [  # (label, quench-compile flags, needs calibration)
    ("W8A16 per channel", ["--quant=w8a16"], False),
    ("W8A16 per channel GPTQ", ["--quant=w8a16", "--algo=gptq"], True),
    ("W4A16 g32", ["--quant=w4a16", "--group-size=32"], False),
    ("W4A16 g32 GPTQ", ["--quant=w4a16", "--group-size=32", "--algo=gptq"],
     True),
    ("W4A16 g128", ["--quant=w4a16", "--group-size=128"], False),
    ("W4A16 g32 HQQ", ["--quant=w4a16", "--group-size=32", "--algo=hqq"],
     False),
    ("W8A8 static", ["--quant=w8a8"], True),
    ("W8A8 static SmoothQuant 0.5", ["--quant=w8a8", "--smooth=0.5"], True),
    ("W8A8 static SmoothQuant auto", ["--quant=w8a8", "--smooth=auto"],
     True),
    ("W8A8 dynamic", ["--quant=w8a8-dynamic"], False),
]
# Measured with --all only (the e2e test keeps to SCHEMES): HQQ (data-free,
# asymmetric) against RTN with the same zero points and GPTQ, at 4 and 3
# bits, and mixed precision under a bits budget against the uniform
# schemes of the same bits (docs/quantization.md).
EXTRA_SCHEMES = [
    ("W4A16 g32 asym", ["--quant=w4a16", "--group-size=32", "--asymmetric"],
     False),
    ("W4A16 g128 asym", ["--quant=w4a16", "--group-size=128",
                         "--asymmetric"], False),
    ("W4A16 g128 HQQ", ["--quant=w4a16", "--group-size=128", "--algo=hqq"],
     False),
    ("W3A16 g32", ["--quant=w3a16", "--group-size=32"], False),
    ("W3A16 g32 asym", ["--quant=w3a16", "--group-size=32", "--asymmetric"],
     False),
    ("W3A16 g32 GPTQ", ["--quant=w3a16", "--group-size=32", "--algo=gptq"],
     True),
    ("W3A16 g32 HQQ", ["--quant=w3a16", "--group-size=32", "--algo=hqq"],
     False),
    ("budget 4.5", ["--quant=w4a16", "--bits-budget=4.5"], True),
    ("budget 3.5", ["--quant=w4a16", "--bits-budget=3.5"], True),
    ("budget 4.5, no calibration", ["--quant=w4a16", "--bits-budget=4.5"],
     False),
    # Residual-stream rotation (--rotate=hadamard, docs/quantization.md
    # "Rotation"); RMSNorm models only: the char-GPT's LayerNorm is refused.
    ("W4A16 g32 + rotation", ["--quant=w4a16", "--group-size=32",
                              "--rotate=hadamard"], False),
    ("W4A16 g32 GPTQ + rotation", ["--quant=w4a16", "--group-size=32",
                                   "--algo=gptq", "--rotate=hadamard"], True),
    ("W8A8 dynamic + rotation", ["--quant=w8a8-dynamic", "--rotate=hadamard"],
     False),
    ("W3A16 g32 + rotation", ["--quant=w3a16", "--group-size=32",
                              "--rotate=hadamard"], False),
    ("W4A16 g32 + online rotation", ["--quant=w4a16", "--group-size=32",
                                     "--rotate=hadamard", "--rotate-online"],
     False),
    ("W8A8 dynamic + online rotation", ["--quant=w8a8-dynamic",
                                        "--rotate=hadamard",
                                        "--rotate-online"], False),
]
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
                        "W8A8 static": (0.97, 3e-3),
                        "W8A8 static SmoothQuant auto": (0.97, 3e-3),
                        "W8A8 dynamic": (0.98, 2e-3)},
    "stories260K": {"W8A16 per channel": (0.80, 5e-2),
                    "W8A16 per channel GPTQ": (0.85, 3e-2),
                    "W8A16 g8 GPTQ, blocks 0-1 float": (0.94, 1e-3, 0.99),
                    "W8A8 static SmoothQuant auto": (0.70, 1.3e-1),
                    "W8A8 dynamic": (0.75, 8e-2),
                    # HQQ below RTN's 2.15 (docs/quantization.md "HQQ").
                    "W4A16 g32 HQQ": (0.28, 1.9)},
}
# (model, scheme, baseline): --check also asserts that the scheme's mean KL
# is below the baseline's (issue #15: SmoothQuant improves W8A8 static; on
# the char-GPT the gain is within the noise of 32 sequences, so only the
# bound above is asserted there).
BETTER_THAN = [("stories260K", "W8A8 static SmoothQuant auto", "W8A8 static")]
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


def compile_all(build, onnx_path, work, stem, calib_dir, model, schemes,
                notes=None, only=None):
    """Compiles the float model and each scheme (those whose label matches
    the regex `only`, if given); returns the float executable, {label:
    executable} and {label: bits per linear weight}. A --rotate scheme that
    quench-compile refuses (a model the rotation cannot pass through) is
    left out, and said so in `notes`."""
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
    for label, flags, calibrated in schemes + MODEL_SCHEMES.get(model, []):
        if only and not re.search(only, label):
            continue
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
        bits[label] = bits_per_weight(p.stdout)
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
    notes = []
    schemes = SCHEMES + (EXTRA_SCHEMES if args.all else [])
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
        f32, exes, bits["char-GPT (2.7M)"] = compile_all(
            args.build, onnx_path, work, "chargpt", calib, "char-GPT (2.7M)",
            schemes, notes, args.only)
        results["char-GPT (2.7M)"] = quant_eval.compare(
            f32, exes, chargpt_windows(cdir, args.sequences), "tokens")
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
        f32, exes, bits["stories260K"] = compile_all(
            args.build, onnx_path, work, "stories", calib, "stories260K",
            schemes, notes, args.only)
        results["stories260K"] = quant_eval.compare(
            f32, exes, stories_sequences(args.stories, args.sequences),
            "input_ids")
    else:
        notes.append("stories260K skipped: %s not found" % args.stories)
    return results, bits, notes


def table(results, bits, sequences):
    lines = ["| model | scheme | bits per weight | mean KL (nats) | "
             "top-1 agreement | top-1, decisive positions |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for model, res in results.items():
        for scheme, (kl, top1, decisive) in res.items():
            lines.append("| %s | %s | %.3f | %.2e | %.2f %% | %.2f %% |" % (
                model, scheme, bits[model][scheme], kl, 100 * top1,
                100 * decisive))
    return "\n".join(lines)


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
    ap.add_argument("--all", action="store_true",
                    help="also the schemes of EXTRA_SCHEMES (HQQ, W3A16, "
                         "bits budgets, rotation)")
    ap.add_argument("--only", metavar="REGEX",
                    help="only the schemes whose label matches REGEX "
                         "(Python re.search)")
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="quench-accuracy-")
    os.makedirs(work, exist_ok=True)
    results, bits, notes = measure(args, work)
    text = table(results, bits, args.sequences)
    print(text)
    for n in notes:
        print(n)
    if args.markdown:
        cmd = "bench/accuracy.py --sequences %d%s --markdown %s" % (
            args.sequences, " --all" if args.all else "",
            os.path.relpath(args.markdown, ROOT))
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
                    "codes symmetric (docs/quantization.md). GPTQ and W8A8 "
                    "static are calibrated on %d other sequences (char-GPT: "
                    "windows of the training split; stories260K: stories "
                    "sampled with another seed), docs/calibration.md; "
                    "W8A8 static uses the minmax range, with SmoothQuant "
                    "(`--smooth`) at alpha 0.5 or chosen per group "
                    "(`auto`). `+ rotation`: the residual stream rotated "
                    "first (`--rotate=hadamard`, seed 0; `online`: also "
                    "`--rotate-online`; docs/quantization.md, \"Rotation\"), "
                    "RMSNorm models only.\n\n%s\n"
                    % (cmd, datetime.datetime.utcnow().strftime(
                        "%Y-%m-%d %H:%M"), args.sequences, CALIB_SAMPLES,
                       text))
            for n in notes:
                f.write("\n%s\n" % n)
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
        for model, scheme, baseline in BETTER_THAN:
            if model not in results or not {scheme, baseline} <= set(
                    results[model]):
                continue
            if not (results[model][scheme][0] <
                                         results[model][baseline][0]):
                bad.append("%s %s: KL %.2e not below %s's %.2e" % (
                    model, scheme, results[model][scheme][0], baseline,
                    results[model][baseline][0]))
        for b in bad:
            print("FAIL", b)
        if bad:
            return 1
        print("accuracy: %d model(s) within the bounds" % len(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
