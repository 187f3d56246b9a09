//===- Passes.h - target-independent codegen passes -------------*- C++ -*-===//
//
// Declarations and registration of the code generation passes that do not
// depend on the target (Passes.td; implementations in lib/Codegen/Common/).
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_CODEGEN_COMMON_PASSES_H
#define QUENCH_CODEGEN_COMMON_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir {
class RewriterBase;
} // namespace mlir

namespace quench {

#define GEN_PASS_DECL
#include "quench/Codegen/Common/Passes.h.inc"

/// Gives every user of a constant-initialized tensor (a linalg.fill, or a
/// vectorized fill of a tensor.empty) in `func` its own initializing op,
/// so that one-shot bufferization does not copy a shared fill for each
/// consumer (what `quench-unshare-inits` runs; the CPU tile pass calls it
/// first).
void unshareInitTensors(mlir::func::FuncOp func, mlir::RewriterBase &rw);

#define GEN_PASS_REGISTRATION
#include "quench/Codegen/Common/Passes.h.inc"

} // namespace quench

#endif // QUENCH_CODEGEN_COMMON_PASSES_H
