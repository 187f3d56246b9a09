//===- Composite.cpp - ONNX operators composed from quench ops ------------===//
//
// Activations and reductions that transformer exports use occasionally are
// written as short chains of existing quench ops, following the formulas of
// the ONNX specification, so they need no new dialect surface (and every
// lowering handles them): LeakyRelu, PRelu, ThresholdedRelu, Elu, Selu,
// Celu, HardSigmoid, HardSwish, Softplus, Softsign, Sign, LogSoftmax,
// ReduceL1, ReduceL2, ReduceSumSquare, ReduceLogSum, ReduceLogSumExp and
// Tile.
//
//===----------------------------------------------------------------------===//

#include "OpTable.h"

using namespace quench;
using namespace quench::onnximport;

//===----------------------------------------------------------------------===//
// Builders (result types by broadcasting; the operands are known to fit)
//===----------------------------------------------------------------------===//

template <typename OpTy>
static Value unary(Conv &c, Value x) {
  return OpTy::create(c.b, c.loc, x.getType(), x);
}

template <typename OpTy>
static Value binary(Conv &c, Value lhs, Value rhs) {
  Type et = tensorType(lhs).getElementType();
  SmallVector<int64_t> shape;
  (void)broadcastShapes(tensorType(lhs).getShape(), tensorType(rhs).getShape(),
                        shape);
  return OpTy::create(c.b, c.loc, RankedTensorType::get(shape, et), lhs, rhs);
}

static Value cmp(Conv &c, CmpPredicate pred, Value lhs, Value rhs) {
  SmallVector<int64_t> shape;
  (void)broadcastShapes(tensorType(lhs).getShape(), tensorType(rhs).getShape(),
                        shape);
  return CmpOp::create(c.b, c.loc,
                       RankedTensorType::get(shape, c.b.getI1Type()), pred,
                       lhs, rhs);
}

static Value select(Conv &c, Value cond, Value a, Value b) {
  SmallVector<int64_t> s1, s2;
  (void)broadcastShapes(tensorType(cond).getShape(), tensorType(a).getShape(),
                        s1);
  (void)broadcastShapes(s1, tensorType(b).getShape(), s2);
  return WhereOp::create(
      c.b, c.loc, RankedTensorType::get(s2, tensorType(a).getElementType()),
      cond, a, b);
}

namespace {
/// What every composite conversion starts from: operand 0, its type and
/// element type, and a 0-D zero of that element type. The zero is built for
/// every composite op, used or not (the importer's output has always had
/// it; an unused one is dead code that quench-opt erases).
struct Operand {
  Value x;
  RankedTensorType xt;
  Type et;
  Value zero;
};
using CompositeFn = LogicalResult (*)(Conv &, const Operand &);
} // namespace

/// Registers `opType` as the composite `fn`; with `floatOnly`, an integer
/// operand 0 is refused before `fn` runs.
static void addComposite(OpTable &table, llvm::StringRef opType,
                         bool floatOnly, CompositeFn fn) {
  table.add(opType, [floatOnly, fn](Conv &c) -> LogicalResult {
    Operand k;
    k.x = c.in(0);
    k.xt = tensorType(k.x);
    k.et = k.xt.getElementType();
    k.zero = c.scalar(0.0, k.et);
    if (floatOnly && !isa<FloatType>(k.et))
      return c.error() << "requires a floating-point input, got " << k.et,
             failure();
    return fn(c, k);
  });
}

//===----------------------------------------------------------------------===//
// Conversions
//===----------------------------------------------------------------------===//

/// A float attribute of the node, widened for c.scalar.
static double attrF(Conv &c, llvm::StringRef name, float dflt) {
  return c.imp.attrFloat(c.node, name, dflt);
}

/// x < 0 ? alpha * x : x
static LogicalResult convertLeakyRelu(Conv &c, const Operand &k) {
  Value x = k.x;
  Type et = k.et;
  Value zero = k.zero;
  Value ax = binary<MulOp>(c, x, c.scalar(attrF(c, "alpha", 0.01f), et));
  return c.out(select(c, cmp(c, CmpPredicate::lt, x, zero), ax, x));
}

/// x < 0 ? slope * x : x, slope broadcast to x
static LogicalResult convertPRelu(Conv &c, const Operand &k) {
  Value x = k.x;
  RankedTensorType xt = k.xt;
  Type et = k.et;
  Value zero = k.zero;
  Value slope = c.cast(c.in(1), et);
  SmallVector<int64_t> bshape;
  auto grows = [&] {
    for (auto [got, have] : llvm::zip(bshape, xt.getShape()))
      if (have != kDyn && got != have)
        return true;
    return false;
  };
  if (failed(broadcastShapes(xt.getShape(), tensorType(slope).getShape(),
                             bshape)) ||
      (int64_t)bshape.size() != xt.getRank() || grows())
    return c.error() << "slope does not broadcast to the input's shape",
           failure();
  Value sx = binary<MulOp>(c, x, slope);
  return c.out(select(c, cmp(c, CmpPredicate::lt, x, zero), sx, x));
}

/// x > alpha ? x : 0
static LogicalResult convertThresholdedRelu(Conv &c, const Operand &k) {
  Value x = k.x;
  Type et = k.et;
  Value zero = k.zero;
  Value alpha = c.scalar(attrF(c, "alpha", 1.0f), et);
  return c.out(select(c, cmp(c, CmpPredicate::gt, x, alpha), x, zero));
}

static LogicalResult convertEluOrSelu(Conv &c, const Operand &k) {
  llvm::StringRef op = c.node.op_type();
  Value x = k.x;
  Type et = k.et;
  Value zero = k.zero;
  // Elu: x < 0 ? alpha (e^x - 1) : x.
  // Selu: gamma * (x <= 0 ? alpha (e^x - 1) : x).
  bool selu = op == "Selu";
  double alpha = attrF(c, "alpha", selu ? 1.67326319217681884765625f : 1.0f);
  Value em1 = binary<SubOp>(c, unary<ExpOp>(c, x), c.scalar(1.0, et));
  Value neg = binary<MulOp>(c, em1, c.scalar(alpha, et));
  Value y = select(c,
                   cmp(c, selu ? CmpPredicate::le : CmpPredicate::lt, x, zero),
                   neg, x);
  if (selu)
    y = binary<MulOp>(c, y,
                      c.scalar(attrF(c, "gamma", 1.05070102214813232421875f),
                               et));
  return c.out(y);
}

/// max(0, x) + min(0, alpha (e^(x / alpha) - 1))
static LogicalResult convertCelu(Conv &c, const Operand &k) {
  Value x = k.x;
  Type et = k.et;
  Value zero = k.zero;
  double alpha = attrF(c, "alpha", 1.0f);
  Value a = c.scalar(alpha, et);
  Value e = unary<ExpOp>(c, binary<DivOp>(c, x, a));
  Value neg = binary<MulOp>(c, binary<SubOp>(c, e, c.scalar(1.0, et)), a);
  return c.out(binary<AddOp>(c, binary<MaxOp>(c, x, zero),
                              binary<MinOp>(c, neg, zero)));
}

static LogicalResult convertHardSigmoidOrSwish(Conv &c, const Operand &k) {
  llvm::StringRef op = c.node.op_type();
  Value x = k.x;
  Type et = k.et;
  // HardSigmoid: clip(alpha x + beta, 0, 1); HardSwish: x * HardSigmoid
  // with alpha = 1/6, beta = 1/2.
  bool swish = op == "HardSwish";
  double alpha = swish ? 1.0 / 6.0 : attrF(c, "alpha", 0.2f);
  double beta = swish ? 0.5 : attrF(c, "beta", 0.5f);
  Value lin = binary<AddOp>(c, binary<MulOp>(c, x, c.scalar(alpha, et)),
                            c.scalar(beta, et));
  Value hs = ClipOp::create(c.b, c.loc, lin.getType(), lin,
                            c.b.getF64FloatAttr(0.0), c.b.getF64FloatAttr(1.0));
  return c.out(swish ? binary<MulOp>(c, x, hs) : hs);
}

static LogicalResult convertSoftplus(Conv &c, const Operand &k) {
  Value x = k.x;
  Type et = k.et;
  Value zero = k.zero;
  // log(1 + e^x), computed as max(x, 0) + log(1 + e^-|x|) so that large
  // inputs do not overflow.
  Value e = unary<ExpOp>(c, unary<NegOp>(c, unary<AbsOp>(c, x)));
  Value l = unary<LogOp>(c, binary<AddOp>(c, e, c.scalar(1.0, et)));
  return c.out(binary<AddOp>(c, binary<MaxOp>(c, x, zero), l));
}

/// x / (1 + |x|)
static LogicalResult convertSoftsign(Conv &c, const Operand &k) {
  Value x = k.x;
  Type et = k.et;
  Value d = binary<AddOp>(c, unary<AbsOp>(c, x), c.scalar(1.0, et));
  return c.out(binary<DivOp>(c, x, d));
}

/// x > 0 ? 1 : (x < 0 ? -1 : 0)
static LogicalResult convertSign(Conv &c, const Operand &k) {
  Value x = k.x;
  Type et = k.et;
  Value zero = k.zero;
  Value one = c.scalar(1.0, et);
  Value inner = select(c, cmp(c, CmpPredicate::lt, x, zero),
                       c.scalar(-1.0, et), zero);
  // The condition has x's shape, so the result does too.
  return c.out(select(c, cmp(c, CmpPredicate::gt, x, zero), one, inner));
}

static LogicalResult convertLogSoftmax(Conv &c, const Operand &k) {
  GraphImporter &imp = c.imp;
  Value x = k.x;
  RankedTensorType xt = k.xt;
  Type et = k.et;
  // x - max(x) - log(sum(exp(x - max(x)))) along the axis (opset >= 13).
  FailureOr<int64_t> axis = c.axis(imp.attrInt(c.node, "axis", -1),
                                   xt.getRank());
  if (failed(axis))
    return failure();
  SmallVector<int64_t> shape(xt.getShape());
  shape[*axis] = 1;
  auto redTy = RankedTensorType::get(shape, et);
  SmallVector<int64_t> axes{*axis};
  Value m = ReduceOp::create(c.b, c.loc, redTy, ReduceKind::max, x, axes,
                             true);
  Value d = binary<SubOp>(c, x, m);
  Value s = ReduceOp::create(c.b, c.loc, redTy, ReduceKind::sum,
                             unary<ExpOp>(c, d), axes, true);
  return c.out(binary<SubOp>(c, d, unary<LogOp>(c, s)));
}

/// log(sum(exp(x - m))) + m with m = max(x): no overflow.
static LogicalResult convertReduceLogSumExp(Conv &c, const Operand &k) {
  Value x = k.x;
  FailureOr<Value> mk = reduceValue(c, x, ReduceKind::max, true);
  FailureOr<Value> m = reduceValue(c, x, ReduceKind::max);
  if (failed(mk) || failed(m))
    return failure();
  if (*mk == x) // noop_with_empty_axes: log(exp(x)) = x
    return c.out(x);
  FailureOr<Value> s = reduceValue(
      c, unary<ExpOp>(c, binary<SubOp>(c, x, *mk)), ReduceKind::sum);
  if (failed(s))
    return failure();
  return c.out(binary<AddOp>(c, unary<LogOp>(c, *s), *m));
}

/// ReduceL1, ReduceL2, ReduceSumSquare, ReduceLogSum: a sum reduction of
/// |x|, x or x^2, then sqrt or log.
static LogicalResult convertSumReduction(Conv &c, const Operand &k) {
  llvm::StringRef op = c.node.op_type();
  Value x = k.x;
  Value in = op == "ReduceL1"       ? unary<AbsOp>(c, x)
             : op == "ReduceLogSum" ? x
                                    : binary<MulOp>(c, x, x);
  FailureOr<Value> r = reduceValue(c, in, ReduceKind::sum);
  if (failed(r))
    return failure();
  if (op == "ReduceL2")
    return c.out(unary<SqrtOp>(c, *r));
  if (op == "ReduceLogSum")
    return c.out(unary<LogOp>(c, *r));
  return c.out(*r);
}

static LogicalResult convertTile(Conv &c, const Operand &k) {
  GraphImporter &imp = c.imp;
  Value x = k.x;
  RankedTensorType xt = k.xt;
  Type et = k.et;
  // tile(x, r) = reshape(expand(x viewed as [1, d0, 1, d1, ...]) to
  // [r0, d0, r1, d1, ...]) to [r0 d0, r1 d1, ...].
  std::optional<IntTensor> reps = imp.knownInts(c.node, 1);
  if (!reps)
    return c.error() << "repeats must be constant", failure();
  if ((int64_t)reps->data.size() != xt.getRank())
    return c.error() << "repeats has " << reps->data.size()
                     << " entries for an input of rank " << xt.getRank(),
           failure();
  SmallVector<int64_t> inter, expanded, final;
  for (int64_t d = 0; d < xt.getRank(); ++d) {
    int64_t r = reps->data[d], n = xt.getDimSize(d);
    if (r < 0)
      return c.error() << "negative repeat " << r, failure();
    inter.append({1, n});
    expanded.append({r, n});
    final.push_back(n == kDyn ? kDyn : r * n);
  }
  // With dynamic dimensions the three shapes are computed at run time
  // from shape_of(x).
  Value interShape, expandedShape, finalShape;
  if (!xt.hasStaticShape()) {
    Value shape = shapeOf(c, x);
    SmallVector<Value> ip, ep, fp;
    for (int64_t d = 0; d < xt.getRank(); ++d) {
      Value n = elementAt(c, shape, d);
      Value r = i64Constant(c, {reps->data[d]});
      ip.append({i64Constant(c, {1}), n});
      ep.append({r, n});
      fp.push_back(binary<MulOp>(c, r, n));
    }
    interShape = concatI64(c, ip);
    expandedShape = concatI64(c, ep);
    finalShape = concatI64(c, fp);
  }
  Value v = ReshapeOp::create(c.b, c.loc, RankedTensorType::get(inter, et),
                              x, interShape);
  v = ExpandOp::create(c.b, c.loc, RankedTensorType::get(expanded, et), v,
                       expandedShape);
  return c.out(ReshapeOp::create(c.b, c.loc,
                                  RankedTensorType::get(final, et), v,
                                  finalShape));
}

//===----------------------------------------------------------------------===//
// Registration
//===----------------------------------------------------------------------===//

void onnximport::populateCompositeOps(OpTable &table) {
  addComposite(table, "LeakyRelu", true, convertLeakyRelu);
  addComposite(table, "PRelu", false, convertPRelu);
  addComposite(table, "ThresholdedRelu", true, convertThresholdedRelu);
  addComposite(table, "Elu", true, convertEluOrSelu);
  addComposite(table, "Selu", true, convertEluOrSelu);
  addComposite(table, "Celu", true, convertCelu);
  addComposite(table, "HardSigmoid", true, convertHardSigmoidOrSwish);
  addComposite(table, "HardSwish", true, convertHardSigmoidOrSwish);
  addComposite(table, "Softplus", true, convertSoftplus);
  addComposite(table, "Softsign", true, convertSoftsign);
  addComposite(table, "Sign", false, convertSign);
  addComposite(table, "LogSoftmax", true, convertLogSoftmax);
  addComposite(table, "ReduceL1", false, convertSumReduction);
  addComposite(table, "ReduceL2", true, convertSumReduction);
  addComposite(table, "ReduceSumSquare", false, convertSumReduction);
  addComposite(table, "ReduceLogSum", true, convertSumReduction);
  addComposite(table, "ReduceLogSumExp", true, convertReduceLogSumExp);
  addComposite(table, "Tile", false, convertTile);
}
