//===- GramFactor.h - fast output errors tr(D H D^T) ------------*- C++ -*-===//
//
// AWQ and the bits budget compare candidate quantizations of a layer by
// their output error over the calibration inputs X, tr(D H D^T) with
// D = W - Q(W) [rows, k] and H = X^T X [k, k]: K^2 N multiply-adds per
// candidate, evaluated dozens of times per layer. A GramFactor factors H
// once (pivoted Cholesky, P^T H P = L L^T, L [k, rank] lower trapezoidal)
// so that every evaluation is ||D P L||^2: a triangular matrix product that
// runs as a cache-blocked, register-tiled kernel (half the multiply-adds of
// the symmetric form, none for directions H does not have: with fewer
// calibration tokens than inputs, rank < k).
//
// The factorization stops when the largest remaining pivot is at H's own
// rounding level (k * eps * max diag H): what it leaves out adds at most
// (k - rank) * that * |d|^2 to a row's error. H must be symmetric positive
// semidefinite (Gram matrices are).
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_QUANT_GRAMFACTOR_H
#define QUENCH_QUANT_GRAMFACTOR_H

#include <cstdint>
#include <functional>
#include <vector>

namespace quench::quant {

/// H = P L L^T P^T of a Gram matrix, for output errors tr(D H D^T).
class GramFactor {
public:
  /// Factors `gram` ([k, k] row-major, symmetric positive semidefinite);
  /// the trailing updates run on `threads` threads (0: the hardware
  /// concurrency), the factor the same for every count. A matrix with a
  /// non-finite element gives NaN errors.
  GramFactor(const double *gram, int64_t k, unsigned threads = 0);

  int64_t size() const { return k; }
  /// Columns of L (the numerical rank of H).
  int64_t rank() const { return r; }

  /// sum_r d_r H d_r^T over `rows` rows, row r's d (k doubles, natural
  /// column order) written by fill(r, d); rows over `threads` threads (0:
  /// the hardware concurrency). `fill` is called concurrently, once per
  /// row. The result is the same for every thread count.
  double quadraticSum(int64_t rows,
                      const std::function<void(int64_t, double *)> &fill,
                      unsigned threads = 0) const;

private:
  int64_t k = 0, r = 0;
  /// Column tiles of the kernel in l.
  int64_t tiles = 0;
  bool finite = true;
  /// perm[position] = column of H.
  std::vector<int64_t> perm;
  /// L [k, r] in tiles of the kernel's columns (each tile [k, columns]
  /// row-major, contiguous), zero above the diagonal and in the padding.
  std::vector<double> l;
};

} // namespace quench::quant

#endif // QUENCH_QUANT_GRAMFACTOR_H
