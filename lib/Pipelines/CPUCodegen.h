//===- CPUCodegen.h - CPU tiling/vectorization passes (private) -*- C++ -*-===//
//
// The passes behind the `codegen` and `to-llvm` stages of
// quench-cpu-pipeline. They are pipeline internals (built only by
// getCPUPipelineStages), so they are not in a Passes.td.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_LIB_PIPELINES_CPUCODEGEN_H
#define QUENCH_LIB_PIPELINES_CPUCODEGEN_H

#include "mlir/Pass/Pass.h"

#include <memory>

namespace quench {

/// Fuses elementwise producers into their linalg consumers when that
/// recomputes nothing: the consumer must read the producer's result through
/// a permutation map (every element once). Fusing into a contraction or a
/// broadcasting consumer would recompute the producer (a GELU, an exp) once
/// per reduction step or broadcast copy.
std::unique_ptr<mlir::Pass> createCPUFuseElementwisePass();

/// Tiles every linalg op of a function on tensors (outermost parallel tiles
/// as scf.forall, then scf.for down to register/vector tiles, peeling
/// partial tiles) and vectorizes the tiles; ops it cannot vectorize stay
/// linalg (loops later). `vectorBits` is the SIMD register width.
std::unique_ptr<mlir::Pass> createCPUTileAndVectorizePass(unsigned vectorBits);

/// Lowers the vector dialect the codegen stage produced to 1-D vector ops
/// that convert-vector-to-llvm maps onto SIMD instructions: masks,
/// contractions (outer products → FMAs), multi-reductions, transposes,
/// n-D transfers.
std::unique_ptr<mlir::Pass> createCPUVectorLoweringPass();

} // namespace quench

#endif // QUENCH_LIB_PIPELINES_CPUCODEGEN_H
