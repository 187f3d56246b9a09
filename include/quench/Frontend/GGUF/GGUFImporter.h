//===- GGUFImporter.h - GGUF decoder models to quench ops -------*- C++ -*-===//
//
// Builds the quench graph of a GGUF model (llama.cpp's format) from its
// metadata and tensors: `func.func @main(input_ids: i64[1, ?]) -> logits:
// f32[1, ?, vocab]`, the forward pass of a decoder over the whole sequence
// (causal attention, positions 0 .. seq-1). Architectures: `llama`
// (interleaved RoPE pairs, GQA, RMSNorm, SwiGLU, tied or separate output
// head) and `qwen2` (the same block with q/k/v biases and half-split RoPE).
// Weights stay in their GGUF types: F32/F16/BF16 tensors are constants that
// borrow the file's mapping, block-quantized tensors become
// quench.matmul_nbits / dequantize_nbits operands by a lossless relayout
// (quant::unpackGGMLRows; docs/gguf.md). Attention is written in the exported
// form (scores, mask, softmax, product) so that quench-fuse-attention fuses
// it and --derive-kv-cache turns the model into a generation model.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_FRONTEND_GGUF_GGUFIMPORTER_H
#define QUENCH_FRONTEND_GGUF_GGUFIMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/StringRef.h"

namespace quench {

/// Imports the GGUF file at `path`. Errors (malformed file, unsupported
/// architecture or tensor type, missing metadata or tensors, tensors of the
/// wrong shape) are one diagnostic on `context`; returns null then.
mlir::OwningOpRef<mlir::ModuleOp> importGGUFFile(llvm::StringRef path,
                                                 mlir::MLIRContext *context);

/// True when the file at `path` starts with the GGUF magic.
bool isGGUFFile(llvm::StringRef path);

} // namespace quench

#endif // QUENCH_FRONTEND_GGUF_GGUFIMPORTER_H
