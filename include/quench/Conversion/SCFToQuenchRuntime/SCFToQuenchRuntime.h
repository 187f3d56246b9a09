//===- SCFToQuenchRuntime.h - parallel loops on the pool --------*- C++ -*-===//
//
// Outlining of `scf.forall`/`scf.parallel` loops on buffers into functions
// that the Quench runtime's `quench_parallel_for` runs on the thread pool of
// the current model run (the `convert-scf-to-quench-runtime` pass).
// docs/lowering.md ("Threading") explains the design.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_CONVERSION_SCFTOQUENCHRUNTIME_SCFTOQUENCHRUNTIME_H
#define QUENCH_CONVERSION_SCFTOQUENCHRUNTIME_SCFTOQUENCHRUNTIME_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/SymbolTable.h"

#include <string>

namespace mlir {
class LLVMTypeConverter;
} // namespace mlir

namespace quench {

/// Unit attribute on the functions the conversion outlines. Their loops are
/// never parallelized again (loops nested in a parallel loop stay
/// sequential, also when the pass runs twice).
inline constexpr llvm::StringLiteral kParallelBodyAttrName =
    "quench.parallel_body";

/// Runtime entry points the generated code calls (runtime/include/quench/
/// runtime_abi.h).
inline constexpr llvm::StringLiteral kCurrentThreadpoolFnName =
    "quench_current_threadpool";
inline constexpr llvm::StringLiteral kParallelForWorkFnName =
    "quench_parallel_for_work";

/// Why `loop` (an `scf.forall` or `scf.parallel`) cannot run on the thread
/// pool, or an empty string when it can. `converter` decides which captured
/// values can travel through the context struct.
std::string
getRuntimeParallelLoopMismatch(mlir::Operation *loop,
                               const mlir::LLVMTypeConverter &converter);

/// Static estimate of the operations one iteration of `body` executes:
/// nested loops multiply their body by the trip count (bounded from a
/// constant upper bound of a tile-size `affine.min`/`affine.apply`/`minsi`
/// upper bound; `unknownTripCount` when there is none), vector ops count one
/// per 8 elements. A loop's
/// work (trip count times this) decides whether it runs on the pool: at
/// compile time for constant trip counts (`min-parallel-work`), at run time
/// in `quench_parallel_for_work`.
int64_t estimateParallelIterationCost(mlir::Block &body,
                                      int64_t unknownTripCount = 256);

/// Replaces `loop` (for which getRuntimeParallelLoopMismatch returned an
/// empty string) with a call to `quench_parallel_for` and returns the
/// outlined body function (private, internal linkage, a unique name derived
/// from the enclosing function, inserted into `symbols`), or a null function
/// when the loop has a constant trip count of 0 and was only erased. `cost`
/// (estimateParallelIterationCost) is passed to `quench_parallel_for_work`,
/// which picks the chunks at run time. Declares the runtime
/// functions in `symbols` when they are missing; fails (with a diagnostic)
/// when a symbol of that name with another type exists.
mlir::FailureOr<mlir::func::FuncOp> convertParallelLoopToRuntimeCall(
    mlir::RewriterBase &rewriter, mlir::Operation *loop,
    mlir::SymbolTable &symbols, const mlir::LLVMTypeConverter &converter,
    int64_t cost);

} // namespace quench

#endif // QUENCH_CONVERSION_SCFTOQUENCHRUNTIME_SCFTOQUENCHRUNTIME_H
