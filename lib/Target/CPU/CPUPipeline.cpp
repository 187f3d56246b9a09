//===- CPUPipeline.cpp - the CPU backend's code generation stages --------===//

#include "quench/Target/CPU/CPUPipeline.h"

#include "quench/Codegen/CPU/Passes.h"
#include "quench/Codegen/Common/Passes.h"
#include "quench/Conversion/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/PassRegistry.h"

using namespace mlir;

void quench::appendCPUCodegenStages(std::vector<PipelineStage> &stages,
                                    const CPUCodegenOptions &opts) {
  unsigned vectorBits = opts.vectorBits;
  Int8DotProduct int8Dot = opts.int8Dot;
  bool codeLookup = opts.codeLookup;
  bool attentionKernel = opts.attentionKernel;
  bool bitmaskExpand = opts.bitmaskExpand;
  int64_t int8PrefillRows = opts.int8PrefillRows;
  int64_t int8PrefillBits = opts.int8PrefillBits;
  stages.push_back(
      {"codegen", "tiling, fusion and vectorization on tensors",
       [vectorBits, int8Dot, codeLookup, attentionKernel, bitmaskExpand,
        int8PrefillRows, int8PrefillBits](OpPassManager &pm) {
         // Fused attention (quench.attention), kept by to-linalg: the
         // vectorized kernel where it applies, else the linalg
         // decomposition.
         if (vectorBits != 0 && attentionKernel) {
           QuenchCPUAttentionOptions attention;
           attention.vectorBits = vectorBits;
           pm.addNestedPass<func::FuncOp>(createQuenchCPUAttention(attention));
         }
         pm.addPass(createQuenchDecomposeAttention());
         pm.addNestedPass<func::FuncOp>(createQuenchFuseElementwise());
         addTextualPassPipeline(pm, "canonicalize,cse");
         if (vectorBits == 0)
           return;
         pm.addNestedPass<func::FuncOp>(createQuenchCPUPretransposeRhs());
         QuenchCPUPackRhsPanelsOptions panels;
         panels.vectorBits = vectorBits;
         pm.addNestedPass<func::FuncOp>(createQuenchCPUPackRhsPanels(panels));
         QuenchCPUDequantMatmulOptions dequant;
         dequant.vectorBits = vectorBits;
         dequant.codeLookup = codeLookup;
         dequant.int16Dot = int8Dot == Int8DotProduct::VNNI;
         dequant.bitmaskExpand = bitmaskExpand;
         dequant.int8PrefillRows =
             int8Dot == Int8DotProduct::VNNI ? int8PrefillRows : 0;
         dequant.int8PrefillBits = int8PrefillBits;
         pm.addPass(createQuenchCPUDequantMatmul(dequant));
         QuenchCPUSparseMatmulOptions sparse;
         sparse.vectorBits = vectorBits;
         sparse.int16Dot = int8Dot == Int8DotProduct::VNNI;
         sparse.bitmaskExpand = bitmaskExpand;
         pm.addPass(createQuenchCPUSparseMatmul(sparse));
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
         addTextualPassPipeline(pm, "canonicalize,cse,loop-invariant-subset-hoisting");
         // Fused epilogues read those vectors row by row.
         pm.addNestedPass<func::FuncOp>(createQuenchForwardSubvectors());
         addTextualPassPipeline(pm, "canonicalize,cse");
       },
       nullptr});
  stages.push_back(
      {"bufferize", "one-shot bufferization and buffer deallocation",
       [](OpPassManager &pm) {
         pm.addNestedPass<func::FuncOp>(createQuenchUnshareInits());
         pm.addNestedPass<func::FuncOp>(createQuenchFullRankWrites());
         addTextualPassPipeline(
             pm, "one-shot-bufferize{bufferize-function-boundaries=1 "
                 "function-boundary-type-conversion=identity-layout-map},"
                 "canonicalize,buffer-deallocation-pipeline,canonicalize");
       },
       nullptr});
  stages.push_back(
      {"to-llvm", "lowering to the LLVM dialect", [](OpPassManager &pm) {
         addTextualPassPipeline(pm, "convert-bufferization-to-memref");
         // Sizes of buffers with run-time extents cannot wrap (a check
         // before each allocation, docs/reliability.md).
         pm.addPass(createQuenchCheckBufferSizes());
         addTextualPassPipeline(pm, "convert-linalg-to-parallel-loops");
         // Layers of one shape share their kernels (ShareKernels.cpp).
         pm.addPass(createQuenchShareKernels());
         pm.addPass(createConvertSCFToQuenchRuntime());
         addTextualPassPipeline(pm, "scf-forall-to-for");
         pm.addNestedPass<func::FuncOp>(createQuenchCPULowerVector());
         addTextualPassPipeline(
             pm,
             "canonicalize,convert-vector-to-scf{full-unroll=1 target-rank=1},"
             "convert-scf-to-cf");
         // Failed run-time checks return an error status (not abort).
         pm.addPass(createConvertAssertToQuenchRuntime());
         // MLIR 22's expand-strided-metadata crashes on expand_shape with
         // two dynamic sizes in a group (ExpandShapeToCast.cpp).
         pm.addPass(createQuenchExpandShapeToCast());
         addTextualPassPipeline(
             pm,
             "expand-strided-metadata,lower-affine,"
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
       },
       nullptr});
}

std::vector<quench::PipelineStage>
quench::getCPUPipelineStages(const CPUPipelineOptions &opts) {
  FrontPipelineOptions front;
  front.prepare = opts.prepare;
  std::vector<PipelineStage> stages = getFrontPipelineStages(front);
  appendCPUCodegenStages(stages, opts.getCodegenOptions());
  return stages;
}

void quench::buildCPUPipeline(OpPassManager &pm,
                              const CPUPipelineOptions &opts) {
  for (const PipelineStage &stage : getCPUPipelineStages(opts))
    stage.build(pm);
}

void quench::registerCPUPipelines() {
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
        std::vector<PipelineStage> stages;
        appendCPUCodegenStages(stages, opts.getCodegenOptions());
        for (const PipelineStage &stage : stages)
          if (stage.name == "codegen")
            stage.build(pm);
      });
}
