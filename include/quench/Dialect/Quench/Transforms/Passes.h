//===- Passes.h - quench dialect passes -------------------------*- C++ -*-===//
//
// Declarations and registration of the quench dialect's passes.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_DIALECT_QUENCH_TRANSFORMS_PASSES_H
#define QUENCH_DIALECT_QUENCH_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"
#include "quench/Dialect/Quench/IR/QuenchDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace quench {

#define GEN_PASS_DECL
#include "quench/Dialect/Quench/Transforms/Passes.h.inc"

/// The rewrite of `quench-kv-cache` (Passes.td) on `func`, whose arguments
/// and results carry `quench.name`; fails with an error naming the input or
/// output it cannot handle (the function may then be partly rewritten only
/// if the failure is in updating its signature).
mlir::LogicalResult applyKVCache(mlir::func::FuncOp func,
                                 const QuenchKVCacheOptions &options);
/// The rewrite of `quench-derive-kv-cache` (Passes.td) on `func`, whose
/// arguments and results carry `quench.name`: adds past inputs and present
/// outputs named by `options.past`/`options.present` so that applyKVCache
/// can follow. Sets `tokenInput` to the name of the token ids input it
/// found. Fails with an error naming the ONNX node it cannot handle; the
/// function is unchanged then unless the failure is in a later attention
/// core's mask.
mlir::LogicalResult applyDeriveKVCache(mlir::func::FuncOp func,
                                       const QuenchKVCacheOptions &options,
                                       std::string &tokenInput);
/// Makes the result `resultIndex` of `func`, logits [batch, seq, vocab],
/// the last position's only ([batch, 1, vocab]): the row-wise ops that
/// compute it (final norm, LM head, casts, softcaps) read the last row of
/// their input (quench-kv-cache's logits-positions=last; LastLogits.cpp).
/// Logits of another rank are left alone.
mlir::LogicalResult keepLastLogits(mlir::func::FuncOp func,
                                   unsigned resultIndex);
/// Whether `name` matches the past pattern (with {i} and {kv}) of
/// quench-kv-cache.
bool isPastInputName(llvm::StringRef name, llvm::StringRef pastPattern);
/// Whether an argument name of `func` matches the past pattern (with {i}
/// and {kv}) of quench-kv-cache, after resolveKVCacheNames (the default
/// pattern also finds the self-attention past of Optimum's seq2seq
/// decoders).
bool hasPastInputs(mlir::func::FuncOp func, llvm::StringRef pastPattern);

/// The default past/present name patterns of quench-kv-cache (decoder-only
/// models, Optimum / ONNX Runtime GenAI) and those of Optimum's seq2seq
/// decoders with past (T5, BART, ...), whose self-attention past is
/// `past_key_values.{i}.decoder.{kv}` while `past_key_values.{i}.encoder.{kv}`
/// (the cross-attention keys/values, fixed over a generation) stay ordinary
/// inputs.
inline constexpr llvm::StringLiteral kDefaultPastPattern =
    "past_key_values.{i}.{kv}";
inline constexpr llvm::StringLiteral kDefaultPresentPattern =
    "present.{i}.{kv}";
inline constexpr llvm::StringLiteral kSeq2SeqPastPattern =
    "past_key_values.{i}.decoder.{kv}";
inline constexpr llvm::StringLiteral kSeq2SeqPresentPattern =
    "present.{i}.decoder.{kv}";

/// `options` with the name patterns to use on `func`: as given, except that
/// the default past and present patterns become the seq2seq ones when no
/// argument of `func` matches the default past pattern and some argument
/// matches `past_key_values.{i}.decoder.{kv}`. applyKVCache and
/// hasPastInputs resolve with it; patterns set by the user (--kv-past,
/// --kv-present) are kept.
QuenchKVCacheOptions resolveKVCacheNames(mlir::func::FuncOp func,
                                         const QuenchKVCacheOptions &options);

/// Adds the patterns of `quench-raise-ops` to `patterns`.
void populateRaiseOpsPatterns(mlir::RewritePatternSet &patterns);

/// Adds the patterns of `quench-fold-qdq` to `patterns`.
void populateFoldQDQPatterns(mlir::RewritePatternSet &patterns);

/// Weight quantization as drivers run it: the options of
/// quench-quantize-weights (generated from Passes.td, the one definition
/// of every quantization option) plus the calibration results, which
/// cannot travel as pass options.
class Communicator;

struct WeightQuantOptions : public QuenchQuantizeWeightsOptions {
  WeightQuantOptions() = default;
  WeightQuantOptions(const QuenchQuantizeWeightsOptions &options)
      : QuenchQuantizeWeightsOptions(options) {}

  /// Calibration results, looked up by layer name (the linear's name, see
  /// LayerQuantRecord::name). Drivers fill these from lib/Calibration.
  /// The symmetric range (max |x|, after the range estimator) of a layer's
  /// input; std::nullopt when the layer was not observed. Unset: the
  /// `static-input-range` option, if any, applies to every layer.
  std::function<std::optional<float>(llvm::StringRef layer)> inputRange;
  /// Per input channel j of a layer, max |x_j| over the calibration rows
  /// (after SmoothQuant's migration, when it ran), or std::nullopt when
  /// the layer was not observed: outlier splitting's statistics. Unset:
  /// the `test-channel-max` option, if any, applies.
  std::function<std::optional<std::vector<float>>(llvm::StringRef layer)>
      inputChannelMax;
  /// The Gram matrix X^T X (row-major [K, K], summed over every calibration
  /// row) of a layer's input, or nullptr when not observed; an error when
  /// it cannot be read. Asked once per layer, when that layer is quantized:
  /// the matrix may be read from disk for the call, and is dropped once the
  /// layer is done (only one layer's matrix is alive at a time).
  std::function<llvm::Expected<std::shared_ptr<const std::vector<double>>>(
      llvm::StringRef layer)>
      inputGram;
  /// Whether inputGram has a matrix for the layer, without reading it (to
  /// name every layer that lacks one before quantizing any). Unset:
  /// inputGram is asked.
  std::function<bool(llvm::StringRef layer)> hasInputGram;
  /// The per-channel mean |x| over the calibration rows of a layer's input
  /// (AWQ's scale search), or std::nullopt when not observed.
  std::function<std::optional<std::vector<float>>(llvm::StringRef layer)>
      inputMeanAbs;
  /// Progress of GPTQ on stderr: layer i of N with an ETA, and the total
  /// time.
  bool progress = false;
  /// The processes that quantize together (null: this one alone): the
  /// layers are split among them by estimated work and their codes
  /// streamed to rank 0, which alone rewrites the module; on the other
  /// ranks the module is left as it was (they stop after this stage).
  /// Every process must run the pass on the same module and options.
  Communicator *comm = nullptr;
};

/// What weight quantization did to one layer (a quench.linear).
struct LayerQuantRecord {
  std::string name;   ///< layer name (ONNX node name)
  int64_t outFeatures = 0, inFeatures = 0;
  std::string scheme; ///< e.g. "int4 g32 sym f16", or "float (excluded)"
  int64_t bytesBefore = 0; ///< float weight bytes
  int64_t bytesAfter = 0;  ///< codes + scales + zero points (or unchanged)
  bool floatKept = false;  ///< the float weight is still used elsewhere
  /// An embedding table (a quench.gather lookup), not a linear layer: size
  /// reports total it separately.
  bool embedding = false;
};

/// The name of a layer (a quench.linear) as quantization reports, recipes
/// and calibration name it: the first name in its location (the ONNX node
/// name for imported models), else its printed location.
std::string getLayerName(mlir::Location loc);

/// Quantizes the constant weights of every quench.linear in `module` (see
/// quench-quantize-weights). Appends one record per linear with a constant
/// weight to `report` when given. Fails with a diagnostic on bad options,
/// an unreadable or malformed recipe, or layers rounded by GPTQ (algo
/// "gptq", globally or in the recipe) without a
/// Gram matrix from `inputGram` (all named in one error), a Gram matrix of
/// the wrong size or one that is not positive definite; the module is
/// unchanged then.
mlir::LogicalResult quantizeWeights(mlir::ModuleOp module,
                                    const WeightQuantOptions &options,
                                    std::vector<LayerQuantRecord> *report);

/// quench-quantize-weights with calibration results: the pass the
/// `quantize` stage of the front pipeline runs. Appends one record per
/// linear with a constant weight to `*report` when given (it must outlive
/// the pass run).
std::unique_ptr<mlir::Pass>
createQuenchQuantizeWeights(WeightQuantOptions options,
                            std::vector<LayerQuantRecord> *report);

/// The attribute quench-prune-weights puts on a pruned quench.linear: its
/// pattern and method, e.g. "2:4 magnitude".
inline constexpr llvm::StringLiteral kSparsityAttrName = "quench.sparsity";

/// Pruning as drivers run it: the options of quench-prune-weights plus the
/// calibration Gram matrices SparseGPT needs (as WeightQuantOptions').
struct PruneOptions : public QuenchPruneWeightsOptions {
  PruneOptions() = default;
  PruneOptions(const QuenchPruneWeightsOptions &options)
      : QuenchPruneWeightsOptions(options) {}
  /// See WeightQuantOptions::inputGram and hasInputGram.
  std::function<llvm::Expected<std::shared_ptr<const std::vector<double>>>(
      llvm::StringRef layer)>
      inputGram;
  std::function<bool(llvm::StringRef layer)> hasInputGram;
  /// Progress lines on stderr for long runs (quench/Support/Progress.h).
  bool progress = false;
};

/// What pruning did to one layer.
struct LayerPruneRecord {
  std::string name; ///< layer name, as LayerQuantRecord::name
  int64_t outFeatures = 0, inFeatures = 0;
  int64_t bytes = 0;    ///< bytes of the weight as stored (dense)
  std::string sparsity; ///< e.g. "2:4 sparsegpt", or "dense (output head)"
  double density = 1.0; ///< fraction of nonzero weights after pruning
};

/// Prunes the constant weights of the quench.linear ops of `module` (see
/// quench-prune-weights), appending one record per linear with a constant
/// weight to `report` when given. Fails with one diagnostic (the module
/// unchanged) on bad options or recipe, or SparseGPT layers without a Gram
/// matrix (all named); layers are rewritten one at a time (one layer's
/// floats in memory), so a SparseGPT failure on a bad Gram matrix fails
/// with the earlier layers pruned.
mlir::LogicalResult pruneWeights(mlir::ModuleOp module,
                                 const PruneOptions &options,
                                 std::vector<LayerPruneRecord> *report);

/// quench-prune-weights with calibration results (the `prune` stage of the
/// front pipeline); `report` as pruneWeights' (it must outlive the run).
std::unique_ptr<mlir::Pass>
createQuenchPruneWeights(PruneOptions options,
                         std::vector<LayerPruneRecord> *report);

/// Whether `op` is the output projection (the head): a linear whose result
/// the function returns, possibly through reshapes; quantization
/// (quantize-head) and pruning (prune-head) leave it alone by option.
bool isOutputProjection(mlir::Operation *op);

/// For each of `layers`, the "sparsity" the recipe at `path` gives it (the
/// first rule matching the name, else the recipe's "default"), or
/// std::nullopt when it gives none. Fails with a diagnostic at `loc` on an
/// unreadable or malformed recipe (the checks of quench-quantize-weights).
mlir::LogicalResult
readRecipeSparsity(llvm::StringRef path, mlir::Location loc,
                   llvm::ArrayRef<std::string> layers,
                   std::vector<std::optional<std::string>> &out);

#define GEN_PASS_REGISTRATION
#include "quench/Dialect/Quench/Transforms/Passes.h.inc"

} // namespace quench

#endif // QUENCH_DIALECT_QUENCH_TRANSFORMS_PASSES_H
