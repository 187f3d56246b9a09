//===- GPTQ.cpp - error-compensating weight quantization ------------------===//
//
// GPTQ as described in GPTQ.h, written from the paper's equations: dense
// double-precision Cholesky steps on the [K, K] Gram matrix, weights kept in
// float and updated in place (columns permuted when act order is on), codes
// written back in the natural column order and packed by RTN.h's
// packQuantizedMatrix.
//
//===----------------------------------------------------------------------===//

#include "quench/Quant/GPTQ.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numeric>
#include <sstream>
#include <vector>

using namespace quench::quant;

namespace {

// The dense kernels below are written so that every inner loop is a
// contiguous axpy over a row (y[j] -= f * x[j]) rather than a dot product:
// that vectorizes without reassociating floating-point sums.

/// In-place upper Cholesky factorization A = U^T U of the symmetric
/// row-major [n, n] matrix `a` (only its upper triangle is read; the lower
/// one is zeroed), right-looking. Returns the index of the first
/// non-positive (or non-finite) pivot, or -1 on success.
int64_t choleskyUpper(std::vector<double> &a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    double *rj = &a[j * n];
    double d = rj[j];
    if (!(d > 0.0) || !std::isfinite(d))
      return j;
    d = std::sqrt(d);
    rj[j] = d;
    for (int64_t k = j + 1; k < n; ++k)
      rj[k] /= d;
    // The trailing matrix loses row j's contribution:
    // A[i, i..] -= U[j, i] * U[j, i..] for i > j.
    for (int64_t i = j + 1; i < n; ++i) {
      double f = rj[i];
      if (f == 0.0)
        continue;
      double *ri = &a[i * n];
      for (int64_t k = i; k < n; ++k)
        ri[k] -= f * rj[k];
    }
  }
  for (int64_t i = 0; i < n; ++i)
    std::fill(&a[i * n], &a[i * n + i], 0.0);
  return -1;
}

/// The upper Cholesky factor U of H^-1 (H^-1 = U^T U) for a symmetric
/// row-major [n, n] `h`, in `u`. Returns the failing pivot (see
/// choleskyUpper) or -1.
int64_t inverseCholeskyUpper(const std::vector<double> &h, int64_t n,
                             std::vector<double> &u) {
  // H = R^T R.
  std::vector<double> r = h;
  if (int64_t bad = choleskyUpper(r, n); bad >= 0)
    return bad;
  // V = R^-1 (upper triangular), by back substitution on rows: R V = I
  // gives V[i, :] = (e_i - sum_{k > i} R[i, k] V[k, :]) / R[i, i].
  std::vector<double> v(n * n, 0.0);
  for (int64_t i = n - 1; i >= 0; --i) {
    double *vi = &v[i * n];
    const double *ri = &r[i * n];
    vi[i] = 1.0;
    for (int64_t k = i + 1; k < n; ++k) {
      double f = ri[k];
      if (f == 0.0)
        continue;
      const double *vk = &v[k * n];
      for (int64_t j = k; j < n; ++j)
        vi[j] -= f * vk[j];
    }
    for (int64_t j = i; j < n; ++j)
      vi[j] /= ri[i];
  }
  // H^-1 = V V^T. With T = V^T (row k holds column k of V, nonzero up to
  // k): row i of H^-1 = sum_{k >= i} V[i, k] T[k, :]; upper triangle only.
  std::vector<double> t(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = i; k < n; ++k)
      t[k * n + i] = v[i * n + k];
  u.assign(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    double *hi = &u[i * n];
    for (int64_t k = i; k < n; ++k) {
      double f = v[i * n + k];
      const double *tk = &t[k * n];
      for (int64_t j = i; j <= k; ++j)
        hi[j] += f * tk[j];
    }
  }
  // H^-1 = U^T U.
  return choleskyUpper(u, n);
}

bool allFinite(const float *p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i]))
      return false;
  return true;
}

bool allFinite(const double *p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i]))
      return false;
  return true;
}

} // namespace

bool quench::quant::quantizeMatrixGPTQ(const float *w, int64_t rows,
                                       int64_t cols, const double *gram,
                                       int bits, int64_t groupSize,
                                       bool symmetric, ScaleType scaleType,
                                       const GPTQOptions &options,
                                       GPTQResult &result,
                                       std::string &error) {
  assert(bits >= 2 && bits <= 8 && rows > 0 && cols > 0);
  if (!(options.dampening >= 0.0) || options.blockSize <= 0 ||
      options.dampeningRetries < 0) {
    error = "GPTQ options: dampening must be >= 0, the block size > 0 and "
            "the retry count >= 0";
    return false;
  }
  const int64_t n = cols;
  if (!allFinite(w, size_t(rows) * cols)) {
    error = "GPTQ: the weights are not all finite";
    return false;
  }
  if (!allFinite(gram, size_t(n) * n)) {
    error = "GPTQ: the Gram matrix is not all finite";
    return false;
  }

  // Dead inputs: never active, so their weights do not matter; H[k, k] = 1
  // keeps H invertible and the zero weight costs nothing.
  std::vector<double> h(gram, gram + n * n);
  std::vector<char> dead(n, 0);
  int64_t deadInputs = 0;
  for (int64_t k = 0; k < n; ++k)
    if (h[k * n + k] == 0.0) {
      dead[k] = 1;
      h[k * n + k] = 1.0;
      ++deadInputs;
    }

  // Processing order: natural, or by decreasing H[k, k] (stable, so ties
  // keep the natural order). perm[position] = column, pos[column] =
  // position.
  std::vector<int64_t> perm(n), pos(n);
  std::iota(perm.begin(), perm.end(), 0);
  if (options.actOrder)
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) {
      return h[a * n + a] > h[b * n + b];
    });
  for (int64_t p = 0; p < n; ++p)
    pos[perm[p]] = p;

  double meanDiag = 0.0;
  for (int64_t k = 0; k < n; ++k)
    meanDiag += h[k * n + k];
  meanDiag /= static_cast<double>(n);
  if (!(meanDiag > 0.0)) {
    error = "GPTQ: the Gram matrix is not positive definite (its mean "
            "diagonal is not positive)";
    return false;
  }

  // H in processing order, dampened; U = chol(H^-1)^T, retrying with more
  // dampening while H is not positive definite.
  std::vector<double> hp(n * n), u;
  double lambda = options.dampening;
  int64_t bad = -1;
  for (int attempt = 0; attempt <= options.dampeningRetries;
       ++attempt, lambda *= 10.0) {
    for (int64_t a = 0; a < n; ++a)
      for (int64_t b = 0; b < n; ++b)
        hp[a * n + b] = h[perm[a] * n + perm[b]];
    for (int64_t a = 0; a < n; ++a)
      hp[a * n + a] += lambda * meanDiag;
    bad = inverseCholeskyUpper(hp, n, u);
    if (bad < 0)
      break;
  }
  if (bad >= 0) {
    std::ostringstream os;
    os << "GPTQ: the Gram matrix is not positive definite even with "
          "dampening "
       << lambda / 10.0 << " x its mean diagonal (Cholesky pivot of input "
       << perm[bad] << "); is it X^T X of the layer's input?";
    error = os.str();
    return false;
  }

  // Weights in processing order; dead inputs' columns zeroed.
  std::vector<float> wp(rows * n);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t p = 0; p < n; ++p)
      wp[r * n + p] = dead[perm[p]] ? 0.0f : w[r * n + perm[p]];

  const int64_t gs = storedGroupSize(groupSize, cols);
  const int64_t groups = (cols + gs - 1) / gs;
  std::vector<GroupParams> params(rows * groups);
  std::vector<char> chosen(groups, 0);
  std::vector<uint8_t> codes(rows * n);
  const int64_t block = std::min(options.blockSize, n);
  std::vector<double> err(rows * block), acc(n);
  std::vector<float> groupVals(gs);

  for (int64_t i1 = 0; i1 < n; i1 += block) {
    const int64_t i2 = std::min(i1 + block, n);
    for (int64_t col = i1; col < i2; ++col) {
      const int64_t i = col - i1, c = perm[col], g = c / gs;
      if (!chosen[g]) {
        // The group's current weights: columns inside this block already
        // hold every update; later ones miss this block's updates so far.
        const int64_t c0 = g * gs, len = std::min(gs, cols - c0);
        for (int64_t r = 0; r < rows; ++r) {
          const double *e = &err[r * block];
          for (int64_t t = 0; t < len; ++t) {
            int64_t p = pos[c0 + t];
            double v = wp[r * n + p];
            if (p >= i2)
              for (int64_t b = 0; b < i; ++b)
                v -= e[b] * u[(i1 + b) * n + p];
            groupVals[t] = static_cast<float>(v);
          }
          params[r * groups + g] = chooseGroupParams(
              groupVals.data(), len, bits, symmetric, scaleType);
        }
        chosen[g] = 1;
      }
      const double *urow = &u[col * n];
      const double d = urow[col];
      for (int64_t r = 0; r < rows; ++r) {
        float *wr = &wp[r * n];
        const GroupParams &gp = params[r * groups + g];
        uint8_t q = quantizeValue(wr[col], gp, bits);
        codes[r * n + c] = q;
        double e = (static_cast<double>(wr[col]) -
                    static_cast<double>(dequantizeValue(q, gp))) /
                   d;
        err[r * block + i] = e;
        for (int64_t j = col + 1; j < i2; ++j)
          wr[j] = static_cast<float>(wr[j] - e * urow[j]);
      }
    }
    // Lazy batch update of the columns after the block.
    if (i2 < n)
      for (int64_t r = 0; r < rows; ++r) {
        std::fill(acc.begin() + i2, acc.end(), 0.0);
        for (int64_t b = 0; b < i2 - i1; ++b) {
          double e = err[r * block + b];
          const double *ub = &u[(i1 + b) * n];
          for (int64_t j = i2; j < n; ++j)
            acc[j] += e * ub[j];
        }
        float *wr = &wp[r * n];
        for (int64_t j = i2; j < n; ++j)
          wr[j] = static_cast<float>(wr[j] - acc[j]);
      }
  }

  result.matrix = packQuantizedMatrix(codes.data(), params.data(), rows,
                                      cols, bits, groupSize, symmetric);
  result.loss = quantizationLoss(w, result.matrix, gram);
  result.dampening = lambda;
  result.deadInputs = deadInputs;
  return true;
}

double quench::quant::quantizationLoss(const float *w,
                                       const QuantizedMatrix &q,
                                       const double *gram) {
  const int64_t n = q.cols;
  // Rows in tiles of `tile`, so that each row of H is read once per tile
  // (H does not fit in cache for large K; the cost is memory-bound else).
  const int64_t tile = 16;
  std::vector<double> d(tile * n), t(tile * n);
  double loss = 0.0;
  for (int64_t r0 = 0; r0 < q.rows; r0 += tile) {
    const int64_t rows = std::min(tile, q.rows - r0);
    for (int64_t rr = 0; rr < rows; ++rr)
      for (int64_t c = 0; c < n; ++c)
        d[rr * n + c] = static_cast<double>(w[(r0 + rr) * n + c]) -
                        static_cast<double>(dequantizeAt(q, r0 + rr, c));
    // t = d H (H is symmetric), as axpys over H's rows; then d . t.
    std::fill(t.begin(), t.end(), 0.0);
    for (int64_t i = 0; i < n; ++i) {
      const double *hi = &gram[i * n];
      for (int64_t rr = 0; rr < rows; ++rr) {
        const double di = d[rr * n + i];
        if (di == 0.0)
          continue;
        double *tr = &t[rr * n];
        for (int64_t j = 0; j < n; ++j)
          tr[j] += di * hi[j];
      }
    }
    for (int64_t k = 0; k < rows * n; ++k)
      loss += d[k] * t[k];
  }
  return loss;
}
