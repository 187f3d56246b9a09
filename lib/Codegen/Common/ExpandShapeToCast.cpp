//===- ExpandShapeToCast.cpp - expand_shape with several dynamic dims -----===//
//
// MLIR 22's expand-strided-metadata assumes at most one dynamic size per
// reassociation group of a memref.expand_shape and crashes (a null
// OpFoldResult reaches ReinterpretCastOp::build) on a group such as
// `[[0, 1], [2]] output_shape [%b, %t, 32] : memref<?x32xf32> into
// memref<?x?x32xf32>`, which the output_shape operand makes valid
// (llvm/llvm-project#186830, fixed upstream after 22 by #187844). Quench
// produces it whenever a kernel collapses two dynamic leading dims (batch
// and sequence) into rows and expands its result back: the fused quantized
// matmul of a dynamic-shape model, for example.
//
// This pass, run right before expand-strided-metadata, rewrites exactly
// those expand_shape ops into what they mean:
//
//   base, offset, sizes, strides = memref.extract_strided_metadata %src
//   memref.reinterpret_cast %base to offset: [offset],
//       sizes: output_shape, strides: per group, innermost first,
//       stride[g.back] = strides[g], stride[i] = stride[i+1] * size[i+1]
//
// which expand-strided-metadata then lowers like any other view. Groups
// with at most one dynamic size are left to upstream.
//
//===----------------------------------------------------------------------===//

#include "quench/Codegen/Common/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHEXPANDSHAPETOCAST
#include "quench/Codegen/Common/Passes.h.inc"
} // namespace quench

using namespace mlir;

namespace {

/// True when some reassociation group of `op` has two or more dynamic
/// result sizes (the case upstream's lowering cannot handle).
bool hasMultiDynamicGroup(memref::ExpandShapeOp op) {
  MemRefType type = op.getResultType();
  for (const ReassociationIndices &group : op.getReassociationIndices()) {
    int dynamic = 0;
    for (int64_t d : group)
      dynamic += type.isDynamicDim(d);
    if (dynamic > 1)
      return true;
  }
  return false;
}

struct ExpandShapeToReinterpretCast
    : OpRewritePattern<memref::ExpandShapeOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(memref::ExpandShapeOp op,
                                PatternRewriter &rw) const override {
    if (!hasMultiDynamicGroup(op))
      return rw.notifyMatchFailure(op, "upstream handles this expand_shape");
    Location loc = op.getLoc();
    auto meta =
        memref::ExtractStridedMetadataOp::create(rw, loc, op.getSrc());
    SmallVector<OpFoldResult> sizes = op.getMixedOutputShape();
    SmallVector<OpFoldResult> strides(sizes.size());
    for (auto [srcDim, group] :
         llvm::enumerate(op.getReassociationIndices())) {
      OpFoldResult stride = getAsOpFoldResult(meta.getStrides()[srcDim]);
      for (int64_t d : llvm::reverse(group)) {
        strides[d] = stride;
        stride = getAsOpFoldResult(
            arith::MulIOp::create(
                rw, loc, getValueOrCreateConstantIndexOp(rw, loc, stride),
                getValueOrCreateConstantIndexOp(rw, loc, sizes[d]))
                .getResult());
      }
    }
    // Where the result type knows a stride or the offset statically, the
    // cast must say the same constant.
    SmallVector<int64_t> typeStrides;
    int64_t typeOffset;
    if (failed(op.getResultType().getStridesAndOffset(typeStrides,
                                                      typeOffset)))
      return rw.notifyMatchFailure(op, "result is not strided");
    for (auto [i, s] : llvm::enumerate(typeStrides))
      if (!ShapedType::isDynamic(s))
        strides[i] = rw.getIndexAttr(s);
    OpFoldResult offset = ShapedType::isDynamic(typeOffset)
                              ? getAsOpFoldResult(meta.getOffset())
                              : rw.getIndexAttr(typeOffset);
    rw.replaceOpWithNewOp<memref::ReinterpretCastOp>(
        op, op.getResultType(), meta.getBaseBuffer(), offset, sizes, strides);
    return success();
  }
};

struct QuenchExpandShapeToCastPass
    : public quench::impl::QuenchExpandShapeToCastBase<
          QuenchExpandShapeToCastPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<ExpandShapeToReinterpretCast>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
