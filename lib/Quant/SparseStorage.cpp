//===- SparseStorage.cpp - compressed N:M weight storage ------------------===//
//
// Position selection and index packing of the compressed N:M storage
// (include/quench/Quant/SparseStorage.h, docs/sparsity.md).
//
//===----------------------------------------------------------------------===//

#include "quench/Quant/SparseStorage.h"

namespace quench::quant {

bool selectNMPositions(int64_t rows, int64_t cols, int keep, int group,
                       const std::function<bool(int64_t, int64_t)> &nonzero,
                       NMPositions &out, int64_t *badRow) {
  if (keep < 1 || keep >= group || group > kMaxCompressedGroup ||
      cols % group != 0)
    return false;
  const int64_t groups = cols / group;
  out.rows = rows;
  out.slots = groups * keep;
  out.columns.assign(rows * out.slots, 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      int32_t *slot = &out.columns[r * out.slots + g * keep];
      bool used[kMaxCompressedGroup] = {};
      int count = 0;
      for (int t = 0; t < group; ++t)
        if (nonzero(r, g * group + t)) {
          if (count == keep) {
            if (badRow)
              *badRow = r;
            return false;
          }
          used[t] = true;
          ++count;
        }
      // Fill the free slots with the lowest zero columns, then list all in
      // increasing order.
      for (int t = 0; t < group && count < keep; ++t)
        if (!used[t]) {
          used[t] = true;
          ++count;
        }
      int j = 0;
      for (int t = 0; t < group; ++t)
        if (used[t])
          slot[j++] = static_cast<int32_t>(g * group + t);
    }
  return true;
}

std::vector<uint8_t> packNMIndices(const NMPositions &pos, int group) {
  const int bits = nmIndexBits(group);
  const int64_t rowBytes = nmIndexBytesPerRow(pos.slots, group);
  std::vector<uint8_t> out(pos.rows * rowBytes, 0);
  for (int64_t r = 0; r < pos.rows; ++r)
    for (int64_t s = 0; s < pos.slots; ++s) {
      const int64_t bit = s * bits;
      const int idx = pos.columns[r * pos.slots + s] % group;
      out[r * rowBytes + bit / 8] |= static_cast<uint8_t>(idx << (bit % 8));
    }
  return out;
}

std::vector<uint8_t>
gatherNMNibbles(const NMPositions &pos,
                const std::function<uint8_t(int64_t, int64_t)> &code) {
  const int64_t rowBytes = nmNibbleBytesPerRow(pos.slots);
  std::vector<uint8_t> out(pos.rows * rowBytes, 0);
  for (int64_t r = 0; r < pos.rows; ++r)
    for (int64_t s = 0; s < pos.slots; ++s)
      out[r * rowBytes + s / 2] |= static_cast<uint8_t>(
          (code(r, pos.columns[r * pos.slots + s]) & 15) << (s % 2 * 4));
  return out;
}

std::vector<uint32_t>
mmaSpMetadata(int64_t n, int64_t k, int64_t kStep,
              const std::function<int(int64_t, int64_t, int64_t)> &index) {
  const int64_t steps = k / kStep, chunks = kStep / 16;
  std::vector<uint32_t> words(n / 16 * steps * 32);
  for (int64_t tile = 0; tile < n / 16; ++tile)
    for (int64_t s = 0; s < steps; ++s)
      for (int64_t lane = 0; lane < 32; ++lane) {
        const int64_t g = lane / 4, c = (lane % 4) % chunks;
        uint32_t word = 0;
        for (int64_t half = 0; half < 2; ++half) {
          const int64_t row = tile * 16 + g + 8 * half;
          for (int64_t q = 0; q < 4; ++q) {
            const int64_t group = (s * kStep + 16 * c) / 4 + q;
            const uint32_t nibble = (index(row, group, 0) & 3) |
                                    ((index(row, group, 1) & 3) << 2);
            word |= nibble << (16 * half + 4 * q);
          }
        }
        words[(tile * steps + s) * 32 + lane] = word;
      }
  return words;
}

} // namespace quench::quant
