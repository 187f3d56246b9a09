// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg | FileCheck %s

// Constant 4-bit codes (N = 2, K = 32, blocks of 16): laid out K-major at
// compile time ([blocks, bytes per block, N] = [2, 8, 2]; row 0's bytes are
// 0x10 + i, row 1's 0x20 + i), scales [blocks, N]; x viewed as
// [blocks, 8, 2] (two codes per byte). One generic unpacks, dequantizes
// (implicit zero point 8) and accumulates; no dequantized weight tensor.
// CHECK-LABEL: func.func @nbits_const
// CHECK-DAG: arith.constant dense<{{\[\[}}[16, 32], [17, 33], [18, 34], [19, 35], [20, 36], [21, 37], [22, 38], [23, 39]], {{\[\[}}24, 40], [25, 41], [26, 42], [27, 43], [28, 44], [29, 45], [30, 46], [31, 47]]]> : tensor<2x8x2xi8>
// CHECK-DAG: arith.constant dense<{{\[\[}}1.000000e+00, 3.000000e+00], [2.000000e+00, 4.000000e+00]]> : tensor<2x2xf32>
// CHECK: %[[X:.*]] = tensor.expand_shape %arg0 {{\[\[}}0], [1, 2, 3]] output_shape [3, 2, 8, 2] : tensor<3x32xf32> into tensor<3x2x8x2xf32>
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]
// CHECK-SAME: ins(%[[X]], %{{.*}}, %{{.*}} : tensor<3x2x8x2xf32>, tensor<2x8x2xi8>, tensor<2x2xf32>)
// CHECK-SAME: attrs = {quench.dequant_matmul}
// CHECK: arith.extui
// CHECK: arith.shrui
// CHECK: arith.andi
// CHECK: arith.subi
// CHECK: arith.sitofp
// CHECK: arith.mulf
// CHECK: } -> tensor<3x2xf32>
func.func @nbits_const(%x: tensor<3x32xf32>) -> tensor<3x2xf32> {
  %w = quench.constant dense<[[[16, 17, 18, 19, 20, 21, 22, 23], [24, 25, 26, 27, 28, 29, 30, 31]],
                              [[32, 33, 34, 35, 36, 37, 38, 39], [40, 41, 42, 43, 44, 45, 46, 47]]]> : tensor<2x2x8xui8>
  %s = quench.constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %y = quench.matmul_nbits %x, %w, %s {in_features = 32 : i64, out_features = 2 : i64, bits = 4 : i64, block_size = 16 : i64}
      : (tensor<3x32xf32>, tensor<2x2x8xui8>, tensor<4xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// K not a multiple of the block: x is padded with zeros to whole blocks.
// CHECK-LABEL: func.func @nbits_pad
// CHECK: tensor.pad %arg0 low[0, 0] high[0, 8]
// CHECK: tensor.expand_shape {{.*}} into tensor<1x2x16x1xf32>
func.func @nbits_pad(%x: tensor<1x24xf32>) -> tensor<1x2xf32> {
  %w = quench.constant dense<7> : tensor<2x2x16xui8>
  %s = quench.constant dense<0.5> : tensor<4xf16>
  %y = quench.matmul_nbits %x, %w, %s {in_features = 24 : i64, out_features = 2 : i64, bits = 8 : i64, block_size = 16 : i64}
      : (tensor<1x24xf32>, tensor<2x2x16xui8>, tensor<4xf16>) -> tensor<1x2xf32>
  return %y : tensor<1x2xf32>
}

// -----

// Codes known only at run time: loops (m, n, k) reading each code's byte
// with tensor.extract (also the path of 3, 5, 6 and 7 bits).
// CHECK-LABEL: func.func @nbits_runtime
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel", "reduction"]
// CHECK: tensor.extract %arg1
// CHECK-NOT: quench.dequant_matmul
func.func @nbits_runtime(%x: tensor<3x32xf32>, %w: tensor<2x2x8xui8>) -> tensor<3x2xf32> {
  %s = quench.constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %y = quench.matmul_nbits %x, %w, %s {in_features = 32 : i64, out_features = 2 : i64, bits = 4 : i64, block_size = 16 : i64}
      : (tensor<3x32xf32>, tensor<2x2x8xui8>, tensor<4xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// quench.dequantize_nbits: one all-parallel generic over (rows..., block,
// byte, code in byte) unpacks each code (shift, mask), centers it on the
// implicit zero point 8 and scales it (f16 scales extended); the result
// [?, 3, 16, 2] is collapsed to [?, 96] and sliced to the 72 features.
// CHECK-LABEL: func.func @dequantize_nbits
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel", "parallel", "parallel"]
// CHECK-SAME: ins(%{{.*}}, %{{.*}} : tensor<?x3x16xi8>, tensor<?x3xf16>)
// CHECK-SAME: outs(%{{.*}} : tensor<?x3x16x2xf32>)
// CHECK: linalg.index 3
// CHECK: arith.extui
// CHECK: arith.shrui
// CHECK: arith.andi
// CHECK: arith.extf
// CHECK: arith.subi
// CHECK: arith.sitofp
// CHECK: arith.mulf
// CHECK: tensor.collapse_shape {{.*}} {{\[\[}}0], [1, 2, 3]] : tensor<?x3x16x2xf32> into tensor<?x96xf32>
// CHECK: tensor.extract_slice {{.*}}[0, 0] [%{{.*}}, 72] [1, 1] : tensor<?x96xf32> to tensor<?x72xf32>
func.func @dequantize_nbits(%c: tensor<?x3x16xui8>, %s: tensor<?x3xf16>) -> tensor<?x72xf32> {
  %0 = quench.dequantize_nbits %c, %s {bits = 4 : i64, block_size = 32 : i64}
      : (tensor<?x3x16xui8>, tensor<?x3xf16>) -> tensor<?x72xf32>
  return %0 : tensor<?x72xf32>
}

// -----

// Float zero points: (uitofp(code) - zp) * scale.
// CHECK-LABEL: func.func @dequantize_nbits_zp
// CHECK: linalg.generic
// CHECK-SAME: ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<5x2x4xi8>, tensor<5x2xf32>, tensor<5x2xf32>)
// CHECK: arith.uitofp
// CHECK: arith.subf
// CHECK: arith.mulf
// CHECK-NOT: tensor.extract_slice
func.func @dequantize_nbits_zp(%c: tensor<5x2x4xui8>, %s: tensor<5x2xf32>, %z: tensor<5x2xf32>) -> tensor<5x32xf32> {
  %0 = quench.dequantize_nbits %c, %s zp(%z) {bits = 2 : i64, block_size = 16 : i64}
      : (tensor<5x2x4xui8>, tensor<5x2xf32>, tensor<5x2xf32>) -> tensor<5x32xf32>
  return %0 : tensor<5x32xf32>
}
