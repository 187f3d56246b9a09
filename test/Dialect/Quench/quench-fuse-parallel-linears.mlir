// RUN: quench-opt %s --split-input-file --quench-fuse-parallel-linears | FileCheck %s

// q, k, v of one input: one product over the weights concatenated along N
// (rows of [N, K]), biases concatenated, a split of the last dimension.
// CHECK-LABEL: func.func @qkv
// CHECK-DAG: %[[W:.*]] = quench.constant dense<{{\[\[}}1.000000e+00, 2.000000e+00], [3.000000e+00, 4.000000e+00], [5.000000e+00, 6.000000e+00], [7.000000e+00, 8.000000e+00]]> : tensor<4x2xf32>
// CHECK-DAG: %[[B:.*]] = quench.constant dense<[1.000000e-01, 2.000000e-01, 3.000000e-01, 4.000000e-01]> : tensor<4xf32>
// CHECK: %[[Y:.*]] = quench.linear %arg0, %[[W]], %[[B]] : (tensor<?x3x2xf32>, tensor<4x2xf32>, tensor<4xf32>) -> tensor<?x3x4xf32>
// CHECK: %[[S:.*]]:3 = quench.split %[[Y]] {axis = 2 : i64, sizes = array<i64: 2, 1, 1>} : tensor<?x3x4xf32> -> tensor<?x3x2xf32>, tensor<?x3x1xf32>, tensor<?x3x1xf32>
// CHECK: return %[[S]]#0, %[[S]]#1, %[[S]]#2
func.func @qkv(%x: tensor<?x3x2xf32>) -> (tensor<?x3x2xf32>, tensor<?x3x1xf32>, tensor<?x3x1xf32>) {
  %wq = quench.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
  %wk = quench.constant dense<[[5.0, 6.0]]> : tensor<1x2xf32>
  %wv = quench.constant dense<[[7.0, 8.0]]> : tensor<1x2xf32>
  %bq = quench.constant dense<[0.1, 0.2]> : tensor<2xf32>
  %bk = quench.constant dense<[0.3]> : tensor<1xf32>
  %bv = quench.constant dense<[0.4]> : tensor<1xf32>
  %q = quench.linear %x, %wq, %bq : (tensor<?x3x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<?x3x2xf32>
  %k = quench.linear %x, %wk, %bk : (tensor<?x3x2xf32>, tensor<1x2xf32>, tensor<1xf32>) -> tensor<?x3x1xf32>
  %v = quench.linear %x, %wv, %bv : (tensor<?x3x2xf32>, tensor<1x2xf32>, tensor<1xf32>) -> tensor<?x3x1xf32>
  return %q, %k, %v : tensor<?x3x2xf32>, tensor<?x3x1xf32>, tensor<?x3x1xf32>
}

// -----

// MatMul initializers [K, N] under a transpose: the stored weights side by
// side ([K, N1 + N2], row by row), transposed again.
// CHECK-LABEL: func.func @gate_up_transposed
// CHECK: %[[W:.*]] = quench.constant dense<{{\[\[}}1.000000e+00, 2.000000e+00, 5.000000e+00], [3.000000e+00, 4.000000e+00, 6.000000e+00]]> : tensor<2x3xf32>
// CHECK: %[[T:.*]] = quench.transpose %[[W]] {permutation = array<i64: 1, 0>} : tensor<2x3xf32> -> tensor<3x2xf32>
// CHECK: %[[Y:.*]] = quench.linear %arg0, %[[T]] : (tensor<1x2xf32>, tensor<3x2xf32>) -> tensor<1x3xf32>
// CHECK: quench.split %[[Y]] {axis = 1 : i64, sizes = array<i64: 2, 1>}
func.func @gate_up_transposed(%x: tensor<1x2xf32>) -> (tensor<1x2xf32>, tensor<1x1xf32>) {
  %g = quench.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
  %u = quench.constant dense<[[5.0], [6.0]]> : tensor<2x1xf32>
  %gt = quench.transpose %g {permutation = array<i64: 1, 0>} : tensor<2x2xf32> -> tensor<2x2xf32>
  %ut = quench.transpose %u {permutation = array<i64: 1, 0>} : tensor<2x1xf32> -> tensor<1x2xf32>
  %a = quench.linear %x, %gt : (tensor<1x2xf32>, tensor<2x2xf32>) -> tensor<1x2xf32>
  %b = quench.linear %x, %ut : (tensor<1x2xf32>, tensor<1x2xf32>) -> tensor<1x1xf32>
  return %a, %b : tensor<1x2xf32>, tensor<1x1xf32>
}

// -----

// Quantized layers of one scheme: codes, scales and zero points
// concatenated along N; out_features is the sum.
// CHECK-LABEL: func.func @nbits
// CHECK-DAG: %[[C:.*]] = quench.constant dense<{{\[\[\[}}1, 2]], {{\[\[}}3, 4]], {{\[\[}}5, 6]]]> : tensor<3x1x2xui8>
// CHECK-DAG: %[[S:.*]] = quench.constant dense<{{\[\[}}1.000000e+00], [2.000000e+00], [3.000000e+00]]> : tensor<3x1xf16>
// CHECK: %[[Y:.*]] = quench.matmul_nbits %arg0, %[[C]], %[[S]] {bits = 8 : i64, block_size = 2 : i64, in_features = 2 : i64, out_features = 3 : i64}
// CHECK: quench.split %[[Y]] {axis = 1 : i64, sizes = array<i64: 2, 1>}
// A layer of another scheme (4 bits) on the same input stays apart.
// CHECK: quench.matmul_nbits %arg0, {{.*}} {bits = 4 : i64
func.func @nbits(%x: tensor<1x2xf32>) -> (tensor<1x2xf32>, tensor<1x1xf32>, tensor<1x1xf32>) {
  %c1 = quench.constant dense<[[[1, 2]], [[3, 4]]]> : tensor<2x1x2xui8>
  %s1 = quench.constant dense<[[1.0], [2.0]]> : tensor<2x1xf16>
  %c2 = quench.constant dense<[[[5, 6]]]> : tensor<1x1x2xui8>
  %s2 = quench.constant dense<[[3.0]]> : tensor<1x1xf16>
  %c3 = quench.constant dense<[[[7]]]> : tensor<1x1x1xui8>
  %s3 = quench.constant dense<[[4.0]]> : tensor<1x1xf16>
  %a = quench.matmul_nbits %x, %c1, %s1 {bits = 8 : i64, block_size = 2 : i64, in_features = 2 : i64, out_features = 2 : i64} : (tensor<1x2xf32>, tensor<2x1x2xui8>, tensor<2x1xf16>) -> tensor<1x2xf32>
  %b = quench.matmul_nbits %x, %c2, %s2 {bits = 8 : i64, block_size = 2 : i64, in_features = 2 : i64, out_features = 1 : i64} : (tensor<1x2xf32>, tensor<1x1x2xui8>, tensor<1x1xf16>) -> tensor<1x1xf32>
  %c = quench.matmul_nbits %x, %c3, %s3 {bits = 4 : i64, block_size = 2 : i64, in_features = 2 : i64, out_features = 1 : i64} : (tensor<1x2xf32>, tensor<1x1x1xui8>, tensor<1x1xf16>) -> tensor<1x1xf32>
  return %a, %b, %c : tensor<1x2xf32>, tensor<1x1xf32>, tensor<1x1xf32>
}

// -----

// Not fused: different inputs, a computed weight, a bias on one only,
// different marks.
// CHECK-LABEL: func.func @apart
// CHECK-NOT: quench.split
// CHECK-COUNT-6: quench.linear
// CHECK-NOT: quench.split
func.func @apart(%x: tensor<1x2xf32>, %y: tensor<1x2xf32>, %w: tensor<1x2xf32>) -> (tensor<1x1xf32>, tensor<1x1xf32>, tensor<1x1xf32>, tensor<1x1xf32>, tensor<1x1xf32>, tensor<1x1xf32>) {
  %w1 = quench.constant dense<[[1.0, 2.0]]> : tensor<1x2xf32>
  %w2 = quench.constant dense<[[3.0, 4.0]]> : tensor<1x2xf32>
  %b = quench.constant dense<[0.5]> : tensor<1xf32>
  %a0 = quench.linear %x, %w1 : (tensor<1x2xf32>, tensor<1x2xf32>) -> tensor<1x1xf32>
  %a1 = quench.linear %y, %w2 : (tensor<1x2xf32>, tensor<1x2xf32>) -> tensor<1x1xf32>
  %a2 = quench.linear %y, %w : (tensor<1x2xf32>, tensor<1x2xf32>) -> tensor<1x1xf32>
  %a3 = quench.linear %x, %w2, %b : (tensor<1x2xf32>, tensor<1x2xf32>, tensor<1xf32>) -> tensor<1x1xf32>
  %z = quench.relu %x : tensor<1x2xf32>
  %a4 = quench.linear %z, %w1 {quench.sparsity = "2:4 magnitude"} : (tensor<1x2xf32>, tensor<1x2xf32>) -> tensor<1x1xf32>
  %a5 = quench.linear %z, %w2 : (tensor<1x2xf32>, tensor<1x2xf32>) -> tensor<1x1xf32>
  return %a0, %a1, %a2, %a3, %a4, %a5 : tensor<1x1xf32>, tensor<1x1xf32>, tensor<1x1xf32>, tensor<1x1xf32>, tensor<1x1xf32>, tensor<1x1xf32>
}
