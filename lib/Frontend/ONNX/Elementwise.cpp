//===- Elementwise.cpp - elementwise ONNX operators -----------------------===//
//
// Operators that map one to one (or nearly) onto elementwise quench ops:
// unary math, binary arithmetic with NumPy broadcasting, the variadic
// Min/Max/Sum/Mean (chained into binary ops), comparisons, logical ops,
// Where, Clip (bounds read from constants), Cast/CastLike, Trilu, and the
// identity-like Identity and inference-mode Dropout. Integer arithmetic,
// comparisons, Where, Identity and Cast on values known at import are folded
// instead of converted.
//
//===----------------------------------------------------------------------===//

#include "OpTable.h"

#include <cmath>
#include <limits>

using namespace quench;
using namespace quench::onnximport;

//===----------------------------------------------------------------------===//
// Import-time folders
//===----------------------------------------------------------------------===//

/// Elementwise binary op on known integer tensors with broadcasting.
static std::optional<IntTensor>
foldBinary(const IntTensor &a, const IntTensor &b,
           llvm::function_ref<std::optional<int64_t>(int64_t, int64_t)> fn) {
  SmallVector<int64_t> shape;
  if (failed(broadcastShapes(a.shape, b.shape, shape)))
    return std::nullopt;
  IntTensor out;
  out.shape = shape;
  int64_t n = numElements(shape);
  if (n < 0 || n > kMaxFoldedElements)
    return std::nullopt; // not shape arithmetic: left to run time
  auto index = [&](const IntTensor &t, int64_t flat) {
    int64_t idx = 0, stride = 1;
    int64_t off = shape.size() - t.shape.size();
    for (int64_t d = shape.size() - 1; d >= 0; --d) {
      int64_t coord = flat % shape[d];
      flat /= shape[d];
      if (d >= off) {
        int64_t dim = t.shape[d - off];
        idx += (dim == 1 ? 0 : coord) * stride;
        stride *= dim;
      }
    }
    return idx;
  };
  for (int64_t i = 0; i < n; ++i) {
    std::optional<int64_t> v = fn(a.data[index(a, i)], b.data[index(b, i)]);
    if (!v)
      return std::nullopt;
    out.data.push_back(*v);
  }
  return out;
}

/// Folds a binary op (exactly two inputs) on known integers with `fn`, which
/// returns std::nullopt where the op is undefined (division by zero).
static Folder
binaryFolder(std::optional<int64_t> (*fn)(int64_t, int64_t)) {
  return [fn](FoldArgs &f) -> std::optional<Folded> {
    if (!f.knownInputs() || f.ins.size() != 2)
      return std::nullopt;
    std::optional<IntTensor> r = foldBinary(f.ins[0], f.ins[1], fn);
    if (!r)
      return std::nullopt;
    return Folded{std::move(*r), f.outEt};
  };
}

/// Div of known integers (truncating, as C). A zero divisor, or INT64_MIN /
/// -1 (whose quotient does not fit), fails the import naming the node: the
/// division would trap at run time (docs/reliability.md).
static std::optional<Folded> foldDiv(FoldArgs &f) {
  if (!f.knownInputs() || f.ins.size() != 2 || !f.outEt ||
      !f.outEt.isInteger())
    return std::nullopt;
  bool isUnsigned = f.outEt.isUnsignedInteger();
  std::string &error = f.error;
  std::optional<IntTensor> r = foldBinary(
      f.ins[0], f.ins[1], [&](int64_t x, int64_t y) -> std::optional<int64_t> {
        if (y == 0) {
          error = "integer division by zero (a constant divisor is 0)";
          return std::nullopt;
        }
        if (isUnsigned)
          return (int64_t)((uint64_t)x / (uint64_t)y);
        if (x == std::numeric_limits<int64_t>::min() && y == -1) {
          error = "integer division overflows: " + std::to_string(x) +
                  " / -1 does not fit in 64 bits";
          return std::nullopt;
        }
        return x / y;
      });
  if (!r)
    return std::nullopt;
  return Folded{std::move(*r), f.outEt};
}

/// Identity and Cast of a known value: the value itself, as the result's
/// element type holds it.
static std::optional<Folded> foldIdentity(FoldArgs &f) {
  if (!f.knownInputs())
    return std::nullopt;
  return Folded{f.ins[0], f.outEt};
}

static std::optional<Folded> foldWhere(FoldArgs &f) {
  if (!f.knownInputs() || f.ins.size() != 3)
    return std::nullopt;
  const IntTensor &a = f.ins[0];
  SmallVector<IntTensor> &ins = f.ins;
  auto r1 = foldBinary(ins[1], ins[2], [](int64_t, int64_t) { return 0; });
  if (!r1)
    return std::nullopt;
  // Broadcast all three by folding twice.
  auto pick = foldBinary(a, ins[1], [](int64_t c, int64_t x) -> std::optional<int64_t> {
    return c ? x : INT64_MIN;
  });
  if (!pick)
    return std::nullopt;
  auto r = foldBinary(*pick, ins[2], [](int64_t p, int64_t y) -> std::optional<int64_t> {
    return p == INT64_MIN ? y : p;
  });
  if (!r)
    return std::nullopt;
  return Folded{std::move(*r), f.outEt};
}

//===----------------------------------------------------------------------===//
// Conversions
//===----------------------------------------------------------------------===//

template <typename OpTy>
static LogicalResult convertUnary(Conv &c) {
  Value x = c.in(0);
  return c.out(OpTy::create(c.b, c.loc, x.getType(), x));
}

template <typename OpTy>
static LogicalResult convertBinary(Conv &c, Value lhs, Value rhs, int outIdx = 0) {
  Type et = tensorType(lhs).getElementType();
  rhs = c.cast(rhs, et);
  RankedTensorType ty = c.broadcastType({lhs, rhs}, et);
  if (!ty)
    return c.error() << "operand shapes are not broadcast-compatible",
           failure();
  return c.out(OpTy::create(c.b, c.loc, ty, lhs, rhs), outIdx);
}

/// Chains a variadic ONNX op (Min, Max, Sum) into binary quench ops.
template <typename OpTy>
static FailureOr<Value> chainVariadic(Conv &c) {
  Value acc = c.in(0);
  Type et = tensorType(acc).getElementType();
  for (int i = 1; i < c.node.input_size(); ++i) {
    Value rhs = c.cast(c.in(i), et);
    RankedTensorType ty = c.broadcastType({acc, rhs}, et);
    if (!ty)
      return c.error() << "operand shapes are not broadcast-compatible",
             failure();
    acc = OpTy::create(c.b, c.loc, ty, acc, rhs);
  }
  return acc;
}

template <typename OpTy>
static LogicalResult convertVariadic(Conv &c) {
  FailureOr<Value> v = chainVariadic<OpTy>(c);
  return failed(v) ? failure() : c.out(*v);
}

template <typename OpTy>
static LogicalResult convertBinaryOp(Conv &c) {
  return convertBinary<OpTy>(c, c.in(0), c.in(1));
}

static LogicalResult convertIdentity(Conv &c) { return c.out(c.in(0)); }

static LogicalResult convertDropout(Conv &c) {
  GraphImporter &imp = c.imp;
  const onnx::NodeProto &node = c.node;
  OpBuilder &b = c.b;
  // Inference mode (training_mode absent or false) and ratio 0 are the
  // identity with an all-true mask; training-mode dropout is random.
  bool training = false;
  if (c.has(2)) {
    std::optional<double> t = imp.knownScalar(node, 2);
    if (!t)
      return c.error() << "training_mode must be a constant", failure();
    training = *t != 0;
  }
  if (training) {
    std::optional<double> ratio =
        c.has(1) ? imp.knownScalar(node, 1) : std::optional<double>(0.5);
    if (!ratio || *ratio != 0)
      return c.error() << "training-mode dropout (random) is not "
                          "supported; export the model in inference mode",
             failure();
  }
  Value x = c.in(0);
  if (node.output_size() > 1 && !node.output(1).empty()) {
    auto xt = tensorType(x);
    auto maskTy = xt.clone(b.getI1Type());
    auto scalarTy = RankedTensorType::get({}, b.getI1Type());
    Value mask = imp.constant(
        c.loc, DenseElementsAttr::get(
                   maskTy.hasStaticShape() ? maskTy : scalarTy, true));
    if (!maskTy.hasStaticShape())
      mask = ExpandOp::create(b, c.loc, maskTy, mask, shapeOf(c, x));
    (void)c.out(mask, 1);
  }
  return c.out(x);
}

static LogicalResult convertPow(Conv &c) {
  OpBuilder &b = c.b;
  Type et = tensorType(c.in(0)).getElementType();
  if (isa<FloatType>(et))
    return convertBinary<PowOp>(c, c.in(0), c.in(1));
  // Integer base: pow in f64 (exact while |result| < 2^53), then back to
  // the base type, truncating like ONNX's `pow(x, y).astype(x.dtype)`.
  Type f64 = b.getF64Type();
  Value x = c.cast(c.in(0), f64), y = c.cast(c.in(1), f64);
  RankedTensorType ty = c.broadcastType({x, y}, f64);
  if (!ty)
    return c.error() << "operand shapes are not broadcast-compatible",
           failure();
  return c.out(c.cast(PowOp::create(b, c.loc, ty, x, y), et));
}

static LogicalResult convertMod(Conv &c) {
  GraphImporter &imp = c.imp;
  const onnx::NodeProto &node = c.node;
  OpBuilder &b = c.b;
  bool isFloat = isa<FloatType>(tensorType(c.in(0)).getElementType());
  int64_t fmod = imp.attrInt(node, "fmod", 0);
  if (isFloat && fmod != 1)
    return c.error() << "Mod of floating-point values requires fmod=1",
           failure();
  if (!isFloat && fmod == 1) {
    // C fmod on integers (result has the sign of the dividend):
    // x - y * (x / y) with truncating division.
    Value x = c.in(0), y = c.in(1);
    Type et = tensorType(x).getElementType();
    RankedTensorType ty = c.broadcastType({x, y}, et);
    if (!ty)
      return c.error() << "operand shapes are not broadcast-compatible",
             failure();
    Value q = DivOp::create(b, c.loc, ty, x, y);
    Value p = MulOp::create(b, c.loc, ty, y, q);
    return c.out(SubOp::create(b, c.loc, ty, x, p));
  }
  return convertBinary<ModOp>(c, c.in(0), c.in(1));
}

static LogicalResult convertMean(Conv &c) {
  const onnx::NodeProto &node = c.node;
  OpBuilder &b = c.b;
  FailureOr<Value> sum = chainVariadic<AddOp>(c);
  if (failed(sum))
    return failure();
  if (node.input_size() == 1)
    return c.out(*sum);
  auto ty = tensorType(*sum);
  return c.out(DivOp::create(b, c.loc, ty, *sum,
                             c.scalar(node.input_size(), ty.getElementType())));
}

template <CmpPredicate pred>
static LogicalResult convertCompare(Conv &c) {
  OpBuilder &b = c.b;
  Value lhs = c.in(0), rhs = c.cast(c.in(1), tensorType(c.in(0)).getElementType());
  RankedTensorType ty = c.broadcastType({lhs, rhs}, b.getI1Type());
  if (!ty)
    return c.error() << "operand shapes are not broadcast-compatible", failure();
  return c.out(CmpOp::create(b, c.loc, ty, pred, lhs, rhs));
}

template <LogicalKind kind>
static LogicalResult convertLogical(Conv &c) {
  OpBuilder &b = c.b;
  RankedTensorType ty = c.broadcastType({c.in(0), c.in(1)}, b.getI1Type());
  if (!ty)
    return c.error() << "operand shapes are not broadcast-compatible", failure();
  return c.out(LogicalOp::create(b, c.loc, ty, kind, c.in(0), c.in(1)));
}

static LogicalResult convertWhere(Conv &c) {
  OpBuilder &b = c.b;
  Type et = tensorType(c.in(1)).getElementType();
  RankedTensorType ty = c.broadcastType({c.in(0), c.in(1), c.in(2)}, et);
  if (!ty)
    return c.error() << "operand shapes are not broadcast-compatible", failure();
  return c.out(WhereOp::create(b, c.loc, ty, c.in(0), c.in(1), c.in(2)));
}

static LogicalResult convertClip(Conv &c) {
  GraphImporter &imp = c.imp;
  const onnx::NodeProto &node = c.node;
  OpBuilder &b = c.b;
  std::optional<double> bound[2];
  for (int i : {1, 2}) {
    if (!c.has(i))
      continue;
    bound[i - 1] = imp.knownScalar(node, i);
    if (!bound[i - 1])
      return c.error() << "clip bounds must be constants", failure();
  }
  // Integer bounds at or beyond the type's range clip nothing (and may not
  // survive the trip through f64): drop them.
  if (auto it = dyn_cast<IntegerType>(tensorType(c.in(0)).getElementType())) {
    unsigned w = it.getWidth();
    bool u = it.isUnsigned() || w == 1;
    double tmin = u ? 0.0 : std::ldexp(-1.0, w - 1);
    double tmax = u ? std::ldexp(1.0, w) - 1 : std::ldexp(1.0, w - 1) - 1;
    if (bound[0] && *bound[0] <= tmin)
      bound[0].reset();
    if (bound[1] && *bound[1] >= tmax)
      bound[1].reset();
  }
  // min > max gives max everywhere (min(max(x, lo), hi)): same as lo = hi.
  if (bound[0] && bound[1] && *bound[0] > *bound[1])
    bound[0] = bound[1];
  FloatAttr lo = bound[0] ? b.getF64FloatAttr(*bound[0]) : FloatAttr();
  FloatAttr hi = bound[1] ? b.getF64FloatAttr(*bound[1]) : FloatAttr();
  return c.out(ClipOp::create(b, c.loc, c.in(0).getType(), c.in(0), lo, hi));
}

/// Cast to the `to` attribute's type, or (CastLike) to input 1's.
template <bool likeInput>
static LogicalResult convertCast(Conv &c) {
  GraphImporter &imp = c.imp;
  const onnx::NodeProto &node = c.node;
  Type et = likeInput
                ? tensorType(c.in(1)).getElementType()
                : convertElementType(imp.attrInt(node, "to", 0), imp.ctx);
  if (!et)
    return c.error() << "cast to unsupported element type "
                     << onnxTypeName(imp.attrInt(node, "to", 0)),
           failure();
  return c.out(c.cast(c.in(0), et));
}

static LogicalResult convertTrilu(Conv &c) {
  GraphImporter &imp = c.imp;
  const onnx::NodeProto &node = c.node;
  OpBuilder &b = c.b;
  int64_t k = 0;
  if (c.has(1)) {
    std::optional<double> v = imp.knownScalar(node, 1);
    if (!v)
      return c.error() << "k must be a constant", failure();
    k = (int64_t)*v;
  }
  return c.out(TriluOp::create(b, c.loc, c.in(0).getType(), c.in(0),
                               (bool)imp.attrInt(node, "upper", 1), k));
}

//===----------------------------------------------------------------------===//
// Registration
//===----------------------------------------------------------------------===//

void onnximport::populateElementwiseOps(OpTable &table) {
  using I = int64_t;
  using R = std::optional<int64_t>;

  table.add("Identity", convertIdentity, foldIdentity);
  table.add("Dropout", convertDropout);

  table.add("Sqrt", convertUnary<SqrtOp>);
  table.add("Reciprocal", convertUnary<ReciprocalOp>);
  table.add("Exp", convertUnary<ExpOp>);
  table.add("Log", convertUnary<LogOp>);
  table.add("Tanh", convertUnary<TanhOp>);
  table.add("Erf", convertUnary<ErfOp>);
  table.add("Sin", convertUnary<SinOp>);
  table.add("Cos", convertUnary<CosOp>);
  table.add("Floor", convertUnary<FloorOp>);
  table.add("Ceil", convertUnary<CeilOp>);
  table.add("Sigmoid", convertUnary<SigmoidOp>);
  table.add("Relu", convertUnary<ReluOp>);
  table.add("Neg", convertUnary<NegOp>);
  table.add("Abs", convertUnary<AbsOp>);
  table.add("Not", convertUnary<NotOp>);

  // Integer arithmetic wraps (two's complement), as the generated code's
  // does; unsigned 64-bit values are held as their bit patterns.
  using U = uint64_t;
  table.add("Add", convertBinaryOp<AddOp>,
            binaryFolder([](I x, I y) -> R { return (I)((U)x + (U)y); }));
  table.add("Sub", convertBinaryOp<SubOp>,
            binaryFolder([](I x, I y) -> R { return (I)((U)x - (U)y); }));
  table.add("Mul", convertBinaryOp<MulOp>,
            binaryFolder([](I x, I y) -> R { return (I)((U)x * (U)y); }));
  table.add("Div", convertBinaryOp<DivOp>, foldDiv);
  table.add("Pow", convertPow);
  table.add("Mod", convertMod);

  // Min and Max fold with two inputs only.
  table.add("Min", convertVariadic<MinOp>,
            binaryFolder([](I x, I y) -> R { return std::min(x, y); }));
  table.add("Max", convertVariadic<MaxOp>,
            binaryFolder([](I x, I y) -> R { return std::max(x, y); }));
  table.add("Sum", convertVariadic<AddOp>);
  table.add("Mean", convertMean);

  table.add("Equal", convertCompare<CmpPredicate::eq>,
            binaryFolder([](I x, I y) -> R { return (I)(x == y); }));
  table.add("Less", convertCompare<CmpPredicate::lt>,
            binaryFolder([](I x, I y) -> R { return (I)(x < y); }));
  table.add("LessOrEqual", convertCompare<CmpPredicate::le>);
  table.add("Greater", convertCompare<CmpPredicate::gt>,
            binaryFolder([](I x, I y) -> R { return (I)(x > y); }));
  table.add("GreaterOrEqual", convertCompare<CmpPredicate::ge>);

  table.add("And", convertLogical<LogicalKind::and_>);
  table.add("Or", convertLogical<LogicalKind::or_>);
  table.add("Xor", convertLogical<LogicalKind::xor_>);

  table.add("Where", convertWhere, foldWhere);
  table.add("Clip", convertClip);
  table.add("Cast", convertCast<false>, foldIdentity);
  table.add("CastLike", convertCast<true>);
  table.add("Trilu", convertTrilu);
}
