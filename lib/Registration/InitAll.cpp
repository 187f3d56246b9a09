//===- InitAll.cpp - register quench and upstream dialects/passes ---------===//

#include "quench/InitAllDialects.h"
#include "quench/Codegen/CPU/Passes.h"
#include "quench/Codegen/Common/Passes.h"
#include "quench/Conversion/Passes.h"
#include "quench/Dialect/Quench/IR/QuenchDialect.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"
#include "quench/Pipelines/Pipelines.h"
#include "quench/Target/CPU/CPUPipeline.h"
#include "quench/Target/CPU/CPUTargetBackend.h"
#include "quench/Target/TargetBackend.h"

#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"

void quench::registerAllDialects(mlir::DialectRegistry &registry) {
  registry.insert<quench::QuenchDialect>();
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
}

void quench::registerAllPasses() {
  mlir::registerAllPasses();
  quench::registerQuenchPasses();
  quench::registerQuenchConversionPasses();
  quench::registerQuenchCodegenCommonPasses();
  quench::registerQuenchCodegenCPUPasses();
  quench::registerQuenchPipelines();
  quench::registerCPUPipelines();
}

void quench::registerAllTargetBackends() { registerCPUTargetBackend(); }

void quench::registerAllTargetCLOptions() {
  registerTargetCLOptions();
  registerCPUTargetCLOptions();
}
