//===- Pipelines.h - the shared front pipeline and its stages ---*- C++ -*-===//
//
// The shared front pipeline: the target-independent stages (prepare,
// calibrate, quantize, kv-cache, attention, to-linalg) that quench-compile, quench-opt (through
// registered pipeline names) and calibration all run, built by functions
// so that every driver runs exactly the same passes; the stage runner; the
// quantization options of the compile driver. Each target backend appends
// its code generation stages (include/quench/Target/TargetBackend.h).
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_PIPELINES_PIPELINES_H
#define QUENCH_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"
#include "quench/Dialect/Quench/Transforms/PackSparseWeights.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Error.h"

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

/// Fills `out` from a --quant preset: "w8a16" (int8 per output channel,
/// symmetric), "w4a16" / "w3a16" / "w2a16" (group-wise, group 32 unless
/// `groupSize` >= 0 says otherwise; 0 = per channel), "w8a8" (int8 weights
/// per channel and int8 activations with static per-tensor scales from
/// calibration) and "w8a8-dynamic" (per-token scales at run time). Returns an error
/// message for an unknown preset or a group size the bits cannot pack.
/// "none" leaves `out` unset.
std::string parseQuantPreset(llvm::StringRef preset, int64_t groupSize,
                             std::optional<WeightQuantOptions> &out);

/// Registers the quantization command-line options of the compile driver
/// (--quant, --group-size, --asymmetric, --scale-type, --quant-head,
/// --quant-embeddings, --quant-exclude, --quant-recipe, --algo,
/// --gptq-act-order, --quant-threads) in their own category. They map
/// onto quench-quantize-weights' options (WeightQuantOptions); the pruning
/// options (--sparsity, --prune, --sparsity-head) onto
/// quench-prune-weights' (PruneOptions). Call before parsing the command
/// line.
void registerQuantizationCLOptions();
/// The category of registerQuantizationCLOptions' options.
llvm::cl::OptionCategory &getQuantizationCLOptionCategory();
/// The weight quantization the command line asks for (std::nullopt for
/// --quant=none), or an error message for a bad combination.
llvm::Expected<std::optional<WeightQuantOptions>>
getQuantizationOptionsFromCL();
/// The pruning the command line asks for (--sparsity, --prune,
/// --sparsity-head, and --quant-recipe's "sparsity" fields), std::nullopt
/// for none, or an error message for a bad combination.
llvm::Expected<std::optional<PruneOptions>> getPruneOptionsFromCL();
/// --sparse-storage: "auto", "compressed" or "dense" (validated by
/// getPruneOptionsFromCL).
llvm::StringRef getSparseStorageFromCL();
/// The residual-stream rotation the command line asks for (--rotate,
/// --rotate-seed; registered by registerQuantizationCLOptions), std::nullopt
/// for --rotate=none (the default), or an error for a bad value.
llvm::Expected<std::optional<QuenchRotateOptions>> getRotationOptionsFromCL();
/// The --quant preset name given on the command line ("none" by default).
llvm::StringRef getQuantPresetFromCL();

/// What --kv-cache asks for: quench-kv-cache's options, and whether the
/// model must have past inputs (--kv-cache=f32|f16) or may lack them
/// (auto).
struct KVCacheRequest {
  QuenchKVCacheOptions options;
  bool required = false;
  /// --derive-kv-cache: derive the past inputs of a model exported without
  /// them (quench-derive-kv-cache) before the cache rewrite.
  bool derive = false;
};

/// Registers the generation options of the compile driver (--kv-cache,
/// --derive-kv-cache, --max-seq, --kv-past, --kv-present, --kv-input-ids,
/// --kv-attention-mask, --kv-position-ids, --kv-logits,
/// --kv-logits-positions) in their own
/// category; call before parsing the command line.
void registerGenerationCLOptions();
/// The category of registerGenerationCLOptions' options.
llvm::cl::OptionCategory &getGenerationCLOptionCategory();
/// The KV cache the command line asks for (std::nullopt: --kv-cache=none),
/// or an error for a bad value.
llvm::Expected<std::optional<KVCacheRequest>> getKVCacheRequestFromCL();

/// One named stage of a pipeline. Drivers run stages one by one so that
/// the IR between them can be dumped (`quench-compile --dump-stages`) and
/// compilation can stop after any of them (`--stop-after-stage`). A stage
/// is a pass pipeline (`build`) or, for the few stages that are not passes
/// (`calibrate` runs the model), a function of the module (`run`).
struct PipelineStage {
  std::string name;
  std::string description;
  std::function<void(mlir::OpPassManager &)> build;
  std::function<mlir::LogicalResult(mlir::ModuleOp)> run;
};

/// Appends a textual pipeline of upstream passes to `pm` (kept textual so
/// that upstream's pass-constructor renames do not break the build); a
/// malformed built-in pipeline is a fatal error.
void addTextualPassPipeline(mlir::OpPassManager &pm, llvm::StringRef pipeline);

/// Options of the shared front pipeline.
struct FrontPipelineOptions {
  /// Run the `prepare` stage.
  bool prepare = true;
  /// Rotates the residual stream (the `rotate` stage, quench-rotate,
  /// after `prepare` and before `calibrate`, so that calibration and
  /// quantization see the rotated model); std::nullopt: absent.
  std::optional<QuenchRotateOptions> rotate;
  /// Runs calibration on the prepared float module (the `calibrate` stage;
  /// lib/Calibration's addCalibrationStage sets it). The stage is absent
  /// when unset.
  std::function<mlir::LogicalResult(mlir::ModuleOp)> calibrate;
  /// Migrates activation scales into the weights with calibration
  /// statistics (the `smooth` stage, SmoothQuant, after `calibrate`;
  /// lib/Calibration sets it for --smooth). Absent when unset.
  std::function<mlir::LogicalResult(mlir::ModuleOp)> smooth;
  /// Turns the entry's past keys/values into caches (the `kv-cache` stage,
  /// after quantization, so that calibration and quantization see the
  /// model as exported); the driver sets it, since it updates the model's
  /// signature. The stage is absent when unset.
  std::function<mlir::LogicalResult(mlir::ModuleOp)> kvCache;
  /// Forms `quench.attention` from exported attention chains (the
  /// `attention` stage, quench-fuse-attention, after kv-cache: calibration,
  /// quantization and the cache rewrite see the chains as exported).
  bool fuseAttention = true;
  /// Fuses linears that read the same input into one product (the
  /// `fuse-linears` stage, quench-fuse-parallel-linears, after quantization
  /// and attention: every earlier stage sees the layers as exported).
  bool fuseLinears = true;
  /// Pruning (the `prune` stage, quench-prune-weights, before quantize);
  /// std::nullopt: none.
  std::optional<PruneOptions> prune;
  /// Where the prune stage records what it did to each layer (must outlive
  /// the pipeline run), or nullptr.
  std::vector<LayerPruneRecord> *pruneReport = nullptr;
  /// Weight quantization (the `quantize` stage); std::nullopt: none.
  std::optional<WeightQuantOptions> weightQuant;
  /// Where the quantize stage records what it did to each layer (must
  /// outlive the pipeline run), or nullptr.
  std::vector<LayerQuantRecord> *quantReport = nullptr;
  /// Compressed storage of N:M pruned layers (the `pack-sparse` stage,
  /// quench-pack-sparse-weights, after quantize); std::nullopt: dense.
  std::optional<QuenchPackSparseWeightsOptions> packSparse;
  /// Where the pack-sparse stage records each pruned layer's storage, or
  /// nullptr.
  std::vector<LayerPackRecord> *packReport = nullptr;
};

/// The target-independent stages every model goes through, in order:
///   prepare    quench-prepare (only when opts.prepare);
///   rotate     quench-rotate (only when opts.rotate);
///   calibrate  run the float model on samples (only when opts.calibrate);
///   smooth     SmoothQuant scale migration (only when opts.smooth);
///   prune      quench-prune-weights (only when opts.prune);
///   quantize   quench-quantize-weights (only when opts.weightQuant);
///   pack-sparse quench-pack-sparse-weights (only when opts.packSparse);
///   kv-cache   past keys/values into caches (only when opts.kvCache);
///   attention  quench-fuse-attention (only when opts.fuseAttention);
///   fuse-linears quench-fuse-parallel-linears (only when opts.fuseLinears);
///   to-linalg  convert-quench-to-linalg, canonicalize.
/// A target backend appends its code generation stages after these.
std::vector<PipelineStage>
getFrontPipelineStages(const FrontPipelineOptions &opts);

/// How runPipelineStages runs.
struct StageRunOptions {
  /// Stop after the stage of this name (empty: run every stage).
  std::string stopAfter;
  /// Apply the pass manager's command-line options (timing, IR printing).
  bool applyPassManagerCLOptions = false;
  /// Called before each stage.
  std::function<void(const PipelineStage &)> beforeStage;
  /// Called after each stage; a failure stops the run.
  std::function<mlir::LogicalResult(const PipelineStage &)> afterStage;
};

/// Runs `stages` on `module` one by one (each pass stage in a pass
/// manager of its own). A failing pass stage is reported by one error,
/// "stage 'NAME' failed (see above)", after the passes' own diagnostics; a
/// failing `run` stage reports its own error.
mlir::LogicalResult runPipelineStages(mlir::ModuleOp module,
                                      llvm::ArrayRef<PipelineStage> stages,
                                      const StageRunOptions &options = {});

/// The names of `stages` ("prepare to-linalg ..."), for messages.
std::string getStageNames(llvm::ArrayRef<PipelineStage> stages);

/// Fails with one error per quench op left in `module` after the
/// to-linalg stage ("'quench.X' has no <target> lowering yet"; quench.attention
/// stays for the backend's codegen stage) and one
/// summary error, so that ops a target cannot lower are all listed at
/// once instead of failing later with an obscure message.
mlir::LogicalResult verifyNoQuenchOpsLeft(mlir::ModuleOp module,
                                          llvm::StringRef targetDisplayName);

/// Options of `quench-front-pipeline` (the front pipeline as quench-opt runs
/// it: no calibration, no quantization).
struct FrontPipelineCLOptions
    : public mlir::PassPipelineOptions<FrontPipelineCLOptions> {
  Option<bool> prepare{*this, "prepare",
                       llvm::cl::desc("Run the prepare stage first"),
                       llvm::cl::init(true)};
};

/// Registers the target-independent pipelines (quench-prepare,
/// quench-front-pipeline) with the
/// global pass registry; targets register theirs
/// (registerAllTargetBackends).
void registerQuenchPipelines();

} // namespace quench

#endif // QUENCH_PIPELINES_PIPELINES_H
