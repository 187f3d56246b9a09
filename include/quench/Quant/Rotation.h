//===- Rotation.h - seeded orthogonal rotations -----------------*- C++ -*-===//
//
// The numerical core of rotation (QuaRot, Ashkboos et al. 2024; SpinQuant,
// Liu et al. 2024), free of MLIR: a seeded orthogonal matrix Q of any order
// D, applied to rows (x -> x Q) or to the columns of a weight matrix
// (W -> Q^T W) without forming Q. Rotating the residual stream of a
// transformer by Q and folding Q into the weights that read and write it
// leaves the float function unchanged while spreading activation and
// weight outliers over all channels, which makes both easier to quantize
// (quench-rotate, docs/quantization.md, "Rotation").
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_QUANT_ROTATION_H
#define QUENCH_QUANT_ROTATION_H

#include <cstdint>
#include <vector>

namespace quench::quant {

/// The unnormalized Walsh-Hadamard transform of the `n` values x[0],
/// x[stride], ..., x[(n - 1) * stride] in place: x <- H_n x with H_n the
/// Sylvester Hadamard matrix (H_1 = [1], H_2n = [[H, H], [H, -H]]; entries
/// +-1, symmetric, H_n H_n = n I). `n` must be a power of two. O(n log n).
void fastWalshHadamard(double *x, int64_t n, int64_t stride = 1);

/// A seeded random orthogonal matrix of order D = 2^k * m (m odd):
///   Q = diag(s) (H_{2^k} / sqrt(2^k)  (x)  M),
/// s a random +-1 vector, H the Sylvester Hadamard matrix, (x) the
/// Kronecker product (row index i = a * m + b, a < 2^k, b < m) and M a
/// random orthogonal m x m matrix (Gram-Schmidt of a Gaussian matrix;
/// M = [1] for m = 1, so that a power-of-two D is a pure randomized
/// Hadamard transform, every entry +-1/sqrt(D)). Everything derives from
/// `seed` with a portable generator: the same seed gives the same Q on
/// every platform. Applying Q costs O(D log D + D m) per row.
class RandomRotation {
public:
  /// The rotation of order `dim` (>= 1) for `seed`.
  RandomRotation(int64_t dim, uint64_t seed);

  int64_t dim() const { return dim_; }
  /// 2^k, the order of the Hadamard factor.
  int64_t hadamardOrder() const { return pow2_; }
  /// m, the order of the dense odd factor (1 for a power-of-two D).
  int64_t oddOrder() const { return odd_; }

  /// x <- x Q for one row of dim() values (in double precision).
  void applyRow(double *x) const;
  /// x <- x Q for each of `rows` consecutive rows of dim() floats (row-
  /// major [rows, D]: W <- W Q for a linear's weight [N, D] read by a
  /// rotated input), computed in double, on `threads` threads (0: all).
  void applyRight(float *x, int64_t rows, unsigned threads = 0) const;
  /// W <- Q^T W for a row-major [D, cols] matrix (each column c becomes
  /// (W[:, c]^T Q)^T: a linear's weight [D, K] writing a rotated output).
  void applyLeftTranspose(float *w, int64_t cols, unsigned threads = 0) const;
  /// Q as a dense row-major D x D matrix (tests, small D).
  std::vector<double> dense() const;
  /// s, the D random signs.
  const std::vector<double> &signs() const { return signs_; }
  /// M, the odd factor, row-major m x m (empty for m = 1).
  const std::vector<double> &oddMatrix() const { return oddMatrix_; }

private:
  int64_t dim_, pow2_, odd_;
  std::vector<double> signs_;
  /// M, row-major m x m.
  std::vector<double> oddMatrix_;
};

} // namespace quench::quant

#endif // QUENCH_QUANT_ROTATION_H
