//===- gptq_speed.cpp - time GPTQ on one synthetic layer ------------------===//
//
// Times lib/Quant's quantizeMatrixGPTQ on a [ROWS, COLS] layer with random
// Gaussian weights and a synthetic symmetric positive definite Gram matrix
// (correlated features of different scales: a Kac-Murdock-Szego matrix
// rho^|i-j| scaled per feature, plus a random rank-16 term), and prints the
// wall time (of the quantization as quench-quantize-weights runs it, without
// the loss, and of the loss tr(dW H dW^T) apart) and a checksum of the result (codes, scales, zero points, loss)
// so that runs with different thread counts can be compared bit for bit.
// Built by hand with the host C++ compiler (docs/benchmarks.md):
//
//   c++ -O3 -std=c++17 -Iinclude bench/gptq_speed.cpp lib/Quant/GPTQ.cpp
//       lib/Quant/Hessian.cpp lib/Quant/RTN.cpp -lpthread -o /tmp/gptq_speed
//   /tmp/gptq_speed ROWS COLS THREADS [BITS GROUP ACTORDER]
//
// THREADS 0 is the hardware concurrency. Compiled with -DGPTQ_NO_THREADS it
// builds against a lib/Quant without GPTQOptions::threads (the baseline).
//
//===----------------------------------------------------------------------===//

#include "quench/Quant/GPTQ.h"

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace quench::quant;

/// FNV-1a over bytes.
static uint64_t hashBytes(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = static_cast<const unsigned char *>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

int main(int argc, char **argv) {
  if (argc != 4 && argc != 7) {
    std::fprintf(stderr,
                 "usage: %s ROWS COLS THREADS [BITS GROUP ACTORDER]\n",
                 argv[0]);
    return 1;
  }
  long rows = std::atol(argv[1]), cols = std::atol(argv[2]);
  long threads = std::atol(argv[3]);
  int bits = argc == 7 ? std::atoi(argv[4]) : 4;
  long group = argc == 7 ? std::atol(argv[5]) : 128;
  bool actOrder = argc == 7 ? std::atoi(argv[6]) != 0 : true;
  if (rows <= 0 || cols <= 0 || threads < 0 || bits < 2 || bits > 8 ||
      group < 0 || (group * bits) % 8) {
    std::fprintf(stderr, "gptq_speed: bad arguments\n");
    return 1;
  }
  std::mt19937_64 gen(1234);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<float> w(size_t(rows) * cols);
  for (float &v : w)
    v = static_cast<float>(0.02 * nd(gen));
  std::vector<double> s(cols), lr(size_t(cols) * 16);
  for (double &v : s)
    v = std::exp(0.5 * nd(gen));
  for (double &v : lr)
    v = nd(gen);
  std::vector<double> h(size_t(cols) * cols);
  const double rho = 0.9;
  for (long i = 0; i < cols; ++i)
    for (long j = 0; j < cols; ++j) {
      double lowRank = 0.0;
      for (int t = 0; t < 16; ++t)
        lowRank += lr[i * 16 + t] * lr[j * 16 + t];
      h[size_t(i) * cols + j] =
          s[i] * s[j] * (std::pow(rho, std::abs(i - j)) + 0.05 * lowRank);
    }

  GPTQOptions opts;
  opts.actOrder = actOrder;
#ifndef GPTQ_NO_THREADS
  opts.threads = static_cast<unsigned>(threads);
  opts.computeLoss = false;
#endif
  GPTQResult res;
  std::string error;
  auto t0 = std::chrono::steady_clock::now();
  bool ok = quantizeMatrixGPTQ(w.data(), rows, cols, h.data(), bits, group,
                               /*symmetric=*/true, ScaleType::F16, opts, res,
                               error);
  auto t1 = std::chrono::steady_clock::now();
  if (!ok) {
    std::fprintf(stderr, "gptq_speed: %s\n", error.c_str());
    return 1;
  }
  const QuantizedMatrix &m = res.matrix;
#ifndef GPTQ_NO_THREADS
  res.loss = quantizationLoss(w.data(), m, h.data(), opts.threads);
#endif
  auto t2 = std::chrono::steady_clock::now();
  uint64_t hash = 1469598103934665603ull;
  hash = hashBytes(hash, m.packed.data(), m.packed.size());
  hash = hashBytes(hash, m.scales.data(), m.scales.size() * sizeof(float));
  hash = hashBytes(hash, m.zeroPoints.data(), m.zeroPoints.size());
  hash = hashBytes(hash, &res.loss, sizeof res.loss);
  std::printf("rows %ld cols %ld threads %ld int%d g%ld%s: %.2f s (+ loss "
              "%.2f s), loss %.9g, hash %016llx\n",
              rows, cols, threads, bits, group, actOrder ? " act-order" : "",
              std::chrono::duration<double>(t1 - t0).count(),
              std::chrono::duration<double>(t2 - t1).count(), res.loss,
              static_cast<unsigned long long>(hash));
  return 0;
}
