// RUN: quench-opt %s --quench-fold-qdq -split-input-file | FileCheck %s

// QDQ matmul with an output QuantizeLinear, u8 activations x i8 weights per
// tensor: one qlinear_matmul.
// CHECK-LABEL: func @matmul_per_tensor_q
// CHECK-SAME: (%[[XQ:.*]]: tensor<2x5x8xui8>, %[[XS:.*]]: tensor<f32>, %[[XZ:.*]]: tensor<ui8>)
// CHECK-DAG: %[[W:.*]] = quench.constant dense<{{.*}}> : tensor<8x4xi8>
// CHECK-DAG: %[[WS:.*]] = quench.constant dense<2.500000e-01> : tensor<f32>
// CHECK-DAG: %[[WZ:.*]] = quench.constant dense<0> : tensor<i8>
// CHECK-DAG: %[[YS:.*]] = quench.constant dense<5.000000e-01> : tensor<f32>
// CHECK-DAG: %[[YZ:.*]] = quench.constant dense<3> : tensor<ui8>
// CHECK: %[[Y:.*]] = quench.qlinear_matmul %[[XQ]], %[[XS]], %[[XZ]], %[[W]], %[[WS]], %[[WZ]], %[[YS]], %[[YZ]] : {{.*}} -> tensor<2x5x4xui8>
// CHECK-NOT: quench.matmul
// CHECK-NOT: quench.dequantize_linear
// CHECK: return %[[Y]]
func.func @matmul_per_tensor_q(%xq: tensor<2x5x8xui8>, %xs: tensor<f32>, %xz: tensor<ui8>) -> tensor<2x5x4xui8> {
  %w = quench.constant dense<[[1, -2, 3, -4], [5, -6, 7, -8], [1, 2, 3, 4], [5, 6, 7, 8], [-1, -2, -3, -4], [-5, -6, -7, -8], [9, 10, 11, 12], [-9, -10, -11, -12]]> : tensor<8x4xi8>
  %ws = quench.constant dense<0.25> : tensor<f32>
  %wz = quench.constant dense<0> : tensor<i8>
  %ys = quench.constant dense<0.5> : tensor<f32>
  %yz = quench.constant dense<3> : tensor<ui8>
  %x = quench.dequantize_linear %xq, %xs, %xz {axis = 1 : i64} : (tensor<2x5x8xui8>, tensor<f32>, tensor<ui8>) -> tensor<2x5x8xf32>
  %wd = quench.dequantize_linear %w, %ws, %wz {axis = 1 : i64} : (tensor<8x4xi8>, tensor<f32>, tensor<i8>) -> tensor<8x4xf32>
  %y = quench.matmul %x, %wd : (tensor<2x5x8xf32>, tensor<8x4xf32>) -> tensor<2x5x4xf32>
  %q = quench.quantize_linear %y, %ys, %yz {axis = 1 : i64} : (tensor<2x5x4xf32>, tensor<f32>, tensor<ui8>) -> tensor<2x5x4xui8>
  return %q : tensor<2x5x4xui8>
}

// -----

// A 1-element vector scale (per tensor, and per column of a 1-column
// weight) is passed as a 0-D value.
// CHECK-LABEL: func @one_element_vector
// CHECK-SAME: (%[[XQ:.*]]: tensor<3x8xui8>, %[[XS:.*]]: tensor<f32>, %[[W:.*]]: tensor<8x1xi8>, %[[WS:.*]]: tensor<1xf32>, %[[WZ:.*]]: tensor<1xi8>)
// CHECK: %[[WZ0:.*]] = quench.reshape %[[WZ]] : tensor<1xi8> -> tensor<i8>
// CHECK: quench.matmul_integer %[[XQ]], %[[W]] zp(%{{.*}}) rhs_zp(%[[WZ0]])
// CHECK: %[[WS0:.*]] = quench.reshape %[[WS]] : tensor<1xf32> -> tensor<f32>
// CHECK: quench.mul %[[XS]], %[[WS0]] : (tensor<f32>, tensor<f32>) -> tensor<f32>
func.func @one_element_vector(%xq: tensor<3x8xui8>, %xs: tensor<f32>, %w: tensor<8x1xi8>, %ws: tensor<1xf32>, %wz: tensor<1xi8>) -> tensor<3x1xf32> {
  %x = quench.dequantize_linear %xq, %xs {axis = 1 : i64} : (tensor<3x8xui8>, tensor<f32>) -> tensor<3x8xf32>
  %wd = quench.dequantize_linear %w, %ws, %wz {axis = 1 : i64} : (tensor<8x1xi8>, tensor<1xf32>, tensor<1xi8>) -> tensor<8x1xf32>
  %y = quench.matmul %x, %wd : (tensor<3x8xf32>, tensor<8x1xf32>) -> tensor<3x1xf32>
  return %y : tensor<3x1xf32>
}

// -----

// Per output column (axis 1 of the [K, N] weight), no output quantize:
// exact integer product, then acc * (x_scale * w_scale[n]) in f32.
// CHECK-LABEL: func @matmul_per_column
// CHECK-SAME: (%[[XQ:.*]]: tensor<3x8xui8>, %[[XS:.*]]: tensor<f32>, %[[XZ:.*]]: tensor<ui8>, %[[W:.*]]: tensor<8x4xi8>, %[[WS:.*]]: tensor<4xf32>, %[[WZ:.*]]: tensor<4xi8>)
// CHECK: %[[ACC:.*]] = quench.matmul_integer %[[XQ]], %[[W]] zp(%[[XZ]]) rhs_zp(%[[WZ]]) : {{.*}} -> tensor<3x4xi32>
// CHECK: %[[F:.*]] = quench.cast %[[ACC]] : tensor<3x4xi32> to tensor<3x4xf32>
// CHECK: %[[S:.*]] = quench.mul %[[XS]], %[[WS]] : (tensor<f32>, tensor<4xf32>) -> tensor<4xf32>
// CHECK: %[[Y:.*]] = quench.mul %[[F]], %[[S]] : (tensor<3x4xf32>, tensor<4xf32>) -> tensor<3x4xf32>
// CHECK: return %[[Y]]
func.func @matmul_per_column(%xq: tensor<3x8xui8>, %xs: tensor<f32>, %xz: tensor<ui8>, %w: tensor<8x4xi8>, %ws: tensor<4xf32>, %wz: tensor<4xi8>) -> tensor<3x4xf32> {
  %x = quench.dequantize_linear %xq, %xs, %xz {axis = 1 : i64} : (tensor<3x8xui8>, tensor<f32>, tensor<ui8>) -> tensor<3x8xf32>
  %wd = quench.dequantize_linear %w, %ws, %wz {axis = 1 : i64} : (tensor<8x4xi8>, tensor<4xf32>, tensor<4xi8>) -> tensor<8x4xf32>
  %y = quench.matmul %x, %wd : (tensor<3x8xf32>, tensor<8x4xf32>) -> tensor<3x4xf32>
  return %y : tensor<3x4xf32>
}

// -----

// Missing zero points become zero constants of the codes' types (i8 x i8);
// run-time scales (dynamic_quantize_linear's) need not be constants.
// CHECK-LABEL: func @no_zero_points_dynamic_scale
// CHECK-DAG: %[[Z:.*]] = quench.constant dense<0> : tensor<i8>
// CHECK-DAG: %[[Q:.*]], %[[S:.*]], %[[ZP:.*]] = quench.dynamic_quantize_linear
// CHECK: quench.matmul_integer %[[Q]], %{{.*}} zp(%[[ZP]]) rhs_zp(%[[Z]])
// CHECK: quench.mul %[[S]], %{{.*}} : (tensor<f32>, tensor<f32>) -> tensor<f32>
func.func @no_zero_points_dynamic_scale(%x: tensor<?x8xf32>, %w: tensor<8x4xi8>, %ws: tensor<f32>) -> tensor<?x4xf32> {
  %q, %s, %zp = quench.dynamic_quantize_linear %x : tensor<?x8xf32> -> tensor<?x8xui8>, tensor<f32>, tensor<ui8>
  %xd = quench.dequantize_linear %q, %s, %zp {axis = 1 : i64} : (tensor<?x8xui8>, tensor<f32>, tensor<ui8>) -> tensor<?x8xf32>
  %wd = quench.dequantize_linear %w, %ws {axis = 1 : i64} : (tensor<8x4xi8>, tensor<f32>) -> tensor<8x4xf32>
  %y = quench.matmul %xd, %wd : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

// Gemm(transB) imports as quench.linear with an [N, K] weight quantized per
// row (axis 0 = per output column of the product): the constant codes are
// transposed at compile time, the bias is added after the rescale.
// CHECK-LABEL: func @linear_bias
// CHECK-SAME: (%[[XQ:.*]]: tensor<2x3xui8>, %[[XS:.*]]: tensor<f32>, %[[XZ:.*]]: tensor<ui8>, %[[WS:.*]]: tensor<2xf32>, %[[B:.*]]: tensor<2xf32>)
// CHECK-DAG: %[[WT:.*]] = quench.constant dense<{{\[}}[1, 4], [2, 5], [3, 6]]> : tensor<3x2xi8>
// CHECK-DAG: %[[Z:.*]] = quench.constant dense<0> : tensor<i8>
// CHECK: %[[ACC:.*]] = quench.matmul_integer %[[XQ]], %[[WT]] zp(%[[XZ]]) rhs_zp(%[[Z]]) : {{.*}} -> tensor<2x2xi32>
// CHECK: %[[F:.*]] = quench.cast %[[ACC]]
// CHECK: %[[S:.*]] = quench.mul %[[XS]], %[[WS]]
// CHECK: %[[R:.*]] = quench.mul %[[F]], %[[S]]
// CHECK: %[[Y:.*]] = quench.add %[[R]], %[[B]]
// CHECK: return %[[Y]]
func.func @linear_bias(%xq: tensor<2x3xui8>, %xs: tensor<f32>, %xz: tensor<ui8>, %ws: tensor<2xf32>, %b: tensor<2xf32>) -> tensor<2x2xf32> {
  %w = quench.constant dense<[[1, 2, 3], [4, 5, 6]]> : tensor<2x3xi8>
  %x = quench.dequantize_linear %xq, %xs, %xz {axis = 1 : i64} : (tensor<2x3xui8>, tensor<f32>, tensor<ui8>) -> tensor<2x3xf32>
  %wd = quench.dequantize_linear %w, %ws {axis = 0 : i64} : (tensor<2x3xi8>, tensor<2xf32>) -> tensor<2x3xf32>
  %y = quench.linear %x, %wd, %b : (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2xf32>) -> tensor<2x2xf32>
  return %y : tensor<2x2xf32>
}

// -----

// A linear without bias followed by a quantize_linear: qlinear_matmul; a
// weight that is not a constant is transposed by a quench.transpose.
// CHECK-LABEL: func @linear_q_runtime_weight
// CHECK-SAME: (%[[XQ:.*]]: tensor<2x3xi8>, %[[W:.*]]: tensor<2x3xi8>, %[[S:.*]]: tensor<f32>)
// CHECK: %[[WT:.*]] = quench.transpose %[[W]] {permutation = array<i64: 1, 0>}
// CHECK: quench.qlinear_matmul %[[XQ]], %[[S]], %{{.*}}, %[[WT]], %[[S]], %{{.*}}, %[[S]], %{{.*}} : {{.*}} -> tensor<2x2xi8>
// CHECK-NOT: quench.quantize_linear
func.func @linear_q_runtime_weight(%xq: tensor<2x3xi8>, %w: tensor<2x3xi8>, %s: tensor<f32>) -> tensor<2x2xi8> {
  %x = quench.dequantize_linear %xq, %s {axis = 1 : i64} : (tensor<2x3xi8>, tensor<f32>) -> tensor<2x3xf32>
  %wd = quench.dequantize_linear %w, %s {axis = 0 : i64} : (tensor<2x3xi8>, tensor<f32>) -> tensor<2x3xf32>
  %y = quench.linear %x, %wd : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x2xf32>
  %q = quench.quantize_linear %y, %s {axis = 1 : i64} : (tensor<2x2xf32>, tensor<f32>) -> tensor<2x2xi8>
  return %q : tensor<2x2xi8>
}

// -----

// An output quantize_linear with a per-axis scale, or a product with other
// users: the product is folded, the quantize_linear stays.
// CHECK-LABEL: func @output_q_not_fused
// CHECK: %[[Y:.*]] = quench.mul %{{.*}} : (tensor<3x4xf32>, tensor<f32>)
// CHECK: quench.quantize_linear %[[Y]]
// CHECK: quench.matmul_integer
// CHECK: %[[Y2:.*]] = quench.mul %{{.*}} : (tensor<3x4xf32>, tensor<f32>)
// CHECK: %[[Q2:.*]] = quench.quantize_linear %[[Y2]]
// CHECK: return %{{.*}}, %[[Q2]], %[[Y2]]
func.func @output_q_not_fused(%xq: tensor<3x8xui8>, %s: tensor<f32>, %w: tensor<8x4xi8>, %ys: tensor<4xf32>) -> (tensor<3x4xui8>, tensor<3x4xui8>, tensor<3x4xf32>) {
  %x = quench.dequantize_linear %xq, %s {axis = 1 : i64} : (tensor<3x8xui8>, tensor<f32>) -> tensor<3x8xf32>
  %wd = quench.dequantize_linear %w, %s {axis = 1 : i64} : (tensor<8x4xi8>, tensor<f32>) -> tensor<8x4xf32>
  %y = quench.matmul %x, %wd : (tensor<3x8xf32>, tensor<8x4xf32>) -> tensor<3x4xf32>
  %q = quench.quantize_linear %y, %ys {axis = 1 : i64} : (tensor<3x4xf32>, tensor<4xf32>) -> tensor<3x4xui8>
  %y2 = quench.matmul %x, %wd : (tensor<3x8xf32>, tensor<8x4xf32>) -> tensor<3x4xf32>
  %q2 = quench.quantize_linear %y2, %s {axis = 1 : i64} : (tensor<3x4xf32>, tensor<f32>) -> tensor<3x4xui8>
  return %q, %q2, %y2 : tensor<3x4xui8>, tensor<3x4xui8>, tensor<3x4xf32>
}

// -----

// Not folded: weight scales per row of K (axis 0 of a matmul operand),
// activation scales per axis, 16-bit codes, f16 scales, a batched weight,
// a scale of unknown length.
// CHECK-LABEL: func @unchanged
// CHECK-NOT: quench.matmul_integer
// CHECK-NOT: quench.qlinear_matmul
// CHECK-COUNT-6: quench.matmul %
func.func @unchanged(%xq: tensor<3x8xui8>, %s: tensor<f32>, %w: tensor<8x4xi8>, %sk: tensor<8xf32>, %sm: tensor<3xf32>,
                     %x16: tensor<3x8xi16>, %sh: tensor<f16>, %xh: tensor<3x8xui8>, %wb: tensor<2x8x4xi8>, %sd: tensor<?xf32>)
    -> (tensor<3x4xf32>, tensor<3x4xf32>, tensor<3x4xf32>, tensor<3x4xf16>, tensor<2x3x4xf32>, tensor<3x4xf32>) {
  %x = quench.dequantize_linear %xq, %s {axis = 1 : i64} : (tensor<3x8xui8>, tensor<f32>) -> tensor<3x8xf32>
  %wk = quench.dequantize_linear %w, %sk {axis = 0 : i64} : (tensor<8x4xi8>, tensor<8xf32>) -> tensor<8x4xf32>
  %y0 = quench.matmul %x, %wk : (tensor<3x8xf32>, tensor<8x4xf32>) -> tensor<3x4xf32>
  %xm = quench.dequantize_linear %xq, %sm {axis = 0 : i64} : (tensor<3x8xui8>, tensor<3xf32>) -> tensor<3x8xf32>
  %wd = quench.dequantize_linear %w, %s {axis = 1 : i64} : (tensor<8x4xi8>, tensor<f32>) -> tensor<8x4xf32>
  %y1 = quench.matmul %xm, %wd : (tensor<3x8xf32>, tensor<8x4xf32>) -> tensor<3x4xf32>
  %xw = quench.dequantize_linear %x16, %s {axis = 1 : i64} : (tensor<3x8xi16>, tensor<f32>) -> tensor<3x8xf32>
  %y2 = quench.matmul %xw, %wd : (tensor<3x8xf32>, tensor<8x4xf32>) -> tensor<3x4xf32>
  %xhd = quench.dequantize_linear %xh, %sh {axis = 1 : i64} : (tensor<3x8xui8>, tensor<f16>) -> tensor<3x8xf16>
  %whd = quench.dequantize_linear %w, %sh {axis = 1 : i64} : (tensor<8x4xi8>, tensor<f16>) -> tensor<8x4xf16>
  %y3 = quench.matmul %xhd, %whd : (tensor<3x8xf16>, tensor<8x4xf16>) -> tensor<3x4xf16>
  %wbd = quench.dequantize_linear %wb, %s {axis = 1 : i64} : (tensor<2x8x4xi8>, tensor<f32>) -> tensor<2x8x4xf32>
  %y4 = quench.matmul %x, %wbd : (tensor<3x8xf32>, tensor<2x8x4xf32>) -> tensor<2x3x4xf32>
  %wdd = quench.dequantize_linear %w, %sd {axis = 1 : i64} : (tensor<8x4xi8>, tensor<?xf32>) -> tensor<8x4xf32>
  %y5 = quench.matmul %x, %wdd : (tensor<3x8xf32>, tensor<8x4xf32>) -> tensor<3x4xf32>
  return %y0, %y1, %y2, %y3, %y4, %y5 : tensor<3x4xf32>, tensor<3x4xf32>, tensor<3x4xf32>, tensor<3x4xf16>, tensor<2x3x4xf32>, tensor<3x4xf32>
}
