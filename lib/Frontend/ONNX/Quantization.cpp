//===- Quantization.cpp - pre-quantized ONNX operators --------------------===//
//
// QuantizeLinear / DequantizeLinear (per tensor and per axis),
// DynamicQuantizeLinear, MatMulInteger, QLinearMatMul and com.microsoft
// MatMulNBits become the ONNX-faithful quench ops with the same operands;
// nothing is reinterpreted at import.
//
//===----------------------------------------------------------------------===//

#include "OpTable.h"

using namespace quench;
using namespace quench::onnximport;

//===----------------------------------------------------------------------===//
// Conversions
//===----------------------------------------------------------------------===//

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

static LogicalResult convertDynamicQuantizeLinear(Conv &c) {
  OpBuilder &b = c.b;
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

static LogicalResult convertMatMulInteger(Conv &c) {
  OpBuilder &b = c.b;
  RankedTensorType ty = matmulType(c, c.in(0), c.in(1), b.getI32Type());
  if (!ty)
    return c.error() << "an operand is a scalar, or the batch dimensions "
                        "are not broadcast-compatible",
           failure();
  return c.out(MatMulIntegerOp::create(b, c.loc, ty, c.in(0), c.in(1),
                                       c.has(2) ? c.in(2) : Value(),
                                       c.has(3) ? c.in(3) : Value()));
}

static LogicalResult convertQLinearMatMul(Conv &c) {
  OpBuilder &b = c.b;
  RankedTensorType ty =
      matmulType(c, c.in(0), c.in(3), tensorType(c.in(7)).getElementType());
  if (!ty)
    return c.error() << "an operand is a scalar, or the batch dimensions "
                        "are not broadcast-compatible",
           failure();
  return c.out(QLinearMatMulOp::create(b, c.loc, ty, c.in(0), c.in(1), c.in(2),
                                       c.in(3), c.in(4), c.in(5), c.in(6),
                                       c.in(7)));
}

static LogicalResult convertMatMulNBits(Conv &c) {
  int64_t k = c.imp.attrInt(c.node, "K", 0), n = c.imp.attrInt(c.node, "N", 0);
  int64_t bits = c.imp.attrInt(c.node, "bits", 4);
  int64_t block = c.imp.attrInt(c.node, "block_size", 0);
  // A contrib op: the ONNX checker knows no schema for it, so an absent
  // required input (an empty name) reaches here (fuzz finding: null operand).
  static const char *const required[] = {"A", "B", "scales"};
  for (int i = 0; i < 3; ++i)
    if (!c.has(i))
      return c.error() << "input " << i << " (" << required[i]
                       << ") is missing",
             failure();
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
// Registration
//===----------------------------------------------------------------------===//

void onnximport::populateQuantizationOps(OpTable &table) {
  table.add("QuantizeLinear",
            [](Conv &c) { return convertQuantLinear(c, true); });
  table.add("DequantizeLinear",
            [](Conv &c) { return convertQuantLinear(c, false); });
  table.add("DynamicQuantizeLinear", convertDynamicQuantizeLinear);
  table.add("MatMulInteger", convertMatMulInteger);
  table.add("QLinearMatMul", convertQLinearMatMul);
  // ONNX Runtime's contrib operator. ONNX Runtime defines it at com.microsoft
  // version 1; the importer has never checked that domain's version, so any
  // is accepted.
  table.add("com.microsoft", "MatMulNBits", OpsetRange::any(),
            convertMatMulNBits);
}
