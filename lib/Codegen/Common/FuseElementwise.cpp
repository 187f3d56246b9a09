//===- FuseElementwise.cpp - elementwise fusion without recompute ---------===//
//
// `quench-fuse-elementwise`, the first pass of the codegen stage:
// upstream's elementwise fusion of linalg ops, restricted to fusions that
// recompute nothing: the consumer must read each element of the producer
// once (a permutation map) and be its only user, except for producers that
// compute nothing (broadcasts, transposes, copies). See docs/lowering.md
// ("Fusion without recomputation").
//
//===----------------------------------------------------------------------===//

#include "quench/Codegen/Common/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHFUSEELEMENTWISE
#include "quench/Codegen/Common/Passes.h.inc"
} // namespace quench

using namespace mlir;

namespace {
struct QuenchFuseElementwisePass
    : public quench::impl::QuenchFuseElementwiseBase<
          QuenchFuseElementwisePass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    // A producer fuses into a consumer that reads each of its elements
    // once (permutation map), and only when the consumer is its single
    // user: with several users the producer would be recomputed in each
    // (a residual stream feeding LayerNorm's two reductions, its
    // normalization and the next residual add would be recomputed from the
    // embedding onwards at every layer). Producers that compute nothing
    // (broadcasts, transposes, copies) fuse regardless.
    linalg::ControlFusionFn noRecompute = [](OpOperand *fused) {
      auto consumer = dyn_cast<linalg::LinalgOp>(fused->getOwner());
      if (!consumer || !consumer.getMatchingIndexingMap(fused).isPermutation())
        return false;
      auto result = dyn_cast<OpResult>(fused->get());
      if (!result)
        return false;
      if (result.hasOneUse())
        return true;
      auto producer = dyn_cast<linalg::GenericOp>(result.getOwner());
      if (!producer)
        return false;
      Block &body = producer.getRegion().front();
      return llvm::all_of(body.getTerminator()->getOperands(),
                          [&](Value v) {
                            return isa<BlockArgument>(v) &&
                                   v.getParentBlock() == &body;
                          }) &&
             body.getOperations().size() == 1;
    };
    linalg::populateElementwiseOpsFusionPatterns(patterns, noRecompute);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
