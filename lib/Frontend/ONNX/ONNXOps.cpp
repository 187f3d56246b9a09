//===- ONNXOps.cpp - ONNX node conversions --------------------------------===//
//
// One conversion per ONNX operator (opsets 13-17, plus com.microsoft
// MatMulNBits). Operator attributes that must be import-time constants in
// Quench (Slice bounds, Reshape targets when the data is dynamic, Clip
// bounds...) are read from constants; everything else maps to a quench op
// with ONNX's semantics. Small integer computations on constants are folded
// here so that exporters' shape arithmetic disappears at import.
//
//===----------------------------------------------------------------------===//

#include "ImporterImpl.h"

#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/IR/QuenchOps.h"

#include "llvm/ADT/StringSet.h"

#include <numeric>

using namespace quench;
using namespace quench::onnximport;

static constexpr int64_t kDyn = ShapedType::kDynamic;

static RankedTensorType tensorType(Value v) {
  return cast<RankedTensorType>(v.getType());
}

static const llvm::StringSet<> &unaryOps() {
  static const llvm::StringSet<> ops = {
      "Sqrt", "Reciprocal", "Exp",  "Log",  "Tanh", "Erf", "Sin", "Cos",
      "Floor", "Ceil",      "Sigmoid", "Relu", "Neg", "Abs", "Not"};
  return ops;
}

static const llvm::StringSet<> &defaultDomainOps() {
  static const llvm::StringSet<> ops = [] {
    llvm::StringSet<> s = {
        "Identity", "Dropout", "Constant", "Add", "Sub", "Mul", "Div", "Pow",
        "Min", "Max", "Sum", "Mean", "Mod", "Equal", "Less", "LessOrEqual",
        "Greater", "GreaterOrEqual", "And", "Or", "Xor", "Where", "Clip",
        "Cast", "CastLike", "MatMul", "Gemm", "Gather", "LayerNormalization",
        "Softmax", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin",
        "ReduceProd", "Reshape", "Transpose", "Concat", "Slice", "Split",
        "Expand", "Squeeze", "Unsqueeze", "Trilu", "Shape", "Range",
        "ConstantOfShape", "Flatten", "QuantizeLinear", "DequantizeLinear",
        "DynamicQuantizeLinear", "MatMulInteger", "QLinearMatMul"};
    for (const auto &u : unaryOps())
      s.insert(u.getKey());
    return s;
  }();
  return ops;
}

bool onnximport::isSupportedOp(llvm::StringRef domain, llvm::StringRef opType) {
  if (domain.empty() || domain == "ai.onnx")
    return defaultDomainOps().contains(opType);
  if (domain == "com.microsoft")
    return opType == "MatMulNBits";
  return false;
}

std::vector<std::pair<std::string, std::string>> quench::getSupportedONNXOps() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto &op : defaultDomainOps())
    out.emplace_back("", op.getKey().str());
  out.emplace_back("com.microsoft", "MatMulNBits");
  std::sort(out.begin(), out.end());
  return out;
}

FailureOr<int64_t> onnximport::normalizeAxis(GraphImporter &imp,
                                             const onnx::NodeProto &node,
                                             int64_t axis, int64_t rank) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    return imp.nodeError(node) << "axis " << axis << " is out of range for rank "
                               << rank,
           failure();
  return a;
}

//===----------------------------------------------------------------------===//
// Import-time folding of integer computations
//===----------------------------------------------------------------------===//

static int64_t numElements(ArrayRef<int64_t> shape) {
  return std::accumulate(shape.begin(), shape.end(), (int64_t)1,
                         std::multiplies<int64_t>());
}

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

/// Folds `node` when it computes on known integers; returns true when the
/// node's outputs were set.
static bool tryFold(GraphImporter &imp, const onnx::NodeProto &node) {
  llvm::StringRef op = node.op_type();
  if (!node.domain().empty() && node.domain() != "ai.onnx")
    return false;
  FailureOr<RankedTensorType> outTy = imp.outputType(node, 0);
  Type outEt = succeeded(outTy) ? outTy->getElementType() : Type();
  auto emit = [&](IntTensor t, Type et) {
    if (!et || !et.isInteger() || numElements(t.shape) != (int64_t)t.data.size())
      return false;
    imp.setOutput(node, 0, imp.intConstant(imp.nodeLoc(node), t, et));
    imp.setKnown(node.output(0), std::move(t));
    return true;
  };
  Type i64 = imp.builder.getI64Type();

  if (op == "Shape") {
    Value in = imp.input(node, 0);
    auto ty = tensorType(in);
    int64_t rank = ty.getRank();
    int64_t start = imp.attrInt(node, "start", 0);
    int64_t end = imp.attrInt(node, "end", rank);
    start = std::clamp(start < 0 ? start + rank : start, (int64_t)0, rank);
    end = std::clamp(end < 0 ? end + rank : end, (int64_t)0, rank);
    IntTensor t;
    for (int64_t d = start; d < end; ++d) {
      if (ty.isDynamicDim(d))
        return false;
      t.data.push_back(ty.getDimSize(d));
    }
    t.shape = {(int64_t)t.data.size()};
    return emit(t, i64);
  }

  SmallVector<IntTensor> ins;
  for (int i = 0; i < node.input_size(); ++i) {
    if (node.input(i).empty()) {
      ins.emplace_back();
      continue;
    }
    std::optional<IntTensor> k = imp.knownInts(node, i);
    if (!k)
      return false;
    ins.push_back(std::move(*k));
  }
  if (ins.empty())
    return false;
  const IntTensor &a = ins[0];

  if (op == "Identity")
    return emit(a, outEt);
  if (op == "Cast")
    return emit(a, outEt);
  if (op == "Unsqueeze" || op == "Squeeze" || op == "Reshape" ||
      op == "Flatten") {
    if (!succeeded(outTy) || !outTy->hasStaticShape())
      return false;
    IntTensor t = a;
    t.shape.assign(outTy->getShape().begin(), outTy->getShape().end());
    return emit(t, outEt);
  }
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div" ||
      op == "Equal" || op == "Max" || op == "Min" || op == "Less" ||
      op == "Greater") {
    if (ins.size() != 2)
      return false;
    auto r = foldBinary(a, ins[1], [&](int64_t x, int64_t y)
                                       -> std::optional<int64_t> {
      if (op == "Add") return x + y;
      if (op == "Sub") return x - y;
      if (op == "Mul") return x * y;
      if (op == "Div") return y == 0 ? std::nullopt : std::optional<int64_t>(x / y);
      if (op == "Equal") return (int64_t)(x == y);
      if (op == "Less") return (int64_t)(x < y);
      if (op == "Greater") return (int64_t)(x > y);
      if (op == "Max") return std::max(x, y);
      return std::min(x, y);
    });
    return r && emit(*r, outEt);
  }
  if (op == "Where" && ins.size() == 3) {
    auto r1 = foldBinary(ins[1], ins[2], [](int64_t, int64_t) { return 0; });
    if (!r1)
      return false;
    // Broadcast all three by folding twice.
    auto pick = foldBinary(a, ins[1], [](int64_t c, int64_t x) -> std::optional<int64_t> {
      return c ? x : INT64_MIN;
    });
    if (!pick)
      return false;
    auto r = foldBinary(*pick, ins[2], [](int64_t p, int64_t y) -> std::optional<int64_t> {
      return p == INT64_MIN ? y : p;
    });
    return r && emit(*r, outEt);
  }
  if (op == "Concat") {
    if (a.shape.size() != 1)
      return false;
    IntTensor t;
    for (const IntTensor &x : ins) {
      if (x.shape.size() != 1)
        return false;
      t.data.insert(t.data.end(), x.data.begin(), x.data.end());
    }
    t.shape = {(int64_t)t.data.size()};
    return emit(t, outEt);
  }
  if (op == "Gather" && ins.size() == 2 && a.shape.size() == 1) {
    IntTensor t;
    t.shape = ins[1].shape;
    for (int64_t i : ins[1].data) {
      int64_t idx = i < 0 ? i + a.shape[0] : i;
      if (idx < 0 || idx >= a.shape[0])
        return false;
      t.data.push_back(a.data[idx]);
    }
    return emit(t, outEt);
  }
  if (op == "Slice" && a.shape.size() == 1 && ins.size() >= 3) {
    int64_t dim = a.shape[0];
    if (ins.size() > 3 && !ins[3].data.empty() && ins[3].data[0] != 0 &&
        ins[3].data[0] != -1)
      return false;
    int64_t step = ins.size() > 4 && !ins[4].data.empty() ? ins[4].data[0] : 1;
    if (step != 1 || ins[1].data.size() != 1 || ins[2].data.size() != 1)
      return false;
    int64_t s = ins[1].data[0], e = ins[2].data[0];
    s = std::clamp(s < 0 ? s + dim : s, (int64_t)0, dim);
    e = std::clamp(e < 0 ? e + dim : e, (int64_t)0, dim);
    IntTensor t;
    for (int64_t i = s; i < e; ++i)
      t.data.push_back(a.data[i]);
    t.shape = {(int64_t)t.data.size()};
    return emit(t, outEt);
  }
  if (op == "Range" && ins.size() == 3) {
    int64_t start = a.data[0], limit = ins[1].data[0], delta = ins[2].data[0];
    if (delta == 0)
      return false;
    IntTensor t;
    for (int64_t v = start; delta > 0 ? v < limit : v > limit; v += delta)
      t.data.push_back(v);
    t.shape = {(int64_t)t.data.size()};
    return emit(t, outEt);
  }
  return false;
}

//===----------------------------------------------------------------------===//
// Conversions
//===----------------------------------------------------------------------===//

namespace {
/// Per-node conversion context: the importer, the node and its location.
struct Conv {
  GraphImporter &imp;
  const onnx::NodeProto &node;
  Location loc;
  OpBuilder &b;

  Conv(GraphImporter &imp, const onnx::NodeProto &node)
      : imp(imp), node(node), loc(imp.nodeLoc(node)), b(imp.builder) {}

  Value in(int i) { return imp.input(node, i); }
  bool has(int i) { return imp.hasInput(node, i); }
  InFlightDiagnostic error() { return imp.nodeError(node); }
  LogicalResult out(Value v, int i = 0) {
    imp.setOutput(node, i, v);
    return success();
  }
  RankedTensorType outType(RankedTensorType fallback, int i = 0) {
    return imp.outputTypeOr(node, i, fallback);
  }
  FailureOr<int64_t> axis(int64_t a, int64_t rank) {
    return normalizeAxis(imp, node, a, rank);
  }
  Value cast(Value v, Type et) {
    auto ty = tensorType(v);
    if (ty.getElementType() == et)
      return v;
    return CastOp::create(b, loc, ty.clone(et), v);
  }
  /// The broadcast result type of `vals` with element type `et`.
  RankedTensorType broadcastType(ValueRange vals, Type et) {
    SmallVector<int64_t> shape;
    for (Value v : vals) {
      SmallVector<int64_t> next;
      if (failed(broadcastShapes(shape, tensorType(v).getShape(), next)))
        return nullptr;
      shape = next;
    }
    return outType(RankedTensorType::get(shape, et));
  }
  Value f32Scalar(double v, Type et) {
    auto ty = RankedTensorType::get({}, et);
    return ConstantOp::create(b, loc, ty,
                              DenseElementsAttr::get(ty, b.getFloatAttr(et, v)));
  }
};
} // namespace

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

static Value createUnary(Conv &c, llvm::StringRef op, Value x) {
  Type ty = x.getType();
#define UNARY(NAME, OP)                                                        \
  if (op == NAME)                                                              \
    return OP::create(c.b, c.loc, ty, x);
  UNARY("Sqrt", SqrtOp) UNARY("Reciprocal", ReciprocalOp) UNARY("Exp", ExpOp)
  UNARY("Log", LogOp) UNARY("Tanh", TanhOp) UNARY("Erf", ErfOp)
  UNARY("Sin", SinOp) UNARY("Cos", CosOp) UNARY("Floor", FloorOp)
  UNARY("Ceil", CeilOp) UNARY("Sigmoid", SigmoidOp) UNARY("Relu", ReluOp)
  UNARY("Neg", NegOp) UNARY("Abs", AbsOp) UNARY("Not", NotOp)
#undef UNARY
  return nullptr;
}

static LogicalResult convertConstant(Conv &c) {
  const onnx::NodeProto &n = c.node;
  for (const auto &a : n.attribute()) {
    if (a.name() == "value") {
      FailureOr<ElementsAttr> attr =
          c.imp.convertTensor(a.t(), "constant '" + n.output(0) + "'", c.loc);
      if (failed(attr))
        return failure();
      return c.out(c.imp.constant(c.loc, *attr));
    }
    auto make = [&](Type et, ArrayRef<int64_t> shape, ArrayRef<Attribute> vals) {
      auto ty = RankedTensorType::get(shape, et);
      return c.out(c.imp.constant(c.loc, DenseElementsAttr::get(ty, vals)));
    };
    if (a.name() == "value_float")
      return make(c.b.getF32Type(), {}, {c.b.getF32FloatAttr(a.f())});
    if (a.name() == "value_int")
      return make(c.b.getI64Type(), {}, {c.b.getI64IntegerAttr(a.i())});
    if (a.name() == "value_floats") {
      SmallVector<Attribute> v;
      for (float f : a.floats())
        v.push_back(c.b.getF32FloatAttr(f));
      return make(c.b.getF32Type(), {(int64_t)v.size()}, v);
    }
    if (a.name() == "value_ints") {
      SmallVector<Attribute> v;
      for (int64_t i : a.ints())
        v.push_back(c.b.getI64IntegerAttr(i));
      return make(c.b.getI64Type(), {(int64_t)v.size()}, v);
    }
  }
  return c.error() << "only tensor, float(s) and int(s) constant values are "
                      "supported",
         failure();
}

static LogicalResult convertGemm(Conv &c) {
  Value a = c.in(0), bm = c.in(1);
  float alpha = c.imp.attrFloat(c.node, "alpha", 1.0f);
  float beta = c.imp.attrFloat(c.node, "beta", 1.0f);
  bool transA = c.imp.attrInt(c.node, "transA", 0);
  bool transB = c.imp.attrInt(c.node, "transB", 0);
  auto at = tensorType(a), bt = tensorType(bm);
  Type et = at.getElementType();
  if (transA)
    a = TransposeOp::create(
        c.b, c.loc,
        RankedTensorType::get({at.getDimSize(1), at.getDimSize(0)}, et), a,
        ArrayRef<int64_t>{1, 0});
  int64_t m = tensorType(a).getDimSize(0);
  int64_t n = transB ? bt.getDimSize(0) : bt.getDimSize(1);
  auto resTy = c.outType(RankedTensorType::get({m, n}, et));
  Value cIn = c.has(2) ? c.in(2) : Value();
  // The common nn.Linear export: Gemm(x, W, b, transB=1) with alpha = beta = 1.
  if (transB && alpha == 1.0f && (!cIn || beta == 1.0f) &&
      (!cIn || tensorType(cIn).getRank() == 1)) {
    return c.out(LinearOp::create(c.b, c.loc, resTy, a, bm, cIn));
  }
  if (transB)
    bm = TransposeOp::create(
        c.b, c.loc,
        RankedTensorType::get({bt.getDimSize(1), bt.getDimSize(0)}, et), bm,
        ArrayRef<int64_t>{1, 0});
  Value y = MatMulOp::create(c.b, c.loc, resTy, a, bm);
  if (alpha != 1.0f)
    y = MulOp::create(c.b, c.loc, resTy, y, c.f32Scalar(alpha, et));
  if (cIn) {
    if (beta != 1.0f)
      cIn = MulOp::create(c.b, c.loc, tensorType(cIn), cIn,
                          c.f32Scalar(beta, et));
    y = AddOp::create(c.b, c.loc, resTy, y, cIn);
  }
  return c.out(y);
}

static FailureOr<SmallVector<int64_t>> reduceAxes(Conv &c, int64_t rank,
                                                  bool &identity) {
  identity = false;
  std::optional<SmallVector<int64_t>> axes;
  bool axesAsInput = c.node.op_type() == "ReduceSum" || c.imp.opset >= 18;
  if (axesAsInput) {
    if (c.has(1)) {
      std::optional<IntTensor> k = c.imp.knownInts(c.node, 1);
      if (!k)
        return c.error() << "reduction axes must be constant", failure();
      axes = SmallVector<int64_t>(k->data.begin(), k->data.end());
    }
  } else {
    axes = c.imp.attrInts(c.node, "axes");
  }
  SmallVector<int64_t> out;
  if (!axes || axes->empty()) {
    if (c.imp.attrInt(c.node, "noop_with_empty_axes", 0)) {
      identity = true;
      return out;
    }
    for (int64_t d = 0; d < rank; ++d)
      out.push_back(d);
    return out;
  }
  for (int64_t a : *axes) {
    FailureOr<int64_t> n = c.axis(a, rank);
    if (failed(n))
      return failure();
    out.push_back(*n);
  }
  llvm::sort(out);
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

static LogicalResult convertReduce(Conv &c, ReduceKind kind) {
  Value x = c.in(0);
  auto ty = tensorType(x);
  bool identity;
  FailureOr<SmallVector<int64_t>> axes = reduceAxes(c, ty.getRank(), identity);
  if (failed(axes))
    return failure();
  if (identity)
    return c.out(x);
  bool keep = c.imp.attrInt(c.node, "keepdims", 1);
  SmallVector<int64_t> shape;
  for (int64_t d = 0; d < ty.getRank(); ++d) {
    if (llvm::is_contained(*axes, d)) {
      if (keep)
        shape.push_back(1);
    } else {
      shape.push_back(ty.getDimSize(d));
    }
  }
  auto resTy = c.outType(RankedTensorType::get(shape, ty.getElementType()));
  return c.out(ReduceOp::create(c.b, c.loc, resTy, kind, x, *axes, keep));
}

static LogicalResult convertReshape(Conv &c) {
  Value x = c.in(0);
  auto ty = tensorType(x);
  bool allowZero = c.imp.attrInt(c.node, "allowzero", 0);
  std::optional<IntTensor> shape = c.imp.knownInts(c.node, 1);
  FailureOr<RankedTensorType> inferred = c.imp.outputType(c.node, 0);
  if (!shape) {
    if (failed(inferred))
      return c.error() << "the target shape is computed at run time and its "
                          "rank is unknown",
             failure();
    return c.out(ReshapeOp::create(c.b, c.loc, *inferred, x, c.in(1)));
  }
  SmallVector<int64_t> target;
  int64_t inferIdx = -1, known = 1;
  for (auto [i, d] : llvm::enumerate(shape->data)) {
    if (d == 0 && !allowZero) {
      if ((int64_t)i >= ty.getRank())
        return c.error() << "shape entry 0 at " << i
                         << " copies a dimension the input does not have",
               failure();
      d = ty.getDimSize(i);
    } else if (d == -1) {
      if (inferIdx >= 0)
        return c.error() << "shape has more than one -1", failure();
      inferIdx = i;
    } else if (d < 0) {
      return c.error() << "invalid shape entry " << d, failure();
    }
    target.push_back(d == -1 ? kDyn : d);
    if (d != -1)
      known = d == kDyn ? kDyn : (known == kDyn ? kDyn : known * d);
  }
  if (inferIdx >= 0 && ty.hasStaticShape() && known != kDyn) {
    if (known == 0 || ty.getNumElements() % known != 0)
      return c.error() << "cannot reshape " << ty.getNumElements()
                       << " elements into the requested shape",
             failure();
    target[inferIdx] = ty.getNumElements() / known;
  }
  auto resTy = c.outType(RankedTensorType::get(target, ty.getElementType()));
  Value shapeOperand;
  if (!resTy.hasStaticShape())
    shapeOperand = c.in(1);
  return c.out(ReshapeOp::create(c.b, c.loc, resTy, x, shapeOperand));
}

static LogicalResult convertSlice(Conv &c) {
  Value x = c.in(0);
  auto ty = tensorType(x);
  int64_t rank = ty.getRank();
  std::optional<IntTensor> starts = c.imp.knownInts(c.node, 1);
  std::optional<IntTensor> ends = c.imp.knownInts(c.node, 2);
  std::optional<IntTensor> axes = c.has(3) ? c.imp.knownInts(c.node, 3)
                                           : std::optional<IntTensor>(IntTensor());
  std::optional<IntTensor> steps = c.has(4) ? c.imp.knownInts(c.node, 4)
                                            : std::optional<IntTensor>(IntTensor());
  if (!starts || !ends || !axes || !steps)
    return c.error() << "slice bounds computed at run time are not supported "
                        "(specialize dynamic inputs with --shape)",
           failure();
  SmallVector<int64_t> s(rank, 0), e(rank, INT64_MAX), st(rank, 1);
  for (size_t i = 0; i < starts->data.size(); ++i) {
    int64_t a = axes->data.empty() ? (int64_t)i : axes->data[i];
    FailureOr<int64_t> d = c.axis(a, rank);
    if (failed(d))
      return failure();
    int64_t step = steps->data.empty() ? 1 : steps->data[i];
    if (step == 0)
      return c.error() << "slice step is 0", failure();
    int64_t start = starts->data[i], end = ends->data[i];
    int64_t dim = ty.getDimSize(*d);
    if (dim == kDyn) {
      if (start < 0 || step < 0 || end < 0)
        return c.error() << "negative slice bounds or steps on a dynamic "
                            "dimension are not supported",
               failure();
    } else {
      if (start < 0) start += dim;
      if (end < 0) end += dim;
      if (step > 0) {
        start = std::clamp(start, (int64_t)0, dim);
        end = std::clamp(end, (int64_t)0, dim);
      } else {
        start = std::clamp(start, (int64_t)0, dim - 1);
        end = std::clamp(end, (int64_t)-1, dim - 1);
      }
    }
    s[*d] = start;
    e[*d] = end;
    st[*d] = step;
  }
  SmallVector<int64_t> shape;
  for (int64_t d = 0; d < rank; ++d) {
    int64_t dim = ty.getDimSize(d);
    if (dim == kDyn) {
      shape.push_back(kDyn);
      continue;
    }
    if (e[d] == INT64_MAX)
      e[d] = st[d] > 0 ? dim : -1;
    int64_t ext = st[d] > 0 ? (e[d] > s[d] ? (e[d] - s[d] + st[d] - 1) / st[d] : 0)
                            : (s[d] > e[d] ? (s[d] - e[d] - st[d] - 1) / -st[d] : 0);
    shape.push_back(ext);
  }
  auto resTy = c.outType(RankedTensorType::get(shape, ty.getElementType()));
  return c.out(SliceOp::create(c.b, c.loc, resTy, x, s, e, st));
}

static LogicalResult convertSplit(Conv &c) {
  Value x = c.in(0);
  auto ty = tensorType(x);
  FailureOr<int64_t> axis = c.axis(c.imp.attrInt(c.node, "axis", 0), ty.getRank());
  if (failed(axis))
    return failure();
  int64_t dim = ty.getDimSize(*axis);
  int n = c.node.output_size();
  SmallVector<int64_t> sizes;
  if (c.has(1)) {
    std::optional<IntTensor> k = c.imp.knownInts(c.node, 1);
    if (!k)
      return c.error() << "split sizes must be constant", failure();
    sizes.assign(k->data.begin(), k->data.end());
  } else if (auto attrSizes = c.imp.attrInts(c.node, "split")) {
    sizes = *attrSizes;
  } else {
    if (dim == kDyn)
      return c.error() << "equal split of a dynamic dimension is not "
                          "supported",
             failure();
    int64_t chunk = (dim + n - 1) / n;
    for (int i = 0; i < n; ++i)
      sizes.push_back(std::min(chunk, dim - chunk * i));
  }
  if ((int)sizes.size() != n)
    return c.error() << sizes.size() << " split sizes for " << n << " outputs",
           failure();
  SmallVector<Type> types;
  for (int64_t s : sizes) {
    SmallVector<int64_t> shape(ty.getShape());
    shape[*axis] = s;
    types.push_back(RankedTensorType::get(shape, ty.getElementType()));
  }
  auto op = SplitOp::create(c.b, c.loc, types, x, *axis, sizes);
  for (int i = 0; i < n; ++i)
    (void)c.out(op.getResult(i), i);
  return success();
}

static LogicalResult convertSqueezeLike(Conv &c, bool squeeze) {
  Value x = c.in(0);
  auto ty = tensorType(x);
  std::optional<SmallVector<int64_t>> axes;
  if (c.has(1)) {
    std::optional<IntTensor> k = c.imp.knownInts(c.node, 1);
    if (!k)
      return c.error() << "axes must be constant", failure();
    axes = SmallVector<int64_t>(k->data.begin(), k->data.end());
  }
  int64_t outRank = squeeze ? ty.getRank()
                            : ty.getRank() + (axes ? axes->size() : 0);
  SmallVector<int64_t> norm;
  if (!axes) {
    if (!squeeze)
      return c.error() << "Unsqueeze requires axes", failure();
    for (int64_t d = 0; d < ty.getRank(); ++d)
      if (ty.getDimSize(d) == 1)
        norm.push_back(d);
  } else {
    for (int64_t a : *axes) {
      FailureOr<int64_t> n = c.axis(a, outRank);
      if (failed(n))
        return failure();
      norm.push_back(*n);
    }
  }
  llvm::sort(norm);
  SmallVector<int64_t> shape;
  if (squeeze) {
    for (int64_t d = 0; d < ty.getRank(); ++d)
      if (!llvm::is_contained(norm, d))
        shape.push_back(ty.getDimSize(d));
    auto resTy = c.outType(RankedTensorType::get(shape, ty.getElementType()));
    return c.out(SqueezeOp::create(c.b, c.loc, resTy, x, norm));
  }
  int64_t src = 0;
  for (int64_t d = 0; d < outRank; ++d)
    shape.push_back(llvm::is_contained(norm, d) ? 1 : ty.getDimSize(src++));
  auto resTy = c.outType(RankedTensorType::get(shape, ty.getElementType()));
  return c.out(UnsqueezeOp::create(c.b, c.loc, resTy, x, norm));
}

static LogicalResult convertQuantLinear(Conv &c, bool quantize) {
  Value x = c.in(0), scale = c.in(1);
  Value zp = c.has(2) ? c.in(2) : Value();
  auto ty = tensorType(x);
  int64_t axis = 1;
  if (tensorType(scale).getRank() == 1) {
    FailureOr<int64_t> a = c.axis(c.imp.attrInt(c.node, "axis", 1), ty.getRank());
    if (failed(a))
      return failure();
    axis = *a;
  }
  if (quantize) {
    Type et = zp ? tensorType(zp).getElementType()
                 : c.b.getIntegerType(8, /*isSigned=*/false);
    auto resTy = c.outType(ty.clone(et));
    return c.out(QuantizeLinearOp::create(c.b, c.loc, resTy, x, scale, zp, axis));
  }
  auto resTy = c.outType(ty.clone(tensorType(scale).getElementType()));
  return c.out(DequantizeLinearOp::create(c.b, c.loc, resTy, x, scale, zp, axis));
}

/// NumPy matmul result shape for integer matmuls.
static RankedTensorType matmulType(Conv &c, Value a, Value bv, Type et) {
  SmallVector<int64_t> as(tensorType(a).getShape()), bs(tensorType(bv).getShape());
  bool aVec = as.size() == 1, bVec = bs.size() == 1;
  if (aVec) as.insert(as.begin(), 1);
  if (bVec) bs.push_back(1);
  SmallVector<int64_t> shape;
  if (failed(broadcastShapes(ArrayRef(as).drop_back(2), ArrayRef(bs).drop_back(2),
                             shape)))
    return nullptr;
  if (!aVec) shape.push_back(as[as.size() - 2]);
  if (!bVec) shape.push_back(bs.back());
  return c.outType(RankedTensorType::get(shape, et));
}

static LogicalResult convertMatMulNBits(Conv &c) {
  int64_t k = c.imp.attrInt(c.node, "K", 0), n = c.imp.attrInt(c.node, "N", 0);
  int64_t bits = c.imp.attrInt(c.node, "bits", 4);
  int64_t block = c.imp.attrInt(c.node, "block_size", 0);
  if (c.has(4))
    return c.error() << "g_idx (act-order) is not supported", failure();
  Value x = c.in(0);
  auto ty = tensorType(x);
  SmallVector<int64_t> shape(ty.getShape().drop_back());
  shape.push_back(n);
  auto resTy = c.outType(RankedTensorType::get(shape, ty.getElementType()));
  Value zp = c.has(3) ? c.in(3) : Value();
  Value bias = c.has(5) ? c.in(5) : Value();
  return c.out(MatMulNBitsOp::create(c.b, c.loc, resTy, x, c.in(1), c.in(2), zp,
                                     bias, k, n, bits, block));
}

LogicalResult onnximport::convertNode(GraphImporter &imp,
                                      const onnx::NodeProto &node) {
  OpBuilder &b = imp.builder;
  Conv c(imp, node);
  llvm::StringRef op = node.op_type();

  if (op == "Constant")
    return convertConstant(c);
  if (tryFold(imp, node))
    return success();
  if (node.domain() == "com.microsoft")
    return convertMatMulNBits(c);

  if (op == "Identity")
    return c.out(c.in(0));
  if (op == "Dropout") {
    if (node.output_size() > 1 && !node.output(1).empty())
      return c.error() << "the dropout mask output is not supported", failure();
    return c.out(c.in(0));
  }
  if (unaryOps().contains(op))
    return c.out(createUnary(c, op, c.in(0)));

  if (op == "Add") return convertBinary<AddOp>(c, c.in(0), c.in(1));
  if (op == "Sub") return convertBinary<SubOp>(c, c.in(0), c.in(1));
  if (op == "Mul") return convertBinary<MulOp>(c, c.in(0), c.in(1));
  if (op == "Div") return convertBinary<DivOp>(c, c.in(0), c.in(1));
  if (op == "Pow") return convertBinary<PowOp>(c, c.in(0), c.in(1));
  if (op == "Mod") {
    if (imp.attrInt(node, "fmod", 0) !=
        (int64_t)isa<FloatType>(tensorType(c.in(0)).getElementType()))
      return c.error() << "Mod with fmod=" << imp.attrInt(node, "fmod", 0)
                       << " on this element type is not supported",
             failure();
    return convertBinary<ModOp>(c, c.in(0), c.in(1));
  }
  if (op == "Min") return convertVariadic<MinOp>(c);
  if (op == "Max") return convertVariadic<MaxOp>(c);
  if (op == "Sum") return convertVariadic<AddOp>(c);
  if (op == "Mean") {
    FailureOr<Value> sum = chainVariadic<AddOp>(c);
    if (failed(sum))
      return failure();
    if (node.input_size() == 1)
      return c.out(*sum);
    auto ty = tensorType(*sum);
    return c.out(DivOp::create(b, c.loc, ty, *sum,
                               c.f32Scalar(node.input_size(), ty.getElementType())));
  }
  if (op == "Equal" || op == "Less" || op == "LessOrEqual" || op == "Greater" ||
      op == "GreaterOrEqual") {
    CmpPredicate pred = op == "Equal"         ? CmpPredicate::eq
                        : op == "Less"        ? CmpPredicate::lt
                        : op == "LessOrEqual" ? CmpPredicate::le
                        : op == "Greater"     ? CmpPredicate::gt
                                              : CmpPredicate::ge;
    Value lhs = c.in(0), rhs = c.cast(c.in(1), tensorType(c.in(0)).getElementType());
    RankedTensorType ty = c.broadcastType({lhs, rhs}, b.getI1Type());
    if (!ty)
      return c.error() << "operand shapes are not broadcast-compatible", failure();
    return c.out(CmpOp::create(b, c.loc, ty, pred, lhs, rhs));
  }
  if (op == "And" || op == "Or" || op == "Xor") {
    LogicalKind kind = op == "And" ? LogicalKind::and_
                       : op == "Or" ? LogicalKind::or_
                                    : LogicalKind::xor_;
    RankedTensorType ty = c.broadcastType({c.in(0), c.in(1)}, b.getI1Type());
    if (!ty)
      return c.error() << "operand shapes are not broadcast-compatible", failure();
    return c.out(LogicalOp::create(b, c.loc, ty, kind, c.in(0), c.in(1)));
  }
  if (op == "Where") {
    Type et = tensorType(c.in(1)).getElementType();
    RankedTensorType ty = c.broadcastType({c.in(0), c.in(1), c.in(2)}, et);
    if (!ty)
      return c.error() << "operand shapes are not broadcast-compatible", failure();
    return c.out(WhereOp::create(b, c.loc, ty, c.in(0), c.in(1), c.in(2)));
  }
  if (op == "Clip") {
    FloatAttr lo, hi;
    for (int i : {1, 2}) {
      if (!c.has(i))
        continue;
      std::optional<double> v = imp.knownScalar(node, i);
      if (!v)
        return c.error() << "clip bounds must be constants", failure();
      (i == 1 ? lo : hi) = b.getF64FloatAttr(*v);
    }
    return c.out(ClipOp::create(b, c.loc, c.in(0).getType(), c.in(0), lo, hi));
  }
  if (op == "Cast" || op == "CastLike") {
    Type et = op == "Cast"
                  ? convertElementType(imp.attrInt(node, "to", 0), imp.ctx)
                  : tensorType(c.in(1)).getElementType();
    if (!et)
      return c.error() << "cast to unsupported element type "
                       << onnxTypeName(imp.attrInt(node, "to", 0)),
             failure();
    return c.out(c.cast(c.in(0), et));
  }
  if (op == "MatMul") {
    Value lhs = c.in(0), rhs = c.in(1);
    RankedTensorType ty =
        matmulType(c, lhs, rhs, tensorType(lhs).getElementType());
    if (!ty)
      return c.error() << "batch dimensions are not broadcast-compatible",
             failure();
    return c.out(MatMulOp::create(b, c.loc, ty, lhs, rhs));
  }
  if (op == "Gemm")
    return convertGemm(c);
  if (op == "Gather") {
    Value data = c.in(0), idx = c.in(1);
    auto dt = tensorType(data);
    FailureOr<int64_t> axis = c.axis(imp.attrInt(node, "axis", 0), dt.getRank());
    if (failed(axis))
      return failure();
    SmallVector<int64_t> shape(dt.getShape().take_front(*axis));
    llvm::append_range(shape, tensorType(idx).getShape());
    llvm::append_range(shape, dt.getShape().drop_front(*axis + 1));
    auto ty = c.outType(RankedTensorType::get(shape, dt.getElementType()));
    return c.out(GatherOp::create(b, c.loc, ty, data, idx, *axis));
  }
  if (op == "LayerNormalization") {
    for (int i = 1; i < node.output_size(); ++i)
      if (!node.output(i).empty())
        return c.error() << "the Mean/InvStdDev outputs are not supported",
               failure();
    Value x = c.in(0);
    auto ty = tensorType(x);
    FailureOr<int64_t> axis = c.axis(imp.attrInt(node, "axis", -1), ty.getRank());
    if (failed(axis))
      return failure();
    double eps = imp.attrFloat(node, "epsilon", 1e-5f);
    return c.out(LayerNormOp::create(b, c.loc, ty, x, c.in(1),
                                     c.has(2) ? c.in(2) : Value(),
                                     b.getI64IntegerAttr(*axis),
                                     b.getF64FloatAttr(eps)));
  }
  if (op == "Softmax") {
    Value x = c.in(0);
    FailureOr<int64_t> axis =
        c.axis(imp.attrInt(node, "axis", -1), tensorType(x).getRank());
    if (failed(axis))
      return failure();
    return c.out(SoftmaxOp::create(b, c.loc, x.getType(), x, *axis));
  }
  if (op == "ReduceMean") return convertReduce(c, ReduceKind::mean);
  if (op == "ReduceSum") return convertReduce(c, ReduceKind::sum);
  if (op == "ReduceMax") return convertReduce(c, ReduceKind::max);
  if (op == "ReduceMin") return convertReduce(c, ReduceKind::min);
  if (op == "ReduceProd") return convertReduce(c, ReduceKind::prod);
  if (op == "Reshape")
    return convertReshape(c);
  if (op == "Flatten") {
    Value x = c.in(0);
    auto ty = tensorType(x);
    int64_t axis = imp.attrInt(node, "axis", 1);
    if (axis < 0)
      axis += ty.getRank();
    if (axis < 0 || axis > ty.getRank())
      return c.error() << "axis out of range", failure();
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < ty.getRank(); ++d) {
      int64_t &acc = d < axis ? outer : inner;
      acc = (acc == kDyn || ty.isDynamicDim(d)) ? kDyn : acc * ty.getDimSize(d);
    }
    auto resTy = RankedTensorType::get({outer, inner}, ty.getElementType());
    if (!resTy.hasStaticShape())
      return c.error() << "Flatten of a dynamic shape is not supported",
             failure();
    return c.out(ReshapeOp::create(b, c.loc, resTy, x, Value()));
  }
  if (op == "Transpose") {
    Value x = c.in(0);
    auto ty = tensorType(x);
    SmallVector<int64_t> perm;
    if (auto p = imp.attrInts(node, "perm"))
      perm = *p;
    else
      for (int64_t d = ty.getRank() - 1; d >= 0; --d)
        perm.push_back(d);
    SmallVector<int64_t> shape;
    for (int64_t p : perm) {
      if (p < 0 || p >= ty.getRank())
        return c.error() << "invalid permutation", failure();
      shape.push_back(ty.getDimSize(p));
    }
    auto resTy = c.outType(RankedTensorType::get(shape, ty.getElementType()));
    return c.out(TransposeOp::create(b, c.loc, resTy, x, perm));
  }
  if (op == "Concat") {
    SmallVector<Value> ins;
    for (int i = 0; i < node.input_size(); ++i)
      if (c.has(i))
        ins.push_back(c.in(i));
    auto first = tensorType(ins.front());
    FailureOr<int64_t> axis = c.axis(imp.attrInt(node, "axis", 0), first.getRank());
    if (failed(axis))
      return failure();
    SmallVector<int64_t> shape(first.getShape());
    shape[*axis] = 0;
    for (Value v : ins) {
      int64_t d = tensorType(v).getDimSize(*axis);
      shape[*axis] = (shape[*axis] == kDyn || d == kDyn) ? kDyn : shape[*axis] + d;
    }
    auto resTy = c.outType(RankedTensorType::get(shape, first.getElementType()));
    return c.out(ConcatOp::create(b, c.loc, resTy, ins, *axis));
  }
  if (op == "Slice")
    return convertSlice(c);
  if (op == "Split")
    return convertSplit(c);
  if (op == "Expand") {
    Value x = c.in(0);
    auto ty = tensorType(x);
    std::optional<IntTensor> shape = imp.knownInts(node, 1);
    RankedTensorType resTy;
    if (shape) {
      SmallVector<int64_t> target;
      if (failed(broadcastShapes(ty.getShape(), shape->data, target)))
        return c.error() << "input cannot be broadcast to the requested shape",
               failure();
      resTy = c.outType(RankedTensorType::get(target, ty.getElementType()));
    } else {
      FailureOr<RankedTensorType> inferred = imp.outputType(node, 0);
      if (failed(inferred))
        return c.error() << "result rank unknown", failure();
      resTy = *inferred;
    }
    return c.out(ExpandOp::create(b, c.loc, resTy, x,
                                  resTy.hasStaticShape() ? Value() : c.in(1)));
  }
  if (op == "Squeeze")
    return convertSqueezeLike(c, true);
  if (op == "Unsqueeze")
    return convertSqueezeLike(c, false);
  if (op == "Trilu") {
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
  if (op == "Shape") {
    Value x = c.in(0);
    int64_t rank = tensorType(x).getRank();
    auto full = RankedTensorType::get({rank}, b.getI64Type());
    Value s = ShapeOfOp::create(b, c.loc, full, x);
    int64_t start = imp.attrInt(node, "start", 0), end = imp.attrInt(node, "end", rank);
    start = std::clamp(start < 0 ? start + rank : start, (int64_t)0, rank);
    end = std::clamp(end < 0 ? end + rank : end, (int64_t)0, rank);
    if (start != 0 || end != rank)
      s = SliceOp::create(b, c.loc,
                          RankedTensorType::get({std::max<int64_t>(end - start, 0)},
                                                b.getI64Type()),
                          s, ArrayRef<int64_t>{start}, ArrayRef<int64_t>{end},
                          ArrayRef<int64_t>{1});
    return c.out(s);
  }
  if (op == "Range") {
    FailureOr<RankedTensorType> ty = imp.outputType(node, 0);
    if (failed(ty))
      return c.error() << "result type unknown", failure();
    return c.out(RangeOp::create(b, c.loc, *ty, c.in(0), c.in(1), c.in(2)));
  }
  if (op == "ConstantOfShape") {
    std::optional<IntTensor> shape = imp.knownInts(node, 0);
    if (!shape)
      return c.error() << "a run-time shape is not supported (specialize "
                          "dynamic inputs with --shape)",
             failure();
    Attribute fill = b.getF32FloatAttr(0.0f);
    Type et = b.getF32Type();
    if (const auto *v = imp.attr(node, "value")) {
      FailureOr<ElementsAttr> a = imp.convertTensor(v->t(), "ConstantOfShape value", c.loc);
      if (failed(a))
        return failure();
      auto dense = dyn_cast<DenseElementsAttr>(*a);
      if (!dense)
        return c.error() << "malformed value", failure();
      et = dense.getElementType();
      fill = *dense.value_begin<Attribute>();
    }
    auto ty = RankedTensorType::get(shape->data, et);
    auto attr = DenseElementsAttr::get(ty, fill);
    if (et.isInteger() && !et.isInteger(1))
      imp.setKnown(node.output(0),
                   IntTensor{SmallVector<int64_t>(shape->data.begin(), shape->data.end()),
                             std::vector<int64_t>(ty.getNumElements(),
                                                  cast<IntegerAttr>(fill).getInt())});
    return c.out(imp.constant(c.loc, attr));
  }
  if (op == "QuantizeLinear")
    return convertQuantLinear(c, true);
  if (op == "DequantizeLinear")
    return convertQuantLinear(c, false);
  if (op == "DynamicQuantizeLinear") {
    Value x = c.in(0);
    Type u8 = b.getIntegerType(8, false);
    auto ty = tensorType(x);
    auto dq = DynamicQuantizeLinearOp::create(
        b, c.loc, ty.clone(u8), RankedTensorType::get({}, ty.getElementType()),
        RankedTensorType::get({}, u8), x);
    (void)c.out(dq.getResult(), 0);
    (void)c.out(dq.getScale(), 1);
    (void)c.out(dq.getZeroPoint(), 2);
    return success();
  }
  if (op == "MatMulInteger") {
    RankedTensorType ty = matmulType(c, c.in(0), c.in(1), b.getI32Type());
    if (!ty)
      return c.error() << "batch dimensions are not broadcast-compatible",
             failure();
    return c.out(MatMulIntegerOp::create(b, c.loc, ty, c.in(0), c.in(1),
                                         c.has(2) ? c.in(2) : Value(),
                                         c.has(3) ? c.in(3) : Value()));
  }
  if (op == "QLinearMatMul") {
    RankedTensorType ty =
        matmulType(c, c.in(0), c.in(3), tensorType(c.in(7)).getElementType());
    if (!ty)
      return c.error() << "batch dimensions are not broadcast-compatible",
             failure();
    return c.out(QLinearMatMulOp::create(b, c.loc, ty, c.in(0), c.in(1), c.in(2),
                                         c.in(3), c.in(4), c.in(5), c.in(6),
                                         c.in(7)));
  }
  return c.error() << "no conversion", failure();
}
