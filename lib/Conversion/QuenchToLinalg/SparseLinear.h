//===- SparseLinear.h - quench.sparse_linear to linalg ---------*- C++ -*-===//
//
// Private to lib/Conversion/QuenchToLinalg: the patterns of
// SparseLinear.cpp, declared apart from Common.h (they need the sparse ops'
// header, which the other pattern files do not).
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_LIB_CONVERSION_QUENCHTOLINALG_SPARSELINEAR_H
#define QUENCH_LIB_CONVERSION_QUENCHTOLINALG_SPARSELINEAR_H

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/DialectConversion.h"

namespace quench::to_linalg {

/// quench.sparse_linear to its specification generic (SparseLinear.cpp).
void populateSparseLinearPatterns(const mlir::TypeConverter &converter,
                                  mlir::RewritePatternSet &patterns);

} // namespace quench::to_linalg

#endif // QUENCH_LIB_CONVERSION_QUENCHTOLINALG_SPARSELINEAR_H
