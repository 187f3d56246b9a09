//===- RTN.h - round-to-nearest weight quantization numerics ----*- C++ -*-===//
//
// The numerical core of weight quantization, free of MLIR: rounding, scale
// and zero-point selection per group, bit packing. Passes
// (quench-quantize-weights) call these on constant data; unit tests check
// them directly (unittests/Quant).
//
// Storage convention (the one of ONNX Runtime's MatMulNBits, which
// quench.matmul_nbits follows): `bits`-bit codes are unsigned, 0 .. 2^bits-1,
// and dequantize as (q - zero_point) * scale. Symmetric quantization uses
// the implicit zero point 2^(bits-1); codes are packed as a little-endian
// bit stream (value i in bits [i*bits, (i+1)*bits), low bits first: two
// 4-bit values per byte, low nibble first).
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_QUANT_RTN_H
#define QUENCH_QUANT_RTN_H

#include <cstddef>
#include <cstdint>
#include <vector>

namespace quench::quant {

/// How scales are stored: their rounding is part of quantization (codes are
/// chosen with the stored scale, so that dequantization is consistent).
enum class ScaleType { F32, F16 };

/// Rounds half to even (IEEE roundTiesToEven), independent of the current
/// floating-point rounding mode.
float roundHalfToEven(float x);

/// Rounds to the nearest f16 value (ties to even) and back to float;
/// saturates to +-65504 and flushes nothing (subnormals are kept).
float roundToF16(float x);
/// IEEE binary16 bits of roundToF16(x).
uint16_t floatToF16Bits(float x);
/// The float value of IEEE binary16 bits.
float f16BitsToFloat(uint16_t bits);

/// A positive scale as stored: rounded to `type` and never below its
/// smallest positive value (zero is reserved for all-zero groups).
float storeScale(float s, ScaleType type);

/// Scale and zero point of one group.
struct GroupParams {
  float scale = 1.0f;   ///< as stored (already rounded to the scale type)
  int32_t zeroPoint = 0;
};

/// Chooses the parameters of one group of `n` weights for `bits`-bit codes.
/// Symmetric: zero point 2^(bits-1), scale = max|w| / (2^(bits-1) - 1), so
/// that codes span [1, 2^bits - 1] (the code 0 is unused, as in the usual
/// symmetric schemes). Asymmetric: scale = (max - min) / (2^bits - 1), with
/// 0 inside [min, max] so that zero stays exact, and zero point
/// round(-min / scale). A group whose weights are all zero gets scale 0
/// (zero point as usual for symmetric, 0 for asymmetric), so that every
/// dequantization of it, including the fused kernel's
/// s * sum(x q) - (z s) * sum(x), is exactly 0 (a nonzero scale with codes
/// equal to the zero point leaves ~1e-7 * z * sum|x| of rounding there).
/// Other scales are rounded to `scaleType` and never to zero (at least the
/// smallest f16 subnormal), so a zero scale means exactly an all-zero
/// group.
GroupParams chooseGroupParams(const float *w, size_t n, int bits,
                              bool symmetric, ScaleType scaleType);

/// The code of w: saturate(roundHalfToEven(w / scale) + zeroPoint) to
/// [0, 2^bits - 1]; the zero point when the scale is 0 (an all-zero group:
/// GPTQ may still push updates into it, which it cannot represent).
uint8_t quantizeValue(float w, const GroupParams &p, int bits);

/// (q - zeroPoint) * scale.
inline float dequantizeValue(uint8_t q, const GroupParams &p) {
  return static_cast<float>(static_cast<int32_t>(q) - p.zeroPoint) * p.scale;
}

/// Packs `codes` (each < 2^bits) into ceil(count * bits / 8) bytes of a
/// little-endian bit stream (see the file comment). `out` is overwritten.
void packCodes(const uint8_t *codes, size_t count, int bits, uint8_t *out);
/// Inverse of packCodes.
void unpackCodes(const uint8_t *packed, size_t count, int bits,
                 uint8_t *codes);

/// A [rows, cols] float matrix quantized row-wise in groups of `groupSize`
/// along cols (the last group of a row padded with zeros, whose codes are
/// the zero point), in quench.matmul_nbits layout.
struct QuantizedMatrix {
  int64_t rows = 0, cols = 0, groupSize = 0, groups = 0;
  int bits = 0;
  bool symmetric = true;
  /// [rows, groups, groupSize * bits / 8] bytes.
  std::vector<uint8_t> packed;
  /// [rows, groups] scales (as stored).
  std::vector<float> scales;
  /// [rows, ceil(groups * bits / 8)] packed zero points (asymmetric only).
  std::vector<uint8_t> zeroPoints;
  /// Per-group parameters, [rows, groups].
  std::vector<GroupParams> params;
};

/// Round-to-nearest quantization of a row-major [rows, cols] matrix.
/// groupSize 0 means one group per row (per output channel). Requires
/// 2 <= bits <= 8 and groupSize * bits a multiple of 8. Rows are split
/// over `threads` threads (0: the hardware concurrency; the result is the
/// same for every count).
QuantizedMatrix quantizeMatrixRTN(const float *w, int64_t rows, int64_t cols,
                                  int bits, int64_t groupSize, bool symmetric,
                                  ScaleType scaleType, unsigned threads = 1);

/// Builds a QuantizedMatrix from already chosen codes and group parameters
/// (what quantizeMatrixRTN and quantizeMatrixGPTQ share): `codes` is
/// row-major [rows, cols] (each < 2^bits), `params` [rows, groups] with
/// groups = ceil(cols / groupSize) (groupSize as in quantizeMatrixRTN: 0 is
/// one group per row). Padding codes are the group's zero point.
QuantizedMatrix packQuantizedMatrix(const uint8_t *codes,
                                    const GroupParams *params, int64_t rows,
                                    int64_t cols, int bits, int64_t groupSize,
                                    bool symmetric);

/// The largest group size accepted (2^24 input features). A group at least
/// as wide as a layer's input is one group per output channel (the
/// quantization pass makes it groupSize 0).
constexpr int64_t kMaxGroupSize = int64_t(1) << 24;

/// The stored group size for `groupSize` (0: the row, rounded up to a whole
/// number of bytes of codes for every bit width, i.e. a multiple of 8).
inline int64_t storedGroupSize(int64_t groupSize, int64_t cols) {
  return groupSize > 0 ? groupSize : (cols + 7) / 8 * 8;
}

/// Dequantizes element (r, c) of a QuantizedMatrix.
float dequantizeAt(const QuantizedMatrix &m, int64_t r, int64_t c);

} // namespace quench::quant

#endif // QUENCH_QUANT_RTN_H
