//===- GramFactor.cpp - fast output errors tr(D H D^T) --------------------===//
//
// The factorization is the blocked pivoted Cholesky of LAPACK's dpstrf
// (panels of kPanel columns: pivots chosen from the running diagonal of
// the Schur complement, the panel's columns updated left-looking, then one
// rank-kPanel update of the trailing matrix). The evaluation tiles D P L
// into kRows x kCols blocks of accumulators that stay in registers over the
// whole inner dimension. Both kernels are compiled for AVX-512, AVX2+FMA
// and the baseline, picked at run time; every element's sum has a fixed
// order, so results do not depend on the thread count.
//
//===----------------------------------------------------------------------===//

#include "quench/Quant/GramFactor.h"

#include "Parallel.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

using namespace quench::quant;

#if defined(__x86_64__) && defined(__linux__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define QUENCH_VECTOR_CLONES                                                   \
  __attribute__((target_clones("avx512f", "fma", "default")))
#endif
#endif
#ifndef QUENCH_VECTOR_CLONES
#define QUENCH_VECTOR_CLONES
#endif

namespace {

constexpr int64_t kPanel = 32;
/// The evaluation's register tile: kRows rows of D times kCols columns of L
/// (6 x 8 doubles: 12 accumulators of AVX2, 6 of AVX-512).
constexpr int64_t kRows = 6;
constexpr int64_t kCols = 8;
/// Rows of D per task (their permuted copy stays in cache across the column
/// tiles of L); a multiple of kRows.
constexpr int64_t kChunk = 60;

/// kCols doubles, as one (or a few) vector registers.
typedef double Vec __attribute__((vector_size(kCols * sizeof(double))));

#define QUENCH_LOAD_VEC(v, p) std::memcpy(&(v), (p), sizeof(Vec))
#define QUENCH_STORE_VEC(p, v) std::memcpy((p), &(v), sizeof(Vec))

/// Trailing update of one row: row[j] -= sum_c x[c] * pt(c, j), j < n, the
/// sum in order of c; pt in blocks of kCols columns, pt(c, j) =
/// pt[((j / kCols) * panel + c) * kCols + j % kCols] (zero past n).
QUENCH_VECTOR_CLONES
void trailingRow(double *row, const double *x, const double *pt,
                 int64_t panel, int64_t n) {
  for (int64_t j = 0; j < n; j += kCols) {
    const double *block = pt + (j / kCols) * panel * kCols;
    Vec acc, v;
    if (j + kCols <= n) {
      QUENCH_LOAD_VEC(acc, row + j);
    } else {
      acc = Vec{};
      for (int64_t c = j; c < n; ++c)
        acc[c - j] = row[c];
    }
    for (int64_t c = 0; c < panel; ++c) {
      QUENCH_LOAD_VEC(v, block + c * kCols);
      acc -= x[c] * v;
    }
    if (j + kCols <= n) {
      QUENCH_STORE_VEC(row + j, acc);
    } else {
      for (int64_t c = j; c < n; ++c)
        row[c] = acc[c - j];
    }
  }
}

/// out[q] += sum_j (sum_i dp[q, i] L[i, j])^2 for the rows q < rows
/// (a multiple of kRows) of dp ([rows, k]), L [k, tiles * kCols] lower
/// trapezoidal in tiles of kCols columns: L[i, t * kCols + c] =
/// l[(t * k + i) * kCols + c].
QUENCH_VECTOR_CLONES
void factoredRowNorms(const double *dp, int64_t rows, int64_t k,
                      const double *l, int64_t tiles, double *out) {
  for (int64_t t = 0; t < tiles; ++t)
    for (int64_t b = 0; b < rows; b += kRows) {
      Vec acc[kRows] = {}, li;
      const double *d = dp + b * k;
      const double *tile = l + t * k * kCols;
      // L[i, j] = 0 for i < j: the tile's columns start at row t * kCols.
      for (int64_t i = t * kCols; i < k; ++i) {
        QUENCH_LOAD_VEC(li, tile + i * kCols);
        for (int64_t q = 0; q < kRows; ++q)
          acc[q] += d[q * k + i] * li;
      }
      for (int64_t q = 0; q < kRows; ++q) {
        double s = 0;
        for (int64_t c = 0; c < kCols; ++c)
          s += acc[q][c] * acc[q][c];
        out[b + q] += s;
      }
    }
}

} // namespace

GramFactor::GramFactor(const double *gram, int64_t k, unsigned threads)
    : k(k), perm(k) {
  std::iota(perm.begin(), perm.end(), int64_t{0});
  // The lower triangle of `a` is the working matrix: L in the columns
  // factored, the Schur complement right of them.
  std::vector<double> a(gram, gram + k * k);
  for (double v : a)
    finite &= std::isfinite(v);
  double maxDiag = 0;
  for (int64_t i = 0; i < k; ++i)
    maxDiag = std::max(maxDiag, a[i * k + i]);
  // Pivots at H's rounding level are noise: directions H does not have.
  const double tol =
      maxDiag * static_cast<double>(k) * std::numeric_limits<double>::epsilon();
  std::vector<double> diag(k), pt;
  bool done = !finite || !(maxDiag > 0);
  int64_t rank = 0;
  for (int64_t j0 = 0; j0 < k && !done; j0 += kPanel) {
    const int64_t j1 = std::min(j0 + kPanel, k);
    // diag: the Schur complement's diagonal after the columns before j.
    for (int64_t i = j0; i < k; ++i)
      diag[i] = a[i * k + i];
    int64_t j = j0;
    for (; j < j1; ++j) {
      int64_t p = j;
      for (int64_t i = j + 1; i < k; ++i)
        if (diag[i] > diag[p])
          p = i;
      if (!(diag[p] > tol)) {
        done = true;
        break;
      }
      if (p != j) {
        // Symmetric swap of j and p in the lower triangle: the factor's
        // columns before j, the diagonal, the entries between j and p
        // (mirrored) and those below p.
        std::swap_ranges(&a[j * k], &a[j * k] + j, &a[p * k]);
        std::swap(a[j * k + j], a[p * k + p]);
        for (int64_t i = j + 1; i < p; ++i)
          std::swap(a[i * k + j], a[p * k + i]);
        for (int64_t i = p + 1; i < k; ++i)
          std::swap(a[i * k + j], a[i * k + p]);
        std::swap(diag[j], diag[p]);
        std::swap(perm[j], perm[p]);
      }
      const double ljj = std::sqrt(diag[j]);
      a[j * k + j] = ljj;
      const double *lj = &a[j * k];
      for (int64_t i = j + 1; i < k; ++i) {
        double *ai = &a[i * k];
        double s = ai[j];
        for (int64_t c = j0; c < j; ++c)
          s -= ai[c] * lj[c];
        ai[j] = s / ljj;
        diag[i] -= ai[j] * ai[j];
      }
    }
    rank = j;
    if (done || j1 == k)
      break;
    // A[i, l] -= sum_c L[i, c] L[l, c] over the panel, for j1 <= l <= i
    // (the lower triangle is all that is read).
    const int64_t n = k - j1, panel = j1 - j0;
    pt.assign((n + kCols - 1) / kCols * kCols * panel, 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < panel; ++c)
        pt[((i / kCols) * panel + c) * kCols + i % kCols] =
            a[(j1 + i) * k + j0 + c];
    detail::parallelFor(threads, n, 16, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        double *row = &a[(j1 + i) * k];
        trailingRow(row + j1, row + j0, pt.data(), panel, i + 1);
      }
    });
  }
  r = rank;
  tiles = (r + kCols - 1) / kCols;
  l.assign(tiles * k * kCols, 0.0);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t c = 0; c <= std::min(i, r - 1); ++c)
      l[((c / kCols) * k + i) * kCols + c % kCols] = a[i * k + c];
}

double GramFactor::quadraticSum(
    int64_t rows, const std::function<void(int64_t, double *)> &fill,
    unsigned threads) const {
  if (!finite)
    return std::numeric_limits<double>::quiet_NaN();
  // One partial sum per row, added in row order at the end.
  std::vector<double> rowError(rows, 0.0);
  detail::parallelFor(threads, rows, kChunk, [&](int64_t r0, int64_t r1) {
    const int64_t n = r1 - r0, padded = (n + kRows - 1) / kRows * kRows;
    std::vector<double> d(k), dp(padded * k, 0.0), out(padded, 0.0);
    for (int64_t q = 0; q < n; ++q) {
      fill(r0 + q, d.data());
      for (int64_t i = 0; i < k; ++i)
        dp[q * k + i] = d[perm[i]];
    }
    factoredRowNorms(dp.data(), padded, k, l.data(), tiles, out.data());
    std::copy(out.begin(), out.begin() + n, rowError.begin() + r0);
  });
  double total = 0.0;
  for (double e : rowError)
    total += e;
  return total;
}
