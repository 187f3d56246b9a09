//===- RecipeFuzzer.cpp - Fuzz the quantization recipe reader -------------===//
//
// Bytes -> quench::readRecipeSparsity, which parses a recipe file with every
// check of quench-quantize-weights (JSON nesting limit, fields, schemes,
// globs, sparsity patterns) and matches a few layer names against its
// rules. It must succeed or fail with a diagnostic.
//
//===----------------------------------------------------------------------===//

#include "FuzzInput.h"

#include "quench/Dialect/Quench/Transforms/Passes.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Location.h"
#include "mlir/IR/MLIRContext.h"

#include <cstdio>
#include <cstdlib>

using quench::fuzz::InputFile;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const InputFile input("recipe.json");
  static mlir::MLIRContext context;
  static const std::string layers[] = {"/h.0/attn/c_attn/MatMul",
                                       "model.layers.0.mlp.up_proj", "lm_head",
                                       ""};
  input.write(data, size);

  bool diagnosed = false;
  mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic &diag) {
    if (diag.getSeverity() == mlir::DiagnosticSeverity::Error)
      diagnosed = true;
    return mlir::success();
  });
  std::vector<std::optional<std::string>> sparsity;
  if (mlir::failed(quench::readRecipeSparsity(
          input.path(), mlir::UnknownLoc::get(&context), layers, sparsity))) {
    if (!diagnosed) {
      std::fprintf(stderr, "fuzz check failed: recipe rejected without an "
                           "error diagnostic\n");
      std::abort();
    }
    return 0;
  }
  if (sparsity.size() != std::size(layers)) {
    std::fprintf(stderr, "fuzz check failed: one result per layer\n");
    std::abort();
  }
  return 0;
}
