//===- Passes.h - quench dialect passes -------------------------*- C++ -*-===//
//
// Declarations and registration of the quench dialect's passes.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_DIALECT_QUENCH_TRANSFORMS_PASSES_H
#define QUENCH_DIALECT_QUENCH_TRANSFORMS_PASSES_H

#include "mlir/Pass/Pass.h"
#include "quench/Dialect/Quench/IR/QuenchDialect.h"
#include "mlir/IR/BuiltinOps.h"

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace quench {

#define GEN_PASS_DECL
#include "quench/Dialect/Quench/Transforms/Passes.h.inc"

/// Adds the patterns of `quench-raise-ops` to `patterns`.
void populateRaiseOpsPatterns(mlir::RewritePatternSet &patterns);

/// Adds the patterns of `quench-fold-qdq` to `patterns`.
void populateFoldQDQPatterns(mlir::RewritePatternSet &patterns);

/// Options of weight quantization (the pass options of
/// quench-quantize-weights, as a struct for drivers).
struct WeightQuantOptions {
  unsigned bits = 8;
  int64_t groupSize = 0; ///< 0: one group per output channel
  bool symmetric = true;
  std::string scaleType = "f16"; ///< "f16" or "f32"
  bool quantizeHead = true;
  /// Also quantize embedding tables (a gather on axis 0 of a constant f32
  /// [V, D] table): int8 codes per row, symmetric, f32 row scales,
  /// dequantized after the lookup.
  bool quantizeEmbeddings = false;
  std::vector<std::string> exclude; ///< glob patterns of layer names
  std::string recipe;               ///< JSON recipe file, or empty

  /// Weight rounding algorithm: "rtn" (round to nearest) or "gptq"
  /// (error compensation with the input Gram matrix of each layer; needs
  /// `inputGram`).
  std::string algo = "rtn";
  /// GPTQ: quantize the inputs in order of decreasing energy (H[k, k]);
  /// the groups stay contiguous, so this costs nothing at run time.
  bool gptqActOrder = true;
  /// GPTQ: dampening added to H's diagonal, as a fraction of its mean.
  double gptqDampening = 0.01;
  /// Threads of the GPTQ numerics (0: the hardware concurrency); the
  /// result does not depend on it.
  unsigned threads = 0;

  /// Activation quantization of the quantized linears: "none" (W*A16:
  /// float activations), "static" (W8A8 with a per-tensor input scale from
  /// calibration: needs `inputRange`), "dynamic" (W8A8 with per-token input
  /// scales computed at run time). Only with bits == 8.
  std::string activations = "none";

  /// Calibration results, looked up by layer name (the linear's name, see
  /// LayerQuantRecord::name). Drivers fill these from lib/Calibration.
  /// The symmetric range (max |x|, after the range estimator) of a layer's
  /// input; std::nullopt when the layer was not observed.
  std::function<std::optional<float>(llvm::StringRef layer)> inputRange;
  /// The Gram matrix X^T X (row-major [K, K], summed over every calibration
  /// row) of a layer's input, or nullptr when not observed.
  std::function<const std::vector<double> *(llvm::StringRef layer)>
      inputGram;
};

/// What weight quantization did to one layer (a quench.linear).
struct LayerQuantRecord {
  std::string name;   ///< layer name (ONNX node name)
  int64_t outFeatures = 0, inFeatures = 0;
  std::string scheme; ///< e.g. "int4 g32 sym f16", or "float (excluded)"
  int64_t bytesBefore = 0; ///< float weight bytes
  int64_t bytesAfter = 0;  ///< codes + scales + zero points (or unchanged)
  bool floatKept = false;  ///< the float weight is still used elsewhere
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

#define GEN_PASS_REGISTRATION
#include "quench/Dialect/Quench/Transforms/Passes.h.inc"

} // namespace quench

#endif // QUENCH_DIALECT_QUENCH_TRANSFORMS_PASSES_H
