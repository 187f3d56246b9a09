//===- Passes.h - quench dialect passes -------------------------*- C++ -*-===//
//
// Declarations and registration of the quench dialect's passes.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_DIALECT_QUENCH_TRANSFORMS_PASSES_H
#define QUENCH_DIALECT_QUENCH_TRANSFORMS_PASSES_H

#include "mlir/Pass/Pass.h"
#include "quench/Dialect/Quench/IR/QuenchDialect.h"

namespace quench {

#define GEN_PASS_DECL
#include "quench/Dialect/Quench/Transforms/Passes.h.inc"

/// Adds the patterns of `quench-raise-ops` to `patterns`.
void populateRaiseOpsPatterns(mlir::RewritePatternSet &patterns);

#define GEN_PASS_REGISTRATION
#include "quench/Dialect/Quench/Transforms/Passes.h.inc"

} // namespace quench

#endif // QUENCH_DIALECT_QUENCH_TRANSFORMS_PASSES_H
