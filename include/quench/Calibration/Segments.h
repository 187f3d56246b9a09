//===- Segments.h - split a model for block-by-block calibration -*- C++ -*-===//
//
// Calibration of a large model runs it one segment at a time: consecutive
// ops of the model function, cut where few values are live (between the
// layers of a transformer: the residual stream), so that only one
// segment's code, weights and statistics are alive at a time, and between
// segments only the values that cross the cut (docs/calibration.md).
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_CALIBRATION_SEGMENTS_H
#define QUENCH_CALIBRATION_SEGMENTS_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Value.h"
#include "llvm/ADT/DenseMap.h"

#include <cstdint>
#include <vector>

namespace mlir::func {
class FuncOp;
} // namespace mlir::func

namespace quench::calib {

/// A run of consecutive ops of a model function's body.
struct Segment {
  /// The ops, in body order. Ops without operands, regions or side effects
  /// (constants, weights) are in no segment: each segment copies those it
  /// uses.
  std::vector<mlir::Operation *> ops;
  /// Values defined before the segment (function arguments, results of
  /// earlier segments) that its ops use.
  std::vector<mlir::Value> inputs;
  /// Values the segment defines that later segments use. The function's own
  /// results are not kept: calibration does not need them.
  std::vector<mlir::Value> outputs;
  /// quench.linear ops among `ops`.
  int64_t linears = 0;
  /// Estimated memory of the segment: the bytes of the constants its ops
  /// read plus, with Gram matrices, K*K doubles per linear input.
  uint64_t bytes = 0;
};

/// Splits the body of `func` into consecutive segments. A cut may fall
/// between two ops where every value live across it is a tensor the
/// runtime can hold (Model ABI dtypes, rank <= 8), with linears on both
/// sides; only cuts with the fewest live values are used (for a
/// transformer, the residual stream between attention and FFN blocks).
/// The pieces between those cuts are grouped greedily, in order, while a
/// segment's `bytes` stay within `maxBytes` (a piece larger than that is a
/// segment of its own); `maxBytes` 0 gives one segment. A function that
/// cannot be cut is one segment. `gram` says whether Gram matrices count.
std::vector<Segment> partitionForCalibration(mlir::func::FuncOp func,
                                             uint64_t maxBytes, bool gram);

/// A copy of `module` in which function `func` (of `module`) is replaced
/// by `segment` under the same name: the segment's inputs are its
/// arguments, its outputs its results, with the constants it uses copied
/// in. `origin` receives, for every argument and op result of the new
/// function, the value of `func` it copies.
mlir::OwningOpRef<mlir::ModuleOp>
buildSegmentModule(mlir::ModuleOp module, mlir::func::FuncOp func,
                   const Segment &segment,
                   llvm::DenseMap<mlir::Value, mlir::Value> &origin);

} // namespace quench::calib

#endif // QUENCH_CALIBRATION_SEGMENTS_H
