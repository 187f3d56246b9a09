// Mixed precision under a bits budget (lib/Quant/BitsBudget.cpp): the
// allocator is the optimum of the multiple-choice knapsack (checked against
// exhaustive search), never exceeds the budget, and fails clearly when the
// budget is below the smallest schemes; the error measures are what they
// claim.
#include "quench/Quant/BitsBudget.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <vector>

using namespace quench::quant;

namespace {

/// The least total error of a choice within `maxBits`, by enumeration
/// (infinity if none fits).
double bruteForce(const std::vector<BudgetLayer> &layers, int64_t maxBits) {
  double best = std::numeric_limits<double>::infinity();
  std::function<void(size_t, int64_t, double)> go = [&](size_t l, int64_t bits,
                                                        double err) {
    if (bits > maxBits)
      return;
    if (l == layers.size()) {
      best = std::min(best, err);
      return;
    }
    for (size_t i = 0; i < layers[l].bits.size(); ++i)
      go(l + 1, bits + layers[l].bits[i], err + layers[l].error[i]);
  };
  go(0, 0, 0.0);
  return best;
}

/// Random layers with candidates of decreasing error as bits grow (as
/// quantization schemes have), sizes differing by 100x.
std::vector<BudgetLayer> randomLayers(std::mt19937 &gen, size_t n) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<BudgetLayer> layers(n);
  for (BudgetLayer &l : layers) {
    int64_t weights = 100 + static_cast<int64_t>(u(gen) * 10000);
    double sensitivity = std::exp(6.0 * u(gen));
    for (double bpw : {2.5, 3.5, 4.5, 4.125, 8.25, 32.0}) {
      l.bits.push_back(static_cast<int64_t>(bpw * weights));
      l.error.push_back(bpw >= 32 ? 0.0
                                  : sensitivity * std::pow(4.0, -bpw) *
                                        (1.0 + 0.3 * u(gen)));
    }
  }
  return layers;
}

double totalError(const std::vector<BudgetLayer> &layers,
                  const std::vector<size_t> &choice, int64_t *bits) {
  double e = 0;
  *bits = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    e += layers[l].error[choice[l]];
    *bits += layers[l].bits[choice[l]];
  }
  return e;
}

TEST(BitsBudget, AllocatorIsTheOptimumWithinTheBudget) {
  std::mt19937 gen(5);
  for (int trial = 0; trial < 30; ++trial) {
    std::vector<BudgetLayer> layers = randomLayers(gen, 2 + trial % 5);
    int64_t weights = 0, minBits = 0;
    for (const BudgetLayer &l : layers) {
      weights += l.bits.back() / 32;
      minBits += *std::min_element(l.bits.begin(), l.bits.end());
    }
    for (double budget : {2.6, 3.0, 4.0, 4.6, 6.0, 9.0, 20.0}) {
      int64_t maxBits = static_cast<int64_t>(budget * weights);
      std::vector<size_t> choice;
      std::string error;
      if (maxBits < minBits) {
        EXPECT_FALSE(allocateBudget(layers, maxBits, choice, error));
        continue;
      }
      ASSERT_TRUE(allocateBudget(layers, maxBits, choice, error)) << error;
      int64_t bits;
      double e = totalError(layers, choice, &bits);
      EXPECT_LE(bits, maxBits);
      // Optimal up to the rounding of bits to maxBits / 8192 units: no
      // better than the true optimum, no worse than the optimum of a budget
      // one unit per layer tighter.
      double unit = static_cast<double>(maxBits) / 8192;
      double opt = bruteForce(layers, maxBits);
      double tighter = bruteForce(
          layers,
          maxBits - static_cast<int64_t>(std::ceil(unit * layers.size())));
      EXPECT_GE(e, opt * (1 - 1e-12));
      EXPECT_LE(e, tighter * (1 + 1e-12)) << trial << " " << budget;
      // Exact with one unit per bit.
      ASSERT_TRUE(allocateBudget(layers, maxBits, choice, error, maxBits));
      EXPECT_NEAR(totalError(layers, choice, &bits), opt, 1e-9 * opt);
      EXPECT_LE(bits, maxBits);
    }
  }
}

TEST(BitsBudget, SensitiveLayersGetTheBits) {
  // Two layers of equal size, one 1000x more sensitive: at 6 bits per
  // weight on average the sensitive one gets 8 bits, the other 4.
  BudgetLayer a{{4500, 8250}, {1.0, 0.01}};
  BudgetLayer b{{4500, 8250}, {1000.0, 10.0}};
  std::vector<size_t> choice;
  std::string error;
  ASSERT_TRUE(allocateBudget({a, b}, 12750, choice, error));
  EXPECT_EQ(choice, (std::vector<size_t>{0, 1}));
  ASSERT_TRUE(allocateBudget({b, a}, 12750, choice, error));
  EXPECT_EQ(choice, (std::vector<size_t>{1, 0}));
  // A layer whose candidates are all exact takes the cheapest, even with
  // bits to spare.
  BudgetLayer exact{{8250, 4500, 2500}, {0.0, 0.0, 0.0}};
  ASSERT_TRUE(allocateBudget({exact, a}, 100000, choice, error));
  EXPECT_EQ(choice, (std::vector<size_t>{2, 1}));
  // Below the smallest candidates: a clear error.
  EXPECT_FALSE(allocateBudget({a, b}, 8999, choice, error));
  EXPECT_EQ(error, "the smallest candidate schemes need 9000 bits, above the "
                   "budget of 8999");
}

TEST(BitsBudget, StorageBitsAreTheQuantizedMatrixBytes) {
  std::vector<float> w(12 * 70, 0.5f);
  for (int bits : {2, 3, 4, 8})
    for (int64_t gs : {0, 32, 64})
      for (bool sym : {true, false})
        for (ScaleType st : {ScaleType::F16, ScaleType::F32}) {
          if (gs * bits % 8)
            continue;
          QuantizedMatrix m =
              quantizeMatrixRTN(w.data(), 12, 70, bits, gs, sym, st);
          int64_t bytes = static_cast<int64_t>(
              m.packed.size() + m.zeroPoints.size() +
              m.scales.size() * (st == ScaleType::F16 ? 2 : 4));
          EXPECT_EQ(storageBits(12, 70, bits, gs, sym, st), 8 * bytes);
        }
}

TEST(BitsBudget, ErrorMeasures) {
  // tr(dW H dW^T) with H = X^T X is the output error |dW X^T|^2; H = I is
  // the weight error.
  const int64_t rows = 6, cols = 40, samples = 25;
  std::mt19937 gen(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w(rows * cols), x(samples * cols);
  for (float &v : w)
    v = nd(gen);
  for (float &v : x)
    v = nd(gen);
  QuantizedMatrix m =
      quantizeMatrixRTN(w.data(), rows, cols, 3, 8, true, ScaleType::F16);
  std::vector<double> h(cols * cols, 0.0), eye(cols * cols, 0.0);
  for (int64_t s = 0; s < samples; ++s)
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j)
        h[i * cols + j] += double(x[s * cols + i]) * x[s * cols + j];
  for (int64_t i = 0; i < cols; ++i)
    eye[i * cols + i] = 1.0;
  double out = 0.0, mse = 0.0, energy = 0.0, norm = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t s = 0; s < samples; ++s) {
      double y = 0.0;
      for (int64_t c = 0; c < cols; ++c)
        y +=
            (w[r * cols + c] - double(dequantizeAt(m, r, c))) * x[s * cols + c];
      out += y * y;
      double z = 0.0;
      for (int64_t c = 0; c < cols; ++c)
        z += double(w[r * cols + c]) * x[s * cols + c];
      energy += z * z;
    }
    for (int64_t c = 0; c < cols; ++c)
      norm += double(w[r * cols + c]) * w[r * cols + c];
    for (int64_t c = 0; c < cols; ++c) {
      double d = w[r * cols + c] - double(dequantizeAt(m, r, c));
      mse += d * d;
    }
  }
  EXPECT_GT(mse, 0.0);
  EXPECT_NEAR(quantizationError(w.data(), m, h.data()), out, 1e-9 * out);
  EXPECT_EQ(quantizationError(w.data(), m, h.data(), 1),
            quantizationError(w.data(), m, h.data(), 4));
  EXPECT_NEAR(quantizationError(w.data(), m, eye.data()), mse, 1e-9 * mse);
  EXPECT_NEAR(quantizationError(w.data(), m, nullptr), mse, 1e-9 * mse);
  // The weight's own measure (the error of quantizing it to zero).
  EXPECT_NEAR(outputEnergy(w.data(), rows, cols, h.data()), energy,
              1e-9 * energy);
  EXPECT_NEAR(outputEnergy(w.data(), rows, cols, nullptr), norm, 1e-9 * norm);
}

} // namespace
