//===- Quantization.cpp - ONNX linear quantization ops --------------------===//
//
// quantize_linear, dequantize_linear, dynamic_quantize_linear,
// matmul_integer and qlinear_matmul on plain integer tensors (the ONNX
// operators of the same names). Quantization divides by the scale (no
// reciprocal), rounds half to even (math.roundeven) and saturates by
// clamping in float before the conversion to integer; integer products
// accumulate exactly in i32. docs/lowering.md records the decisions.
//
//===----------------------------------------------------------------------===//

#include "Common.h"

#include "mlir/IR/Matchers.h"

#include <cmath>

using namespace quench;
using namespace quench::to_linalg;

namespace {

//===----------------------------------------------------------------------===//
// Scalar helpers
//===----------------------------------------------------------------------===//

/// Where quantization arithmetic happens: f64 when one of `types` is f64,
/// f32 otherwise (f16/bf16 are computed in f32, as ONNX Runtime does).
Type computeType(OpBuilder &b, ArrayRef<Type> types) {
  for (Type t : types)
    if (t.isF64())
      return b.getF64Type();
  return b.getF32Type();
}

/// Widens (or keeps) an integer by the signedness of its original type.
Value extendInt(OpBuilder &b, Location l, Value v, Type to, bool isUnsigned) {
  if (v.getType() == to)
    return v;
  if (isUnsigned)
    return arith::ExtUIOp::create(b, l, to, v);
  return arith::ExtSIOp::create(b, l, to, v);
}

Value intToFloat(OpBuilder &b, Location l, Value v, Type to, bool isUnsigned) {
  if (isUnsigned)
    return arith::UIToFPOp::create(b, l, to, v);
  return arith::SIToFPOp::create(b, l, to, v);
}

/// `saturate(rounded + zp)` as an integer of type `intType` (signless; its
/// original signedness is `isUnsigned`). `rounded` is an integral float, `zp`
/// an integer of the same original signedness or null. Up to 16 bits the sum
/// is exact in f32 wherever it does not saturate; wider results add and
/// clamp in f64. The clamp is `maxnumf` then `minnumf`, so NaN becomes the
/// lower bound of the range, ±inf its bounds.
Value saturateToInt(OpBuilder &b, Location l, Value rounded, Value zp,
                    Type intType, bool isUnsigned) {
  unsigned w = intType.getIntOrFloatBitWidth();
  Type ft = rounded.getType();
  if (w > 16)
    ft = b.getF64Type();
  Value v = convertFloat(b, l, rounded, ft);
  if (zp)
    v = arith::AddFOp::create(b, l, v, intToFloat(b, l, zp, ft, isUnsigned));
  double lo = isUnsigned ? 0.0 : -std::ldexp(1.0, w - 1);
  double hi = isUnsigned ? std::ldexp(1.0, w) - 1 : std::ldexp(1.0, w - 1) - 1;
  v = arith::MaxNumFOp::create(b, l, v, floatConst(b, l, ft, lo));
  v = arith::MinNumFOp::create(b, l, v, floatConst(b, l, ft, hi));
  // In range now: a signed conversion to i32 (i64 above 16 bits) is exact
  // for both signednesses, and the truncation keeps the bits.
  Type wide = b.getIntegerType(w > 16 ? 64 : 32);
  Value i = arith::FPToSIOp::create(b, l, wide, v);
  return arith::TruncIOp::create(b, l, intType, i);
}

/// True for a constant that is zero everywhere (a zero point that can be
/// dropped). Looks through the materializations of the conversion.
bool isZeroConstant(Value v) {
  while (v) {
    Attribute attr;
    if (matchPattern(v, m_Constant(&attr))) {
      auto dense = dyn_cast<DenseIntElementsAttr>(attr);
      return dense && dense.isSplat() && dense.getSplatValue<APInt>().isZero();
    }
    Operation *def = v.getDefiningOp();
    if (!def || def->getNumOperands() != 1 ||
        !isa<tensor::BitcastOp, UnrealizedConversionCastOp>(def))
      return false;
    v = def->getOperand(0);
  }
  return false;
}

//===----------------------------------------------------------------------===//
// Scales and zero points
//===----------------------------------------------------------------------===//

/// A scale or zero point ready to be read by a linalg.generic.
struct Param {
  Value value;
  AffineMap map;
};

/// Prepares the scale or zero point `p` for a generic with `numLoops` loops.
/// `p` is 0-D or has only static 1s (per tensor), or is 1-D along loop
/// `loop`, of extent `extent` (`loop` < 0: per tensor only). A 1-D `p` of
/// dynamic length is first expanded to `extent`, reading element 0 when it
/// has one element at run time: ONNX node tests and exporters write
/// per-tensor parameters as 1-element vectors, which ONNX Runtime accepts,
/// and once every dimension is symbolic the two cases look alike.
FailureOr<Param> prepareParam(OpBuilder &b, Location loc, Value p,
                              int64_t numLoops, int64_t loop,
                              OpFoldResult extent) {
  MLIRContext *ctx = b.getContext();
  auto pt = cast<RankedTensorType>(p.getType());
  ArrayRef<int64_t> shape = pt.getShape();
  if (llvm::all_of(shape, [](int64_t s) { return s == 1; })) {
    SmallVector<AffineExpr> zeros(shape.size(), getAffineConstantExpr(0, ctx));
    return Param{p, AffineMap::get(numLoops, 0, zeros, ctx)};
  }
  if (pt.getRank() != 1)
    return failure();
  if (loop < 0) {
    // Per tensor only: a dynamic length must be 1 at run time.
    if (!pt.isDynamicDim(0))
      return failure();
    return Param{p, AffineMap::get(numLoops, 0, getAffineConstantExpr(0, ctx))};
  }
  AffineMap along = AffineMap::get(numLoops, 0, getAffineDimExpr(loop, ctx));
  if (!pt.isDynamicDim(0)) {
    std::optional<int64_t> e = getConstantIntValue(extent);
    if (e && *e != shape[0])
      return failure();
    return Param{p, along};
  }
  Value n = tensor::DimOp::create(b, loc, p, 0);
  Value zero = indexConst(b, loc, 0);
  Value single = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, n,
                                       indexConst(b, loc, 1));
  Value init = emptyTensor(b, loc, {extent}, pt.getElementType());
  AffineMap id = b.getMultiDimIdentityMap(1);
  Value expanded =
      linalg::GenericOp::create(
          b, loc, TypeRange{init.getType()}, ValueRange{}, ValueRange{init},
          ArrayRef<AffineMap>{id},
          ArrayRef<utils::IteratorType>{utils::IteratorType::parallel},
          [&](OpBuilder &nb, Location nl, ValueRange) {
            Value i = linalg::IndexOp::create(nb, nl, 0);
            Value idx = arith::SelectOp::create(nb, nl, single, zero, i);
            Value v = tensor::ExtractOp::create(nb, nl, p, ValueRange{idx});
            linalg::YieldOp::create(nb, nl, v);
          })
          .getResult(0);
  return Param{expanded, along};
}

/// An all-parallel generic computing `resultType` (of extents `sizes`) from
/// `inputs` read through `maps`.
Value buildGeneric(OpBuilder &b, Location loc, RankedTensorType resultType,
                   ArrayRef<OpFoldResult> sizes, ArrayRef<Value> inputs,
                   ArrayRef<AffineMap> maps, ScalarFn body) {
  int64_t rank = resultType.getRank();
  Value init = emptyTensor(b, loc, sizes, resultType.getElementType());
  SmallVector<AffineMap> allMaps(maps);
  allMaps.push_back(b.getMultiDimIdentityMap(rank));
  SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::parallel);
  Value result =
      linalg::GenericOp::create(
          b, loc, TypeRange{init.getType()}, inputs, ValueRange{init}, allMaps,
          iters,
          [&](OpBuilder &nb, Location nl, ValueRange args) {
            linalg::YieldOp::create(nb, nl, body(nb, nl, args.drop_back()));
          })
          .getResult(0);
  if (result.getType() != resultType)
    result = tensor::CastOp::create(b, loc, resultType, result);
  return result;
}

//===----------------------------------------------------------------------===//
// quantize_linear, dequantize_linear
//===----------------------------------------------------------------------===//

/// The scale and optional zero point of a per-tensor / per-axis op on `x`,
/// appended to `inputs`/`maps` after `x` itself.
LogicalResult addAxisParams(OpBuilder &b, Location loc, Value x, Value scale,
                            Value zp, int64_t axis,
                            ArrayRef<OpFoldResult> sizes,
                            SmallVectorImpl<Value> &inputs,
                            SmallVectorImpl<AffineMap> &maps) {
  int64_t rank = cast<RankedTensorType>(x.getType()).getRank();
  if (axis < 0)
    axis += rank;
  bool hasAxis = axis >= 0 && axis < rank;
  inputs.push_back(x);
  maps.push_back(b.getMultiDimIdentityMap(rank));
  for (Value p : {scale, zp}) {
    if (!p)
      continue;
    FailureOr<Param> param =
        prepareParam(b, loc, p, rank, hasAxis ? axis : -1,
                     hasAxis ? sizes[axis] : OpFoldResult(b.getIndexAttr(1)));
    if (failed(param))
      return failure();
    inputs.push_back(param->value);
    maps.push_back(param->map);
  }
  return success();
}

struct QuantizeLinearLowering : OpConversionPattern<QuantizeLinearOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(QuantizeLinearOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType resultType = convertedResultType(getTypeConverter(), op);
    Type intType = resultType.getElementType();
    bool isUnsigned = isUnsignedLike(op.getResult().getType().getElementType());
    if (intType.getIntOrFloatBitWidth() > 32)
      return rewriter.notifyMatchFailure(op, "results wider than 32 bits");
    Value x = adaptor.getInput(), zp = adaptor.getZeroPoint();
    SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(rewriter, loc, x);
    SmallVector<Value> inputs;
    SmallVector<AffineMap> maps;
    if (failed(addAxisParams(rewriter, loc, x, adaptor.getScale(), zp,
                             op.getAxis(), sizes, inputs, maps)))
      return rewriter.notifyMatchFailure(op,
                                         "unsupported scale/zero point shape");
    Type ft = computeType(rewriter, {getElementTypeOrSelf(x),
                                     getElementTypeOrSelf(adaptor.getScale())});
    Value result = buildGeneric(
        rewriter, loc, resultType, sizes, inputs, maps,
        [&](OpBuilder &b, Location l, ValueRange a) {
          Value q = arith::DivFOp::create(b, l, convertFloat(b, l, a[0], ft),
                                          convertFloat(b, l, a[1], ft));
          Value r = math::RoundEvenOp::create(b, l, q);
          return saturateToInt(b, l, r, zp ? a[2] : Value(), intType,
                               isUnsigned);
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct DequantizeLinearLowering : OpConversionPattern<DequantizeLinearOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(DequantizeLinearOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType resultType = convertedResultType(getTypeConverter(), op);
    Type et = resultType.getElementType(), ft = accumulatorType(et);
    Value x = adaptor.getInput(), zp = adaptor.getZeroPoint();
    bool isUnsigned = isUnsignedLike(op.getInput().getType().getElementType());
    unsigned w = getElementTypeOrSelf(x).getIntOrFloatBitWidth();
    if (w > 32)
      return rewriter.notifyMatchFailure(op, "inputs wider than 32 bits");
    // x - zp exactly: in i32 (i64 for 32-bit inputs, where it could wrap).
    Type diffType = rewriter.getIntegerType(w < 32 ? 32 : 64);
    if (zp && isZeroConstant(zp))
      zp = Value();
    SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(rewriter, loc, x);
    SmallVector<Value> inputs;
    SmallVector<AffineMap> maps;
    if (failed(addAxisParams(rewriter, loc, x, adaptor.getScale(), zp,
                             op.getAxis(), sizes, inputs, maps)))
      return rewriter.notifyMatchFailure(op,
                                         "unsupported scale/zero point shape");
    Value result = buildGeneric(
        rewriter, loc, resultType, sizes, inputs, maps,
        [&](OpBuilder &b, Location l, ValueRange a) {
          Value v;
          if (zp) {
            Value d = arith::SubIOp::create(
                b, l, extendInt(b, l, a[0], diffType, isUnsigned),
                extendInt(b, l, a[2], diffType, isUnsigned));
            v = intToFloat(b, l, d, ft, /*isUnsigned=*/false);
          } else {
            v = intToFloat(b, l, a[0], ft, isUnsigned);
          }
          v = arith::MulFOp::create(b, l, v, convertFloat(b, l, a[1], ft));
          return convertFloat(b, l, v, et);
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// dynamic_quantize_linear
//===----------------------------------------------------------------------===//

struct DynamicQuantizeLinearLowering
    : OpConversionPattern<DynamicQuantizeLinearOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(DynamicQuantizeLinearOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    const TypeConverter *tc = getTypeConverter();
    RankedTensorType yType = convertedResultType(tc, op, 0);
    RankedTensorType scaleType = convertedResultType(tc, op, 1);
    RankedTensorType zpType = convertedResultType(tc, op, 2);
    Value x = adaptor.getInput();
    auto xt = cast<RankedTensorType>(x.getType());
    int64_t rank = xt.getRank();
    Type ft = computeType(rewriter, {xt.getElementType()});

    // min(0, min(x)) and max(0, max(x)) in one pass: both start at 0.
    // NaN elements are skipped (minnumf/maxnumf).
    Value zero = floatConst(rewriter, loc, ft, 0.0);
    Value minInit = filledTensor(rewriter, loc, {}, zero);
    Value maxInit = filledTensor(rewriter, loc, {}, zero);
    AffineMap scalarMap = AffineMap::get(rank, 0, {}, ctx);
    SmallVector<utils::IteratorType> iters(rank,
                                           utils::IteratorType::reduction);
    auto range = linalg::GenericOp::create(
        rewriter, loc, TypeRange{minInit.getType(), maxInit.getType()},
        ValueRange{x}, ValueRange{minInit, maxInit},
        ArrayRef<AffineMap>{rewriter.getMultiDimIdentityMap(rank), scalarMap,
                            scalarMap},
        iters, [&](OpBuilder &b, Location l, ValueRange a) {
          Value v = convertFloat(b, l, a[0], ft);
          Value mn = arith::MinNumFOp::create(b, l, a[1], v);
          Value mx = arith::MaxNumFOp::create(b, l, a[2], v);
          linalg::YieldOp::create(b, l, ValueRange{mn, mx});
        });
    Value mn = tensor::ExtractOp::create(rewriter, loc, range.getResult(0),
                                         ValueRange{});
    Value mx = tensor::ExtractOp::create(rewriter, loc, range.getResult(1),
                                         ValueRange{});

    // The ONNX reference implementation: scale = (max - min) / 255, or
    // 1 / 255 when max == min (all of x is 0); zero point =
    // round(clamp(0 - min / scale, 0, 255)).
    Value same =
        arith::CmpFOp::create(rewriter, loc, arith::CmpFPredicate::OEQ, mx, mn);
    Value width = arith::SelectOp::create(
        rewriter, loc, same, floatConst(rewriter, loc, ft, 1.0),
        arith::SubFOp::create(rewriter, loc, mx, mn));
    Value scale = arith::DivFOp::create(rewriter, loc, width,
                                        floatConst(rewriter, loc, ft, 255.0));
    Value zpF = arith::SubFOp::create(
        rewriter, loc, zero, arith::DivFOp::create(rewriter, loc, mn, scale));
    zpF = arith::MaxNumFOp::create(rewriter, loc, zpF, zero);
    zpF = arith::MinNumFOp::create(rewriter, loc, zpF,
                                   floatConst(rewriter, loc, ft, 255.0));
    zpF = math::RoundEvenOp::create(rewriter, loc, zpF);
    Type u8 = zpType.getElementType();
    Value zp = arith::TruncIOp::create(
        rewriter, loc, u8,
        arith::FPToSIOp::create(rewriter, loc, rewriter.getI32Type(), zpF));

    SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(rewriter, loc, x);
    Value y =
        buildGeneric(rewriter, loc, yType, sizes, {x},
                     {rewriter.getMultiDimIdentityMap(rank)},
                     [&](OpBuilder &b, Location l, ValueRange a) {
                       Value q = arith::DivFOp::create(
                           b, l, convertFloat(b, l, a[0], ft), scale);
                       Value r = math::RoundEvenOp::create(b, l, q);
                       return saturateToInt(b, l, r, zp, yType.getElementType(),
                                            /*isUnsigned=*/true);
                     });
    Value scaleOut = tensor::FromElementsOp::create(
        rewriter, loc, scaleType,
        ValueRange{
            convertFloat(rewriter, loc, scale, scaleType.getElementType())});
    Value zpOut =
        tensor::FromElementsOp::create(rewriter, loc, zpType, ValueRange{zp});
    rewriter.replaceOp(op, {y, scaleOut, zpOut});
    return success();
  }
};

//===----------------------------------------------------------------------===//
// matmul_integer, qlinear_matmul
//===----------------------------------------------------------------------===//

/// Σ_k (a - az)(b - bz), exact in i32 (wrapping like the ONNX reference only
/// where the exact value leaves i32), built as
///
///   acc = Σ_k a·b          one two-input contraction of the widened
///                          operands, which the CPU codegen recognizes
///   acc - bz·Σ_k a - az·Σ_k b + K·az·bz
///                          in an elementwise epilogue over the result
///
/// (the identity holds in i32's wrapping arithmetic too). A zero point that
/// is absent or a zero constant drops its terms. The caller builds the
/// epilogue from `inputs`/`maps` (plus its own) and calls `exact` on the
/// block arguments.
struct IntegerMatMul {
  SmallVector<OpFoldResult> sizes;
  SmallVector<Value> inputs;
  SmallVector<AffineMap> maps;
  int rowSum = -1, colSum = -1, lhsZp = -1, rhsZp = -1;
  bool lhsUnsigned = false, rhsUnsigned = false;
  Value k;

  Value exact(OpBuilder &b, Location l, ValueRange args) const {
    Type i32 = b.getI32Type();
    Value r = args[0];
    Value az =
        lhsZp >= 0 ? extendInt(b, l, args[lhsZp], i32, lhsUnsigned) : Value();
    Value bz =
        rhsZp >= 0 ? extendInt(b, l, args[rhsZp], i32, rhsUnsigned) : Value();
    if (bz)
      r = arith::SubIOp::create(b, l, r,
                                arith::MulIOp::create(b, l, bz, args[rowSum]));
    if (az)
      r = arith::SubIOp::create(b, l, r,
                                arith::MulIOp::create(b, l, az, args[colSum]));
    if (az && bz)
      r = arith::AddIOp::create(
          b, l, r,
          arith::MulIOp::create(b, l, k, arith::MulIOp::create(b, l, az, bz)));
    return r;
  }
};

/// Sum of the widened `x` over dimension `dim`, in i32.
Value sumOver(OpBuilder &b, Location loc, Value x, int64_t dim,
              bool isUnsigned) {
  auto xt = cast<RankedTensorType>(x.getType());
  int64_t rank = xt.getRank();
  Type i32 = b.getI32Type();
  SmallVector<OpFoldResult> sizes;
  SmallVector<AffineExpr> outExprs;
  SmallVector<utils::IteratorType> iters;
  for (int64_t d = 0; d < rank; ++d) {
    iters.push_back(d == dim ? utils::IteratorType::reduction
                             : utils::IteratorType::parallel);
    if (d == dim)
      continue;
    sizes.push_back(tensor::getMixedSize(b, loc, x, d));
    outExprs.push_back(b.getAffineDimExpr(d));
  }
  Value init = filledTensor(b, loc, sizes, intConst(b, loc, i32, 0));
  SmallVector<AffineMap> maps{
      b.getMultiDimIdentityMap(rank),
      AffineMap::get(rank, 0, outExprs, b.getContext())};
  return linalg::GenericOp::create(
             b, loc, TypeRange{init.getType()}, ValueRange{x}, ValueRange{init},
             maps, iters,
             [&](OpBuilder &nb, Location nl, ValueRange a) {
               Value v = extendInt(nb, nl, a[0], i32, isUnsigned);
               linalg::YieldOp::create(
                   nb, nl, (Value)arith::AddIOp::create(nb, nl, a[1], v));
             })
      .getResult(0);
}

FailureOr<IntegerMatMul> buildIntegerMatMul(OpBuilder &b, Location loc,
                                            RankedTensorType resultType,
                                            Value lhs, Value rhs, Value lhsZp,
                                            Value rhsZp, bool lhsUnsigned,
                                            bool rhsUnsigned) {
  MLIRContext *ctx = b.getContext();
  auto lt = cast<RankedTensorType>(lhs.getType());
  auto rt = cast<RankedTensorType>(rhs.getType());
  if (lt.getElementType().getIntOrFloatBitWidth() > 32 ||
      rt.getElementType().getIntOrFloatBitWidth() > 32)
    return failure();
  int64_t lr = lt.getRank(), rr = rt.getRank(), R = resultType.getRank();
  ArrayRef<int64_t> shape = resultType.getShape();
  MatMulLoops loops(lr, rr, R);
  Type i32 = b.getI32Type();

  IntegerMatMul mm;
  mm.lhsUnsigned = lhsUnsigned;
  mm.rhsUnsigned = rhsUnsigned;
  mm.sizes = matmulResultSizes(b, loc, resultType, lhs, rhs);

  // acc = Σ_k a·b on the widened operands.
  SmallVector<int64_t> lhsDims = lr >= 2
                                     ? SmallVector<int64_t>{loops.m, loops.k}
                                     : SmallVector<int64_t>{loops.k};
  SmallVector<int64_t> rhsDims = rr >= 2
                                     ? SmallVector<int64_t>{loops.k, loops.n}
                                     : SmallVector<int64_t>{loops.k};
  int64_t n = loops.numLoops();
  SmallVector<AffineMap> maps{
      matmulOperandMap(ctx, n, loops.numBatch, lt.getShape(), shape, lhsDims),
      matmulOperandMap(ctx, n, loops.numBatch, rt.getShape(), shape, rhsDims),
      AffineMap::getMultiDimIdentityMap(n, ctx).getMajorSubMap(R)};
  SmallVector<utils::IteratorType> iters(R, utils::IteratorType::parallel);
  iters.push_back(utils::IteratorType::reduction);
  Value init = filledTensor(b, loc, mm.sizes, intConst(b, loc, i32, 0));
  Value acc = linalg::GenericOp::create(
                  b, loc, TypeRange{init.getType()}, ValueRange{lhs, rhs},
                  ValueRange{init}, maps, iters,
                  [&](OpBuilder &nb, Location nl, ValueRange a) {
                    Value x = extendInt(nb, nl, a[0], i32, lhsUnsigned);
                    Value y = extendInt(nb, nl, a[1], i32, rhsUnsigned);
                    Value p = arith::MulIOp::create(nb, nl, x, y);
                    linalg::YieldOp::create(
                        nb, nl, (Value)arith::AddIOp::create(nb, nl, a[2], p));
                  })
                  .getResult(0);
  mm.inputs.push_back(acc);
  mm.maps.push_back(b.getMultiDimIdentityMap(R));

  if (lhsZp && isZeroConstant(lhsZp))
    lhsZp = Value();
  if (rhsZp && isZeroConstant(rhsZp))
    rhsZp = Value();
  auto add = [&](Value v, AffineMap map) {
    mm.inputs.push_back(v);
    mm.maps.push_back(map);
    return (int)mm.inputs.size() - 1;
  };
  auto extent = [&](int64_t loop) -> OpFoldResult {
    return loop >= 0 ? mm.sizes[loop] : OpFoldResult(b.getIndexAttr(1));
  };
  if (rhsZp) {
    // Σ_k a: a's shape without K, read like a without its K dim.
    Value s = sumOver(b, loc, lhs, lr - 1, lhsUnsigned);
    auto st = cast<RankedTensorType>(s.getType());
    SmallVector<int64_t> trailing;
    if (lr >= 2)
      trailing.push_back(loops.m);
    mm.rowSum = add(s, matmulOperandMap(ctx, R, loops.numBatch, st.getShape(),
                                        shape, trailing));
    FailureOr<Param> p =
        prepareParam(b, loc, rhsZp, R, loops.n, extent(loops.n));
    if (failed(p))
      return failure();
    mm.rhsZp = add(p->value, p->map);
  }
  if (lhsZp) {
    // Σ_k b: b's shape without K.
    Value s = sumOver(b, loc, rhs, rr >= 2 ? rr - 2 : 0, rhsUnsigned);
    auto st = cast<RankedTensorType>(s.getType());
    SmallVector<int64_t> trailing;
    if (rr >= 2)
      trailing.push_back(loops.n);
    mm.colSum = add(s, matmulOperandMap(ctx, R, loops.numBatch, st.getShape(),
                                        shape, trailing));
    FailureOr<Param> p =
        prepareParam(b, loc, lhsZp, R, loops.m, extent(loops.m));
    if (failed(p))
      return failure();
    mm.lhsZp = add(p->value, p->map);
  }
  if (lhsZp && rhsZp) {
    Value kIdx = dimValue(b, loc, lhs, lr - 1);
    mm.k = arith::IndexCastOp::create(b, loc, i32, kIdx);
  }
  return mm;
}

struct MatMulIntegerLowering : OpConversionPattern<MatMulIntegerOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(MatMulIntegerOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType resultType = convertedResultType(getTypeConverter(), op);
    FailureOr<IntegerMatMul> mm = buildIntegerMatMul(
        rewriter, loc, resultType, adaptor.getLhs(), adaptor.getRhs(),
        adaptor.getLhsZeroPoint(), adaptor.getRhsZeroPoint(),
        isUnsignedLike(op.getLhs().getType().getElementType()),
        isUnsignedLike(op.getRhs().getType().getElementType()));
    if (failed(mm))
      return rewriter.notifyMatchFailure(op, "unsupported zero point shape");
    Value result = mm->inputs[0];
    if (mm->inputs.size() > 1)
      result =
          buildGeneric(rewriter, loc, resultType, mm->sizes, mm->inputs,
                       mm->maps, [&](OpBuilder &b, Location l, ValueRange a) {
                         return mm->exact(b, l, a);
                       });
    else if (result.getType() != resultType)
      result = tensor::CastOp::create(rewriter, loc, resultType, result);
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct QLinearMatMulLowering : OpConversionPattern<QLinearMatMulOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(QLinearMatMulOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType resultType = convertedResultType(getTypeConverter(), op);
    Type intType = resultType.getElementType();
    bool isUnsigned = isUnsignedLike(op.getResult().getType().getElementType());
    if (intType.getIntOrFloatBitWidth() > 32)
      return rewriter.notifyMatchFailure(op, "results wider than 32 bits");
    FailureOr<IntegerMatMul> mm = buildIntegerMatMul(
        rewriter, loc, resultType, adaptor.getLhs(), adaptor.getRhs(),
        adaptor.getLhsZeroPoint(), adaptor.getRhsZeroPoint(),
        isUnsignedLike(op.getLhs().getType().getElementType()),
        isUnsignedLike(op.getRhs().getType().getElementType()));
    if (failed(mm))
      return rewriter.notifyMatchFailure(op, "unsupported zero point shape");
    // Scales: lhs per tensor or per row, rhs per tensor or per column,
    // result per tensor; the result zero point like its scale.
    MatMulLoops loops(op.getLhs().getType().getRank(),
                      op.getRhs().getType().getRank(), resultType.getRank());
    int64_t R = resultType.getRank();
    SmallVector<Value> inputs(mm->inputs);
    SmallVector<AffineMap> maps(mm->maps);
    SmallVector<Type> scaleTypes;
    for (auto [p, loop] :
         {std::pair{adaptor.getLhsScale(), loops.m},
          std::pair{adaptor.getRhsScale(), loops.n},
          std::pair{adaptor.getResultScale(), int64_t(-1)},
          std::pair{adaptor.getResultZeroPoint(), int64_t(-1)}}) {
      FailureOr<Param> param = prepareParam(
          rewriter, loc, p, R, loop,
          loop >= 0 ? mm->sizes[loop] : OpFoldResult(rewriter.getIndexAttr(1)));
      if (failed(param))
        return rewriter.notifyMatchFailure(op, "unsupported scale shape");
      inputs.push_back(param->value);
      maps.push_back(param->map);
      scaleTypes.push_back(getElementTypeOrSelf(p));
    }
    scaleTypes.pop_back();
    Type ft = computeType(rewriter, scaleTypes);
    unsigned s0 = mm->inputs.size();
    Value result = buildGeneric(
        rewriter, loc, resultType, mm->sizes, inputs, maps,
        [&](OpBuilder &b, Location l, ValueRange a) {
          Value acc = mm->exact(b, l, a);
          // The ONNX reference's multiplier, a_scale * b_scale / y_scale,
          // in that order; then one f32 product (ONNX Runtime's precision).
          Value m = arith::MulFOp::create(b, l, convertFloat(b, l, a[s0], ft),
                                          convertFloat(b, l, a[s0 + 1], ft));
          m = arith::DivFOp::create(b, l, m, convertFloat(b, l, a[s0 + 2], ft));
          Value v = arith::MulFOp::create(
              b, l, arith::SIToFPOp::create(b, l, ft, acc), m);
          Value r = math::RoundEvenOp::create(b, l, v);
          return saturateToInt(b, l, r, a[s0 + 3], intType, isUnsigned);
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

} // namespace

void to_linalg::populateQuantizationPatterns(const TypeConverter &converter,
                                             RewritePatternSet &patterns) {
  patterns.add<QuantizeLinearLowering, DequantizeLinearLowering,
               DynamicQuantizeLinearLowering, MatMulIntegerLowering,
               QLinearMatMulLowering>(converter, patterns.getContext());
}
