// Numerics of half-quadratic quantization (lib/Quant/HQQ.cpp): its defining
// property is a lower l_p weight error than RTN's with the same storage.
#include "quench/Quant/HQQ.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

using namespace quench::quant;

namespace {

/// `n` weights of scale 0.02: Gaussian, or Student-t with 3 degrees of
/// freedom (heavy tails, as trained weights have).
std::vector<float> weights(size_t n, bool heavy, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::student_t_distribution<float> t(3.0f);
  std::vector<float> w(n);
  for (float &x : w)
    x = 0.02f * (heavy ? t(gen) : normal(gen));
  return w;
}

double squaredError(const float *w, size_t n, const GroupParams &p, int bits) {
  return lpError(w, n, p, bits, 2.0f);
}

TEST(HQQ, NeverWorseThanRTNOnItsObjective) {
  HQQOptions o;
  int improved = 0, groups = 0;
  for (int bits : {2, 3, 4, 8})
    for (bool symmetric : {false, true})
      for (ScaleType st : {ScaleType::F16, ScaleType::F32})
        for (unsigned seed = 0; seed < 40; ++seed) {
          std::vector<float> w = weights(32, seed % 2, seed);
          GroupParams rtn =
              chooseGroupParams(w.data(), w.size(), bits, symmetric, st);
          GroupParams hqq =
              chooseGroupParamsHQQ(w.data(), w.size(), bits, symmetric, st, o);
          double er = lpError(w.data(), w.size(), rtn, bits, o.lpNorm);
          double eh = lpError(w.data(), w.size(), hqq, bits, o.lpNorm);
          ASSERT_LE(eh, er) << bits << " bits, seed " << seed;
          improved += eh < er;
          ++groups;
          // The parameters are storable: a zero point code, a scale of the
          // scale type.
          EXPECT_GE(hqq.zeroPoint, 0);
          EXPECT_LT(hqq.zeroPoint, 1 << bits);
          if (symmetric)
            EXPECT_EQ(hqq.zeroPoint, 1 << (bits - 1));
          EXPECT_GT(hqq.scale, 0.0f);
          if (st == ScaleType::F16)
            EXPECT_EQ(roundToF16(hqq.scale), hqq.scale);
        }
  // Not RTN in disguise: most groups improve.
  EXPECT_GT(improved, groups / 2) << improved << " of " << groups;
}

TEST(HQQ, ClearlyBetterOnHeavyTailedWeights) {
  // 256 rows of 256 Student-t weights: the l_p error and the squared error
  // (what the model sees) both fall well below RTN's, asymmetric and
  // symmetric.
  const int64_t rows = 256, cols = 256;
  std::vector<float> w = weights(rows * cols, /*heavy=*/true, 7);
  struct Case {
    int bits;
    int64_t groupSize;
    bool symmetric;
    double maxLpRatio, maxMseRatio;
  };
  for (Case c :
       {Case{4, 32, false, 0.97, 0.99}, Case{3, 32, false, 0.95, 0.97},
        Case{4, 128, true, 0.97, 0.95}, Case{3, 32, true, 0.93, 0.90}}) {
    QuantizedMatrix r = quantizeMatrixRTN(
        w.data(), rows, cols, c.bits, c.groupSize, c.symmetric, ScaleType::F16);
    QuantizedMatrix h = quantizeMatrixHQQ(
        w.data(), rows, cols, c.bits, c.groupSize, c.symmetric, ScaleType::F16);
    double lr = 0, lh = 0, mr = 0, mh = 0;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        float x = w[i * cols + j];
        double er = x - dequantizeAt(r, i, j), eh = x - dequantizeAt(h, i, j);
        lr += std::pow(std::fabs(er), 0.7);
        lh += std::pow(std::fabs(eh), 0.7);
        mr += er * er;
        mh += eh * eh;
      }
    EXPECT_LT(lh / lr, c.maxLpRatio) << c.bits << " bits g" << c.groupSize;
    EXPECT_LT(mh / mr, c.maxMseRatio) << c.bits << " bits g" << c.groupSize;
  }
}

TEST(HQQ, MatrixIsItsGroupsAndDeterministic) {
  // A ragged last group (cols not a multiple of the group size) and an
  // all-zero group; the matrix is the per-group parameters with their
  // quantizeValue codes, and the same input gives the same bytes.
  const int64_t rows = 5, cols = 80, gs = 32;
  std::vector<float> w = weights(rows * cols, true, 3);
  std::fill(w.begin() + 32, w.begin() + 64, 0.0f); // row 0, group 1
  QuantizedMatrix a =
      quantizeMatrixHQQ(w.data(), rows, cols, 4, gs, false, ScaleType::F16);
  QuantizedMatrix b =
      quantizeMatrixHQQ(w.data(), rows, cols, 4, gs, false, ScaleType::F16);
  HQQOptions one;
  one.threads = 1;
  HQQOptions three;
  three.threads = 3;
  QuantizedMatrix c = quantizeMatrixHQQ(w.data(), rows, cols, 4, gs, false,
                                        ScaleType::F16, one);
  QuantizedMatrix d = quantizeMatrixHQQ(w.data(), rows, cols, 4, gs, false,
                                        ScaleType::F16, three);
  EXPECT_EQ(a.packed, c.packed);
  EXPECT_EQ(a.packed, d.packed);
  EXPECT_EQ(a.zeroPoints, d.zeroPoints);
  EXPECT_EQ(a.packed, b.packed);
  EXPECT_EQ(a.zeroPoints, b.zeroPoints);
  EXPECT_EQ(std::memcmp(a.scales.data(), b.scales.data(),
                        a.scales.size() * sizeof(float)),
            0);
  ASSERT_EQ(a.groups, 3);
  EXPECT_EQ(a.params[1].scale, 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < a.groups; ++g) {
      int64_t c0 = g * gs, len = std::min(gs, cols - c0);
      GroupParams p = chooseGroupParamsHQQ(&w[r * cols + c0], len, 4, false,
                                           ScaleType::F16);
      EXPECT_EQ(a.params[r * a.groups + g].scale, p.scale);
      EXPECT_EQ(a.params[r * a.groups + g].zeroPoint, p.zeroPoint);
      for (int64_t i = 0; i < len; ++i) {
        float x = w[r * cols + c0 + i];
        EXPECT_EQ(dequantizeAt(a, r, c0 + i),
                  dequantizeValue(quantizeValue(x, p, 4), p));
      }
    }
}

TEST(HQQ, OptionsMatter) {
  // p = 2 minimizes the squared error itself; the zero-point-only update of
  // the paper cannot move an integer zero point on a min/max range and
  // returns RTN's parameters.
  std::vector<float> w = weights(32 * 64, true, 11);
  HQQOptions l2;
  l2.lpNorm = 2.0f;
  HQQOptions zeroOnly;
  zeroOnly.optimizeScale = false;
  double rtn = 0, hqq2 = 0;
  for (size_t g = 0; g < 64; ++g) {
    const float *x = &w[g * 32];
    GroupParams r = chooseGroupParams(x, 32, 3, false, ScaleType::F16);
    GroupParams h = chooseGroupParamsHQQ(x, 32, 3, false, ScaleType::F16, l2);
    rtn += squaredError(x, 32, r, 3);
    hqq2 += squaredError(x, 32, h, 3);
    EXPECT_LE(squaredError(x, 32, h, 3), squaredError(x, 32, r, 3));
    GroupParams z =
        chooseGroupParamsHQQ(x, 32, 3, false, ScaleType::F16, zeroOnly);
    EXPECT_LE(lpError(x, 32, z, 3, 0.7f), lpError(x, 32, r, 3, 0.7f));
  }
  EXPECT_LT(hqq2, 0.95 * rtn);
}

} // namespace
