//===- Elementwise.cpp - elementwise quench ops to linalg.generic ---------===//
//
// Unary, binary (NumPy broadcasting), comparison, logical, select, clip and
// cast ops become one all-parallel linalg.generic each; the scalar body is
// arith/math. Signedness comes from the original (pre-conversion) types,
// since the converted tensors are signless. Integer Div and Mod first check
// their divisors at run time (checkIntegerDivisors).
//
//===----------------------------------------------------------------------===//

#include "Common.h"

#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/IR/Matchers.h"

#include <cmath>
#include <tuple>

using namespace quench;
using namespace quench::to_linalg;

namespace {

/// What the scalar builders get: the original op, the original element type
/// of its (first numeric) operand, and the converted result element type.
struct ScalarCtx {
  Type elem;   // original operand element type (signedness kept)
  Type result; // converted (signless) result element type
};

bool isFloat(Type t) { return isa<FloatType>(t); }

//===----------------------------------------------------------------------===//
// Scalar bodies
//===----------------------------------------------------------------------===//

template <typename FOp, typename IOp>
Value floatOrInt(OpBuilder &b, Location loc, const ScalarCtx &c,
                 ValueRange a) {
  if (isFloat(c.elem))
    return FOp::create(b, loc, a[0], a[1]);
  return IOp::create(b, loc, a[0], a[1]);
}

template <typename FOp, typename SOp, typename UOp>
Value bySign(OpBuilder &b, Location loc, const ScalarCtx &c, ValueRange a) {
  if (isFloat(c.elem))
    return FOp::create(b, loc, a[0], a[1]);
  if (isUnsignedLike(c.elem))
    return UOp::create(b, loc, a[0], a[1]);
  return SOp::create(b, loc, a[0], a[1]);
}

Value scalar(AddOp, OpBuilder &b, Location l, const ScalarCtx &c,
             ValueRange a) {
  return floatOrInt<arith::AddFOp, arith::AddIOp>(b, l, c, a);
}
Value scalar(SubOp, OpBuilder &b, Location l, const ScalarCtx &c,
             ValueRange a) {
  return floatOrInt<arith::SubFOp, arith::SubIOp>(b, l, c, a);
}
Value scalar(MulOp, OpBuilder &b, Location l, const ScalarCtx &c,
             ValueRange a) {
  return floatOrInt<arith::MulFOp, arith::MulIOp>(b, l, c, a);
}
Value scalar(DivOp, OpBuilder &b, Location l, const ScalarCtx &c,
             ValueRange a) {
  return bySign<arith::DivFOp, arith::DivSIOp, arith::DivUIOp>(b, l, c, a);
}
Value scalar(MinOp, OpBuilder &b, Location l, const ScalarCtx &c,
             ValueRange a) {
  return bySign<arith::MinimumFOp, arith::MinSIOp, arith::MinUIOp>(b, l, c, a);
}
Value scalar(MaxOp, OpBuilder &b, Location l, const ScalarCtx &c,
             ValueRange a) {
  return bySign<arith::MaximumFOp, arith::MaxSIOp, arith::MaxUIOp>(b, l, c, a);
}
Value scalar(PowOp, OpBuilder &b, Location l, const ScalarCtx &,
             ValueRange a) {
  return math::PowFOp::create(b, l, a[0], a[1]);
}
Value scalar(ModOp, OpBuilder &b, Location l, const ScalarCtx &c,
             ValueRange a) {
  if (isFloat(c.elem)) // fmod: the sign of the dividend.
    return arith::RemFOp::create(b, l, a[0], a[1]);
  if (isUnsignedLike(c.elem))
    return arith::RemUIOp::create(b, l, a[0], a[1]);
  // ONNX integer Mod takes the sign of the divisor (Python %):
  // r = a rem b; if r != 0 and sign(r) != sign(b): r += b. A divisor of -1
  // divides by 1 instead (the same remainder, 0): INT_MIN rem -1 traps.
  Value minusOne = intConst(b, l, a[1].getType(), -1);
  Value divisor = arith::SelectOp::create(
      b, l,
      arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, a[1], minusOne),
      intConst(b, l, a[1].getType(), 1), a[1]);
  Value r = arith::RemSIOp::create(b, l, a[0], divisor);
  Value zero = intConst(b, l, r.getType(), 0);
  Value nonZero =
      arith::CmpIOp::create(b, l, arith::CmpIPredicate::ne, r, zero);
  Value rNeg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, r, zero);
  Value dNeg =
      arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, a[1], zero);
  Value differ = arith::XOrIOp::create(b, l, rNeg, dNeg);
  Value fix = arith::AndIOp::create(b, l, nonZero, differ);
  Value adjusted = arith::AddIOp::create(b, l, r, a[1]);
  return arith::SelectOp::create(b, l, fix, adjusted, r);
}

Value scalar(CmpOp op, OpBuilder &b, Location l, const ScalarCtx &c,
             ValueRange a) {
  if (isFloat(c.elem)) {
    arith::CmpFPredicate p;
    switch (op.getPredicate()) {
    case CmpPredicate::eq: p = arith::CmpFPredicate::OEQ; break;
    case CmpPredicate::ne: p = arith::CmpFPredicate::UNE; break;
    case CmpPredicate::lt: p = arith::CmpFPredicate::OLT; break;
    case CmpPredicate::le: p = arith::CmpFPredicate::OLE; break;
    case CmpPredicate::gt: p = arith::CmpFPredicate::OGT; break;
    case CmpPredicate::ge: p = arith::CmpFPredicate::OGE; break;
    }
    return arith::CmpFOp::create(b, l, p, a[0], a[1]);
  }
  bool u = isUnsignedLike(c.elem);
  arith::CmpIPredicate p;
  switch (op.getPredicate()) {
  case CmpPredicate::eq: p = arith::CmpIPredicate::eq; break;
  case CmpPredicate::ne: p = arith::CmpIPredicate::ne; break;
  case CmpPredicate::lt: p = u ? arith::CmpIPredicate::ult : arith::CmpIPredicate::slt; break;
  case CmpPredicate::le: p = u ? arith::CmpIPredicate::ule : arith::CmpIPredicate::sle; break;
  case CmpPredicate::gt: p = u ? arith::CmpIPredicate::ugt : arith::CmpIPredicate::sgt; break;
  case CmpPredicate::ge: p = u ? arith::CmpIPredicate::uge : arith::CmpIPredicate::sge; break;
  }
  return arith::CmpIOp::create(b, l, p, a[0], a[1]);
}

Value scalar(LogicalOp op, OpBuilder &b, Location l, const ScalarCtx &,
             ValueRange a) {
  switch (op.getKind()) {
  case LogicalKind::and_: return arith::AndIOp::create(b, l, a[0], a[1]);
  case LogicalKind::or_: return arith::OrIOp::create(b, l, a[0], a[1]);
  case LogicalKind::xor_: return arith::XOrIOp::create(b, l, a[0], a[1]);
  }
  llvm_unreachable("unknown logical kind");
}

Value scalar(WhereOp, OpBuilder &b, Location l, const ScalarCtx &,
             ValueRange a) {
  return arith::SelectOp::create(b, l, a[0], a[1], a[2]);
}

// Float unary ops that map to one math op.
#define QUENCH_MATH_UNARY(QOp, MOp)                                            \
  Value scalar(QOp, OpBuilder &b, Location l, const ScalarCtx &,              \
               ValueRange a) {                                                 \
    return MOp::create(b, l, a[0]);                                            \
  }
QUENCH_MATH_UNARY(SqrtOp, math::SqrtOp)
QUENCH_MATH_UNARY(RsqrtOp, math::RsqrtOp)
QUENCH_MATH_UNARY(ExpOp, math::ExpOp)
QUENCH_MATH_UNARY(LogOp, math::LogOp)
QUENCH_MATH_UNARY(TanhOp, math::TanhOp)
QUENCH_MATH_UNARY(ErfOp, math::ErfOp)
QUENCH_MATH_UNARY(SinOp, math::SinOp)
QUENCH_MATH_UNARY(CosOp, math::CosOp)
QUENCH_MATH_UNARY(FloorOp, math::FloorOp)
QUENCH_MATH_UNARY(CeilOp, math::CeilOp)
#undef QUENCH_MATH_UNARY

Value scalar(ReciprocalOp, OpBuilder &b, Location l, const ScalarCtx &,
             ValueRange a) {
  Value one = floatConst(b, l, a[0].getType(), 1.0);
  return arith::DivFOp::create(b, l, one, a[0]);
}

/// Runs `f` on `x` widened to f32 when `x` is f16/bf16 (the composite
/// activations are evaluated in f32 and rounded once).
template <typename F>
Value inAccumulator(OpBuilder &b, Location l, Value x, F f) {
  Type t = x.getType(), acc = accumulatorType(t);
  Value r = f(convertFloat(b, l, x, acc));
  return convertFloat(b, l, r, t);
}

Value sigmoidOf(OpBuilder &b, Location l, Value x) {
  Value one = floatConst(b, l, x.getType(), 1.0);
  Value e = math::ExpOp::create(b, l, arith::NegFOp::create(b, l, x));
  return arith::DivFOp::create(b, l, one, arith::AddFOp::create(b, l, one, e));
}

Value scalar(SigmoidOp, OpBuilder &b, Location l, const ScalarCtx &,
             ValueRange a) {
  return inAccumulator(b, l, a[0], [&](Value x) { return sigmoidOf(b, l, x); });
}

Value scalar(SiluOp, OpBuilder &b, Location l, const ScalarCtx &,
             ValueRange a) {
  return inAccumulator(b, l, a[0], [&](Value x) {
    Value one = floatConst(b, l, x.getType(), 1.0);
    Value e = math::ExpOp::create(b, l, arith::NegFOp::create(b, l, x));
    return arith::DivFOp::create(b, l, x, arith::AddFOp::create(b, l, one, e));
  });
}

Value scalar(GeluOp op, OpBuilder &b, Location l, const ScalarCtx &,
             ValueRange a) {
  bool tanhForm = op.getApproximation() == GeluApproximation::tanh;
  return inAccumulator(b, l, a[0], [&](Value x) -> Value {
    Type t = x.getType();
    Value half = floatConst(b, l, t, 0.5);
    Value one = floatConst(b, l, t, 1.0);
    Value inner;
    if (tanhForm) {
      // tanh(sqrt(2/pi) * (x + 0.044715 x^3))
      Value x3 = arith::MulFOp::create(b, l, arith::MulFOp::create(b, l, x, x), x);
      Value poly = arith::AddFOp::create(
          b, l, x, arith::MulFOp::create(b, l, floatConst(b, l, t, 0.044715), x3));
      inner = math::TanhOp::create(
          b, l, arith::MulFOp::create(
                    b, l, floatConst(b, l, t, std::sqrt(2.0 / M_PI)), poly));
    } else {
      inner = math::ErfOp::create(
          b, l, arith::MulFOp::create(b, l, x, floatConst(b, l, t, M_SQRT1_2)));
    }
    Value halfX = arith::MulFOp::create(b, l, half, x);
    return arith::MulFOp::create(b, l, halfX,
                                 arith::AddFOp::create(b, l, one, inner));
  });
}

Value scalar(ReluOp, OpBuilder &b, Location l, const ScalarCtx &c,
             ValueRange a) {
  Type t = a[0].getType();
  if (isFloat(t)) // NaN stays NaN (maximumf propagates it).
    return arith::MaximumFOp::create(b, l, a[0], floatConst(b, l, t, 0.0));
  if (isUnsignedLike(c.elem))
    return a[0];
  return arith::MaxSIOp::create(b, l, a[0], intConst(b, l, t, 0));
}

Value scalar(NegOp, OpBuilder &b, Location l, const ScalarCtx &,
             ValueRange a) {
  Type t = a[0].getType();
  if (isFloat(t))
    return arith::NegFOp::create(b, l, a[0]);
  return arith::SubIOp::create(b, l, intConst(b, l, t, 0), a[0]);
}

Value scalar(AbsOp, OpBuilder &b, Location l, const ScalarCtx &c,
             ValueRange a) {
  if (isFloat(a[0].getType()))
    return math::AbsFOp::create(b, l, a[0]);
  if (isUnsignedLike(c.elem))
    return a[0];
  // select(x < 0, 0 - x, x) rather than math.absi: the same wrap-around
  // (abs(INT_MIN) = INT_MIN, as ONNX and NumPy give), and plain arith, which
  // every later lowering handles on vectors of any rank (math.absi on n-D
  // vectors has no LLVM lowering).
  Value zero = arith::ConstantOp::create(b, l, b.getZeroAttr(a[0].getType()));
  Value neg = arith::SubIOp::create(b, l, zero, a[0]);
  Value isNeg =
      arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, a[0], zero);
  return arith::SelectOp::create(b, l, isNeg, neg, a[0]);
}

Value scalar(NotOp, OpBuilder &b, Location l, const ScalarCtx &,
             ValueRange a) {
  return arith::XOrIOp::create(b, l, a[0], intConst(b, l, a[0].getType(), 1));
}

Value scalar(ClipOp op, OpBuilder &b, Location l, const ScalarCtx &c,
             ValueRange a) {
  Value x = a[0];
  Type t = x.getType();
  if (isFloat(t)) {
    if (auto lo = op.getMin())
      x = arith::MaximumFOp::create(b, l, x, floatConst(b, l, t, lo->convertToDouble()));
    if (auto hi = op.getMax())
      x = arith::MinimumFOp::create(b, l, x, floatConst(b, l, t, hi->convertToDouble()));
    return x;
  }
  // Integer bounds: clamp the (integral) bound into the element range first.
  bool u = isUnsignedLike(c.elem);
  unsigned w = t.getIntOrFloatBitWidth();
  double tmin = u ? 0.0 : -std::ldexp(1.0, w - 1);
  double tmax = u ? std::ldexp(1.0, w) - 1 : std::ldexp(1.0, w - 1) - 1;
  auto bound = [&](double v) {
    v = std::min(std::max(v, tmin), tmax);
    if (u && w == 64 && v >= std::ldexp(1.0, 63))
      return intConst(b, l, t, (int64_t)(uint64_t)v);
    return intConst(b, l, t, (int64_t)v);
  };
  if (auto lo = op.getMin()) {
    Value bv = bound(std::ceil(lo->convertToDouble()));
    x = u ? (Value)arith::MaxUIOp::create(b, l, x, bv)
          : (Value)arith::MaxSIOp::create(b, l, x, bv);
  }
  if (auto hi = op.getMax()) {
    Value bv = bound(std::floor(hi->convertToDouble()));
    x = u ? (Value)arith::MinUIOp::create(b, l, x, bv)
          : (Value)arith::MinSIOp::create(b, l, x, bv);
  }
  return x;
}

Value scalar(CastOp op, OpBuilder &b, Location l, const ScalarCtx &c,
             ValueRange a) {
  Value x = a[0];
  Type src = c.elem, dst = getElementTypeOrSelf(op.getType());
  Type dstSL = c.result;
  if (src == dst)
    return x;
  // Anything -> bool: x != 0 (NaN is true, as NumPy).
  if (dstSL.isInteger(1)) {
    if (isFloat(src))
      return arith::CmpFOp::create(b, l, arith::CmpFPredicate::UNE, x,
                                   floatConst(b, l, x.getType(), 0.0));
    return arith::CmpIOp::create(b, l, arith::CmpIPredicate::ne, x,
                                 intConst(b, l, x.getType(), 0));
  }
  if (isFloat(src) && isFloat(dst))
    return convertFloat(b, l, x, dst);
  if (!isFloat(src) && isFloat(dst)) {
    if (isUnsignedLike(src))
      return arith::UIToFPOp::create(b, l, dst, x);
    return arith::SIToFPOp::create(b, l, dst, x);
  }
  if (!isFloat(src) && !isFloat(dst)) {
    unsigned sw = src.getIntOrFloatBitWidth(), dw = dst.getIntOrFloatBitWidth();
    if (sw == dw)
      return x;
    if (sw > dw)
      return arith::TruncIOp::create(b, l, dstSL, x);
    if (isUnsignedLike(src))
      return arith::ExtUIOp::create(b, l, dstSL, x);
    return arith::ExtSIOp::create(b, l, dstSL, x);
  }
  // Float -> integer: truncate toward zero, saturate, NaN -> 0. The bounds
  // 2^(n-1) / 2^n are exact powers of two (inf in f16 when too large, which
  // still compares correctly); fptosi/fptoui are only selected in range.
  Type ft = x.getType();
  unsigned w = dstSL.getIntOrFloatBitWidth();
  bool u = isUnsignedLike(dst);
  Value zero = intConst(b, l, dstSL, 0);
  if (u) {
    Value conv = arith::FPToUIOp::create(b, l, dstSL, x);
    Value hi = floatConst(b, l, ft, std::ldexp(1.0, w));
    Value tooBig = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OGE, x, hi);
    // ult is also true for NaN; x in (-1, 1) truncates to 0 anyway.
    Value tooSmall = arith::CmpFOp::create(b, l, arith::CmpFPredicate::ULT, x,
                                           floatConst(b, l, ft, 1.0));
    Value r = arith::SelectOp::create(b, l, tooBig, intConst(b, l, dstSL, -1), conv);
    return arith::SelectOp::create(b, l, tooSmall, zero, r);
  }
  Value conv = arith::FPToSIOp::create(b, l, dstSL, x);
  Value hi = floatConst(b, l, ft, std::ldexp(1.0, w - 1));
  Value lo = floatConst(b, l, ft, -std::ldexp(1.0, w - 1));
  Value tooBig = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OGE, x, hi);
  Value tooSmall = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OLT, x, lo);
  Value isNan = arith::CmpFOp::create(b, l, arith::CmpFPredicate::UNO, x, x);
  APInt maxV = APInt::getSignedMaxValue(w), minV = APInt::getSignedMinValue(w);
  Value r = arith::SelectOp::create(
      b, l, tooBig,
      arith::ConstantOp::create(b, l, IntegerAttr::get(dstSL, maxV)), conv);
  r = arith::SelectOp::create(
      b, l, tooSmall,
      arith::ConstantOp::create(b, l, IntegerAttr::get(dstSL, minV)), r);
  return arith::SelectOp::create(b, l, isNan, zero, r);
}

//===----------------------------------------------------------------------===//
// Run-time checks of integer division
//===----------------------------------------------------------------------===//

/// Whether `v` is a constant none of whose elements is 0 or -1: a division
/// by it needs no check.
bool isSafeConstantDivisor(Value v) {
  DenseIntElementsAttr cst;
  if (!matchPattern(v, m_Constant(&cst)))
    return false;
  return llvm::none_of(cst.getValues<APInt>(), [](const APInt &x) {
    return x.isZero() || x.isAllOnes();
  });
}

/// Ends the run with an error naming the node (and `opName`) when the
/// divisor of an integer Div or Mod (`operands`, broadcast to `resultType`)
/// is zero
/// anywhere, or, with `checkOverflow` (signed Div), when a dividend INT_MIN
/// meets a divisor -1 (the quotient does not fit). The division would trap
/// (SIGFPE on x86) or be undefined instead. One reduction over both
/// operands, with the division's broadcasting, at the top level
/// (docs/reliability.md); built at the builder's insertion point, which
/// must follow the broadcast checks.
void checkIntegerDivisors(OpBuilder &b, Location loc, StringRef opName,
                          RankedTensorType resultType, ValueRange operands,
                          bool checkOverflow) {
  Value lhs = operands[0], rhs = operands[1];
  if (isSafeConstantDivisor(rhs))
    return;
  Type et = cast<RankedTensorType>(rhs.getType()).getElementType();
  unsigned width = et.getIntOrFloatBitWidth();
  Type i1 = b.getI1Type();
  // Per element: is the divisor 0; is it -1 under INT_MIN.
  auto flags = [&](OpBuilder &nb, Location l, Value x, Value y) {
    auto c = [&](APInt v) {
      return arith::ConstantOp::create(nb, l, nb.getIntegerAttr(et, v));
    };
    Value zero = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::eq, y,
                                       c(APInt::getZero(width)));
    if (!checkOverflow)
      return std::pair{zero,
                       (Value)arith::ConstantIntOp::create(nb, l, i1, 0)};
    Value isMin = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::eq, x,
                                        c(APInt::getSignedMinValue(width)));
    Value isMinusOne = arith::CmpIOp::create(
        nb, l, arith::CmpIPredicate::eq, y, c(APInt::getAllOnes(width)));
    return std::pair{zero,
                     (Value)arith::AndIOp::create(nb, l, isMin, isMinusOne)};
  };
  Value anyZero, anyOverflow;
  int64_t rank = resultType.getRank();
  if (rank == 0) {
    std::tie(anyZero, anyOverflow) =
        flags(b, loc, tensor::ExtractOp::create(b, loc, lhs, ValueRange{}),
              tensor::ExtractOp::create(b, loc, rhs, ValueRange{}));
  } else {
    MLIRContext *ctx = b.getContext();
    auto scalarTy = RankedTensorType::get({}, i1);
    auto init = [&]() {
      Value e = tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{}, i1);
      Value f = arith::ConstantIntOp::create(b, loc, i1, 0);
      return linalg::FillOp::create(b, loc, f, e).getResult(0);
    };
    auto scalarMap = AffineMap::get(rank, 0, ArrayRef<AffineExpr>{}, ctx);
    SmallVector<AffineMap> maps;
    for (Value v : {lhs, rhs})
      maps.push_back(broadcastMap(
          ctx, cast<RankedTensorType>(v.getType()).getShape(),
          resultType.getShape()));
    maps.append({scalarMap, scalarMap});
    auto g = linalg::GenericOp::create(
        b, loc, TypeRange{scalarTy, scalarTy}, ValueRange{lhs, rhs},
        ValueRange{init(), init()}, maps,
        SmallVector<utils::IteratorType>(rank, utils::IteratorType::reduction),
        [&](OpBuilder &nb, Location l, ValueRange a) {
          auto [zero, overflow] = flags(nb, l, a[0], a[1]);
          linalg::YieldOp::create(
              nb, l,
              ValueRange{arith::OrIOp::create(nb, l, a[2], zero),
                         arith::OrIOp::create(nb, l, a[3], overflow)});
        });
    anyZero = tensor::ExtractOp::create(b, loc, g.getResult(0), ValueRange{});
    anyOverflow =
        tensor::ExtractOp::create(b, loc, g.getResult(1), ValueRange{});
  }
  Value yes = arith::ConstantIntOp::create(b, loc, i1, 1);
  std::string node =
      describeNode(loc, "an integer division") + " (" + opName.str() + ")";
  cf::AssertOp::create(b, loc, arith::XOrIOp::create(b, loc, anyZero, yes),
                       node + ": integer division by zero at run time (a "
                              "divisor is 0)");
  if (checkOverflow)
    cf::AssertOp::create(
        b, loc, arith::XOrIOp::create(b, loc, anyOverflow, yes),
        node + ": integer division overflows at run time (the most "
               "negative value divided by -1)");
}

//===----------------------------------------------------------------------===//
// Pattern
//===----------------------------------------------------------------------===//

template <typename OpTy>
struct ElementwiseLowering : OpConversionPattern<OpTy> {
  using OpConversionPattern<OpTy>::OpConversionPattern;

  LogicalResult
  matchAndRewrite(OpTy op, typename OpTy::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    RankedTensorType resultType =
        convertedResultType(this->getTypeConverter(), op);
    if (!resultType)
      return rewriter.notifyMatchFailure(op, "unsupported result type");
    // The numeric operand whose element type decides float/int/signedness:
    // the last one (where's condition is first).
    Value typed = op->getOperand(op->getNumOperands() - 1);
    ScalarCtx c{getElementTypeOrSelf(typed.getType()),
                resultType.getElementType()};
    Value result = buildElementwise(
        rewriter, op.getLoc(), resultType, adaptor.getOperands(),
        [&](OpBuilder &b, Location loc, ValueRange args) {
          return scalar(op, b, loc, c, args);
        });
    if (isa<DivOp, ModOp>(op.getOperation()) && !isFloat(c.elem)) {
      // Between the broadcast checks and the division.
      Operation *division = result.getDefiningOp();
      if (auto cast = dyn_cast<tensor::CastOp>(division))
        division = cast.getSource().getDefiningOp();
      OpBuilder::InsertionGuard guard(rewriter);
      rewriter.setInsertionPoint(division);
      checkIntegerDivisors(rewriter, op.getLoc(),
                           isa<DivOp>(op.getOperation()) ? "Div" : "Mod",
                           resultType,
                           adaptor.getOperands(),
                           isa<DivOp>(op.getOperation()) &&
                               !isUnsignedLike(c.elem));
    }
    rewriter.replaceOp(op, result);
    return success();
  }
};

/// quench.hadamard: log2(order) butterfly stages, each one all-parallel
/// linalg.generic over (lead..., pair block a, t in {0, 1}, c < h * M)
/// writing [lead..., K / (2 h M), 2, h M] (collapsed back to [lead..., K])
/// from the features a * 2hM + c and a * 2hM + hM + c of the previous
/// stage: t = 0 takes their sum, t = 1 their difference. The inner index c
/// is contiguous in both, so each stage vectorizes along it.
struct HadamardLowering : OpConversionPattern<HadamardOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(HadamardOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    RankedTensorType resType = convertedResultType(getTypeConverter(), op);
    if (!resType)
      return failure();
    Value x = adaptor.getInput();
    int64_t rank = resType.getRank(), lead = rank - 1;
    int64_t k = resType.getShape().back(), order = op.getOrder();
    int64_t m = k / order;
    SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(rewriter, loc, x);
    sizes.pop_back();
    SmallVector<ReassociationIndices> reassoc;
    for (int64_t d = 0; d < lead; ++d)
      reassoc.push_back({d});
    reassoc.push_back({lead, lead + 1, lead + 2});
    int64_t loops = lead + 3;
    SmallVector<utils::IteratorType> iters(loops,
                                           utils::IteratorType::parallel);
    for (int64_t h = 1; h < order; h *= 2) {
      int64_t inner = h * m;
      SmallVector<OpFoldResult> outSizes(sizes);
      outSizes.append({rewriter.getIndexAttr(k / (2 * inner)),
                       rewriter.getIndexAttr(2),
                       rewriter.getIndexAttr(inner)});
      Value init = emptyTensor(rewriter, loc, outSizes,
                               resType.getElementType());
      auto inputMap = [&](int64_t offset) {
        SmallVector<AffineExpr> e;
        for (int64_t d = 0; d < lead; ++d)
          e.push_back(getAffineDimExpr(d, ctx));
        e.push_back(getAffineDimExpr(lead, ctx) * (2 * inner) +
                    getAffineDimExpr(lead + 2, ctx) + offset);
        return AffineMap::get(loops, 0, e, ctx);
      };
      SmallVector<AffineMap> maps{inputMap(0), inputMap(inner),
                                  rewriter.getMultiDimIdentityMap(loops)};
      auto generic = linalg::GenericOp::create(
          rewriter, loc, TypeRange{init.getType()}, ValueRange{x, x},
          ValueRange{init}, maps, iters,
          [&](OpBuilder &b, Location l, ValueRange a) {
            Value sum = arith::AddFOp::create(b, l, a[0], a[1]);
            Value diff = arith::SubFOp::create(b, l, a[0], a[1]);
            Value first = arith::CmpIOp::create(
                b, l, arith::CmpIPredicate::eq,
                linalg::IndexOp::create(b, l, lead + 1), indexConst(b, l, 0));
            linalg::YieldOp::create(
                b, l, arith::SelectOp::create(b, l, first, sum, diff)
                          .getResult());
          });
      x = tensor::CollapseShapeOp::create(rewriter, loc, generic.getResult(0),
                                          reassoc);
    }
    rewriter.replaceOp(op, x);
    return success();
  }
};

} // namespace

void to_linalg::populateElementwisePatterns(const TypeConverter &converter,
                                            RewritePatternSet &patterns) {
  patterns.add<
      ElementwiseLowering<AddOp>, ElementwiseLowering<SubOp>,
      ElementwiseLowering<MulOp>, ElementwiseLowering<DivOp>,
      ElementwiseLowering<MinOp>, ElementwiseLowering<MaxOp>,
      ElementwiseLowering<PowOp>, ElementwiseLowering<ModOp>,
      ElementwiseLowering<CmpOp>, ElementwiseLowering<LogicalOp>,
      ElementwiseLowering<WhereOp>, ElementwiseLowering<SqrtOp>,
      ElementwiseLowering<RsqrtOp>, ElementwiseLowering<ReciprocalOp>,
      ElementwiseLowering<ExpOp>, ElementwiseLowering<LogOp>,
      ElementwiseLowering<TanhOp>, ElementwiseLowering<ErfOp>,
      ElementwiseLowering<SinOp>, ElementwiseLowering<CosOp>,
      ElementwiseLowering<FloorOp>, ElementwiseLowering<CeilOp>,
      ElementwiseLowering<SigmoidOp>, ElementwiseLowering<SiluOp>,
      ElementwiseLowering<GeluOp>, ElementwiseLowering<ReluOp>,
      ElementwiseLowering<NegOp>, ElementwiseLowering<AbsOp>,
      ElementwiseLowering<NotOp>, ElementwiseLowering<ClipOp>,
      ElementwiseLowering<CastOp>, HadamardLowering>(converter,
                                                      patterns.getContext());
}
