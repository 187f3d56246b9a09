//===- Int8DotProduct.h - int8 multiply-add instructions --------*- C++ -*-===//
//
// The integer multiply-add instructions the CPU codegen may use for
// int8 x int8 -> int32 products (quench-cpu-int8-matmul's `int8-dot`
// option), and their choice from a target's features.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_CODEGEN_CPU_INT8DOTPRODUCT_H
#define QUENCH_CODEGEN_CPU_INT8DOTPRODUCT_H

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"

namespace quench {

/// The integer multiply-add instructions the codegen stage may use for
/// int8 x int8 -> int32 products with constant weights (quench.qlinear's;
/// lib/Codegen/CPU/Int8Matmul.cpp). The target must have them at the
/// pipeline's vector width.
enum class Int8DotProduct {
  /// No int8 kernel: the products stay generic contractions (outer
  /// products on i32 lanes).
  None,
  /// `vpmaddwd`: pairs of i16 products summed into i32 (AVX2 at 256 bits,
  /// AVX-512BW at 512).
  PMAddWD,
  /// `vpdpbusd`: four u8 x s8 products summed into each i32 accumulator
  /// (AVX-VNNI or AVX512-VNNI with AVX512VL at 256 bits, AVX512-VNNI at
  /// 512).
  VNNI,
};

/// The best Int8DotProduct for a target with `vectorBits`-wide vectors
/// whose features `hasFeature` reports (LLVM names: "avx2", "avx512bw",
/// "avx512vnni", "avx512vl", "avxvnni").
Int8DotProduct
selectInt8DotProduct(unsigned vectorBits,
                     llvm::function_ref<bool(llvm::StringRef)> hasFeature);

} // namespace quench

#endif // QUENCH_CODEGEN_CPU_INT8DOTPRODUCT_H
