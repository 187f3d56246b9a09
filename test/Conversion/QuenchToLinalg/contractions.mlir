// RUN: quench-opt --convert-quench-to-linalg --split-input-file %s | FileCheck %s

// convert-quench-to-linalg: contractions, reductions, softmax and norms.

// CHECK-LABEL: func.func @matmul_2d(
// CHECK-SAME:      %[[A:.+]]: tensor<?x8xf32>, %[[B:.+]]: tensor<8x?xf32>
// CHECK-DAG:     %[[M:.+]] = tensor.dim %[[A]], %c0
// CHECK-DAG:     %[[N:.+]] = tensor.dim %[[B]], %c1
// CHECK:         %[[E:.+]] = tensor.empty(%[[M]], %[[N]]) : tensor<?x?xf32>
// CHECK:         %[[Z:.+]] = linalg.fill ins(%{{.*}} : f32) outs(%[[E]] : tensor<?x?xf32>)
// CHECK:         %[[R:.+]] = linalg.matmul ins(%[[A]], %[[B]] : tensor<?x8xf32>, tensor<8x?xf32>) outs(%[[Z]] : tensor<?x?xf32>)
// CHECK:         return %[[R]]
func.func @matmul_2d(%a: tensor<?x8xf32>, %b: tensor<8x?xf32>) -> tensor<?x?xf32> {
  %0 = quench.matmul %a, %b : (tensor<?x8xf32>, tensor<8x?xf32>) -> tensor<?x?xf32>
  return %0 : tensor<?x?xf32>
}

// -----

// Batch dims broadcast in the indexing maps (static 1 reads index 0); f16
// accumulates in f32 and is rounded once.
// CHECK-DAG: #[[LHS:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, 0, d2, d4)>
// CHECK-DAG: #[[RHS:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d1, d4, d3)>
// CHECK-DAG: #[[OUT:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3)>
// CHECK-LABEL: func.func @matmul_batch_broadcast_f16(
// CHECK:         %[[ACC:.+]] = linalg.generic {indexing_maps = [#[[LHS]], #[[RHS]], #[[OUT]]], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME:        outs(%{{.*}} : tensor<2x3x?x4xf32>)
// CHECK:           arith.extf
// CHECK:           arith.extf
// CHECK:           arith.mulf {{.*}} : f32
// CHECK:           arith.addf {{.*}} : f32
// CHECK:         linalg.generic {{.*}} ins(%[[ACC]] : tensor<2x3x?x4xf32>) outs(%{{.*}} : tensor<2x3x?x4xf16>)
// CHECK:           arith.truncf %{{.*}} : f32 to f16
func.func @matmul_batch_broadcast_f16(%a: tensor<2x1x?x8xf16>, %b: tensor<3x8x4xf16>) -> tensor<2x3x?x4xf16> {
  %0 = quench.matmul %a, %b : (tensor<2x1x?x8xf16>, tensor<3x8x4xf16>) -> tensor<2x3x?x4xf16>
  return %0 : tensor<2x3x?x4xf16>
}

// -----

// A 1-D lhs is promoted and the promoted dim dropped.
// CHECK-DAG: #[[V:.+]] = affine_map<(d0, d1, d2) -> (d2)>
// CHECK-DAG: #[[B3:.+]] = affine_map<(d0, d1, d2) -> (d0, d2, d1)>
// CHECK-DAG: #[[O2:.+]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @matmul_vec(
// CHECK:         linalg.generic {indexing_maps = [#[[V]], #[[B3]], #[[O2]]], iterator_types = ["parallel", "parallel", "reduction"]}
// CHECK-SAME:        outs(%{{.*}} : tensor<?x4xf32>)
func.func @matmul_vec(%a: tensor<8xf32>, %b: tensor<?x8x4xf32>) -> tensor<?x4xf32> {
  %0 = quench.matmul %a, %b : (tensor<8xf32>, tensor<?x8x4xf32>) -> tensor<?x4xf32>
  return %0 : tensor<?x4xf32>
}

// -----

// The weight is read as stored ([N, K]): no transpose is materialized.
// CHECK-DAG: #[[X:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
// CHECK-DAG: #[[W:.+]] = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
// CHECK-DAG: #[[Y:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @linear_bias(
// CHECK-SAME:      %[[IN:.+]]: tensor<?x?x16xf32>, %[[WT:.+]]: tensor<32x16xf32>, %[[B:.+]]: tensor<32xf32>
// CHECK-NOT:     linalg.transpose
// CHECK:         %[[P:.+]] = linalg.generic {indexing_maps = [#[[X]], #[[W]], #[[Y]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME:        ins(%[[IN]], %[[WT]] : tensor<?x?x16xf32>, tensor<32x16xf32>)
// CHECK:         linalg.generic {{.*}} ins(%[[P]], %[[B]] : tensor<?x?x32xf32>, tensor<32xf32>)
// CHECK:           arith.addf
func.func @linear_bias(%x: tensor<?x?x16xf32>, %w: tensor<32x16xf32>, %b: tensor<32xf32>) -> tensor<?x?x32xf32> {
  %0 = quench.linear %x, %w, %b : (tensor<?x?x16xf32>, tensor<32x16xf32>, tensor<32xf32>) -> tensor<?x?x32xf32>
  return %0 : tensor<?x?x32xf32>
}

// -----

// A weight given as a 2-D transpose (quench-raise-ops' form of a MatMul's
// [K, N] initializer) is contracted on the transpose's input as stored,
// [K, N]; an f16 weight of an f32 layer is extended in the body. (The
// transpose itself is left dead.)
// CHECK-DAG: #[[X:.+]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-DAG: #[[W:.+]] = affine_map<(d0, d1, d2) -> (d2, d1)>
// CHECK-DAG: #[[Y:.+]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @linear_transposed_weight(
// CHECK-SAME:      %[[IN:.+]]: tensor<3x16xf32>, %[[WKN:.+]]: tensor<16x?xf16>
// CHECK:         tensor.empty(%{{.+}}) : tensor<3x?xf32>
// CHECK:         linalg.generic {indexing_maps = [#[[X]], #[[W]], #[[Y]]], iterator_types = ["parallel", "parallel", "reduction"]}
// CHECK-SAME:        ins(%[[IN]], %[[WKN]] : tensor<3x16xf32>, tensor<16x?xf16>)
// CHECK:           arith.extf %{{.*}} : f16 to f32
func.func @linear_transposed_weight(%x: tensor<3x16xf32>, %w: tensor<16x?xf16>) -> tensor<3x?xf32> {
  %t = quench.transpose %w {permutation = array<i64: 1, 0>} : tensor<16x?xf16> -> tensor<?x16xf16>
  %0 = quench.linear %x, %t : (tensor<3x16xf32>, tensor<?x16xf16>) -> tensor<3x?xf32>
  return %0 : tensor<3x?xf32>
}

// -----

// CHECK-LABEL: func.func @reduce_mean_keep(
// CHECK-SAME:      %[[X:.+]]: tensor<?x?x8xf16>
// CHECK:         %[[S:.+]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction", "parallel"]} ins(%[[X]] : tensor<?x?x8xf16>) outs(%{{.*}} : tensor<?x8xf32>)
// CHECK:           arith.extf
// CHECK:           arith.addf
// CHECK:         %[[D:.+]] = tensor.dim %[[X]], %{{.*}} : tensor<?x?x8xf16>
// CHECK:         %[[N:.+]] = arith.sitofp %{{.*}} : i64 to f32
// CHECK:         %[[M:.+]] = linalg.generic {{.*}} ins(%[[S]] : tensor<?x8xf32>) outs(%{{.*}} : tensor<?x8xf16>)
// CHECK:           arith.divf %{{.*}}, %[[N]] : f32
// CHECK:           arith.truncf
// CHECK:         tensor.expand_shape %[[M]] {{\[\[}}0, 1], [2]] output_shape [%{{.*}}, 1, 8] : tensor<?x8xf16> into tensor<?x1x8xf16>
func.func @reduce_mean_keep(%x: tensor<?x?x8xf16>) -> tensor<?x1x8xf16> {
  %0 = quench.reduce mean %x {axes = array<i64: 1>, keep_dims = true} : (tensor<?x?x8xf16>) -> tensor<?x1x8xf16>
  return %0 : tensor<?x1x8xf16>
}

// -----

// CHECK-LABEL: func.func @reduce_max_int(
// CHECK:         %[[MIN:.+]] = arith.constant -2147483648 : i32
// CHECK:         linalg.fill ins(%[[MIN]] : i32)
// CHECK:         linalg.generic
// CHECK:           arith.maxsi
func.func @reduce_max_int(%x: tensor<4x?xi32>) -> tensor<4xi32> {
  %0 = quench.reduce max %x {axes = array<i64: 1>, keep_dims = false} : (tensor<4x?xi32>) -> tensor<4xi32>
  return %0 : tensor<4xi32>
}

// -----

// CHECK-LABEL: func.func @softmax(
// CHECK-SAME:      %[[X:.+]]: tensor<?x?xf32>
// CHECK:         %[[NINF:.+]] = arith.constant 0xFF800000 : f32
// CHECK:         %[[MAX:.+]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%[[X]] : tensor<?x?xf32>)
// CHECK:           arith.maximumf
// CHECK:         %[[SUM:.+]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%[[X]], %[[MAX]] : tensor<?x?xf32>, tensor<?xf32>)
// CHECK:           arith.subf
// CHECK:           math.exp
// CHECK:           arith.addf
// CHECK:         linalg.generic {{.*}} iterator_types = ["parallel", "parallel"]} ins(%[[X]], %[[MAX]], %[[SUM]] : tensor<?x?xf32>, tensor<?xf32>, tensor<?xf32>)
// CHECK:           arith.subf
// CHECK:           math.exp
// CHECK:           arith.divf
func.func @softmax(%x: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %0 = quench.softmax %x {axis = 1 : i64} : tensor<?x?xf32>
  return %0 : tensor<?x?xf32>
}

// -----

// Statistics in f32 for f16 input, one rounding at the end.
// CHECK-LABEL: func.func @layer_norm(
// CHECK-SAME:      %[[X:.+]]: tensor<?x16xf16>, %[[S:.+]]: tensor<16xf16>, %[[B:.+]]: tensor<16xf16>
// CHECK:         %[[SUM:.+]] = linalg.generic {{.*}} ins(%[[X]] : tensor<?x16xf16>) outs(%{{.*}} : tensor<?xf32>)
// CHECK:         %[[SQ:.+]] = linalg.generic {{.*}} ins(%[[X]], %[[SUM]] : tensor<?x16xf16>, tensor<?xf32>) outs(%{{.*}} : tensor<?xf32>)
// CHECK:         linalg.generic {{.*}} ins(%[[X]], %[[SUM]], %[[SQ]], %[[S]], %[[B]] : {{.*}}) outs(%{{.*}} : tensor<?x16xf16>)
// CHECK:           math.sqrt %{{.*}} : f32
// CHECK:           arith.truncf %{{.*}} : f32 to f16
func.func @layer_norm(%x: tensor<?x16xf16>, %s: tensor<16xf16>, %b: tensor<16xf16>) -> tensor<?x16xf16> {
  %0 = quench.layer_norm %x, %s, %b {axis = 1 : i64, epsilon = 1.0e-05 : f64} : (tensor<?x16xf16>, tensor<16xf16>, tensor<16xf16>) -> tensor<?x16xf16>
  return %0 : tensor<?x16xf16>
}

// -----

// CHECK-LABEL: func.func @rms_norm(
// CHECK-SAME:      %[[X:.+]]: tensor<?x16xf32>, %[[S:.+]]: tensor<16xf32>
// CHECK:         %[[SQ:.+]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%[[X]] : tensor<?x16xf32>)
// CHECK:           arith.mulf
// CHECK:           arith.addf
// CHECK:         linalg.generic {{.*}} ins(%[[X]], %[[SQ]], %[[S]] : tensor<?x16xf32>, tensor<?xf32>, tensor<16xf32>)
// CHECK:           math.sqrt
// CHECK:           arith.divf
// CHECK:           arith.mulf
func.func @rms_norm(%x: tensor<?x16xf32>, %s: tensor<16xf32>) -> tensor<?x16xf32> {
  %0 = quench.rms_norm %x, %s {axis = 1 : i64, epsilon = 1.0e-06 : f64} : (tensor<?x16xf32>, tensor<16xf32>) -> tensor<?x16xf32>
  return %0 : tensor<?x16xf32>
}

// -----

// Q·Kᵀ: a transpose of the last two dims of the right-hand side is read
// through (the contraction indexes K as stored), not materialized.
// CHECK-DAG: #[[QMAP:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d4)>
// CHECK-DAG: #[[KMAP:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d3, d4)>
// CHECK-LABEL: func.func @matmul_transposed_rhs(
// CHECK-SAME:      %[[Q:.+]]: tensor<1x2x?x16xf32>, %[[K:.+]]: tensor<1x2x?x16xf32>
// (The unused transpose goes at the next canonicalization.)
// CHECK:         linalg.generic {indexing_maps = [#[[QMAP]], #[[KMAP]], #{{.*}}], {{.*}} ins(%[[Q]], %[[K]] : tensor<1x2x?x16xf32>, tensor<1x2x?x16xf32>)
func.func @matmul_transposed_rhs(%q: tensor<1x2x?x16xf32>, %k: tensor<1x2x?x16xf32>) -> tensor<1x2x?x?xf32> {
  %kt = quench.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<1x2x?x16xf32> -> tensor<1x2x16x?xf32>
  %s = quench.matmul %q, %kt : (tensor<1x2x?x16xf32>, tensor<1x2x16x?xf32>) -> tensor<1x2x?x?xf32>
  return %s : tensor<1x2x?x?xf32>
}
