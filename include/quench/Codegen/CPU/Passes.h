//===- Passes.h - CPU codegen passes ----------------------------*- C++ -*-===//
//
// Declarations and registration of the CPU code generation passes
// (Passes.td; implementations in lib/Codegen/CPU/).
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_CODEGEN_CPU_PASSES_H
#define QUENCH_CODEGEN_CPU_PASSES_H

#include "quench/Codegen/CPU/Int8DotProduct.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace quench {

#define GEN_PASS_DECL
#include "quench/Codegen/CPU/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "quench/Codegen/CPU/Passes.h.inc"

} // namespace quench

#endif // QUENCH_CODEGEN_CPU_PASSES_H
