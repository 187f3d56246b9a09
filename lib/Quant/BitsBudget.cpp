//===- BitsBudget.cpp - mixed precision under a bits budget ---------------===//

#include "quench/Quant/BitsBudget.h"

#include "Parallel.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cmath>
#include <limits>
#include <thread>

using namespace quench::quant;

int64_t quench::quant::storageBits(int64_t rows, int64_t cols, int bits,
                                   int64_t groupSize, bool symmetric,
                                   ScaleType scaleType) {
  int64_t gs = storedGroupSize(groupSize, cols);
  int64_t groups = (cols + gs - 1) / gs;
  int64_t scaleBits = scaleType == ScaleType::F16 ? 16 : 32;
  int64_t out = rows * groups * gs * bits + rows * groups * scaleBits;
  if (!symmetric)
    out += rows * ((groups * bits + 7) / 8) * 8;
  return out;
}

/// The row differences of quantizationError (the values of dequantizeAt,
/// a group's codes unpacked at once).
static auto errorRows(const float *w, const QuantizedMatrix &m) {
  return [w, &m](int64_t r, double *d) {
    std::vector<uint8_t> codes(m.groupSize);
    const int64_t groupBytes = m.groupSize * m.bits / 8;
    for (int64_t g = 0; g < m.groups; ++g) {
      unpackCodes(&m.packed[(r * m.groups + g) * groupBytes],
                  static_cast<size_t>(m.groupSize), m.bits, codes.data());
      const GroupParams &p = m.params[r * m.groups + g];
      const int64_t c0 = g * m.groupSize;
      for (int64_t c = c0; c < std::min(c0 + m.groupSize, m.cols); ++c)
        d[c] = static_cast<double>(w[r * m.cols + c]) -
               dequantizeValue(codes[c - c0], p);
    }
  };
}

/// The rows of outputEnergy.
static auto weightRows(const float *w, int64_t cols) {
  return [w, cols](int64_t r, double *d) {
    for (int64_t c = 0; c < cols; ++c)
      d[c] = static_cast<double>(w[r * cols + c]);
  };
}

double quench::quant::quantizationError(const float *w,
                                        const QuantizedMatrix &m,
                                        const GramFactor &gram,
                                        unsigned threads) {
  return gram.quadraticSum(m.rows, errorRows(w, m), threads);
}

double quench::quant::quantizationError(const float *w,
                                        const QuantizedMatrix &m,
                                        const double *gram, unsigned threads) {
  if (!gram)
    return detail::squaredSum(m.rows, m.cols, threads, errorRows(w, m));
  return quantizationError(w, m, GramFactor(gram, m.cols, threads), threads);
}

double quench::quant::outputEnergy(const float *w, int64_t rows, int64_t cols,
                                   const GramFactor &gram, unsigned threads) {
  return gram.quadraticSum(rows, weightRows(w, cols), threads);
}

double quench::quant::outputEnergy(const float *w, int64_t rows, int64_t cols,
                                   const double *gram, unsigned threads) {
  if (!gram)
    return detail::squaredSum(rows, cols, threads, weightRows(w, cols));
  return outputEnergy(w, rows, cols, GramFactor(gram, cols, threads), threads);
}

/// Spends what the rounding left: while some single layer's change of
/// candidate lowers the error and fits maxBits exactly, takes the one that
/// lowers it most; then gives back bits that lower no error.
static void improveExactly(const std::vector<BudgetLayer> &layers,
                           int64_t maxBits, std::vector<size_t> &choice) {
  int64_t used = 0;
  for (size_t l = 0; l < layers.size(); ++l)
    used += layers[l].bits[choice[l]];
  for (;;) {
    double gain = 0.0;
    size_t bestLayer = 0, bestCandidate = 0;
    for (size_t l = 0; l < layers.size(); ++l) {
      const BudgetLayer &layer = layers[l];
      for (size_t i = 0; i < layer.bits.size(); ++i) {
        double g = layer.error[choice[l]] - layer.error[i];
        if (g > gain &&
            used - layer.bits[choice[l]] + layer.bits[i] <= maxBits) {
          gain = g;
          bestLayer = l;
          bestCandidate = i;
        }
      }
    }
    if (gain <= 0.0)
      break;
    used += layers[bestLayer].bits[bestCandidate] -
            layers[bestLayer].bits[choice[bestLayer]];
    choice[bestLayer] = bestCandidate;
  }
  // Bits that buy nothing are not spent: each layer takes its cheapest
  // candidate of no larger error.
  for (size_t l = 0; l < layers.size(); ++l) {
    const BudgetLayer &layer = layers[l];
    for (size_t i = 0; i < layer.bits.size(); ++i)
      if (layer.error[i] <= layer.error[choice[l]] &&
          layer.bits[i] < layer.bits[choice[l]])
        choice[l] = i;
  }
}

bool quench::quant::allocateBudget(const std::vector<BudgetLayer> &layers,
                                   int64_t maxBits, std::vector<size_t> &choice,
                                   std::string &error, int64_t resolution) {
  assert(resolution > 0);
  choice.assign(layers.size(), 0);
  // The smallest candidates must fit (exactly, before any rounding).
  int64_t minBits = 0;
  for (const BudgetLayer &l : layers) {
    assert(!l.bits.empty() && l.bits.size() == l.error.size());
    minBits += *std::min_element(l.bits.begin(), l.bits.end());
  }
  if (minBits > maxBits) {
    error = "the smallest candidate schemes need " + std::to_string(minBits) +
            " bits, above the budget of " + std::to_string(maxBits);
    return false;
  }
  if (layers.empty())
    return true;
  // Costs in units of maxBits / resolution, rounded up: any choice whose
  // rounded cost fits `resolution` units fits maxBits.
  double unit = std::max(1.0, static_cast<double>(maxBits) /
                                  static_cast<double>(resolution));
  int64_t capacity =
      static_cast<int64_t>(std::floor(static_cast<double>(maxBits) / unit));
  auto units = [&](int64_t bits) {
    return static_cast<int64_t>(std::ceil(static_cast<double>(bits) / unit));
  };
  const double inf = std::numeric_limits<double>::infinity();
  size_t n = layers.size();
  // best[c]: least error of the layers so far within c units; pick[l][c]:
  // the candidate layer l takes there.
  std::vector<double> best(capacity + 1, 0.0), next(capacity + 1);
  std::vector<std::vector<int32_t>> pick(
      n, std::vector<int32_t>(capacity + 1, -1));
  for (size_t l = 0; l < n; ++l) {
    std::fill(next.begin(), next.end(), inf);
    const BudgetLayer &layer = layers[l];
    for (size_t i = 0; i < layer.bits.size(); ++i) {
      int64_t u = units(layer.bits[i]);
      for (int64_t c = u; c <= capacity; ++c) {
        double e = best[c - u] + layer.error[i];
        // Ties go to the first candidate (deterministic).
        if (e < next[c]) {
          next[c] = e;
          pick[l][c] = static_cast<int32_t>(i);
        }
      }
    }
    best.swap(next);
  }
  if (!(best[capacity] < inf)) {
    // Feasible exactly but not after rounding up: start from the smallest
    // candidates (they fit, checked above).
    for (size_t l = 0; l < n; ++l)
      choice[l] = static_cast<size_t>(
          std::min_element(layers[l].bits.begin(), layers[l].bits.end()) -
          layers[l].bits.begin());
    improveExactly(layers, maxBits, choice);
    return true;
  }
  int64_t c = capacity;
  for (size_t l = n; l-- > 0;) {
    int32_t i = pick[l][c];
    assert(i >= 0);
    choice[l] = static_cast<size_t>(i);
    c -= units(layers[l].bits[i]);
  }
  improveExactly(layers, maxBits, choice);
  return true;
}
