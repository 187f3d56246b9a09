//===- GGMLBlocksTest.cpp - GGUF block formats against their definition ---===//
//
// Every block format Quench relays out (quant::unpackGGMLRows) must give,
// through its matmul_nbits form, exactly the values of the format's
// definition: the vectors were computed by test/e2e/gguf_model.py --vectors
// (NumPy, written from the format descriptions, independently of this
// code) from random blocks.
//
//===----------------------------------------------------------------------===//

#include "quench/Quant/GGMLBlocks.h"
#include "quench/Quant/RTN.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

using namespace quench::quant;

namespace {

#include "GGMLBlockVectors.inc"

/// Dequantizes `blocks` through the relayout (codes, scales, mins) and the
/// form's formula, and compares bit for bit with `expected`.
void checkType(GGMLType type, const uint8_t *blocks, size_t blockBytes,
               const float *expected, size_t count) {
  const GGMLTypeTraits *t = getGGMLTypeTraits(uint32_t(type));
  ASSERT_NE(t, nullptr);
  ASSERT_TRUE(t->supported);
  ASSERT_EQ(blockBytes % t->blockBytes, 0u);
  int64_t n = blockBytes / t->blockBytes * t->blockElems;
  ASSERT_EQ(size_t(n), count);
  std::vector<float> got(n);
  ASSERT_TRUE(dequantizeGGML(type, blocks, n, got.data()));
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(std::memcmp(&got[i], &expected[i], 4), 0)
        << t->name << " element " << i << ": " << got[i] << " vs "
        << expected[i];

  // The same blocks as rows of one block each: the relayout works row by
  // row; codes, scales and mins reproduce every value.
  NBitsForm form;
  ASSERT_TRUE(getNBitsForm(type, form));
  int64_t rows = blockBytes / t->blockBytes, k = t->blockElems;
  int64_t groups = rows * k / form.group;
  std::vector<uint8_t> codes(groups * form.group * form.bits / 8);
  std::vector<float> scales(groups), mins(groups);
  ASSERT_TRUE(unpackGGMLRows(type, blocks, rows, k, codes.data(),
                             scales.data(), mins.data()));
  std::vector<uint8_t> q(rows * k);
  unpackCodes(codes.data(), q.size(), form.bits, q.data());
  for (int64_t i = 0; i < rows * k; ++i) {
    float v = float(int32_t(q[i]) - form.zeroPoint) * scales[i / form.group];
    if (form.hasMin)
      v += mins[i / form.group];
    ASSERT_EQ(std::memcmp(&v, &expected[i], 4), 0)
        << t->name << " row-wise element " << i;
  }
}

#define GGML_CASE(NAME, ID)                                                    \
  TEST(GGMLBlocks, NAME) {                                                     \
    checkType(GGMLType(ID), k##NAME##Blocks, sizeof(k##NAME##Blocks),          \
              k##NAME##Values, sizeof(k##NAME##Values) / sizeof(float));       \
  }
GGML_BLOCK_VECTOR_CASES(GGML_CASE)

TEST(GGMLBlocks, TypeTable) {
  EXPECT_STREQ(getGGMLTypeTraits(12)->name, "q4_K");
  EXPECT_EQ(getGGMLTypeTraits(14)->blockBytes, 210);
  EXPECT_FALSE(getGGMLTypeTraits(16)->supported); // iq2_xxs
  EXPECT_EQ(getGGMLTypeTraits(4), nullptr);       // removed from ggml
  EXPECT_EQ(getGGMLTypeTraits(1000), nullptr);
  NBitsForm form;
  EXPECT_FALSE(getNBitsForm(GGMLType::F16, form));
  EXPECT_FALSE(getNBitsForm(GGMLType::Q8_K, form));
  EXPECT_TRUE(getGGMLTypeTraits(10)->supported); // q2_K
  EXPECT_EQ(getGGMLTypeTraits(10)->blockBytes, 84);
  EXPECT_TRUE(getGGMLTypeTraits(11)->supported); // q3_K
  EXPECT_EQ(getGGMLTypeTraits(11)->blockBytes, 110);
  // The importer gives matmul_nbits no zero points for types without a
  // min: their forms must use the op's default, 2^(bits-1).
  for (uint32_t id = 0; id < 40; ++id)
    if (getNBitsForm(GGMLType(id), form) && !form.hasMin)
      EXPECT_EQ(form.zeroPoint, 1 << (form.bits - 1))
          << getGGMLTypeTraits(id)->name;
}

TEST(GGMLBlocks, HalfAndBF16) {
  // 1.5 and -2 as f16 (0x3e00, 0xc000) and bf16 (0x3fc0, 0xc000).
  const uint8_t f16[] = {0x00, 0x3e, 0x00, 0xc0};
  const uint8_t bf16[] = {0xc0, 0x3f, 0x00, 0xc0};
  float out[2];
  ASSERT_TRUE(dequantizeGGML(GGMLType::F16, f16, 2, out));
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(out[1], -2.0f);
  ASSERT_TRUE(dequantizeGGML(GGMLType::BF16, bf16, 2, out));
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(out[1], -2.0f);
}

} // namespace

// Export: Quench's codes packed into q4_0 / q4_1 / q8_0 blocks read back
// (through the import's dequantization) as exactly Quench's values.
TEST(GGMLBlocks, PackRoundTrips) {
  const int64_t rows = 3, k = 64, groups = rows * k / 32;
  struct Case {
    GGMLType type;
    int bits;
    bool symmetric;
  };
  for (Case c : {Case{GGMLType::Q4_0, 4, true}, Case{GGMLType::Q4_1, 4, false},
                 Case{GGMLType::Q8_0, 8, true}}) {
    std::vector<uint8_t> codes(rows * k);
    std::vector<float> scales(groups);
    std::vector<int32_t> zps(groups);
    for (int64_t i = 0; i < rows * k; ++i)
      codes[i] = static_cast<uint8_t>((i * 7 + 3) % (1 << c.bits));
    for (int64_t g = 0; g < groups; ++g) {
      // (g + 1) / 1024: f16 values with short mantissas, so that q4_1's
      // min -zp * scale is one too.
      scales[g] = float(g + 1) / 1024.0f;
      zps[g] = c.symmetric ? (1 << (c.bits - 1)) : int32_t(g % 16);
    }
    const GGMLTypeTraits &t = *getGGMLTypeTraits(uint32_t(c.type));
    std::vector<uint8_t> blocks(groups * t.blockBytes);
    ASSERT_EQ(packGGMLRows(c.type, c.bits, codes.data(), scales.data(),
                           zps.data(), rows, k, blocks.data()),
              "")
        << t.name;
    std::vector<float> back(rows * k);
    ASSERT_TRUE(dequantizeGGML(c.type, blocks.data(), rows * k, back.data()));
    for (int64_t i = 0; i < rows * k; ++i) {
      float want = float(int(codes[i]) - zps[i / 32]) * scales[i / 32];
      ASSERT_EQ(back[i], want) << t.name << " element " << i;
    }
  }
}

TEST(GGMLBlocks, PackRefusesWhatDoesNotMap) {
  std::vector<uint8_t> codes(32, 8), blocks(64);
  float scale = 0.1f; // not an f16 value
  int32_t zp = 8;
  EXPECT_NE(packGGMLRows(GGMLType::Q4_0, 4, codes.data(), &scale, &zp, 1, 32,
                         blocks.data())
                .find("not exactly an f16"),
            std::string::npos);
  scale = 0.125f;
  zp = 7;
  EXPECT_NE(packGGMLRows(GGMLType::Q4_0, 4, codes.data(), &scale, &zp, 1, 32,
                         blocks.data())
                .find("zero point is not 8"),
            std::string::npos);
  EXPECT_NE(packGGMLRows(GGMLType::Q8_0, 4, codes.data(), &scale, &zp, 1, 32,
                         blocks.data())
                .find("4-bit codes do not fit q8_0"),
            std::string::npos);
  EXPECT_NE(packGGMLRows(GGMLType::Q4_K, 4, codes.data(), &scale, &zp, 1, 32,
                         blocks.data()),
            "");
  EXPECT_NE(packGGMLRows(GGMLType::Q4_0, 4, codes.data(), &scale, &zp, 1, 16,
                         blocks.data()),
            "");
  // q4_1's min -zp * scale must be an f16 value: -3 * 1025 / 1024 is not.
  scale = 1025.0f / 1024.0f;
  zp = 3;
  EXPECT_NE(packGGMLRows(GGMLType::Q4_1, 4, codes.data(), &scale, &zp, 1, 32,
                         blocks.data())
                .find("q4_1's min"),
            std::string::npos);
}
