//===- StatisticsTest.cpp - calibration statistics and estimators ---------===//

#include "quench/Calibration/Statistics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <random>
#include <unistd.h>

using namespace quench::calib;

namespace {

std::vector<float> gaussian(size_t n, float sigma, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(rng);
  return v;
}

std::string tempPath(const char *name) {
  return ::testing::TempDir() + "/" + name + "." + std::to_string(::getpid());
}

/// Expected squared error of symmetric quantization of `x` with range t and
/// `levels` positive steps (exact rounding, not the histogram's model).
double quantError(const std::vector<float> &x, double t, int levels) {
  double step = t / levels, err = 0;
  for (float v : x) {
    double q = std::nearbyint(std::clamp<double>(v, -t, t) / step) * step;
    err += (v - q) * (v - q);
  }
  return err;
}

} // namespace

TEST(AbsHistogram, CountsEveryFiniteValueAndGrowsByMerging) {
  AbsHistogram h(16);
  float a[] = {0.0f, 0.5f, -1.0f, NAN, INFINITY};
  h.add(a, 5);
  EXPECT_EQ(h.total(), 3u); // NaN and inf are not counted
  // The smallest power of two above the largest magnitude.
  double firstLimit = h.limit();
  EXPECT_EQ(firstLimit, 2.0);
  uint64_t sum = 0;
  for (uint64_t c : h.counts())
    sum += c;
  EXPECT_EQ(sum, 3u);
  // A value 5x larger: the limit doubles until it exceeds it, nothing is
  // lost, and the old values land in the bins they must.
  float b[] = {5.0f};
  h.add(b, 1);
  EXPECT_EQ(h.limit(), 8.0);
  sum = 0;
  for (uint64_t c : h.counts())
    sum += c;
  EXPECT_EQ(sum, 4u);
  // Bins of 0.5: 0 in bin 0, 0.5 in bin 1 (bins 4 and 5 of width 0.125
  // merged twice), 1.0 in bin 2 (bin 8 of the first limit, 8 >> 2), 5 in
  // bin 10.
  EXPECT_EQ(h.counts()[0], 1u);
  EXPECT_EQ(h.counts()[1], 1u);
  EXPECT_EQ(h.counts()[2], 1u);
  EXPECT_EQ(h.counts()[10], 1u);
}

TEST(AbsHistogram, PartsMergeIntoTheHistogramOfTheWhole) {
  // Calibration split across processes: each part's histogram, rescaled to
  // the largest limit and summed, is the histogram of all the data in any
  // order, bin for bin.
  std::vector<float> x = gaussian(30000, 1.0f, 7);
  x[123] = 40.0f;
  for (size_t i = 0; i < 500; ++i)
    x[1000 + i] = 0.0f;
  AbsHistogram whole(64);
  for (size_t i = x.size(); i > 0; i -= 1000)
    whole.add(x.data() + i - 1000, 1000);
  // Three parts: samples i mod 3, the third only zeros.
  std::vector<AbsHistogram> parts(3, AbsHistogram(64));
  for (size_t i = 0; i < 30; ++i)
    parts[i % 2].add(x.data() + 1000 * i, 1000);
  std::vector<float> zeros(10, 0.0f);
  parts[2].add(zeros.data(), zeros.size());
  double limit = 0;
  for (const AbsHistogram &p : parts)
    limit = std::max(limit, p.limit());
  std::vector<uint64_t> counts(64, 0);
  uint64_t pending = 0;
  for (AbsHistogram &p : parts) {
    p.rescaleTo(limit);
    for (size_t b = 0; b < counts.size(); ++b)
      counts[b] += p.counts()[b];
    pending += p.pendingZeros();
  }
  AbsHistogram merged(limit, counts, pending);
  merged.rescaleTo(merged.limit()); // a no-op
  EXPECT_EQ(merged.limit(), whole.limit());
  EXPECT_EQ(merged.limit(), 64.0);
  EXPECT_EQ(merged.total(), whole.total() + zeros.size());
  std::vector<uint64_t> expected = whole.counts();
  expected[0] += zeros.size();
  EXPECT_EQ(merged.counts(), expected);
}

TEST(AbsHistogram, ZerosBeforeTheFirstNonzeroValueAreKept) {
  AbsHistogram h(8);
  float z[] = {0.0f, -0.0f};
  h.add(z, 2);
  EXPECT_EQ(h.total(), 2u);
  EXPECT_EQ(h.limit(), 0.0);
  float one = 1.0f;
  h.add(&one, 1);
  EXPECT_EQ(h.counts()[0], 2u);
  EXPECT_EQ(h.total(), 3u);
}

TEST(RangeEstimators, UniformDataKeepsNearlyTheWholeRange) {
  std::vector<float> x(200000);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (float &v : x)
    v = dist(rng);
  TensorStats t("u", 1, false, false);
  t.observe(x.data(), x.size());
  t.finalize();
  EXPECT_NEAR(t.range(RangeMethod::MinMax), 1.0, 1e-4);
  EXPECT_NEAR(t.range(RangeMethod::Percentile, 99.0), 0.99, 5e-3);
  EXPECT_NEAR(t.range(RangeMethod::Percentile, 50.0), 0.5, 5e-3);
  // Nothing to gain from clipping a uniform distribution.
  EXPECT_GT(t.range(RangeMethod::MSE), 0.97);
  EXPECT_GT(t.range(RangeMethod::Entropy), 0.9);
}

TEST(RangeEstimators, OutliersAreClippedByPercentileAndEntropy) {
  // A Gaussian with two huge outliers: minmax keeps them, the percentile
  // and entropy estimators clip them. (MSE keeps most of the range here:
  // the squared clipping error of the outliers outweighs the rounding error
  // of 100000 values at int8; see the MSE tests.)
  std::vector<float> x = gaussian(100000, 1.0f, 2);
  x[10] = 60.0f;
  x[20] = -55.0f;
  TensorStats t("g", 1, false, false);
  t.observe(x.data(), x.size());
  t.finalize();
  double mm = t.range(RangeMethod::MinMax);
  double ent = t.range(RangeMethod::Entropy);
  double p = t.range(RangeMethod::Percentile, 99.99);
  EXPECT_NEAR(mm, 60.0, 1e-6);
  EXPECT_GT(ent, 2.5);
  EXPECT_LT(ent, 12.0);
  EXPECT_GT(p, 3.0);
  EXPECT_LT(p, 5.0);
}

/// MSE's threshold against a brute-force search of the real quantization
/// error, for `bits`-bit codes.
static void checkMSENearOptimal(const std::vector<float> &x, int bits,
                                double maxRatioOfMax) {
  TensorStats t("m", 1, false, false);
  t.observe(x.data(), x.size());
  t.finalize();
  int levels = (1 << (bits - 1)) - 1;
  double mm = t.range(RangeMethod::MinMax);
  double mse = t.range(RangeMethod::MSE, 0, bits);
  double best = 1e300;
  for (double th = mm / 200; th <= mm; th += mm / 200)
    best = std::min(best, quantError(x, th, levels));
  EXPECT_LE(quantError(x, mse, levels), 1.05 * best) << "bits " << bits;
  EXPECT_LE(quantError(x, mse, levels), quantError(x, mm, levels));
  EXPECT_LT(mse, maxRatioOfMax * mm) << "bits " << bits;
}

TEST(RangeEstimators, MSEFindsTheLeastErrorThreshold) {
  std::vector<float> g = gaussian(50000, 1.0f, 7);
  checkMSENearOptimal(g, 4, 0.8); // 4 bits: clipping pays off a lot
  checkMSENearOptimal(g, 8, 1.0);
  std::vector<float> outliers = gaussian(50000, 1.0f, 8);
  outliers[5] = 60.0f;
  outliers[6] = -55.0f;
  checkMSENearOptimal(outliers, 8, 1.0);
  checkMSENearOptimal(outliers, 4, 0.5);
  // Laplace-like heavy tails.
  std::vector<float> lap(50000);
  std::mt19937 rng(9);
  std::exponential_distribution<float> e(1.0f);
  for (size_t i = 0; i < lap.size(); ++i)
    lap[i] = (i % 2 ? 1.0f : -1.0f) * e(rng);
  checkMSENearOptimal(lap, 8, 1.0);
  checkMSENearOptimal(lap, 4, 0.6);
}

TEST(RangeEstimators, EmptyAndAllZeroTensorsGiveZero) {
  TensorStats t("z", 4, true, true);
  EXPECT_EQ(t.range(RangeMethod::MSE), 0.0);
  std::vector<float> z(16, 0.0f);
  t.observe(z.data(), z.size());
  t.finalize();
  for (RangeMethod m : {RangeMethod::MinMax, RangeMethod::Percentile,
                        RangeMethod::MSE, RangeMethod::Entropy})
    EXPECT_EQ(t.range(m), 0.0) << rangeMethodName(m);
}

TEST(RangeEstimators, ParseNames) {
  for (RangeMethod m : {RangeMethod::MinMax, RangeMethod::Percentile,
                        RangeMethod::MSE, RangeMethod::Entropy})
    EXPECT_EQ(parseRangeMethod(rangeMethodName(m)), m);
  EXPECT_FALSE(parseRangeMethod("kl").has_value());
}

TEST(TensorStats, PerChannelStatisticsAndGramAreExact) {
  const int64_t k = 5;
  std::vector<float> x = gaussian(7 * k, 2.0f, 3);
  x[3] = NAN; // skipped everywhere (zero in the Gram matrix)
  TensorStats t("x", k, true, true);
  // In two pieces, as two samples would come.
  t.observe(x.data(), 3 * k);
  t.observe(x.data() + 3 * k, 4 * k);
  t.finalize();
  EXPECT_EQ(t.rows, 7u);
  EXPECT_EQ(t.count, 7u * k - 1);
  EXPECT_EQ(t.nonFinite, 1u);
  for (int64_t j = 0; j < k; ++j) {
    float amax = 0;
    double sum = 0;
    for (int r = 0; r < 7; ++r) {
      float v = x[r * k + j];
      if (std::isnan(v))
        continue;
      amax = std::max(amax, std::fabs(v));
      sum += std::fabs(v);
    }
    EXPECT_EQ(t.channelAbsMax[j], amax);
    EXPECT_NEAR(t.channelMeanAbs(j), sum / 7, 1e-12);
    for (int64_t i = 0; i < k; ++i) {
      double g = 0;
      for (int r = 0; r < 7; ++r) {
        float a = x[r * k + i], b = x[r * k + j];
        if (!std::isnan(a) && !std::isnan(b))
          g += double(a) * double(b);
      }
      EXPECT_NEAR(t.gram[i * k + j], g, 1e-9) << i << "," << j;
    }
  }
}

TEST(TensorStats, GramOfManyRowsMatchesTheDirectSum) {
  const int64_t k = 33, rows = 100; // more rows than one accumulation block
  std::vector<float> x = gaussian(rows * k, 1.0f, 4);
  TensorStats t("x", k, false, true);
  t.observe(x.data(), x.size());
  t.finalize();
  for (int64_t i = 0; i < k; i += 7)
    for (int64_t j = 0; j < k; j += 5) {
      double g = 0;
      for (int64_t r = 0; r < rows; ++r)
        g += double(x[r * k + i]) * double(x[r * k + j]);
      EXPECT_NEAR(t.gram[i * k + j], g, 1e-9);
    }
}

TEST(TensorStats, ThreadedGramEqualsTheSequentialSumExactly) {
  // Large enough for the accumulation to run on several threads (each row
  // of the triangle summed by one thread, rows in order): every element
  // equals the sequential sum bit for bit, whatever the thread count.
  const int64_t k = 300, rows = 400; // 200 rows x 300^2 per call: threaded
  std::vector<float> x = gaussian(rows * k, 1.0f, 9);
  x[5 * k + 7] = 0.0f; // zeros are skipped: still the same sums
  TensorStats t("x", k, false, true);
  t.observe(x.data(), x.size() / 2);
  t.observe(x.data() + x.size() / 2, x.size() / 2);
  t.finalize();
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = i; j < k; ++j) {
      double g = 0;
      for (int64_t r = 0; r < rows; ++r) {
        double xi = x[r * k + i];
        if (xi != 0)
          g += xi * double(x[r * k + j]);
      }
      ASSERT_EQ(t.gram[i * k + j], g) << i << ", " << j;
      ASSERT_EQ(t.gram[j * k + i], g);
    }
}

/// The sequential sum over the rows, in order, of x[r][i] * x[r][j].
static double sequentialGram(const std::vector<float> &x, int64_t k,
                             int64_t rows, int64_t i, int64_t j) {
  double g = 0;
  for (int64_t r = 0; r < rows; ++r)
    g += double(x[r * k + i]) * double(x[r * k + j]);
  return g;
}

TEST(TensorStats, TiledGramEqualsTheSequentialSumAtEveryEdge) {
  // Channel counts that are not multiples of the kernel's tile (4 x 8),
  // more rows per call than one pass (256), on one thread and on several:
  // every element is the sequential sum bit for bit, with the vector
  // kernel and with the generic one (QUENCH_GRAM_GENERIC).
  for (bool generic : {false, true}) {
    if (generic)
      setenv("QUENCH_GRAM_GENERIC", "1", 1);
    for (int64_t k : {1, 5, 13, 131, 301}) {
      const int64_t rows = 600;
      std::vector<float> x = gaussian(rows * k, 1.0f, 11 + k);
      x[3 * k + k / 2] = std::numeric_limits<float>::infinity(); // counts 0
      TensorStats t("x", k, false, true);
      t.observe(x.data(), 100 * k);                 // 100 rows
      t.observe(x.data() + 100 * k, 500 * k);       // 500: two passes
      t.finalize();
      x[3 * k + k / 2] = 0.0f;
      for (int64_t i = 0; i < k; ++i)
        for (int64_t j = i; j < k; ++j) {
          double g = sequentialGram(x, k, rows, i, j);
          ASSERT_EQ(t.gram[i * k + j], g)
              << "k " << k << " (" << i << ", " << j << ")"
              << (generic ? " generic" : "");
          ASSERT_EQ(t.gram[j * k + i], g);
        }
    }
    if (generic)
      unsetenv("QUENCH_GRAM_GENERIC");
  }
}

TEST(Cache, RoundTripsEverything) {
  CalibrationStats s;
  s.modelChecksum = "sha256:abc";
  s.dataChecksum = "fnv1a64:def";
  s.samples = 3;
  std::vector<float> x = gaussian(40, 1.0f, 5);
  TensorStats a("l0:input", 4, true, true);
  a.layers = {"l0", "l1"};
  a.observe(x.data(), x.size());
  a.finalize();
  TensorStats b("l2:input", 8, false, false);
  b.layers = {"l2"};
  b.observe(x.data(), x.size());
  b.finalize();
  s.tensors = {a, b};
  std::string path = tempPath("cache-roundtrip");
  ASSERT_EQ(writeCache(path, s), "");
  CalibrationStats r;
  ASSERT_EQ(readCache(path, r), "");
  std::remove(path.c_str());
  EXPECT_EQ(r.modelChecksum, s.modelChecksum);
  EXPECT_EQ(r.dataChecksum, s.dataChecksum);
  EXPECT_EQ(r.samples, 3u);
  ASSERT_EQ(r.tensors.size(), 2u);
  const TensorStats *ra = r.findLayerInput("l1");
  ASSERT_NE(ra, nullptr);
  EXPECT_EQ(ra->name, "l0:input");
  EXPECT_EQ(ra->rows, a.rows);
  EXPECT_EQ(ra->min, a.min);
  EXPECT_EQ(ra->max, a.max);
  EXPECT_EQ(ra->hist.counts(), a.hist.counts());
  EXPECT_EQ(ra->hist.limit(), a.hist.limit());
  EXPECT_EQ(ra->channelAbsMax, a.channelAbsMax);
  EXPECT_EQ(ra->gram, a.gram);
  for (RangeMethod m : {RangeMethod::MinMax, RangeMethod::Percentile,
                        RangeMethod::MSE, RangeMethod::Entropy})
    EXPECT_EQ(ra->range(m), a.range(m));
  EXPECT_TRUE(r.find("l2:input")->gram.empty());
  EXPECT_EQ(r.findLayerInput("nope"), nullptr);
}

TEST(Cache, RejectsBadFilesWithAClearMessage) {
  CalibrationStats s;
  s.modelChecksum = "m";
  std::vector<float> x = gaussian(8, 1.0f, 6);
  TensorStats a("t", 2, true, true);
  a.observe(x.data(), x.size());
  a.finalize();
  s.tensors = {a};
  std::string path = tempPath("cache-bad");
  ASSERT_EQ(writeCache(path, s), "");
  std::string bytes;
  {
    std::ifstream is(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(is), {});
  }
  auto writeBytes = [&](const std::string &b) {
    std::ofstream os(path, std::ios::binary | std::ios::trunc);
    os << b;
  };
  CalibrationStats r;
  // Truncated.
  writeBytes(bytes.substr(0, bytes.size() - 9));
  EXPECT_NE(readCache(path, r).find("malformed"), std::string::npos);
  // One byte flipped in the middle.
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x40;
  writeBytes(flipped);
  EXPECT_NE(readCache(path, r).find("checksum"), std::string::npos);
  // Another version.
  std::string v2 = bytes;
  v2[8] = 2;
  writeBytes(v2);
  EXPECT_NE(readCache(path, r).find("version 2"), std::string::npos);
  // Not a cache at all.
  writeBytes("hello");
  EXPECT_NE(readCache(path, r).find("not a Quench calibration cache"),
            std::string::npos);
  std::remove(path.c_str());
  EXPECT_NE(readCache(path, r).find("cannot read"), std::string::npos);
  // A failed read leaves the output alone.
  EXPECT_TRUE(r.tensors.empty());
}
