//===- KQuantMatmul.h - the 6-bit two-level-scale kernel form --*- C++ -*-===//
//
// The form of the quantized matmul kernel for GGUF q6_K weights at their
// file's size (KQuantMatmul.cpp): 6-bit codes as a 4-bit and a 2-bit plane,
// an int8 scale per group of 16 and an f16 scale per super-block of 256,
// found again by a lossless relayout of the 8-bit codes and f32 scales that
// q6_K is imported as (quant::buildSixBitPanels). Private to lib/Codegen/CPU.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_LIB_CODEGEN_CPU_KQUANTMATMUL_H
#define QUENCH_LIB_CODEGEN_CPU_KQUANTMATMUL_H

#include "DequantMatmul.h"

#include <optional>

namespace quench::dequant {

/// The panels of the 6-bit form (quant::SixBitPanels as constants): `lo`
/// [N/nr, blocks, J/8, nr] i32, `hi` [N/nr, blocks, J/16, nr] i32, `sc`
/// [N/nr, blocks, nr] i8, `d` [N/nr, blocks/superGroups, nr] f16.
struct SixBitOperands {
  mlir::Value lo, hi, sc, d;
  int64_t superGroups = 16;
};

/// The 6-bit panels of the op's constant 8-bit `codes` ([blocks, J, N])
/// and f32 `scales` ([blocks, N]), implicit zero point 128, for panels of
/// `nr` features: nullopt, creating nothing, unless every code is in [96,
/// 159] and the scales factor exactly per super-block of 256 codes (the
/// q6_K layout; quant::buildSixBitPanels).
/// `bytes`: the int16 kernel's bit order (quant::SixBitPanels::bytes).
std::optional<SixBitOperands> panelizeSixBit(mlir::RewriterBase &rw,
                                             mlir::Value codes,
                                             mlir::Value scales, int64_t nr,
                                             bool bytes);

/// The kernel's tiles over `out` ([R, N] f32) for the 6-bit form: x as in
/// `d` ([R, blocks, J, 1] float), register tiles of `mr` rows and `nv`
/// vectors of 16 lanes (nv * 16 == d.nr). Float activations: codes
/// converted by two table lookups (kPermuteIntrinsic, which the caller
/// declares). With `d.int16` (panels in the byte order, d.xh / xl / amax /
/// qsum built by the caller for 8-bit codes): code bytes assembled from the
/// planes and multiplied by vpdpbusd (kDotIntrinsic512). Returns the new
/// `out`.
mlir::Value buildSixBitKernel(mlir::RewriterBase &rw, mlir::Location loc,
                              const DequantOperands &d, const SixBitOperands &k,
                              mlir::Value out, int64_t mr, int64_t nv);

} // namespace quench::dequant

#endif // QUENCH_LIB_CODEGEN_CPU_KQUANTMATMUL_H
