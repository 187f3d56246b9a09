// Numerics of the seeded rotations (lib/Quant/Rotation.cpp).

#include "quench/Quant/Rotation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace quench::quant;

namespace {

/// max |Q Q^T - I|.
double orthogonalityError(const std::vector<double> &q, int64_t d) {
  double worst = 0;
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j) {
      double dot = 0;
      for (int64_t k = 0; k < d; ++k)
        dot += q[i * d + k] * q[j * d + k];
      worst = std::max(worst, std::fabs(dot - (i == j ? 1.0 : 0.0)));
    }
  return worst;
}

std::vector<float> randomMatrix(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> m(n);
  for (float &v : m)
    v = dist(gen);
  return m;
}

} // namespace

TEST(FastWalshHadamard, MatchesTheSylvesterMatrix) {
  for (int64_t n : {1, 2, 4, 8, 64}) {
    // H[i][j] = (-1)^popcount(i & j) for Sylvester's construction.
    std::vector<double> x(n);
    for (int64_t i = 0; i < n; ++i)
      x[i] = std::sin(1.0 + i);
    std::vector<double> y = x;
    fastWalshHadamard(y.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      double expect = 0;
      for (int64_t j = 0; j < n; ++j)
        expect += (__builtin_popcountll(i & j) % 2 ? -1.0 : 1.0) * x[j];
      EXPECT_NEAR(y[i], expect, 1e-12) << "n " << n << " i " << i;
    }
  }
}

TEST(FastWalshHadamard, Strided) {
  // Every third value of a buffer; the others stay as they are.
  std::vector<double> x(3 * 8), ref(8);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = 0.25 * i - 1;
  for (int i = 0; i < 8; ++i)
    ref[i] = x[3 * i + 1];
  std::vector<double> before = x;
  fastWalshHadamard(x.data() + 1, 8, 3);
  fastWalshHadamard(ref.data(), 8);
  for (int i = 0; i < 8; ++i) {
    EXPECT_DOUBLE_EQ(x[3 * i + 1], ref[i]);
    EXPECT_EQ(x[3 * i], before[3 * i]);
    EXPECT_EQ(x[3 * i + 2], before[3 * i + 2]);
  }
}

TEST(RandomRotation, Factorization) {
  RandomRotation a(64, 1), b(96, 1), c(172, 1), d(15, 1);
  EXPECT_EQ(a.hadamardOrder(), 64);
  EXPECT_EQ(a.oddOrder(), 1);
  EXPECT_EQ(b.hadamardOrder(), 32);
  EXPECT_EQ(b.oddOrder(), 3);
  EXPECT_EQ(c.hadamardOrder(), 4);
  EXPECT_EQ(c.oddOrder(), 43);
  EXPECT_EQ(d.hadamardOrder(), 1);
  EXPECT_EQ(d.oddOrder(), 15);
}

TEST(RandomRotation, IsOrthogonal) {
  for (int64_t d : {1, 2, 12, 20, 64, 96, 172, 15, 256}) {
    RandomRotation r(d, 7);
    EXPECT_LT(orthogonalityError(r.dense(), d), 1e-6) << "D " << d;
  }
}

TEST(RandomRotation, PowerOfTwoIsARandomizedHadamard) {
  // Every entry +-1/sqrt(D), and not all the same sign pattern as H.
  const int64_t d = 32;
  RandomRotation r(d, 3);
  std::vector<double> q = r.dense();
  int flipped = 0;
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j) {
      double h = (__builtin_popcountll(i & j) % 2 ? -1.0 : 1.0) /
                 std::sqrt(static_cast<double>(d));
      EXPECT_NEAR(std::fabs(q[i * d + j]), std::fabs(h), 1e-12);
      if (j == 0)
        flipped += q[i * d] * h < 0;
    }
  EXPECT_GT(flipped, 0);
  EXPECT_LT(flipped, d);
}

TEST(RandomRotation, FastEqualsDenseProduct) {
  for (int64_t d : {64, 96, 20}) {
    RandomRotation r(d, 11);
    std::vector<double> q = r.dense();
    // W [N, D] -> W Q.
    const int64_t n = 5, k = 7;
    std::vector<float> w = randomMatrix(n * d, 1), wq = w;
    r.applyRight(wq.data(), n, 2);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < d; ++j) {
        double expect = 0;
        for (int64_t l = 0; l < d; ++l)
          expect += w[i * d + l] * q[l * d + j];
        EXPECT_NEAR(wq[i * d + j], expect, 1e-5) << "D " << d;
      }
    // V [D, K] -> Q^T V.
    std::vector<float> v = randomMatrix(d * k, 2), qv = v;
    r.applyLeftTranspose(qv.data(), k, 2);
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < k; ++j) {
        double expect = 0;
        for (int64_t l = 0; l < d; ++l)
          expect += q[l * d + i] * v[l * k + j];
        EXPECT_NEAR(qv[i * k + j], expect, 1e-5) << "D " << d;
      }
  }
}

TEST(RandomRotation, PreservesProducts) {
  // (x Q) (W Q)^T = x W^T: what makes a rotated model compute the same.
  const int64_t d = 48, n = 6;
  RandomRotation r(d, 5);
  std::vector<float> x = randomMatrix(d, 3), w = randomMatrix(n * d, 4);
  std::vector<float> xq = x, wq = w;
  r.applyRight(xq.data(), 1);
  r.applyRight(wq.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    double a = 0, b = 0;
    for (int64_t j = 0; j < d; ++j) {
      a += x[j] * w[i * d + j];
      b += xq[j] * wq[i * d + j];
    }
    EXPECT_NEAR(a, b, 1e-5);
  }
}

TEST(RandomRotation, DeterministicPerSeed) {
  RandomRotation a(96, 42), b(96, 42), c(96, 43);
  std::vector<double> qa = a.dense(), qb = b.dense(), qc = c.dense();
  EXPECT_EQ(qa, qb);
  EXPECT_NE(qa, qc);
  // Independent of the thread count.
  std::vector<float> w = randomMatrix(33 * 96, 9), w1 = w, w2 = w;
  a.applyRight(w1.data(), 33, 1);
  a.applyRight(w2.data(), 33, 3);
  EXPECT_EQ(w1, w2);
}
