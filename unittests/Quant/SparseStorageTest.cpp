// Compressed N:M storage (lib/Quant/SparseStorage.cpp): packing a pruned
// matrix and expanding it back gives the matrix, indices are increasing and
// distinct within a group, the bit layout of 2:4 (a nibble per group, the
// first index in its low bits: mma.sp's row metadata) and 4-bit indices of
// larger groups, groups with fewer nonzeros than slots, and matrices that
// are not N:M sparse.
#include "quench/Quant/Sparse.h"
#include "quench/Quant/SparseStorage.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

using namespace quench::quant;

namespace {

/// A random [rows, cols] matrix pruned to keep:group by magnitude.
std::vector<float> prunedMatrix(int64_t rows, int64_t cols, int keep,
                                int group, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> nd;
  std::vector<float> w(rows * cols);
  for (float &v : w)
    v = nd(gen);
  SparsityPattern p;
  p.kind = SparsityPattern::Kind::NM;
  p.n = keep;
  p.m = group;
  std::vector<uint8_t> mask = selectMagnitudeMask(w.data(), rows, cols, p);
  applyMask(w.data(), mask.data(), w.size());
  return w;
}

NMPositions positionsOf(const std::vector<float> &w, int64_t rows,
                        int64_t cols, int keep, int group) {
  NMPositions pos;
  EXPECT_TRUE(selectNMPositions(
      rows, cols, keep, group,
      [&](int64_t r, int64_t c) { return w[r * cols + c] != 0.0f; }, pos));
  return pos;
}

TEST(SparseStorage, RoundTripsEveryPattern) {
  const int64_t rows = 7;
  for (auto [keep, group] : {std::pair{1, 2}, std::pair{2, 4}, std::pair{1, 4},
                             std::pair{3, 4}, std::pair{4, 8}, std::pair{2, 8},
                             std::pair{8, 16}, std::pair{5, 16}}) {
    const int64_t cols = 4 * group;
    std::vector<float> w = prunedMatrix(rows, cols, keep, group, 7 + group);
    NMPositions pos = positionsOf(w, rows, cols, keep, group);
    ASSERT_EQ(pos.slots, cols / group * keep);
    std::vector<uint8_t> idx = packNMIndices(pos, group);
    EXPECT_EQ(static_cast<int64_t>(idx.size()),
              rows * nmIndexBytesPerRow(pos.slots, group));
    std::vector<float> vals = gatherNMValues(w.data(), cols, pos);
    std::vector<float> back =
        expandNM(vals.data(), idx.data(), rows, cols, keep, group);
    EXPECT_EQ(back, w) << keep << ":" << group;
    // Indices increasing within each group.
    const int64_t rowBytes = nmIndexBytesPerRow(pos.slots, group);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t s = 1; s < pos.slots; ++s)
        if (s % keep != 0)
          EXPECT_LT(nmIndexAt(&idx[r * rowBytes], s - 1, group),
                    nmIndexAt(&idx[r * rowBytes], s, group));
  }
}

TEST(SparseStorage, TwoFourBitLayout) {
  // Row: group 0 keeps columns 1 and 3, group 1 columns 0 and 2.
  std::vector<float> w = {0, 1.5f, 0, -2, 3, 0, 4, 0};
  NMPositions pos = positionsOf(w, 1, 8, 2, 4);
  std::vector<uint8_t> idx = packNMIndices(pos, 4);
  ASSERT_EQ(idx.size(), 1u);
  // Nibble 0 = 1 | 3 << 2, nibble 1 = 0 | 2 << 2.
  EXPECT_EQ(idx[0], (1 | 3 << 2) | (0 | 2 << 2) << 4);
  EXPECT_EQ(gatherNMValues(w.data(), 8, pos),
            (std::vector<float>{1.5f, -2, 3, 4}));
  EXPECT_EQ(nmIndexBits(4), 2);
  EXPECT_EQ(nmIndexBits(8), 4);
  EXPECT_EQ(nmIndexBits(16), 4);
}

TEST(SparseStorage, FourBitIndicesOfGroupsOfEight) {
  std::vector<float> w = {0, 0, 0, 0, 0, 0, 7, 9}; // 2:8: columns 6, 7
  NMPositions pos = positionsOf(w, 1, 8, 2, 8);
  std::vector<uint8_t> idx = packNMIndices(pos, 8);
  ASSERT_EQ(idx.size(), 1u);
  EXPECT_EQ(idx[0], 6 | 7 << 4);
}

TEST(SparseStorage, SparserGroupsFillWithZeros) {
  // One nonzero (column 2) in a 2:4 group, none in the next: the free slots
  // take the lowest zero columns, values 0.
  std::vector<float> w = {0, 0, 5, 0, 0, 0, 0, 0};
  NMPositions pos = positionsOf(w, 1, 8, 2, 4);
  EXPECT_EQ(pos.columns, (std::vector<int32_t>{0, 2, 4, 5}));
  std::vector<float> vals = gatherNMValues(w.data(), 8, pos);
  EXPECT_EQ(vals, (std::vector<float>{0, 5, 0, 0}));
  std::vector<uint8_t> idx = packNMIndices(pos, 4);
  EXPECT_EQ(expandNM(vals.data(), idx.data(), 1, 8, 2, 4), w);
}

TEST(SparseStorage, RejectsDenserGroupsAndBadShapes) {
  std::vector<float> w = {1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1};
  NMPositions pos;
  int64_t bad = -1;
  auto nz = [&](int64_t r, int64_t c) { return w[r * 8 + c] != 0.0f; };
  EXPECT_FALSE(selectNMPositions(2, 8, 2, 4, nz, pos, &bad));
  EXPECT_EQ(bad, 0);
  EXPECT_TRUE(selectNMPositions(2, 8, 4, 8, nz, pos, &bad) == false);
  EXPECT_EQ(bad, 1); // row 1's second group of 8 has 6 nonzeros
  EXPECT_FALSE(selectNMPositions(1, 6, 2, 4, nz, pos)); // cols % group
  EXPECT_FALSE(selectNMPositions(1, 32, 2, 32, nz, pos)); // group > 16
  EXPECT_FALSE(selectNMPositions(1, 8, 4, 4, nz, pos));   // keep == group
}

TEST(SparseStorage, Int8Values) {
  std::vector<int8_t> q = {0, -7, 0, 12, 0, 0, 127, -127};
  NMPositions pos;
  ASSERT_TRUE(selectNMPositions(
      1, 8, 2, 4, [&](int64_t, int64_t c) { return q[c] != 0; }, pos));
  std::vector<int8_t> vals = gatherNMValues(q.data(), 8, pos);
  EXPECT_EQ(vals, (std::vector<int8_t>{-7, 12, 127, -127}));
  std::vector<uint8_t> idx = packNMIndices(pos, 4);
  EXPECT_EQ(expandNM(vals.data(), idx.data(), 1, 8, 2, 4), q);
}


// 4-bit codes (zero point 8 = pruned): the kept codes two per byte per row,
// slot 2i in the low nibble; expanding nibbles and indices back gives the
// dense code matrix; an odd slot count leaves the last high nibble 0; a
// sparser group's filled slot holds the zero point.
TEST(SparseStorage, Int4Nibbles) {
  // Row 0: 2:4 with codes 3 and 15 in group 0, 0 and 9 in group 1; row 1:
  // group 0 has one nonzero (filled slot at column 0 holds 8).
  std::vector<uint8_t> q = {8, 3, 8, 15, 0, 8, 9, 8,
                            8, 8, 1, 8, 8, 12, 8, 14};
  NMPositions pos;
  ASSERT_TRUE(selectNMPositions(
      2, 8, 2, 4, [&](int64_t r, int64_t c) { return q[r * 8 + c] != 8; },
      pos));
  auto code = [&](int64_t r, int64_t c) { return q[r * 8 + c]; };
  std::vector<uint8_t> nib = gatherNMNibbles(pos, code);
  ASSERT_EQ(nib.size(), 4u); // 2 rows of ceil(4 / 2) bytes
  EXPECT_EQ(nib[0], 0xF3);   // slots 0, 1: codes 3 (low), 15 (high)
  EXPECT_EQ(nib[1], 0x90);   // codes 0, 9
  EXPECT_EQ(nib[2], 0x18);   // filled slot (column 0, code 8), code 1
  EXPECT_EQ(nib[3], 0xEC);
  std::vector<uint8_t> idx = packNMIndices(pos, 4);
  // Expand: signed values code - 8 at their columns, + 8 everywhere.
  for (int64_t r = 0; r < 2; ++r) {
    std::vector<int> dense(8, 8);
    for (int64_t s = 0; s < pos.slots; ++s)
      dense[s / 2 * 4 + nmIndexAt(idx.data() + r, s, 4)] =
          nmNibbleAt(nib.data() + r * nmNibbleBytesPerRow(pos.slots), s);
    for (int64_t c = 0; c < 8; ++c)
      EXPECT_EQ(dense[c], q[r * 8 + c]) << r << "," << c;
  }
  // Odd slot counts (1:4 of 12 columns: 3 slots) pad the high nibble.
  std::vector<uint8_t> q3 = {8, 8, 5, 8, 7, 8, 8, 8, 8, 8, 8, 8};
  NMPositions p3;
  ASSERT_TRUE(selectNMPositions(
      1, 12, 1, 4, [&](int64_t, int64_t c) { return q3[c] != 8; }, p3));
  std::vector<uint8_t> n3 =
      gatherNMNibbles(p3, [&](int64_t, int64_t c) { return q3[c]; });
  EXPECT_EQ(n3, (std::vector<uint8_t>{0x75, 0x08}));
  // A random 4:8 code matrix round-trips.
  std::mt19937 gen(7);
  const int64_t rows = 5, cols = 64;
  std::vector<uint8_t> big(rows * cols, 8);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < cols / 8; ++g)
      for (int j = 0; j < 4; ++j)
        big[r * cols + g * 8 + gen() % 8] = gen() % 16;
  NMPositions pb;
  ASSERT_TRUE(selectNMPositions(
      rows, cols, 4, 8,
      [&](int64_t r, int64_t c) { return big[r * cols + c] != 8; }, pb));
  std::vector<uint8_t> nb = gatherNMNibbles(
      pb, [&](int64_t r, int64_t c) { return big[r * cols + c]; });
  std::vector<uint8_t> ib = packNMIndices(pb, 8);
  const int64_t nbRow = nmNibbleBytesPerRow(pb.slots),
                ibRow = nmIndexBytesPerRow(pb.slots, 8);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<int> dense(cols, 8);
    for (int64_t s = 0; s < pb.slots; ++s)
      dense[s / 4 * 8 + nmIndexAt(ib.data() + r * ibRow, s, 8)] =
          nmNibbleAt(nb.data() + r * nbRow, s);
    for (int64_t c = 0; c < cols; ++c)
      ASSERT_EQ(dense[c], big[r * cols + c]) << r << "," << c;
  }
}

// mma.sp metadata words: lane 4 g + c holds row g's nibbles of columns
// [16 c, 16 c + 16) of the step in bits [0, 16) and row g + 8's in bits
// [16, 32); f16's lanes c = 2, 3 repeat c - 2.
TEST(SparseStorage, MmaSpMetadataLanes) {
  // Index of (row, group, slot): slot 0 in {0, 1, 2}, slot 1 above it.
  auto index = [](int64_t row, int64_t group, int64_t slot) {
    int first = static_cast<int>((row + group) % 3);
    return slot == 0 ? first : 3 - static_cast<int>(group % (3 - first));
  };
  auto nibbles = [&](int64_t row, int64_t group0) {
    uint32_t bits = 0;
    for (int q = 0; q < 4; ++q)
      bits |= static_cast<uint32_t>(index(row, group0 + q, 0) |
                                    (index(row, group0 + q, 1) << 2))
              << (4 * q);
    return bits;
  };
  // f16: 32 rows (2 tiles), K = 64 (2 steps of 32).
  std::vector<uint32_t> f16 = mmaSpMetadata(32, 64, 32, index);
  ASSERT_EQ(f16.size(), 2u * 2u * 32u);
  for (int64_t tile = 0; tile < 2; ++tile)
    for (int64_t s = 0; s < 2; ++s)
      for (int64_t lane = 0; lane < 32; ++lane) {
        int64_t g = lane / 4, c = lane % 4 % 2;
        int64_t group0 = (s * 32 + 16 * c) / 4;
        uint32_t want = nibbles(tile * 16 + g, group0) |
                        (nibbles(tile * 16 + g + 8, group0) << 16);
        EXPECT_EQ(f16[(tile * 2 + s) * 32 + lane], want)
            << "tile " << tile << " step " << s << " lane " << lane;
      }
  // int8: K = 128 (2 steps of 64), every lane its own 16 columns.
  std::vector<uint32_t> i8 = mmaSpMetadata(16, 128, 64, index);
  ASSERT_EQ(i8.size(), 2u * 32u);
  for (int64_t s = 0; s < 2; ++s)
    for (int64_t lane = 0; lane < 32; ++lane) {
      int64_t g = lane / 4, c = lane % 4;
      int64_t group0 = (s * 64 + 16 * c) / 4;
      EXPECT_EQ(i8[s * 32 + lane],
                nibbles(g, group0) | (nibbles(g + 8, group0) << 16));
    }
  // A known word: indices (0, 1) everywhere: nibble 0x4.
  std::vector<uint32_t> fixed =
      mmaSpMetadata(16, 32, 32, [](int64_t, int64_t, int64_t slot) {
        return static_cast<int>(slot);
      });
  EXPECT_EQ(fixed[0], 0x44444444u);
}

} // namespace

namespace {

// Bitmask storage: every element round-trips, masks mark exactly the
// nonzeros, the packed run holds them in order, partial last blocks.
TEST(SparseStorage, BitmaskRoundTripsInt8AndFloat) {
  std::mt19937 gen(3);
  for (int blockElems : {16, 64}) {
    for (int64_t count : {int64_t(64), int64_t(1000), int64_t(7)}) {
      std::vector<uint8_t> codes(count);
      std::vector<float> w(count);
      int64_t nnz = 0;
      for (int64_t i = 0; i < count; ++i) {
        bool keep = gen() % 2 == 0;
        codes[i] = keep ? uint8_t(gen() % 256) : uint8_t(128);
        w[i] = keep ? float(int(gen() % 200) - 100) : 0.0f;
        nnz += codes[i] != 128;
      }
      BitmaskBlocks<uint8_t> pc =
          packBitmaskBlocks(codes.data(), count, blockElems, uint8_t(128));
      EXPECT_EQ(static_cast<int64_t>(pc.values.size()), nnz);
      EXPECT_EQ(static_cast<int64_t>(pc.masks.size()),
                (count + blockElems - 1) / blockElems);
      for (int64_t i = 0; i < count; ++i)
        EXPECT_EQ(pc.masks[i / blockElems] >> (i % blockElems) & 1,
                  uint64_t(codes[i] != 128));
      EXPECT_EQ(expandBitmaskBlocks(pc, count, uint8_t(128)), codes);
      BitmaskBlocks<float> pf =
          packBitmaskBlocks(w.data(), count, blockElems, 0.0f);
      EXPECT_EQ(expandBitmaskBlocks(pf, count, 0.0f), w);
      // The packed run is the nonzeros in order.
      std::vector<float> nz;
      for (float v : w)
        if (v != 0.0f)
          nz.push_back(v);
      EXPECT_EQ(pf.values, nz);
    }
  }
}

TEST(SparseStorage, BitmaskBytesAndNibbles) {
  // 4096 x 14336 at half density, int8: 1/8 + 1/2 byte per weight.
  EXPECT_EQ(bitmaskStorageBytes(4096, 14336, 4096 * 7168, 8),
            4096 * 14336 / 8 + 4096 * 7168);
  EXPECT_EQ(bitmaskStorageBytes(1, 3, 3, 4), 1 + 2);
  std::vector<uint8_t> codes{1, 15, 0, 7, 9};
  std::vector<uint8_t> packed = packNibbles(codes);
  ASSERT_EQ(packed.size(), 3u);
  EXPECT_EQ(packed[0], 0xF1);
  EXPECT_EQ(packed[1], 0x70);
  EXPECT_EQ(packed[2], 0x09);
  EXPECT_EQ(unpackNibbles(packed, codes.size()), codes);
}

} // namespace
