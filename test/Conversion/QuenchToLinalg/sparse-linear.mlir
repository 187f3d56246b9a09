// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg | FileCheck %s

// 2:4 f32 values [N = 2, S = 4] with the packed indices of
// quench-pack-sparse-weights.mlir (73, -100): unpacked at compile time to
// one byte per slot, [N, G, keep] (row 0: 1, 2 | 0, 1; row 1: 0, 3 | 1, 2);
// x viewed as [..., G, group], the values as [N, G, keep]; one generic
// over (batch, n, g, j, t) selects
// x[g, t] * value where t is the slot's index; the bias is added after.
// No dense weight tensor.
// CHECK-LABEL: func.func @f32
// CHECK-DAG: %[[I:.*]] = arith.constant dense<{{\[\[\[}}1, 2], [0, 1]], {{\[\[}}0, 3], [1, 2]]]> : tensor<2x2x2xi8>
// CHECK-DAG: %[[X:.*]] = tensor.expand_shape %arg0 {{\[\[}}0], [1, 2]] output_shape [%{{.*}}, 2, 4] : tensor<?x8xf32> into tensor<?x2x4xf32>
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel", "reduction", "reduction", "reduction"]
// CHECK-SAME: ins(%[[X]], %{{.*}}, %[[I]] : tensor<?x2x4xf32>, tensor<2x2x2xf32>, tensor<2x2x2xi8>)
// CHECK-SAME: attrs = {quench.sparse_matmul}
// CHECK: linalg.index 4
// CHECK: arith.cmpi eq
// CHECK: arith.mulf
// CHECK: arith.select
// CHECK: arith.addf
// CHECK: linalg.generic
// CHECK: arith.addf
// CHECK-NOT: tensor<2x8xf32>
func.func @f32(%x: tensor<?x8xf32>, %b: tensor<2xf32>) -> tensor<?x2xf32> {
  %v = quench.constant dense<[[-0.4, 0.3, 1.0, 1.0], [0.5, -0.5, 3.0, -4.0]]> : tensor<2x4xf32>
  %i = quench.constant dense<[[73], [-100]]> : tensor<2x1xi8>
  %y = quench.sparse_linear %x, %v, %i bias(%b) {group = 4 : i64, keep = 2 : i64} : (tensor<?x8xf32>, tensor<2x4xf32>, tensor<2x1xi8>, tensor<2xf32>) -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}

// -----

// int8 codes with scales per block of 8 inputs (2 groups of 4): the scale
// of group g is scales[n, g floordiv 2].
// CHECK: affine_map<(d0, d1, d2, d3, d4) -> (d1, d2 floordiv 2)>
// CHECK-LABEL: func.func @int8
// CHECK: linalg.generic
// CHECK-SAME: ins(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<1x4x4xf32>, tensor<2x4x2xi8>, tensor<2x4x2xi8>, tensor<2x2xf16>)
// CHECK-SAME: attrs = {quench.sparse_matmul}
// CHECK-DAG: arith.sitofp
// CHECK-DAG: arith.extf
// CHECK: arith.mulf
func.func @int8(%x: tensor<1x16xf32>) -> tensor<1x2xf32> {
  %v = quench.constant dense<1> : tensor<2x8xi8>
  %i = quench.constant dense<[[73, 73], [-100, -100]]> : tensor<2x2xi8>
  %s = quench.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf16>
  %y = quench.sparse_linear %x, %v, %i scales(%s) {block_size = 8 : i64, group = 4 : i64, keep = 2 : i64} : (tensor<1x16xf32>, tensor<2x8xi8>, tensor<2x2xi8>, tensor<2x2xf16>) -> tensor<1x2xf32>
  return %y : tensor<1x2xf32>
}

// -----

// f16 input and values (the CUDA target's mma.sp form): products of the
// extended operands summed in f32.
// CHECK-LABEL: func.func @sparse_f16(
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<3x2x4xf16>, tensor<2x2x2xf16>, tensor<2x2x2xi8>) outs(%{{.*}} : tensor<3x2xf32>)
// CHECK: arith.extf %{{.*}} : f16 to f32
// CHECK: arith.extf %{{.*}} : f16 to f32
// CHECK: arith.mulf
// CHECK: arith.select
// CHECK: arith.addf
func.func @sparse_f16(%x: tensor<3x8xf16>) -> tensor<3x2xf32> {
  %v = quench.constant dense<[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]> : tensor<2x4xf16>
  %i = quench.constant dense<[[73], [-100]]> : tensor<2x1xi8>
  %y = quench.sparse_linear %x, %v, %i {group = 4, keep = 2} : (tensor<3x8xf16>, tensor<2x4xf16>, tensor<2x1xi8>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// i8 input and values (W8A8's contraction): exact products summed in i32.
// CHECK-LABEL: func.func @sparse_i8(
// CHECK: linalg.generic {{.*}} outs(%{{.*}} : tensor<3x2xi32>)
// CHECK: arith.extsi %{{.*}} : i8 to i32
// CHECK: arith.extsi %{{.*}} : i8 to i32
// CHECK: arith.muli
// CHECK: arith.select
// CHECK: arith.addi
func.func @sparse_i8(%x: tensor<3x8xi8>) -> tensor<3x2xi32> {
  %v = quench.constant dense<[[1, 2, 3, 4], [5, 6, 7, 8]]> : tensor<2x4xi8>
  %i = quench.constant dense<[[73], [-100]]> : tensor<2x1xi8>
  %y = quench.sparse_linear %x, %v, %i {group = 4, keep = 2} : (tensor<3x8xi8>, tensor<2x4xi8>, tensor<2x1xi8>) -> tensor<3x2xi32>
  return %y : tensor<3x2xi32>
}

// -----

// 4-bit codes (value_bits = 4: two per byte, slot 2i in the low nibble, each
// the code + 8) are unpacked at compile time to one signed code per slot,
// [N, G, keep]: -45 = 0xD3 holds 3 and 13 (-5, 5), -1 holds 7, 7, 121 = 0x79
// holds 1, -1, 30 = 0x1E holds 6, -7. The generic is the int8 one, marked
// for the CPU kernel to pack the codes again.
// CHECK-LABEL: func.func @int4
// CHECK-DAG: %[[V:.*]] = arith.constant dense<{{\[\[\[}}-5, 5], [7, 7], [1, -1], [6, -7]], {{\[\[}}-5, 5], [7, 7], [1, -1], [6, -7]]]> : tensor<2x4x2xi8>
// CHECK: linalg.generic
// CHECK-SAME: ins(%{{.*}}, %[[V]], %{{.*}}, %{{.*}} : tensor<1x4x4xf32>, tensor<2x4x2xi8>, tensor<2x4x2xi8>, tensor<2x2xf16>)
// CHECK-SAME: attrs = {quench.sparse_matmul, quench.sparse_value_bits = 4 : i64}
// CHECK: arith.sitofp
// CHECK-NOT: tensor<2x16x
func.func @int4(%x: tensor<1x16xf32>) -> tensor<1x2xf32> {
  %v = quench.constant dense<[[-45, -1, 121, 30], [-45, -1, 121, 30]]> : tensor<2x4xi8>
  %i = quench.constant dense<[[73, 73], [-100, -100]]> : tensor<2x2xi8>
  %s = quench.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf16>
  %y = quench.sparse_linear %x, %v, %i scales(%s) {block_size = 8 : i64, group = 4 : i64, keep = 2 : i64, value_bits = 4 : i64} : (tensor<1x16xf32>, tensor<2x4xi8>, tensor<2x2xi8>, tensor<2x2xf16>) -> tensor<1x2xf32>
  return %y : tensor<1x2xf32>
}
