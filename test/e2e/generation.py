#!/usr/bin/env python3
"""End-to-end check of text generation with a KV cache (docs/generation.md).

Models: the tiny LLaMA-style (GQA, RoPE) and GPT-2-style (MHA, learned
positions) decoders of test/e2e/gen_past_models.py, each exported with past
key/values (Optimum's names) and without (the usual forward export), with
PyTorch's greedy continuation of a prompt computed without a cache.

For each style and each of float, w8a16, w4a16 (g16), w8a8-dynamic, and
GPTQ w4a16 and static w8a8 calibrated from samples of input_ids only (the
past, mask and positions of the model with past are filled by calibration):
  * the model with past compiles (quench-kv-cache turns the past into
    caches) and `--generate 16` from the prompt gives ids equal to the
    greedy continuation of the model without past, compiled with the same
    scheme and run without a cache (the whole sequence every step);
  * in float both also equal PyTorch's greedy ids.
Then, on the LLaMA-style model:
  * one prompt run of the generation model (no --generate) compiled with
    --kv-logits-positions=all gives PyTorch's logits of every prompt
    position (1e-4); by default (last) the last position's only, equal;
  * --kv-cache=f16: the prompt's logits stay within 1e-2 of float (max abs
    difference over max |logit|, printed), and greedy ids are PyTorch's;
  * --kv-cache=int8 (codes + one scale per head and position): within
    5e-2 (and above f16's difference), greedy ids are PyTorch's;
  * sampling: the same --seed gives the same ids, another seed other ids,
    --top-k 1 gives the greedy ids;
  * errors, each one line on stderr, a nonzero exit and no output file: a
    prompt and generation longer than --capacity, a token id outside the
    vocabulary, a float prompt, an empty prompt, an input other than
    input_ids, a missing prompt, --temperature without --generate,
    --kv-cache=f32 for a model without past, an unknown --kv-cache value,
    --target=cuda (no KV caches on the GPU yet), an unknown
    --kv-logits-positions value;
  * --kv-cache=none compiles the graph as exported (past inputs remain).

Usage: generation.py --build BUILD_DIR --models DIR [--keep DIR]
Run through CTest: `ctest -L e2e -R generation` (needs the fixture
e2e/past-models, which writes DIR).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

SCHEMES = [("float", []), ("w8a16", ["--quant=w8a16"]),
           ("w4a16", ["--quant=w4a16", "--group-size=16"]),
           ("w8a8-dynamic", ["--quant=w8a8-dynamic"]),
           # Calibrated from samples that hold only input_ids: calibration
           # fills the past (empty), mask and positions of the model with
           # past itself.
           ("gptq-w4a16", ["--quant=w4a16", "--group-size=16", "--algo=gptq",
                           "--calib={calib}"]),
           ("w8a8-static", ["--quant=w8a8", "--calib={calib}"])]
STEPS = 16

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def run(cmd, ok=True):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if ok and p.returncode != 0:
        raise SystemExit("command failed (%d): %s\n%s%s" %
                         (p.returncode, " ".join(cmd), p.stdout, p.stderr))
    return p


def generated_ids(stdout):
    for line in stdout.splitlines():
        if line.startswith("generated "):
            return [int(t) for t in line.split(":", 1)[1].split()]
    raise SystemExit("no 'generated' line in:\n" + stdout)


def greedy_without_cache(exe, prompt, steps, work):
    """Greedy continuation by running the no-past executable on the whole
    sequence every step."""
    seq = list(prompt)
    out = os.path.join(work, "nocache-out")
    os.makedirs(out, exist_ok=True)
    ids_path = os.path.join(work, "nocache-ids.npy")
    for _ in range(steps):
        np.save(ids_path, np.array([seq], dtype=np.int64))
        run([exe, "--input", "input_ids=" + ids_path, "--output-dir", out,
             "--threads", "1"])
        logits = np.load(os.path.join(out, "logits.npy"))
        seq.append(int(np.argmax(logits[0, -1])))
    return seq[len(prompt):]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--keep")
    args = ap.parse_args()
    qc = os.path.join(args.build, "bin", "quench-compile")
    with open(os.path.join(args.models, "manifest.json")) as f:
        manifest = json.load(f)
    work = args.keep or tempfile.mkdtemp(prefix="quench-generation-")
    os.makedirs(work, exist_ok=True)
    calib = os.path.join(work, "calib")
    rng = np.random.RandomState(5)

    def model(style, key):
        return os.path.join(args.models, manifest[style][key])

    for style in ("llama", "gpt2"):
        prompt_path = model(style, "prompt_ids")
        prompt = np.load(prompt_path)[0].tolist()
        reference = np.load(model(style, "greedy_ids"))[0].tolist()[:STEPS]
        shutil.rmtree(calib, ignore_errors=True)
        for i in range(4):
            os.makedirs(os.path.join(calib, "s%d" % i))
            np.save(os.path.join(calib, "s%d" % i, "input_ids.npy"),
                    rng.randint(0, manifest[style]["vocab"],
                                (1, 12)).astype(np.int64))
        for scheme, flags in SCHEMES:
            # The 16-bit activation form at every row count: with int8
            # prefill (the default for 4-bit weights from 16 rows) the
            # uncached runs (the whole sequence every step, 16 rows and
            # more) would compute differently from the cached decode steps
            # (one row) and could part at a near-tie (gpt2 w4a16 did, at
            # step 13); the cache is what is compared here.
            flags = [f.format(calib=calib) for f in flags] + [
                "--prefill-activations=float"]
            tag = "%s %s" % (style, scheme)
            gen = os.path.join(work, "%s_%s_past" % (style, scheme))
            plain = os.path.join(work, "%s_%s" % (style, scheme))
            run([qc, model(style, "with_past"), "-o", gen] + flags)
            run([qc, model(style, "without_past"), "-o", plain] + flags)
            outdir = os.path.join(work, "out_%s_%s" % (style, scheme))
            os.makedirs(outdir, exist_ok=True)
            p = run([gen, "--input", "input_ids=" + prompt_path, "--generate",
                     str(STEPS), "--output-dir", outdir, "--threads", "2"])
            cached = generated_ids(p.stdout)
            written = np.load(os.path.join(outdir, "generated_ids.npy"))
            check(written.dtype == np.int64 and written.shape == (1, STEPS)
                  and written[0].tolist() == cached,
                  "%s: generated_ids.npy is int64 [1, %d] and holds the "
                  "printed ids" % (tag, STEPS))
            check("prefill:" in p.stdout and "decode:" in p.stdout and
                  "tokens/s" in p.stdout,
                  "%s: prefill and decode tokens/s printed" % tag)
            uncached = greedy_without_cache(plain, prompt, STEPS, work)
            check(cached == uncached,
                  "%s: greedy ids with the cache %s == without %s" %
                  (tag, cached, uncached))
            if scheme == "float":
                check(cached == reference,
                      "%s: greedy ids == PyTorch's %s" % (tag, reference))

    # The LLaMA-style model in detail.
    style = "llama"
    prompt_path = model(style, "prompt_ids")
    reference = np.load(model(style, "greedy_ids"))[0].tolist()[:STEPS]
    vocab = manifest[style]["vocab"]
    gen = os.path.join(work, "llama_float_past")

    # One prompt run with --kv-logits-positions=all: the logits of every
    # prompt position.
    gen_all = os.path.join(work, "llama_float_past_all")
    run([qc, model(style, "with_past"), "-o", gen_all,
         "--kv-logits-positions=all"])
    outdir = os.path.join(work, "prompt-logits")
    os.makedirs(outdir, exist_ok=True)
    run([gen_all, "--input", "input_ids=" + prompt_path, "--output-dir",
         outdir])
    logits = np.load(os.path.join(outdir, "logits.npy"))
    torch_logits = np.load(model(style, "logits"))
    n = logits.shape[1]
    check(n == len(np.load(prompt_path)[0]),
          "llama: --kv-logits-positions=all gives every prompt position's "
          "logits (%d)" % n)
    ref = torch_logits[:, :n] if torch_logits.shape[1] >= n else None
    if ref is not None:
        err = float(np.max(np.abs(logits - ref)))
        check(err <= 1e-4 * max(1.0, float(np.max(np.abs(ref)))),
              "llama: prompt logits match PyTorch (max |diff| %.2e)" % err)
    # The default (last): the last position's only, the same numbers.
    outdir = os.path.join(work, "prompt-logits-last")
    os.makedirs(outdir, exist_ok=True)
    run([gen, "--input", "input_ids=" + prompt_path, "--output-dir", outdir])
    last = np.load(os.path.join(outdir, "logits.npy"))
    check(last.shape == (1, 1, vocab) and
          float(np.max(np.abs(last - logits[:, -1:]))) <=
          1e-5 * max(1.0, float(np.max(np.abs(last)))),
          "llama: the default logits are the last position's %s (all "
          "positions: %s)" % (last.shape, logits.shape))

    # Caches of smaller types: the prompt's logits against the f32 cache's
    # (max |diff| over max |logit|), and the greedy ids.
    def cache_type(kind):
        exe = os.path.join(work, "llama_%scache_past" % kind)
        run([qc, model(style, "with_past"), "-o", exe, "--kv-cache=" + kind,
             "--kv-logits-positions=all"])
        out = os.path.join(work, "prompt-logits-" + kind)
        os.makedirs(out, exist_ok=True)
        run([exe, "--input", "input_ids=" + prompt_path, "--output-dir", out])
        got = np.load(os.path.join(out, "logits.npy"))
        rel = float(np.max(np.abs(got - logits)) / np.max(np.abs(logits)))
        print("     %s cache: prompt logits differ from the f32 cache by "
              "%.2e of max |logit|" % (kind, rel))
        p = run([exe, "--input", "input_ids=" + prompt_path, "--generate",
                 str(STEPS)])
        check(generated_ids(p.stdout) == reference,
              "llama: --kv-cache=%s greedy ids == PyTorch's" % kind)
        return exe, rel

    _, rel16 = cache_type("f16")
    check(0 < rel16 <= 1e-2, "llama: --kv-cache=f16 logits within 1e-2 "
          "(relative %.2e; nonzero, so the cache is f16)" % rel16)
    # int8: codes plus one scale per head and position.
    gen8, rel8 = cache_type("int8")
    check(rel16 < rel8 <= 5e-2, "llama: --kv-cache=int8 logits within 5e-2 "
          "(relative %.2e; more than f16's)" % rel8)
    h = run([gen8, "--help"]).stdout
    check("i8[1, 2, ?, 16]" in h and "past_key_values.0.key.scale" in h,
          "llama: --kv-cache=int8 caches are i8 codes plus f32 scales")

    # Sampling.
    def sample(*extra):
        return generated_ids(run([gen, "--input", "input_ids=" + prompt_path,
                                  "--generate", str(STEPS)] +
                                 list(extra)).stdout)
    a = sample("--temperature", "1.0", "--seed", "7")
    b = sample("--temperature", "1.0", "--seed", "7")
    c = sample("--temperature", "1.0", "--seed", "8")
    check(a == b, "sampling: the same seed gives the same ids %s" % a)
    check(a != c, "sampling: another seed gives other ids %s" % c)
    check(sample("--temperature", "0.7", "--top-k", "1", "--seed", "3") ==
          reference, "sampling: --top-k 1 gives the greedy ids")
    d = sample("--temperature", "0.9", "--top-p", "0.8", "--top-k", "20",
               "--seed", "11")
    check(len(d) == STEPS and all(0 <= t < vocab for t in d),
          "sampling: --top-p/--top-k ids are in the vocabulary")

    # Errors: one line, nonzero exit, no output file.
    def expect_error(cmd, needle, what, rc=None):
        outdir = os.path.join(work, "err-out")
        shutil.rmtree(outdir, ignore_errors=True)
        os.makedirs(outdir)
        p = run(cmd + ["--output-dir", outdir], ok=False)
        lines = p.stderr.strip().splitlines()
        check(p.returncode != 0 and (rc is None or p.returncode == rc) and
              len(lines) == 1 and needle in p.stderr and
              not os.listdir(outdir),
              "%s: rc %d, %r" % (what, p.returncode, p.stderr.strip()))

    def npy(name, array):
        path = os.path.join(work, name)
        np.save(path, array)
        return path

    expect_error([gen, "--input", "input_ids=" + prompt_path, "--generate",
                  "40", "--capacity", "20"], "capacity 20",
                 "prompt + generation beyond --capacity")
    expect_error([gen, "--input", "input_ids=" +
                  npy("bad_token.npy", np.array([[1, vocab + 5]], np.int64)),
                  "--generate", "4"], "outside the vocabulary",
                 "token id outside the vocabulary")
    expect_error([gen, "--input", "input_ids=" +
                  npy("float_prompt.npy", np.ones((1, 3), np.float32)),
                  "--generate", "4"], "int64 or int32", "float prompt")
    expect_error([gen, "--input", "input_ids=" +
                  npy("empty_prompt.npy", np.zeros((1, 0), np.int64)),
                  "--generate", "4"], "empty", "empty prompt")
    expect_error([gen, "--input", "input_ids=" +
                  npy("rank3_prompt.npy", np.ones((1, 1, 3), np.int64)),
                  "--generate", "4"], "input_ids", "rank-3 prompt")
    expect_error([gen, "--input", "past_length=" + prompt_path,
                  "--generate", "4"], "kept by the session",
                 "an input the session keeps", rc=2)
    expect_error([gen, "--generate", "4"], "missing input input_ids",
                 "no prompt")
    expect_error([gen, "--input", "input_ids=" + prompt_path,
                  "--temperature", "0.5"], "need --generate",
                 "--temperature without --generate", rc=2)
    p = run([qc, model(style, "without_past"), "-o",
             os.path.join(work, "nopast_forced"), "--kv-cache=f32"], ok=False)
    check(p.returncode != 0 and "no past key/value inputs" in p.stderr and
          not os.path.exists(os.path.join(work, "nopast_forced")),
          "--kv-cache=f32 on a model without past: %r" %
          p.stderr.strip().splitlines()[:1])
    p = run([qc, model(style, "with_past"), "-o",
             os.path.join(work, "cuda_gen.ptx"), "--target=cuda",
             "--emit=ptx"], ok=False)
    check(p.returncode != 0 and "does not run generation models" in p.stderr
          and not os.path.exists(os.path.join(work, "cuda_gen.ptx")),
          "--target=cuda refuses a generation model: %r" % p.stderr.strip())
    p = run([qc, model(style, "with_past"), "-o",
             os.path.join(work, "badkv"), "--kv-cache=int4"], ok=False)
    check(p.returncode != 0 and "--kv-cache must be" in p.stderr,
          "unknown --kv-cache value: %r" % p.stderr.strip())
    p = run([qc, model(style, "with_past"), "-o",
             os.path.join(work, "badpos"), "--kv-logits-positions=first"],
            ok=False)
    check(p.returncode != 0 and "--kv-logits-positions must be last or all"
          in p.stderr and not os.path.exists(os.path.join(work, "badpos")),
          "unknown --kv-logits-positions value: %r" % p.stderr.strip())

    # --kv-cache=none: the graph as exported.
    raw = os.path.join(work, "llama_raw")
    run([qc, model(style, "with_past"), "-o", raw, "--kv-cache=none"])
    h = run([raw, "--help"]).stdout
    check("past_key_values.0.key" in h and "present.0.key" in h and
          "--generate" not in h,
          "--kv-cache=none keeps the past inputs and present outputs")

    if failures:
        print("\n%d check(s) failed:" % len(failures))
        for f in failures:
            print("  " + f)
        return 1
    print("\nall generation checks passed")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
