//===- Outliers.cpp - LLM.int8()-style outlier channel splitting ----------===//
//
// See quench/Quant/Outliers.h.
//
//===----------------------------------------------------------------------===//

#include "quench/Quant/Outliers.h"

#include <algorithm>
#include <cmath>
#include <numeric>

using namespace quench::quant;

int64_t quench::quant::outlierCap(const OutlierRule &rule, int64_t k) {
  int64_t cap = rule.cap > 0 ? rule.cap
                             : std::max<int64_t>(
                                   1, k / kDefaultOutlierCapDivisor);
  return std::min(cap, std::max<int64_t>(k, 0));
}

std::vector<int64_t>
quench::quant::selectOutlierChannels(const float *channelMax, int64_t k,
                                     const OutlierRule &rule) {
  std::vector<int64_t> result;
  if (k <= 0 || rule.count == 0)
    return result;
  // Candidates: finite positive maxima, largest first (stable on ties).
  std::vector<int64_t> order;
  for (int64_t j = 0; j < k; ++j)
    if (std::isfinite(channelMax[j]) && channelMax[j] > 0)
      order.push_back(j);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return channelMax[a] > channelMax[b];
  });
  int64_t limit = outlierCap(rule, k);
  if (rule.count > 0)
    limit = std::min(limit, rule.count);
  double bound = 0;
  if (rule.count < 0) {
    std::vector<float> sorted(channelMax, channelMax + k);
    for (float &v : sorted)
      if (!std::isfinite(v))
        v = 0; // not a measured channel: does not raise the median
    std::nth_element(sorted.begin(), sorted.begin() + (k - 1) / 2,
                     sorted.end());
    bound = rule.threshold * static_cast<double>(sorted[(k - 1) / 2]);
  }
  for (int64_t j : order) {
    if (static_cast<int64_t>(result.size()) >= limit)
      break;
    if (rule.count < 0 && !(static_cast<double>(channelMax[j]) > bound))
      break; // sorted: no later channel passes either
    result.push_back(j);
  }
  std::sort(result.begin(), result.end());
  return result;
}

float quench::quant::inlierRange(const float *channelMax, int64_t k,
                                 const std::vector<int64_t> &outliers) {
  float range = 0;
  size_t next = 0;
  for (int64_t j = 0; j < k; ++j) {
    if (next < outliers.size() && outliers[next] == j) {
      ++next;
      continue;
    }
    if (std::isfinite(channelMax[j]))
      range = std::max(range, channelMax[j]);
  }
  return range;
}

std::vector<float>
quench::quant::splitOutlierColumns(float *w, int64_t n, int64_t k,
                                   const std::vector<int64_t> &outliers) {
  int64_t c = static_cast<int64_t>(outliers.size());
  std::vector<float> cols(static_cast<size_t>(n * c));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < c; ++i) {
      float &v = w[r * k + outliers[i]];
      cols[r * c + i] = v;
      v = 0;
    }
  return cols;
}
