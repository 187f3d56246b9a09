//===- Pipelines.cpp - named quench pass pipelines -------------------------===//

#include "quench/Pipelines/Pipelines.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"

#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void quench::buildPreparePipeline(OpPassManager &pm,
                                  const PrepareOptions &opts) {
  pm.addPass(createCanonicalizerPass());
  if (opts.raise) {
    pm.addPass(createQuenchRaiseOps());
    pm.addPass(createCanonicalizerPass());
  }
  pm.addPass(createCSEPass());
}

void quench::registerQuenchPipelines() {
  PassPipelineRegistration<PrepareOptions>(
      "quench-prepare",
      "Clean up an imported model: canonicalize, raise decomposed patterns "
      "(quench-raise-ops), canonicalize, CSE",
      buildPreparePipeline);
}
