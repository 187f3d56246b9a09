//===- PackSparseWeights.h - compressed storage of pruned weights -*- C++ -*-===//
//
// quench-pack-sparse-weights (SparsePasses.td): N:M pruned layers become
// quench.sparse_linear (docs/sparsity.md, "Compressed storage"), with a
// record per pruned layer for quench-compile's size report.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_DIALECT_QUENCH_TRANSFORMS_PACKSPARSEWEIGHTS_H
#define QUENCH_DIALECT_QUENCH_TRANSFORMS_PACKSPARSEWEIGHTS_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

#include <memory>
#include <string>
#include <vector>

namespace quench {

#define GEN_PASS_DECL
#include "quench/Dialect/Quench/Transforms/SparsePasses.h.inc"

/// What quench-pack-sparse-weights did to one pruned layer.
struct LayerPackRecord {
  std::string name;    ///< layer name, as LayerQuantRecord::name
  std::string storage; ///< "2:4 compressed f32", or "dense (why)"
  bool compressed = false;
  int64_t bytesBefore = 0; ///< weight bytes as stored dense (codes, scales)
  int64_t bytesAfter = 0;  ///< values, indices (and scales) when compressed
};

/// Stores the N:M pruned layers of `module` compressed (see
/// quench-pack-sparse-weights), appending one record per pruned layer
/// (`quench.sparsity` mark) to `report` when given.
void packSparseWeights(mlir::ModuleOp module,
                       const QuenchPackSparseWeightsOptions &options,
                       std::vector<LayerPackRecord> *report);

/// quench-pack-sparse-weights recording into `report` (it must outlive the
/// pass run).
std::unique_ptr<mlir::Pass>
createQuenchPackSparseWeights(QuenchPackSparseWeightsOptions options,
                              std::vector<LayerPackRecord> *report);

#define GEN_PASS_REGISTRATION
#include "quench/Dialect/Quench/Transforms/SparsePasses.h.inc"

} // namespace quench

#endif // QUENCH_DIALECT_QUENCH_TRANSFORMS_PACKSPARSEWEIGHTS_H
