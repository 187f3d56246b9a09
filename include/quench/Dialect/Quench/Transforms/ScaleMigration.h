//===- ScaleMigration.h - per-channel scales between ops --------*- C++ -*-===//
//
// Scale migration, the IR half of SmoothQuant and AWQ: the linears that
// read one input x form a group; x_j -> x_j / s_j is folded into the op
// that produces x (a norm's scale and bias, a linear's output rows) and
// every linear's weight column j is multiplied by s_j, so that the float
// model computes the same function. The numerics that choose s live in
// lib/Quant (Smooth.h); quench-smooth (Smooth.cpp) runs them on calibration
// statistics. docs/quantization.md, "SmoothQuant".
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_DIALECT_QUENCH_TRANSFORMS_SCALEMIGRATION_H
#define QUENCH_DIALECT_QUENCH_TRANSFORMS_SCALEMIGRATION_H

#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"
#include "quench/Quant/Smooth.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/SmallVector.h"

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace quench {

/// The linears that read one input, and where a per-channel scale of that
/// input can be folded.
struct ScaleGroup {
  /// The shared input x (its last dimension has `channels` channels).
  mlir::Value input;
  int64_t channels = 0;
  /// Every quench.linear reading x, in program order, and their layer
  /// names (getLayerName).
  llvm::SmallVector<LinearOp> linears;
  std::vector<std::string> names;
  /// The op whose parameters absorb 1 / s (a rms_norm, layer_norm or
  /// linear); null when x cannot be rescaled, see `reason`.
  mlir::Operation *absorber = nullptr;
  /// Why the group cannot migrate scales (absorber null), e.g. "input also
  /// read by quench.add".
  std::string reason;
};

/// Every group of linears sharing an input, in program order of their
/// first linear. A group migrates (absorber set) when x is f32, every user
/// of x is a linear reading it as its input with a constant f32 weight
/// (itself or through a 2-D transpose), and x's producer is
///   * a rms_norm / layer_norm over the last axis with a constant f32
///     scale (and bias) of `channels` elements;
///   * a linear with a constant f32 weight (and constant f32 bias, if any);
///   * a mul of two tensors of the result's shape, one of them the output
///     of such a linear that nothing else reads (its rows absorb 1 / s).
std::vector<ScaleGroup> findScaleGroups(mlir::ModuleOp module);

/// The weight of `op` as row-major f32 [N, K] (read through a transpose of
/// a stored [K, N] constant), or std::nullopt unless it is a readable f32
/// constant.
std::optional<std::vector<float>> readLinearWeight(LinearOp op);

/// Replaces the weight of `op` (one readLinearWeight reads) by `w`,
/// row-major f32 [n, k] (the linear's layout), keeping a weight stored
/// [K, N] behind a transpose in that form (quench-raise-ops'); the new
/// constant is named after the old one with `suffix`, and the old one is
/// erased once unused.
void replaceLinearWeight(LinearOp op, std::vector<float> w, int64_t n,
                         int64_t k, llvm::StringRef suffix = "_scaled");

/// Whether readLinearWeight can read `op`'s weight (checked without
/// copying it).
bool hasF32LinearWeight(LinearOp op);

/// The f32 constant defining `v` if it has `elements` values that
/// readFloatWeights can read, else null.
ConstantOp getF32Constant(mlir::Value v, int64_t elements);

/// Replaces operand `index` of `user`, an f32 constant, by a new f32
/// constant of the same type holding `values` (named after the old one);
/// the old constant is erased once unused (a constant shared with other
/// ops stays for them: a tied embedding table is untied).
void replaceF32Operand(mlir::Operation *user, unsigned index,
                       llvm::ArrayRef<float> values);

/// Applies x -> x / s to a group with an absorber (s has `channels`
/// positive finite values): the absorber's per-channel parameters are
/// divided by s, column j of every linear's weight multiplied by s_j. New
/// constants replace the old ones, which are erased once unused (a constant
/// shared with other ops, such as a tied embedding table, stays for them).
void migrateScales(const ScaleGroup &group, llvm::ArrayRef<float> scales);

/// quench-smooth as drivers run it: the pass options plus calibration.
struct SmoothOptions : public QuenchSmoothOptions {
  SmoothOptions() = default;
  SmoothOptions(const QuenchSmoothOptions &options)
      : QuenchSmoothOptions(options) {}
  /// The calibrated statistics of a layer's input (per-channel max |x|;
  /// with `withSquares`, also the sums of squares and the row count that
  /// `auto-alpha` needs), or std::nullopt when the layer was not observed
  /// (or, with `withSquares`, has no Gram matrix). Unset: `testActMax`, if
  /// positive, applies to every channel (as max |x|, with sums of squares
  /// of a uniform distribution over one row).
  std::function<std::optional<quant::SmoothInputStats>(llvm::StringRef layer,
                                                       bool withSquares)>
      inputStats;
};

/// What quench-smooth did to one group.
struct SmoothRecord {
  std::vector<std::string> layers;
  /// The migration scales s (x became x / s); empty when the group was
  /// left as it is.
  std::vector<float> scales;
  /// The alpha they were computed with (-1: auto-alpha found no migration
  /// better; the scales are then empty).
  double alpha = -1;
  /// Why the group was left as it is.
  std::string skipped;
};

/// Runs quench-smooth on `module` (Passes.td). Appends one record per group
/// to `report` when given. Fails with one error (the module unchanged) for
/// an alpha outside [0, 1] or layers of migratable groups without
/// statistics (all named); emits one remark naming the layers left as they
/// are.
mlir::LogicalResult smoothLinears(mlir::ModuleOp module,
                                  const SmoothOptions &options,
                                  std::vector<SmoothRecord> *report);

/// quench-smooth with calibration statistics (and a report, which must
/// outlive the pass run, or nullptr).
std::unique_ptr<mlir::Pass>
createQuenchSmooth(SmoothOptions options, std::vector<SmoothRecord> *report);

} // namespace quench

#endif // QUENCH_DIALECT_QUENCH_TRANSFORMS_SCALEMIGRATION_H
