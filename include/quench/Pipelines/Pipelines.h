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
#include "quench/Codegen/CPU/Int8DotProduct.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"
#include "llvm/ADT/STLFunctionalExtras.h"

#include <optional>

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
  /// Weight quantization (the `quantize` stage, after prepare); drivers set
  /// it (quench-compile --quant), quench-opt users run
  /// quench-quantize-weights themselves.
  std::optional<WeightQuantOptions> weightQuant;
};

/// Fills `out` from a --quant preset: "w8a16" (int8 per output channel,
/// symmetric), "w4a16" / "w3a16" / "w2a16" (group-wise, group 32 unless
/// `groupSize` >= 0 says otherwise; 0 = per channel), "w8a8" (int8 weights
/// per channel and int8 activations with static per-tensor scales from
/// calibration) and "w8a8-dynamic" (per-token scales at run time). Returns an error
/// message for an unknown preset or a group size the bits cannot pack.
/// "none" leaves `out` unset.
std::string parseQuantPreset(llvm::StringRef preset, int64_t groupSize,
                             std::optional<WeightQuantOptions> &out);

/// One named stage of a pipeline. Drivers run stages one by one so that
/// the IR between them can be dumped (`quench-compile --dump-stages`) and
/// compilation can stop after any of them (`--stop-after`).
struct PipelineStage {
  std::string name;
  std::string description;
  std::function<void(mlir::OpPassManager &)> build;
};

/// The stages of `quench-cpu-pipeline`, in order:
///   prepare    quench-prepare (only when opts.prepare);
///   quantize   quench-quantize-weights (only when opts.weightQuant);
///   to-linalg  convert-quench-to-linalg, canonicalize;
///   codegen    tiling, fusion and vectorization on tensors;
///   bufferize  one-shot-bufferize (function boundaries with identity
///              layouts: public functions take and return dense row-major
///              buffers), then the buffer-deallocation pipeline (every
///              buffer is freed; returned buffers are fresh allocations
///              owned by the caller);
///   to-llvm    vector/linalg/scf/memref/arith/math/func → LLVM dialect.
std::vector<PipelineStage> getCPUPipelineStages(const CPUPipelineOptions &opts);

/// quench → LLVM dialect for the CPU: every stage of getCPUPipelineStages.
void buildCPUPipeline(mlir::OpPassManager &pm, const CPUPipelineOptions &opts);

/// Registers every quench pipeline with the global pass registry.
void registerQuenchPipelines();

} // namespace quench

#endif // QUENCH_PIPELINES_PIPELINES_H
