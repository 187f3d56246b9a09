//===- CPUPipeline.h - the CPU backend's code generation stages -*- C++ -*-===//
//
// The stages the CPU target appends after the shared front pipeline
// (codegen, bufferize, to-llvm), and `quench-cpu-pipeline`, the whole
// pipeline as quench-opt runs it: the front stages (without calibration and
// quantization, which need a driver) followed by these.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_TARGET_CPU_CPUPIPELINE_H
#define QUENCH_TARGET_CPU_CPUPIPELINE_H

#include "quench/Codegen/CPU/Int8DotProduct.h"
#include "quench/Pipelines/Pipelines.h"

#include "mlir/Pass/PassOptions.h"

#include <vector>

namespace quench {

/// How the CPU code generation stages generate code.
struct CPUCodegenOptions {
  /// SIMD register width in bits (256: AVX2, 512: AVX-512; 0: scalar loops).
  unsigned vectorBits = 256;
  /// Integer multiply-add instructions for int8 products.
  Int8DotProduct int8Dot = Int8DotProduct::None;
  /// 4- and 2-bit weight codes converted by a table lookup (AVX-512F).
  bool codeLookup = false;
  /// 8-bit codes in bitmask sparse storage expanded by vpexpandb
  /// (AVX512-VBMI2, with the VNNI int16 kernel at 512 bits).
  bool bitmaskExpand = false;
  /// Quantized products (4- and 8-bit codes, the int16 form) of at least
  /// this many rows take int8 activations (prefill); 0: never.
  int64_t int8PrefillRows = 0;
  /// Widest codes that take int8 prefill activations (4 or 8).
  int64_t int8PrefillBits = 8;
  /// quench.attention by the vectorized kernel (quench-cpu-attention) when
  /// vectorBits != 0; false: by its linalg decomposition.
  bool attentionKernel = true;
};

/// Appends the CPU stages, in order:
///   codegen    tiling, fusion and vectorization on tensors;
///   bufferize  one-shot-bufferize (function boundaries with identity
///              layouts: public functions take and return dense row-major
///              buffers), then the buffer-deallocation pipeline (every
///              buffer is freed; returned buffers are fresh allocations
///              owned by the caller);
///   to-llvm    vector/linalg/scf/memref/arith/math/func → LLVM dialect.
void appendCPUCodegenStages(std::vector<PipelineStage> &stages,
                            const CPUCodegenOptions &opts);

/// Options of `quench-cpu-pipeline`.
struct CPUPipelineOptions : public mlir::PassPipelineOptions<CPUPipelineOptions> {
  Option<bool> prepare{*this, "prepare",
                       llvm::cl::desc("Run quench-prepare first"),
                       llvm::cl::init(true)};
  Option<unsigned> vectorBits{
      *this, "vector-bits",
      llvm::cl::desc("SIMD register width the codegen stage tiles and "
                     "vectorizes for (256: AVX2, 512: AVX-512; 0: no "
                     "vectorization, scalar loops)"),
      llvm::cl::init(256)};
  Option<Int8DotProduct> int8Dot{
      *this, "int8-dot",
      llvm::cl::desc("Integer multiply-add instructions for int8 x int8 -> "
                     "int32 products with constant weights (the target must "
                     "have them at vector-bits; quench-compile chooses from "
                     "the CPU's features)"),
      llvm::cl::init(Int8DotProduct::None),
      llvm::cl::values(
          clEnumValN(Int8DotProduct::None, "none",
                     "generic contraction (outer products on i32 lanes)"),
          clEnumValN(Int8DotProduct::PMAddWD, "pmaddwd",
                     "vpmaddwd on i16 pairs (AVX2, AVX-512BW)"),
          clEnumValN(Int8DotProduct::VNNI, "vnni",
                     "vpdpbusd on u8 x s8 quadruples (AVX-VNNI, "
                     "AVX512-VNNI)"))};
  Option<bool> codeLookup{
      *this, "code-lookup",
      llvm::cl::desc("Convert 4- and 2-bit weight codes in quantized matmul "
                     "kernels by a 16-entry table lookup (vpermps; the "
                     "target must have AVX-512F and vector-bits be 512; "
                     "quench-compile chooses from the CPU's features)"),
      llvm::cl::init(false)};
  Option<bool> attentionKernel{
      *this, "attention-kernel",
      llvm::cl::desc("Compute quench.attention with the vectorized "
                     "online-softmax kernel (quench-cpu-attention; needs "
                     "vector-bits >= 128); false: its linalg decomposition"),
      llvm::cl::init(true)};

  CPUCodegenOptions getCodegenOptions() const {
    CPUCodegenOptions o;
    o.vectorBits = vectorBits;
    o.int8Dot = int8Dot;
    o.codeLookup = codeLookup;
    o.attentionKernel = attentionKernel;
    return o;
  }
};

/// The stages of `quench-cpu-pipeline`: the front pipeline's (prepare only
/// when opts.prepare; no calibration or quantization: quench-opt users run
/// quench-quantize-weights themselves) and appendCPUCodegenStages'.
std::vector<PipelineStage> getCPUPipelineStages(const CPUPipelineOptions &opts);

/// quench → LLVM dialect for the CPU: every stage of getCPUPipelineStages.
void buildCPUPipeline(mlir::OpPassManager &pm, const CPUPipelineOptions &opts);

/// Registers quench-cpu-pipeline and quench-cpu-codegen (the codegen stage
/// alone) with the global pass registry.
void registerCPUPipelines();

} // namespace quench

#endif // QUENCH_TARGET_CPU_CPUPIPELINE_H
