//===- BitsBudget.h - mixed precision under a bits budget -------*- C++ -*-===//
//
// Chooses one quantization scheme per layer so that the average storage
// bits per weight (codes, scales and zero points, as the size report counts
// them) stay within a budget while the sum of the layers' predicted errors
// is minimal: a multiple-choice knapsack. The pass quench-quantize-weights
// (`bits-budget`) supplies each layer's candidates with their storage and
// predicted error (the Hessian-weighted output error tr(dW H dW^T) with
// calibration, the weight error |dW|^2 without); this file is the MLIR-free
// numerics: the error measures and the allocator.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_QUANT_BITSBUDGET_H
#define QUENCH_QUANT_BITSBUDGET_H

#include "quench/Quant/GramFactor.h"
#include "quench/Quant/RTN.h"

#include <cstdint>
#include <string>
#include <vector>

namespace quench::quant {

/// Storage bits of a [rows, cols] weight quantized to `bits`-bit codes in
/// groups of `groupSize` (0: per row): padded codes, one scale per group
/// (16 or 32 bits) and, when asymmetric, the packed zero points (exactly
/// the bytes of a QuantizedMatrix).
int64_t storageBits(int64_t rows, int64_t cols, int bits, int64_t groupSize,
                    bool symmetric, ScaleType scaleType);

/// The error of quantizing the row-major [rows, cols] weight `w` to `m`:
/// with `gram` (H = X^T X, row-major [cols, cols]), the output error
/// summed over the calibration rows, tr(dW H dW^T) = sum_r dW_r H dW_r^T;
/// without it (nullptr), the squared weight error sum dW^2. Rows are split
/// over `threads` threads (0: the hardware concurrency); the result is the
/// same for every count. With `gram`, H is factored first (GramFactor.h):
/// O(cols^2 * rank + rows * cols * rank).
double quantizationError(const float *w, const QuantizedMatrix &m,
                         const double *gram, unsigned threads = 0);
/// The same with H already factored (GramFactor.h): the form for several
/// candidates of one layer, ~rows * cols * rank / 2 multiply-adds each.
double quantizationError(const float *w, const QuantizedMatrix &m,
                         const GramFactor &gram, unsigned threads = 0);

/// The same measure of the weight itself (the error of quantizing it to
/// zero): tr(W H W^T), the layer's output energy over the calibration
/// rows, or |W|^2 without `gram`. Sensitivities are quantizationError
/// relative to it (see quench-quantize-weights `bits-budget`).
double outputEnergy(const float *w, int64_t rows, int64_t cols,
                    const double *gram, unsigned threads = 0);
double outputEnergy(const float *w, int64_t rows, int64_t cols,
                    const GramFactor &gram, unsigned threads = 0);

/// One layer's options: candidate i stores `bits[i]` bits and is predicted
/// to add `error[i]` (same length, at least one candidate).
struct BudgetLayer {
  std::vector<int64_t> bits;
  std::vector<double> error;
};

/// The choice of one candidate per layer that minimizes the sum of their
/// errors with the sum of their bits at most `maxBits`. Exact dynamic
/// programming over bits counted in units of maxBits / `resolution`, each
/// candidate's bits rounded up to whole units (so the result always fits
/// `maxBits`; it is optimal for the rounded costs, and within one unit per
/// layer of the true optimum's bits); then, while changing one layer's
/// candidate lowers the error and still fits `maxBits` exactly, the best
/// such change is made (spending what the rounding left), and each layer
/// takes its cheapest candidate of no larger error (bits that buy nothing
/// are not spent). Returns false
/// with `error` set when even the smallest candidates do not fit.
bool allocateBudget(const std::vector<BudgetLayer> &layers, int64_t maxBits,
                    std::vector<size_t> &choice, std::string &error,
                    int64_t resolution = 8192);

} // namespace quench::quant

#endif // QUENCH_QUANT_BITSBUDGET_H
