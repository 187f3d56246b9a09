// Numerics of round-to-nearest weight quantization (lib/Quant/RTN.cpp).
#include "quench/Quant/RTN.h"

#include <gtest/gtest.h>

#include <cfenv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

using namespace quench::quant;

namespace {

TEST(RTN, RoundHalfToEven) {
  EXPECT_EQ(roundHalfToEven(0.5f), 0.0f);
  EXPECT_EQ(roundHalfToEven(1.5f), 2.0f);
  EXPECT_EQ(roundHalfToEven(2.5f), 2.0f);
  EXPECT_EQ(roundHalfToEven(-0.5f), -0.0f);
  EXPECT_EQ(roundHalfToEven(-1.5f), -2.0f);
  EXPECT_EQ(roundHalfToEven(-2.5f), -2.0f);
  EXPECT_EQ(roundHalfToEven(2.4999998f), 2.0f);
  EXPECT_EQ(roundHalfToEven(2.5000002f), 3.0f);
  EXPECT_EQ(roundHalfToEven(1e9f), 1e9f);
  EXPECT_TRUE(std::isnan(roundHalfToEven(NAN)));
  // Independent of the current rounding mode.
  std::fesetround(FE_UPWARD);
  EXPECT_EQ(roundHalfToEven(2.5f), 2.0f);
  EXPECT_EQ(roundHalfToEven(2.2f), 2.0f);
  std::fesetround(FE_TONEAREST);
  // Agrees with nearbyint (ties-to-even by default) on many values.
  std::mt19937 gen(1);
  std::uniform_real_distribution<float> d(-300.0f, 300.0f);
  for (int i = 0; i < 100000; ++i) {
    float x = std::round(d(gen) * 4.0f) / 4.0f; // many exact ties
    ASSERT_EQ(roundHalfToEven(x), std::nearbyint(x)) << x;
  }
}

TEST(RTN, HalfPrecision) {
  EXPECT_EQ(floatToF16Bits(1.0f), 0x3c00);
  EXPECT_EQ(floatToF16Bits(-2.0f), 0xc000);
  EXPECT_EQ(floatToF16Bits(65504.0f), 0x7bff);
  EXPECT_EQ(floatToF16Bits(1e6f), 0x7bff);  // saturates
  EXPECT_EQ(floatToF16Bits(-1e6f), 0xfbff);
  EXPECT_EQ(floatToF16Bits(INFINITY), 0x7c00);
  EXPECT_EQ(floatToF16Bits(std::ldexp(1.0f, -24)), 0x0001); // subnormal
  EXPECT_EQ(floatToF16Bits(std::ldexp(1.0f, -26)), 0x0000);
  // Ties to even: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10.
  EXPECT_EQ(floatToF16Bits(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(floatToF16Bits(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  // Every finite f16 value round-trips.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00)
      continue;
    float f = f16BitsToFloat(static_cast<uint16_t>(h));
    if (f == 0.0f)
      continue; // +-0 both fine
    ASSERT_EQ(floatToF16Bits(f), h) << std::hex << h;
  }
  // Nearest: the error is at most half an ulp.
  std::mt19937 gen(2);
  std::uniform_real_distribution<float> d(-1000.0f, 1000.0f);
  for (int i = 0; i < 10000; ++i) {
    float x = d(gen), r = roundToF16(x);
    float ulp = std::ldexp(1.0f, std::ilogb(r) - 10);
    ASSERT_LE(std::fabs(r - x), ulp / 2) << x;
  }
}

TEST(RTN, PackingRoundTrips) {
  std::mt19937 gen(3);
  for (int bits = 2; bits <= 8; ++bits) {
    for (size_t count : {size_t(1), size_t(7), size_t(32), size_t(33)}) {
      std::vector<uint8_t> codes(count), back(count);
      for (auto &c : codes)
        c = static_cast<uint8_t>(gen() % (1u << bits));
      std::vector<uint8_t> packed((count * bits + 7) / 8);
      packCodes(codes.data(), count, bits, packed.data());
      unpackCodes(packed.data(), count, bits, back.data());
      EXPECT_EQ(codes, back) << bits << " bits, " << count;
    }
  }
  // Layout: low nibble first (ONNX Runtime MatMulNBits), bit stream LSB
  // first for 3 bits.
  uint8_t four[2] = {0x3, 0xa}, out4[1];
  packCodes(four, 2, 4, out4);
  EXPECT_EQ(out4[0], 0xa3);
  uint8_t three[3] = {5, 3, 7}, out3[2];
  packCodes(three, 3, 3, out3);
  // 5 | 3 << 3 | 7 << 6 = 0x1dd
  EXPECT_EQ(out3[0], 0xdd);
  EXPECT_EQ(out3[1], 0x01);
  uint8_t two[4] = {1, 2, 3, 0}, out2[1];
  packCodes(two, 4, 2, out2);
  EXPECT_EQ(out2[0], 0x39);
}

TEST(RTN, SymmetricGroup) {
  float w[4] = {-1.0f, 0.5f, 0.25f, 0.0f};
  GroupParams p = chooseGroupParams(w, 4, 8, true, ScaleType::F32);
  EXPECT_EQ(p.zeroPoint, 128);
  EXPECT_FLOAT_EQ(p.scale, 1.0f / 127.0f);
  EXPECT_EQ(quantizeValue(-1.0f, p, 8), 1);   // -127 + 128
  EXPECT_EQ(quantizeValue(1.0f, p, 8), 255);  // 127 + 128
  EXPECT_EQ(quantizeValue(0.0f, p, 8), 128);
  EXPECT_EQ(quantizeValue(5.0f, p, 8), 255);  // saturates
  EXPECT_EQ(quantizeValue(-5.0f, p, 8), 0);
  // 4 bits: codes 1..15, scale max/7 (exact here); ties go to even.
  float w4[3] = {-1.75f, 0.375f, 0.625f};
  GroupParams p4 = chooseGroupParams(w4, 3, 4, true, ScaleType::F32);
  EXPECT_EQ(p4.zeroPoint, 8);
  EXPECT_EQ(p4.scale, 0.25f);
  EXPECT_EQ(quantizeValue(0.375f, p4, 4), 8 + 2); // 1.5 -> 2
  EXPECT_EQ(quantizeValue(0.625f, p4, 4), 8 + 2); // 2.5 -> 2
  EXPECT_EQ(quantizeValue(-1.75f, p4, 4), 1);
  // All zeros: scale 0 (zero stays exact, and the fused kernel's
  // s * sum(x q) - z * s * sum(x) is exactly 0); every value, even one
  // pushed in later (GPTQ) or a NaN, gets the zero point, no division by 0.
  float z[3] = {0, -0.0f, 0};
  for (ScaleType st : {ScaleType::F16, ScaleType::F32}) {
    GroupParams pz = chooseGroupParams(z, 3, 4, true, st);
    EXPECT_EQ(pz.scale, 0.0f);
    EXPECT_EQ(pz.zeroPoint, 8);
    for (float v : {0.0f, -0.0f, 3.0f, -1e30f, NAN, INFINITY})
      EXPECT_EQ(quantizeValue(v, pz, 4), 8);
    EXPECT_EQ(dequantizeValue(8, pz), 0.0f);
    GroupParams pa = chooseGroupParams(z, 3, 4, false, st);
    EXPECT_EQ(pa.scale, 0.0f);
    EXPECT_EQ(pa.zeroPoint, 0);
    EXPECT_EQ(quantizeValue(2.0f, pa, 4), 0);
  }
}

TEST(RTN, AsymmetricGroup) {
  float w[3] = {0.2f, 0.9f, 0.5f}; // all positive: range [0, 0.9]
  GroupParams p = chooseGroupParams(w, 3, 4, false, ScaleType::F32);
  EXPECT_EQ(p.zeroPoint, 0);
  EXPECT_FLOAT_EQ(p.scale, 0.9f / 15.0f);
  EXPECT_EQ(quantizeValue(0.9f, p, 4), 15);
  float v[2] = {-3.0f, 1.0f};
  GroupParams q = chooseGroupParams(v, 2, 8, false, ScaleType::F32);
  EXPECT_FLOAT_EQ(q.scale, 4.0f / 255.0f);
  EXPECT_EQ(q.zeroPoint, 191); // round(3 / (4/255)) = round(191.25)
  EXPECT_EQ(dequantizeValue(quantizeValue(0.0f, q, 8), q), 0.0f);
  EXPECT_EQ(quantizeValue(-3.0f, q, 8), 0);
  EXPECT_EQ(quantizeValue(1.0f, q, 8), 255);
}

TEST(RTN, F16ScalesAreUsedForTheCodes) {
  // The codes are chosen with the stored (rounded) scale.
  float w[2] = {-0.3333f, 0.1f};
  GroupParams p = chooseGroupParams(w, 2, 8, true, ScaleType::F16);
  EXPECT_EQ(p.scale, roundToF16(0.3333f / 127.0f));
  EXPECT_EQ(quantizeValue(0.1f, p, 8),
            128 + static_cast<int>(std::nearbyint(0.1f / p.scale)));
  // Tiny weights never get a zero scale.
  float tiny[1] = {1e-30f};
  GroupParams t = chooseGroupParams(tiny, 1, 4, true, ScaleType::F16);
  EXPECT_GT(t.scale, 0.0f);
}

TEST(RTN, MatrixErrorBound) {
  // |w - dequant(q(w))| <= scale / 2 for every element within the range.
  std::mt19937 gen(4);
  std::normal_distribution<float> d(0.0f, 0.05f);
  const int64_t rows = 7, cols = 100;
  std::vector<float> w(rows * cols);
  for (auto &x : w)
    x = d(gen);
  for (int bits : {2, 3, 4, 8})
    for (int64_t group : {int64_t(0), int64_t(32)})
      for (bool sym : {true, false}) {
        QuantizedMatrix m = quantizeMatrixRTN(w.data(), rows, cols, bits,
                                              group, sym, ScaleType::F32);
        EXPECT_EQ(m.groups, group ? 4 : 1);
        EXPECT_EQ(static_cast<int64_t>(m.packed.size()),
                  rows * m.groups * m.groupSize * bits / 8);
        EXPECT_EQ(m.zeroPoints.empty(), sym);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) {
            const GroupParams &p = m.params[r * m.groups + c / m.groupSize];
            float err = std::fabs(dequantizeAt(m, r, c) - w[r * cols + c]);
            ASSERT_LE(err, p.scale * 0.5f * 1.0001f)
                << bits << " bits, group " << group << ", sym " << sym;
          }
      }
}

// All-zero groups get scale 0 in the matrix, f16 and f32 scales, per row
// and in groups: the fused matmul_nbits kernel's per-group
// s * sum(x q) - (z s) * sum(x) is then exactly 0 for them, whatever x is.
TEST(RTN, AllZeroGroupsContributeExactlyZero) {
  const int64_t rows = 3, cols = 64;
  std::mt19937 gen(8);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> w(rows * cols), x(cols);
  for (auto &v : w)
    v = d(gen);
  for (auto &v : x)
    v = 100.0f * d(gen);
  for (int64_t c = 32; c < 64; ++c)
    w[1 * cols + c] = 0.0f; // row 1, group 1 (of 32)
  for (int64_t c = 0; c < cols; ++c)
    w[2 * cols + c] = 0.0f; // row 2: every group
  for (ScaleType st : {ScaleType::F16, ScaleType::F32})
    for (int64_t group : {int64_t(0), int64_t(32)})
      for (bool sym : {true, false})
        for (int bits : {4, 8}) {
          QuantizedMatrix m =
              quantizeMatrixRTN(w.data(), rows, cols, bits, group, sym, st);
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t g = 0; g < m.groups; ++g) {
              const GroupParams &p = m.params[r * m.groups + g];
              bool zero = r == 2 || (r == 1 && group == 32 && g == 1);
              EXPECT_EQ(m.scales[r * m.groups + g] == 0.0f, zero)
                  << r << " " << g;
              if (!zero)
                continue;
              // The kernel's reassociated group sum, in float.
              float sxq = 0.0f, sx = 0.0f;
              for (int64_t i = 0; i < m.groupSize; ++i) {
                int64_t c = g * m.groupSize + i;
                if (c >= cols)
                  break;
                float q = static_cast<float>(quantizeValue(
                    w[r * cols + c], p, bits));
                EXPECT_EQ(q, static_cast<float>(p.zeroPoint));
                EXPECT_EQ(dequantizeAt(m, r, c), 0.0f);
                sxq += x[c] * q;
                sx += x[c];
              }
              float y = p.scale * sxq -
                        (static_cast<float>(p.zeroPoint) * p.scale) * sx;
              EXPECT_EQ(y, 0.0f);
            }
        }
}

TEST(RTN, PaddedGroupsHoldTheZeroPoint) {
  float w[5] = {1, -1, 0.5f, 0.25f, 2};
  QuantizedMatrix m = quantizeMatrixRTN(w, 1, 5, 4, 0, true, ScaleType::F32);
  EXPECT_EQ(m.groupSize, 8);
  std::vector<uint8_t> codes(8);
  unpackCodes(m.packed.data(), 8, 4, codes.data());
  for (int i = 5; i < 8; ++i)
    EXPECT_EQ(codes[i], 8);
}

} // namespace
