//===- ONNXImportFuzzer.cpp - Fuzz the ONNX importer ----------------------===//
//
// Bytes -> importONNXFile (binary protobuf, or ONNX's textual syntax when
// the bytes start with '<') -> mlir::verify. The importer must fail with a
// diagnostic or return a module that verifies; an import that fails
// without a diagnostic, or a module that does not verify, is a finding.
// Tensors are limited to 16 MiB (--max-tensor-bytes) so that a model
// declaring a legitimately huge constant is rejected instead of filling the
// fuzzing machine's memory. A fresh MLIRContext every 500 inputs bounds
// what its uniquing tables keep.
//
//===----------------------------------------------------------------------===//

#include "FuzzInput.h"

#include "quench/Frontend/ONNX/ONNXImporter.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"

#include <cstdio>
#include <cstdlib>
#include <memory>

using quench::fuzz::InputFile;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const InputFile input("model.onnx");
  static std::unique_ptr<mlir::MLIRContext> context;
  static unsigned uses = 0;
  if (!context || ++uses % 500 == 0) {
    context = std::make_unique<mlir::MLIRContext>();
    context->printOpOnDiagnostic(false);
  }
  input.write(data, size);

  bool diagnosed = false;
  mlir::ScopedDiagnosticHandler handler(
      context.get(), [&](mlir::Diagnostic &diag) {
        if (diag.getSeverity() == mlir::DiagnosticSeverity::Error)
          diagnosed = true;
        return mlir::success();
      });
  quench::ONNXImportOptions options;
  options.maxTensorBytes = uint64_t(1) << 24;
  mlir::OwningOpRef<mlir::ModuleOp> module =
      quench::importONNXFile(input.path(), context.get(), options);
  if (!module) {
    if (!diagnosed) {
      std::fprintf(stderr, "fuzz check failed: import failed without an "
                           "error diagnostic\n");
      std::abort();
    }
    return 0;
  }
  if (mlir::failed(mlir::verify(*module))) {
    std::fprintf(stderr, "fuzz check failed: the imported module does not "
                         "verify\n");
    std::abort();
  }
  return 0;
}
