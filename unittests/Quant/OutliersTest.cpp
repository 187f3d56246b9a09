// Numerics of outlier splitting (lib/Quant/Outliers.cpp).
#include "quench/Quant/Outliers.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

using namespace quench::quant;

namespace {

TEST(Outliers, AutomaticRuleIsRelativeToTheMedian) {
  // Median of the 8 maxima (lower middle) is 1.0: threshold 6 keeps the
  // channels above 6.0, sorted by index.
  std::vector<float> m = {1.0f, 7.0f, 0.5f, 1.0f, 30.0f, 6.0f, 2.0f, 0.9f};
  OutlierRule rule;
  rule.threshold = 6.0;
  rule.cap = 8;
  EXPECT_EQ(selectOutlierChannels(m.data(), 8, rule),
            (std::vector<int64_t>{1, 4}));
  // Scaling every maximum does not change the choice.
  std::vector<float> scaled(m);
  for (float &v : scaled)
    v *= 1000.0f;
  EXPECT_EQ(selectOutlierChannels(scaled.data(), 8, rule),
            (std::vector<int64_t>{1, 4}));
  rule.threshold = 2.5;
  EXPECT_EQ(selectOutlierChannels(m.data(), 8, rule),
            (std::vector<int64_t>{1, 4, 5}));
  // The cap keeps the largest.
  rule.cap = 2;
  EXPECT_EQ(selectOutlierChannels(m.data(), 8, rule),
            (std::vector<int64_t>{1, 4}));
  rule.cap = 1;
  EXPECT_EQ(selectOutlierChannels(m.data(), 8, rule),
            (std::vector<int64_t>{4}));
  // Nothing stands out: no channel.
  std::vector<float> flat(64, 1.0f);
  flat[3] = 5.0f;
  rule = OutlierRule();
  EXPECT_TRUE(selectOutlierChannels(flat.data(), 64, rule).empty());
}

TEST(Outliers, FixedCountTakesTheLargestUpToTheCap) {
  std::vector<float> m = {3.0f, 1.0f, 3.0f, 9.0f, 0.0f,
                          std::numeric_limits<float>::quiet_NaN()};
  OutlierRule rule;
  rule.count = 2;
  rule.cap = 6;
  // Ties: the lower index first.
  EXPECT_EQ(selectOutlierChannels(m.data(), 6, rule),
            (std::vector<int64_t>{0, 3}));
  // Only finite positive maxima are candidates.
  rule.count = 6;
  EXPECT_EQ(selectOutlierChannels(m.data(), 6, rule),
            (std::vector<int64_t>{0, 1, 2, 3}));
  rule.count = 0;
  EXPECT_TRUE(selectOutlierChannels(m.data(), 6, rule).empty());
  // Default cap: K / 8, at least 1.
  rule = OutlierRule();
  EXPECT_EQ(outlierCap(rule, 64), 8);
  EXPECT_EQ(outlierCap(rule, 5), 1);
  rule.cap = 100;
  EXPECT_EQ(outlierCap(rule, 64), 64);
  rule = OutlierRule();
  rule.count = 20;
  std::vector<float> many(64);
  for (int j = 0; j < 64; ++j)
    many[j] = static_cast<float>(j + 1);
  std::vector<int64_t> got = selectOutlierChannels(many.data(), 64, rule);
  ASSERT_EQ(got.size(), 8u);
  EXPECT_EQ(got.front(), 56);
  EXPECT_EQ(got.back(), 63);
}

TEST(Outliers, InlierRangeAndSplit) {
  std::vector<float> m = {1.0f, 50.0f, 2.0f, 40.0f};
  EXPECT_EQ(inlierRange(m.data(), 4, {1, 3}), 2.0f);
  EXPECT_EQ(inlierRange(m.data(), 4, {}), 50.0f);
  EXPECT_EQ(inlierRange(m.data(), 4, {0, 1, 2, 3}), 0.0f);
  // w [2][4]: columns 1 and 3 move out, as they were, and become 0.
  std::vector<float> w = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<float> cols = splitOutlierColumns(w.data(), 2, 4, {1, 3});
  EXPECT_EQ(cols, (std::vector<float>{2, 4, 6, 8}));
  EXPECT_EQ(w, (std::vector<float>{1, 0, 3, 0, 5, 0, 7, 0}));
}

/// y = x W^T with W8A8 static quantization (per-row symmetric int8
/// weights, one per-tensor activation step = range / 127), optionally with
/// the outlier channels split off in float; returns the squared error
/// against the float product.
double w8a8Error(const std::vector<float> &x, std::vector<float> w,
                 int64_t rows, int64_t n, int64_t k,
                 const std::vector<int64_t> &outliers,
                 const std::vector<float> &channelMax) {
  std::vector<float> cols = splitOutlierColumns(w.data(), n, k, outliers);
  std::vector<bool> isOutlier(k, false);
  for (int64_t j : outliers)
    isOutlier[j] = true;
  float step = inlierRange(channelMax.data(), k, outliers) / 127.0f;
  std::vector<float> wq(w.size());
  for (int64_t r = 0; r < n; ++r) {
    float amax = 0;
    for (int64_t j = 0; j < k; ++j)
      amax = std::max(amax, std::fabs(w[r * k + j]));
    float s = amax / 127.0f;
    for (int64_t j = 0; j < k; ++j)
      wq[r * k + j] = s > 0 ? std::nearbyint(w[r * k + j] / s) * s : 0.0f;
  }
  double err = 0;
  std::vector<float> wOrig(w);
  for (size_t c = 0; c < outliers.size(); ++c)
    for (int64_t r = 0; r < n; ++r)
      wOrig[r * k + outliers[c]] = cols[r * outliers.size() + c];
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t r = 0; r < n; ++r) {
      double exact = 0, quant = 0;
      size_t c = 0;
      for (int64_t j = 0; j < k; ++j) {
        float v = x[i * k + j];
        exact += double(v) * wOrig[r * k + j];
        if (isOutlier[j]) {
          quant += double(v) * cols[r * outliers.size() + c++];
          continue;
        }
        float q = std::fmin(std::fmax(std::nearbyint(v / step), -127.0f),
                            127.0f);
        quant += double(q * step) * wq[r * k + j];
      }
      err += (exact - quant) * (exact - quant);
    }
  return err;
}

TEST(Outliers, SplittingCutsTheStaticErrorOnOutlierChannels) {
  // Activations with three channels 20-40x the rest (LLM.int8()'s
  // systematic outliers): the per-tensor step is set by them, and every
  // other channel rounds to a few codes.
  int64_t rows = 64, n = 32, k = 128;
  std::mt19937 gen(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(rows * k), w(n * k);
  for (float &v : w)
    v = nd(gen) * 0.1f;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < k; ++j)
      x[i * k + j] = nd(gen) * (j == 5 ? 40.0f : j == 77 ? 25.0f
                                             : j == 100 ? 20.0f : 1.0f);
  std::vector<float> channelMax(k, 0.0f);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < k; ++j)
      channelMax[j] = std::max(channelMax[j], std::fabs(x[i * k + j]));
  OutlierRule rule;
  std::vector<int64_t> outliers =
      selectOutlierChannels(channelMax.data(), k, rule);
  EXPECT_EQ(outliers, (std::vector<int64_t>{5, 77, 100}));
  double plain = w8a8Error(x, w, rows, n, k, {}, channelMax);
  double split = w8a8Error(x, w, rows, n, k, outliers, channelMax);
  EXPECT_LT(split, 0.05 * plain) << split << " vs " << plain;
}

} // namespace
