//===- Hessian.cpp - the inverse-Hessian column sweep of GPTQ/SparseGPT ---===//
//
// The shared parts of GPTQ and SparseGPT (Hessian.h): dense
// double-precision Cholesky steps on the [K, K] Gram matrix, the lazy batch
// update and the output loss.
//
// Speed. The O(K^3) and O(N K^2) parts are cache-blocked and run on
// several threads. Every output element is computed by exactly one thread,
// with a sequence of floating-point operations fixed by the element's
// indices and the (constant) block sizes alone, never by how the work was
// split: results are bit-identical for any thread count. The kernels keep
// 32 consecutive elements of a row (8 or 1 at the edges) in registers
// across a whole reduction (a dot product done as independent running
// sums, one per element, in the order of the reduction index), which
// vectorizes without reassociating floating-point sums; they are compiled
// for AVX2 (without FMA) and the baseline, with the same results.
//
// The factor U (H^-1 = U^T U, upper) comes from one Cholesky factorization
// and one triangular inverse: with P the reversal permutation,
// P H P = R^T R (R upper) gives H = A^T A for the lower triangular
// A = P R P, so H^-1 = A^-1 A^-T = U^T U with U = A^-T, i.e.
// U[i, j] = (R^-1)[n-1-j, n-1-i]. That is half the work and memory of
// inverting H and factoring the inverse again.
//
//===----------------------------------------------------------------------===//

#include "Hessian.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numeric>
#include <sstream>
#include <vector>

using namespace quench::quant;
using detail::parallelFor;
using detail::resolveThreads;

namespace {

/// The kernels below are compiled twice, for AVX2 and for the baseline
/// instruction set, and the processor picks (an ifunc, resolved once).
/// AVX2 without FMA: the vector code does the same multiplies and adds in
/// the same order as the baseline code (4 doubles at a time instead of 2),
/// so the results are the same bit for bit on every x86-64 machine.
#if defined(__x86_64__) && defined(__linux__) &&                             \
    (defined(__GNUC__) || defined(__clang__))
#define QUENCH_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define QUENCH_VECTOR_CLONES
#endif

/// Elements of a row kept in registers by the kernels (one SIMD-friendly
/// group of running sums).
constexpr int64_t kLanes = 8;
/// The wide groups of the O(n^3) kernels: 32 running sums (eight AVX2
/// registers) are enough independent additions to hide the adder's latency,
/// which a group of 8 (two dependent chains per register) is not.
constexpr int64_t kWideLanes = 32;

#if defined(__GNUC__) || defined(__clang__)
#define QUENCH_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define QUENCH_ALWAYS_INLINE inline
#endif

/// ri[k .. k + L) -= sum_p f[p] * panel[p * n + k ..], p in order, skipping
/// f[p] == 0 (choleskyUpper's step 3 for one group of a row).
template <int64_t L>
QUENCH_ALWAYS_INLINE void choleskyGroup(double *ri, const double *f,
                                        const double *panel, int64_t n,
                                        int64_t k, int64_t pw) {
  double acc[L];
  for (int64_t t = 0; t < L; ++t)
    acc[t] = ri[k + t];
  for (int64_t p = 0; p < pw; ++p) {
    const double fp = f[p];
    if (fp == 0.0)
      continue;
    const double *up = panel + p * n + k;
    for (int64_t t = 0; t < L; ++t)
      acc[t] -= fp * up[t];
  }
  for (int64_t t = 0; t < L; ++t)
    ri[k + t] = acc[t];
}

/// wr[j .. j + L) -= sum_b e[b] * u[(i1 + b) * n + j ..], the sum in order
/// of b (GPTQ's lazy batch update for one group of a row).
template <int64_t L>
QUENCH_ALWAYS_INLINE void lazyGroup(float *wr, const double *e,
                                    const double *u, int64_t n, int64_t i1,
                                    int64_t bw, int64_t j) {
  double acc[L] = {};
  for (int64_t b = 0; b < bw; ++b) {
    const double eb = e[b];
    const double *ub = &u[(i1 + b) * n + j];
    for (int64_t t = 0; t < L; ++t)
      acc[t] += eb * ub[t];
  }
  for (int64_t t = 0; t < L; ++t)
    wr[j + t] = static_cast<float>(wr[j + t] - acc[t]);
}

/// Step 3 of choleskyUpper for the rows [r0, r1) of the trailing matrix:
/// A[i, k] -= U[b, i] * U[b, k] for b = j0 .. j1 - 1 in order, k >= i.
/// Columns in chunks of kCols so that the panel's slice of a chunk stays in
/// cache across the rows.
QUENCH_VECTOR_CLONES
void choleskyTrailingRows(double *a, int64_t n, int64_t j0, int64_t j1,
                          int64_t r0, int64_t r1, int64_t kCols) {
  const int64_t pw = j1 - j0;
  std::vector<double> fcol(pw * (r1 - r0));
  for (int64_t i = r0; i < r1; ++i)
    for (int64_t p = 0; p < pw; ++p)
      fcol[(i - r0) * pw + p] = a[(j0 + p) * n + i];
  const double *panel = a + j0 * n;
  for (int64_t c0 = r0; c0 < n; c0 += kCols) {
    const int64_t c1 = std::min(c0 + kCols, n);
    for (int64_t i = r0; i < r1; ++i) {
      const int64_t ks = std::max(i, c0);
      if (ks >= c1)
        continue;
      const double *f = &fcol[(i - r0) * pw];
      double *ri = a + i * n;
      int64_t k = ks;
      for (; k + kWideLanes <= c1; k += kWideLanes)
        choleskyGroup<kWideLanes>(ri, f, panel, n, k, pw);
      for (; k + kLanes <= c1; k += kLanes)
        choleskyGroup<kLanes>(ri, f, panel, n, k, pw);
      for (; k < c1; ++k) {
        double acc = ri[k];
        for (int64_t p = 0; p < pw; ++p)
          if (f[p] != 0.0)
            acc -= f[p] * panel[p * n + k];
        ri[k] = acc;
      }
    }
  }
}

/// In-place upper Cholesky factorization A = U^T U of the symmetric
/// row-major [n, n] matrix `a` (only its upper triangle is read; the lower
/// one is zeroed). Right-looking and blocked by panels of `kPanel` rows;
/// every element goes through exactly the operations of the unblocked
/// algorithm (for each earlier row b in order: a -= U[b, i] * U[b, k],
/// skipped when U[b, i] == 0; then the division by the pivot), so the
/// result does not depend on the blocking or the thread count. Returns the
/// index of the first non-positive (or non-finite) pivot, or -1.
int64_t choleskyUpper(double *a, int64_t n, unsigned threads) {
  constexpr int64_t kPanel = 64, kCols = 512, kRowTile = 16;
  std::vector<double> fcolStore;
  for (int64_t j0 = 0; j0 < n; j0 += kPanel) {
    const int64_t j1 = std::min(j0 + kPanel, n);
    // 1. The panel's rows j0..j1 on columns up to j1 (its diagonal block).
    for (int64_t j = j0; j < j1; ++j) {
      double *rj = a + j * n;
      double d = rj[j];
      if (!(d > 0.0) || !std::isfinite(d))
        return j;
      d = std::sqrt(d);
      rj[j] = d;
      for (int64_t k = j + 1; k < j1; ++k)
        rj[k] /= d;
      for (int64_t i = j + 1; i < j1; ++i) {
        double f = rj[i];
        if (f == 0.0)
          continue;
        double *ri = a + i * n;
        for (int64_t k = i; k < j1; ++k)
          ri[k] -= f * rj[k];
      }
    }
    if (j1 == n)
      break;
    // 2. The panel's rows on the columns after it, by column chunks.
    parallelFor(threads, n - j1, kCols, [&](int64_t b, int64_t e) {
      const int64_t k0 = j1 + b, k1 = j1 + e;
      for (int64_t j = j0; j < j1; ++j) {
        double *rj = a + j * n;
        const double d = rj[j];
        for (int64_t k = k0; k < k1; ++k)
          rj[k] /= d;
        for (int64_t i = j + 1; i < j1; ++i) {
          double f = rj[i];
          if (f == 0.0)
            continue;
          double *ri = a + i * n;
          for (int64_t k = k0; k < k1; ++k)
            ri[k] -= f * rj[k];
        }
      }
    });
    // 3. The trailing matrix loses the panel's rows: for i >= j1 and
    // k >= i, A[i, k] -= U[b, i] * U[b, k] for b = j0 .. j1 - 1 in order.
    // Rows in tiles, columns in chunks so that the panel's slice of a chunk
    // stays in cache across a tile's rows.
    parallelFor(threads, n - j1, kRowTile, [&](int64_t b, int64_t e) {
      choleskyTrailingRows(a, n, j0, j1, j1 + b, j1 + e, kCols);
    });
  }
  parallelFor(threads, n, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      std::fill(a + i * n, a + i * n + i, 0.0);
  });
  return -1;
}

/// The column chunks [b, e) of invertUpper (counted from the widest).
QUENCH_VECTOR_CLONES
void invertUpperChunks(const double *r, double *v, int64_t n, int64_t chunks,
                       int64_t b, int64_t e) {
  constexpr int64_t kRowBlock = 32, kSlice = 128, kChunk = 128;
  constexpr int64_t kInvLanes = kWideLanes;
  for (int64_t cc = b; cc < e; ++cc) {
    // The widest (most work) chunks first.
    const int64_t chunk = chunks - 1 - cc;
    const int64_t c0 = chunk * kChunk, c1 = std::min(c0 + kChunk, n);
    for (int64_t i = 0; i < n; ++i)
      std::fill(v + i * n + c0, v + i * n + c1, 0.0);
    // Row blocks that meet the chunk's upper triangle (i < c1), last
    // first.
    const int64_t lastBlock = (c1 - 1) / kRowBlock;
    for (int64_t blk = lastBlock; blk >= 0; --blk) {
      const int64_t i0 = blk * kRowBlock,
                    i1 = std::min(i0 + kRowBlock, n);
      for (int64_t i = i0; i < i1; ++i)
        if (i >= c0 && i < c1)
          v[i * n + i] = 1.0;
      // Lane groups are aligned to multiples of kInvLanes in absolute
      // columns (kChunk is a multiple of kInvLanes), so a group's k range
      // does not depend on the chunking.
      // Terms of the rows below the block, k in [i1, min(n, group end)).
      for (int64_t s0 = i1; s0 < c1; s0 += kSlice) {
        const int64_t s1 = std::min(s0 + kSlice, c1);
        for (int64_t i = i0; i < i1; ++i) {
          const double *ri = r + i * n;
          double *vi = v + i * n;
          for (int64_t j = std::max(c0, i / kInvLanes * kInvLanes); j < c1;
               j += kInvLanes) {
            const int64_t jl = std::min(j + kInvLanes, c1);
            const int64_t kEnd = std::min(s1, jl);
            if (s0 >= kEnd)
              continue;
            const int64_t w = jl - j;
            double acc[kInvLanes];
            for (int64_t t = 0; t < w; ++t)
              acc[t] = vi[j + t];
            if (w == kInvLanes) {
              for (int64_t k = s0; k < kEnd; ++k) {
                const double f = ri[k];
                const double *vk = v + k * n + j;
                for (int64_t t = 0; t < kInvLanes; ++t)
                  acc[t] -= f * vk[t];
              }
            } else {
              for (int64_t k = s0; k < kEnd; ++k) {
                const double f = ri[k];
                const double *vk = v + k * n + j;
                for (int64_t t = 0; t < w; ++t)
                  acc[t] -= f * vk[t];
              }
            }
            for (int64_t t = 0; t < w; ++t)
              vi[j + t] = acc[t];
          }
        }
      }
      // The block's own rows, from its last: k in (i, i1).
      for (int64_t i = i1 - 1; i >= i0; --i) {
        const double *ri = r + i * n;
        double *vi = v + i * n;
        const double d = ri[i];
        for (int64_t j = std::max(c0, i / kInvLanes * kInvLanes); j < c1;
             j += kInvLanes) {
          const int64_t jl = std::min(j + kInvLanes, c1);
          const int64_t kEnd = std::min(i1, jl);
          const int64_t w = jl - j;
          double acc[kInvLanes];
          for (int64_t t = 0; t < w; ++t)
            acc[t] = vi[j + t];
          for (int64_t k = i + 1; k < kEnd; ++k) {
            const double f = ri[k];
            const double *vk = v + k * n + j;
            for (int64_t t = 0; t < w; ++t)
              acc[t] -= f * vk[t];
          }
          for (int64_t t = 0; t < w; ++t)
            vi[j + t] = j + t < i ? 0.0 : acc[t] / d;
        }
      }
    }
  }
}

/// V = R^-1 for the upper triangular row-major [n, n] `r` with a positive
/// diagonal, into `v` (upper triangular; the lower triangle is +0). Back
/// substitution R V = I by rows, V[i, j] = (delta_ij - sum_{i < k <= j}
/// R[i, k] V[k, j]) / R[i, i], blocked: rows in blocks of kRowBlock (from
/// the last), each first taking the terms of the rows below its block (in
/// increasing k, by slices of kSlice rows of V that stay in cache), then its
/// own rows (increasing k). Columns are independent: they are split over
/// the threads in chunks of kChunk. The order of every element's terms
/// depends only on its indices.
void invertUpper(const double *r, double *v, int64_t n, unsigned threads) {
  constexpr int64_t kChunk = 128;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  parallelFor(threads, chunks, 1, [&](int64_t b, int64_t e) {
    invertUpperChunks(r, v, n, chunks, b, e);
  });
}

/// The upper Cholesky factor U of H^-1 (H^-1 = U^T U) of the symmetric
/// positive definite `hp` given reversed (hp = P H P, see the file comment;
/// overwritten), into `u`. Returns the failing pivot of the factorization
/// of P H P (see choleskyUpper) or -1.
int64_t inverseCholeskyUpper(std::vector<double> &hp, int64_t n,
                             std::vector<double> &u, unsigned threads) {
  if (int64_t bad = choleskyUpper(hp.data(), n, threads); bad >= 0)
    return bad;
  // V = R^-1 into u, then U[i, j] = V[n-1-j, n-1-i] into hp (R is no longer
  // needed), by tiles.
  u.assign(size_t(n) * n, 0.0);
  invertUpper(hp.data(), u.data(), n, threads);
  constexpr int64_t kTile = 64;
  parallelFor(threads, n, kTile, [&](int64_t b, int64_t e) {
    for (int64_t j0 = 0; j0 < n; j0 += kTile)
      for (int64_t i = b; i < e; ++i) {
        double *hi = &hp[i * n];
        for (int64_t j = j0; j < std::min(j0 + kTile, n); ++j)
          hi[j] = j < i ? 0.0 : u[(n - 1 - j) * n + (n - 1 - i)];
      }
  });
  u.swap(hp);
  return -1;
}

} // namespace

bool detail::allFinite(const float *p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i]))
      return false;
  return true;
}

bool detail::allFinite(const double *p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i]))
      return false;
  return true;
}

bool detail::prepareInverseHessian(const double *gram, int64_t n,
                                   bool actOrder, double dampening,
                                   int retries, unsigned threads,
                                   const char *who, InverseHessian &out,
                                   std::string &error) {
  threads = resolveThreads(threads);
  out.n = n;
  // Dead inputs: never active, so their weights do not matter; H[k, k] = 1
  // keeps H invertible and the zero weight costs nothing.
  out.dead.assign(n, 0);
  std::vector<double> diag(n);
  out.deadInputs = 0;
  for (int64_t k = 0; k < n; ++k) {
    diag[k] = gram[k * n + k];
    if (diag[k] == 0.0) {
      out.dead[k] = 1;
      diag[k] = 1.0;
      ++out.deadInputs;
    }
  }

  // Processing order: natural, or by decreasing H[k, k] (stable, so ties
  // keep the natural order).
  std::vector<int64_t> &perm = out.perm, &pos = out.pos;
  perm.resize(n);
  pos.resize(n);
  std::iota(perm.begin(), perm.end(), 0);
  if (actOrder)
    std::stable_sort(perm.begin(), perm.end(),
                     [&](int64_t a, int64_t b) { return diag[a] > diag[b]; });
  for (int64_t p = 0; p < n; ++p)
    pos[perm[p]] = p;

  double meanDiag = 0.0;
  for (int64_t k = 0; k < n; ++k)
    meanDiag += diag[k];
  meanDiag /= static_cast<double>(n);
  if (!(meanDiag > 0.0)) {
    error = std::string(who) + ": the Gram matrix is not positive definite "
                               "(its mean diagonal is not positive)";
    return false;
  }

  // H in processing order, reversed (see the file comment) and dampened;
  // U = chol(H^-1)^T, retrying with more dampening while H is not positive
  // definite.
  std::vector<double> hp(size_t(n) * n);
  double lambda = dampening;
  int64_t bad = -1;
  for (int attempt = 0; attempt <= retries; ++attempt, lambda *= 10.0) {
    parallelFor(threads, n, 64, [&](int64_t b, int64_t e) {
      for (int64_t a = b; a < e; ++a) {
        const double *g = gram + perm[n - 1 - a] * n;
        double *ha = &hp[a * n];
        for (int64_t c = 0; c < n; ++c)
          ha[c] = g[perm[n - 1 - c]];
        ha[a] = diag[perm[n - 1 - a]] + lambda * meanDiag;
      }
    });
    bad = inverseCholeskyUpper(hp, n, out.u, threads);
    if (bad < 0)
      break;
  }
  if (bad >= 0) {
    std::ostringstream os;
    os << who
       << ": the Gram matrix is not positive definite even with "
          "dampening "
       << lambda / 10.0 << " x its mean diagonal (Cholesky pivot of input "
       << perm[n - 1 - bad] << "); is it X^T X of the layer's input?";
    error = os.str();
    return false;
  }
  out.dampening = lambda;
  return true;
}

// Columns in chunks of kCols so that U's slice stays in cache across the
// rows.
QUENCH_VECTOR_CLONES
void detail::lazyBatchUpdate(float *wp, const double *err, const double *u, int64_t n,
                     int64_t block, int64_t i1, int64_t i2, int64_t r0,
                     int64_t r1, int64_t kCols) {
  const int64_t bw = i2 - i1;
  for (int64_t c0 = i2; c0 < n; c0 += kCols) {
    const int64_t c1 = std::min(c0 + kCols, n);
    for (int64_t r = r0; r < r1; ++r) {
      float *wr = &wp[r * n];
      const double *e = &err[r * block];
      int64_t j = c0;
      for (; j + kWideLanes <= c1; j += kWideLanes)
        lazyGroup<kWideLanes>(wr, e, u, n, i1, bw, j);
      for (; j + kLanes <= c1; j += kLanes)
        lazyGroup<kLanes>(wr, e, u, n, i1, bw, j);
      for (; j < c1; ++j) {
        double acc = 0.0;
        for (int64_t b = 0; b < bw; ++b)
          acc += e[b] * u[(i1 + b) * n + j];
        wr[j] = static_cast<float>(wr[j] - acc);
      }
    }
  }
}


double detail::outputLoss(
    int64_t rows, int64_t n, const double *gram, unsigned threads,
    const std::function<void(int64_t, double *)> &delta) {
  threads = resolveThreads(threads);
  // tr(D H D^T) = sum_r d_r . (d_r H), by tiles of kRows rows (each tile's
  // sum computed by one thread; the tiles' sums added in order). Within a
  // tile, t = d H is built by column chunks and blocks of H's rows so that
  // a block of H stays in cache across the tile's rows; every t[r, j] sums
  // over H's rows in increasing order.
  constexpr int64_t kRows = 128, kCols = 256, kHRows = 64;
  const int64_t tiles = (rows + kRows - 1) / kRows;
  std::vector<double> tileLoss(tiles, 0.0);
  parallelFor(threads, tiles, 1, [&](int64_t b, int64_t e) {
    std::vector<double> d(kRows * n), t(kRows * kCols);
    for (int64_t tile = b; tile < e; ++tile) {
      const int64_t r0 = tile * kRows, rs = std::min(kRows, rows - r0);
      for (int64_t rr = 0; rr < rs; ++rr)
        delta(r0 + rr, &d[rr * n]);
      double loss = 0.0;
      for (int64_t c0 = 0; c0 < n; c0 += kCols) {
        const int64_t cw = std::min(kCols, n - c0);
        std::fill(t.begin(), t.end(), 0.0);
        for (int64_t h0 = 0; h0 < n; h0 += kHRows) {
          const int64_t h1 = std::min(h0 + kHRows, n);
          for (int64_t rr = 0; rr < rs; ++rr) {
            const double *dr = &d[rr * n];
            double *tr = &t[rr * kCols];
            int64_t j = 0;
            for (; j + kLanes <= cw; j += kLanes) {
              double acc[kLanes];
              for (int64_t l = 0; l < kLanes; ++l)
                acc[l] = tr[j + l];
              for (int64_t i = h0; i < h1; ++i) {
                const double di = dr[i];
                const double *hi = gram + i * n + c0 + j;
                for (int64_t l = 0; l < kLanes; ++l)
                  acc[l] += di * hi[l];
              }
              for (int64_t l = 0; l < kLanes; ++l)
                tr[j + l] = acc[l];
            }
            for (; j < cw; ++j) {
              double acc = tr[j];
              for (int64_t i = h0; i < h1; ++i)
                acc += dr[i] * gram[i * n + c0 + j];
              tr[j] = acc;
            }
          }
        }
        for (int64_t rr = 0; rr < rs; ++rr)
          for (int64_t j = 0; j < cw; ++j)
            loss += d[rr * n + c0 + j] * t[rr * kCols + j];
      }
      tileLoss[tile] = loss;
    }
  });
  double loss = 0.0;
  for (double l : tileLoss)
    loss += l;
  return loss;
}
