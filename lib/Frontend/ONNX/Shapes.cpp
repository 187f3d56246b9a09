//===- Shapes.cpp - ONNX operators that change or compute shapes ----------===//
//
// Reshape, Flatten, Squeeze, Unsqueeze, Transpose and Expand, and the shape
// queries Shape, Size and Range. Targets known at import give static result
// types; targets computed at run time (from `Shape`, with dynamic input
// dimensions) keep what is known of them and pass the rest as run-time
// shape operands (ShapeValues.cpp). Shape and Size of static dimensions,
// and reshapes and ranges of known integers, fold at import.
//
//===----------------------------------------------------------------------===//

#include "OpTable.h"

using namespace quench;
using namespace quench::onnximport;

/// The most elements a Range may have (2^32): a longer one is a malformed or
/// hostile model, not a shape computation (docs/reliability.md).
static constexpr int64_t kMaxRangeElements = int64_t(1) << 32;
/// Ranges of up to this many elements fold into constants at import.
static constexpr int64_t kMaxFoldedRange = kMaxFoldedElements;

//===----------------------------------------------------------------------===//
// Import-time folders
//===----------------------------------------------------------------------===//

/// The static extents `Shape` selects (start/end as ONNX clamps them).
static std::optional<Folded> foldShape(FoldArgs &f) {
  GraphImporter &imp = f.imp;
  const onnx::NodeProto &node = f.node;
  Type i64 = f.imp.builder.getI64Type();
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
      return std::nullopt;
    t.data.push_back(ty.getDimSize(d));
  }
  t.shape = {(int64_t)t.data.size()};
  return Folded{t, i64};
}

static std::optional<Folded> foldSize(FoldArgs &f) {
  GraphImporter &imp = f.imp;
  const onnx::NodeProto &node = f.node;
  Type i64 = f.imp.builder.getI64Type();
  auto ty = tensorType(imp.input(node, 0));
  if (!ty.hasStaticShape())
    return std::nullopt;
  return Folded{IntTensor{{}, {ty.getNumElements()}}, i64};
}

/// Reshape, Flatten, Squeeze, Unsqueeze of known data: the same data in
/// the inferred static shape.
static std::optional<Folded> foldReshapeLike(FoldArgs &f) {
  if (!f.knownInputs())
    return std::nullopt;
  FailureOr<RankedTensorType> outTy = f.outTy;
  const SmallVector<IntTensor> &ins = f.ins;
  const IntTensor &a = ins[0];
  if (!succeeded(outTy) || !outTy->hasStaticShape())
    return std::nullopt;
  IntTensor t = a;
  t.shape.assign(outTy->getShape().begin(), outTy->getShape().end());
  return Folded{t, f.outEt};
}

/// Range of known integers. Start, limit and delta must be scalars (one
/// element) and delta nonzero; the count max(ceil((limit - start) / delta),
/// 0) is computed without overflow and may not exceed kMaxRangeElements.
/// Only ranges of up to kMaxFoldedRange elements become constants (shape
/// arithmetic); longer ones stay run-time ops with a static extent.
static std::optional<Folded> foldRange(FoldArgs &f) {
  if (!f.knownInputs())
    return std::nullopt;
  const SmallVector<IntTensor> &ins = f.ins;
  if (ins.size() != 3)
    return std::nullopt;
  static const char *names[] = {"start", "limit", "delta"};
  for (int i = 0; i < 3; ++i)
    if (ins[i].data.size() != 1) {
      f.error = std::string(names[i]) +
                " must be a scalar, got a tensor of " +
                std::to_string(ins[i].data.size()) + " elements";
      return std::nullopt;
    }
  int64_t start = ins[0].data[0], limit = ins[1].data[0],
          delta = ins[2].data[0];
  if (delta == 0) {
    f.error = "delta is 0 (the range would never end)";
    return std::nullopt;
  }
  // ceil((limit - start) / delta) in 128 bits: the difference of two int64
  // values fits, the count may not fit in int64.
  __int128 span = (__int128)limit - start;
  __int128 count = 0;
  if ((span > 0 && delta > 0) || (span < 0 && delta < 0)) {
    __int128 d = delta;
    count = (span + d + (delta > 0 ? -1 : 1)) / d;
  }
  if (count > kMaxRangeElements) {
    f.error = "from " + std::to_string(start) + " to " +
              std::to_string(limit) + " by " + std::to_string(delta) +
              " has more than " + std::to_string(kMaxRangeElements) +
              " elements (the limit of a Range)";
    return std::nullopt;
  }
  if (count > kMaxFoldedRange)
    return std::nullopt;
  IntTensor t;
  t.data.reserve((size_t)count);
  for (int64_t i = 0; i < (int64_t)count; ++i)
    t.data.push_back(start + i * delta);
  t.shape = {(int64_t)t.data.size()};
  return Folded{t, f.outEt};
}

//===----------------------------------------------------------------------===//
// Conversions
//===----------------------------------------------------------------------===//

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
  if (direct || len == rank)
    return shape;
  // The requested extents padded with leading 1s to the result's rank; the
  // lowering broadcasts them with the input's and checks at run time that
  // each is 1 or the input's extent and not negative (a max of both shapes
  // here accepted any request, e.g. 5 against 3, or -2).
  SmallVector<int64_t> ones(rank - len, 1);
  return concatI64(c, {i64Constant(c, ones), shape});
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
    if (d == kDyn || known == kDyn)
      known = kDyn;
    else if (d != -1 && __builtin_mul_overflow(known, d, &known))
      return c.error() << "the requested shape has more elements than fit "
                          "in 64 bits",
             failure();
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

static LogicalResult convertFlatten(Conv &c) {
  GraphImporter &imp = c.imp;
  const onnx::NodeProto &node = c.node;
  OpBuilder &b = c.b;
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
    FailureOr<SmallVector<int64_t>> normalized = c.axes(*axes, outRank);
    if (failed(normalized))
      return failure();
    norm = std::move(*normalized);
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

static LogicalResult convertTranspose(Conv &c) {
  GraphImporter &imp = c.imp;
  const onnx::NodeProto &node = c.node;
  OpBuilder &b = c.b;
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

static LogicalResult convertExpand(Conv &c) {
  GraphImporter &imp = c.imp;
  const onnx::NodeProto &node = c.node;
  OpBuilder &b = c.b;
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
  // A shape known at import was checked above; any other is passed on and
  // checked at run time, also when the result's type is static.
  return c.out(ExpandOp::create(
      b, c.loc, resTy, x,
      shape && resTy.hasStaticShape() ? Value()
                                      : expandExtents(c, x, c.in(1), resTy)));
}

static LogicalResult convertShape(Conv &c) {
  GraphImporter &imp = c.imp;
  const onnx::NodeProto &node = c.node;
  OpBuilder &b = c.b;
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

static LogicalResult convertSize(Conv &c) {
  OpBuilder &b = c.b;
  // Static sizes fold in tryFold; here: the product of the run-time shape.
  Value x = c.in(0);
  return c.out(ReduceOp::create(
      b, c.loc, RankedTensorType::get({}, b.getI64Type()), ReduceKind::prod,
      shapeOf(c, x), ArrayRef<int64_t>{0}, false));
}

static LogicalResult convertRange(Conv &c) {
  GraphImporter &imp = c.imp;
  const onnx::NodeProto &node = c.node;
  OpBuilder &b = c.b;
  FailureOr<RankedTensorType> ty = imp.outputType(node, 0);
  if (failed(ty) || ty->getRank() != 1)
    ty = RankedTensorType::get({kDyn}, tensorType(c.in(0)).getElementType());
  return c.out(RangeOp::create(b, c.loc, *ty, c.in(0), c.in(1), c.in(2)));
}

//===----------------------------------------------------------------------===//
// Registration
//===----------------------------------------------------------------------===//

void onnximport::populateShapeOps(OpTable &table) {
  table.add("Reshape", convertReshape, foldReshapeLike);
  table.add("Flatten", convertFlatten, foldReshapeLike);
  table.add("Squeeze", [](Conv &c) { return convertSqueezeLike(c, true); },
            foldReshapeLike);
  table.add("Unsqueeze", [](Conv &c) { return convertSqueezeLike(c, false); },
            foldReshapeLike);
  table.add("Transpose", convertTranspose);
  table.add("Expand", convertExpand);
  table.add("Shape", convertShape, foldShape);
  table.add("Size", convertSize, foldSize);
  table.add("Range", convertRange, foldRange);
}
