//===- KernelUtils.h - helpers of the CPU codegen (private) -----*- C++ -*-===//
//
// What the passes of lib/Codegen/CPU share and nothing outside needs: the
// parallel structure and intrinsic declarations of the explicit kernels
// (Int8Matmul.cpp, DequantMatmul.cpp; implemented in KernelUtils.cpp), the
// body matcher the int8 kernel and the tile pass agree on, and the mark by
// which the int8 kernel hands pre-tiled ops to the tile pass.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_LIB_CODEGEN_CPU_KERNELUTILS_H
#define QUENCH_LIB_CODEGEN_CPU_KERNELUTILS_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Support/LLVM.h"
#include "llvm/ADT/STLFunctionalExtras.h"

namespace quench {

/// Marks a linalg op built already tiled (the int8 kernel's fused
/// epilogue rows): quench-cpu-tile-and-vectorize does not tile it and
/// vectorizes it with these vector sizes (a DenseI64ArrayAttr).
inline constexpr char kPreTiledVectorSizesAttr[] = "__quench_vector_sizes";

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

/// The kernels' result `res` ([rows, n], rows the flattened leading
/// dimensions of the op's result) back in the op's result `type` with `nb`
/// leading dimensions: 0 collapses [1, n] to [n], 1 keeps it, more expand
/// the rows with the sizes of `like` (a tensor of `type`'s shape).
mlir::Value restoreLeadingDims(mlir::OpBuilder &b, mlir::Location loc,
                               mlir::Value res, mlir::Type type, unsigned nb,
                               mlir::Value like);

/// `a + c` on indices (`a` itself for c = 0), built at `b`.
mlir::Value addIndex(mlir::OpBuilder &b, mlir::Location loc, mlir::Value a,
                     int64_t c);
/// A vector.transfer_read of `type` from `src` at `at`, padded with zeros,
/// with `inBounds` for its one vector dimension: the explicit kernels'
/// load of a weight, activation or output vector.
mlir::Value readVector(mlir::OpBuilder &b, mlir::Location loc,
                       mlir::VectorType type, mlir::Value src,
                       mlir::ValueRange at, bool inBounds);

/// A constant vector of `type` (i32 elements) with `v` in every lane.
mlir::Value splatI32(mlir::OpBuilder &b, mlir::Location loc,
                     mlir::VectorType type, int32_t v);
/// The four i8 of `src` at `at` (the last index runs over bytes) as one i32
/// in every lane of a vector of `lanes` i32, viewed as `4 * lanes` bytes:
/// the broadcast activation operand of vpdpbusd (a vpbroadcastd from
/// memory).
mlir::Value broadcastByteWord(mlir::OpBuilder &b, mlir::Location loc,
                              mlir::Value src, mlir::ValueRange at,
                              int64_t lanes);
/// `acc` plus the four-way u8 x s8 dot products of `u8` and `s8` per i32
/// lane, by the VNNI intrinsic `intrinsic` (vpdpbusd of 256 or 512 bits,
/// declared with declareIntrinsic); `acc`'s type is the result's.
mlir::Value callDotBytes(mlir::OpBuilder &b, mlir::Location loc,
                         llvm::StringRef intrinsic, mlir::Value acc,
                         mlir::Value u8, mlir::Value s8);

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

} // namespace quench

#endif // QUENCH_LIB_CODEGEN_CPU_KERNELUTILS_H
