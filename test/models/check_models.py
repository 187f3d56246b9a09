#!/usr/bin/python3
"""Imports and verifies the model zoo and stories260K with quench tools.

  check_models.py --quench-import PATH --quench-opt PATH --work-dir DIR
                  [--suite all|zoo|stories260k] [--python PATH]
                  [--stories-bin PATH] [--only NAME ...]

zoo: runs export_models.py into DIR/zoo, then for every model runs
  quench-import MODEL.onnx                     (and checks the signature)
  quench-opt --quench-raise-ops                (verification + raising)
and for the dynamic-shape models also the same with
  --shape input_ids=1x8 (specialized, static signature expected).
stories260k: runs examples/stories260k_to_onnx.py (which checks the greedy
  continuation with PyTorch) for a static opset-17 export and a dynamic-seq
  opset-13 export into DIR/stories260k, then imports and verifies both the
  same way. When the checkpoint (<repo>/../shared/models/stories260K.bin by
  default) is absent, prints "SKIPPED" and does not fail.
--numerics: also runs every imported and raised function with the NumPy
  reference interpreter test/conformance/quench_ref.py on the saved
  reference input and compares with PyTorch's logits (the specialized
  dynamic models use their static twin's reference: same weights).
--quench-compile PATH: also compiles every model (and specialization) to a
  native executable with quench-compile, runs it on the reference input and
  compares its logits with PyTorch's the same way (the e2e suite).
  --compile-arg ARG (repeatable) passes ARG to every quench-compile, e.g.
  --target=cuda --cuda-emulate (the CUDA kernels run on the CPU).

Prints one PASS/FAIL line per model and a summary; exits 1 if anything
failed. Nothing is written outside --work-dir. The exporters need torch and
onnx: by default they run under /usr/bin/python3 (Debian's), else under the
interpreter running this script.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
VOCAB_STORIES = 512
# |quench - torch| <= NUMERIC_TOL * max(1, max|torch|) (float32, reordered
# reductions).
NUMERIC_TOL = 1e-4
STORIES_SEQ = 32
STEP_TIMEOUT = 300


class StepError(Exception):
    pass


def run(cmd, timeout=STEP_TIMEOUT):
    """Runs cmd; returns (stdout, seconds); raises StepError on failure."""
    t0 = time.time()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise StepError("timed out after %ds: %s" % (timeout, " ".join(cmd)))
    except OSError as e:
        raise StepError("cannot run %s: %s" % (cmd[0], e))
    if p.returncode != 0:
        tail = "\n".join((p.stderr or p.stdout).strip().splitlines()[-15:])
        raise StepError("exit status %d: %s\n%s" % (
            p.returncode, " ".join(cmd), tail))
    return p.stdout, time.time() - t0


def signature(mlir_path):
    """(argument types, result types) of the imported @main."""
    with open(mlir_path) as f:
        for line in f:
            if "func.func" in line:
                m = re.search(r"\((.*)\)\s*->\s*\((.*)\)", line)
                if not m:
                    break
                args = re.findall(r"tensor<[^>]*>", m.group(1))
                results = re.findall(r"tensor<[^>]*>", m.group(2))
                return args, results
    raise StepError("no func.func signature in %s" % mlir_path)


def dims(shape, et):
    return "tensor<%s>" % "x".join([str(d) for d in shape] + [et])


def check_numerics(tools, mlir, ref):
    """Runs `mlir` with quench_ref on ref = (input .npy, logits .npy)."""
    import numpy as np
    generic = mlir[:-len(".mlir")] + ".generic.mlir"
    run([tools.quench_opt, mlir, "--mlir-print-op-generic", "-o", generic])
    x, want = np.load(ref[0]), np.load(ref[1])
    try:
        with open(generic) as f:
            fn = tools.quench_ref.parse_module(f.read())
        got = fn.run([x])[0]
    except Exception as e:  # the interpreter's own limits or errors
        raise StepError("%s: reference interpreter: %s: %s" % (
            generic, type(e).__name__, e))
    return compare(mlir, got, want)


# What quench-raise-ops must make of each architecture: exact counts of the
# raised ops, and no op left over from the decomposed forms.
EXPECTED_RAISED = {
    "gpt2": {"layer_norm": 5, "gelu": 2, "linear": 9, "matmul": 4},
    "llama": {"rms_norm": 5, "silu": 2, "linear": 15, "matmul": 4},
    "t5": {"rms_norm": 9, "gelu": 3, "linear": 26, "matmul": 8},
    "stories260k": {"rms_norm": 11, "silu": 5, "linear": 36, "matmul": 10},
}
DECOMPOSED_LEFTOVERS = ("erf", "tanh", "sigmoid", "rsqrt", "sqrt", "pow")


def check_raised(raised_path):
    arch = os.path.basename(raised_path).split("_")[0]
    want = EXPECTED_RAISED.get(arch)
    if want is None:
        return
    with open(raised_path) as f:
        ops = re.findall(r"= quench\.([a-z_]+) ", f.read())
    got = {op: ops.count(op) for op in want}
    if got != want:
        raise StepError("%s: raised ops %s, expected %s" % (
            raised_path, got, want))
    left = sorted({op for op in ops if op in DECOMPOSED_LEFTOVERS})
    if left:
        raise StepError("%s: decomposed ops left after raising: %s" % (
            raised_path, ", ".join(left)))


def compare(what, got, want):
    """max |got - want|, checked against NUMERIC_TOL."""
    import numpy as np
    if got.shape != want.shape:
        raise StepError("%s: output shape %s, PyTorch %s" % (
            what, got.shape, want.shape))
    err = float(np.max(np.abs(got.astype(np.float64) - want)))
    limit = NUMERIC_TOL * max(1.0, float(np.max(np.abs(want))))
    if not err <= limit:
        raise StepError("%s: max |quench - torch| = %.3g > %.3g" % (
            what, err, limit))
    return err


def compile_and_run(tools, onnx_path, out_base, shape, ref):
    """quench-compile --emit=exe, run on the reference input, compare."""
    import numpy as np
    exe = out_base + ".exe"
    cmd = [tools.quench_compile, onnx_path, "-o", exe, "--name", "model"]
    cmd += tools.compile_args
    if shape:
        cmd += ["--shape", shape]
    # Dynamic-shape models generate the most code: allow for a loaded machine.
    _, t_compile = run(cmd, timeout=3 * STEP_TIMEOUT)
    out_dir = out_base + ".outputs"
    os.makedirs(out_dir, exist_ok=True)
    for f in os.listdir(out_dir):
        os.remove(os.path.join(out_dir, f))
    run([exe, "--input", "input_ids=" + ref[0], "--output-dir", out_dir])
    got = np.load(os.path.join(out_dir, "logits.npy"))
    err = compare(exe, got, np.load(ref[1]))
    tools.native_err = max(tools.native_err, err)
    return t_compile


def import_and_verify(tools, onnx_path, out_base, want_args, want_results,
                      shape=None, ref=None):
    """Imports (optionally specialized) and raises; checks the signature and,
    with --numerics and a reference, the values."""
    mlir = out_base + ".mlir"
    cmd = [tools.quench_import, onnx_path, "-o", mlir]
    if shape:
        cmd += ["--shape", shape]
    _, t_import = run(cmd)
    args, results = signature(mlir)
    if args != want_args or results != want_results:
        raise StepError("%s: signature (%s) -> (%s), expected (%s) -> (%s)" % (
            mlir, ", ".join(args), ", ".join(results), ", ".join(want_args),
            ", ".join(want_results)))
    _, t_opt = run([tools.quench_opt, mlir, "--quench-raise-ops",
                    "-o", out_base + ".raised.mlir"])
    check_raised(out_base + ".raised.mlir")
    if tools.quench_ref and ref:
        for m in (mlir, out_base + ".raised.mlir"):
            tools.max_err = max(tools.max_err, check_numerics(tools, m, ref))
    t_compile = 0.0
    if tools.quench_compile and ref:
        t_compile = compile_and_run(tools, onnx_path, out_base, shape, ref)
    return t_import + t_opt + t_compile


class Results:
    def __init__(self):
        self.passed, self.failed, self.skipped = [], [], []

    def check(self, name, fn):
        try:
            detail = fn()
        except StepError as e:
            self.failed.append(name)
            print("FAIL %s: %s" % (name, e), flush=True)
            return False
        self.passed.append(name)
        print("PASS %s%s" % (name, " (%s)" % detail if detail else ""),
              flush=True)
        return True


def reference(base):
    """(input .npy, logits .npy) saved by the exporter for `base`, if any."""
    ref = (base + ".input_ids.npy", base + ".logits.npy")
    return ref if all(os.path.isfile(p) for p in ref) else None


def check_variants(tools, res, name, onnx_path, out_dir, dynamic, in_shape,
                   vocab, spec_shape, spec_ref=None):
    """One line for a model: static, or dynamic as-is + specialized.
    `spec_ref`: reference data for the specialized shape."""
    base = os.path.join(out_dir, name)

    def go():
        tools.max_err = 0.0
        tools.native_err = 0.0

        def numerics():
            text = ""
            if tools.quench_ref:
                text += ", max |quench - torch| %.1e" % tools.max_err
            if tools.quench_compile:
                text += ", native max |quench - torch| %.1e" % tools.native_err
            return text
        if not dynamic:
            t = import_and_verify(
                tools, onnx_path, base, [dims(in_shape, "i64")],
                [dims(list(in_shape) + [vocab], "f32")], ref=reference(base))
            return "static %s, %.2fs%s" % (
                "x".join(map(str, in_shape)), t, numerics())
        t1 = import_and_verify(
            tools, onnx_path, base, [dims(in_shape, "i64")],
            [dims(list(in_shape) + [vocab], "f32")], ref=reference(base))
        t2 = import_and_verify(
            tools, onnx_path, base + ".specialized",
            [dims(spec_shape, "i64")],
            [dims(list(spec_shape) + [vocab], "f32")],
            shape="input_ids=" + "x".join(map(str, spec_shape)),
            ref=spec_ref)
        return "dynamic %s and --shape input_ids=%s, %.2fs%s" % (
            "x".join(map(str, in_shape)), "x".join(map(str, spec_shape)),
            t1 + t2, numerics())

    res.check(name, go)


def zoo(args, tools, res):
    out_dir = os.path.join(args.work_dir, "zoo")
    cmd = [args.python, os.path.join(HERE, "export_models.py"),
           "--out-dir", out_dir]
    if args.only:
        cmd += ["--only"] + args.only
    t0 = time.time()
    try:
        run(cmd)
    except StepError as e:
        res.failed.append("export_models.py")
        print("FAIL export_models.py: %s" % e, flush=True)
        return
    print("exported the model zoo into %s in %.1fs" % (out_dir,
                                                        time.time() - t0))
    with open(os.path.join(out_dir, "manifest.json")) as f:
        manifest = json.load(f)["models"]
    for m in manifest:
        vocab = m["logits_shape"][-1]
        in_shape = ["?", "?"] if m["dynamic"] else m["onnx_input_shape"]
        # The static twin has the same weights and a [1, 8] reference.
        twin = reference(os.path.join(
            out_dir, m["name"].replace("_dynamic", "_static")))
        check_variants(tools, res, m["name"],
                       os.path.join(out_dir, m["onnx"]), out_dir,
                       m["dynamic"], in_shape, vocab, [1, 8], twin)


def stories(args, tools, res):
    bin_path = args.stories_bin or os.path.normpath(
        os.path.join(REPO, "..", "shared", "models", "stories260K.bin"))
    if not os.path.isfile(bin_path):
        res.skipped.append("stories260k")
        print("SKIPPED stories260k: checkpoint %s is absent" % bin_path,
              flush=True)
        return
    out_dir = os.path.join(args.work_dir, "stories260k")
    script = os.path.join(REPO, "examples", "stories260k_to_onnx.py")
    variants = [
        ("stories260k_op17_static", ["--opset", "17"], False),
        ("stories260k_op13_dynamic", ["--opset", "13", "--dynamic-seq"], True),
    ]
    for name, flags, dynamic in variants:
        onnx_path = os.path.join(out_dir, name + ".onnx")
        try:
            out, t = run([args.python, script, "--bin", bin_path, "-o",
                          onnx_path, "--seq", str(STORIES_SEQ),
                          "--save-reference"] + flags)
        except StepError as e:
            res.failed.append(name)
            print("FAIL %s: conversion: %s" % (name, e), flush=True)
            continue
        greedy = [l for l in out.splitlines() if l.startswith("greedy")]
        print("converted %s in %.1fs: %s" % (name, t, "; ".join(greedy)),
              flush=True)
        in_shape = [1, "?"] if dynamic else [1, STORIES_SEQ]
        check_variants(tools, res, name, onnx_path, out_dir, dynamic,
                       in_shape, VOCAB_STORIES, [1, STORIES_SEQ],
                       reference(os.path.join(out_dir, name)))


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Import and verify the test models with quench tools.")
    ap.add_argument("--quench-import", required=True)
    ap.add_argument("--quench-opt", required=True)
    ap.add_argument("--work-dir", required=True,
                    help="directory for exported models and IR (created)")
    ap.add_argument("--suite", choices=("all", "zoo", "stories260k"),
                    default="all")
    ap.add_argument("--python", default=(
        "/usr/bin/python3" if os.path.exists("/usr/bin/python3")
        else sys.executable),
        help="interpreter with torch and onnx for the exporters "
        "(default: %(default)s)")
    ap.add_argument("--stories-bin", help="stories260K.bin (default: "
                    "<repo>/../shared/models/stories260K.bin)")
    ap.add_argument("--only", nargs="+", metavar="NAME",
                    help="zoo models to check (see export_models.py --list)")
    ap.add_argument("--quench-compile",
                    help="also compile every model to an executable with "
                    "this quench-compile, run it and compare with PyTorch")
    ap.add_argument("--compile-arg", action="append", default=[],
                    metavar="ARG",
                    help="extra quench-compile argument (repeatable), e.g. "
                    "--compile-arg=--target=cuda --compile-arg=--cuda-emulate")
    ap.add_argument("--numerics", action="store_true",
                    help="compare the imported IR's values with PyTorch "
                    "using test/conformance/quench_ref.py")
    args = ap.parse_args(argv)

    class Tools:
        quench_import = os.path.abspath(args.quench_import)
        quench_opt = os.path.abspath(args.quench_opt)
        quench_compile = (os.path.abspath(args.quench_compile)
                          if args.quench_compile else None)
        compile_args = list(args.compile_arg)
        quench_ref = None
        max_err = 0.0
        native_err = 0.0
    if args.numerics:
        sys.dont_write_bytecode = True  # no __pycache__ in the source tree
        sys.path.insert(0, os.path.join(REPO, "test", "conformance"))
        try:
            import quench_ref
        except ImportError as e:
            print("error: --numerics needs numpy and "
                  "test/conformance/quench_ref.py: %s" % e, file=sys.stderr)
            return 2
        Tools.quench_ref = quench_ref
    for tool in (Tools.quench_import, Tools.quench_opt) + (
            (Tools.quench_compile,) if Tools.quench_compile else ()):
        if not os.access(tool, os.X_OK):
            print("error: %s is not an executable" % tool, file=sys.stderr)
            return 2
    args.work_dir = os.path.abspath(args.work_dir)
    os.makedirs(args.work_dir, exist_ok=True)

    res = Results()
    t0 = time.time()
    if args.suite in ("all", "zoo"):
        zoo(args, Tools, res)
    if args.suite in ("all", "stories260k"):
        stories(args, Tools, res)
    print("summary: %d passed, %d failed, %d skipped (%.1fs)%s" % (
        len(res.passed), len(res.failed), len(res.skipped), time.time() - t0,
        "; failed: " + ", ".join(res.failed) if res.failed else ""))
    if args.suite == "stories260k" and res.skipped and not res.failed:
        print("SKIPPED")
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
