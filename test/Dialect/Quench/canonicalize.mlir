// RUN: quench-opt %s -canonicalize -split-input-file | FileCheck %s

// CHECK-LABEL: func @add_zero
// CHECK-SAME: (%[[X:.*]]: tensor<4xf32>)
// CHECK-NEXT: return %[[X]]
func.func @add_zero(%x: tensor<4xf32>) -> tensor<4xf32> {
  %z = quench.constant dense<0.0> : tensor<4xf32>
  %0 = quench.add %x, %z : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// Adding a broadcast zero changes the shape: it must stay.
// CHECK-LABEL: func @add_zero_broadcast
// CHECK: quench.add
func.func @add_zero_broadcast(%x: tensor<4xf32>) -> tensor<2x4xf32> {
  %z = quench.constant dense<0.0> : tensor<2x4xf32>
  %0 = quench.add %x, %z : (tensor<4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}

// -----

// CHECK-LABEL: func @mul_one
// CHECK-SAME: (%[[X:.*]]: tensor<4xi64>)
// CHECK-NEXT: return %[[X]]
func.func @mul_one(%x: tensor<4xi64>) -> tensor<4xi64> {
  %c = quench.constant dense<1> : tensor<i64>
  %0 = quench.mul %c, %x : (tensor<i64>, tensor<4xi64>) -> tensor<4xi64>
  return %0 : tensor<4xi64>
}

// -----

// CHECK-LABEL: func @mul_two
// CHECK: quench.mul
func.func @mul_two(%x: tensor<4xf32>) -> tensor<4xf32> {
  %c = quench.constant dense<2.0> : tensor<f32>
  %0 = quench.mul %x, %c : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// CHECK-LABEL: func @cast_same_type
// CHECK-NEXT: return %arg0
func.func @cast_same_type(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = quench.cast %x : tensor<4xf32> to tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// CHECK-LABEL: func @reshape_chain
// CHECK-NEXT: %[[R:.*]] = quench.reshape %arg0 : tensor<2x3x4xf32> -> tensor<6x4xf32>
// CHECK-NEXT: return %[[R]]
func.func @reshape_chain(%x: tensor<2x3x4xf32>) -> tensor<6x4xf32> {
  %0 = quench.reshape %x : tensor<2x3x4xf32> -> tensor<24xf32>
  %1 = quench.reshape %0 : tensor<24xf32> -> tensor<6x4xf32>
  return %1 : tensor<6x4xf32>
}

// -----

// CHECK-LABEL: func @reshape_identity
// CHECK-NEXT: return %arg0
func.func @reshape_identity(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = quench.reshape %x : tensor<2x3xf32> -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// CHECK-LABEL: func @reshape_constant
// CHECK-NEXT: %[[C:.*]] = quench.constant dense<{{\[\[}}1, 2], [3, 4]]> : tensor<2x2xi64>
// CHECK-NEXT: return %[[C]]
func.func @reshape_constant() -> tensor<2x2xi64> {
  %c = quench.constant dense<[1, 2, 3, 4]> : tensor<4xi64>
  %0 = quench.reshape %c : tensor<4xi64> -> tensor<2x2xi64>
  return %0 : tensor<2x2xi64>
}

// -----

// CHECK-LABEL: func @transpose_identity
// CHECK-NEXT: return %arg0
func.func @transpose_identity(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = quench.transpose %x {permutation = array<i64: 0, 1>} : tensor<2x3xf32> -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// CHECK-LABEL: func @transpose_compose
// CHECK-NEXT: %[[T:.*]] = quench.transpose %arg0 {permutation = array<i64: 2, 0, 1>} : tensor<2x3x4xf32> -> tensor<4x2x3xf32>
// CHECK-NEXT: return %[[T]]
func.func @transpose_compose(%x: tensor<2x3x4xf32>) -> tensor<4x2x3xf32> {
  %0 = quench.transpose %x {permutation = array<i64: 0, 2, 1>} : tensor<2x3x4xf32> -> tensor<2x4x3xf32>
  %1 = quench.transpose %0 {permutation = array<i64: 1, 0, 2>} : tensor<2x4x3xf32> -> tensor<4x2x3xf32>
  return %1 : tensor<4x2x3xf32>
}

// -----

// Two transposes that cancel disappear entirely.
// CHECK-LABEL: func @transpose_cancel
// CHECK-NEXT: return %arg0
func.func @transpose_cancel(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = quench.transpose %x {permutation = array<i64: 1, 0>} : tensor<2x3xf32> -> tensor<3x2xf32>
  %1 = quench.transpose %0 {permutation = array<i64: 1, 0>} : tensor<3x2xf32> -> tensor<2x3xf32>
  return %1 : tensor<2x3xf32>
}

// -----

// CHECK-LABEL: func @concat_single
// CHECK-NEXT: return %arg0
func.func @concat_single(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = quench.concat %x {axis = 0 : i64} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// CHECK-LABEL: func @slice_identity
// CHECK-NEXT: return %arg0
func.func @slice_identity(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = quench.slice %x {starts = array<i64: 0>, ends = array<i64: 4>, steps = array<i64: 1>} : tensor<4xf32> -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// CHECK-LABEL: func @slice_not_identity
// CHECK: quench.slice
func.func @slice_not_identity(%x: tensor<4xf32>) -> tensor<2xf32> {
  %0 = quench.slice %x {starts = array<i64: 0>, ends = array<i64: 4>, steps = array<i64: 2>} : tensor<4xf32> -> tensor<2xf32>
  return %0 : tensor<2xf32>
}

// -----

// CHECK-LABEL: func @expand_identity
// CHECK-NEXT: return %arg0
func.func @expand_identity(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = quench.expand %x : tensor<2x3xf32> -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// CHECK-LABEL: func @shape_of_static
// CHECK-NEXT: %[[C:.*]] = quench.constant dense<[2, 3]> : tensor<2xi64>
// CHECK-NEXT: return %[[C]]
func.func @shape_of_static(%x: tensor<2x3xf32>) -> tensor<2xi64> {
  %0 = quench.shape_of %x : tensor<2x3xf32> -> tensor<2xi64>
  return %0 : tensor<2xi64>
}

// -----

// CHECK-LABEL: func @shape_of_dynamic
// CHECK: quench.shape_of
func.func @shape_of_dynamic(%x: tensor<?x3xf32>) -> tensor<2xi64> {
  %0 = quench.shape_of %x : tensor<?x3xf32> -> tensor<2xi64>
  return %0 : tensor<2xi64>
}

// -----

// CHECK-LABEL: func @squeeze_to_reshape
// CHECK-NEXT: quench.reshape %arg0 : tensor<1x3x1xf32> -> tensor<3xf32>
func.func @squeeze_to_reshape(%x: tensor<1x3x1xf32>) -> tensor<3xf32> {
  %0 = quench.squeeze %x {axes = array<i64: 0, 2>} : tensor<1x3x1xf32> -> tensor<3xf32>
  return %0 : tensor<3xf32>
}

// -----

// CHECK-LABEL: func @unsqueeze_to_reshape
// CHECK-NEXT: quench.reshape %arg0 : tensor<3xf32> -> tensor<1x3xf32>
func.func @unsqueeze_to_reshape(%x: tensor<3xf32>) -> tensor<1x3xf32> {
  %0 = quench.unsqueeze %x {axes = array<i64: 0>} : tensor<3xf32> -> tensor<1x3xf32>
  return %0 : tensor<1x3xf32>
}

// -----

// Unused pure ops are erased.
// CHECK-LABEL: func @dead
// CHECK-NEXT: return
func.func @dead(%x: tensor<3xf32>) {
  %0 = quench.exp %x : tensor<3xf32>
  return
}
