// Ops without a CPU lowering yet are all listed, with their locations, right
// after the to-linalg stage; nothing is written. Shape ops accept tensors
// with `!quant.uniform` element types, which convert-quench-to-linalg leaves
// unconverted (docs/lowering.md, "Not converted yet").

// RUN: rm -rf %t && mkdir -p %t
// RUN: not quench-compile %s -o %t/x 2>&1 | FileCheck %s
// CHECK: error: {{.*}}unsupported.mlir:[[# @LINE + 11]]:8: 'quench.reshape' has no CPU lowering yet
// CHECK: error: {{.*}}unsupported.mlir:[[# @LINE + 11]]:8: 'quench.transpose' has no CPU lowering yet
// CHECK: error: 2 operations cannot be compiled for the CPU yet (see above)
// RUN: ls %t | count 0

func.func @main(%x: tensor<4xf32> {quench.name = "x"}) -> (tensor<4xf32> {quench.name = "y"}) {
  %e = quench.exp %x : tensor<4xf32>
  return %e : tensor<4xf32>
}

func.func private @pack(%q: tensor<4x!quant.uniform<i8:f32, 0.5:3>>) -> tensor<2x2x!quant.uniform<i8:f32, 0.5:3>> {
  %r = quench.reshape %q : tensor<4x!quant.uniform<i8:f32, 0.5:3>> -> tensor<2x2x!quant.uniform<i8:f32, 0.5:3>>
  %t = quench.transpose %r {permutation = array<i64: 1, 0>} : tensor<2x2x!quant.uniform<i8:f32, 0.5:3>> -> tensor<2x2x!quant.uniform<i8:f32, 0.5:3>>
  return %t : tensor<2x2x!quant.uniform<i8:f32, 0.5:3>>
}
