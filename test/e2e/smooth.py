#!/usr/bin/python3
"""SmoothQuant (quench-compile --smooth, docs/quantization.md) end to end.

On the trained char-GPT (--chargpt-dir) and stories260K (../shared, skipped
when absent): the float model compiled with --smooth=0.5 and --smooth=auto
(calibrated on 8 sequences) gives the float model's logits on held-out
sequences to 1e-6 relative (the power-of-two scales make it bit-exact;
the test reports the difference); W8A8 static with --smooth and a
histogram range estimator (which recalibrates the smoothed model) compiles
and runs; bad uses fail with one message.
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


def compile_model(qc, onnx_path, out, flags):
    r = subprocess.run([qc, onnx_path, "-o", out] + flags,
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("quench-compile %s failed:\n%s" % (" ".join(flags), r.stderr))
    return r.stderr


def check_model(qc, name, onnx_path, calib, seqs, input_name, work):
    f32 = os.path.join(work, name + "_f32")
    compile_model(qc, onnx_path, f32, [])
    cache = os.path.join(work, name + ".calib")
    tmp = tempfile.mkdtemp(dir=work)
    ref = [quant_eval.run_exe(f32, s, tmp, input_name) for s in seqs]
    for alpha in ["0.5", "auto"]:
        exe = os.path.join(work, name + "_smooth_" + alpha)
        log = compile_model(qc, onnx_path, exe,
                            ["--smooth=" + alpha, "--calib=" + calib,
                             "--calib-cache=" + cache])
        if "SmoothQuant (alpha %s): scales migrated into" % alpha not in log:
            sys.exit("%s: no SmoothQuant remark:\n%s" % (name, log))
        worst = 0.0
        for s, r in zip(seqs, ref):
            y = quant_eval.run_exe(exe, s, tmp, input_name)
            worst = max(worst, float(np.abs(y - r).max() / np.abs(r).max()))
        print("%s --smooth=%s float: max |diff| / max |logit| = %.3g" %
              (name, alpha, worst))
        if not worst <= 1e-6:
            sys.exit("%s: the smoothed float model differs by %.3g" %
                     (name, worst))
    # A histogram-based range after smoothing: the smoothed model is
    # recalibrated.
    exe = os.path.join(work, name + "_w8a8_smooth_pct")
    log = compile_model(qc, onnx_path, exe,
                        ["--quant=w8a8", "--smooth", "--calib-method=percentile",
                         "--calib=" + calib, "--calib-cache=" + cache])
    if "recalibrating the smoothed model" not in log:
        sys.exit("%s: no recalibration for --calib-method=percentile:\n%s" %
                 (name, log))
    y = quant_eval.run_exe(exe, seqs[0], tmp, input_name)
    if not np.isfinite(y).all():
        sys.exit("%s: W8A8 static + SmoothQuant gives non-finite logits" % name)


def expect_error(qc, onnx_path, out, flags, message):
    r = subprocess.run([qc, onnx_path, "-o", out] + flags,
                       capture_output=True, text=True)
    if r.returncode == 0 or message not in r.stderr:
        sys.exit("quench-compile %s: expected an error with '%s', got rc %d:"
                 "\n%s" % (" ".join(flags), message, r.returncode, r.stderr))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--chargpt-dir", required=True)
    ap.add_argument("--stories", default=os.path.join(
        os.path.dirname(ROOT), "shared", "models", "stories260K.bin"))
    ap.add_argument("--work")
    args = ap.parse_args()
    qc = os.path.join(args.build, "bin", "quench-compile")
    work = args.work or tempfile.mkdtemp(prefix="quench-smooth-")
    os.makedirs(work, exist_ok=True)

    cdir = args.chargpt_dir
    onnx_path = os.path.join(cdir, "chargpt.t32.onnx")
    if not os.path.isfile(onnx_path):
        subprocess.run([sys.executable, os.path.join(
            ROOT, "examples", "chargpt", "chargpt.py"), "export", "--out",
            cdir], check=True, stdout=subprocess.DEVNULL)
    calib = accuracy.write_samples(accuracy.chargpt_train_windows(cdir, 8),
                                   os.path.join(work, "calib-chargpt"),
                                   "tokens")
    out = os.path.join(work, "bad")
    expect_error(qc, onnx_path, out, ["--smooth"],
                 "--smooth needs calibration (--calib or --calib-cache)")
    expect_error(qc, onnx_path, out, ["--smooth=1.5", "--calib=" + calib],
                 "--smooth=ALPHA needs a number in [0, 1] or 'auto'")
    expect_error(qc, onnx_path, out,
                 ["--smooth=auto", "--calib-gram=false", "--calib=" + calib],
                 "--smooth=auto needs the Gram matrices")
    check_model(qc, "chargpt", onnx_path, calib,
                accuracy.chargpt_windows(cdir, 4), "tokens", work)

    if os.path.isfile(args.stories):
        onnx_path = os.path.join(work, "stories260K.onnx")
        subprocess.run([sys.executable, os.path.join(
            ROOT, "examples", "stories260k_to_onnx.py"), "--bin",
            args.stories, "-o", onnx_path, "--seq", "32"], check=True,
            stdout=subprocess.DEVNULL)
        calib = accuracy.write_samples(
            accuracy.stories_sequences(args.stories, 8, seed=1),
            os.path.join(work, "calib-stories"), "input_ids")
        check_model(qc, "stories260K", onnx_path, calib,
                    accuracy.stories_sequences(args.stories, 4),
                    "input_ids", work)
    else:
        print("stories260K skipped: %s not found" % args.stories)
    print("smooth: OK")


if __name__ == "__main__":
    main()
