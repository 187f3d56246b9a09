//===- SparseStorage.h - compressed N:M weight storage ----------*- C++ -*-===//
//
// Packing of an N:M-pruned weight W [rows = N out, cols = K in] into its
// kept values plus the in-group index of each, free of MLIR like Sparse.h;
// quench-pack-sparse-weights calls it and the `quench.sparse_linear` op
// stores its result (docs/sparsity.md, "Compressed storage").
//
// Layout (per row, groups of `group` consecutive weights along K, `keep`
// slots per group): slot s = g * keep + j holds the j-th kept weight of
// group g, in increasing column order; its index (the column within the
// group, 0 .. group - 1) takes `indexBits` bits (2 for groups of at most 4,
// 4 for at most 16) at bit offset s * indexBits of the row's byte stream,
// low bits first. For 2:4 a group's two indices are one nibble, index 0 in
// its low bits: the per-row metadata of NVIDIA's mma.sp (sparse tensor
// cores), before the per-fragment interleave a GPU kernel makes. A group
// with fewer than `keep` nonzeros fills its slots with zero values at the
// lowest unused columns, so indices stay distinct and increasing.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_QUANT_SPARSESTORAGE_H
#define QUENCH_QUANT_SPARSESTORAGE_H

#include <cstdint>
#include <functional>
#include <vector>

namespace quench::quant {

/// The largest group of the compressed N:M storage (4-bit indices).
constexpr int kMaxCompressedGroup = 16;

/// Bits per index of groups of `group` weights: 2 up to 4, else 4.
inline int nmIndexBits(int group) { return group <= 4 ? 2 : 4; }

/// Bytes of one row's packed indices: `slots` indices of nmIndexBits.
inline int64_t nmIndexBytesPerRow(int64_t slots, int group) {
  return (slots * nmIndexBits(group) + 7) / 8;
}

/// The kept columns of an N:M row set: for every row and slot s = g * keep
/// + j (g < cols / group), the column of the j-th kept weight of group g.
struct NMPositions {
  int64_t rows = 0, slots = 0; ///< slots = cols / group * keep
  std::vector<int32_t> columns; ///< [rows, slots], absolute columns
};

/// Chooses the positions of a `keep`:`group` packing of a matrix whose
/// nonzeros `nonzero(row, col)` says: the nonzero columns of each group in
/// increasing order, then the lowest zero columns to fill the group's
/// `keep` slots. Needs cols % group == 0 and 1 <= keep < group <=
/// kMaxCompressedGroup. Returns false (and `badRow` set, when given) when a
/// group holds more than `keep` nonzeros: such a matrix is not N:M sparse.
bool selectNMPositions(int64_t rows, int64_t cols, int keep, int group,
                       const std::function<bool(int64_t, int64_t)> &nonzero,
                       NMPositions &out, int64_t *badRow = nullptr);

/// The packed indices of `pos` ([rows, nmIndexBytesPerRow] bytes; see the
/// file comment).
std::vector<uint8_t> packNMIndices(const NMPositions &pos, int group);

/// The index of slot `slot` in a row of packed indices.
inline int nmIndexAt(const uint8_t *row, int64_t slot, int group) {
  const int bits = nmIndexBits(group);
  const int64_t bit = slot * bits;
  return (row[bit / 8] >> (bit % 8)) & ((1 << bits) - 1);
}

/// The kept values: out[r, s] = w[r, pos.columns[r, s]] of a row-major
/// [rows, cols] matrix of T.
template <typename T>
std::vector<T> gatherNMValues(const T *w, int64_t cols,
                              const NMPositions &pos) {
  std::vector<T> out(pos.columns.size());
  for (int64_t r = 0; r < pos.rows; ++r)
    for (int64_t s = 0; s < pos.slots; ++s)
      out[r * pos.slots + s] = w[r * cols + pos.columns[r * pos.slots + s]];
  return out;
}

/// The dense row-major [rows, cols] matrix of packed values and indices
/// (zeros elsewhere): the inverse of the packing, for tests and checks.
template <typename T>
std::vector<T> expandNM(const T *values, const uint8_t *indices, int64_t rows,
                        int64_t cols, int keep, int group) {
  const int64_t slots = cols / group * keep;
  const int64_t rowBytes = nmIndexBytesPerRow(slots, group);
  std::vector<T> w(rows * cols, T(0));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t s = 0; s < slots; ++s) {
      int64_t c = s / keep * group + nmIndexAt(indices + r * rowBytes, s, group);
      w[r * cols + c] += values[r * slots + s];
    }
  return w;
}

//===----------------------------------------------------------------------===//
// Bitmask storage (unstructured sparsity; docs/sparsity.md, "Unstructured
// storage"): a run of elements cut into blocks of `blockElems` (at most 64);
// per block one mask word, bit e set when element e differs from `zero`,
// and the block's other elements packed in order right after those of the
// previous block. A kernel expands a block in registers from its mask and
// the packed run (AVX-512 VBMI2 vpexpandb / vpexpandd, the masked-off lanes
// filled with `zero`), advancing by the mask's population count.
//===----------------------------------------------------------------------===//

/// The masks and packed elements of a bitmask-compressed run.
template <typename T> struct BitmaskBlocks {
  int blockElems = 64;
  std::vector<uint64_t> masks; ///< one per block, bit e = element e kept
  std::vector<T> values;       ///< the kept elements, block after block
};

/// Compresses `count` elements of `data` in blocks of `blockElems` (1 ..
/// 64; the last block may be partial) keeping those that differ from
/// `zero`.
template <typename T>
BitmaskBlocks<T> packBitmaskBlocks(const T *data, int64_t count, int blockElems,
                                   T zero) {
  BitmaskBlocks<T> out;
  out.blockElems = blockElems;
  const int64_t blocks = (count + blockElems - 1) / blockElems;
  out.masks.assign(blocks, 0);
  for (int64_t b = 0; b < blocks; ++b)
    for (int e = 0; e < blockElems && b * blockElems + e < count; ++e) {
      T v = data[b * blockElems + e];
      if (!(v == zero)) {
        out.masks[b] |= uint64_t(1) << e;
        out.values.push_back(v);
      }
    }
  return out;
}

/// The `count` elements of `packed` expanded back (`zero` where a mask bit
/// is clear): the inverse of packBitmaskBlocks, what the kernels compute in
/// registers.
template <typename T>
std::vector<T> expandBitmaskBlocks(const BitmaskBlocks<T> &packed,
                                   int64_t count, T zero) {
  std::vector<T> out(count, zero);
  size_t next = 0;
  for (size_t b = 0; b < packed.masks.size(); ++b)
    for (int e = 0; e < packed.blockElems; ++e)
      if (packed.masks[b] >> e & 1)
        out[b * packed.blockElems + e] = packed.values.at(next++);
  return out;
}

/// Bytes of a [rows, cols] weight in bitmask storage with `nonzeros` kept
/// elements of `elementBits` bits: one mask bit per weight plus the packed
/// elements (4-bit ones two per byte), without scales.
inline int64_t bitmaskStorageBytes(int64_t rows, int64_t cols, int64_t nonzeros,
                                   int elementBits) {
  return (rows * cols + 7) / 8 + (nonzeros * elementBits + 7) / 8;
}

/// 4-bit codes (0 .. 15, one per byte) packed two per byte, the first in
/// the low nibble: the kept int4 values of a compressed run.
inline std::vector<uint8_t> packNibbles(const std::vector<uint8_t> &codes) {
  std::vector<uint8_t> out((codes.size() + 1) / 2, 0);
  for (size_t i = 0; i < codes.size(); ++i)
    out[i / 2] |= static_cast<uint8_t>((codes[i] & 15) << (i % 2 * 4));
  return out;
}

/// The `count` 4-bit codes of packNibbles' bytes, one per byte.
inline std::vector<uint8_t> unpackNibbles(const std::vector<uint8_t> &packed,
                                          size_t count) {
  std::vector<uint8_t> out(count);
  for (size_t i = 0; i < count; ++i)
    out[i] = packed.at(i / 2) >> (i % 2 * 4) & 15;
  return out;
}
/// The 4-bit codes (`code(r, c)`, 0 .. 15) of a matrix at the kept
/// positions `pos`, packed per row two per byte (slot 2i in the low nibble,
/// 2i + 1 in the high; rows of nmNibbleBytesPerRow bytes, the high nibble
/// after an odd last slot 0): the values of quench.sparse_linear with
/// value_bits = 4. A filled slot (a group with fewer nonzeros than `keep`)
/// holds the code of its column, i.e. the zero point of a pruned weight.
std::vector<uint8_t>
gatherNMNibbles(const NMPositions &pos,
                const std::function<uint8_t(int64_t, int64_t)> &code);

/// Bytes of one row of gatherNMNibbles: ceil(slots / 2).
inline int64_t nmNibbleBytesPerRow(int64_t slots) { return (slots + 1) / 2; }

/// The 4-bit code of slot `slot` in a row of gatherNMNibbles' bytes.
inline int nmNibbleAt(const uint8_t *row, int64_t slot) {
  return row[slot / 2] >> (slot % 2 * 4) & 15;
}

/// The sparsity metadata of a 2:4 [n, k] weight in the register order of
/// NVIDIA's `mma.sp` (sparsity selector 0; docs/gpu.md "Sparse tensor-core
/// GEMM"): `index(row, group, slot)` is the in-group index (0-3) of kept
/// value `slot` (0 or 1) of group `group` (k / 4 groups) of `row`. Per
/// 16-row tile, step of `kStep` columns (32: f16 m16n8k32; 64: int8
/// m16n8k64) and lane 4 g + c, one 32-bit word: bits [0, 16) the nibbles of
/// row g for columns [16 c, 16 c + 16) of the step, bits [16, 32) those of
/// row g + 8; a group's nibble holds its first index in the low two bits,
/// groups in increasing order (the row stream of packNMIndices). Lanes with
/// 16 c >= kStep (f16: c = 2, 3, which mma.sp does not read) repeat lane
/// c - 2's word. n is a multiple of 16, k of kStep (16 or more).
std::vector<uint32_t>
mmaSpMetadata(int64_t n, int64_t k, int64_t kStep,
              const std::function<int(int64_t, int64_t, int64_t)> &index);

} // namespace quench::quant

#endif // QUENCH_QUANT_SPARSESTORAGE_H
