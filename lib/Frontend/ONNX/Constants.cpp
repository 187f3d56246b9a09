//===- Constants.cpp - Constant and ConstantOfShape -----------------------===//
//
// `Constant` (tensor, float(s) and int(s) values) and `ConstantOfShape`: a
// constant when its shape is known at import (recorded as a known integer
// tensor for later folds), else the fill value expanded to the run-time
// shape.
//
//===----------------------------------------------------------------------===//

#include "OpTable.h"

using namespace quench;
using namespace quench::onnximport;

//===----------------------------------------------------------------------===//
// Conversions
//===----------------------------------------------------------------------===//

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

static LogicalResult convertConstantOfShape(Conv &c) {
  GraphImporter &imp = c.imp;
  const onnx::NodeProto &node = c.node;
  OpBuilder &b = c.b;
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
    // ONNX: a one-element tensor (fuzz finding: an empty one was read).
    if (dense.getNumElements() != 1)
      return c.error() << "value has " << dense.getNumElements()
                       << " elements, not 1",
             failure();
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
  // Small integer fills are known values (shape arithmetic). A huge one
  // stays a splat: its element-by-element copy would exhaust memory before
  // the size check (--max-tensor-bytes) rejects it (fuzz finding).
  std::optional<uint64_t> count = staticElementCount(shape->data);
  if (et.isInteger() && !et.isInteger(1) && count &&
      *count <= uint64_t(kMaxFoldedElements))
    imp.setKnown(node.output(0),
                 IntTensor{SmallVector<int64_t>(shape->data.begin(), shape->data.end()),
                           std::vector<int64_t>(ty.getNumElements(),
                                                cast<IntegerAttr>(fill).getInt())});
  return c.out(imp.constant(c.loc, attr));
}

//===----------------------------------------------------------------------===//
// Registration
//===----------------------------------------------------------------------===//

void onnximport::populateConstantOps(OpTable &table) {
  table.add("Constant", convertConstant);
  table.add("ConstantOfShape", convertConstantOfShape);
}
