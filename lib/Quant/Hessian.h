//===- Hessian.h - inverse-Hessian sweep of GPTQ and SparseGPT --*- C++ -*-===//
//
// Private to lib/Quant: what GPTQ (GPTQ.cpp) and SparseGPT (Sparse.cpp)
// share. Both are the Optimal Brain Surgeon column sweep over a linear
// layer's weight W [rows, n] with the layer's input Gram matrix H = X^T X:
// columns are visited in a processing order; each column's entries are
// replaced by a target value (a quantized code's value, 0 for a pruned
// weight, or the weight itself), and the change, divided by U[k, k], is
// propagated onto the columns not visited yet through the upper Cholesky
// factor U of H^-1 (H^-1 = U^T U), with lazy block updates. They differ only
// in how each column's targets are chosen:
//
//  - prepareInverseHessian: dead inputs (H[k, k] == 0), the processing
//    order (natural or act order), dampening with retries, and U;
//  - sweepColumns: the blocked sweep itself, with two callbacks (the start
//    of a block of a row, each column of a row);
//  - outputLoss: tr(D H D^T) for a weight change D.
//
// Results are bit-identical for every thread count (see GPTQ.cpp's file
// comment): every row's sweep runs on one thread and every kernel element's
// sum has a fixed order.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_LIB_QUANT_HESSIAN_H
#define QUENCH_LIB_QUANT_HESSIAN_H

#include "Parallel.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace quench::quant::detail {

/// The inverse-Hessian factor of one layer, in processing order.
struct InverseHessian {
  int64_t n = 0;
  /// perm[position] = column, pos[column] = position.
  std::vector<int64_t> perm, pos;
  /// Per column (natural order): never active in calibration.
  std::vector<char> dead;
  int64_t deadInputs = 0;
  /// The dampening fraction used (after retries).
  double dampening = 0.0;
  /// [n, n] row-major upper triangular, H^-1 = U^T U (H in processing order,
  /// dead inputs' diagonal set to 1, dampened).
  std::vector<double> u;
};

/// Prepares the sweep of a layer with `n` inputs from its Gram matrix
/// `gram` ([n, n], symmetric, finite): dead inputs (H[k, k] == 0) get
/// H[k, k] = 1; the processing order is natural or, with `actOrder`, by
/// decreasing H[k, k] (stable); H += lambda * mean(diag H) * I with lambda =
/// `dampening`, multiplied by 10 up to `retries` times while H is not
/// positive definite. `who` prefixes error messages ("GPTQ",
/// "SparseGPT"). Returns false and sets `error` when H stays not positive
/// definite.
bool prepareInverseHessian(const double *gram, int64_t n, bool actOrder,
                           double dampening, int retries, unsigned threads,
                           const char *who, InverseHessian &out,
                           std::string &error);

/// The lazy batch update of the rows [r0, r1) of `wp` ([rows, n]) after the
/// block of columns [i1, i2): W[r, j] -= sum_b Err[r, b] * U[i1 + b, j] for
/// j >= i2, the sum in order of b (`err`: [rows, block]).
void lazyBatchUpdate(float *wp, const double *err, const double *u, int64_t n,
                     int64_t block, int64_t i1, int64_t i2, int64_t r0,
                     int64_t r1, int64_t kCols);

/// The sweep over the weights `wp` ([rows, n], in processing order, updated
/// in place) with the factor `u` ([n, n]), in blocks of `block` columns, the
/// rows split over `threads` threads (each row on one thread).
///
/// For every block [i1, i2) and row r: first `onBlock(r, wr, i1, i2)` (wr:
/// the row, whose columns [i1, i2) hold every update by then); then, for
/// each column col of the block in order (i = col - i1),
/// `target(r, wr, e, col, i, i1, i2)` returns the value the weight becomes
/// (e: the row's scaled errors of the block's earlier columns, e[b] for
/// b < i, whose updates of the columns after the block are still pending),
/// and the change (wr[col] - target) / U[col, col] is propagated onto the
/// block's later columns at once and onto the columns after the block by
/// lazyBatchUpdate.
template <typename BlockFn, typename TargetFn>
void sweepColumns(float *wp, int64_t rows, int64_t n, const double *u,
                  int64_t block, unsigned threads, BlockFn &&onBlock,
                  TargetFn &&target) {
  block = std::min(block, n);
  std::vector<double> err(size_t(rows) * block);
  // Rows are independent: each thread takes a contiguous range of them
  // through every block (so that the blocks of U it reads are shared by as
  // many rows as possible).
  constexpr int64_t kCols = 256;
  threads = resolveThreads(threads);
  parallelFor(
      threads, rows, (rows + threads - 1) / threads,
      [&](int64_t r0, int64_t r1) {
        for (int64_t i1 = 0; i1 < n; i1 += block) {
          const int64_t i2 = std::min(i1 + block, n);
          for (int64_t r = r0; r < r1; ++r) {
            float *wr = &wp[r * n];
            double *e = &err[r * block];
            onBlock(r, wr, i1, i2);
            for (int64_t col = i1; col < i2; ++col) {
              const int64_t i = col - i1;
              const double *urow = &u[col * n];
              const float t =
                  target(r, wr, static_cast<const double *>(e), col, i, i1, i2);
              double ei =
                  (static_cast<double>(wr[col]) - static_cast<double>(t)) /
                  urow[col];
              e[i] = ei;
              for (int64_t j = col + 1; j < i2; ++j)
                wr[j] = static_cast<float>(wr[j] - ei * urow[j]);
            }
          }
          lazyBatchUpdate(wp, err.data(), u, n, block, i1, i2, r0, r1, kCols);
        }
      });
}

/// Inside sweepColumns' `target` call for column i1 + i of the block
/// [i1, i2): the current value of the row's column `p` (wr, e as given to
/// `target`). The block's columns hold every update already; later columns
/// still miss the block's updates so far, which are added here.
inline double currentValue(const float *wr, const double *e, const double *u,
                           int64_t n, int64_t p, int64_t i, int64_t i1,
                           int64_t i2) {
  double v = wr[p];
  if (p >= i2)
    for (int64_t b = 0; b < i; ++b)
      v -= e[b] * u[(i1 + b) * n + p];
  return v;
}

/// tr(D H D^T) for the [rows, n] change D whose row r `delta(r, d)` writes
/// into d (n doubles), with the Gram matrix `gram` ([n, n]); the same result
/// for every thread count.
double outputLoss(int64_t rows, int64_t n, const double *gram, unsigned threads,
                  const std::function<void(int64_t, double *)> &delta);

/// Whether every element is finite.
bool allFinite(const float *p, size_t n);
bool allFinite(const double *p, size_t n);

} // namespace quench::quant::detail

#endif // QUENCH_LIB_QUANT_HESSIAN_H
