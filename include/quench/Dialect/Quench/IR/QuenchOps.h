//===- QuenchOps.h - quench operations --------------------------*- C++ -*-===//
//
// Declares the ops, enums and attributes of the quench dialect.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_DIALECT_QUENCH_IR_QUENCHOPS_H
#define QUENCH_DIALECT_QUENCH_IR_QUENCHOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include <string>
#include "mlir/Dialect/Quant/IR/QuantTypes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "quench/Dialect/Quench/IR/QuenchDialect.h"
#include "quench/Dialect/Quench/IR/QuenchEnums.h.inc"

#define GET_OP_CLASSES
#include "quench/Dialect/Quench/IR/QuenchOps.h.inc"

namespace quench {

/// Computes the NumPy broadcast of two shapes (dynamic dims as
/// ShapedType::kDynamic). Returns failure when a pair of static extents
/// differs and neither is 1.
mlir::LogicalResult broadcastShapes(llvm::ArrayRef<int64_t> a,
                                    llvm::ArrayRef<int64_t> b,
                                    llvm::SmallVectorImpl<int64_t> &out);

/// The first name in `loc` (NameLoc, also inside fused and call-site
/// locations): the ONNX node an op was imported from. Empty when none.
std::string getNodeName(mlir::Location loc);

} // namespace quench

#endif // QUENCH_DIALECT_QUENCH_IR_QUENCHOPS_H
