#!/usr/bin/python3
"""Cost of the run-time index checks of Gather (docs/reliability.md): the
same embedding models compiled by two quench-compile binaries (with and
without the checks), run alternately in one process tree so that both see
the same machine load.

Model (float32, ids int64 [1, T] input): the token + position embedding of
a GPT-style model, y = wte[ids] + wpe[range(T)], wte [V, D], wpe [P, D] -
two Gathers with run-time indices (the position one through Range), each
with its check (a min/max reduction over the ids, one compare) when the
compiler emits them.

With --model M.onnx --ids-name NAME the same is done for any model whose
only input is int64 token ids of shape [1, T] (e.g. a decode step made by
bench/gen_llama_onnx.py --seq 1), instead of the embedding model.

Each binary's executable runs `--bench RUNS` ROUNDS times, alternating; the
script prints the median of the per-round medians, the minimum of the
per-round minima, and their ratios (checked / unchecked)
and the load average.

Usage: bench/gather_checks.py --checked BUILD/bin/quench-compile
         --unchecked OTHER/bin/quench-compile [--runs 2000] [--rounds 5]
         [--tokens 64] [--work DIR] [--model M.onnx --ids-name NAME]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def embed_model(path, vocab, dim, positions):
    rng = np.random.default_rng(0)
    wte = numpy_helper.from_array(
        rng.standard_normal((vocab, dim)).astype(np.float32), "wte")
    wpe = numpy_helper.from_array(
        rng.standard_normal((positions, dim)).astype(np.float32), "wpe")
    scalar = lambda name, v: numpy_helper.from_array(np.array(v, np.int64),
                                                     name)
    g = helper.make_graph(
        [helper.make_node("Gather", ["wte", "ids"], ["tok"], name="wte_gather"),
         helper.make_node("Shape", ["ids"], ["shape"]),
         helper.make_node("Gather", ["shape", "one"], ["t"], axis=0),
         helper.make_node("Range", ["zero", "t", "one"], ["pos"]),
         helper.make_node("Gather", ["wpe", "pos"], ["posemb"],
                          name="wpe_gather"),
         helper.make_node("Add", ["tok", "posemb"], ["y"])],
        "embed",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, "T"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "T", dim])],
        [wte, wpe, scalar("zero", 0), scalar("one", 1)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, path)


def bench(exe, inputs, runs):
    cmd = [exe, "--bench", str(runs), "--threads", "1"]
    for name, path in inputs:
        cmd += ["--input", f"{name}={path}"]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    m = re.search(r"median ([0-9.]+) ms, min ([0-9.]+) ms", r.stdout + r.stderr)
    if not m:
        sys.exit(f"no bench line in: {r.stdout}{r.stderr}")
    return float(m.group(1)), float(m.group(2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checked", required=True)
    ap.add_argument("--unchecked", required=True)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--dim", type=int, default=288)
    ap.add_argument("--work")
    ap.add_argument("--model", help="an ONNX model of int64 ids [1, T]")
    ap.add_argument("--ids-name", default="ids")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="gather-checks-")
    os.makedirs(work, exist_ok=True)
    if a.model:
        model, what = a.model, os.path.basename(a.model)
    else:
        model = os.path.join(work, "embed.onnx")
        embed_model(model, a.vocab, a.dim, max(a.tokens, 256))
        what = f"embed V={a.vocab} D={a.dim}"
    ids = np.random.default_rng(1).integers(
        0, a.vocab, (1, a.tokens)).astype(np.int64)
    np.save(os.path.join(work, "ids.npy"), ids)
    exes = {}
    for tag, compiler in (("checked", a.checked), ("unchecked", a.unchecked)):
        exes[tag] = os.path.join(work, f"embed-{tag}")
        subprocess.run([compiler, model, "-o", exes[tag]], check=True)
    inputs = [(a.ids_name, os.path.join(work, "ids.npy"))]
    times = {tag: [] for tag in exes}
    for _ in range(a.rounds):
        for tag, exe in exes.items():
            times[tag].append(bench(exe, inputs, a.runs))
    load = os.getloadavg()
    med = {tag: statistics.median(x[0] for x in t) for tag, t in times.items()}
    low = {tag: min(x[1] for x in t) for tag, t in times.items()}
    for tag, t in times.items():
        print(f"{tag:9s} medians per round (ms): "
              + " ".join(f"{x[0]:.4f}" for x in t))
    print(f"{what} T={a.tokens}: median of medians checked "
          f"{med['checked']:.4f} ms, unchecked {med['unchecked']:.4f} ms, "
          f"ratio {med['checked'] / med['unchecked']:.3f}; min checked "
          f"{low['checked']:.4f} ms, unchecked {low['unchecked']:.4f} ms, "
          f"ratio {low['checked'] / low['unchecked']:.3f}; load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
