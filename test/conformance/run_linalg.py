#!/usr/bin/python3
"""Developer tool: numerically check `convert-quench-to-linalg` on ONNX node tests.

For every ONNX node test directory given (e.g.
/usr/share/libonnx-testdata/data/node/test_add_bcast), this script
  1. prepares the model with the ONNX conformance runner's helpers
     (onnx_node_import.py, imported, not changed): a test of an older opset
     whose operators did not change is retargeted to opset 13, and inputs
     that Quench needs as constants (axes, split sizes, clip bounds, ...)
     become initializers holding the test's values; with --dynamic every
     input/output dimension then becomes symbolic, so the dynamic-shape
     code paths run on the same data;
  2. imports it with quench-import and appends a `main` that feeds the
     test's inputs as constants, calls the graph, casts each result to f64
     (floats) or i64 (integers, bools) with quench.cast and prints it with
     the MLIR runner utilities;
  3. runs quench-opt --convert-quench-to-linalg followed by an upstream
     lowering to the LLVM dialect (quench-cpu-pipeline, see LOWERING below);
  4. executes it with mlir-runner and compares with output_*.pb
     (floats: |got - want| <= atol + rtol * |want|, rtol 1e-3 for f16 and
     8e-3 for bf16 results; NaNs must match; integers and bools exactly).
With --mlir FILE, every `// -----`-separated function of FILE (quench IR,
e.g. test/conformance/linalg_cases.txt) runs the same way on random inputs
(a `?` dimension is 5) and is compared with the NumPy reference interpreter
quench_ref.py (or an ODS-faithful reference written here, see OVERRIDES).

It is a developer tool, not wired into CTest. Usage:
  /usr/bin/python3 test/conformance/run_linalg.py [--build build-conv]
      [--dynamic] [--rtol 1e-4] [--atol 1e-5] [-v]
      [--mlir test/conformance/linalg_cases.txt] [TEST_DIR_OR_NAME...]
A bare name is looked up in /usr/share/libonnx-testdata/data/node/.
Exit status 0 iff every test passes (skipped tests aside). Needs Debian's
python3 (onnx, numpy) and /usr/lib/llvm-22/bin/mlir-runner.
"""

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

NODE_DIR = "/usr/share/libonnx-testdata/data/node"
LLVM_BIN = "/usr/lib/llvm-22/bin"
LLVM_LIB = "/usr/lib/llvm-22/lib"

# The registered CPU pipeline (lib/Target/CPU/CPUPipeline.cpp), without quench-prepare so that
# exactly the imported ops are checked.
LOWERING = ["--quench-cpu-pipeline=prepare=0"]

MLIR_TYPES = {
    np.dtype("float32"): "f32", np.dtype("float16"): "f16",
    np.dtype("float64"): "f64", np.dtype("int8"): "i8",
    np.dtype("int16"): "i16", np.dtype("int32"): "i32",
    np.dtype("int64"): "i64", np.dtype("uint8"): "ui8",
    np.dtype("uint16"): "ui16", np.dtype("uint32"): "ui32",
    np.dtype("uint64"): "ui64", np.dtype("bool"): "i1",
}


def tensor_type(shape, elem):
    return "tensor<" + "".join(f"{d}x" for d in shape) + elem + ">"


def dense_literal(arr):
    """An MLIR dense attribute for `arr` (hex for floats: exact)."""
    if isinstance(arr, BF16Bits):
        return 'dense<"0x' + np.asarray(arr).astype("<u2").tobytes().hex().upper() + '">'
    if arr.dtype.kind == "f":
        return 'dense<"0x' + arr.astype(arr.dtype.newbyteorder("<")).tobytes().hex().upper() + '">'
    if arr.dtype == np.bool_:
        txt = str(arr.tolist()).replace("True", "true").replace("False", "false")
    else:
        txt = str(arr.tolist())
    return f"dense<{txt}>"


def load_pbs(test_dir, kind):
    files = sorted(glob.glob(os.path.join(test_dir, "test_data_set_0", f"{kind}_*.pb")),
                   key=lambda p: int(re.search(r"_(\d+)\.pb$", p).group(1)))
    out = []
    for f in files:
        t = onnx.TensorProto()
        with open(f, "rb") as fh:
            t.ParseFromString(fh.read())
        arr = numpy_helper.to_array(t)
        if t.data_type == onnx.TensorProto.BFLOAT16:
            arr = BF16Bits(arr.astype(np.uint16))
        out.append(arr)
    return out


class BF16Bits(np.ndarray):
    """A uint16 array holding bfloat16 bit patterns (onnx 1.12's to_array)."""

    def __new__(cls, bits):
        return np.asarray(bits).view(cls)

    def as_float(self):
        return (np.asarray(self).astype(np.uint32) << 16).view(np.float32)


def make_dynamic(m):
    inits = {t.name for t in m.graph.initializer}
    for i, inp in enumerate(m.graph.input):
        if inp.name in inits:
            continue
        for j, d in enumerate(inp.type.tensor_type.shape.dim):
            d.Clear()
            d.dim_param = f"in{i}_d{j}"
    del m.graph.value_info[:]
    for i, o in enumerate(m.graph.output):
        for j, d in enumerate(o.type.tensor_type.shape.dim):
            d.Clear()
            d.dim_param = f"out{i}_d{j}"


def parse_printed(text):
    """Values printed by printMemrefF64/I64, one list per printed memref."""
    blocks = re.split(r"Unranked Memref[^\n]*\n", text)[1:]
    num = re.compile(r"-?nan|-?inf|[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")
    vals = []
    for b in blocks:
        toks = num.findall(b)
        vals.append(np.array([float(t) for t in toks], dtype=np.float64))
    return vals


def run_test(test_dir, args, work):
    # The ONNX conformance runner's helpers (used, not modified): retarget
    # old-opset tests whose operators did not change, and bind inputs that
    # Quench needs as constants (axes, split sizes, clip bounds, ...).
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import onnx_node_import as oni  # noqa: E402
    name = os.path.basename(test_dir.rstrip("/"))
    m = onnx.load(os.path.join(test_dir, "model.onnx"))
    inputs, outputs = load_pbs(test_dir, "input"), load_pbs(test_dir, "output")
    # bf16 test data is stored as UINT16 bit patterns; the model says bf16.
    BF16 = onnx.TensorProto.BFLOAT16
    for vals, decl in ((inputs, m.graph.input), (outputs, m.graph.output)):
        for i, v in enumerate(decl[:len(vals)]):
            if v.type.tensor_type.elem_type == BF16 and not isinstance(vals[i], BF16Bits):
                vals[i] = BF16Bits(vals[i].astype(np.uint16))
    opset = oni.default_opset(m)
    if opset is not None and opset < oni.OPSET_MIN and oni.retargetable(m, opset):
        for imp in m.opset_import:
            if oni.norm_domain(imp.domain) == "":
                imp.version = oni.OPSET_MIN
    inits = {t.name for t in m.graph.initializer}
    real = [i.name for i in m.graph.input if i.name not in inits]
    bound = oni.inputs_to_bind(m.graph)
    if bound:
        err = oni.bind_inputs(m, test_dir, bound)
        if err:
            return "skipped", [err]
        inputs = [a for n, a in zip(real, inputs) if n not in bound]
    if args.dynamic:
        make_dynamic(m)
    model = os.path.join(work, name + ".onnx")
    onnx.save(m, model)
    imp = subprocess.run([os.path.join(args.build, "bin", "quench-import"), model,
                          "--func-name=graph"], capture_output=True, text=True)
    if imp.returncode != 0:
        return "import-failed", imp.stderr.strip().splitlines()[-1:]
    status, got = compile_and_run(imp.stdout, "graph", inputs, name, args, work)
    if status != "ok":
        return status, got
    return compare(got, outputs, args)


def compile_and_run(mod, fn, inputs, name, args, work):
    """Appends a main calling @fn on `inputs`, lowers and runs it; returns
    ("ok", [flat float64 arrays]) or (status, messages)."""
    sig = re.search(r"func\.func @" + fn + r"\((.*?)\) -> \(?(.*?)\)?\s*(attributes.*)?\{\n", mod)
    arg_types = re.findall(r"(tensor<[^>]*>)", sig.group(1))
    res_types = re.findall(r"(tensor<[^>]*>)", sig.group(2))
    if len(arg_types) != len(inputs):
        return "skipped", ["optional inputs/outputs"]
    body = []
    names = []
    for i, (arr, ty) in enumerate(zip(inputs, arg_types)):
        if arr.dtype not in MLIR_TYPES or arr.size == 0:
            return "skipped", [f"input dtype {arr.dtype} / empty"]
        elem = "bf16" if isinstance(arr, BF16Bits) else MLIR_TYPES[arr.dtype]
        st = tensor_type(arr.shape, elem)
        body.append(f"    %c{i} = quench.constant {dense_literal(arr)} : {st}")
        want_dims = re.findall(r"(\?|\d+)x", ty)
        if len(want_dims) != arr.ndim or any(
                w != "?" and int(w) != d for w, d in zip(want_dims, arr.shape)):
            return "skipped", [f"input {i} data {st} does not fit {ty}"]
        if st != ty:
            # A quench.reshape (not tensor.cast) so that unsigned tensors are
            # converted with everything else.
            shp = tensor_type([arr.ndim], "i64")
            body.append(f"    %s{i} = quench.constant dense<{list(arr.shape)}> : {shp}")
            body.append(f"    %a{i} = quench.reshape %c{i}(%s{i}) : {st}, {shp} -> {ty}")
            names.append(f"%a{i}")
        else:
            names.append(f"%c{i}")
    body.append(f"    %r:{len(res_types)} = call @{fn}({', '.join(names)}) : "
                f"({', '.join(arg_types)}) -> ({', '.join(res_types)})")
    for i, ty in enumerate(res_types):
        elem = re.search(r"x?([a-z]+\d+)>$", ty).group(1)
        shape = ty[len("tensor<"):-len(elem) - 1]
        fl = elem.startswith("f") or elem.startswith("bf")
        wide = "f64" if fl else "i64"
        wt = f"tensor<{shape}{wide}>"
        mt = f"memref<{shape}{wide}>"
        body.append(f"    %w{i} = quench.cast %r#{i} : {ty} to {wt}")
        body.append(f"    %m{i} = bufferization.to_buffer %w{i} : {wt} to {mt}")
        body.append(f"    %u{i} = memref.cast %m{i} : {mt} to memref<*x{wide}>")
        pfn = "printMemrefF64" if fl else "printMemrefI64"
        body.append(f"    call @{pfn}(%u{i}) : (memref<*x{wide}>) -> ()")
    body.append("    return")
    wrapper = ("  func.func private @printMemrefF64(memref<*xf64>)\n"
               "  func.func private @printMemrefI64(memref<*xi64>)\n"
               "  func.func @main() {\n" + "\n".join(body) + "\n  }\n")
    mod = mod.rstrip()
    resources = ""
    if "{-#" in mod:
        mod, resources = mod.split("{-#", 1)
        mod, resources = mod.rstrip(), "{-#" + resources
    assert mod.endswith("}")
    mod = mod[:-1] + wrapper + "}\n" + resources
    src = os.path.join(work, name + ".mlir")
    with open(src, "w") as f:
        f.write(mod)
    opt = subprocess.run([os.path.join(args.build, "bin", "quench-opt"), src] + LOWERING,
                         capture_output=True, text=True)
    if opt.returncode != 0:
        return "lower-failed", opt.stderr.strip().splitlines()[:3]
    run = subprocess.run(
        [os.path.join(LLVM_BIN, "mlir-runner"), "-e", "main", "-entry-point-result=void",
         f"-shared-libs={LLVM_LIB}/libmlir_runner_utils.so,{LLVM_LIB}/libmlir_c_runner_utils.so"],
        input=opt.stdout, capture_output=True, text=True, timeout=300)
    if run.returncode != 0:
        return "run-failed", run.stderr.strip().splitlines()[:3]
    got = parse_printed(run.stdout)
    if len(got) != len(res_types):
        return "run-failed", [f"printed {len(got)} results, want {len(res_types)}"]
    return "ok", got


def compare(got, outputs, args):
    msgs = []
    for i, (g, want) in enumerate(zip(got, outputs)):
        orig_want = want
        if isinstance(want, BF16Bits):
            want = want.as_float()
        w = np.asarray(want).astype(np.float64).ravel()
        if w.size == 0:
            continue  # the printer's output for empty memrefs is not parsed
        if g.size != w.size:
            msgs.append(f"result {i}: {g.size} values, want {w.size}")
            continue
        if np.asarray(want).dtype.kind == "f":
            # f16/bf16 results: the conversion and the reference may round
            # differently by one unit in the last place.
            rtol = {np.dtype(np.float16): 1e-3}.get(np.asarray(want).dtype, args.rtol)
            if isinstance(orig_want, BF16Bits):
                rtol = 8e-3
            nan_ok = np.array_equal(np.isnan(g), np.isnan(w))
            fin = ~np.isnan(w)
            with np.errstate(invalid="ignore"):
                bad = ~(np.abs(g[fin] - w[fin]) <= args.atol + rtol * np.abs(w[fin]))
                bad &= ~(g[fin] == w[fin])  # infinities
            if not nan_ok or bad.any():
                j = int(np.flatnonzero(fin)[np.argmax(bad)]) if bad.any() else -1
                msgs.append(f"result {i}: {int(bad.sum())} mismatches, first at {j}: "
                            f"got {g[j]!r} want {w[j]!r}; nan match {nan_ok}")
        elif not np.array_equal(g, w):
            idx = int(np.argmax(g != w))
            msgs.append(f"result {i}: mismatch at {idx}: got {g[idx]} want {w[idx]}")
    return ("pass" if not msgs else "FAIL"), msgs


def random_input(ttype, rng, ints):
    m = re.fullmatch(r"tensor<(.*)>", ttype)
    parts = m.group(1).split("x")
    # A dynamic dimension gets extent 5 (cases are written so that this fits).
    shape, elem = [5 if d == "?" else int(d) for d in parts[:-1]], parts[-1]
    if elem == "i1":
        return rng.random(shape) < 0.5
    if elem in ("f16", "f32", "f64"):
        return rng.standard_normal(shape).astype({"f16": np.float16, "f32": np.float32,
                                                  "f64": np.float64}[elem])
    if elem == "bf16":
        f = rng.standard_normal(shape).astype(np.float32)
        return BF16Bits((f.view(np.uint32) >> 16).astype(np.uint16))
    dt = {"i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64,
          "ui8": np.uint8, "ui16": np.uint16, "ui32": np.uint32, "ui64": np.uint64}[elem]
    lo = 0 if elem.startswith("u") else -ints
    return rng.integers(lo, ints + 1, size=shape).astype(dt)


def ods_float_to_int(x, dt):
    """CastOp's float -> integer rule: truncate, saturate, NaN -> 0."""
    info = np.iinfo(dt)
    with np.errstate(invalid="ignore"):
        t = np.clip(np.trunc(x.astype(np.float64)), info.min, info.max)
    return np.where(np.isnan(t), 0, t).astype(dt)


def _casts_saturate(x):
    # quench_ref.py's cast does not saturate nor map NaN to 0 (it follows
    # NumPy's astype), so this case has its reference written here.
    import quench_ref  # noqa: E402
    big = (x * np.float32(200)).astype(np.float32)
    with np.errstate(invalid="ignore"):
        nan = np.sqrt(x)
    hx = (x * np.float32(3.0e4)).astype(np.float32)
    return [ods_float_to_int(big, np.int8), ods_float_to_int(big, np.uint8),
            ods_float_to_int(nan, np.int32), hx.astype(np.float16),
            quench_ref.bf16_to_bits(x), nan != 0]


# Cases whose reference is computed here instead of by quench_ref.py.
OVERRIDES = {"casts_saturate": _casts_saturate}


def run_mlir_case(text, idx, args, work):
    """One `// -----` chunk of a quench .mlir file: random inputs, reference
    from quench_ref.py (the NumPy interpreter of the dialect)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import quench_ref  # noqa: E402
    fn = re.search(r"func\.func @(\w+)\((.*?)\)", text, re.S)
    name, sig = fn.group(1), fn.group(2)
    arg_types = re.findall(r"(tensor<[^>]*>)", sig)
    rng = np.random.default_rng(1234 + idx)
    ints = 3 if re.search(r"quench\.gather", text) else 20
    inputs = [random_input(t, rng, ints) for t in arg_types]
    src = os.path.join(work, f"case{idx}.mlir")
    with open(src, "w") as f:
        f.write(text)
    gen = subprocess.run([os.path.join(args.build, "bin", "quench-opt"), src,
                          "--mlir-print-op-generic"], capture_output=True, text=True)
    if gen.returncode != 0:
        return name, "invalid", gen.stderr.strip().splitlines()[:2]
    ref_in = [np.asarray(a) for a in inputs]
    if name in OVERRIDES:
        want = OVERRIDES[name](*ref_in)
    else:
        want = quench_ref.parse_module(gen.stdout).run(ref_in)
    for i, t in enumerate(re.findall(r"-> \(?(.*?)\)?\s*\{", text)[0].split(",")):
        if "bf16" in t:
            want[i] = BF16Bits(np.asarray(want[i]).astype(np.uint16))
    status, got = compile_and_run("module {\n" + text + "\n}\n", name, inputs,
                                  f"case{idx}", args, work)
    if status != "ok":
        return name, status, got
    return (name,) + compare(got, want, args)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tests", nargs="*")
    ap.add_argument("--mlir", action="append", default=[],
                    help="quench .mlir file of `// -----`-separated functions "
                         "with static arguments, run on random inputs against "
                         "test/conformance/quench_ref.py")
    ap.add_argument("--build", default="build-conv")
    ap.add_argument("--dynamic", action="store_true",
                    help="make every input dimension symbolic before import")
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--atol", type=float, default=1e-5)
    ap.add_argument("-v", action="store_true")
    args = ap.parse_args()
    failed = 0
    counts = {}
    with tempfile.TemporaryDirectory() as work:
        for t in args.tests:
            d = t if os.path.isdir(t) else os.path.join(NODE_DIR, t)
            try:
                status, msgs = run_test(d, args, work)
            except Exception as e:  # noqa: BLE001 - report and go on
                status, msgs = "error", [repr(e)]
            counts[status] = counts.get(status, 0) + 1
            failed += status not in ("pass", "skipped")
            if status != "pass" or args.v:
                print(f"{status:13} {os.path.basename(d.rstrip('/'))}" +
                      "".join("\n    " + m for m in msgs))
        for path in args.mlir:
            chunks = open(path).read().split("// -----")
            for idx, chunk in enumerate(chunks):
                if "func.func" not in chunk:
                    continue
                try:
                    name, status, msgs = run_mlir_case(chunk, idx, args, work)
                except Exception as e:  # noqa: BLE001
                    name, status, msgs = f"chunk{idx}", "error", [repr(e)]
                counts[status] = counts.get(status, 0) + 1
                failed += status not in ("pass", "skipped")
                if status != "pass" or args.v:
                    print(f"{status:13} {os.path.basename(path)}:{name}" +
                          "".join("\n    " + m for m in msgs))
    print(" ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
