//===- LaunchUtils.h - building gpu.launch kernels ---------------*- C++
//-*-===//

#ifndef QUENCH_LIB_CODEGEN_GPU_LAUNCHUTILS_H
#define QUENCH_LIB_CODEGEN_GPU_LAUNCHUTILS_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/PatternMatch.h"

namespace quench {

/// Creates, at `rw`'s insertion point, a 1-D gpu.launch of one thread per
/// index in [0, total): blocks of `threads` threads, at least one block (a
/// conditional launch would split the run's stream chain: gpu-async-region
/// works block by block). Leaves `rw` inside the kernel, in a guard that
/// holds for the in-range threads, and returns the thread's linear index.
mlir::Value createLinearLaunch(mlir::RewriterBase &rw, mlir::Location loc,
                               mlir::Value total, mlir::Value threads,
                               mlir::gpu::LaunchOp *launchOut = nullptr);

/// `memref` is a contiguous buffer (identity layout) whose base is aligned
/// to 16 bytes on the device: a device allocation or a constant of the
/// weight image (entries are 64-byte aligned, lib/Target/Weights.cpp; the
/// caller raises the globals collected in `globals` to an alignment of 16
/// so that the host emulation's globals are, too). The shape must be static
/// unless `throughReshapes`, which also accepts dynamic shapes and
/// `memref.collapse_shape`/`expand_shape` views of such a buffer (same
/// base, identity layouts).
bool isAlignedDeviceBuffer(
    mlir::Value memref,
    llvm::SmallVectorImpl<mlir::memref::GetGlobalOp> &globals,
    bool throughReshapes = false);

/// The body of `op` computes out + extf(a) * extf(b) (in either order;
/// extsi, muli, addi when `integer`) and nothing else, and `op` is a
/// contraction: the dense GEMM bodies the tensor-core passes take.
bool isMulAddBody(mlir::linalg::LinalgOp op, bool integer);

/// Raises the alignment of the globals that `globals` read (collected by
/// isAlignedDeviceBuffer for a kernel that now relies on it) to 16 bytes.
void alignGlobalsTo16(mlir::Operation *from,
                      llvm::ArrayRef<mlir::memref::GetGlobalOp> globals);

/// What the tensor-core kernel builders (the dense and sparse GEMM passes)
/// share: index arithmetic at one location (constants, +, *, unsigned / and
/// %, unsigned <), and for their host emulation a loop over a warp's 32
/// lanes and plain loads and stores.
class KernelBuilderBase {
public:
  KernelBuilderBase(mlir::MLIRContext *ctx, mlir::Location loc)
      : rw(ctx), loc(loc) {}

protected:
  mlir::Value cst(int64_t v) {
    return mlir::arith::ConstantIndexOp::create(rw, loc, v);
  }
  mlir::Value add(mlir::Value x, mlir::Value y) {
    return mlir::arith::AddIOp::create(rw, loc, x, y);
  }
  mlir::Value mul(mlir::Value x, mlir::Value y) {
    return mlir::arith::MulIOp::create(rw, loc, x, y);
  }
  mlir::Value add(mlir::Value x, int64_t y) { return add(x, cst(y)); }
  mlir::Value mul(mlir::Value x, int64_t y) { return mul(x, cst(y)); }
  mlir::Value div(mlir::Value x, int64_t y) {
    return mlir::arith::DivUIOp::create(rw, loc, x, cst(y));
  }
  mlir::Value rem(mlir::Value x, int64_t y) {
    return mlir::arith::RemUIOp::create(rw, loc, x, cst(y));
  }
  mlir::Value lt(mlir::Value x, mlir::Value y) {
    return mlir::arith::CmpIOp::create(rw, loc, mlir::arith::CmpIPredicate::ult,
                                       x, y);
  }
  mlir::Value lt(mlir::Value x, int64_t y) { return lt(x, cst(y)); }
  /// `body(lane)` inside a loop over the 32 lanes of a warp (emulation);
  /// the insertion point is restored afterwards.
  void forEachLane(llvm::function_ref<void(mlir::Value)> body) {
    mlir::OpBuilder::InsertionGuard guard(rw);
    auto loop = mlir::scf::ForOp::create(rw, loc, cst(0), cst(32), cst(1));
    rw.setInsertionPointToStart(loop.getBody());
    body(loop.getInductionVar());
  }
  mlir::Value load(mlir::Value buffer, mlir::ValueRange indices) {
    return mlir::memref::LoadOp::create(rw, loc, buffer, indices);
  }
  void store(mlir::Value v, mlir::Value buffer, mlir::ValueRange indices) {
    mlir::memref::StoreOp::create(rw, loc, v, buffer, indices);
  }

  mlir::IRRewriter rw;
  mlir::Location loc;
};

} // namespace quench

#endif // QUENCH_LIB_CODEGEN_GPU_LAUNCHUTILS_H
