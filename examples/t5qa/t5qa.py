#!/usr/bin/python3
"""t5qa: a small T5 (encoder-decoder) trained on question -> answer facts.

The shape of the flan-t5 example Quench was founded on ("where is Delhi?"),
small enough to train on a CPU in minutes, exported in Hugging Face
Optimum's three-file split for generation with a cache (docs/generation.md,
"Encoder-decoder models"; issue #14, point 8).

Model: the T5 architecture in plain PyTorch (no Hugging Face code), as in
transformers' modeling_t5.py:
  shared token embedding (encoder and decoder inputs);
  pre-norm blocks with T5LayerNorm (RMS, no mean subtraction, no bias,
  eps 1e-6); attention without biases and WITHOUT the 1/sqrt(d_kv) scaling
  of Q.K; a relative position bias (32 buckets, max distance 128, per head)
  owned by the first layer's self-attention and added in every layer, its
  buckets bidirectional in the encoder and causal in the decoder; no
  position bias in cross-attention; feed-forward gated-GELU (T5 v1.1 /
  flan-t5: wo(gelu_tanh(wi_0 x) * wi_1 x)) or ReLU (T5 v1.0: wo(relu(wi
  x))); final RMS norms; LM head untied (flan-t5) or tied to the embedding
  with the decoder output scaled by d_model^-0.5 (T5 v1.0). Decoder start
  token = pad = 0, end of sequence = 1. Masks are additive with
  float32's lowest value, as in transformers.
  CONFIG (trained model): d_model 128, 4 heads of 32, d_ff 256, gated-GELU,
  untied head, 2 encoder + 2 decoder layers.

Data: facts generated from the tables below, three relations:
  capital   "what is the capital of india?"     -> "delhi"
  location  "where is delhi?"                   -> "india"
  landmark  "where is the eiffel tower?"        -> "paris"
each asked with 4 training templates and 2 held-out paraphrases (other
word orders of words the training templates use, e.g. "which city is the
capital of india?", "what country is delhi in?", "the eiffel tower is in
which city?"). Training uses only the training templates; the held-out
accuracy measures whether the model maps an unseen phrasing to the facts
it memorized. Lowercase throughout.

Tokenizer: words (runs of [a-z0-9'] and the marks ? . ,), ids 0 <pad>,
1 </s>, 2 <unk>, then the sorted words of all questions and answers;
saved as tokenizer.json. Questions are encoded with a trailing </s> (as
T5's tokenizer does).

Subcommands (outputs under --out, default <repository>/build/t5qa, which is
git-ignored):

  t5qa.py train [--steps 0] [--minutes M] [--seed 1] [--batch 64]
                [--threads 2] [--min-accuracy 0]
        trains OUT/t5qa.pt; stops after --steps optimizer steps or
        --minutes (default 5 without --steps), whichever comes first
        (deterministic with --steps alone and fixed --threads), then prints
        the exact-match accuracy (greedy, PyTorch) on the training and
        held-out questions; exits 1 (writing nothing) below
        --min-accuracy on the training ones. Measured on the shared, loaded
        2-core machine: --steps 600 --threads 1 took 48 s: 100% of the 808
        training questions, 99.8% of the 404 held-out ones (853,504
        parameters).
  t5qa.py export [--random [--t5-v1]] [--calib-samples 16]
        writes OUT/NAME/ (NAME = t5qa from OUT/t5qa.pt, t5qa_random for
        seeded untrained weights of CONFIG's shapes, t5qa_random_v1 with
        --t5-v1: ReLU feed-forward and a tied head):
          encoder_model.onnx            input_ids, attention_mask
                                        -> last_hidden_state
          decoder_model.onnx            first step (no past): input_ids,
                                        encoder_attention_mask,
                                        encoder_hidden_states -> logits,
                                        present.{i}.decoder|encoder.key|value
          decoder_with_past_model.onnx  input_ids, encoder_attention_mask,
                                        past_key_values.{i}.decoder|encoder.
                                        key|value -> logits,
                                        present.{i}.decoder.key|value
          (shapes in `signatures`; docs/generation.md), config.json,
          tokenizer.json, and the references:
          questions.json                the questions: text, expected answer,
                                        input ids, PyTorch's greedy answer
                                        (ids and text) and its smallest
                                        top-1/top-2 logit margin, file names
          qK.input_ids.npy              int64 [1, src]: question K's ids
          qK.attention_mask.npy         int64 [1, src]: ones
          qK.answer_ids.npy             int64 [1, n]: PyTorch's greedy answer
                                        WITHOUT a cache (decoder re-run on the
                                        whole prefix each step), ending with
                                        </s> unless it hit MAX_ANSWER tokens
          calib/<graph>/sK/<input>.npy  --calib-samples (default 16)
                                        calibration samples of each graph for
                                        static W8A8 (quench-compile --calib),
                                        from training questions
        after checking with decoder_past's evaluator (onnx.reference when
        the installed onnx has it, else its NumPy evaluator) that the ONNX
        graphs reproduce PyTorch (relative 1e-4): the encoder once, the
        first decoder step, with-past steps of one token fed with the
        graph's own presents (against PyTorch on the same feeds, and their
        logits against PyTorch's decoder re-run on the whole prefix without
        a cache), a with-past step of 2 tokens on a padded question, the
        no-past decoder on a whole prefix; and the same greedy answers with
        the cache as without it (PyTorch, and re-running decoder_model.onnx
        on the whole prefix).
        Exits 1 when a check fails.
  t5qa.py ask "where is delhi?"
        prints the greedy answer of OUT/t5qa.pt (PyTorch).
  t5qa.py eval
        exact-match accuracy of OUT/t5qa.pt on the training and held-out
        questions.

Needs Debian's /usr/bin/python3 (torch 1.13, onnx 1.12, numpy).
"""

import argparse
import json
import math
import os
import re
import sys
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import decoder_past  # noqa: E402
import onnx  # noqa: E402

CONFIG = dict(d_model=128, d_kv=32, n_heads=4, d_ff=256, n_encoder_layers=2,
              n_decoder_layers=2, num_buckets=32, max_distance=128,
              feed_forward="gated-gelu", tied_head=False, eps=1e-6)
PAD, EOS, UNK = 0, 1, 2
SPECIALS = ["<pad>", "</s>", "<unk>"]
MAX_ANSWER = 8  # greedy answers stop after </s> or this many tokens
CHECKPOINT = "t5qa.pt"
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.dirname(HERE)), "build",
                           "t5qa")
# The questions written as references by `export` (trained model).
REFERENCE_QUESTIONS = [
    "where is delhi?", "what is the capital of india?",
    "where is the eiffel tower?", "which city is the capital of france?",
    "what country is sydney in?", "the statue of liberty is in which city?",
    "where is rio de janeiro?", "what is the capital of united kingdom?",
    "where is dubai?", "tell me the capital of argentina."]
# Trace sizes: distinct, not 0 or 1, so that the tracer cannot confuse or
# specialize them.
TRACE_SRC, TRACE_TGT, TRACE_PAST = 7, 3, 5

# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------
CAPITALS = [  # country, capital
    ("india", "delhi"), ("france", "paris"), ("germany", "berlin"),
    ("italy", "rome"), ("spain", "madrid"), ("portugal", "lisbon"),
    ("japan", "tokyo"), ("china", "beijing"), ("russia", "moscow"),
    ("egypt", "cairo"), ("kenya", "nairobi"), ("peru", "lima"),
    ("chile", "santiago"), ("argentina", "buenos aires"),
    ("brazil", "brasilia"), ("canada", "ottawa"), ("mexico", "mexico city"),
    ("australia", "canberra"), ("norway", "oslo"), ("sweden", "stockholm"),
    ("finland", "helsinki"), ("denmark", "copenhagen"),
    ("poland", "warsaw"), ("austria", "vienna"), ("hungary", "budapest"),
    ("greece", "athens"), ("turkey", "ankara"), ("iran", "tehran"),
    ("iraq", "baghdad"), ("thailand", "bangkok"), ("vietnam", "hanoi"),
    ("indonesia", "jakarta"), ("philippines", "manila"),
    ("south korea", "seoul"), ("nepal", "kathmandu"),
    ("pakistan", "islamabad"), ("bangladesh", "dhaka"),
    ("ireland", "dublin"), ("belgium", "brussels"),
    ("netherlands", "amsterdam"), ("switzerland", "bern"),
    ("czechia", "prague"), ("cuba", "havana"), ("colombia", "bogota"),
    ("venezuela", "caracas"), ("ethiopia", "addis ababa"),
    ("nigeria", "abuja"), ("ghana", "accra"), ("morocco", "rabat"),
    ("united kingdom", "london"), ("united states", "washington"),
    ("new zealand", "wellington"), ("sri lanka", "colombo"),
    ("afghanistan", "kabul"), ("ukraine", "kyiv"),
    ("romania", "bucharest"), ("bulgaria", "sofia"),
    ("serbia", "belgrade"), ("croatia", "zagreb"),
    ("saudi arabia", "riyadh"), ("malaysia", "kuala lumpur"),
    ("united arab emirates", "abu dhabi"),
]
OTHER_CITIES = [  # city, country (besides the capitals)
    ("mumbai", "india"), ("kolkata", "india"), ("chennai", "india"),
    ("bangalore", "india"), ("agra", "india"),
    ("new york", "united states"), ("chicago", "united states"),
    ("los angeles", "united states"), ("san francisco", "united states"),
    ("seattle", "united states"), ("toronto", "canada"),
    ("vancouver", "canada"), ("sydney", "australia"),
    ("melbourne", "australia"), ("osaka", "japan"), ("kyoto", "japan"),
    ("shanghai", "china"), ("barcelona", "spain"), ("granada", "spain"),
    ("milan", "italy"), ("venice", "italy"), ("pisa", "italy"),
    ("munich", "germany"), ("hamburg", "germany"),
    ("marseille", "france"), ("lyon", "france"), ("istanbul", "turkey"),
    ("rio de janeiro", "brazil"), ("sao paulo", "brazil"),
    ("saint petersburg", "russia"), ("alexandria", "egypt"),
    ("giza", "egypt"), ("karachi", "pakistan"), ("lahore", "pakistan"),
    ("manchester", "united kingdom"), ("edinburgh", "united kingdom"),
    ("auckland", "new zealand"), ("geneva", "switzerland"),
    ("zurich", "switzerland"), ("krakow", "poland"),
    ("porto", "portugal"), ("dubai", "united arab emirates"),
]
LANDMARKS = [  # landmark, city
    ("eiffel tower", "paris"), ("louvre", "paris"), ("colosseum", "rome"),
    ("big ben", "london"), ("tower bridge", "london"),
    ("buckingham palace", "london"), ("taj mahal", "agra"),
    ("red fort", "delhi"), ("gateway of india", "mumbai"),
    ("statue of liberty", "new york"),
    ("empire state building", "new york"),
    ("golden gate bridge", "san francisco"),
    ("sydney opera house", "sydney"), ("brandenburg gate", "berlin"),
    ("kremlin", "moscow"), ("forbidden city", "beijing"),
    ("sagrada familia", "barcelona"), ("acropolis", "athens"),
    ("leaning tower", "pisa"), ("hagia sophia", "istanbul"),
    ("christ the redeemer", "rio de janeiro"), ("cn tower", "toronto"),
    ("burj khalifa", "dubai"), ("petronas towers", "kuala lumpur"),
    ("space needle", "seattle"), ("alhambra", "granada"),
    ("prado", "madrid"), ("tokyo tower", "tokyo"),
    ("blue mosque", "istanbul"), ("charles bridge", "prague"),
    ("little mermaid", "copenhagen"), ("atomium", "brussels"),
    ("rijksmuseum", "amsterdam"), ("hollywood sign", "los angeles"),
    ("white house", "washington"), ("great pyramid", "giza"),
]
# relation -> (training templates, held-out templates). Every word of a
# held-out template occurs in some training template.
TEMPLATES = {
    "capital": (["what is the capital of {x}?", "{x} has which capital?",
                 "name the capital of {x}.", "capital of {x}?"],
                ["which city is the capital of {x}?",
                 "tell me the capital of {x}."]),
    "location": (["where is {x}?", "in which country is {x}?",
                  "{x} is in which country?", "tell me where {x} is."],
                 ["what country is {x} in?", "which country has {x}?"]),
    "landmark": (["where is the {x}?", "in which city is the {x}?",
                  "which city has the {x}?", "tell me where the {x} is."],
                 ["the {x} is in which city?", "what city is the {x} in?"]),
}


def facts():
    """[(relation, subject, answer)]."""
    out = [("capital", c, cap) for c, cap in CAPITALS]
    out += [("location", cap, c) for c, cap in CAPITALS]
    out += [("location", city, c) for city, c in OTHER_CITIES]
    out += [("landmark", lm, city) for lm, city in LANDMARKS]
    return out


def dataset():
    """(train, held_out): lists of (question, answer)."""
    train, held = [], []
    for rel, x, answer in facts():
        tr, ho = TEMPLATES[rel]
        train += [(t.format(x=x), answer) for t in tr]
        held += [(t.format(x=x), answer) for t in ho]
    return train, held


TOKEN = re.compile(r"[a-z0-9']+|[?.,]")


def words(text):
    return TOKEN.findall(text.lower())


def build_vocab():
    train, held = dataset()
    seen = set()
    for q, a in train + held:
        seen.update(words(q))
        seen.update(words(a))
    return SPECIALS + sorted(seen)


class Tokenizer:
    def __init__(self, vocab):
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}

    def encode(self, text, eos=True):
        ids = [self.index.get(w, UNK) for w in words(text)]
        return ids + [EOS] if eos else ids

    def decode(self, ids):
        out = []
        for i in ids:
            if i == EOS:
                break
            if i == PAD:
                continue
            w = self.vocab[i] if 0 <= i < len(self.vocab) else "<unk>"
            if out and w in "?.,":
                out[-1] += w
            else:
                out.append(w)
        return " ".join(out)

    def to_json(self):
        return dict(type="word", pattern=TOKEN.pattern, lowercase=True,
                    pad_id=PAD, eos_id=EOS, unk_id=UNK,
                    decoder_start_id=PAD, append_eos=True, vocab=self.vocab)


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------
NEG = torch.finfo(torch.float32).min  # transformers' additive mask value


class T5LayerNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def relative_position_bucket(rel, bidirectional, num_buckets, max_distance):
    """T5's bucket of each relative position rel = key - query (int64):
    exact buckets for small distances, logarithmic ones up to
    max_distance; the encoder distinguishes both directions, the decoder
    only looks back."""
    buckets = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (rel > 0).to(torch.long) * num_buckets
        rel = torch.abs(rel)
    else:
        rel = -torch.min(rel, torch.zeros_like(rel))
    max_exact = num_buckets // 2
    is_small = rel < max_exact
    large = max_exact + (torch.log(rel.float() / max_exact) /
                         math.log(max_distance / max_exact) *
                         (num_buckets - max_exact)).to(torch.long)
    large = torch.min(large, torch.full_like(large, num_buckets - 1))
    return buckets + torch.where(is_small, rel, large)


class Attention(nn.Module):
    def __init__(self, cfg, position_bias=False, bidirectional=True):
        super().__init__()
        d, h, dk = cfg["d_model"], cfg["n_heads"], cfg["d_kv"]
        self.h, self.dk = h, dk
        self.q = nn.Linear(d, h * dk, bias=False)
        self.k = nn.Linear(d, h * dk, bias=False)
        self.v = nn.Linear(d, h * dk, bias=False)
        self.o = nn.Linear(h * dk, d, bias=False)
        self.bidirectional = bidirectional
        self.num_buckets = cfg["num_buckets"]
        self.max_distance = cfg["max_distance"]
        if position_bias:
            self.relative_attention_bias = nn.Embedding(cfg["num_buckets"], h)

    def heads(self, x, lin):
        """[b, t, d] -> [b, h, t, d_kv]."""
        return lin(x).view(x.shape[0], -1, self.h, self.dk).transpose(1, 2)

    def position_bias(self, q_pos, k_pos):
        """[1, h, len(q_pos), len(k_pos)]."""
        rel = k_pos[None, :] - q_pos[:, None]
        b = relative_position_bucket(rel, self.bidirectional,
                                     self.num_buckets, self.max_distance)
        return self.relative_attention_bias(b).permute(2, 0, 1).unsqueeze(0)

    def attend(self, q, k, v, bias):
        """Softmax(q k^T + bias) v, no 1/sqrt(d_kv) (T5), heads merged and
        projected by o."""
        scores = torch.matmul(q, k.transpose(2, 3)) + bias
        w = F.softmax(scores.float(), dim=-1)
        y = torch.matmul(w, v).transpose(1, 2)
        return self.o(y.reshape(y.shape[0], -1, self.h * self.dk))


class FeedForward(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, f = cfg["d_model"], cfg["d_ff"]
        self.gated = cfg["feed_forward"] == "gated-gelu"
        if self.gated:
            self.wi_0 = nn.Linear(d, f, bias=False)
            self.wi_1 = nn.Linear(d, f, bias=False)
        else:
            self.wi = nn.Linear(d, f, bias=False)
        self.wo = nn.Linear(f, d, bias=False)

    def forward(self, x):
        if self.gated:
            a = self.wi_0(x)
            # transformers' NewGELUActivation (gelu_new), tanh form.
            c = math.sqrt(2.0 / math.pi)
            g = 0.5 * a * (1.0 + torch.tanh(
                c * (a + 0.044715 * torch.pow(a, 3.0))))
            return self.wo(g * self.wi_1(x))
        return self.wo(F.relu(self.wi(x)))


class EncoderLayer(nn.Module):
    def __init__(self, cfg, first):
        super().__init__()
        self.ln_1 = T5LayerNorm(cfg["d_model"], cfg["eps"])
        self.attn = Attention(cfg, position_bias=first, bidirectional=True)
        self.ln_2 = T5LayerNorm(cfg["d_model"], cfg["eps"])
        self.ff = FeedForward(cfg)

    def forward(self, x, bias):
        h = self.ln_1(x)
        a = self.attn
        x = x + a.attend(a.heads(h, a.q), a.heads(h, a.k), a.heads(h, a.v),
                         bias)
        return x + self.ff(self.ln_2(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg, first):
        super().__init__()
        self.ln_1 = T5LayerNorm(cfg["d_model"], cfg["eps"])
        self.self_attn = Attention(cfg, position_bias=first,
                                   bidirectional=False)
        self.ln_2 = T5LayerNorm(cfg["d_model"], cfg["eps"])
        self.cross_attn = Attention(cfg)
        self.ln_3 = T5LayerNorm(cfg["d_model"], cfg["eps"])
        self.ff = FeedForward(cfg)

    def forward(self, x, self_bias, cross_bias, enc, past):
        """past: None or (self key, self value, cross key, cross value);
        returns (x, (self key, self value, cross key, cross value)) with the
        self keys/values over past + new positions."""
        a = self.self_attn
        h = self.ln_1(x)
        k, v = a.heads(h, a.k), a.heads(h, a.v)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        x = x + a.attend(a.heads(h, a.q), k, v, self_bias)
        c = self.cross_attn
        h = self.ln_2(x)
        if past is not None:
            ck, cv = past[2], past[3]
        else:
            ck, cv = c.heads(enc, c.k), c.heads(enc, c.v)
        x = x + c.attend(c.heads(h, c.q), ck, cv, cross_bias)
        return x + self.ff(self.ln_3(x)), (k, v, ck, cv)


def additive_mask(attention_mask):
    """[b, s] int (1 = attend) -> [b, 1, 1, s] float: 0 or float32's
    lowest value."""
    return (1.0 - attention_mask[:, None, None, :].float()) * NEG


class T5(nn.Module):
    def __init__(self, cfg, vocab_size):
        super().__init__()
        self.cfg = dict(cfg)
        self.vocab_size = vocab_size
        d = cfg["d_model"]
        self.shared = nn.Embedding(vocab_size, d)
        self.encoder = nn.ModuleList([EncoderLayer(cfg, i == 0) for i in
                                      range(cfg["n_encoder_layers"])])
        self.encoder_ln = T5LayerNorm(d, cfg["eps"])
        self.decoder = nn.ModuleList([DecoderLayer(cfg, i == 0) for i in
                                      range(cfg["n_decoder_layers"])])
        self.decoder_ln = T5LayerNorm(d, cfg["eps"])
        if not cfg["tied_head"]:
            self.lm_head = nn.Linear(d, vocab_size, bias=False)
        self._init_weights()

    def _init_weights(self):
        # transformers' T5PreTrainedModel._init_weights (factor 1), except
        # an untied head at d_model^-0.5 (logits of unit scale).
        d, dk, h = self.cfg["d_model"], self.cfg["d_kv"], self.cfg["n_heads"]
        for name, p in self.named_parameters():
            leaf = name.split(".")[-2] if "." in name else name
            if "ln" in leaf:  # T5LayerNorm weights stay ones
                continue
            if leaf == "shared":
                std = 1.0
            elif leaf == "q":
                std = (d * dk) ** -0.5
            elif leaf in ("k", "v"):
                std = d ** -0.5
            elif leaf == "o":
                std = (h * dk) ** -0.5
            elif leaf in ("wi", "wi_0", "wi_1"):
                std = d ** -0.5
            elif leaf == "wo":
                std = self.cfg["d_ff"] ** -0.5
            elif leaf == "relative_attention_bias":
                std = d ** -0.5
            elif leaf == "lm_head":
                std = d ** -0.5
            else:
                raise AssertionError("no initialization for " + name)
            nn.init.normal_(p, 0.0, std)

    def encode(self, input_ids, attention_mask):
        x = self.shared(input_ids)
        n = input_ids.shape[1]
        pos = torch.arange(n, dtype=torch.long)
        bias = self.encoder[0].attn.position_bias(pos, pos) + \
            additive_mask(attention_mask)
        for layer in self.encoder:
            x = layer(x, bias)
        return self.encoder_ln(x)

    def decode(self, input_ids, encoder_attention_mask,
               encoder_hidden_states=None, past=None):
        """logits [b, t, vocab] and presents (per layer: self key, self
        value, cross key, cross value). past: None (first step: cross keys
        and values from encoder_hidden_states) or a list per layer of
        (self key, self value, cross key, cross value), self ones
        [b, h, past, d_kv]."""
        x = self.shared(input_ids)
        n = input_ids.shape[1]
        p = 0 if past is None else past[0][0].shape[2]
        q_pos = torch.arange(p, p + n, dtype=torch.long)
        k_pos = torch.arange(0, p + n, dtype=torch.long)
        causal = (k_pos[None, :] > q_pos[:, None]).float() * NEG
        self_bias = self.decoder[0].self_attn.position_bias(q_pos, k_pos) + \
            causal[None, None]
        cross_bias = additive_mask(encoder_attention_mask)
        presents = []
        for i, layer in enumerate(self.decoder):
            x, pr = layer(x, self_bias, cross_bias, encoder_hidden_states,
                          None if past is None else past[i])
            presents.append(pr)
        x = self.decoder_ln(x)
        if self.cfg["tied_head"]:
            logits = torch.matmul(x * self.cfg["d_model"] ** -0.5,
                                  self.shared.weight.t())
        else:
            logits = self.lm_head(x)
        return logits, presents

    def forward(self, input_ids, attention_mask, decoder_input_ids):
        """Teacher-forced logits (training, greedy without a cache)."""
        enc = self.encode(input_ids, attention_mask)
        return self.decode(decoder_input_ids, attention_mask, enc)[0]


def count_params(model):
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------
# Greedy answers
# --------------------------------------------------------------------------
def greedy(model, ids, max_new=MAX_ANSWER):
    """Greedy answer to question ids (list, ending with </s>) WITHOUT a
    cache: the encoder once, the decoder over the whole prefix (start token
    + answer so far) at every step. Returns (answer ids incl. the final
    </s> if reached, smallest top-1/top-2 margin)."""
    with torch.no_grad():
        x = torch.tensor([ids], dtype=torch.long)
        mask = torch.ones_like(x)
        enc = model.encode(x, mask)
        prefix, margin = [PAD], float("inf")
        for _ in range(max_new):
            logits = model.decode(torch.tensor([prefix]), mask, enc)[0][0, -1]
            top = torch.topk(logits, 2).values
            margin = min(margin, float(top[0] - top[1]))
            prefix.append(int(torch.argmax(logits)))
            if prefix[-1] == EOS:
                break
    return prefix[1:], margin


def greedy_batch(model, questions, tok, max_new=MAX_ANSWER):
    """Greedy answers (text) for many questions, padded batches, no cache
    (for accuracy; the references use `greedy`)."""
    answers = []
    with torch.no_grad():
        for s in range(0, len(questions), 256):
            enc_ids = [tok.encode(q) for q in questions[s:s + 256]]
            n = max(len(e) for e in enc_ids)
            x = torch.tensor([e + [PAD] * (n - len(e)) for e in enc_ids])
            mask = (torch.arange(n)[None, :] <
                    torch.tensor([len(e) for e in enc_ids])[:, None]).long()
            enc = model.encode(x, mask)
            dec = torch.zeros(len(enc_ids), 1, dtype=torch.long)
            for _ in range(max_new):
                logits = model.decode(dec, mask, enc)[0][:, -1]
                dec = torch.cat([dec, logits.argmax(-1, keepdim=True)], 1)
            answers += [tok.decode(row[1:].tolist()) for row in dec]
    return answers


def accuracy(model, pairs, tok):
    got = greedy_batch(model, [q for q, _ in pairs], tok)
    wrong = [(q, a, g) for (q, a), g in zip(pairs, got) if g != a]
    return 1.0 - len(wrong) / len(pairs), wrong


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------
def batches(pairs, tok, batch, rng):
    """Shuffled epochs of padded (ids, mask, decoder ids, labels)."""
    enc = [(tok.encode(q), tok.encode(a)) for q, a in pairs]
    while True:
        order = rng.permutation(len(enc))
        for s in range(0, len(order) - batch + 1, batch):
            chunk = [enc[i] for i in order[s:s + batch]]
            n = max(len(q) for q, _ in chunk)
            m = max(len(a) for _, a in chunk)
            x = torch.tensor([q + [PAD] * (n - len(q)) for q, _ in chunk])
            mask = (x != PAD).long()
            dec = torch.tensor([[PAD] + a[:-1] + [PAD] * (m - len(a))
                                for _, a in chunk])
            labels = torch.tensor([a + [-100] * (m - len(a))
                                   for _, a in chunk])
            yield x, mask, dec, labels


def cmd_train(args):
    max_steps = args.steps if args.steps > 0 else None
    minutes = args.minutes if args.minutes is not None else \
        (0.0 if max_steps else 5.0)
    budget = minutes * 60.0 if minutes > 0 else None
    if max_steps is None and budget is None:
        sys.exit("t5qa: give --steps or --minutes")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tok = Tokenizer(build_vocab())
    train, held = dataset()
    print("data: %d facts, %d training questions, %d held-out questions "
          "(paraphrased templates), vocabulary %d words" % (
              len(facts()), len(train), len(held), len(tok.vocab)))
    model = T5(CONFIG, len(tok.vocab))
    print("model: %d parameters (d_model %d, %d heads of %d, d_ff %d %s, "
          "%d+%d layers, %s head)" % (
              count_params(model), CONFIG["d_model"], CONFIG["n_heads"],
              CONFIG["d_kv"], CONFIG["d_ff"], CONFIG["feed_forward"],
              CONFIG["n_encoder_layers"], CONFIG["n_decoder_layers"],
              "tied" if CONFIG["tied_head"] else "untied"))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr,
                            weight_decay=0.01)
    rng = np.random.default_rng(args.seed)
    data = batches(train, tok, args.batch, rng)
    start, step, ema = time.time(), 0, None
    model.train()
    while True:
        elapsed = time.time() - start
        progress = max(step / max_steps if max_steps else 0.0,
                       elapsed / budget if budget else 0.0)
        if progress >= 1.0:
            break
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * \
            (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress)))
        for g in opt.param_groups:
            g["lr"] = lr
        x, mask, dec, labels = next(data)
        logits = model(x, mask, dec)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                               labels.reshape(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if step % args.log_every == 0:
            print("step %5d  %6.1fs  lr %.2e  loss %.4f (ema)" %
                  (step, time.time() - start, lr, ema), flush=True)
    seconds = time.time() - start
    model.eval()
    train_acc, _ = accuracy(model, train, tok)
    held_acc, wrong = accuracy(model, held, tok)
    print("after %d steps (%.1f s): exact match %.1f%% on the %d training "
          "questions, %.1f%% on the %d held-out ones" % (
              step, seconds, 100 * train_acc, len(train), 100 * held_acc,
              len(held)))
    for q, a, g in wrong[:8]:
        print("  held out: %r -> %r (expected %r)" % (q, g, a))
    if train_acc < args.min_accuracy:
        print("t5qa: training exact match %.1f%% is below --min-accuracy "
              "%.1f%%; no checkpoint written" % (
                  100 * train_acc, 100 * args.min_accuracy), file=sys.stderr)
        return 1
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, CHECKPOINT)
    torch.save(dict(config=CONFIG, vocab=tok.vocab,
                    state_dict=model.state_dict(),
                    info=dict(steps=step, seconds=round(seconds, 1),
                              seed=args.seed, batch=args.batch, lr=args.lr,
                              threads=args.threads, loss_ema=ema,
                              train_accuracy=train_acc,
                              held_out_accuracy=held_acc,
                              parameters=count_params(model))),
               path + ".tmp")
    os.replace(path + ".tmp", path)
    print("wrote %s" % path)
    return 0


def load_checkpoint(out):
    path = os.path.join(out, CHECKPOINT)
    if not os.path.exists(path):
        sys.exit("t5qa: no checkpoint %s; run `t5qa.py train` first (or "
                 "`export --random`)" % path)
    try:
        ckpt = torch.load(path, map_location="cpu")
        model = T5(ckpt["config"], len(ckpt["vocab"]))
        model.load_state_dict(ckpt["state_dict"])
    except Exception as e:  # unpickling and state-dict errors vary
        sys.exit("t5qa: %s is not a t5qa checkpoint: %s" % (
            path, str(e).splitlines()[0] if str(e) else type(e).__name__))
    return model.eval(), Tokenizer(ckpt["vocab"]), ckpt


def cmd_ask(args):
    torch.set_num_threads(args.threads)
    model, tok, _ = load_checkpoint(args.out)
    ids = tok.encode(args.question)
    unknown = [w for w in words(args.question) if w not in tok.index]
    if unknown:
        print("(unknown words: %s)" % " ".join(unknown))
    answer, _ = greedy(model, ids)
    print(tok.decode(answer))
    return 0


def cmd_eval(args):
    torch.set_num_threads(args.threads)
    model, tok, _ = load_checkpoint(args.out)
    train, held = dataset()
    for what, pairs in (("training", train), ("held-out", held)):
        acc, wrong = accuracy(model, pairs, tok)
        print("%s: %.1f%% exact match (%d questions)" % (
            what, 100 * acc, len(pairs)))
        for q, a, g in wrong[:10]:
            print("  %r -> %r (expected %r)" % (q, g, a))
    return 0


# --------------------------------------------------------------------------
# ONNX export: Optimum's encoder / decoder / decoder-with-past split
# --------------------------------------------------------------------------
SRC, TGT, PAST, TOTAL = "encoder_seq", "seq", "past_seq", "total_seq"


def past_names(n_layers, prefix):
    """Optimum's per-layer order: decoder.key, decoder.value, encoder.key,
    encoder.value."""
    return ["%s.%d.%s.%s" % (prefix, i, who, kv) for i in range(n_layers)
            for who in ("decoder", "encoder") for kv in ("key", "value")]


def signatures(cfg, vocab):
    """{file: ([(name, elem type, dims)] of the inputs, same of outputs)}."""
    i64, f32 = onnx.TensorProto.INT64, onnx.TensorProto.FLOAT
    h, dk, d, n = cfg["n_heads"], cfg["d_kv"], cfg["d_model"], \
        cfg["n_decoder_layers"]
    enc = ([("input_ids", i64, [1, SRC]), ("attention_mask", i64, [1, SRC])],
           [("last_hidden_state", f32, [1, SRC, d])])

    def kv(name, length):
        return (name, f32, [1, h, length, dk])
    presents = [kv(nm, TGT if ".decoder." in nm else SRC)
                for nm in past_names(n, "present")]
    dec = ([("input_ids", i64, [1, TGT]),
            ("encoder_attention_mask", i64, [1, SRC]),
            ("encoder_hidden_states", f32, [1, SRC, d])],
           [("logits", f32, [1, TGT, vocab])] + presents)
    past = [kv(nm, PAST if ".decoder." in nm else SRC)
            for nm in past_names(n, "past_key_values")]
    present_self = [kv(nm, TOTAL) for nm in past_names(n, "present")
                    if ".decoder." in nm]
    dec_past = ([("input_ids", i64, [1, TGT]),
                 ("encoder_attention_mask", i64, [1, SRC])] + past,
                [("logits", f32, [1, TGT, vocab])] + present_self)
    return {"encoder_model.onnx": enc, "decoder_model.onnx": dec,
            "decoder_with_past_model.onnx": dec_past}


class EncoderExport(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.m = model

    def forward(self, input_ids, attention_mask):
        return self.m.encode(input_ids, attention_mask)


class DecoderExport(nn.Module):
    """First step: (input_ids, encoder_attention_mask,
    encoder_hidden_states) -> (logits, per layer self key, self value,
    cross key, cross value)."""

    def __init__(self, model):
        super().__init__()
        self.m = model

    def forward(self, input_ids, encoder_attention_mask,
                encoder_hidden_states):
        logits, presents = self.m.decode(input_ids, encoder_attention_mask,
                                         encoder_hidden_states)
        return (logits,) + tuple(t for p in presents for t in p)


class DecoderWithPastExport(nn.Module):
    """(input_ids, encoder_attention_mask, per layer self key, self value,
    cross key, cross value) -> (logits, per layer self key, self value over
    past + new positions). The cross keys/values pass through unchanged
    and are not outputs (Optimum's convention)."""

    def __init__(self, model):
        super().__init__()
        self.m = model

    def forward(self, input_ids, encoder_attention_mask, *past):
        layers = [past[4 * i:4 * i + 4] for i in range(len(past) // 4)]
        logits, presents = self.m.decode(input_ids, encoder_attention_mask,
                                         None, layers)
        return (logits,) + tuple(t for p in presents for t in p[:2])


def _fix_dims(model, sig):
    """States the signature's shapes on the graph's inputs and outputs
    (the exporter names some dims itself, e.g. behind Shape ops)."""
    for values, want in ((model.graph.input, sig[0]),
                         (model.graph.output, sig[1])):
        by_name = {v.name: v for v in values}
        for name, _, dims in want:
            shape = by_name[name].type.tensor_type.shape
            for d, w in zip(shape.dim, dims):
                if isinstance(w, str):
                    d.dim_param = w
                else:
                    d.dim_value = w


def check_signature(model, sig, what):
    init = {t.name for t in model.graph.initializer}
    for kind, values, want in (
            ("input", [v for v in model.graph.input if v.name not in init],
             sig[0]),
            ("output", list(model.graph.output), sig[1])):
        got = [(v.name, v.type.tensor_type.elem_type,
                [d.dim_param if d.dim_param else d.dim_value
                 for d in v.type.tensor_type.shape.dim]) for v in values]
        if got != want:
            raise ValueError("%s: graph %ss are\n  %s\nexpected\n  %s" % (
                what, kind, got, want))


def trace_inputs(cfg, vocab):
    g = torch.Generator().manual_seed(0)
    h, dk, d, n = cfg["n_heads"], cfg["d_kv"], cfg["d_model"], \
        cfg["n_decoder_layers"]
    src = torch.randint(3, vocab, (1, TRACE_SRC), generator=g)
    mask = torch.ones(1, TRACE_SRC, dtype=torch.long)
    tgt = torch.randint(3, vocab, (1, TRACE_TGT), generator=g)
    enc = torch.randn(1, TRACE_SRC, d, generator=g)
    past = []
    for _ in range(n):
        past += [torch.randn(1, h, TRACE_PAST, dk, generator=g)
                 for _ in range(2)]
        past += [torch.randn(1, h, TRACE_SRC, dk, generator=g)
                 for _ in range(2)]
    return {"encoder_model.onnx": (src, mask),
            "decoder_model.onnx": (tgt, mask, enc),
            "decoder_with_past_model.onnx": tuple([tgt, mask] + past)}


def export_graphs(model, opset=17):
    """{file: onnx.ModelProto} of the three graphs, signatures checked."""
    import tempfile
    cfg, vocab = model.cfg, model.vocab_size
    sigs = signatures(cfg, vocab)
    feeds = trace_inputs(cfg, vocab)
    modules = {"encoder_model.onnx": EncoderExport(model),
               "decoder_model.onnx": DecoderExport(model),
               "decoder_with_past_model.onnx": DecoderWithPastExport(model)}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, module in modules.items():
            ins, outs = sigs[name]
            axes = {}
            for nm, _, dims in ins + outs:
                axes[nm] = {i: dd for i, dd in enumerate(dims)
                            if isinstance(dd, str)}
            path = os.path.join(tmp, name)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the tracer's warnings
                with torch.no_grad():
                    torch.onnx.export(module.eval(), feeds[name], path,
                                      input_names=[x[0] for x in ins],
                                      output_names=[x[0] for x in outs],
                                      dynamic_axes=axes, opset_version=opset,
                                      do_constant_folding=True)
            m = onnx.load(path)
            _fix_dims(m, sigs[name])
            onnx.checker.check_model(m)
            check_signature(m, sigs[name], name)
            out[name] = m
    return out


# --------------------------------------------------------------------------
# Checks of the ONNX graphs against PyTorch
# --------------------------------------------------------------------------
def _rel_err(got, want, what, tol):
    if got.shape != want.shape:
        raise ValueError("%s has shape %s, expected %s" % (
            what, got.shape, want.shape))
    err = float(np.max(np.abs(got - want), initial=0.0)) / \
        max(1.0, float(np.max(np.abs(want), initial=0.0)))
    if not err <= tol:
        raise ValueError("%s differs from PyTorch by %.3g (relative), more "
                         "than %g" % (what, err, tol))
    return err


class OnnxT5:
    """Greedy decoding with the three ONNX graphs (decoder_past.run_onnx)."""

    def __init__(self, graphs, n_layers):
        self.g = graphs
        self.n = n_layers

    def run(self, name, feeds):
        return decoder_past.run_onnx(self.g[name], feeds)

    def greedy_cached(self, ids, max_new=MAX_ANSWER, trace=None):
        """Encoder once, decoder_model on the start token, then
        decoder_with_past_model one token at a time; the cross-attention
        keys/values of the first step are fed to every later step.
        trace(step, prefix, feeds, outputs) sees every decoder call
        (prefix: the decoder's input ids so far, this step's included)."""
        x = np.array([ids], np.int64)
        mask = np.ones_like(x)
        enc = self.run("encoder_model.onnx", [x, mask])[0]
        feeds = [np.array([[PAD]], np.int64), mask, enc]
        outs = self.run("decoder_model.onnx", feeds)
        if trace:
            trace(0, [PAD], feeds, outs)
        cross = [outs[1 + 4 * i + 2:1 + 4 * i + 4] for i in range(self.n)]
        selfkv = [outs[1 + 4 * i:1 + 4 * i + 2] for i in range(self.n)]
        answer = [int(np.argmax(outs[0][0, -1]))]
        while answer[-1] != EOS and len(answer) < max_new:
            past = []
            for i in range(self.n):
                past += list(selfkv[i]) + list(cross[i])
            feeds = [np.array([[answer[-1]]], np.int64), mask] + past
            outs = self.run("decoder_with_past_model.onnx", feeds)
            if trace:
                trace(len(answer), [PAD] + answer, feeds, outs)
            selfkv = [outs[1 + 2 * i:3 + 2 * i] for i in range(self.n)]
            answer.append(int(np.argmax(outs[0][0, -1])))
        return answer

    def greedy_full(self, ids, max_new=MAX_ANSWER):
        """Without a cache: decoder_model re-run on the whole prefix."""
        x = np.array([ids], np.int64)
        mask = np.ones_like(x)
        enc = self.run("encoder_model.onnx", [x, mask])[0]
        prefix = [PAD]
        while len(prefix) <= max_new and (len(prefix) == 1 or
                                          prefix[-1] != EOS):
            logits = self.run("decoder_model.onnx",
                              [np.array([prefix], np.int64), mask, enc])[0]
            prefix.append(int(np.argmax(logits[0, -1])))
        return prefix[1:]


def check_graphs(model, graphs, questions, log=print, tol=1e-4):
    """Raises ValueError unless the graphs reproduce `model` on
    `questions` (lists of ids): see the module docstring. Returns
    [(answer ids, margin)] of PyTorch's greedy without a cache."""
    n = model.cfg["n_decoder_layers"]
    ox = OnnxT5(graphs, n)
    worst = 0.0
    refs = []
    for qi, ids in enumerate(questions):
        want, margin = greedy(model, ids)
        refs.append((want, margin))
        x = torch.tensor([ids])
        mask = torch.ones_like(x)
        with torch.no_grad():
            enc_t = model.encode(x, mask)
        enc_o = ox.run("encoder_model.onnx", [x.numpy(), mask.numpy()])[0]
        worst = max(worst, _rel_err(enc_o, enc_t.numpy(),
                                    "q%d last_hidden_state" % qi, tol))

        def trace(step, prefix, feeds, outs):
            nonlocal worst
            # The step's logits == PyTorch's without a cache: the decoder
            # on the whole prefix, its last position.
            with torch.no_grad():
                full = model.decode(torch.tensor([prefix]), mask, enc_t)[0]
            worst = max(worst, _rel_err(
                outs[0][:, -1], full[:, -1].numpy(),
                "q%d step %d logits against the decoder on the whole prefix "
                "(no cache)" % (qi, step), tol))
            # PyTorch on the same feeds (the graph's own presents).
            tf = [torch.from_numpy(np.ascontiguousarray(f)) for f in feeds]
            with torch.no_grad():
                if step == 0:
                    ref = DecoderExport(model)(*tf)
                    names = ["logits"] + past_names(n, "present")
                else:
                    ref = DecoderWithPastExport(model)(*tf)
                    names = ["logits"] + [p for p in past_names(n, "present")
                                          if ".decoder." in p]
            for name, o, r in zip(names, outs, ref):
                worst = max(worst, _rel_err(
                    o, r.numpy(), "q%d step %d %s" % (qi, step, name), tol))
        got = ox.greedy_cached(ids, trace=trace)
        if got != want:
            raise ValueError("q%d: greedy of the ONNX graphs with the cache "
                             "%s differs from PyTorch's without a cache %s" %
                             (qi, got, want))
    # No-cache greedy by re-running decoder_model.onnx on the whole prefix,
    # and the no-past decoder's logits over a whole prefix.
    ids, (want, _) = questions[0], refs[0]
    got = ox.greedy_full(ids)
    if got != want:
        raise ValueError("greedy re-running decoder_model.onnx on the whole "
                         "prefix %s differs from PyTorch's %s" % (got, want))
    x = torch.tensor([ids])
    mask = torch.ones_like(x)
    prefix = torch.tensor([[PAD] + want[:-1]]) if len(want) > 1 else \
        torch.tensor([[PAD, 3, 4]])
    with torch.no_grad():
        enc = model.encode(x, mask)
        ref = DecoderExport(model)(prefix, mask, enc)
    outs = ox.run("decoder_model.onnx",
                  [prefix.numpy(), mask.numpy(), enc.numpy()])
    for name, o, r in zip(["logits"] + past_names(n, "present"), outs, ref):
        worst = max(worst, _rel_err(o, r.numpy(), "whole-prefix " + name,
                                    tol))
    # A with-past step of 2 new tokens after 1 past position, and a
    # padded encoder mask (the last question position masked out).
    dec0 = DecoderExport(model)
    src = torch.tensor([ids + [PAD]])
    pmask = torch.ones_like(src)
    pmask[0, -1] = 0
    with torch.no_grad():
        enc = model.encode(src, pmask)
        first = dec0(torch.tensor([[PAD]]), pmask, enc)
        feeds = [torch.tensor([[5, 6]]), pmask] + list(first[1:])
        ref = DecoderWithPastExport(model)(*feeds)
    worst = max(worst, _rel_err(
        ox.run("encoder_model.onnx", [src.numpy(), pmask.numpy()])[0],
        enc.numpy(), "padded last_hidden_state", tol))
    outs = ox.run("decoder_with_past_model.onnx", [f.numpy() for f in feeds])
    for name, o, r in zip(["logits"] + [p for p in past_names(n, "present")
                                        if ".decoder." in p], outs, ref):
        worst = max(worst, _rel_err(o, r.numpy(), "2-token with-past " + name,
                                    tol))
    log("ONNX == PyTorch (max relative difference %.2g): encoder, first "
        "decoder step, with-past steps on the graphs' own presents (and "
        "their logits == PyTorch's decoder on the whole prefix), a 2-token "
        "with-past step, a padded question, the no-past decoder on a whole "
        "prefix; greedy answers with the cache == PyTorch's without (%d "
        "questions): OK (%s)" % (worst, len(questions),
                                 decoder_past.evaluator_name()))
    return refs


def write_calibration(model, tok, out, count):
    """Calibration samples for static W8A8 (docs/calibration.md), one
    directory per graph, OUT/calib/<graph>/sK/<input>.npy, from `count`
    training questions (spread over the relations) answered teacher-forced
    with their expected answers:
      encoder_model            input_ids, attention_mask;
      decoder_model            the start token and the answer but its last
                               token, the encoder mask and output;
      decoder_with_past_model  the answer but its last token after a past of
                               the start token (decoder_model's presents),
                               the encoder mask, the cross-attention
                               keys/values."""
    train, _ = dataset()
    step = max(1, len(train) // max(1, count))
    n = model.cfg["n_decoder_layers"]
    dec0, decp = DecoderExport(model), DecoderWithPastExport(model)
    for k, (q, a) in enumerate(train[::step][:count]):
        x = torch.tensor([tok.encode(q)])
        mask = torch.ones_like(x)
        answer = tok.encode(a)
        with torch.no_grad():
            enc = model.encode(x, mask)
            first = dec0(torch.tensor([[PAD]]), mask, enc)
        feeds = {
            "encoder_model": {"input_ids": x, "attention_mask": mask},
            "decoder_model": {
                "input_ids": torch.tensor([[PAD] + answer[:-1]]),
                "encoder_attention_mask": mask,
                "encoder_hidden_states": enc},
            "decoder_with_past_model": dict(
                [("input_ids", torch.tensor([answer[:-1] or [PAD]])),
                 ("encoder_attention_mask", mask)] +
                list(zip(past_names(n, "past_key_values"), first[1:])))}
        for graph, inputs in feeds.items():
            d = os.path.join(out, "calib", graph, "s%d" % k)
            os.makedirs(d, exist_ok=True)
            for name, t in inputs.items():
                np.save(os.path.join(d, name + ".npy"),
                        np.ascontiguousarray(t.numpy()))
    # The decoder with past is fed its own presents here, as in generation:
    # check once that a sample runs in PyTorch.
    with torch.no_grad():
        decp(*[torch.from_numpy(np.load(os.path.join(
            out, "calib", "decoder_with_past_model", "s0", nm + ".npy")))
            for nm in ["input_ids", "encoder_attention_mask"] +
            past_names(n, "past_key_values")])


def random_model(vocab_size, seed, v1=False):
    cfg = dict(CONFIG)
    if v1:
        cfg.update(feed_forward="relu", tied_head=True)
    torch.manual_seed(seed)
    model = T5(cfg, vocab_size).eval()
    # Untrained T5 weights give nearly uniform logits; sharpen the heads
    # so that greedy answers have clear margins (stable references). A
    # tied head repeats the input token (the residual stream is mostly its
    # embedding): shrink the embedding and strengthen the decoder layers'
    # outputs so that the answers depend on the question and the prefix.
    with torch.no_grad():
        if v1:
            model.shared.weight.mul_(0.3)
            model.decoder_ln.weight.mul_(20.0)
            for layer in model.decoder:
                for lin in (layer.self_attn.o, layer.cross_attn.o,
                            layer.ff.wo):
                    lin.weight.mul_(4.0)
        else:
            model.lm_head.weight.mul_(4.0)
    return model


def cmd_export(args):
    torch.set_num_threads(args.threads)
    if args.random:
        tok = Tokenizer(build_vocab())
        model = random_model(len(tok.vocab), args.seed, args.t5_v1)
        name = "t5qa_random_v1" if args.t5_v1 else "t5qa_random"
        # The first training questions (of every 7th) whose greedy answers
        # have clear margins (another implementation's rounding cannot flip
        # them) and at least two distinct ids, none of them <pad>.
        train, _ = dataset()
        questions = []
        for q, _ in train[::7]:
            ans, margin = greedy(model, tok.encode(q))
            if margin >= 0.05 and len(set(ans)) >= 2 and PAD not in ans:
                questions.append(q)
            if len(questions) == 4:
                break
        if len(questions) < 4:
            sys.exit("t5qa: too few random-model questions with clear "
                     "greedy margins (seed %d)" % args.seed)
    else:
        if args.t5_v1:
            sys.exit("t5qa: --t5-v1 only with --random")
        model, tok, _ = load_checkpoint(args.out)
        name = "t5qa"
        questions = REFERENCE_QUESTIONS
    cfg = model.cfg
    t0 = time.time()
    graphs = export_graphs(model, args.opset)
    ids = [tok.encode(q) for q in questions]
    try:
        refs = check_graphs(model, graphs, ids)
    except ValueError as e:
        print("t5qa: export check failed: %s" % e, file=sys.stderr)
        return 1
    out = os.path.join(args.out, name)
    os.makedirs(out, exist_ok=True)
    for fname, g in graphs.items():
        onnx.save(g, os.path.join(out, fname + ".tmp"))
        os.replace(os.path.join(out, fname + ".tmp"), os.path.join(out, fname))
    entries = []
    train, held = dataset()
    expected = dict(train + held)
    for k, (q, qids, (ans, margin)) in enumerate(zip(questions, ids, refs)):
        base = "q%d" % k
        np.save(os.path.join(out, base + ".input_ids.npy"),
                np.array([qids], np.int64))
        np.save(os.path.join(out, base + ".attention_mask.npy"),
                np.ones((1, len(qids)), np.int64))
        np.save(os.path.join(out, base + ".answer_ids.npy"),
                np.array([ans], np.int64))
        entries.append(dict(
            question=q, expected=expected.get(q),
            held_out=q not in dict(train), input_ids=qids,
            answer_ids=ans, answer=tok.decode(ans), min_margin=margin,
            files=dict(input_ids=base + ".input_ids.npy",
                       attention_mask=base + ".attention_mask.npy",
                       answer_ids=base + ".answer_ids.npy")))
        print("  %-45r -> %r (ids %s, margin %.3g)" % (
            q, tok.decode(ans), ans, margin))
    with open(os.path.join(out, "questions.json"), "w") as f:
        json.dump(dict(model=name, decoder_start_id=PAD, eos_id=EOS,
                       max_answer=MAX_ANSWER, questions=entries), f,
                  indent=1)
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump(tok.to_json(), f, indent=1)
    sigs = signatures(cfg, model.vocab_size)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(dict(cfg, vocab_size=model.vocab_size,
                       parameters=count_params(model),
                       decoder_start_token_id=PAD, eos_token_id=EOS,
                       pad_token_id=PAD, random=bool(args.random),
                       onnx={k: dict(inputs=v[0], outputs=v[1])
                             for k, v in sigs.items()}), f, indent=1)
    if args.calib_samples > 0:
        write_calibration(model, tok, out, args.calib_samples)
    print("wrote %s/{encoder_model,decoder_model,decoder_with_past_model}"
          ".onnx and references of %d questions%s (%.1f s)" % (
              out, len(questions),
              ", calibration samples in calib/" if args.calib_samples > 0
              else "", time.time() - t0))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring (and examples/t5qa/README.md).")
    sub = ap.add_subparsers(dest="cmd")

    def common(p):
        p.add_argument("--out", default=DEFAULT_OUT,
                       help="output directory (default %(default)s)")
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--seed", type=int, default=1)
        return p
    p = common(sub.add_parser("train", help="train on the question facts"))
    p.add_argument("--minutes", type=float, default=None,
                   help="wall-time limit (default 5 without --steps, none "
                   "with it)")
    p.add_argument("--steps", type=int, default=0,
                   help="optimizer steps (0: until --minutes)")
    p.add_argument("--min-accuracy", type=float, default=0.0,
                   help="exit 1 when the exact-match accuracy on the "
                   "training questions is below this fraction")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--log-every", type=int, default=100)
    p.set_defaults(fn=cmd_train)
    p = common(sub.add_parser("export", help="write the ONNX graphs + "
                              "references"))
    p.add_argument("--random", action="store_true",
                   help="seeded untrained weights (no checkpoint needed)")
    p.add_argument("--t5-v1", action="store_true",
                   help="with --random: ReLU feed-forward, tied head")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--calib-samples", type=int, default=16,
                   help="calibration samples per graph written to "
                   "OUT/NAME/calib/<graph>/ (training questions; 0: none)")
    p.set_defaults(fn=cmd_export)
    p = common(sub.add_parser("ask", help="greedy answer to a question"))
    p.add_argument("question")
    p.set_defaults(fn=cmd_ask)
    p = common(sub.add_parser("eval", help="accuracy of the checkpoint"))
    p.set_defaults(fn=cmd_eval)
    args = ap.parse_args(argv)
    if not getattr(args, "fn", None):
        ap.print_help()
        return 2
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
