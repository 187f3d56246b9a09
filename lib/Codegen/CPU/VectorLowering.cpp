//===- VectorLowering.cpp - vector lowering for the CPU -------------------===//
//
// `quench-cpu-lower-vector`, the vector lowering of the `to-llvm` stage of
// quench-cpu-pipeline: polynomial approximations of transcendentals, masked
// transfers to mask operands, then contractions to outer products (FMAs),
// multi-reductions to horizontal reductions, transposes, broadcasts, shape
// casts and masks to the 1-D vector ops that convert-vector-to-llvm maps
// onto SIMD instructions. See docs/lowering.md.
//
//===----------------------------------------------------------------------===//

#include "quench/Codegen/CPU/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/Vector/Transforms/LoweringPatterns.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHCPULOWERVECTOR
#include "quench/Codegen/CPU/Passes.h.inc"
} // namespace quench

using namespace mlir;

namespace {

/// Sign-extends the narrower integer operands of a vector.contract to the
/// accumulator's type (quench.qlinear's i8 x i8 -> i32 product, as
/// linalg.contract's signed casts define it): the contraction lowerings
/// unroll batch and unit dimensions only for operands of the accumulator's
/// element type. LLVM still sees the extended i8 values and picks the
/// narrow multiplies.
struct ExtendContractOperands : OpRewritePattern<vector::ContractionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(vector::ContractionOp op,
                                PatternRewriter &rw) const override {
    auto accType = dyn_cast<IntegerType>(getElementTypeOrSelf(op.getAccType()));
    if (!accType)
      return failure();
    auto extend = [&](Value v) -> Value {
      auto vt = cast<VectorType>(v.getType());
      auto et = dyn_cast<IntegerType>(vt.getElementType());
      if (!et || et.getWidth() >= accType.getWidth())
        return v;
      return arith::ExtSIOp::create(rw, op.getLoc(), vt.clone(accType), v);
    };
    // A masked contraction is the only op its vector.mask may hold.
    if (auto mask = dyn_cast<vector::MaskOp>(op->getParentOp()))
      rw.setInsertionPoint(mask);
    Value lhs = extend(op.getLhs()), rhs = extend(op.getRhs());
    if (lhs == op.getLhs() && rhs == op.getRhs())
      return failure();
    rw.modifyOpInPlace(op, [&] {
      op.getLhsMutable().assign(lhs);
      op.getRhsMutable().assign(rhs);
    });
    return success();
  }
};

struct QuenchCPULowerVectorPass
    : public quench::impl::QuenchCPULowerVectorBase<QuenchCPULowerVectorPass> {
  void runOnOperation() override {
    func::FuncOp func = getOperation();
    MLIRContext *ctx = &getContext();
    {
      // Transcendentals as polynomials (FMAs on whole vectors) instead of
      // one libm call per lane; scalars too, so that the peeled tails of a
      // loop compute exactly what its vector body computes.
      RewritePatternSet patterns(ctx);
      populateMathPolynomialApproximationPatterns(
          patterns, [](StringRef name) {
            name.consume_front("math.");
            return llvm::is_contained(
                {"exp", "expm1", "erf", "tanh", "log", "log1p", "log2"},
                name);
          });
      if (failed(applyPatternsGreedily(func, std::move(patterns))))
        return signalPassFailure();
    }
    {
      // Masked transfers first: the patterns below rewrite an op into
      // several, which a vector.mask region cannot hold.
      RewritePatternSet patterns(ctx);
      vector::populateVectorMaskLoweringPatternsForSideEffectingOps(patterns);
      patterns.add<ExtendContractOperands>(ctx);
      if (failed(applyPatternsGreedily(func, std::move(patterns))))
        return signalPassFailure();
    }
    {
      // Contractions → outer products → FMAs; reductions along the
      // innermost dim → horizontal reductions.
      RewritePatternSet patterns(ctx);
      vector::populateVectorContractLoweringPatterns(
          patterns, vector::VectorContractLowering::OuterProduct);
      vector::populateVectorMultiReductionLoweringPatterns(
          patterns, vector::VectorMultiReductionLowering::InnerReduction);
      vector::populateVectorTransferPermutationMapLoweringPatterns(patterns);
      if (failed(applyPatternsGreedily(func, std::move(patterns))))
        return signalPassFailure();
    }
    {
      RewritePatternSet patterns(ctx);
      vector::populateVectorOuterProductLoweringPatterns(patterns);
      vector::populateVectorTransposeLoweringPatterns(
          patterns, vector::VectorTransposeLowering::Shuffle1D);
      vector::populateVectorBroadcastLoweringPatterns(patterns);
      vector::populateVectorShapeCastLoweringPatterns(patterns);
      vector::populateVectorMaskOpLoweringPatterns(patterns);
      if (failed(applyPatternsGreedily(func, std::move(patterns))))
        return signalPassFailure();
    }
  }
};

} // namespace
