#!/usr/bin/python3
"""Calibration and GPTQ at scale (issue #20, point 3): W4 GPTQ of the 1.1B
LLaMA-shaped model with 32 calibration sequences of 256 tokens, in bounded
memory (<= 8 GB peak RSS), timed.

The script
  1. generates (once, into WORK/models, as bench/scale.py does) the seq-1
     model of the preset and a --seq SEQ graph over the same weight file
     (gen_llama_onnx.py --data-from: only the graph is written);
  2. writes SAMPLES calibration samples WORK/calib-sSEQ-nSAMPLES/NNN/
     input_ids.npy (int64 [1, SEQ], uniform random token ids in
     [1, vocab), NumPy seed 0; the format of docs/calibration.md);
  3. runs
       /usr/bin/time -f "%e %M" quench-compile MODEL -o EXE --emit=exe
         --quant=SCHEME --algo=gptq --calib=SAMPLES --time --report=R.json
     (plus --calib-segment-mb when given), with stderr (the progress lines
     of calibration and GPTQ) written to WORK/gptq-PRESET-sSEQ.log as it
     comes and the segment, GPTQ-layer and phase lines echoed;
  4. runs the executable once on the first sample and checks that its
     logits are finite;
  5. prints wall time, peak RSS (the largest of /usr/bin/time's %M and
     quench-compile's per-phase peaks: --time resets the kernel's
     high-water mark at each phase, see bench/scale.py), the time and peak
     of every phase, calibration's and GPTQ's own totals, the load average
     before and after, and pass/fail against the bound (GB = 10^9 bytes).

Usage: bench/gptq_scale.py [--build DIR] [--work DIR] [--preset 1.1b]
         [--seq 256] [--samples 32] [--scheme w4a16] [--segment-mb MB]
         [--bound-gb 8] [--keep-artifacts] [--json RESULTS.json]
Exit status 1 if the compile or the run failed or the bound was missed.
Disk: the model (4.4 GB for 1.1b, shared with scale.py's WORK/models), the
executable (~0.85 GB, deleted unless --keep-artifacts), and calibration's
statistics file in $TMPDIR while it runs (7.8 GB for 1.1b: every Gram
matrix; removed at the end).
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scale  # noqa: E402  (generate, log, GB)

log = scale.log
GB = scale.GB


def make_samples(work, seq, count, vocab):
    d = os.path.join(work, "calib-s%d-n%d" % (seq, count))
    rng = np.random.default_rng(0)
    for i in range(count):
        sd = os.path.join(d, "%03d" % i)
        os.makedirs(sd, exist_ok=True)
        ids = rng.integers(1, vocab, size=(1, seq), dtype=np.int64)
        p = os.path.join(sd, "input_ids.npy")
        if not (os.path.isfile(p) and np.array_equal(np.load(p), ids)):
            np.save(p, ids)
    return d


ECHO = re.compile(r"(time:|peak memory|calibrate: (segment \d+/\d+:|\d+ observed)"
                  r"|quantize: GPTQ|error|warning|quench-compile:)")


def run_compile(a, qc, model, exe, calib, logpath):
    tfile = exe + ".time"
    rep = exe + ".report.json"
    cmd = [qc, model, "-o", exe, "--emit=exe", "--quant=" + a.scheme,
           "--algo=gptq", "--calib=" + calib, "--time", "--report=" + rep]
    if a.segment_mb is not None:
        cmd.append("--calib-segment-mb=%d" % a.segment_mb)
    log("$ " + " ".join(cmd))
    t0 = time.time()
    text = []
    with open(logpath, "w") as lf:
        p = subprocess.Popen(["/usr/bin/time", "-f", "%e %M", "-o", tfile] + cmd,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, bufsize=1)
        for line in p.stdout:
            lf.write(line)
            lf.flush()
            text.append(line)
            if ECHO.match(line.strip()):
                log("   [%5.0f s] %s" % (time.time() - t0, line.rstrip()))
        rc = p.wait()
    text = "".join(text)
    r = dict(rc=rc, cmd=" ".join(cmd))
    with open(tfile) as f:
        last = f.read().strip().splitlines()[-1].split()
    os.unlink(tfile)
    r["secs"], r["time_rss"] = float(last[0]), int(last[1]) * 1024
    r["phases"] = [dict(name=n, secs=float(s), peak=float(pk) * 1024 * 1024)
                   for n, s, pk in re.findall(
                       r"time: (\S+)\s+([0-9.]+) s.*?([0-9.]+) MB peak", text)]
    m = re.search(r"peak memory: ([0-9.]+) MB", text)
    r["self_rss"] = float(m.group(1)) * 1024 * 1024 if m else None
    peaks = [r["time_rss"]] + [ph["peak"] for ph in r["phases"]]
    if r["self_rss"]:
        peaks.append(r["self_rss"])
    r["rss"] = max(peaks)
    r["peak_phase"] = max(r["phases"], key=lambda ph: ph["peak"])["name"] \
        if r["phases"] else None
    m = re.search(r"GPTQ of (\d+) layers took ([0-9.]+) s", text)
    r["gptq_layers"], r["gptq_secs"] = (int(m.group(1)), float(m.group(2))) \
        if m else (None, None)
    m = re.search(r"calibrate: (\d+) observed tensors in (\d+) segments", text)
    r["observed"], r["segments"] = (int(m.group(1)), int(m.group(2))) \
        if m else (None, None)
    r["artifact"] = os.path.getsize(exe) if os.path.isfile(exe) else None
    if os.path.exists(rep):
        os.unlink(rep)
    return r


def run_exe(exe, ids, work):
    od = tempfile.mkdtemp(prefix="out-", dir=work)
    try:
        p = subprocess.run([exe, "--input", "input_ids=" + ids, "--output-dir", od],
                           capture_output=True, text=True)
        if p.returncode:
            raise RuntimeError("executable failed:\n" + (p.stdout + p.stderr)[-2000:])
        logits = np.load(os.path.join(od, "logits.npy"))
        return bool(np.isfinite(logits).all()), list(logits.shape)
    finally:
        shutil.rmtree(od, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(scale.ROOT, "build"))
    ap.add_argument("--work", help="cache models and samples here (kept)")
    ap.add_argument("--preset", default="1.1b", choices=["125m", "1.1b", "7b"])
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--scheme", default="w4a16")
    ap.add_argument("--segment-mb", type=int, help="--calib-segment-mb")
    ap.add_argument("--bound-gb", type=float, default=8.0)
    ap.add_argument("--keep-artifacts", action="store_true")
    ap.add_argument("--json", help="also write the result to this file")
    a = ap.parse_args()
    qc = os.path.join(a.build, "bin", "quench-compile")
    if not os.access(qc, os.X_OK):
        sys.exit("gptq_scale.py: no " + qc + " (--build)")
    tmp_work = a.work is None
    work = os.path.abspath(a.work or tempfile.mkdtemp(prefix="quench-gptq-"))
    os.makedirs(work, exist_ok=True)
    load0 = " ".join(open("/proc/loadavg").read().split()[:3])
    log("gptq_scale.py: %s, load average %s, %s" % (
        time.strftime("%Y-%m-%d %H:%M"), load0, qc))
    exe = os.path.join(work, "%s_s%d_%s_gptq" % (a.preset, a.seq, a.scheme))
    try:
        model, manifest = scale.generate(work, a.preset, a.seq)
        calib = make_samples(work, a.seq, a.samples, manifest["config"]["vocab"])
        logpath = os.path.join(work, "gptq-%s-s%d.log" % (a.preset, a.seq))
        r = run_compile(a, qc, model, exe, calib, logpath)
        r.update(preset=a.preset, seq=a.seq, samples=a.samples, scheme=a.scheme,
                 load_before=load0, log=logpath)
        r["finite"] = None
        if r["rc"] == 0:
            try:
                ids = os.path.join(calib, "000", "input_ids.npy")
                r["finite"], r["logits_shape"] = run_exe(exe, ids, work)
            except RuntimeError as e:
                log("   FAIL: %s" % e)
                r["finite"] = False
    finally:
        if not a.keep_artifacts:
            for p in (exe,):
                if os.path.exists(p):
                    os.unlink(p)
        if tmp_work and not a.keep_artifacts:
            shutil.rmtree(work, ignore_errors=True)
    r["load_after"] = " ".join(open("/proc/loadavg").read().split()[:3])
    r["bound"] = a.bound_gb * GB
    r["ok"] = r["rc"] == 0 and r["rss"] <= r["bound"] and r["finite"] is True
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(date=time.strftime("%Y-%m-%d %H:%M"), **r), f, indent=1)

    log("")
    log("%s seq %d, %d samples, %s GPTQ: %s" % (
        a.preset, a.seq, a.samples, a.scheme,
        "compile failed (exit %d)" % r["rc"] if r["rc"] else "compiled"))
    log("  wall %.1f s, peak RSS %.2f GB (in %s; bound %.0f GB: %s), artifact %s MB" % (
        r["secs"], r["rss"] / GB, r["peak_phase"], a.bound_gb,
        "pass" if r["rc"] == 0 and r["rss"] <= r["bound"] else "**FAIL**",
        scale.fmt(r["artifact"] and r["artifact"] / 1e6, "%.0f")))
    if r["segments"]:
        log("  calibration: %d observed tensors in %d segments" % (
            r["observed"], r["segments"]))
    if r["gptq_secs"] is not None:
        log("  GPTQ: %d layers in %.1f s" % (r["gptq_layers"], r["gptq_secs"]))
    log("  logits: %s" % {True: "finite", False: "**NOT finite / run failed**",
                          None: "not run"}[r["finite"]])
    log("  load average: %s before, %s after" % (r["load_before"], r["load_after"]))
    log("")
    log("| phase | time | peak RSS |")
    log("| --- | --: | --: |")
    for ph in r["phases"]:
        log("| %s | %.1f s | %.2f GB |" % (ph["name"], ph["secs"], ph["peak"] / GB))
    log("| **total** | **%.1f s** | **%.2f GB** |" % (r["secs"], r["rss"] / GB))
    log("")
    log("progress lines: %s" % (r["log"] if not tmp_work else "(work directory removed)"))
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
