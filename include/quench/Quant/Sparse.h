//===- Sparse.h - weight pruning numerics (masks, SparseGPT) ----*- C++ -*-===//
//
// Pruning of a linear layer's weight W [rows = N out, cols = K in] (y =
// x W^T), free of MLIR like RTN.h and GPTQ.h; the pass quench-prune-weights
// calls it (docs/sparsity.md).
//
//  - Patterns: N:M (keep N of every M consecutive weights of a row, i.e.
//    along the reduction dimension K, as NVIDIA's 2:4) and unstructured
//    (prune a fraction of every row).
//  - Magnitude pruning: keep the largest |w| (ties: the lower index).
//  - SparseGPT (Frantar & Alistarh 2023, "SparseGPT: Massive Language
//    Models Can Be Accurately Pruned in One-Shot"): the column sweep of GPTQ
//    (the same inverse-Hessian factor and lazy block updates, lib/Quant/
//    Hessian.h) in which each pruned weight's removal is compensated on the
//    columns not visited yet; the mask is chosen during the sweep from the
//    updated weights by the OBS saliency w^2 / U[k, k]^2. Optionally joint
//    with quantization: the kept weights are quantized as GPTQ does.
//
// Mask selection is kept apart from storage: every function here returns
// dense row-major weights (or RTN.h's QuantizedMatrix) with exact zeros at
// pruned positions plus the mask, so compressed formats can pack them later.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_QUANT_SPARSE_H
#define QUENCH_QUANT_SPARSE_H

#include "quench/Quant/RTN.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace quench::quant {

/// Which weights of a row a pruning keeps.
struct SparsityPattern {
  enum class Kind { Dense, NM, Unstructured };
  Kind kind = Kind::Dense;
  /// N:M: keep `n` of every `m` consecutive weights of a row (1 <= n < m
  /// <= kMaxSparsityGroup).
  int n = 0, m = 0;
  /// Unstructured: the fraction of every row pruned, in (0, 1).
  double fraction = 0.0;

  bool isDense() const { return kind == Kind::Dense; }
  /// "dense", "2:4", "unstructured:0.5".
  std::string str() const;
  /// The weights of a row of `cols` that the pattern prunes (an N:M row's
  /// last, partial group of L < M weights keeps min(N, L) of them).
  int64_t prunedPerRow(int64_t cols) const;
};

/// The largest M of an N:M pattern.
constexpr int kMaxSparsityGroup = 64;

/// Parses "N:M" (e.g. "2:4"), "unstructured:F" (F in (0, 1), the fraction
/// pruned) or "none"/"dense". Returns false with `error` set otherwise.
bool parseSparsityPattern(const std::string &text, SparsityPattern &out,
                          std::string &error);

/// Unstructured pruning prunes, among a row's first `cols` weights,
/// round(fraction * cols) (half away from zero): SparseGPT's blocks prune
/// the difference of this count at their two ends, so a row's total is the
/// same as magnitude pruning's.
int64_t unstructuredPrunedCount(double fraction, int64_t cols);

/// Magnitude mask of the row-major [rows, cols] `w` (1: keep, 0: prune):
/// N:M keeps the N largest |w| of each group of M consecutive columns,
/// unstructured the cols - prunedPerRow(cols) largest |w| of each row; ties
/// keep the lower index (NaN counts as the largest). A dense pattern keeps
/// everything.
std::vector<uint8_t> selectMagnitudeMask(const float *w, int64_t rows,
                                         int64_t cols,
                                         const SparsityPattern &pattern);

/// Whether `mask` ([rows, cols]) keeps at most what `pattern` allows in
/// every N:M group (or row): exactly as many as the pattern keeps for
/// magnitude and SparseGPT masks.
bool maskFitsPattern(const uint8_t *mask, int64_t rows, int64_t cols,
                     const SparsityPattern &pattern);

/// Sets the weights the mask prunes to exactly +0.
void applyMask(float *w, const uint8_t *mask, size_t count);

/// The fraction of nonzero values.
double densityOf(const float *w, size_t count);

/// Tuning knobs of SparseGPT (defaults: the paper's, as GPTQOptions').
struct SparseGPTOptions {
  /// Dampening of H's diagonal as a fraction of its mean, and retries with
  /// 10x more while H is not positive definite (see GPTQOptions).
  double dampening = 0.01;
  int dampeningRetries = 2;
  /// Columns per lazy batch update and per unstructured mask selection
  /// (the paper's 128); rounded down to a multiple of an N:M pattern's M.
  int64_t blockSize = 128;
  /// Threads (0: the hardware concurrency); the result is the same for
  /// every count.
  unsigned threads = 0;
  /// Compute SparseGPTResult::loss (O(rows * cols^2)).
  bool computeLoss = true;
};

/// Joint quantization of the kept weights (quantizeMatrixRTN's meaning of
/// the fields; groups contiguous along cols).
struct SparseQuantization {
  int bits = 8;
  int64_t groupSize = 0;
  bool symmetric = true;
  ScaleType scaleType = ScaleType::F16;
};

/// What pruneSparseGPT produced.
struct SparseGPTResult {
  /// The pruned, compensated weights [rows, cols] (with quantization: their
  /// dequantized values); exactly zero where mask is 0.
  std::vector<float> weights;
  /// [rows, cols], 1: kept.
  std::vector<uint8_t> mask;
  /// With quantization: the codes (pruned weights' codes are the zero
  /// point, so they dequantize to exactly 0).
  std::optional<QuantizedMatrix> matrix;
  /// tr((W - W') H (W - W')^T) with the caller's H.
  double loss = 0.0;
  double dampening = 0.0;
  /// Inputs with H[k, k] == 0: their weights are pruned first.
  int64_t deadInputs = 0;
};

/// SparseGPT pruning of the row-major [rows, cols] weight `w` of a linear
/// layer with input Gram matrix `gram` (H = X^T X, [cols, cols]) to
/// `pattern` (not dense), optionally quantizing the kept weights jointly
/// (`quant` non-null; 2 <= bits <= 8, groupSize * bits a multiple of 8).
///
/// The sweep of GPTQ in natural column order, with U the upper Cholesky
/// factor of (dampened) H^-1: an unstructured row chooses, at the start of
/// each block of columns, which of the block's columns to prune (the
/// block's share of the row's count, see unstructuredPrunedCount) by the
/// smallest saliency w^2 / U[k, k]^2 of its current weights (ties: the
/// higher index is pruned); an N:M row chooses, at the first column of each
/// group, the M - N smallest saliencies of the group. Each column's weight
/// then becomes 0 (pruned), its quantized value (joint quantization; group
/// parameters chosen as GPTQ's, from the group's current weights with the
/// already pruned ones as zeros) or stays; the change divided by U[k, k]
/// is propagated onto the later columns.
///
/// Returns false and sets `error` when the inputs are not finite or H is
/// not positive definite after the dampening retries.
bool pruneSparseGPT(const float *w, int64_t rows, int64_t cols,
                    const double *gram, const SparsityPattern &pattern,
                    const SparseQuantization *quant,
                    const SparseGPTOptions &options, SparseGPTResult &result,
                    std::string &error);

/// The output error tr((W - P) H (W - P)^T) of replacing `w` by `p` (both
/// row-major [rows, cols]) for the Gram matrix `gram`; compare magnitude
/// and SparseGPT pruning with it.
double weightChangeLoss(const float *w, const float *p, int64_t rows,
                        int64_t cols, const double *gram, unsigned threads = 0);

} // namespace quench::quant

#endif // QUENCH_QUANT_SPARSE_H
