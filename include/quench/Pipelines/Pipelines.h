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

#include <functional>
#include <string>
#include <vector>

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

/// Options of `quench-cpu-pipeline`.
struct CPUPipelineOptions : public mlir::PassPipelineOptions<CPUPipelineOptions> {
  Option<bool> prepare{*this, "prepare",
                       llvm::cl::desc("Run quench-prepare first"),
                       llvm::cl::init(true)};
};

struct PipelineStage {
  std::string name;
  std::string description;
  std::function<void(mlir::OpPassManager &)> build;
};
std::vector<PipelineStage> getCPUPipelineStages(const CPUPipelineOptions &opts);
void buildCPUPipeline(mlir::OpPassManager &pm, const CPUPipelineOptions &opts);

/// Registers every quench pipeline with the global pass registry.
void registerQuenchPipelines();

} // namespace quench

#endif // QUENCH_PIPELINES_PIPELINES_H
