//===- Residency.h - where a buffer of the CUDA backend lives ---*- C++ -*-===//
//
// After quench-gpu-place-buffers, device buffers are gpu.alloc results and
// constant globals (the weight image, device-resident at run time); host
// buffers are memref.alloc results (shape computations the host reads, and
// the output copies), the function's arguments (the caller's tensors) and
// globals marked kHostGlobalAttr (host copies of constants the host
// reads). docs/gpu.md, "Buffers".
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_LIB_CODEGEN_GPU_RESIDENCY_H
#define QUENCH_LIB_CODEGEN_GPU_RESIDENCY_H

#include "mlir/IR/Value.h"
#include "llvm/ADT/StringRef.h"

namespace quench {

/// Unit attribute on a memref.global the host reads (a mutable copy of a
/// constant, so that it stays out of the weight image).
constexpr llvm::StringLiteral kHostGlobalAttr = "quench.host";

/// The buffer `value` is a view of: followed through view-like ops and
/// memref.extract_strided_metadata's base buffer.
mlir::Value rootAllocation(mlir::Value value);

/// Whether the buffer `memref` views is in host memory.
bool isHostResident(mlir::Value memref);

} // namespace quench

#endif // QUENCH_LIB_CODEGEN_GPU_RESIDENCY_H
