//===- InitAllDialects.h - register quench and upstream dialects -*- C++ -*-===//
//
// One place that knows every dialect a quench tool loads.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_INITALLDIALECTS_H
#define QUENCH_INITALLDIALECTS_H

#include "mlir/IR/DialectRegistry.h"

namespace quench {

/// Adds the quench dialect and every upstream dialect and extension.
void registerAllDialects(mlir::DialectRegistry &registry);

/// Registers the quench passes and every upstream pass.
void registerAllPasses();

} // namespace quench

#endif // QUENCH_INITALLDIALECTS_H
