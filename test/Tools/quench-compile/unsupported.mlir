// Ops without a CPU lowering yet are all listed, with their locations, right
// after the to-linalg stage; nothing is written.

// RUN: rm -rf %t && mkdir -p %t
// RUN: not quench-compile %s -o %t/x 2>&1 | FileCheck %s
// CHECK: error: {{.*}}unsupported.mlir:[[# @LINE + 6]]:8: 'quench.quantize' has no CPU lowering yet
// CHECK: error: {{.*}}unsupported.mlir:[[# @LINE + 6]]:8: 'quench.dequantize' has no CPU lowering yet
// CHECK: error: 2 operations cannot be compiled for the CPU yet (see above)
// RUN: ls %t | count 0

func.func @main(%x: tensor<4xf32> {quench.name = "x"}) -> (tensor<4xf32> {quench.name = "y"}) {
  %q = quench.quantize %x : tensor<4xf32> to tensor<4x!quant.uniform<i8:f32, 0.5:3>>
  %d = quench.dequantize %q : tensor<4x!quant.uniform<i8:f32, 0.5:3>> to tensor<4xf32>
  return %d : tensor<4xf32>
}
