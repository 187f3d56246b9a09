//===- QuenchSparseOps.h - ops of compressed sparse weights -----*- C++ -*-===//
//
// quench.sparse_linear (a linear layer with an N:M weight in compressed
// storage, docs/sparsity.md) and the mark by which its lowering hands the
// CPU codegen its generic.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_DIALECT_QUENCH_IR_QUENCHSPARSEOPS_H
#define QUENCH_DIALECT_QUENCH_IR_QUENCHSPARSEOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "quench/Dialect/Quench/IR/QuenchDialect.h"

#define GET_OP_CLASSES
#include "quench/Dialect/Quench/IR/QuenchSparseOps.h.inc"

namespace quench {

/// `quench.sparse_matmul` (a UnitAttr) on the `linalg.generic` that
/// convert-quench-to-linalg makes of a `quench.sparse_linear`: the CPU
/// codegen replaces it by its sparse kernel.
inline constexpr llvm::StringLiteral kSparseMatmulAttrName =
    "quench.sparse_matmul";

/// `quench.sparse_value_bits = 4` on that generic when the op's values were
/// 4-bit codes (`value_bits = 4`): the generic reads them unpacked (one
/// signed i8 per slot, -8 .. 7), the CPU kernel stores them two per byte
/// again in its panels.
inline constexpr llvm::StringLiteral kSparseValueBitsAttrName =
    "quench.sparse_value_bits";

/// `quench.sparse_storage = "bitmask"` on a `quench.matmul_nbits` with 8-bit
/// symmetric codes of an unstructured pruned layer
/// (quench-pack-sparse-weights), carried by its lowering onto the
/// dequantizing generic: the CPU kernel stores the codes as masks plus
/// the kept bytes and expands them in registers (docs/sparsity.md,
/// "Unstructured storage").
inline constexpr llvm::StringLiteral kSparseStorageAttrName =
    "quench.sparse_storage";

/// The indexing maps of that generic, whose loops are (batch..., n, g, j,
/// t) (g the group, j the slot, t the column in the group): x (batch...,
/// g, t) as [..., G, group], values and indices (one i8 per slot) (n, g,
/// j) as [N, G, keep], scales (n, g floordiv groupsPerBlock) when
/// `groupsPerBlock` > 0, output (batch..., n). The lowering builds them and
/// the kernel compares with them.
llvm::SmallVector<mlir::AffineMap>
getSparseMatmulIndexingMaps(mlir::MLIRContext *ctx, int64_t batchDims,
                            int64_t groupsPerBlock);

} // namespace quench

#endif // QUENCH_DIALECT_QUENCH_IR_QUENCHSPARSEOPS_H
