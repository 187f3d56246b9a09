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
// With outlier channels O (outlier splitting), a constant mask keep[k]
// (k not in O) zeroes their codes and leaves them out of amax, and two more
// ops compute their float part, which the epilogue adds before the bias:
//
//   xo[r, c]  = x[r, O[c]]                          (a gather, M x C)
//   yo[r, n]  = sum_c xo[r, c] * wo[n, c]           (f32 contraction)
//
// yo carries quench.outlier_product: the CPU int8 kernel
// (lib/Codegen/CPU/Int8Matmul.cpp) computes it in the epilogue's register
// tiles instead of storing it.
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
          wScale = adaptor.getWeightScale(), bias = adaptor.getBias(),
          wo = adaptor.getOutlierWeight();
    auto xType = cast<RankedTensorType>(x.getType());
    // Outlier channels need a static K (the mask is a constant).
    int64_t kStatic = cast<RankedTensorType>(w.getType()).getDimSize(1);
    if (wo && ShapedType::isDynamic(kStatic))
      return rewriter.notifyMatchFailure(
          op, "outlier channels need a static in_features");
    int64_t rows = xType.getRank() - 1; // leading dims of the input
    checkContractedExtent(rewriter, loc, "QLinear", x, rows,
                          tensor::getMixedSize(rewriter, loc, w, 1));
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
    AffineMap kOfX = AffineMap::get(rows + 1, 0, {getAffineDimExpr(rows, ctx)},
                                    ctx);
    // keep[k]: 0 on the outlier channels, else 1 (i8, not i1: vector
    // loads of an i8 mask stay plain loads, an i1 memref does not).
    Value keep;
    ArrayRef<int64_t> channels;
    if (wo) {
      channels = *op.getOutlierChannels();
      SmallVector<int8_t> mask(kStatic, 1);
      for (int64_t c : channels)
        mask[c] = 0;
      auto maskType = RankedTensorType::get({kStatic}, i8);
      keep = arith::ConstantOp::create(
          rewriter, loc,
          DenseElementsAttr::get(maskType, ArrayRef<int8_t>(mask)));
    }
    auto kept = [&](OpBuilder &b, Location l, Value m) -> Value {
      return arith::CmpIOp::create(b, l, arith::CmpIPredicate::ne, m,
                                   intConst(b, l, i8, 0));
    };

    // Per-row scales (dynamic): amax by a reduction over k, then
    // s = amax / 127, 1 for a row of zeros.
    Value scales;
    if (op.isDynamic()) {
      Value init = filledTensor(rewriter, loc, rowSizes,
                                floatConst(rewriter, loc, f32, 0.0));
      SmallVector<utils::IteratorType> iters(rows, par);
      iters.push_back(red);
      SmallVector<Value> aInputs{x};
      SmallVector<AffineMap> aMaps{xId};
      if (keep) {
        aInputs.push_back(keep);
        aMaps.push_back(kOfX);
      }
      aMaps.push_back(rowOfX);
      Value amax =
          linalg::GenericOp::create(
              rewriter, loc, TypeRange{init.getType()}, aInputs,
              ValueRange{init}, aMaps, iters,
              [&](OpBuilder &b, Location l, ValueRange a) {
                Value v = math::AbsFOp::create(b, l, a[0]);
                if (keep) // outlier channels count as 0
                  v = arith::SelectOp::create(b, l, kept(b, l, a[1]), v,
                                              floatConst(b, l, f32, 0.0));
                Value m = arith::MaximumFOp::create(b, l, a.back(), v);
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
    if (keep) {
      qInputs.push_back(keep);
      qMaps.push_back(kOfX);
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
              Value q = arith::TruncIOp::create(b, l, i8, i);
              if (keep) // outlier channels: code 0
                q = arith::SelectOp::create(
                    b, l, kept(b, l, a[qInputs.size() - 1]), q,
                    intConst(b, l, i8, 0));
              linalg::YieldOp::create(b, l, q);
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

    // The float part of the outlier channels: xo = x[..., O] (a gather),
    // yo = xo * wo^T over (rows..., n, c).
    Value yo;
    if (wo) {
      int64_t c = static_cast<int64_t>(channels.size());
      auto chanType = RankedTensorType::get({c}, rewriter.getI64Type());
      Value chan = arith::ConstantOp::create(
          rewriter, loc, DenseElementsAttr::get(chanType, channels));
      SmallVector<OpFoldResult> xoSizes(rowSizes);
      xoSizes.push_back(rewriter.getIndexAttr(c));
      Value xoEmpty = emptyTensor(rewriter, loc, xoSizes, f32);
      AffineMap cOnly = AffineMap::get(rows + 1, 0,
                                       {getAffineDimExpr(rows, ctx)}, ctx);
      Value xo =
          linalg::GenericOp::create(
              rewriter, loc, TypeRange{xoEmpty.getType()}, ValueRange{chan},
              ValueRange{xoEmpty}, ArrayRef<AffineMap>{cOnly, xId},
              SmallVector<utils::IteratorType>(rows + 1, par),
              [&](OpBuilder &b, Location l, ValueRange a) {
                SmallVector<Value> at;
                for (int64_t d = 0; d < rows; ++d)
                  at.push_back(linalg::IndexOp::create(b, l, d));
                at.push_back(arith::IndexCastOp::create(
                    b, l, b.getIndexType(), a[0]));
                linalg::YieldOp::create(
                    b, l, (Value)tensor::ExtractOp::create(b, l, x, at));
              })
              .getResult(0);
      Value yoInit = filledTensor(rewriter, loc, accSizes,
                                  floatConst(rewriter, loc, f32, 0.0));
      auto yoOp = linalg::GenericOp::create(
          rewriter, loc, TypeRange{yoInit.getType()}, ValueRange{xo, wo},
          ValueRange{yoInit}, ArrayRef<AffineMap>{qMap, wMap, accMap}, cIters,
          [&](OpBuilder &b, Location l, ValueRange a) {
            Value p = arith::MulFOp::create(b, l, a[0], a[1]);
            linalg::YieldOp::create(
                b, l, (Value)arith::AddFOp::create(b, l, a[2], p));
          });
      yoOp->setAttr(QuenchDialect::getOutlierProductAttrName(),
                    rewriter.getUnitAttr());
      yo = yoOp.getResult(0);
    }

    // Epilogue over (rows..., n): f32(acc) * s * w_scale[n] (+ yo[r, n])
    // (+ bias[n]).
    AffineMap yId = AffineMap::getMultiDimIdentityMap(rows + 1, ctx);
    AffineMap nOnly = AffineMap::get(rows + 1, 0, {getAffineDimExpr(n, ctx)},
                                     ctx);
    SmallVector<Value> eInputs{acc, wScale};
    SmallVector<AffineMap> eMaps{yId, nOnly};
    int64_t sIdx = -1, bIdx = -1, oIdx = -1;
    if (yo) {
      oIdx = eInputs.size();
      eInputs.push_back(yo);
      eMaps.push_back(yId);
    }
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
              if (oIdx >= 0)
                v = arith::AddFOp::create(b, l, v, a[oIdx]);
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
