// Numerics of AWQ's scale and clipping searches (lib/Quant/AWQ.cpp).
#include "quench/Quant/AWQ.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

using namespace quench::quant;

namespace {

/// Activations [rows, k] whose channels j % 8 == 1 are `outlier` times
/// larger, a weight [n, k], and the Gram matrix and mean |x| of x.
struct Layer {
  int rows, k, n;
  std::vector<float> x, w, meanAbs;
  std::vector<double> gram;
};
Layer makeLayer(int rows, int k, int n, float outlier, unsigned seed,
                bool heavyTails = false) {
  Layer l{rows, k, n, {}, {}, {}, {}};
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::student_t_distribution<float> t(2.0f);
  l.x.resize(rows * k);
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < k; ++j)
      l.x[r * k + j] = d(gen) * (j % 8 == 1 ? outlier : 1.0f);
  l.w.resize(n * k);
  for (float &v : l.w)
    v = (heavyTails ? t(gen) : d(gen)) * 0.05f;
  l.gram.assign(k * k, 0.0);
  l.meanAbs.assign(k, 0.0f);
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < k; ++i) {
      l.meanAbs[i] += std::fabs(l.x[r * k + i]) / rows;
      for (int j = 0; j < k; ++j)
        l.gram[i * k + j] +=
            static_cast<double>(l.x[r * k + i]) * l.x[r * k + j];
    }
  return l;
}

/// ||(a - b) X^T||^2 computed from the activations themselves.
double outputError(const Layer &l, const std::vector<float> &a,
                   const std::vector<float> &b) {
  double e = 0;
  for (int r = 0; r < l.rows; ++r)
    for (int i = 0; i < l.n; ++i) {
      double y = 0;
      for (int j = 0; j < l.k; ++j)
        y += (static_cast<double>(a[i * l.k + j]) - b[i * l.k + j]) *
             l.x[r * l.k + j];
      e += y * y;
    }
  return e;
}

TEST(AWQ, UnclippedIsRTNAndTheErrorIsTheOutputError) {
  Layer l = makeLayer(64, 64, 16, 10.0f, 1);
  AWQConfig cfg;
  QuantizedMatrix rtn =
      quantizeMatrixRTN(l.w.data(), l.n, l.k, cfg.bits, cfg.groupSize,
                        cfg.symmetric, cfg.scaleType);
  QuantizedMatrix same =
      quantizeMatrixClipped(l.w.data(), l.n, l.k, cfg, nullptr);
  EXPECT_EQ(rtn.packed, same.packed);
  EXPECT_EQ(rtn.scales, same.scales);
  std::vector<float> q = dequantizeMatrix(rtn);
  double viaGram =
      hessianWeightedError(l.w.data(), q.data(), l.n, l.k, l.gram.data());
  EXPECT_NEAR(viaGram / outputError(l, l.w, q), 1.0, 1e-9);
  // alpha = 0 (s = 1) is plain RTN: the search's reference loss.
  AWQScaleResult res = searchAWQScales({l.w.data()}, {l.n}, l.k, l.gram.data(),
                                       l.meanAbs.data(), cfg);
  EXPECT_DOUBLE_EQ(res.rtnLoss, viaGram);
  cfg.alphaSteps = 1; // only alpha = 0 and 1
  EXPECT_DOUBLE_EQ(searchAWQScales({l.w.data()}, {l.n}, l.k, l.gram.data(),
                                   l.meanAbs.data(), cfg)
                       .rtnLoss,
                   viaGram);
}

TEST(AWQ, ScalesLowerTheErrorOnOutlierChannels) {
  // Salient input channels (10x the others): protecting their weights
  // (s > 1 there) lowers the output error, measured on the activations.
  for (int bits : {4, 3}) {
    Layer l = makeLayer(128, 64, 24, 10.0f, 2 + bits);
    AWQConfig cfg;
    cfg.bits = bits;
    cfg.groupSize = 32; // 3 bits: 12 bytes per group
    AWQScaleResult res = searchAWQScales({l.w.data()}, {l.n}, l.k,
                                         l.gram.data(), l.meanAbs.data(), cfg);
    ASSERT_GT(res.alpha, 0.0) << bits;
    EXPECT_LT(res.loss, 0.8 * res.rtnLoss) << bits;
    EXPECT_GT(res.scales[1], res.scales[2]) << bits; // salient channel
    // The loss is the actual output error of the scaled-and-folded layer.
    std::vector<float> scaled(l.w.size());
    for (int r = 0; r < l.n; ++r)
      for (int j = 0; j < l.k; ++j)
        scaled[r * l.k + j] = l.w[r * l.k + j] * res.scales[j];
    std::vector<float> q = dequantizeMatrix(
        quantizeMatrixClipped(scaled.data(), l.n, l.k, cfg, nullptr));
    for (int r = 0; r < l.n; ++r)
      for (int j = 0; j < l.k; ++j)
        q[r * l.k + j] /= res.scales[j];
    EXPECT_NEAR(outputError(l, l.w, q) / res.loss, 1.0, 1e-6) << bits;
  }
}

TEST(AWQ, SearchSharesOneScaleAcrossTheGroup) {
  // Two linears reading one input: the loss is their sum, and RTN's loss
  // is the sum of each one's.
  Layer a = makeLayer(64, 32, 8, 8.0f, 11), b = makeLayer(64, 32, 12, 8.0f, 12);
  AWQConfig cfg;
  AWQScaleResult both =
      searchAWQScales({a.w.data(), b.w.data()}, {a.n, b.n}, a.k, a.gram.data(),
                      a.meanAbs.data(), cfg);
  double sum = 0;
  for (const Layer *l : {&a, &b}) {
    std::vector<float> q = dequantizeMatrix(
        quantizeMatrixClipped(l->w.data(), l->n, l->k, cfg, nullptr));
    sum +=
        hessianWeightedError(l->w.data(), q.data(), l->n, l->k, a.gram.data());
  }
  EXPECT_NEAR(both.rtnLoss / sum, 1.0, 1e-12);
  EXPECT_LE(both.loss, both.rtnLoss);
}

TEST(AWQ, PowerOfTwoScalesAndThreads) {
  // Power-of-two scales (the pass's default: exact migration) still find
  // most of the gain, every scale is 2^e, and the thread count changes
  // nothing.
  Layer l = makeLayer(128, 64, 24, 10.0f, 31);
  AWQConfig cfg;
  cfg.powerOfTwo = true;
  cfg.threads = 1;
  AWQScaleResult one = searchAWQScales({l.w.data()}, {l.n}, l.k,
                                       l.gram.data(), l.meanAbs.data(), cfg);
  ASSERT_GT(one.alpha, 0.0);
  EXPECT_LT(one.loss, 0.8 * one.rtnLoss);
  for (float s : one.scales) {
    int e;
    EXPECT_EQ(std::frexp(s, &e), 0.5f) << s;
  }
  cfg.threads = 3;
  AWQScaleResult three = searchAWQScales({l.w.data()}, {l.n}, l.k,
                                         l.gram.data(), l.meanAbs.data(), cfg);
  EXPECT_EQ(three.alpha, one.alpha);
  EXPECT_EQ(three.scales, one.scales);
  EXPECT_EQ(three.loss, one.loss);
}

TEST(AWQ, ClippingLowersTheErrorOfHeavyTailedGroups) {
  // Student-t weights: a group's maximum is far out in the tail, and
  // shrinking its range trades a little clipping for finer steps.
  Layer l = makeLayer(128, 64, 32, 1.0f, 21, /*heavyTails=*/true);
  AWQConfig cfg;
  std::vector<float> clip =
      searchAWQClip(l.w.data(), l.n, l.k, l.gram.data(), cfg);
  int shrunk = 0;
  for (float c : clip) {
    EXPECT_GE(c, 0.5f);
    EXPECT_LE(c, 1.0f);
    shrunk += c < 1.0f;
  }
  EXPECT_GT(shrunk, 0);
  std::vector<float> plain = dequantizeMatrix(
      quantizeMatrixClipped(l.w.data(), l.n, l.k, cfg, nullptr));
  std::vector<float> clipped = dequantizeMatrix(
      quantizeMatrixClipped(l.w.data(), l.n, l.k, cfg, clip.data()));
  EXPECT_LT(outputError(l, l.w, clipped), 0.9 * outputError(l, l.w, plain));
  // Ratio 1 everywhere is RTN.
  std::vector<float> ones(clip.size(), 1.0f);
  EXPECT_EQ(
      quantizeMatrixClipped(l.w.data(), l.n, l.k, cfg, ones.data()).packed,
      quantizeMatrixRTN(l.w.data(), l.n, l.k, cfg.bits, cfg.groupSize,
                        cfg.symmetric, cfg.scaleType)
          .packed);
}

} // namespace
