// Numerics of SmoothQuant's migration scales (lib/Quant/Smooth.cpp).
#include "quench/Quant/Smooth.h"

#include "quench/Quant/RTN.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

using namespace quench::quant;

namespace {

TEST(Smooth, BalancesActivationAndWeightMaxima) {
  // alpha = 0.5: after migration each channel's activation maximum
  // actMax / s equals its weight maximum weightMax * s.
  std::vector<float> act = {8.0f, 0.5f, 100.0f, 3.0f};
  std::vector<float> w = {0.5f, 2.0f, 0.01f, 3.0f};
  std::vector<float> s = smoothQuantScales(act.data(), w.data(), 4, 0.5,
                                           /*powerOfTwo=*/false);
  for (int j = 0; j < 4; ++j) {
    EXPECT_NEAR(act[j] / s[j], w[j] * s[j], 1e-5 * act[j] / s[j]) << j;
    EXPECT_NEAR(act[j] / s[j], std::sqrt(act[j] * w[j]), 1e-5) << j;
  }
  // alpha = 1: every activation channel ends at max 1; alpha = 0: every
  // weight column.
  std::vector<float> s1 =
      smoothQuantScales(act.data(), w.data(), 4, 1.0, false);
  std::vector<float> s0 =
      smoothQuantScales(act.data(), w.data(), 4, 0.0, false);
  for (int j = 0; j < 4; ++j) {
    EXPECT_FLOAT_EQ(act[j] / s1[j], 1.0f) << j;
    EXPECT_FLOAT_EQ(w[j] * s0[j], 1.0f) << j;
  }
}

TEST(Smooth, DeadChannelsClampingAndPowersOfTwo) {
  std::vector<float> act = {0.0f, 4.0f, NAN, 1e30f, 1e-30f, 2.9f};
  std::vector<float> w = {1.0f, 0.0f, 1.0f, 1e-30f, 1e30f, 1.0f};
  std::vector<float> s = smoothQuantScales(act.data(), w.data(), 6, 0.5, false);
  EXPECT_EQ(s[0], 1.0f); // dead activation channel
  EXPECT_EQ(s[1], 1.0f); // dead weight column
  EXPECT_EQ(s[2], 1.0f); // not finite
  EXPECT_FLOAT_EQ(s[3], static_cast<float>(kMaxSmoothScale));
  EXPECT_FLOAT_EQ(s[4], static_cast<float>(1.0 / kMaxSmoothScale));
  // sqrt(2.9) = 1.70 rounds (in log scale) to 2.
  std::vector<float> p = smoothQuantScales(act.data(), w.data(), 6, 0.5,
                                           /*powerOfTwo=*/true);
  EXPECT_EQ(p[5], 2.0f);
  for (float v : p) {
    int e;
    EXPECT_EQ(std::frexp(v, &e), 0.5f) << v; // a power of two
  }
}

TEST(Smooth, PowerOfTwoMigrationIsExact) {
  // x_j / s_j times W[n, j] * s_j is bit for bit x_j * W[n, j] with
  // power-of-two scales: the migrated product sums the same terms.
  std::mt19937 gen(3);
  std::normal_distribution<float> d(0.0f, 1.0f);
  const int k = 64;
  std::vector<float> x(k), w(k), act(k), wmax(k);
  for (int j = 0; j < k; ++j) {
    x[j] = d(gen) * (j % 7 == 0 ? 40.0f : 1.0f);
    w[j] = d(gen);
    act[j] = std::fabs(x[j]);
    wmax[j] = std::fabs(w[j]);
  }
  std::vector<float> s =
      smoothQuantScales(act.data(), wmax.data(), k, 0.5, true);
  float ref = 0, migrated = 0;
  for (int j = 0; j < k; ++j) {
    ref += x[j] * w[j];
    migrated += (x[j] / s[j]) * (w[j] * s[j]);
  }
  EXPECT_EQ(ref, migrated);
}

/// Random [rows, k] activations with a few outlier channels (x 30) and a
/// [n, k] weight; their statistics.
struct Data {
  std::vector<float> x, w;
  SmoothInputStats stats;
};
Data makeData(int rows, int k, int n, float outlier, unsigned seed) {
  Data out;
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  out.x.resize(rows * k);
  out.w.resize(n * k);
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < k; ++j)
      out.x[r * k + j] = d(gen) * (j % 16 == 3 ? outlier : 1.0f);
  for (float &v : out.w)
    v = d(gen) * 0.1f;
  out.stats.absMax.assign(k, 0.0f);
  out.stats.sumSquares.assign(k, 0.0);
  out.stats.rows = rows;
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < k; ++j) {
      float v = out.x[r * k + j];
      out.stats.absMax[j] = std::max(out.stats.absMax[j], std::fabs(v));
      out.stats.sumSquares[j] += static_cast<double>(v) * v;
    }
  return out;
}

/// The actual squared output error of W8A8 static quantization (per-tensor
/// minmax activations, per-channel int8 weights) of x / s and W diag(s).
double actualError(const Data &data, int rows, int k, int n,
                   const std::vector<float> &s) {
  double range = 0;
  for (int j = 0; j < k; ++j)
    range = std::max(range, static_cast<double>(data.stats.absMax[j]) / s[j]);
  float step = static_cast<float>(range / 127.0);
  std::vector<float> wq(n * k), row(k);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < k; ++j)
      row[j] = data.w[i * k + j] * s[j];
    GroupParams p = chooseGroupParams(row.data(), k, 8, true, ScaleType::F32);
    for (int j = 0; j < k; ++j)
      wq[i * k + j] = dequantizeValue(quantizeValue(row[j], p, 8), p);
  }
  double err = 0;
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < n; ++i) {
      double exact = 0, quant = 0;
      for (int j = 0; j < k; ++j) {
        float xs = data.x[r * k + j] / s[j];
        float xq = roundHalfToEven(xs / step) * step;
        exact += static_cast<double>(data.x[r * k + j]) * data.w[i * k + j];
        quant += static_cast<double>(xq) * wq[i * k + j];
      }
      err += (exact - quant) * (exact - quant);
    }
  return err;
}

TEST(Smooth, ProxyLossPredictsTheActualError) {
  const int rows = 256, k = 64, n = 32;
  Data data = makeData(rows, k, n, 30.0f, 5);
  std::vector<float> w1(k, 0.0f);
  accumulateColumnAbsMax(data.w.data(), n, k, w1.data());
  for (double alpha : {-1.0, 0.0, 0.5, 0.8, 1.0}) {
    std::vector<float> s = alpha < 0
                               ? std::vector<float>(k, 1.0f)
                               : smoothQuantScales(data.stats.absMax.data(),
                                                   w1.data(), k, alpha, true);
    double proxy = smoothProxyLoss(data.stats, {data.w.data()}, {n}, s);
    double actual = actualError(data, rows, k, n, s);
    EXPECT_NEAR(proxy / actual, 1.0, 0.2) << "alpha " << alpha;
  }
}

TEST(Smooth, SearchBeatsNoMigrationOnOutlierChannels) {
  const int rows = 256, k = 64, n = 32;
  Data data = makeData(rows, k, n, 30.0f, 7);
  SmoothSearchResult best =
      searchSmoothScales(data.stats, {data.w.data()}, {n}, 20, true);
  ASSERT_GE(best.alpha, 0.0);
  EXPECT_LT(best.loss, 0.5 * best.unsmoothedLoss);
  std::vector<float> ones(k, 1.0f);
  // And so does the actual error.
  EXPECT_LT(actualError(data, rows, k, n, best.scales),
            0.5 * actualError(data, rows, k, n, ones));
}

TEST(Smooth, SearchMovesAWeightOutlierIntoTheActivations) {
  // Activations without outlier channels and a weight column 50x the
  // others: its per-channel int8 step is set by that column. Migration
  // works both ways: the search shrinks column 5 relative to the others
  // (s_5 below every other s_j), their rounding gets finer and the actual
  // error drops.
  const int rows = 128, k = 32, n = 16;
  Data data = makeData(rows, k, n, 1.0f, 9);
  for (int i = 0; i < n; ++i)
    data.w[i * k + 5] *= 50.0f;
  SmoothSearchResult best =
      searchSmoothScales(data.stats, {data.w.data()}, {n}, 20, true);
  ASSERT_GE(best.alpha, 0.0);
  for (int j = 0; j < k; ++j)
    if (j != 5)
      EXPECT_LT(best.scales[5], best.scales[j]) << j;
  EXPECT_LT(best.loss, best.unsmoothedLoss);
  std::vector<float> ones(k, 1.0f);
  EXPECT_LT(actualError(data, rows, k, n, best.scales),
            actualError(data, rows, k, n, ones));
}

} // namespace
