#!/usr/bin/env python3
"""The small T5 of examples/t5qa answering questions through Quench.

Compiles the trained model's three graphs (Optimum's seq2seq split, written
by `t5qa.py export`: encoder_model.onnx, decoder_model.onnx,
decoder_with_past_model.onnx) with `quench-compile --emit=obj` for each
scheme, links them with examples/t5qa/t5qa.c and the runtime, and checks:
  * float: the answers to the export's reference questions (given as the
    reference token ids, and as text through the program's tokenizer)
    equal PyTorch's greedy answers computed without a cache (qK.answer_ids,
    and the answer text);
  * every quantized scheme: the same answers as float (ids and text);
  * --max-answer 1 stops after the first token; a question with an unknown
    word is answered (no crash);
  * bad input (token id outside the vocabulary, unknown option, text without
    a tokenizer, a missing tokenizer, no question, bad values): one error
    line, status 1 or 2;
  * with float: the with-past decoder's last logits when tokens are
    appended to a session in chunks (past P, n new positions, 26 positions in all: the
    relative position bias of P..P+n-1 against 0..P+n-1, computed in the
    graph from the cache's length) equal PyTorch's decoder run on the
    whole prefix (relative 1e-4);
  * with float: t5qa.c and the runtime built with ASan + UBSan give the
    same answers with no report and no leak (skipped without ASan);
  * with float: the with-past decoder run by the runtime's executable
    driver (quench_model_main) with the cross-attention keys/values and
    encoder mask of a question given as --input (PyTorch's, written here)
    generates the reference answer from the start token, and a missing,
    session-filled or mistyped input is an error.
Prints each scheme's answers and tokens/s.

Schemes: float, w8a16, w8a8-dynamic, w8a8 (static, calibrated with the
export's calib/<graph>/ samples); default float,w8a16. Without float
every scheme's answers are compared with PyTorch's.

Usage: t5qa_generate.py --build BUILD_DIR --models DIR [--schemes LIST]
                        [--keep DIR] [--cc CC]
DIR is the export (`t5qa.py export --out X` writes X/t5qa; its checkpoint
X/t5qa.pt is used for the executable check). Run through CTest:
`ctest -R e2e/t5qa-generate` (float, W8A16) and e2e/t5qa-generate-w8a8
(w8a8-dynamic, w8a8); both need the t5qa-trained fixture.
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
ROOT = os.path.dirname(os.path.dirname(HERE))
GRAPHS = (("encoder_model", "t5qa_encoder"), ("decoder_model", "t5qa_decoder"),
          ("decoder_with_past_model", "t5qa_decoder_past"))
SCHEMES = {
    "float": [],
    "w8a16": ["--quant=w8a16"],
    "w8a8-dynamic": ["--quant=w8a8-dynamic"],
    "w8a8": ["--quant=w8a8"],  # + --calib per graph
}
ANSWER = re.compile(r"^(.*) -> (.*?) ?\[ids:((?: \d+)*)\]$", re.M)


def run(cmd, expect_rc=0, quiet=False):
    if not quiet:
        print("+ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    if proc.returncode != expect_rc:
        print(proc.stdout + proc.stderr)
        sys.exit(f"FAIL: {os.path.basename(cmd[0])} exited with "
                 f"{proc.returncode}, expected {expect_rc}")
    return proc


def run_parallel(cmds, jobs=2):
    """Runs the commands, `jobs` at a time; fails on the first error."""
    pending, running = list(cmds), []
    while pending or running:
        while pending and len(running) < jobs:
            cmd = pending.pop(0)
            print("+ " + " ".join(cmd), flush=True)
            running.append((cmd, subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                universal_newlines=True)))
        cmd, proc = running.pop(0)
        out, _ = proc.communicate()
        if proc.returncode != 0:
            print(out)
            for _, p in running:
                p.kill()
            sys.exit(f"FAIL: {os.path.basename(cmd[0])} exited with "
                     f"{proc.returncode}")


def answers_of(stdout, count):
    found = ANSWER.findall(stdout)
    if len(found) != count:
        sys.exit(f"FAIL: expected {count} answers in\n{stdout}")
    return [(q, text, [int(t) for t in ids.split()]) for q, text, ids in found]


def expect_error(cmd, rc, needle, what):
    proc = run(cmd, expect_rc=rc, quiet=True)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    if len(lines) != 1 or needle not in lines[0]:
        sys.exit(f"FAIL: {what}: expected one error line containing "
                 f"{needle!r}, got {proc.stderr!r}")
    print(f"  error ok ({what}): {lines[0]}")


BIAS_CHECK_C = r"""
#include "t5qa_decoder_past.h"
#include <stdio.h>
#include <stdlib.h>
/* DIR CHUNK...: sets the session's caller inputs from DIR/<name>.npy, then
 * appends each CHUNK (token ids separated by commas) with one
 * quench_session_run and writes its logits to DIR/logits_<k>.npy. */
int main(int argc, char **argv) {
  const quench_model *m = &t5qa_decoder_past_model;
  quench_error err;
  quench_session *s = t5qa_decoder_past_session_create(64, &err);
  if (!s)
    goto fail;
  char path[4096];
  for (int32_t i = 0; i < m->num_inputs; ++i) {
    if (quench_generation_caller_input(m, i) != 1)
      continue;
    quench_tensor t;
    snprintf(path, sizeof path, "%s/%s.npy", argv[1], m->inputs[i].name);
    if (quench_npy_read(path, &t, &err) != QUENCH_OK)
      goto fail;
    quench_status st =
        t5qa_decoder_past_session_set_input(s, m->inputs[i].name, &t, &err);
    quench_tensor_free(&t);
    if (st != QUENCH_OK)
      goto fail;
  }
  for (int k = 2; k < argc; ++k) {
    int64_t tokens[64];
    int64_t n = 0;
    for (char *p = argv[k]; *p && n < 64;) {
      tokens[n++] = strtoll(p, &p, 10);
      if (*p == ',')
        ++p;
    }
    quench_tensor logits;
    if (quench_session_run(s, tokens, n, &logits, NULL, &err) != QUENCH_OK)
      goto fail;
    snprintf(path, sizeof path, "%s/logits_%d.npy", argv[1], k - 2);
    quench_status st = quench_npy_write(path, &logits, &err);
    quench_tensor_free(&logits);
    if (st != QUENCH_OK)
      goto fail;
  }
  t5qa_decoder_past_session_destroy(s);
  return 0;
fail:
  fprintf(stderr, "bias_check: %s\n", err.message);
  t5qa_decoder_past_session_destroy(s);
  return 1;
}
"""


def bias_check(exe_dir, args, obj, model, feeds, x, mask, enc, cc):
    """The with-past decoder's logits when tokens are appended to the
    session in chunks (past P, n new positions: the relative position bias
    of positions P..P+n-1 against 0..P+n-1 computed from the cache's
    length, past the 16 exact buckets) == PyTorch's decoder run on the
    whole prefix without a cache."""
    import t5qa  # noqa: E402
    import torch  # noqa: E402
    d = os.path.join(exe_dir, "bias")
    os.makedirs(d, exist_ok=True)
    for name, v in feeds.items():
        np.save(os.path.join(d, name + ".npy"), v)
    src = os.path.join(d, "bias_check.c")
    with open(src, "w") as f:
        f.write(BIAS_CHECK_C)
    exe = os.path.join(d, "bias_check")
    run([cc, "-std=c11", "-O1", "-I", os.path.join(ROOT, "runtime", "include"),
         "-I", os.path.dirname(obj), src, obj,
         os.path.join(args.build, "lib", "libquench_runtime.a"), "-o", exe,
         "-lm", "-lpthread", "-ldl"])
    rng = np.random.default_rng(3)
    chunks = [[t5qa.PAD], [5, 6], [7], list(rng.integers(3, 250, 17)),
              [9], [11, 12, 13]]
    run([exe, d] + [",".join(str(int(t)) for t in c) for c in chunks])
    prefix = [int(t) for c in chunks for t in c]
    with torch.no_grad():
        full = model.decode(torch.tensor([prefix]), mask, enc)[0].numpy()
    worst, past = 0.0, 0
    for k, c in enumerate(chunks):
        # The last new position's logits (a step returns only those unless
        # compiled with --kv-logits-positions=all); they depend on every new
        # position's bias through the second layer's keys and values.
        got = np.load(os.path.join(d, "logits_%d.npy" % k))[:, -1]
        want = full[:, past + len(c) - 1]
        if got.shape != want.shape:
            sys.exit(f"FAIL: chunk {k}: last logits of shape {got.shape}, "
                     f"expected {want.shape}")
        err = float(np.abs(got - want).max() / np.abs(want).max())
        worst = max(worst, err)
        if not err <= 1e-4:
            sys.exit(f"FAIL: the logits of positions {past}..{past + len(c)}"
                     f" appended at past {past} differ from PyTorch's "
                     f"decoder on the whole prefix by {err:.3g} (relative)")
        past += len(c)
    print(f"  last logits of {len(chunks)} chunks appended to a session (past "
          f"0..{past - len(chunks[-1])}, 1 to {max(map(len, chunks))} new "
          f"positions) == PyTorch's decoder on the whole prefix (max "
          f"relative difference {worst:.2g})")


ASAN = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
        "-fno-sanitize-recover=undefined"]


def asan_check(d, cc, ids_args, want):
    """t5qa.c and the runtime's sources built with ASan + UBSan (and
    QUENCH_BUFFER_CACHE_BYTES=0, so every buffer goes back to malloc) with
    the float models: the same answers, no sanitizer report, no leak.
    Skipped (with a note) when the compiler cannot build with ASan."""
    flags = ["-std=c11", "-g", "-O1", "-pthread",
             "-DQUENCH_BUFFER_CACHE_BYTES=0"] + ASAN
    probe = os.path.join(d, "probe.c")
    with open(probe, "w") as f:
        f.write("int main(void) { return 0; }\n")
    if subprocess.run([cc] + flags + [probe, "-o", probe[:-2]],
                      stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode != 0:
        print("  note: no ASan run (the C compiler cannot build with "
              "-fsanitize=address,undefined)")
        return
    objs = []
    for src in sorted(os.listdir(os.path.join(ROOT, "runtime", "lib"))):
        if src.endswith(".c"):
            obj = os.path.join(d, "rt_" + src[:-2] + ".o")
            run([cc] + flags + ["-I", os.path.join(ROOT, "runtime", "include"),
                                "-c", os.path.join(ROOT, "runtime", "lib",
                                                   src), "-o", obj],
                quiet=True)
            objs.append(obj)
    exe = os.path.join(d, "t5qa_asan")
    run([cc] + flags + ["-I", os.path.join(ROOT, "runtime", "include"), "-I",
                        d, os.path.join(ROOT, "examples", "t5qa", "t5qa.c")] +
        [os.path.join(d, name + ".o") for _, name in GRAPHS] + objs +
        ["-o", exe, "-lm", "-ldl"])
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    proc = subprocess.run([exe, "--bench", "1"] + ids_args,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=env)
    if proc.returncode != 0 or re.search(r"Sanitizer|runtime error:",
                                         proc.stderr):
        print(proc.stdout + proc.stderr)
        sys.exit("FAIL: t5qa under ASan/UBSan failed or reported an error")
    got = [a for _, _, a in answers_of(proc.stdout, len(want))]
    if got != want:
        sys.exit(f"FAIL: t5qa under ASan answered {got}, expected {want}")
    print(f"  ASan + UBSan: {len(want)} answers == float's, no report")


def executable_check(exe_dir, args, obj, models, question, want, cc):
    """The with-past decoder through quench_model_main with --input."""
    sys.path.insert(0, os.path.join(ROOT, "examples", "t5qa"))
    import t5qa  # noqa: E402
    import torch  # noqa: E402
    model, tok, _ = t5qa.load_checkpoint(os.path.dirname(models))
    x = torch.tensor([question])
    mask = torch.ones_like(x)
    with torch.no_grad():
        enc = model.encode(x, mask)
        first = t5qa.DecoderExport(model)(torch.tensor([[t5qa.PAD]]), mask,
                                          enc)
    n = model.cfg["n_decoder_layers"]
    feeds = {"encoder_attention_mask": mask.numpy()}
    for name, t in zip(t5qa.past_names(n, "present"), first[1:]):
        if ".encoder." in name:
            feeds[name.replace("present.", "past_key_values.", 1)] = t.numpy()
    inputs = []
    for name, v in feeds.items():
        path = os.path.join(exe_dir, name + ".npy")
        np.save(path, v)
        inputs += ["--input", f"{name}={path}"]
    bias_check(exe_dir, args, obj, model, feeds, x, mask, enc, cc)
    start = os.path.join(exe_dir, "start.npy")
    np.save(start, np.array([[t5qa.PAD]], np.int64))
    main_c = os.path.join(exe_dir, "main.c")
    with open(main_c, "w") as f:
        f.write('#include "t5qa_decoder_past.h"\n'
                "int main(int argc, char **argv) {\n"
                "  return quench_model_main(&t5qa_decoder_past_model, argc, "
                "argv);\n}\n")
    exe = os.path.join(exe_dir, "decoder_past")
    run([cc, "-std=c11", "-O1", "-I", os.path.join(ROOT, "runtime", "include"),
         "-I", os.path.dirname(obj), main_c, obj,
         os.path.join(args.build, "lib", "libquench_runtime.a"), "-o", exe,
         "-lm", "-lpthread", "-ldl"])
    out = run([exe, "--input", "input_ids=" + start] + inputs +
              ["--generate", "8", "--eos", "1"]).stdout
    m = re.search(r"^generated \d+ tokens:((?: \d+)*)$", out, re.M)
    got = [int(t) for t in m.group(1).split()] if m else None
    if got != want:
        sys.exit(f"FAIL: the with-past decoder executable generated {got}, "
                 f"expected the reference answer {want}\n{out}")
    print(f"  executable with --input cross-attention keys/values: {got} "
          "== reference")
    expect_error([exe, "--input", "input_ids=" + start] + inputs[2:] +
                 ["--generate", "2"], 1, "missing input "
                 "encoder_attention_mask", "a caller input missing")
    expect_error([exe, "--input", "input_ids=" + start, "--input",
                  "past_length=" + start] + inputs + ["--generate", "2"], 2,
                 "kept by the session", "a session-filled input")
    bad = list(inputs)
    bad[3] = bad[3].split("=")[0] + "=" + start
    expect_error([exe, "--input", "input_ids=" + start] + bad +
                 ["--generate", "2"], 1, "expected f32[1, 4, ?, 32], got "
                 "i64[1, 1]", "a mistyped caller input")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True, help="Quench build directory")
    ap.add_argument("--models", required=True,
                    help="the export directory (t5qa.py export: OUT/t5qa)")
    ap.add_argument("--schemes", default="float,w8a16",
                    help="comma-separated, from " + ", ".join(SCHEMES))
    ap.add_argument("--keep", help="work in this directory and keep it")
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    args = ap.parse_args()

    compiler = os.path.join(args.build, "bin", "quench-compile")
    runtime = os.path.join(args.build, "lib", "libquench_runtime.a")
    for path in (compiler, runtime):
        if not os.path.exists(path):
            sys.exit(f"FAIL: {path} not found (build Quench)")
    qpath = os.path.join(args.models, "questions.json")
    if not os.path.exists(qpath):
        sys.exit(f"FAIL: {qpath} not found (run t5qa.py export, the "
                 "e2e/t5qa-train test)")
    schemes = args.schemes.split(",")
    for s in schemes:
        if s not in SCHEMES:
            sys.exit(f"FAIL: unknown scheme {s!r}")
    with open(qpath) as f:
        questions = json.load(f)["questions"]
    tokenizer = os.path.join(args.models, "tokenizer.json")
    texts = [q["question"] for q in questions]
    ids_args = []
    for q in questions:
        ids_args += ["--ids", ",".join(str(t) for t in q["input_ids"])]
    refs = [q["answer_ids"] for q in questions]
    work = args.keep or tempfile.mkdtemp(prefix="quench-t5qa-")
    os.makedirs(work, exist_ok=True)

    # Compile every scheme's three graphs, two compiles at a time.
    cmds = []
    for scheme in schemes:
        d = os.path.join(work, scheme)
        os.makedirs(d, exist_ok=True)
        for graph, name in GRAPHS:
            opts = list(SCHEMES[scheme])
            if scheme == "w8a8":
                opts.append("--calib=" + os.path.join(args.models, "calib",
                                                      graph))
            cmds.append([compiler, os.path.join(args.models, graph + ".onnx"),
                         "-o", os.path.join(d, name), "--emit=obj", "--name",
                         name] + opts)
    run_parallel(cmds)

    results = {}
    speeds = {}
    for scheme in schemes:
        d = os.path.join(work, scheme)
        exe = os.path.join(d, "t5qa")
        run([args.cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-I",
             os.path.join(ROOT, "runtime", "include"), "-I", d,
             os.path.join(ROOT, "examples", "t5qa", "t5qa.c")] +
            [os.path.join(d, name + ".o") for _, name in GRAPHS] +
            [runtime, "-o", exe, "-lm", "-lpthread", "-ldl"])
        # The reference token ids, and the text through the tokenizer.
        by_ids = answers_of(run([exe] + ids_args).stdout, len(questions))
        out = run([exe, "--tokenizer", tokenizer, "--bench", "3"] +
                  texts).stdout
        by_text = answers_of(out, len(questions))
        print(out)
        got = [a for _, _, a in by_ids]
        if [a for _, _, a in by_text] != got:
            sys.exit(f"FAIL: {scheme}: the answers to the text questions "
                     f"{[a for _, _, a in by_text]} differ from those to "
                     f"their reference ids {got} (the C tokenizer)")
        for (q, text, _), ref in zip(by_text, questions):
            if q != ref["question"]:
                sys.exit(f"FAIL: {scheme}: question {q!r}, expected "
                         f"{ref['question']!r}")
        results[scheme] = (got, [t for _, t, _ in by_text])
        m = re.search(r"answers: (\d+) tokens in ([\d.]+) ms \(([\d.]+) "
                      r"tokens/s", out)
        speeds[scheme] = float(m.group(3)) if m else float("nan")

    first = schemes[0]
    base, base_text = results[first]
    if first == "float":
        for k, (got, ref) in enumerate(zip(base, refs)):
            if got != ref:
                sys.exit(f"FAIL: float: question {texts[k]!r} answered "
                         f"{got}, PyTorch's greedy answer is {ref}")
        for k, (text, q) in enumerate(zip(base_text, questions)):
            if text != q["answer"]:
                sys.exit(f"FAIL: float: question {texts[k]!r} answered "
                         f"{text!r}, PyTorch's answer is {q['answer']!r}")
        print(f"float: {len(refs)} answers == PyTorch's greedy answers")
    for scheme in schemes:
        if scheme == "float":
            print(f"float: {speeds[scheme]:.0f} tokens/s (answers, encoder "
                  "included, 1 thread)")
            continue
        got, text = results[scheme]
        want = base if first == "float" else refs
        for k in range(len(refs)):
            if got[k] != want[k]:
                sys.exit(f"FAIL: {scheme}: question {texts[k]!r} answered "
                         f"{got[k]} ({text[k]!r}), "
                         f"{'float' if first == 'float' else 'PyTorch'} "
                         f"answers {want[k]}")
        print(f"{scheme}: {len(refs)} answers == "
              f"{'float' if first == 'float' else 'PyTorch'}'s; "
              f"{speeds[scheme]:.0f} tokens/s (answers, encoder included, "
              "1 thread)")

    # Other behaviour and errors, on the first scheme's program.
    exe = os.path.join(work, first, "t5qa")
    one = answers_of(run([exe, "--max-answer", "1"] + ids_args[:2]).stdout,
                     1)
    if one[0][2] != refs[0][:1]:
        sys.exit(f"FAIL: --max-answer 1 answered {one[0][2]}, expected "
                 f"{refs[0][:1]}")
    unk = answers_of(run([exe, "--tokenizer", tokenizer,
                          "where is atlantis?"]).stdout, 1)
    print(f"  --max-answer 1: {one[0][2]}; unknown word: {unk[0][1]!r}")
    expect_error([exe, "--ids", "999,1"], 1, "outside the vocabulary",
                 "a token id outside the vocabulary")
    expect_error([exe, "--bogus"], 2, "unknown option", "an unknown option")
    expect_error([exe, "where is delhi?"], 2, "give --tokenizer",
                 "text without a tokenizer")
    expect_error([exe, "--tokenizer", os.path.join(work, "none.json"), "x"],
                 1, "cannot open the tokenizer", "a missing tokenizer")
    expect_error([exe, "--tokenizer", qpath, "x"], 1, "no \"vocab\" array",
                 "a file that is not a tokenizer")
    expect_error([exe], 2, "no question", "no question")
    expect_error([exe, "--ids", "1,x"], 2, "--ids expects", "bad --ids")
    expect_error([exe, "--max-answer", "0", "--ids", "1"], 2,
                 "--max-answer expects", "--max-answer 0")
    expect_error([exe, "--threads"], 2, "needs a value", "a missing value")

    if "float" in schemes:
        asan_check(os.path.join(work, "float"), args.cc, ids_args,
                   results["float"][0])
        executable_check(os.path.join(work, "float"), args,
                         os.path.join(work, "float", "t5qa_decoder_past.o"),
                         args.models, questions[2]["input_ids"], refs[2],
                         args.cc)

    if not args.keep:
        shutil.rmtree(work)
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
