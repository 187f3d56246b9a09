//===- GPTQ.cpp - error-compensating weight quantization ------------------===//
//
// GPTQ as described in GPTQ.h, written from the paper's equations: the
// inverse-Hessian factor and the blocked column sweep are Hessian.h's
// (shared with SparseGPT); this file chooses each column's codes. Weights
// are kept in float and updated in place (columns permuted when act order
// is on), codes written back in the natural column order and packed by
// RTN.h's packQuantizedMatrix.
//
//===----------------------------------------------------------------------===//

#include "quench/Quant/GPTQ.h"

#include "Hessian.h"

#include <cassert>
#include <vector>

using namespace quench::quant;
using detail::resolveThreads;

bool quench::quant::quantizeMatrixGPTQ(const float *w, int64_t rows,
                                       int64_t cols, const double *gram,
                                       int bits, int64_t groupSize,
                                       bool symmetric, ScaleType scaleType,
                                       const GPTQOptions &options,
                                       GPTQResult &result, std::string &error) {
  assert(bits >= 2 && bits <= 8 && rows > 0 && cols > 0);
  if (!(options.dampening >= 0.0) || options.blockSize <= 0 ||
      options.dampeningRetries < 0) {
    error = "GPTQ options: dampening must be >= 0, the block size > 0 and "
            "the retry count >= 0";
    return false;
  }
  const unsigned threads = resolveThreads(options.threads);
  const int64_t n = cols;
  if (!detail::allFinite(w, size_t(rows) * cols)) {
    error = "GPTQ: the weights are not all finite";
    return false;
  }
  if (!detail::allFinite(gram, size_t(n) * n)) {
    error = "GPTQ: the Gram matrix is not all finite";
    return false;
  }
  detail::InverseHessian ih;
  if (!detail::prepareInverseHessian(
          gram, n, options.actOrder, options.dampening,
          options.dampeningRetries, threads, "GPTQ", ih, error))
    return false;
  const std::vector<int64_t> &perm = ih.perm, &pos = ih.pos;
  const double *u = ih.u.data();
  const uint8_t *keep = options.keepMask;

  // Weights in processing order; dead inputs' (and pruned) columns zeroed.
  std::vector<float> wp(size_t(rows) * n);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t p = 0; p < n; ++p) {
      const int64_t c = perm[p];
      wp[r * n + p] =
          ih.dead[c] || (keep && !keep[r * n + c]) ? 0.0f : w[r * n + c];
    }

  const int64_t gs = storedGroupSize(groupSize, cols);
  const int64_t groups = (cols + gs - 1) / gs;
  // The position at which each group's parameters are chosen: that of its
  // first column in processing order.
  std::vector<char> startsGroup(n, 0);
  {
    std::vector<char> seen(groups, 0);
    for (int64_t p = 0; p < n; ++p)
      if (!seen[perm[p] / gs])
        seen[perm[p] / gs] = startsGroup[p] = 1;
  }
  std::vector<GroupParams> params(size_t(rows) * groups);
  std::vector<uint8_t> codes(size_t(rows) * n);
  const int64_t block = std::min(options.blockSize, n);
  detail::sweepColumns(
      wp.data(), rows, n, u, block, threads,
      [](int64_t, float *, int64_t, int64_t) {},
      [&](int64_t r, float *wr, const double *e, int64_t col, int64_t i,
          int64_t i1, int64_t i2) -> float {
        const int64_t c = perm[col], g = c / gs;
        if (startsGroup[col]) {
          // The group's current weights: columns inside this block
          // already hold every update; later ones miss this block's
          // updates so far. Pruned weights count as the zeros they become.
          const int64_t c0 = g * gs, len = std::min(gs, cols - c0);
          thread_local std::vector<float> groupVals;
          groupVals.resize(len);
          for (int64_t t = 0; t < len; ++t) {
            double v =
                detail::currentValue(wr, e, u, n, pos[c0 + t], i, i1, i2);
            groupVals[t] =
                keep && !keep[r * n + c0 + t] ? 0.0f : static_cast<float>(v);
          }
          params[r * groups + g] = chooseGroupParams(
              groupVals.data(), len, bits, symmetric, scaleType);
        }
        const GroupParams &gp = params[r * groups + g];
        uint8_t q =
            quantizeValue(keep && !keep[r * n + c] ? 0.0f : wr[col], gp, bits);
        codes[r * n + c] = q;
        return dequantizeValue(q, gp);
      });

  result.matrix = packQuantizedMatrix(codes.data(), params.data(), rows, cols,
                                      bits, groupSize, symmetric);
  result.loss = options.computeLoss
                    ? quantizationLoss(w, result.matrix, gram, threads)
                    : 0.0;
  result.dampening = ih.dampening;
  result.deadInputs = ih.deadInputs;
  return true;
}

double quench::quant::quantizationLoss(const float *w, const QuantizedMatrix &q,
                                       const double *gram, unsigned threads) {
  const int64_t n = q.cols;
  return detail::outputLoss(
      q.rows, n, gram, threads, [&](int64_t r, double *d) {
        for (int64_t c = 0; c < n; ++c)
          d[c] = static_cast<double>(w[r * n + c]) -
                 static_cast<double>(dequantizeAt(q, r, c));
      });
}
