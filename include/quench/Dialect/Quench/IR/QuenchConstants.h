//===- QuenchConstants.h - constant data helpers ----------------*- C++ -*-===//
//
// Raw access to constant tensors, whether they are `dense` literals or
// `dense_resource` blobs, and creation of constants from raw bytes. Shared by
// the importer and by passes that rewrite weights.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_DIALECT_QUENCH_IR_QUENCHCONSTANTS_H
#define QUENCH_DIALECT_QUENCH_IR_QUENCHCONSTANTS_H

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include <memory>
#include <optional>
#include <vector>

namespace quench {

/// Constants up to this many bytes are printed inline as `dense` literals;
/// larger ones become `dense_resource` blobs.
constexpr size_t kInlineConstantBytes = 64;

/// Bytes one element occupies in row-major raw storage; 0 for element types
/// that are not byte-addressable (i1, sub-byte integers, quantized types).
int64_t getStorageBytesPerElement(mlir::Type elementType);

/// The row-major bytes of a non-splat constant (dense literal or resource
/// blob). Returns std::nullopt for splats and non-byte element types.
std::optional<llvm::ArrayRef<char>> getRawConstantData(mlir::ElementsAttr attr);

/// A constant of `type` holding a copy of `data` (row-major,
/// getStorageBytesPerElement bytes per element): a `dense` literal up to
/// kInlineConstantBytes, otherwise a `dense_resource` blob keyed by
/// `nameHint`. A blob the weight arena accepts (WeightArena::accepts, 1 MiB
/// and more by default) is written to the arena and mapped back, so that it
/// is not resident; should the arena fail (no space left), the blob stays on
/// the heap and one warning says why (docs/scaling.md).
mlir::ElementsAttr createConstantAttr(mlir::RankedTensorType type,
                                      llvm::ArrayRef<char> data,
                                      llvm::StringRef nameHint);

/// A constant of `type` whose blob is `data` itself, not a copy: `owner`
/// keeps the bytes alive (a file mapping, a string moved out of a protobuf)
/// and is dropped with the blob. Copies (createConstantAttr) only what is
/// small enough for a `dense` literal and data misaligned for its element
/// type.
mlir::ElementsAttr createBorrowedConstantAttr(mlir::RankedTensorType type,
                                              llvm::ArrayRef<char> data,
                                              std::shared_ptr<const void> owner,
                                              llvm::StringRef nameHint);

/// Drops the resident pages of a constant's blob when they are file backed
/// (external data, the weight arena), after a pass has read the whole
/// weight: the next reader faults them in again. No-op for other constants.
void releaseConstantPages(mlir::ElementsAttr attr);

/// The value of a constant that holds a single distinct value (a splat, or
/// one element), converted to double.
std::optional<double> getUniformValue(mlir::Attribute attr);

/// Transposes row-major `[rows, cols]` data of `itemBytes`-byte elements to
/// `[cols, rows]` (blocked: cache-friendly for large weights).
std::vector<char> transposeBytes(llvm::ArrayRef<char> data, int64_t rows,
                                 int64_t cols, int64_t itemBytes);

/// Transposes a 2-D constant (`[r, c]` -> `[c, r]`), blob to blob.
mlir::ElementsAttr transpose2DConstant(mlir::ElementsAttr attr,
                                       llvm::StringRef nameHint);

} // namespace quench

#endif // QUENCH_DIALECT_QUENCH_IR_QUENCHCONSTANTS_H
