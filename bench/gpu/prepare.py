#!/usr/bin/python3
"""Prepares the GPU check bundle that bench/gpu/check.sh runs on a GPU
machine (which has a driver but no LLVM/MLIR, Python packages or network).

  bench/gpu/prepare.py [--build BUILD] [--out DIR] [--arch sm_90]

Writes DIR (default build-gpu-check, ignored by git; carry it to the GPU
machine) with:
  exe/NAME      --target=cuda executables (--cuda-arch ARCH) of the test
                models at several schemes, a W4A16 GEMV layer
                (K 4096 x N 14336, the issue's decode shape), and an f16
                GEMM and a W8A8 GEMM (1024 x 1024 x 1024: the
                tensor-core kernels, mma.sync f16 and s8); with --sparse
                instead (a second bundle: both do not fit one carry), 2:4
                sparse layers on the sparse tensor cores (mma.sp f16 and
                s8, 1024 x 1024 x 1024 and decode rows M = 16 and 1) next
                to dense f16 layers of the same shape, and W8A8 dense vs
                --sparsity=2:4 of one MatMul
  in/, ref/     their inputs and the CPU backend's outputs on them (float
                kernels: --int8-dot=false), the reference
  manifest.tsv  name, executable, inputs, reference, tolerance (relative to
                the largest reference value), bench runs,
                weight bytes streamed per run
  gpucheck      bench/gpu/gpucheck.c (compare .npy files, measure the
                device's copy bandwidth, name the GPU) linked with the
                Quench runtime
The bundle must stay under the device tool's 64 MiB carry limit; the script
fails if it does not. Sources (ONNX exports) go to BUILD/gpu-check-src.
"""

import argparse
import os
import shutil
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
LIMIT = 60 << 20
TOL = 1e-5


def run(cmd, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, **kw)
    if p.returncode:
        sys.exit("prepare.py: %s failed:\n%s%s" % (" ".join(cmd), p.stdout,
                                                   p.stderr))
    return p.stdout


def gemv_model(path, k, n, m=1):
    """y = x @ W, x [m, k], W [k, n] random normal, as one ONNX MatMul."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "gemv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", 17)]), path)


def sparse_models(src):
    """MLIR models of 2:4 sparse layers (f16 and int8, values and packed
    indices as quench-pack-sparse-weights writes them) and dense f16 layers
    of the same shape with the weight before pruning (a 2:4 constant would
    take the sparse kernel too): (name, path, {input: array}, bench runs,
    weight bytes)."""
    sys.path.insert(0, os.path.join(ROOT, "test", "e2e"))
    from mma_sp_gemm import hexdata, prune_pack, ttype
    rng = np.random.default_rng(3)
    k = n = 1024
    w16 = rng.standard_normal((n, k)).astype(np.float16)
    _, vals16, idx16 = prune_pack(w16)
    w8 = rng.integers(-127, 128, (n, k)).astype(np.int8)
    _, vals8, idx8 = prune_pack(w8)
    out = []
    for m in (1024, 16, 1):
        x16 = rng.standard_normal((m, k)).astype(np.float16)
        for kind in ("sp_f16", "dense_f16", "sp_i8"):
            name = "%s_%dx%dx%d" % (kind, m, k, n)
            dt = "i8" if kind == "sp_i8" else "f16"
            xt = ttype((m, k), dt)
            if kind == "dense_f16":
                wt, yt = ttype((n, k), "f16"), ttype((m, n), "f16")
                body = ("  %%w = quench.constant dense<%s> : %s\n"
                        "  %%y = quench.linear %%x, %%w : (%s, %s) -> %s\n"
                        % (hexdata(w16), wt, xt, wt, yt))
                nbytes = n * k * 2
            else:
                vals, idx = (vals8, idx8) if dt == "i8" else (vals16, idx16)
                vt, it = ttype((n, k // 2), dt), ttype((n, k // 8), "i8")
                yt = ttype((m, n), "i32" if dt == "i8" else "f32")
                body = ("  %%v = quench.constant dense<%s> : %s\n"
                        "  %%i = quench.constant dense<%s> : %s\n"
                        "  %%y = quench.sparse_linear %%x, %%v, %%i {group = 4,"
                        " keep = 2} : (%s, %s, %s) -> %s\n"
                        % (hexdata(vals), vt, hexdata(idx.view(np.int8)), it,
                           xt, vt, it, yt))
                nbytes = vals.nbytes + idx.nbytes
            path = os.path.join(src, name + ".mlir")
            with open(path, "w") as f:
                f.write('func.func @main(%%x: %s {quench.name = "x"}) -> '
                        '(%s {quench.name = "y"}) {\n%s  return %%y : %s\n}\n'
                        % (xt, yt, body, yt))
            x = (rng.integers(-128, 128, (m, k)).astype(np.int8)
                 if dt == "i8" else x16)
            out.append((name, path, {"x": x}, 50, nbytes))
    return out


def gemm_f16_model(path, m, k, n):
    """y = f32(f16(x) @ W), W [k, n] f16: one f16 MatMul between casts (f32
    inputs and outputs for gpucheck), the tensor-core GEMM kernel."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float16)
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["xh"], to=TensorProto.FLOAT16),
         helper.make_node("MatMul", ["xh", "w"], ["yh"]),
         helper.make_node("Cast", ["yh"], ["y"], to=TensorProto.FLOAT)],
        "gemm_f16",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", 17)]), path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--out", default=os.path.join(ROOT, "build-gpu-check"))
    ap.add_argument("--arch", default="sm_90",
                    help="--cuda-arch of the executables (sm_90: H100/H200)")
    ap.add_argument("--sparse", action="store_true",
                    help="the 2:4 sparse tensor-core bundle instead (mma.sp "
                    "layers next to dense ones of the same shapes; "
                    "both bundles do not fit one carry)")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    qc = os.path.join(build, "bin", "quench-compile")
    src = os.path.join(build, "gpu-check-src")
    out = os.path.abspath(args.out)
    shutil.rmtree(out, ignore_errors=True)
    for d in ("exe", "in", "ref"):
        os.makedirs(os.path.join(out, d))
    os.makedirs(src, exist_ok=True)

    # (name, onnx, {input: array}, schemes, bench runs, weight bytes)
    cases = []
    # The W8A8 GEMM's f32 MatMul and input (both bundles).
    gemm8 = os.path.join(src, "gemm_f32_1024.onnx")
    if not os.path.exists(gemm8):
        gemv_model(gemm8, 1024, 1024, m=1024)
    x = np.random.default_rng(2).standard_normal((1024, 1024)).astype(
        np.float32)
    if not args.sparse:
        zoo = os.path.join(src, "zoo")
        if not os.path.exists(os.path.join(zoo, "manifest.json")):
            run(["/usr/bin/python3", os.path.join(ROOT, "test", "models",
                                                  "export_models.py"),
                 "--out-dir", zoo, "--only", "gpt2_op13_dynamic",
                 "llama_op17_static", "t5_op17_dynamic"])
        for name, schemes in (("llama_op17_static",
                               ["none", "w8a16", "w4a16", "w3a16", "w2a16",
                                "w8a8-dynamic"]),
                              ("gpt2_op13_dynamic", ["none", "w4a16",
                                                     "w8a8-dynamic"]),
                              ("t5_op17_dynamic", ["none", "w8a16"])):
            ids = np.load(os.path.join(zoo, name + ".input_ids.npy"))
            cases.append((name, os.path.join(zoo, name + ".onnx"),
                          {"input_ids": ids}, schemes, 20, 0))
        stories = os.path.join(build, "test", "models", "stories260k",
                               "stories260k", "stories260k_op17_static.onnx")
        if os.path.exists(stories):
            ids = (np.arange(32, dtype=np.int64) * 7 % 512).reshape(1, 32)
            cases.append(("stories260k", stories, {"input_ids": ids},
                          ["none", "w4a16"], 20, 0))
        gemv = os.path.join(src, "gemv_4096x14336.onnx")
        if not os.path.exists(gemv):
            gemv_model(gemv, 4096, 14336)
        xg = np.random.default_rng(1).standard_normal((1, 4096)).astype(
            np.float32)
        # W4A16 g128: 4-bit codes + f16 scales.
        cases.append(("gemv_4096x14336", gemv, {"x": xg}, ["w4a16"], 50,
                      4096 * 14336 // 2 + 4096 // 128 * 14336 * 2))
        # f16 GEMM (quench-gpu-mma-gemm): outputs rounded to f16 by both
        # backends, sums in a different order: a few f16 ulps of the largest.
        gemm = os.path.join(src, "gemm_f16_1024.onnx")
        if not os.path.exists(gemm):
            gemm_f16_model(gemm, 1024, 1024, 1024)
        cases.append(("gemm_f16_1024", gemm, {"x": x}, ["none"], 50, 0))
        # W8A8 GEMM (int8 tensor cores): an f32 MatMul quantized dynamically.
        cases.append(("gemm_1024", gemm8, {"x": x}, ["w8a8-dynamic"], 50, 0))
    else:
        # 2:4 sparse tensor cores (quench-gpu-mma-sp-gemm): f16 and int8
        # quench.sparse_linear layers and dense f16 layers of the same shape
        # (unpruned weights: dense work) (K = N = 1024; M = 1024, 16, 1), as MLIR models (no frontend
        # path makes f16 or int8-activation sparse layers yet).
        for name, path, inputs, runs, weight_bytes in sparse_models(src):
            cases.append((name, path, inputs, ["none"], runs, weight_bytes))
        # W8A8 dense vs 2:4 (--sparsity=2:4 --quant=w8a8-dynamic: the pruned
        # int8 weight runs on mma.sp m16n8k64) at M = 1024 (the model above),
        # 16 and 1 (decode: dense W8A8 takes the generic kernels below 16 rows).
        cases.append(("gemm_1024", gemm8, {"x": x},
                      ["w8a8-dynamic", "w8a8-dynamic+2:4"], 50, 0))
        for m in (16, 1):
            path = os.path.join(src, "gemm_f32_%dx1024.onnx" % m)
            if not os.path.exists(path):
                gemv_model(path, 1024, 1024, m=m)
            xm = np.random.default_rng(4).standard_normal((m, 1024)).astype(
                np.float32)
            cases.append(("w8a8_%dx1024" % m, path, {"x": xm},
                          ["w8a8-dynamic", "w8a8-dynamic+2:4"], 50, 0))

    lines = []
    for name, onnx_path, inputs, schemes, runs, weight_bytes in cases:
        # f16 layers: f16 products summed in f32 in another order (the
        # dense ones also rounded to f16).
        tol = 4e-3 if name.startswith(("gemm_f16", "sp_f16", "dense_f16")) \
            else TOL
        args_in = []
        for k, v in inputs.items():
            p = os.path.join(out, "in", "%s.%s.npy" % (name, k))
            np.save(p, v)
            args_in.append("%s=%s" % (k, os.path.relpath(p, out)))
        for scheme in schemes:
            # File names without "+" and ":" (w8a8-dynamic+2:4 -> ...-24).
            tag = ("%s.%s" % (name, scheme)).replace("+", "-").replace(":", "")
            quant, _, pattern = scheme.partition("+")
            extra = ["--quant=" + quant] if quant != "none" or \
                not onnx_path.endswith(".mlir") else []
            if pattern:
                # The single layer is the head: prune it too.
                extra += ["--sparsity=" + pattern, "--sparsity-head"]
            if name.startswith("gemv"):
                extra.append("--group-size=128")
            exe = os.path.join(out, "exe", tag)
            run([qc, onnx_path, "-o", exe, "--target=cuda",
                 "--cuda-arch=" + args.arch] + extra)
            cpu = os.path.join(src, "cpu-" + tag)
            run([qc, onnx_path, "-o", cpu, "--int8-dot=false"] + extra)
            ref_dir = os.path.join(src, "ref-" + tag)
            shutil.rmtree(ref_dir, ignore_errors=True)
            os.makedirs(ref_dir)
            run([cpu] + sum([["--input", "%s=%s" % (a.split("=")[0],
                                                     os.path.join(out, a.split("=")[1]))]
                             for a in args_in], []) +
                ["--output-dir", ref_dir])
            outs = sorted(os.listdir(ref_dir))
            ref = os.path.join(out, "ref", tag + ".npy")
            shutil.copy(os.path.join(ref_dir, outs[0]), ref)
            lines.append("\t".join([tag, os.path.relpath(exe, out),
                                    ";".join(args_in),
                                    os.path.relpath(ref, out), str(tol),
                                    str(runs), str(weight_bytes),
                                    outs[0]]))
            print("prepared", tag, flush=True)
    with open(os.path.join(out, "manifest.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    cc = shutil.which("clang-22") or shutil.which("cc")
    run([cc, "-O2", "-o", os.path.join(out, "gpucheck"),
         os.path.join(ROOT, "bench", "gpu", "gpucheck.c"),
         "-I", os.path.join(ROOT, "runtime", "include"),
         os.path.join(build, "lib", "libquench_runtime.a"), "-lm",
         "-lpthread", "-ldl"])
    with open(os.path.join(out, "README"), "w") as f:
        f.write("Made by bench/gpu/prepare.py --arch %s from %s; run "
                "bench/gpu/check.sh %s on the GPU machine.\n" % (
                    args.arch, run(["git", "-C", ROOT, "rev-parse",
                                    "HEAD"]).strip(), os.path.basename(out)))
    size = sum(os.path.getsize(os.path.join(d, f))
               for d, _, fs in os.walk(out) for f in fs)
    print("bundle %s: %.1f MiB, %d executables" % (out, size / 2**20,
                                                   len(lines)))
    if size > LIMIT:
        sys.exit("prepare.py: the bundle is over %d MiB" % (LIMIT >> 20))


if __name__ == "__main__":
    main()
