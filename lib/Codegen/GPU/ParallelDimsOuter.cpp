//===- ParallelDimsOuter.cpp - parallel dimensions first ------------------===//
//
// `quench-gpu-parallel-dims-outer`: linalg ops on device buffers get their
// parallel dimensions outermost, so that the generic kernels run one
// output element per thread (docs/gpu.md, "Generic kernels").
//
//===----------------------------------------------------------------------===//

#include "quench/Codegen/GPU/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/IR/PatternMatch.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHGPUPARALLELDIMSOUTER
#include "quench/Codegen/GPU/Passes.h.inc"
} // namespace quench

using namespace mlir;

namespace {
struct QuenchGPUParallelDimsOuterPass
    : public quench::impl::QuenchGPUParallelDimsOuterBase<
          QuenchGPUParallelDimsOuterPass> {
  void runOnOperation() override {
    SmallVector<linalg::LinalgOp> ops;
    getOperation().walk([&](linalg::LinalgOp op) { ops.push_back(op); });
    IRRewriter rw(&getContext());
    for (linalg::LinalgOp op : ops) {
      SmallVector<utils::IteratorType> iterators = op.getIteratorTypesArray();
      SmallVector<unsigned> parallelFirst;
      for (auto [i, it] : llvm::enumerate(iterators))
        if (it == utils::IteratorType::parallel)
          parallelFirst.push_back(i);
      for (auto [i, it] : llvm::enumerate(iterators))
        if (it != utils::IteratorType::parallel)
          parallelFirst.push_back(i);
      if (llvm::equal(parallelFirst, llvm::seq<unsigned>(0, iterators.size())))
        continue;
      rw.setInsertionPoint(op);
      auto generic = dyn_cast<linalg::GenericOp>(op.getOperation());
      if (!generic) {
        FailureOr<linalg::GenericOp> generalized =
            linalg::generalizeNamedOp(rw, op);
        if (failed(generalized)) {
          op->emitOpError("cannot be generalized to reorder its loops");
          return signalPassFailure();
        }
        generic = *generalized;
      }
      if (failed(linalg::interchangeGenericOp(rw, generic, parallelFirst))) {
        generic->emitOpError("cannot be interchanged");
        return signalPassFailure();
      }
    }
  }
};
} // namespace
