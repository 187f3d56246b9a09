//===- sparse_layer.cpp - pruning methods on one synthetic layer ----------===//
//
// Compares, on a [ROWS, COLS] layer with Gaussian weights and inputs with
// correlated features of different scales (X = Z A diag(s), CALIB rows),
// the output error tr(dW H dW^T) relative to the layer's output energy
// tr(W H W^T) of:
//   magnitude            magnitude mask, float
//   sparsegpt            SparseGPT, float
//   magnitude+rtn        magnitude mask, then RTN
//   magnitude+gptq       magnitude mask, then GPTQ with the mask fixed
//   sparsegpt+gptq       SparseGPT, then GPTQ with its mask fixed (what
//                        quench-compile --prune=sparsegpt --algo=gptq does)
//   joint                SparseGPT with joint quantization (lib/Quant only)
// for each pattern, at int4 g32 symmetric (docs/sparsity.md). Built by hand:
//
//   c++ -O2 -std=c++17 -Iinclude bench/sparse_layer.cpp lib/Quant/Sparse.cpp
//       lib/Quant/GPTQ.cpp lib/Quant/Hessian.cpp lib/Quant/RTN.cpp -lpthread
//       -o /tmp/sparse_layer
//   /tmp/sparse_layer [ROWS COLS CALIB SEED]
//
//===----------------------------------------------------------------------===//

#include "quench/Quant/GPTQ.h"
#include "quench/Quant/Sparse.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

using namespace quench::quant;

int main(int argc, char **argv) {
  const int64_t rows = argc > 1 ? std::atoll(argv[1]) : 256;
  const int64_t cols = argc > 2 ? std::atoll(argv[2]) : 512;
  const int64_t calib = argc > 3 ? std::atoll(argv[3]) : 2048;
  const unsigned seed = argc > 4 ? std::atoi(argv[4]) : 1;
  std::mt19937 gen(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<double> a(cols * cols), s(cols), h(cols * cols, 0.0);
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < cols; ++j)
      a[i * cols + j] =
          (i == j ? 1.0 : 0.0) + 2.0 * nd(gen) / std::sqrt(double(cols));
  for (double &v : s)
    v = std::exp(0.5 * nd(gen));
  std::vector<double> z(cols), x(cols);
  for (int64_t r = 0; r < calib; ++r) {
    for (double &v : z)
      v = nd(gen);
    for (int64_t j = 0; j < cols; ++j) {
      double acc = 0.0;
      for (int64_t t = 0; t < cols; ++t)
        acc += z[t] * a[t * cols + j];
      x[j] = acc * s[j];
    }
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j)
        h[i * cols + j] += x[i] * x[j];
  }
  std::vector<float> w(rows * cols), zero(rows * cols, 0.0f);
  for (float &v : w)
    v = static_cast<float>(nd(gen));
  const double energy =
      weightChangeLoss(w.data(), zero.data(), rows, cols, h.data());
  const int bits = 4;
  const int64_t group = 32;
  auto dequant = [&](const QuantizedMatrix &m) {
    std::vector<float> out(rows * cols);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        out[r * cols + c] = dequantizeAt(m, r, c);
    return out;
  };
  auto rel = [&](const std::vector<float> &p) {
    return weightChangeLoss(w.data(), p.data(), rows, cols, h.data()) / energy;
  };
  auto gptqMasked = [&](const std::vector<float> &pruned,
                        const std::vector<uint8_t> &mask) {
    GPTQOptions o;
    o.keepMask = mask.data();
    o.computeLoss = false;
    GPTQResult res;
    std::string error;
    if (!quantizeMatrixGPTQ(pruned.data(), rows, cols, h.data(), bits, group,
                            true, ScaleType::F16, o, res, error)) {
      std::fprintf(stderr, "%s\n", error.c_str());
      std::exit(1);
    }
    return dequant(res.matrix);
  };
  std::printf("layer %lld x %lld, %lld calibration rows, int4 g32 sym; "
              "output error / output energy\n",
              (long long)rows, (long long)cols, (long long)calib);
  std::printf("%-18s %11s %11s %14s %14s %14s %11s\n", "pattern", "magnitude",
              "sparsegpt", "magnitude+rtn", "magnitude+gptq", "sparsegpt+gptq",
              "joint");
  for (const char *text : {"unstructured:0.5", "2:4", "4:8"}) {
    SparsityPattern p;
    std::string error;
    parseSparsityPattern(text, p, error);
    std::vector<uint8_t> mask = selectMagnitudeMask(w.data(), rows, cols, p);
    std::vector<float> mag = w;
    applyMask(mag.data(), mask.data(), mag.size());
    SparseGPTOptions so;
    so.computeLoss = false;
    SparseGPTResult sg, joint;
    SparseQuantization q;
    q.bits = bits;
    q.groupSize = group;
    if (!pruneSparseGPT(w.data(), rows, cols, h.data(), p, nullptr, so, sg,
                        error) ||
        !pruneSparseGPT(w.data(), rows, cols, h.data(), p, &q, so, joint,
                        error)) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
    std::vector<float> rtn = dequant(quantizeMatrixRTN(
        mag.data(), rows, cols, bits, group, true, ScaleType::F16));
    std::printf("%-18s %11.4f %11.4f %14.4f %14.4f %14.4f %11.4f\n", text,
                rel(mag), rel(sg.weights), rel(rtn), rel(gptqMasked(mag, mask)),
                rel(gptqMasked(sg.weights, sg.mask)), rel(joint.weights));
  }
  return 0;
}
