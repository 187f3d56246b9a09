// RUN: quench-opt %s --quench-prepare | FileCheck %s
// RUN: quench-opt %s --quench-prepare=raise=false | FileCheck %s --check-prefix=NORAISE
// RUN: quench-opt %s --pass-pipeline='builtin.module(quench-prepare)' | FileCheck %s

// A SiLU-gated projection as exported, with a duplicated constant and a
// dead shape query: raised, deduplicated and cleaned up.
// CHECK-LABEL: func @gated
// CHECK-SAME: (%[[X:.*]]: tensor<2x4xf32>)
// CHECK: %[[W:.*]] = quench.constant dense<5.000000e-01> : tensor<3x4xf32>
// CHECK: %[[L:.*]] = quench.linear %[[X]], %[[W]] : (tensor<2x4xf32>, tensor<3x4xf32>) -> tensor<2x3xf32>
// CHECK: %[[S:.*]] = quench.silu %[[L]] : tensor<2x3xf32>
// CHECK: %[[M:.*]] = quench.mul %[[S]], %[[L]]
// CHECK: return %[[M]]
// CHECK-NOT: quench.shape_of
// CHECK-NOT: quench.sigmoid

// NORAISE: quench.matmul
// NORAISE: quench.sigmoid
// NORAISE-NOT: quench.shape_of
func.func @gated(%x: tensor<2x4xf32>) -> tensor<2x3xf32> {
  %w1 = quench.constant dense<0.5> : tensor<4x3xf32>
  %w2 = quench.constant dense<0.5> : tensor<4x3xf32>
  %dead = quench.shape_of %x : tensor<2x4xf32> -> tensor<2xi64>
  %a = quench.matmul %x, %w1 : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
  %b = quench.matmul %x, %w2 : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
  %s = quench.sigmoid %a : tensor<2x3xf32>
  %g = quench.mul %a, %s : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  %y = quench.mul %g, %b : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return %y : tensor<2x3xf32>
}

// A QDQ matmul (pre-quantized model) is folded by quench-fold-qdq before
// raising, with or without raise: the integer weight never becomes a float
// linear.
// CHECK-LABEL: func @qdq
// CHECK: quench.qlinear_matmul
// CHECK-NOT: quench.dequantize_linear
// CHECK-NOT: quench.linear
// NORAISE: quench.qlinear_matmul
func.func @qdq(%xq: tensor<2x4xui8>, %s: tensor<f32>) -> tensor<2x3xui8> {
  %w = quench.constant dense<3> : tensor<4x3xi8>
  %x = quench.dequantize_linear %xq, %s {axis = 1 : i64} : (tensor<2x4xui8>, tensor<f32>) -> tensor<2x4xf32>
  %wd = quench.dequantize_linear %w, %s {axis = 1 : i64} : (tensor<4x3xi8>, tensor<f32>) -> tensor<4x3xf32>
  %y = quench.matmul %x, %wd : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
  %q = quench.quantize_linear %y, %s {axis = 1 : i64} : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xui8>
  return %q : tensor<2x3xui8>
}
