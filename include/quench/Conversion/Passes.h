//===- Passes.h - quench conversion passes ----------------------*- C++ -*-===//
//
// Declarations and registration of the conversions out of the quench
// dialect.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_CONVERSION_PASSES_H
#define QUENCH_CONVERSION_PASSES_H

#include "quench/Conversion/QuenchToLinalg/QuenchToLinalg.h"
#include "quench/Conversion/SCFToQuenchRuntime/SCFToQuenchRuntime.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Pass/Pass.h"

namespace quench {

#define GEN_PASS_DECL
#include "quench/Conversion/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "quench/Conversion/Passes.h.inc"

} // namespace quench

#endif // QUENCH_CONVERSION_PASSES_H
