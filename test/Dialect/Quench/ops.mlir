// RUN: quench-opt %s | FileCheck %s
// Round trip through the generic form must be lossless too.
// RUN: quench-opt %s --mlir-print-op-generic | quench-opt | FileCheck %s
// Weights in dense_resource blobs survive printing and re-parsing.
// RUN: quench-opt %s | quench-opt | FileCheck %s

// CHECK-LABEL: func @constants
func.func @constants() -> (tensor<2xf32>, tensor<4xf32>) {
  // CHECK: quench.constant dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>
  %0 = quench.constant dense<[1.0, 2.0]> : tensor<2xf32>
  // CHECK: quench.constant dense_resource<w0> : tensor<4xf32>
  %1 = quench.constant dense_resource<w0> : tensor<4xf32>
  return %0, %1 : tensor<2xf32>, tensor<4xf32>
}

// CHECK-LABEL: func @unary
func.func @unary(%x: tensor<2x?xf32>, %i: tensor<3xi32>, %b: tensor<3xi1>) {
  // CHECK: quench.sqrt %{{.*}} : tensor<2x?xf32>
  %0 = quench.sqrt %x : tensor<2x?xf32>
  // CHECK: quench.rsqrt
  %1 = quench.rsqrt %x : tensor<2x?xf32>
  // CHECK: quench.reciprocal
  %2 = quench.reciprocal %x : tensor<2x?xf32>
  // CHECK: quench.exp
  %3 = quench.exp %x : tensor<2x?xf32>
  // CHECK: quench.log
  %4 = quench.log %x : tensor<2x?xf32>
  // CHECK: quench.tanh
  %5 = quench.tanh %x : tensor<2x?xf32>
  // CHECK: quench.erf
  %6 = quench.erf %x : tensor<2x?xf32>
  // CHECK: quench.sin
  %7 = quench.sin %x : tensor<2x?xf32>
  // CHECK: quench.cos
  %8 = quench.cos %x : tensor<2x?xf32>
  // CHECK: quench.floor
  %9 = quench.floor %x : tensor<2x?xf32>
  // CHECK: quench.ceil
  %10 = quench.ceil %x : tensor<2x?xf32>
  // CHECK: quench.sigmoid
  %11 = quench.sigmoid %x : tensor<2x?xf32>
  // CHECK: quench.silu
  %12 = quench.silu %x : tensor<2x?xf32>
  // CHECK: quench.relu %{{.*}} : tensor<3xi32>
  %13 = quench.relu %i : tensor<3xi32>
  // CHECK: quench.neg
  %14 = quench.neg %i : tensor<3xi32>
  // CHECK: quench.abs
  %15 = quench.abs %x : tensor<2x?xf32>
  // CHECK: quench.not %{{.*}} : tensor<3xi1>
  %16 = quench.not %b : tensor<3xi1>
  // CHECK: quench.gelu %{{.*}} : tensor<2x?xf32>
  %17 = quench.gelu %x : tensor<2x?xf32>
  // CHECK: quench.gelu %{{.*}} approximation = tanh : tensor<2x?xf32>
  %18 = quench.gelu %x approximation = tanh : tensor<2x?xf32>
  // CHECK: quench.clip %{{.*}} {max = 6.000000e+00 : f64, min = 0.000000e+00 : f64}
  %19 = quench.clip %x {min = 0.0 : f64, max = 6.0 : f64} : tensor<2x?xf32>
  // CHECK: quench.clip %{{.*}} {max = 1.000000e+00 : f64} : tensor<3xi32>
  %20 = quench.clip %i {max = 1.0 : f64} : tensor<3xi32>
  // CHECK: quench.cast %{{.*}} : tensor<3xi32> to tensor<3xf16>
  %21 = quench.cast %i : tensor<3xi32> to tensor<3xf16>
  return
}

// CHECK-LABEL: func @binary
func.func @binary(%a: tensor<2x3xf32>, %b: tensor<3xf32>, %c: tensor<?x1xf32>,
                  %i: tensor<4xi64>) {
  // CHECK: quench.add %{{.*}}, %{{.*}} : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  %0 = quench.add %a, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  // CHECK: quench.sub {{.*}} -> tensor<?x3xf32>
  %1 = quench.sub %c, %b : (tensor<?x1xf32>, tensor<3xf32>) -> tensor<?x3xf32>
  // CHECK: quench.mul
  %2 = quench.mul %a, %a : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  // CHECK: quench.div
  %3 = quench.div %i, %i : (tensor<4xi64>, tensor<4xi64>) -> tensor<4xi64>
  // CHECK: quench.pow
  %4 = quench.pow %a, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  // CHECK: quench.min
  %5 = quench.min %a, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  // CHECK: quench.max
  %6 = quench.max %a, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  // CHECK: quench.mod
  %7 = quench.mod %i, %i : (tensor<4xi64>, tensor<4xi64>) -> tensor<4xi64>
  // CHECK: quench.cmp lt, {{.*}} -> tensor<2x3xi1>
  %8 = quench.cmp lt, %a, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xi1>
  // CHECK: quench.cmp ge, {{.*}} -> tensor<4xi1>
  %9 = quench.cmp ge, %i, %i : (tensor<4xi64>, tensor<4xi64>) -> tensor<4xi1>
  // CHECK: quench.logical or, {{.*}} -> tensor<2x3xi1>
  %10 = quench.logical or, %8, %8 : (tensor<2x3xi1>, tensor<2x3xi1>) -> tensor<2x3xi1>
  // CHECK: quench.where {{.*}} : (tensor<2x3xi1>, tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  %11 = quench.where %10, %a, %b : (tensor<2x3xi1>, tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  return
}

// CHECK-LABEL: func @contractions
func.func @contractions(%x: tensor<2x?x8xf32>, %w: tensor<16x8xf32>,
                        %bias: tensor<16xf32>, %m: tensor<8x4xf32>,
                        %bm: tensor<3x1x8x4xf32>) {
  // CHECK: quench.matmul {{.*}} : (tensor<2x?x8xf32>, tensor<8x4xf32>) -> tensor<2x?x4xf32>
  %0 = quench.matmul %x, %m : (tensor<2x?x8xf32>, tensor<8x4xf32>) -> tensor<2x?x4xf32>
  // Batched with broadcasting batch dimensions.
  // CHECK: quench.matmul {{.*}} -> tensor<3x2x?x4xf32>
  %1 = quench.matmul %x, %bm : (tensor<2x?x8xf32>, tensor<3x1x8x4xf32>) -> tensor<3x2x?x4xf32>
  // CHECK: quench.linear %{{.*}}, %{{.*}} : (tensor<2x?x8xf32>, tensor<16x8xf32>) -> tensor<2x?x16xf32>
  %2 = quench.linear %x, %w : (tensor<2x?x8xf32>, tensor<16x8xf32>) -> tensor<2x?x16xf32>
  // CHECK: quench.linear %{{.*}}, %{{.*}}, %{{.*}} : (tensor<2x?x8xf32>, tensor<16x8xf32>, tensor<16xf32>)
  %3 = quench.linear %x, %w, %bias : (tensor<2x?x8xf32>, tensor<16x8xf32>, tensor<16xf32>) -> tensor<2x?x16xf32>
  return
}

// CHECK-LABEL: func @normalization
func.func @normalization(%x: tensor<2x4x8xf32>, %s: tensor<8xf32>,
                         %ids: tensor<2x4xi64>, %table: tensor<100x8xf32>) {
  // CHECK: quench.layer_norm %{{.*}}, %{{.*}}, %{{.*}} {axis = 2 : i64, epsilon = 1.000000e-05 : f64}
  %0 = quench.layer_norm %x, %s, %s {axis = 2 : i64, epsilon = 1.0e-5 : f64}
      : (tensor<2x4x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  // CHECK: quench.rms_norm %{{.*}}, %{{.*}} {axis = 2 : i64, epsilon = 9.9999999999999995E-7 : f64}
  %1 = quench.rms_norm %x, %s {axis = 2 : i64, epsilon = 1.0e-6 : f64}
      : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  // CHECK: quench.softmax %{{.*}} {axis = 2 : i64} : tensor<2x4x8xf32>
  %2 = quench.softmax %x {axis = 2 : i64} : tensor<2x4x8xf32>
  // CHECK: quench.gather %{{.*}}[%{{.*}}] {axis = 0 : i64} : (tensor<100x8xf32>, tensor<2x4xi64>) -> tensor<2x4x8xf32>
  %3 = quench.gather %table[%ids] {axis = 0 : i64}
      : (tensor<100x8xf32>, tensor<2x4xi64>) -> tensor<2x4x8xf32>
  // CHECK: quench.reduce mean %{{.*}} {axes = array<i64: 2>, keep_dims = true} : (tensor<2x4x8xf32>) -> tensor<2x4x1xf32>
  %4 = quench.reduce mean %x {axes = array<i64: 2>, keep_dims = true}
      : (tensor<2x4x8xf32>) -> tensor<2x4x1xf32>
  // CHECK: quench.reduce sum {{.*}} -> tensor<4xf32>
  %5 = quench.reduce sum %x {axes = array<i64: 0, 2>, keep_dims = false}
      : (tensor<2x4x8xf32>) -> tensor<4xf32>
  // CHECK: quench.reduce max
  %6 = quench.reduce max %x {axes = array<i64: 1>, keep_dims = false}
      : (tensor<2x4x8xf32>) -> tensor<2x8xf32>
  return
}

// CHECK-LABEL: func @shapes
func.func @shapes(%x: tensor<2x4x8xf32>, %d: tensor<?x8xf32>, %sh: tensor<2xi64>,
                  %r: tensor<1x8xf32>) {
  // CHECK: quench.reshape %{{.*}} : tensor<2x4x8xf32> -> tensor<8x8xf32>
  %0 = quench.reshape %x : tensor<2x4x8xf32> -> tensor<8x8xf32>
  // CHECK: quench.reshape %{{.*}}(%{{.*}}) : tensor<?x8xf32>, tensor<2xi64> -> tensor<?x?xf32>
  %1 = quench.reshape %d(%sh) : tensor<?x8xf32>, tensor<2xi64> -> tensor<?x?xf32>
  // CHECK: quench.transpose %{{.*}} {permutation = array<i64: 0, 2, 1>} : tensor<2x4x8xf32> -> tensor<2x8x4xf32>
  %2 = quench.transpose %x {permutation = array<i64: 0, 2, 1>} : tensor<2x4x8xf32> -> tensor<2x8x4xf32>
  // CHECK: quench.concat %{{.*}}, %{{.*}} {axis = 0 : i64} : (tensor<?x8xf32>, tensor<1x8xf32>) -> tensor<?x8xf32>
  %3 = quench.concat %d, %r {axis = 0 : i64} : (tensor<?x8xf32>, tensor<1x8xf32>) -> tensor<?x8xf32>
  // CHECK: quench.slice %{{.*}} {ends = array<i64: 2, 4, 8>, starts = array<i64: 0, 1, 0>, steps = array<i64: 1, 2, 1>} : tensor<2x4x8xf32> -> tensor<2x2x8xf32>
  %4 = quench.slice %x {starts = array<i64: 0, 1, 0>, ends = array<i64: 2, 4, 8>, steps = array<i64: 1, 2, 1>}
      : tensor<2x4x8xf32> -> tensor<2x2x8xf32>
  // CHECK: quench.split %{{.*}} {axis = 2 : i64, sizes = array<i64: 2, 6>} : tensor<2x4x8xf32> -> tensor<2x4x2xf32>, tensor<2x4x6xf32>
  %5:2 = quench.split %x {axis = 2 : i64, sizes = array<i64: 2, 6>}
      : tensor<2x4x8xf32> -> tensor<2x4x2xf32>, tensor<2x4x6xf32>
  // CHECK: quench.expand %{{.*}} : tensor<1x8xf32> -> tensor<3x8xf32>
  %6 = quench.expand %r : tensor<1x8xf32> -> tensor<3x8xf32>
  // CHECK: quench.squeeze %{{.*}} {axes = array<i64: 0>} : tensor<1x8xf32> -> tensor<8xf32>
  %7 = quench.squeeze %r {axes = array<i64: 0>} : tensor<1x8xf32> -> tensor<8xf32>
  // CHECK: quench.unsqueeze %{{.*}} {axes = array<i64: 0, 2>} : tensor<1x8xf32> -> tensor<1x1x1x8xf32>
  %8 = quench.unsqueeze %r {axes = array<i64: 0, 2>} : tensor<1x8xf32> -> tensor<1x1x1x8xf32>
  // CHECK: quench.trilu %{{.*}} {k = 1 : i64, upper = true} : tensor<2x4x8xf32>
  %9 = quench.trilu %x {upper = true, k = 1 : i64} : tensor<2x4x8xf32>
  // CHECK: quench.shape_of %{{.*}} : tensor<?x8xf32> -> tensor<2xi64>
  %10 = quench.shape_of %d : tensor<?x8xf32> -> tensor<2xi64>
  return
}

// CHECK-LABEL: func @range
func.func @range(%s: tensor<i64>, %l: tensor<i64>, %d: tensor<i64>) -> tensor<?xi64> {
  // CHECK: quench.range %{{.*}}, %{{.*}}, %{{.*}} : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %0 = quench.range %s, %l, %d : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  return %0 : tensor<?xi64>
}

// CHECK-LABEL: func @onnx_quantization
func.func @onnx_quantization(%x: tensor<4x8xf32>, %s: tensor<f32>, %zp: tensor<ui8>,
                             %sa: tensor<8xf32>, %zpa: tensor<8xi8>,
                             %q: tensor<4x8xui8>, %w: tensor<8x16xi8>,
                             %wzp: tensor<i8>, %sw: tensor<f32>) {
  // CHECK: quench.quantize_linear %{{.*}}, %{{.*}}, %{{.*}} {axis = 1 : i64} : (tensor<4x8xf32>, tensor<f32>, tensor<ui8>) -> tensor<4x8xui8>
  %0 = quench.quantize_linear %x, %s, %zp {axis = 1 : i64}
      : (tensor<4x8xf32>, tensor<f32>, tensor<ui8>) -> tensor<4x8xui8>
  // Per-axis: one scale and zero point per column.
  // CHECK: quench.quantize_linear {{.*}} -> tensor<4x8xi8>
  %1 = quench.quantize_linear %x, %sa, %zpa {axis = 1 : i64}
      : (tensor<4x8xf32>, tensor<8xf32>, tensor<8xi8>) -> tensor<4x8xi8>
  // CHECK: quench.dequantize_linear {{.*}} -> tensor<4x8xf32>
  %2 = quench.dequantize_linear %1, %sa, %zpa {axis = 1 : i64}
      : (tensor<4x8xi8>, tensor<8xf32>, tensor<8xi8>) -> tensor<4x8xf32>
  // CHECK: quench.dequantize_linear %{{.*}}, %{{.*}} {axis = 1 : i64} : (tensor<4x8xui8>, tensor<f32>) -> tensor<4x8xf32>
  %3 = quench.dequantize_linear %q, %s {axis = 1 : i64}
      : (tensor<4x8xui8>, tensor<f32>) -> tensor<4x8xf32>
  // CHECK: quench.dynamic_quantize_linear %{{.*}} : tensor<4x8xf32> -> tensor<4x8xui8>, tensor<f32>, tensor<ui8>
  %4:3 = quench.dynamic_quantize_linear %x
      : tensor<4x8xf32> -> tensor<4x8xui8>, tensor<f32>, tensor<ui8>
  // CHECK: quench.matmul_integer %{{.*}}, %{{.*}} zp(%{{.*}}) rhs_zp(%{{.*}}) : (tensor<4x8xui8>, tensor<8x16xi8>, tensor<ui8>, tensor<i8>) -> tensor<4x16xi32>
  %5 = quench.matmul_integer %q, %w zp(%zp) rhs_zp(%wzp)
      : (tensor<4x8xui8>, tensor<8x16xi8>, tensor<ui8>, tensor<i8>) -> tensor<4x16xi32>
  // CHECK: quench.matmul_integer %{{.*}}, %{{.*}} : (tensor<4x8xui8>, tensor<8x16xi8>) -> tensor<4x16xi32>
  %6 = quench.matmul_integer %q, %w : (tensor<4x8xui8>, tensor<8x16xi8>) -> tensor<4x16xi32>
  // CHECK: quench.qlinear_matmul {{.*}} -> tensor<4x16xui8>
  %7 = quench.qlinear_matmul %q, %s, %zp, %w, %sw, %wzp, %s, %zp
      : (tensor<4x8xui8>, tensor<f32>, tensor<ui8>, tensor<8x16xi8>, tensor<f32>,
         tensor<i8>, tensor<f32>, tensor<ui8>) -> tensor<4x16xui8>
  return
}

// CHECK-LABEL: func @qlinear
func.func @qlinear(%x: tensor<?x3x64xf32>, %w: tensor<16x64xi8>,
                   %s: tensor<16xf32>, %b: tensor<16xf32>, %v: tensor<64xf32>,
                   %o: tensor<16x2xf32>) {
  // Dynamic (per-row scales), no bias.
  // CHECK: quench.qlinear %{{.*}}, %{{.*}}, %{{.*}} : (tensor<?x3x64xf32>, tensor<16x64xi8>, tensor<16xf32>) -> tensor<?x3x16xf32>
  %0 = quench.qlinear %x, %w, %s : (tensor<?x3x64xf32>, tensor<16x64xi8>, tensor<16xf32>) -> tensor<?x3x16xf32>
  // Static per-tensor scale, bias.
  // CHECK: quench.qlinear %{{.*}}, %{{.*}}, %{{.*}} bias(%{{.*}}) input_scale(3.125000e-02) : (tensor<?x3x64xf32>, tensor<16x64xi8>, tensor<16xf32>, tensor<16xf32>) -> tensor<?x3x16xf32>
  %1 = quench.qlinear %x, %w, %s bias(%b) input_scale(0.03125) : (tensor<?x3x64xf32>, tensor<16x64xi8>, tensor<16xf32>, tensor<16xf32>) -> tensor<?x3x16xf32>
  // A 1-D input (one row).
  // CHECK: quench.qlinear {{.*}} : (tensor<64xf32>, tensor<16x64xi8>, tensor<16xf32>) -> tensor<16xf32>
  %2 = quench.qlinear %v, %w, %s : (tensor<64xf32>, tensor<16x64xi8>, tensor<16xf32>) -> tensor<16xf32>
  // Outlier channels 3 and 40 in float, static scale and bias.
  // CHECK: quench.qlinear %{{.*}}, %{{.*}}, %{{.*}} bias(%{{.*}}) input_scale(3.125000e-02) outliers(%{{.*}}, [3, 40]) : (tensor<?x3x64xf32>, tensor<16x64xi8>, tensor<16xf32>, tensor<16xf32>, tensor<16x2xf32>) -> tensor<?x3x16xf32>
  %3 = quench.qlinear %x, %w, %s bias(%b) input_scale(0.03125) outliers(%o, [3, 40]) : (tensor<?x3x64xf32>, tensor<16x64xi8>, tensor<16xf32>, tensor<16xf32>, tensor<16x2xf32>) -> tensor<?x3x16xf32>
  // Dynamic, no bias.
  // CHECK: quench.qlinear %{{.*}}, %{{.*}}, %{{.*}} outliers(%{{.*}}, [0, 63]) : (tensor<64xf32>, tensor<16x64xi8>, tensor<16xf32>, tensor<16x2xf32>) -> tensor<16xf32>
  %4 = quench.qlinear %v, %w, %s outliers(%o, [0, 63]) : (tensor<64xf32>, tensor<16x64xi8>, tensor<16xf32>, tensor<16x2xf32>) -> tensor<16xf32>
  return
}

// CHECK-LABEL: func @matmul_nbits
func.func @matmul_nbits(%x: tensor<1x3x64xf32>, %w: tensor<16x2x16xui8>,
                        %s: tensor<32xf32>, %zp: tensor<16xui8>, %b: tensor<16xf32>,
                        %w8: tensor<16x1x64xui8>, %s16: tensor<16x1xf16>) {
  // CHECK: quench.matmul_nbits %{{.*}}, %{{.*}}, %{{.*}} {bits = 4 : i64, block_size = 32 : i64, in_features = 64 : i64, out_features = 16 : i64} : (tensor<1x3x64xf32>, tensor<16x2x16xui8>, tensor<32xf32>) -> tensor<1x3x16xf32>
  %0 = quench.matmul_nbits %x, %w, %s {in_features = 64 : i64, out_features = 16 : i64, bits = 4 : i64, block_size = 32 : i64}
      : (tensor<1x3x64xf32>, tensor<16x2x16xui8>, tensor<32xf32>) -> tensor<1x3x16xf32>
  // CHECK: quench.matmul_nbits %{{.*}}, %{{.*}}, %{{.*}} zp(%{{.*}}) bias(%{{.*}})
  %1 = quench.matmul_nbits %x, %w, %s zp(%zp) bias(%b) {in_features = 64 : i64, out_features = 16 : i64, bits = 4 : i64, block_size = 32 : i64}
      : (tensor<1x3x64xf32>, tensor<16x2x16xui8>, tensor<32xf32>, tensor<16xui8>, tensor<16xf32>) -> tensor<1x3x16xf32>
  // Quench's own schemes: f16 scales, one 8-bit block per output channel
  // (any whole-byte block size).
  // CHECK: quench.matmul_nbits {{.*}} {bits = 8 : i64, block_size = 64 : i64, {{.*}} : (tensor<1x3x64xf32>, tensor<16x1x64xui8>, tensor<16x1xf16>) -> tensor<1x3x16xf32>
  %2 = quench.matmul_nbits %x, %w8, %s16 {in_features = 64 : i64, out_features = 16 : i64, bits = 8 : i64, block_size = 64 : i64}
      : (tensor<1x3x64xf32>, tensor<16x1x64xui8>, tensor<16x1xf16>) -> tensor<1x3x16xf32>
  return
}

// CHECK-LABEL: func @dequantize_nbits
func.func @dequantize_nbits(%c: tensor<?x5x3x16xui8>, %s: tensor<?x5x3xf16>,
                            %zp: tensor<?x5x3xf16>, %c8: tensor<7x1x24xui8>,
                            %s8: tensor<7x1xf32>) {
  // Rows of 4-bit codes in groups of 32 (3 groups hold 72 features).
  // CHECK: quench.dequantize_nbits %{{.*}}, %{{.*}} {bits = 4 : i64, block_size = 32 : i64} : (tensor<?x5x3x16xui8>, tensor<?x5x3xf16>) -> tensor<?x5x72xf32>
  %0 = quench.dequantize_nbits %c, %s {bits = 4 : i64, block_size = 32 : i64}
      : (tensor<?x5x3x16xui8>, tensor<?x5x3xf16>) -> tensor<?x5x72xf32>
  // CHECK: quench.dequantize_nbits %{{.*}}, %{{.*}} zp(%{{.*}})
  %1 = quench.dequantize_nbits %c, %s zp(%zp) {bits = 4 : i64, block_size = 32 : i64}
      : (tensor<?x5x3x16xui8>, tensor<?x5x3xf16>, tensor<?x5x3xf16>) -> tensor<?x5x96xf16>
  // One 8-bit group per row.
  // CHECK: quench.dequantize_nbits {{.*}} : (tensor<7x1x24xui8>, tensor<7x1xf32>) -> tensor<7x20xf32>
  %2 = quench.dequantize_nbits %c8, %s8 {bits = 8 : i64, block_size = 24 : i64}
      : (tensor<7x1x24xui8>, tensor<7x1xf32>) -> tensor<7x20xf32>
  return
}

// CHECK-LABEL: func @hadamard
func.func @hadamard(%x: tensor<?x12xf32>, %h: tensor<2x3x8xf16>) {
  // Order 4 with stride 3 (H_4 (x) I_3) over 12 features; order 8 alone.
  // CHECK: quench.hadamard %{{.*}} {order = 4 : i64} : tensor<?x12xf32>
  %0 = quench.hadamard %x {order = 4 : i64} : tensor<?x12xf32>
  // CHECK: quench.hadamard %{{.*}} {order = 8 : i64} : tensor<2x3x8xf16>
  %1 = quench.hadamard %h {order = 8 : i64} : tensor<2x3x8xf16>
  return
}

// Shape ops also accept tensors with `!quant` element types.
// CHECK-LABEL: func @quant_types
func.func @quant_types(%q: tensor<4x8x!quant.uniform<i8:f32, 0.5:-3>>, %p: tensor<4x8x!quant.uniform<i8:f32:0, {0.5, 0.25, 1.0, 2.0}>>) -> tensor<8x4x!quant.uniform<i8:f32, 0.5:-3>> {
  // CHECK: quench.reshape %{{.*}} : tensor<4x8x!quant.uniform<i8:f32, 5.000000e-01:-3>> -> tensor<2x16x!quant.uniform<i8:f32, 5.000000e-01:-3>>
  %0 = quench.reshape %q : tensor<4x8x!quant.uniform<i8:f32, 0.5:-3>> -> tensor<2x16x!quant.uniform<i8:f32, 0.5:-3>>
  // CHECK: quench.transpose %{{.*}} : tensor<4x8x!quant.uniform<i8:f32, 5.000000e-01:-3>> -> tensor<8x4x!quant.uniform<i8:f32, 5.000000e-01:-3>>
  %1 = quench.transpose %q {permutation = array<i64: 1, 0>} : tensor<4x8x!quant.uniform<i8:f32, 0.5:-3>> -> tensor<8x4x!quant.uniform<i8:f32, 0.5:-3>>
  // Per-axis scheme.
  // CHECK: quench.slice %{{.*}} : tensor<4x8x!quant.uniform<i8:f32:0, {
  %2 = quench.slice %p {starts = array<i64: 0, 0>, ends = array<i64: 4, 4>, steps = array<i64: 1, 1>} : tensor<4x8x!quant.uniform<i8:f32:0, {0.5, 0.25, 1.0, 2.0}>> -> tensor<4x4x!quant.uniform<i8:f32:0, {0.5, 0.25, 1.0, 2.0}>>
  return %1 : tensor<8x4x!quant.uniform<i8:f32, 0.5:-3>>
}

// CHECK-LABEL: func.func @attention
// CHECK: quench.attention %{{.*}}, %{{.*}}, %{{.*}} bias(%{{.*}}) {scale = 2.500000e-01 : f64} : (tensor<1x4x?x16xf32>, tensor<1x2x?x16xf32>, tensor<1x2x?x16xf32>, tensor<1x1x?x?xf32>) -> tensor<1x4x?x16xf32>
// CHECK: quench.attention %{{.*}}, %{{.*}}, %{{.*}} key_scale(%{{.*}}) value_scale(%{{.*}}) {scale = 1.250000e-01 : f64} : (tensor<1x4x?x16xf32>, tensor<1x2x?x16xi8>, tensor<1x2x?x16xi8>, tensor<1x2x?x1xf32>, tensor<1x2x?x1xf32>) -> tensor<1x4x?x16xf32>
func.func @attention(%q: tensor<1x4x?x16xf32>, %k: tensor<1x2x?x16xf32>,
                     %v: tensor<1x2x?x16xf32>, %m: tensor<1x1x?x?xf32>,
                     %kc: tensor<1x2x?x16xi8>, %ks: tensor<1x2x?x1xf32>)
    -> (tensor<1x4x?x16xf32>, tensor<1x4x?x16xf32>) {
  %0 = quench.attention %q, %k, %v bias(%m) {scale = 0.25 : f64} : (tensor<1x4x?x16xf32>, tensor<1x2x?x16xf32>, tensor<1x2x?x16xf32>, tensor<1x1x?x?xf32>) -> tensor<1x4x?x16xf32>
  %1 = quench.attention %q, %kc, %kc key_scale(%ks) value_scale(%ks) {scale = 0.125 : f64} : (tensor<1x4x?x16xf32>, tensor<1x2x?x16xi8>, tensor<1x2x?x16xi8>, tensor<1x2x?x1xf32>, tensor<1x2x?x1xf32>) -> tensor<1x4x?x16xf32>
  return %0, %1 : tensor<1x4x?x16xf32>, tensor<1x4x?x16xf32>
}

{-#
  dialect_resources: {
    builtin: {
      w0: "0x040000000000803F000000400000404000008040"
    }
  }
#-}
