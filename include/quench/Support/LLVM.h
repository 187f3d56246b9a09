//===- LLVM.h - using declarations shared by the project --------*- C++ -*-===//
//
// The few MLIR/LLVM names every quench source file wants unqualified.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_SUPPORT_LLVM_H
#define QUENCH_SUPPORT_LLVM_H

#include "mlir/Support/LLVM.h"

namespace quench {
using namespace mlir; // NOLINT: the project lives on MLIR types.
} // namespace quench

#endif // QUENCH_SUPPORT_LLVM_H
