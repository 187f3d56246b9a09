//===- SizeReport.h - quench-compile's size report --------------*- C++ -*-===//
//
// Weight bytes per layer before and after quantization, constant bytes of
// the whole model, and the artifact's size: printed as a table and written
// as JSON (--report).
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_TOOLS_QUENCH_COMPILE_SIZEREPORT_H
#define QUENCH_TOOLS_QUENCH_COMPILE_SIZEREPORT_H

#include "quench/Dialect/Quench/Transforms/PackSparseWeights.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

#include <string>
#include <vector>

namespace quench {

struct SizeReport {
  std::string model;
  std::string quant;
  std::vector<LayerQuantRecord> layers;
  /// What pruning did (empty without the prune stage): shown as each
  /// layer's sparsity and density. Without quantization the layers are
  /// these, in float.
  std::vector<LayerPruneRecord> pruned;
  /// The storage of the pruned layers (empty without the pack-sparse
  /// stage): compressed layers' bytes replace their dense bytes.
  std::vector<LayerPackRecord> packed;
  /// Bytes of every quench.constant of the model (weights, norms,
  /// embeddings, ...), before and after quantization.
  int64_t constantBytesBefore = 0, constantBytesAfter = 0;
  std::string artifact;
  int64_t artifactBytes = -1;
};

/// Bytes of the quench.constant ops of `module`: all of them, and the
/// largest one.
struct ConstantBytes {
  int64_t total = 0;
  int64_t largest = 0;
};
ConstantBytes measureConstants(mlir::ModuleOp module);

/// The human-readable table.
void printSizeReport(const SizeReport &report, llvm::raw_ostream &os);

/// The JSON document (schema "quench-size-report", version 1; see
/// docs/quantization.md).
void writeSizeReportJSON(const SizeReport &report, llvm::raw_ostream &os);

/// Records the constant bytes of `module` after the stage `stage` ("input"
/// before the first): the float model as compiled is the one after
/// prepare (CSE merges duplicate constants there), the quantized one the
/// one after quantize.
void updateSizeReport(SizeReport &report, llvm::StringRef stage,
                      mlir::ModuleOp module);

/// Completes `report` with the artifact written at `artifact` (empty or
/// "-": none; its size is read from the file), prints the table on `os`
/// when `print`, and writes the JSON document to `jsonPath` unless empty.
/// Returns an error message, or "" on success.
std::string finishSizeReport(SizeReport &report, llvm::StringRef artifact,
                             bool print, llvm::StringRef jsonPath,
                             llvm::raw_ostream &os);

} // namespace quench

#endif // QUENCH_TOOLS_QUENCH_COMPILE_SIZEREPORT_H
