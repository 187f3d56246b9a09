//===- QuenchToLinalg.h - quench to linalg conversion -----------*- C++ -*-===//
//
// Patterns lowering the float/integer quench ops to linalg on tensors,
// tensor, arith and math (the `convert-quench-to-linalg` pass).
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_CONVERSION_QUENCHTOLINALG_QUENCHTOLINALG_H
#define QUENCH_CONVERSION_QUENCHTOLINALG_QUENCHTOLINALG_H

#include "mlir/Transforms/DialectConversion.h"

namespace quench {

/// Type converter of the conversion: ranked tensors of signed or unsigned
/// integers become tensors of signless integers of the same width (arith
/// only takes signless integers); every other type is kept. Values cross
/// between the two worlds through `tensor.bitcast`.
class QuenchToLinalgTypeConverter : public mlir::TypeConverter {
public:
  QuenchToLinalgTypeConverter();
};

/// Marks what `convert-quench-to-linalg` must eliminate: every quench op
/// except those with a `!quant` element type among their operands or
/// results (left legal: no lowering handles them yet).
void configureQuenchToLinalgTarget(mlir::ConversionTarget &target);

/// Adds the patterns of `convert-quench-to-linalg` to `patterns`.
void populateQuenchToLinalgConversionPatterns(
    const mlir::TypeConverter &converter, mlir::RewritePatternSet &patterns);

} // namespace quench

#endif // QUENCH_CONVERSION_QUENCHTOLINALG_QUENCHTOLINALG_H
