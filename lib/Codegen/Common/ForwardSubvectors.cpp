//===- ForwardSubvectors.cpp - reads of just-written vectors --------------===//
//
// `quench-forward-subvectors`: a vector.transfer_read of part of what a
// vector.transfer_write just wrote to a tensor becomes a
// vector.extract_strided_slice of the written vector. Run after
// loop-invariant-subset-hoisting, it lets the epilogue of a fused
// contraction (quench-cpu-tile-and-vectorize) read the accumulators row by
// row from registers. See docs/lowering.md ("Epilogue fusion").
//
//===----------------------------------------------------------------------===//

#include "quench/Codegen/Common/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHFORWARDSUBVECTORS
#include "quench/Codegen/Common/Passes.h.inc"
} // namespace quench

using namespace mlir;

namespace {

/// Reads part of a vector just written to a tensor from that vector: a
/// vector.transfer_read of a static in-bounds box inside the box a
/// vector.transfer_write put there (directly or through a static slice; no
/// masks, minor identity maps, same rank) becomes a
/// vector.extract_strided_slice. This forwards a fused
/// contraction's accumulators row by row to its epilogue (the full-tile
/// read is folded by vector.transfer_read's own canonicalization).
struct ForwardWrittenSubvector : OpRewritePattern<vector::TransferReadOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(vector::TransferReadOp read,
                                PatternRewriter &rw) const override {
    // Through a static slice of the written tensor (unit strides, no rank
    // reduction): its offsets add to the read's indices.
    SmallVector<int64_t> sliceOffsets;
    Value base = read.getBase();
    if (auto slice = base.getDefiningOp<tensor::ExtractSliceOp>()) {
      if (!slice.hasUnitStride() ||
          slice.getSourceType().getRank() != slice.getResultType().getRank())
        return failure();
      for (OpFoldResult o : slice.getMixedOffsets()) {
        std::optional<int64_t> c = getConstantIntValue(o);
        if (!c)
          return failure();
        sliceOffsets.push_back(*c);
      }
      base = slice.getSource();
    }
    auto write = base.getDefiningOp<vector::TransferWriteOp>();
    if (!write || read.getMask() || write.getMask() ||
        !read.getPermutationMap().isMinorIdentity() ||
        !write.getPermutationMap().isMinorIdentity() ||
        read.hasOutOfBoundsDim() || write.hasOutOfBoundsDim())
      return failure();
    VectorType rt = read.getVectorType(), wt = write.getVectorType();
    if (rt.getRank() != wt.getRank() ||
        rt.getRank() != static_cast<int64_t>(read.getIndices().size()) ||
        rt.getElementType() != wt.getElementType() || rt == wt ||
        rt.isScalable() || wt.isScalable())
      return failure();
    if (!sliceOffsets.empty() &&
        sliceOffsets.size() != read.getIndices().size())
      return failure();
    SmallVector<int64_t> offsets;
    for (auto [d, r, w, rs, ws] :
         llvm::enumerate(read.getIndices(), write.getIndices(), rt.getShape(),
                         wt.getShape())) {
      std::optional<int64_t> ri = getConstantIntValue(r);
      std::optional<int64_t> wi = getConstantIntValue(w);
      if (!ri || !wi)
        return failure();
      int64_t at = *ri + (sliceOffsets.empty() ? 0 : sliceOffsets[d]);
      if (at < *wi || at + rs > *wi + ws)
        return failure();
      offsets.push_back(at - *wi);
    }
    SmallVector<int64_t> strides(rt.getRank(), 1);
    rw.replaceOpWithNewOp<vector::ExtractStridedSliceOp>(
        read, write.getVector(), offsets, rt.getShape(), strides);
    return success();
  }
};

struct QuenchForwardSubvectorsPass
    : public quench::impl::QuenchForwardSubvectorsBase<
          QuenchForwardSubvectorsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<ForwardWrittenSubvector>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
