//===- KQuantPanelsTest.cpp - 6-bit two-level-scale panels ----------------===//
//
// The q6_K blocks of the project's GGUF test vectors (test/e2e/
// gguf_model.py --vectors, NumPy from the format's definition) through the
// import's relayout (8-bit codes, f32 scales) and then the 6-bit panels of
// the kernel (quant::buildSixBitPanels) must give every value bit for bit.
//
//===----------------------------------------------------------------------===//

#include "quench/Quant/KQuantPanels.h"
#include "quench/Quant/GGMLBlocks.h"
#include "quench/Quant/RTN.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

using namespace quench::quant;

namespace {

#include "GGMLBlockVectors.inc"

/// The import's matmul_nbits operands for q6_K rows (one row per output
/// feature): codes [groups, 16, n] and scales [groups, n], n = `rows`.
void importQ6K(const uint8_t *blocks, int64_t rows, int64_t k,
               std::vector<uint8_t> &codes, std::vector<float> &scales) {
  int64_t groups = k / 16;
  std::vector<uint8_t> rc(rows * k);
  std::vector<float> rs(rows * groups), mins(rows * groups);
  ASSERT_TRUE(unpackGGMLRows(GGMLType::Q6_K, blocks, rows, k, rc.data(),
                             rs.data(), mins.data()));
  codes.assign(rows * k, 0);
  scales.assign(rows * groups, 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < k; ++i)
      codes[i * rows + r] = rc[r * k + i];
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < groups; ++g)
      scales[g * rows + r] = rs[r * groups + g];
}

TEST(KQuantPanels, Q6KVectorsExact) {
  const int64_t k = 256, rows = sizeof(kQ6_KBlocks) / 210;
  ASSERT_GE(rows, 2);
  ASSERT_EQ(sizeof(kQ6_KValues) / sizeof(float), size_t(rows * k));
  std::vector<uint8_t> codes;
  std::vector<float> scales;
  importQ6K(kQ6_KBlocks, rows, k, codes, scales);
  // Panels of 64 and of 16 features (padded: rows < nr), both bit orders.
  for (int variant = 0; variant < 4; ++variant) {
    bool bytes = variant / 2;
    int64_t nr = variant % 2 ? 64 : 16;
    SixBitPanels p;
    ASSERT_TRUE(buildSixBitPanels(codes.data(), scales.data(), k / 16, 16, rows,
                                  nr, 16, p, bytes));
    EXPECT_EQ(p.lo.size(), size_t(k / 8 * nr));
    EXPECT_EQ(p.hi.size(), size_t(k / 16 * nr));
    EXPECT_EQ(p.d.size(), size_t(nr));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < k; ++i) {
        float v = sixBitPanelValue(p, i, r);
        ASSERT_EQ(std::memcmp(&v, &kQ6_KValues[r * k + i], 4), 0)
            << "row " << r << " element " << i << ": " << v << " vs "
            << kQ6_KValues[r * k + i];
      }
    if (bytes) {
      // Byte t of the masked / shifted words is code 4 s + t: the int16
      // kernel's code vector for word step s of a group.
      for (int64_t s4 = 0; s4 < 4; ++s4)
        for (int64_t t = 0; t < 4; ++t) {
          int64_t j = 4 * s4 + t;
          uint32_t lo = p.lo[(j / 8) * nr], hi = p.hi[0];
          uint32_t lob = (lo >> (4 * (s4 % 2))) & 0x0F0F0F0Fu;
          int sh = 4 - 2 * int(s4);
          uint32_t hib = (sh >= 0 ? hi << sh : hi >> -sh) & 0x30303030u;
          uint32_t q = ((lob | hib) >> (8 * t)) & 0xFF;
          EXPECT_EQ(int32_t(q) + 96, int32_t(codes[j * rows]))
              << "code " << j << " of feature 0";
        }
    }
    // Padding features are zero.
    for (int64_t i = 0; i < k; ++i)
      EXPECT_EQ(sixBitPanelValue(p, i, nr - 1), 0.0f);
  }
}

TEST(KQuantPanels, FactorScales) {
  // d * sc for an f16 d (negative too) and int8 sc, -128 included.
  const float d = f16BitsToFloat(floatToF16Bits(-0.00731f));
  const int8_t want[4] = {-128, 5, 0, 127};
  float s[4];
  for (int i = 0; i < 4; ++i)
    s[i] = d * float(want[i]);
  uint16_t bits;
  int8_t sc[4];
  ASSERT_TRUE(factorTwoLevelScales(s, 4, bits, sc));
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(f16BitsToFloat(bits) * float(sc[i]), s[i]);
  // All zero.
  float z[3] = {0.0f, 0.0f, 0.0f};
  ASSERT_TRUE(factorTwoLevelScales(z, 3, bits, sc));
  EXPECT_EQ(bits, 0);
  // Ratios that are no integers of at most 8 bits, an f32 scale with more
  // mantissa than f16 times int8 can hold, infinities: refused.
  float bad1[2] = {1.0f, 1.0f / 3.0f};
  EXPECT_FALSE(factorTwoLevelScales(bad1, 2, bits, sc));
  float bad2[1] = {1.0f + 0x1p-20f};
  EXPECT_FALSE(factorTwoLevelScales(bad2, 1, bits, sc));
  float bad3[2] = {1.0f, INFINITY};
  EXPECT_FALSE(factorTwoLevelScales(bad3, 2, bits, sc));
  float bad4[2] = {1.0f, 1000.0f}; // ratio beyond int8
  EXPECT_FALSE(factorTwoLevelScales(bad4, 2, bits, sc));
}

TEST(KQuantPanels, RefusesOtherLayers) {
  const int64_t k = 256, n = 4;
  std::vector<uint8_t> codes(k * n, 128);
  std::vector<float> scales(k / 16 * n, 0.5f);
  SixBitPanels p;
  EXPECT_TRUE(
      buildSixBitPanels(codes.data(), scales.data(), k / 16, 16, n, 16, 16, p));
  codes[7] = 95; // below the 6-bit range of q6_K's codes
  EXPECT_FALSE(
      buildSixBitPanels(codes.data(), scales.data(), k / 16, 16, n, 16, 16, p));
  codes[7] = 160;
  EXPECT_FALSE(
      buildSixBitPanels(codes.data(), scales.data(), k / 16, 16, n, 16, 16, p));
  codes[7] = 159;
  scales[3] = 0.1f; // 0.5 / 0.1 is no integer ratio of f16 * int8
  EXPECT_FALSE(
      buildSixBitPanels(codes.data(), scales.data(), k / 16, 16, n, 16, 16, p));
  scales[3] = 0.5f;
  // Groups that do not fill whole super-blocks, groups not of 16 codes.
  EXPECT_FALSE(
      buildSixBitPanels(codes.data(), scales.data(), k / 16, 16, n, 16, 5, p));
  EXPECT_FALSE(
      buildSixBitPanels(codes.data(), scales.data(), k / 8, 8, n, 16, 16, p));
}

} // namespace
