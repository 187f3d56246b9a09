//===- FullRankWrites.cpp - guard against a bufferization misjudgement ----===//
//
// One-shot bufferization asks every vector.transfer_write on a tensor
// whether it reads its destination (a partial write keeps the other
// elements). MLIR 22 answers "no, it overwrites everything" for a write at
// all-zero indices whenever each destination dim is at most the vector dim
// it is zipped with — zipping the destination shape with the vector shape
// from the front, so a rank-1 vector<16xf32> written at [0, 0] of a
// tensor<8x48xf32> compares 8 with 16 and is taken for a full overwrite.
// The analysis then lets two chains of writes that start from the same
// tensor (CSE merges identical zero-filled accumulators of two kernels)
// share one buffer: the second kernel accumulates on top of the first one's
// results. Quench's explicit kernels (DequantMatmul.cpp) write rows of
// their output tile exactly like that, and gave wrong logits on models
// with two quantized layers of the same shape and fewer rows than lanes.
//
// This pass, run right before one-shot-bufferize, gives such writes the
// destination's rank (vector<16xf32> at [0, 0] becomes vector<1x16xf32>
// through a shape_cast), for which the check compares the right dims. It
// only touches writes the check can misjudge: tensor semantics, no mask,
// all-constant-zero indices, static destination, a minor-identity map of a
// lower-rank vector.
//
//===----------------------------------------------------------------------===//

#include "quench/Codegen/Common/Passes.h"

#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHFULLRANKWRITES
#include "quench/Codegen/Common/Passes.h.inc"
} // namespace quench

using namespace mlir;

namespace {

struct FullRankTransferWrite : OpRewritePattern<vector::TransferWriteOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(vector::TransferWriteOp op,
                                PatternRewriter &rw) const override {
    auto destType = dyn_cast<RankedTensorType>(op.getBase().getType());
    VectorType vecType = op.getVectorType();
    int64_t rank = destType ? destType.getRank() : 0;
    int64_t missing = rank - vecType.getRank();
    if (!destType || missing <= 0 || op.getMask() ||
        !destType.hasStaticShape() || !op.getPermutationMap().isMinorIdentity())
      return rw.notifyMatchFailure(op, "not a write the analysis misjudges");
    if (!llvm::all_of(op.getIndices(), [](Value v) {
          return isConstantIntValue(getAsOpFoldResult(v), 0);
        }))
      return rw.notifyMatchFailure(op, "not at the origin");
    SmallVector<int64_t> shape(missing, 1);
    llvm::append_range(shape, vecType.getShape());
    auto fullType = VectorType::get(shape, vecType.getElementType());
    Value vec = vector::ShapeCastOp::create(rw, op.getLoc(), fullType,
                                            op.getVector());
    SmallVector<bool> inBounds(missing, true);
    for (int64_t d = 0; d < vecType.getRank(); ++d)
      inBounds.push_back(op.isDimInBounds(d));
    rw.replaceOpWithNewOp<vector::TransferWriteOp>(
        op, vec, op.getBase(), op.getIndices(), ArrayRef<bool>(inBounds));
    return success();
  }
};

struct QuenchFullRankWritesPass
    : public quench::impl::QuenchFullRankWritesBase<QuenchFullRankWritesPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<FullRankTransferWrite>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
