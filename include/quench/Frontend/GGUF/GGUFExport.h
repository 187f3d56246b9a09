//===- GGUFExport.h - quench models back to GGUF files ----------*- C++ -*-===//
//
// `quench-compile MODEL.gguf --quant=... --emit=gguf` (docs/gguf.md,
// "Export"): the source GGUF file with every matrix Quench quantized
// replaced by Quench's own codes in the GGUF block type that holds them
// exactly (symmetric int4 groups of 32 -> q4_0, asymmetric int4 g32 ->
// q4_1, symmetric int8 g32 -> q8_0); the metadata and every other tensor
// are the source's, byte for byte. Models from other sources (ONNX, MLIR)
// are exported when Quench recognizes a LLaMA decoder in them
// (exportRecognizedLlama).
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
/// output, for: a quantized layer whose scheme
/// has no GGUF block type (per-channel or groups other than 32, 2/3-bit,
/// float zero points, scales not exact in f16: named with the layer), a
/// quantized weight that is no source tensor, a tied embedding quantized as
/// the head only, and I/O errors.
/// A `sourcePath` that is not a GGUF file goes to exportRecognizedLlama.
mlir::LogicalResult exportGGUF(mlir::ModuleOp module,
                               llvm::StringRef sourcePath,
                               llvm::StringRef outPath);

/// Writes `outPath` (atomically) as a GGUF `llama` model from `module` (any
/// origin, after the quantize stage) when its graph is a LLaMA decoder:
/// token embedding, blocks of RMSNorm + attention with separate q/k/v/o
/// projections and a rotary embedding (rotate-half or interleaved pairs,
/// frequencies base^(-2i/d)), RMSNorm + SwiGLU, a final RMSNorm and a linear
/// head; GQA and tied heads included. The structure is followed, names are
/// not used. Metadata (llama.*) comes from the graph: widths from the
/// weights, heads from the reshape into heads, epsilon from the norms, the
/// RoPE base from its frequency or cos/sin tables, the context length from
/// the tables' positions (2048 without tables). Rotate-half q/k rows are
/// permuted into llama.cpp's interleaved pairs. Matrices are written as
/// exportGGUF writes quantized ones (q4_0, q4_1, q8_0), F32/F16 when left
/// float; norms F32. One error naming what did not match otherwise.
mlir::LogicalResult exportRecognizedLlama(mlir::ModuleOp module,
                                          llvm::StringRef sourcePath,
                                          llvm::StringRef outPath);

} // namespace quench

#endif // QUENCH_FRONTEND_GGUF_GGUFEXPORT_H
