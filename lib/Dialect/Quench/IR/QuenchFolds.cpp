//===- QuenchFolds.cpp - quench folders and canonicalizations -------------===//
//
// Folds that pay for themselves on imported graphs: identities left behind by
// exporters (x + 0, x * 1, same-type casts and reshapes, identity transposes
// and slices), chains of layout ops, and static shape queries.
//
//===----------------------------------------------------------------------===//

#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Support/LLVM.h"

#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"

using namespace quench;

OpFoldResult ConstantOp::fold(FoldAdaptor) { return getValue(); }

OpFoldResult CastOp::fold(FoldAdaptor) {
  if (getInput().getType() == getType())
    return getInput();
  return {};
}

/// True when `attr` is a splat of `value` (integer or float).
static bool isSplatOf(Attribute attr, double value) {
  auto splat = dyn_cast_or_null<SplatElementsAttr>(attr);
  if (!splat)
    return false;
  Type et = splat.getElementType();
  if (isa<FloatType>(et))
    return splat.getSplatValue<APFloat>().convertToDouble() == value;
  if (et.isInteger() && !et.isInteger(1))
    return splat.getSplatValue<APInt>().getSExtValue() == (int64_t)value;
  return false;
}

OpFoldResult AddOp::fold(FoldAdaptor adaptor) {
  if (getLhs().getType() == getType() && isSplatOf(adaptor.getRhs(), 0.0))
    return getLhs();
  if (getRhs().getType() == getType() && isSplatOf(adaptor.getLhs(), 0.0))
    return getRhs();
  return {};
}

OpFoldResult MulOp::fold(FoldAdaptor adaptor) {
  if (getLhs().getType() == getType() && isSplatOf(adaptor.getRhs(), 1.0))
    return getLhs();
  if (getRhs().getType() == getType() && isSplatOf(adaptor.getLhs(), 1.0))
    return getRhs();
  return {};
}

OpFoldResult ReshapeOp::fold(FoldAdaptor adaptor) {
  auto out = getType();
  if (getInput().getType() == out && out.hasStaticShape())
    return getInput();
  // Static reshape of a dense (non-resource) constant.
  if (out.hasStaticShape())
    if (auto dense = dyn_cast_or_null<DenseElementsAttr>(adaptor.getInput()))
      return dense.reshape(out);
  // reshape(reshape(x)) -> reshape(x): only the final shape matters.
  if (auto inner = getInput().getDefiningOp<ReshapeOp>()) {
    getInputMutable().assign(inner.getInput());
    return getResult();
  }
  return {};
}

namespace {
/// A squeeze/unsqueeze with a static result is a reshape.
template <typename OpTy>
struct UnitDimsToReshape : public OpRewritePattern<OpTy> {
  using OpRewritePattern<OpTy>::OpRewritePattern;
  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    auto out = cast<RankedTensorType>(op.getType());
    if (!out.hasStaticShape())
      return failure();
    rewriter.replaceOpWithNewOp<ReshapeOp>(op, out, op.getInput(), Value());
    return success();
  }
};

/// transpose(transpose(x, p1), p2) -> transpose(x, p1∘p2).
struct ComposeTransposes : public OpRewritePattern<TransposeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(TransposeOp op,
                                PatternRewriter &rewriter) const override {
    auto inner = op.getInput().getDefiningOp<TransposeOp>();
    if (!inner)
      return failure();
    SmallVector<int64_t> perm;
    for (int64_t p : op.getPermutation())
      perm.push_back(inner.getPermutation()[p]);
    rewriter.replaceOpWithNewOp<TransposeOp>(op, op.getType(), inner.getInput(),
                                             perm);
    return success();
  }
};
} // namespace

void SqueezeOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                            MLIRContext *context) {
  results.add<UnitDimsToReshape<SqueezeOp>>(context);
}

void UnsqueezeOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                              MLIRContext *context) {
  results.add<UnitDimsToReshape<UnsqueezeOp>>(context);
}

void TransposeOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                              MLIRContext *context) {
  results.add<ComposeTransposes>(context);
}

OpFoldResult TransposeOp::fold(FoldAdaptor adaptor) {
  ArrayRef<int64_t> perm = getPermutation();
  bool identity = true;
  for (size_t i = 0; i < perm.size(); ++i)
    identity &= perm[i] == (int64_t)i;
  if (identity && getInput().getType() == getType())
    return getInput();
  return {};
}

OpFoldResult ConcatOp::fold(FoldAdaptor) {
  if (getInputs().size() == 1 && getInputs()[0].getType() == getType())
    return getInputs()[0];
  return {};
}

OpFoldResult SliceOp::fold(FoldAdaptor) {
  auto in = cast<RankedTensorType>(getInput().getType());
  if (in != getType() || !in.hasStaticShape())
    return {};
  for (int64_t d = 0; d < in.getRank(); ++d)
    if (getStarts()[d] != 0 || getSteps()[d] != 1 ||
        getEnds()[d] < in.getDimSize(d))
      return {};
  return getInput();
}

OpFoldResult ExpandOp::fold(FoldAdaptor) {
  if (getInput().getType() == getType() && getType().hasStaticShape())
    return getInput();
  return {};
}

OpFoldResult ShapeOfOp::fold(FoldAdaptor) {
  auto in = cast<RankedTensorType>(getInput().getType());
  if (!in.hasStaticShape() || !getType().hasStaticShape())
    return {};
  return DenseIntElementsAttr::get(getType(), in.getShape());
}
