// quench::quantizeWeights with algo=gptq and an inputGram callback (what
// quench-compile's calibration provides; lit tests cannot, quench-opt has no
// Gram matrices): the emitted quench.matmul_nbits holds exactly
// lib/Quant's GPTQ codes and scales, the record says gptq, and layers
// without statistics or with a wrongly sized Gram matrix fail the whole
// call with one error and leave the module unchanged. And weights stored
// [K, N] behind a transpose (quench-raise-ops' form): quantized from the
// transposed reads exactly as the same weights stored [N, K]. And
// algo=awq / awq+gptq with inputGram and inputMeanAbs: the scales of
// lib/Quant's search migrated into the norm, then its clipping (or GPTQ)
// on the scaled weights with the scaled Gram matrix.
#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"
#include "quench/InitAllDialects.h"
#include "quench/Quant/AWQ.h"
#include "quench/Quant/GPTQ.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace mlir;
namespace qq = quench::quant;

namespace {

constexpr int64_t kN = 4, kK = 16, kM = 64;

struct Fixture {
  std::vector<float> w1, w2; ///< [kN, kK] weights of /fc1 and /fc2
  std::vector<double> gram;  ///< a correlated [kK, kK] X^T X
};

Fixture makeFixture() {
  std::mt19937 gen(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Fixture f;
  for (auto *w : {&f.w1, &f.w2}) {
    w->resize(kN * kK);
    for (float &v : *w)
      v = nd(gen);
  }
  // X = Z A: correlated features.
  std::vector<float> a(kK * kK), x(kM * kK, 0.0f);
  for (float &v : a)
    v = nd(gen);
  for (int64_t r = 0; r < kM; ++r) {
    std::vector<float> z(kK);
    for (float &v : z)
      v = nd(gen);
    for (int64_t j = 0; j < kK; ++j)
      for (int64_t t = 0; t < kK; ++t)
        x[r * kK + j] += z[t] * a[t * kK + j];
  }
  f.gram.assign(kK * kK, 0.0);
  for (int64_t r = 0; r < kM; ++r)
    for (int64_t i = 0; i < kK; ++i)
      for (int64_t j = 0; j < kK; ++j)
        f.gram[i * kK + j] += double(x[r * kK + i]) * x[r * kK + j];
  return f;
}

std::string denseLiteral(const std::vector<float> &w) {
  std::string s = "dense<[";
  for (int64_t r = 0; r < kN; ++r) {
    s += r ? ", [" : "[";
    for (int64_t c = 0; c < kK; ++c) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%s%.9g", c ? ", " : "", w[r * kK + c]);
      s += buf;
    }
    s += "]";
  }
  return s + "]>";
}

OwningOpRef<ModuleOp> parse(MLIRContext &ctx, const Fixture &f) {
  std::string src =
      "func.func @main(%x: tensor<2x16xf32>) -> tensor<2x4xf32> {\n"
      "  %w1 = quench.constant " + denseLiteral(f.w1) +
      " : tensor<4x16xf32>\n"
      "  %w2 = quench.constant " + denseLiteral(f.w2) +
      " : tensor<4x16xf32>\n"
      "  %a = quench.linear %x, %w1 : (tensor<2x16xf32>, tensor<4x16xf32>)"
      " -> tensor<2x4xf32> loc(\"/fc1/MatMul\")\n"
      "  %b = quench.linear %x, %w2 : (tensor<2x16xf32>, tensor<4x16xf32>)"
      " -> tensor<2x4xf32> loc(\"/fc2/MatMul\")\n"
      "  %y = quench.add %a, %b : (tensor<2x4xf32>, tensor<2x4xf32>) -> "
      "tensor<2x4xf32>\n"
      "  return %y : tensor<2x4xf32>\n}\n";
  return parseSourceString<ModuleOp>(src, &ctx);
}

std::string print(ModuleOp m) {
  std::string s;
  llvm::raw_string_ostream os(s);
  m.print(os);
  return s;
}

/// The raw bytes of the constant that defines `v`.
std::vector<uint8_t> constantBytes(Value v) {
  auto cst = v.getDefiningOp<quench::ConstantOp>();
  EXPECT_TRUE(cst);
  std::optional<ArrayRef<char>> raw =
      quench::getRawConstantData(cst.getValue());
  EXPECT_TRUE(raw.has_value());
  return std::vector<uint8_t>(raw->begin(), raw->end());
}

/// What an inputGram callback hands out: a matrix the caller owns.
std::shared_ptr<const std::vector<double>>
gramCopy(const std::vector<double> &g) {
  return std::make_shared<const std::vector<double>>(g);
}

class QuantizeWeightsGPTQ : public ::testing::Test {
protected:
  void SetUp() override {
    DialectRegistry registry;
    quench::registerAllDialects(registry);
    ctx.appendDialectRegistry(registry);
    ctx.loadAllAvailableDialects();
    f = makeFixture();
    module = parse(ctx, f);
    ASSERT_TRUE(module);
  }
  MLIRContext ctx;
  Fixture f;
  OwningOpRef<ModuleOp> module;
};

TEST_F(QuantizeWeightsGPTQ, EmitsLibraryGPTQCodes) {
  for (bool actOrder : {true, false}) {
    SCOPED_TRACE(actOrder ? "act order" : "natural order");
    module = parse(ctx, f);
    quench::WeightQuantOptions o;
    o.bits = 4;
    o.groupSize = 8;
    o.algo = "gptq";
    o.gptqActOrder = actOrder;
    o.inputGram = [&](llvm::StringRef) { return gramCopy(f.gram); };
    std::vector<quench::LayerQuantRecord> report;
    ASSERT_TRUE(succeeded(quench::quantizeWeights(*module, o, &report)));
    ASSERT_EQ(report.size(), 2u);
    EXPECT_EQ(report[0].scheme, "int4 g8 sym f16 gptq");
    std::vector<quench::MatMulNBitsOp> ops;
    module->walk([&](quench::MatMulNBitsOp op) { ops.push_back(op); });
    ASSERT_EQ(ops.size(), 2u);
    const std::vector<float> *weights[] = {&f.w1, &f.w2};
    for (auto [op, w] : llvm::zip(ops, weights)) {
      qq::GPTQOptions go;
      go.actOrder = actOrder;
      qq::GPTQResult ref;
      std::string error;
      ASSERT_TRUE(qq::quantizeMatrixGPTQ(w->data(), kN, kK, f.gram.data(), 4,
                                         8, true, qq::ScaleType::F16, go, ref,
                                         error));
      EXPECT_EQ(constantBytes(op.getWeight()), ref.matrix.packed);
      std::vector<uint8_t> scales = constantBytes(op.getScales());
      ASSERT_EQ(scales.size(), ref.matrix.scales.size() * 2);
      for (size_t i = 0; i < ref.matrix.scales.size(); ++i) {
        uint16_t h;
        std::memcpy(&h, &scales[2 * i], 2);
        EXPECT_EQ(qq::f16BitsToFloat(h), ref.matrix.scales[i]);
      }
      // And it differs from round to nearest (the Gram matrix matters).
      qq::QuantizedMatrix rtn = qq::quantizeMatrixRTN(
          w->data(), kN, kK, 4, 8, true, qq::ScaleType::F16);
      EXPECT_NE(ref.matrix.packed, rtn.packed);
    }
  }
}

TEST_F(QuantizeWeightsGPTQ, MissingStatisticsNameEveryLayer) {
  std::string before = print(*module);
  quench::WeightQuantOptions o;
  o.algo = "gptq";
  std::string messages;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &d) {
    messages += d.str() + "\n";
    return success();
  });
  // No callback at all, then one that knows only /fc1.
  EXPECT_TRUE(failed(quench::quantizeWeights(*module, o, nullptr)));
  o.inputGram = [&](llvm::StringRef name) {
    return name == "/fc1/MatMul" ? gramCopy(f.gram) : nullptr;
  };
  EXPECT_TRUE(failed(quench::quantizeWeights(*module, o, nullptr)));
  EXPECT_EQ(messages,
            "GPTQ needs calibration (--calib or --calib-cache); no input "
            "statistics for layers: /fc1/MatMul, /fc2/MatMul\n"
            "GPTQ needs calibration (--calib or --calib-cache); no input "
            "statistics for layers: /fc2/MatMul\n");
  EXPECT_EQ(print(*module), before);
}

TEST_F(QuantizeWeightsGPTQ, BadGramMatrices) {
  std::string before = print(*module);
  std::string messages;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &d) {
    messages += d.str() + "\n";
    return success();
  });
  quench::WeightQuantOptions o;
  o.algo = "gptq";
  std::vector<double> small(4, 1.0);
  o.inputGram = [&](llvm::StringRef) { return gramCopy(small); };
  EXPECT_TRUE(failed(quench::quantizeWeights(*module, o, nullptr)));
  EXPECT_NE(messages.find("the input Gram matrix of layer '/fc1/MatMul' has "
                          "4 elements, expected 16 x 16"),
            std::string::npos)
      << messages;
  // Indefinite for /fc2 only: /fc1 is not rewritten either.
  std::vector<double> bad(kK * kK, 0.0);
  for (int64_t i = 0; i < kK; ++i)
    bad[i * kK + i] = i == 3 ? -50.0 : 1.0;
  o.inputGram = [&](llvm::StringRef name) {
    return gramCopy(name == "/fc2/MatMul" ? bad : f.gram);
  };
  messages.clear();
  EXPECT_TRUE(failed(quench::quantizeWeights(*module, o, nullptr)));
  EXPECT_NE(messages.find("layer '/fc2/MatMul': GPTQ: the Gram matrix is not "
                          "positive definite"),
            std::string::npos)
      << messages;
  EXPECT_EQ(print(*module), before);
}

/// The f32 values of the constant that defines `v`.
std::vector<float> constantFloats(Value v) {
  std::vector<uint8_t> bytes = constantBytes(v);
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

/// /q and /k read rms_norm(x) (scale 1): a group whose norm absorbs 1 / s.
OwningOpRef<ModuleOp> parseNormGroup(MLIRContext &ctx, const Fixture &f) {
  std::string src =
      "func.func @main(%x: tensor<2x16xf32>) -> (tensor<2x4xf32>, "
      "tensor<2x4xf32>) {\n"
      "  %g = quench.constant dense<1.0> : tensor<16xf32>\n"
      "  %n = quench.rms_norm %x, %g {axis = 1 : i64, epsilon = 1.0e-6 : f64}"
      " : (tensor<2x16xf32>, tensor<16xf32>) -> tensor<2x16xf32>\n"
      "  %w1 = quench.constant " + denseLiteral(f.w1) +
      " : tensor<4x16xf32>\n"
      "  %w2 = quench.constant " + denseLiteral(f.w2) +
      " : tensor<4x16xf32>\n"
      "  %a = quench.linear %n, %w1 : (tensor<2x16xf32>, tensor<4x16xf32>)"
      " -> tensor<2x4xf32> loc(\"/q/MatMul\")\n"
      "  %b = quench.linear %n, %w2 : (tensor<2x16xf32>, tensor<4x16xf32>)"
      " -> tensor<2x4xf32> loc(\"/k/MatMul\")\n"
      "  return %a, %b : tensor<2x4xf32>, tensor<2x4xf32>\n}\n";
  return parseSourceString<ModuleOp>(src, &ctx);
}

TEST_F(QuantizeWeightsGPTQ, AWQMigratesLibraryScalesThenClipsOrRunsGPTQ) {
  // Independent inputs with salient channels (j % 5 == 1, 10x): their
  // Gram matrix and mean |x|.
  std::mt19937 gen(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<double> gram(kK * kK, 0.0);
  std::vector<float> meanAbs(kK, 0.0f);
  for (int64_t r = 0; r < kM; ++r) {
    std::vector<float> x(kK);
    for (int64_t j = 0; j < kK; ++j)
      x[j] = nd(gen) * (j % 5 == 1 ? 10.0f : 1.0f);
    for (int64_t i = 0; i < kK; ++i) {
      meanAbs[i] += std::fabs(x[i]) / kM;
      for (int64_t j = 0; j < kK; ++j)
        gram[i * kK + j] += double(x[i]) * x[j];
    }
  }
  for (bool withGPTQ : {false, true}) {
    SCOPED_TRACE(withGPTQ ? "awq+gptq" : "awq");
    module = parseNormGroup(ctx, f);
    ASSERT_TRUE(module);
    quench::WeightQuantOptions o;
    o.bits = 3;
    o.groupSize = 8;
    o.algo = withGPTQ ? "awq+gptq" : "awq";
    o.inputGram = [&](llvm::StringRef) { return gramCopy(gram); };
    o.inputMeanAbs = [&](llvm::StringRef) {
      return std::optional<std::vector<float>>(meanAbs);
    };
    std::vector<quench::LayerQuantRecord> report;
    ASSERT_TRUE(succeeded(quench::quantizeWeights(*module, o, &report)));
    ASSERT_EQ(report.size(), 2u);
    EXPECT_EQ(report[0].scheme,
              withGPTQ ? "int3 g8 sym f16 awq+gptq" : "int3 g8 sym f16 awq");

    // The library's search on both weights (one group).
    qq::AWQConfig cfg;
    cfg.bits = 3;
    cfg.groupSize = 8;
    cfg.powerOfTwo = true;
    qq::AWQScaleResult res = qq::searchAWQScales(
        {f.w1.data(), f.w2.data()}, {kN, kN}, kK, gram.data(), meanAbs.data(),
        cfg);
    ASSERT_GT(res.alpha, 0.0);
    quench::RMSNormOp norm;
    module->walk([&](quench::RMSNormOp op) { norm = op; });
    std::vector<float> g = constantFloats(norm.getScale());
    ASSERT_EQ(g.size(), static_cast<size_t>(kK));
    std::vector<double> scaledGram(kK * kK);
    for (int64_t i = 0; i < kK; ++i) {
      EXPECT_EQ(g[i], 1.0f / res.scales[i]) << i;
      for (int64_t j = 0; j < kK; ++j)
        scaledGram[i * kK + j] =
            gram[i * kK + j] / (double(res.scales[i]) * res.scales[j]);
    }
    std::vector<quench::MatMulNBitsOp> ops;
    module->walk([&](quench::MatMulNBitsOp op) { ops.push_back(op); });
    ASSERT_EQ(ops.size(), 2u);
    const std::vector<float> *weights[] = {&f.w1, &f.w2};
    for (auto [op, w] : llvm::zip(ops, weights)) {
      std::vector<float> scaled(kN * kK);
      for (int64_t r = 0; r < kN; ++r)
        for (int64_t j = 0; j < kK; ++j)
          scaled[r * kK + j] = (*w)[r * kK + j] * res.scales[j];
      qq::QuantizedMatrix ref;
      if (withGPTQ) {
        qq::GPTQOptions go;
        go.actOrder = true; // the pass's default
        qq::GPTQResult gr;
        std::string error;
        ASSERT_TRUE(qq::quantizeMatrixGPTQ(scaled.data(), kN, kK,
                                           scaledGram.data(), 3, 8, true,
                                           qq::ScaleType::F16, go, gr, error));
        ref = std::move(gr.matrix);
      } else {
        std::vector<float> clip = qq::searchAWQClip(scaled.data(), kN, kK,
                                                    scaledGram.data(), cfg);
        ref = qq::quantizeMatrixClipped(scaled.data(), kN, kK, cfg,
                                        clip.data());
      }
      EXPECT_EQ(constantBytes(op.getWeight()), ref.packed);
    }
  }
}

TEST_F(QuantizeWeightsGPTQ, AWQNeedsGramAndMeanAbs) {
  module = parseNormGroup(ctx, f);
  std::string before = print(*module);
  std::string messages;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &d) {
    messages += d.str() + "\n";
    return success();
  });
  quench::WeightQuantOptions o;
  o.algo = "awq";
  o.inputGram = [&](llvm::StringRef) { return gramCopy(f.gram); };
  // A Gram matrix but no mean |x|, then a mean of the wrong size.
  EXPECT_TRUE(failed(quench::quantizeWeights(*module, o, nullptr)));
  o.inputMeanAbs = [&](llvm::StringRef) {
    return std::optional<std::vector<float>>(std::vector<float>(3, 1.0f));
  };
  EXPECT_TRUE(failed(quench::quantizeWeights(*module, o, nullptr)));
  EXPECT_EQ(messages,
            "AWQ needs calibration (--calib or --calib-cache, with "
            "--calib-gram); no input statistics for layers: /q/MatMul, "
            "/k/MatMul\n"
            "AWQ: the mean |x| of layer '/q/MatMul' has 3 channels, expected "
            "16\n");
  EXPECT_EQ(print(*module), before);
}

} // namespace

//===----------------------------------------------------------------------===//
// Weights behind a transpose (quench-raise-ops' form of a MatMul's [K, N]
// initializer): read through it, in blocks of stored rows.
//===----------------------------------------------------------------------===//

namespace {

/// A dense literal of `rows` x `cols` values (row-major).
std::string denseLiteral2D(const std::vector<float> &w, int64_t rows,
                           int64_t cols) {
  std::string s = "dense<[";
  for (int64_t r = 0; r < rows; ++r) {
    s += r ? ", [" : "[";
    for (int64_t c = 0; c < cols; ++c) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%s%.9e", c ? ", " : "", w[r * cols + c]);
      s += buf;
    }
    s += "]";
  }
  return s + "]>";
}

TEST(QuantizeWeightsTransposed, ReadsThroughTranspose) {
  // K = 37: two whole blocks of 16 stored rows and a partial one.
  constexpr int64_t n = 23, k = 37;
  DialectRegistry registry;
  quench::registerAllDialects(registry);
  MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  std::mt19937 gen(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w(n * k), wKN(k * n); // w: [N, K]
  for (float &v : w)
    v = qq::f16BitsToFloat(qq::floatToF16Bits(nd(gen))); // exact in f16
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c)
      wKN[c * n + r] = w[r * k + c];
  std::string nk = std::to_string(n) + "x" + std::to_string(k);
  std::string kn = std::to_string(k) + "x" + std::to_string(n);
  std::string x = "tensor<2x" + std::to_string(k) + "xf32>";
  std::string y = "tensor<2x" + std::to_string(n) + "xf32>";
  std::string src = "func.func @main(%x: " + x + ") -> (" + y + ", " + y +
                    ", " + y + ") {\n";
  src += "  %w = quench.constant " + denseLiteral2D(w, n, k) + " : tensor<" +
         nk + "xf32>\n";
  for (const char *t : {"f32", "f16"}) {
    std::string c = std::string("%s") + t;
    src += "  " + c + " = quench.constant " + denseLiteral2D(wKN, k, n) +
           " : tensor<" + kn + "x" + t + ">\n";
    src += "  " + c + "t = quench.transpose " + c +
           " {permutation = array<i64: 1, 0>} : tensor<" + kn + "x" + t +
           "> -> tensor<" + nk + "x" + t + ">\n";
  }
  src += "  %a = quench.linear %x, %w : (" + x + ", tensor<" + nk +
         "xf32>) -> " + y + " loc(\"/plain/MatMul\")\n";
  src += "  %b = quench.linear %x, %sf32t : (" + x + ", tensor<" + nk +
         "xf32>) -> " + y + " loc(\"/t32/MatMul\")\n";
  src += "  %c = quench.linear %x, %sf16t : (" + x + ", tensor<" + nk +
         "xf16>) -> " + y + " loc(\"/t16/MatMul\")\n";
  src += "  return %a, %b, %c : " + y + ", " + y + ", " + y + "\n}\n";
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(src, &ctx);
  ASSERT_TRUE(module);

  quench::WeightQuantOptions o;
  o.bits = 4;
  o.groupSize = 0;
  std::vector<quench::LayerQuantRecord> report;
  ASSERT_TRUE(succeeded(quench::quantizeWeights(*module, o, &report)));
  ASSERT_EQ(report.size(), 3u);
  EXPECT_EQ(report[1].outFeatures, n);
  EXPECT_EQ(report[1].inFeatures, k);
  EXPECT_EQ(report[2].bytesBefore, n * k * 2);
  std::vector<quench::MatMulNBitsOp> ops;
  module->walk([&](quench::MatMulNBitsOp op) { ops.push_back(op); });
  ASSERT_EQ(ops.size(), 3u);
  qq::QuantizedMatrix ref =
      qq::quantizeMatrixRTN(w.data(), n, k, 4, 0, true, qq::ScaleType::F16);
  for (quench::MatMulNBitsOp op : ops) {
    EXPECT_EQ(constantBytes(op.getWeight()), ref.packed);
    EXPECT_EQ(op.getInFeatures(), k);
    EXPECT_EQ(op.getOutFeatures(), n);
  }
  // The transposes and the stored constants went with their linears.
  int transposes = 0, floatConstants = 0;
  module->walk([&](quench::TransposeOp) { ++transposes; });
  module->walk([&](quench::ConstantOp c) {
    floatConstants += isa<FloatType>(
        cast<RankedTensorType>(c.getType()).getElementType()) &&
        cast<RankedTensorType>(c.getType()).getRank() == 2 &&
        cast<RankedTensorType>(c.getType()).getNumElements() == n * k;
  });
  EXPECT_EQ(transposes, 0);
  EXPECT_EQ(floatConstants, 0);
}

} // namespace
