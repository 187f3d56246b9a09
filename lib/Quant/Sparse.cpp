//===- Sparse.cpp - weight pruning numerics (masks, SparseGPT) ------------===//
//
// Mask selection and SparseGPT as described in Sparse.h. SparseGPT runs
// Hessian.h's sweep (GPTQ's) with targets that prune; the mask of a block
// or N:M group is chosen when the sweep reaches it, from the weights as
// updated by then.
//
//===----------------------------------------------------------------------===//

#include "quench/Quant/Sparse.h"

#include "Hessian.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <sstream>

using namespace quench::quant;

std::string SparsityPattern::str() const {
  switch (kind) {
  case Kind::Dense:
    return "dense";
  case Kind::NM:
    return std::to_string(n) + ":" + std::to_string(m);
  case Kind::Unstructured: {
    std::ostringstream os;
    os << "unstructured:" << fraction;
    return os.str();
  }
  }
  return "dense";
}

int64_t quench::quant::unstructuredPrunedCount(double fraction, int64_t cols) {
  return static_cast<int64_t>(
      std::llround(fraction * static_cast<double>(cols)));
}

int64_t SparsityPattern::prunedPerRow(int64_t cols) const {
  switch (kind) {
  case Kind::Dense:
    return 0;
  case Kind::NM: {
    int64_t full = cols / m, tail = cols % m;
    return full * (m - n) + std::max<int64_t>(0, tail - n);
  }
  case Kind::Unstructured:
    return unstructuredPrunedCount(fraction, cols);
  }
  return 0;
}

bool quench::quant::parseSparsityPattern(const std::string &text,
                                         SparsityPattern &out,
                                         std::string &error) {
  out = SparsityPattern();
  if (text == "none" || text == "dense")
    return true;
  const std::string prefix = "unstructured:";
  if (text.compare(0, prefix.size(), prefix) == 0) {
    const std::string f = text.substr(prefix.size());
    char *end = nullptr;
    double v = f.empty() ? NAN : std::strtod(f.c_str(), &end);
    if (f.empty() || *end || !(v > 0.0 && v < 1.0)) {
      error = "sparsity '" + text +
              "': the unstructured fraction pruned must be a number in "
              "(0, 1), e.g. unstructured:0.5";
      return false;
    }
    out.kind = SparsityPattern::Kind::Unstructured;
    out.fraction = v;
    return true;
  }
  size_t colon = text.find(':');
  auto isNumber = [](const std::string &s) {
    return !s.empty() && s.size() <= 3 &&
           std::all_of(s.begin(), s.end(),
                       [](char c) { return c >= '0' && c <= '9'; });
  };
  if (colon != std::string::npos && isNumber(text.substr(0, colon)) &&
      isNumber(text.substr(colon + 1))) {
    int n = std::stoi(text.substr(0, colon));
    int m = std::stoi(text.substr(colon + 1));
    if (n >= 1 && n < m && m <= kMaxSparsityGroup) {
      out.kind = SparsityPattern::Kind::NM;
      out.n = n;
      out.m = m;
      return true;
    }
  }
  error = "sparsity '" + text +
          "': use N:M (keep N of every M weights along K, 1 <= N < M <= " +
          std::to_string(kMaxSparsityGroup) +
          ", e.g. 2:4), unstructured:FRACTION (e.g. unstructured:0.5) or "
          "none";
  return false;
}

namespace {

/// Keeps the `keep` largest of the scores s[0 .. len) (ties: the lower
/// index) in mask[0 .. len) (1: keep), pruning the rest. `order` is
/// scratch.
void keepLargest(const double *s, int64_t len, int64_t keep, uint8_t *mask,
                 std::vector<int64_t> &order) {
  order.resize(len);
  std::iota(order.begin(), order.end(), 0);
  keep = std::clamp<int64_t>(keep, 0, len);
  // Larger score first; among equal scores the lower index first.
  std::partial_sort(order.begin(), order.begin() + keep, order.end(),
                    [&](int64_t a, int64_t b) {
                      return s[a] > s[b] || (s[a] == s[b] && a < b);
                    });
  std::fill(mask, mask + len, 0);
  for (int64_t t = 0; t < keep; ++t)
    mask[order[t]] = 1;
}

} // namespace

std::vector<uint8_t>
quench::quant::selectMagnitudeMask(const float *w, int64_t rows, int64_t cols,
                                   const SparsityPattern &pattern) {
  std::vector<uint8_t> mask(size_t(rows) * cols, 1);
  if (pattern.isDense())
    return mask;
  std::vector<double> s(cols);
  std::vector<int64_t> order;
  for (int64_t r = 0; r < rows; ++r) {
    // NaN counts as the largest magnitude (kept: pruning does not hide
    // it), so the order stays total.
    for (int64_t c = 0; c < cols; ++c) {
      double a = std::fabs(static_cast<double>(w[r * cols + c]));
      s[c] = std::isnan(a) ? INFINITY : a;
    }
    uint8_t *mr = &mask[r * cols];
    if (pattern.kind == SparsityPattern::Kind::Unstructured) {
      keepLargest(s.data(), cols, cols - pattern.prunedPerRow(cols), mr, order);
      continue;
    }
    for (int64_t c0 = 0; c0 < cols; c0 += pattern.m) {
      int64_t len = std::min<int64_t>(pattern.m, cols - c0);
      keepLargest(&s[c0], len, pattern.n, mr + c0, order);
    }
  }
  return mask;
}

bool quench::quant::maskFitsPattern(const uint8_t *mask, int64_t rows,
                                    int64_t cols,
                                    const SparsityPattern &pattern) {
  if (pattern.isDense())
    return true;
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t *mr = mask + r * cols;
    if (pattern.kind == SparsityPattern::Kind::Unstructured) {
      int64_t kept = std::count_if(mr, mr + cols, [](uint8_t k) { return k; });
      if (kept > cols - pattern.prunedPerRow(cols))
        return false;
      continue;
    }
    for (int64_t c0 = 0; c0 < cols; c0 += pattern.m) {
      int64_t len = std::min<int64_t>(pattern.m, cols - c0);
      int64_t kept =
          std::count_if(mr + c0, mr + c0 + len, [](uint8_t k) { return k; });
      if (kept > pattern.n)
        return false;
    }
  }
  return true;
}

void quench::quant::applyMask(float *w, const uint8_t *mask, size_t count) {
  for (size_t i = 0; i < count; ++i)
    if (!mask[i])
      w[i] = 0.0f;
}

double quench::quant::densityOf(const float *w, size_t count) {
  if (!count)
    return 1.0;
  size_t nonzero = 0;
  for (size_t i = 0; i < count; ++i)
    nonzero += w[i] != 0.0f;
  return static_cast<double>(nonzero) / static_cast<double>(count);
}

bool quench::quant::pruneSparseGPT(const float *w, int64_t rows, int64_t cols,
                                   const double *gram,
                                   const SparsityPattern &pattern,
                                   const SparseQuantization *quant,
                                   const SparseGPTOptions &options,
                                   SparseGPTResult &result,
                                   std::string &error) {
  assert(rows > 0 && cols > 0 && !pattern.isDense());
  assert(!quant || (quant->bits >= 2 && quant->bits <= 8));
  if (!(options.dampening >= 0.0) || options.blockSize <= 0 ||
      options.dampeningRetries < 0) {
    error = "SparseGPT options: dampening must be >= 0, the block size > 0 "
            "and the retry count >= 0";
    return false;
  }
  const unsigned threads = detail::resolveThreads(options.threads);
  const int64_t n = cols;
  if (!detail::allFinite(w, size_t(rows) * cols)) {
    error = "SparseGPT: the weights are not all finite";
    return false;
  }
  if (!detail::allFinite(gram, size_t(n) * n)) {
    error = "SparseGPT: the Gram matrix is not all finite";
    return false;
  }
  // Natural order: N:M groups and quantization groups are contiguous.
  detail::InverseHessian ih;
  if (!detail::prepareInverseHessian(
          gram, n, /*actOrder=*/false, options.dampening,
          options.dampeningRetries, threads, "SparseGPT", ih, error))
    return false;
  const double *u = ih.u.data();
  const bool nm = pattern.kind == SparsityPattern::Kind::NM;
  int64_t block = std::min(options.blockSize, n);
  if (nm && block < n)
    block = std::max<int64_t>(pattern.m, block / pattern.m * pattern.m);

  std::vector<float> wp(size_t(rows) * n);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < n; ++c)
      wp[r * n + c] = ih.dead[c] ? 0.0f : w[r * n + c];
  // Undecided columns count as kept (1) until their block or group is
  // reached.
  std::vector<uint8_t> mask(size_t(rows) * n, 1);
  std::vector<float> out(size_t(rows) * n);
  // OBS saliency of a weight of column c: w^2 / U[c, c]^2.
  auto saliency = [&](double v, int64_t c) {
    double d = u[c * n + c];
    return v * v / (d * d);
  };

  const int64_t gs =
      quant ? storedGroupSize(quant->groupSize, cols) : int64_t(1);
  const int64_t groups = quant ? (cols + gs - 1) / gs : 0;
  std::vector<GroupParams> params(size_t(rows) * groups);
  std::vector<uint8_t> codes(quant ? size_t(rows) * n : 0);

  detail::sweepColumns(
      wp.data(), rows, n, u, block, threads,
      [&](int64_t r, float *wr, int64_t i1, int64_t i2) {
        if (nm)
          return;
        thread_local std::vector<double> s;
        thread_local std::vector<int64_t> order;
        const int64_t len = i2 - i1;
        s.resize(len);
        for (int64_t c = i1; c < i2; ++c)
          s[c - i1] = saliency(wr[c], c);
        const int64_t pruned = unstructuredPrunedCount(pattern.fraction, i2) -
                               unstructuredPrunedCount(pattern.fraction, i1);
        keepLargest(s.data(), len, len - pruned, &mask[r * n + i1], order);
      },
      [&](int64_t r, float *wr, const double *e, int64_t col, int64_t i,
          int64_t i1, int64_t i2) -> float {
        uint8_t *mr = &mask[r * n];
        if (nm && col % pattern.m == 0) {
          // The group lies inside the block (block % m == 0): its columns
          // hold every update.
          thread_local std::vector<int64_t> order;
          double s[kMaxSparsityGroup];
          const int64_t len = std::min<int64_t>(pattern.m, n - col);
          for (int64_t t = 0; t < len; ++t)
            s[t] = saliency(wr[col + t], col + t);
          keepLargest(s, len, pattern.n, mr + col, order);
        }
        float t = mr[col] ? wr[col] : 0.0f;
        if (quant) {
          const int64_t g = col / gs;
          if (col % gs == 0) {
            thread_local std::vector<float> vals;
            const int64_t len = std::min(gs, cols - col);
            vals.resize(len);
            for (int64_t k = 0; k < len; ++k)
              vals[k] = mr[col + k] ? static_cast<float>(detail::currentValue(
                                          wr, e, u, n, col + k, i, i1, i2))
                                    : 0.0f;
            params[r * groups + g] =
                chooseGroupParams(vals.data(), len, quant->bits,
                                  quant->symmetric, quant->scaleType);
          }
          const GroupParams &gp = params[r * groups + g];
          uint8_t q = quantizeValue(t, gp, quant->bits);
          codes[r * n + col] = q;
          t = dequantizeValue(q, gp);
        }
        out[r * n + col] = t;
        return t;
      });

  if (quant)
    result.matrix =
        packQuantizedMatrix(codes.data(), params.data(), rows, cols,
                            quant->bits, quant->groupSize, quant->symmetric);
  else
    result.matrix.reset();
  result.loss = options.computeLoss
                    ? weightChangeLoss(w, out.data(), rows, cols, gram, threads)
                    : 0.0;
  result.weights = std::move(out);
  result.mask = std::move(mask);
  result.dampening = ih.dampening;
  result.deadInputs = ih.deadInputs;
  return true;
}

double quench::quant::weightChangeLoss(const float *w, const float *p,
                                       int64_t rows, int64_t cols,
                                       const double *gram, unsigned threads) {
  return detail::outputLoss(rows, cols, gram, threads,
                            [&](int64_t r, double *d) {
                              for (int64_t c = 0; c < cols; ++c)
                                d[c] = static_cast<double>(w[r * cols + c]) -
                                       static_cast<double>(p[r * cols + c]);
                            });
}
