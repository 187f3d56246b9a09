#!/usr/bin/python3
"""Pre-quantized ONNX models: Quench's compiled executables vs ONNX Runtime.

Writes the models of test/models/make_quant_models.py (QDQ MatMul/Gemm,
QLinearMatMul, MatMulInteger, DynamicQuantizeLinear + MatMulInteger,
MatMulNBits), compiles each with `quench-compile --emit=exe` (the CPU
pipeline; QDQ matmuls go through quench-fold-qdq), runs it on the saved
inputs, runs the same model with ONNX Runtime (bench/ort/run.js, CPU,
1 thread) and compares:

  * integer outputs: bit-exact with ONNX Runtime (graph optimizations on,
    i.e. with ORT's own QDQ folding), and with NumPy's exact int64 product
    where the model saves one;
  * float outputs: |quench - ort| <= FLOAT_RTOL * max(1, max|ort|);
  * QDQ models are also run by ONNX Runtime with graph optimizations
    disabled, i.e. on the unfolded float path (DequantizeLinear, float
    MatMul, QuantizeLinear): the folded results may differ from it only by
    rounding: at most UNFOLDED_MAX_CODES code(s) for quantized outputs, and
    UNFOLDED_RTOL for float outputs (reported, and asserted);
  * saturation_u8s8 (u8 x s8 pair sums beyond int16): Quench must equal the
    exact product; what ONNX Runtime gives is reported, not asserted (it
    depends on the CPU: vpmaddubsw saturates without VNNI). The data must
    overflow a NumPy model of the saturating kernel. When qemu-user is
    installed, ORT and an AVX2 (x86-64-v3) build of Quench also run under
    `qemu-x86_64 -cpu Haswell` (no VNNI): Quench must stay exact there.

Exits 77 (CTest SKIP_RETURN_CODE) when node or onnxruntime-node is missing
(install: bench/ort/setup.sh).

Usage: ort_quant.py --build BUILD_DIR --work DIR [--only NAME ...] [--json F]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ORT_DIR = os.path.join(ROOT, "bench", "ort")
SKIP = 77

# Float outputs, Quench vs ONNX Runtime (both compute the same formula;
# they differ only in the order of float additions).
FLOAT_RTOL = 1e-5
# Folded (exact integer product) vs ONNX Runtime's unfolded float graph.
UNFOLDED_MAX_CODES = 1
UNFOLDED_RTOL = 1e-5


def run(cmd):
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(f"command failed: {' '.join(cmd)}\n{res.stdout}"
                         f"{res.stderr}\n")
        sys.exit(1)
    return res


def ort_available():
    if shutil.which("node") is None:
        return "node is not installed"
    probe = subprocess.run(
        ["node", "-e", "require(process.argv[1])",
         os.path.join(ORT_DIR, "node_modules", "onnxruntime-node")],
        capture_output=True, text=True)
    if probe.returncode != 0:
        return f"onnxruntime-node is not installed (run {ORT_DIR}/setup.sh)"
    return None


def vpmaddubsw_product(a, b):
    """The u8 x s8 product as AVX2 kernels without VNNI compute it:
    vpmaddubsw adds the two products of each adjacent K pair with int16
    saturation, vpmaddwd/vpaddd accumulate the pair sums in int32."""
    a64, b64 = a.astype(np.int64), b.astype(np.int64)
    k = a.shape[-1]
    assert k % 2 == 0
    pairs = (a64[:, 0:k:2, None] * b64[None, 0:k:2, :] +
             a64[:, 1:k:2, None] * b64[None, 1:k:2, :])
    return np.clip(pairs, -32768, 32767).sum(axis=1)


def emulated_avx2(compiler, work, models, m, ins, exact, sat, entry,
                  failures):
    """Runs ONNX Runtime and an x86-64-v3 (AVX2) build of Quench under
    `qemu-x86_64 -cpu Haswell` (a CPU without AVX-512 and VNNI, so ORT's
    kernel dispatch picks its AVX2 u8 x s8 path), when qemu-user is
    installed. Quench must stay exact; ORT's result is reported."""
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        print("  (qemu-x86_64 not installed: no emulated AVX2-only run)")
        return
    name = m["name"]
    emu = [qemu, "-cpu", "Haswell"]
    out = {k: os.path.join(work, k, name) for k in ("ort-avx2", "quench-avx2")}
    for d in out.values():
        os.makedirs(d, exist_ok=True)
    exe = os.path.join(work, "exe", name + "-x86-64-v3")
    run([compiler, os.path.join(models, name + ".onnx"), "-o", exe,
         "--emit=exe", "--cpu=x86-64-v3"])
    run(emu + [exe] + ins + ["--output-dir", out["quench-avx2"]])
    run(emu + [shutil.which("node"), os.path.join(ORT_DIR, "run.js"),
               os.path.join(models, name + ".onnx"), "--threads", "1",
               "--output-dir", out["ort-avx2"]] + ins)
    q = np.load(os.path.join(out["quench-avx2"], "y.npy")).astype(np.int64)
    r = np.load(os.path.join(out["ort-avx2"], "y.npy")).astype(np.int64)
    entry["avx2_emulated_quench_exact"] = bool(np.array_equal(q, exact))
    entry["avx2_emulated_ort_mismatches"] = int((r != exact).sum())
    entry["avx2_emulated_ort_max_diff"] = int(np.abs(r - exact).max())
    entry["avx2_emulated_ort_equals_vpmaddubsw_model"] = bool(
        np.array_equal(r, sat))
    print(f"  emulated Haswell (AVX2, no VNNI): Quench x86-64-v3 exact: "
          f"{entry['avx2_emulated_quench_exact']}; ORT: "
          f"{entry['avx2_emulated_ort_mismatches']}/{r.size} elements wrong "
          f"(max |diff| {entry['avx2_emulated_ort_max_diff']}), equal to the "
          f"saturating model: "
          f"{entry['avx2_emulated_ort_equals_vpmaddubsw_model']}")
    if not entry["avx2_emulated_quench_exact"]:
        failures.append(f"{name}: Quench's AVX2 build is not exact")


def inputs_args(models, m):
    args = []
    for n in m["inputs"]:
        args += ["--input", f"{n}={models}/{m['name']}.in.{n}.npy"]
    return args


def outputs(d, m):
    return {o["name"]: np.load(os.path.join(d, o["name"] + ".npy"))
            for o in m["outputs"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--json", help="write the measured differences here")
    args = ap.parse_args()

    why = ort_available()
    if why:
        print(f"ort_quant.py: SKIPPED: {why}")
        return SKIP

    work = os.path.abspath(args.work)
    models = os.path.join(work, "models")
    os.makedirs(models, exist_ok=True)
    cmd = [sys.executable, os.path.join(ROOT, "test", "models",
                                        "make_quant_models.py"),
           "--out-dir", models]
    if args.only:
        cmd += ["--only"] + args.only
    run(cmd)
    with open(os.path.join(models, "manifest.json")) as f:
        manifest = json.load(f)["models"]

    compiler = os.path.join(args.build, "bin", "quench-compile")
    failures, report = [], []
    print(f"{'model':32} {'output':6} {'kind':5} {'vs ORT':>14} "
          f"{'vs exact':>9} {'vs unfolded':>14}")
    for m in manifest:
        name = m["name"]
        exe = os.path.join(work, "exe", name)
        os.makedirs(os.path.dirname(exe), exist_ok=True)
        # MatMulNBits is compared with ORT's float formula (accuracy_level
        # 0): 4- and 8-bit codes use the float kernels here
        # (--int8-dot=false). The default int16-activation kernels round x
        # to 16 bits per group or block (docs/lowering.md, "Int16
        # activations"): up to ~4e-5 of max|y| on these models, over
        # FLOAT_RTOL; e2e/quant-matmul checks those kernels against their
        # own bounds (sum |w| * amax / 65534, / 65278 for 8 bits).
        flags = ["--int8-dot=false"] if name.startswith("nbits_") else []
        run([compiler, os.path.join(models, name + ".onnx"), "-o", exe,
             "--emit=exe"] + flags)
        if m.get("folded_to"):
            # The folded and the float graph can agree to the bit: check
            # that the fold happened (the float product is gone).
            ir = run([compiler, os.path.join(models, name + ".onnx"), "-o",
                      "-", "--stop-after-stage=prepare"]).stdout
            if (m["folded_to"] + " " not in ir or "quench.matmul " in ir or
                    "quench.linear " in ir or "dequantize_linear" in ir):
                failures.append(f"{name}: not folded to {m['folded_to']} by "
                                f"the prepare stage")
        dirs = {k: os.path.join(work, k, name)
                for k in ("quench", "ort", "ort-unfolded")}
        for d in dirs.values():
            os.makedirs(d, exist_ok=True)
        ins = inputs_args(models, m)
        run([exe] + ins + ["--output-dir", dirs["quench"]])
        run_js = os.path.join(ORT_DIR, "run.js")
        onnx_file = os.path.join(models, name + ".onnx")
        run(["node", run_js, onnx_file, "--threads", "1", "--output-dir",
             dirs["ort"]] + ins)
        qdq = name.startswith("qdq_")
        if qdq:
            run(["node", run_js, onnx_file, "--threads", "1", "--opt",
                 "disabled", "--output-dir", dirs["ort-unfolded"]] + ins)
        got = outputs(dirs["quench"], m)
        ort = outputs(dirs["ort"], m)
        unfolded = outputs(dirs["ort-unfolded"], m) if qdq else {}
        for o in m["outputs"]:
            on, kind = o["name"], o["kind"]
            q, r = got[on], ort[on]
            entry = {"model": name, "output": on, "kind": kind,
                     "dtype": str(q.dtype), "shape": list(q.shape)}
            if q.shape != r.shape or q.dtype != r.dtype:
                failures.append(f"{name}.{on}: quench {q.dtype}{q.shape} vs "
                                f"ORT {r.dtype}{r.shape}")
                continue
            exact = None
            if o["exact_ref"]:
                exact = np.load(os.path.join(models,
                                             f"{name}.ref.{on}.npy"))
            if kind == "int":
                diff = int(np.abs(q.astype(np.int64) - r.astype(np.int64)).max())
                entry["max_diff_ort"] = diff
                entry["ort_mismatches"] = int((q != r).sum())
                col_ort = f"{diff} ({entry['ort_mismatches']}/{q.size})"
                col_exact = "-"
                if exact is not None:
                    ed = int(np.abs(q.astype(np.int64) -
                                    exact.astype(np.int64)).max())
                    entry["max_diff_exact"] = ed
                    entry["ort_max_diff_exact"] = int(np.abs(
                        r.astype(np.int64) - exact.astype(np.int64)).max())
                    col_exact = str(ed)
                    if ed != 0:
                        failures.append(f"{name}.{on}: differs from the "
                                        f"exact product by up to {ed}")
                if name.startswith("saturation"):
                    entry["ort_exact"] = bool(np.array_equal(r, exact))
                elif diff != 0:
                    failures.append(f"{name}.{on}: {entry['ort_mismatches']} "
                                    f"elements differ from ORT (max {diff})")
                col_unf = "-"
                if on in unfolded:
                    u = unfolded[on].astype(np.int64)
                    ud = int(np.abs(q.astype(np.int64) - u).max())
                    entry["max_codes_unfolded"] = ud
                    entry["unfolded_mismatches"] = int((q != u).sum())
                    col_unf = f"{ud} ({entry['unfolded_mismatches']}/{q.size})"
                    if ud > UNFOLDED_MAX_CODES:
                        failures.append(f"{name}.{on}: {ud} codes from the "
                                        f"unfolded float graph")
            else:
                scale = max(1.0, float(np.abs(r).max()))
                rel = float(np.abs(q.astype(np.float64) - r).max()) / scale
                entry["max_rel_diff_ort"] = rel
                col_ort = f"{rel:.2e}"
                col_exact = "-"
                if rel > FLOAT_RTOL or not np.all(np.isfinite(q)):
                    failures.append(f"{name}.{on}: max |quench - ort| = "
                                    f"{rel:.3g} * max(1, max|ort|) > "
                                    f"{FLOAT_RTOL}")
                col_unf = "-"
                if on in unfolded:
                    u = unfolded[on].astype(np.float64)
                    ur = float(np.abs(q - u).max()) / max(1.0, float(
                        np.abs(u).max()))
                    entry["max_rel_diff_unfolded"] = ur
                    col_unf = f"{ur:.2e}"
                    if ur > UNFOLDED_RTOL:
                        failures.append(f"{name}.{on}: {ur:.3g} from the "
                                        f"unfolded float graph")
            report.append(entry)
            print(f"{name:32} {on:6} {kind:5} {col_ort:>14} {col_exact:>9} "
                  f"{col_unf:>14}")
            if name.startswith("saturation"):
                r64, e64 = r.astype(np.int64), exact.astype(np.int64)
                bad = r64 != e64
                print(f"  saturation_u8s8: Quench == exact int64 product: "
                      f"{np.array_equal(q, exact)}; ONNX Runtime on this CPU: "
                      f"{int(bad.sum())}/{r.size} elements differ from the "
                      f"exact product (max |diff| "
                      f"{int(np.abs(r64 - e64).max())})")
                if bad.any():
                    i = np.argwhere(bad)[0]
                    print(f"  e.g. y{list(i)}: exact {int(e64[tuple(i)])}, "
                          f"ORT {int(r64[tuple(i)])}")
                # The case must actually overflow int16 pair sums, else it
                # tests nothing: model the saturating kernel in NumPy.
                import onnx  # only needed here
                from onnx import numpy_helper
                mdl = onnx.load(os.path.join(models, name + ".onnx"))
                b = {i.name: numpy_helper.to_array(i)
                     for i in mdl.graph.initializer}["b"]
                a = np.load(os.path.join(models, f"{name}.in.a.npy"))
                sat = vpmaddubsw_product(a, b)
                nsat = int((sat != e64).sum())
                entry["vpmaddubsw_model_mismatches"] = nsat
                entry["vpmaddubsw_model_max_diff"] = int(
                    np.abs(sat - e64).max())
                entry["ort_equals_vpmaddubsw_model"] = bool(
                    np.array_equal(r64, sat))
                print(f"  a saturating vpmaddubsw kernel would give "
                      f"{nsat}/{sat.size} wrong elements (max |diff| "
                      f"{entry['vpmaddubsw_model_max_diff']}); ORT matches "
                      f"that model: {entry['ort_equals_vpmaddubsw_model']}")
                if nsat == 0:
                    failures.append(f"{name}: the data no longer saturates "
                                    f"int16 pair sums")
                emulated_avx2(compiler, work, models, m, ins, e64, sat,
                              entry, failures)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    print(f"\nort_quant.py: {len(manifest)} models, {len(report)} outputs OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
