//===- CUDATargetBackend.h - the CUDA target backend ------------*- C++ -*-===//
//
// `--target=cuda`: kernels for NVIDIA GPUs (PTX from MLIR's NVVM lowering,
// assembled by the CUDA Toolkit's ptxas, embedded with the PTX as a
// fatbin) and host code for this machine's CPU that drives them through
// the Quench runtime, which loads the CUDA driver at run time
// (docs/gpu.md). Objects, static libraries and executables as for the
// CPU backend.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_TARGET_CUDA_CUDATARGETBACKEND_H
#define QUENCH_TARGET_CUDA_CUDATARGETBACKEND_H

#include "quench/Target/CPU/CPUTargetBackend.h"
#include "quench/Target/TargetBackend.h"

#include <string>

namespace quench {

/// Options of the CUDA backend (command line: registerCUDATargetCLOptions).
struct CUDATargetOptions {
  /// GPU architecture (getSupportedCUDAArchs): sm_80 (default), sm_86,
  /// sm_89, sm_90, sm_90a.
  std::string arch = "sm_80";
  /// CUDA Toolkit directory (holding bin/ptxas and bin/fatbinary); empty:
  /// $CUDA_HOME, then /usr/local/cuda.
  std::string cudaPath;
  /// Threads per block of the generic kernels.
  int64_t blockSize = 256;
  /// Run the kernels on the host CPU (verification without a GPU; the
  /// artifact needs no GPU and no driver).
  bool emulate = false;
  /// The host side (CPU, optimization level, runtime directory, linker).
  CPUTargetOptions host;
};

/// Creates a configured CUDA backend; fails for an unknown architecture
/// with one message. The Toolkit is looked up when it is first needed
/// (serialization), so that --emit=mlir and --emit=ptx work without it.
llvm::Expected<std::unique_ptr<TargetBackend>>
createCUDATargetBackend(const CUDATargetOptions &options);

/// The CUDA Toolkit directory to use: `explicitPath`, else $CUDA_HOME, else
/// /usr/local/cuda; fails, naming every place tried, unless it holds
/// executable bin/ptxas and bin/fatbinary.
llvm::Expected<std::string> findCUDAToolkit(llvm::StringRef explicitPath);

/// Assembles `ptx` for `arch` with the Toolkit's ptxas and packs the cubin
/// and the PTX (for GPUs newer than `arch`, compiled by the driver) into a
/// fatbin with its fatbinary. Fails with ptxas's or fatbinary's messages.
llvm::Expected<std::string> assembleFatbin(llvm::StringRef toolkit,
                                           llvm::StringRef ptx,
                                           llvm::StringRef arch);

/// Registers the CUDA backend as "cuda".
void registerCUDATargetBackend();
/// Registers --cuda-arch, --cuda-path, --cuda-block-size and --cuda-emulate
/// in the target
/// option category.
void registerCUDATargetCLOptions();
/// The CUDA options the command line gives (host options from the CPU
/// backend's).
CUDATargetOptions getCUDATargetOptionsFromCL();

} // namespace quench

#endif // QUENCH_TARGET_CUDA_CUDATARGETBACKEND_H
