//===- HQQ.cpp - half-quadratic weight quantization -----------------------===//
//
// See HQQ.h. Every iterate is a stored (scale, zero point) pair: the codes
// of an iterate are RTN.h's quantizeValue with it, so the objective that is
// compared is the one of the weights the kernels compute with.
//
//===----------------------------------------------------------------------===//

#include "quench/Quant/HQQ.h"

#include "Parallel.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cmath>
#include <thread>
#include <vector>

using namespace quench::quant;

double quench::quant::lpError(const float *w, size_t n,
                              const GroupParams &params, int bits, float p) {
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    float q = dequantizeValue(quantizeValue(w[i], params, bits), params);
    double e = std::fabs(static_cast<double>(w[i]) - q);
    // Single precision powf: ~3x faster than double pow, and ample for
    // comparing candidates.
    sum += p == 2.0f ? e * e : std::pow(static_cast<float>(e), p);
  }
  return sum;
}

namespace {

/// The generalized soft-thresholding operator of the l_p norm (HQQ's
/// proximal step): sign(x) * max(|x| - |x|^(p-1) / beta, 0).
double shrinkLp(double x, double beta, double p) {
  double a = std::fabs(x);
  if (a == 0.0)
    return 0.0;
  double v =
      a - std::pow(static_cast<float>(a), static_cast<float>(p - 1.0)) / beta;
  return v > 0.0 ? std::copysign(v, x) : 0.0;
}

/// The least-squares scale of t ~ s * (q - z) for a fixed zero point, or 0
/// when there is none (all codes at the zero point, or a non-positive fit).
double fitScale(const std::vector<uint8_t> &q, const std::vector<double> &t,
                double z) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < q.size(); ++i) {
    double d = static_cast<double>(q[i]) - z;
    num += d * t[i];
    den += d * d;
  }
  return den > 0.0 && num > 0.0 ? num / den : 0.0;
}

} // namespace

GroupParams quench::quant::chooseGroupParamsHQQ(const float *w, size_t n,
                                                int bits, bool symmetric,
                                                ScaleType scaleType,
                                                const HQQOptions &options) {
  assert(bits >= 2 && bits <= 8);
  assert(options.lpNorm > 0.0f && options.lpNorm <= 2.0f);
  GroupParams rtn = chooseGroupParams(w, n, bits, symmetric, scaleType);
  if (rtn.scale == 0.0f || n == 0)
    return rtn; // an all-zero group: exact already
  const double levels = static_cast<double>((1 << bits) - 1);
  const double p = options.lpNorm;
  // Errors are measured in RTN steps (scale-free defaults).
  const double step = rtn.scale;
  std::vector<double> u(n), t(n);
  for (size_t i = 0; i < n; ++i)
    u[i] = static_cast<double>(w[i]) / step;
  std::vector<uint8_t> q(n);

  GroupParams best = rtn, cur = rtn;
  double bestError = lpError(w, n, rtn, bits, options.lpNorm);
  double beta = options.beta;
  int stale = 0;
  for (int it = 0; it < options.iterations; ++it) {
    // W_e = shrink(W - dequant); the target of the fit is W - W_e.
    for (size_t i = 0; i < n; ++i) {
      q[i] = quantizeValue(w[i], cur, bits);
      double r = static_cast<double>(dequantizeValue(q[i], cur)) / step;
      t[i] = u[i] - shrinkLp(u[i] - r, beta, p);
    }
    beta *= options.betaGrowth;
    double s = static_cast<double>(cur.scale) / step;
    double z = cur.zeroPoint;
    if (symmetric) {
      double fit = fitScale(q, t, z);
      if (fit > 0.0)
        s = fit;
    } else {
      double mq = 0.0, mt = 0.0;
      for (size_t i = 0; i < n; ++i) {
        mq += q[i];
        mt += t[i];
      }
      mq /= static_cast<double>(n);
      mt /= static_cast<double>(n);
      double cov = 0.0, var = 0.0;
      for (size_t i = 0; i < n; ++i) {
        cov += (q[i] - mq) * (t[i] - mt);
        var += (q[i] - mq) * (q[i] - mq);
      }
      if (options.optimizeScale && var > 0.0 && cov > 0.0) {
        // t ~ a q + c: s = a, z = -c / a.
        s = cov / var;
        z = (mq * s - mt) / s;
      } else {
        // The paper's update: z = mean(Q - (W - W_e) / s).
        z = mq - mt / s;
      }
      // Project onto the stored zero points, and refit the scale for it.
      z = std::clamp(std::nearbyint(z), 0.0, levels);
      if (options.optimizeScale) {
        double fit = fitScale(q, t, z);
        if (fit > 0.0)
          s = fit;
      }
    }
    GroupParams next;
    next.scale = storeScale(static_cast<float>(s * step), scaleType);
    next.zeroPoint = static_cast<int32_t>(z);
    double error = lpError(w, n, next, bits, options.lpNorm);
    if (error < bestError) {
      best = next;
      bestError = error;
      stale = 0;
    } else if (++stale >= options.patience) {
      break;
    }
    cur = next;
  }
  return best;
}

/// HQQ codes and parameters of row `r` (groups of `gs`).
static void quantizeRow(const float *w, int64_t r, int64_t cols, int64_t gs,
                        int64_t groups, int bits, bool symmetric,
                        ScaleType scaleType, const HQQOptions &options,
                        uint8_t *codes, GroupParams *params) {
  for (int64_t g = 0; g < groups; ++g) {
    int64_t c0 = g * gs;
    int64_t len = std::min(gs, cols - c0);
    const float *src = w + r * cols + c0;
    GroupParams p =
        chooseGroupParamsHQQ(src, len, bits, symmetric, scaleType, options);
    params[r * groups + g] = p;
    for (int64_t i = 0; i < len; ++i)
      codes[r * cols + c0 + i] = quantizeValue(src[i], p, bits);
  }
}

QuantizedMatrix quench::quant::quantizeMatrixHQQ(
    const float *w, int64_t rows, int64_t cols, int bits, int64_t groupSize,
    bool symmetric, ScaleType scaleType, const HQQOptions &options) {
  assert(bits >= 2 && bits <= 8 && rows > 0 && cols > 0);
  int64_t gs = storedGroupSize(groupSize, cols);
  int64_t groups = (cols + gs - 1) / gs;
  std::vector<uint8_t> codes(rows * cols);
  std::vector<GroupParams> params(rows * groups);
  // Rows are independent: handed out to the threads in chunks; each
  // group's result does not depend on which thread computes it.
  detail::parallelFor(options.threads, rows, /*grain=*/16,
                      [&](int64_t r0, int64_t r1) {
                        for (int64_t r = r0; r < r1; ++r)
                          quantizeRow(w, r, cols, gs, groups, bits, symmetric,
                                      scaleType, options, codes.data(),
                                      params.data());
                      });
  return packQuantizedMatrix(codes.data(), params.data(), rows, cols, bits,
                             groupSize, symmetric);
}
