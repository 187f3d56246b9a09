//===- CPUCodegen.h - CPU tiling/vectorization passes (private) -*- C++ -*-===//
//
// The passes behind the `codegen` and `to-llvm` stages of
// quench-cpu-pipeline. They are pipeline internals (built only by
// getCPUPipelineStages), so they are not in a Passes.td.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_LIB_PIPELINES_CPUCODEGEN_H
#define QUENCH_LIB_PIPELINES_CPUCODEGEN_H

#include "quench/Pipelines/Pipelines.h"

#include "mlir/Pass/Pass.h"

#include "mlir/Dialect/Linalg/IR/LinalgInterfaces.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LLVM.h"

namespace mlir {
class RewriterBase;
namespace func {
class FuncOp;
}
} // namespace mlir

#include <memory>

namespace quench {

/// Fuses elementwise producers into their linalg consumers when that
/// recomputes nothing: the consumer must read the producer's result through
/// a permutation map (every element once). Fusing into a contraction or a
/// broadcasting consumer would recompute the producer (a GELU, an exp) once
/// per reduction step or broadcast copy.
std::unique_ptr<mlir::Pass> createCPUFuseElementwisePass();

/// Tiles every linalg op of a function on tensors (outermost parallel tiles
/// as scf.forall, then scf.for down to register/vector tiles, peeling
/// partial tiles) and vectorizes the tiles; ops it cannot vectorize stay
/// linalg (loops later). `vectorBits` is the SIMD register width.
std::unique_ptr<mlir::Pass> createCPUTileAndVectorizePass(unsigned vectorBits);

/// Lowers the vector dialect the codegen stage produced to 1-D vector ops
/// that convert-vector-to-llvm maps onto SIMD instructions: masks,
/// contractions (outer products → FMAs), multi-reductions, transposes,
/// n-D transfers.
std::unique_ptr<mlir::Pass> createCPUVectorLoweringPass();

/// Gives every user of a constant-initialized tensor (a linalg.fill or a
/// vectorized fill of a tensor.empty) its own initializing op, so that
/// one-shot bufferization does not copy a shared fill for each consumer.
void unshareInitTensors(mlir::func::FuncOp func, mlir::RewriterBase &rw);
/// Rewrites contractions whose right-hand side is stored [N, K] (reduction
/// dim innermost) to read it as [K, N]: a compile-time transposed copy of a
/// constant, or a linalg.transpose of a computed operand when M is static
/// and at least 4. The outer-product kernel then needs no horizontal sums.
void pretransposeRhs(mlir::func::FuncOp func, mlir::RewriterBase &rw);
/// `quench-cpu-pretranspose-rhs`: pretransposeRhs on each function.
std::unique_ptr<mlir::Pass> createCPUPretransposeRhsPass();
/// `quench-cpu-unshare-inits`: unshareInitTensors on each function (run
/// right before bufferization, after the last CSE).
std::unique_ptr<mlir::Pass> createCPUUnshareInitsPass();

/// Replaces the fused dequantizing matmul of quench.matmul_nbits (the
/// linalg.generic marked `quench.dequant_matmul`, fast form) by the CPU
/// kernel of DequantMatmul.cpp: scf.forall tasks of output features,
/// register tiles of partial sums per quantization group, vector ops on
/// tensors, and (with zero points) a linalg reduction for the group sums
/// of x, left to createCPUTileAndVectorizePass. With `codeLookup` (the
/// target has AVX-512F) and 16 lanes, 4- and 2-bit codes are converted by
/// a table lookup (a call of the vpermps intrinsic, which the caller
/// declares; `*usedLookup` says whether it did). Fails, changing nothing,
/// on any other op or when `vectorBits` is below 128.
mlir::LogicalResult buildDequantMatmulKernel(mlir::RewriterBase &rw,
                                             mlir::linalg::LinalgOp op,
                                             unsigned vectorBits,
                                             bool codeLookup,
                                             bool *usedLookup = nullptr);
/// `quench-cpu-dequant-matmul`: buildDequantMatmulKernel on every fused
/// dequantizing matmul of the module (runs before
/// createCPUTileAndVectorizePass, which handles the others); declares the
/// vpermps intrinsic when a kernel uses it.
std::unique_ptr<mlir::Pass> createCPUDequantMatmulPass(unsigned vectorBits,
                                                       bool codeLookup);

/// `quench-expand-shape-to-cast`: rewrites memref.expand_shape ops with
/// two or more dynamic sizes in one reassociation group (which MLIR 22's
/// expand-strided-metadata crashes on) into memref.reinterpret_cast of the
/// source's strided metadata. Runs in the to-llvm stage before
/// expand-strided-metadata.
std::unique_ptr<mlir::Pass> createExpandShapeToCastPass();

/// `quench-cpu-full-rank-writes`: gives vector.transfer_write ops on
/// tensors at all-zero indices the destination's rank (a unit-dim
/// shape_cast), because MLIR 22's bufferization takes a lower-rank write at
/// the origin for a full overwrite when the destination's leading dims are
/// small (FullRankWrites.cpp). Runs right before one-shot-bufferize.
std::unique_ptr<mlir::Pass> createFullRankWritesPass();

/// `quench-cpu-forward-subvectors`: a vector.transfer_read of part of what a
/// vector.transfer_write just wrote (directly or through a static slice,
/// static in-bounds indices, no masks) becomes a
/// vector.extract_strided_slice of the written vector. Runs after
/// loop-invariant-subset-hoisting, when a fused contraction's accumulators
/// are the K loop's vector results: its epilogue then reads them row by
/// row from registers.
std::unique_ptr<mlir::Pass> createCPUForwardSubvectorsPass();

/// Marks a linalg op built already tiled (the int8 kernel's fused
/// epilogue rows): createCPUTileAndVectorizePass does not tile it and
/// vectorizes it with these vector sizes (a DenseI64ArrayAttr).
inline constexpr char kPreTiledVectorSizesAttr[] = "__quench_vector_sizes";

/// Replaces every int8 x int8 -> int32 contraction with a constant
/// right-hand side (quench.qlinear's `acc + extsi(q) * extsi(w)`, rows x K
/// times K x N or N x K) by the CPU kernel of Int8Matmul.cpp: weights
/// re-laid out at compile time in panels of K groups interleaved per
/// output column, `vpmaddwd` or `vpdpbusd` on broadcast activation groups
/// (calls of the LLVM intrinsics, declared in the module), scf.forall tasks
/// of output columns. A product whose only user is an elementwise
/// generic (rescale, bias, activation, requantization) computes that
/// generic in its register tiles instead (no i32 product tensor). The
/// elementwise generics that prepare the activations (i16, or u8 = q +
/// 128) and apply the fused epilogue to each tile row are left to
/// createCPUTileAndVectorizePass. Does nothing for Int8DotProduct::None or
/// a `vectorBits` other than 256 and 512. Results are bit-identical to the
/// generic contraction's (i32 wrap-around). A module pass: it declares the
/// intrinsics.
std::unique_ptr<mlir::Pass> createCPUInt8MatmulPass(unsigned vectorBits,
                                                    Int8DotProduct int8Dot);

/// One task of buildColumnTasks: output columns [colBase, colBase + width)
/// of all `rows` rows; `slice` is that part of the shared output tensor.
struct ColumnTask {
  mlir::Value index, colBase, width, rows, slice;
};
/// Builds the task's computation at the builder's insertion point (inside
/// the scf.forall); returns the updated `slice`.
using ColumnTaskBody =
    llvm::function_ref<mlir::Value(mlir::OpBuilder &, const ColumnTask &)>;
/// The explicit kernels' parallel structure: `out` ([rows, n]) as the
/// shared output of an scf.forall over ceil(n / taskCols) tasks of
/// `taskCols` output columns (the last one narrower), each built by `body`
/// on its extract_slice and written back with parallel_insert_slice.
/// Returns the forall's result; the rewriter's insertion point is kept.
mlir::Value buildColumnTasks(mlir::RewriterBase &rw, mlir::Location loc,
                             mlir::Value out, int64_t n, int64_t taskCols,
                             ColumnTaskBody body);

/// Declares the LLVM intrinsic `name` of `type` in `module` unless it is
/// there: a private func.func named like the intrinsic (LLVM IR takes a
/// function named `llvm.*` for the intrinsic), called with func.call. A
/// call, unlike llvm.call_intrinsic, is accepted by the buffer deallocation
/// pass, which rejects ops of unknown memory effects.
void declareIntrinsic(mlir::ModuleOp module, llvm::StringRef name,
                      mlir::FunctionType type);

/// True when `body` (a linalg body: two inputs and an accumulator of
/// integer type `et`) is exactly `out + extsi(a) * extsi(b)` with the
/// sign extensions to `et` of the two inputs, in either order.
bool isWideningIntMulAdd(mlir::Block &body, mlir::Type et);

/// Registers the codegen passes that can run on their own in quench-opt
/// (quench-cpu-fuse-elementwise, -pretranspose-rhs, -unshare-inits,
/// -forward-subvectors, -full-rank-writes, quench-expand-shape-to-cast).
void registerCPUCodegenPasses();

} // namespace quench

#endif // QUENCH_LIB_PIPELINES_CPUCODEGEN_H
