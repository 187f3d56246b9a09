//===- Contractions.cpp - MatMul and Gemm ---------------------------------===//
//
// MatMul becomes `quench.matmul` with NumPy semantics; Gemm becomes
// `quench.linear` in its `nn.Linear` form (transB = 1, alpha = beta = 1, a
// bias of one value per output column), else matmul with the transposes,
// scalings and bias add written out. `matmulType` is shared with the
// integer matmuls (Quantization.cpp).
//
//===----------------------------------------------------------------------===//

#include "OpTable.h"

using namespace quench;
using namespace quench::onnximport;

//===----------------------------------------------------------------------===//
// Conversions
//===----------------------------------------------------------------------===//

RankedTensorType onnximport::matmulType(Conv &c, Value a, Value bv, Type et) {
  SmallVector<int64_t> as(tensorType(a).getShape()), bs(tensorType(bv).getShape());
  // Scalars have no matrix dims (fuzz finding: drop_back(2) of an empty
  // shape); callers report a null type.
  if (as.empty() || bs.empty())
    return nullptr;
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

static LogicalResult convertMatMul(Conv &c) {
  OpBuilder &b = c.b;
  Value lhs = c.in(0), rhs = c.in(1);
  int64_t lr = tensorType(lhs).getRank(), rr = tensorType(rhs).getRank();
  if (lr == 0 || rr == 0)
    return c.error() << "operands of rank " << lr << " and " << rr
                     << ": MatMul needs rank 1 or more",
           failure();
  RankedTensorType ty =
      matmulType(c, lhs, rhs, tensorType(lhs).getElementType());
  if (!ty)
    return c.error() << "batch dimensions are not broadcast-compatible",
           failure();
  return c.out(MatMulOp::create(b, c.loc, ty, lhs, rhs));
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

//===----------------------------------------------------------------------===//
// Registration
//===----------------------------------------------------------------------===//

void onnximport::populateContractionOps(OpTable &table) {
  table.add("MatMul", convertMatMul);
  table.add("Gemm", convertGemm);
}
