//===- GPTQ.h - error-compensating weight quantization ----------*- C++ -*-===//
//
// GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022, "GPTQ: Accurate
// Post-Training Quantization for Generative Pre-trained Transformers"):
// quantizes a linear layer's weight W [N out, K in] one input column at a
// time and, after each column, moves its rounding error onto the columns not
// quantized yet, weighted by the inverse of the layer's input Gram matrix
// H = X^T X. It minimizes the layer's output error ||(W - Q) X^T||^2 =
// tr((W - Q) H (W - Q)^T) far better than round to nearest (RTN) when the
// inputs are correlated, with the same storage format: the result is a
// QuantizedMatrix (quench.matmul_nbits layout, RTN.h's codes, scales and
// zero points), so passes emit the same op for both.
//
// Free of MLIR, like RTN.h; the pass quench-quantize-weights calls it with
// the Gram matrices that calibration records.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_QUANT_GPTQ_H
#define QUENCH_QUANT_GPTQ_H

#include "quench/Quant/RTN.h"

#include <cstdint>
#include <string>

namespace quench::quant {

/// Tuning knobs of GPTQ (the defaults are the paper's).
struct GPTQOptions {
  /// Added to H's diagonal before inversion, as a fraction of the mean of
  /// that diagonal ("percdamp"). Must be >= 0.
  double dampening = 0.01;
  /// When H (plus the dampening) is not positive definite, retry with the
  /// dampening multiplied by 10 up to this many times before failing (the
  /// default stops at 1x the mean diagonal: more would be RTN in disguise).
  int dampeningRetries = 2;
  /// Columns per lazy batch update (only changes speed, not the result,
  /// up to floating-point rounding). Must be > 0.
  int64_t blockSize = 128;
  /// Quantize columns in order of decreasing H[k, k] (the paper's
  /// "act-order"): the columns with the largest input energy are quantized
  /// first, while the most columns are left to absorb their error. Groups
  /// stay the contiguous groups of the natural column order (the
  /// quench.matmul_nbits layout); see quantizeMatrixGPTQ.
  bool actOrder = false;
  /// Threads for the Cholesky steps, the updates and the loss (0: the
  /// hardware concurrency). The result is bit-identical for every count:
  /// each element is computed by one thread in an order that does not
  /// depend on the split.
  unsigned threads = 0;
  /// Compute GPTQResult::loss (costs about as much as the quantization
  /// itself: O(rows * cols^2)); 0 is reported when off.
  bool computeLoss = true;
  /// A fixed sparsity mask (row-major [rows, cols], nonzero = keep), or
  /// null. Masked-out weights become exactly zero (code: the zero point)
  /// and their removal is compensated on the later columns like a rounding
  /// error, which is GPTQ of a pruned layer (Sparse.h). Group parameters
  /// count them as zeros. Not owned; must outlive the call.
  const uint8_t *keepMask = nullptr;
};

/// What quantizeMatrixGPTQ produced.
struct GPTQResult {
  QuantizedMatrix matrix;
  /// tr((W - Q) H (W - Q)^T) with the caller's H (before dead-input and
  /// dampening changes): the output error summed over the calibration rows.
  double loss = 0.0;
  /// The dampening fraction that was used (after retries).
  double dampening = 0.0;
  /// Inputs with H[k, k] == 0 (never active in calibration): their weights
  /// were quantized as zero.
  int64_t deadInputs = 0;
};

/// GPTQ quantization of the row-major [rows, cols] weight `w` of a linear
/// layer y = x w^T, given `gram` = H = X^T X (row-major [cols, cols], summed
/// over the calibration rows of the layer's input X, symmetric). Bits, group
/// size, symmetry and scale type mean what they mean for quantizeMatrixRTN
/// (requires 2 <= bits <= 8, groupSize * bits a multiple of 8; groupSize 0
/// is one group per row).
///
/// The algorithm (the paper's Algorithm 1, with lazy batch updates):
///  1. Dead inputs (H[k, k] == 0) get H[k, k] = 1 and weight column 0.
///  2. H += lambda * mean(diag H) * I; U = the upper Cholesky factor of
///     H^-1 (H^-1 = U^T U), computed as the inverse of a Cholesky factor
///     of H taken in reversed order (no explicit H^-1).
///  3. For each column k in processing order (natural, or act order): for
///     every row, q = Q(w_k), e = (w_k - q) / U[k, k], and every later column
///     j is updated w_j -= e * U[k, j] (within a block of `blockSize`
///     columns immediately, beyond it once per block).
///
/// Group parameters (chooseGroupParams) are chosen from the partially
/// updated weights when a group's first column is reached in processing
/// order, from the current values of all of the group's columns (exactly:
/// the updates a lazy block still holds back are included). In natural order
/// that is the paper's choice; with actOrder the groups remain the natural
/// contiguous groups (so the result stays in the matmul_nbits layout), and
/// a group's parameters are chosen when its most active column comes up,
/// when none of its columns is quantized yet. Per-row (groupSize 0)
/// parameters are those of the original row (dead inputs zeroed).
///
/// With H = identity the updates vanish and the result equals RTN's.
/// Returns false and sets `error` (result untouched) when the inputs are not
/// finite, or H is not positive definite even after the dampening retries.
/// Cost: cols^3 / 3 multiply-adds for the Cholesky steps plus
/// rows * cols^2 / 2 for the updates (and rows * cols^2 for the loss), in
/// double precision (weights in float), cache-blocked and spread over
/// options.threads threads; memory 2 * cols^2 doubles besides the inputs.
bool quantizeMatrixGPTQ(const float *w, int64_t rows, int64_t cols,
                        const double *gram, int bits, int64_t groupSize,
                        bool symmetric, ScaleType scaleType,
                        const GPTQOptions &options, GPTQResult &result,
                        std::string &error);

/// The output error tr((W - Q) H (W - Q)^T) of a quantized matrix `q` of
/// `w` (row-major [q.rows, q.cols]) for the Gram matrix `gram`
/// ([q.cols, q.cols]), in double precision; compare RTN and GPTQ with it.
/// On `threads` threads (0: the hardware concurrency), with the same result
/// for every count.
double quantizationLoss(const float *w, const QuantizedMatrix &q,
                        const double *gram, unsigned threads = 0);

} // namespace quench::quant

#endif // QUENCH_QUANT_GPTQ_H
