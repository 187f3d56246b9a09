#!/usr/bin/env node
// Greedy text generation with ONNX Runtime (CPU execution provider, through
// onnxruntime-node) on a decoder exported with past key/values (Hugging Face
// Optimum / ORT GenAI convention: input_ids, attention_mask, position_ids,
// past_key_values.{i}.key|value in; logits, present.{i}.key|value out), the
// way bench/generation.py runs Quench's `--generate`:
//
//   node bench/ort/generate.js MODEL.onnx --input input_ids=PROMPT.npy
//        --kv-heads H --head-dim D [--generate N] [--runs R] [--threads T]
//        [--logits-out FILE.npy] [--ids-out FILE.npy]
//
// One run is a prefill of the whole prompt (empty past: [1, H, 0, D]) and
// then N - 1 decode steps of one token each, every step fed the previous
// step's present.* tensors as its past.* (ORT's own Concat grows them: the
// cache is copied at every step, which is what running this ONNX file
// means). The next token is the argmax of the last position's logits, as in
// Quench's greedy sampling (lowest id on ties). A first run is a warm-up;
// R more are timed (prefill from before the first session.run to after it,
// decode from there to after the last step) and the medians printed as one
// JSON line: {"prefill_ms", "decode_ms", "decode_steps", "ids", "threads"}.
// --logits-out writes the first run's prefill logits [1, P, vocab];
// --ids-out its generated ids (int64 [1, N]).
'use strict';

const os = require('os');
const {readNpy, writeNpy} = require('./run.js');

const PROG = 'generate.js';

function die(msg) {
  process.stderr.write(`${PROG}: error: ${msg}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const opt = {model: null, prompt: null, kvHeads: 0, headDim: 0, generate: 16,
               runs: 3, threads: 0, logitsOut: null, idsOut: null};
  const count = (flag, v, lo) => {
    if (!/^[0-9]+$/.test(v) || Number(v) < lo)
      die(`${flag} expects an integer >= ${lo}, got '${v}'`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      process.stdout.write(`usage: ${PROG} MODEL.onnx --input input_ids=PROMPT.npy ` +
                           '--kv-heads H --head-dim D [--generate N] [--runs R] ' +
                           '[--threads T] [--logits-out FILE.npy] [--ids-out FILE.npy]\n');
      process.exit(0);
    }
    if (!a.startsWith('--')) {
      if (opt.model) die(`unexpected argument '${a}'`);
      opt.model = a;
      continue;
    }
    if (i + 1 >= argv.length) die(`${a} needs a value`);
    const v = argv[++i];
    switch (a) {
      case '--input':
        if (!v.startsWith('input_ids=')) die(`--input expects input_ids=FILE.npy, got '${v}'`);
        opt.prompt = v.slice('input_ids='.length);
        break;
      case '--kv-heads': opt.kvHeads = count(a, v, 1); break;
      case '--head-dim': opt.headDim = count(a, v, 1); break;
      case '--generate': opt.generate = count(a, v, 1); break;
      case '--runs': opt.runs = count(a, v, 1); break;
      case '--threads': opt.threads = count(a, v, 0); break;
      case '--logits-out': opt.logitsOut = v; break;
      case '--ids-out': opt.idsOut = v; break;
      default: die(`unknown option '${a}'`);
    }
  }
  if (!opt.model || !opt.prompt || !opt.kvHeads || !opt.headDim)
    die('MODEL.onnx, --input input_ids=FILE.npy, --kv-heads and --head-dim are needed');
  return opt;
}

function argmaxLast(t) {
  const vocab = t.dims[t.dims.length - 1];
  const first = t.data.length - vocab;
  let best = 0;
  for (let v = 1; v < vocab; ++v)
    if (t.data[first + v] > t.data[first + best]) best = v;
  return best;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  let ort;
  try {
    ort = require('onnxruntime-node');
  } catch (e) {
    die('onnxruntime-node is not installed (run bench/ort/setup.sh)');
  }
  let prompt;
  try {
    prompt = readNpy(opt.prompt);
  } catch (e) {
    die(e.message);
  }
  if (prompt.type !== 'int64' || prompt.dims.length !== 2 || prompt.dims[0] !== 1)
    die('the prompt must be int64 [1, P]');
  let session;
  try {
    session = await ort.InferenceSession.create(opt.model, {
      executionProviders: ['cpu'],
      intraOpNumThreads: opt.threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
    });
  } catch (e) {
    die(`cannot load '${opt.model}': ${e.message}`);
  }
  const pastNames = session.inputNames.filter((n) => /^past_key_values\.\d+\.(key|value)$/.test(n));
  if (!pastNames.length) die(`'${opt.model}' has no past_key_values.{i}.key|value inputs`);
  const presentOf = (n) => n.replace(/^past_key_values\./, 'present.');
  for (const n of pastNames)
    if (!session.outputNames.includes(presentOf(n))) die(`no output ${presentOf(n)}`);
  const i64 = (arr) => new ort.Tensor('int64', BigInt64Array.from(arr, BigInt), [1, arr.length]);
  const now = () => Number(process.hrtime.bigint()) / 1e6;

  async function generateOnce(keepLogits) {
    const ids = [];
    let past = {};
    for (const n of pastNames)
      past[n] = new ort.Tensor('float32', new Float32Array(0), [1, opt.kvHeads, 0, opt.headDim]);
    let pos = 0;
    let tokens = Array.from(prompt.data, Number);
    let logits = null;
    const t0 = now();
    let prefillMs = 0;
    for (let step = 0; step < opt.generate; ++step) {
      const n = tokens.length;
      const feeds = Object.assign({
        input_ids: i64(tokens),
        attention_mask: i64(new Array(pos + n).fill(1)),
        position_ids: i64(Array.from({length: n}, (_, i) => pos + i)),
      }, past);
      const out = await session.run(feeds);
      if (step === 0) {
        prefillMs = now() - t0;
        if (keepLogits) logits = out.logits;
      }
      const next = argmaxLast(out.logits);
      ids.push(next);
      pos += n;
      past = {};
      for (const p of pastNames) past[p] = out[presentOf(p)];
      tokens = [next];
    }
    // As Quench's --generate: N tokens are the prefill's and N - 1 decode
    // steps' argmaxes; the decode time ends with the last step.
    return {ids, logits, prefillMs, decodeMs: now() - t0 - prefillMs};
  }

  const first = await generateOnce(Boolean(opt.logitsOut));
  if (opt.logitsOut) writeNpy(opt.logitsOut, 'float32', first.logits.dims, first.logits.data);
  if (opt.idsOut)
    writeNpy(opt.idsOut, 'int64', [1, first.ids.length], BigInt64Array.from(first.ids, BigInt));
  const pre = [], dec = [];
  for (let r = 0; r < opt.runs; ++r) {
    const g = await generateOnce(false);
    pre.push(g.prefillMs);
    dec.push(g.decodeMs);
  }
  console.log(JSON.stringify({
    prefill_ms: median(pre), decode_ms: median(dec), decode_steps: opt.generate - 1,
    prompt: prompt.dims[1], ids: first.ids, threads: opt.threads || os.cpus().length,
  }));
  await session.release();
}

main().catch((e) => die(e && e.message ? e.message : String(e)));
