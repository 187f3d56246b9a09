//===- FuseParallelLinears.h - one product for linears sharing an input -*- C++ -*-===//
//
// quench-fuse-parallel-linears (FusePasses.td): linears that read the same
// input become one product and a split (docs/lowering.md, "Parallel
// linears").
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_DIALECT_QUENCH_TRANSFORMS_FUSEPARALLELLINEARS_H
#define QUENCH_DIALECT_QUENCH_TRANSFORMS_FUSEPARALLELLINEARS_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"

namespace quench {

#define GEN_PASS_DECL
#include "quench/Dialect/Quench/Transforms/FusePasses.h.inc"

#define GEN_PASS_REGISTRATION
#include "quench/Dialect/Quench/Transforms/FusePasses.h.inc"

} // namespace quench

#endif // QUENCH_DIALECT_QUENCH_TRANSFORMS_FUSEPARALLELLINEARS_H
