//===- AWQ.cpp - activation-aware weight quantization numerics ------------===//

#include "quench/Quant/AWQ.h"
#include "quench/Quant/GramFactor.h"

#include "Parallel.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

using namespace quench::quant;

double quench::quant::hessianWeightedError(const float *a, const float *b,
                                           int64_t rows, int64_t cols,
                                           const double *gram,
                                           unsigned threads) {
  return GramFactor(gram, cols, threads)
      .quadraticSum(
          rows,
          [&](int64_t r, double *d) {
            for (int64_t c = 0; c < cols; ++c)
              d[c] = static_cast<double>(a[r * cols + c]) - b[r * cols + c];
          },
          threads);
}

/// Quantizes row `src` ([cols]) as quantizeMatrixClipped does, in groups of
/// `len`, group g's range shrunk by clip[g] (null: 1): codes into `codes`
/// ([cols]), parameters into `params` ([groups]); `shrunk` is scratch of
/// len floats.
static void quantizeRowClipped(const float *src, int64_t cols, int64_t len,
                               const AWQConfig &cfg, const float *clip,
                               uint8_t *codes, GroupParams *params,
                               float *shrunk) {
  for (int64_t c0 = 0, g = 0; c0 < cols; c0 += len, ++g) {
    int64_t n = std::min(len, cols - c0);
    // The parameters of the clipped range are RTN's for the group scaled
    // by the ratio (max, min and the zero stay in proportion).
    float ratio = clip ? clip[g] : 1.0f;
    for (int64_t i = 0; i < n; ++i)
      shrunk[i] = src[c0 + i] * ratio;
    GroupParams p = chooseGroupParams(shrunk, static_cast<size_t>(n),
                                      cfg.bits, cfg.symmetric, cfg.scaleType);
    params[g] = p;
    for (int64_t i = 0; i < n; ++i)
      codes[c0 + i] = quantizeValue(src[c0 + i], p, cfg.bits);
  }
}

QuantizedMatrix quench::quant::quantizeMatrixClipped(const float *w,
                                                     int64_t rows, int64_t cols,
                                                     const AWQConfig &cfg,
                                                     const float *clip) {
  int64_t len = cfg.groupSize > 0 ? cfg.groupSize : cols;
  int64_t groups = (cols + len - 1) / len;
  std::vector<uint8_t> codes(rows * cols);
  std::vector<GroupParams> params(rows * groups);
  std::vector<float> shrunk(len);
  for (int64_t r = 0; r < rows; ++r)
    quantizeRowClipped(w + r * cols, cols, len, cfg,
                       clip ? clip + r * groups : nullptr, &codes[r * cols],
                       &params[r * groups], shrunk.data());
  return packQuantizedMatrix(codes.data(), params.data(), rows, cols, cfg.bits,
                             cfg.groupSize, cfg.symmetric);
}

/// The dequantized values of row `src` ([cols]) quantized as
/// quantizeMatrixClipped does (group g's range shrunk by clip[g]; null: 1),
/// into `out` ([cols]): what dequantizeMatrix gives for the row, without
/// packing.
static void fakeQuantizeRow(const float *src, int64_t cols,
                            const AWQConfig &cfg, const float *clip,
                            float *out) {
  int64_t len = cfg.groupSize > 0 ? cfg.groupSize : cols;
  int64_t groups = (cols + len - 1) / len;
  std::vector<uint8_t> codes(cols);
  std::vector<GroupParams> params(groups);
  std::vector<float> shrunk(len);
  quantizeRowClipped(src, cols, len, cfg, clip, codes.data(), params.data(),
                     shrunk.data());
  for (int64_t c = 0; c < cols; ++c)
    out[c] = dequantizeValue(codes[c], params[c / len]);
}

std::vector<float> quench::quant::dequantizeMatrix(const QuantizedMatrix &m) {
  std::vector<float> out(m.rows * m.cols);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c)
      out[r * m.cols + c] = dequantizeAt(m, r, c);
  return out;
}

AWQScaleResult quench::quant::searchAWQScales(
    const std::vector<const float *> &weights, const std::vector<int64_t> &rows,
    int64_t k, const double *gram, const float *meanAbs, const AWQConfig &cfg) {
  assert(cfg.alphaSteps > 0 && "the alpha grid needs a step");
  // Channels never active keep the smallest positive mean (a zero would
  // give s = 0 for every alpha > 0).
  double floor = std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < k; ++j)
    if (meanAbs[j] > 0 && std::isfinite(meanAbs[j]))
      floor = std::min(floor, static_cast<double>(meanAbs[j]));
  if (!std::isfinite(floor))
    floor = 1.0;
  // H factored once for every alpha; each row is quantized inside the
  // (row-parallel) evaluation, the values those of quantizeMatrixClipped
  // and dequantizeMatrix.
  GramFactor factor(gram, k, cfg.threads);
  auto loss = [&](const std::vector<float> &s) {
    double total = 0;
    for (size_t i = 0; i < weights.size(); ++i) {
      const float *w = weights[i];
      total += factor.quadraticSum(
          rows[i],
          [&](int64_t r, double *d) {
            std::vector<float> scaled(k), q(k);
            for (int64_t j = 0; j < k; ++j)
              scaled[j] = w[r * k + j] * s[j];
            fakeQuantizeRow(scaled.data(), k, cfg, nullptr, q.data());
            // Back in the original weights' terms: Q(W diag s) diag(1/s).
            for (int64_t j = 0; j < k; ++j)
              d[j] = static_cast<double>(w[r * k + j]) - q[j] / s[j];
          },
          cfg.threads);
    }
    return total;
  };
  AWQScaleResult best;
  best.scales.assign(k, 1.0f);
  best.loss = best.rtnLoss = loss(best.scales);
  std::vector<double> base(k);
  for (int64_t j = 0; j < k; ++j)
    base[j] = meanAbs[j] > 0 && std::isfinite(meanAbs[j]) ? meanAbs[j] : floor;
  for (int step = 1; step <= cfg.alphaSteps; ++step) {
    double alpha = static_cast<double>(step) / cfg.alphaSteps;
    std::vector<double> v(k);
    double lo = std::numeric_limits<double>::infinity(), hi = 0;
    for (int64_t j = 0; j < k; ++j) {
      v[j] = std::pow(base[j], alpha);
      lo = std::min(lo, v[j]);
      hi = std::max(hi, v[j]);
    }
    double norm = std::sqrt(lo * hi);
    std::vector<float> s(k);
    for (int64_t j = 0; j < k; ++j) {
      double sj = v[j] / norm;
      if (cfg.powerOfTwo)
        sj = std::exp2(std::round(std::log2(sj)));
      s[j] = static_cast<float>(sj);
    }
    double l = loss(s);
    if (l < best.loss) {
      best.alpha = alpha;
      best.scales = std::move(s);
      best.loss = l;
    }
  }
  return best;
}

/// d H_gg d^T for a group's n differences d and its diagonal block of the
/// Gram matrix (`h`: row stride `stride`). Eight independent partial sums
/// per row of the block (summed in a fixed order): the compiler vectorizes
/// them, where one running sum is a chain of dependent adds.
static double groupError(const double *d, const double *h, int64_t n,
                         int64_t stride) {
  double l = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (d[i] == 0)
      continue;
    const double *hi = h + i * stride;
    double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
      for (int t = 0; t < 8; ++t)
        part[t] += hi[j + t] * d[j + t];
    double acc = 0;
    for (; j < n; ++j)
      acc += hi[j] * d[j];
    acc += ((part[0] + part[1]) + (part[2] + part[3])) +
           ((part[4] + part[5]) + (part[6] + part[7]));
    l += d[i] * acc;
  }
  return l;
}

std::vector<float> quench::quant::searchAWQClip(const float *w, int64_t rows,
                                                int64_t cols,
                                                const double *gram,
                                                const AWQConfig &cfg) {
  int64_t len = cfg.groupSize > 0 ? cfg.groupSize : cols;
  int64_t groups = (cols + len - 1) / len;
  std::vector<float> best(rows * groups, 1.0f);
  // Rows are independent: each is searched on one thread.
  detail::parallelFor(cfg.threads, rows, 16, [&](int64_t r0, int64_t r1) {
    std::vector<double> bestLoss(groups);
    std::vector<float> ratios(groups), q(cols);
    std::vector<double> d(cols);
    for (int64_t r = r0; r < r1; ++r) {
      const float *wr = w + r * cols;
      std::fill(bestLoss.begin(), bestLoss.end(),
                std::numeric_limits<double>::infinity());
      for (int step = 0; step <= cfg.clipSteps; ++step) {
        float ratio = static_cast<float>(
            1.0 - (1.0 - cfg.minClip) * step / std::max(cfg.clipSteps, 1));
        std::fill(ratios.begin(), ratios.end(), ratio);
        fakeQuantizeRow(wr, cols, cfg, ratios.data(), q.data());
        for (int64_t c = 0; c < cols; ++c)
          d[c] = static_cast<double>(wr[c]) - q[c];
        for (int64_t g = 0; g < groups; ++g) {
          int64_t c0 = g * len, n = std::min(len, cols - c0);
          double l =
              groupError(d.data() + c0, gram + c0 * cols + c0, n, cols);
          if (l < bestLoss[g]) {
            bestLoss[g] = l;
            best[r * groups + g] = ratio;
          }
        }
      }
    }
  });
  return best;
}
