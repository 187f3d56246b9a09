#!/usr/bin/python3
"""Scale benchmark (issue #20): compile time, peak memory and artifact size
of quench-compile on LLaMA-shaped models of 125M, 1.1B and 7B parameters,
and the decode-step speed of the executables against the read-bandwidth
roofline.

For every preset (bench/gen_llama_onnx.py --preset: 125m and 1.1b fp32,
7b f16 in the torch-export graph) the script
  1. generates the model with --seq 1 (one decode step: every linear layer
     is a GEMV; there is no KV cache, so attention sees one position), once,
     into WORK/models (reused when it is already there);
  2. for every scheme, runs
       /usr/bin/time -f "%e %M" quench-compile MODEL -o EXE --emit=exe
         --quant=SCHEME --time --report=REPORT.json --linker=WRAPPER
     and records the wall time, the peak RSS (/usr/bin/time's %M: the
     largest RSS of quench-compile or of any child it waited for - the
     kernel's ru_maxrss with RUSAGE_CHILDREN folded in, a maximum over the
     processes, not a sum), quench-compile's own peak (its --time line,
     getrusage(RUSAGE_SELF)), and the linker's peak (WRAPPER runs the C
     compiler driver quench-compile would pick, clang-22 else cc, under
     /usr/bin/time; --no-link-probe turns this off), the artifact size, and
     pass/fail against the issue's bounds (1.1b: <= 120 s and <= 3 GB at
     none/w8a16/w4a16; 7b w4a16: <= 600 s and <= 6 GB; GB = 10^9 bytes);
  3. runs the executable once to check the logits are finite, then
     `EXE --input input_ids=IDS --bench RUNS --threads THREADS`, measures
     the read bandwidth right before it (bench/read_bw.c, built here,
     THREADS threads, 1 GiB buffer), and prints the median ms per step, the
     weight bytes a step reads (the size report's linear weights after
     quantization, plus one embedding row and the norm weights), and
     ratio = step time / (weight bytes / bandwidth); the issue's bound is
     ratio <= 1.3 (for 7b w4a16);
  4. deletes the executable (GBs) before the next scheme (--keep-artifacts
     keeps them).
With --prefill-seq N (e.g. 128) it also compiles a --seq N model per scheme
(a graph over the same weight file: gen_llama_onnx.py --data-from) and
reports prefill tokens/s (N / median step time); those compiles are not
held to the bounds.

At the end it prints a markdown table. Models are cached in WORK/models when
--work is given (kept, so that reruns skip generation; --clean-models
removes them at the end); without --work everything goes to a temporary
directory that is removed at the end. Disk: 125m 0.5 GB, 1.1b 4.4 GB, 7b
13.5 GB of model, plus one executable at a time.

Usage: bench/scale.py [--build DIR] [--work DIR] [--presets 125m,1.1b,7b|all]
         [--schemes none,w8a16,w4a16] [--runs 20] [--threads 2]
         [--prefill-seq 128] [--no-decode] [--keep-artifacts]
         [--clean-models] [--no-link-probe] [--json RESULTS.json]
Exit status 1 if a run failed or a bound was missed.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"
CLANG = "/usr/lib/llvm-22/bin/clang"
# (preset, scheme) -> (seconds, bytes) bounds of issue #20.
BOUNDS = {("1.1b", s): (120, 3e9) for s in ("none", "w8a16", "w4a16")}
BOUNDS[("7b", "w4a16")] = (600, 6e9)
ROOFLINE = {("7b", "w4a16"): 1.3}
GB = 1e9


def log(*a):
    print(*a, flush=True)


def generate(work, preset, seq):
    """WORK/models/PRESET.sSEQ.onnx (+ .json), made once. The weights are in
    PRESET.s1.onnx.data; a model with seq > 1 is a graph over that file."""
    d = os.path.join(work, "models")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "%s.s%d.onnx" % (preset, seq))
    manifest = os.path.splitext(path)[0] + ".json"
    cmd = [PY, os.path.join(ROOT, "bench", "gen_llama_onnx.py"), path,
           "--preset", preset, "--seq", str(seq)]
    if seq != 1:
        base, _ = generate(work, preset, 1)
        cmd += ["--data-from", base + ".data"]
    with open(manifest) if os.path.isfile(manifest) else open(os.devnull) as f:
        m = f.read()
    data = m and os.path.join(d, json.loads(m)["data"])
    if m and os.path.isfile(path) and os.path.isfile(data):
        log("model %s: cached" % path)
    else:
        t0 = time.time()
        subprocess.run(["/usr/bin/time", "-f", "generator: %e s, peak %M KB"] + cmd,
                       check=True)
        log("model %s: generated in %.0f s" % (path, time.time() - t0))
    with open(manifest) as f:
        return path, json.load(f)


def step_bytes(report, manifest, scheme):
    """Weight bytes one step reads: every linear weight (as stored after
    quantization), one embedding row, the norm weights."""
    cfg = manifest["config"]
    esize = 2 if cfg["dtype"] == "f16" else 4
    other = cfg["dim"] * esize * (1 + 2 * cfg["layers"] + 1)  # row + norms
    linear = [t for t in manifest["tensors"]
              if t["role"] in ("wq", "wk", "wv", "wo", "w1", "w2", "w3", "output")]
    if scheme == "none":
        return sum(t["length"] for t in linear) + other, "model"
    if report and report.get("linear_weight_bytes_after"):
        return report["linear_weight_bytes_after"] + other, "size report"
    # Fallback (no report): the scheme's nominal storage.
    per = {"w8a16": 1 + 2.0 / cfg["dim"], "w4a16": 0.5 + 2 / 32.0}
    n = sum(np_prod(t["shape"]) for t in linear)
    return int(n * per.get(scheme, esize)) + other, "estimate"


def np_prod(shape):
    n = 1
    for s in shape:
        n *= s
    return n


# Prefix of the timed runs (read_bw and the decode/prefill --bench):
# `chrt -f 50` with --rt.
TIMED = []


def read_bw(exe, threads):
    out = subprocess.run(TIMED + [exe, "1024", str(threads)], check=True,
                         capture_output=True, text=True).stdout
    return float(re.search(r"read-bw: ([0-9.]+) GB/s", out).group(1))


def bench_line(text):
    m = re.search(r"median ([0-9.]+) ms, min ([0-9.]+) ms", text)
    if not m:
        raise RuntimeError("no bench line in:\n" + text[-2000:])
    return float(m.group(1)), float(m.group(2))


def compile_model(a, work, model, out, scheme, wrapper):
    qc = os.path.join(a.build, "bin", "quench-compile")
    tfile = os.path.join(work, "time.txt")
    lfile = os.path.join(work, "link-rss.txt")
    rep = out + ".report.json"
    for p in (tfile, lfile, rep):
        if os.path.exists(p):
            os.unlink(p)
    cmd = [qc, model, "-o", out, "--emit=exe", "--quant=" + scheme, "--time",
           "--report=" + rep]
    env = dict(os.environ)
    if wrapper:
        cmd.append("--linker=" + wrapper)
        env["QUENCH_LINK_RSS"] = lfile
    log("$ " + " ".join(cmd))
    p = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", tfile] + cmd,
                       env=env, capture_output=True, text=True)
    text = p.stdout + p.stderr
    # Echo the phase times and the report's totals, not its per-layer rows.
    for line in text.splitlines():
        if re.match(r"(time:|peak memory|linear weights|all constants|artifact"
                    r"|error|quench-compile:)", line.strip()) or p.returncode:
            log("   " + line)
    r = dict(rc=p.returncode)
    with open(tfile) as f:
        last = f.read().strip().splitlines()[-1].split()
    r["secs"], r["rss"] = float(last[0]), int(last[1]) * 1024
    m = re.search(r"peak memory: ([0-9.]+) MB", text)
    r["self_rss"] = float(m.group(1)) * 1024 * 1024 if m else None
    # Newer quench-compile --time lines carry "peak X MB" after each phase:
    # name the phase that set the peak.
    r["peak_phase"], best = None, -1.0
    for name, pk in re.findall(r"time: (\S+)\s+[0-9.]+ s.*?peak\s+([0-9.]+) MB", text):
        if float(pk) > best:
            r["peak_phase"], best = name, float(pk)
    r["link_rss"] = None
    if os.path.isfile(lfile):
        with open(lfile) as f:
            vals = [int(v) for v in re.findall(r"^(\d+)$", f.read(), re.M)]
        if vals:
            r["link_rss"] = max(vals) * 1024
    r["report"] = None
    if os.path.isfile(rep):
        with open(rep) as f:
            r["report"] = json.load(f)
    r["artifact"] = os.path.getsize(out) if os.path.isfile(out) else None
    # quench-compile --time resets the kernel's high-water mark at each phase
    # (to print each phase's own peak), so %M only sees the phases after the
    # last reset: the peak is the largest of %M, quench-compile's own
    # per-phase peaks and the linker's.
    r["time_rss"] = r["rss"]
    r["rss"] = max([r["rss"]] + [v for v in (r["self_rss"], r["link_rss"]) if v])
    return r


def run_exe(a, exe, ids, work, bw_exe):
    od = os.path.join(work, "out")
    shutil.rmtree(od, ignore_errors=True)
    os.makedirs(od)
    p = subprocess.run(["/usr/bin/time", "-f", "exe-rss %M", exe, "--input",
                        "input_ids=" + ids, "--output-dir", od],
                       capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError("executable failed:\n" + (p.stdout + p.stderr)[-2000:])
    exe_rss = int(re.search(r"exe-rss (\d+)", p.stderr).group(1)) * 1024
    logits = np.load(os.path.join(od, "logits.npy"))
    finite = bool(np.isfinite(logits).all())
    shutil.rmtree(od)
    bw = read_bw(bw_exe, a.threads)
    p = subprocess.run(TIMED + [exe, "--input", "input_ids=" + ids, "--bench",
                                str(a.runs), "--threads", str(a.threads)],
                       check=True, capture_output=True, text=True)
    med, mn = bench_line(p.stdout + p.stderr)
    log("   " + [l for l in (p.stdout + p.stderr).splitlines()
                 if l.startswith("bench:")][0])
    return dict(ms=med, min_ms=mn, bw=bw, finite=finite, exe_rss=exe_rss)


def fmt(v, f):
    return "-" if v is None else f % v


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--work", help="cache models here (kept)")
    ap.add_argument("--presets", default="125m",
                    help="comma-separated: 125m, 1.1b, 7b, or all (default 125m)")
    ap.add_argument("--schemes", default="none,w8a16,w4a16")
    ap.add_argument("--runs", type=int, default=20, help="--bench N of the exe")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prefill-seq", type=int, default=0,
                    help="also compile and time a --seq N model (prefill)")
    ap.add_argument("--no-decode", action="store_true",
                    help="compile only: skip running the executables")
    ap.add_argument("--keep-artifacts", action="store_true",
                    help="keep the executables (and the work directory)")
    ap.add_argument("--clean-models", action="store_true",
                    help="remove the generated models at the end")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--rt", action="store_true",
                    help="time read_bw and the executables under `chrt -f "
                    "50` (real-time priority, needs root): other processes "
                    "on a shared machine no longer preempt the timed "
                    "threads (they still share the memory bandwidth)")
    ap.add_argument("--no-link-probe", action="store_true",
                    help="do not wrap the linker to measure its peak RSS")
    a = ap.parse_args()
    presets = (["125m", "1.1b", "7b"] if a.presets == "all"
               else [p for p in a.presets.split(",") if p])
    schemes = [s for s in a.schemes.split(",") if s]
    for p in presets:
        if p not in ("125m", "1.1b", "7b"):
            sys.exit("scale.py: unknown preset " + p)
    qc = os.path.join(a.build, "bin", "quench-compile")
    if not os.access(qc, os.X_OK):
        sys.exit("scale.py: no " + qc + " (--build)")
    tmp_work = a.work is None
    if a.rt:
        TIMED[:] = ["chrt", "-f", "50"]
    work = a.work or tempfile.mkdtemp(prefix="quench-scale-")
    os.makedirs(work, exist_ok=True)
    work = os.path.abspath(work)
    scratch = tempfile.mkdtemp(prefix="run-", dir=work)

    bw_exe = os.path.join(scratch, "read_bw")
    subprocess.run([CLANG, "-O2", "-march=native",
                    os.path.join(ROOT, "bench", "read_bw.c"), "-o", bw_exe,
                    "-lpthread"], check=True)
    wrapper = None
    if not a.no_link_probe:
        cc = shutil.which("clang-22") or shutil.which("cc") or shutil.which("gcc")
        wrapper = os.path.join(scratch, "link-probe.sh")
        with open(wrapper, "w") as f:
            f.write('#!/bin/sh\nexec /usr/bin/time -f %%M -a -o "$QUENCH_LINK_RSS" '
                    '"%s" "$@"\n' % cc)
        os.chmod(wrapper, 0o755)

    log("scale.py: %s, load average %s, %s" % (
        time.strftime("%Y-%m-%d %H:%M"), " ".join(
            open("/proc/loadavg").read().split()[:3]), qc))
    rows, failed = [], False
    try:
        for preset in presets:
            seqs = [1] + ([a.prefill_seq] if a.prefill_seq > 1 else [])
            for seq in seqs:
                model, manifest = generate(work, preset, seq)
                ids = os.path.join(scratch, "ids%d.npy" % seq)
                np.save(ids, (np.arange(seq, dtype=np.int64) * 7919 % 32000 + 1)[None])
                for scheme in schemes:
                    exe = os.path.join(scratch, "%s_s%d_%s" % (preset, seq, scheme))
                    log("== %s seq %d %s" % (preset, seq, scheme))
                    c = compile_model(a, scratch, model, exe, scheme, wrapper)
                    row = dict(preset=preset, seq=seq, scheme=scheme, **c)
                    b = BOUNDS.get((preset, scheme)) if seq == 1 else None
                    row["bound"] = b
                    row["ok"] = c["rc"] == 0 and (
                        b is None or (c["secs"] <= b[0] and c["rss"] <= b[1]))
                    if c["rc"] == 0 and not a.no_decode:
                        try:
                            row.update(run_exe(a, exe, ids, scratch, bw_exe))
                            wb, how = step_bytes(c["report"], manifest, scheme)
                            row["wbytes"], row["wbytes_how"] = wb, how
                            if seq == 1:  # prefill is not bandwidth bound
                                row["roof_ms"] = wb / (row["bw"] * GB) * 1e3
                                row["ratio"] = row["ms"] / row["roof_ms"]
                            lim = ROOFLINE.get((preset, scheme)) if seq == 1 else None
                            row["roof_lim"] = lim
                            row["roof_ok"] = row["finite"] and (
                                lim is None or row["ratio"] <= lim)
                            if not row["finite"]:
                                log("   FAIL: non-finite logits")
                        except (RuntimeError, subprocess.CalledProcessError) as e:
                            log("   FAIL: %s" % e)
                            row["roof_ok"] = False
                    rows.append(row)
                    failed |= not row["ok"] or row.get("roof_ok") is False
                    for p in (exe, exe + ".report.json"):
                        if os.path.exists(p) and not a.keep_artifacts:
                            os.unlink(p)
                    log("   -> %.1f s, peak %.2f GB (quench-compile %s%s, linker %s), "
                        "artifact %s MB%s%s" % (
                            c["secs"], c["rss"] / GB,
                            fmt(c["self_rss"] and c["self_rss"] / GB, "%.2f GB"),
                            "" if not c["peak_phase"] else " in " + c["peak_phase"],
                            fmt(c["link_rss"] and c["link_rss"] / GB, "%.2f GB"),
                            fmt(c["artifact"] and c["artifact"] / 1e6, "%.0f"),
                            "" if "ms" not in row else ", %.2f ms/step" % row["ms"],
                            "" if "ratio" not in row else ", ratio %.2f" % row["ratio"]))
    finally:
        if a.keep_artifacts:
            log("executables kept in " + scratch)
        elif tmp_work:
            shutil.rmtree(work, ignore_errors=True)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
        if not tmp_work:
            if a.clean_models:
                shutil.rmtree(os.path.join(work, "models"), ignore_errors=True)

    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(date=time.strftime("%Y-%m-%d %H:%M"), threads=a.threads,
                           rows=[{k: v for k, v in r.items() if k != "report"}
                                 for r in rows]), f, indent=1)
    log("")
    log("| model | seq | scheme | compile wall | peak RSS (quench-compile / linker) "
        "| bound | artifact | ms/step (min) | weight MB/step | read GB/s "
        "| roofline ms | ratio | tokens/s |")
    log("| --- | --: | --- | --: | --- | --- | --: | --: | --: | --: | --: | --: | --: |")
    for r in rows:
        b = r["bound"]
        bound = "-" if b is None else "<= %d s, <= %g GB: %s" % (
            b[0], b[1] / GB, "pass" if r["ok"] else "**FAIL**")
        if r["rc"]:
            bound = "**compile failed (exit %d)**" % r["rc"]
        ratio = "-" if "ms" not in r or r["finite"] else "**non-finite logits**"
        if "ratio" in r:
            ratio = "%.2f" % r["ratio"]
            if r.get("roof_lim"):
                ratio += " (<= %.1f: %s)" % (r["roof_lim"],
                                             "pass" if r["roof_ok"] else "**FAIL**")
            if not r["finite"]:
                ratio += " **non-finite logits**"
        log("| %s | %d | %s | %.1f s | %.2f GB (%s / %s) | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["preset"], r["seq"], r["scheme"], r["secs"], r["rss"] / GB,
            fmt(r["self_rss"] and r["self_rss"] / GB, "%.2f"),
            fmt(r["link_rss"] and r["link_rss"] / GB, "%.2f"), bound,
            fmt(r["artifact"] and r["artifact"] / 1e6, "%.0f MB"),
            "-" if "ms" not in r else "%.2f (%.2f)" % (r["ms"], r["min_ms"]),
            fmt(r.get("wbytes") and r["wbytes"] / 1e6, "%.0f") +
            ("*" if r.get("wbytes_how") == "estimate" else ""),
            fmt(r.get("bw"), "%.1f"), fmt(r.get("roof_ms"), "%.2f"), ratio,
            "-" if "ms" not in r else "%.1f" % (r["seq"] * 1e3 / r["ms"])))
    log("")
    log("peak RSS: the largest of quench-compile's per-phase peaks (--time), the linker's, and /usr/bin/time %%M (max over quench-compile and the children it "
        "waited for); threads %d; GB = 1e9 bytes; ratio = ms/step / (weight "
        "bytes / read bandwidth); * = weight bytes estimated from the scheme "
        "(no size report)" % a.threads)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
