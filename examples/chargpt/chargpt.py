#!/usr/bin/python3
"""chargpt: Quench's bundled character-level GPT, trained on the KJV Bible.

A small GPT written in plain PyTorch, trained on CPU in minutes, exported to
ONNX for Quench and for the ONNX Runtime comparison (bench/e2e_chargpt.sh).

Model (fixed; see CONFIG):
  vocabulary 65 characters, block size (context) 32 tokens,
  learned token and position embeddings, n_embd 192,
  6 pre-LayerNorm transformer blocks:
      x = x + attn(ln_1(x))     6 heads of 32, causal, fused qkv, biases
      x = x + mlp(ln_2(x))      192 -> 768 -> 192, exact (erf) GELU
  final LayerNorm, then a language-model head TIED to the token embedding
  (logits = ln_f(x) @ wte^T, no bias).
  2,688,192 parameters = 10,752,768 bytes of fp32 weights (10.25 MiB).

Data: the King James Bible from Debian's `bible-kjv` package
(`bible -f gen1:1-rev22:21`, 31,102 verses, one per line). The verse prefixes
("Ge1:1 ", "1Co13:4 ", ...) are stripped; the verses stay separated by "\\n".
The first 90% of the characters are for training, the last 10% (the end of
the New Testament) are held out for evaluation.

Vocabulary: the sorted distinct characters of the whole text, padded to 65
entries with placeholder ids that never occur in the data. The KJV text has
63 distinct characters (newline, space, !'(),-.:;? and the letters; no
digits, no "X"), so ids 0..62 are those characters in code-point order and
ids 63 and 64 are placeholders: they decode to "", are never sampled, and
training only pushes their logits down. The vocabulary is saved with the
checkpoint and in NAME.json, so export and generation never need the text.

Subcommands (outputs go under --out, default <repository>/build/chargpt,
which is git-ignored; never into the source tree):

  chargpt.py train    [--minutes 4] [--steps 0] [--batch 32] [--seed 1337]
        trains and writes OUT/chargpt.pt (weights, vocabulary, losses).
        Stops after --steps optimizer steps (0: no step limit) or --minutes
        of wall time, whichever comes first; the learning-rate schedule
        follows whichever limit is closer. With --steps alone the run is
        deterministic (seeded weights, seeded batch sampling, fixed threads).
        Measured on a shared, loaded 2-core machine: --threads 1 --minutes
        4.5 gave 409 steps of 32x32 characters, train loss 1.70 and held-out
        loss 1.82 nats/char (2 threads was slower there: other jobs were
        using the cores).
  chargpt.py export   [--random] [--opset 17] [--with-past]
        writes, for NAME = chargpt (from OUT/chargpt.pt) or chargpt_random
        (--random: seeded untrained weights, same shapes, no text needed):
          NAME.onnx             input `tokens` int64 [1, T], T dynamic (<= 32)
                                output `logits` float32 [1, T, 65]
          NAME.t32.onnx         same weights, static T = 32
          NAME.tokens.npy       sample input [1, 32] int64
          NAME.logits.npy       PyTorch's logits for it [1, 32, 65] float32
          NAME.tokens_t13.npy   a shorter input [1, 13] for the dynamic model
          NAME.logits_t13.npy   its logits [1, 13, 65]
          NAME.json             configuration, parameter count, vocabulary
        and with --with-past also (examples/decoder_past.py's convention:
        Hugging Face Optimum / ONNX Runtime GenAI names, docs/frontend-onnx.md)
          NAME_past.onnx        same weights with past key/values: inputs
                                input_ids [1, seq], attention_mask
                                [1, past_seq+seq], position_ids [1, seq],
                                past_key_values.{0..5}.key|value
                                [1, 6, past_seq, 32]; outputs logits
                                [1, seq, 65], present.{0..5}.key|value
                                [1, 6, past_seq+seq, 32]; past_seq+seq <= 32
          NAME_past.prompt_ids.npy  a prompt [1, P] int64 (trained: "And God
                                said", P = 12; random: 8 seeded ids)
          NAME_past.greedy_ids.npy  its greedy continuation [1, 32 - P]
                                int64, computed without a cache (whole
                                sequence every step, argmax over all 65
                                logits of the last position)
        after checking that the with-past PyTorch module gives the same
        greedy ids (prefill + decode steps) and that the ONNX graph gives
        its logits and presents on a prefill and two decode steps
        (decoder_past.export_checked); exits 1 otherwise.
  chargpt.py generate [--prompt TEXT] [--chars 300] [--temperature 0.8]
        samples text from the trained PyTorch model (temperature 0: greedy).
  chargpt.py eval     evaluates OUT/chargpt.pt on the train and held-out text.

Needs Debian's /usr/bin/python3 (torch 1.13, onnx 1.12, numpy) and, except
for `export --random`, the `bible` program (apt-get install bible-kjv).
"""

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time

# torch parallelizes with its own OpenMP threads (--threads); a second pool
# inside OpenBLAS only oversubscribes the cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

CONFIG = dict(vocab_size=65, block_size=32, n_embd=192, n_head=6, n_layer=6)
CHECKPOINT = "chargpt.pt"
VERSE_PREFIX = re.compile(r"^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ ")
HELD_OUT_FRACTION = 0.10
# <repo>/build/chargpt: git-ignored, next to the CMake build's files.
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "build", "chargpt")


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------
def load_kjv_text():
    """The whole KJV text, verse prefixes stripped, one verse per line."""
    bible = shutil.which("bible")
    if bible is None:
        sys.exit("chargpt: the `bible` program is missing; install the Debian "
                 "package bible-kjv (scripts/setup-deps.sh does)")
    raw = subprocess.run([bible, "-f", "gen1:1-rev22:21"], check=True,
                         stdout=subprocess.PIPE).stdout.decode("utf-8")
    lines = []
    for line in raw.splitlines():
        if not line:
            continue
        stripped = VERSE_PREFIX.sub("", line, count=1)
        if stripped == line:
            sys.exit("chargpt: unexpected line without a verse prefix: %r"
                     % line[:60])
        lines.append(stripped)
    return "\n".join(lines) + "\n"


def build_vocab(text, size=CONFIG["vocab_size"]):
    """Sorted distinct characters, padded with placeholders to `size`.

    Returns a list of `size` strings: one character each for the ids that
    occur in the text, "" for the placeholder ids (they never occur)."""
    chars = sorted(set(text))
    if len(chars) > size:
        sys.exit("chargpt: text has %d distinct characters, more than the "
                 "vocabulary size %d" % (len(chars), size))
    return chars + [""] * (size - len(chars))


def encode(text, vocab):
    index = {c: i for i, c in enumerate(vocab) if c}
    try:
        return np.array([index[c] for c in text], dtype=np.int64)
    except KeyError as e:
        sys.exit("chargpt: character %r is not in the vocabulary" % e.args[0])


def decode(ids, vocab):
    return "".join(vocab[int(i)] for i in ids)


def split_data(ids):
    n_train = int(len(ids) * (1.0 - HELD_OUT_FRACTION))
    return ids[:n_train], ids[n_train:]


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------
class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        self.n_head = n_head
        self.head_dim = n_embd // n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        # Lower-triangular mask, sliced to the sequence length (a constant in
        # the ONNX graph, not a parameter).
        self.register_buffer(
            "mask", torch.tril(torch.ones(block_size, block_size,
                                          dtype=torch.bool)), persistent=False)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q = q.view(b, t, self.n_head, self.head_dim).transpose(1, 2)
        k = k.view(b, t, self.n_head, self.head_dim).transpose(1, 2)
        v = v.view(b, t, self.n_head, self.head_dim).transpose(1, 2)
        att = torch.matmul(q, k.transpose(-2, -1)) * (1.0 /
                                                      math.sqrt(self.head_dim))
        att = att.masked_fill(~self.mask[:t, :t], float("-inf"))
        att = F.softmax(att, dim=-1)
        y = torch.matmul(att, v).transpose(1, 2).reshape(b, t, c)
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.fc = nn.Linear(n_embd, 4 * n_embd)
        self.fc_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.fc_proj(F.gelu(self.fc(self.ln_2(x))))


class CharGPT(nn.Module):
    def __init__(self, vocab_size, block_size, n_embd, n_head, n_layer):
        super().__init__()
        self.block_size = block_size
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.blocks = nn.ModuleList(
            [Block(n_embd, n_head, block_size) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self._init_weights(n_layer)

    def _init_weights(self, n_layer):
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() == 1:  # LayerNorm gains
                nn.init.ones_(p)
            else:
                std = 0.02
                if name.endswith("proj.weight"):  # residual projections
                    std = 0.02 / math.sqrt(2 * n_layer)
                nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, tokens):
        t = tokens.shape[1]
        pos = torch.arange(t, dtype=torch.long, device=tokens.device)
        x = self.wte(tokens) + self.wpe(pos).unsqueeze(0)
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        return F.linear(x, self.wte.weight)  # tied head, no bias


class CharGPTWithPast(nn.Module):
    """The same model (sharing the parameters of `model`) with past
    key/values, in the convention of examples/decoder_past.py:
    forward(input_ids, attention_mask, position_ids, *past) ->
    (logits, *present), past/present flattened as key0, value0, key1, ...
    ([1, n_head, past_seq, head_dim]; present = Concat(past, new) on axis 2).
    Position embeddings are gathered at position_ids. The mask is Hugging
    Face GPT-2's: the causal buffer sliced to rows past .. past+seq-1 and
    columns 0 .. past+seq-1 selects between the scores and float32's lowest
    value, then (1 - attention_mask) * lowest is added."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, *past):
        m = self.model
        t = input_ids.shape[1]
        p = past[0].shape[2]
        lowest = torch.finfo(torch.float32).min
        padding = (1.0 - attention_mask[:, None, None, :].float()) * lowest
        x = m.wte(input_ids) + m.wpe(position_ids)
        present = []
        for i, block in enumerate(m.blocks):
            a = block.attn
            h = block.ln_1(x)
            b, _, c = h.shape
            q, k, v = a.qkv(h).split(c, dim=2)
            q = q.view(b, t, a.n_head, a.head_dim).transpose(1, 2)
            k = k.view(b, t, a.n_head, a.head_dim).transpose(1, 2)
            v = v.view(b, t, a.n_head, a.head_dim).transpose(1, 2)
            k = torch.cat([past[2 * i], k], dim=2)
            v = torch.cat([past[2 * i + 1], v], dim=2)
            present += [k, v]
            att = torch.matmul(q, k.transpose(-2, -1)) * (
                1.0 / math.sqrt(a.head_dim))
            causal = a.mask[p:p + t, :p + t]
            att = torch.where(causal, att, torch.tensor(lowest)) + padding
            att = F.softmax(att, dim=-1)
            y = torch.matmul(att, v).transpose(1, 2).reshape(b, t, c)
            x = x + a.proj(y)
            x = x + block.fc_proj(F.gelu(block.fc(block.ln_2(x))))
        x = m.ln_f(x)
        return (F.linear(x, m.wte.weight), *present)


def make_model(seed):
    torch.manual_seed(seed)
    return CharGPT(**CONFIG)


def count_params(model):
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------
def get_batch(data, batch, block, rng):
    starts = rng.integers(0, len(data) - block - 1, size=batch)
    x = np.stack([data[s:s + block] for s in starts])
    y = np.stack([data[s + 1:s + 1 + block] for s in starts])
    return torch.from_numpy(x), torch.from_numpy(y)


@torch.no_grad()
def evaluate(model, data, n_batches=10, batch=64, seed=0):
    """Mean cross-entropy (nats/char) on fixed, seeded windows of `data`."""
    model.eval()
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(n_batches):
        x, y = get_batch(data, batch, CONFIG["block_size"], rng)
        logits = model(x)
        losses.append(F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                      y.reshape(-1)).item())
    model.train()
    return float(np.mean(losses))


def cmd_train(args):
    torch.set_num_threads(args.threads)
    text = load_kjv_text()
    vocab = build_vocab(text)
    ids = encode(text, vocab)
    train_ids, val_ids = split_data(ids)
    n_chars = sum(1 for c in vocab if c)
    print("data: %d characters (%d train, %d held out), %d distinct, "
          "vocabulary %d" % (len(ids), len(train_ids), len(val_ids), n_chars,
                             len(vocab)))

    model = make_model(args.seed)
    n_params = count_params(model)
    print("model: %d parameters, %d bytes of fp32 weights" %
          (n_params, 4 * n_params))
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.99))
    rng = np.random.default_rng(args.seed)
    max_steps = args.steps if args.steps > 0 else None
    budget = args.minutes * 60.0 if args.minutes > 0 else None
    if max_steps is None and budget is None:
        sys.exit("chargpt: give --steps or --minutes")
    warmup = args.warmup

    os.makedirs(args.out, exist_ok=True)
    start = time.time()
    step, ema, history = 0, None, []
    try:
        while True:
            elapsed = time.time() - start
            progress = 0.0
            if max_steps:
                progress = step / max_steps
            if budget:
                progress = max(progress, elapsed / budget)
            if progress >= 1.0:
                break
            # Linear warm-up, then cosine decay to 10% of the peak rate.
            lr = args.lr * min(1.0, (step + 1) / warmup) * \
                (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))
            for g in opt.param_groups:
                g["lr"] = lr
            x, y = get_batch(train_ids, args.batch, CONFIG["block_size"], rng)
            logits = model(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                   y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            ema = loss.item() if ema is None else \
                0.95 * ema + 0.05 * loss.item()
            if step % args.log_every == 0:
                history.append(dict(step=step, seconds=round(elapsed, 1),
                                    train_loss_ema=round(ema, 4)))
                print("step %5d  %6.1fs  lr %.2e  train loss %.4f (ema)" %
                      (step, time.time() - start, lr, ema), flush=True)
    except KeyboardInterrupt:
        print("interrupted at step %d; saving" % step)
    train_seconds = time.time() - start

    train_loss = evaluate(model, train_ids, seed=1)
    val_loss = evaluate(model, val_ids, seed=2)
    print("after %d steps (%.1f s, %d tokens/step): train loss %.4f, "
          "held-out loss %.4f (nats/char; %.3f / %.3f bits/char)" %
          (step, train_seconds, args.batch * CONFIG["block_size"], train_loss,
           val_loss, train_loss / math.log(2), val_loss / math.log(2)))
    ckpt = dict(config=CONFIG, vocab=vocab, state_dict=model.state_dict(),
                info=dict(steps=step, seconds=round(train_seconds, 1),
                          batch=args.batch, lr=args.lr, seed=args.seed,
                          threads=args.threads, train_loss=train_loss,
                          held_out_loss=val_loss, parameters=n_params,
                          history=history))
    path = os.path.join(args.out, CHECKPOINT)
    torch.save(ckpt, path + ".tmp")
    os.replace(path + ".tmp", path)
    print("wrote %s" % path)
    prompt = "And God said"
    print("sample (greedy) from %r:" % prompt)
    print(sample(model, vocab, prompt, 200, 0.0, args.seed))
    return 0


def load_checkpoint(out):
    path = os.path.join(out, CHECKPOINT)
    if not os.path.exists(path):
        sys.exit("chargpt: no checkpoint %s; run `chargpt.py train` first (or "
                 "`export --random`)" % path)
    ckpt = torch.load(path, map_location="cpu")
    if ckpt["config"] != CONFIG:
        sys.exit("chargpt: %s has configuration %r, expected %r" %
                 (path, ckpt["config"], CONFIG))
    model = CharGPT(**CONFIG)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


# --------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------
@torch.no_grad()
def sample(model, vocab, prompt, n_chars, temperature, seed):
    model.eval()
    block = CONFIG["block_size"]
    g = torch.Generator().manual_seed(seed)
    ids = list(encode(prompt, vocab)) if prompt else [vocab.index("\n")]
    n_real = sum(1 for c in vocab if c)
    for _ in range(n_chars):
        ctx = torch.tensor([ids[-block:]], dtype=torch.long)
        logits = model(ctx)[0, -1, :n_real]  # placeholders never sampled
        if temperature <= 0:
            nxt = int(torch.argmax(logits))
        else:
            probs = F.softmax(logits / temperature, dim=-1)
            nxt = int(torch.multinomial(probs, 1, generator=g))
        ids.append(nxt)
    return decode(ids, vocab)


def cmd_generate(args):
    torch.set_num_threads(args.threads)
    model, ckpt = load_checkpoint(args.out)
    print(sample(model, ckpt["vocab"], args.prompt, args.chars,
                 args.temperature, args.seed))
    return 0


def cmd_eval(args):
    torch.set_num_threads(args.threads)
    model, ckpt = load_checkpoint(args.out)
    ids = encode(load_kjv_text(), ckpt["vocab"])
    train_ids, val_ids = split_data(ids)
    print("train loss %.4f, held-out loss %.4f (nats/char)" %
          (evaluate(model, train_ids, seed=1),
           evaluate(model, val_ids, seed=2)))
    return 0


# --------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------
def random_model(seed):
    """Untrained model with the same shapes and plausible activations:
    seeded normal weights (std 0.02 like training's init, but LayerNorm
    gains and biases also random so that every parameter matters)."""
    model = make_model(seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
    return model.eval()


def export_onnx(model, path, example, dynamic, opset):
    axes = {"tokens": {1: "T"}, "logits": {1: "T"}} if dynamic else None
    tmp = path + ".tmp"
    torch.onnx.export(model, (example,), tmp, input_names=["tokens"],
                      output_names=["logits"], dynamic_axes=axes,
                      opset_version=opset, do_constant_folding=True)
    os.replace(tmp, path)


def cmd_export(args):
    import warnings
    warnings.filterwarnings("ignore")  # torch.onnx's tracer warnings
    torch.set_num_threads(args.threads)
    block = CONFIG["block_size"]
    if args.random:
        name = "chargpt_random"
        model = random_model(args.seed)
        vocab = None
        info = dict(weights="random", seed=args.seed)
        g = torch.Generator().manual_seed(args.seed + 1)
        tokens = torch.randint(0, 63, (1, block), generator=g)
        short = torch.randint(0, 63, (1, 13), generator=g)
    else:
        name = "chargpt"
        model, ckpt = load_checkpoint(args.out)
        vocab = ckpt["vocab"]
        info = {k: v for k, v in ckpt["info"].items() if k != "history"}
        info["weights"] = "trained"
        text = "And God said, Let there be light: and there was light.\n"
        tokens = torch.from_numpy(encode(text[:block], vocab)).unsqueeze(0)
        short = torch.from_numpy(encode("In the beginn", vocab)).unsqueeze(0)
    os.makedirs(args.out, exist_ok=True)
    with torch.no_grad():
        logits = model(tokens)
        logits_short = model(short)
        export_onnx(model, os.path.join(args.out, name + ".onnx"), tokens,
                    True, args.opset)
        export_onnx(model, os.path.join(args.out, name + ".t32.onnx"), tokens,
                    False, args.opset)
    arrays = {"tokens": tokens.numpy().astype(np.int64),
              "logits": logits.numpy().astype(np.float32),
              "tokens_t13": short.numpy().astype(np.int64),
              "logits_t13": logits_short.numpy().astype(np.float32)}
    for key, arr in arrays.items():
        np.save(os.path.join(args.out, "%s.%s.npy" % (name, key)), arr)
    n_params = count_params(model)
    meta = dict(name=name, config=CONFIG, parameters=n_params,
                fp32_weight_bytes=4 * n_params, tied_head=True,
                opset=args.opset, input="tokens int64 [1, T], T <= %d" % block,
                output="logits float32 [1, T, %d]" % CONFIG["vocab_size"],
                vocab=vocab, info=info)
    with open(os.path.join(args.out, name + ".json"), "w") as f:
        json.dump(meta, f, indent=1)
    for suffix in (".onnx", ".t32.onnx"):
        print("wrote %s" % os.path.join(args.out, name + suffix))
    print("wrote %s.{tokens,logits,tokens_t13,logits_t13}.npy and %s.json "
          "(%d parameters)" % (os.path.join(args.out, name), name, n_params))
    if args.with_past:
        if vocab is None:
            g = torch.Generator().manual_seed(args.seed + 2)
            prompt = torch.randint(0, 63, (RANDOM_PROMPT,), generator=g)
            prompt = [int(i) for i in prompt]
        else:
            prompt = [int(i) for i in encode(TRAINED_PROMPT, vocab)]
        try:
            export_with_past(model, os.path.join(args.out, name + "_past"),
                             prompt, block - len(prompt), args.opset)
        except ValueError as e:
            print("chargpt: %s" % e, file=sys.stderr)
            return 1
    return 0


TRAINED_PROMPT = "And God said"
RANDOM_PROMPT = 8  # ids


def export_with_past(model, base, prompt, n_gen, opset, log=print):
    """Writes base.onnx (CharGPTWithPast(model), checked by
    decoder_past.export_checked), base.prompt_ids.npy and
    base.greedy_ids.npy; returns (greedy ids, margins)."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    import decoder_past
    cfg = model_config(model)
    ids, margins = decoder_past.export_checked(
        model, CharGPTWithPast(model).eval(), base + ".onnx",
        cfg["n_layer"], cfg["n_head"], cfg["n_embd"] // cfg["n_head"],
        cfg["vocab_size"], prompt, n_gen, opset, log)
    np.save(base + ".prompt_ids.npy", np.array([prompt], np.int64))
    np.save(base + ".greedy_ids.npy", np.array([ids], np.int64))
    log("wrote %s.onnx, %s.{prompt_ids,greedy_ids}.npy (prompt %d, %d "
        "greedy ids)" % (base, base, len(prompt), n_gen))
    return ids, margins


def model_config(model):
    """CharGPT's constructor arguments, read back from its parameters."""
    return dict(vocab_size=model.wte.weight.shape[0],
                block_size=model.block_size, n_embd=model.wte.weight.shape[1],
                n_head=model.blocks[0].attn.n_head, n_layer=len(model.blocks))


# --------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `chargpt.py COMMAND --help` for a command's options.")
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--out", default=DEFAULT_OUT,
                       help="output directory (default: %(default)s)")
        p.add_argument("--threads", type=int, default=2,
                       help="torch CPU threads (default: %(default)s)")
        p.add_argument("--seed", type=int, default=1337)
        return p

    p = common(sub.add_parser("train", help="train on the KJV text"))
    p.add_argument("--minutes", type=float, default=4.0,
                   help="wall-time budget; 0 for none (default: %(default)s)")
    p.add_argument("--steps", type=int, default=0,
                   help="optimizer steps; 0 for no limit (default)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--log-every", type=int, default=50)
    p.set_defaults(func=cmd_train)

    p = common(sub.add_parser("export", help="write ONNX models + references"))
    p.add_argument("--random", action="store_true",
                   help="untrained seeded weights (no checkpoint, no text)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--with-past", action="store_true",
                   help="also NAME_past.onnx (past key/values) and its "
                   "greedy reference")
    p.set_defaults(func=cmd_export)

    p = common(sub.add_parser("generate", help="sample text"))
    p.add_argument("--prompt", default="And God said")
    p.add_argument("--chars", type=int, default=300)
    p.add_argument("--temperature", type=float, default=0.8,
                   help="0 for greedy (default: %(default)s)")
    p.set_defaults(func=cmd_generate)

    p = common(sub.add_parser("eval", help="losses of the checkpoint"))
    p.set_defaults(func=cmd_eval)

    args = ap.parse_args(argv)
    here = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
    if os.path.commonpath([os.path.realpath(args.out), here]) == here:
        ap.error("--out must not be inside the source directory %s" %
                 os.path.dirname(os.path.abspath(__file__)))
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
