//===- HQQ.h - half-quadratic weight quantization ---------------*- C++ -*-===//
//
// HQQ (Badri & Shaji 2023, "Half-Quadratic Quantization of Large Machine
// Learning Models"): data-free choice of each group's scale and zero point
// that minimizes a robust l_p norm (p < 1) of the weight error
// W - dequant(Q(W)), instead of RTN's min/max range. The l_p norm with
// p < 1 lets a few weights (outliers, or the extremes of the range) take a
// large error so that the bulk of the group is represented finely.
//
// The problem min_{s,z} |W - s (Q(W; s, z) - z)|_p^p is solved by
// half-quadratic splitting: an auxiliary error variable W_e is introduced,
// and the method alternates
//   W_e <- shrink_p(W - dequant, beta)          (generalized soft threshold)
//   (s, z) <- least squares fit of W - W_e by s (Q - z)   (closed form)
// with beta growing by `betaGrowth` each iteration, stopping early when the
// error stops falling.
//
// Differences to the paper, all forced by the storage format (RTN.h,
// quench.matmul_nbits): zero points are stored as `bits`-bit integer codes
// and scales as f16 (or f32), so every iterate is projected onto the
// stored form (zero point rounded and clamped to [0, 2^bits - 1], the scale
// refitted for that zero point and rounded to the scale type) and its codes
// are chosen from the stored parameters, exactly as the kernels dequantize
// them. With an integer zero point the paper's zero-only update can hardly
// move, so the scale is optimized too (the paper's zero-only variant is
// `optimizeScale = false`). Symmetric groups (zero point fixed at
// 2^(bits-1)) optimize the scale only. The result is the best stored
// iterate by the l_p objective, RTN's parameters (the starting point)
// included: HQQ is never worse than RTN on its objective.
//
// Errors are measured in units of the group's RTN step, so the defaults do
// not depend on the weights' magnitude. Deterministic; free of MLIR.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_QUANT_HQQ_H
#define QUENCH_QUANT_HQQ_H

#include "quench/Quant/RTN.h"

#include <cstddef>
#include <cstdint>

namespace quench::quant {

/// Tuning knobs of HQQ.
struct HQQOptions {
  /// The p of the l_p objective, in (0, 2]; the paper uses 0.7.
  float lpNorm = 0.7f;
  /// Maximum number of iterations.
  int iterations = 20;
  /// Initial penalty of the splitting, in units of the RTN step (the error
  /// threshold of the first shrink is beta^(-1/(2-p)) steps).
  float beta = 10.0f;
  /// Growth factor of beta per iteration.
  float betaGrowth = 1.01f;
  /// Stop after this many iterations without a lower objective.
  int patience = 3;
  /// Asymmetric groups: optimize the scale as well as the zero point.
  bool optimizeScale = true;
  /// Threads of quantizeMatrixHQQ (0: the hardware concurrency); the result
  /// is the same for every count (groups are independent).
  unsigned threads = 0;
};

/// sum_i |w_i - dequant(quantize(w_i))|^p over a group with the stored
/// parameters `p` (RTN.h's quantizeValue / dequantizeValue).
double lpError(const float *w, size_t n, const GroupParams &params, int bits,
               float p);

/// HQQ's parameters of one group of `n` weights (same contract as
/// chooseGroupParams: an all-zero group gets scale 0; the scale is stored
/// as `scaleType`; symmetric keeps the zero point 2^(bits-1)). Codes are
/// then quantizeValue(w, params, bits).
GroupParams chooseGroupParamsHQQ(const float *w, size_t n, int bits,
                                 bool symmetric, ScaleType scaleType,
                                 const HQQOptions &options = {});

/// HQQ quantization of a row-major [rows, cols] matrix (the arguments and
/// layout of quantizeMatrixRTN).
QuantizedMatrix quantizeMatrixHQQ(const float *w, int64_t rows, int64_t cols,
                                  int bits, int64_t groupSize, bool symmetric,
                                  ScaleType scaleType,
                                  const HQQOptions &options = {});

} // namespace quench::quant

#endif // QUENCH_QUANT_HQQ_H
