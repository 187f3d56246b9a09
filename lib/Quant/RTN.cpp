//===- RTN.cpp - round-to-nearest weight quantization numerics ------------===//

#include "quench/Quant/RTN.h"

#include "Parallel.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>

using namespace quench::quant;

float quench::quant::roundHalfToEven(float x) {
  // |x| >= 2^23 is already an integer (or inf/NaN).
  if (!(std::fabs(x) < 8388608.0f))
    return x;
  // In integers (exact below 2^23, and no libm call: this runs once per
  // weight and candidate in AWQ's and the bits budget's searches): the
  // truncation, then up (away from zero) past the half, and at the half
  // only from an odd integer. -0.0 and ties to 0 keep their sign.
  int32_t i = static_cast<int32_t>(x);
  float frac = std::fabs(x - static_cast<float>(i));
  if (frac > 0.5f || (frac == 0.5f && (i & 1)))
    i += x < 0 ? -1 : 1;
  return i == 0 ? std::copysign(0.0f, x) : static_cast<float>(i);
}

static uint32_t floatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

static float bitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

uint16_t quench::quant::floatToF16Bits(float f) {
  uint32_t x = floatBits(f);
  uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) // inf / NaN
    return sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u);
  // 65520 and above round to infinity in f16: saturate to the largest
  // finite value instead.
  if (ax >= 0x477ff000u)
    return sign | 0x7bffu;
  if (ax < 0x38800000u) { // below 2^-14: f16 subnormal (or zero)
    float m = roundHalfToEven(bitsFloat(ax) * 16777216.0f); // / 2^-24
    return sign | static_cast<uint16_t>(m);
  }
  uint32_t mant = ax & 0x7fffffu;
  uint32_t exp = (ax >> 23) - 127 + 15;
  uint32_t h = (exp << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
    ++h; // may carry into the exponent: still correct
  return sign | static_cast<uint16_t>(h);
}

float quench::quant::f16BitsToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) {
    float v = static_cast<float>(mant) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  if (exp == 31)
    return bitsFloat(sign | 0x7f800000u | (mant << 13));
  return bitsFloat(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

float quench::quant::roundToF16(float x) {
  return f16BitsToFloat(floatToF16Bits(x));
}

float quench::quant::storeScale(float s, ScaleType type) {
  if (type == ScaleType::F16) {
    s = roundToF16(s);
    return std::max(s, 1.0f / 16777216.0f); // smallest f16 subnormal
  }
  return std::max(s, std::numeric_limits<float>::denorm_min());
}

GroupParams quench::quant::chooseGroupParams(const float *w, size_t n,
                                             int bits, bool symmetric,
                                             ScaleType scaleType) {
  assert(bits >= 2 && bits <= 8);
  GroupParams p;
  if (symmetric) {
    float amax = 0.0f;
    for (size_t i = 0; i < n; ++i)
      amax = std::max(amax, std::fabs(w[i]));
    float qmax = static_cast<float>((1 << (bits - 1)) - 1);
    // An all-zero group gets scale 0 (see RTN.h).
    p.scale = amax > 0.0f ? storeScale(amax / qmax, scaleType) : 0.0f;
    p.zeroPoint = 1 << (bits - 1);
    return p;
  }
  float lo = 0.0f, hi = 0.0f; // zero stays representable exactly
  for (size_t i = 0; i < n; ++i) {
    lo = std::min(lo, w[i]);
    hi = std::max(hi, w[i]);
  }
  if (hi == lo) { // all zeros (lo <= 0 <= hi)
    p.scale = 0.0f;
    p.zeroPoint = 0;
    return p;
  }
  float levels = static_cast<float>((1 << bits) - 1);
  p.scale = storeScale((hi - lo) / levels, scaleType);
  float zp = roundHalfToEven(-lo / p.scale);
  p.zeroPoint = static_cast<int32_t>(std::clamp(zp, 0.0f, levels));
  return p;
}

uint8_t quench::quant::quantizeValue(float w, const GroupParams &p, int bits) {
  // A zero scale represents only 0: every code is the zero point (never a
  // division by zero).
  if (p.scale == 0.0f)
    return static_cast<uint8_t>(p.zeroPoint);
  float levels = static_cast<float>((1 << bits) - 1);
  float q = roundHalfToEven(w / p.scale) + static_cast<float>(p.zeroPoint);
  if (std::isnan(q))
    q = static_cast<float>(p.zeroPoint);
  return static_cast<uint8_t>(std::clamp(q, 0.0f, levels));
}

void quench::quant::packCodes(const uint8_t *codes, size_t count, int bits,
                              uint8_t *out) {
  size_t bytes = (count * bits + 7) / 8;
  std::memset(out, 0, bytes);
  for (size_t i = 0; i < count; ++i) {
    uint32_t v = codes[i] & ((1u << bits) - 1u);
    size_t bit = i * bits;
    out[bit / 8] |= static_cast<uint8_t>(v << (bit % 8));
    if (bit % 8 + bits > 8)
      out[bit / 8 + 1] |= static_cast<uint8_t>(v >> (8 - bit % 8));
  }
}

void quench::quant::unpackCodes(const uint8_t *packed, size_t count, int bits,
                                uint8_t *codes) {
  for (size_t i = 0; i < count; ++i) {
    size_t bit = i * bits;
    uint32_t v = packed[bit / 8] >> (bit % 8);
    if (bit % 8 + bits > 8)
      v |= static_cast<uint32_t>(packed[bit / 8 + 1]) << (8 - bit % 8);
    codes[i] = static_cast<uint8_t>(v & ((1u << bits) - 1u));
  }
}

QuantizedMatrix quench::quant::packQuantizedMatrix(
    const uint8_t *codes, const GroupParams *params, int64_t rows,
    int64_t cols, int bits, int64_t groupSize, bool symmetric) {
  assert(bits >= 2 && bits <= 8 && rows > 0 && cols > 0);
  QuantizedMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.bits = bits;
  m.symmetric = symmetric;
  m.groupSize = storedGroupSize(groupSize, cols);
  assert(m.groupSize * bits % 8 == 0);
  m.groups = (cols + m.groupSize - 1) / m.groupSize;
  int64_t groupBytes = m.groupSize * bits / 8;
  int64_t zpBytes = (m.groups * bits + 7) / 8;
  m.packed.assign(rows * m.groups * groupBytes, 0);
  m.scales.assign(rows * m.groups, 0.0f);
  m.params.assign(params, params + rows * m.groups);
  if (!symmetric)
    m.zeroPoints.assign(rows * zpBytes, 0);
  std::vector<uint8_t> group(m.groupSize), zps(m.groups);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < m.groups; ++g) {
      const GroupParams &p = params[r * m.groups + g];
      int64_t c0 = g * m.groupSize;
      int64_t len = std::min(m.groupSize, cols - c0);
      for (int64_t i = 0; i < m.groupSize; ++i)
        group[i] = i < len ? codes[r * cols + c0 + i]
                           : static_cast<uint8_t>(p.zeroPoint);
      packCodes(group.data(), m.groupSize, bits,
                &m.packed[(r * m.groups + g) * groupBytes]);
      m.scales[r * m.groups + g] = p.scale;
      zps[g] = static_cast<uint8_t>(p.zeroPoint);
    }
    if (!symmetric)
      packCodes(zps.data(), m.groups, bits, &m.zeroPoints[r * zpBytes]);
  }
  return m;
}

QuantizedMatrix quench::quant::quantizeMatrixRTN(const float *w, int64_t rows,
                                                 int64_t cols, int bits,
                                                 int64_t groupSize,
                                                 bool symmetric,
                                                 ScaleType scaleType,
                                                 unsigned threads) {
  assert(bits >= 2 && bits <= 8 && rows > 0 && cols > 0);
  int64_t gs = storedGroupSize(groupSize, cols);
  int64_t groups = (cols + gs - 1) / gs;
  std::vector<uint8_t> codes(rows * cols);
  std::vector<GroupParams> params(rows * groups);
  detail::parallelFor(threads, rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t g = 0; g < groups; ++g) {
        int64_t c0 = g * gs;
        int64_t len = std::min(gs, cols - c0);
        const float *src = w + r * cols + c0;
        GroupParams p =
            chooseGroupParams(src, len, bits, symmetric, scaleType);
        params[r * groups + g] = p;
        for (int64_t i = 0; i < len; ++i)
          codes[r * cols + c0 + i] = quantizeValue(src[i], p, bits);
      }
    }
  });
  return packQuantizedMatrix(codes.data(), params.data(), rows, cols, bits,
                             groupSize, symmetric);
}

float quench::quant::dequantizeAt(const QuantizedMatrix &m, int64_t r,
                                  int64_t c) {
  int64_t g = c / m.groupSize, i = c % m.groupSize;
  int64_t groupBytes = m.groupSize * m.bits / 8;
  const uint8_t *group = &m.packed[(r * m.groups + g) * groupBytes];
  int64_t bit = i * m.bits;
  uint32_t v = group[bit / 8] >> (bit % 8);
  if (bit % 8 + m.bits > 8)
    v |= static_cast<uint32_t>(group[bit / 8 + 1]) << (8 - bit % 8);
  uint8_t q = static_cast<uint8_t>(v & ((1u << m.bits) - 1u));
  return dequantizeValue(q, m.params[r * m.groups + g]);
}
