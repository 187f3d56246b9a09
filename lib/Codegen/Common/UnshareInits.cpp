//===- UnshareInits.cpp - one constant init per user ----------------------===//
//
// quench::unshareInitTensors and its pass `quench-unshare-inits`: every
// user of a constant-initialized tensor (a linalg.fill, or a vectorized fill
// of a tensor.empty) gets its own initializing op, because CSE merges
// identical fills and one-shot bufferization would then copy a shared fill
// for each destination-passing consumer. The CPU tile pass
// (quench-cpu-tile-and-vectorize) calls it first; the pass repeats it right
// before bufferization.
//
//===----------------------------------------------------------------------===//

#include "quench/Codegen/Common/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHUNSHAREINITS
#include "quench/Codegen/Common/Passes.h.inc"
} // namespace quench

using namespace mlir;

/// True for an op that only sets its tensor result to a constant: a
/// linalg.fill, or a vector.transfer_write of a constant over a whole
/// tensor.empty (a vectorized fill).
static bool isConstantInit(Operation *op) {
  if (auto fill = dyn_cast<linalg::FillOp>(op))
    return fill.hasPureTensorSemantics() && fill->getNumResults() == 1;
  auto write = dyn_cast<vector::TransferWriteOp>(op);
  if (!write || !write.hasPureTensorSemantics() || write.getMask() ||
      !write.getBase().getDefiningOp<tensor::EmptyOp>() ||
      !write.getVector().getDefiningOp<arith::ConstantOp>())
    return false;
  auto tensorType = cast<RankedTensorType>(write.getBase().getType());
  return tensorType.hasStaticShape() &&
         tensorType.getShape() == write.getVectorType().getShape() &&
         llvm::all_of(write.getIndices(), [](Value v) {
           return isConstantIntValue(getAsOpFoldResult(v), 0);
         });
}

/// Gives each user of a constant-initialized tensor (see isConstantInit)
/// its own copy of the initializing op. CSE merges identical fills, and a
/// fill shared by two destination-passing consumers is otherwise copied
/// for each at bufferization (memref.alloc + memref.copy per use).
void quench::unshareInitTensors(func::FuncOp func, RewriterBase &rw) {
  SmallVector<Operation *> inits;
  func.walk([&](Operation *op) {
    if (isConstantInit(op))
      inits.push_back(op);
  });
  for (Operation *init : inits) {
    SmallVector<OpOperand *> uses;
    for (OpOperand &use : init->getResult(0).getUses())
      uses.push_back(&use);
    // The first user in program order keeps the original (use lists are
    // in no particular order).
    if (llvm::all_of(uses, [&](OpOperand *u) {
          return u->getOwner()->getBlock() == init->getBlock();
        }))
      llvm::sort(uses, [](OpOperand *a, OpOperand *b) {
        return a->getOwner()->isBeforeInBlock(b->getOwner());
      });
    auto dps = cast<DestinationStyleOpInterface>(init);
    OpOperand &dest = dps.getDpsInitsMutable()[0];
    for (OpOperand *use : llvm::drop_begin(uses)) {
      rw.setInsertionPoint(use->getOwner());
      Operation *empty = nullptr;
      if (auto e = dest.get().getDefiningOp<tensor::EmptyOp>())
        empty = rw.clone(*e);
      Operation *clone = rw.clone(*init);
      if (empty)
        clone->setOperand(dest.getOperandNumber(), empty->getResult(0));
      rw.modifyOpInPlace(use->getOwner(),
                         [&] { use->set(clone->getResult(0)); });
    }
  }
}

namespace {
struct QuenchUnshareInitsPass
    : public quench::impl::QuenchUnshareInitsBase<QuenchUnshareInitsPass> {
  void runOnOperation() override {
    IRRewriter rw(&getContext());
    quench::unshareInitTensors(getOperation(), rw);
  }
};
} // namespace
