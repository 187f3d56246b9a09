//===- KQuantPanels.h - two-level scales and 6-bit code panels -*- C++ -*-===//
//
// The lossless compile-time relayout behind the 6-bit two-level-scale form
// of the quantized matmul kernel (lib/Codegen/CPU/KQuantMatmul.cpp): GGUF's
// q6_K blocks reach `quench.matmul_nbits` as 8-bit codes (q + 96, zero point
// 128) with one f32 scale per group of 16 (the block's f16 `d` times its
// int8 sub-scale). This file finds those two levels again from the f32
// scales (an f16 per super-block times an int8 per group, exactly) and packs
// the 6-bit codes as a 4-bit and a 2-bit plane, in panels of output
// features: 6.56 bits per weight, the file's size, instead of 10.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_QUANT_KQUANTPANELS_H
#define QUENCH_QUANT_KQUANTPANELS_H

#include <cstdint>
#include <vector>

namespace quench::quant {

/// Factors the `count` scales `s` as d * sc[i] with d an f16 value (returned
/// as its bits in `d`) and sc[i] in [-128, 127], such that the f32 product
/// d * sc[i] is exactly s[i] (so the kernel recomputes every scale bit for
/// bit). All-zero scales give d = 0. Returns false when no such pair exists
/// (non-finite scales, ratios that are no small integers, ...).
bool factorTwoLevelScales(const float *s, int64_t count, uint16_t &d,
                          int8_t *sc);

/// 6-bit codes and two-level scales in panels of `nr` output features (see
/// buildSixBitPanels). Index `p` is the panel, `b` the group (of `jn`
/// codes along K), `c` the feature in the panel; padding features are
/// zero (codes 0, scales 0).
struct SixBitPanels {
  int64_t panels = 0, blocks = 0, jn = 0, nr = 0, superGroups = 0;
  /// The bit order inside the words: false, the float kernel's (code t of a
  /// word in its bits from t * width up); true, the int16 (VNNI) kernel's,
  /// byte-major: code t of a lo word at bits 8 (t % 4) + 4 (t / 4), of a
  /// hi word at bits 8 (t % 4) + 2 (t / 4), so that masking and shifting a
  /// word gives 4 whole bytes of codes k, k + 1, k + 2, k + 3.
  bool bytes = false;
  /// [panels, blocks, jn / 8, nr]: word (p, b, w, c) holds the low 4 bits of
  /// the 6-bit code of k = b * jn + 8 w + t, t < 8 (see `bytes`).
  std::vector<uint32_t> lo;
  /// [panels, blocks, jn / 16, nr]: word (p, b, u, c) holds the high 2 bits
  /// of the code of k = b * jn + 16 u + t, t < 16.
  std::vector<uint32_t> hi;
  /// [panels, blocks, nr]: the group's int8 sub-scale.
  std::vector<int8_t> sc;
  /// [panels, blocks / superGroups, nr]: the super-block's f16 scale (bits).
  std::vector<uint16_t> d;
};

/// Packs the codes [blocks, jn, n] (one byte each, value (code - 128) *
/// scales[b, n], the form q6_K is imported in) into SixBitPanels: codes
/// must lie in [96, 159] (the 6-bit code is code - 96, the value (q6 - 32) *
/// scale), `jn` must be a multiple of 16 and `blocks` of `superGroups`, and
/// the scales of each feature's run of `superGroups` groups must factor
/// (factorTwoLevelScales). Returns false, leaving `out` unspecified, when
/// any of this fails: the caller keeps the 8-bit form.
bool buildSixBitPanels(const uint8_t *codes, const float *scales,
                       int64_t blocks, int64_t jn, int64_t n, int64_t nr,
                       int64_t superGroups, SixBitPanels &out,
                       bool bytes = false);

/// The weight at K index `k` and feature `col` as the kernel computes it:
/// (q6 - 32) * (f32(d) * sc), from the panels alone (for tests).
float sixBitPanelValue(const SixBitPanels &p, int64_t k, int64_t col);

} // namespace quench::quant

#endif // QUENCH_QUANT_KQUANTPANELS_H
