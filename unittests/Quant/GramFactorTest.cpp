// The factored output error of lib/Quant/GramFactor.cpp against the
// quadratic form it replaces.
#include "quench/Quant/GramFactor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

using namespace quench::quant;

namespace {

/// H = X^T X for `samples` rows of k normal inputs; inputs in `dead` are
/// never active (zero rows and columns of H), input 3 is 30x larger.
std::vector<double> gramOf(int64_t samples, int64_t k, unsigned seed,
                           const std::vector<int64_t> &dead = {}) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<double> x(samples * k), h(k * k, 0.0);
  for (int64_t s = 0; s < samples; ++s)
    for (int64_t j = 0; j < k; ++j)
      x[s * k + j] = static_cast<float>(nd(gen) * (j == 3 ? 30.0 : 1.0));
  for (int64_t j : dead)
    for (int64_t s = 0; s < samples; ++s)
      x[s * k + j] = 0.0;
  for (int64_t s = 0; s < samples; ++s)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j)
        h[i * k + j] += x[s * k + i] * x[s * k + j];
  return h;
}

/// sum_r d_r H d_r^T, the plain way.
double naive(const std::vector<double> &d, int64_t rows, int64_t k,
             const std::vector<double> &h) {
  double total = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j)
        total += d[r * k + i] * h[i * k + j] * d[r * k + j];
  return total;
}

std::vector<double> randomRows(int64_t rows, int64_t k, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<double> d(rows * k);
  for (double &v : d)
    v = nd(gen);
  return d;
}

double factored(const GramFactor &f, const std::vector<double> &d,
                int64_t rows, unsigned threads) {
  int64_t k = f.size();
  return f.quadraticSum(
      rows,
      [&](int64_t r, double *out) {
        for (int64_t c = 0; c < k; ++c)
          out[c] = d[r * k + c];
      },
      threads);
}

TEST(GramFactor, EqualsTheQuadraticForm) {
  // Sizes off the kernel's tiles (4 rows x 16 columns, 32-column panels,
  // 64-row tasks), full rank, rank-deficient (fewer samples than inputs)
  // and with dead inputs.
  struct Case {
    int64_t samples, k, rows, rank;
    std::vector<int64_t> dead;
  };
  for (const Case &c : {Case{200, 70, 131, 70, {}}, Case{25, 40, 6, 25, {}},
                        Case{300, 97, 5, 94, {0, 50, 96}},
                        Case{10, 1, 3, 1, {}}, Case{90, 33, 1, 33, {}}}) {
    std::vector<double> h = gramOf(c.samples, c.k, 7, c.dead);
    std::vector<double> d = randomRows(c.rows, c.k, 11);
    GramFactor f(h.data(), c.k, 2);
    EXPECT_EQ(f.rank(), c.rank) << "k " << c.k;
    double want = naive(d, c.rows, c.k, h);
    EXPECT_NEAR(factored(f, d, c.rows, 2), want, 1e-10 * want) << "k " << c.k;
  }
}

TEST(GramFactor, SameForEveryThreadCount) {
  std::vector<double> h = gramOf(150, 120, 3);
  std::vector<double> d = randomRows(300, 120, 5);
  GramFactor one(h.data(), 120, 1), three(h.data(), 120, 3);
  double a = factored(one, d, 300, 1);
  EXPECT_EQ(a, factored(one, d, 300, 3));
  EXPECT_EQ(a, factored(three, d, 300, 1));
  EXPECT_EQ(a, factored(three, d, 300, 4));
}

TEST(GramFactor, ZeroAndNonFiniteGrams) {
  std::vector<double> zero(16 * 16, 0.0), d = randomRows(3, 16, 1);
  GramFactor z(zero.data(), 16, 1);
  EXPECT_EQ(z.rank(), 0);
  EXPECT_EQ(factored(z, d, 3, 1), 0.0);
  std::vector<double> h = gramOf(20, 16, 2);
  h[5 * 16 + 7] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(std::isnan(factored(GramFactor(h.data(), 16, 1), d, 3, 1)));
}

} // namespace
