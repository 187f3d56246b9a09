//===- quant_layer.cpp - quantize one weight matrix with lib/Quant --------===//
//
// A tiny driver for bench/gptq_stories.py: runs Quench's own RTN or GPTQ
// (lib/Quant) on one weight matrix given as raw files and writes the
// dequantized matrix back, so that Python can simulate a quantized model
// with exactly the weights the compiler would emit. Built by the script
// with the host C++ compiler (lib/Quant needs nothing but the C++17
// library):
//
//   quant_layer W.f32 H.f64 OUT.f32 ROWS COLS BITS GROUP SYM ALGO ACTORDER
//
// W: row-major [ROWS, COLS] float32; H: [COLS, COLS] float64 (X^T X);
// SYM and ACTORDER are 0 or 1; ALGO is rtn or gptq. Prints
// "loss <tr(dW H dW^T)> rtn_loss <the same for RTN>" on stdout; exits 1 with
// a message on any error.
//
//===----------------------------------------------------------------------===//

#include "quench/Quant/GPTQ.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace quench::quant;

/// Reads exactly `count` elements of T from `path`.
template <typename T>
static bool readAll(const char *path, std::vector<T> &out, size_t count) {
  FILE *f = std::fopen(path, "rb");
  if (!f)
    return false;
  out.resize(count);
  size_t got = std::fread(out.data(), sizeof(T), count, f);
  bool atEnd = std::fgetc(f) == EOF;
  std::fclose(f);
  return got == count && atEnd;
}

int main(int argc, char **argv) {
  if (argc != 11) {
    std::fprintf(stderr, "usage: %s W.f32 H.f64 OUT.f32 ROWS COLS BITS GROUP "
                         "SYM rtn|gptq ACTORDER\n",
                 argv[0]);
    return 1;
  }
  long rows = std::atol(argv[4]), cols = std::atol(argv[5]);
  int bits = std::atoi(argv[6]);
  long group = std::atol(argv[7]);
  bool sym = std::atoi(argv[8]) != 0;
  std::string algo = argv[9];
  GPTQOptions opts;
  opts.actOrder = std::atoi(argv[10]) != 0;
  if (rows <= 0 || cols <= 0 || bits < 2 || bits > 8 || group < 0 ||
      (group * bits) % 8 || (algo != "rtn" && algo != "gptq")) {
    std::fprintf(stderr, "quant_layer: bad arguments\n");
    return 1;
  }
  std::vector<float> w;
  std::vector<double> h;
  if (!readAll(argv[1], w, size_t(rows) * cols) ||
      !readAll(argv[2], h, size_t(cols) * cols)) {
    std::fprintf(stderr, "quant_layer: cannot read %s or %s with the given "
                         "shape\n",
                 argv[1], argv[2]);
    return 1;
  }
  QuantizedMatrix rtn =
      quantizeMatrixRTN(w.data(), rows, cols, bits, group, sym,
                        ScaleType::F16);
  double rtnLoss = quantizationLoss(w.data(), rtn, h.data());
  QuantizedMatrix q;
  double loss = rtnLoss;
  if (algo == "gptq") {
    GPTQResult res;
    std::string error;
    if (!quantizeMatrixGPTQ(w.data(), rows, cols, h.data(), bits, group, sym,
                            ScaleType::F16, opts, res, error)) {
      std::fprintf(stderr, "quant_layer: %s\n", error.c_str());
      return 1;
    }
    q = std::move(res.matrix);
    loss = res.loss;
  } else {
    q = std::move(rtn);
  }
  std::vector<float> out(size_t(rows) * cols);
  for (long r = 0; r < rows; ++r)
    for (long c = 0; c < cols; ++c)
      out[size_t(r) * cols + c] = dequantizeAt(q, r, c);
  FILE *f = std::fopen(argv[3], "wb");
  if (!f || std::fwrite(out.data(), 4, out.size(), f) != out.size() ||
      std::fclose(f) != 0) {
    std::fprintf(stderr, "quant_layer: cannot write %s\n", argv[3]);
    return 1;
  }
  std::printf("loss %.17g rtn_loss %.17g\n", loss, rtnLoss);
  return 0;
}
