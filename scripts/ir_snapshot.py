#!/usr/bin/python3
r"""IR snapshots of everything the Quench tools generate, for byte diffs.

A restructuring that must not change behaviour (issue #12: "generated IR
byte-identical before/after on every lit input and on the bundled models at
every stage") is checked by taking a snapshot with the tools built before the
change and one with the tools built after it, and comparing the two trees:

  ir_snapshot.py --bin OLD/bin --tests CORPUS/test --models-dir MODELS --out A
  ir_snapshot.py --bin NEW/bin --tests CORPUS/test --models-dir MODELS \
                 --out B [--rename OLD-FLAG=NEW-FLAG ...]
  ir_snapshot.py --compare A B          # or: diff -r A B

A snapshot holds

lit/<test file>/line-NNN.{cmd,out,err,rc}
    For every RUN line of every lit test under --tests (lit's suffixes and
    excludes): the command as lit would run it (%s, %S, %p, %t, %T,
    %quench_python substituted, the tools resolved to --bin, `not` to LLVM's),
    cut before the first `| FileCheck` / `| not FileCheck` / `| count`, run in
    the order of the file in lit's directory layout; its stdout, stderr and
    exit status. A line that is only `FileCheck ... < FILE` saves FILE
    instead (`cat FILE`). Input-generating lines that run Python
    (`%quench_python`: Inputs/make_model.py, calibration samples) run too,
    since the tool lines after them read their output; --skip-python skips
    them. Skipped lines are listed in lit/SKIPPED.txt.
lit/<test file>/files/...
    Every file the test left in its temporary directory (%t and friends):
    outputs written with -o, --dump-stages directories, objects, archives.
models/<model>/<cpu>-<scheme>/
    `quench-compile MODEL -o model --emit=obj --dump-stages=DIR
    --report=report.json --cpu=CPU [scheme flags]` for each bundled model:
    every dumped stage named by its stage name without the NN- index
    (input.mlir, prepare.mlir, ..., llvm.ll, llvm-opt.ll), stages.txt (the
    stage names in order), model.o, model.h, report.json, cmd, stdout,
    stderr, rc. A combination the tools reject keeps its error (stderr, rc).
models/MODELS.txt, lit/FILES.txt
    What was run.

Paths that differ between runs (the --bin directory, --tests, --models-dir,
--runtime-dir, the temporary directory) are replaced by @BIN@, @TESTS@,
@MODELS@, @RUNTIME@, @TMP@ in everything saved, and the calibration
progress times by @SECONDS@, so two snapshots of tools that behave the same
are identical.

The models come from the test-model generators, run once into --models-dir
and reused afterwards (delete the directory to regenerate): the zoo of
test/models/export_models.py (GPT-2/LLaMA/T5, opsets 13/17, static and
dynamic), test/models/make_quant_models.py's pre-quantized models, and
stories260K (examples/stories260k_to_onnx.py, static opset 17 and dynamic
opset 13, as test/models/check_models.py exports it) when --stories-bin
exists; plus two deterministic random calibration samples per float model.
Float models run every scheme of SCHEMES on --cpu=host and V3_SCHEMES on
--cpu=x86-64-v3; the dynamic models also compile specialized with the
--shape check_models.py gives (scheme none); pre-quantized models run scheme
none only.

Renamed pass flags: --rename OLD=NEW (repeatable) or --rename-file FILE
(one OLD=NEW per line, # comments) rewrites OLD in the lit commands run
with the new tools (whole flag or pipeline-element names only). The saved
`.cmd` files keep the corpus's original text, so renaming alone does not
show up as a difference.

Run with Debian's /usr/bin/python3 (the generators need torch and onnx).
"""

import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LLVM_TOOLS = "/usr/lib/llvm-22/bin"
PYTHON = "/usr/bin/python3"
TOOLS = ("quench-opt", "quench-import", "quench-compile")

# lit.cfg.py of the suite.
LIT_SUFFIXES = (".mlir", ".onnxtxt")
LIT_EXCLUDES = {"CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py", "Inputs",
                "conformance", "models", "e2e"}

# Scheme name -> quench-compile flags; @CALIB@ is the model's sample dir.
SCHEMES = [
    ("none", []),
    ("w8a16", ["--quant=w8a16"]),
    ("w4a16", ["--quant=w4a16"]),
    ("w4a16-asym-g16", ["--quant=w4a16", "--asymmetric", "--group-size=16"]),
    ("w3a16", ["--quant=w3a16"]),
    ("w2a16", ["--quant=w2a16"]),
    ("w8a8-dynamic", ["--quant=w8a8-dynamic"]),
    ("w8a16-emb", ["--quant=w8a16", "--quant-embeddings"]),
    ("w8a8-calib", ["--quant=w8a8", "--calib=@CALIB@"]),
    ("w4a16-gptq-calib", ["--quant=w4a16", "--algo=gptq", "--calib=@CALIB@"]),
]
V3_SCHEMES = ("none", "w8a16", "w4a16", "w8a8-dynamic")
CALIB_SAMPLES = 2
CALIB_SEED = 20261206
# --shape that test/models/check_models.py gives the dynamic exports.
ZOO_SPECIALIZED = "input_ids=1x8"
STORIES_SEQ = 32
STORIES_SPECIALIZED = "input_ids=1x%d" % STORIES_SEQ
STORIES_VARIANTS = [("stories260k_op17_static", ["--opset", "17"]),
                    ("stories260k_op13_dynamic",
                     ["--opset", "13", "--dynamic-seq"])]

LIT_TIMEOUT = 600
COMPILE_TIMEOUT = 3600

_print_lock = threading.Lock()


def log(msg):
    with _print_lock:
        print(msg, flush=True)


# --------------------------------------------------------------------------
# Normalization
# --------------------------------------------------------------------------
class Normalizer:
    """Replaces run-specific paths by placeholders (bytes in, bytes out)."""

    def __init__(self, pairs):
        table = []
        for path, placeholder in pairs:
            if not path:
                continue
            for p in {path.rstrip("/"), os.path.realpath(path)}:
                if p and p != "/":
                    table.append((p.encode(), placeholder.encode()))
        # Longest first: a directory inside another one wins.
        self.table = sorted(set(table), key=lambda t: -len(t[0]))

    def __call__(self, data):
        for old, new in self.table:
            data = data.replace(old, new)
        # Calibration progress reports wall times (`calibrate: sample 2/2
        # (0.1 s)`), and a sample other than the last is reported only when
        # a second has passed since the previous report: keep the final
        # line, without its time.
        data = PROGRESS.sub(
            lambda m: m.group(0) if m.group(1) == m.group(2) else b"", data)
        data = re.sub(rb"\((\d+(\.\d+)?) s\)", rb"(@SECONDS@ s)", data)
        return data


PROGRESS = re.compile(rb"^calibrate: sample (\d+)/(\d+) \([0-9.]+ s\)\n",
                      re.M)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(path, "wb") as f:
        f.write(data)


def copy_tree_normalized(src, dst, norm, rename=None):
    """Copies every file under src to dst, contents normalized; symlinks
    become FILE.symlink holding the normalized target."""
    count = 0
    for root, dirs, files in os.walk(src):
        dirs.sort()
        rel = os.path.relpath(root, src)
        for name in sorted(files) + [d for d in dirs
                                     if os.path.islink(os.path.join(root, d))]:
            path = os.path.join(root, name)
            out_name = rename(name) if rename else name
            out = os.path.normpath(os.path.join(dst, rel, out_name))
            if os.path.islink(path):
                write(out + ".symlink", norm(os.readlink(path).encode()))
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    write(out, norm(f.read()))
            else:
                continue
            count += 1
    return count


# --------------------------------------------------------------------------
# Lit
# --------------------------------------------------------------------------
def lit_files(tests):
    found = []
    for root, dirs, files in os.walk(tests):
        dirs[:] = sorted(d for d in dirs if d not in LIT_EXCLUDES)
        for name in sorted(files):
            if name.endswith(LIT_SUFFIXES) and name not in LIT_EXCLUDES:
                found.append(os.path.relpath(os.path.join(root, name), tests))
    return sorted(found)


def parse_run_lines(path):
    """[(line number, command)] as lit reads them (RUN: anywhere on the line,
    a trailing backslash continues on the next RUN line)."""
    runs, pending, start = [], None, None
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for lineno, line in enumerate(f, 1):
            i = line.find("RUN:")
            if i < 0:
                continue
            text = line[i + 4:].rstrip("\r\n").strip()
            if pending is None:
                pending, start = "", lineno
            if text.endswith("\\"):
                pending += text[:-1] + " "
                continue
            runs.append((start, (pending + text).strip()))
            pending = None
    if pending is not None:
        runs.append((start, pending.strip()))
    return runs


CHECKER = re.compile(r"\|(?!\|)\s*(?:not\s+)?(?:FileCheck|count)\b")
STARTS_WITH_CHECKER = re.compile(r"^\s*(?:not\s+)?(?:FileCheck|count)\b")
INPUT_REDIRECT = re.compile(r"<\s*(\S+)")


def cut_checker(cmd):
    """The command without its checker: (command, None) or (None, reason)."""
    m = CHECKER.search(cmd)
    if m:
        cmd = cmd[:m.start()].rstrip()
    if STARTS_WITH_CHECKER.match(cmd):
        r = INPUT_REDIRECT.search(cmd)
        if not r:
            return None, "checker without an input file"
        return "cat " + r.group(1), None
    return cmd, None


def tool_regex(name):
    # lit's ToolSubst: not part of a longer name, path or flag.
    return re.compile(r"(?<![.\-^/\\<\w])" + re.escape(name) + r"(?![\w\-.])")


def rename_regex(old):
    return re.compile(r"(?<![\w.\-/])(-{0,2})" + re.escape(old) +
                      r"(?![\w\-./])")


def apply_renames(cmd, renames):
    for old, new in renames:
        cmd = rename_regex(old).sub(lambda m: m.group(1) + new, cmd)
    return cmd


def substitute(cmd, tools, src, tmp_root, rel):
    """lit's substitutions. `tools` maps tool name -> replacement; `src` is
    the test source root and `tmp_root` stands for lit's exec root."""
    source = os.path.join(src, rel)
    source_dir = os.path.dirname(source)
    exec_dir = os.path.join(tmp_root, os.path.dirname(rel))
    tmp_dir = os.path.join(exec_dir, "Output")
    tmp_base = os.path.join(tmp_dir, os.path.basename(rel))
    cmd = cmd.replace("%%", "#_MARKER_#")
    cmd = cmd.replace("%quench_python", PYTHON)
    cmd = cmd.replace("%PATH%", "/usr/bin:/bin")
    for name, repl in tools:
        cmd = tool_regex(name).sub(lambda m, r=repl: r, cmd)
    for key, value in (("%{pathsep}", ":"),
                       ("%basename_t", os.path.basename(tmp_base)),
                       ("%s", source), ("%S", source_dir),
                       ("%p", source_dir), ("%t", tmp_base + ".tmp"),
                       ("%T", tmp_dir)):
        cmd = cmd.replace(key, value)
    return cmd.replace("#_MARKER_#", "%")


def tool_table(bin_dir, runtime_dir):
    table = []
    for t in TOOLS:
        path = os.path.join(bin_dir, t)
        if t == "quench-compile" and runtime_dir:
            path += " --runtime-dir=" + runtime_dir
        table.append((t, path))
    table.append(("not", os.path.join(LLVM_TOOLS, "not")))
    return table


PLACEHOLDER_TOOLS = [(t, "@BIN@/" + t) for t in TOOLS] + [("not", "not")]


def is_python(cmd):
    return "%quench_python" in cmd or re.search(r"\bpython3?\b", cmd)


def clean_env(tmp):
    return {"PATH": "%s:/usr/bin:/bin" % LLVM_TOOLS, "HOME": tmp,
            "TMPDIR": tmp, "LANG": "C", "LC_ALL": "C", "PYTHONHASHSEED": "0"}


def run_lit_file(args, rel, out_root, norm_base):
    """Runs every RUN line of one test; returns (run, skipped lines)."""
    src = os.path.join(args.tests, rel)
    tmp_root = tempfile.mkdtemp(prefix="irsnap-lit-", dir=args.tmp_dir)
    norm = Normalizer(norm_base + [(tmp_root, "@TMP@")])
    exec_dir = os.path.join(tmp_root, os.path.dirname(rel))
    os.makedirs(os.path.join(exec_dir, "Output"), exist_ok=True)
    dest = os.path.join(out_root, "lit", rel)
    os.makedirs(dest, exist_ok=True)
    tools = tool_table(args.bin, args.runtime_dir)
    ran, skipped = 0, []
    t0 = time.time()
    for lineno, original in parse_run_lines(src):
        tag = "line-%03d" % lineno
        cmd, reason = cut_checker(original)
        if cmd is not None and args.skip_python and is_python(original):
            cmd, reason = None, "runs python (--skip-python)"
        if cmd is None:
            skipped.append("%s:%d: %s: %s" % (rel, lineno, reason, original))
            continue
        shown = substitute(cmd, PLACEHOLDER_TOOLS, "@TESTS@", "@TMP@", rel)
        real = substitute(apply_renames(cmd, args.renames), tools, args.tests,
                          tmp_root, rel)
        write(os.path.join(dest, tag + ".cmd"), shown + "\n")
        try:
            p = subprocess.run(["/bin/bash", "-o", "pipefail", "-c", real],
                               cwd=exec_dir, env=clean_env(tmp_root),
                               stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=LIT_TIMEOUT)
            out, err, rc = p.stdout, p.stderr, str(p.returncode)
        except subprocess.TimeoutExpired as e:
            out, err, rc = e.stdout or b"", e.stderr or b"", "timeout"
        write(os.path.join(dest, tag + ".out"), norm(out))
        write(os.path.join(dest, tag + ".err"), norm(err))
        write(os.path.join(dest, tag + ".rc"), rc + "\n")
        if args.verbose:
            log("  %s:%d rc=%s %s" % (rel, lineno, rc, real))
        ran += 1
    files = copy_tree_normalized(os.path.join(exec_dir, "Output"),
                                 os.path.join(dest, "files"), norm)
    shutil.rmtree(tmp_root, ignore_errors=True)
    log("lit %-60s %2d run, %d skipped, %d files, %.1fs" % (
        rel, ran, len(skipped), files, time.time() - t0))
    return ran, skipped


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------
def run_checked(cmd, what):
    log("models: " + " ".join(cmd))
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    if p.returncode != 0:
        sys.exit("ir_snapshot.py: %s failed (exit %d):\n%s" % (
            what, p.returncode, p.stdout[-3000:]))
    return p.stdout


def generate_models(args):
    """Fills --models-dir once (each part has a .done marker)."""
    md = args.models_dir
    os.makedirs(md, exist_ok=True)
    gen_dir = os.path.join(args.tests, "models")
    zoo = os.path.join(md, "zoo")
    if not os.path.exists(os.path.join(zoo, ".done")):
        run_checked([PYTHON, os.path.join(gen_dir, "export_models.py"),
                     "--out-dir", zoo], "export_models.py")
        write(os.path.join(zoo, ".done"), "")
    quant = os.path.join(md, "quant")
    if not os.path.exists(os.path.join(quant, ".done")):
        run_checked([PYTHON, os.path.join(gen_dir, "make_quant_models.py"),
                     "--out-dir", quant], "make_quant_models.py")
        write(os.path.join(quant, ".done"), "")
    stories = os.path.join(md, "stories260k")
    if os.path.exists(args.stories_bin) and \
            not os.path.exists(os.path.join(stories, ".done")):
        os.makedirs(stories, exist_ok=True)
        for name, extra in STORIES_VARIANTS:
            run_checked([PYTHON, os.path.join(REPO, "examples",
                                              "stories260k_to_onnx.py"),
                         "--bin", args.stories_bin,
                         "-o", os.path.join(stories, name + ".onnx"),
                         "--seq", str(STORIES_SEQ), "--save-reference"] +
                        extra, "stories260k_to_onnx.py")
        write(os.path.join(stories, ".done"), "")
    calib = os.path.join(md, "calib")
    if not os.path.exists(os.path.join(calib, ".done")):
        make_calibration(args, calib)
        write(os.path.join(calib, ".done"), "")


def float_models(md):
    """[(name, onnx path)] of the float models in --models-dir."""
    models = []
    zoo = os.path.join(md, "zoo")
    with open(os.path.join(zoo, "manifest.json")) as f:
        for m in json.load(f)["models"]:
            models.append(("zoo/" + m["name"], os.path.join(zoo, m["onnx"])))
    stories = os.path.join(md, "stories260k")
    if os.path.exists(os.path.join(stories, ".done")):
        for name, _ in STORIES_VARIANTS:
            models.append(("stories260k/" + name,
                           os.path.join(stories, name + ".onnx")))
    return sorted(models)


def make_calibration(args, calib):
    """CALIB_SAMPLES samples per float model, DIR/<model>/sNN/<input>.npy:
    token ids in [0, vocab) with the shape of the model's reference input
    (NAME.<input>.npy next to it), float inputs N(0, 1); seeded per model."""
    import numpy as np
    import onnx
    for name, path in float_models(args.models_dir):
        model = onnx.load(path, load_external_data=False)
        init = {i.name for i in model.graph.initializer}
        vocab = model.graph.output[0].type.tensor_type.shape.dim[-1].dim_value
        rng = np.random.default_rng(CALIB_SEED + zlib.crc32(name.encode()))
        inputs = [i for i in model.graph.input if i.name not in init]
        for s in range(CALIB_SAMPLES):
            d = os.path.join(calib, name, "s%02d" % s)
            os.makedirs(d, exist_ok=True)
            for inp in inputs:
                ref = path[:-len(".onnx")] + "." + inp.name + ".npy"
                if os.path.exists(ref):
                    shape = np.load(ref).shape
                else:
                    shape = tuple(dim.dim_value or 8 for dim in
                                  inp.type.tensor_type.shape.dim)
                et = inp.type.tensor_type.elem_type
                if et == onnx.TensorProto.INT64:
                    arr = rng.integers(0, vocab, shape).astype(np.int64)
                else:
                    arr = rng.standard_normal(shape).astype(np.float32)
                safe = re.sub(r"[^A-Za-z0-9._-]", "_", inp.name)
                np.save(os.path.join(d, safe + ".npy"), arr)
    log("models: wrote calibration samples to " + calib)


def compile_jobs(args):
    """[(model, variant, onnx, flags)] in sorted order."""
    md = args.models_dir
    jobs = []
    for name, path in float_models(md):
        calib = os.path.join(md, "calib", name)
        for cpu in ("host", "x86-64-v3"):
            for scheme, flags in SCHEMES:
                if cpu != "host" and scheme not in V3_SCHEMES:
                    continue
                jobs.append((name, "%s-%s" % (cpu, scheme), path,
                             ["--cpu=" + cpu] +
                             [f.replace("@CALIB@", calib) for f in flags]))
            if "_dynamic" in name:
                shape = STORIES_SPECIALIZED if name.startswith("stories") \
                    else ZOO_SPECIALIZED
                jobs.append((name, "%s-none-shape-%s" % (cpu, shape), path,
                             ["--cpu=" + cpu, "--shape", shape]))
    quant = os.path.join(md, "quant")
    with open(os.path.join(quant, "manifest.json")) as f:
        names = sorted(m["name"] for m in json.load(f)["models"])
    for n in names:
        for cpu in ("host", "x86-64-v3"):
            jobs.append(("quant/" + n, "%s-none" % cpu,
                         os.path.join(quant, n + ".onnx"), ["--cpu=" + cpu]))
    return sorted(jobs)


STAGE_FILE = re.compile(r"^(\d+)-(.+)$")


def run_compile(args, job, out_root, norm_base):
    model, variant, onnx_path, flags = job
    tmp = tempfile.mkdtemp(prefix="irsnap-model-", dir=args.tmp_dir)
    norm = Normalizer(norm_base + [(tmp, "@TMP@")])
    dest = os.path.join(out_root, "models", model, variant)
    os.makedirs(dest, exist_ok=True)
    out = os.path.join(tmp, "model")
    dump = os.path.join(tmp, "stages")
    cmd = [os.path.join(args.bin, "quench-compile"), onnx_path, "-o", out,
           "--emit=obj", "--dump-stages=" + dump,
           "--report=" + os.path.join(tmp, "report.json")] + flags
    # The saved command leaves out --runtime-dir (a run-specific choice).
    write(os.path.join(dest, "cmd"), norm(" ".join(cmd).encode()) + b"\n")
    if args.runtime_dir:
        cmd.append("--runtime-dir=" + args.runtime_dir)
    t0 = time.time()
    try:
        p = subprocess.run(cmd, cwd=tmp, env=clean_env(tmp),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=COMPILE_TIMEOUT)
        stdout, stderr, rc = p.stdout, p.stderr, str(p.returncode)
    except subprocess.TimeoutExpired as e:
        stdout, stderr, rc = e.stdout or b"", e.stderr or b"", "timeout"
    write(os.path.join(dest, "stdout"), norm(stdout))
    write(os.path.join(dest, "stderr"), norm(stderr))
    write(os.path.join(dest, "rc"), rc + "\n")
    stages = []
    if os.path.isdir(dump):
        for f in sorted(os.listdir(dump), key=lambda n: (
                int(STAGE_FILE.match(n).group(1)) if STAGE_FILE.match(n)
                else 1 << 30, n)):
            m = STAGE_FILE.match(f)
            stage = m.group(2) if m else f
            name = stage
            k = 2
            while name in stages:  # a stage dumped twice keeps both
                name = "%s.%d" % (stage, k)
                k += 1
            stages.append(name)
            with open(os.path.join(dump, f), "rb") as fh:
                write(os.path.join(dest, "stages", name), norm(fh.read()))
    write(os.path.join(dest, "stages.txt"), "".join(s + "\n" for s in stages))
    for f in sorted(os.listdir(tmp)):
        path = os.path.join(tmp, f)
        if f != "stages" and os.path.isfile(path):
            with open(path, "rb") as fh:
                write(os.path.join(dest, f), norm(fh.read()))
    shutil.rmtree(tmp, ignore_errors=True)
    log("model %-40s %-34s rc=%-3s %d stages %.1fs" % (
        model, variant, rc, len(stages), time.time() - t0))
    return rc


# --------------------------------------------------------------------------
# Compare
# --------------------------------------------------------------------------
def tree_files(root):
    found = set()
    for r, dirs, files in os.walk(root):
        for f in files:
            found.add(os.path.relpath(os.path.join(r, f), root))
    return found


def file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def compare(a, b, show):
    fa, fb = tree_files(a), tree_files(b)
    same, differ = 0, []
    for rel in sorted(fa & fb):
        pa, pb = os.path.join(a, rel), os.path.join(b, rel)
        if os.path.getsize(pa) == os.path.getsize(pb) and \
                file_digest(pa) == file_digest(pb):
            same += 1
        else:
            differ.append(rel)
    only_a, only_b = sorted(fa - fb), sorted(fb - fa)
    print("%d identical, %d differ, %d only in %s, %d only in %s" % (
        same, len(differ), len(only_a), a, len(only_b), b))
    for title, items in (("differ", differ), ("only in " + a, only_a),
                         ("only in " + b, only_b)):
        if items:
            print("%s:" % title)
            for rel in items:
                print("  " + rel)
    if show and differ:
        import difflib
        for rel in differ[:show]:
            with open(os.path.join(a, rel), "rb") as f:
                la = f.read().decode("utf-8", "replace").splitlines()
            with open(os.path.join(b, rel), "rb") as f:
                lb = f.read().decode("utf-8", "replace").splitlines()
            diff = list(difflib.unified_diff(la, lb, "a/" + rel, "b/" + rel,
                                             lineterm="", n=1))
            print("\n".join(diff[:40]))
    return 0 if not differ and not only_a and not only_b else 1


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------
def read_renames(args):
    pairs = list(args.rename or [])
    for path in args.rename_file or []:
        with open(path) as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if line:
                    pairs.append(line)
    renames = []
    for p in pairs:
        m = re.match(r"^\s*(\S+?)\s*(?:=|->|\s)\s*(\S+)\s*$", p)
        if not m:
            sys.exit("ir_snapshot.py: bad rename '%s' (want OLD=NEW)" % p)
        renames.append((m.group(1).lstrip("-"), m.group(2).lstrip("-")))
    return renames


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--compare", nargs=2, metavar=("A", "B"),
                    help="compare two snapshots and exit (status 1 if they "
                    "differ)")
    ap.add_argument("--show-diffs", type=int, default=0, metavar="N",
                    help="with --compare: print the start of a diff of the "
                    "first N differing files")
    ap.add_argument("--bin", help="directory holding quench-opt, "
                    "quench-import, quench-compile")
    ap.add_argument("--runtime-dir", help="passed to quench-compile as "
                    "--runtime-dir (default: the tools' own ../lib)")
    ap.add_argument("--out", help="snapshot directory to write (must not "
                    "exist)")
    ap.add_argument("--tests", default="/work/ir-corpus/test",
                    help="the lit test tree (a fixed copy of the baseline's "
                    "test/; default %(default)s)")
    ap.add_argument("--models-dir", default="/work/ir-models",
                    help="generated models, created once and reused "
                    "(default %(default)s)")
    ap.add_argument("--stories-bin",
                    default=os.path.normpath(os.path.join(
                        REPO, "..", "shared", "models", "stories260K.bin")),
                    help="stories260K checkpoint (default %(default)s)")
    ap.add_argument("--rename", action="append", metavar="OLD=NEW",
                    help="rename a pass flag in the lit commands")
    ap.add_argument("--rename-file", action="append", metavar="FILE",
                    help="file of OLD=NEW lines")
    ap.add_argument("--skip-python", action="store_true",
                    help="skip lit RUN lines that run Python")
    ap.add_argument("--no-lit", action="store_true")
    ap.add_argument("--no-models", action="store_true")
    ap.add_argument("--only", metavar="REGEX",
                    help="only lit files / model jobs ('MODEL/VARIANT') "
                    "matching REGEX")
    ap.add_argument("-j", "--jobs", type=int, default=1,
                    help="parallel commands (default 1)")
    ap.add_argument("--tmp-dir", default=None,
                    help="where the temporary directories (irsnap-*) go; "
                    "each is removed when its test or compile is done (a "
                    "killed run leaves those in flight)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)

    if args.compare:
        # `--compare A B | head` ends quietly.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        return compare(args.compare[0], args.compare[1], args.show_diffs)
    if not args.bin or not args.out:
        ap.error("--bin and --out are required (or --compare A B)")
    args.bin = os.path.abspath(args.bin)
    args.tests = os.path.abspath(args.tests)
    args.models_dir = os.path.abspath(args.models_dir)
    if args.runtime_dir:
        args.runtime_dir = os.path.abspath(args.runtime_dir)
    for t in TOOLS:
        if not os.access(os.path.join(args.bin, t), os.X_OK):
            ap.error("%s/%s is missing" % (args.bin, t))
    if os.path.exists(args.out):
        ap.error("%s exists; snapshots are written into a new directory" %
                 args.out)
    args.renames = read_renames(args)
    out_root = os.path.abspath(args.out)
    os.makedirs(out_root)
    norm_base = [(args.bin, "@BIN@"), (args.tests, "@TESTS@"),
                 (args.models_dir, "@MODELS@"),
                 (args.runtime_dir, "@RUNTIME@")]
    only = re.compile(args.only) if args.only else None
    start = time.time()
    info = {"bin": args.bin, "tests": args.tests,
            "models_dir": args.models_dir, "runtime_dir": args.runtime_dir,
            "renames": args.renames, "jobs": args.jobs}

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs)
    if not args.no_lit:
        files = [f for f in lit_files(args.tests)
                 if not only or only.search(f)]
        write(os.path.join(out_root, "lit", "FILES.txt"),
              "".join(f + "\n" for f in files))
        results = list(pool.map(
            lambda f: run_lit_file(args, f, out_root, norm_base), files))
        skipped = [s for _, sk in results for s in sk]
        write(os.path.join(out_root, "lit", "SKIPPED.txt"),
              "".join(s + "\n" for s in skipped))
        info["lit_files"] = len(files)
        info["lit_run_lines"] = sum(r for r, _ in results)
        info["lit_skipped_lines"] = skipped
        log("lit: %d files, %d RUN lines run, %d skipped (%.0fs)" % (
            len(files), info["lit_run_lines"], len(skipped),
            time.time() - start))
    if not args.no_models:
        t0 = time.time()
        generate_models(args)
        jobs = [j for j in compile_jobs(args)
                if not only or only.search(j[0] + "/" + j[1])]
        write(os.path.join(out_root, "models", "MODELS.txt"),
              "".join("%s %s %s\n" % (m, v, " ".join(fl))
                      for m, v, _, fl in jobs).replace(
                          args.models_dir, "@MODELS@"))
        rcs = list(pool.map(
            lambda j: run_compile(args, j, out_root, norm_base), jobs))
        info["models"] = len({j[0] for j in jobs})
        info["compiles"] = len(jobs)
        info["compiles_failed"] = sum(rc != "0" for rc in rcs)
        log("models: %d models, %d compiles (%d rejected), %.0fs" % (
            info["models"], len(jobs), info["compiles_failed"],
            time.time() - t0))
    pool.shutdown()
    info["files"] = len(tree_files(out_root))
    info["seconds"] = round(time.time() - start, 1)
    with open(out_root.rstrip("/") + ".info.json", "w") as f:
        json.dump(info, f, indent=1)
    log("snapshot %s: %d files in %.0fs (run info: %s.info.json)" % (
        out_root, info["files"], info["seconds"], out_root.rstrip("/")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
