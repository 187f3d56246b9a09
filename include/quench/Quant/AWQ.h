//===- AWQ.h - activation-aware weight quantization numerics ----*- C++ -*-===//
//
// The numerical core of AWQ (Lin et al. 2023), free of MLIR: the search of
// per-input-channel scales s for a group of linears sharing an input x
// (migrated as x / s and W diag(s), ScaleMigration.h) and of per-group
// clipping, both minimizing the output error of round-to-nearest
// quantization measured with the calibration Gram matrix H = X^T X:
// ||dW X^T||^2 = tr(dW H dW^T), so no activations are stored.
//
// quench-quantize-weights runs it for `algo=awq` / `awq+gptq`
// (docs/quantization.md, "AWQ"): the scales fold with migrateScales, the
// clip ratios go to quantizeMatrixClipped.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_QUANT_AWQ_H
#define QUENCH_QUANT_AWQ_H

#include "quench/Quant/RTN.h"

#include <cstdint>
#include <vector>

namespace quench::quant {

/// The quantization AWQ searches for, and its grids.
struct AWQConfig {
  int bits = 4;
  int64_t groupSize = 32;
  bool symmetric = true;
  ScaleType scaleType = ScaleType::F16;
  /// Scale search: alpha = 0, 1/alphaSteps, ..., 1.
  int alphaSteps = 20;
  /// Clipping search: ratios 1, 1 - (1 - minClip)/clipSteps, ..., minClip.
  int clipSteps = 10;
  double minClip = 0.5;
  /// Round every candidate scale to the nearest power of two (in log
  /// scale) before it is evaluated: x / s and W diag(s) are then exact in
  /// binary floating point (see searchAWQScales).
  bool powerOfTwo = false;
  /// Threads of the loss evaluations (0: the hardware concurrency); the
  /// result is the same for every count.
  unsigned threads = 0;
};

/// tr(D H D^T) for D = a - b, row-major [rows, cols], H [cols, cols]
/// (row-major, symmetric positive semidefinite), in double, through a
/// GramFactor of H (GramFactor.h); rows split over `threads` threads (0:
/// the hardware concurrency), the result the same for every count.
double hessianWeightedError(const float *a, const float *b, int64_t rows,
                            int64_t cols, const double *gram,
                            unsigned threads = 1);

/// Round-to-nearest as quantizeMatrixRTN, with the range of group (r, g)
/// shrunk by clip[r * groups + g] in (0, 1] (null: 1 everywhere):
/// symmetric scale = clip * max|w| / (2^(bits-1) - 1), asymmetric range
/// [clip * min(w, 0), clip * max(w, 0)]; values beyond saturate.
QuantizedMatrix quantizeMatrixClipped(const float *w, int64_t rows,
                                      int64_t cols, const AWQConfig &cfg,
                                      const float *clip);

/// The dequantized values of a QuantizedMatrix, row-major [rows, cols].
std::vector<float> dequantizeMatrix(const QuantizedMatrix &m);

/// Result of the scale search: x becomes x / scales, W_i becomes
/// W_i diag(scales).
struct AWQScaleResult {
  double alpha = 0;
  std::vector<float> scales;
  /// Summed tr(dW H dW^T) over the linears, in the original weights' terms
  /// (dW = W - Q(W diag s) diag(1/s)), of the choice and of plain RTN.
  double loss = 0, rtnLoss = 0;
};

/// AWQ's scale search for linears weights[i] ([rows[i], k] row-major)
/// reading one input with Gram matrix `gram` ([k, k]) and per-channel mean
/// |x| `meanAbs`: s = meanAbs^alpha / sqrt(max(s) * min(s)) (normalized
/// around 1; channels with meanAbs 0 get the smallest nonzero value's
/// power), for every alpha of the grid, quantized with RTN by `cfg`; the
/// least loss wins (ties: the smaller alpha). alpha = 0 is s = 1, plain
/// RTN, so the result is never worse than RTN under this loss. With
/// cfg.powerOfTwo each scale is rounded to a power of two before its loss
/// is measured (the scales returned are the rounded ones). H is factored
/// once (GramFactor) for every alpha's evaluation.
AWQScaleResult searchAWQScales(const std::vector<const float *> &weights,
                               const std::vector<int64_t> &rows, int64_t k,
                               const double *gram, const float *meanAbs,
                               const AWQConfig &cfg);

/// AWQ's clipping search for one linear: per row and group, the ratio of
/// the grid with the least error d_g H_gg d_g^T (H_gg the group's diagonal
/// block of the Gram matrix; cross-group terms are left out, as AWQ does).
/// Returns [rows, groups] ratios for quantizeMatrixClipped.
std::vector<float> searchAWQClip(const float *w, int64_t rows, int64_t cols,
                                 const double *gram, const AWQConfig &cfg);

} // namespace quench::quant

#endif // QUENCH_QUANT_AWQ_H
