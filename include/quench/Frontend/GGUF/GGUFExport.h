//===- GGUFExport.h - quench models back to GGUF files ----------*- C++ -*-===//
//
// `quench-compile MODEL.gguf --quant=... --emit=gguf` (docs/gguf.md,
// "Export"): the source GGUF file with every matrix Quench quantized
// replaced by Quench's own codes in the GGUF block type that holds them
// exactly (symmetric int4 groups of 32 -> q4_0, asymmetric int4 g32 ->
// q4_1, symmetric int8 g32 -> q8_0); the metadata and every other tensor
// are the source's, byte for byte.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_FRONTEND_GGUF_GGUFEXPORT_H
#define QUENCH_FRONTEND_GGUF_GGUFEXPORT_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LogicalResult.h"
#include "llvm/ADT/StringRef.h"

namespace quench {

/// Writes `outPath` (atomically: a temporary file renamed into place) from
/// `module`, imported from the GGUF file `sourcePath` and quantized by
/// quench-quantize-weights (the module after the quantize stage). Each
/// quench.matmul_nbits whose codes are a quantized source tensor
/// (`<tensor>_q`) becomes that tensor in q4_0, q4_1 or q8_0 blocks; every
/// other tensor and all key/values are copied. One error diagnostic, and no
/// output, for: a source that is not GGUF, a quantized layer whose scheme
/// has no GGUF block type (per-channel or groups other than 32, 2/3-bit,
/// float zero points, scales not exact in f16: named with the layer), a
/// quantized weight that is no source tensor, a tied embedding quantized as
/// the head only, and I/O errors.
mlir::LogicalResult exportGGUF(mlir::ModuleOp module,
                               llvm::StringRef sourcePath,
                               llvm::StringRef outPath);

} // namespace quench

#endif // QUENCH_FRONTEND_GGUF_GGUFEXPORT_H
