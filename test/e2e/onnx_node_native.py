#!/usr/bin/python3
"""Compiles the ONNX backend node tests that Quench supports to native code and checks their outputs.

For every test directory under --data-dir holding a model.onnx, the test is
selected and prepared exactly as the ONNX conformance runner does it
(test/conformance/onnx_node_import.py, whose helpers are imported):

  * it is skipped when a node uses an operator that `quench-import
    --list-supported-ops` does not list or carries a subgraph, or when its
    default-domain opset is outside 13..17; a test of an older opset whose
    operators all kept their definition up to opset 13 runs as an opset-13
    model (the conformance runner's --retarget-opset, always on here);
  * graph inputs that feed operands Quench needs at import time (Reshape
    shape, Slice bounds, Squeeze axes, Clip bounds...) become initializers
    holding test_data_set_0's values;
  * with --dynamic, every graph input and output dimension then becomes
    symbolic.

The prepared model is compiled with `quench-compile MODEL.onnx -o EXE --name
m -O<level>` (the real CPU pipeline, native code, linked with the runtime),
every data set whose bound inputs equal test_data_set_0's is converted to
.npy files and run with `EXE --input NAME=FILE.npy ... --output-dir DIR`,
and every DIR/<output>.npy is compared with output_<k>.pb:

  * shapes and dtypes exactly;
  * floats: NaN where the expected value is NaN (and only there), infinities
    exactly, otherwise |got - want| <= atol + rtol * |want| with rtol 1e-4,
    atol 1e-5 for f32/f64, rtol 1e-3 for f16 and 8e-3 for bf16 (the
    tolerances of test/conformance/run_linalg.py);
  * integers and booleans exactly.

Tests listed in the xfail file (onnx_node_native.xfail, same format as the
conformance runner's: `test_name [dynamic]  # reason`) are expected to fail.
Prints one PASS / FAIL / XFAIL / XPASS line per compiled test (with -v also
one SKIP line per skipped test) and one summary line; exits 1 on an
unexpected failure or an unexpected pass, 77 when the test data is missing.
Needs Debian's /usr/bin/python3 (python3-onnx, python3-numpy).

Run one test by hand, keeping the model, executable and .npy files:
  /usr/bin/python3 test/e2e/onnx_node_native.py \\
      --quench-import build/bin/quench-import \\
      --quench-compile build/bin/quench-compile \\
      --filter '^test_add_bcast$' --work-dir /tmp/nn -v
  (then /tmp/nn/test_add_bcast/{model.onnx,m,test_data_set_0/...})
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import onnx

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "conformance"))
import onnx_node_import as oni  # noqa: E402  (the conformance runner's helpers)

BF16 = onnx.TensorProto.BFLOAT16

# rtol per result dtype; atol is --atol for every float type.
RTOL = {np.dtype(np.float16): 1e-3, "bf16": 8e-3}


def sanitize(name):
    """The executable's file name for an output (runtime/lib/main.c)."""
    s = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    if not s or s[0] == ".":
        s = "_" + s[1:]
    return s


def output_files(names):
    """DIR-relative .npy file names, with main.c's collision rule (a name
    that sanitizes like an earlier one gets its index appended)."""
    files = []
    for k, n in enumerate(names):
        f = sanitize(n) + ".npy"
        if f in files:
            f = "%s_%d.npy" % (sanitize(n), k)
        files.append(f)
    return files


def bf16_to_f32(bits):
    return (np.asarray(bits).astype(np.uint32) << 16).view(np.float32)


def compare(name, got, want, want_bf16, rtol, atol):
    """Returns None or a message. `want_bf16`: `want` holds bfloat16 bit
    patterns (uint16), `got` must then be a V2 (.npy bfloat16) array."""
    if got.shape != want.shape:
        return "%s: shape %s, expected %s" % (name, got.shape, want.shape)
    if want_bf16:
        if got.dtype != np.dtype("V2"):
            return "%s: dtype %s, expected bfloat16 (V2)" % (name, got.dtype)
        got = bf16_to_f32(got.view(np.uint16))
        want = bf16_to_f32(want)
        rtol = RTOL["bf16"]
    elif got.dtype != want.dtype:
        return "%s: dtype %s, expected %s" % (name, got.dtype, want.dtype)
    else:
        rtol = RTOL.get(want.dtype, rtol)
    if want.dtype.kind == "f":
        g = got.astype(np.float64)
        w = want.astype(np.float64)
        with np.errstate(invalid="ignore"):
            ok = (np.abs(g - w) <= atol + rtol * np.abs(w)) | (g == w)
        ok |= np.isnan(g) & np.isnan(w)
    else:
        ok = got == want
    if not np.all(ok):
        bad = np.argwhere(~ok)
        i = tuple(bad[0])
        return "%s: %d of %d elements differ, first at %s: %s vs expected %s" \
            % (name, len(bad), want.size, list(i), got[i], want[i])
    return None


def run(cmd, timeout):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        return 124, "", "timed out after %d s: %s" % (timeout, " ".join(cmd))


def elem_type(vi):
    return vi.type.tensor_type.elem_type if vi.type.HasField(
        "tensor_type") else None


def check_test(opts, name, model_bytes):
    """Prepares, compiles and runs one test. Returns (error or None, notes,
    compile seconds)."""
    test_dir = os.path.join(opts["data_dir"], name)
    work = os.path.join(opts["work_root"], name)
    os.makedirs(work, exist_ok=True)
    model = onnx.ModelProto()
    model.ParseFromString(model_bytes)
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    real = [i for i in graph.input if i.name not in inits]
    outputs = list(graph.output)
    bound = oni.inputs_to_bind(graph)
    if bound:
        err = oni.bind_inputs(model, test_dir, bound)
        if err:
            return err, [], 0.0
    if opts["dynamic"]:
        oni.make_dynamic(model)
    model_path = os.path.join(work, "model.onnx")
    onnx.save(model, model_path)
    notes = ["bound: " + ", ".join(sorted(bound))] if bound else []

    exe = os.path.join(work, "m")
    cmd = [opts["quench_compile"], model_path, "-o", exe, "--name", "m",
           "-O%d" % opts["opt_level"]]
    t0 = time.monotonic()
    rc, _, err = run(cmd, opts["compile_timeout"])
    secs = time.monotonic() - t0
    if rc != 0:
        return "quench-compile exited with %d:\n%s" % (
            rc, oni.first_lines(err)), notes, secs

    out_files = output_files([o.name for o in outputs])
    sets = sorted(d for d in os.listdir(test_dir)
                  if d.startswith("test_data_set_"))
    ref0 = {}
    ran = 0
    for ds in sets:
        dsdir = os.path.join(test_dir, ds)
        values = {}
        for idx, vi in enumerate(real):
            path = os.path.join(dsdir, "input_%d.pb" % idx)
            if os.path.exists(path):
                values[vi.name] = oni.load_tensor(path)
        if ds == "test_data_set_0":
            ref0 = {k: values.get(k) for k in bound}
        elif any(not np.array_equal(values.get(k), ref0[k]) for k in bound):
            continue  # other constants than the ones compiled in
        wdir = os.path.join(work, ds)
        odir = os.path.join(wdir, "out")
        shutil.rmtree(wdir, ignore_errors=True)
        os.makedirs(odir)
        cmd = [exe, "--output-dir", odir]
        if opts["threads"] is not None:
            cmd += ["--threads", str(opts["threads"])]
        for idx, vi in enumerate(real):
            if vi.name in bound:
                continue
            if vi.name not in values:
                return "%s: no input_%d.pb for graph input '%s'" % (
                    ds, idx, vi.name), notes, secs
            arr = values[vi.name]
            if elem_type(vi) == BF16:  # stored as UINT16 bit patterns
                arr = np.ascontiguousarray(arr.astype(np.uint16)).view("V2")
            path = os.path.join(wdir, "input_%d.npy" % idx)
            np.save(path, arr)
            cmd += ["--input", "%s=%s" % (vi.name, path)]
        rc, _, err = run(cmd, opts["run_timeout"])
        if rc != 0:
            return "%s: the executable exited with %d:\n%s" % (
                ds, rc, oni.first_lines(err)), notes, secs
        for k, (vi, fname) in enumerate(zip(outputs, out_files)):
            want = oni.load_tensor(os.path.join(dsdir, "output_%d.pb" % k))
            path = os.path.join(odir, fname)
            if not os.path.exists(path):
                return "%s: no %s for output '%s'" % (ds, fname, vi.name), \
                    notes, secs
            got = np.load(path)
            msg = compare(vi.name, got, want, elem_type(vi) == BF16,
                          opts["rtol"], opts["atol"])
            if msg:
                return "%s: %s" % (ds, msg), notes, secs
        ran += 1
    if ran == 0:
        return "no test data set", notes, secs
    return None, notes, secs


def work(job):
    opts, name, model_bytes = job
    try:
        error, notes, secs = check_test(opts, name, model_bytes)
    except Exception as e:  # pylint: disable=broad-except
        error, notes, secs = "%s: %s" % (type(e).__name__, e), [], 0.0
    if error is None and not opts["keep"]:
        shutil.rmtree(os.path.join(opts["work_root"], name),
                      ignore_errors=True)
    return name, error, notes, secs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quench-import", required=True,
                    help="for --list-supported-ops (test selection)")
    ap.add_argument("--quench-compile", required=True)
    ap.add_argument("--data-dir",
                    default="/usr/share/libonnx-testdata/data/node")
    ap.add_argument("--xfail",
                    default=os.path.join(HERE, "onnx_node_native.xfail"),
                    help="expected failures ('' for none)")
    ap.add_argument("--work-dir",
                    help="keep every test's model, executable and .npy files "
                         "here (default: a temporary directory, removed "
                         "afterwards; failing tests' files are kept only "
                         "with --work-dir)")
    ap.add_argument("--dynamic", action="store_true",
                    help="make every graph input and output dimension "
                         "symbolic before compiling")
    ap.add_argument("-O", dest="opt_level", type=int, default=1,
                    choices=range(4), help="quench-compile's -O (default 1)")
    ap.add_argument("--threads", type=int,
                    help="the executables' --threads (default: theirs, every "
                         "core)")
    ap.add_argument("--rtol", type=float, default=1e-4,
                    help="relative tolerance for f32/f64 (f16: 1e-3, bf16: "
                         "8e-3)")
    ap.add_argument("--atol", type=float, default=1e-5)
    ap.add_argument("--compile-timeout", type=int, default=300)
    ap.add_argument("--run-timeout", type=int, default=60)
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="also print the skipped tests, the bound inputs and "
                         "compile times")
    ap.add_argument("--filter", help="only tests whose name matches REGEX")
    args = ap.parse_args()

    label = "onnx-node-native" + (" --dynamic" if args.dynamic else "")
    if not os.path.isdir(args.data_dir):
        print("%s: SKIPPED (no test data at %s; install libonnx-testdata)"
              % (label, args.data_dir))
        return 77
    start = time.monotonic()
    sup = oni.supported_ops(args.quench_import)
    xfail = oni.read_xfail(args.xfail, {"[dynamic]"} if args.dynamic else set())
    filt = re.compile(args.filter) if args.filter else None

    tmp = None
    work_root = args.work_dir
    if work_root:
        work_root = os.path.abspath(work_root)
        os.makedirs(work_root, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="onnx-node-native-")
        work_root = tmp
    opts = dict(data_dir=args.data_dir, work_root=work_root,
                dynamic=args.dynamic, quench_compile=args.quench_compile,
                opt_level=args.opt_level, threads=args.threads,
                rtol=args.rtol, atol=args.atol, keep=bool(args.work_dir),
                compile_timeout=args.compile_timeout,
                run_timeout=args.run_timeout)

    counts = dict(passed=0, failed=0, xfail=0, xpass=0, ops=0, opset=0)
    seen = set()
    retargeted = set()
    jobs = []
    for name, test_dir in oni.node_tests(args.data_dir, filt):
        seen.add(name)
        model = onnx.load(os.path.join(test_dir, "model.onnx"))
        opset = oni.default_opset(model)
        skip = oni.classify(model, sup, retarget=True)
        if skip:
            counts[skip[0]] += 1
            if args.verbose:
                print("SKIP   %s (%s)" % (name, skip[1]))
            continue
        if oni.default_opset(model) != opset:
            retargeted.add(name)
        jobs.append((opts, name, model.SerializeToString()))

    compile_secs = 0.0
    try:
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for name, error, notes, secs in pool.map(work, jobs):
                compile_secs += secs
                if name in retargeted:
                    notes.append("retargeted to opset %d" % oni.OPSET_MIN)
                if args.verbose:
                    notes.append("compiled in %.1f s" % secs)
                note = " (%s)" % "; ".join(notes) if notes else ""
                if error is None and name not in xfail:
                    counts["passed"] += 1
                    print("PASS   %s%s" % (name, note))
                elif error is None:
                    counts["xpass"] += 1
                    print("XPASS  %s (xfail: %s)" % (name, xfail[name]))
                elif name in xfail:
                    counts["xfail"] += 1
                    print("XFAIL  %s (%s)" % (name, xfail[name]))
                    if args.verbose:
                        print(oni.indent(oni.first_lines(error, 2)))
                else:
                    counts["failed"] += 1
                    print("FAIL   %s%s\n%s" % (name, note,
                                               oni.indent(oni.first_lines(error))))
                sys.stdout.flush()
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    if not filt:
        for n in sorted(n for n in xfail if n not in seen):
            print("warning: xfail entry '%s' names no test in %s"
                  % (n, args.data_dir))
    print("%s: %d passed, %d failed, %d xfail, %d xpass, %d skipped "
          "(unsupported ops: %d, opset: %d), %d retargeted to opset %d; "
          "-O%d, rtol %g atol %g (f16 rtol %g, bf16 %g); %.0f s "
          "(compiling %.0f s)"
          % (label, counts["passed"], counts["failed"], counts["xfail"],
             counts["xpass"], counts["ops"] + counts["opset"], counts["ops"],
             counts["opset"], len(retargeted), oni.OPSET_MIN,
             args.opt_level, args.rtol, args.atol,
             RTOL[np.dtype(np.float16)], RTOL["bf16"],
             time.monotonic() - start, compile_secs))
    return 1 if counts["failed"] or counts["xpass"] else 0


if __name__ == "__main__":
    sys.exit(main())
