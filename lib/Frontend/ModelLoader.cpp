//===- ModelLoader.cpp - load a model file of any supported format --------===//

#include "quench/Frontend/ModelLoader.h"

#include "quench/Frontend/GGUF/GGUFImporter.h"
#include "quench/Frontend/ONNX/ONNXImporter.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/Path.h"

mlir::OwningOpRef<mlir::ModuleOp>
quench::loadModelFile(llvm::StringRef path, mlir::MLIRContext &context,
                      llvm::ArrayRef<std::string> shapes,
                      uint64_t maxTensorBytes) {
  auto error = [&]() {
    return mlir::emitError(mlir::UnknownLoc::get(&context));
  };
  llvm::StringRef ext = llvm::sys::path::extension(path);
  if (ext == ".mlir" || ext == ".mlirbc") {
    if (!shapes.empty()) {
      error() << "--shape applies to ONNX models only";
      return nullptr;
    }
    context.loadAllAvailableDialects();
    return mlir::parseSourceFile<mlir::ModuleOp>(path, &context);
  }
  if (ext == ".gguf" || isGGUFFile(path)) {
    if (!shapes.empty()) {
      error() << "--shape applies to ONNX models only";
      return nullptr;
    }
    return importGGUFFile(path, &context);
  }
  ONNXImportOptions options;
  if (maxTensorBytes)
    options.maxTensorBytes = maxTensorBytes;
  for (const std::string &s : shapes)
    if (std::string err = parseShapeOverride(s, options); !err.empty()) {
      error() << err;
      return nullptr;
    }
  return importONNXFile(path, &context, options);
}
