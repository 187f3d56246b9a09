//===- PruneWeights.cpp - pruning of linear layers' weights ---------------===//
//
// Implements `quench-prune-weights`: the weights of every quench.linear with
// a constant f32 weight are pruned to a sparsity pattern by magnitude or by
// SparseGPT (lib/Quant/Sparse.cpp, with the input Gram matrices of
// calibration) and written back as dense f32 constants with exact zeros;
// the linear is marked with `quench.sparsity`, which quench-quantize-weights
// reads to keep the zeros. This file decides which layers get which pattern
// (options, recipe, head) and rewrites the IR; the numerics live in the
// MLIR-free QuenchQuant library.
//
//===----------------------------------------------------------------------===//

#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"
#include "quench/Dialect/Quench/Transforms/ScaleMigration.h"
#include "quench/Quant/Sparse.h"
#include "quench/Support/LLVM.h"
#include "quench/Support/Progress.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/GlobPattern.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHPRUNEWEIGHTS
#include "quench/Dialect/Quench/Transforms/Passes.h.inc"
} // namespace quench

using namespace quench;
namespace qq = quench::quant;

namespace {

struct QuenchPruneWeightsPass
    : public quench::impl::QuenchPruneWeightsBase<QuenchPruneWeightsPass> {
  using Base::Base;
  QuenchPruneWeightsPass(PruneOptions options,
                         std::vector<LayerPruneRecord> *report)
      : Base(options), inputGram(std::move(options.inputGram)),
        hasInputGram(std::move(options.hasInputGram)), report(report) {}

  void runOnOperation() override {
    PruneOptions o;
    o.sparsity = sparsity;
    o.method = method;
    o.pruneHead = pruneHead;
    o.recipe = recipe;
    o.dampening = dampening;
    o.threads = threads;
    o.inputGram = inputGram;
    o.hasInputGram = hasInputGram;
    if (failed(pruneWeights(getOperation(), o, report)))
      signalPassFailure();
  }

  decltype(PruneOptions::inputGram) inputGram;
  decltype(PruneOptions::hasInputGram) hasInputGram;
  std::vector<LayerPruneRecord> *report = nullptr;
};

} // namespace

std::unique_ptr<Pass>
quench::createQuenchPruneWeights(PruneOptions options,
                                 std::vector<LayerPruneRecord> *report) {
  return std::make_unique<QuenchPruneWeightsPass>(std::move(options), report);
}

LogicalResult quench::pruneWeights(ModuleOp module, const PruneOptions &options,
                                   std::vector<LayerPruneRecord> *report) {
  Location loc = module.getLoc();
  qq::SparsityPattern defaultPattern;
  std::string error;
  if (!qq::parseSparsityPattern(options.sparsity, defaultPattern, error))
    return emitError(loc) << error;
  if (options.method != "magnitude" && options.method != "sparsegpt")
    return emitError(loc) << "pruning method must be magnitude or sparsegpt, "
                             "got '"
                          << options.method << "'";
  if (!(options.dampening >= 0.0 && std::isfinite(options.dampening)))
    return emitError(loc) << "SparseGPT dampening must be >= 0, got "
                          << options.dampening;
  const bool sparseGPT = options.method == "sparsegpt";

  struct Plan {
    LinearOp op;
    LayerPruneRecord rec;
    qq::SparsityPattern pattern;
  };
  std::vector<Plan> plans;
  module.walk([&](LinearOp op) {
    // Linears with a constant weight (directly or through a transpose) are
    // recorded, as the quantizer records them; only f32 ones
    // (readLinearWeight's) are pruned, their values written back as f32.
    Value weight = op.getWeight();
    if (auto t = weight.getDefiningOp<TransposeOp>())
      weight = t.getInput();
    if (!weight.getDefiningOp<ConstantOp>())
      return;
    auto wType = cast<RankedTensorType>(op.getWeight().getType());
    Plan p;
    p.op = op;
    p.rec.name = getLayerName(op.getLoc());
    p.rec.outFeatures = wType.getDimSize(0);
    p.rec.inFeatures = wType.getDimSize(1);
    p.rec.bytes = wType.getNumElements() *
                  getStorageBytesPerElement(wType.getElementType());
    p.pattern = defaultPattern;
    plans.push_back(std::move(p));
  });
  if (!options.recipe.empty()) {
    std::vector<std::string> names;
    for (const Plan &p : plans)
      names.push_back(p.rec.name);
    std::vector<std::optional<std::string>> given;
    if (failed(readRecipeSparsity(options.recipe, loc, names, given)))
      return failure();
    for (auto [p, s] : llvm::zip(plans, given))
      if (s)
        (void)qq::parseSparsityPattern(*s, p.pattern, error); // validated
  }
  // Decide every layer first: a missing Gram matrix fails before any layer
  // is pruned, naming them all.
  std::vector<Plan *> todo;
  SmallVector<std::string> missing;
  for (Plan &p : plans) {
    std::string why;
    if (p.pattern.isDense())
      why = "";
    else if (!options.pruneHead && isOutputProjection(p.op))
      why = " (output head)";
    else if (!readLinearWeight(p.op))
      why = " (weight not a constant f32)";
    if (p.pattern.isDense() || !why.empty()) {
      p.rec.sparsity = "dense" + why;
      continue;
    }
    p.rec.sparsity = p.pattern.str() + " " + options.method;
    todo.push_back(&p);
    if (sparseGPT) {
      bool present = false;
      if (options.hasInputGram) {
        present = options.hasInputGram(p.rec.name);
      } else if (options.inputGram) {
        auto g = options.inputGram(p.rec.name);
        if (!g)
          return emitError(loc) << "SparseGPT: layer '" << p.rec.name
                                << "': " << llvm::toString(g.takeError());
        present = *g != nullptr;
      }
      if (!present)
        missing.push_back(p.rec.name);
    }
  }
  if (!missing.empty())
    return emitError(loc) << "--prune=sparsegpt needs calibration (--calib "
                             "or --calib-cache); no input statistics for "
                             "layers: "
                          << llvm::join(missing, ", ");

  // Prune and rewrite one layer at a time: each pruned weight becomes a
  // constant (spilled to the weight arena when large) before the next layer
  // is read, so the peak memory is one layer's weights, not the model's
  // (issue #20). Every input is checked above; a SparseGPT failure mid-way
  // (a Gram matrix not positive definite even after dampening) fails the
  // pass with earlier layers already pruned, and the driver writes nothing.
  OpBuilder b(module.getContext());
  // Progress weighted by the cost estimate: magnitude N K log M, SparseGPT
  // K^2 (K + N) like GPTQ.
  auto work = [&](const Plan &p) {
    double n = static_cast<double>(p.rec.outFeatures),
           k = static_cast<double>(p.rec.inFeatures);
    return sparseGPT ? k * k * (k + n) : 8.0 * n * k;
  };
  double totalWork = 0;
  for (Plan *p : todo)
    totalWork += work(*p);
  StageProgress progress("prune", "layer", static_cast<int64_t>(todo.size()),
                         totalWork, options.progress);
  for (Plan *pp : todo) {
    Plan &p = *pp;
    const int64_t n = p.rec.outFeatures, k = p.rec.inFeatures;
    std::vector<float> w = *readLinearWeight(p.op);
    if (sparseGPT) {
      auto gram = options.inputGram(p.rec.name);
      if (!gram)
        return emitError(p.op.getLoc())
               << "SparseGPT: layer '" << p.rec.name
               << "': " << llvm::toString(gram.takeError());
      if (!*gram || (*gram)->size() != static_cast<size_t>(k * k))
        return emitError(p.op.getLoc())
               << "SparseGPT: no usable input Gram matrix (" << k << " x "
               << k << ") for layer '" << p.rec.name << "'";
      qq::SparseGPTOptions so;
      so.dampening = options.dampening;
      so.threads = options.threads;
      so.computeLoss = false;
      qq::SparseGPTResult res;
      if (!qq::pruneSparseGPT(w.data(), n, k, (*gram)->data(), p.pattern,
                              nullptr, so, res, error))
        return emitError(p.op.getLoc())
               << "layer '" << p.rec.name << "': " << error;
      w = std::move(res.weights);
    } else {
      std::vector<uint8_t> mask =
          qq::selectMagnitudeMask(w.data(), n, k, p.pattern);
      qq::applyMask(w.data(), mask.data(), w.size());
    }
    p.rec.density = qq::densityOf(w.data(), w.size());
    replaceLinearWeight(p.op, std::move(w), n, k, "_pruned");
    p.op->setAttr(kSparsityAttrName, b.getStringAttr(p.rec.sparsity));
    progress.step(p.rec.name, work(p));
  }
  if (report)
    for (Plan &p : plans)
      report->push_back(std::move(p.rec));
  return success();
}
