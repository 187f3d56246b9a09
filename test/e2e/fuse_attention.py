#!/usr/bin/env python3
"""End-to-end check of attention fusion (quench-fuse-attention, the
`attention` stage; docs/generation.md "Fused attention").

Models: the tiny LLaMA-style (GQA) and GPT-2-style (MHA, `where` mask)
decoders with past of test/e2e/gen_past_models.py. For each style and each
cache type (f32, f16, int8):
  * the greedy ids of `--generate 16` with fused attention equal those of
    the chain as exported (`--fuse-attention=0`);
  * `--stop-after-stage=attention` shows one quench.attention per layer
    and no softmax left;
  * int8: the op takes the i8 cache views and their f32 scales, and no
    dequantized cache value is live (shape reads aside): the cache is not
    converted into a temporary before attention.

Usage: fuse_attention.py --build BUILD_DIR --models DIR [--keep DIR]
Run through CTest: `ctest -L e2e -R fuse-attention` (needs the fixture
e2e/past-models, which writes DIR).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

STEPS = 16

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit("command failed (%d): %s\n%s%s" %
                         (p.returncode, " ".join(cmd), p.stdout, p.stderr))
    return p


def generated_ids(stdout):
    for line in stdout.splitlines():
        if line.startswith("generated "):
            return [int(t) for t in line.split(":", 1)[1].split()]
    raise SystemExit("no 'generated' line in:\n" + stdout)


def live_values(ir):
    """The SSA values of a one-block MLIR function (`ir`, printed) whose
    data the return or an op without results (a cache write) reads,
    directly or through other ops; reads of a shape only (shape_of,
    tensor.dim) do not count."""
    defs, roots = {}, []
    for line in ir.splitlines():
        m = re.match(r"\s*(%[\w.]+(?::\d+)?(?:, %[\w.]+)*) = (.*)", line)
        if m:
            for name in m.group(1).split(", "):
                op = m.group(2)
                shape_read = op.startswith(("quench.shape_of", "tensor.dim"))
                defs[name.split(":")[0]] = "" if shape_read else op
        elif "%" in line and "func.func" not in line:
            roots.append(line)
    live, work = set(), []
    for line in roots:
        work += re.findall(r"%[\w.]+", line)
    while work:
        v = work.pop()
        if v in live or v not in defs:
            continue
        live.add(v)
        work += re.findall(r"%[\w.]+", defs[v])
    return live


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--keep")
    args = ap.parse_args()
    qc = os.path.join(args.build, "bin", "quench-compile")
    with open(os.path.join(args.models, "manifest.json")) as f:
        manifest = json.load(f)
    work = args.keep or tempfile.mkdtemp(prefix="quench-fuse-attention-")
    os.makedirs(work, exist_ok=True)

    def model(style, key):
        return os.path.join(args.models, manifest[style][key])

    for style in ("llama", "gpt2"):
        prompt = model(style, "prompt_ids")
        layers = manifest[style]["n_layers"]
        for kind in ("f32", "f16", "int8"):
            ids = {}
            for fuse in ("1", "0"):
                exe = os.path.join(work, "%s_%s_fuse%s" % (style, kind, fuse))
                run([qc, model(style, "with_past"), "-o", exe,
                     "--kv-cache=" + kind, "--fuse-attention=" + fuse])
                ids[fuse] = generated_ids(run(
                    [exe, "--input", "input_ids=" + prompt, "--generate",
                     str(STEPS), "--threads", "1"]).stdout)
            check(ids["1"] == ids["0"],
                  "%s --kv-cache=%s: greedy ids with fused attention %s == "
                  "with the exported chain %s" %
                  (style, kind, ids["1"], ids["0"]))
            ir = run([qc, model(style, "with_past"), "-o", "-",
                      "--kv-cache=" + kind,
                      "--stop-after-stage=attention"]).stdout
            fused = [l for l in ir.splitlines() if "quench.attention" in l]
            check(len(fused) == layers and "quench.softmax" not in ir,
                  "%s --kv-cache=%s: %d of %d attention cores fused" %
                  (style, kind, len(fused), layers))
            if kind == "int8":
                # The operand types: (query, key, value, key_scale,
                # value_scale[, bias]).
                i8_reads = all(re.search(
                    r"key_scale\(.*\(tensor<[^>]*xf32>, tensor<[^>]*xi8>, "
                    r"tensor<[^>]*xi8>, tensor<[^>]*x1xf32>, "
                    r"tensor<[^>]*x1xf32>", l) for l in fused)
                # quench-kv-cache's reads of the past alone leave dead
                # dequantizing casts (to-linalg's canonicalization drops
                # them); none may be live.
                live = live_values(ir)
                dequant = re.findall(
                    r"(%[\w.]+) = quench.cast %[\w.]+ : tensor<[^>]*xi8> to "
                    r"tensor<[^>]*xf32>", ir)
                read = [d for d in dequant if d in live]
                check(i8_reads and fused and dequant and not read,
                      "%s --kv-cache=int8: attention reads the i8 cache and "
                      "its scales (live dequantized values: %s)" %
                      (style, read))

    # --fuse-attention=0 drops the stage.
    stages = [l.split()[0] for l in run(
        [qc, "--list-stages", "--fuse-attention=0"]).stdout.splitlines()]
    check("attention" not in stages and "kv-cache" in stages,
          "--fuse-attention=0: no attention stage (%s)" % " ".join(stages))

    if failures:
        print("\n%d check(s) failed:" % len(failures))
        for f in failures:
            print("  " + f)
        return 1
    print("\nall attention fusion checks passed")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
