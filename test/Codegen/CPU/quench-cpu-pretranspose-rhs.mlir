// RUN: quench-opt %s --split-input-file --quench-cpu-pretranspose-rhs | FileCheck %s

// A constant weight stored [N, K] (quench.linear's layout) is transposed at
// compile time to [K, N]: 1 2 / 3 4 / 5 6 becomes 1 3 5 / 2 4 6.
// CHECK-DAG: #[[A:.*]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-DAG: #[[BT:.*]] = affine_map<(d0, d1, d2) -> (d2, d1)>
// CHECK-DAG: #[[C:.*]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @linear_const
// CHECK: %[[W:.*]] = arith.constant dense<{{\[}}[1.000000e+00, 3.000000e+00, 5.000000e+00], [2.000000e+00, 4.000000e+00, 6.000000e+00]]> : tensor<2x3xf32>
// CHECK: linalg.generic {indexing_maps = [#[[A]], #[[BT]], #[[C]]]
// CHECK-SAME: ins(%{{.*}}, %[[W]] : tensor<8x2xf32>, tensor<2x3xf32>)
#a = affine_map<(m, n, k) -> (m, k)>
#b = affine_map<(m, n, k) -> (n, k)>
#c = affine_map<(m, n, k) -> (m, n)>
func.func @linear_const(%x: tensor<8x2xf32>, %acc: tensor<8x3xf32>) -> tensor<8x3xf32> {
  %w = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]> : tensor<3x2xf32>
  %r = linalg.generic {indexing_maps = [#a, #b, #c],
                       iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : tensor<8x2xf32>, tensor<3x2xf32>) outs(%acc : tensor<8x3xf32>) {
  ^bb0(%in: f32, %wt: f32, %out: f32):
    %p = arith.mulf %in, %wt : f32
    %s = arith.addf %out, %p : f32
    linalg.yield %s : f32
  } -> tensor<8x3xf32>
  return %r : tensor<8x3xf32>
}

// -----

// Attention's Q·Kᵀ with a computed K [b, n, k]: an explicit transpose to
// [b, k, n] when there are at least 4 rows.
// CHECK-DAG: #[[BT:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d3, d2)>
// CHECK-LABEL: func.func @qk
// CHECK: %[[E:.*]] = tensor.empty() : tensor<6x32x16xf32>
// CHECK: %[[T:.*]] = linalg.transpose ins(%arg1 : tensor<6x16x32xf32>) outs(%[[E]] : tensor<6x32x16xf32>) permutation = [0, 2, 1]
// CHECK: linalg.generic {indexing_maps = [#{{.*}}, #[[BT]], #{{.*}}]
// CHECK-SAME: ins(%arg0, %[[T]] : tensor<6x8x32xf32>, tensor<6x32x16xf32>)
#qa = affine_map<(b, m, n, k) -> (b, m, k)>
#qb = affine_map<(b, m, n, k) -> (b, n, k)>
#qc = affine_map<(b, m, n, k) -> (b, m, n)>
func.func @qk(%q: tensor<6x8x32xf32>, %k: tensor<6x16x32xf32>,
              %acc: tensor<6x8x16xf32>) -> tensor<6x8x16xf32> {
  %r = linalg.generic {indexing_maps = [#qa, #qb, #qc],
                       iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %k : tensor<6x8x32xf32>, tensor<6x16x32xf32>) outs(%acc : tensor<6x8x16xf32>) {
  ^bb0(%a: f32, %b: f32, %out: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %out, %p : f32
    linalg.yield %s : f32
  } -> tensor<6x8x16xf32>
  return %r : tensor<6x8x16xf32>
}

// -----

// One row (decode): the dot products stay; a transpose would cost as much
// as the product.
// CHECK-LABEL: func.func @qk_one_row
// CHECK-NOT: linalg.transpose
// CHECK: ins(%arg0, %arg1 : tensor<6x1x32xf32>, tensor<6x16x32xf32>)
#ra = affine_map<(b, m, n, k) -> (b, m, k)>
#rb = affine_map<(b, m, n, k) -> (b, n, k)>
#rc = affine_map<(b, m, n, k) -> (b, m, n)>
func.func @qk_one_row(%q: tensor<6x1x32xf32>, %k: tensor<6x16x32xf32>,
                      %acc: tensor<6x1x16xf32>) -> tensor<6x1x16xf32> {
  %r = linalg.generic {indexing_maps = [#ra, #rb, #rc],
                       iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %k : tensor<6x1x32xf32>, tensor<6x16x32xf32>) outs(%acc : tensor<6x1x16xf32>) {
  ^bb0(%a: f32, %b: f32, %out: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %out, %p : f32
    linalg.yield %s : f32
  } -> tensor<6x1x16xf32>
  return %r : tensor<6x1x16xf32>
}
