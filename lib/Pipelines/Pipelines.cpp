//===- Pipelines.cpp - the shared front pipeline and the stage runner -----===//

#include "quench/Pipelines/Pipelines.h"

#include "quench/Conversion/Passes.h"
#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Dialect/Quench/Transforms/FuseParallelLinears.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"

#include "mlir/Pass/PassRegistry.h"
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

void quench::addTextualPassPipeline(OpPassManager &pm,
                                    llvm::StringRef pipeline) {
  std::string err;
  llvm::raw_string_ostream os(err);
  if (failed(parsePassPipeline(pipeline, pm, os)))
    llvm::report_fatal_error(llvm::Twine("quench: bad built-in pipeline: ") +
                             err);
}

std::vector<quench::PipelineStage>
quench::getFrontPipelineStages(const FrontPipelineOptions &opts) {
  std::vector<PipelineStage> stages;
  if (opts.prepare)
    stages.push_back({"prepare",
                      "quench-prepare: canonicalize, fold QDQ, raise, CSE",
                      [](OpPassManager &pm) {
                        buildPreparePipeline(pm, PrepareOptions());
                      },
                      nullptr});
  // Before calibration: statistics, GPTQ and the quantizer see the rotated
  // model.
  if (opts.rotate) {
    QuenchRotateOptions r = *opts.rotate;
    stages.push_back({"rotate",
                      "residual stream rotated, the rotation folded into the "
                      "weights (quench-rotate)",
                      [r](OpPassManager &pm) {
                        pm.addPass(createQuenchRotate(r));
                      },
                      nullptr});
  }
  // Calibration observes the prepared float model, before quantization.
  if (opts.calibrate)
    stages.push_back({"calibrate",
                      "run the float model on the calibration samples",
                      nullptr, opts.calibrate});
  if (opts.smooth)
    stages.push_back({"smooth",
                      "SmoothQuant: activation scales migrated into the "
                      "weights (quench-smooth)",
                      nullptr, opts.smooth});
  if (opts.prune) {
    PruneOptions p = *opts.prune;
    std::vector<LayerPruneRecord> *report = opts.pruneReport;
    stages.push_back({"prune",
                      "weight pruning (quench-prune-weights)",
                      [p, report](OpPassManager &pm) {
                        pm.addPass(createQuenchPruneWeights(p, report));
                      },
                      nullptr});
  }
  if (opts.weightQuant) {
    WeightQuantOptions q = *opts.weightQuant;
    std::vector<LayerQuantRecord> *report = opts.quantReport;
    stages.push_back({"quantize",
                      "weight quantization (quench-quantize-weights)",
                      [q, report](OpPassManager &pm) {
                        pm.addPass(createQuenchQuantizeWeights(q, report));
                      },
                      nullptr});
  }
  if (opts.packSparse) {
    QuenchPackSparseWeightsOptions o = *opts.packSparse;
    std::vector<LayerPackRecord> *report = opts.packReport;
    stages.push_back({"pack-sparse",
                      "N:M pruned weights in compressed storage "
                      "(quench-pack-sparse-weights)",
                      [o, report](OpPassManager &pm) {
                        pm.addPass(createQuenchPackSparseWeights(o, report));
                      },
                      nullptr});
  }
  if (opts.kvCache)
    stages.push_back({"kv-cache",
                      "past keys/values into caches updated in place "
                      "(quench-kv-cache)",
                      nullptr, opts.kvCache});
  // After the cache rewrite, so that the attention reads the caches as
  // stored (f16, int8 codes and scales) instead of a converted copy.
  if (opts.fuseAttention)
    stages.push_back({"attention",
                      "attention chains to quench.attention "
                      "(quench-fuse-attention)",
                      [](OpPassManager &pm) {
                        pm.addPass(createQuenchFuseAttention());
                      },
                      nullptr});
  // After quantization: calibration, GPTQ/AWQ, pruning and recipes see the
  // layers by their imported names (docs/lowering.md, "Parallel linears").
  if (opts.fuseLinears)
    stages.push_back({"fuse-linears",
                      "linears sharing an input to one product and a split "
                      "(quench-fuse-parallel-linears)",
                      [](OpPassManager &pm) {
                        pm.addNestedPass<func::FuncOp>(
                            createQuenchFuseParallelLinears());
                        addTextualPassPipeline(pm, "canonicalize");
                      },
                      nullptr});
  stages.push_back({"to-linalg", "quench ops to linalg/tensor/arith/math",
                    [](OpPassManager &pm) {
                      pm.addPass(createConvertQuenchToLinalg());
                      addTextualPassPipeline(pm, "canonicalize");
                    },
                    nullptr});
  return stages;
}

LogicalResult quench::runPipelineStages(ModuleOp module,
                                        llvm::ArrayRef<PipelineStage> stages,
                                        const StageRunOptions &options) {
  for (const PipelineStage &stage : stages) {
    if (options.beforeStage)
      options.beforeStage(stage);
    LogicalResult ran = success();
    if (stage.run) {
      // Stages that are not passes report their own errors.
      if (failed(stage.run(module)))
        return failure();
    } else {
      PassManager pm(module.getContext());
      if (options.applyPassManagerCLOptions &&
          failed(applyPassManagerCLOptions(pm)))
        return failure();
      stage.build(pm);
      ran = pm.run(module);
    }
    if (failed(ran))
      return emitError(UnknownLoc::get(module.getContext()))
             << "stage '" << stage.name << "' failed (see above)";
    if (options.afterStage && failed(options.afterStage(stage)))
      return failure();
    if (stage.name == options.stopAfter)
      break;
  }
  return success();
}

std::string quench::getStageNames(llvm::ArrayRef<PipelineStage> stages) {
  std::string names;
  for (const PipelineStage &s : stages)
    names += (names.empty() ? "" : " ") + s.name;
  return names;
}

LogicalResult quench::verifyNoQuenchOpsLeft(ModuleOp module,
                                            llvm::StringRef targetName) {
  unsigned count = 0;
  module->walk([&](Operation *op) {
    // Fused attention stays for the backend's codegen (its own kernel or
    // quench-decompose-attention).
    if (isa<AttentionOp>(op))
      return;
    if (op->getDialect() && op->getDialect()->getNamespace() == "quench") {
      emitError(op->getLoc())
          << "'" << op->getName() << "' has no " << targetName
          << " lowering yet";
      ++count;
    }
  });
  if (!count)
    return success();
  return emitError(UnknownLoc::get(module.getContext()))
         << count << " operation" << (count > 1 ? "s" : "")
         << " cannot be compiled for the " << targetName
         << " yet (see above)";
}

void quench::registerQuenchPipelines() {
  PassPipelineRegistration<PrepareOptions>(
      "quench-prepare",
      "Clean up an imported model: canonicalize, fold QDQ matmuls "
      "(quench-fold-qdq), raise decomposed patterns (quench-raise-ops), "
      "canonicalize, CSE",
      buildPreparePipeline);
  PassPipelineRegistration<FrontPipelineCLOptions>(
      "quench-front-pipeline",
      "The shared front pipeline without a driver: prepare (unless "
      "prepare=0), to-linalg (calibration and quantization need "
      "quench-compile; quench-quantize-weights runs on its own)",
      [](OpPassManager &pm, const FrontPipelineCLOptions &opts) {
        FrontPipelineOptions front;
        front.prepare = opts.prepare;
        for (const PipelineStage &stage : getFrontPipelineStages(front))
          stage.build(pm);
      });
}
