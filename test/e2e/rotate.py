#!/usr/bin/python3
"""Residual-stream rotation (quench-compile --rotate=hadamard,
docs/quantization.md, "Rotation") end to end.

The rotated float model computes the function of the original: on a
LLaMA-shaped model from bench/gen_llama_onnx.py whose width 96 = 32 x 3
takes the Hadamard x random-orthogonal rotation, on a GPT-2-style model
(test/e2e/gen_past_models.py's gpt2: LayerNorms with biases, learned
position embeddings, fused qkv with biases, tied head; its stream is
centered before it is rotated), and on stories260K
(../shared, skipped when absent; width 64, a pure randomized Hadamard),
the logits of the model compiled with --rotate=hadamard (two seeds, and
with --rotate-online: the down/output projections' inputs rotated at run
time) match the plain float model's to 1e-5 relative. GPTQ W4A16 with calibration
after the rotation compiles and runs, and its calibration cache is not
reused by the unrotated model; bad uses fail with one message.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "examples", "chargpt"))
import accuracy  # noqa: E402
import quant_eval  # noqa: E402

REMARK = "rotation (hadamard, seed %d): residual stream of width %d rotated"


def compile_model(qc, onnx_path, out, flags):
    r = subprocess.run([qc, onnx_path, "-o", out] + flags,
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("quench-compile %s failed:\n%s" % (" ".join(flags), r.stderr))
    return r.stderr


def expect_error(qc, onnx_path, out, flags, message):
    r = subprocess.run([qc, onnx_path, "-o", out] + flags,
                       capture_output=True, text=True)
    if r.returncode == 0 or message not in r.stderr or os.path.exists(out):
        sys.exit("quench-compile %s: expected an error with '%s', got rc %d:"
                 "\n%s" % (" ".join(flags), message, r.returncode, r.stderr))


def check_float(qc, name, onnx_path, dim, seqs, input_name, work):
    """The rotated float model's logits against the original's."""
    tmp = tempfile.mkdtemp(dir=work)
    f32 = os.path.join(work, name + "_f32")
    compile_model(qc, onnx_path, f32, [])
    ref = [quant_eval.run_exe(f32, s, tmp, input_name) for s in seqs]
    for seed, online in ((0, False), (7, False), (3, True)):
        exe = os.path.join(work, "%s_rot%d" % (name, seed))
        flags = ["--rotate=hadamard", "--rotate-seed=%d" % seed]
        if online:
            flags.append("--rotate-online")
        log = compile_model(qc, onnx_path, exe, flags)
        if REMARK % (seed, dim) not in log or (
                online and "online Hadamard on the inputs of" not in log):
            sys.exit("%s: no rotation remark:\n%s" % (name, log))
        worst = 0.0
        for s, r in zip(seqs, ref):
            y = quant_eval.run_exe(exe, s, tmp, input_name)
            worst = max(worst, float(np.abs(y - r).max() / np.abs(r).max()))
        print("%s %s float: max |diff| / max |logit| = %.3g" % (
            name, " ".join(flags), worst))
        if not worst <= 1e-5:
            sys.exit("%s: the rotated float model differs by %.3g" %
                     (name, worst))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--stories", default=os.path.join(
        os.path.dirname(ROOT), "shared", "models", "stories260K.bin"))
    ap.add_argument("--work")
    args = ap.parse_args()
    qc = os.path.join(args.build, "bin", "quench-compile")
    work = args.work or tempfile.mkdtemp(prefix="quench-rotate-")
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(0)

    llama = os.path.join(work, "llama96.onnx")
    subprocess.run([sys.executable, os.path.join(ROOT, "bench",
                                                 "gen_llama_onnx.py"),
                    llama, "--dim", "96", "--layers", "2", "--heads", "4",
                    "--kv-heads", "2", "--hidden", "160", "--vocab", "128",
                    "--seq", "16"], check=True, stdout=subprocess.DEVNULL)
    seqs = [rng.integers(0, 128, size=16) for _ in range(3)]
    check_float(qc, "llama96", llama, 96, seqs, "input_ids", work)

    # LayerNorm: the stream is centered first, the LayerNorms become
    # RMSNorms (their biases folded into the reading linears' biases).
    subprocess.run([sys.executable, os.path.join(ROOT, "test", "e2e",
                                                 "gen_past_models.py"),
                    work, "--only", "gpt2"], check=True,
                   stdout=subprocess.DEVNULL)
    gpt2 = os.path.join(work, "gpt2.onnx")
    check_float(qc, "gpt2", gpt2, 64,
                [rng.integers(0, 96, size=20) for _ in range(3)],
                "input_ids", work)
    log = compile_model(qc, gpt2, os.path.join(work, "gpt2_rot_w8"),
                        ["--rotate=hadamard", "--quant=w8a16"])
    if "centered first: 5 LayerNorms now RMSNorms" not in log:
        sys.exit("gpt2: no centering remark:\n%s" % log)

    # Calibration and GPTQ see the rotated model; the cache key knows it.
    calib = accuracy.write_samples([rng.integers(0, 128, size=16)
                                    for _ in range(4)],
                                   os.path.join(work, "calib"), "input_ids")
    cache = os.path.join(work, "llama96.calib")
    exe = os.path.join(work, "llama96_w4_gptq_rot")
    log = compile_model(qc, llama, exe,
                        ["--rotate=hadamard", "--quant=w4a16", "--algo=gptq",
                         "--calib=" + calib, "--calib-cache=" + cache])
    if REMARK % (0, 96) not in log:
        sys.exit("GPTQ + rotation: no rotation remark:\n%s" % log)
    y = quant_eval.run_exe(exe, seqs[0], tempfile.mkdtemp(dir=work),
                           "input_ids")
    if not np.isfinite(y).all():
        sys.exit("GPTQ W4A16 + rotation gives non-finite logits")
    log = compile_model(qc, llama, os.path.join(work, "llama96_w4_gptq"),
                        ["--quant=w4a16", "--algo=gptq", "--calib=" + calib,
                         "--calib-cache=" + cache])
    if "was made for another model" not in log:
        sys.exit("the unrotated model reused the rotated model's "
                 "calibration cache:\n%s" % log)

    out = os.path.join(work, "bad")
    expect_error(qc, llama, out, ["--rotate=givens"],
                 "unknown rotation 'givens': use --rotate=none or "
                 "--rotate=hadamard")
    expect_error(qc, llama, out, ["--rotate-seed=3"],
                 "--rotate-seed needs --rotate=hadamard")
    expect_error(qc, llama, out, ["--rotate-online"],
                 "--rotate-online needs --rotate=hadamard")

    if os.path.isfile(args.stories):
        onnx_path = os.path.join(work, "stories260K.onnx")
        subprocess.run([sys.executable, os.path.join(
            ROOT, "examples", "stories260k_to_onnx.py"), "--bin",
            args.stories, "-o", onnx_path, "--seq", "32"], check=True,
            stdout=subprocess.DEVNULL)
        check_float(qc, "stories260K", onnx_path, 64,
                    accuracy.stories_sequences(args.stories, 3),
                    "input_ids", work)
    else:
        print("stories260K skipped: %s not found" % args.stories)
    print("rotate: OK")


if __name__ == "__main__":
    main()
