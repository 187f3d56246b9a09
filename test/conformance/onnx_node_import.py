#!/usr/bin/python3
"""Imports the ONNX backend node tests that Quench supports and verifies the IR.

For every test directory under --data-dir holding a model.onnx:

  * skip it when a graph node uses an operator that
    `quench-import --list-supported-ops` does not list, when a node carries a
    subgraph, or when the default-domain opset is outside 13..17 (with
    --retarget-opset, a test of an older opset whose operators all kept
    their definition up to opset 13 runs as an opset-13 model);
  * bind the graph inputs that feed operand positions Quench needs at import
    time (Reshape shape, Slice bounds, Squeeze axes, Clip bounds... see
    CONST_OPERANDS) to the values of test_data_set_0/input_N.pb, by turning
    them into initializers of a rewritten copy of the model; the other inputs
    stay graph inputs;
  * run quench-import on it, then (with --quench-opt) `quench-opt
    --verify-each --verify-roundtrip` on the result and once more on that
    output, which must print identically (parse/print round trip);
  * with --execute, run the IR with the NumPy reference interpreter
    (quench_ref.py) on every test data set (whose bound inputs match data set
    0) and compare with the expected outputs;
  * with --dynamic, first make every graph input and output dimension
    symbolic, which exercises the importer's run-time shape handling.

Tests listed in the xfail file are expected to fail (see read_xfail).
Prints one summary line (and, with -v, one line per test); exits 1 on an
unexpected failure or an unexpected pass, 77 when the test data is missing.
Needs Debian's /usr/bin/python3 (python3-onnx, python3-numpy).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

OPSET_MIN, OPSET_MAX = 13, 17

# (op_type) -> operand positions that Quench reads at import time (they become
# attributes of quench ops). A graph input feeding one of these positions is
# bound to its test_data_set_0 value. Operands that quench ops take as
# run-time tensors (Range start/limit/delta, Gather indices, quantization
# scales...) are deliberately absent: those inputs stay graph inputs.
CONST_OPERANDS = {
    "Reshape": (1,),
    "Expand": (1,),
    "Slice": (1, 2, 3, 4),
    "Squeeze": (1,),
    "Unsqueeze": (1,),
    "Split": (1,),
    "ReduceSum": (1,),  # axes is an input from opset 13 (others: opset 18)
    "ReduceMean": (1,),
    "ReduceMax": (1,),
    "ReduceMin": (1,),
    "ReduceProd": (1,),
    "Clip": (1, 2),
    "Tile": (1,),
    "Trilu": (1,),
    "ConstantOfShape": (0,),
    "Dropout": (1, 2),  # ratio, training_mode
}

def supported_ops(quench_import):
    out = subprocess.run([quench_import, "--list-supported-ops"], check=True,
                         capture_output=True, text=True).stdout
    ops = set()
    for line in out.splitlines():
        line = line.strip()
        if not line:
            continue
        domain, _, op = line.rpartition(":")
        ops.add((domain, op))
    return ops


def norm_domain(d):
    return "" if d in ("", "ai.onnx") else d


def has_subgraph(node):
    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
               for a in node.attribute)


def default_opset(model):
    for imp in model.opset_import:
        if norm_domain(imp.domain) == "":
            return imp.version
    return None


def inputs_to_bind(graph):
    """Names of the graph inputs that feed a CONST_OPERANDS position."""
    inits = {t.name for t in graph.initializer}
    graph_inputs = {i.name for i in graph.input if i.name not in inits}
    wanted = set()
    for node in graph.node:
        if norm_domain(node.domain) != "":
            continue
        for pos in CONST_OPERANDS.get(node.op_type, ()):
            if pos < len(node.input) and node.input[pos] in graph_inputs:
                wanted.add(node.input[pos])
    return wanted


def bind_inputs(model, test_dir, names):
    """Turns the graph inputs `names` into initializers holding the values of
    test_data_set_0. Returns an error string or None."""
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    real_inputs = [i for i in graph.input if i.name not in inits]
    data_dir = os.path.join(test_dir, "test_data_set_0")
    keep = []
    for idx, vi in enumerate(real_inputs):
        if vi.name not in names:
            keep.append(vi)
            continue
        path = os.path.join(data_dir, "input_%d.pb" % idx)
        if not os.path.exists(path):
            return "no %s to bind input '%s'" % (path, vi.name)
        t = onnx.TensorProto()
        with open(path, "rb") as f:
            t.ParseFromString(f.read())
        # Re-serialize through numpy so the name and layout are canonical.
        t = numpy_helper.from_array(numpy_helper.to_array(t), vi.name)
        graph.initializer.append(t)
    others = [i for i in graph.input if i.name in inits]
    del graph.input[:]
    graph.input.extend(others + keep)
    return None


def make_dynamic(model):
    """--dynamic: every dimension of the graph inputs (initializers aside)
    and outputs becomes symbolic, so that the importer's run-time shape
    paths are exercised; value_info is dropped."""
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    for k, vi in enumerate(list(graph.input) + list(graph.output)):
        if vi.name in inits or not vi.type.HasField("tensor_type"):
            continue
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            continue
        for j, dim in enumerate(tt.shape.dim):
            dim.Clear()
            dim.dim_param = "d%d_%d" % (k, j)
    del graph.value_info[:]


def first_lines(text, n=6):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    out = lines[:n]
    if len(lines) > n:
        out.append("... (%d more lines)" % (len(lines) - n))
    return "\n".join(out)


def indent(text):
    return "\n".join("    " + l for l in text.splitlines())


def run(cmd, timeout=120):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        return 124, "", "timed out after %d s: %s" % (timeout, " ".join(cmd))


def check_test(args, test_dir, model, bound, work, rewrite=False):
    """Returns None on success or an error text. `model` is written out
    (instead of using test_dir's) when inputs are bound, with --dynamic, or
    with `rewrite`."""
    model_path = os.path.join(test_dir, "model.onnx")
    if bound or args.dynamic or rewrite:
        if bound:
            err = bind_inputs(model, test_dir, bound)
            if err:
                return err
        if args.dynamic:
            make_dynamic(model)
        model_path = os.path.join(work, "model.onnx")
        onnx.save(model, model_path)
        with open(os.path.join(work, "bound_inputs.json"), "w") as f:
            json.dump(sorted(bound), f)
    mlir = os.path.join(work, "model.mlir")
    rc, _, err = run([args.quench_import, model_path, "-o", mlir])
    if rc != 0:
        return "quench-import exited with %d:\n%s" % (rc, first_lines(err))
    if not args.quench_opt:
        return None
    rt1 = os.path.join(work, "roundtrip1.mlir")
    rc, _, err = run([args.quench_opt, "--verify-each", "--verify-roundtrip",
                      mlir, "-o", rt1])
    if rc != 0:
        return "quench-opt --verify-each --verify-roundtrip exited with " \
               "%d:\n%s" % (rc, first_lines(err))
    rc, out2, err = run([args.quench_opt, "--verify-each", rt1])
    if rc != 0:
        return "quench-opt failed to re-parse its own output (%d):\n%s" % (
            rc, first_lines(err))
    with open(rt1) as f:
        out1 = f.read()
    if out1 != out2:
        return "quench-opt output does not round-trip (printing the " \
               "re-parsed module differs)"
    if args.execute:
        return execute_test(args, test_dir, model, bound, rt1)
    return None


def load_tensor(path):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


def compare(name, got, want):
    if got.shape != want.shape:
        return "%s: shape %s, expected %s" % (name, got.shape, want.shape)
    if got.dtype != want.dtype:
        return "%s: dtype %s, expected %s" % (name, got.dtype, want.dtype)
    if np.issubdtype(want.dtype, np.floating):
        tol = 1e-2 if want.dtype == np.float16 else 1e-4
        ok = np.isclose(got.astype(np.float64), want.astype(np.float64),
                        rtol=tol, atol=tol, equal_nan=True)
    else:
        ok = got == want
    if not np.all(ok):
        bad = np.argwhere(~ok)
        i = tuple(bad[0])
        return "%s: %d of %d elements differ, first at %s: %s vs expected %s" \
            % (name, len(bad), want.size, list(i), got[i], want[i])
    return None


def execute_test(args, test_dir, model, bound, mlir):
    """Runs the IR with the NumPy reference interpreter on every data set
    whose bound inputs match test_data_set_0, and compares the outputs."""
    import quench_ref
    rc, generic, err = run([args.quench_opt, "--mlir-print-op-generic", mlir])
    if rc != 0:
        return "quench-opt --mlir-print-op-generic failed:\n" + first_lines(err)
    try:
        fn = quench_ref.parse_module(generic)
    except quench_ref.Unsupported as e:
        return "reference interpreter: unsupported %s" % e
    inits = {t.name for t in model.graph.initializer} - set(bound)
    orig_inputs = [i.name for i in onnx.load(
        os.path.join(test_dir, "model.onnx")).graph.input if i.name not in inits]
    out_names = [o.name for o in model.graph.output]
    sets = sorted(d for d in os.listdir(test_dir)
                  if d.startswith("test_data_set_"))
    ref0 = {}
    for ds in sets:
        dsdir = os.path.join(test_dir, ds)
        values = {}
        for idx, nm in enumerate(orig_inputs):
            path = os.path.join(dsdir, "input_%d.pb" % idx)
            if os.path.exists(path):
                values[nm] = load_tensor(path)
        if ds == "test_data_set_0":
            ref0 = {k: values[k] for k in bound}
        elif any(not np.array_equal(values.get(k), ref0[k]) for k in bound):
            continue
        try:
            outs = fn.run([values[nm] for nm in fn.input_names])
        except quench_ref.Unsupported as e:
            return "reference interpreter: unsupported %s" % e
        except Exception as e:  # pylint: disable=broad-except
            return "%s: execution failed: %s: %s" % (ds, type(e).__name__, e)
        for k, (nm, got) in enumerate(zip(out_names, outs)):
            want = load_tensor(os.path.join(dsdir, "output_%d.pb" % k))
            msg = compare(nm, np.asarray(got), want)
            if msg:
                return "%s: %s" % (ds, msg)
    return None


XFAIL_TAGS = ("[execute]", "[dynamic]")


def read_xfail(path, modes):
    """`test_name  # reason` expects the test to fail. Tags restrict an entry
    to runs with those options: `test_name [execute]  # reason` (the IR
    imports, but the reference run disagrees with the test data) or
    `[dynamic]` (fails only with symbolic dimensions)."""
    xfail = {}
    if not path:
        return xfail
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            text, _, reason = line.partition("#")
            words = text.split()
            if not words:
                continue
            if not reason.strip():
                sys.exit("%s:%d: xfail entry '%s' has no '# reason'"
                         % (path, lineno, text.strip()))
            tags = words[1:]
            if any(t not in XFAIL_TAGS for t in tags):
                sys.exit("%s:%d: malformed xfail entry '%s' (tags: %s)"
                         % (path, lineno, text.strip(), ", ".join(XFAIL_TAGS)))
            if all(t in modes for t in tags):
                xfail[words[0]] = reason.strip()
    return xfail


def retargetable(model, opset):
    """True when every node's operator has the same definition at `opset` as
    at OPSET_MIN, so that the model means the same with opset OPSET_MIN."""
    if opset is None or opset > OPSET_MIN:
        return False
    for n in model.graph.node:
        try:
            old = onnx.defs.get_schema(n.op_type, opset, n.domain)
            new = onnx.defs.get_schema(n.op_type, OPSET_MIN, n.domain)
        except onnx.defs.SchemaError:
            return False
        if old.since_version != new.since_version:
            return False
    return True


def node_tests(data_dir, name_filter=None):
    """(name, directory) of every node test under data_dir that has a
    model.onnx and matches name_filter (a compiled regex, or None), sorted."""
    for name in sorted(os.listdir(data_dir)):
        test_dir = os.path.join(data_dir, name)
        if not os.path.isfile(os.path.join(test_dir, "model.onnx")):
            continue
        if name_filter and not name_filter.search(name):
            continue
        yield name, test_dir


def classify(model, sup, retarget=False):
    """Returns a skip reason ('ops: ...' / 'opset: ...') or None. With
    `retarget`, a model of an older opset whose operators did not change
    up to OPSET_MIN is moved to OPSET_MIN (and not skipped)."""
    unsupported = sorted(
        {("%s:%s" % (norm_domain(n.domain), n.op_type))
         for n in model.graph.node
         if (norm_domain(n.domain), n.op_type) not in sup
         or has_subgraph(n)})
    if unsupported:
        return "ops", "unsupported: " + ", ".join(unsupported)
    opset = default_opset(model)
    if retarget and opset is not None and opset < OPSET_MIN and \
            retargetable(model, opset):
        for imp in model.opset_import:
            if norm_domain(imp.domain) == "":
                imp.version = OPSET_MIN
        return None
    if opset is None or not OPSET_MIN <= opset <= OPSET_MAX:
        return "opset", "opset %s" % opset
    return None


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quench-import", required=True)
    ap.add_argument("--quench-opt")
    ap.add_argument("--data-dir",
                    default="/usr/share/libonnx-testdata/data/node")
    ap.add_argument("--xfail",
                    default=os.path.join(here, "onnx_node_import.xfail"),
                    help="expected failures ('' for none)")
    ap.add_argument("--work-dir",
                    help="keep rewritten models and IR here (default: a "
                         "temporary directory, removed afterwards)")
    ap.add_argument("--execute", action="store_true",
                    help="also run the IR with the NumPy reference "
                         "interpreter (quench_ref.py) on the test data and "
                         "compare with the expected outputs (needs "
                         "--quench-opt)")
    ap.add_argument("--dynamic", action="store_true",
                    help="make every graph input and output dimension "
                         "symbolic before importing (exercises run-time "
                         "shape handling; best with --execute)")
    ap.add_argument("--retarget-opset", action="store_true",
                    help="run tests of an opset below %d when none of their "
                         "operators changed up to opset %d, as opset %d "
                         "models" % (OPSET_MIN, OPSET_MIN, OPSET_MIN))
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--filter", help="only tests whose name matches REGEX")
    args = ap.parse_args()
    if args.execute and not args.quench_opt:
        ap.error("--execute needs --quench-opt")

    if not os.path.isdir(args.data_dir):
        print("onnx-node-import: SKIPPED (no test data at %s; install "
              "libonnx-testdata)" % args.data_dir)
        return 77

    sup = supported_ops(args.quench_import)
    modes = {t for t, on in (("[execute]", args.execute),
                             ("[dynamic]", args.dynamic)) if on}
    xfail = read_xfail(args.xfail, modes)
    filt = re.compile(args.filter) if args.filter else None

    tmp = None
    work_root = args.work_dir
    if work_root:
        os.makedirs(work_root, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="onnx-node-import-")
        work_root = tmp

    counts = dict(passed=0, failed=0, xfail=0, xpass=0, ops=0, opset=0)
    seen_tests = set()
    retargeted = set()
    lines = {}
    jobs = []
    for name, test_dir in node_tests(args.data_dir, filt):
        seen_tests.add(name)
        model = onnx.load(os.path.join(test_dir, "model.onnx"))
        opset = default_opset(model)
        skip = classify(model, sup, args.retarget_opset)
        if skip:
            counts[skip[0]] += 1
            if args.verbose:
                lines[name] = "SKIP      %s (%s)" % (name, skip[1])
            continue
        if default_opset(model) != opset:
            retargeted.add(name)
        jobs.append((name, test_dir, model))

    def work(job):
        name, test_dir, model = job
        bound = inputs_to_bind(model.graph)
        wdir = os.path.join(work_root, name)
        os.makedirs(wdir, exist_ok=True)
        return name, bound, check_test(args, test_dir, model, bound, wdir,
                                       rewrite=name in retargeted)

    try:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for name, bound, error in pool.map(work, jobs):
                if error is None and name not in xfail:
                    counts["passed"] += 1
                    if args.verbose:
                        notes = []
                        if bound:
                            notes.append("bound: " + ", ".join(sorted(bound)))
                        if name in retargeted:
                            notes.append("retargeted to opset %d" % OPSET_MIN)
                        lines[name] = "PASS      %s%s" % (
                            name, " (%s)" % "; ".join(notes) if notes else "")
                elif error is None:
                    counts["xpass"] += 1
                    lines[name] = "XPASS     %s (xfail: %s)" % (name,
                                                               xfail[name])
                elif name in xfail:
                    counts["xfail"] += 1
                    if args.verbose:
                        lines[name] = "XFAIL     %s (%s)\n%s" % (
                            name, xfail[name], indent(first_lines(error, 2)))
                else:
                    counts["failed"] += 1
                    lines[name] = "FAIL      %s\n%s" % (
                        name, indent(first_lines(error)))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    for name in sorted(lines):
        print(lines[name])
    if not filt:
        for n in sorted(n for n in xfail if n not in seen_tests):
            print("warning: xfail entry '%s' names no test in %s"
                  % (n, args.data_dir))
    mode = "".join(flag for flag, on in (
        (" --execute", args.execute), (" --dynamic", args.dynamic)) if on)
    retarget_note = ""
    if args.retarget_opset:
        retarget_note = ", %d retargeted to opset %d" % (len(retargeted),
                                                         OPSET_MIN)
    print("onnx-node-import%s: %d passed, %d failed, %d xfail, %d xpass, "
          "%d skipped (unsupported ops: %d, opset: %d)%s"
          % (mode, counts["passed"],
             counts["failed"], counts["xfail"], counts["xpass"],
             counts["ops"] + counts["opset"], counts["ops"], counts["opset"],
             retarget_note))
    return 1 if counts["failed"] or counts["xpass"] else 0


if __name__ == "__main__":
    sys.exit(main())
