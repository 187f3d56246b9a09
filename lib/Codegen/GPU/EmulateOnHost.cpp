//===- EmulateOnHost.cpp - kernels on the host CPU ------------------------===//
//
// `quench-gpu-emulate-on-host`: the IR the CUDA backend has after buffer
// placement and launch mapping, made runnable by the CPU backend, so that
// the mapping's numerics (linearization, delinearization, guards, host and
// device copies) are tested against NumPy without a GPU. docs/gpu.md,
// "Verification".
//
//===----------------------------------------------------------------------===//

#include "quench/Codegen/GPU/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHGPUEMULATEONHOST
#include "quench/Codegen/GPU/Passes.h.inc"
} // namespace quench

using namespace mlir;

/// Replaces `launch` by an scf.parallel over its blocks around sequential
/// loops over its threads.
static LogicalResult emulateLaunch(gpu::LaunchOp launch, IRRewriter &rw) {
  if (launch.getAsyncToken() || !launch.getAsyncDependencies().empty())
    return launch.emitOpError("is asynchronous: emulate before "
                              "gpu-async-region");
  if (!launch.getWorkgroupAttributions().empty() ||
      !launch.getPrivateAttributions().empty() ||
      launch.getDynamicSharedMemorySize())
    return launch.emitOpError("uses workgroup or private memory, which the "
                              "host emulation does not model");
  WalkResult barriers = launch.walk([](gpu::BarrierOp barrier) {
    barrier.emitOpError("cannot be emulated by sequential thread loops");
    return WalkResult::interrupt();
  });
  if (barriers.wasInterrupted())
    return failure();
  Location loc = launch.getLoc();
  rw.setInsertionPoint(launch);
  Value zero = arith::ConstantIndexOp::create(rw, loc, 0);
  Value one = arith::ConstantIndexOp::create(rw, loc, 1);
  gpu::KernelDim3 grid = launch.getGridSizeOperandValues();
  gpu::KernelDim3 block = launch.getBlockSizeOperandValues();
  auto blocks = scf::ParallelOp::create(
      rw, loc, ValueRange{zero, zero, zero},
      ValueRange{grid.x, grid.y, grid.z}, ValueRange{one, one, one});
  rw.setInsertionPointToStart(blocks.getBody());
  auto tz = scf::ForOp::create(rw, loc, zero, block.z, one);
  rw.setInsertionPointToStart(tz.getBody());
  auto ty = scf::ForOp::create(rw, loc, zero, block.y, one);
  rw.setInsertionPointToStart(ty.getBody());
  auto tx = scf::ForOp::create(rw, loc, zero, block.x, one);
  rw.setInsertionPointToStart(tx.getBody());

  IRMapping mapping;
  gpu::KernelDim3 blockIds = launch.getBlockIds();
  gpu::KernelDim3 threadIds = launch.getThreadIds();
  gpu::KernelDim3 gridSize = launch.getGridSize();
  gpu::KernelDim3 blockSize = launch.getBlockSize();
  ValueRange bids = blocks.getInductionVars();
  mapping.map(blockIds.x, bids[0]);
  mapping.map(blockIds.y, bids[1]);
  mapping.map(blockIds.z, bids[2]);
  mapping.map(threadIds.x, tx.getInductionVar());
  mapping.map(threadIds.y, ty.getInductionVar());
  mapping.map(threadIds.z, tz.getInductionVar());
  mapping.map(gridSize.x, grid.x);
  mapping.map(gridSize.y, grid.y);
  mapping.map(gridSize.z, grid.z);
  mapping.map(blockSize.x, block.x);
  mapping.map(blockSize.y, block.y);
  mapping.map(blockSize.z, block.z);
  Region &body = launch.getBody();
  if (!body.hasOneBlock())
    return launch.emitOpError("has a multi-block body, which the host "
                              "emulation does not handle");
  for (Operation &op : body.front()) {
    if (isa<gpu::TerminatorOp>(op))
      continue;
    rw.clone(op, mapping);
  }
  rw.eraseOp(launch);
  return success();
}

namespace {
struct QuenchGPUEmulateOnHostPass
    : public quench::impl::QuenchGPUEmulateOnHostBase<
          QuenchGPUEmulateOnHostPass> {
  void runOnOperation() override {
    func::FuncOp func = getOperation();
    IRRewriter rw(&getContext());
    SmallVector<Operation *> ops;
    func.walk([&](Operation *op) {
      if (isa<gpu::LaunchOp, gpu::AllocOp, gpu::DeallocOp, gpu::MemcpyOp>(op))
        ops.push_back(op);
    });
    for (Operation *op : ops) {
      rw.setInsertionPoint(op);
      if (auto launch = dyn_cast<gpu::LaunchOp>(op)) {
        if (failed(emulateLaunch(launch, rw)))
          return signalPassFailure();
      } else if (auto alloc = dyn_cast<gpu::AllocOp>(op)) {
        if (alloc.getAsyncToken()) {
          alloc.emitOpError("is asynchronous: emulate before "
                            "gpu-async-region");
          return signalPassFailure();
        }
        rw.replaceOpWithNewOp<memref::AllocOp>(
            alloc, alloc.getType(), alloc.getDynamicSizes(),
            alloc.getSymbolOperands(), rw.getI64IntegerAttr(64));
      } else if (auto dealloc = dyn_cast<gpu::DeallocOp>(op)) {
        memref::DeallocOp::create(rw, dealloc.getLoc(), dealloc.getMemref());
        rw.eraseOp(dealloc);
      } else if (auto copy = dyn_cast<gpu::MemcpyOp>(op)) {
        memref::CopyOp::create(rw, copy.getLoc(), copy.getSrc(),
                               copy.getDst());
        rw.eraseOp(copy);
      }
    }
  }
};
} // namespace
