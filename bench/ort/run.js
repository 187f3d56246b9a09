#!/usr/bin/env node
// Runs an ONNX model with ONNX Runtime (CPU execution provider) through
// onnxruntime-node, with the same command line and the same `bench:` line as
// the executables quench-compile emits, so the two can be compared directly:
//
//   node bench/ort/run.js MODEL.onnx --input NAME=FILE.npy ...
//        [--output-dir DIR] [--bench N] [--threads T] [--opt LEVEL]
//
// Every graph input must be given as a .npy file (C order, little endian;
// float16/32/64, int8/16/32/64, uint8/16/32/64, bool). One run is made first
// (timed as "first run": session warm-up); its outputs are written to
// DIR/<name>.npy with --output-dir, else summarized on stdout. --bench N then
// times N more runs, each measured around `await session.run(...)` (the
// N-API call and output allocation included, as in Quench's driver).
// --threads sets ORT's intra-op thread count (0: ORT's default, every
// physical core); inter-op parallelism is off (sequential execution).
// Install onnxruntime-node first: bench/ort/setup.sh.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

const PROG = 'run.js';

function die(msg) {
  process.stderr.write(`${PROG}: error: ${msg}\n`);
  process.exit(1);
}

// ---------------------------------------------------------------------------
// .npy (format versions 1.0, 2.0, 3.0; C order; little endian)
// ---------------------------------------------------------------------------
// numpy descr (without byte-order char) -> [ort type, TypedArray, bytes]
const NPY_TYPES = {
  f2: ['float16', Uint16Array, 2],  // raw IEEE half bits
  f4: ['float32', Float32Array, 4],
  f8: ['float64', Float64Array, 8],
  i1: ['int8', Int8Array, 1],
  i2: ['int16', Int16Array, 2],
  i4: ['int32', Int32Array, 4],
  i8: ['int64', BigInt64Array, 8],
  u1: ['uint8', Uint8Array, 1],
  u2: ['uint16', Uint16Array, 2],
  u4: ['uint32', Uint32Array, 4],
  u8: ['uint64', BigUint64Array, 8],
  b1: ['bool', Uint8Array, 1],
};
const ORT_TO_DESCR = {};
for (const [d, [t]] of Object.entries(NPY_TYPES)) ORT_TO_DESCR[t] = d;

function readNpy(file) {
  let buf;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`cannot read '${file}': ${e.code || e.message}`);
  }
  const bad = (why) => new Error(`'${file}' is not a valid .npy file: ${why}`);
  if (buf.length < 10 || buf[0] !== 0x93 ||
      buf.toString('latin1', 1, 6) !== 'NUMPY')
    throw bad('bad magic');
  const major = buf[6];
  let hlen, hstart;
  if (major === 1) {
    hlen = buf.readUInt16LE(8);
    hstart = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw bad('truncated header');
    hlen = buf.readUInt32LE(8);
    hstart = 12;
  } else {
    throw bad(`unsupported format version ${major}`);
  }
  if (hstart + hlen > buf.length) throw bad('truncated header');
  const header = buf.toString(major === 3 ? 'utf8' : 'latin1', hstart,
                              hstart + hlen);
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) throw bad(`unparsable header ${header}`);
  if (fortran[1] === 'True') throw bad('Fortran order is not supported');
  const order = descr[1][0];
  const code = descr[1].slice(1);
  const info = NPY_TYPES[code];
  if (!info || !(order === '<' || order === '|' ||
                 (order === '=' && os.endianness() === 'LE')) ||
      (order === '|' && info[2] !== 1))
    throw bad(`unsupported dtype '${descr[1]}'`);
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s)
                   .map((s) => {
                     if (!/^[0-9]+$/.test(s)) throw bad(`bad shape '${s}'`);
                     return Number(s);
                   });
  const count = dims.reduce((a, b) => a * b, 1);
  const [type, Ctor, size] = info;
  const start = hstart + hlen;
  if (buf.length - start !== count * size)
    throw bad(`expected ${count * size} data bytes, found ${buf.length - start}`);
  // Copy into an aligned buffer (the file's data offset need not be aligned).
  const data = new Ctor(count);
  Buffer.from(data.buffer).set(buf.subarray(start));
  return {type, dims, data};
}

function writeNpy(file, type, dims, data) {
  const code = ORT_TO_DESCR[type];
  if (!code) throw new Error(`cannot write tensors of type ${type}`);
  const descr = (NPY_TYPES[code][2] === 1 ? '|' : '<') + code;
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  // Pad with spaces so that magic + version + length + header + '\n' is a
  // multiple of 64 bytes (what numpy writes).
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const pre = Buffer.alloc(10);
  pre[0] = 0x93;
  pre.write('NUMPY', 1, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const bytes = type === 'bool' ? Buffer.from(Uint8Array.from(data, (v) => (v ? 1 : 0)))
                                : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const tmp = `${file}.tmp${process.pid}`;
  fs.writeFileSync(tmp, Buffer.concat([pre, Buffer.from(header, 'latin1'), bytes]));
  fs.renameSync(tmp, file);
}

// ---------------------------------------------------------------------------
function usage() {
  return `usage: ${PROG} MODEL.onnx --input NAME=FILE.npy ... [--output-dir DIR]
              [--bench N] [--threads T] [--opt LEVEL]

Runs MODEL.onnx with ONNX Runtime's CPU execution provider.

  --input NAME=FILE.npy  value of graph input NAME (every input is required)
  --output-dir DIR       write every output to DIR/<name>.npy (characters
                         other than [A-Za-z0-9._-] in names become '_');
                         without it, outputs are summarized on stdout
  --bench N              run N more times after the first run and print the
                         median, minimum and mean latency
  --threads T            intra-op threads (default 0: ORT's default)
  --opt LEVEL            graph optimization: disabled, basic, extended, all
                         (default: all)
  --help                 this text
`;
}

function parseArgs(argv) {
  const opt = {model: null, inputs: [], outputDir: null, bench: 0, threads: 0,
               level: 'all'};
  const count = (flag, v, lo, hi) => {
    if (!/^[0-9]+$/.test(v) || Number(v) < lo || Number(v) > hi)
      die(`${flag} expects an integer in ${lo}..${hi}, got '${v}'`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; ++i) {
    let a = argv[i];
    if (a === '--help' || a === '-h') {
      process.stdout.write(usage());
      process.exit(0);
    }
    if (!a.startsWith('--')) {
      if (opt.model) die(`unexpected argument '${a}'`);
      opt.model = a;
      continue;
    }
    let value;
    const eq = a.indexOf('=');
    if (eq > 0 && a !== '--input') {
      value = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    if (!['--input', '--output-dir', '--bench', '--threads', '--opt'].includes(a))
      die(`unknown option '${a}' (see --help)`);
    if (value === undefined) {
      if (i + 1 >= argv.length) die(`${a} needs a value`);
      value = argv[++i];
    }
    if (a === '--input') {
      const k = value.indexOf('=');
      if (k <= 0 || k === value.length - 1)
        die(`--input expects NAME=FILE.npy, got '${value}'`);
      opt.inputs.push([value.slice(0, k), value.slice(k + 1)]);
    } else if (a === '--output-dir') {
      opt.outputDir = value;
    } else if (a === '--bench') {
      opt.bench = count(a, value, 1, 1000000);
    } else if (a === '--threads') {
      opt.threads = count(a, value, 0, 1024);
    } else {
      if (!['disabled', 'basic', 'extended', 'all'].includes(value))
        die(`--opt expects disabled, basic, extended or all, got '${value}'`);
      opt.level = value;
    }
  }
  if (!opt.model) die('no model given (see --help)');
  return opt;
}

function summarize(name, t) {
  let line = `output ${name} ${t.type} [${t.dims.join(', ')}]`;
  if (t.type === 'float32' || t.type === 'float64') {
    let mn = Infinity, mx = -Infinity, sum = 0;
    for (const v of t.data) {
      if (v < mn) mn = v;
      if (v > mx) mx = v;
      sum += v;
    }
    line += ` min ${mn.toPrecision(6)} max ${mx.toPrecision(6)} mean ` +
            `${(sum / Math.max(1, t.data.length)).toPrecision(6)}`;
  }
  console.log(line);
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  let ort;
  try {
    ort = require('onnxruntime-node');
  } catch (e) {
    die(`onnxruntime-node is not installed (run ${path.join(__dirname, 'setup.sh')})`);
  }
  if (!fs.existsSync(opt.model)) die(`cannot read '${opt.model}'`);
  if (opt.outputDir) {
    let st;
    try {
      st = fs.statSync(opt.outputDir);
    } catch (e) {
      die(`output directory '${opt.outputDir}' does not exist`);
    }
    if (!st.isDirectory()) die(`'${opt.outputDir}' is not a directory`);
  }

  let session;
  try {
    session = await ort.InferenceSession.create(opt.model, {
      executionProviders: ['cpu'],
      intraOpNumThreads: opt.threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: opt.level,
      logSeverityLevel: 3,
    });
  } catch (e) {
    die(`cannot load '${opt.model}': ${e.message}`);
  }

  const given = new Map();
  for (const [name, file] of opt.inputs) {
    if (given.has(name)) die(`input '${name}' given twice`);
    if (!session.inputNames.includes(name))
      die(`the model has no input '${name}' (inputs: ${session.inputNames.join(', ')})`);
    given.set(name, file);
  }
  const feeds = {};
  for (const name of session.inputNames) {
    if (!given.has(name)) die(`missing --input ${name}=FILE.npy`);
    let arr;
    try {
      arr = readNpy(given.get(name));
    } catch (e) {
      die(`input '${name}': ${e.message}`);
    }
    feeds[name] = new ort.Tensor(arr.type, arr.data, arr.dims);
  }

  const now = () => Number(process.hrtime.bigint()) / 1e6;
  let outputs;
  const t0 = now();
  try {
    outputs = await session.run(feeds);
  } catch (e) {
    die(e.message);
  }
  const first = now() - t0;

  for (const name of session.outputNames) {
    const t = outputs[name];
    if (opt.outputDir) {
      const file = path.join(opt.outputDir, name.replace(/[^A-Za-z0-9._-]/g, '_') + '.npy');
      try {
        writeNpy(file, t.type, t.dims, t.data);
      } catch (e) {
        die(`output '${name}': ${e.message}`);
      }
      console.log(`wrote ${file}`);
    } else {
      summarize(name, t);
    }
  }

  if (opt.bench > 0) {
    const times = new Float64Array(opt.bench);
    let sum = 0;
    for (let r = 0; r < opt.bench; ++r) {
      const s = now();
      await session.run(feeds);
      times[r] = now() - s;
      sum += times[r];
    }
    times.sort();
    const n = opt.bench;
    const median = n % 2 ? times[(n - 1) / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
    const threads = opt.threads || os.cpus().length;
    console.log(`bench: ${n} runs, ${threads} threads, median ${median.toFixed(4)} ms, ` +
                `min ${times[0].toFixed(4)} ms, mean ${(sum / n).toFixed(4)} ms ` +
                `(first run ${first.toFixed(4)} ms)`);
  }
  await session.release();
}

// bench/ort/generate.js reuses the .npy reader and writer.
module.exports = {readNpy, writeNpy};

if (require.main === module)
  main().catch((e) => die(e && e.message ? e.message : String(e)));
