#!/usr/bin/python3
"""Small models, Quench against ONNX Runtime at 1 and 2 threads, side by side.

The models (issue #18 point 1, "Threads where they pay"):
  * BERT-style: a 2-layer post-LayerNorm encoder (d 64, 4 heads, GELU with
    erf, bidirectional attention with an additive padding mask), written
    here in plain PyTorch with seeded weights, exported at opset 13, input
    [2, 20];
  * GPT-2-, LLaMA- and T5-style: the test-model exports
    (test/models/export_models.py, opset 13, dynamic axes), input [2, 24];
  * the bundled char-GPT (examples/chargpt/chargpt.py export --random,
    the static [1, 32] file);
  * stories260K (examples/stories260k_to_onnx.py, 32 tokens) when its
    checkpoint exists.

Quench compiles each ONNX file (`quench-compile --shape` for the dynamic
ones); ONNX Runtime (onnxruntime-node 1.30, bench/ort/run.js: CPU provider,
all graph optimizations, sequential executor, intra-op threads T) runs the
same file. Every (model, threads) pair is measured ROUNDS times, alternating
Quench and ORT so that both see the same machine load; each measurement is
`--bench RUNS` (median of RUNS runs after a warm-up). The table reports the
median of the rounds' medians per engine and the ratio Quench / ORT (below
1: Quench is faster), and Quench's 2-thread / 1-thread ratio (above 1: two
threads are slower). Outputs of Quench and ORT are compared first (max
|difference| relative to max |ORT| must stay below 1e-4).

Usage: bench/small_models.py [--build build] [--work DIR] [--runs 300]
         [--rounds 3] [--threads 1,2] [--stories PATH] [--only NAME ...]
Needs onnxruntime-node (bench/ort/setup.sh) and /usr/bin/python3 with torch.
"""

import argparse
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"


def export_bert(path, batch=2, seq=20, vocab=96, d=64, heads=4, layers=2,
                ff=128):
    """A BERT-style encoder (post-LN, erf GELU, padding mask) at opset 13."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(d, 3 * d)
            self.out = nn.Linear(d, d)
            self.ln1 = nn.LayerNorm(d, eps=1e-12)
            self.fc1 = nn.Linear(d, ff)
            self.fc2 = nn.Linear(ff, d)
            self.ln2 = nn.LayerNorm(d, eps=1e-12)

        def forward(self, x, bias):
            b, t, _ = x.shape
            q, k, v = self.qkv(x).split(d, dim=2)
            q, k, v = (y.view(b, t, heads, d // heads).transpose(1, 2)
                       for y in (q, k, v))
            att = q @ k.transpose(-2, -1) / math.sqrt(d // heads) + bias
            y = (F.softmax(att, dim=-1) @ v).transpose(1, 2).reshape(b, t, d)
            x = self.ln1(x + self.out(y))
            return self.ln2(x + self.fc2(F.gelu(self.fc1(x))))

    class Bert(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(vocab, d)
            self.pos = nn.Embedding(64, d)
            self.ln = nn.LayerNorm(d, eps=1e-12)
            self.layers = nn.ModuleList([Layer() for _ in range(layers)])
            self.pool = nn.Linear(d, d)

        def forward(self, input_ids, attention_mask):
            t = input_ids.shape[1]
            x = self.ln(self.tok(input_ids) +
                        self.pos(torch.arange(t)).unsqueeze(0))
            bias = (1.0 - attention_mask[:, None, None, :].float()) * -10000.0
            for layer in self.layers:
                x = layer(x, bias)
            return x, torch.tanh(self.pool(x[:, 0]))

    torch.manual_seed(0)
    model = Bert().eval()
    ids = torch.randint(0, vocab, (batch, seq))
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[1, seq - 5:] = 0  # the second sequence is padded
    torch.onnx.export(model, (ids, mask), path, opset_version=13,
                      input_names=["input_ids", "attention_mask"],
                      output_names=["hidden", "pooled"])
    base = path[:-len(".onnx")]
    np.save(base + ".input_ids.npy", ids.numpy())
    np.save(base + ".attention_mask.npy", mask.numpy())
    return {"input_ids": base + ".input_ids.npy",
            "attention_mask": base + ".attention_mask.npy"}


def bench_line(text):
    m = re.search(r"median ([0-9.]+) ms, min ([0-9.]+) ms", text)
    if not m:
        raise RuntimeError("no bench line in:\n" + text)
    return float(m.group(1))


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("FAIL: %s exited with %d\n%s%s" % (" ".join(cmd),
                                                    p.returncode, p.stdout,
                                                    p.stderr))
    return p.stdout + p.stderr


def prepare_models(args, work):
    """[(name, onnx path, {input: npy}, quench-compile flags)]."""
    models = []
    want = lambda name: not args.only or name in args.only
    if want("bert"):
        path = os.path.join(work, "bert_op13.onnx")
        inputs = export_bert(path)
        models.append(("bert", path, inputs, []))
    test_models = [n for n in ("gpt2", "llama", "t5") if want(n)]
    if test_models:
        out = os.path.join(work, "test_models")
        run([PY, os.path.join(ROOT, "test", "models", "export_models.py"),
             "--out-dir", out, "--only"] +
            ["%s_op13_dynamic" % n for n in test_models])
        rng = np.random.default_rng(0)
        for n in test_models:
            ids = os.path.join(out, "%s.ids_2x24.npy" % n)
            np.save(ids, rng.integers(0, 96, (2, 24)).astype(np.int64))
            models.append((n, os.path.join(out, "%s_op13_dynamic.onnx" % n),
                           {"input_ids": ids}, ["--shape", "input_ids=2x24"]))
    if want("chargpt"):
        out = os.path.join(work, "chargpt")
        run([PY, os.path.join(ROOT, "examples", "chargpt", "chargpt.py"),
             "export", "--random", "--out", out])
        models.append(("chargpt", os.path.join(out, "chargpt_random.t32.onnx"),
                       {"tokens": os.path.join(out,
                                               "chargpt_random.tokens.npy")},
                       []))
    if want("stories260K"):
        if os.path.isfile(args.stories):
            path = os.path.join(work, "stories_t32.onnx")
            run([PY, os.path.join(ROOT, "examples", "stories260k_to_onnx.py"),
                 "--bin", args.stories, "-o", path, "--seq", "32"])
            ids = os.path.join(work, "stories.ids.npy")
            np.save(ids, np.random.default_rng(1).integers(
                1, 512, (1, 32)).astype(np.int64))
            models.append(("stories260K", path, {"input_ids": ids}, []))
        else:
            print("stories260K skipped: %s not found" % args.stories)
    return models


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--work")
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--stories", default=os.path.join(
        os.path.dirname(ROOT), "shared", "models", "stories260K.bin"))
    ap.add_argument("--only", nargs="*",
                    help="bert, gpt2, llama, t5, chargpt, stories260K")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    work = args.work or tempfile.mkdtemp(prefix="quench-small-")
    os.makedirs(work, exist_ok=True)
    qc = os.path.join(args.build, "bin", "quench-compile")
    runjs = os.path.join(ROOT, "bench", "ort", "run.js")
    run([os.path.join(ROOT, "bench", "ort", "setup.sh")])

    models = prepare_models(args, work)
    results = []  # (model, threads, quench ms, ort ms)
    for name, path, inputs, flags in models:
        exe = os.path.join(work, name + "_quench")
        run([qc, path, "-o", exe] + flags)
        in_args = []
        for k, v in inputs.items():
            in_args += ["--input", "%s=%s" % (k, v)]
        # Same outputs first.
        qd, od = exe + "_out", exe + "_ort_out"
        os.makedirs(qd, exist_ok=True)
        os.makedirs(od, exist_ok=True)
        run([exe] + in_args + ["--output-dir", qd, "--threads", "1"])
        run(["node", runjs, path] + in_args + ["--output-dir", od,
                                                "--threads", "1"])
        worst = 0.0
        for f in sorted(os.listdir(od)):
            a, b = np.load(os.path.join(od, f)), np.load(os.path.join(qd, f))
            worst = max(worst, float(np.abs(a - b).max() /
                                     max(1.0, np.abs(a).max())))
        print("%s: Quench vs ORT max rel. difference %.1e" % (name, worst),
              flush=True)
        if worst > 1e-4:
            sys.exit("FAIL: %s: Quench and ORT disagree" % name)
        for t in threads:
            q, o = [], []
            bench = ["--bench", str(args.runs), "--threads", str(t)]
            for _ in range(args.rounds):
                o.append(bench_line(run(["node", runjs, path] + in_args +
                                        bench)))
                q.append(bench_line(run([exe] + in_args + bench)))
            print("  %s %d thread(s): Quench %s ORT %s" %
                  (name, t, " ".join("%.4f" % x for x in q),
                   " ".join("%.4f" % x for x in o)), flush=True)
            results.append((name, t, statistics.median(q),
                            statistics.median(o)))

    load = os.getloadavg()
    print("\nload average %.2f %.2f %.2f; medians of %d rounds of --bench %d"
          % (load[0], load[1], load[2], args.rounds, args.runs))
    print("| model | threads | Quench (ms) | ORT (ms) | Quench/ORT | "
          "Quench T/1 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    one = {m: q for m, t, q, _ in results if t == 1}
    for m, t, q, o in results:
        print("| %s | %d | %.4f | %.4f | %.2f | %s |" %
              (m, t, q, o, q / o,
               "%.2f" % (q / one[m]) if m in one else "-"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
