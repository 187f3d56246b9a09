#!/usr/bin/env python3
"""First run after load against the median, in fresh processes.

Runs each compiled executable (quench-compile --emit=exe) RUNS times, each
time as a new process: `EXE --input ... --bench N --threads T`, which
reports the first run (timed after quench_model_load, before any other run)
and the median of the N runs after it. Prints, per executable, the median
and the largest first/median ratio over the processes, and the median wall
time of a whole process (load included: prefetching the weights moves their
reading from the first run into the load).

With --drop-caches the page cache is emptied before every process
(`sync; echo 3 > /proc/sys/vm/drop_caches`, root only): the weights then come
from the disk, not from the cache. Several executables are interleaved
process by process, so that a load change hits all of them alike.

  bench/first_run.py --threads 1 --runs 10 \\
      --exe before=build/demo/chargpt_w8a16 --exe after=/tmp/chargpt_w8a16 \\
      --input tokens=build/demo/chargpt.tokens.npy
"""
import argparse
import re
import statistics
import subprocess
import sys
import time

LINE = re.compile(r"median ([0-9.e+-]+) ms.*\(first run ([0-9.e+-]+) ms\)")


def drop_caches():
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def run_once(exe, inputs, bench, threads):
    cmd = [exe] + [a for i in inputs for a in ("--input", i)]
    cmd += ["--bench", str(bench), "--threads", str(threads)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = (time.perf_counter() - t0) * 1e3
    m = LINE.search(out)
    if not m:
        sys.exit("first_run: no bench line in the output of %s:\n%s" %
                 (" ".join(cmd), out))
    return float(m.group(2)), float(m.group(1)), wall


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--exe", action="append", required=True,
                    metavar="NAME=PATH", help="an executable to measure")
    ap.add_argument("--input", action="append", required=True,
                    metavar="NAME=FILE.npy", help="passed to every executable")
    ap.add_argument("--runs", type=int, default=10,
                    help="fresh processes per executable")
    ap.add_argument("--bench", type=int, default=20,
                    help="runs after the first in each process (the median)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--drop-caches", action="store_true",
                    help="empty the page cache before every process (root)")
    args = ap.parse_args()

    exes = []
    for spec in args.exe:
        name, sep, path = spec.partition("=")
        if not sep:
            sys.exit("first_run: --exe expects NAME=PATH, got %r" % spec)
        exes.append((name, path))
    if args.drop_caches:
        try:
            drop_caches()
        except OSError as e:
            sys.exit("first_run: cannot drop the page cache (%s); run as root "
                     "or without --drop-caches" % e)

    results = {name: [] for name, _ in exes}
    for _ in range(args.runs):
        for name, path in exes:
            if args.drop_caches:
                drop_caches()
            results[name].append(
                run_once(path, args.input, args.bench, args.threads))

    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print("%d processes each, %d threads, %s page cache, load average %s" %
          (args.runs, args.threads,
           "cold (dropped)" if args.drop_caches else "warm", load))
    print("%-12s %11s %11s %14s %12s %12s" %
          ("", "first ms", "median ms", "first/median", "worst ratio",
           "process ms"))
    for name, _ in exes:
        r = results[name]
        ratios = [f / m for f, m, _ in r]
        print("%-12s %11.3f %11.3f %14.2f %12.2f %12.1f" % (
            name, statistics.median(f for f, _, _ in r),
            statistics.median(m for _, m, _ in r), statistics.median(ratios),
            max(ratios), statistics.median(w for _, _, w in r)))


if __name__ == "__main__":
    main()
