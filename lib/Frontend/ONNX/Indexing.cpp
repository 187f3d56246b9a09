//===- Indexing.cpp - ONNX operators that select or join parts of tensors -===//
//
// Slice (with bounds known at import, or computed at run time: then a
// gather of a range of indices, with ONNX's clamping), Split, Concat and
// Gather. On small 1-D integer tensors known at import (shape arithmetic)
// Slice, Concat and Gather fold.
//
//===----------------------------------------------------------------------===//

#include "OpTable.h"

using namespace quench;
using namespace quench::onnximport;

//===----------------------------------------------------------------------===//
// Import-time folders
//===----------------------------------------------------------------------===//

/// Slice of a 1-D value along axis 0 with step 1.
static std::optional<Folded> foldSlice(FoldArgs &f) {
  if (!f.knownInputs())
    return std::nullopt;
  const SmallVector<IntTensor> &ins = f.ins;
  const IntTensor &a = ins[0];
  if (a.shape.size() != 1 || ins.size() < 3)
    return std::nullopt;
  int64_t dim = a.shape[0];
  if (ins.size() > 3 && !ins[3].data.empty() && ins[3].data[0] != 0 &&
      ins[3].data[0] != -1)
    return std::nullopt;
  int64_t step = ins.size() > 4 && !ins[4].data.empty() ? ins[4].data[0] : 1;
  if (step != 1 || ins[1].data.size() != 1 || ins[2].data.size() != 1)
    return std::nullopt;
  int64_t s = ins[1].data[0], e = ins[2].data[0];
  s = std::clamp(s < 0 ? s + dim : s, (int64_t)0, dim);
  e = std::clamp(e < 0 ? e + dim : e, (int64_t)0, dim);
  IntTensor t;
  for (int64_t i = s; i < e; ++i)
    t.data.push_back(a.data[i]);
  t.shape = {(int64_t)t.data.size()};
  return Folded{t, f.outEt};
}

/// Concat of 1-D values.
static std::optional<Folded> foldConcat(FoldArgs &f) {
  if (!f.knownInputs())
    return std::nullopt;
  const SmallVector<IntTensor> &ins = f.ins;
  const IntTensor &a = ins[0];
  if (a.shape.size() != 1)
    return std::nullopt;
  IntTensor t;
  for (const IntTensor &x : ins) {
    if (x.shape.size() != 1)
      return std::nullopt;
    t.data.insert(t.data.end(), x.data.begin(), x.data.end());
  }
  t.shape = {(int64_t)t.data.size()};
  return Folded{t, f.outEt};
}

/// Gather from a 1-D value.
static std::optional<Folded> foldGather(FoldArgs &f) {
  if (!f.knownInputs())
    return std::nullopt;
  const SmallVector<IntTensor> &ins = f.ins;
  const IntTensor &a = ins[0];
  if (ins.size() != 2 || a.shape.size() != 1)
    return std::nullopt;
  IntTensor t;
  t.shape = ins[1].shape;
  for (int64_t i : ins[1].data) {
    int64_t idx = i < 0 ? i + a.shape[0] : i;
    if (idx < 0 || idx >= a.shape[0])
      return std::nullopt; // the conversion reports it
    t.data.push_back(a.data[idx]);
  }
  return Folded{t, f.outEt};
}

//===----------------------------------------------------------------------===//
// Conversions
//===----------------------------------------------------------------------===//

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

static LogicalResult convertConcat(Conv &c) {
  GraphImporter &imp = c.imp;
  const onnx::NodeProto &node = c.node;
  OpBuilder &b = c.b;
  SmallVector<Value> ins;
  for (int i = 0; i < node.input_size(); ++i)
    if (c.has(i))
      ins.push_back(c.in(i));
  if (ins.empty())
    return c.error() << "needs at least one input", failure();
  auto first = tensorType(ins.front());
  FailureOr<int64_t> axis = c.axis(imp.attrInt(node, "axis", 0), first.getRank());
  if (failed(axis))
    return failure();
  // Every input's rank is the first's (a hostile model's need not be: the
  // axis would index past a shorter shape; fuzz finding).
  for (Value v : ins)
    if (tensorType(v).getRank() != first.getRank())
      return c.error() << "inputs of rank " << first.getRank() << " and "
                       << tensorType(v).getRank(),
             failure();
  SmallVector<int64_t> shape(first.getShape());
  shape[*axis] = 0;
  for (Value v : ins) {
    int64_t d = tensorType(v).getDimSize(*axis);
    shape[*axis] = (shape[*axis] == kDyn || d == kDyn) ? kDyn : shape[*axis] + d;
  }
  auto resTy = c.outType(RankedTensorType::get(shape, first.getElementType()));
  return c.out(ConcatOp::create(b, c.loc, resTy, ins, *axis));
}

static LogicalResult convertGather(Conv &c) {
  GraphImporter &imp = c.imp;
  const onnx::NodeProto &node = c.node;
  OpBuilder &b = c.b;
  Value data = c.in(0), idx = c.in(1);
  auto dt = tensorType(data);
  FailureOr<int64_t> axis = c.axis(imp.attrInt(node, "axis", 0), dt.getRank());
  if (failed(axis))
    return failure();
  // Constant indices outside [-n, n) are an error here (ONNX calls them
  // one; run-time ones are checked by the generated code).
  if (!dt.isDynamicDim(*axis))
    if (std::optional<IntTensor> known = imp.knownInts(node, 1)) {
      int64_t n = dt.getDimSize(*axis);
      for (int64_t i : known->data)
        if (i < -n || i >= n)
          return c.error() << "index " << i << " is outside [-" << n << ", "
                           << n << ") of axis " << *axis,
                 failure();
    }
  SmallVector<int64_t> shape(dt.getShape().take_front(*axis));
  llvm::append_range(shape, tensorType(idx).getShape());
  llvm::append_range(shape, dt.getShape().drop_front(*axis + 1));
  auto ty = c.outType(RankedTensorType::get(shape, dt.getElementType()));
  return c.out(GatherOp::create(b, c.loc, ty, data, idx, *axis));
}

//===----------------------------------------------------------------------===//
// Registration
//===----------------------------------------------------------------------===//

void onnximport::populateIndexingOps(OpTable &table) {
  table.add("Slice", convertSlice, foldSlice);
  table.add("Split", convertSplit);
  table.add("Concat", convertConcat, foldConcat);
  table.add("Gather", convertGather, foldGather);
}
