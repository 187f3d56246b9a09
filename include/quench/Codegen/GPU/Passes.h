//===- Passes.h - GPU code generation passes --------------------*- C++ -*-===//
//
// Declarations and registration of the CUDA backend's code generation
// passes (Passes.td; implementations in lib/Codegen/GPU/).
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_CODEGEN_GPU_PASSES_H
#define QUENCH_CODEGEN_GPU_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Pass/Pass.h"

namespace quench {

#define GEN_PASS_DECL
#include "quench/Codegen/GPU/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "quench/Codegen/GPU/Passes.h.inc"

} // namespace quench

#endif // QUENCH_CODEGEN_GPU_PASSES_H
