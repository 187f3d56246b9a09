//===- Int8DotProduct.cpp - choice of the int8 multiply-add ---------------===//
//
// quench::selectInt8DotProduct: which integer multiply-add instructions
// (quench-cpu-int8-matmul's `int8-dot`) a target has at a vector width.
//
//===----------------------------------------------------------------------===//

#include "quench/Codegen/CPU/Int8DotProduct.h"

quench::Int8DotProduct quench::selectInt8DotProduct(
    unsigned vectorBits, llvm::function_ref<bool(llvm::StringRef)> hasFeature) {
  if (vectorBits == 512) {
    if (hasFeature("avx512vnni"))
      return Int8DotProduct::VNNI;
    if (hasFeature("avx512bw"))
      return Int8DotProduct::PMAddWD;
    return Int8DotProduct::None;
  }
  if (vectorBits == 256) {
    if (hasFeature("avxvnni") ||
        (hasFeature("avx512vnni") && hasFeature("avx512vl")))
      return Int8DotProduct::VNNI;
    if (hasFeature("avx2"))
      return Int8DotProduct::PMAddWD;
  }
  return Int8DotProduct::None;
}
