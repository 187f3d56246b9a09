//===- ONNXImporter.h - ONNX to quench importer -----------------*- C++ -*-===//
//
// Imports an ONNX model (binary protobuf or the ONNX textual format) into a
// module of quench ops. The model is validated with the ONNX checker and
// typed with ONNX shape inference before any IR is built; every problem is
// reported as an MLIR diagnostic and no partial module is returned.
//
// This header is deliberately free of ONNX/protobuf includes: those need C++
// exceptions, which the rest of the project (like LLVM) is built without.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_FRONTEND_ONNX_ONNXIMPORTER_H
#define QUENCH_FRONTEND_ONNX_ONNXIMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/StringMap.h"

#include <cstdint>
#include <string>
#include <vector>

namespace quench {

struct ONNXImportOptions {
  /// Static shapes for graph inputs, replacing dynamic (or any) dimensions:
  /// input name -> extents.
  llvm::StringMap<std::vector<int64_t>> inputShapes;
  /// Name of the generated function.
  std::string functionName = "main";
  /// The largest statically shaped tensor accepted, in bytes (64 GiB): a
  /// graph input, node result or constant above it, or whose size overflows,
  /// fails the import with an error naming it (docs/reliability.md).
  uint64_t maxTensorBytes = kDefaultMaxTensorBytes;
  static constexpr uint64_t kDefaultMaxTensorBytes = uint64_t(1) << 36;
};

/// Parses `--shape` values of the form `NAME=1x32` (several separated by
/// commas are accepted too). Returns an error message on malformed input.
std::string parseShapeOverride(llvm::StringRef spec, ONNXImportOptions &opts);

/// Imports the ONNX model at `path` (`.onnx` binary, or ONNX textual syntax
/// when the file starts with `<` or has the `.onnxtxt` extension). Returns
/// null after emitting diagnostics on failure.
mlir::OwningOpRef<mlir::ModuleOp>
importONNXFile(llvm::StringRef path, mlir::MLIRContext *context,
               const ONNXImportOptions &options = {});

/// The (domain, op type) pairs the importer converts, for documentation and
/// the conformance runner. Domain "" is the default ONNX domain.
std::vector<std::pair<std::string, std::string>> getSupportedONNXOps();

} // namespace quench

#endif // QUENCH_FRONTEND_ONNX_ONNXIMPORTER_H
