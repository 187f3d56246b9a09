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

#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/StringSet.h"

#include <cmath>
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

/// Operators composed from quench ops at import (see convertComposite).
static const llvm::StringSet<> &compositeOps() {
  static const llvm::StringSet<> ops = {
      "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "HardSigmoid",
      "HardSwish", "Softplus", "Softsign", "ThresholdedRelu", "Sign",
      "LogSoftmax", "Tile", "ReduceL1", "ReduceL2", "ReduceSumSquare",
      "ReduceLogSum", "ReduceLogSumExp"};
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
        "ConstantOfShape", "Size", "Flatten", "QuantizeLinear",
        "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger",
        "QLinearMatMul"};
    for (const auto &u : unaryOps())
      s.insert(u.getKey());
    for (const auto &u : compositeOps())
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
    // Values as the element type holds them (Cast to bool is `x != 0`,
    // narrower integers wrap), so that later folds see the same numbers.
    unsigned width = et.getIntOrFloatBitWidth();
    for (int64_t &v : t.data) {
      if (width == 1) {
        v = v != 0;
      } else if (width < 64) {
        APInt w = APInt(64, (uint64_t)v, /*isSigned=*/true).trunc(width);
        v = et.isUnsignedInteger() ? (int64_t)w.getZExtValue()
                                   : w.getSExtValue();
      }
    }
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
  if (op == "Size") {
    auto ty = tensorType(imp.input(node, 0));
    if (!ty.hasStaticShape())
      return false;
    return emit(IntTensor{{}, {ty.getNumElements()}}, i64);
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
  /// A 0-D constant `v` of element type `et` (float or integer).
  Value scalar(double v, Type et) {
    auto ty = RankedTensorType::get({}, et);
    Attribute a = isa<FloatType>(et)
                      ? Attribute(b.getFloatAttr(et, v))
                      : Attribute(b.getIntegerAttr(et, (int64_t)v));
    return ConstantOp::create(b, loc, ty, DenseElementsAttr::get(ty, a));
  }
};
} // namespace

//===----------------------------------------------------------------------===//
// Shape values known in part at import time; run-time shape arithmetic
//===----------------------------------------------------------------------===//
//
// With dynamic input dimensions, exporters compute target shapes, slice
// bounds and fill shapes at run time (Shape -> Gather -> Unsqueeze -> Concat
// -> Reshape). Such values are usually known in part (`[batch, seq, 4, 12]`):
// `partialInts` recovers what is known of each element from the quench ops
// already built, which gives the static parts of result types, and values
// known entirely fold to constants (foldKnownOutputs). Run-time entries of a
// shape are taken to be extents (never the -1 / 0 placeholders of Reshape),
// which is what exporters produce.

namespace {
/// Per element of a small 0-D or 1-D integer tensor: its value if known.
using PartialInts = SmallVector<std::optional<int64_t>>;
} // namespace

static constexpr int64_t kMaxPartialElements = 64;

/// The values of a small integer constant.
static std::optional<std::vector<int64_t>> constantInts(ConstantOp cst) {
  auto ty = cast<RankedTensorType>(cst.getType());
  Type et = ty.getElementType();
  if (!et.isInteger() || !ty.hasStaticShape() ||
      ty.getNumElements() > kMaxPartialElements)
    return std::nullopt;
  bool zext = et.isUnsignedInteger() || et.isInteger(1);
  std::vector<int64_t> out;
  if (auto dense = dyn_cast<DenseIntElementsAttr>(cst.getValue())) {
    for (const APInt &a : dense.getValues<APInt>())
      out.push_back(zext ? (int64_t)a.getZExtValue() : a.getSExtValue());
    return out;
  }
  std::optional<ArrayRef<char>> raw = getRawConstantData(cst.getValue());
  int64_t bytes = getStorageBytesPerElement(et);
  if (!raw || bytes == 0 || (int64_t)raw->size() != bytes * ty.getNumElements())
    return std::nullopt;
  for (int64_t e = 0; e < ty.getNumElements(); ++e) {
    const char *p = raw->data() + e * bytes;
    int64_t v = 0;
    switch (bytes) {
    case 1: v = zext ? (int64_t)*(const uint8_t *)p : *(const int8_t *)p; break;
    case 2: v = zext ? (int64_t)*(const uint16_t *)p : *(const int16_t *)p; break;
    case 4: v = zext ? (int64_t)*(const uint32_t *)p : *(const int32_t *)p; break;
    default: std::memcpy(&v, p, 8); break;
    }
    out.push_back(v);
  }
  return out;
}

/// Elementwise combination of partial values with scalar broadcasting.
static std::optional<PartialInts>
combinePartial(const PartialInts &a, const PartialInts &b, int64_t n,
               llvm::function_ref<std::optional<int64_t>(int64_t, int64_t)> fn) {
  auto fits = [&](const PartialInts &p) {
    return (int64_t)p.size() == n || p.size() == 1;
  };
  if (!fits(a) || !fits(b))
    return std::nullopt;
  PartialInts out;
  for (int64_t i = 0; i < n; ++i) {
    std::optional<int64_t> x = a[a.size() == 1 ? 0 : i];
    std::optional<int64_t> y = b[b.size() == 1 ? 0 : i];
    out.push_back(x && y ? fn(*x, *y) : std::nullopt);
  }
  return out;
}

/// What is known at import time of each element of `v`, a 0-D or 1-D
/// integer tensor of static size; std::nullopt for other values. `budget`
/// bounds the ops visited (shared subexpressions are not memoized).
static std::optional<PartialInts> partialInts(Value v, int64_t &budget) {
  auto ty = dyn_cast<RankedTensorType>(v.getType());
  if (!ty || !ty.hasStaticShape() || ty.getRank() > 1 ||
      !ty.getElementType().isInteger() ||
      ty.getNumElements() > kMaxPartialElements)
    return std::nullopt;
  int64_t n = ty.getNumElements();
  PartialInts unknown(n, std::nullopt);
  Operation *def = v.getDefiningOp();
  if (!def || --budget < 0)
    return unknown;
  auto sub = [&](Value x) { return partialInts(x, budget); };
  auto sized = [&](std::optional<PartialInts> p) {
    return p && (int64_t)p->size() == n ? *p : unknown;
  };

  if (auto cst = dyn_cast<ConstantOp>(def)) {
    std::optional<std::vector<int64_t>> vals = constantInts(cst);
    if (!vals)
      return unknown;
    return PartialInts(vals->begin(), vals->end());
  }
  if (auto s = dyn_cast<ShapeOfOp>(def)) {
    auto in = cast<RankedTensorType>(s.getInput().getType());
    if (in.getRank() != n)
      return unknown;
    PartialInts p;
    for (int64_t d = 0; d < n; ++d)
      p.push_back(in.isDynamicDim(d) ? std::nullopt
                                     : std::optional<int64_t>(in.getDimSize(d)));
    return p;
  }
  // Ops that keep the elements and their order.
  if (isa<ReshapeOp, UnsqueezeOp, SqueezeOp>(def))
    return sized(sub(def->getOperand(0)));
  if (isa<CastOp>(def)) {
    // Integer to integer: bool is `x != 0`, narrower types wrap.
    std::optional<PartialInts> in = sub(def->getOperand(0));
    if (!in || (int64_t)in->size() != n)
      return unknown;
    Type et = ty.getElementType();
    unsigned width = et.getIntOrFloatBitWidth();
    for (std::optional<int64_t> &e : *in) {
      if (!e || width >= 64)
        continue;
      if (width == 1) {
        e = *e != 0;
      } else {
        APInt w = APInt(64, (uint64_t)*e, /*isSigned=*/true).trunc(width);
        e = et.isUnsignedInteger() ? (int64_t)w.getZExtValue() : w.getSExtValue();
      }
    }
    return *in;
  }
  if (auto sl = dyn_cast<SliceOp>(def)) {
    std::optional<PartialInts> in = sub(sl.getInput());
    if (!in || tensorType(sl.getInput()).getRank() != 1)
      return unknown;
    int64_t size = in->size(), st = sl.getSteps()[0];
    PartialInts p;
    for (int64_t i = sl.getStarts()[0]; st > 0 ? i < sl.getEnds()[0]
                                               : i > sl.getEnds()[0];
         i += st) {
      if (i < 0 || i >= size)
        break;
      p.push_back((*in)[i]);
    }
    return sized(p);
  }
  if (auto g = dyn_cast<GatherOp>(def)) {
    std::optional<PartialInts> data = sub(g.getData());
    std::optional<PartialInts> idx = sub(g.getIndices());
    if (!data || !idx || tensorType(g.getData()).getRank() != 1)
      return unknown;
    PartialInts p;
    for (std::optional<int64_t> i : *idx) {
      int64_t size = data->size();
      if (i && *i >= -size && *i < size)
        p.push_back((*data)[*i < 0 ? *i + size : *i]);
      else
        p.push_back(std::nullopt);
    }
    return sized(p);
  }
  if (auto cc = dyn_cast<ConcatOp>(def)) {
    PartialInts p;
    for (Value in : cc.getInputs()) {
      std::optional<PartialInts> part = sub(in);
      if (!part)
        return unknown;
      p.append(part->begin(), part->end());
    }
    return sized(p);
  }
  if (auto ex = dyn_cast<ExpandOp>(def)) {
    std::optional<PartialInts> in = sub(ex.getInput());
    if (!in || in->size() != 1)
      return unknown;
    return PartialInts(n, (*in)[0]);
  }
  if (auto w = dyn_cast<WhereOp>(def)) {
    std::optional<PartialInts> cond = sub(w.getCondition());
    std::optional<PartialInts> lhs = sub(w.getLhs()), rhs = sub(w.getRhs());
    if (!cond || !lhs || !rhs)
      return unknown;
    std::optional<PartialInts> pick = combinePartial(
        *lhs, *rhs, n, [](int64_t, int64_t) { return std::optional<int64_t>(0); });
    if (!pick)
      return unknown;
    auto at = [&](const PartialInts &p, int64_t i) {
      return p.size() == 1 ? p[0] : p[i];
    };
    if ((int64_t)cond->size() != n && cond->size() != 1)
      return unknown;
    PartialInts p;
    for (int64_t i = 0; i < n; ++i) {
      std::optional<int64_t> c = at(*cond, i);
      p.push_back(c ? (*c ? at(*lhs, i) : at(*rhs, i)) : std::nullopt);
    }
    return p;
  }
  if (auto cmp = dyn_cast<CmpOp>(def)) {
    std::optional<PartialInts> lhs = sub(cmp.getLhs()), rhs = sub(cmp.getRhs());
    if (!lhs || !rhs)
      return unknown;
    CmpPredicate pred = cmp.getPredicate();
    return sized(combinePartial(*lhs, *rhs, n,
                                [&](int64_t x, int64_t y) -> std::optional<int64_t> {
      switch (pred) {
      case CmpPredicate::eq: return x == y;
      case CmpPredicate::ne: return x != y;
      case CmpPredicate::lt: return x < y;
      case CmpPredicate::le: return x <= y;
      case CmpPredicate::gt: return x > y;
      case CmpPredicate::ge: return x >= y;
      }
      return std::nullopt;
    }));
  }
  if (isa<AddOp, SubOp, MulOp, DivOp, MinOp, MaxOp>(def)) {
    std::optional<PartialInts> lhs = sub(def->getOperand(0));
    std::optional<PartialInts> rhs = sub(def->getOperand(1));
    if (!lhs || !rhs)
      return unknown;
    return sized(combinePartial(*lhs, *rhs, n,
                                [&](int64_t x, int64_t y) -> std::optional<int64_t> {
      if (isa<AddOp>(def)) return x + y;
      if (isa<SubOp>(def)) return x - y;
      if (isa<MulOp>(def)) return x * y;
      if (isa<MinOp>(def)) return std::min(x, y);
      if (isa<MaxOp>(def)) return std::max(x, y);
      if (y == 0)
        return std::nullopt;
      return x / y;
    }));
  }
  return unknown;
}

static std::optional<PartialInts> partialInts(Value v) {
  int64_t budget = 1024;
  return partialInts(v, budget);
}

static bool allKnown(const PartialInts &p) {
  return llvm::all_of(p, [](const std::optional<int64_t> &e) { return e.has_value(); });
}

/// A 1-D (or, with `scalar`, 0-D) i64 constant.
static Value i64Constant(Conv &c, ArrayRef<int64_t> vals, bool scalar = false) {
  IntTensor t;
  if (!scalar)
    t.shape = {(int64_t)vals.size()};
  t.data.assign(vals.begin(), vals.end());
  return c.imp.intConstant(c.loc, t, c.b.getI64Type());
}

/// The run-time extents of `x` (1-D i64).
static Value shapeOf(Conv &c, Value x) {
  return ShapeOfOp::create(
      c.b, c.loc, RankedTensorType::get({tensorType(x).getRank()}, c.b.getI64Type()),
      x);
}

/// Element `i` of the 1-D i64 tensor `v`, as a 1-element 1-D tensor.
static Value elementAt(Conv &c, Value v, int64_t i) {
  return SliceOp::create(c.b, c.loc, RankedTensorType::get({1}, c.b.getI64Type()),
                         v, ArrayRef<int64_t>{i}, ArrayRef<int64_t>{i + 1},
                         ArrayRef<int64_t>{1});
}

/// A 1-element tensor as a 0-D tensor.
static Value toScalar(Conv &c, Value v) {
  return ReshapeOp::create(c.b, c.loc, RankedTensorType::get({}, c.b.getI64Type()),
                           v, Value());
}

/// Concatenates 1-D i64 pieces.
static Value concatI64(Conv &c, ArrayRef<Value> pieces) {
  int64_t len = 0;
  for (Value p : pieces) {
    int64_t d = tensorType(p).getDimSize(0);
    len = (len == kDyn || d == kDyn) ? kDyn : len + d;
  }
  return ConcatOp::create(c.b, c.loc, RankedTensorType::get({len}, c.b.getI64Type()),
                          pieces, 0);
}

/// The product of the entries of a 1-D i64 tensor, as a 1-element tensor.
static Value productOf(Conv &c, Value v) {
  return ReduceOp::create(c.b, c.loc, RankedTensorType::get({1}, c.b.getI64Type()),
                          ReduceKind::prod, v, ArrayRef<int64_t>{0}, true);
}

/// The run-time extents for the `quench.expand` of `x` to `resTy` when ONNX
/// gave the target `shape` (which broadcasts with x's shape, so an entry 1
/// may stand for a larger input extent).
static Value expandExtents(Conv &c, Value x, Value shape, RankedTensorType resTy) {
  auto xt = tensorType(x);
  int64_t rank = resTy.getRank();
  int64_t len = tensorType(shape).getDimSize(0);
  std::optional<PartialInts> partial = partialInts(shape);
  shape = c.cast(shape, c.b.getI64Type());
  // `shape` holds the result extents unless an entry may be a 1 that an
  // input extent > 1 (or unknown) overrides.
  bool direct = len == rank && partial;
  for (int64_t d = 0; d < rank && direct; ++d) {
    int64_t xd = d - (rank - xt.getRank());
    if (xd < 0 || xt.getDimSize(xd) == 1)
      continue;
    std::optional<int64_t> s = (*partial)[d];
    direct = s && *s != 1 && *s == resTy.getDimSize(d);
  }
  if (direct)
    return shape;
  // Broadcast both shapes: max(pad(shape), pad(shape_of(x))).
  auto pad = [&](Value s, int64_t have) {
    if (have == rank)
      return s;
    SmallVector<int64_t> ones(rank - have, 1);
    return concatI64(c, {i64Constant(c, ones), s});
  };
  Value lhs = pad(shape, len), rhs = pad(shapeOf(c, x), xt.getRank());
  return MaxOp::create(c.b, c.loc, RankedTensorType::get({rank}, c.b.getI64Type()),
                       lhs, rhs);
}

/// Result type of ONNX Expand of `xt` to a target shape known in part.
static RankedTensorType expandType(RankedTensorType xt, const PartialInts &shape) {
  int64_t rank = std::max<int64_t>(xt.getRank(), shape.size());
  SmallVector<int64_t> dims;
  for (int64_t d = 0; d < rank; ++d) {
    int64_t sd = d - (rank - (int64_t)shape.size());
    int64_t xd = d - (rank - xt.getRank());
    std::optional<int64_t> s = sd >= 0 ? shape[sd] : std::optional<int64_t>(1);
    int64_t x = xd >= 0 ? xt.getDimSize(xd) : 1;
    if (s && *s != 1)
      dims.push_back(*s);
    else if (s)
      dims.push_back(x);
    else
      dims.push_back(x != kDyn && x != 1 ? x : kDyn);
  }
  return RankedTensorType::get(dims, xt.getElementType());
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
  if (!isa<FloatType>(et) && (alpha != 1.0f || (cIn && beta != 1.0f)))
    return c.error() << "integer Gemm with alpha or beta other than 1 is not "
                        "supported",
           failure();
  // The common nn.Linear export: Gemm(x, W, b, transB=1) with alpha = beta = 1
  // and a bias of one value per output column (not one broadcast value).
  if (transB && isa<FloatType>(et) && alpha == 1.0f &&
      (!cIn || beta == 1.0f) &&
      (!cIn || (tensorType(cIn).getRank() == 1 && n != kDyn &&
                tensorType(cIn).getDimSize(0) == n))) {
    return c.out(LinearOp::create(c.b, c.loc, resTy, a, bm, cIn));
  }
  if (transB)
    bm = TransposeOp::create(
        c.b, c.loc,
        RankedTensorType::get({bt.getDimSize(1), bt.getDimSize(0)}, et), bm,
        ArrayRef<int64_t>{1, 0});
  Value y = MatMulOp::create(c.b, c.loc, resTy, a, bm);
  if (alpha != 1.0f)
    y = MulOp::create(c.b, c.loc, resTy, y, c.scalar(alpha, et));
  if (cIn) {
    if (beta != 1.0f)
      cIn = MulOp::create(c.b, c.loc, tensorType(cIn), cIn,
                          c.scalar(beta, et));
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

/// Reduces `x` over the node's axes (attribute or input, with ONNX's
/// defaults) with `kind`; `keep` overrides the node's keepdims.
static FailureOr<Value> reduceValue(Conv &c, Value x, ReduceKind kind,
                                    std::optional<bool> keepOverride = {}) {
  auto ty = tensorType(x);
  bool identity;
  FailureOr<SmallVector<int64_t>> axes = reduceAxes(c, ty.getRank(), identity);
  if (failed(axes))
    return failure();
  if (identity)
    return x;
  bool keep = keepOverride ? *keepOverride
                           : (bool)c.imp.attrInt(c.node, "keepdims", 1);
  SmallVector<int64_t> shape;
  for (int64_t d = 0; d < ty.getRank(); ++d) {
    if (llvm::is_contained(*axes, d)) {
      if (keep)
        shape.push_back(1);
    } else {
      shape.push_back(ty.getDimSize(d));
    }
  }
  auto resTy = RankedTensorType::get(shape, ty.getElementType());
  if (!keepOverride)
    resTy = c.outType(resTy);
  return ReduceOp::create(c.b, c.loc, resTy, kind, x, *axes, keep)
      .getResult();
}

static LogicalResult convertReduce(Conv &c, ReduceKind kind) {
  FailureOr<Value> r = reduceValue(c, c.in(0), kind);
  return failed(r) ? failure() : c.out(*r);
}

static LogicalResult convertReshape(Conv &c) {
  Value x = c.in(0);
  auto ty = tensorType(x);
  bool allowZero = c.imp.attrInt(c.node, "allowzero", 0);
  std::optional<PartialInts> shape = partialInts(c.in(1));
  FailureOr<RankedTensorType> inferred = c.imp.outputType(c.node, 0);
  if (!shape) {
    if (failed(inferred))
      return c.error() << "the target shape is computed at run time and its "
                          "rank is unknown",
             failure();
    return c.out(ReshapeOp::create(c.b, c.loc, *inferred, x, c.in(1)));
  }
  // Entries unknown at import are run-time extents; 0 (copy) and -1 (infer)
  // are placeholders that the run-time shape operand must not contain.
  SmallVector<int64_t> target, copied;
  int64_t inferIdx = -1, known = 1;
  for (auto [i, e] : llvm::enumerate(*shape)) {
    if (!e) {
      target.push_back(kDyn);
      known = kDyn;
      continue;
    }
    int64_t d = *e;
    if (d == 0 && !allowZero) {
      if ((int64_t)i >= ty.getRank())
        return c.error() << "shape entry 0 at " << i
                         << " copies a dimension the input does not have",
               failure();
      d = ty.getDimSize(i);
      copied.push_back(i);
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
  if (!resTy.hasStaticShape()) {
    shapeOperand = c.cast(c.in(1), c.b.getI64Type());
    if (!copied.empty() || inferIdx >= 0) {
      // Rebuild the extents without placeholders, one entry at a time.
      Value inShape;
      auto inputExtents = [&] {
        if (!inShape)
          inShape = shapeOf(c, x);
        return inShape;
      };
      SmallVector<Value> elems;
      for (int64_t i = 0; i < resTy.getRank(); ++i) {
        if (!resTy.isDynamicDim(i))
          elems.push_back(i64Constant(c, {resTy.getDimSize(i)}));
        else if (llvm::is_contained(copied, i))
          elems.push_back(elementAt(c, inputExtents(), i));
        else if (i == inferIdx)
          elems.push_back(Value());
        else
          elems.push_back(elementAt(c, shapeOperand, i));
      }
      if (inferIdx >= 0 && resTy.isDynamicDim(inferIdx)) {
        SmallVector<Value> others;
        for (Value e : elems)
          if (e)
            others.push_back(e);
        Value numel = productOf(c, inputExtents());
        Value rest = others.empty() ? i64Constant(c, {1})
                                    : productOf(c, concatI64(c, others));
        elems[inferIdx] = DivOp::create(c.b, c.loc, tensorType(numel), numel, rest);
      }
      shapeOperand = concatI64(c, elems);
    }
  }
  return c.out(ReshapeOp::create(c.b, c.loc, resTy, x, shapeOperand));
}

/// ONNX Slice of one axis whose bounds are only known at run time (or are
/// negative on a dynamic dimension): `gather(x, range(start', end', step))`
/// with ONNX's normalization (negative bounds count from the end, then clamp
/// to [0, dim]). `step` > 0.
static Value sliceAtRunTime(Conv &c, Value x, int64_t axis, Value bounds[2],
                            std::optional<int64_t> known[2], int64_t step) {
  auto xt = tensorType(x);
  Type i64 = c.b.getI64Type();
  auto scalarTy = RankedTensorType::get({}, i64);
  Value dim = xt.isDynamicDim(axis)
                  ? toScalar(c, elementAt(c, shapeOf(c, x), axis))
                  : i64Constant(c, {xt.getDimSize(axis)}, /*scalar=*/true);
  Value zero = i64Constant(c, {0}, /*scalar=*/true);
  Value norm[2];
  for (int i = 0; i < 2; ++i) {
    Value v = bounds[i];
    if (known[i] && *known[i] >= 0) { // min(k, dim)
      norm[i] = MinOp::create(c.b, c.loc, scalarTy, v, dim);
      continue;
    }
    Value fromEnd = AddOp::create(c.b, c.loc, scalarTy, v, dim);
    if (known[i]) { // max(dim + k, 0) for k < 0
      norm[i] = MaxOp::create(c.b, c.loc, scalarTy, fromEnd, zero);
      continue;
    }
    Value neg = CmpOp::create(c.b, c.loc, RankedTensorType::get({}, c.b.getI1Type()),
                              CmpPredicate::lt, v, zero);
    v = WhereOp::create(c.b, c.loc, scalarTy, neg, fromEnd, v);
    v = MinOp::create(c.b, c.loc, scalarTy, v, dim);
    norm[i] = MaxOp::create(c.b, c.loc, scalarTy, v, zero);
  }
  Value idx = RangeOp::create(c.b, c.loc, RankedTensorType::get({kDyn}, i64),
                              norm[0], norm[1],
                              i64Constant(c, {step}, /*scalar=*/true));
  SmallVector<int64_t> shape(xt.getShape());
  shape[axis] = kDyn;
  return GatherOp::create(c.b, c.loc,
                          RankedTensorType::get(shape, xt.getElementType()), x,
                          idx, axis);
}

static LogicalResult convertSlice(Conv &c) {
  Value x = c.in(0);
  auto ty = tensorType(x);
  int64_t rank = ty.getRank();
  std::optional<PartialInts> starts = partialInts(c.in(1));
  std::optional<PartialInts> ends = partialInts(c.in(2));
  std::optional<IntTensor> axes = c.has(3) ? c.imp.knownInts(c.node, 3)
                                           : std::optional<IntTensor>(IntTensor());
  std::optional<IntTensor> steps = c.has(4) ? c.imp.knownInts(c.node, 4)
                                            : std::optional<IntTensor>(IntTensor());
  if (!axes || !steps)
    return c.error() << "slice axes and steps computed at run time are not "
                        "supported",
           failure();
  if (!starts || !ends)
    return c.error() << "slice starts and ends of unknown length are not "
                        "supported",
           failure();
  size_t n = starts->size();
  if (ends->size() != n || (!axes->data.empty() && axes->data.size() != n) ||
      (!steps->data.empty() && steps->data.size() != n))
    return c.error() << "starts, ends, axes and steps differ in length",
           failure();
  SmallVector<int64_t> s(rank, 0), e(rank, INT64_MAX), st(rank, 1);
  SmallVector<std::pair<int64_t, size_t>> runTimeAxes; // (axis, entry)
  bool sliceAtImport = false;
  for (size_t i = 0; i < n; ++i) {
    int64_t a = axes->data.empty() ? (int64_t)i : axes->data[i];
    FailureOr<int64_t> d = c.axis(a, rank);
    if (failed(d))
      return failure();
    int64_t step = steps->data.empty() ? 1 : steps->data[i];
    if (step == 0)
      return c.error() << "slice step is 0", failure();
    std::optional<int64_t> startK = (*starts)[i], endK = (*ends)[i];
    int64_t dim = ty.getDimSize(*d);
    bool atImport = startK && endK &&
                    (dim != kDyn || (*startK >= 0 && *endK >= 0 && step > 0));
    if (!atImport) {
      if (step < 0)
        return c.error() << "negative slice steps with bounds known only at "
                            "run time are not supported",
               failure();
      runTimeAxes.push_back({*d, i});
      st[*d] = step;
      continue;
    }
    int64_t start = *startK, end = *endK;
    if (dim != kDyn) {
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
    sliceAtImport = true;
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
  if (runTimeAxes.empty()) {
    auto resTy = c.outType(RankedTensorType::get(shape, ty.getElementType()));
    return c.out(SliceOp::create(c.b, c.loc, resTy, x, s, e, st));
  }
  // Axes with import-time bounds first (run-time axes taken whole), then one
  // gather per run-time axis.
  Value result = x;
  if (sliceAtImport) {
    for (auto [d, i] : runTimeAxes) {
      s[d] = 0;
      e[d] = ty.isDynamicDim(d) ? INT64_MAX : ty.getDimSize(d);
      st[d] = 1;
      shape[d] = ty.getDimSize(d);
    }
    result = SliceOp::create(c.b, c.loc,
                             RankedTensorType::get(shape, ty.getElementType()),
                             x, s, e, st);
  }
  Value startsV = c.cast(c.in(1), c.b.getI64Type());
  Value endsV = c.cast(c.in(2), c.b.getI64Type());
  for (auto [d, i] : runTimeAxes) {
    Value bounds[2];
    std::optional<int64_t> known[2] = {(*starts)[i], (*ends)[i]};
    for (int k = 0; k < 2; ++k)
      bounds[k] = known[k] ? i64Constant(c, {*known[k]}, /*scalar=*/true)
                           : toScalar(c, elementAt(c, k ? endsV : startsV, i));
    int64_t step = steps->data.empty() ? 1 : steps->data[i];
    result = sliceAtRunTime(c, result, d, bounds, known, step);
  }
  return c.out(result);
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
    // Squeeze every size-1 dimension: which ones that is must be known.
    if (!ty.hasStaticShape())
      return c.error() << "Squeeze without axes of a tensor with dynamic "
                          "dimensions is not supported",
             failure();
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
  if (block < 16 || !llvm::isPowerOf2_64(block))
    return c.error() << "block_size must be a power of two >= 16, got "
                     << block,
           failure();
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

//===----------------------------------------------------------------------===//
// Operators composed from quench ops
//===----------------------------------------------------------------------===//
//
// Activations and reductions that transformer exports use occasionally are
// written as short chains of existing quench ops, following the formulas of
// the ONNX specification, so they need no new dialect surface (and every
// lowering handles them).

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

/// Converts the composite operators; `handled` is false for other ops.
static LogicalResult convertComposite(Conv &c, bool &handled) {
  llvm::StringRef op = c.node.op_type();
  handled = compositeOps().contains(op);
  if (!handled)
    return success();
  GraphImporter &imp = c.imp;
  Value x = c.in(0);
  auto xt = tensorType(x);
  Type et = xt.getElementType();
  bool isFloat = isa<FloatType>(et);
  auto attrF = [&](llvm::StringRef n, float d) {
    return (double)imp.attrFloat(c.node, n, d);
  };
  auto requireFloat = [&]() -> LogicalResult {
    if (isFloat)
      return success();
    return c.error() << "requires a floating-point input, got " << et,
           failure();
  };
  Value zero = c.scalar(0.0, et);

  if (op == "LeakyRelu" || op == "ThresholdedRelu" || op == "Elu" ||
      op == "Selu" || op == "Celu" || op == "HardSigmoid" ||
      op == "HardSwish" || op == "Softplus" || op == "Softsign" ||
      op == "LogSoftmax") {
    if (failed(requireFloat()))
      return failure();
  }

  if (op == "LeakyRelu") { // x < 0 ? alpha * x : x
    Value ax = binary<MulOp>(c, x, c.scalar(attrF("alpha", 0.01f), et));
    return c.out(select(c, cmp(c, CmpPredicate::lt, x, zero), ax, x));
  }
  if (op == "PRelu") { // x < 0 ? slope * x : x, slope broadcast to x
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
  if (op == "ThresholdedRelu") { // x > alpha ? x : 0
    Value alpha = c.scalar(attrF("alpha", 1.0f), et);
    return c.out(select(c, cmp(c, CmpPredicate::gt, x, alpha), x, zero));
  }
  if (op == "Elu" || op == "Selu") {
    // Elu: x < 0 ? alpha (e^x - 1) : x.
    // Selu: gamma * (x <= 0 ? alpha (e^x - 1) : x).
    bool selu = op == "Selu";
    double alpha = attrF("alpha", selu ? 1.67326319217681884765625f : 1.0f);
    Value em1 = binary<SubOp>(c, createUnary(c, "Exp", x), c.scalar(1.0, et));
    Value neg = binary<MulOp>(c, em1, c.scalar(alpha, et));
    Value y = select(c,
                     cmp(c, selu ? CmpPredicate::le : CmpPredicate::lt, x, zero),
                     neg, x);
    if (selu)
      y = binary<MulOp>(c, y,
                        c.scalar(attrF("gamma", 1.05070102214813232421875f),
                                 et));
    return c.out(y);
  }
  if (op == "Celu") { // max(0, x) + min(0, alpha (e^(x / alpha) - 1))
    double alpha = attrF("alpha", 1.0f);
    Value a = c.scalar(alpha, et);
    Value e = createUnary(c, "Exp", binary<DivOp>(c, x, a));
    Value neg = binary<MulOp>(c, binary<SubOp>(c, e, c.scalar(1.0, et)), a);
    return c.out(binary<AddOp>(c, binary<MaxOp>(c, x, zero),
                                binary<MinOp>(c, neg, zero)));
  }
  if (op == "HardSigmoid" || op == "HardSwish") {
    // HardSigmoid: clip(alpha x + beta, 0, 1); HardSwish: x * HardSigmoid
    // with alpha = 1/6, beta = 1/2.
    bool swish = op == "HardSwish";
    double alpha = swish ? 1.0 / 6.0 : attrF("alpha", 0.2f);
    double beta = swish ? 0.5 : attrF("beta", 0.5f);
    Value lin = binary<AddOp>(c, binary<MulOp>(c, x, c.scalar(alpha, et)),
                              c.scalar(beta, et));
    Value hs = ClipOp::create(c.b, c.loc, lin.getType(), lin,
                              c.b.getF64FloatAttr(0.0), c.b.getF64FloatAttr(1.0));
    return c.out(swish ? binary<MulOp>(c, x, hs) : hs);
  }
  if (op == "Softplus") {
    // log(1 + e^x), computed as max(x, 0) + log(1 + e^-|x|) so that large
    // inputs do not overflow.
    Value e = createUnary(c, "Exp", createUnary(c, "Neg", createUnary(c, "Abs", x)));
    Value l = createUnary(c, "Log", binary<AddOp>(c, e, c.scalar(1.0, et)));
    return c.out(binary<AddOp>(c, binary<MaxOp>(c, x, zero), l));
  }
  if (op == "Softsign") { // x / (1 + |x|)
    Value d = binary<AddOp>(c, createUnary(c, "Abs", x), c.scalar(1.0, et));
    return c.out(binary<DivOp>(c, x, d));
  }
  if (op == "Sign") { // x > 0 ? 1 : (x < 0 ? -1 : 0)
    Value one = c.scalar(1.0, et);
    Value inner = select(c, cmp(c, CmpPredicate::lt, x, zero),
                         c.scalar(-1.0, et), zero);
    // The condition has x's shape, so the result does too.
    return c.out(select(c, cmp(c, CmpPredicate::gt, x, zero), one, inner));
  }
  if (op == "LogSoftmax") {
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
                               createUnary(c, "Exp", d), axes, true);
    return c.out(binary<SubOp>(c, d, createUnary(c, "Log", s)));
  }
  if (op == "ReduceL1" || op == "ReduceL2" || op == "ReduceSumSquare" ||
      op == "ReduceLogSum" || op == "ReduceLogSumExp") {
    bool needsFloat = op == "ReduceL2" || op == "ReduceLogSum" ||
                      op == "ReduceLogSumExp";
    if (needsFloat && failed(requireFloat()))
      return failure();
    if (op == "ReduceLogSumExp") {
      // log(sum(exp(x - m))) + m with m = max(x): no overflow.
      FailureOr<Value> mk = reduceValue(c, x, ReduceKind::max, true);
      FailureOr<Value> m = reduceValue(c, x, ReduceKind::max);
      if (failed(mk) || failed(m))
        return failure();
      if (*mk == x) // noop_with_empty_axes: log(exp(x)) = x
        return c.out(x);
      FailureOr<Value> s = reduceValue(
          c, createUnary(c, "Exp", binary<SubOp>(c, x, *mk)), ReduceKind::sum);
      if (failed(s))
        return failure();
      return c.out(binary<AddOp>(c, createUnary(c, "Log", *s), *m));
    }
    Value in = op == "ReduceL1"       ? createUnary(c, "Abs", x)
               : op == "ReduceLogSum" ? x
                                      : binary<MulOp>(c, x, x);
    FailureOr<Value> r = reduceValue(c, in, ReduceKind::sum);
    if (failed(r))
      return failure();
    if (op == "ReduceL2")
      return c.out(createUnary(c, "Sqrt", *r));
    if (op == "ReduceLogSum")
      return c.out(createUnary(c, "Log", *r));
    return c.out(*r);
  }
  if (op == "Tile") {
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
  llvm_unreachable("composite op without a conversion");
}

static LogicalResult convertNodeImpl(GraphImporter &imp,
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
  if (unaryOps().contains(op))
    return c.out(createUnary(c, op, c.in(0)));
  {
    bool handled;
    LogicalResult r = convertComposite(c, handled);
    if (handled)
      return r;
  }

  if (op == "Add") return convertBinary<AddOp>(c, c.in(0), c.in(1));
  if (op == "Sub") return convertBinary<SubOp>(c, c.in(0), c.in(1));
  if (op == "Mul") return convertBinary<MulOp>(c, c.in(0), c.in(1));
  if (op == "Div") return convertBinary<DivOp>(c, c.in(0), c.in(1));
  if (op == "Pow") {
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
  if (op == "Mod") {
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
                               c.scalar(node.input_size(), ty.getElementType())));
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
    Value x = c.in(0);
    auto ty = tensorType(x);
    FailureOr<int64_t> axis = c.axis(imp.attrInt(node, "axis", -1), ty.getRank());
    if (failed(axis))
      return failure();
    double eps = imp.attrFloat(node, "epsilon", 1e-5f);
    bool wantMean = node.output_size() > 1 && !node.output(1).empty();
    bool wantInvStd = node.output_size() > 2 && !node.output(2).empty();
    if (wantMean || wantInvStd) {
      // The optional statistics, as ONNX's function body computes them in
      // the stash type: Mean = mean(x), InvStdDev = 1 / sqrt(var(x) + eps)
      // over the normalized axes, kept as size-1 dimensions.
      int64_t stash = imp.attrInt(node, "stash_type", 1);
      Type st = convertElementType(stash, imp.ctx);
      if (!st || !isa<FloatType>(st))
        return c.error() << "unsupported stash_type " << stash, failure();
      SmallVector<int64_t> axes, statShape;
      for (int64_t d = 0; d < ty.getRank(); ++d) {
        if (d >= *axis)
          axes.push_back(d);
        statShape.push_back(d >= *axis ? 1 : ty.getDimSize(d));
      }
      auto statTy = RankedTensorType::get(statShape, st);
      auto fullTy = ty.clone(st);
      Value xs = c.cast(x, st);
      Value mean =
          ReduceOp::create(b, c.loc, statTy, ReduceKind::mean, xs, axes, true);
      Value d = SubOp::create(b, c.loc, fullTy, xs, mean);
      Value d2 = MulOp::create(b, c.loc, fullTy, d, d);
      Value var =
          ReduceOp::create(b, c.loc, statTy, ReduceKind::mean, d2, axes, true);
      Value varEps = AddOp::create(b, c.loc, statTy, var, c.scalar(eps, st));
      Value inv = ReciprocalOp::create(
          b, c.loc, statTy, SqrtOp::create(b, c.loc, statTy, varEps));
      if (wantMean)
        (void)c.out(mean, 1);
      if (wantInvStd)
        (void)c.out(inv, 2);
    }
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
    Value shapeOperand;
    if (!resTy.hasStaticShape()) {
      // Run-time extents: the products of shape[:axis] and shape[axis:].
      Value extents = shapeOf(c, x);
      auto product = [&](int64_t known, int64_t lo, int64_t hi) {
        if (known != kDyn)
          return i64Constant(c, {known});
        Value part = SliceOp::create(
            b, c.loc, RankedTensorType::get({hi - lo}, b.getI64Type()), extents,
            ArrayRef<int64_t>{lo}, ArrayRef<int64_t>{hi}, ArrayRef<int64_t>{1});
        return productOf(c, part);
      };
      shapeOperand = concatI64(c, {product(outer, 0, axis),
                                   product(inner, axis, ty.getRank())});
    }
    return c.out(ReshapeOp::create(b, c.loc, resTy, x, shapeOperand));
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
    } else if (std::optional<PartialInts> partial = partialInts(c.in(1))) {
      resTy = c.outType(expandType(ty, *partial));
    } else {
      FailureOr<RankedTensorType> inferred = imp.outputType(node, 0);
      if (failed(inferred))
        return c.error() << "result rank unknown", failure();
      resTy = *inferred;
    }
    return c.out(ExpandOp::create(
        b, c.loc, resTy, x,
        resTy.hasStaticShape() ? Value() : expandExtents(c, x, c.in(1), resTy)));
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
  if (op == "Size") {
    // Static sizes fold in tryFold; here: the product of the run-time shape.
    Value x = c.in(0);
    return c.out(ReduceOp::create(
        b, c.loc, RankedTensorType::get({}, b.getI64Type()), ReduceKind::prod,
        shapeOf(c, x), ArrayRef<int64_t>{0}, false));
  }
  if (op == "Range") {
    FailureOr<RankedTensorType> ty = imp.outputType(node, 0);
    if (failed(ty) || ty->getRank() != 1)
      ty = RankedTensorType::get({kDyn}, tensorType(c.in(0)).getElementType());
    return c.out(RangeOp::create(b, c.loc, *ty, c.in(0), c.in(1), c.in(2)));
  }
  if (op == "ConstantOfShape") {
    std::optional<IntTensor> shape = imp.knownInts(node, 0);
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
    if (!shape) {
      // Shape computed at run time: broadcast the fill value to it.
      std::optional<PartialInts> partial = partialInts(c.in(0));
      if (!partial)
        return c.error() << "a run-time shape of unknown length is not "
                            "supported",
               failure();
      SmallVector<int64_t> dims;
      for (std::optional<int64_t> d : *partial)
        dims.push_back(d ? *d : kDyn);
      auto resTy = c.outType(RankedTensorType::get(dims, et));
      auto scalarTy = RankedTensorType::get({}, et);
      Value fillV = imp.constant(c.loc, DenseElementsAttr::get(scalarTy, fill));
      return c.out(ExpandOp::create(
          b, c.loc, resTy, fillV,
          resTy.hasStaticShape() ? Value() : c.cast(c.in(0), b.getI64Type())));
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

/// After `node` was converted: outputs that are small integer tensors known
/// entirely at import time (e.g. `Gather(Shape(x), 2)` of a static dimension
/// of a dynamic tensor) become constants, so that later folds see them. When
/// every output folded, the ops the conversion built are erased if unused.
static void foldKnownOutputs(GraphImporter &imp, const onnx::NodeProto &node,
                             ArrayRef<Operation *> created) {
  bool allConstant = true, folded = false;
  for (int i = 0; i < node.output_size(); ++i) {
    if (node.output(i).empty())
      continue;
    Value v = imp.output(node, i);
    if (!v || v.getDefiningOp<ConstantOp>())
      continue;
    std::optional<PartialInts> p = partialInts(v);
    if (!p || !allKnown(*p)) {
      allConstant = false;
      continue;
    }
    auto ty = tensorType(v);
    IntTensor t;
    t.shape.assign(ty.getShape().begin(), ty.getShape().end());
    for (std::optional<int64_t> e : *p)
      t.data.push_back(*e);
    imp.setOutput(node, i, imp.intConstant(imp.nodeLoc(node), t, ty.getElementType()));
    imp.setKnown(node.output(i), std::move(t));
    folded = true;
  }
  if (!folded || !allConstant)
    return;
  for (Operation *op : llvm::reverse(created))
    if (isOpTriviallyDead(op))
      op->erase();
}

LogicalResult onnximport::convertNode(GraphImporter &imp,
                                      const onnx::NodeProto &node) {
  // The importer appends to the end of the function's block.
  Block *block = imp.builder.getInsertionBlock();
  Operation *last = block->empty() ? nullptr : &block->back();
  if (failed(convertNodeImpl(imp, node)))
    return failure();
  SmallVector<Operation *> created;
  for (Operation &op : last ? llvm::make_range(std::next(last->getIterator()),
                                               block->end())
                            : llvm::make_range(block->begin(), block->end()))
    created.push_back(&op);
  foldKnownOutputs(imp, node, created);
  return success();
}
