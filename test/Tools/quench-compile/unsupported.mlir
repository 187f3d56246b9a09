// Ops without a CPU lowering yet are all listed, with their locations, right
// after the to-linalg stage; nothing is written.

// RUN: rm -rf %t && mkdir -p %t
// RUN: not quench-compile %s -o %t/x 2>&1 | FileCheck %s
// CHECK: error: {{.*}}unsupported.mlir:[[# @LINE + 8]]:8: 'quench.quantize_linear' has no CPU lowering yet
// CHECK: error: {{.*}}unsupported.mlir:[[# @LINE + 8]]:8: 'quench.dequantize_linear' has no CPU lowering yet
// CHECK: error: 2 operations cannot be compiled for the CPU yet (see above)
// RUN: ls %t | count 0

func.func @main(%x: tensor<4xf32> {quench.name = "x"}) -> (tensor<4xf32> {quench.name = "y"}) {
  %s = quench.constant dense<0.5> : tensor<f32>
  %z = quench.constant dense<3> : tensor<i8>
  %q = quench.quantize_linear %x, %s, %z {axis = 0 : i64} : (tensor<4xf32>, tensor<f32>, tensor<i8>) -> tensor<4xi8>
  %d = quench.dequantize_linear %q, %s, %z {axis = 0 : i64} : (tensor<4xi8>, tensor<f32>, tensor<i8>) -> tensor<4xf32>
  return %d : tensor<4xf32>
}
