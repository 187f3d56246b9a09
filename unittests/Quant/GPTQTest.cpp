// Numerics of GPTQ weight quantization (lib/Quant/GPTQ.cpp): output error
// against round to nearest on correlated inputs, validity of the packed
// result, the identity-Hessian case, dead inputs, bad Gram matrices, and a
// naive unblocked re-derivation of the algorithm from the paper.
#include "quench/Quant/GPTQ.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

using namespace quench::quant;

namespace {

/// A layer's weight and calibration input.
struct Layer {
  int64_t n = 0, k = 0, m = 0;
  std::vector<float> w;  ///< [n, k]
  std::vector<float> x;  ///< [m, k]
  std::vector<double> h; ///< X^T X, [k, k]
};

/// Random weights and inputs with correlated features of different scales:
/// X = (Z A) diag(s), Z and A Gaussian, s log-normal (like activations).
Layer makeLayer(int64_t n, int64_t k, int64_t m, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Layer l;
  l.n = n;
  l.k = k;
  l.m = m;
  l.w.resize(n * k);
  for (float &v : l.w)
    v = nd(gen);
  // A = I + B / sqrt(k) keeps features correlated but not degenerate.
  std::vector<float> a(k * k), z(m * k), s(k);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j)
      a[i * k + j] = (i == j ? 1.0f : 0.0f) +
                     2.0f * nd(gen) / std::sqrt(static_cast<float>(k));
  for (float &v : z)
    v = nd(gen);
  for (float &v : s)
    v = std::exp(0.5f * nd(gen));
  l.x.assign(m * k, 0.0f);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < k; ++j) {
      double acc = 0.0;
      for (int64_t t = 0; t < k; ++t)
        acc += z[r * k + t] * a[t * k + j];
      l.x[r * k + j] = static_cast<float>(acc) * s[j];
    }
  l.h.assign(k * k, 0.0);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j)
        l.h[i * k + j] += double(l.x[r * k + i]) * double(l.x[r * k + j]);
  return l;
}

/// ||(W - Q) X^T||^2, straight from X.
double outputError(const Layer &l, const QuantizedMatrix &q) {
  double e = 0.0;
  for (int64_t r = 0; r < l.n; ++r)
    for (int64_t t = 0; t < l.m; ++t) {
      double y = 0.0;
      for (int64_t c = 0; c < l.k; ++c)
        y += (double(l.w[r * l.k + c]) - double(dequantizeAt(q, r, c))) *
             double(l.x[t * l.k + c]);
      e += y * y;
    }
  return e;
}

/// Checks the packed matrix: shapes, bytes that re-pack identically (no
/// stray bits), padding codes equal to the zero point, scales and zero
/// points equal to the per-group parameters, and dequantizeAt equal to
/// (code - zero point) * scale.
void expectValid(const QuantizedMatrix &q, int64_t rows, int64_t cols,
                 int bits, bool symmetric) {
  ASSERT_EQ(q.rows, rows);
  ASSERT_EQ(q.cols, cols);
  ASSERT_EQ(q.bits, bits);
  ASSERT_EQ(q.groups, (cols + q.groupSize - 1) / q.groupSize);
  const int64_t groupBytes = q.groupSize * bits / 8;
  ASSERT_EQ(int64_t(q.packed.size()), rows * q.groups * groupBytes);
  ASSERT_EQ(int64_t(q.params.size()), rows * q.groups);
  const int64_t zpBytes = (q.groups * bits + 7) / 8;
  ASSERT_EQ(int64_t(q.zeroPoints.size()), symmetric ? 0 : rows * zpBytes);
  std::vector<uint8_t> codes(q.groupSize), repacked(groupBytes),
      zps(q.groups);
  for (int64_t r = 0; r < rows; ++r) {
    if (!symmetric)
      unpackCodes(&q.zeroPoints[r * zpBytes], q.groups, bits, zps.data());
    for (int64_t g = 0; g < q.groups; ++g) {
      const uint8_t *bytes = &q.packed[(r * q.groups + g) * groupBytes];
      const GroupParams &p = q.params[r * q.groups + g];
      unpackCodes(bytes, q.groupSize, bits, codes.data());
      packCodes(codes.data(), q.groupSize, bits, repacked.data());
      ASSERT_TRUE(std::equal(repacked.begin(), repacked.end(), bytes));
      ASSERT_EQ(q.scales[r * q.groups + g], p.scale);
      ASSERT_GE(p.scale, 0.0f); // 0: an all-zero group, codes = zero point
      ASSERT_GE(p.zeroPoint, 0);
      ASSERT_LT(p.zeroPoint, 1 << bits);
      if (symmetric)
        ASSERT_EQ(p.zeroPoint, 1 << (bits - 1));
      else
        ASSERT_EQ(zps[g], p.zeroPoint);
      for (int64_t i = 0; i < q.groupSize; ++i) {
        int64_t c = g * q.groupSize + i;
        if (c >= cols) {
          ASSERT_EQ(codes[i], p.zeroPoint) << "padding";
          continue;
        }
        ASSERT_EQ(dequantizeAt(q, r, c), dequantizeValue(codes[i], p));
        if (p.scale == 0.0f)
          ASSERT_EQ(codes[i], p.zeroPoint);
      }
    }
  }
}

GPTQResult runGPTQ(const Layer &l, int bits, int64_t groupSize,
                   bool symmetric, const GPTQOptions &opts = {}) {
  GPTQResult res;
  std::string error;
  bool ok = quantizeMatrixGPTQ(l.w.data(), l.n, l.k, l.h.data(), bits,
                               groupSize, symmetric, ScaleType::F16, opts,
                               res, error);
  EXPECT_TRUE(ok) << error;
  return res;
}

struct Config {
  int bits;
  int64_t groupSize;
  bool symmetric;
  bool actOrder;
  double maxRatio; ///< GPTQ error / RTN error must not exceed this
};

std::string name(const Config &c) {
  return "int" + std::to_string(c.bits) +
         (c.groupSize ? " g" + std::to_string(c.groupSize) : " per-row") +
         (c.symmetric ? " sym" : " asym") + (c.actOrder ? " act-order" : "");
}

// GPTQ's output error is well below RTN's on correlated inputs, for every
// bit width, per row and in groups, symmetric and asymmetric, with and
// without act order; its reported loss is the directly measured output
// error, and the packed result is valid.
TEST(GPTQ, BeatsRTNOnCorrelatedInputs) {
  // 40 columns: per-row groups of 40, and a padded last group for g16.
  Layer l = makeLayer(24, 40, 256, 7);
  // Measured ratios: 0.30 .. 0.54 for 8..3 bits, 0.55 .. 0.67 for 2 bits.
  const Config configs[] = {
      {8, 0, true, false, 0.65},  {8, 0, false, false, 0.65},
      {8, 16, true, false, 0.65}, {8, 16, true, true, 0.65},
      {4, 0, true, false, 0.65},  {4, 0, false, true, 0.65},
      {4, 16, true, false, 0.65}, {4, 16, false, false, 0.65},
      {4, 16, true, true, 0.65},  {4, 16, false, true, 0.65},
      {3, 0, true, false, 0.65},  {3, 8, false, true, 0.65},
      {2, 0, false, false, 0.8},  {2, 16, true, true, 0.8},
      {2, 16, false, false, 0.8},
  };
  for (const Config &c : configs) {
    SCOPED_TRACE(name(c));
    GPTQOptions opts;
    opts.actOrder = c.actOrder;
    opts.blockSize = 16; // several lazy blocks, one not full
    GPTQResult g = runGPTQ(l, c.bits, c.groupSize, c.symmetric, opts);
    expectValid(g.matrix, l.n, l.k, c.bits, c.symmetric);
    QuantizedMatrix rtn = quantizeMatrixRTN(l.w.data(), l.n, l.k, c.bits,
                                            c.groupSize, c.symmetric,
                                            ScaleType::F16);
    double eg = outputError(l, g.matrix), er = outputError(l, rtn);
    EXPECT_NEAR(g.loss, eg, 1e-6 * eg);
    EXPECT_NEAR(quantizationLoss(l.w.data(), rtn, l.h.data()), er, 1e-6 * er);
    EXPECT_LE(eg, c.maxRatio * er) << "GPTQ " << eg << " RTN " << er;
    EXPECT_EQ(g.deadInputs, 0);
    EXPECT_DOUBLE_EQ(g.dampening, 0.01);
  }
}

// With H = identity (or any diagonal H) no error is propagated: GPTQ's
// codes, scales and zero points are exactly RTN's, in any order.
TEST(GPTQ, DiagonalHessianEqualsRTN) {
  Layer l = makeLayer(9, 48, 4, 3);
  for (bool diag : {false, true}) {
    std::vector<double> h(l.k * l.k, 0.0);
    for (int64_t i = 0; i < l.k; ++i)
      h[i * l.k + i] = diag ? 0.5 + double(i * 7 % 11) : 1.0;
    l.h = h;
    for (int bits : {8, 4, 3, 2})
      for (int64_t gs : {int64_t(0), int64_t(16)})
        for (bool sym : {true, false})
          for (bool act : {false, true}) {
            SCOPED_TRACE(std::to_string(bits) + " g" + std::to_string(gs) +
                         (sym ? " sym" : " asym") + (act ? " act" : "") +
                         (diag ? " diag" : " identity"));
            GPTQOptions opts;
            opts.actOrder = act;
            opts.blockSize = 32;
            GPTQResult g = runGPTQ(l, bits, gs, sym, opts);
            QuantizedMatrix r = quantizeMatrixRTN(l.w.data(), l.n, l.k, bits,
                                                  gs, sym, ScaleType::F16);
            EXPECT_EQ(g.matrix.packed, r.packed);
            EXPECT_EQ(g.matrix.scales, r.scales);
            EXPECT_EQ(g.matrix.zeroPoints, r.zeroPoints);
            EXPECT_EQ(g.matrix.groupSize, r.groupSize);
          }
  }
}

// The lazy block size only changes the order of floating-point operations.
TEST(GPTQ, BlockSizeDoesNotChangeTheResult) {
  Layer l = makeLayer(16, 64, 128, 11);
  for (bool act : {false, true}) {
    GPTQOptions one;
    one.blockSize = 1;
    one.actOrder = act;
    GPTQResult ref = runGPTQ(l, 4, 16, false, one);
    for (int64_t bs : {5, 16, 64, 1000}) {
      GPTQOptions o = one;
      o.blockSize = bs;
      GPTQResult g = runGPTQ(l, 4, 16, false, o);
      int64_t same = 0;
      for (int64_t r = 0; r < l.n; ++r)
        for (int64_t c = 0; c < l.k; ++c)
          same += dequantizeAt(g.matrix, r, c) ==
                  dequantizeAt(ref.matrix, r, c);
      EXPECT_GE(same, l.n * l.k * 995 / 1000) << "block " << bs;
      EXPECT_NEAR(g.loss, ref.loss, 1e-2 * ref.loss) << "block " << bs;
    }
  }
}

/// GPTQ re-derived naively from the paper's Section 3 (OBQ with a fixed
/// order): the explicit inverse Hessian, updated after each column by
/// Gaussian elimination of that column, instead of a Cholesky factor and
/// lazy blocks. Natural order; group parameters from the current weights
/// when a group starts.
QuantizedMatrix naiveGPTQ(const Layer &l, int bits, int64_t groupSize,
                          bool symmetric, double damp) {
  const int64_t n = l.k;
  std::vector<double> h = l.h;
  double mean = 0.0;
  for (int64_t i = 0; i < n; ++i)
    mean += h[i * n + i] / double(n);
  for (int64_t i = 0; i < n; ++i)
    h[i * n + i] += damp * mean;
  // Gauss-Jordan inverse.
  std::vector<double> a = h, inv(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i)
    inv[i * n + i] = 1.0;
  for (int64_t c = 0; c < n; ++c) {
    double p = a[c * n + c];
    for (int64_t j = 0; j < n; ++j) {
      a[c * n + j] /= p;
      inv[c * n + j] /= p;
    }
    for (int64_t i = 0; i < n; ++i)
      if (i != c) {
        double f = a[i * n + c];
        for (int64_t j = 0; j < n; ++j) {
          a[i * n + j] -= f * a[c * n + j];
          inv[i * n + j] -= f * inv[c * n + j];
        }
      }
  }
  std::vector<double> w(l.w.begin(), l.w.end());
  const int64_t gs = storedGroupSize(groupSize, n);
  const int64_t groups = (n + gs - 1) / gs;
  std::vector<uint8_t> codes(l.n * n);
  std::vector<GroupParams> params(l.n * groups);
  std::vector<float> vals(gs);
  for (int64_t c = 0; c < n; ++c) {
    int64_t g = c / gs;
    if (c % gs == 0)
      for (int64_t r = 0; r < l.n; ++r) {
        int64_t len = std::min(gs, n - c);
        for (int64_t t = 0; t < len; ++t)
          vals[t] = float(w[r * n + c + t]);
        params[r * groups + g] =
            chooseGroupParams(vals.data(), len, bits, symmetric,
                              ScaleType::F16);
      }
    double d = inv[c * n + c];
    for (int64_t r = 0; r < l.n; ++r) {
      const GroupParams &p = params[r * groups + g];
      uint8_t q = quantizeValue(float(w[r * n + c]), p, bits);
      codes[r * n + c] = q;
      double e = (w[r * n + c] - double(dequantizeValue(q, p))) / d;
      for (int64_t j = c + 1; j < n; ++j)
        w[r * n + j] -= e * inv[c * n + j];
    }
    // Remove column c from the inverse Hessian (the remaining columns'
    // inverse Hessian): Hinv -= Hinv[:, c] Hinv[c, :] / Hinv[c, c].
    std::vector<double> rowc(inv.begin() + c * n, inv.begin() + (c + 1) * n);
    for (int64_t i = c + 1; i < n; ++i) {
      double f = inv[i * n + c] / d;
      for (int64_t j = c + 1; j < n; ++j)
        inv[i * n + j] -= f * rowc[j];
    }
  }
  return packQuantizedMatrix(codes.data(), params.data(), l.n, n, bits,
                             groupSize, symmetric);
}

// The Cholesky formulation with lazy blocks reproduces the explicit
// sequential algorithm.
TEST(GPTQ, MatchesNaiveSequentialGPTQ) {
  Layer l = makeLayer(12, 32, 96, 5);
  for (int bits : {8, 4, 2})
    for (int64_t gs : {int64_t(0), int64_t(8)})
      for (bool sym : {true, false}) {
        SCOPED_TRACE(std::to_string(bits) + " g" + std::to_string(gs) +
                     (sym ? " sym" : " asym"));
        GPTQOptions o;
        o.blockSize = 8;
        GPTQResult g = runGPTQ(l, bits, gs, sym, o);
        QuantizedMatrix ref = naiveGPTQ(l, bits, gs, sym, 0.01);
        int64_t same = 0;
        for (int64_t r = 0; r < l.n; ++r)
          for (int64_t c = 0; c < l.k; ++c)
            same += dequantizeAt(g.matrix, r, c) == dequantizeAt(ref, r, c);
        EXPECT_GE(same, l.n * l.k * 99 / 100);
        double lr = quantizationLoss(l.w.data(), ref, l.h.data());
        EXPECT_NEAR(g.loss, lr, 2e-2 * lr);
      }
}

// Wider than the blocks of the Cholesky factorization (64), the triangular
// inverse (128) and the update's column chunks (256): the blocked kernels
// still reproduce the explicit sequential algorithm.
TEST(GPTQ, BlockedKernelsMatchNaiveGPTQ) {
  Layer l = makeLayer(10, 300, 600, 17);
  GPTQOptions o;
  o.blockSize = 32;
  o.threads = 2;
  GPTQResult g = runGPTQ(l, 4, 0, true, o);
  QuantizedMatrix ref = naiveGPTQ(l, 4, 0, true, 0.01);
  int64_t same = 0;
  for (int64_t r = 0; r < l.n; ++r)
    for (int64_t c = 0; c < l.k; ++c)
      same += dequantizeAt(g.matrix, r, c) == dequantizeAt(ref, r, c);
  EXPECT_GE(same, l.n * l.k * 99 / 100);
  double lr = quantizationLoss(l.w.data(), ref, l.h.data());
  EXPECT_NEAR(g.loss, lr, 2e-2 * lr);
}

// The thread count changes nothing, bit for bit: codes, scales, zero points
// and the loss, with and without act order and dead inputs, on a layer
// whose sizes are not multiples of any block size.
TEST(GPTQ, ThreadCountDoesNotChangeTheResult) {
  Layer l = makeLayer(37, 300, 400, 23);
  for (int64_t j = 0; j < l.k; ++j) // input 77 is dead
    l.h[77 * l.k + j] = l.h[j * l.k + 77] = 0.0;
  for (bool act : {false, true})
    for (bool sym : {true, false}) {
      SCOPED_TRACE(std::string(act ? "act-order" : "natural") +
                   (sym ? " sym" : " asym"));
      GPTQOptions o;
      o.actOrder = act;
      o.blockSize = 48;
      o.threads = 1;
      GPTQResult one = runGPTQ(l, 3, 0, sym, o);
      EXPECT_EQ(one.deadInputs, 1);
      for (unsigned t : {2u, 3u, 8u}) {
        o.threads = t;
        GPTQResult g = runGPTQ(l, 3, 0, sym, o);
        EXPECT_EQ(g.matrix.packed, one.matrix.packed) << t << " threads";
        EXPECT_EQ(g.matrix.scales, one.matrix.scales) << t << " threads";
        EXPECT_EQ(g.matrix.zeroPoints, one.matrix.zeroPoints)
            << t << " threads";
        EXPECT_EQ(g.loss, one.loss) << t << " threads";
      }
      EXPECT_EQ(quantizationLoss(l.w.data(), one.matrix, l.h.data(), 5),
                one.loss);
    }
  GPTQOptions noLoss;
  noLoss.computeLoss = false;
  EXPECT_EQ(runGPTQ(l, 4, 0, true, noLoss).loss, 0.0);
}

// Inputs that are always zero in calibration: H[k, k] = 0. Their weights
// become 0, the rest is still compensated.
TEST(GPTQ, DeadInputs) {
  Layer l = makeLayer(16, 32, 128, 9);
  const int64_t deadCols[] = {0, 5, 6, 31};
  for (int64_t c : deadCols)
    for (int64_t r = 0; r < l.m; ++r)
      l.x[r * l.k + c] = 0.0f;
  for (int64_t c : deadCols)
    for (int64_t j = 0; j < l.k; ++j)
      l.h[c * l.k + j] = l.h[j * l.k + c] = 0.0;
  for (bool act : {false, true}) {
    GPTQOptions o;
    o.actOrder = act;
    GPTQResult g = runGPTQ(l, 4, 8, true, o);
    EXPECT_EQ(g.deadInputs, 4);
    expectValid(g.matrix, l.n, l.k, 4, true);
    for (int64_t c : deadCols)
      for (int64_t r = 0; r < l.n; ++r)
        EXPECT_EQ(dequantizeAt(g.matrix, r, c), 0.0f);
    QuantizedMatrix rtn =
        quantizeMatrixRTN(l.w.data(), l.n, l.k, 4, 8, true, ScaleType::F16);
    double eg = outputError(l, g.matrix), er = outputError(l, rtn);
    EXPECT_TRUE(std::isfinite(g.loss));
    EXPECT_NEAR(g.loss, eg, 1e-6 * eg);
    EXPECT_LE(eg, 0.8 * er);
  }
  // Every input dead: H = 0. Everything quantizes to zero, loss 0.
  std::vector<double> zero(l.k * l.k, 0.0);
  GPTQResult g;
  std::string error;
  ASSERT_TRUE(quantizeMatrixGPTQ(l.w.data(), l.n, l.k, zero.data(), 4, 8,
                                 true, ScaleType::F16, {}, g, error))
      << error;
  EXPECT_EQ(g.deadInputs, l.k);
  EXPECT_EQ(g.loss, 0.0);
}

// Fewer calibration rows than inputs: H is singular (rank m < k); the
// dampening makes it invertible and GPTQ still helps on what was seen.
TEST(GPTQ, RankDeficientGram) {
  Layer l = makeLayer(8, 64, 16, 13);
  GPTQResult g = runGPTQ(l, 4, 32, true);
  QuantizedMatrix rtn =
      quantizeMatrixRTN(l.w.data(), l.n, l.k, 4, 32, true, ScaleType::F16);
  EXPECT_LE(outputError(l, g.matrix), 0.8 * outputError(l, rtn));
}

// Gram matrices that are not positive definite: an error, not a crash;
// more dampening fixes a slightly indefinite one.
TEST(GPTQ, NotPositiveDefinite) {
  const float w[4] = {0.5f, -1.0f, 0.25f, 2.0f}; // [2, 2]
  GPTQResult res;
  std::string error;
  auto run = [&](std::vector<double> h, GPTQOptions o = {}) {
    error.clear();
    res = GPTQResult();
    return quantizeMatrixGPTQ(w, 2, 2, h.data(), 8, 0, true, ScaleType::F16,
                              o, res, error);
  };
  // Eigenvalues 4 and -2: no reasonable dampening helps (the default
  // retries stop at 1x the mean diagonal).
  EXPECT_FALSE(run({1.0, 3.0, 3.0, 1.0}));
  EXPECT_NE(error.find("not positive definite"), std::string::npos) << error;
  EXPECT_EQ(res.matrix.rows, 0); // untouched
  // Negative diagonal.
  EXPECT_FALSE(run({-1.0, 0.0, 0.0, -2.0}));
  EXPECT_NE(error.find("not positive definite"), std::string::npos) << error;
  // Eigenvalues 2.05 and -0.05: dampening 0.01 fails, 0.1 works.
  ASSERT_TRUE(run({1.0, 1.05, 1.05, 1.0})) << error;
  EXPECT_DOUBLE_EQ(res.dampening, 0.1);
  GPTQOptions noRetry;
  noRetry.dampeningRetries = 0;
  EXPECT_FALSE(run({1.0, 1.05, 1.05, 1.0}, noRetry));
  EXPECT_NE(error.find("dampening 0.01"), std::string::npos) << error;
  // Non-finite inputs.
  EXPECT_FALSE(run({1.0, NAN, NAN, 1.0}));
  EXPECT_NE(error.find("not all finite"), std::string::npos) << error;
  const float bad[4] = {0.5f, INFINITY, 0.25f, 2.0f};
  std::vector<double> id = {1.0, 0.0, 0.0, 1.0};
  EXPECT_FALSE(quantizeMatrixGPTQ(bad, 2, 2, id.data(), 8, 0, true,
                                  ScaleType::F16, {}, res, error));
  EXPECT_NE(error.find("weights are not all finite"), std::string::npos);
  // Bad options.
  GPTQOptions badBlock;
  badBlock.blockSize = 0;
  EXPECT_FALSE(run(id, badBlock));
  EXPECT_NE(error.find("block size"), std::string::npos);
}

// A row of zeros stays zero through GPTQ (its rounding errors are 0, and
// rows do not exchange errors): every group of it gets scale 0, so the
// fused kernel gives exactly 0 there (RTN.h). With a diagonal H an
// all-zero group inside a nonzero row does too.
TEST(GPTQ, AllZeroGroupsGetScaleZero) {
  Layer l = makeLayer(6, 64, 128, 29);
  for (int64_t c = 0; c < l.k; ++c)
    l.w[4 * l.k + c] = 0.0f;
  for (bool act : {false, true}) {
    GPTQOptions o;
    o.actOrder = act;
    GPTQResult g = runGPTQ(l, 4, 16, false, o);
    expectValid(g.matrix, l.n, l.k, 4, false);
    for (int64_t gi = 0; gi < g.matrix.groups; ++gi)
      EXPECT_EQ(g.matrix.scales[4 * g.matrix.groups + gi], 0.0f);
    for (int64_t c = 0; c < l.k; ++c)
      EXPECT_EQ(dequantizeAt(g.matrix, 4, c), 0.0f);
  }
  Layer d = makeLayer(4, 32, 8, 31);
  d.h.assign(d.k * d.k, 0.0);
  for (int64_t i = 0; i < d.k; ++i)
    d.h[i * d.k + i] = 1.0 + double(i);
  for (int64_t c = 8; c < 16; ++c)
    d.w[2 * d.k + c] = 0.0f;
  GPTQResult g = runGPTQ(d, 4, 8, true);
  expectValid(g.matrix, d.n, d.k, 4, true);
  EXPECT_EQ(g.matrix.scales[2 * g.matrix.groups + 1], 0.0f);
  EXPECT_GT(g.matrix.scales[2 * g.matrix.groups + 0], 0.0f);
}

// Act order quantizes the most active inputs first; the groups stay the
// natural contiguous ones, so the result is in the same layout and every
// group's parameters are those the codes were chosen with.
TEST(GPTQ, ActOrderKeepsNaturalGroups) {
  Layer l = makeLayer(16, 64, 256, 21);
  GPTQOptions o;
  o.actOrder = true;
  o.blockSize = 16;
  GPTQResult g = runGPTQ(l, 4, 16, false, o);
  expectValid(g.matrix, l.n, l.k, 4, false);
  EXPECT_EQ(g.matrix.groupSize, 16);
  EXPECT_EQ(g.matrix.groups, 4);
  QuantizedMatrix rtn =
      quantizeMatrixRTN(l.w.data(), l.n, l.k, 4, 16, false, ScaleType::F16);
  EXPECT_LE(outputError(l, g.matrix), 0.8 * outputError(l, rtn));
}

} // namespace
