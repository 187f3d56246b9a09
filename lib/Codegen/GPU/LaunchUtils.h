//===- LaunchUtils.h - building gpu.launch kernels ---------------*- C++ -*-===//

#ifndef QUENCH_LIB_CODEGEN_GPU_LAUNCHUTILS_H
#define QUENCH_LIB_CODEGEN_GPU_LAUNCHUTILS_H

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
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

} // namespace quench

#endif // QUENCH_LIB_CODEGEN_GPU_LAUNCHUTILS_H
