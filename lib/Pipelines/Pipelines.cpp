//===- Pipelines.cpp - named quench pass pipelines -------------------------===//

#include "quench/Pipelines/Pipelines.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"

#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/ErrorHandling.h"
#include "llvm/Support/raw_ostream.h"
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

/// Appends a textual pipeline of upstream passes (kept textual so that
/// upstream's pass-constructor renames do not break the build).
static void addTextualPipeline(OpPassManager &pm, llvm::StringRef pipeline) {
  std::string err;
  llvm::raw_string_ostream os(err);
  if (failed(parsePassPipeline(pipeline, pm, os)))
    llvm::report_fatal_error(llvm::Twine("quench: bad built-in pipeline: ") +
                             err);
}

void quench::buildCPUPipeline(OpPassManager &pm,
                              const CPUPipelineOptions &opts) {
  if (opts.prepare)
    buildPreparePipeline(pm, PrepareOptions());
  // Stage to-linalg.
  addTextualPipeline(pm, "convert-quench-to-linalg,canonicalize");
  // Stage bufferize.
  addTextualPipeline(
      pm, "one-shot-bufferize{bufferize-function-boundaries=1},canonicalize");
  // Stage to-llvm.
  addTextualPipeline(
      pm, "convert-linalg-to-loops,convert-scf-to-cf,expand-strided-metadata,"
          "lower-affine,finalize-memref-to-llvm,"
          "math-extend-to-supported-types,convert-math-to-llvm,"
          "convert-math-to-libm,convert-arith-to-llvm,convert-index-to-llvm,"
          "convert-func-to-llvm,convert-cf-to-llvm,convert-ub-to-llvm,"
          "reconcile-unrealized-casts");
}

void quench::registerQuenchPipelines() {
  PassPipelineRegistration<CPUPipelineOptions>(
      "quench-cpu-pipeline",
      "Lower a quench model to the LLVM dialect for the CPU (prepare, "
      "to-linalg, bufferize, to-llvm)",
      buildCPUPipeline);
  PassPipelineRegistration<PrepareOptions>(
      "quench-prepare",
      "Clean up an imported model: canonicalize, raise decomposed patterns "
      "(quench-raise-ops), canonicalize, CSE",
      buildPreparePipeline);
}
