//===- Reductions.cpp - reductions, Softmax and LayerNormalization --------===//
//
// ReduceMean/Sum/Max/Min/Prod (axes from the attribute, or from a constant
// input for ReduceSum and from opset 18, with ONNX's defaults and
// noop_with_empty_axes), Softmax along one axis (opset 13+), and
// LayerNormalization, including its optional Mean and InvStdDev outputs.
// `reduceValue` is shared with the composite reductions (Composite.cpp).
//
//===----------------------------------------------------------------------===//

#include "OpTable.h"

using namespace quench;
using namespace quench::onnximport;

//===----------------------------------------------------------------------===//
// Conversions
//===----------------------------------------------------------------------===//

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
  FailureOr<SmallVector<int64_t>> normalized = c.axes(*axes, rank);
  if (failed(normalized))
    return failure();
  out = std::move(*normalized);
  llvm::sort(out);
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

FailureOr<Value> onnximport::reduceValue(Conv &c, Value x, ReduceKind kind,
                                         std::optional<bool> keepOverride) {
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

template <ReduceKind kind>
static LogicalResult convertReduce(Conv &c) {
  FailureOr<Value> r = reduceValue(c, c.in(0), kind);
  return failed(r) ? failure() : c.out(*r);
}

static LogicalResult convertSoftmax(Conv &c) {
  GraphImporter &imp = c.imp;
  const onnx::NodeProto &node = c.node;
  OpBuilder &b = c.b;
  Value x = c.in(0);
  FailureOr<int64_t> axis =
      c.axis(imp.attrInt(node, "axis", -1), tensorType(x).getRank());
  if (failed(axis))
    return failure();
  return c.out(SoftmaxOp::create(b, c.loc, x.getType(), x, *axis));
}

static LogicalResult convertLayerNorm(Conv &c) {
  GraphImporter &imp = c.imp;
  const onnx::NodeProto &node = c.node;
  OpBuilder &b = c.b;
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

//===----------------------------------------------------------------------===//
// Registration
//===----------------------------------------------------------------------===//

void onnximport::populateReductionOps(OpTable &table) {
  table.add("ReduceMean", convertReduce<ReduceKind::mean>);
  table.add("ReduceSum", convertReduce<ReduceKind::sum>);
  table.add("ReduceMax", convertReduce<ReduceKind::max>);
  table.add("ReduceMin", convertReduce<ReduceKind::min>);
  table.add("ReduceProd", convertReduce<ReduceKind::prod>);
  table.add("Softmax", convertSoftmax);
  table.add("LayerNormalization", convertLayerNorm);
}
