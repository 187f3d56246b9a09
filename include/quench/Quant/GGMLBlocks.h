//===- GGMLBlocks.h - ggml tensor types and their block formats -*- C++ -*-===//
//
// The tensor types of GGUF files (ggml's type ids) and, for the
// block-quantized ones Quench compiles as they are, a lossless relayout of
// their blocks into the form of `quench.matmul_nbits` / `dequantize_nbits`:
//
//   value[k] = (code[k] - zeroPoint) * scale[g] + min[g],   g = k / group
//
// with `bits`-bit codes packed little-endian (packCodes), f32 scales and
// (for the types with an offset) f32 mins. Every block format's value is
// reproduced exactly: f16 super-scales times 6- or 8-bit sub-scales are
// exact in f32, codes are the block's integers shifted by a constant, and the
// value is computed with the operations, in the order, of the format's
// definition (a product, then a sum for the offset types). The 5- and 6-bit
// types are widened to 8-bit codes so that the fast 8-bit kernels apply
// (docs/gguf.md).
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_QUANT_GGMLBLOCKS_H
#define QUENCH_QUANT_GGMLBLOCKS_H

#include <cstdint>
#include <string>

namespace quench::quant {

/// ggml's tensor type ids (the values stored in GGUF tensor infos).
enum class GGMLType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
};

/// What the GGUF reader needs of a type: its name and block geometry.
struct GGMLTypeTraits {
  const char *name;    ///< ggml's name ("q4_K"); "type N" never returned
  int64_t blockElems;  ///< elements per block (1 for plain types)
  int64_t blockBytes;  ///< bytes per block (0: size unknown to Quench)
  bool supported;      ///< Quench compiles tensors of this type
};

/// The traits of ggml type `id`, or nullptr for an id ggml does not define.
/// Types ggml defines that Quench does not compile have `supported` false
/// (and a size only where Quench knows it).
const GGMLTypeTraits *getGGMLTypeTraits(uint32_t id);

/// The lossless matmul_nbits form of a block-quantized type.
struct NBitsForm {
  int bits;        ///< code width: 4 or 8
  int64_t group;   ///< elements sharing one scale (and min)
  int zeroPoint;   ///< subtracted from every code
  bool hasMin;     ///< the type adds a per-group offset
};

/// The form of `type`, or false for types that are not block-quantized
/// types Quench relays out (F32, F16, BF16, unsupported ones).
bool getNBitsForm(GGMLType type, NBitsForm &form);

/// Relays out `rows` rows of `k` elements of `type` (k a multiple of the
/// type's block) from ggml blocks at `blocks` into the NBitsForm: `codes`
/// receives rows * (k / group) * (group * bits / 8) bytes (each group's codes
/// packed with packCodes), `scales` and, for types with a min, `mins`
/// rows * (k / group) floats. Returns false for a type without an NBitsForm.
bool unpackGGMLRows(GGMLType type, const uint8_t *blocks, int64_t rows,
                    int64_t k, uint8_t *codes, float *scales, float *mins);

/// Dequantizes `n` elements of `type` (n a multiple of its block) into
/// `out`: F32, F16, BF16 converted, block types through unpackGGMLRows and
/// the NBitsForm's formula. Returns false for unsupported types.
bool dequantizeGGML(GGMLType type, const uint8_t *data, int64_t n,
                    float *out);

/// The inverse direction (export): packs `rows` rows of `k` elements of
/// Quench's group-quantized codes, value = (code - zeroPoint[g]) * scale[g]
/// with groups of 32 along a row, into blocks of `type` at `blocks`
/// (rows * k / 32 blocks). `codes` holds one unsigned code per byte,
/// `scales` and `zeroPoints` one per group (rows * k / 32). The mapping is
/// exact or refused:
///   q4_0: 4-bit codes, every zero point 8, scales exact in f16 (d = scale);
///   q4_1: 4-bit codes, d = scale and m = -zeroPoint * scale both exact in
///         f16 (then q * d + m is the same f32 value);
///   q8_0: 8-bit codes, every zero point 128, scales exact in f16.
/// Returns "" on success, else why the codes have no such blocks (naming
/// the first group that does not map); `blocks` is then unspecified.
std::string packGGMLRows(GGMLType type, int bits, const uint8_t *codes,
                         const float *scales, const int32_t *zeroPoints,
                         int64_t rows, int64_t k, uint8_t *blocks);

} // namespace quench::quant

#endif // QUENCH_QUANT_GGMLBLOCKS_H
