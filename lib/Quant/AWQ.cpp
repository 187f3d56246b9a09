//===- AWQ.cpp - activation-aware weight quantization numerics ------------===//

#include "quench/Quant/AWQ.h"

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
  return detail::quadraticSum(rows, cols, gram, threads,
                              [&](int64_t r, double *d) {
                                for (int64_t c = 0; c < cols; ++c)
                                  d[c] = static_cast<double>(a[r * cols + c]) -
                                         b[r * cols + c];
                              });
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
    for (int64_t g = 0; g < groups; ++g) {
      int64_t c0 = g * len, n = std::min(len, cols - c0);
      const float *src = w + r * cols + c0;
      // The parameters of the clipped range are RTN's for the group
      // scaled by the ratio (max, min and the zero stay in proportion).
      float ratio = clip ? clip[r * groups + g] : 1.0f;
      for (int64_t i = 0; i < n; ++i)
        shrunk[i] = src[i] * ratio;
      GroupParams p = chooseGroupParams(shrunk.data(), static_cast<size_t>(n),
                                        cfg.bits, cfg.symmetric, cfg.scaleType);
      params[r * groups + g] = p;
      for (int64_t i = 0; i < n; ++i)
        codes[r * cols + c0 + i] = quantizeValue(src[i], p, cfg.bits);
    }
  return packQuantizedMatrix(codes.data(), params.data(), rows, cols, cfg.bits,
                             cfg.groupSize, cfg.symmetric);
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
  auto loss = [&](const std::vector<float> &s) {
    double total = 0;
    std::vector<float> scaled;
    for (size_t i = 0; i < weights.size(); ++i) {
      int64_t n = rows[i];
      scaled.resize(n * k);
      for (int64_t r = 0; r < n; ++r)
        for (int64_t j = 0; j < k; ++j)
          scaled[r * k + j] = weights[i][r * k + j] * s[j];
      std::vector<float> q = dequantizeMatrix(
          quantizeMatrixClipped(scaled.data(), n, k, cfg, nullptr));
      // Back in the original weights' terms: Q(W diag s) diag(1/s).
      for (int64_t r = 0; r < n; ++r)
        for (int64_t j = 0; j < k; ++j)
          q[r * k + j] /= s[j];
      total +=
          hessianWeightedError(weights[i], q.data(), n, k, gram, cfg.threads);
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

std::vector<float> quench::quant::searchAWQClip(const float *w, int64_t rows,
                                                int64_t cols,
                                                const double *gram,
                                                const AWQConfig &cfg) {
  int64_t len = cfg.groupSize > 0 ? cfg.groupSize : cols;
  int64_t groups = (cols + len - 1) / len;
  std::vector<float> best(rows * groups, 1.0f);
  std::vector<double> bestLoss(rows * groups,
                               std::numeric_limits<double>::infinity());
  std::vector<float> ratios(rows * groups);
  for (int step = 0; step <= cfg.clipSteps; ++step) {
    float ratio = static_cast<float>(1.0 - (1.0 - cfg.minClip) * step /
                                               std::max(cfg.clipSteps, 1));
    std::fill(ratios.begin(), ratios.end(), ratio);
    std::vector<float> q = dequantizeMatrix(
        quantizeMatrixClipped(w, rows, cols, cfg, ratios.data()));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < groups; ++g) {
        // d_g H_gg d_g^T over the group's columns.
        int64_t c0 = g * len, n = std::min(len, cols - c0);
        double l = 0;
        for (int64_t i = 0; i < n; ++i) {
          double di =
              static_cast<double>(w[r * cols + c0 + i]) - q[r * cols + c0 + i];
          if (di == 0)
            continue;
          for (int64_t j = 0; j < n; ++j)
            l += di * gram[(c0 + i) * cols + c0 + j] *
                 (static_cast<double>(w[r * cols + c0 + j]) -
                  q[r * cols + c0 + j]);
        }
        if (l < bestLoss[r * groups + g]) {
          bestLoss[r * groups + g] = l;
          best[r * groups + g] = ratio;
        }
      }
  }
  return best;
}
