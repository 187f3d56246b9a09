//===- WeightConstants.h - reading float weight constants -------*- C++ -*-===//
//
// The float values of a weight constant (a uniform value, or raw f32, f16
// or bf16 data), for the passes that rewrite weights: quantization
// (QuantizeWeights.cpp) and scale migration (ScaleMigration.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_DIALECT_QUENCH_TRANSFORMS_WEIGHTCONSTANTS_H
#define QUENCH_DIALECT_QUENCH_TRANSFORMS_WEIGHTCONSTANTS_H

#include "quench/Dialect/Quench/IR/QuenchOps.h"

#include <optional>
#include <vector>

namespace quench {

/// Whether readFloatWeights(cst) can read the constant (a uniform value, or
/// raw f32/f16/bf16 data of the right size), checked without copying it.
bool hasReadableFloatWeights(ConstantOp cst);

/// The constant's values as floats, if hasReadableFloatWeights; with
/// `transposed`, the 2-D constant is stored [K, N] and the floats are its
/// transpose [N, K], read in blocks (one pass over the stored data, no
/// transposed copy of it).
std::optional<std::vector<float>> readFloatWeights(ConstantOp cst,
                                                   bool transposed = false);

} // namespace quench

#endif // QUENCH_DIALECT_QUENCH_TRANSFORMS_WEIGHTCONSTANTS_H
