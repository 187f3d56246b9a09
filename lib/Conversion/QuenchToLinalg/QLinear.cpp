//===- QLinear.cpp - quench.qlinear (W8A8) to linalg ----------------------===//
//
// The W8A8 linear layer as four linalg ops on tensors, loops over the rows
// of the input (all its leading dims) and then N / K:
//
//   dynamic only: amax[r] = max_k |x[r, k]| (reduction),
//                 s[r] = amax[r] == 0 ? 1 : amax[r] / 127 (elementwise)
//   q[r, k]   = i8(clamp(round_half_even(x[r, k] / s), -127, 127))
//   acc[r, n] = sum_k i32(q[r, k]) * i32(w[n, k])   (i8 x i8 -> i32)
//   y[r, n]   = f32(acc[r, n]) * s * w_scale[n] (+ bias[n])
//
// The contraction is a plain generic `acc + extsi(a) * extsi(b)` reading
// the weight as stored, [N, K]; the codegen stage names it (linalg.contract,
// vectorized as outer products on i32 lanes) and stores a constant weight
// [K, N] at compile time (quench-cpu-pretranspose-rhs), as for float
// linears. The static scale is a constant in the bodies.
//
//===----------------------------------------------------------------------===//

#include "Common.h"

#include "mlir/Dialect/Utils/StructuredOpsUtils.h"

using namespace quench;
using namespace quench::to_linalg;

namespace {

struct QLinearLowering : OpConversionPattern<QLinearOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(QLinearOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    RankedTensorType resultType = convertedResultType(getTypeConverter(), op);
    Value x = adaptor.getInput(), w = adaptor.getWeight(),
          wScale = adaptor.getWeightScale(), bias = adaptor.getBias();
    auto xType = cast<RankedTensorType>(x.getType());
    int64_t rows = xType.getRank() - 1; // leading dims of the input
    Type f32 = rewriter.getF32Type(), i8 = rewriter.getI8Type(),
         i32 = rewriter.getI32Type();
    auto par = utils::IteratorType::parallel;
    auto red = utils::IteratorType::reduction;

    SmallVector<OpFoldResult> rowSizes;
    for (int64_t d = 0; d < rows; ++d)
      rowSizes.push_back(tensor::getMixedSize(rewriter, loc, x, d));
    SmallVector<OpFoldResult> xSizes(rowSizes);
    xSizes.push_back(tensor::getMixedSize(rewriter, loc, x, rows));

    // The first `count` of `numDims` loops (getMajorSubMap gives a null
    // map for 0 results: a 1-D input has no row loops).
    auto leading = [&](unsigned numDims, unsigned count) {
      SmallVector<AffineExpr> exprs;
      for (unsigned d = 0; d < count; ++d)
        exprs.push_back(getAffineDimExpr(d, ctx));
      return AffineMap::get(numDims, 0, exprs, ctx);
    };
    // Maps over (rows..., k): the whole input, and its row.
    AffineMap xId = AffineMap::getMultiDimIdentityMap(rows + 1, ctx);
    AffineMap rowOfX = leading(rows + 1, rows);

    // Per-row scales (dynamic): amax by a reduction over k, then
    // s = amax / 127, 1 for a row of zeros.
    Value scales;
    if (op.isDynamic()) {
      Value init = filledTensor(rewriter, loc, rowSizes,
                                floatConst(rewriter, loc, f32, 0.0));
      SmallVector<utils::IteratorType> iters(rows, par);
      iters.push_back(red);
      Value amax =
          linalg::GenericOp::create(
              rewriter, loc, TypeRange{init.getType()}, ValueRange{x},
              ValueRange{init}, ArrayRef<AffineMap>{xId, rowOfX}, iters,
              [&](OpBuilder &b, Location l, ValueRange a) {
                Value m = arith::MaximumFOp::create(
                    b, l, a[1], math::AbsFOp::create(b, l, a[0]));
                linalg::YieldOp::create(b, l, m);
              })
              .getResult(0);
      AffineMap rowId = AffineMap::getMultiDimIdentityMap(rows, ctx);
      Value empty = emptyTensor(rewriter, loc, rowSizes, f32);
      scales =
          linalg::GenericOp::create(
              rewriter, loc, TypeRange{empty.getType()}, ValueRange{amax},
              ValueRange{empty}, ArrayRef<AffineMap>{rowId, rowId},
              SmallVector<utils::IteratorType>(rows, par),
              [&](OpBuilder &b, Location l, ValueRange a) {
                Value s = arith::DivFOp::create(
                    b, l, a[0], floatConst(b, l, f32, 127.0));
                Value zero = arith::CmpFOp::create(
                    b, l, arith::CmpFPredicate::OEQ, a[0],
                    floatConst(b, l, f32, 0.0));
                linalg::YieldOp::create(
                    b, l,
                    (Value)arith::SelectOp::create(
                        b, l, zero, floatConst(b, l, f32, 1.0), s));
              })
              .getResult(0);
    }
    double staticScale =
        op.isDynamic() ? 0.0 : op.getInputScaleAttr().getValueAsDouble();
    // The row's scale inside a body: the block argument `a` (dynamic) or
    // the constant.
    auto rowScale = [&](OpBuilder &b, Location l, Value a) -> Value {
      return scales ? a : floatConst(b, l, f32, staticScale);
    };

    // Quantize: q = i8(clamp(round_half_even(x / s), -127, 127)), NaN -> 0.
    SmallVector<Value> qInputs{x};
    SmallVector<AffineMap> qMaps{xId};
    if (scales) {
      qInputs.push_back(scales);
      qMaps.push_back(rowOfX);
    }
    qMaps.push_back(xId);
    Value qEmpty = emptyTensor(rewriter, loc, xSizes, i8);
    Value q =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{qEmpty.getType()}, qInputs,
            ValueRange{qEmpty}, qMaps,
            SmallVector<utils::IteratorType>(rows + 1, par),
            [&](OpBuilder &b, Location l, ValueRange a) {
              Value s = rowScale(b, l, scales ? a[1] : Value());
              Value v = math::RoundEvenOp::create(
                  b, l, arith::DivFOp::create(b, l, a[0], s));
              Value nan = arith::CmpFOp::create(
                  b, l, arith::CmpFPredicate::UNO, v, v);
              v = arith::SelectOp::create(b, l, nan,
                                          floatConst(b, l, f32, 0.0), v);
              v = arith::MaxNumFOp::create(b, l, v,
                                           floatConst(b, l, f32, -127.0));
              v = arith::MinNumFOp::create(b, l, v,
                                           floatConst(b, l, f32, 127.0));
              Value i = arith::FPToSIOp::create(b, l, i32, v);
              linalg::YieldOp::create(
                  b, l, (Value)arith::TruncIOp::create(b, l, i8, i));
            })
            .getResult(0);

    // The exact i8 x i8 -> i32 contraction, loops (rows..., n, k).
    SmallVector<OpFoldResult> accSizes(rowSizes);
    accSizes.push_back(tensor::getMixedSize(rewriter, loc, w, 0));
    Value accInit =
        filledTensor(rewriter, loc, accSizes, intConst(rewriter, loc, i32, 0));
    int64_t n = rows, k = rows + 1;
    SmallVector<AffineExpr> qe;
    for (int64_t d = 0; d < rows; ++d)
      qe.push_back(getAffineDimExpr(d, ctx));
    qe.push_back(getAffineDimExpr(k, ctx));
    AffineMap qMap = AffineMap::get(rows + 2, 0, qe, ctx);
    AffineMap wMap = AffineMap::get(
        rows + 2, 0, {getAffineDimExpr(n, ctx), getAffineDimExpr(k, ctx)}, ctx);
    AffineMap accMap = leading(rows + 2, rows + 1);
    SmallVector<utils::IteratorType> cIters(rows + 1, par);
    cIters.push_back(red);
    Value acc =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{accInit.getType()}, ValueRange{q, w},
            ValueRange{accInit}, ArrayRef<AffineMap>{qMap, wMap, accMap},
            cIters,
            [&](OpBuilder &b, Location l, ValueRange a) {
              Value qa = arith::ExtSIOp::create(b, l, i32, a[0]);
              Value wb = arith::ExtSIOp::create(b, l, i32, a[1]);
              Value p = arith::MulIOp::create(b, l, qa, wb);
              linalg::YieldOp::create(
                  b, l, (Value)arith::AddIOp::create(b, l, a[2], p));
            })
            .getResult(0);

    // Epilogue over (rows..., n): f32(acc) * s * w_scale[n] (+ bias[n]).
    AffineMap yId = AffineMap::getMultiDimIdentityMap(rows + 1, ctx);
    AffineMap nOnly = AffineMap::get(rows + 1, 0, {getAffineDimExpr(n, ctx)},
                                     ctx);
    SmallVector<Value> eInputs{acc, wScale};
    SmallVector<AffineMap> eMaps{yId, nOnly};
    int64_t sIdx = -1, bIdx = -1;
    if (scales) {
      sIdx = eInputs.size();
      eInputs.push_back(scales);
      eMaps.push_back(leading(rows + 1, rows));
    }
    if (bias) {
      bIdx = eInputs.size();
      eInputs.push_back(bias);
      eMaps.push_back(nOnly);
    }
    eMaps.push_back(yId);
    Value yEmpty = emptyTensor(rewriter, loc, accSizes, f32);
    Value y =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{yEmpty.getType()}, eInputs,
            ValueRange{yEmpty}, eMaps,
            SmallVector<utils::IteratorType>(rows + 1, par),
            [&](OpBuilder &b, Location l, ValueRange a) {
              Value s = rowScale(b, l, sIdx >= 0 ? a[sIdx] : Value());
              Value v = arith::SIToFPOp::create(b, l, f32, a[0]);
              v = arith::MulFOp::create(b, l, v, s);
              v = arith::MulFOp::create(b, l, v, a[1]);
              if (bIdx >= 0)
                v = arith::AddFOp::create(b, l, v, a[bIdx]);
              linalg::YieldOp::create(b, l, v);
            })
            .getResult(0);
    if (y.getType() != resultType)
      y = tensor::CastOp::create(rewriter, loc, resultType, y);
    rewriter.replaceOp(op, y);
    return success();
  }
};

} // namespace

void to_linalg::populateQLinearPatterns(const TypeConverter &converter,
                                        RewritePatternSet &patterns) {
  patterns.add<QLinearLowering>(converter, patterns.getContext());
}
