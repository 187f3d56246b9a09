//===- CUDAPipeline.h - the CUDA backend's code generation stages -*- C++ -*-===//
//
// The stages `--target=cuda` appends to the shared front pipeline:
//
//   codegen     fusion on tensors (as the CPU backend, without its
//               CPU-specific tiling)
//   bufferize   one-shot bufferization, the deallocation pipeline
//   gpu-kernels device buffers, loop nests -> gpu.launch -> outlined
//               kernels in one gpu.module, one stream per run
//   to-llvm     kernels -> NVVM -> PTX (gpu-module-to-binary, format
//               isa); host code -> LLVM dialect calling the mgpu* runtime
//
// With `emulate`, gpu-kernels stops before outlining and runs the launches
// and device buffers on the host (quench-gpu-emulate-on-host), and to-llvm
// is the CPU backend's.
//
// docs/gpu.md describes each stage.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_TARGET_CUDA_CUDAPIPELINE_H
#define QUENCH_TARGET_CUDA_CUDAPIPELINE_H

#include "quench/Pipelines/Pipelines.h"

#include "mlir/Pass/PassOptions.h"

#include <string>
#include <vector>

namespace quench {

/// What the CUDA code generation stages need to know.
struct CUDACodegenOptions {
  /// The GPU architecture the PTX is generated for ("sm_80").
  std::string chip = "sm_80";
  /// PTX ISA features ("+ptx80").
  std::string features = "+ptx80";
  /// Threads per block of the generic kernels.
  int64_t blockSize = 256;
  /// Run the kernels on the host CPU instead (quench-gpu-emulate-on-host,
  /// then the CPU backend's lowering): the mapping's numerics without a
  /// GPU.
  bool emulate = false;
};

/// Appends the CUDA backend's stages (codegen, bufferize, gpu-kernels,
/// to-llvm).
void appendCUDACodegenStages(std::vector<PipelineStage> &stages,
                             const CUDACodegenOptions &opts);

/// The supported architectures, in --cuda-arch order.
llvm::ArrayRef<llvm::StringRef> getSupportedCUDAArchs();

/// Options of the `quench-cuda-pipeline` pass pipeline (quench-opt).
struct CUDAPipelineOptions
    : public mlir::PassPipelineOptions<CUDAPipelineOptions> {
  Option<bool> prepare{*this, "prepare",
                       llvm::cl::desc("Run quench-prepare first"),
                       llvm::cl::init(true)};
  Option<std::string> chip{*this, "chip",
                           llvm::cl::desc("GPU architecture (sm_80, sm_86, "
                                          "sm_89, sm_90, sm_90a)"),
                           llvm::cl::init("sm_80")};
  Option<int64_t> blockSize{*this, "block-size",
                            llvm::cl::desc("Threads per block of the generic "
                                           "kernels"),
                            llvm::cl::init(256)};

  Option<bool> emulate{*this, "emulate",
                       llvm::cl::desc("Run the kernels on the host CPU "
                                      "(verification without a GPU)"),
                       llvm::cl::init(false)};

  CUDACodegenOptions getCodegenOptions() const {
    CUDACodegenOptions o;
    o.chip = chip;
    o.blockSize = blockSize;
    o.emulate = emulate;
    return o;
  }
};

/// Registers `quench-cuda-pipeline` (front + CUDA stages to the LLVM
/// dialect and PTX).
void registerCUDAPipelines();

} // namespace quench

#endif // QUENCH_TARGET_CUDA_CUDAPIPELINE_H
