// RUN: quench-opt %s -split-input-file --quench-decompose-attention | FileCheck %s

// GQA (4 query heads, 2 kv heads), an int8 key with its scales, an f16
// value, a broadcast mask: the query splits as [B, Hk, g, S, D], the key is
// converted inside the score contraction (no dequantized copy), the value
// inside the output contraction.

// CHECK-DAG: #[[Q:.*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3, d5)>
// CHECK-DAG: #[[K:.*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d4, d5)>
// CHECK-DAG: #[[KS:.*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d4, 0)>
// CHECK-DAG: #[[MASK:.*]] = affine_map<(d0, d1, d2, d3, d4) -> (0, 0, 0, d3, d4)>
// CHECK-DAG: #[[V:.*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d5, d4)>
// CHECK-LABEL: func.func @gqa_int8_key
// CHECK: %[[Q5:.*]] = tensor.expand_shape %arg0 {{\[}}[0], [1, 2], [3], [4]] output_shape [1, 2, 2, %{{.*}}, 16]
// CHECK: linalg.generic {indexing_maps = [#[[Q]], #[[K]], #[[KS]], {{.*}} ins(%[[Q5]], %arg1, %arg2 : tensor<1x2x2x?x16xf32>, tensor<1x2x?x16xi8>, tensor<1x2x?x1xf32>)
// CHECK:   arith.sitofp %{{.*}} : i8 to f32
// CHECK: tensor.expand_shape %arg4 {{\[}}[0], [1, 2], [3], [4]] output_shape [1, 1, 1,
// CHECK: linalg.generic {indexing_maps = [{{.*}}, #[[MASK]], {{.*}}]
// CHECK:   arith.mulf %{{.*}}, %{{.*}} : f32
// CHECK:   arith.addf
// CHECK: arith.maximumf
// CHECK: math.exp
// CHECK: linalg.generic {indexing_maps = [{{.*}}, #[[V]], {{.*}} ins(%{{.*}}, %arg3 : tensor<1x2x2x?x?xf32>, tensor<1x2x?x16xf16>)
// CHECK:   arith.extf %{{.*}} : f16 to f32
// CHECK: arith.divf
// CHECK: tensor.collapse_shape %{{.*}} {{\[}}[0], [1, 2], [3], [4]] : tensor<1x2x2x?x16xf32> into tensor<1x4x?x16xf32>
// CHECK-NOT: quench.attention
func.func @gqa_int8_key(%q: tensor<1x4x?x16xf32>, %k: tensor<1x2x?x16xi8>, %ks: tensor<1x2x?x1xf32>, %v: tensor<1x2x?x16xf16>, %m: tensor<1x1x?x?xf32>) -> tensor<1x4x?x16xf32> {
  %0 = quench.attention %q, %k, %v key_scale(%ks) bias(%m) {scale = 0.25 : f64} : (tensor<1x4x?x16xf32>, tensor<1x2x?x16xi8>, tensor<1x2x?x16xf16>, tensor<1x2x?x1xf32>, tensor<1x1x?x?xf32>) -> tensor<1x4x?x16xf32>
  return %0 : tensor<1x4x?x16xf32>
}

// -----

// Multi-head, no bias, a per-head bias of T5's shape in the second case.
// CHECK: #[[PH:.*]] = affine_map<(d0, d1, d2, d3, d4) -> (0, d1, 0, d3, d4)>
// CHECK-LABEL: func.func @mha
// CHECK: tensor.expand_shape %arg0 {{\[}}[0], [1, 2], [3], [4]] output_shape [1, 3, 1, 5, 8]
// CHECK-NOT: tensor.expand_shape %arg3
// CHECK: tensor.expand_shape %arg3 {{\[}}[0], [1, 2], [3], [4]] output_shape [1, 3, 1, 5, 7]
// CHECK: linalg.generic {indexing_maps = [{{.*}}, #[[PH]], {{.*}}]
func.func @mha(%q: tensor<1x3x5x8xf32>, %k: tensor<1x3x7x8xf32>, %v: tensor<1x3x7x4xf32>, %b: tensor<1x3x5x7xf32>) -> (tensor<1x3x5x4xf32>, tensor<1x3x5x4xf32>) {
  %0 = quench.attention %q, %k, %v {scale = 1.0 : f64} : (tensor<1x3x5x8xf32>, tensor<1x3x7x8xf32>, tensor<1x3x7x4xf32>) -> tensor<1x3x5x4xf32>
  %1 = quench.attention %q, %k, %v bias(%b) {scale = 1.0 : f64} : (tensor<1x3x5x8xf32>, tensor<1x3x7x8xf32>, tensor<1x3x7x4xf32>, tensor<1x3x5x7xf32>) -> tensor<1x3x5x4xf32>
  return %0, %1 : tensor<1x3x5x4xf32>, tensor<1x3x5x4xf32>
}
