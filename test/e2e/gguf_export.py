#!/usr/bin/env python3
"""End-to-end check of `quench-compile MODEL.gguf --quant=... --emit=gguf`
(lib/Frontend/GGUF/GGUFExport.cpp, docs/gguf.md "Export"): the exported
file, imported again by Quench's own GGUF import and compiled, must compute
what the Quench-compiled quantized model computes (logits equal to
<= 1e-5 relative; the codes are Quench's, so they are bit-identical in
practice), with each quantized matrix in the block type of its scheme and
everything else as in the source.

Cases, on a small random llama model (gguf_model.py; F32 and F16 matrices,
a q8_0 source matrix that --quant leaves as it is, separate head):
  w4a16 (int4 symmetric, groups of 32, f16 scales)  -> q4_0
  w8a16 --group-size=32                             -> q8_0
  w4a16 --algo=gptq (calibrated on token ids)       -> q4_0, GPTQ's codes
Errors (exit status 1, one message naming the layer and scheme or the
option, no output file): per-channel int8 (w8a16), int4 in groups of 64,
int3, asymmetric int4 whose q4_1 min (-zero_point * scale) is not an f16
value, --rotate, a tied head quantized without its embedding table (and
that model exported with --quant-head=false). ONNX inputs: gguf_export_onnx.py.
stories260K (skipped when absent): exported with q8_0 matrices (ffn_down,
whose 172 inputs are no multiple of 32, and the tied head kept float), its
greedy generation
through the KV cache from the exported file equals the quantized model's.

`--llama-bin DIR` (not used by CTest: the suite does not depend on
llama.cpp) also checks the exported stories260K file (with a byte-level
vocabulary) with llama.cpp: llama-quantize's F32 dequantization of it must
equal the format's definition for every tensor, and llama-cli's greedy
tokens on that file must be Quench's (docs/gguf.md records a run).

Usage: gguf_export.py --build BUILD_DIR [--keep DIR] [--llama-bin DIR]
Run through CTest: `ctest -L e2e -R gguf-export`.
"""

import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gguf_model as gm  # noqa: E402

TOL = 1e-5
SMALL = dict(dim=64, layers=2, heads=4, kv_heads=2, ff=128, vocab=64)


def run(cmd, ok=True):
    res = subprocess.run(cmd, capture_output=True, text=True)
    if ok and res.returncode != 0:
        sys.stderr.write(f"command failed: {' '.join(cmd)}\n{res.stdout}"
                         f"{res.stderr}\n")
        sys.exit(1)
    return res


def read_tensor_types(path, data=False):
    """{tensor name: ggml type} and the key/value count of a GGUF file; with
    `data`, {name: (type, dims, raw bytes)} instead of the types (alignment
    32)."""
    with open(path, "rb") as f:
        b = f.read()
    assert b[:4] == b"GGUF"
    _, nt, nkv = struct.unpack_from("<IQQ", b, 4)
    at = 24

    def string(at):
        n, = struct.unpack_from("<Q", b, at)
        return b[at + 8:at + 8 + n].decode(), at + 8 + n
    sizes = {gm.U8: 1, gm.I8: 1, gm.BOOL: 1, gm.U16: 2, gm.I16: 2, gm.U32: 4,
             gm.I32: 4, gm.F32V: 4, gm.U64: 8, gm.I64: 8, gm.F64V: 8}

    def skip(at, t):
        if t == gm.STR:
            return string(at)[1]
        if t == gm.ARR:
            et, n = struct.unpack_from("<IQ", b, at)
            at += 12
            for _ in range(n):
                at = skip(at, et)
            return at
        return at + sizes[t]
    for _ in range(nkv):
        _, at = string(at)
        t, = struct.unpack_from("<I", b, at)
        at = skip(at + 4, t)
    types, infos = {}, []
    for _ in range(nt):
        name, at = string(at)
        nd, = struct.unpack_from("<I", b, at)
        dims = struct.unpack_from("<%dQ" % nd, b, at + 4)
        at += 4 + 8 * nd
        types[name], off = struct.unpack_from("<IQ", b, at)
        infos.append((name, types[name], dims, off))
        at += 12
    if not data:
        return types, nkv
    start = (at + 31) // 32 * 32
    out = {}
    for name, t, dims, off in infos:
        if t not in gm.BLOCK:  # a type gguf_model.py does not define
            out[name] = (t, dims, None)
            continue
        elems, nbytes = gm.BLOCK[t]
        size = int(np.prod(dims)) // elems * nbytes
        out[name] = (t, dims, b[start + off:start + off + size])
    return out, nkv


def logits(exe, ids, work):
    np.save(os.path.join(work, "ids.npy"), np.array([ids], np.int64))
    out = os.path.join(work, "out")
    run([exe, "--input", "input_ids=" + os.path.join(work, "ids.npy"),
         "--output-dir", out])
    return np.load(os.path.join(out, "logits.npy"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--keep", help="keep the work files in this directory")
    ap.add_argument("--llama-bin", help="also check with llama.cpp's "
                    "llama-quantize and llama-cli in this directory (manual; "
                    "not part of the test suite)")
    ap.add_argument("--stories", default=os.path.normpath(os.path.join(
        HERE, "..", "..", "..", "shared", "models", "stories260K.bin")))
    a = ap.parse_args()
    qc = os.path.join(a.build, "bin", "quench-compile")
    work = a.keep or tempfile.mkdtemp(prefix="quench-gguf-export-")
    os.makedirs(os.path.join(work, "out"), exist_ok=True)
    failures = 0

    def report(ok, what):
        nonlocal failures
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {what}")

    try:
        src = os.path.join(work, "src.gguf")
        kinds = [gm.F32, gm.F16, gm.Q8_0, gm.F32, gm.F16, gm.F32, gm.F32]
        state = {"i": 0}

        def types(name):
            if name in ("token_embd.weight", "output.weight"):
                return gm.F32
            state["i"] += 1
            return kinds[state["i"] % len(kinds)]
        recorded = {}
        gm.make_model(src, np.random.default_rng(3),
                      types=lambda n: recorded.setdefault(n, types(n)),
                      **SMALL)
        src_types, src_kv = read_tensor_types(src)
        rng = np.random.default_rng(5)
        ids = rng.integers(0, SMALL["vocab"], 9).tolist()
        calib = os.path.join(work, "calib")
        os.makedirs(calib, exist_ok=True)
        np.save(os.path.join(calib, "input_ids.npy"),
                np.array([ids], np.int64))

        cases = [("w4a16", ["--quant=w4a16"], gm.Q4_0),
                 ("w8a16-g32", ["--quant=w8a16", "--group-size=32"],
                  gm.Q8_0),
                 ("w4a16-gptq", ["--quant=w4a16", "--algo=gptq",
                                 "--calib=" + calib], gm.Q4_0)]
        for name, flags, want in cases:
            out = os.path.join(work, name + ".gguf")
            run([qc, src, "-o", out, "--emit=gguf"] + flags)
            got_types, kv = read_tensor_types(out)
            expect = {n: (want if t in (gm.F32, gm.F16) and
                          n != "token_embd.weight" and
                          not n.endswith("norm.weight") else t)
                      for n, t in src_types.items()}
            report(got_types == expect and kv == src_kv,
                   f"{name}: tensor types "
                   f"{'as expected' if got_types == expect else got_types}"
                   f" (matrices {gm.TYPE_NAMES[want]}, source q8_0 and "
                   f"vectors kept), {kv} key/values as the source")
            quant_exe = os.path.join(work, name + "_quench")
            back_exe = os.path.join(work, name + "_back")
            run([qc, src, "-o", quant_exe] + flags)
            run([qc, out, "-o", back_exe])
            for seq in (ids,):
                q = logits(quant_exe, seq, work)
                b = logits(back_exe, seq, work)
                err = float(np.max(np.abs(q - b)) / np.max(np.abs(q)))
                report(err <= TOL, f"{name} seq {len(seq)}: exported file "
                       f"vs the Quench-compiled model: max |err| / max |ref|"
                       f" = {err:.2e} (limit {TOL:g})")

        # Errors: one message, exit status 1, no output.
        tied = os.path.join(work, "tied.gguf")
        gm.make_model(tied, np.random.default_rng(4), tied=True, **SMALL)
        bad = [
            ("per-channel int8", src, ["--quant=w8a16"],
             r"layer 'blk\.0\.attn_q\.weight' \(int8 symmetric per output "
             r"channel\): no GGUF block type"),
            ("int4 groups of 64", os.path.join(work, "wide.gguf"),
             ["--quant=w4a16", "--group-size=64"],
             r"\(int4 symmetric in groups of 64\): no GGUF block type"),
            ("int3", src, ["--quant=w3a16"], r"\(int3 symmetric in groups "
             r"of 32\): no GGUF block type"),
            ("asymmetric int4, q4_1's min", src,
             ["--quant=w4a16", "--asymmetric"],
             r"\(int4 asymmetric in groups of 32\): not exactly q4_1: group "
             r"\d+ of row \d+: -zero_point \* scale is not exactly an f16 "
             r"value"),
            ("rotation", src, ["--quant=w4a16", "--rotate=hadamard"],
             r"--emit=gguf does not carry --rotate"),
            ("tied head only", tied, ["--quant=w4a16"],
             r"'token_embd\.weight' is both the embedding table and the "
             r"tied output head.*--quant-head=false"),
        ]
        gm.make_model(bad[1][1], np.random.default_rng(6),
                      **dict(SMALL, dim=128))
        for what, model, flags, pattern in bad:
            out = os.path.join(work, "bad.gguf")
            res = run([qc, model, "-o", out, "--emit=gguf"] + flags,
                      ok=False)
            errors = [l for l in res.stderr.splitlines() if "error" in l]
            ok = (res.returncode == 1 and len(errors) == 1 and
                  re.search(pattern, errors[0]) is not None and
                  not os.path.exists(out))
            report(ok, f"error, {what}: "
                   + (errors[0] if errors else f"rc {res.returncode}, "
                      f"stderr {res.stderr!r}"))
        # The tied model exports with the head kept float.
        out = os.path.join(work, "tied_q.gguf")
        run([qc, tied, "-o", out, "--emit=gguf", "--quant=w4a16",
             "--quant-head=false"])
        t, _ = read_tensor_types(out)
        report(t["token_embd.weight"] == gm.F32 and
               t["blk.0.attn_q.weight"] == gm.Q4_0,
               "tied model with --quant-head=false: embedding f32, "
               "matrices q4_0")

        failures += check_stories(qc, work, a.stories, a.llama_bin)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        sys.exit(f"{failures} GGUF export check(s) failed")
    print("all GGUF export checks passed")


def byte_vocab(vocab):
    """A llama (SentencePiece) vocabulary llama.cpp tokenizes with: <unk>,
    <s>, </s>, the 256 byte tokens, then '\u2581w<i>' pieces (so that the
    generated text names the ids)."""
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % i for i in range(256)]
    toks += ["\u2581w%d" % i for i in range(len(toks), vocab)]
    types = [2, 3, 3] + [6] * 256 + [1] * (vocab - 259)
    return toks, types


def check_stories(qc, work, bin_path, llama_bin):
    if not os.path.isfile(bin_path):
        print(f"skip stories260K: {bin_path} is absent")
        return 0
    import gguf as gg  # test/e2e/gguf.py
    path = os.path.join(work, "stories260K.gguf")
    # gguf.py's file, with a vocabulary llama.cpp accepts.
    toks, types = byte_vocab(512)
    _, _, bos, _ = gg.write_stories(path, bin_path, [
        ("tokenizer.ggml.model", gm.STR, "llama", None),
        ("tokenizer.ggml.tokens", gm.ARR, toks, gm.STR),
        ("tokenizer.ggml.scores", gm.ARR, [0.0] * 512, gm.F32V),
        ("tokenizer.ggml.token_type", gm.ARR, types, gm.I32),
        ("tokenizer.ggml.bos_token_id", gm.U32, 1, None),
        ("tokenizer.ggml.eos_token_id", gm.U32, 2, None)])
    flags = ["--quant=w8a16", "--group-size=32", "--quant-head=false",
             "--quant-exclude=blk.*.ffn_down"]
    out = os.path.join(work, "stories_q8_0.gguf")
    run([qc, path, "-o", out, "--emit=gguf"] + flags)
    n = 24
    np.save(os.path.join(work, "bos.npy"), np.array([[bos]], np.int64))
    gens = []
    for model, extra in ((path, flags), (out, [])):
        exe = os.path.join(work, "stories_gen")
        run([qc, model, "-o", exe, "--derive-kv-cache"] + extra)
        run([exe, "--input", "input_ids=" + os.path.join(work, "bos.npy"),
             "--generate", str(n), "--output-dir", os.path.join(work, "out")])
        gens.append(np.load(os.path.join(work, "out",
                                         "generated_ids.npy"))[0].tolist())
    ok = gens[0] == gens[1]
    print(f"{'ok  ' if ok else 'FAIL'} stories260K q8_0 export: greedy "
          f"generation from the exported file "
          f"{'equals' if ok else 'differs from'} the quantized model's"
          + ("" if ok else f": {gens[1]} vs {gens[0]}"))
    if llama_bin:
        # llama.cpp's own dequantization of the exported file (llama-quantize
        # to F32: ggml's q8_0 definition) must give the values Quench's
        # import gives, bit for bit, and llama-cli on that file the same
        # greedy tokens as Quench. (llama-cli on the q8_0 file itself
        # quantizes the activations to q8_0 in its products: printed, not
        # compared.)
        deq = os.path.join(work, "stories_deq_f32.gguf")
        run([os.path.join(llama_bin, "llama-quantize"), "--allow-requantize",
             out, deq, "F32", "1"])
        exported, _ = read_tensor_types(out, data=True)
        dequantized, _ = read_tensor_types(deq, data=True)
        same_values = all(
            np.array_equal(gm.dequantize(t, raw, int(np.prod(dims))),
                           np.frombuffer(dequantized[name][2], np.float32))
            for name, (t, dims, raw) in exported.items())
        print(f"{'ok  ' if same_values else 'FAIL'} llama-quantize's F32 "
              f"dequantization of the exported file "
              f"{'equals' if same_values else 'differs from'} the format's "
              f"definition for every tensor")
        toks, _ = byte_vocab(512)
        ours = "".join(toks[i].replace("\u2581", " ") for i in gens[1])

        def cli(model):
            return run([os.path.join(llama_bin, "llama-cli"), "-m", model,
                        "-p", "", "-n", str(n), "--temp", "0", "-t", "1",
                        "-no-cnv", "--no-warmup", "--no-display-prompt",
                        "-c", "256"]).stdout.strip()
        text = cli(deq)
        same = text.startswith(ours.strip())
        print(f"{'ok  ' if same else 'FAIL'} llama-cli greedy text on the "
              f"dequantized export {'equals' if same else 'differs from'} "
              f"Quench's:\n  llama.cpp: {text[:200]!r}\n"
              f"  Quench:    {ours.strip()[:200]!r}")
        print(f"info llama-cli on the q8_0 file itself (q8_0 activations): "
              f"{cli(out)[:200]!r}")
        ok = ok and same and same_values
    return int(not ok)


if __name__ == "__main__":
    main()
