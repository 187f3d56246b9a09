#!/usr/bin/env python3
"""GGUF files for Quench's tests, written from the format's definition with
NumPy only (no gguf-py, no llama.cpp), and their float references.

* GGUFWriter: GGUF v3 (header, typed key/values, tensor infos, data section
  aligned to general.alignment) from raw tensor bytes of any ggml type; the
  error tests use its knobs to write malformed files.
* Block formats (q4_0, q4_1, q5_0, q5_1, q8_0, q4_K, q5_K, q6_K, q2_K,
  q3_K): random
  blocks (random codes and sub-scales, bounded f16 super-scales) and their
  dequantization by the format's definition, vectorized over blocks
  (`dequantize`), in f32 arithmetic in the definition's order.
* llama / qwen2 models: `make_model` writes a small random decoder (each
  weight in the type asked for) and returns the dequantized weights;
  `reference_logits` runs the model in float64 from the metadata: RMSNorm,
  RoPE (interleaved pairs (2i, 2i+1) for llama, half-split (i, i+d/2) for
  qwen2; base, linear scaling and frequency factors), grouped-query causal
  attention, SwiGLU, tied or separate head - written independently of the
  importer.
* `--vectors FILE`: writes the C++ test vectors of every block format
  (unittests/Quant/GGMLBlockVectors.inc: raw blocks and their values).

Usage: gguf_model.py --vectors unittests/Quant/GGMLBlockVectors.inc
"""

import argparse
import struct

import numpy as np

# GGUF metadata value types.
U8, I8, U16, I16, U32, I32, F32V, BOOL, STR, ARR, U64, I64, F64V = range(13)
# ggml tensor types.
F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 = 0, 1, 2, 3, 6, 7, 8
Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, BF16 = 10, 11, 12, 13, 14, 30
TYPE_NAMES = {F32: "f32", F16: "f16", Q4_0: "q4_0", Q4_1: "q4_1",
              Q5_0: "q5_0", Q5_1: "q5_1", Q8_0: "q8_0", Q4_K: "q4_K",
              Q5_K: "q5_K", Q6_K: "q6_K", BF16: "bf16", Q2_K: "q2_K",
              Q3_K: "q3_K"}
# (elements, bytes) per block.
BLOCK = {F32: (1, 4), F16: (1, 2), BF16: (1, 2), Q4_0: (32, 18),
         Q4_1: (32, 20), Q5_0: (32, 22), Q5_1: (32, 24), Q8_0: (32, 34),
         Q4_K: (256, 144), Q5_K: (256, 176), Q6_K: (256, 210),
         Q2_K: (256, 84), Q3_K: (256, 110)}
QUANT_TYPES = [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, Q2_K, Q3_K]


class GGUFWriter:
    """GGUF writer. Tensors are (name, dims in ggml order, type, raw bytes);
    `offsets` overrides the data offsets and `data_size` the size of the
    data section actually written (malformed files)."""

    def __init__(self, alignment=32, version=3, magic=b"GGUF"):
        self.kv = []
        self.tensors = []
        self.alignment = alignment
        self.version = version
        self.magic = magic

    def add(self, key, vtype, value, etype=None):
        self.kv.append((key, vtype, value, etype))

    def tensor(self, name, dims, gtype, raw, offset=None):
        self.tensors.append((name, list(dims), gtype, bytes(raw), offset))

    @staticmethod
    def _str(s):
        b = s.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    _FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i",
            F32V: "<f", BOOL: "<?", U64: "<Q", I64: "<q", F64V: "<d"}

    def _value(self, vtype, v, etype):
        if vtype == STR:
            return self._str(v)
        if vtype == ARR:
            head = struct.pack("<IQ", etype, len(v))
            return head + b"".join(self._value(etype, x, None) for x in v)
        if vtype not in self._FMT:  # an invalid type id: 4 bytes of zeros
            return b"\0" * 4
        return struct.pack(self._FMT[vtype], v)

    def to_bytes(self):
        a = self.alignment
        out = [self.magic, struct.pack("<IQQ", self.version, len(self.tensors),
                                       len(self.kv))]
        for key, vtype, v, etype in self.kv:
            out += [self._str(key), struct.pack("<I", vtype),
                    self._value(vtype, v, etype)]
        off = 0
        placed = []
        for name, dims, gtype, raw, offset in self.tensors:
            at = off if offset is None else offset
            out += [self._str(name), struct.pack("<I", len(dims)),
                    struct.pack("<%dQ" % len(dims), *dims),
                    struct.pack("<IQ", gtype, at)]
            placed.append(raw)
            off += len(raw) + (-len(raw) % a)
        head = b"".join(out)
        data = [head, b"\0" * (-len(head) % a)]
        for raw in placed:
            data += [raw, b"\0" * (-len(raw) % a)]
        return b"".join(data)

    def write(self, path):
        with open(path, "wb") as f:
            f.write(self.to_bytes())


# ---------------------------------------------------------------------------
# Block formats.

def _half(a):
    """[nb, 2] bytes -> [nb, 1] float32 values of the f16 they hold."""
    return np.ascontiguousarray(a).view(np.float16).astype(np.float32)


def _put_half(blocks, col, values):
    blocks[:, col:col + 2] = np.asarray(values, np.float16).reshape(
        -1, 1).view(np.uint8).reshape(-1, 2)


def _pack_k_scales(sc, mn):
    """Two [nb, 8] arrays of 6-bit sub-scales and mins -> [nb, 12] bytes
    (the inverse of _k_scales)."""
    s = np.zeros((sc.shape[0], 12), np.int64)
    s[:, 0:4] = sc[:, :4] | ((sc[:, 4:] >> 4) << 6)
    s[:, 4:8] = mn[:, :4] | ((mn[:, 4:] >> 4) << 6)
    s[:, 8:12] = (sc[:, 4:] & 15) | ((mn[:, 4:] & 15) << 4)
    return s.astype(np.uint8)


def random_blocks(gtype, nblocks, rng, mag=0.15):
    """Random raw blocks of `gtype` whose values are roughly within +-mag
    and centred (the offset types get a min near -scale * levels / 2, as a
    quantizer would choose for centred weights)."""
    _, nbytes = BLOCK[gtype]
    b = rng.integers(0, 256, (nblocks, nbytes), dtype=np.uint8)
    u = lambda: rng.uniform(0.5, 1.5, nblocks)  # noqa: E731
    if gtype == Q4_0:
        _put_half(b, 0, mag / 8 * u())
    elif gtype in (Q4_1, Q5_1):
        levels = 15 if gtype == Q4_1 else 31
        d = 2 * mag / levels * u()
        _put_half(b, 0, d)
        _put_half(b, 2, -d * levels / 2 * rng.uniform(0.8, 1.2, nblocks))
    elif gtype == Q5_0:
        _put_half(b, 0, mag / 16 * u())
    elif gtype == Q8_0:
        _put_half(b, 0, mag / 128 * u())
    elif gtype in (Q4_K, Q5_K):
        levels = 15 if gtype == Q4_K else 31
        d = 2 * mag / (63 * levels) * u()
        _put_half(b, 0, d)
        _put_half(b, 2, d * levels / 2)
        sc = rng.integers(16, 64, (nblocks, 8))
        mn = np.clip(sc + rng.integers(-2, 3, (nblocks, 8)), 0, 63)
        b[:, 4:16] = _pack_k_scales(sc, mn)
    elif gtype == Q6_K:
        _put_half(b, 208, mag / (128 * 32) * u())
    elif gtype == Q2_K:
        # Codes 0..3: scale ~ 2 mag / 3, min ~ half the range.
        d = 2 * mag / (3 * 15) * u()
        _put_half(b, 80, d)
        _put_half(b, 82, d * 3 / 2)
        sc = rng.integers(8, 16, (nblocks, 16))
        mn = np.clip(sc + rng.integers(-1, 2, (nblocks, 16)), 0, 15)
        b[:, 0:16] = (sc | (mn << 4)).astype(np.uint8)
    elif gtype == Q3_K:
        _put_half(b, 108, mag / (4 * 24) * u())
        # 6-bit sub-scales 32 + 8..31 or 32 - 8..31 (either sign).
        s6 = 32 + rng.choice([-1, 1], (nblocks, 16)) * rng.integers(
            8, 32, (nblocks, 16))
        s6 = np.clip(s6, 0, 63)
        sc = np.zeros((nblocks, 12), np.int64)
        sc[:, 0:8] = (s6[:, 0:8] & 15) | ((s6[:, 8:16] & 15) << 4)
        for s in range(16):
            sc[:, 8 + s % 4] |= (s6[:, s] >> 4) << (2 * (s // 4))
        b[:, 96:108] = sc.astype(np.uint8)
    else:
        raise ValueError("not a block type")
    return b


def _nibbles(qs):
    """[nb, 16] bytes -> [nb, 32] codes: low nibbles, then high nibbles."""
    return np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.int32)


def _k_scales(s):
    """[nb, 12] packed 6-bit sub-scales and mins -> two [nb, 8] arrays."""
    s = s.astype(np.int32)
    sc = np.empty((s.shape[0], 8), np.int32)
    mn = np.empty_like(sc)
    sc[:, :4] = s[:, 0:4] & 63
    mn[:, :4] = s[:, 4:8] & 63
    sc[:, 4:] = (s[:, 8:12] & 15) | ((s[:, 0:4] >> 6) << 4)
    mn[:, 4:] = (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)
    return sc, mn


def dequantize(gtype, raw, n):
    """The n values (float32) of `raw` bytes of `gtype` by its definition."""
    raw = np.frombuffer(bytes(raw), np.uint8)
    if gtype == F32:
        return raw.view(np.float32)[:n].copy()
    if gtype == F16:
        return raw.view(np.float16)[:n].astype(np.float32)
    if gtype == BF16:
        return (raw.view(np.uint16)[:n].astype(np.uint32) << 16).view(
            np.float32)
    elems, nbytes = BLOCK[gtype]
    b = raw.reshape(-1, nbytes)
    f = np.float32
    if gtype in (Q4_0, Q4_1):
        d = _half(b[:, 0:2])
        q = _nibbles(b[:, 4:20] if gtype == Q4_1 else b[:, 2:18])
        if gtype == Q4_0:
            y = (q - 8).astype(f) * d
        else:
            y = q.astype(f) * d + _half(b[:, 2:4])
    elif gtype in (Q5_0, Q5_1):
        d = _half(b[:, 0:2])
        off = 4 if gtype == Q5_1 else 2
        qh = b[:, off:off + 4].copy().view(np.uint32).astype(np.int64)
        high = (qh >> np.arange(32)) & 1
        q = _nibbles(b[:, off + 4:off + 20]) | (high << 4).astype(np.int32)
        if gtype == Q5_0:
            y = (q - 16).astype(f) * d
        else:
            y = q.astype(f) * d + _half(b[:, 2:4])
    elif gtype == Q8_0:
        y = b[:, 2:34].view(np.int8).astype(f) * _half(b[:, 0:2])
    elif gtype in (Q4_K, Q5_K):
        d, dmin = _half(b[:, 0:2])[:, 0], _half(b[:, 2:4])[:, 0]
        sc, mn = _k_scales(b[:, 4:16])
        qs = b[:, 48:176] if gtype == Q5_K else b[:, 16:144]
        # Chunk c of 64 elements: low nibbles of bytes 32c..32c+31, then
        # their high nibbles.
        chunks = []
        for c in range(4):
            byte = qs[:, 32 * c:32 * c + 32].astype(np.int32)
            lo, hi = byte & 15, byte >> 4
            if gtype == Q5_K:
                qh = b[:, 16:48].astype(np.int32)
                lo = lo | (((qh >> (2 * c)) & 1) << 4)
                hi = hi | (((qh >> (2 * c + 1)) & 1) << 4)
            chunks += [lo, hi]
        q = np.concatenate(chunks, axis=1)  # [nb, 256], sub-block = idx // 32
        scale = d[:, None] * sc.astype(f)   # [nb, 8]
        minv = dmin[:, None] * mn.astype(f)
        y = (np.repeat(scale, 32, axis=1) * q.astype(f)
             - np.repeat(minv, 32, axis=1))
    elif gtype == Q2_K:
        # ggml's dequantize_row_q2_K: for each half (32 bytes of codes) and
        # shift 0, 2, 4, 6: 16 values from bytes 0..15 (sub-scale is), 16
        # from bytes 16..31 (is + 1).
        sc = b[:, 0:16].astype(np.int32)
        qs = b[:, 16:80].astype(np.int32)
        d, dmin = _half(b[:, 80:82])[:, 0], _half(b[:, 82:84])[:, 0]
        out, sub = [], 0
        for h in range(2):
            q = qs[:, 32 * h:32 * h + 32]
            for shift in (0, 2, 4, 6):
                for part in (q[:, :16], q[:, 16:]):
                    dl = d * (sc[:, sub] & 15).astype(f)
                    ml = dmin * (sc[:, sub] >> 4).astype(f)
                    out.append(dl[:, None] * ((part >> shift) & 3).astype(f)
                               - ml[:, None])
                    sub += 1
        y = np.concatenate(out, axis=1)
    elif gtype == Q3_K:
        # ggml's dequantize_row_q3_K: the 12 scale bytes as three
        # little-endian u32 rearranged into 16 signed 6-bit scales (- 32),
        # then q2_K's traversal with the hmask bit m (m <<= 1 per shift)
        # subtracting 4 where clear.
        aux = b[:, 96:108].copy().view("<u4").astype(np.uint64)
        k1, k2 = 0x03030303, 0x0F0F0F0F
        tmp = aux[:, 2]
        a = np.stack([(aux[:, 0] & k2) | (((tmp >> 0) & k1) << 4),
                      (aux[:, 1] & k2) | (((tmp >> 2) & k1) << 4),
                      ((aux[:, 0] >> 4) & k2) | (((tmp >> 4) & k1) << 4),
                      ((aux[:, 1] >> 4) & k2) | (((tmp >> 6) & k1) << 4)],
                     axis=1).astype(np.uint32)
        scales = a.view(np.int8).astype(np.int32) - 32   # [nb, 16]
        d = _half(b[:, 108:110])[:, 0]
        hm = b[:, 0:32].astype(np.int32)
        qs = b[:, 32:96].astype(np.int32)
        out, sub, m = [], 0, 1
        for h in range(2):
            q = qs[:, 32 * h:32 * h + 32]
            for shift in (0, 2, 4, 6):
                for lo, hi in ((0, 16), (16, 32)):
                    dl = d * scales[:, sub].astype(f)
                    v = ((q[:, lo:hi] >> shift) & 3) - np.where(
                        hm[:, lo:hi] & m, 0, 4)
                    out.append(dl[:, None] * v.astype(f))
                    sub += 1
                m <<= 1
        y = np.concatenate(out, axis=1)
    elif gtype == Q6_K:
        ql = b[:, 0:128].astype(np.int32)
        qh = b[:, 128:192].astype(np.int32)
        sc = b[:, 192:208].view(np.int8).astype(f)
        d = _half(b[:, 208:210])[:, 0]
        parts = []
        for h in range(2):
            lq, hq = ql[:, 64 * h:64 * h + 64], qh[:, 32 * h:32 * h + 32]
            parts += [(lq[:, :32] & 15) | ((hq & 3) << 4),
                      (lq[:, 32:] & 15) | (((hq >> 2) & 3) << 4),
                      (lq[:, :32] >> 4) | (((hq >> 4) & 3) << 4),
                      (lq[:, 32:] >> 4) | (((hq >> 6) & 3) << 4)]
        q = np.concatenate(parts, axis=1) - 32  # [nb, 256]
        scale = d[:, None] * sc                 # [nb, 16]
        y = np.repeat(scale, 16, axis=1) * q.astype(f)
    else:
        raise ValueError("unknown type %d" % gtype)
    y = np.asarray(y, np.float32).reshape(-1)
    assert y.size == b.shape[0] * elems
    return y[:n]


def encode_float(gtype, values):
    """Raw bytes of float values stored as F32, F16 or BF16 (BF16 rounds to
    nearest even) and the values as stored."""
    v = np.ascontiguousarray(values, np.float32).reshape(-1)
    if gtype == F32:
        return v.tobytes(), v
    if gtype == F16:
        h = v.astype(np.float16)
        return h.tobytes(), h.astype(np.float32)
    if gtype == BF16:
        u = v.view(np.uint32).astype(np.uint64)
        u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
        return u.tobytes(), (u.astype(np.uint32) << 16).view(np.float32)
    raise ValueError("not a float type")


def make_tensor(gtype, shape, rng, std):
    """A [rows, cols] (numpy order) tensor of `gtype`: raw bytes and its
    float values."""
    n = int(np.prod(shape))
    if gtype in (F32, F16, BF16):
        raw, vals = encode_float(gtype, rng.standard_normal(n) * std)
    else:
        elems, _ = BLOCK[gtype]
        raw = random_blocks(gtype, n // elems, rng, mag=2.5 * std).tobytes()
        vals = dequantize(gtype, raw, n)
    return raw, vals.reshape(shape)


# ---------------------------------------------------------------------------
# Models.

def tokenizer_kv(vocab):
    """The tokenizer.* arrays and ids make_model writes (key, value type,
    value, element type): SentencePiece-like tokens (non-ASCII '\u2581'),
    scores, token types (1 normal, 2 unknown, 3 control) and BOS/EOS ids."""
    toks = ["<unk>", "<s>", "</s>"] + ["\u2581t%d" % i
                                      for i in range(vocab - 3)]
    return [("tokenizer.ggml.tokens", ARR, toks, STR),
            ("tokenizer.ggml.scores", ARR,
             [-0.25 * i for i in range(vocab)], F32V),
            ("tokenizer.ggml.token_type", ARR, [2, 3, 3] + [1] * (vocab - 3),
             I32),
            ("tokenizer.ggml.bos_token_id", U32, 1, None),
            ("tokenizer.ggml.eos_token_id", U32, 2, None)]


def make_model(path, rng, arch="llama", dim=256, layers=2, heads=4,
               kv_heads=2, ff=512, vocab=300, types=None, tied=False,
               rope_base=10000.0, rope_linear=None, freq_factors=False,
               eps=1e-5, writer=None):
    """Writes a random `arch` GGUF model and returns (config, weights):
    weights maps each GGUF tensor name to its float32 values (numpy order,
    [out, in] for matrices) as dequantized by the format's definition.
    `types(name)` gives each matrix's ggml type (F32 by default)."""
    types = types or (lambda name: F32)
    w = writer or GGUFWriter()
    hd = dim // heads
    p = arch + "."
    w.add("general.architecture", STR, arch)
    w.add("general.name", STR, "quench-test-" + arch)
    w.add(p + "context_length", U32, 256)
    w.add(p + "embedding_length", U32, dim)
    w.add(p + "block_count", U32, layers)
    w.add(p + "feed_forward_length", U32, ff)
    w.add(p + "attention.head_count", U32, heads)
    w.add(p + "attention.head_count_kv", U32, kv_heads)
    w.add(p + "rope.dimension_count", U32, hd)
    w.add(p + "rope.freq_base", F32V, rope_base)
    w.add(p + "attention.layer_norm_rms_epsilon", F32V, eps)
    if rope_linear:
        w.add(p + "rope.scaling.type", STR, "linear")
        w.add(p + "rope.scaling.factor", F32V, rope_linear)
    w.add("tokenizer.ggml.model", STR, "llama")
    for key, vtype, value, etype in tokenizer_kv(vocab):
        w.add(key, vtype, value, etype)

    weights = {}

    def matrix(name, rows, cols, std):
        gtype = types(name)
        raw, vals = make_tensor(gtype, (rows, cols), rng, std)
        w.tensor(name, [cols, rows], gtype, raw)
        weights[name] = vals

    def vector(name, n, base, std):
        raw, vals = encode_float(F32, base + rng.standard_normal(n) * std)
        w.tensor(name, [n], F32, raw)
        weights[name] = vals

    matrix("token_embd.weight", vocab, dim, 1.0)
    if freq_factors:
        raw, vals = encode_float(F32, rng.uniform(1.0, 4.0, hd // 2))
        w.tensor("rope_freqs.weight", [hd // 2], F32, raw)
        weights["rope_freqs.weight"] = vals
    s = dim ** -0.5
    for l in range(layers):
        blk = "blk.%d." % l
        vector(blk + "attn_norm.weight", dim, 1.0, 0.1)
        matrix(blk + "attn_q.weight", heads * hd, dim, s)
        matrix(blk + "attn_k.weight", kv_heads * hd, dim, s)
        matrix(blk + "attn_v.weight", kv_heads * hd, dim, s)
        if arch == "qwen2":
            vector(blk + "attn_q.bias", heads * hd, 0.0, 0.1)
            vector(blk + "attn_k.bias", kv_heads * hd, 0.0, 0.1)
            vector(blk + "attn_v.bias", kv_heads * hd, 0.0, 0.1)
        matrix(blk + "attn_output.weight", dim, heads * hd, s)
        vector(blk + "ffn_norm.weight", dim, 1.0, 0.1)
        matrix(blk + "ffn_gate.weight", ff, dim, s)
        matrix(blk + "ffn_up.weight", ff, dim, s)
        matrix(blk + "ffn_down.weight", dim, ff, ff ** -0.5)
    vector("output_norm.weight", dim, 1.0, 0.1)
    if not tied:
        matrix("output.weight", vocab, dim, s)
    if path:
        w.write(path)
    cfg = dict(arch=arch, dim=dim, layers=layers, heads=heads,
               kv_heads=kv_heads, ff=ff, vocab=vocab, eps=eps,
               rope_base=rope_base, rope_linear=rope_linear, tied=tied)
    return cfg, weights


def reference_logits(cfg, weights, ids):
    """float64 forward pass: logits [1, S, vocab] for ids [S]."""
    W = {k: v.astype(np.float64) for k, v in weights.items()}
    dim, H, Hk = cfg["dim"], cfg["heads"], cfg["kv_heads"]
    hd = dim // H
    S = len(ids)

    def rms(x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True)
                           + cfg["eps"]) * g

    i = np.arange(hd // 2)
    inv = cfg["rope_base"] ** (-2.0 * i / hd)
    if cfg["rope_linear"]:
        inv = inv / cfg["rope_linear"]
    if "rope_freqs.weight" in W:
        inv = inv / W["rope_freqs.weight"]
    ang = np.arange(S)[:, None] * inv[None, :]      # [S, hd/2]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]

    def rope(x):                                    # [S, heads, hd]
        if cfg["arch"] == "qwen2":                  # pairs (i, i + hd/2)
            a, b = x[..., :hd // 2], x[..., hd // 2:]
            return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)
        a, b = x[..., 0::2], x[..., 1::2]           # pairs (2i, 2i + 1)
        out = np.empty_like(x)
        out[..., 0::2] = a * c - b * s
        out[..., 1::2] = a * s + b * c
        return out

    x = W["token_embd.weight"][ids]
    causal = np.triu(np.full((S, S), -np.inf), 1)
    for l in range(cfg["layers"]):
        blk = "blk.%d." % l
        a = rms(x, W[blk + "attn_norm.weight"])

        def proj(name):
            y = a @ W[blk + name + ".weight"].T
            if blk + name + ".bias" in W:
                y = y + W[blk + name + ".bias"]
            return y
        q = rope(proj("attn_q").reshape(S, H, hd))
        k = rope(proj("attn_k").reshape(S, Hk, hd))
        v = proj("attn_v").reshape(S, Hk, hd)
        out = np.empty((S, H, hd))
        for h in range(H):
            kh = h // (H // Hk)
            sc = q[:, h] @ k[:, kh].T / np.sqrt(hd) + causal
            p = np.exp(sc - sc.max(axis=-1, keepdims=True))
            p /= p.sum(axis=-1, keepdims=True)
            out[:, h] = p @ v[:, kh]
        x = x + out.reshape(S, H * hd) @ W[blk + "attn_output.weight"].T
        f = rms(x, W[blk + "ffn_norm.weight"])
        g = f @ W[blk + "ffn_gate.weight"].T
        u = f @ W[blk + "ffn_up.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ W[blk + "ffn_down.weight"].T
    x = rms(x, W["output_norm.weight"])
    head = W["token_embd.weight"] if cfg["tied"] else W["output.weight"]
    return (x @ head.T)[None]


# ---------------------------------------------------------------------------
# Unit-test vectors.

def write_vectors(path, blocks_per_type=2, seed=20261207):
    rng = np.random.default_rng(seed)
    lines = ["// Generated by test/e2e/gguf_model.py --vectors: raw ggml blocks",
             "// of every block format Quench relays out, and their values by",
             "// the format's definition (NumPy, f32 arithmetic). Do not edit.",
             ""]
    for gtype in QUANT_TYPES:
        elems, _ = BLOCK[gtype]
        raw = random_blocks(gtype, blocks_per_type, rng).tobytes()
        vals = dequantize(gtype, raw, elems * blocks_per_type)
        name = TYPE_NAMES[gtype].upper()
        lines.append("static const uint8_t k%sBlocks[] = {" % name)
        for i in range(0, len(raw), 16):
            lines.append("    " + ", ".join("0x%02x" % x
                                            for x in raw[i:i + 16]) + ",")
        lines.append("};")
        lines.append("static const float k%sValues[] = {" % name)
        for i in range(0, len(vals), 4):
            lines.append("    " + ", ".join(float(v).hex() + "f"
                                            for v in vals[i:i + 4]) + ",")
        lines.append("};")
        lines.append("")
    lines.append("#define GGML_BLOCK_VECTOR_CASES(X) \\")
    lines.append(" \\\n".join("  X(%s, %d)" % (TYPE_NAMES[t].upper(), t)
                              for t in QUANT_TYPES))
    lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vectors", required=True,
                    help="write the block-format test vectors here")
    a = ap.parse_args()
    write_vectors(a.vectors)


if __name__ == "__main__":
    main()
