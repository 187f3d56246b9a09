//===- Pipelines.h - named quench pass pipelines ----------------*- C++ -*-===//
//
// Pipelines are built by functions so that quench-opt (through their
// registered names) and the compile driver (by calling the builders) run
// exactly the same passes.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_PIPELINES_PIPELINES_H
#define QUENCH_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

namespace quench {

/// Options of `quench-prepare`.
struct PrepareOptions : public mlir::PassPipelineOptions<PrepareOptions> {
  Option<bool> raise{*this, "raise",
                     llvm::cl::desc("Raise decomposed exporter patterns to "
                                    "quench ops (quench-raise-ops)"),
                     llvm::cl::init(true)};
};

/// The graph-level cleanup every imported model goes through before
/// quantization and lowering: fold and simplify (canonicalize), raise
/// decomposed patterns, then canonicalize and CSE again so that the raised
/// ops' dead operands and duplicate constants disappear.
void buildPreparePipeline(mlir::OpPassManager &pm, const PrepareOptions &opts);

/// Registers every quench pipeline with the global pass registry.
void registerQuenchPipelines();

} // namespace quench

#endif // QUENCH_PIPELINES_PIPELINES_H
