//===- Rotation.cpp - seeded orthogonal rotations -------------------------===//
//
// Rotation.h: the randomized Hadamard x random-orthogonal rotation and its
// fast application.
//
//===----------------------------------------------------------------------===//

#include "quench/Quant/Rotation.h"

#include "Parallel.h"

#include <cassert>
#include <cmath>
#include <random>

using namespace quench::quant;

void quench::quant::fastWalshHadamard(double *x, int64_t n, int64_t stride) {
  assert(n > 0 && (n & (n - 1)) == 0 && "the order must be a power of two");
  for (int64_t h = 1; h < n; h *= 2)
    for (int64_t i = 0; i < n; i += 2 * h)
      for (int64_t j = i; j < i + h; ++j) {
        double a = x[j * stride], b = x[(j + h) * stride];
        x[j * stride] = a + b;
        x[(j + h) * stride] = a - b;
      }
}

namespace {

/// Portable random numbers: std::mt19937_64 is specified bit for bit by the
/// standard, its distributions are not, so uniforms and normals are made
/// here.
class Random {
public:
  explicit Random(uint64_t seed) : engine(seed) {}
  /// Uniform in (0, 1).
  double uniform() {
    return (static_cast<double>(engine() >> 11) + 0.5) * 0x1.0p-53;
  }
  /// Standard normal (Box-Muller).
  double normal() {
    double u = uniform(), v = uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v);
  }
  bool bit() { return engine() >> 63; }

private:
  std::mt19937_64 engine;
};

/// A random orthogonal n x n matrix, row-major: the Gram-Schmidt
/// orthonormalization (twice, for accuracy) of the rows of a Gaussian
/// matrix, which is distributed uniformly over the orthogonal group.
std::vector<double> randomOrthogonal(int64_t n, Random &rng) {
  std::vector<double> m(n * n);
  for (double &v : m)
    v = rng.normal();
  for (int64_t i = 0; i < n; ++i) {
    double *row = &m[i * n];
    for (int pass = 0; pass < 2; ++pass)
      for (int64_t k = 0; k < i; ++k) {
        const double *prev = &m[k * n];
        double dot = 0;
        for (int64_t j = 0; j < n; ++j)
          dot += row[j] * prev[j];
        for (int64_t j = 0; j < n; ++j)
          row[j] -= dot * prev[j];
      }
    double norm = 0;
    for (int64_t j = 0; j < n; ++j)
      norm += row[j] * row[j];
    norm = std::sqrt(norm);
    for (int64_t j = 0; j < n; ++j)
      row[j] /= norm;
  }
  return m;
}

} // namespace

RandomRotation::RandomRotation(int64_t dim, uint64_t seed)
    : dim_(dim), pow2_(1), odd_(dim) {
  assert(dim >= 1 && "a rotation needs a positive order");
  while (odd_ % 2 == 0) {
    odd_ /= 2;
    pow2_ *= 2;
  }
  Random rng(seed);
  signs_.resize(dim);
  for (double &s : signs_)
    s = rng.bit() ? -1.0 : 1.0;
  if (odd_ > 1)
    oddMatrix_ = randomOrthogonal(odd_, rng);
}

void RandomRotation::applyRow(double *x) const {
  for (int64_t i = 0; i < dim_; ++i)
    x[i] *= signs_[i];
  // x as [2^k, m]: Y = H X M / sqrt(2^k). First each row of X times M.
  if (odd_ > 1) {
    std::vector<double> t(odd_);
    for (int64_t a = 0; a < pow2_; ++a) {
      double *row = x + a * odd_;
      for (int64_t c = 0; c < odd_; ++c) {
        double sum = 0;
        for (int64_t b = 0; b < odd_; ++b)
          sum += row[b] * oddMatrix_[b * odd_ + c];
        t[c] = sum;
      }
      std::copy(t.begin(), t.end(), row);
    }
  }
  // Then H (symmetric) along the columns of X.
  if (pow2_ > 1) {
    for (int64_t b = 0; b < odd_; ++b)
      fastWalshHadamard(x + b, pow2_, odd_);
    double norm = 1.0 / std::sqrt(static_cast<double>(pow2_));
    for (int64_t i = 0; i < dim_; ++i)
      x[i] *= norm;
  }
}

void RandomRotation::applyRight(float *x, int64_t rows,
                                unsigned threads) const {
  detail::parallelFor(threads, rows, std::max<int64_t>(1, 4096 / dim_),
                      [&](int64_t begin, int64_t end) {
                        std::vector<double> row(dim_);
                        for (int64_t r = begin; r < end; ++r) {
                          float *p = x + r * dim_;
                          std::copy(p, p + dim_, row.begin());
                          applyRow(row.data());
                          for (int64_t i = 0; i < dim_; ++i)
                            p[i] = static_cast<float>(row[i]);
                        }
                      });
}

void RandomRotation::applyLeftTranspose(float *w, int64_t cols,
                                        unsigned threads) const {
  // Column c of Q^T W is Q^T w_c = (w_c^T Q)^T: each column is rotated as
  // a row.
  detail::parallelFor(threads, cols, std::max<int64_t>(1, 4096 / dim_),
                      [&](int64_t begin, int64_t end) {
                        std::vector<double> col(dim_);
                        for (int64_t c = begin; c < end; ++c) {
                          for (int64_t i = 0; i < dim_; ++i)
                            col[i] = w[i * cols + c];
                          applyRow(col.data());
                          for (int64_t i = 0; i < dim_; ++i)
                            w[i * cols + c] = static_cast<float>(col[i]);
                        }
                      });
}

std::vector<double> RandomRotation::dense() const {
  // Row i of Q is e_i Q.
  std::vector<double> q(dim_ * dim_, 0.0);
  for (int64_t i = 0; i < dim_; ++i) {
    q[i * dim_ + i] = 1.0;
    applyRow(&q[i * dim_]);
  }
  return q;
}
