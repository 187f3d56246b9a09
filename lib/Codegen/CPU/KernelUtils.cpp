//===- KernelUtils.cpp - helpers of the explicit CPU kernels --------------===//
//
// What the kernels written out in C++ (Int8Matmul.cpp, DequantMatmul.cpp)
// share: the declaration of the LLVM intrinsics they call, and their
// parallel structure, scf.forall tasks of output columns, each computing
// its slice of the [rows, N] result. Also the matcher of widening integer
// multiply-add bodies that the int8 kernel and the tile pass agree on.
//
//===----------------------------------------------------------------------===//

#include "KernelUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;

void quench::declareIntrinsic(ModuleOp module, StringRef name,
                              FunctionType type) {
  if (module.lookupSymbol(name))
    return;
  OpBuilder b = OpBuilder::atBlockBegin(module.getBody());
  func::FuncOp::create(b, module.getLoc(), name, type).setPrivate();
}

Value quench::addIndex(OpBuilder &b, Location loc, Value a, int64_t c) {
  return c == 0 ? a
                : (Value)arith::AddIOp::create(
                      b, loc, a, arith::ConstantIndexOp::create(b, loc, c));
}

Value quench::readVector(OpBuilder &b, Location loc, VectorType type,
                         Value src, ValueRange at, bool inBounds) {
  Value pad = arith::ConstantOp::create(
      b, loc, b.getZeroAttr(type.getElementType()));
  return vector::TransferReadOp::create(b, loc, type, src, at, pad,
                                        ArrayRef<bool>{inBounds});
}

Value quench::splatI32(OpBuilder &b, Location loc, VectorType type,
                       int32_t v) {
  return arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(type, b.getI32IntegerAttr(v)));
}

Value quench::broadcastByteWord(OpBuilder &b, Location loc, Value src,
                                ValueRange at, int64_t lanes) {
  Type i8 = b.getI8Type(), i32 = b.getI32Type();
  Value v4 = readVector(b, loc, VectorType::get({4}, i8), src, at, true);
  Value w = vector::BitCastOp::create(b, loc, VectorType::get({1}, i32), v4);
  Value s = vector::ExtractOp::create(b, loc, w, ArrayRef<int64_t>{0});
  Value splat =
      vector::BroadcastOp::create(b, loc, VectorType::get({lanes}, i32), s);
  return vector::BitCastOp::create(b, loc, VectorType::get({4 * lanes}, i8),
                                   splat);
}

Value quench::callDotBytes(OpBuilder &b, Location loc, StringRef intrinsic,
                           Value acc, Value u8, Value s8) {
  return func::CallOp::create(b, loc, intrinsic, TypeRange{acc.getType()},
                              ValueRange{acc, u8, s8})
      .getResult(0);
}

Value quench::restoreLeadingDims(OpBuilder &b, Location loc, Value res,
                                Type type, unsigned nb, Value like) {
  if (nb == 0)
    return tensor::CollapseShapeOp::create(
        b, loc, res, ArrayRef<ReassociationIndices>{{0, 1}});
  if (nb == 1)
    return res;
  ReassociationIndices rows;
  for (unsigned i = 0; i < nb; ++i)
    rows.push_back(i);
  return tensor::ExpandShapeOp::create(
      b, loc, type, res, ArrayRef<ReassociationIndices>{rows, {nb}},
      tensor::getMixedSizes(b, loc, like));
}

Value quench::buildColumnTasks(RewriterBase &rw, Location loc, Value out,
                               int64_t n, int64_t taskCols,
                               ColumnTaskBody body) {
  int64_t tasks = llvm::divideCeil(n, taskCols);
  auto forall = scf::ForallOp::create(
      rw, loc, ArrayRef<OpFoldResult>{rw.getIndexAttr(tasks)},
      ValueRange{out}, std::nullopt);
  OpBuilder::InsertionGuard guard(rw);
  rw.setInsertionPoint(forall.getTerminator());
  auto cst = [&](int64_t v) {
    return arith::ConstantIndexOp::create(rw, loc, v).getResult();
  };
  Value t = forall.getInductionVar(0);
  Value shared = forall.getRegionIterArgs()[0];
  ColumnTask task;
  task.index = t;
  task.colBase = arith::MulIOp::create(rw, loc, t, cst(taskCols));
  task.width = arith::MinSIOp::create(
      rw, loc, cst(taskCols),
      arith::SubIOp::create(rw, loc, cst(n), task.colBase));
  task.rows = tensor::DimOp::create(rw, loc, shared, 0);
  SmallVector<OpFoldResult> offsets{rw.getIndexAttr(0), task.colBase};
  SmallVector<OpFoldResult> sizes{task.rows, task.width};
  SmallVector<OpFoldResult> strides{rw.getIndexAttr(1), rw.getIndexAttr(1)};
  task.slice =
      tensor::ExtractSliceOp::create(rw, loc, shared, offsets, sizes, strides);
  Value result = body(rw, task);
  rw.setInsertionPointToEnd(forall.getTerminator().getBody());
  tensor::ParallelInsertSliceOp::create(rw, loc, result, shared, offsets,
                                        sizes, strides);
  return forall.getResult(0);
}

/// True when `body` is exactly `out + extsi(a) * extsi(b)` with `out` of
/// the integer type `et` and `a`, `b` narrower integers (quench.qlinear's
/// i8 x i8 -> i32 product): linalg.contract's default (signed) casts of its
/// inputs to the result type are the same computation.
bool quench::isWideningIntMulAdd(Block &body, Type et) {
  if (!isa<IntegerType>(et) || body.getNumArguments() != 3 ||
      body.getArgument(2).getType() != et ||
      body.getOperations().size() != 5)
    return false;
  auto add = dyn_cast_or_null<arith::AddIOp>(
      body.getTerminator()->getOperand(0).getDefiningOp());
  if (!add)
    return false;
  Value out = body.getArgument(2), prod = add.getRhs();
  if (add.getRhs() == out)
    prod = add.getLhs();
  else if (add.getLhs() != out)
    return false;
  auto mul = prod.getDefiningOp<arith::MulIOp>();
  if (!mul)
    return false;
  // The factors: sign extensions (to `et`) of the two inputs, either order.
  auto source = [&](Value v) -> Value {
    auto ext = v.getDefiningOp<arith::ExtSIOp>();
    return ext && ext.getType() == et ? ext.getIn() : Value();
  };
  Value a = source(mul.getLhs()), b = source(mul.getRhs());
  Value x = body.getArgument(0), y = body.getArgument(1);
  return (a == x && b == y) || (a == y && b == x);
}
