//===- Smooth.h - SmoothQuant migration scales -------------------*- C++
//-*-===//
//
// The numerical core of SmoothQuant (Xiao et al. 2022), free of MLIR: the
// per-input-channel scales that move activation outliers into the weights.
// A group of linears y_i = x W_i^T sharing one input x computes the same
// function after x_j -> x_j / s_j (folded into x's producer) and
// W_i[:, j] -> W_i[:, j] * s_j (quench-smooth, docs/quantization.md).
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_QUANT_SMOOTH_H
#define QUENCH_QUANT_SMOOTH_H

#include <cstdint>
#include <vector>

namespace quench::quant {

/// Bounds of a migration scale: scales are clamped to [1/kMaxSmoothScale,
/// kMaxSmoothScale], so that a nearly dead channel or weight column cannot
/// move a value across many orders of magnitude (and out of f16's range).
constexpr double kMaxSmoothScale = 1e4;

/// SmoothQuant's scales for `channels` input channels:
///   s_j = actMax[j]^alpha / weightMax[j]^(1 - alpha),
/// with actMax[j] = max |x_j| over the calibration rows and weightMax[j] =
/// max |W[:, j]| over every linear reading x, clamped to
/// [1/kMaxSmoothScale, kMaxSmoothScale]. A channel whose actMax or
/// weightMax is 0 or not finite gets s_j = 1 (nothing to balance). After
/// migration the channel's activation maximum is actMax^(1-alpha) *
/// weightMax^(1-alpha) and its weight maximum actMax^alpha * weightMax^alpha:
/// alpha = 0.5 makes them equal. With `powerOfTwo`, each scale is rounded
/// to the nearest power of two (in log scale, so within a factor sqrt(2)):
/// dividing and multiplying by it is exact in binary floating point (no
/// subnormals), so a migrated f32 model computes bit for bit what the
/// original did. Requires 0 <= alpha <= 1.
std::vector<float> smoothQuantScales(const float *actMax,
                                     const float *weightMax, int64_t channels,
                                     double alpha, bool powerOfTwo);

/// What the search of migration scales knows about a group's input x.
struct SmoothInputStats {
  /// Per channel: max |x_j| and sum of x_j^2 (the Gram matrix's diagonal)
  /// over `rows` calibration rows.
  std::vector<float> absMax;
  std::vector<double> sumSquares;
  double rows = 0;
};

/// The predicted output error of W8A8 static quantization (int8 weights
/// per output channel, round to nearest; int8 activations with one
/// per-tensor minmax scale) of linears y_i = x W_i^T reading x / s with
/// weights W_i diag(s), summed over the calibration rows and outputs:
///   weights:     sum_i sum_n,j (W'_i - Q(W'_i))[n, j]^2 * sumSquares[j] /
///   s_j^2
///                (tr(dW H dW^T) with H's diagonal: rounding errors of
///                different columns are uncorrelated);
///   activations: rows * step^2 / 12 * sum_i ||W'_i||_F^2, step =
///                max_j(absMax[j] / s_j) / 127 (uniform rounding noise
///                on every element).
/// `weights[i]` is row-major [weightRows[i], channels].
double smoothProxyLoss(const SmoothInputStats &x,
                       const std::vector<const float *> &weights,
                       const std::vector<int64_t> &weightRows,
                       const std::vector<float> &scales);

/// The migration scales with the least smoothProxyLoss among no migration
/// (s = 1, alpha reported as -1) and smoothQuantScales(alpha, powerOfTwo)
/// for alpha = 0, 1/steps, ..., 1; ties go to the earlier candidate.
struct SmoothSearchResult {
  double alpha = -1;
  std::vector<float> scales;
  double loss = 0, unsmoothedLoss = 0;
};
SmoothSearchResult searchSmoothScales(const SmoothInputStats &x,
                                      const std::vector<const float *> &weights,
                                      const std::vector<int64_t> &weightRows,
                                      int steps, bool powerOfTwo);

/// max_i |w[i, j]| for each column j of a row-major [rows, cols] matrix,
/// combined (max) into `colMax` (cols values; non-finite entries ignored).
void accumulateColumnAbsMax(const float *w, int64_t rows, int64_t cols,
                            float *colMax);

} // namespace quench::quant

#endif // QUENCH_QUANT_SMOOTH_H
