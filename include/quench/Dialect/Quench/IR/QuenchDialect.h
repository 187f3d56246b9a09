//===- QuenchDialect.h - The quench dialect ---------------------*- C++ -*-===//
//
// Declares the quench dialect class.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_DIALECT_QUENCH_IR_QUENCHDIALECT_H
#define QUENCH_DIALECT_QUENCH_IR_QUENCHDIALECT_H

#include "mlir/Dialect/Quant/IR/Quant.h"
#include "mlir/IR/BuiltinAttributeInterfaces.h"
#include "mlir/IR/Dialect.h"
#include "llvm/ADT/DenseMap.h"

#include <mutex>

#include "quench/Dialect/Quench/IR/QuenchOpsDialect.h.inc"

#endif // QUENCH_DIALECT_QUENCH_IR_QUENCHDIALECT_H
