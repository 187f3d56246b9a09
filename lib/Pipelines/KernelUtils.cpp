//===- KernelUtils.cpp - helpers of the explicit CPU kernels ---------------===//
//
// What the kernels written out in C++ (Int8Matmul.cpp, DequantMatmul.cpp)
// share: the declaration of the LLVM intrinsics they call, and their
// parallel structure, scf.forall tasks of output columns, each computing
// its slice of the [rows, N] result.
//
//===----------------------------------------------------------------------===//

#include "CPUCodegen.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;

void quench::declareIntrinsic(ModuleOp module, StringRef name,
                              FunctionType type) {
  if (module.lookupSymbol(name))
    return;
  OpBuilder b = OpBuilder::atBlockBegin(module.getBody());
  func::FuncOp::create(b, module.getLoc(), name, type).setPrivate();
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
