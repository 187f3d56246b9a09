#!/usr/bin/env python3
"""End-to-end check of GGUF models (lib/Frontend/GGUF): small random llama
and qwen2 decoders written by test/e2e/gguf_model.py, compiled with
quench-compile straight from the .gguf file and run on token ids; the
logits must equal the float64 NumPy reference of the same model with every
weight dequantized by its GGUF type's definition (gguf_model.py, written
independently of the importer: RoPE, GQA, RMSNorm, SwiGLU from the
metadata) to |err| <= 1e-4 * max |ref|, at two sequence lengths of one
executable (the sequence dimension is dynamic).

Models (dim 256, 4 heads, 2 kv heads, ffn 512, 2 layers, vocab 300):
  f32       llama, every matrix F32, separate output head;
  half      llama, F16 and BF16 matrices, tied head (the F16 embedding),
            RoPE base 500000 with linear scaling 2 and frequency factors
            (rope_freqs.weight);
  quant     llama, the matrices cycle through q4_0, q4_1, q5_0, q5_1,
            q8_0, q4_K, q5_K, q6_K, q2_K, q3_K (a file mixing every type;
            blk.1.ffn_down q6_K with K = 512), q6_K embedding (gathered
            rows dequantized), q8_0 head; on AVX-512F hosts both q6_K
            matrices must take the kernel's 6-bit form (file size);
  qwen2     qwen2 (q/k/v biases, half-split RoPE), q4_K embedding tied to
            the head (a type with mins on both paths), q4_0/q5_1 matrices.
Every executable carries the file's tokenizer metadata: `--metadata` prints
the general.* and tokenizer.* key/values (tokens, scores, token types,
BOS/EOS ids) as JSON, equal to what was written.
For the quantized models the imported IR must hold one quench.matmul_nbits
per quantized matrix product: weights stay in their blocks' form, never
dequantized at import; the quant model's attention chains (written as
exports write them) must be fused into one quench.attention per layer.

stories260K (the trained llama2.c checkpoint, ../shared/models; skipped
when absent) written as an F32 GGUF file with its q/k rows as stored (the
checkpoint's RoPE is llama.cpp's interleaved one): its greedy continuation
from BOS must be the one llama2.c's C implementation gives
(examples/stories260k_to_onnx.py's EXPECTED_GREEDY: an independent check
of the RoPE convention), and its logits must match the NumPy reference;
compiled with --derive-kv-cache, `--generate` (prefill, then one token per
run with the cache) must give the same ids. So must the quant model's
cached generation (one-row decode kernels) against the reference's greedy
ids.

Usage: gguf.py --build BUILD_DIR [--keep DIR] [--stories PATH]
Run through CTest: `ctest -L e2e -R gguf`.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gguf_model as gm  # noqa: E402

TOL = 1e-4
# --gguf-activations=int16: each activation off by at most max|x|/65534 of
# its group; measured 1.7e-4 / 8.5e-5 on the mixed-type model (seq 7 / 3).
TOL_INT16 = 1e-3


def run(cmd):
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(f"command failed: {' '.join(cmd)}\n{res.stdout}"
                         f"{res.stderr}\n")
        sys.exit(1)
    return res


def cycle_types(kinds):
    """types(name): matrices take `kinds` in turn, in the writer's order."""
    state = {"i": 0}

    def types(name):
        t = kinds[state["i"] % len(kinds)]
        state["i"] += 1
        return t
    return types


def case_models():
    half_kinds = cycle_types([gm.F16, gm.BF16])
    quant = cycle_types(gm.QUANT_TYPES)

    def quant_types(name):
        if name == "token_embd.weight":
            return gm.Q6_K
        if name == "output.weight":
            return gm.Q8_0
        t = quant(name)
        # A second q6_K matrix, with two super-blocks per row (K = ffn):
        # the 6-bit kernel form's super-block loop (docs/gguf.md).
        return gm.Q6_K if name == "blk.1.ffn_down.weight" else t

    qwen_kinds = cycle_types([gm.Q4_0, gm.Q5_1])

    def qwen_types(name):
        return gm.Q4_K if name == "token_embd.weight" else qwen_kinds(name)

    return [
        ("f32", dict(arch="llama")),
        ("half", dict(arch="llama", types=lambda n: (
            gm.F16 if n == "token_embd.weight" else half_kinds(n)),
            tied=True, rope_base=500000.0, rope_linear=2.0,
            freq_factors=True)),
        ("quant", dict(arch="llama", types=quant_types)),
        ("qwen2", dict(arch="qwen2", types=qwen_types, tied=True,
                       rope_base=1000000.0, eps=1e-6)),
    ]


def write_stories(path, bin_path, extra_kv=()):
    """stories260K.bin as a GGUF llama model (with the key/values
    `extra_kv`: (key, type, value, element type)); returns (cfg, weights)
    for reference_logits, the BOS id and llama2.c's greedy ids."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)),
                                    "examples"))
    import stories260k_to_onnx as s2o
    c, w = s2o.read_checkpoint(bin_path)
    dim, L = c["dim"], c["n_layers"]
    g = gm.GGUFWriter()
    weights = {}

    def put(name, a):
        a = np.ascontiguousarray(a, np.float32)
        g.tensor(name, list(a.shape[::-1]), gm.F32, a.tobytes())
        weights[name] = a

    p = "llama."
    g.add("general.architecture", gm.STR, "llama")
    g.add(p + "context_length", gm.U32, c["seq_len"])
    g.add(p + "embedding_length", gm.U32, dim)
    g.add(p + "block_count", gm.U32, L)
    g.add(p + "feed_forward_length", gm.U32, c["hidden_dim"])
    g.add(p + "attention.head_count", gm.U32, c["n_heads"])
    g.add(p + "attention.head_count_kv", gm.U32, c["n_kv_heads"])
    g.add(p + "rope.freq_base", gm.F32V, s2o.ROPE_THETA)
    g.add(p + "attention.layer_norm_rms_epsilon", gm.F32V, s2o.RMS_EPS)
    for key, vtype, value, etype in extra_kv:
        g.add(key, vtype, value, etype)
    put("token_embd.weight", w["tok_embeddings"])
    for l in range(L):
        blk = "blk.%d." % l
        put(blk + "attn_norm.weight", w["rms_att"][l])
        put(blk + "attn_q.weight", w["wq"][l])
        put(blk + "attn_k.weight", w["wk"][l])
        put(blk + "attn_v.weight", w["wv"][l])
        put(blk + "attn_output.weight", w["wo"][l])
        put(blk + "ffn_norm.weight", w["rms_ffn"][l])
        put(blk + "ffn_gate.weight", w["w1"][l])
        put(blk + "ffn_down.weight", w["w2"][l])
        put(blk + "ffn_up.weight", w["w3"][l])
    put("output_norm.weight", w["rms_final"])
    tied = c["shared_classifier"]
    if not tied:
        put("output.weight", w["wcls"])
    g.write(path)
    cfg = dict(arch="llama", dim=dim, layers=L, heads=c["n_heads"],
               kv_heads=c["n_kv_heads"], ff=c["hidden_dim"],
               vocab=c["vocab_size"], eps=s2o.RMS_EPS,
               rope_base=s2o.ROPE_THETA, rope_linear=None, tied=tied)
    return cfg, weights, s2o.BOS, s2o.EXPECTED_GREEDY


def check_cached_quant(compile_, path, work, cfg, weights):
    """The mixed-type model compiled with --derive-kv-cache: its decode
    steps run the kernels' one-row tiles (the 6-bit q6_K form's among
    them: the row count is dynamic, so 32-feature panels); the greedy ids of `--generate` must be the float64
    reference's (whose top-2 margins are printed: far above the kernels'
    1e-6 differences). Returns the number of failed checks."""
    gen = os.path.join(work, "quant_gen")
    run([compile_, path, "-o", gen, "--derive-kv-cache"])
    prompt = [5, 17, 42]
    np.save(os.path.join(work, "p.npy"), np.array([prompt], np.int64))
    out = os.path.join(work, "out")
    steps = 6
    run([gen, "--input", "input_ids=" + os.path.join(work, "p.npy"),
         "--generate", str(steps), "--output-dir", out])
    cached = np.load(os.path.join(out, "generated_ids.npy"))[0].tolist()
    ids, margins = list(prompt), []
    for _ in range(steps):
        last = gm.reference_logits(cfg, weights, np.array(ids))[0, -1]
        top = np.sort(last)[-2:]
        margins.append(float((top[1] - top[0]) / np.max(np.abs(last))))
        ids.append(int(np.argmax(last)))
    ok = cached == ids[len(prompt):]
    print(f"{'ok  ' if ok else 'FAIL'} quant  generation with a derived KV "
          f"cache: {cached} {'equals' if ok else 'differs from'} the "
          f"reference's greedy ids {ids[len(prompt):]} (smallest top-2 "
          f"margin {min(margins):.1e} of max |logit|)")
    return int(not ok)


def check_stories(compile_, work, bin_path):
    """Returns the number of failed checks (0 when skipped)."""
    if not os.path.isfile(bin_path):
        print(f"skip stories260K: {bin_path} is absent")
        return 0
    path = os.path.join(work, "stories260K.gguf")
    cfg, weights, bos, expected = write_stories(path, bin_path)
    exe = os.path.join(work, "stories")
    run([compile_, path, "-o", exe])
    ids = [bos]
    failures = 0
    for step in range(len(expected)):
        np.save(os.path.join(work, "ids.npy"), np.array([ids], np.int64))
        out = os.path.join(work, "out")
        run([exe, "--input", "input_ids=" + os.path.join(work, "ids.npy"),
             "--output-dir", out])
        got = np.load(os.path.join(out, "logits.npy"))
        if step in (0, len(expected) - 1):
            ref = gm.reference_logits(cfg, weights, np.array(ids))
            err = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
            ok = err <= TOL
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} stories260K seq {len(ids)}: "
                  f"max |err| / max |ref| = {err:.2e} (limit {TOL:g})")
        ids.append(int(np.argmax(got[0, -1])))
    greedy = ids[1:]
    ok = greedy == list(expected)
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} stories260K greedy continuation from "
          f"BOS {'equals' if ok else 'differs from'} llama2.c's"
          + ("" if ok else f": {greedy} vs {list(expected)}"))

    # Generation with the KV cache that --derive-kv-cache builds: prefill
    # BOS, then one token per run, the same greedy ids.
    gen = os.path.join(work, "stories_gen")
    run([compile_, path, "-o", gen, "--derive-kv-cache"])
    np.save(os.path.join(work, "bos.npy"), np.array([[bos]], np.int64))
    out = os.path.join(work, "out")
    run([gen, "--input", "input_ids=" + os.path.join(work, "bos.npy"),
         "--generate", str(len(expected)), "--output-dir", out])
    cached = np.load(os.path.join(out, "generated_ids.npy"))[0].tolist()
    ok = cached == list(expected)
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} stories260K generation with a derived "
          f"KV cache {'equals' if ok else 'differs from'} llama2.c's"
          + ("" if ok else f": {cached} vs {list(expected)}"))
    return failures


def check_metadata(name, exe, cfg):
    """The executable carries the file's tokenizer (`--metadata`, the JSON of
    the general.* and tokenizer.* key/values): every array and id as
    written. Returns the number of failed checks."""
    got = json.loads(run([exe, "--metadata"]).stdout)
    want = {"general.architecture": cfg["arch"],
            "general.name": "quench-test-" + cfg["arch"],
            "tokenizer.ggml.model": "llama"}
    want.update({k: v for k, _, v, _ in gm.tokenizer_kv(cfg["vocab"])})
    ok = got == want
    print(f"{'ok  ' if ok else 'FAIL'} {name:6s} metadata: the tokenizer "
          f"({cfg['vocab']} tokens, scores, types, ids) "
          + ("kept in the executable" if ok else
             f"differs: {sorted(set(got) ^ set(want))} or values"))
    return int(not ok)


def cpu_flag(pattern):
    try:
        with open("/proc/cpuinfo") as f:
            return bool(re.search(pattern, f.read()))
    except OSError:
        return False


def has_vnni():
    return cpu_flag(r"\b(avx512_vnni|avx_vnni)\b")


def check_int16(compile_, path, work, exact, ref):
    """--gguf-activations=int16: the 4- and 8-bit codes times int16
    activations (VNNI hosts); close to the reference, and not the exact
    kernel's output (the option must change the code)."""
    exe = os.path.join(work, "quant_int16")
    run([compile_, path, "-o", exe, "--gguf-activations=int16"])
    out = os.path.join(work, "out")
    run([exe, "--input", "input_ids=" + os.path.join(work, "ids.npy"),
         "--output-dir", out])
    got = np.load(os.path.join(out, "logits.npy"))
    err = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
    ok = err <= TOL_INT16
    differs = bool(np.any(got != exact))
    print(f"{'ok  ' if ok else 'FAIL'} quant int16 activations: max |err| / "
          f"max |ref| = {err:.2e} (limit {TOL_INT16:g}); differs from the "
          f"exact kernel: {differs}")
    if has_vnni() and not differs:
        print("FAIL --gguf-activations=int16 left the exact kernel on a VNNI "
              "host")
        return 1
    return int(not ok)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--keep", help="keep the work files in this directory")
    ap.add_argument("--stories", default=os.path.normpath(os.path.join(
        HERE, "..", "..", "..", "shared", "models", "stories260K.bin")),
        help="the llama2.c checkpoint stories260K.bin (skipped if absent)")
    a = ap.parse_args()
    compile_ = os.path.join(a.build, "bin", "quench-compile")
    importer = os.path.join(a.build, "bin", "quench-import")
    work = a.keep or tempfile.mkdtemp(prefix="quench-gguf-")
    os.makedirs(os.path.join(work, "out"), exist_ok=True)
    rng = np.random.default_rng(20261207)
    failures = 0
    try:
        for name, kw in case_models():
            path = os.path.join(work, name + ".gguf")
            types = kw.get("types")
            recorded = {}
            if types:
                def record(n, types=types):
                    recorded[n] = types(n)
                    return recorded[n]
                kw = dict(kw, types=record)
            cfg, weights = gm.make_model(path, rng, **kw)

            # Quantized products stay in block form.
            quantized = [n for n, t in recorded.items()
                         if t in gm.QUANT_TYPES and n != "token_embd.weight"]
            if recorded.get("token_embd.weight") in gm.QUANT_TYPES and \
                    cfg["tied"]:
                quantized.append("output (tied)")
            ir = run([importer, path, "-o", "-", "--elide-weights"]).stdout
            count = len(re.findall(r"quench\.matmul_nbits", ir))
            if count != len(quantized):
                print(f"FAIL {name}: {count} quench.matmul_nbits in the "
                      f"imported IR, expected {len(quantized)}")
                failures += 1

            # Every layer's attention chain is fused into one kernel (one
            # model: the chains are the same in all of them).
            if name == "quant":
                fused = run([compile_, path, "-o", "-",
                             "--stop-after-stage=attention"]).stdout
                count = len(re.findall(r"quench\.attention ", fused))
                if count != cfg["layers"]:
                    print(f"FAIL {name}: {count} quench.attention after the "
                          f"attention stage, expected {cfg['layers']}")
                    failures += 1
                # With a derived cache: one grouped attention per layer,
                # reading the cache of the kv heads (not of the repeated
                # ones: docs/gguf.md, "Speed against llama.cpp").
                derived = run([compile_, path, "-o", "-", "--derive-kv-cache",
                               "--stop-after-stage=attention"]).stdout
                hd = cfg["dim"] // cfg["heads"]
                grouped = (r"quench\.attention .* : \(tensor<1x%dx\?x%dxf32>, "
                           r"tensor<1x%dx\?x%dxf32>" %
                           (cfg["heads"], hd, cfg["kv_heads"], hd))
                count = len(re.findall(grouped, derived))
                ok = count == cfg["layers"] and cfg["kv_heads"] < cfg["heads"]
                failures += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {name}: {count} grouped "
                      f"attentions on {cfg['kv_heads']}-head caches with "
                      f"--derive-kv-cache (expected {cfg['layers']})")

            # q6_K matrices at the file's size: the 6-bit two-level-scale
            # form of the kernel (lib/Codegen/CPU/KQuantMatmul.cpp), which
            # needs AVX-512F's lookups.
            if name == "quant" and cpu_flag(r"\bavx512f\b"):
                cg = run([compile_, path, "-o", "-",
                          "--stop-after-stage=codegen"]).stdout
                count = len(re.findall(r"= arith\.constant "
                                       r"dense_resource<quench_q6_lo", cg))
                want = sum(1 for n in quantized if recorded.get(n) == gm.Q6_K)
                ok = count == want == 2
                failures += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {name}: {count} q6_K "
                      f"products in the 6-bit form (expected {want}, 2)")

            exe = os.path.join(work, name)
            run([compile_, path, "-o", exe])
            failures += check_metadata(name, exe, cfg)
            for seq in (7, 3):
                ids = rng.integers(0, cfg["vocab"], seq)
                np.save(os.path.join(work, "ids.npy"),
                        ids[None].astype(np.int64))
                out = os.path.join(work, "out")
                run([exe, "--input",
                     "input_ids=" + os.path.join(work, "ids.npy"),
                     "--output-dir", out])
                got = np.load(os.path.join(out, "logits.npy"))
                ref = gm.reference_logits(cfg, weights, ids)
                if got.shape != ref.shape:
                    print(f"FAIL {name} seq {seq}: shape {got.shape}, "
                          f"expected {ref.shape}")
                    failures += 1
                    continue
                err = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
                ok = err <= TOL
                failures += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {name:6s} seq {seq}: "
                      f"max |err| / max |ref| = {err:.2e} (limit {TOL:g})")
                if name == "quant":
                    failures += check_int16(compile_, path, work, got, ref)
            if name == "quant":
                failures += check_cached_quant(compile_, path, work, cfg,
                                               weights)
        failures += check_stories(compile_, work, a.stories)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        sys.exit(f"{failures} GGUF check(s) failed")
    print("all GGUF checks passed")


if __name__ == "__main__":
    main()
