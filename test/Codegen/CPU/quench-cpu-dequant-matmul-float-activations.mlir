// RUN: quench-opt %s --quench-cpu-dequant-matmul="vector-bits=512 code-lookup=1 int16-dot=1" | FileCheck %s

// A module marked quench.float_activations (GGUF models: docs/gguf.md)
// keeps the float kernel although int16-dot is on: the codes are converted
// and multiplied by FMAs with the f32 activations, never quantized to
// int16 (no vpdpbusd, no activation scales). The same generic without the
// mark takes the int16 form (quench-cpu-dequant-matmul-int8.mlir).
// CHECK-NOT: vpdpbusd
// CHECK-LABEL: func.func @gemm8_channel
// CHECK-NOT: arith.fptosi
// CHECK: arith.constant dense<37> : tensor<2x1x1002x32xi8>
// CHECK: arith.sitofp
// CHECK: vector.fma
// CHECK-NOT: vpdpbusd
#x = affine_map<(r, b, j, h, n) -> (r, b, j, h)>
#q = affine_map<(r, b, j, h, n) -> (b, j, n)>
#s = affine_map<(r, b, j, h, n) -> (b, n)>
#y = affine_map<(r, b, j, h, n) -> (r, n)>
module attributes {quench.float_activations} {
func.func @gemm8_channel(%x: tensor<?x1x1002x1xf32>, %acc: tensor<?x40xf32>) -> tensor<?x40xf32> {
  %c128_i32 = arith.constant 128 : i32
  %codes = arith.constant dense<37> : tensor<1x1002x40xi8>
  %scales = arith.constant dense<0.5> : tensor<1x40xf16>
  %r = linalg.generic {indexing_maps = [#x, #q, #s, #y],
                       iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]}
      ins(%x, %codes, %scales : tensor<?x1x1002x1xf32>, tensor<1x1002x40xi8>, tensor<1x40xf16>)
      outs(%acc : tensor<?x40xf32>) attrs = {quench.dequant_matmul} {
  ^bb0(%in: f32, %byte: i8, %scale: f16, %out: f32):
    %0 = arith.extui %byte : i8 to i32
    %6 = arith.extf %scale : f16 to f32
    %7 = arith.subi %0, %c128_i32 : i32
    %8 = arith.sitofp %7 : i32 to f32
    %9 = arith.mulf %8, %6 : f32
    %10 = arith.mulf %in, %9 : f32
    %11 = arith.addf %out, %10 : f32
    linalg.yield %11 : f32
  } -> tensor<?x40xf32>
  return %r : tensor<?x40xf32>
}
}
