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

/// Registers the quench passes and pipelines (each target's too) and every
/// upstream pass.
void registerAllPasses();

/// Registers every target backend (include/quench/Target/TargetBackend.h):
/// what `--target` can select.
void registerAllTargetBackends();
/// Registers the command-line options of --target and of every backend.
void registerAllTargetCLOptions();

} // namespace quench

#endif // QUENCH_INITALLDIALECTS_H
