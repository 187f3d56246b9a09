//===- CUDAPipeline.cpp - the CUDA backend's code generation stages -------===//

#include "quench/Target/CUDA/CUDAPipeline.h"

#include "quench/Codegen/Common/Passes.h"
#include "quench/Codegen/GPU/Passes.h"
#include "quench/Conversion/Passes.h"
#include "quench/Target/CPU/CPUPipeline.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Pass/PassRegistry.h"

using namespace mlir;

llvm::ArrayRef<llvm::StringRef> quench::getSupportedCUDAArchs() {
  static const llvm::StringRef archs[] = {"sm_80", "sm_86", "sm_89", "sm_90",
                                          "sm_90a"};
  return archs;
}

void quench::appendCUDACodegenStages(std::vector<PipelineStage> &stages,
                                     const CUDACodegenOptions &opts) {
  // codegen (fusion on tensors) and bufferize are the CPU backend's
  // without vectorization; its scalar to-llvm lowers the emulation.
  std::vector<PipelineStage> cpu;
  CPUCodegenOptions scalar;
  scalar.vectorBits = 0;
  appendCPUCodegenStages(cpu, scalar);
  auto takeCPUStage = [&](StringRef name) {
    for (PipelineStage &stage : cpu)
      if (stage.name == name)
        return std::move(stage);
    llvm_unreachable("the CPU backend has no such stage");
  };
  stages.push_back(takeCPUStage("codegen"));
  stages.back().description = "fusion on tensors";
  stages.push_back(takeCPUStage("bufferize"));
  int64_t blockSize = opts.blockSize;
  bool emulate = opts.emulate;
  stages.push_back(
      {"gpu-kernels",
       emulate ? "device buffers, loop nests as kernels, run on the host"
               : "device buffers, loop nests as kernels, one device module",
       [blockSize, emulate](OpPassManager &pm) {
         addTextualPassPipeline(pm, "convert-bufferization-to-memref");
         pm.addPass(createQuenchGPUPlaceBuffers());
         // Quantized layers with few rows: bandwidth-bound GEMV kernels
         // (docs/gpu.md, "W4A16/W8A16 GEMV"); the rest maps generically.
         QuenchGPUDequantGemvOptions gemv;
         gemv.blockSize = blockSize;
         pm.addNestedPass<func::FuncOp>(createQuenchGPUDequantGemv(gemv));
         // 2:4 sparse linear layers (f16, int8; compressed, or dense
         // constants that are 2:4): sparse tensor cores (docs/gpu.md,
         // "Sparse tensor-core GEMM"), before the dense GEMM takes them.
         QuenchGPUMmaSpGemmOptions mmaSp;
         mmaSp.emulate = emulate;
         pm.addPass(createQuenchGPUMmaSpGemm(mmaSp));
         // Matmuls with f16/bf16 operands and f32 accumulation (prefill):
         // tensor-core kernels (docs/gpu.md, "Tensor-core GEMM").
         QuenchGPUMmaGemmOptions mma;
         mma.emulate = emulate;
         pm.addNestedPass<func::FuncOp>(createQuenchGPUMmaGemm(mma));
         pm.addNestedPass<func::FuncOp>(createQuenchGPUParallelDimsOuter());
         addTextualPassPipeline(pm, "convert-linalg-to-parallel-loops,"
                                    "canonicalize");
         QuenchGPUMapToLaunchOptions map;
         map.blockSize = blockSize;
         pm.addNestedPass<func::FuncOp>(createQuenchGPUMapToLaunch(map));
         if (emulate) {
           pm.addNestedPass<func::FuncOp>(createQuenchGPUEmulateOnHost());
           addTextualPassPipeline(pm, "canonicalize,cse");
           return;
         }
         // Constants (shift counts, masks, sizes) move into the kernels
         // that use them instead of becoming kernel parameters.
         addTextualPassPipeline(pm, "func.func(gpu-launch-sink-index-"
                                    "computations),gpu-kernel-outlining");
         pm.addPass(createQuenchGPUMergeModules());
         // One stream per run: every GPU op of a function becomes
         // asynchronous on it, the host waits where it needs results.
         addTextualPassPipeline(pm, "func.func(gpu-async-region),"
                                    "canonicalize,cse");
       },
       nullptr});
  if (emulate) {
    stages.push_back(takeCPUStage("to-llvm"));
    return;
  }
  std::string target = "nvvm-attach-target{chip=" + opts.chip +
                       " features=" + opts.features + " O=3}";
  stages.push_back(
      {"to-llvm", "kernels to NVVM and PTX, host code to the LLVM dialect",
       [target](OpPassManager &pm) {
         addTextualPassPipeline(
             pm, target +
                     ",gpu.module(lower-affine,convert-scf-to-cf,"
                     // Tensor-core GEMM kernels: mma.sync, ldmatrix,
                     // cp.async.
                     "convert-nvgpu-to-nvvm,"
                     // Vector ops of the GEMV kernels (16-byte loads).
                     "convert-vector-to-llvm,"
                     "expand-strided-metadata,lower-affine,"
                     "convert-gpu-to-nvvm,canonicalize,cse,"
                     "reconcile-unrealized-casts)");
         addTextualPassPipeline(pm, "func.func(convert-scf-to-cf)");
         // Failed run-time checks of the host code return an error status.
         pm.addPass(createConvertAssertToQuenchRuntime());
         pm.addPass(createQuenchExpandShapeToCast());
         addTextualPassPipeline(
             pm, "expand-strided-metadata,lower-affine,"
                 // Outputs are allocated by the runtime's allocator, which
                 // the caller frees (docs/runtime.md).
                 "finalize-memref-to-llvm{use-generic-functions=1},"
                 "convert-arith-to-llvm,convert-index-to-llvm,"
                 "convert-func-to-llvm,convert-cf-to-llvm,gpu-to-llvm,"
                 "convert-ub-to-llvm,reconcile-unrealized-casts,"
                 // PTX here; the backend assembles it with the Toolkit's
                 // ptxas when it serializes.
                 "gpu-module-to-binary{format=isa},canonicalize");
       },
       nullptr});
}

void quench::registerCUDAPipelines() {
  PassPipelineRegistration<CUDAPipelineOptions>(
      "quench-cuda-pipeline",
      "Lower a quench model to the LLVM dialect and PTX for NVIDIA GPUs "
      "(stages prepare, to-linalg, codegen, bufferize, gpu-kernels, "
      "to-llvm)",
      [](OpPassManager &pm, const CUDAPipelineOptions &opts) {
        FrontPipelineOptions front;
        front.prepare = opts.prepare;
        std::vector<PipelineStage> stages = getFrontPipelineStages(front);
        appendCUDACodegenStages(stages, opts.getCodegenOptions());
        for (const PipelineStage &stage : stages)
          stage.build(pm);
      });
}
