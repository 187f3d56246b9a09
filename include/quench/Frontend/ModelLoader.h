//===- ModelLoader.h - load a model file of any supported format -*- C++ -*-===//
//
// One entry point for the drivers: an ONNX model (imported by
// lib/Frontend/ONNX), a GGUF model (lib/Frontend/GGUF) or a quench MLIR
// module (text or bytecode), chosen by the file's extension (GGUF also by
// its magic).
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_FRONTEND_MODELLOADER_H
#define QUENCH_FRONTEND_MODELLOADER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <string>

namespace quench {

/// Loads `path`: `.mlir` / `.mlirbc` files are parsed as MLIR (every
/// registered dialect loaded), `.gguf` files and files starting with the
/// GGUF magic are imported as GGUF (no `shapes`), anything else as ONNX with the
/// input shapes fixed by `shapes` ("NAME=DxD...", which only ONNX models
/// take), and statically shaped tensors of at most `maxTensorBytes` (0:
/// ONNXImportOptions' default). Errors are reported as diagnostics on
/// `context`; returns null then.
mlir::OwningOpRef<mlir::ModuleOp>
loadModelFile(llvm::StringRef path, mlir::MLIRContext &context,
              llvm::ArrayRef<std::string> shapes = {},
              uint64_t maxTensorBytes = 0);

} // namespace quench

#endif // QUENCH_FRONTEND_MODELLOADER_H
