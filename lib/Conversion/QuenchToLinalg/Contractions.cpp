//===- Contractions.cpp - matmul, linear, reductions, norms, softmax ------===//
//
// Everything with a reduction loop. f16/bf16 contractions, sums, means,
// products and normalization statistics accumulate in f32 and are rounded
// once at the end; max/min reductions stay in the element type (exact).
//
//===----------------------------------------------------------------------===//

#include "Common.h"

#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "llvm/ADT/SmallBitVector.h"

#include <limits>

using namespace quench;
using namespace quench::to_linalg;

void quench::to_linalg::checkContractedExtent(OpBuilder &b, Location loc,
                                              StringRef op, Value lhs,
                                              int64_t ld, OpFoldResult want) {
  auto lt = cast<RankedTensorType>(lhs.getType());
  std::optional<int64_t> wantStatic = getConstantIntValue(want);
  if (!lt.isDynamicDim(ld) && wantStatic)
    return; // the verifier compared them
  Value have = dimValue(b, loc, lhs, ld);
  Value wantValue = getValueOrCreateConstantIndexOp(b, loc, want);
  emitRuntimeCheck(
      b, loc,
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, have, wantValue),
      describeNode(loc, "a contraction") + " (" + op.str() +
          "): the left operand's contracted extent {0} differs from the "
          "right's {1} at run time",
      {have, wantValue});
}

namespace {

bool isFloat(Type t) { return isa<FloatType>(t); }

Value extend(OpBuilder &b, Location l, Value v, Type acc) {
  return isFloat(acc) ? convertFloat(b, l, v, acc) : v;
}

Value fillZero(OpBuilder &b, Location l, ArrayRef<OpFoldResult> sizes,
               Type t) {
  Value zero = isFloat(t) ? floatConst(b, l, t, 0.0) : intConst(b, l, t, 0);
  return filledTensor(b, l, sizes, zero);
}

/// Map from the loops of a rank-`rank` iteration space to the dims not in
/// `reduced`.
AffineMap droppingMap(MLIRContext *ctx, const llvm::SmallBitVector &reduced) {
  SmallVector<AffineExpr> exprs;
  for (unsigned d = 0; d < reduced.size(); ++d)
    if (!reduced.test(d))
      exprs.push_back(getAffineDimExpr(d, ctx));
  return AffineMap::get(reduced.size(), 0, exprs, ctx);
}

/// Reduces `x` over the dims set in `reduced` into a tensor of the other
/// dims, starting from `init`. `stats` are extra inputs already shaped like
/// the result. The body gets (x element, stats elements..., accumulator).
Value reduceDims(
    OpBuilder &b, Location loc, Value x, ValueRange stats,
    const llvm::SmallBitVector &reduced, Value init,
    llvm::function_ref<Value(OpBuilder &, Location, Value, ValueRange, Value)>
        body) {
  MLIRContext *ctx = b.getContext();
  auto xt = cast<RankedTensorType>(x.getType());
  SmallVector<OpFoldResult> sizes;
  SmallVector<utils::IteratorType> iters;
  for (int64_t d = 0; d < xt.getRank(); ++d) {
    iters.push_back(reduced.test(d) ? utils::IteratorType::reduction
                                    : utils::IteratorType::parallel);
    if (!reduced.test(d))
      sizes.push_back(tensor::getMixedSize(b, loc, x, d));
  }
  Value out = filledTensor(b, loc, sizes, init);
  AffineMap drop = droppingMap(ctx, reduced);
  SmallVector<AffineMap> maps{b.getMultiDimIdentityMap(xt.getRank())};
  SmallVector<Value> inputs{x};
  for (Value s : stats) {
    maps.push_back(drop);
    inputs.push_back(s);
  }
  maps.push_back(drop);
  auto g = linalg::GenericOp::create(
      b, loc, TypeRange{out.getType()}, inputs, ValueRange{out}, maps, iters,
      [&](OpBuilder &nb, Location nl, ValueRange args) {
        Value r = body(nb, nl, args[0], args.slice(1, stats.size()),
                       args.back());
        linalg::YieldOp::create(nb, nl, r);
      });
  return g.getResult(0);
}

/// The number of elements in the dims set in `reduced`, as a scalar of
/// type `t` (float or integer).
Value countOf(OpBuilder &b, Location l, Value x,
              const llvm::SmallBitVector &reduced, Type t) {
  Value n = indexConst(b, l, 1);
  for (unsigned d = 0; d < reduced.size(); ++d)
    if (reduced.test(d))
      n = arith::MulIOp::create(b, l, n, dimValue(b, l, x, d));
  Value n64 = arith::IndexCastOp::create(b, l, b.getI64Type(), n);
  if (isFloat(t))
    return arith::SIToFPOp::create(b, l, t, n64);
  if (t.getIntOrFloatBitWidth() < 64)
    return arith::TruncIOp::create(b, l, t, n64);
  return n64;
}

//===----------------------------------------------------------------------===//
// matmul
//===----------------------------------------------------------------------===//

/// Ends the run with an error naming the node when dimension `ld` of `lhs`
/// and `rd` of `rhs`, the extents a contraction sums over, differ at run
/// time (only emitted when one of them is dynamic): the loops run over one
/// and would read past the other.
static void checkContractedExtents(OpBuilder &b, Location loc, StringRef op,
                                   Value lhs, int64_t ld, Value rhs,
                                   int64_t rd) {
  auto lt = cast<RankedTensorType>(lhs.getType());
  auto rt = cast<RankedTensorType>(rhs.getType());
  if (!lt.isDynamicDim(ld) && !rt.isDynamicDim(rd))
    return; // the verifier compared them
  to_linalg::checkContractedExtent(b, loc, op, lhs, ld,
                                   tensor::getMixedSize(b, loc, rhs, rd));
}


struct MatMulLowering : OpConversionPattern<MatMulOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(MatMulOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    RankedTensorType resultType = convertedResultType(getTypeConverter(), op);
    Value lhs = adaptor.getLhs(), rhs = adaptor.getRhs();
    // rhs = transpose(B) swapping the last two dims (attention's Q·Kᵀ):
    // contract on B as stored instead of materializing the transpose (for
    // a KV cache, a copy of the whole cache every step).
    bool rhsTransposed = false;
    if (auto tr = op.getRhs().getDefiningOp<TransposeOp>()) {
      ArrayRef<int64_t> perm = tr.getPermutation();
      int64_t n = perm.size();
      bool swapsLast = n >= 3;
      for (int64_t d = 0; swapsLast && d < n - 2; ++d)
        swapsLast = perm[d] == d;
      if (swapsLast && perm[n - 2] == n - 1 && perm[n - 1] == n - 2) {
        Value input = rewriter.getRemappedValue(tr.getInput());
        if (input && getTypeConverter()->convertType(input.getType()) ==
                         input.getType()) {
          rhs = input;
          rhsTransposed = true;
        }
      }
    }
    auto lt = cast<RankedTensorType>(lhs.getType());
    auto rt = cast<RankedTensorType>(rhs.getType());
    Type et = resultType.getElementType();
    Type acc = isFloat(et) ? accumulatorType(et) : et;
    int64_t lr = lt.getRank(), rr = rt.getRank(), R = resultType.getRank();
    bool hasM = lr >= 2, hasN = rr >= 2;
    int64_t nb = R - hasM - hasN;
    int64_t mLoop = nb, nLoop = nb + hasM, kLoop = R;

    // Result extents.
    SmallVector<OpFoldResult> sizes;
    for (int64_t d = 0; d < nb; ++d) {
      if (!resultType.isDynamicDim(d)) {
        sizes.push_back(rewriter.getIndexAttr(resultType.getDimSize(d)));
        continue;
      }
      OpFoldResult s = rewriter.getIndexAttr(1);
      for (auto [v, t, r] : {std::tuple{lhs, lt, lr}, std::tuple{rhs, rt, rr}}) {
        int64_t od = d - (nb - (r - 2));
        if (r >= 2 && od >= 0 && t.getDimSize(od) != 1) {
          s = tensor::getMixedSize(rewriter, loc, v, od);
          break;
        }
      }
      sizes.push_back(s);
    }
    // The loops assume what is dynamic here equal: the contracted extents
    // (K) of both operands, and each batch extent of an operand that does
    // not broadcast it against the result's. Checked at run time, or the
    // contraction reads outside the shorter operand.
    std::string node = describeNode(loc, "a matmul") + " (MatMul)";
    auto checkEqual = [&](Value have, Value want, const std::string &what) {
      emitRuntimeCheck(rewriter, loc,
                       arith::CmpIOp::create(rewriter, loc,
                                             arith::CmpIPredicate::eq, have,
                                             want),
                       node + ": " + what + " at run time", {have, want});
    };
    checkContractedExtents(rewriter, loc, "MatMul", lhs, lr - 1, rhs,
                           rr == 1 ? 0 : (rhsTransposed ? rr - 1 : rr - 2));
    for (int64_t d = 0; d < nb; ++d) {
      for (auto [v, t, r] :
           {std::tuple{lhs, lt, lr}, std::tuple{rhs, rt, rr}}) {
        int64_t od = d - (nb - (r - 2));
        if (r < 2 || od < 0 || t.getDimSize(od) == 1 ||
            (!t.isDynamicDim(od) && !resultType.isDynamicDim(d)))
          continue;
        Value have = dimValue(rewriter, loc, v, od);
        Value want = getValueOrCreateConstantIndexOp(rewriter, loc, sizes[d]);
        if (have != want)
          checkEqual(have, want,
                     "an operand's batch extent {0} in dimension " +
                         std::to_string(d) + " differs from the result's {1}");
      }
    }
    if (hasM)
      sizes.push_back(tensor::getMixedSize(rewriter, loc, lhs, lr - 2));
    if (hasN)
      sizes.push_back(
          tensor::getMixedSize(rewriter, loc, rhs, rhsTransposed ? rr - 2 : rr - 1));
    Value init = fillZero(rewriter, loc, sizes, acc);

    Value product;
    if (lr == 2 && rr == 2 && !rhsTransposed) {
      product = linalg::MatmulOp::create(rewriter, loc, TypeRange{init.getType()},
                                         ValueRange{lhs, rhs}, ValueRange{init})
                    .getResult(0);
    } else {
      auto operandMap = [&](RankedTensorType t, bool isLhs) {
        int64_t r = t.getRank();
        SmallVector<AffineExpr> e;
        for (int64_t od = 0; od < r - 2; ++od) {
          int64_t d = od + nb - (r - 2);
          if (t.getDimSize(od) == 1 && resultType.getDimSize(d) != 1)
            e.push_back(getAffineConstantExpr(0, ctx));
          else
            e.push_back(getAffineDimExpr(d, ctx));
        }
        if (isLhs) {
          if (r >= 2)
            e.push_back(getAffineDimExpr(mLoop, ctx));
          e.push_back(getAffineDimExpr(kLoop, ctx));
        } else if (rhsTransposed) {
          e.push_back(getAffineDimExpr(nLoop, ctx));
          e.push_back(getAffineDimExpr(kLoop, ctx));
        } else {
          e.push_back(getAffineDimExpr(kLoop, ctx));
          if (r >= 2)
            e.push_back(getAffineDimExpr(nLoop, ctx));
        }
        return AffineMap::get(R + 1, 0, e, ctx);
      };
      SmallVector<AffineMap> maps{operandMap(lt, true), operandMap(rt, false),
                                  AffineMap::getMultiDimIdentityMap(R + 1, ctx)
                                      .getMajorSubMap(R)};
      SmallVector<utils::IteratorType> iters(R, utils::IteratorType::parallel);
      iters.push_back(utils::IteratorType::reduction);
      product =
          linalg::GenericOp::create(
              rewriter, loc, TypeRange{init.getType()}, ValueRange{lhs, rhs},
              ValueRange{init}, maps, iters,
              [&](OpBuilder &b, Location l, ValueRange a) {
                Value x = extend(b, l, a[0], acc), y = extend(b, l, a[1], acc);
                Value r = isFloat(acc)
                              ? (Value)arith::AddFOp::create(
                                    b, l, a[2], arith::MulFOp::create(b, l, x, y))
                              : (Value)arith::AddIOp::create(
                                    b, l, a[2], arith::MulIOp::create(b, l, x, y));
                linalg::YieldOp::create(b, l, r);
              })
              .getResult(0);
    }
    if (acc != et)
      product = buildElementwise(rewriter, loc, resultType, {product},
                                 [&](OpBuilder &b, Location l, ValueRange a) {
                                   return convertFloat(b, l, a[0], et);
                                 });
    else if (product.getType() != resultType)
      product = tensor::CastOp::create(rewriter, loc, resultType, product);
    rewriter.replaceOp(op, product);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// linear: x[..., K] · W[N, K]ᵀ (+ b), contracted on W as stored (or on the
// [K, N] input of a transposed W)
//===----------------------------------------------------------------------===//

struct LinearLowering : OpConversionPattern<LinearOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(LinearOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    RankedTensorType resultType = convertedResultType(getTypeConverter(), op);
    Value x = adaptor.getInput(), w = adaptor.getWeight(),
          bias = adaptor.getBias();
    int64_t r = cast<RankedTensorType>(x.getType()).getRank();
    Type et = resultType.getElementType(), acc = accumulatorType(et);
    // A weight given as a 2-D transpose (quench-raise-ops leaves a MatMul's
    // [K, N] constant so, docs/scaling.md) is contracted as stored, [K, N]:
    // no transposed copy, at compile time or at run time.
    bool kn = false;
    if (auto tr = op.getWeight().getDefiningOp<TransposeOp>();
        tr && tr.getPermutation() == ArrayRef<int64_t>{1, 0}) {
      w = rewriter.getRemappedValue(tr.getInput());
      kn = static_cast<bool>(w);
      if (!w)
        w = adaptor.getWeight();
    }

    // The contracted extents must agree: checked at run time when the
    // input's is dynamic (the weight's is static in practice).
    checkContractedExtents(rewriter, loc, "MatMul/Gemm", x, r - 1, w,
                           kn ? 0 : 1);

    // Loops: (batch..., n, k); n = r - 1, k = r.
    SmallVector<OpFoldResult> sizes;
    for (int64_t d = 0; d + 1 < r; ++d)
      sizes.push_back(tensor::getMixedSize(rewriter, loc, x, d));
    sizes.push_back(tensor::getMixedSize(rewriter, loc, w, kn ? 1 : 0));
    Value init = fillZero(rewriter, loc, sizes, acc);

    SmallVector<AffineExpr> xe;
    for (int64_t d = 0; d + 1 < r; ++d)
      xe.push_back(getAffineDimExpr(d, ctx));
    xe.push_back(getAffineDimExpr(r, ctx));
    AffineMap xMap = AffineMap::get(r + 1, 0, xe, ctx);
    AffineExpr nDim = getAffineDimExpr(r - 1, ctx), kDim = getAffineDimExpr(r, ctx);
    AffineMap wMap = kn ? AffineMap::get(r + 1, 0, {kDim, nDim}, ctx)
                        : AffineMap::get(r + 1, 0, {nDim, kDim}, ctx);
    AffineMap outMap =
        AffineMap::getMultiDimIdentityMap(r + 1, ctx).getMajorSubMap(r);
    SmallVector<utils::IteratorType> iters(r, utils::IteratorType::parallel);
    iters.push_back(utils::IteratorType::reduction);
    Value product =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{init.getType()}, ValueRange{x, w},
            ValueRange{init}, ArrayRef<AffineMap>{xMap, wMap, outMap}, iters,
            [&](OpBuilder &b, Location l, ValueRange a) {
              Value p = arith::MulFOp::create(b, l, extend(b, l, a[0], acc),
                                              extend(b, l, a[1], acc));
              linalg::YieldOp::create(b, l,
                                      (Value)arith::AddFOp::create(b, l, a[2], p));
            })
            .getResult(0);

    if (bias || acc != et) {
      SmallVector<Value> operands{product};
      if (bias)
        operands.push_back(bias);
      product = buildElementwise(
          rewriter, loc, resultType, operands,
          [&](OpBuilder &b, Location l, ValueRange a) {
            Value v = a[0];
            if (a.size() > 1)
              v = arith::AddFOp::create(b, l, v, extend(b, l, a[1], acc));
            return convertFloat(b, l, v, et);
          });
    } else if (product.getType() != resultType) {
      product = tensor::CastOp::create(rewriter, loc, resultType, product);
    }
    rewriter.replaceOp(op, product);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// reduce
//===----------------------------------------------------------------------===//

struct ReduceLowering : OpConversionPattern<ReduceOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(ReduceOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType resultType = convertedResultType(getTypeConverter(), op);
    Value x = adaptor.getInput();
    auto xt = cast<RankedTensorType>(x.getType());
    Type et = xt.getElementType();
    Type origElem = getElementTypeOrSelf(op.getInput().getType());
    bool fl = isFloat(et), u = isUnsignedLike(origElem);
    ReduceKind kind = op.getKind();
    bool exact = kind == ReduceKind::max || kind == ReduceKind::min;
    Type acc = fl && !exact ? accumulatorType(et) : et;

    llvm::SmallBitVector reduced(xt.getRank());
    for (int64_t a : op.getAxes())
      reduced.set(a);

    Value init;
    unsigned w = fl ? 0 : et.getIntOrFloatBitWidth();
    switch (kind) {
    case ReduceKind::sum:
    case ReduceKind::mean:
      init = fl ? floatConst(rewriter, loc, acc, 0.0) : intConst(rewriter, loc, acc, 0);
      break;
    case ReduceKind::prod:
      init = fl ? floatConst(rewriter, loc, acc, 1.0) : intConst(rewriter, loc, acc, 1);
      break;
    case ReduceKind::max:
      init = fl ? floatConst(rewriter, loc, acc, -std::numeric_limits<double>::infinity())
                : arith::ConstantOp::create(
                      rewriter, loc,
                      IntegerAttr::get(acc, u ? APInt::getMinValue(w)
                                              : APInt::getSignedMinValue(w)));
      break;
    case ReduceKind::min:
      init = fl ? floatConst(rewriter, loc, acc, std::numeric_limits<double>::infinity())
                : arith::ConstantOp::create(
                      rewriter, loc,
                      IntegerAttr::get(acc, u ? APInt::getMaxValue(w)
                                              : APInt::getSignedMaxValue(w)));
      break;
    }

    Value red = reduceDims(
        rewriter, loc, x, {}, reduced, init,
        [&](OpBuilder &b, Location l, Value v, ValueRange, Value a) -> Value {
          v = extend(b, l, v, acc);
          switch (kind) {
          case ReduceKind::sum:
          case ReduceKind::mean:
            return fl ? (Value)arith::AddFOp::create(b, l, a, v)
                      : (Value)arith::AddIOp::create(b, l, a, v);
          case ReduceKind::prod:
            return fl ? (Value)arith::MulFOp::create(b, l, a, v)
                      : (Value)arith::MulIOp::create(b, l, a, v);
          case ReduceKind::max:
            if (fl)
              return arith::MaximumFOp::create(b, l, a, v);
            return u ? (Value)arith::MaxUIOp::create(b, l, a, v)
                     : (Value)arith::MaxSIOp::create(b, l, a, v);
          case ReduceKind::min:
            if (fl)
              return arith::MinimumFOp::create(b, l, a, v);
            return u ? (Value)arith::MinUIOp::create(b, l, a, v)
                     : (Value)arith::MinSIOp::create(b, l, a, v);
          }
          llvm_unreachable("unknown reduce kind");
        });

    auto redType = cast<RankedTensorType>(red.getType());
    if (kind == ReduceKind::mean || acc != et) {
      Value count = kind == ReduceKind::mean
                        ? countOf(rewriter, loc, x, reduced, acc)
                        : Value();
      RankedTensorType outType = redType.clone(et);
      red = buildElementwise(
          rewriter, loc, outType, {red},
          [&](OpBuilder &b, Location l, ValueRange a) -> Value {
            Value v = a[0];
            if (count)
              v = fl ? (Value)arith::DivFOp::create(b, l, v, count)
                     : u ? (Value)arith::DivUIOp::create(b, l, v, count)
                         : (Value)arith::DivSIOp::create(b, l, v, count);
            return fl ? convertFloat(b, l, v, et) : v;
          });
    }

    if (op.getKeepDims()) {
      SmallVector<ReassociationIndices> reassoc =
          unitDimReassociation(xt.getRank(), op.getAxes());
      SmallVector<OpFoldResult> outShape;
      int64_t j = 0;
      for (int64_t d = 0; d < xt.getRank(); ++d)
        outShape.push_back(reduced.test(d)
                               ? OpFoldResult(rewriter.getIndexAttr(1))
                               : tensor::getMixedSize(rewriter, loc, red, j++));
      red = tensor::ExpandShapeOp::create(rewriter, loc, resultType, red,
                                          reassoc, outShape);
    } else if (red.getType() != resultType) {
      red = tensor::CastOp::create(rewriter, loc, resultType, red);
    }
    rewriter.replaceOp(op, red);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// softmax, layer_norm, rms_norm
//===----------------------------------------------------------------------===//

/// Elementwise generic over `x`'s shape with inputs `x` (identity), `stats`
/// (shaped like x without the `reduced` dims) and `params` (shaped like the
/// trailing `reduced` dims, i.e. dims [axis, rank)).
Value normalize(OpBuilder &b, Location loc, RankedTensorType resultType,
                Value x, ValueRange stats, ValueRange params,
                const llvm::SmallBitVector &reduced,
                llvm::function_ref<Value(OpBuilder &, Location, ValueRange)>
                    body) {
  MLIRContext *ctx = b.getContext();
  int64_t r = resultType.getRank();
  SmallVector<AffineMap> maps{b.getMultiDimIdentityMap(r)};
  SmallVector<Value> inputs{x};
  for (Value s : stats) {
    inputs.push_back(s);
    maps.push_back(droppingMap(ctx, reduced));
  }
  for (Value p : params) {
    inputs.push_back(p);
    SmallVector<AffineExpr> e;
    int64_t pr = cast<RankedTensorType>(p.getType()).getRank();
    for (int64_t d = r - pr; d < r; ++d)
      e.push_back(getAffineDimExpr(d, ctx));
    maps.push_back(AffineMap::get(r, 0, e, ctx));
  }
  maps.push_back(b.getMultiDimIdentityMap(r));
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, x);
  Value init = emptyTensor(b, loc, sizes, resultType.getElementType());
  SmallVector<utils::IteratorType> iters(r, utils::IteratorType::parallel);
  Value out = linalg::GenericOp::create(
                  b, loc, TypeRange{init.getType()}, inputs, ValueRange{init},
                  maps, iters,
                  [&](OpBuilder &nb, Location nl, ValueRange a) {
                    linalg::YieldOp::create(nb, nl, body(nb, nl, a.drop_back()));
                  })
                  .getResult(0);
  if (out.getType() != resultType)
    out = tensor::CastOp::create(b, loc, resultType, out);
  return out;
}

struct SoftmaxLowering : OpConversionPattern<SoftmaxOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(SoftmaxOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType resultType = convertedResultType(getTypeConverter(), op);
    Value x = adaptor.getInput();
    Type et = resultType.getElementType(), acc = accumulatorType(et);
    llvm::SmallBitVector reduced(resultType.getRank());
    reduced.set(op.getAxis());
    Value maxV = reduceDims(
        rewriter, loc, x, {}, reduced,
        floatConst(rewriter, loc, et, -std::numeric_limits<double>::infinity()),
        [](OpBuilder &b, Location l, Value v, ValueRange, Value a) -> Value {
          return arith::MaximumFOp::create(b, l, a, v);
        });
    auto expShifted = [&](OpBuilder &b, Location l, Value v, Value m) -> Value {
      Value d = arith::SubFOp::create(b, l, extend(b, l, v, acc),
                                      extend(b, l, m, acc));
      return math::ExpOp::create(b, l, d);
    };
    Value sum = reduceDims(
        rewriter, loc, x, {maxV}, reduced, floatConst(rewriter, loc, acc, 0.0),
        [&](OpBuilder &b, Location l, Value v, ValueRange s, Value a) -> Value {
          return arith::AddFOp::create(b, l, a, expShifted(b, l, v, s[0]));
        });
    Value result = normalize(
        rewriter, loc, resultType, x, {maxV, sum}, {}, reduced,
        [&](OpBuilder &b, Location l, ValueRange a) {
          Value e = expShifted(b, l, a[0], a[1]);
          return convertFloat(b, l, arith::DivFOp::create(b, l, e, a[2]), et);
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct LayerNormLowering : OpConversionPattern<LayerNormOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(LayerNormOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType resultType = convertedResultType(getTypeConverter(), op);
    Value x = adaptor.getInput();
    Type et = resultType.getElementType(), acc = accumulatorType(et);
    int64_t r = resultType.getRank(), axis = op.getAxis();
    llvm::SmallBitVector reduced(r);
    reduced.set(axis, r);
    Value n = countOf(rewriter, loc, x, reduced, acc);
    Value eps = floatConst(rewriter, loc, acc, op.getEpsilon().convertToDouble());
    Value zero = floatConst(rewriter, loc, acc, 0.0);
    Value sum = reduceDims(
        rewriter, loc, x, {}, reduced, zero,
        [&](OpBuilder &b, Location l, Value v, ValueRange, Value a) -> Value {
          return arith::AddFOp::create(b, l, a, extend(b, l, v, acc));
        });
    auto centered = [&](OpBuilder &b, Location l, Value v, Value s) -> Value {
      Value mean = arith::DivFOp::create(b, l, s, n);
      return arith::SubFOp::create(b, l, extend(b, l, v, acc), mean);
    };
    Value sq = reduceDims(
        rewriter, loc, x, {sum}, reduced, zero,
        [&](OpBuilder &b, Location l, Value v, ValueRange s, Value a) -> Value {
          Value c = centered(b, l, v, s[0]);
          return arith::AddFOp::create(b, l, a, arith::MulFOp::create(b, l, c, c));
        });
    SmallVector<Value> params{adaptor.getScale()};
    if (adaptor.getBias())
      params.push_back(adaptor.getBias());
    Value result = normalize(
        rewriter, loc, resultType, x, {sum, sq}, params, reduced,
        [&](OpBuilder &b, Location l, ValueRange a) {
          Value c = centered(b, l, a[0], a[1]);
          Value var = arith::DivFOp::create(b, l, a[2], n);
          Value den = math::SqrtOp::create(b, l, arith::AddFOp::create(b, l, var, eps));
          Value y = arith::DivFOp::create(b, l, c, den);
          y = arith::MulFOp::create(b, l, y, extend(b, l, a[3], acc));
          if (a.size() > 4)
            y = arith::AddFOp::create(b, l, y, extend(b, l, a[4], acc));
          return convertFloat(b, l, y, et);
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct RMSNormLowering : OpConversionPattern<RMSNormOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(RMSNormOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType resultType = convertedResultType(getTypeConverter(), op);
    Value x = adaptor.getInput();
    Type et = resultType.getElementType(), acc = accumulatorType(et);
    int64_t r = resultType.getRank(), axis = op.getAxis();
    llvm::SmallBitVector reduced(r);
    reduced.set(axis, r);
    Value n = countOf(rewriter, loc, x, reduced, acc);
    Value eps = floatConst(rewriter, loc, acc, op.getEpsilon().convertToDouble());
    Value sq = reduceDims(
        rewriter, loc, x, {}, reduced, floatConst(rewriter, loc, acc, 0.0),
        [&](OpBuilder &b, Location l, Value v, ValueRange, Value a) -> Value {
          Value e = extend(b, l, v, acc);
          return arith::AddFOp::create(b, l, a, arith::MulFOp::create(b, l, e, e));
        });
    Value result = normalize(
        rewriter, loc, resultType, x, {sq}, {adaptor.getScale()}, reduced,
        [&](OpBuilder &b, Location l, ValueRange a) {
          Value ms = arith::DivFOp::create(b, l, a[1], n);
          Value den = math::SqrtOp::create(b, l, arith::AddFOp::create(b, l, ms, eps));
          Value y = arith::DivFOp::create(b, l, extend(b, l, a[0], acc), den);
          y = arith::MulFOp::create(b, l, y, extend(b, l, a[2], acc));
          return convertFloat(b, l, y, et);
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

} // namespace

void to_linalg::populateContractionPatterns(const TypeConverter &converter,
                                            RewritePatternSet &patterns) {
  patterns.add<MatMulLowering, LinearLowering, ReduceLowering, SoftmaxLowering,
               LayerNormLowering, RMSNormLowering>(converter,
                                                   patterns.getContext());
}
