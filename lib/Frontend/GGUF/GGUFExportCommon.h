//===- GGUFExportCommon.h - shared parts of the GGUF exports ----*- C++ -*-===//
//
// What the two GGUF exports (GGUFExport.cpp: a GGUF source file's tensors
// replaced; GGUFExportLlama.cpp: a LLaMA recognized in any quench module)
// share: the packing of a quench.matmul_nbits into GGUF blocks.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_LIB_FRONTEND_GGUF_GGUFEXPORTCOMMON_H
#define QUENCH_LIB_FRONTEND_GGUF_GGUFEXPORTCOMMON_H

#include "quench/Dialect/Quench/IR/QuenchOps.h"

#include "mlir/Support/LogicalResult.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <optional>
#include <vector>

namespace quench::gguf_export {

/// One tensor in a GGUF block type: its ggml type and its blocks (row-major:
/// the rows of the layer, each `in_features / 32` blocks).
struct Replacement {
  uint32_t type = 0;
  std::vector<char> blocks;
};

/// The row-major bytes of a quench.constant `v` (nullopt when `v` is no
/// non-splat constant).
std::optional<llvm::ArrayRef<char>> constantBytes(mlir::Value v);

/// Packs the codes, scales and zero points of `op` (the layer of weight
/// `name`, for errors) into q4_0, q4_1 or q8_0 blocks, exactly or not at
/// all: an error on `op` naming the layer and why its scheme has no GGUF
/// block type.
mlir::FailureOr<Replacement> packLayer(MatMulNBitsOp op, llvm::StringRef name);

} // namespace quench::gguf_export

#endif // QUENCH_LIB_FRONTEND_GGUF_GGUFEXPORTCOMMON_H
