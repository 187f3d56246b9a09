// Numerics of pruning (lib/Quant/Sparse.cpp): pattern parsing, magnitude
// masks (counts per group and row, ties, largest kept), SparseGPT's defining
// property (a lower layer-output error than magnitude pruning at the same
// sparsity on correlated inputs), its masks fitting the pattern, joint
// pruning and quantization keeping pruned weights exactly zero, and GPTQ
// with a fixed mask.
#include "quench/Quant/Sparse.h"
#include "quench/Quant/GPTQ.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

using namespace quench::quant;

namespace {

SparsityPattern parse(const std::string &text) {
  SparsityPattern p;
  std::string error;
  EXPECT_TRUE(parseSparsityPattern(text, p, error)) << error;
  return p;
}

/// Correlated inputs of different scales (as GPTQTest's layers): X = Z A
/// diag(s); returns H = X^T X ([k, k]).
std::vector<double> correlatedGram(int64_t k, int64_t m, std::mt19937 &gen) {
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<double> a(k * k), s(k), x(m * k, 0.0), h(k * k, 0.0);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j)
      a[i * k + j] =
          (i == j ? 1.0 : 0.0) + 2.0 * nd(gen) / std::sqrt(double(k));
  for (double &v : s)
    v = std::exp(0.5 * nd(gen));
  for (int64_t r = 0; r < m; ++r) {
    std::vector<double> z(k);
    for (double &v : z)
      v = nd(gen);
    for (int64_t j = 0; j < k; ++j) {
      double acc = 0.0;
      for (int64_t t = 0; t < k; ++t)
        acc += z[t] * a[t * k + j];
      x[r * k + j] = acc * s[j];
    }
  }
  for (int64_t r = 0; r < m; ++r)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j)
        h[i * k + j] += x[r * k + i] * x[r * k + j];
  return h;
}

std::vector<float> randomWeights(int64_t n, int64_t k, std::mt19937 &gen) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w(n * k);
  for (float &v : w)
    v = nd(gen);
  return w;
}

} // namespace

TEST(Sparse, ParsePatterns) {
  SparsityPattern p = parse("2:4");
  EXPECT_EQ(p.kind, SparsityPattern::Kind::NM);
  EXPECT_EQ(p.n, 2);
  EXPECT_EQ(p.m, 4);
  EXPECT_EQ(p.str(), "2:4");
  p = parse("4:8");
  EXPECT_EQ(p.n, 4);
  EXPECT_EQ(p.m, 8);
  p = parse("unstructured:0.5");
  EXPECT_EQ(p.kind, SparsityPattern::Kind::Unstructured);
  EXPECT_DOUBLE_EQ(p.fraction, 0.5);
  EXPECT_EQ(p.str(), "unstructured:0.5");
  EXPECT_TRUE(parse("none").isDense());
  for (const char *bad :
       {"", "4:4", "0:4", "5:4", "2:", ":4", "2:65", "-1:4", "2:4x",
        "unstructured:0", "unstructured:1", "unstructured:", "unstructured:x",
        "unstructured:0.5x", "unstructured:nan", "2.5:4", "half"}) {
    SparsityPattern q;
    std::string error;
    EXPECT_FALSE(parseSparsityPattern(bad, q, error)) << bad;
    EXPECT_NE(error.find("sparsity"), std::string::npos) << bad;
  }
}

TEST(Sparse, PrunedPerRow) {
  EXPECT_EQ(parse("2:4").prunedPerRow(16), 8);
  EXPECT_EQ(parse("2:4").prunedPerRow(10), 4);     // tail of 2 keeps both
  EXPECT_EQ(parse("2:4").prunedPerRow(11), 4 + 1); // tail of 3 keeps 2
  EXPECT_EQ(parse("unstructured:0.5").prunedPerRow(7), 4); // round half up
  EXPECT_EQ(parse("unstructured:0.25").prunedPerRow(100), 25);
}

// N:M keeps exactly N of every group, the N largest |w|; unstructured keeps
// exactly the count per row, the largest |w|.
TEST(Sparse, MagnitudeMaskKeepsTheLargest) {
  std::mt19937 gen(3);
  const int64_t rows = 9, cols = 64;
  std::vector<float> w = randomWeights(rows, cols, gen);
  for (const char *text :
       {"2:4", "4:8", "1:4", "3:16", "unstructured:0.5", "unstructured:0.7"}) {
    SparsityPattern p = parse(text);
    std::vector<uint8_t> mask = selectMagnitudeMask(w.data(), rows, cols, p);
    EXPECT_TRUE(maskFitsPattern(mask.data(), rows, cols, p)) << text;
    const int64_t span = p.kind == SparsityPattern::Kind::NM ? p.m : cols;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c0 = 0; c0 < cols; c0 += span) {
        int64_t kept = 0;
        float minKept = INFINITY, maxPruned = 0.0f;
        for (int64_t c = c0; c < c0 + span; ++c) {
          float a = std::fabs(w[r * cols + c]);
          if (mask[r * cols + c]) {
            ++kept;
            minKept = std::min(minKept, a);
          } else {
            maxPruned = std::max(maxPruned, a);
          }
        }
        EXPECT_EQ(kept, p.kind == SparsityPattern::Kind::NM
                            ? p.n
                            : cols - p.prunedPerRow(cols))
            << text;
        EXPECT_GE(minKept, maxPruned) << text;
      }
  }
}

// Ties keep the lower index; a partial last N:M group keeps min(N, L).
TEST(Sparse, MagnitudeTiesKeepTheLowerIndex) {
  const std::vector<float> w = {1, -1, 1, -1, /**/ 0, 0, 0, 0, /**/ 2, -3, 3};
  std::vector<uint8_t> mask =
      selectMagnitudeMask(w.data(), 1, 11, parse("2:4"));
  const std::vector<uint8_t> expected = {1, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1};
  EXPECT_EQ(mask, expected);
  mask = selectMagnitudeMask(w.data(), 1, 11, parse("unstructured:0.5"));
  // 11 * 0.5 rounds to 6 pruned, 5 kept: 3, -3, 2, then the first 1, -1.
  const std::vector<uint8_t> expectedU = {1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1};
  EXPECT_EQ(mask, expectedU);
  std::vector<float> pruned = w;
  applyMask(pruned.data(), mask.data(), pruned.size());
  EXPECT_DOUBLE_EQ(densityOf(pruned.data(), pruned.size()), 5.0 / 11.0);
}

// NaN and infinities are ordered (kept first), never undefined behaviour.
TEST(Sparse, MagnitudeMaskOrdersNonFiniteValues) {
  const std::vector<float> w = {NAN, 1, 2, 3, -INFINITY, 0, 0, 5};
  std::vector<uint8_t> mask = selectMagnitudeMask(w.data(), 1, 8, parse("2:4"));
  const std::vector<uint8_t> expected = {1, 0, 0, 1, 1, 0, 0, 1};
  EXPECT_EQ(mask, expected);
}

// SparseGPT's defining property: lower output error tr(dW H dW^T) than
// magnitude pruning at the same sparsity on correlated inputs; its mask
// fits the pattern, its pruned weights are exactly zero, its reported loss
// is the loss of its weights.
TEST(Sparse, SparseGPTBeatsMagnitude) {
  std::mt19937 gen(11);
  const int64_t rows = 24, cols = 96;
  std::vector<double> h = correlatedGram(cols, 256, gen);
  std::vector<float> w = randomWeights(rows, cols, gen);
  for (const char *text :
       {"2:4", "4:8", "unstructured:0.5", "unstructured:0.3"}) {
    SparsityPattern p = parse(text);
    std::vector<float> mag = w;
    std::vector<uint8_t> mask = selectMagnitudeMask(w.data(), rows, cols, p);
    applyMask(mag.data(), mask.data(), mag.size());
    double magLoss =
        weightChangeLoss(w.data(), mag.data(), rows, cols, h.data());
    SparseGPTOptions opts;
    opts.blockSize = 32; // several blocks
    SparseGPTResult res;
    std::string error;
    ASSERT_TRUE(pruneSparseGPT(w.data(), rows, cols, h.data(), p, nullptr, opts,
                               res, error))
        << error;
    EXPECT_TRUE(maskFitsPattern(res.mask.data(), rows, cols, p)) << text;
    for (size_t i = 0; i < w.size(); ++i)
      if (!res.mask[i])
        ASSERT_EQ(res.weights[i], 0.0f) << text;
    // Every row prunes exactly the pattern's count (no weight was zero).
    EXPECT_NEAR(densityOf(res.weights.data(), res.weights.size()),
                1.0 - double(p.prunedPerRow(cols)) / cols, 1e-12)
        << text;
    EXPECT_NEAR(
        res.loss,
        weightChangeLoss(w.data(), res.weights.data(), rows, cols, h.data()),
        1e-9 * res.loss);
    EXPECT_LT(res.loss, 0.7 * magLoss)
        << text << ": SparseGPT " << res.loss << " vs magnitude " << magLoss;
    EXPECT_FALSE(res.matrix.has_value());
  }
}

// With H = identity SparseGPT has nothing to compensate with (U is
// diagonal) and its saliency is |w|: it equals magnitude pruning.
TEST(Sparse, SparseGPTWithIdentityHessianIsMagnitude) {
  std::mt19937 gen(5);
  const int64_t rows = 7, cols = 40;
  std::vector<float> w = randomWeights(rows, cols, gen);
  std::vector<double> h(cols * cols, 0.0);
  for (int64_t i = 0; i < cols; ++i)
    h[i * cols + i] = 1.0;
  for (const char *text : {"2:4", "unstructured:0.5"}) {
    SparsityPattern p = parse(text);
    SparseGPTOptions opts;
    opts.blockSize = cols; // the unstructured count is per row, as magnitude
    SparseGPTResult res;
    std::string error;
    ASSERT_TRUE(pruneSparseGPT(w.data(), rows, cols, h.data(), p, nullptr, opts,
                               res, error))
        << error;
    std::vector<float> mag = w;
    std::vector<uint8_t> mask = selectMagnitudeMask(w.data(), rows, cols, p);
    applyMask(mag.data(), mask.data(), mag.size());
    EXPECT_EQ(res.mask, mask) << text;
    EXPECT_EQ(res.weights, mag) << text;
  }
}

// Joint pruning and quantization: pruned weights are exactly zero after
// dequantization (symmetric: the code 2^(bits-1); asymmetric: the integer
// zero point), the kept ones are on the quantization grid, and the result is
// better than pruning by magnitude and rounding to nearest.
TEST(Sparse, JointQuantizationKeepsZerosExact) {
  std::mt19937 gen(17);
  const int64_t rows = 16, cols = 64;
  std::vector<double> h = correlatedGram(cols, 200, gen);
  std::vector<float> w = randomWeights(rows, cols, gen);
  for (bool symmetric : {true, false})
    for (int bits : {8, 4})
      for (const char *text : {"2:4", "unstructured:0.5"}) {
        SparsityPattern p = parse(text);
        SparseQuantization q;
        q.bits = bits;
        q.groupSize = 16;
        q.symmetric = symmetric;
        SparseGPTResult res;
        std::string error;
        ASSERT_TRUE(pruneSparseGPT(w.data(), rows, cols, h.data(), p, &q,
                                   SparseGPTOptions(), res, error))
            << error;
        ASSERT_TRUE(res.matrix.has_value());
        EXPECT_TRUE(maskFitsPattern(res.mask.data(), rows, cols, p));
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) {
            float d = dequantizeAt(*res.matrix, r, c);
            ASSERT_EQ(d, res.weights[r * cols + c]);
            if (!res.mask[r * cols + c])
              ASSERT_EQ(d, 0.0f) << text << " bits " << bits;
          }
        // Magnitude + RTN of the pruned weights: also exact zeros.
        std::vector<float> mag = w;
        std::vector<uint8_t> mask =
            selectMagnitudeMask(w.data(), rows, cols, p);
        applyMask(mag.data(), mask.data(), mag.size());
        QuantizedMatrix rtn = quantizeMatrixRTN(mag.data(), rows, cols, bits,
                                                16, symmetric, q.scaleType);
        std::vector<float> rtnW(rows * cols);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) {
            rtnW[r * cols + c] = dequantizeAt(rtn, r, c);
            if (!mask[r * cols + c])
              ASSERT_EQ(rtnW[r * cols + c], 0.0f);
          }
        double rtnLoss =
            weightChangeLoss(w.data(), rtnW.data(), rows, cols, h.data());
        EXPECT_LT(res.loss, rtnLoss) << text << " bits " << bits;
      }
}

// GPTQ with a fixed mask (a magnitude-pruned layer quantized by GPTQ):
// masked weights stay exactly zero, in act order too, and the output error
// is below RTN's of the same pruned weights.
TEST(Sparse, GPTQWithFixedMask) {
  std::mt19937 gen(23);
  const int64_t rows = 12, cols = 64;
  std::vector<double> h = correlatedGram(cols, 200, gen);
  std::vector<float> w = randomWeights(rows, cols, gen);
  SparsityPattern p = parse("2:4");
  std::vector<uint8_t> mask = selectMagnitudeMask(w.data(), rows, cols, p);
  std::vector<float> pruned = w;
  applyMask(pruned.data(), mask.data(), pruned.size());
  for (bool actOrder : {false, true})
    for (bool symmetric : {true, false}) {
      GPTQOptions opts;
      opts.actOrder = actOrder;
      opts.keepMask = mask.data();
      GPTQResult res;
      std::string error;
      ASSERT_TRUE(quantizeMatrixGPTQ(pruned.data(), rows, cols, h.data(), 4, 32,
                                     symmetric, ScaleType::F16, opts, res,
                                     error))
          << error;
      std::vector<float> q(rows * cols);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          q[r * cols + c] = dequantizeAt(res.matrix, r, c);
          if (!mask[r * cols + c])
            ASSERT_EQ(q[r * cols + c], 0.0f);
        }
      QuantizedMatrix rtn = quantizeMatrixRTN(pruned.data(), rows, cols, 4, 32,
                                              symmetric, ScaleType::F16);
      EXPECT_LT(res.loss, quantizationLoss(pruned.data(), rtn, h.data()));
    }
}

// The thread count does not change SparseGPT's result.
TEST(Sparse, ThreadCountDoesNotChangeTheResult) {
  std::mt19937 gen(29);
  const int64_t rows = 33, cols = 80;
  std::vector<double> h = correlatedGram(cols, 160, gen);
  std::vector<float> w = randomWeights(rows, cols, gen);
  SparseGPTResult one, four;
  std::string error;
  SparseGPTOptions opts;
  opts.blockSize = 16;
  opts.threads = 1;
  ASSERT_TRUE(pruneSparseGPT(w.data(), rows, cols, h.data(), parse("4:8"),
                             nullptr, opts, one, error));
  opts.threads = 4;
  ASSERT_TRUE(pruneSparseGPT(w.data(), rows, cols, h.data(), parse("4:8"),
                             nullptr, opts, four, error));
  EXPECT_EQ(one.weights, four.weights);
  EXPECT_EQ(one.mask, four.mask);
}

TEST(Sparse, SparseGPTRejectsBadInputs) {
  const int64_t rows = 2, cols = 8;
  std::vector<float> w(rows * cols, 1.0f);
  std::vector<double> h(cols * cols, 0.0);
  for (int64_t i = 0; i < cols; ++i)
    h[i * cols + i] = 1.0;
  h[3 * cols + 5] = h[5 * cols + 3] = 100.0; // not positive definite
  SparseGPTResult res;
  std::string error;
  SparseGPTOptions opts;
  opts.dampeningRetries = 0;
  EXPECT_FALSE(pruneSparseGPT(w.data(), rows, cols, h.data(), parse("2:4"),
                              nullptr, opts, res, error));
  EXPECT_NE(error.find("SparseGPT: the Gram matrix is not positive definite"),
            std::string::npos)
      << error;
  h[3 * cols + 5] = h[5 * cols + 3] = NAN;
  EXPECT_FALSE(pruneSparseGPT(w.data(), rows, cols, h.data(), parse("2:4"),
                              nullptr, opts, res, error));
  EXPECT_NE(error.find("not all finite"), std::string::npos) << error;
}
