//===- ShapeValues.cpp - shape values known in part at import time --------===//
//
// With dynamic input dimensions, exporters compute target shapes, slice
// bounds and fill shapes at run time (Shape -> Gather -> Unsqueeze -> Concat
// -> Reshape). Such values are usually known in part (`[batch, seq, 4, 12]`):
// `partialInts` recovers what is known of each element from the quench ops
// already built, which gives the static parts of result types, and values
// known entirely fold to constants (the dispatcher's foldKnownOutputs,
// OpTable.cpp). Run-time entries of a shape are taken to be extents (never
// the -1 / 0 placeholders of Reshape), which is what exporters produce.
//
// Also the small builders of run-time shape arithmetic (shape_of, one
// element, concatenation, product) that the shape conversions share.
//
//===----------------------------------------------------------------------===//

#include "OpTable.h"

#include "quench/Dialect/Quench/IR/QuenchConstants.h"

#include <cstring>

using namespace quench;
using namespace quench::onnximport;

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
static std::optional<PartialInts> partialIntsWithin(Value v,
                                                    int64_t &budget) {
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
  auto sub = [&](Value x) { return partialIntsWithin(x, budget); };
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

std::optional<PartialInts> onnximport::partialInts(Value v) {
  int64_t budget = 1024;
  return partialIntsWithin(v, budget);
}

bool onnximport::allKnown(const PartialInts &p) {
  return llvm::all_of(p, [](const std::optional<int64_t> &e) { return e.has_value(); });
}

/// A 1-D (or, with `scalar`, 0-D) i64 constant.
Value onnximport::i64Constant(Conv &c, ArrayRef<int64_t> vals, bool scalar) {
  IntTensor t;
  if (!scalar)
    t.shape = {(int64_t)vals.size()};
  t.data.assign(vals.begin(), vals.end());
  return c.imp.intConstant(c.loc, t, c.b.getI64Type());
}

/// The run-time extents of `x` (1-D i64).
Value onnximport::shapeOf(Conv &c, Value x) {
  return ShapeOfOp::create(
      c.b, c.loc, RankedTensorType::get({tensorType(x).getRank()}, c.b.getI64Type()),
      x);
}

/// Element `i` of the 1-D i64 tensor `v`, as a 1-element 1-D tensor.
Value onnximport::elementAt(Conv &c, Value v, int64_t i) {
  return SliceOp::create(c.b, c.loc, RankedTensorType::get({1}, c.b.getI64Type()),
                         v, ArrayRef<int64_t>{i}, ArrayRef<int64_t>{i + 1},
                         ArrayRef<int64_t>{1});
}

/// A 1-element tensor as a 0-D tensor.
Value onnximport::toScalar(Conv &c, Value v) {
  return ReshapeOp::create(c.b, c.loc, RankedTensorType::get({}, c.b.getI64Type()),
                           v, Value());
}

/// Concatenates 1-D i64 pieces.
Value onnximport::concatI64(Conv &c, ArrayRef<Value> pieces) {
  int64_t len = 0;
  for (Value p : pieces) {
    int64_t d = tensorType(p).getDimSize(0);
    len = (len == kDyn || d == kDyn) ? kDyn : len + d;
  }
  return ConcatOp::create(c.b, c.loc, RankedTensorType::get({len}, c.b.getI64Type()),
                          pieces, 0);
}

/// The product of the entries of a 1-D i64 tensor, as a 1-element tensor.
Value onnximport::productOf(Conv &c, Value v) {
  return ReduceOp::create(c.b, c.loc, RankedTensorType::get({1}, c.b.getI64Type()),
                          ReduceKind::prod, v, ArrayRef<int64_t>{0}, true);
}
