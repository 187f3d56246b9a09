//===- RuntimeChecks.h - run-time checks in generated code -------*- C++ -*-===//
//
// The one way generated code ends a run with an error message: the lowering
// to linalg (extents, indices, divisors) and the buffer-size checks of
// quench-check-buffer-sizes emit their checks with emitRuntimeCheck.
// docs/reliability.md lists the checks.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_CONVERSION_RUNTIMECHECKS_H
#define QUENCH_CONVERSION_RUNTIMECHECKS_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/Location.h"
#include "mlir/IR/Value.h"

#include <string>

namespace quench {

/// Name of the runtime function that reports a failed check with values
/// (runtime_abi.h).
inline constexpr llvm::StringLiteral kCheckFailedValuesFnName =
    "quench_rt_check_failed_values";

/// How run-time check messages name the op at `loc`: "node 'NAME'" for the
/// first name in it (the ONNX node), else `fallback`.
std::string describeNode(mlir::Location loc, llvm::StringRef fallback);

/// A run-time check at the builder's point: when `ok` (i1) is false the run
/// ends with `message` as its error (docs/reliability.md). Without `values`
/// a `cf.assert` (convert-assert-to-quench-runtime lowers it); with one or
/// two integer or index values an `scf.if` that calls the runtime's
/// `quench_rt_check_failed_values(message, v0, v1)`, which formats `{0}` and
/// `{1}` in the message as the values (runtime_abi.h). Emit checks outside
/// parallel-loop bodies where possible (once, not per chunk); one that
/// fails in a chunk ends the run too (the thread pool hands the failure to
/// the loop's caller).
void emitRuntimeCheck(mlir::OpBuilder &b, mlir::Location loc, mlir::Value ok,
                      llvm::StringRef message, mlir::ValueRange values = {});

} // namespace quench

#endif // QUENCH_CONVERSION_RUNTIMECHECKS_H
