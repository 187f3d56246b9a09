//===- Smooth.cpp - SmoothQuant migration scales --------------------------===//

#include "quench/Quant/Smooth.h"

#include "quench/Quant/RTN.h"

#include <algorithm>
#include <cassert>
#include <cmath>

using namespace quench::quant;

std::vector<float> quench::quant::smoothQuantScales(const float *actMax,
                                                    const float *weightMax,
                                                    int64_t channels,
                                                    double alpha,
                                                    bool powerOfTwo) {
  assert(alpha >= 0.0 && alpha <= 1.0 && "alpha must be in [0, 1]");
  std::vector<float> s(channels, 1.0f);
  for (int64_t j = 0; j < channels; ++j) {
    double a = actMax[j], w = weightMax[j];
    if (!(a > 0.0) || !(w > 0.0) || !std::isfinite(a) || !std::isfinite(w))
      continue;
    // In double: a^alpha / w^(1-alpha) as exp of a difference of logs
    // cannot overflow for any float a, w.
    double v = std::exp(alpha * std::log(a) - (1.0 - alpha) * std::log(w));
    v = std::clamp(v, 1.0 / kMaxSmoothScale, kMaxSmoothScale);
    if (powerOfTwo)
      v = std::exp2(std::round(std::log2(v)));
    s[j] = static_cast<float>(v);
  }
  return s;
}

void quench::quant::accumulateColumnAbsMax(const float *w, int64_t rows,
                                           int64_t cols, float *colMax) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      float a = std::fabs(w[r * cols + c]);
      if (std::isfinite(a))
        colMax[c] = std::max(colMax[c], a);
    }
}

double quench::quant::smoothProxyLoss(const SmoothInputStats &x,
                                      const std::vector<const float *> &weights,
                                      const std::vector<int64_t> &weightRows,
                                      const std::vector<float> &scales) {
  int64_t k = static_cast<int64_t>(scales.size());
  double range = 0;
  for (int64_t j = 0; j < k; ++j)
    range = std::max(range, static_cast<double>(x.absMax[j]) / scales[j]);
  double step = range / 127.0;
  double weightLoss = 0, normSquared = 0;
  std::vector<float> row(k);
  for (size_t i = 0; i < weights.size(); ++i) {
    for (int64_t n = 0; n < weightRows[i]; ++n) {
      const float *w = weights[i] + n * k;
      for (int64_t j = 0; j < k; ++j)
        row[j] = w[j] * scales[j];
      // W8A8's weights: int8 per output channel, symmetric, f32 scale.
      GroupParams p = chooseGroupParams(row.data(), static_cast<size_t>(k), 8,
                                        /*symmetric=*/true, ScaleType::F32);
      for (int64_t j = 0; j < k; ++j) {
        double d = static_cast<double>(row[j]) -
                   dequantizeValue(quantizeValue(row[j], p, 8), p);
        double sj = scales[j];
        weightLoss += d * d * x.sumSquares[j] / (sj * sj);
        normSquared += static_cast<double>(row[j]) * row[j];
      }
    }
  }
  return weightLoss + x.rows * step * step / 12.0 * normSquared;
}

SmoothSearchResult quench::quant::searchSmoothScales(
    const SmoothInputStats &x, const std::vector<const float *> &weights,
    const std::vector<int64_t> &weightRows, int steps, bool powerOfTwo) {
  int64_t k = static_cast<int64_t>(x.absMax.size());
  SmoothSearchResult best;
  best.scales.assign(k, 1.0f);
  best.loss = best.unsmoothedLoss =
      smoothProxyLoss(x, weights, weightRows, best.scales);
  std::vector<float> weightMax(k, 0.0f);
  for (size_t i = 0; i < weights.size(); ++i)
    accumulateColumnAbsMax(weights[i], weightRows[i], k, weightMax.data());
  for (int step = 0; step <= steps; ++step) {
    double alpha = static_cast<double>(step) / steps;
    std::vector<float> s = smoothQuantScales(x.absMax.data(), weightMax.data(),
                                             k, alpha, powerOfTwo);
    double loss = smoothProxyLoss(x, weights, weightRows, s);
    if (loss < best.loss) {
      best.alpha = alpha;
      best.scales = std::move(s);
      best.loss = loss;
    }
  }
  return best;
}
