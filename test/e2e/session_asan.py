#!/usr/bin/env python3
"""The generation session API under AddressSanitizer, UBSan and TSan.

Compiles the tiny decoders with past key/values of gen_past_models.py
(llama_past.onnx, gpt2_past.onnx, and llama_past.onnx with
--kv-cache=int8) with `quench-compile --emit=obj --name=tiny --max-seq=32`
and the no-past llama.onnx as `plain`, then builds
session_asan.c together with the runtime's own sources (runtime/lib/*.c,
not libquench_runtime.a) with -fsanitize=address,undefined and
QUENCH_BUFFER_CACHE_BYTES=0 (every buffer of the generated code goes back to
malloc at once, so ASan sees its lifetime) and runs it once per model on the
prompt and greedy references. session_asan.c checks: greedy ids through the
model-prefixed wrappers equal the reference (no pool and a 2-thread pool);
quench_session_run's full logits against prefill's; the default capacity
(0); reset, and a reused session against a fresh one; sampling reproducible
with a seed and different with another, top_k = 1 and top_p = 1e-6 greedy,
NaN logits never picked; three sessions generating at once on three
threads (one without a pool, two sharing a pool) equal to one thread's ids,
every round; capacity
overflow (prefill and decode) and tokens outside [0, vocab) rejected with
QUENCH_ERR_INVALID_ARGUMENT and a message, the session unchanged (the
generation goes on to the reference); a non-generation model, a negative
capacity, caches too large to allocate or whose size overflows; and that
nothing leaks (LeakSanitizer). The same program is then built and run with
-fsanitize=thread when the compiler has it (races between the sessions'
threads inside the runtime; the generated code is not instrumented).

Usage: session_asan.py --build BUILD_DIR --models PAST_MODELS_DIR
                       [--keep DIR] [--cc CC]
Run through CTest: `ctest -R e2e/session-asan` (needs the past-models
fixture). Exits 77 (skipped) when the C compiler cannot link a program with
-fsanitize=address,undefined (libasan/libubsan not installed).
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# The sanitizer builds: ASan + UBSan (required), ThreadSanitizer (when the
# compiler has it).
SANITIZERS = {
    "asan": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
             "-fno-sanitize-recover=undefined"],
    "tsan": ["-fsanitize=thread"],
}
CFLAGS = ["-std=c11", "-g", "-O1", "-Wall", "-Wextra", "-pthread",
          "-DQUENCH_BUFFER_CACHE_BYTES=0"]
# allocator_may_return_null: the 2^40-position session must fail with
# QUENCH_ERR_OUT_OF_MEMORY instead of the sanitizer aborting the process.
ENV = {
    "ASAN_OPTIONS": "allocator_may_return_null=1:detect_leaks=1:"
                    "abort_on_error=0:strict_string_checks=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    "TSAN_OPTIONS": "allocator_may_return_null=1:halt_on_error=1",
}


def run(cmd, env=None):
    print("+ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, env=env)
    if proc.stdout:
        print(proc.stdout, end="" if proc.stdout.endswith("\n") else "\n")
    if proc.returncode != 0:
        sys.exit(f"FAIL: {cmd[0]} exited with {proc.returncode}")
    return proc.stdout


def sanitizer_works(cc, flags, work):
    src = os.path.join(work, "probe.c")
    with open(src, "w") as f:
        f.write("#include <stdlib.h>\nint main(void) { free(malloc(4)); "
                "return 0; }\n")
    exe = os.path.join(work, "probe")
    proc = subprocess.run([cc] + flags + [src, "-o", exe],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    if proc.returncode != 0:
        return proc.stdout.strip()
    proc = subprocess.run([exe], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True)
    return None if proc.returncode == 0 else proc.stdout.strip()


def ids_arg(path):
    return ",".join(str(int(v)) for v in np.load(path).ravel())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True, help="Quench build directory")
    ap.add_argument("--models", required=True,
                    help="directory written by gen_past_models.py")
    ap.add_argument("--keep", help="work in this directory and keep it")
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"),
                    help="C compiler (default $CC or cc)")
    args = ap.parse_args()

    compiler = os.path.join(args.build, "bin", "quench-compile")
    if not os.path.exists(compiler):
        sys.exit(f"FAIL: {compiler} not found (build quench-compile)")
    if not os.path.exists(os.path.join(args.models, "manifest.json")):
        sys.exit(f"FAIL: {args.models}/manifest.json not found (run "
                 "gen_past_models.py, the e2e/past-models test)")
    work = args.keep or tempfile.mkdtemp(prefix="quench-session-asan-")
    os.makedirs(work, exist_ok=True)

    sanitizers = []
    for name, flags in SANITIZERS.items():
        why = sanitizer_works(args.cc, flags, work)
        if why is None:
            sanitizers.append(name)
        elif name == "asan":
            print(f"SKIPPED: {args.cc} cannot build and run with "
                  f"{' '.join(flags)}: {why}")
            return 77
        else:
            print(f"note: no {name} run: {args.cc} cannot build and run "
                  f"with {' '.join(flags)}: {why}")

    # The runtime, instrumented, compiled once per sanitizer.
    include = os.path.join(ROOT, "runtime", "include")
    rt_objs = {}
    for name in sanitizers:
        rt_dir = os.path.join(work, "runtime-" + name)
        os.makedirs(rt_dir, exist_ok=True)
        rt_objs[name] = []
        for src in sorted(glob.glob(os.path.join(ROOT, "runtime", "lib",
                                                 "*.c"))):
            obj = os.path.join(rt_dir, os.path.basename(src)[:-2] + ".o")
            run([args.cc] + CFLAGS + SANITIZERS[name] +
                ["-I", include, "-c", src, "-o", obj])
            rt_objs[name].append(obj)

    plain = os.path.join(work, "plain")
    run([compiler, os.path.join(args.models, "llama.onnx"), "-o", plain,
         "--emit=obj", "--name=plain"])
    env = dict(os.environ, **ENV)
    # (variant, model, extra compile options): the int8 cache has two state
    # buffers per past input (codes and scales); its greedy ids equal the
    # float reference on this model (measured).
    for variant, model, extra in (("llama", "llama", []),
                                  ("gpt2", "gpt2", []),
                                  ("llama-int8", "llama",
                                   ["--kv-cache=int8"])):
        mdir = os.path.join(work, variant)
        os.makedirs(mdir, exist_ok=True)
        tiny = os.path.join(mdir, "tiny")
        run([compiler, os.path.join(args.models, f"{model}_past.onnx"), "-o",
             tiny, "--emit=obj", "--name=tiny", "--max-seq=32"] + extra)
        for name in sanitizers:
            exe = os.path.join(mdir, "session_" + name)
            run([args.cc] + CFLAGS + SANITIZERS[name] +
                ["-I", include, "-I", mdir, "-I", work,
                 os.path.join(HERE, "session_asan.c"), tiny + ".o",
                 plain + ".o"] + rt_objs[name] + ["-o", exe, "-lm", "-ldl"])
            out = run([exe,
                       ids_arg(os.path.join(args.models,
                                            f"{model}.prompt_ids.npy")),
                       ids_arg(os.path.join(args.models,
                                            f"{model}.greedy_ids.npy"))],
                      env=env)
            if "all session checks passed" not in out:
                sys.exit(f"FAIL: {variant} ({name}): session_asan did not "
                         "finish")
            if re.search(r"ERROR: \w+Sanitizer|WARNING: ThreadSanitizer: "
                         r"data race|runtime error:", out):
                sys.exit(f"FAIL: {variant} ({name}): a sanitizer reported "
                         "an error")
            print(f"{variant}: session API checks passed ({name})")

    if not args.keep:
        shutil.rmtree(work)
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
