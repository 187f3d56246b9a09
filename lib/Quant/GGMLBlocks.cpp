//===- GGMLBlocks.cpp - ggml tensor types and their block formats ---------===//
//
// Block layouts (ggml's definitions; all little-endian, f16 = IEEE half):
//   q4_0  32 elems, 18 B: d f16, 16 B nibbles (element j low nibble of byte
//         j, element j+16 high nibble);          x = (q - 8) * d
//   q4_1  32 elems, 20 B: d, m f16, nibbles as q4_0; x = q * d + m
//   q5_0  32 elems, 22 B: d f16, qh u32 (bit j = 5th bit of element j),
//         nibbles as q4_0;                        x = (q - 16) * d
//   q5_1  32 elems, 24 B: d, m f16, qh, nibbles;  x = q * d + m
//   q8_0  32 elems, 34 B: d f16, 32 x i8;         x = q * d
//   q4_K 256 elems, 144 B: d, dmin f16, 12 B of 6-bit sub-scales and mins
//         (8 sub-blocks of 32), 128 B nibbles: chunk c of 64 elements takes
//         bytes 32c..32c+31, low nibbles first, then high nibbles;
//         x = (d * sc) * q - dmin * m
//   q5_K 256 elems, 176 B: d, dmin, 12 B scales, 32 B qh (bit 2c / 2c+1 of
//         byte l = 5th bit of element l of the low / high half of chunk c),
//         128 B nibbles as q4_K;                 x = (d * sc) * q - dmin * m
//   q2_K 256 elems, 84 B: 16 B of sub-scales (sub-blocks of 16: low nibble
//         scale, high nibble min), 64 B of 2-bit codes, d, dmin f16; each
//         half of 128 elements takes 32 B of codes: element 32 j + l
//         (j = 0..3, l < 32) is (byte l >> 2 j) & 3, sub-block 8 h + 2 j +
//         l / 16;                               x = (d * sc) * q - dmin * m
//   q3_K 256 elems, 110 B: 32 B hmask, 64 B of 2-bit low codes (laid out
//         as q2_K's), 12 B of 6-bit sub-scales (sub-blocks of 16), d f16;
//         element 32 j + l of half h takes bit h * 4 + j of hmask byte l
//         (set: +0, clear: -4); sub-scale s (0..15) is the low nibble of
//         byte s (s < 8) or high nibble of byte s - 8, with 2 high bits
//         from byte 8 + s % 4, bits 2 (s / 4);
//                                                x = (d * (sc - 32)) * q
//   q6_K 256 elems, 210 B: 128 B low nibbles, 64 B high 2-bit pairs, 16 x i8
//         sub-scales (sub-blocks of 16), d f16; each half of 128 elements
//         takes 64 B of nibbles and 32 B of high bits: element l + 32 i
//         (i = 0..3, l < 32) has nibble (low of byte l, low of l + 32, high
//         of l, high of l + 32)[i] and high bits (byte l >> 2 i) & 3;
//         x = (d * sc) * (q - 32)
//
//===----------------------------------------------------------------------===//

#include "quench/Quant/GGMLBlocks.h"

#include "quench/Quant/RTN.h"

#include <cstring>
#include <vector>

using namespace quench::quant;

namespace {

constexpr int64_t kQK = 256; // elements of a K-quant super-block

const GGMLTypeTraits kTypes[] = {
    /*0*/ {"f32", 1, 4, true},
    /*1*/ {"f16", 1, 2, true},
    /*2*/ {"q4_0", 32, 18, true},
    /*3*/ {"q4_1", 32, 20, true},
    /*4*/ {nullptr, 0, 0, false},
    /*5*/ {nullptr, 0, 0, false},
    /*6*/ {"q5_0", 32, 22, true},
    /*7*/ {"q5_1", 32, 24, true},
    /*8*/ {"q8_0", 32, 34, true},
    /*9*/ {"q8_1", 32, 36, false},
    /*10*/ {"q2_K", kQK, 84, true},
    /*11*/ {"q3_K", kQK, 110, true},
    /*12*/ {"q4_K", kQK, 144, true},
    /*13*/ {"q5_K", kQK, 176, true},
    /*14*/ {"q6_K", kQK, 210, true},
    /*15*/ {"q8_K", kQK, 292, false},
    /*16*/ {"iq2_xxs", kQK, 0, false},
    /*17*/ {"iq2_xs", kQK, 0, false},
    /*18*/ {"iq3_xxs", kQK, 0, false},
    /*19*/ {"iq1_s", kQK, 0, false},
    /*20*/ {"iq4_nl", 32, 0, false},
    /*21*/ {"iq3_s", kQK, 0, false},
    /*22*/ {"iq2_s", kQK, 0, false},
    /*23*/ {"iq4_xs", kQK, 0, false},
    /*24*/ {"i8", 1, 1, false},
    /*25*/ {"i16", 1, 2, false},
    /*26*/ {"i32", 1, 4, false},
    /*27*/ {"i64", 1, 8, false},
    /*28*/ {"f64", 1, 8, false},
    /*29*/ {"iq1_m", kQK, 0, false},
    /*30*/ {"bf16", 1, 2, true},
    /*31*/ {nullptr, 0, 0, false},
    /*32*/ {nullptr, 0, 0, false},
    /*33*/ {nullptr, 0, 0, false},
    /*34*/ {"tq1_0", kQK, 0, false},
    /*35*/ {"tq2_0", kQK, 0, false},
    /*36*/ {nullptr, 0, 0, false},
    /*37*/ {nullptr, 0, 0, false},
    /*38*/ {nullptr, 0, 0, false},
    /*39*/ {"mxfp4", 32, 0, false},
};

float halfAt(const uint8_t *p) {
  uint16_t bits;
  std::memcpy(&bits, p, 2);
  return f16BitsToFloat(bits);
}

/// Sub-block j's 6-bit scale and min of a q4_K / q5_K super-block.
void scaleMinK4(int j, const uint8_t *s, int &sc, int &m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

/// One block of `type`: the integers q (x = q * scale[g] + min[g]), one
/// scale and min per group of the block. Returns the groups per block.
int decodeBlock(GGMLType type, const uint8_t *b, int32_t *q, float *scale,
                float *min) {
  switch (type) {
  case GGMLType::Q4_0:
  case GGMLType::Q4_1: {
    bool offset = type == GGMLType::Q4_1;
    const uint8_t *qs = b + (offset ? 4 : 2);
    for (int j = 0; j < 16; ++j) {
      q[j] = qs[j] & 0xF;
      q[j + 16] = qs[j] >> 4;
    }
    if (!offset)
      for (int j = 0; j < 32; ++j)
        q[j] -= 8;
    scale[0] = halfAt(b);
    min[0] = offset ? halfAt(b + 2) : 0.0f;
    return 1;
  }
  case GGMLType::Q5_0:
  case GGMLType::Q5_1: {
    bool offset = type == GGMLType::Q5_1;
    const uint8_t *p = b + (offset ? 4 : 2);
    uint32_t qh;
    std::memcpy(&qh, p, 4);
    const uint8_t *qs = p + 4;
    for (int j = 0; j < 16; ++j) {
      q[j] = (qs[j] & 0xF) | (((qh >> j) & 1) << 4);
      q[j + 16] = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    }
    if (!offset)
      for (int j = 0; j < 32; ++j)
        q[j] -= 16;
    scale[0] = halfAt(b);
    min[0] = offset ? halfAt(b + 2) : 0.0f;
    return 1;
  }
  case GGMLType::Q8_0:
    for (int j = 0; j < 32; ++j)
      q[j] = static_cast<int8_t>(b[2 + j]);
    scale[0] = halfAt(b);
    min[0] = 0.0f;
    return 1;
  case GGMLType::Q4_K:
  case GGMLType::Q5_K: {
    bool five = type == GGMLType::Q5_K;
    float d = halfAt(b), dmin = halfAt(b + 2);
    const uint8_t *sc = b + 4;
    const uint8_t *qh = b + 16;
    const uint8_t *qs = b + (five ? 48 : 16);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        int lo = qs[32 * c + l] & 0xF, hi = qs[32 * c + l] >> 4;
        if (five) {
          lo |= ((qh[l] >> (2 * c)) & 1) << 4;
          hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
        }
        q[64 * c + l] = lo;
        q[64 * c + 32 + l] = hi;
      }
    }
    for (int j = 0; j < 8; ++j) {
      int s, m;
      scaleMinK4(j, sc, s, m);
      scale[j] = d * static_cast<float>(s);
      min[j] = -(dmin * static_cast<float>(m));
    }
    return 8;
  }
  case GGMLType::Q2_K: {
    const uint8_t *sc = b, *qs = b + 16;
    float d = halfAt(b + 80), dmin = halfAt(b + 82);
    for (int half = 0; half < 2; ++half)
      for (int j = 0; j < 4; ++j)
        for (int l = 0; l < 32; ++l)
          q[128 * half + 32 * j + l] = (qs[32 * half + l] >> (2 * j)) & 3;
    for (int s = 0; s < 16; ++s) {
      scale[s] = d * static_cast<float>(sc[s] & 0xF);
      min[s] = -(dmin * static_cast<float>(sc[s] >> 4));
    }
    return 16;
  }
  case GGMLType::Q3_K: {
    const uint8_t *hm = b, *qs = b + 32, *sc = b + 96;
    float d = halfAt(b + 108);
    for (int half = 0; half < 2; ++half)
      for (int j = 0; j < 4; ++j)
        for (int l = 0; l < 32; ++l) {
          int low = (qs[32 * half + l] >> (2 * j)) & 3;
          bool high = (hm[l] >> (4 * half + j)) & 1;
          q[128 * half + 32 * j + l] = low - (high ? 0 : 4);
        }
    for (int s = 0; s < 16; ++s) {
      int lowBits = s < 8 ? sc[s] & 0xF : sc[s - 8] >> 4;
      int highBits = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
      scale[s] = d * static_cast<float>((lowBits | (highBits << 4)) - 32);
      min[s] = 0.0f;
    }
    return 16;
  }
  case GGMLType::Q6_K: {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = reinterpret_cast<const int8_t *>(b + 192);
    float d = halfAt(b + 208);
    for (int half = 0; half < 2; ++half) {
      const uint8_t *l4 = ql + 64 * half, *h2 = qh + 32 * half;
      int32_t *out = q + 128 * half;
      for (int l = 0; l < 32; ++l) {
        out[l] = (l4[l] & 0xF) | ((h2[l] & 3) << 4);
        out[l + 32] = (l4[l + 32] & 0xF) | (((h2[l] >> 2) & 3) << 4);
        out[l + 64] = (l4[l] >> 4) | (((h2[l] >> 4) & 3) << 4);
        out[l + 96] = (l4[l + 32] >> 4) | (((h2[l] >> 6) & 3) << 4);
      }
    }
    for (int j = 0; j < 256; ++j)
      q[j] -= 32;
    for (int j = 0; j < 16; ++j) {
      scale[j] = d * static_cast<float>(sc[j]);
      min[j] = 0.0f;
    }
    return 16;
  }
  default:
    return 0;
  }
}

} // namespace

const GGMLTypeTraits *quench::quant::getGGMLTypeTraits(uint32_t id) {
  if (id >= sizeof(kTypes) / sizeof(kTypes[0]) || !kTypes[id].name)
    return nullptr;
  return &kTypes[id];
}

bool quench::quant::getNBitsForm(GGMLType type, NBitsForm &form) {
  switch (type) {
  case GGMLType::Q4_0:
    form = {4, 32, 8, false};
    return true;
  case GGMLType::Q4_1:
    form = {4, 32, 0, true};
    return true;
  case GGMLType::Q5_0:
  case GGMLType::Q8_0:
    form = {8, 32, 128, false};
    return true;
  case GGMLType::Q5_1:
    form = {8, 32, 128, true};
    return true;
  case GGMLType::Q4_K:
    form = {4, 32, 0, true};
    return true;
  case GGMLType::Q5_K:
    form = {8, 32, 128, true};
    return true;
  case GGMLType::Q6_K:
    form = {8, 16, 128, false};
    return true;
  case GGMLType::Q2_K: // 2-bit codes widened to 4 bits
    form = {4, 16, 0, true};
    return true;
  case GGMLType::Q3_K: // 3-bit q in [-4, 3] as 4-bit codes q + 8 (the
                       // default zero point of matmul_nbits)
    form = {4, 16, 8, false};
    return true;
  default:
    return false;
  }
}

bool quench::quant::unpackGGMLRows(GGMLType type, const uint8_t *blocks,
                                   int64_t rows, int64_t k, uint8_t *codes,
                                   float *scales, float *mins) {
  NBitsForm form;
  if (!getNBitsForm(type, form))
    return false;
  const GGMLTypeTraits &t = *getGGMLTypeTraits(static_cast<uint32_t>(type));
  int64_t perBlock = t.blockElems / form.group;
  int64_t groupBytes = form.group * form.bits / 8;
  int32_t q[kQK];
  float scale[16], min[16];
  uint8_t group[kQK];
  for (int64_t b = 0, nb = rows * (k / t.blockElems); b < nb; ++b) {
    decodeBlock(type, blocks + b * t.blockBytes, q, scale, min);
    for (int64_t g = 0; g < perBlock; ++g) {
      for (int64_t e = 0; e < form.group; ++e)
        group[e] = static_cast<uint8_t>(q[g * form.group + e] + form.zeroPoint);
      int64_t at = b * perBlock + g;
      packCodes(group, form.group, form.bits, codes + at * groupBytes);
      scales[at] = scale[g];
      if (form.hasMin)
        mins[at] = min[g];
    }
  }
  return true;
}

bool quench::quant::dequantizeGGML(GGMLType type, const uint8_t *data,
                                   int64_t n, float *out) {
  switch (type) {
  case GGMLType::F32:
    std::memcpy(out, data, n * sizeof(float));
    return true;
  case GGMLType::F16:
    for (int64_t i = 0; i < n; ++i)
      out[i] = halfAt(data + 2 * i);
    return true;
  case GGMLType::BF16:
    for (int64_t i = 0; i < n; ++i) {
      uint32_t bits = (uint32_t(data[2 * i + 1]) << 24) |
                      (uint32_t(data[2 * i]) << 16);
      std::memcpy(&out[i], &bits, 4);
    }
    return true;
  default:
    break;
  }
  NBitsForm form;
  if (!getNBitsForm(type, form))
    return false;
  int64_t groups = n / form.group;
  std::vector<uint8_t> codes(groups * form.group * form.bits / 8);
  std::vector<float> scales(groups), mins(groups);
  unpackGGMLRows(type, data, 1, n, codes.data(), scales.data(), mins.data());
  std::vector<uint8_t> q(form.group);
  for (int64_t g = 0; g < groups; ++g) {
    unpackCodes(codes.data() + g * form.group * form.bits / 8, form.group,
                form.bits, q.data());
    for (int64_t e = 0; e < form.group; ++e) {
      float v = static_cast<float>(int32_t(q[e]) - form.zeroPoint) * scales[g];
      if (form.hasMin)
        v += mins[g];
      out[g * form.group + e] = v;
    }
  }
  return true;
}

namespace {

/// `x` as f16 bits when it is exactly representable (finite), else false.
bool exactHalf(float x, uint16_t &bits) {
  bits = floatToF16Bits(x);
  return f16BitsToFloat(bits) == x;
}

std::string groupError(int64_t g, int64_t groupsPerRow, const char *what) {
  return "group " + std::to_string(g % groupsPerRow) + " of row " +
         std::to_string(g / groupsPerRow) + ": " + what;
}

} // namespace

std::string quench::quant::packGGMLRows(GGMLType type, int bits,
                                        const uint8_t *codes,
                                        const float *scales,
                                        const int32_t *zeroPoints,
                                        int64_t rows, int64_t k,
                                        uint8_t *blocks) {
  constexpr int64_t group = 32;
  if (k % group != 0)
    return "rows of " + std::to_string(k) + " elements are not whole blocks "
           "of 32";
  int want = type == GGMLType::Q8_0 ? 8 : 4;
  if (type != GGMLType::Q4_0 && type != GGMLType::Q4_1 &&
      type != GGMLType::Q8_0)
    return "not a type Quench exports to";
  if (bits != want)
    return std::to_string(bits) + "-bit codes do not fit " +
           getGGMLTypeTraits(uint32_t(type))->name;
  const int64_t blockBytes = getGGMLTypeTraits(uint32_t(type))->blockBytes;
  const int64_t groupsPerRow = k / group;
  for (int64_t g = 0, n = rows * groupsPerRow; g < n; ++g) {
    const uint8_t *q = codes + g * group;
    uint8_t *b = blocks + g * blockBytes;
    uint16_t d, m;
    if (!exactHalf(scales[g], d))
      return groupError(g, groupsPerRow,
                        "its scale is not exactly an f16 value (compile "
                        "with --scale-type=f16)");
    std::memcpy(b, &d, 2);
    switch (type) {
    case GGMLType::Q4_0:
    case GGMLType::Q4_1: {
      if (type == GGMLType::Q4_0 && zeroPoints[g] != 8)
        return groupError(g, groupsPerRow, "its zero point is not 8");
      if (type == GGMLType::Q4_1) {
        if (!exactHalf(-static_cast<float>(zeroPoints[g]) * scales[g], m))
          return groupError(g, groupsPerRow,
                            "-zero_point * scale is not exactly an f16 "
                            "value (q4_1's min)");
        std::memcpy(b + 2, &m, 2);
      }
      uint8_t *qs = b + (type == GGMLType::Q4_1 ? 4 : 2);
      for (int j = 0; j < 16; ++j)
        qs[j] = static_cast<uint8_t>((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
      break;
    }
    default: // Q8_0
      if (zeroPoints[g] != 128)
        return groupError(g, groupsPerRow, "its zero point is not 128");
      for (int j = 0; j < 32; ++j)
        b[2 + j] = static_cast<uint8_t>(int(q[j]) - 128);
      break;
    }
  }
  return "";
}
