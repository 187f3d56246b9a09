#!/usr/bin/python3
"""The CUDA backend without a GPU (docs/gpu.md, "Verification").

  cuda.py --build BUILD_DIR [--work-dir DIR]

1. Numerics of the kernel mapping: the GPT-2/LLaMA/T5 test zoo (static and
   dynamic exports) at every weight quantization scheme (none, w8a16, w4a16,
   w3a16, w2a16, w8a8-dynamic), compiled with --target=cuda --cuda-emulate
   (the CUDA backend's buffer placement, kernels and host/device copies, run
   by the CPU) and with the CPU backend's float kernels (--int8-dot=false),
   must agree within 1e-5 * max(1, max|cpu|) on the saved reference input.
2. Assembly: every model and scheme compiles with --target=cuda
   --emit=obj for sm_80 and sm_90 (and the W4A16 model for sm_90a), and
   so do the bundled char-GPT and stories260K (when built; none, w4a16,
   w8a8-dynamic), which
   runs the CUDA Toolkit's ptxas and fatbinary on every kernel; the embedded
   fatbin holds a cubin (ELF) and PTX. Skipped (one SKIPPED line) without a
   Toolkit.
3. Running without a driver: a --target=cuda executable on this machine
   (or with QUENCH_CUDA_DRIVER pointing at a missing library) prints one
   error line naming the CUDA driver, exits 1 and writes no output file.
   With --fake-driver (the runtime tests' test double of libcuda), three
   runs of it upload the weights once, load the device module once,
   resolve every kernel once and launch every kernel on each run; with
   QUENCH_CUDA_PROFILE=FILE they write a profile that lists every kernel
   with 3 calls of the fake's kernel time, and the copies by direction.
4. Driver errors: an unknown --cuda-arch and a missing Toolkit are one
   clear message each, and leave no output.
5. Calibrated schemes: static W8A8 and GPTQ W4A16 (calibration on the CPU)
   on a small LLaMA-shaped model, emulated vs the CPU, and assembled.

Exits 1 on any failure. Nothing is written outside --work-dir.
"""

import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SCHEMES = ["none", "w8a16", "w4a16", "w3a16", "w2a16", "w8a8-dynamic"]
TOL = 1e-5
FAILURES = []


def fail(msg):
    FAILURES.append(msg)
    print("FAIL " + msg, flush=True)


def run(cmd, env=None, check=True, timeout=600):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, env=env, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s%s" % (
            " ".join(cmd), p.returncode, p.stdout[-2000:], p.stderr[-2000:]))
    return p


def toolkit():
    for d in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if d and all(os.access(os.path.join(d, "bin", t), os.X_OK)
                     for t in ("ptxas", "fatbinary")):
            return d
    return None


def run_model(exe, ids, out_dir):
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    run([exe, "--input", "input_ids=" + ids, "--output-dir", out_dir])
    return np.load(os.path.join(out_dir, "logits.npy"))


def fatbin_kinds(ll_text):
    """Kinds of the images in the fatbin embedded in LLVM IR (1: PTX, 2:
    ELF cubin)."""
    m = re.search(r'@\w+_binary = internal constant \[\d+ x i8\] c"', ll_text)
    if not m:
        return None
    raw, i = bytearray(), m.end()
    while ll_text[i] != '"':
        if ll_text[i:i + 2] == "\\\\":  # LLVM writes a backslash as \\
            raw.append(0x5C)
            i += 2
        elif ll_text[i] == "\\":
            raw.append(int(ll_text[i + 1:i + 3], 16))
            i += 3
        else:
            raw += ll_text[i].encode("latin-1")
            i += 1
    magic, _, header, size = struct.unpack_from("<IHHQ", raw, 0)
    if magic != 0xBA55ED50:
        return None
    kinds, off = [], header
    while off < header + size:
        kind, _, entry_header, payload = struct.unpack_from("<HHIQ", raw, off)
        kinds.append(kind)
        off += entry_header + payload
    return kinds


def check_profile(path, kernels, launches):
    """The QUENCH_CUDA_PROFILE table of 3 runs on the fake driver (every
    launch 7 us): a row per kernel (grid and block given) with 3 calls,
    copies by direction, the weights uploaded once."""
    rows, totals = {}, ""
    with open(path) as f:
        text = f.read()
    for line in text.splitlines():
        if line.startswith("# kernels "):
            totals = line
        if not line or line.startswith("#"):
            continue
        cols = line.split(None, 7)
        rows[cols[7]] = (int(cols[0]), float(cols[2]), cols[5])
    kernel_rows = {n: r for n, r in rows.items() if r[2] != "-"}
    bad = [n for n, (calls, mean_us, _) in kernel_rows.items()
           if calls != 3 or abs(mean_us - 7.0) > 1e-3]
    want_totals = "# kernels %.3f ms in %d launches of %d kernels;" % (
        launches * 7e-3, launches, kernels)
    copies = [rows.get(k, (0,))[0] for k in (
        "memcpy HtoD", "memcpy DtoH", "memcpy HtoD (weights)")]
    if len(kernel_rows) != kernels or bad or \
            not totals.startswith(want_totals) or "; runs 3;" not in totals \
            or copies[0] % 3 or copies[1] % 3 or not copies[0] or \
            not copies[1] or copies[2] != 1:
        fail("QUENCH_CUDA_PROFILE on the fake driver: want %d kernel rows "
             "with 3 calls of 7 us, %r..., runs 3, copies HtoD/DtoH by run "
             "and the weights once; got %d rows (bad: %s), copies %s:\n%s" % (
                 kernels, want_totals, len(kernel_rows), bad[:5], copies,
                 text[:3000]))
    else:
        print("PASS QUENCH_CUDA_PROFILE on the fake driver: %d kernels, 3 "
              "calls each, copies %s" % (kernels, copies))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--work-dir")
    ap.add_argument("--fake-driver",
                    help="the test double of the CUDA driver "
                    "(unittests/runtime, libquench-fake-cuda.so)")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    qc = os.path.join(build, "bin", "quench-compile")
    work = os.path.abspath(args.work_dir or os.path.join(
        build, "test", "e2e", "cuda"))
    os.makedirs(work, exist_ok=True)
    zoo = os.path.join(work, "zoo")
    if not os.path.exists(os.path.join(zoo, "manifest.json")):
        run(["/usr/bin/python3", os.path.join(REPO, "test", "models",
                                              "export_models.py"),
             "--out-dir", zoo, "--only", "gpt2_op13_dynamic",
             "llama_op17_static", "llama_op13_dynamic", "t5_op17_dynamic"],
            timeout=900)
    models = sorted(f[:-5] for f in os.listdir(zoo) if f.endswith(".onnx"))
    tk = toolkit()

    # 1. Emulated CUDA kernels against the CPU backend (two workers: the
    # compiles dominate).
    def emulate(job):
        name, scheme = job
        onnx = os.path.join(zoo, name + ".onnx")
        ids = os.path.join(zoo, name + ".input_ids.npy")
        tag = "%s %s" % (name, scheme)
        base = os.path.join(work, "emulate", name + "." + scheme)
        os.makedirs(base, exist_ok=True)
        try:
            emu = os.path.join(base, "emu")
            cpu = os.path.join(base, "cpu")
            run([qc, onnx, "-o", emu, "--quant=" + scheme, "--target=cuda",
                 "--cuda-emulate"])
            run([qc, onnx, "-o", cpu, "--quant=" + scheme,
                 "--int8-dot=false"])
            got = run_model(emu, ids, os.path.join(base, "out-emu"))
            want = run_model(cpu, ids, os.path.join(base, "out-cpu"))
        except RuntimeError as e:
            return "FAIL %s: %s" % (tag, e)
        err = float(np.max(np.abs(got.astype(np.float64) - want)))
        limit = TOL * max(1.0, float(np.max(np.abs(want))))
        if got.shape != want.shape or not err <= limit:
            return "FAIL %s: emulated CUDA vs CPU max |diff| %.3g > %.3g" % (
                tag, err, limit)
        return "PASS emulate %s (max |diff| %.2g)" % (tag, err)

    # 2. ptxas and fatbinary on every kernel.
    # The bundled model and stories260K (when the build has them) too.
    sources = {m: os.path.join(zoo, m + ".onnx") for m in models}
    for extra in (os.path.join(build, "test-chargpt", "chargpt.onnx"),
                  os.path.join(build, "test", "models", "stories260k",
                               "stories260k",
                               "stories260k_op13_dynamic.onnx")):
        if os.path.exists(extra):
            sources[os.path.basename(extra)[:-5]] = extra
        else:
            print("SKIPPED assembly of %s: not built" % extra)

    def assemble(job):
        name, scheme, arch = job
        tag = "%s %s %s" % (name, scheme, arch)
        out = os.path.join(work, "obj", "%s.%s.%s" % (name, scheme, arch), "m")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        try:
            run([qc, sources[name], "-o", out,
                 "--emit=obj", "--target=cuda", "--cuda-arch=" + arch,
                 "--quant=" + scheme])
        except RuntimeError as e:
            return "FAIL %s: %s" % (tag, e)
        if not (os.path.exists(out + ".o") and os.path.exists(out + ".h")):
            return "FAIL %s: no object and header" % tag
        return "PASS assemble %s" % tag

    def report(results):
        for line in results:
            if line.startswith("FAIL "):
                fail(line[5:])
            else:
                print(line, flush=True)

    with ThreadPoolExecutor(max_workers=2) as pool:
        report(pool.map(emulate, [(m, s) for m in models for s in SCHEMES]))
        if not tk:
            print("SKIPPED assembly: no CUDA Toolkit (ptxas, fatbinary)")
        else:
            jobs = [(m, s, a) for m in models for s in SCHEMES
                    for a in ("sm_80", "sm_90")]
            jobs.append((models[0], "w4a16", "sm_90a"))
            jobs += [(m, s, a) for m in sources if m not in models
                     for s in ("none", "w4a16", "w8a8-dynamic")
                     for a in ("sm_80", "sm_90")]
            report(pool.map(assemble, jobs))
    if tk:
        ll = run([qc, os.path.join(zoo, models[0] + ".onnx"), "-o", "-",
                  "--emit=llvm", "--target=cuda"]).stdout
        kinds = fatbin_kinds(ll)
        if not kinds or 1 not in kinds or 2 not in kinds:
            fail("the embedded fatbin should hold PTX (1) and a cubin (2), "
                 "has %s" % kinds)
        else:
            print("PASS fatbin images %s" % kinds)

    # 3. A CUDA executable without a driver.
    name = models[0]
    exe = os.path.join(work, "cuda-exe")
    out_dir = os.path.join(work, "out-cuda")
    try:
        run([qc, os.path.join(zoo, name + ".onnx"), "-o", exe,
             "--target=cuda"])
    except RuntimeError as e:
        if tk:
            fail("linking a CUDA executable: %s" % e)
        else:
            print("SKIPPED no-driver run: %s" % str(e).splitlines()[0])
    else:
        envs = [("missing driver library",
                 dict(os.environ, QUENCH_CUDA_DRIVER=os.path.join(
                     work, "no-such-libcuda.so.1")))]
        if not any(os.path.exists(os.path.join(d, "libcuda.so.1"))
                   for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64",
                             "/usr/lib")):
            envs.append(("this machine", None))
        for what, env in envs:
            shutil.rmtree(out_dir, ignore_errors=True)
            os.makedirs(out_dir)
            p = run([exe, "--input", "input_ids=" + os.path.join(
                zoo, name + ".input_ids.npy"), "--output-dir", out_dir],
                env=env, check=False)
            lines = p.stderr.strip().splitlines()
            wrote = os.path.isdir(out_dir) and os.listdir(out_dir)
            if p.returncode != 1 or len(lines) != 1 or \
                    "CUDA driver" not in lines[0] or wrote:
                fail("no driver (%s): want exit 1, one line naming the CUDA "
                     "driver and no outputs; got exit %d, stderr %r, "
                     "outputs %s" % (what, p.returncode, p.stderr, wrote))
            else:
                print("PASS no driver (%s): %s" % (what, lines[0]))

        # The host path on the test double of the driver (kernels do
        # nothing there): three runs upload the weights once, load the
        # module once, resolve each kernel once, launch every kernel each run.
        # Profiled (QUENCH_CUDA_PROFILE): each launch takes the fake's
        # FAKE_CUDA_KERNEL_US.
        if args.fake_driver:
            calls_path = os.path.join(work, "fake-calls.txt")
            profile = os.path.join(work, "fake.prof")
            for f in (calls_path, profile):
                if os.path.exists(f):
                    os.remove(f)
            env = dict(os.environ, QUENCH_CUDA_DRIVER=args.fake_driver,
                       FAKE_CUDA_REPORT=calls_path, QUENCH_CUDA_PROFILE=profile,
                       FAKE_CUDA_KERNEL_US="7")
            run([exe, "--input", "input_ids=" + os.path.join(
                zoo, name + ".input_ids.npy"), "--bench", "2"], env=env)
            calls = {}
            with open(calls_path) as f:
                for line in f:
                    k, v = line.split()
                    calls[k] = int(v)
            kernels = calls.get("cuModuleGetFunction", 0)
            want = {"cuMemcpyHtoD_v2": 1, "cuModuleLoadData": 1,
                    "cuLaunchKernel": 3 * kernels}
            got = {k: calls.get(k, 0) for k in want}
            if kernels == 0 or got != want:
                fail("fake driver, 3 runs: want %s (kernels %d), got %s" % (
                    want, kernels, got))
            else:
                print("PASS fake driver: 3 runs, weights uploaded once, %d "
                      "kernels resolved once, launched each run" % kernels)
            check_profile(profile, kernels, calls.get("cuLaunchKernel", 0))

    # 4. Driver errors.
    onnx = os.path.join(zoo, models[0] + ".onnx")
    bad = os.path.join(work, "bad", "m")
    shutil.rmtree(os.path.dirname(bad), ignore_errors=True)
    os.makedirs(os.path.dirname(bad))
    for extra, want in ((["--cuda-arch=sm_75"], "unknown --cuda-arch 'sm_75'"),
                        (["--cuda-path=" + os.path.join(work, "no-cuda")],
                         "the CUDA Toolkit was not found")):
        p = run([qc, onnx, "-o", bad, "--emit=obj", "--target=cuda"] + extra,
                check=False)
        if p.returncode == 0 or want not in p.stderr or \
                os.listdir(os.path.dirname(bad)):
            fail("%s: want a failure with %r and no output; got exit %d, %r" %
                 (" ".join(extra), want, p.returncode, p.stderr))
        else:
            print("PASS error %s" % " ".join(extra))
    # PTX needs no Toolkit.
    p = run([qc, onnx, "-o", "-", "--emit=ptx", "--target=cuda",
             "--cuda-path=" + os.path.join(work, "no-cuda")], check=False)
    if p.returncode != 0 or ".visible .entry" not in p.stdout:
        fail("--emit=ptx without a Toolkit: exit %d, %r" % (p.returncode,
                                                           p.stderr))
    else:
        print("PASS ptx without a Toolkit (%d kernels)" %
              p.stdout.count(".visible .entry"))

    # 5. Calibrated schemes (calibration and GPTQ run on the CPU; the
    # kernels are the same): static W8A8 and GPTQ W4A16 on a small
    # LLaMA-shaped model, emulated vs the CPU's float kernels, and
    # assembled.
    sys.path.insert(0, HERE)
    sys.dont_write_bytecode = True
    import calibration
    model, samples = calibration.make_llama_samples(
        work, "calib-samples", 4, np.random.default_rng(0))
    ids = os.path.join(samples, "00", "input_ids.npy")
    for quant in (["--quant=w8a8", "--calib=" + samples],
                  ["--quant=w4a16", "--algo=gptq", "--calib=" + samples]):
        tag = " ".join(quant[:-1])
        base = os.path.join(work, "calibrated")
        os.makedirs(base, exist_ok=True)
        try:
            run([qc, model, "-o", os.path.join(base, "emu"), "--target=cuda",
                 "--cuda-emulate"] + quant)
            run([qc, model, "-o", os.path.join(base, "cpu"),
                 "--int8-dot=false"] + quant)
            if tk:
                run([qc, model, "-o", os.path.join(base, "m"), "--emit=obj",
                     "--target=cuda"] + quant)
            got = run_model(os.path.join(base, "emu"), ids,
                            os.path.join(base, "out-emu"))
            want = run_model(os.path.join(base, "cpu"), ids,
                             os.path.join(base, "out-cpu"))
        except RuntimeError as e:
            fail("%s: %s" % (tag, e))
            continue
        err = float(np.max(np.abs(got.astype(np.float64) - want)))
        limit = TOL * max(1.0, float(np.max(np.abs(want))))
        if not err <= limit:
            fail("%s: emulated CUDA vs CPU max |diff| %.3g > %.3g" % (
                tag, err, limit))
        else:
            print("PASS calibrated %s (max |diff| %.2g%s)" % (
                tag, err, ", assembled" if tk else ""))

    if FAILURES:
        print("%d failure(s)" % len(FAILURES))
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
