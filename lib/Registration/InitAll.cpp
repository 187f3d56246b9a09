//===- InitAll.cpp - register quench and upstream dialects/passes ---------===//

#include "quench/InitAllDialects.h"
#include "quench/Codegen/CPU/Passes.h"
#include "quench/Codegen/Common/Passes.h"
#include "quench/Codegen/GPU/Passes.h"
#include "quench/Conversion/Passes.h"
#include "quench/Dialect/Quench/IR/QuenchDialect.h"
#include "quench/Dialect/Quench/Transforms/FuseParallelLinears.h"
#include "quench/Dialect/Quench/Transforms/PackSparseWeights.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"
#include "quench/Pipelines/Pipelines.h"
#include "quench/Target/CPU/CPUPipeline.h"
#include "quench/Target/CPU/CPUTargetBackend.h"
#include "quench/Target/CUDA/CUDAPipeline.h"
#include "quench/Target/CUDA/CUDATargetBackend.h"
#include "quench/Target/TargetBackend.h"

#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVM/NVVM/Target.h"

void quench::registerAllDialects(mlir::DialectRegistry &registry) {
  registry.insert<quench::QuenchDialect>();
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  // gpu-module-to-binary serializes #nvvm.target modules through it.
  mlir::NVVM::registerNVVMTargetInterfaceExternalModels(registry);
}

void quench::registerAllPasses() {
  mlir::registerAllPasses();
  quench::registerQuenchPasses();
  quench::registerQuenchSparsePasses();
  quench::registerQuenchFusePasses();
  quench::registerQuenchConversionPasses();
  quench::registerQuenchCodegenCommonPasses();
  quench::registerQuenchCodegenCPUPasses();
  quench::registerQuenchCodegenGPUPasses();
  quench::registerQuenchPipelines();
  quench::registerCPUPipelines();
  quench::registerCUDAPipelines();
}

void quench::registerAllTargetBackends() {
  registerCPUTargetBackend();
  registerCUDATargetBackend();
}

void quench::registerAllTargetCLOptions() {
  registerTargetCLOptions();
  registerCPUTargetCLOptions();
  registerCUDATargetCLOptions();
}
