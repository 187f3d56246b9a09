//===- Shapes.cpp - constants, shape manipulation, gather, trilu, range ---===//
//
// Shape ops become tensor ops where one exists (collapse/expand_shape,
// reshape, concat, extract_slice, from_elements) and linalg otherwise
// (transpose, broadcasting expand, negative-step slices, gather, trilu,
// range). Constants keep their attribute: a dense_resource blob is never
// expanded into per-element data.
//
//===----------------------------------------------------------------------===//

#include "Common.h"
#include "quench/Dialect/Quench/IR/QuenchConstants.h"

#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Utils/ReshapeOpsUtils.h"
#include "mlir/IR/BuiltinDialect.h"
#include "mlir/IR/DialectResourceBlobManager.h"

#include <cstring>

using namespace quench;
using namespace quench::to_linalg;

namespace {

/// Reinterprets `v` with the converted (signless) element type when the
/// original type was signed/unsigned.
Value toConverted(OpBuilder &b, Location l, Value v, Type convertedType) {
  if (v.getType() == convertedType)
    return v;
  return tensor::BitcastOp::create(b, l, convertedType, v);
}

Value castIfNeeded(OpBuilder &b, Location l, Value v, Type t) {
  if (v.getType() == t)
    return v;
  return tensor::CastOp::create(b, l, t, v);
}

/// `tensor.extract_slice`, or `tensor.empty` when a size is 0: the slice
/// verifier rejects a static offset at or past a static extent even for an
/// empty slice (offset 0 of a 0-extent dimension, offset 2 of a 2-extent one),
/// and an empty result reads nothing anyway.
Value extractSliceOrEmpty(OpBuilder &b, Location l, Value x,
                          ArrayRef<OpFoldResult> offsets,
                          ArrayRef<OpFoldResult> sizes,
                          ArrayRef<OpFoldResult> strides) {
  if (llvm::any_of(sizes,
                   [](OpFoldResult s) { return isConstantIntValue(s, 0); }))
    return emptyTensor(b, l, sizes,
                       cast<RankedTensorType>(x.getType()).getElementType());
  return tensor::ExtractSliceOp::create(b, l, x, offsets, sizes, strides);
}

/// Index value of element `i` of a 1-D i64 shape tensor.
Value shapeEntry(OpBuilder &b, Location l, Value shape, int64_t i) {
  Value e = tensor::ExtractOp::create(b, l, shape, ValueRange{indexConst(b, l, i)});
  return arith::IndexCastOp::create(b, l, b.getIndexType(), e);
}

struct ConstantLowering : OpConversionPattern<ConstantOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(ConstantOp op, OpAdaptor,
                  ConversionPatternRewriter &rewriter) const override {
    RankedTensorType resultType = convertedResultType(getTypeConverter(), op);
    Attribute value = op.getValue();
    if (op.getValue().getType() != resultType) {
      // Signed/unsigned data: the same bytes, retyped signless (a blob
      // keeps its handle; nothing is copied).
      if (auto dense = dyn_cast<DenseElementsAttr>(value))
        value = dense.bitcast(resultType.getElementType());
      else if (auto res = dyn_cast<DenseResourceElementsAttr>(value))
        value = DenseResourceElementsAttr::get(resultType, res.getRawHandle());
    }
    Value c = arith::ConstantOp::create(rewriter, op.getLoc(),
                                        cast<TypedAttr>(value));
    rewriter.replaceOp(op, toConverted(rewriter, op.getLoc(), c, resultType));
    return success();
  }
};

struct ReshapeLowering : OpConversionPattern<ReshapeOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(ReshapeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType rt = convertedResultType(getTypeConverter(), op);
    Value x = adaptor.getInput();
    auto xt = cast<RankedTensorType>(x.getType());
    if (xt.hasStaticShape() && rt.hasStaticShape()) {
      if (xt.getRank() > rt.getRank()) {
        if (auto re = getReassociationIndicesForCollapse(xt.getShape(), rt.getShape())) {
          rewriter.replaceOpWithNewOp<tensor::CollapseShapeOp>(op, rt, x, *re);
          return success();
        }
      } else if (xt.getRank() < rt.getRank()) {
        if (auto re = getReassociationIndicesForCollapse(rt.getShape(), xt.getShape())) {
          rewriter.replaceOpWithNewOp<tensor::ExpandShapeOp>(op, rt, x, *re);
          return success();
        }
      }
    } else if (xt.getRank() > rt.getRank()) {
      // Dynamic collapse: valid when the groups are determined by the
      // static extents (e.g. [?, 4, 8] -> [?, 32]).
      if (auto re = getReassociationIndicesForCollapse(xt.getShape(), rt.getShape())) {
        auto inferred = tensor::CollapseShapeOp::inferCollapsedType(xt, *re);
        if (inferred == rt) {
          rewriter.replaceOpWithNewOp<tensor::CollapseShapeOp>(op, rt, x, *re);
          return success();
        }
      }
    }
    Value shape = adaptor.getShape();
    if (!shape) {
      if (!rt.hasStaticShape())
        return rewriter.notifyMatchFailure(op, "dynamic result without shape");
      shape = arith::ConstantOp::create(
          rewriter, loc,
          DenseIntElementsAttr::get(
              RankedTensorType::get({rt.getRank()}, rewriter.getI64Type()),
              rt.getShape()));
    }
    // tensor.reshape views the input's buffer with the new extents: they
    // must be non-negative and multiply to the input's element count, or
    // the result reads outside it. The count is an allocated tensor's (no
    // overflow); the product's overflow is tracked (mului_extended).
    if (!xt.hasStaticShape() || !rt.hasStaticShape()) {
      std::string node = describeNode(loc, "a reshape") + " (Reshape)";
      Type i64 = rewriter.getI64Type();
      auto toI64 = [&](Value v) {
        return (Value)arith::IndexCastOp::create(rewriter, loc, i64, v);
      };
      Value count = arith::ConstantIntOp::create(rewriter, loc, i64, 1);
      for (int64_t d = 0; d < xt.getRank(); ++d)
        count = arith::MulIOp::create(rewriter, loc, count,
                                      toI64(dimValue(rewriter, loc, x, d)));
      Value product = arith::ConstantIntOp::create(rewriter, loc, i64, 1);
      Value zero = arith::ConstantIntOp::create(rewriter, loc, i64, 0);
      Value overflow = arith::ConstantIntOp::create(rewriter, loc,
                                                    rewriter.getI1Type(), 0);
      for (int64_t d = 0; d < rt.getRank(); ++d) {
        Value e = rt.isDynamicDim(d)
                      ? toI64(shapeEntry(rewriter, loc, shape, d))
                      : arith::ConstantIntOp::create(rewriter, loc, i64,
                                                     rt.getDimSize(d));
        if (rt.isDynamicDim(d))
          emitRuntimeCheck(
              rewriter, loc,
              arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::sge,
                                    e, zero),
              node + ": the requested extent {0} of dimension " +
                  std::to_string(d) + " is negative at run time",
              {e});
        auto m = arith::MulUIExtendedOp::create(rewriter, loc, product, e);
        product = m.getLow();
        overflow = arith::OrIOp::create(
            rewriter, loc, overflow,
            arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::ne,
                                  m.getHigh(), zero));
      }
      Value same = arith::CmpIOp::create(rewriter, loc,
                                         arith::CmpIPredicate::eq, product,
                                         count);
      Value ok = arith::AndIOp::create(
          rewriter, loc, same,
          arith::XOrIOp::create(
              rewriter, loc, overflow,
              arith::ConstantIntOp::create(rewriter, loc,
                                           rewriter.getI1Type(), 1)));
      emitRuntimeCheck(rewriter, loc, ok,
                       node + ": cannot reshape {0} elements into the "
                              "requested shape at run time (its extents "
                              "multiply to {1}, modulo 2^64)",
                       {count, product});
    }
    // tensor.reshape wants the shape's length static (= the result rank).
    auto shapeType = cast<RankedTensorType>(shape.getType());
    if (shapeType.isDynamicDim(0))
      shape = tensor::CastOp::create(rewriter, loc,
                                     shapeType.clone({rt.getRank()}), shape);
    rewriter.replaceOpWithNewOp<tensor::ReshapeOp>(op, rt, x, shape);
    return success();
  }
};

struct TransposeLowering : OpConversionPattern<TransposeOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(TransposeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType rt = convertedResultType(getTypeConverter(), op);
    Value x = adaptor.getInput();
    SmallVector<OpFoldResult> sizes;
    for (int64_t p : op.getPermutation())
      sizes.push_back(tensor::getMixedSize(rewriter, loc, x, p));
    Value init = emptyTensor(rewriter, loc, sizes, rt.getElementType());
    Value t = linalg::TransposeOp::create(rewriter, loc, x, init,
                                          op.getPermutation())
                  .getResult()[0];
    rewriter.replaceOp(op, castIfNeeded(rewriter, loc, t, rt));
    return success();
  }
};

struct ConcatLowering : OpConversionPattern<ConcatOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(ConcatOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    RankedTensorType rt = convertedResultType(getTypeConverter(), op);
    // tensor.concat assumes every dimension but the axis equal: check the
    // ones that are dynamic against the result's extent (the first input's
    // where the result's is dynamic), or the inserts write outside it.
    Location loc = op.getLoc();
    ValueRange inputs = adaptor.getInputs();
    int64_t axis = op.getAxis();
    for (int64_t d = 0; d < rt.getRank(); ++d) {
      if (d == axis)
        continue;
      Value expected;
      for (auto [i, v] : llvm::enumerate(inputs)) {
        auto t = cast<RankedTensorType>(v.getType());
        if (!t.isDynamicDim(d) && !rt.isDynamicDim(d))
          continue;
        if (!expected) {
          if (rt.isDynamicDim(d) && i == 0) {
            expected = dimValue(rewriter, loc, v, d);
            continue;
          }
          expected = rt.isDynamicDim(d)
                         ? dimValue(rewriter, loc, inputs[0], d)
                         : indexConst(rewriter, loc, rt.getDimSize(d));
        }
        Value have = dimValue(rewriter, loc, v, d);
        emitRuntimeCheck(
            rewriter, loc,
            arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::eq,
                                  have, expected),
            describeNode(loc, "a concat") + " (Concat): input " +
                std::to_string(i) + " has the extent {0} in dimension " +
                std::to_string(d) + ", not {1}, at run time (inconsistent "
                "input shapes)",
            {have, expected});
      }
    }
    rewriter.replaceOpWithNewOp<tensor::ConcatOp>(
        op, rt, rewriter.getI64IntegerAttr(axis), inputs);
    return success();
  }
};

struct SliceLowering : OpConversionPattern<SliceOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(SliceOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType rt = convertedResultType(getTypeConverter(), op);
    Value x = adaptor.getInput();
    auto xt = cast<RankedTensorType>(x.getType());
    ArrayRef<int64_t> starts = op.getStarts(), ends = op.getEnds(),
                      steps = op.getSteps();
    // Start and extent of every dimension (static where the types say so).
    SmallVector<OpFoldResult> offsets, sizes, strides;
    SmallVector<Value> startVals;
    for (int64_t d = 0; d < xt.getRank(); ++d) {
      int64_t step = steps[d];
      if (!xt.isDynamicDim(d)) {
        int64_t dim = xt.getDimSize(d);
        int64_t s = step > 0 ? std::min(starts[d], dim)
                             : std::min(starts[d], dim - 1);
        offsets.push_back(rewriter.getIndexAttr(s));
      } else {
        // start clamped to the run-time extent (dim for step > 0, dim - 1
        // for step < 0).
        Value dim = tensor::DimOp::create(rewriter, loc, x, d);
        Value lim = step > 0 ? dim
                             : (Value)arith::SubIOp::create(
                                   rewriter, loc, dim, indexConst(rewriter, loc, 1));
        offsets.push_back(
            (Value)arith::MinSIOp::create(rewriter, loc,
                                          indexConst(rewriter, loc, starts[d]), lim));
      }
      if (!rt.isDynamicDim(d)) {
        sizes.push_back(rewriter.getIndexAttr(rt.getDimSize(d)));
        // An empty slice may start at the extent, which extract_slice's
        // verifier rejects: any in-bounds offset reads the same nothing.
        if (rt.getDimSize(d) == 0)
          offsets.back() = rewriter.getIndexAttr(0);
      } else {
        // size = max(0, ceil((end' - start') / step)) with end clamped to
        // [-1, dim].
        Value dim = dimValue(rewriter, loc, x, d);
        Value start = getValueOrCreateConstantIndexOp(rewriter, loc, offsets.back());
        Value end = arith::MinSIOp::create(rewriter, loc,
                                           indexConst(rewriter, loc, ends[d]), dim);
        end = arith::MaxSIOp::create(rewriter, loc, end, indexConst(rewriter, loc, -1));
        Value span = step > 0 ? arith::SubIOp::create(rewriter, loc, end, start)
                              : arith::SubIOp::create(rewriter, loc, start, end);
        Value n = arith::CeilDivSIOp::create(rewriter, loc, span,
                                             indexConst(rewriter, loc, std::abs(step)));
        n = arith::MaxSIOp::create(rewriter, loc, n, indexConst(rewriter, loc, 0));
        sizes.push_back(n);
      }
      strides.push_back(rewriter.getIndexAttr(step));
    }
    bool negative = llvm::any_of(steps, [](int64_t s) { return s < 0; });
    if (!negative) {
      Value r = extractSliceOrEmpty(rewriter, loc, x, offsets, sizes, strides);
      rewriter.replaceOp(op, castIfNeeded(rewriter, loc, r, rt));
      return success();
    }
    // Negative steps: out[i...] = x[offset + i * step ...] via tensor.extract.
    Value init = emptyTensor(rewriter, loc, sizes, rt.getElementType());
    SmallVector<Value> offsetVals;
    for (OpFoldResult o : offsets)
      offsetVals.push_back(getValueOrCreateConstantIndexOp(rewriter, loc, o));
    auto g = linalg::GenericOp::create(
        rewriter, loc, TypeRange{init.getType()}, ValueRange{}, ValueRange{init},
        ArrayRef<AffineMap>{rewriter.getMultiDimIdentityMap(rt.getRank())},
        SmallVector<utils::IteratorType>(rt.getRank(), utils::IteratorType::parallel),
        [&](OpBuilder &b, Location l, ValueRange) {
          SmallVector<Value> idx;
          for (int64_t d = 0; d < rt.getRank(); ++d) {
            Value i = linalg::IndexOp::create(b, l, d);
            Value off = arith::MulIOp::create(b, l, i, indexConst(b, l, steps[d]));
            idx.push_back(arith::AddIOp::create(b, l, offsetVals[d], off));
          }
          linalg::YieldOp::create(b, l, (Value)tensor::ExtractOp::create(b, l, x, idx));
        });
    rewriter.replaceOp(op, castIfNeeded(rewriter, loc, g.getResult(0), rt));
    return success();
  }
};

struct SplitLowering : OpConversionPattern<SplitOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(SplitOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = adaptor.getInput();
    auto xt = cast<RankedTensorType>(x.getType());
    int64_t axis = op.getAxis(), offset = 0;
    SmallVector<Value> results;
    for (auto [i, size] : llvm::enumerate(op.getSizes())) {
      RankedTensorType rt = convertedResultType(getTypeConverter(), op, i);
      SmallVector<OpFoldResult> offsets(xt.getRank(), rewriter.getIndexAttr(0)),
          sizes = tensor::getMixedSizes(rewriter, loc, x),
          strides(xt.getRank(), rewriter.getIndexAttr(1));
      offsets[axis] = rewriter.getIndexAttr(offset);
      sizes[axis] = rewriter.getIndexAttr(size);
      offset += size;
      Value r = extractSliceOrEmpty(rewriter, loc, x, offsets, sizes, strides);
      results.push_back(castIfNeeded(rewriter, loc, r, rt));
    }
    rewriter.replaceOp(op, results);
    return success();
  }
};

struct ExpandLowering : OpConversionPattern<ExpandOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(ExpandOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType rt = convertedResultType(getTypeConverter(), op);
    Value x = adaptor.getInput(), shape = adaptor.getShape();
    auto xt = cast<RankedTensorType>(x.getType());
    int64_t r = rt.getRank();
    // Every input dimension that is not a static 1 is read with the
    // result's index (broadcastMap): its run-time extent must equal the
    // result's, else the loops read outside the input (a run-time 1 does
    // not broadcast, as for elementwise ops). A requested extent must
    // broadcast with the input's (ONNX: 1 or equal) and not be negative.
    std::string node = describeNode(loc, "an expand") + " (Expand)";
    SmallVector<OpFoldResult> sizes;
    for (int64_t d = 0; d < r; ++d) {
      int64_t od = d - (r - xt.getRank());
      bool inputHasIt = od >= 0 && xt.getDimSize(od) != 1;
      std::string dimName = " of dimension " + std::to_string(d);
      if (!rt.isDynamicDim(d)) {
        int64_t extent = rt.getDimSize(d);
        sizes.push_back(rewriter.getIndexAttr(extent));
        if (shape) {
          // The request must give this extent (or 1 where the input has it).
          Value want = shapeEntry(rewriter, loc, shape, d);
          Value ok = arith::CmpIOp::create(rewriter, loc,
                                           arith::CmpIPredicate::eq, want,
                                           indexConst(rewriter, loc, extent));
          if (inputHasIt && extent != 1)
            ok = arith::OrIOp::create(
                rewriter, loc, ok,
                arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::eq,
                                      want, indexConst(rewriter, loc, 1)));
          emitRuntimeCheck(rewriter, loc, ok,
                           node + ": the requested extent {0}" + dimName +
                               " does not broadcast to the result's {1} at "
                               "run time",
                           {want, indexConst(rewriter, loc, extent)});
        }
        if (inputHasIt && xt.isDynamicDim(od)) {
          Value have = dimValue(rewriter, loc, x, od);
          Value want = indexConst(rewriter, loc, rt.getDimSize(d));
          emitRuntimeCheck(
              rewriter, loc,
              arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::eq,
                                    have, want),
              node + ": the input's extent {0}" + dimName +
                  " does not broadcast to the result's {1} at run time",
              {have, want});
        }
        continue;
      }
      Value fromInput = inputHasIt ? dimValue(rewriter, loc, x, od) : Value();
      if (!shape) {
        if (!fromInput)
          return rewriter.notifyMatchFailure(op, "dynamic extent unknown");
        sizes.push_back(fromInput);
        continue;
      }
      // The NumPy broadcast of the requested extent and the input's.
      Value want = shapeEntry(rewriter, loc, shape, d);
      if (!fromInput) {
        emitRuntimeCheck(
            rewriter, loc,
            arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::sge,
                                  want, indexConst(rewriter, loc, 0)),
            node + ": the requested extent {0}" + dimName +
                " is negative at run time",
            {want});
        sizes.push_back(want);
        continue;
      }
      Value one = arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::eq,
                                        want, indexConst(rewriter, loc, 1));
      Value ok = arith::OrIOp::create(
          rewriter, loc, one,
          arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::eq, want,
                                fromInput));
      emitRuntimeCheck(rewriter, loc, ok,
                       node + ": the requested extent {0}" + dimName +
                           " does not broadcast with the input's {1} at run "
                           "time (it must be 1 or equal; a run-time input "
                           "extent of 1 does not broadcast)",
                       {want, fromInput});
      sizes.push_back(fromInput);
    }
    Value init = emptyTensor(rewriter, loc, sizes, rt.getElementType());
    auto initType = cast<RankedTensorType>(init.getType());
    SmallVector<AffineMap> maps{
        broadcastMap(getContext(), xt.getShape(), initType.getShape()),
        rewriter.getMultiDimIdentityMap(r)};
    auto g = linalg::GenericOp::create(
        rewriter, loc, TypeRange{initType}, ValueRange{x}, ValueRange{init},
        maps, SmallVector<utils::IteratorType>(r, utils::IteratorType::parallel),
        [](OpBuilder &b, Location l, ValueRange a) {
          linalg::YieldOp::create(b, l, a[0]);
        });
    rewriter.replaceOp(op, castIfNeeded(rewriter, loc, g.getResult(0), rt));
    return success();
  }
};

struct SqueezeLowering : OpConversionPattern<SqueezeOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(SqueezeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType rt = convertedResultType(getTypeConverter(), op);
    Value x = adaptor.getInput();
    auto xt = cast<RankedTensorType>(x.getType());
    // Dynamic squeezed dims are asserted to be 1 by a tensor.cast.
    SmallVector<int64_t> shape(xt.getShape());
    for (int64_t a : op.getAxes())
      shape[a] = 1;
    x = castIfNeeded(rewriter, loc, x, xt.clone(shape));
    rewriter.replaceOpWithNewOp<tensor::CollapseShapeOp>(
        op, rt, x, unitDimReassociation(xt.getRank(), op.getAxes()));
    return success();
  }
};

struct UnsqueezeLowering : OpConversionPattern<UnsqueezeOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(UnsqueezeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType rt = convertedResultType(getTypeConverter(), op);
    Value x = adaptor.getInput();
    ArrayRef<int64_t> axes = op.getAxes();
    SmallVector<OpFoldResult> outShape;
    int64_t j = 0;
    for (int64_t d = 0; d < rt.getRank(); ++d)
      outShape.push_back(llvm::is_contained(axes, d)
                             ? OpFoldResult(rewriter.getIndexAttr(1))
                             : tensor::getMixedSize(rewriter, loc, x, j++));
    rewriter.replaceOpWithNewOp<tensor::ExpandShapeOp>(
        op, rt, x, unitDimReassociation(rt.getRank(), axes), outShape);
    return success();
  }
};

struct TriluLowering : OpConversionPattern<TriluOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(TriluOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    RankedTensorType rt = convertedResultType(getTypeConverter(), op);
    int64_t r = rt.getRank(), k = op.getK();
    bool upper = op.getUpper();
    Value result = buildElementwise(
        rewriter, op.getLoc(), rt, {adaptor.getInput()},
        [&](OpBuilder &b, Location l, ValueRange a) -> Value {
          Value row = linalg::IndexOp::create(b, l, r - 2);
          Value col = linalg::IndexOp::create(b, l, r - 1);
          Value diff = arith::SubIOp::create(b, l, col, row);
          Value keep = arith::CmpIOp::create(
              b, l, upper ? arith::CmpIPredicate::sge : arith::CmpIPredicate::sle,
              diff, indexConst(b, l, k));
          Type t = a[0].getType();
          Value zero = isa<FloatType>(t) ? floatConst(b, l, t, 0.0)
                                         : intConst(b, l, t, 0);
          return arith::SelectOp::create(b, l, keep, a[0], zero);
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct ShapeOfLowering : OpConversionPattern<ShapeOfOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(ShapeOfOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType rt = convertedResultType(getTypeConverter(), op);
    Value x = adaptor.getInput();
    int64_t rank = cast<RankedTensorType>(x.getType()).getRank();
    if (rank == 0) {
      rewriter.replaceOpWithNewOp<arith::ConstantOp>(
          op, DenseIntElementsAttr::get(rt, ArrayRef<int64_t>{}));
      return success();
    }
    SmallVector<Value> dims;
    for (int64_t d = 0; d < rank; ++d)
      dims.push_back(arith::IndexCastOp::create(rewriter, loc, rewriter.getI64Type(),
                                                dimValue(rewriter, loc, x, d)));
    rewriter.replaceOpWithNewOp<tensor::FromElementsOp>(op, rt, dims);
    return success();
  }
};

struct RangeLowering : OpConversionPattern<RangeOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(RangeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType rt = convertedResultType(getTypeConverter(), op);
    Type et = rt.getElementType();
    bool fl = isa<FloatType>(et);
    bool u = isUnsignedLike(getElementTypeOrSelf(op.getType()));
    auto scalarOf = [&](Value t) {
      return tensor::ExtractOp::create(rewriter, loc, t, ValueRange{});
    };
    Value start = scalarOf(adaptor.getStart()), limit = scalarOf(adaptor.getLimit()),
          delta = scalarOf(adaptor.getDelta());
    OpFoldResult n;
    if (!rt.isDynamicDim(0)) {
      n = rewriter.getIndexAttr(rt.getDimSize(0));
    } else {
      // n = max(ceil((limit - start) / delta), 0)
      Value count;
      if (fl) {
        Value q = arith::DivFOp::create(
            rewriter, loc, arith::SubFOp::create(rewriter, loc, limit, start), delta);
        Value c = math::CeilOp::create(rewriter, loc, q);
        count = arith::FPToSIOp::create(rewriter, loc, rewriter.getI64Type(), c);
      } else {
        Value span = arith::SubIOp::create(rewriter, loc, limit, start);
        count = u ? (Value)arith::CeilDivUIOp::create(rewriter, loc, span, delta)
                  : (Value)arith::CeilDivSIOp::create(rewriter, loc, span, delta);
        count = u ? (Value)arith::IndexCastUIOp::create(rewriter, loc,
                                                       rewriter.getIndexType(), count)
                  : (Value)arith::IndexCastOp::create(rewriter, loc,
                                                     rewriter.getIndexType(), count);
      }
      if (fl)
        count = arith::IndexCastOp::create(rewriter, loc, rewriter.getIndexType(), count);
      n = (Value)arith::MaxSIOp::create(rewriter, loc, count,
                                        indexConst(rewriter, loc, 0));
    }
    Value init = emptyTensor(rewriter, loc, {n}, et);
    auto g = linalg::GenericOp::create(
        rewriter, loc, TypeRange{init.getType()}, ValueRange{}, ValueRange{init},
        ArrayRef<AffineMap>{rewriter.getMultiDimIdentityMap(1)},
        {utils::IteratorType::parallel},
        [&](OpBuilder &b, Location l, ValueRange) {
          Value i = linalg::IndexOp::create(b, l, 0);
          Value i64 = arith::IndexCastOp::create(b, l, b.getI64Type(), i);
          Value v;
          if (fl) {
            Value fi = arith::SIToFPOp::create(b, l, et, i64);
            v = arith::AddFOp::create(b, l, start,
                                      arith::MulFOp::create(b, l, fi, delta));
          } else {
            unsigned w = et.getIntOrFloatBitWidth();
            Value ii = w < 64 ? (Value)arith::TruncIOp::create(b, l, et, i64) : i64;
            v = arith::AddIOp::create(b, l, start,
                                      arith::MulIOp::create(b, l, ii, delta));
          }
          linalg::YieldOp::create(b, l, v);
        });
    rewriter.replaceOp(op, castIfNeeded(rewriter, loc, g.getResult(0), rt));
    return success();
  }
};

/// Ends the run with an error naming the node, the offending index and the
/// valid range when an index of `indices` (any integer type) is outside
/// [-size, size), `size` the extent of the gathered axis `axis`: the
/// indices' minimum and maximum, reduced at the top level, each compared
/// once (docs/reliability.md). ONNX calls such indices an error.
static void checkGatherIndices(OpBuilder &b, Location loc, Value indices,
                               Value size, int64_t axis) {
  auto it = cast<RankedTensorType>(indices.getType());
  Type et = it.getElementType();
  unsigned width = et.getIntOrFloatBitWidth();
  Value lo, hi;
  if (it.getRank() == 0) {
    lo = hi = tensor::ExtractOp::create(b, loc, indices, ValueRange{});
  } else {
    auto scalarTy = RankedTensorType::get({}, et);
    auto init = [&](APInt v) {
      Value e = tensor::EmptyOp::create(b, loc, scalarTy.getShape(), et);
      Value c = arith::ConstantOp::create(b, loc, b.getIntegerAttr(et, v));
      return linalg::FillOp::create(b, loc, c, e).getResult(0);
    };
    int64_t r = it.getRank();
    MLIRContext *ctx = b.getContext();
    auto scalarMap = AffineMap::get(r, 0, ArrayRef<AffineExpr>{}, ctx);
    auto g = linalg::GenericOp::create(
        b, loc, TypeRange{scalarTy, scalarTy}, ValueRange{indices},
        ValueRange{init(APInt::getSignedMaxValue(width)),
                   init(APInt::getSignedMinValue(width))},
        ArrayRef<AffineMap>{b.getMultiDimIdentityMap(r), scalarMap,
                            scalarMap},
        SmallVector<utils::IteratorType>(r, utils::IteratorType::reduction),
        [&](OpBuilder &nb, Location l, ValueRange a) {
          linalg::YieldOp::create(
              nb, l,
              ValueRange{arith::MinSIOp::create(nb, l, a[0], a[1]),
                         arith::MaxSIOp::create(nb, l, a[0], a[2])});
        });
    lo = tensor::ExtractOp::create(b, loc, g.getResult(0), ValueRange{});
    hi = tensor::ExtractOp::create(b, loc, g.getResult(1), ValueRange{});
  }
  // In i64: the index type's width is the target's, an i64 index need not
  // fit; `size` does.
  Type i64 = b.getI64Type();
  auto widen = [&](Value v) -> Value {
    return width < 64 ? (Value)arith::ExtSIOp::create(b, loc, i64, v) : v;
  };
  lo = widen(lo);
  hi = widen(hi);
  Value n = arith::IndexCastOp::create(b, loc, i64, size);
  Value negN = arith::SubIOp::create(
      b, loc, arith::ConstantIntOp::create(b, loc, i64, 0), n);
  Value loOk =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, lo, negN);
  Value ok = arith::AndIOp::create(
      b, loc, loOk,
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, hi, n));
  // The index the message names: the minimum when it is the one below.
  Value bad = arith::SelectOp::create(b, loc, loOk, hi, lo);
  emitRuntimeCheck(b, loc, ok,
                   describeNode(loc, "a gather") +
                       " (Gather): index {0} is outside [-{1}, {1}) of axis " +
                       std::to_string(axis) +
                       " at run time (e.g. a token id not below the "
                       "vocabulary size, or more positions than the model's "
                       "position table)",
                   {bad, n});
}

/// The values of `indices` when it is a constant (a dense literal or a
/// resource blob of i32/i64), else std::nullopt.
static std::optional<SmallVector<int64_t>> constantIndices(Value indices) {
  ElementsAttr attr;
  if (!matchPattern(indices, m_Constant(&attr)))
    return std::nullopt;
  SmallVector<int64_t> values;
  if (auto dense = dyn_cast<DenseIntElementsAttr>(attr)) {
    for (const APInt &v : dense)
      values.push_back(v.getSExtValue());
    return values;
  }
  Type et = attr.getElementType();
  std::optional<ArrayRef<char>> raw = getRawConstantData(attr);
  if (!raw || !et.isInteger() ||
      (et.getIntOrFloatBitWidth() != 32 && et.getIntOrFloatBitWidth() != 64))
    return std::nullopt;
  bool wide = et.getIntOrFloatBitWidth() == 64;
  size_t bytes = wide ? 8 : 4;
  for (size_t at = 0; at + bytes <= raw->size(); at += bytes) {
    if (wide) {
      int64_t v;
      std::memcpy(&v, raw->data() + at, 8);
      values.push_back(v);
    } else {
      int32_t v;
      std::memcpy(&v, raw->data() + at, 4);
      values.push_back(v);
    }
  }
  return values;
}

struct GatherLowering : OpConversionPattern<GatherOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(GatherOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    RankedTensorType rt = convertedResultType(getTypeConverter(), op);
    Value data = adaptor.getData(), indices = adaptor.getIndices();
    auto dt = cast<RankedTensorType>(data.getType());
    auto it = cast<RankedTensorType>(indices.getType());
    int64_t axis = op.getAxis(), ir = it.getRank(), r = rt.getRank();
    // result = data[:axis] ++ indices ++ data[axis+1:]
    SmallVector<OpFoldResult> sizes;
    for (int64_t d = 0; d < axis; ++d)
      sizes.push_back(tensor::getMixedSize(rewriter, loc, data, d));
    for (int64_t d = 0; d < ir; ++d)
      sizes.push_back(tensor::getMixedSize(rewriter, loc, indices, d));
    for (int64_t d = axis + 1; d < dt.getRank(); ++d)
      sizes.push_back(tensor::getMixedSize(rewriter, loc, data, d));
    Value init = emptyTensor(rewriter, loc, sizes, rt.getElementType());
    SmallVector<AffineExpr> ie;
    for (int64_t d = 0; d < ir; ++d)
      ie.push_back(getAffineDimExpr(axis + d, ctx));
    Value axisDim = dimValue(rewriter, loc, data, axis);
    // Constant indices into a static axis are checked here, a compile
    // error (the importer checks those it tracks; this also covers big
    // initializers and IR not from ONNX); anything else at run time.
    if (std::optional<SmallVector<int64_t>> known =
            constantIndices(op.getIndices());
        known && !dt.isDynamicDim(axis)) {
      int64_t n = dt.getDimSize(axis);
      for (int64_t i : *known)
        if (i < -n || i >= n)
          return op.emitError()
                 << describeNode(loc, "a gather") << " (Gather): index " << i
                 << " is outside [-" << n << ", " << n << ") of axis " << axis;
    } else {
      checkGatherIndices(rewriter, loc, indices, axisDim, axis);
    }
    auto g = linalg::GenericOp::create(
        rewriter, loc, TypeRange{init.getType()}, ValueRange{indices},
        ValueRange{init},
        ArrayRef<AffineMap>{AffineMap::get(r, 0, ie, ctx),
                            rewriter.getMultiDimIdentityMap(r)},
        SmallVector<utils::IteratorType>(r, utils::IteratorType::parallel),
        [&](OpBuilder &b, Location l, ValueRange a) {
          Value idx = arith::IndexCastOp::create(b, l, b.getIndexType(), a[0]);
          Value neg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, idx,
                                            indexConst(b, l, 0));
          idx = arith::SelectOp::create(
              b, l, neg, arith::AddIOp::create(b, l, idx, axisDim), idx);
          // Out-of-range indices never get here (checkGatherIndices ended
          // the run; constant ones are an import error): the clamp only
          // keeps the read inside the table should a pipeline drop the
          // check, it never changes the result of a run that passed it.
          idx = arith::MaxSIOp::create(
              b, l,
              arith::MinSIOp::create(
                  b, l, idx,
                  arith::SubIOp::create(b, l, axisDim, indexConst(b, l, 1))),
              indexConst(b, l, 0));
          SmallVector<Value> coords;
          for (int64_t d = 0; d < axis; ++d)
            coords.push_back(linalg::IndexOp::create(b, l, d));
          coords.push_back(idx);
          for (int64_t d = axis + 1; d < dt.getRank(); ++d)
            coords.push_back(linalg::IndexOp::create(b, l, d - 1 + ir));
          linalg::YieldOp::create(b, l,
                                  (Value)tensor::ExtractOp::create(b, l, data, coords));
        });
    rewriter.replaceOp(op, castIfNeeded(rewriter, loc, g.getResult(0), rt));
    return success();
  }
};

} // namespace

void to_linalg::populateShapePatterns(const TypeConverter &converter,
                                      RewritePatternSet &patterns) {
  patterns.add<ConstantLowering, ReshapeLowering, TransposeLowering,
               ConcatLowering, SliceLowering, SplitLowering, ExpandLowering,
               SqueezeLowering, UnsqueezeLowering, TriluLowering,
               ShapeOfLowering, RangeLowering, GatherLowering>(
      converter, patterns.getContext());
}
