//===- MapToLaunch.cpp - loop nests to kernel launches --------------------===//
//
// `quench-gpu-map-to-launch`: the generic mapping of host loop nests to
// kernels. Each outermost scf.parallel becomes a gpu.launch with one
// thread per iteration over its linearized iteration space; memory
// accesses outside parallel loops run in single-thread kernels. The
// outlining pass then turns each launch into a kernel function.
// docs/gpu.md, "Generic kernels".
//
//===----------------------------------------------------------------------===//

#include "LaunchUtils.h"
#include "Residency.h"
#include "quench/Codegen/GPU/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHGPUMAPTOLAUNCH
#include "quench/Codegen/GPU/Passes.h.inc"
} // namespace quench

using namespace mlir;

/// Whether `op` may stay on the host: it touches no buffer contents
/// (allocation, copies between host and device, buffer metadata, pure
/// computation on scalars), and neither do the ops it holds.
static bool isHostOp(Operation *op) {
  if (isa<gpu::AllocOp, gpu::DeallocOp, gpu::MemcpyOp, gpu::MemsetOp,
          gpu::LaunchOp, gpu::WaitOp, memref::AllocOp, memref::DeallocOp,
          memref::GetGlobalOp, memref::DimOp, memref::RankOp,
          memref::ExtractStridedMetadataOp,
          memref::ExtractAlignedPointerAsIndexOp, func::ReturnOp,
          scf::YieldOp>(op))
    return true;
  if (isa<ViewLikeOpInterface>(op))
    return true;
  // Shape computations the placement kept in host memory.
  if (auto load = dyn_cast<memref::LoadOp>(op))
    return quench::isHostResident(load.getMemref());
  if (auto store = dyn_cast<memref::StoreOp>(op))
    return quench::isHostResident(store.getMemref());
  if (op->getNumRegions() == 0)
    return isMemoryEffectFree(op);
  if (isa<scf::ParallelOp>(op))
    return false;
  // Control flow (the deallocation pipeline's conditional frees): a host op
  // when everything in it is.
  if (!isa<scf::IfOp, scf::ForOp, scf::IndexSwitchOp, scf::ExecuteRegionOp>(
          op))
    return false;
  WalkResult walk = op->walk([&](Operation *nested) {
    if (nested == op)
      return WalkResult::advance();
    if (nested->getNumRegions() == 0 && !isHostOp(nested))
      return WalkResult::interrupt();
    if (isa<scf::ParallelOp>(nested))
      return WalkResult::interrupt();
    return WalkResult::advance();
  });
  return !walk.wasInterrupted();
}

/// Whether `op` holds a parallel loop somewhere in its regions.
static bool containsParallelLoop(Operation *op) {
  return op
      ->walk([](scf::ParallelOp) { return WalkResult::interrupt(); })
      .wasInterrupted();
}

namespace {
class LaunchMapper {
public:
  LaunchMapper(MLIRContext *ctx, int64_t blockSize)
      : rw(ctx), blockSize(blockSize) {}

  LogicalResult mapBlock(Block &block);

private:
  LogicalResult mapParallel(scf::ParallelOp loop);
  LogicalResult flushSerial(SmallVectorImpl<Operation *> &run);

  IRRewriter rw;
  int64_t blockSize;
  /// Results of ops moved into single-thread kernels: the host must not
  /// read them.
  DenseSet<Value> deviceValues;
};
} // namespace

LogicalResult LaunchMapper::mapBlock(Block &block) {
  // Consecutive ops that touch memory outside parallel loops, with the
  // pure ops computing on their results, run together in one
  // single-thread kernel.
  SmallVector<Operation *> run;
  DenseSet<Value> runValues;
  for (Operation &op : llvm::make_early_inc_range(block)) {
    if (auto loop = dyn_cast<scf::ParallelOp>(&op)) {
      if (failed(flushSerial(run)) || failed(mapParallel(loop)))
        return failure();
      runValues.clear();
      continue;
    }
    bool usesRun = llvm::any_of(op.getOperands(), [&](Value v) {
      return runValues.contains(v);
    });
    bool pure = op.getNumRegions() == 0 && isMemoryEffectFree(&op);
    if (!isHostOp(&op) || (usesRun && pure)) {
      if (containsParallelLoop(&op))
        return op.emitOpError(
            "mixes device memory accesses with parallel loops in a way the "
            "CUDA backend cannot map to kernels");
      run.push_back(&op);
      for (Value v : op.getResults())
        runValues.insert(v);
      continue;
    }
    for (Value v : op.getOperands())
      if (runValues.contains(v) || deviceValues.contains(v))
        return op.emitOpError(
            "on the host uses a value computed from device memory (not "
            "supported by the CUDA backend)");
    // A run never moves across a host op with effects (a copy into, or a
    // free of, a buffer it reads); pure host ops between its ops stay
    // before the kernel.
    if (!pure) {
      if (failed(flushSerial(run)))
        return failure();
      runValues.clear();
    }
    if (op.getNumRegions() && containsParallelLoop(&op)) {
      if (failed(flushSerial(run)))
        return failure();
      runValues.clear();
      for (Region &region : op.getRegions())
        for (Block &nested : region)
          if (failed(mapBlock(nested)))
            return failure();
    }
  }
  return flushSerial(run);
}

LogicalResult LaunchMapper::flushSerial(SmallVectorImpl<Operation *> &run) {
  if (run.empty())
    return success();
  // After the run's last op: the pure host ops between its ops (which it
  // may use) stay before the kernel.
  Location loc = run.front()->getLoc();
  rw.setInsertionPointAfter(run.back());
  Value one = arith::ConstantIndexOp::create(rw, loc, 1);
  auto launch = gpu::LaunchOp::create(rw, loc, one, one, one, one, one, one);
  Block &body = launch.getBody().front();
  rw.setInsertionPointToEnd(&body);
  auto terminator = gpu::TerminatorOp::create(rw, loc);
  for (Operation *op : run) {
    op->moveBefore(terminator);
    for (Value v : op->getResults())
      deviceValues.insert(v);
  }
  run.clear();
  return success();
}

LogicalResult LaunchMapper::mapParallel(scf::ParallelOp loop) {
  if (!loop.getInitVals().empty())
    return loop.emitOpError(
        "with reductions is not mapped by the CUDA backend's generic "
        "kernels");
  Location loc = loop.getLoc();
  rw.setInsertionPoint(loop);
  auto cst = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(rw, loc, v);
  };
  Value zero = cst(0);
  // Trip counts, max(0, ceil((ub - lb) / step)), and their product.
  SmallVector<Value> counts;
  Value total = cst(1);
  std::optional<int64_t> staticTotal = 1;
  for (auto [lb, ub, step] : llvm::zip(loop.getLowerBound(),
                                       loop.getUpperBound(), loop.getStep())) {
    Value span = arith::SubIOp::create(rw, loc, ub, lb);
    Value count = arith::CeilDivSIOp::create(rw, loc, span, step);
    count = arith::MaxSIOp::create(rw, loc, count, zero);
    counts.push_back(count);
    total = arith::MulIOp::create(rw, loc, total, count);
    std::optional<int64_t> l = getConstantIntValue(lb);
    std::optional<int64_t> u = getConstantIntValue(ub);
    std::optional<int64_t> s = getConstantIntValue(step);
    if (staticTotal && l && u && s && *s > 0)
      *staticTotal *= std::max<int64_t>(0, (*u - *l + *s - 1) / *s);
    else
      staticTotal.reset();
  }
  // Small static loops take a block of their size (rounded to a warp).
  int64_t threads = blockSize;
  if (staticTotal)
    threads = std::clamp<int64_t>((*staticTotal + 31) / 32 * 32, 32,
                                  blockSize);
  Value linear = quench::createLinearLaunch(rw, loc, total, cst(threads));
  // Delinearize, innermost dimension fastest (consecutive threads touch
  // consecutive elements of row-major buffers).
  IRMapping mapping;
  Value rest = linear;
  int64_t rank = loop.getNumLoops();
  SmallVector<Value> ivs(rank);
  for (int64_t d = rank - 1; d >= 0; --d) {
    Value index = rest;
    if (d > 0) {
      index = arith::RemUIOp::create(rw, loc, rest, counts[d]);
      rest = arith::DivUIOp::create(rw, loc, rest, counts[d]);
    }
    Value scaled = arith::MulIOp::create(rw, loc, index, loop.getStep()[d]);
    ivs[d] = arith::AddIOp::create(rw, loc, loop.getLowerBound()[d], scaled);
  }
  for (int64_t d = 0; d < rank; ++d)
    mapping.map(loop.getInductionVars()[d], ivs[d]);
  for (Operation &op : loop.getBody()->without_terminator())
    rw.clone(op, mapping);
  rw.eraseOp(loop);
  return success();
}

namespace {
struct QuenchGPUMapToLaunchPass
    : public quench::impl::QuenchGPUMapToLaunchBase<QuenchGPUMapToLaunchPass> {
  using Base::Base;
  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (func.isExternal())
      return;
    if (blockSize < 32 || blockSize > 1024 || blockSize % 32) {
      func.emitError("block-size must be a multiple of 32 in [32, 1024]");
      return signalPassFailure();
    }
    LaunchMapper mapper(&getContext(), blockSize);
    for (Block &block : func.getBody())
      if (failed(mapper.mapBlock(block)))
        return signalPassFailure();
  }
};
} // namespace
