//===- Pipelines.cpp - named quench pass pipelines -------------------------===//

#include "quench/Pipelines/Pipelines.h"

#include "quench/Codegen/CPU/Passes.h"
#include "quench/Codegen/Common/Passes.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/ErrorHandling.h"
#include "llvm/Support/raw_ostream.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void quench::buildPreparePipeline(OpPassManager &pm,
                                  const PrepareOptions &opts) {
  pm.addPass(createCanonicalizerPass());
  // Pre-quantized (QDQ) matmuls become integer ops before raising, so that
  // their integer weights are never seen as float linears (docs/
  // quantization.md, "Pre-quantized ONNX").
  pm.addPass(createQuenchFoldQDQ());
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

std::vector<quench::PipelineStage>
quench::getCPUPipelineStages(const CPUPipelineOptions &opts) {
  std::vector<PipelineStage> stages;
  if (opts.prepare)
    stages.push_back({"prepare", "quench-prepare: canonicalize, fold QDQ, raise, CSE",
                      [](OpPassManager &pm) {
                        buildPreparePipeline(pm, PrepareOptions());
                      }});
  if (opts.weightQuant) {
    WeightQuantOptions q = *opts.weightQuant;
    stages.push_back(
        {"quantize", "weight quantization (quench-quantize-weights)",
         [q](OpPassManager &pm) {
           QuenchQuantizeWeightsOptions o;
           o.bits = q.bits;
           o.groupSize = q.groupSize;
           o.symmetric = q.symmetric;
           o.scaleType = q.scaleType;
           o.quantizeHead = q.quantizeHead;
           o.exclude.assign(q.exclude.begin(), q.exclude.end());
           o.recipe = q.recipe;
           // The Gram matrices of GPTQ cannot travel as pass options: a
           // pass-manager run of algo=gptq reports the missing calibration
           // (drivers call quantizeWeights with inputGram instead).
           o.algo = q.algo;
           o.gptqActOrder = q.gptqActOrder;
           o.gptqDampening = q.gptqDampening;
           o.threads = q.threads;
           pm.addPass(createQuenchQuantizeWeights(o));
         }});
  }
  stages.push_back({"to-linalg", "quench ops to linalg/tensor/arith/math",
                    [](OpPassManager &pm) {
                      addTextualPipeline(pm,
                                         "convert-quench-to-linalg,canonicalize");
                    }});
  unsigned vectorBits = opts.vectorBits;
  Int8DotProduct int8Dot = opts.int8Dot;
  bool codeLookup = opts.codeLookup;
  stages.push_back(
      {"codegen", "tiling, fusion and vectorization on tensors",
       [vectorBits, int8Dot, codeLookup](OpPassManager &pm) {
         pm.addNestedPass<func::FuncOp>(createQuenchFuseElementwise());
         addTextualPipeline(pm, "canonicalize,cse");
         if (vectorBits == 0)
           return;
         pm.addNestedPass<func::FuncOp>(createQuenchCPUPretransposeRhs());
         QuenchCPUDequantMatmulOptions dequant;
         dequant.vectorBits = vectorBits;
         dequant.codeLookup = codeLookup;
         pm.addPass(createQuenchCPUDequantMatmul(dequant));
         if (int8Dot != Int8DotProduct::None) {
           QuenchCPUInt8MatmulOptions int8;
           int8.vectorBits = vectorBits;
           int8.int8Dot = int8Dot;
           pm.addPass(createQuenchCPUInt8Matmul(int8));
         }
         QuenchCPUTileAndVectorizeOptions tile;
         tile.vectorBits = vectorBits;
         pm.addNestedPass<func::FuncOp>(
             createQuenchCPUTileAndVectorize(tile));
         // Accumulators of the reduction loops move into registers
         // (loop-carried vectors) once their slices are hoisted.
         addTextualPipeline(pm, "canonicalize,cse,loop-invariant-subset-hoisting");
         // Fused epilogues read those vectors row by row.
         pm.addNestedPass<func::FuncOp>(createQuenchForwardSubvectors());
         addTextualPipeline(pm, "canonicalize,cse");
       }});
  stages.push_back(
      {"bufferize", "one-shot bufferization and buffer deallocation",
       [](OpPassManager &pm) {
         pm.addNestedPass<func::FuncOp>(createQuenchUnshareInits());
         pm.addNestedPass<func::FuncOp>(createQuenchFullRankWrites());
         addTextualPipeline(
             pm, "one-shot-bufferize{bufferize-function-boundaries=1 "
                 "function-boundary-type-conversion=identity-layout-map},"
                 "canonicalize,buffer-deallocation-pipeline,canonicalize");
       }});
  stages.push_back(
      {"to-llvm", "lowering to the LLVM dialect", [](OpPassManager &pm) {
         addTextualPipeline(
             pm,
             "convert-bufferization-to-memref,convert-linalg-to-parallel-loops,"
             "convert-scf-to-quench-runtime,scf-forall-to-for");
         pm.addNestedPass<func::FuncOp>(createQuenchCPULowerVector());
         addTextualPipeline(
             pm,
             "canonicalize,convert-vector-to-scf{full-unroll=1 target-rank=1},"
             "convert-scf-to-cf,"
             // MLIR 22's expand-strided-metadata crashes on expand_shape
             // with two dynamic sizes in a group (ExpandShapeToCast.cpp).
             "quench-expand-shape-to-cast,expand-strided-metadata,"
             "lower-affine,"
             // libm calls unroll vectors into vector.extract/insert: before
             // the vector lowering.
             "math-extend-to-supported-types,convert-math-to-llvm,"
             "convert-math-to-libm,"
             "convert-vector-to-llvm{reassociate-fp-reductions=1 "
             "vector-contract-lowering=outerproduct "
             "vector-transpose-lowering=shuffle1d},"
             // Buffers come from the runtime's caching allocator (runtime/lib/
             // alloc.c): no page faults on every run.
             "finalize-memref-to-llvm{use-generic-functions=1},"
             "convert-arith-to-llvm,"
             "convert-index-to-llvm,convert-func-to-llvm,convert-cf-to-llvm,"
             "convert-ub-to-llvm,reconcile-unrealized-casts");
       }});
  return stages;
}

void quench::buildCPUPipeline(OpPassManager &pm,
                              const CPUPipelineOptions &opts) {
  for (const PipelineStage &stage : getCPUPipelineStages(opts))
    stage.build(pm);
}

void quench::registerQuenchPipelines() {
  PassPipelineRegistration<CPUPipelineOptions>(
      "quench-cpu-pipeline",
      "Lower a quench model to the LLVM dialect for the CPU (stages prepare, "
      "to-linalg, codegen, bufferize, to-llvm)",
      buildCPUPipeline);
  PassPipelineRegistration<CPUPipelineOptions>(
      "quench-cpu-codegen",
      "The codegen stage of quench-cpu-pipeline alone (linalg on tensors → "
      "tiled and vectorized; honours vector-bits)",
      [](OpPassManager &pm, const CPUPipelineOptions &opts) {
        for (const PipelineStage &stage : getCPUPipelineStages(opts))
          if (stage.name == "codegen")
            stage.build(pm);
      });
  PassPipelineRegistration<PrepareOptions>(
      "quench-prepare",
      "Clean up an imported model: canonicalize, fold QDQ matmuls "
      "(quench-fold-qdq), raise decomposed patterns (quench-raise-ops), "
      "canonicalize, CSE",
      buildPreparePipeline);
}

std::string quench::parseQuantPreset(llvm::StringRef preset, int64_t groupSize,
                                     std::optional<WeightQuantOptions> &out) {
  out.reset();
  if (preset == "none")
    return "";
  unsigned bits = llvm::StringSwitch<unsigned>(preset)
                      .Cases({"w8a16", "w8a8", "w8a8-dynamic"}, 8)
                      .Case("w4a16", 4)
                      .Case("w3a16", 3)
                      .Case("w2a16", 2)
                      .Default(0);
  if (!bits)
    return "unknown quantization '" + preset.str() +
           "': use none, w8a16, w4a16, w3a16, w2a16, w8a8 or w8a8-dynamic";
  WeightQuantOptions q;
  q.bits = bits;
  if (preset == "w8a8")
    q.activations = "static";
  else if (preset == "w8a8-dynamic")
    q.activations = "dynamic";
  if (q.activations != "none" && groupSize > 0)
    return "--quant=" + preset.str() +
           " quantizes weights per output channel: --group-size must be 0";
  q.groupSize = groupSize >= 0 ? groupSize : (bits == 8 ? 0 : 32);
  if ((q.groupSize * bits) % 8 != 0)
    return "group size " + std::to_string(q.groupSize) + " does not pack " +
           std::to_string(bits) + "-bit codes into whole bytes (use a "
           "multiple of 8)";
  out = q;
  return "";
}
