// RUN: quench-opt %s --quench-raise-ops -split-input-file | FileCheck %s

// Opset-13 LayerNorm as torch.onnx exports it:
// ReduceMean / Sub / Pow / ReduceMean / Add / Sqrt / Div / Mul / Add.
// CHECK-LABEL: func @layer_norm
// CHECK-SAME: (%[[X:.*]]: tensor<2x4x8xf32>)
// CHECK-DAG: %[[G:.*]] = quench.constant dense<2.000000e+00> : tensor<8xf32>
// CHECK-DAG: %[[B:.*]] = quench.constant dense<5.000000e-01> : tensor<8xf32>
// CHECK: %[[R:.*]] = quench.layer_norm %[[X]], %[[G]], %[[B]] {axis = 2 : i64, epsilon = 9.99999{{[0-9]+}}E-6 : f64}
// CHECK-NOT: quench.reduce
// CHECK: return %[[R]]
func.func @layer_norm(%x: tensor<2x4x8xf32>) -> tensor<2x4x8xf32> {
  %two = quench.constant dense<2.0> : tensor<f32>
  %eps = quench.constant dense<1.0e-5> : tensor<f32>
  %gamma = quench.constant dense<2.0> : tensor<8xf32>
  %beta = quench.constant dense<0.5> : tensor<8xf32>
  %mean = quench.reduce mean %x {axes = array<i64: 2>, keep_dims = true} : (tensor<2x4x8xf32>) -> tensor<2x4x1xf32>
  %d = quench.sub %x, %mean : (tensor<2x4x8xf32>, tensor<2x4x1xf32>) -> tensor<2x4x8xf32>
  %sq = quench.pow %d, %two : (tensor<2x4x8xf32>, tensor<f32>) -> tensor<2x4x8xf32>
  %var = quench.reduce mean %sq {axes = array<i64: 2>, keep_dims = true} : (tensor<2x4x8xf32>) -> tensor<2x4x1xf32>
  %ve = quench.add %var, %eps : (tensor<2x4x1xf32>, tensor<f32>) -> tensor<2x4x1xf32>
  %std = quench.sqrt %ve : tensor<2x4x1xf32>
  %n = quench.div %d, %std : (tensor<2x4x8xf32>, tensor<2x4x1xf32>) -> tensor<2x4x8xf32>
  %s = quench.mul %n, %gamma : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %y = quench.add %s, %beta : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  return %y : tensor<2x4x8xf32>
}

// -----

// A mean over a non-trailing axis is not a layer norm.
// CHECK-LABEL: func @not_layer_norm
// CHECK-NOT: quench.layer_norm
// CHECK: quench.div
func.func @not_layer_norm(%x: tensor<2x4x8xf32>) -> tensor<2x4x8xf32> {
  %two = quench.constant dense<2.0> : tensor<f32>
  %eps = quench.constant dense<1.0e-5> : tensor<f32>
  %mean = quench.reduce mean %x {axes = array<i64: 1>, keep_dims = true} : (tensor<2x4x8xf32>) -> tensor<2x1x8xf32>
  %d = quench.sub %x, %mean : (tensor<2x4x8xf32>, tensor<2x1x8xf32>) -> tensor<2x4x8xf32>
  %sq = quench.pow %d, %two : (tensor<2x4x8xf32>, tensor<f32>) -> tensor<2x4x8xf32>
  %var = quench.reduce mean %sq {axes = array<i64: 1>, keep_dims = true} : (tensor<2x4x8xf32>) -> tensor<2x1x8xf32>
  %ve = quench.add %var, %eps : (tensor<2x1x8xf32>, tensor<f32>) -> tensor<2x1x8xf32>
  %std = quench.sqrt %ve : tensor<2x1x8xf32>
  %n = quench.div %d, %std : (tensor<2x4x8xf32>, tensor<2x1x8xf32>) -> tensor<2x4x8xf32>
  return %n : tensor<2x4x8xf32>
}

// -----

// LLaMA / T5 RMSNorm: x * rsqrt(mean(x^2) + eps) * w.
// CHECK-LABEL: func @rms_norm
// CHECK-SAME: (%[[X:.*]]: tensor<1x5x16xf32>)
// CHECK: %[[W:.*]] = quench.constant dense<1.500000e+00> : tensor<16xf32>
// CHECK: %[[R:.*]] = quench.rms_norm %[[X]], %[[W]] {axis = 2 : i64, epsilon = 9.99999{{[0-9]+}}E-7 : f64}
// CHECK-NEXT: return %[[R]]
func.func @rms_norm(%x: tensor<1x5x16xf32>) -> tensor<1x5x16xf32> {
  %two = quench.constant dense<2.0> : tensor<f32>
  %eps = quench.constant dense<1.0e-6> : tensor<f32>
  %w = quench.constant dense<1.5> : tensor<16xf32>
  %sq = quench.pow %x, %two : (tensor<1x5x16xf32>, tensor<f32>) -> tensor<1x5x16xf32>
  %ms = quench.reduce mean %sq {axes = array<i64: 2>, keep_dims = true} : (tensor<1x5x16xf32>) -> tensor<1x5x1xf32>
  %a = quench.add %ms, %eps : (tensor<1x5x1xf32>, tensor<f32>) -> tensor<1x5x1xf32>
  %r = quench.rsqrt %a : tensor<1x5x1xf32>
  %n = quench.mul %x, %r : (tensor<1x5x16xf32>, tensor<1x5x1xf32>) -> tensor<1x5x16xf32>
  %y = quench.mul %w, %n : (tensor<16xf32>, tensor<1x5x16xf32>) -> tensor<1x5x16xf32>
  return %y : tensor<1x5x16xf32>
}

// -----

// RMSNorm written with x * x, sqrt and a division, without a weight: the
// scale becomes a constant of ones.
// CHECK-LABEL: func @rms_norm_div
// CHECK: %[[ONE:.*]] = quench.constant dense<1.000000e+00> : tensor<16xf32>
// CHECK: quench.rms_norm %arg0, %[[ONE]] {axis = 1 : i64
func.func @rms_norm_div(%x: tensor<3x16xf32>) -> tensor<3x16xf32> {
  %eps = quench.constant dense<1.0e-5> : tensor<f32>
  %sq = quench.mul %x, %x : (tensor<3x16xf32>, tensor<3x16xf32>) -> tensor<3x16xf32>
  %ms = quench.reduce mean %sq {axes = array<i64: 1>, keep_dims = true} : (tensor<3x16xf32>) -> tensor<3x1xf32>
  %a = quench.add %ms, %eps : (tensor<3x1xf32>, tensor<f32>) -> tensor<3x1xf32>
  %s = quench.sqrt %a : tensor<3x1xf32>
  %n = quench.div %x, %s : (tensor<3x16xf32>, tensor<3x1xf32>) -> tensor<3x16xf32>
  return %n : tensor<3x16xf32>
}

// -----

// GELU, erf form: x * 0.5 * (1 + erf(x / sqrt(2))) with factors in any order.
// CHECK-LABEL: func @gelu_erf
// CHECK-NEXT: %[[G:.*]] = quench.gelu %arg0 : tensor<4x8xf32>
// CHECK-NEXT: return %[[G]]
func.func @gelu_erf(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %sqrt2 = quench.constant dense<1.41421354> : tensor<f32>
  %one = quench.constant dense<1.0> : tensor<f32>
  %half = quench.constant dense<0.5> : tensor<f32>
  %d = quench.div %x, %sqrt2 : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  %e = quench.erf %d : tensor<4x8xf32>
  %p = quench.add %e, %one : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  %m = quench.mul %x, %p : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %y = quench.mul %m, %half : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// GELU, tanh form (GPT-2's "gelu_new"):
// 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))).
// CHECK-LABEL: func @gelu_tanh
// CHECK-NEXT: %[[G:.*]] = quench.gelu %arg0 approximation = tanh : tensor<4x8xf32>
// CHECK-NEXT: return %[[G]]
func.func @gelu_tanh(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %three = quench.constant dense<3.0> : tensor<f32>
  %c = quench.constant dense<0.044715> : tensor<f32>
  %k = quench.constant dense<0.797884583> : tensor<f32>
  %one = quench.constant dense<1.0> : tensor<f32>
  %half = quench.constant dense<0.5> : tensor<f32>
  %x3 = quench.pow %x, %three : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  %cx3 = quench.mul %c, %x3 : (tensor<f32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %in = quench.add %x, %cx3 : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %kin = quench.mul %k, %in : (tensor<f32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %t = quench.tanh %kin : tensor<4x8xf32>
  %p = quench.add %one, %t : (tensor<f32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %hx = quench.mul %half, %x : (tensor<f32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %y = quench.mul %hx, %p : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// A wrong constant (0.4 instead of 0.5) is not GELU.
// CHECK-LABEL: func @not_gelu
// CHECK-NOT: quench.gelu
func.func @not_gelu(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %sqrt2 = quench.constant dense<1.41421354> : tensor<f32>
  %one = quench.constant dense<1.0> : tensor<f32>
  %half = quench.constant dense<0.4> : tensor<f32>
  %d = quench.div %x, %sqrt2 : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  %e = quench.erf %d : tensor<4x8xf32>
  %p = quench.add %e, %one : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  %m = quench.mul %x, %p : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %y = quench.mul %m, %half : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// CHECK-LABEL: func @silu
// CHECK-NEXT: %[[S:.*]] = quench.silu %arg0 : tensor<4x8xf32>
// CHECK-NEXT: return %[[S]]
func.func @silu(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %s = quench.sigmoid %x : tensor<4x8xf32>
  %y = quench.mul %s, %x : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// x * sigmoid(y) with y != x is a gate, not SiLU.
// CHECK-LABEL: func @not_silu
// CHECK: quench.sigmoid
// CHECK: quench.mul
func.func @not_silu(%x: tensor<4x8xf32>, %g: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %s = quench.sigmoid %g : tensor<4x8xf32>
  %y = quench.mul %s, %x : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// -----

// MatMul by a constant [K, N] plus a bias becomes linear with the weight
// [N, K] (PyTorch nn.Linear layout): a transpose of the constant as stored,
// not a transposed copy (the quantizer and the lowering read through it).
// CHECK-LABEL: func @linear
// CHECK-DAG: %[[C:.*]] = quench.constant dense<{{\[\[}}1.000000e+00, 2.000000e+00], [3.000000e+00, 4.000000e+00], [5.000000e+00, 6.000000e+00]]> : tensor<3x2xf32>
// CHECK-DAG: %[[B:.*]] = quench.constant dense<[1.000000e+00, -1.000000e+00]> : tensor<2xf32>
// CHECK-DAG: %[[W:.*]] = quench.transpose %[[C]] {permutation = array<i64: 1, 0>} : tensor<3x2xf32> -> tensor<2x3xf32>
// CHECK: %[[L:.*]] = quench.linear %arg0, %[[W]], %[[B]] : (tensor<4x?x3xf32>, tensor<2x3xf32>, tensor<2xf32>) -> tensor<4x?x2xf32>
// CHECK-NEXT: return %[[L]]
func.func @linear(%x: tensor<4x?x3xf32>) -> tensor<4x?x2xf32> {
  %w = quench.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]> : tensor<3x2xf32>
  %b = quench.constant dense<[1.0, -1.0]> : tensor<2xf32>
  %m = quench.matmul %x, %w : (tensor<4x?x3xf32>, tensor<3x2xf32>) -> tensor<4x?x2xf32>
  %y = quench.add %b, %m : (tensor<2xf32>, tensor<4x?x2xf32>) -> tensor<4x?x2xf32>
  return %y : tensor<4x?x2xf32>
}

// -----

// Without a bias; a splat weight is reshaped, not transposed.
// CHECK-LABEL: func @linear_no_bias
// CHECK: %[[W:.*]] = quench.constant dense<1.000000e+00> : tensor<2x3xf32>
// CHECK: quench.linear %arg0, %[[W]] : (tensor<5x3xf32>, tensor<2x3xf32>) -> tensor<5x2xf32>
func.func @linear_no_bias(%x: tensor<5x3xf32>) -> tensor<5x2xf32> {
  %w = quench.constant dense<1.0> : tensor<3x2xf32>
  %m = quench.matmul %x, %w : (tensor<5x3xf32>, tensor<3x2xf32>) -> tensor<5x2xf32>
  return %m : tensor<5x2xf32>
}

// -----

// Activation x activation products (attention scores) stay matmuls.
// CHECK-LABEL: func @matmul_activations
// CHECK-NOT: quench.linear
// CHECK: quench.matmul
func.func @matmul_activations(%q: tensor<2x4x8xf32>, %k: tensor<2x8x4xf32>) -> tensor<2x4x4xf32> {
  %m = quench.matmul %q, %k : (tensor<2x4x8xf32>, tensor<2x8x4xf32>) -> tensor<2x4x4xf32>
  return %m : tensor<2x4x4xf32>
}

// -----

// An f32 model with f16 weights (each initializer cast to f32 before the
// MatMul): the linear's weight is the f16 constant itself (transposed to
// [N, K] in f16), and no f32 copy of it exists. The bias may be cast too.
// CHECK-LABEL: func @linear_f16_weight
// CHECK-DAG: %[[C:.*]] = quench.constant dense<{{\[\[}}1.000000e+00, 2.000000e+00], [3.000000e+00, 4.000000e+00], [5.000000e+00, 6.000000e+00]]> : tensor<3x2xf16>
// CHECK-DAG: %[[W:.*]] = quench.transpose %[[C]] {permutation = array<i64: 1, 0>} : tensor<3x2xf16> -> tensor<2x3xf16>
// CHECK-DAG: %[[BH:.*]] = quench.constant dense<[1.000000e+00, -1.000000e+00]> : tensor<2xf16>
// CHECK-DAG: %[[B:.*]] = quench.cast %[[BH]] : tensor<2xf16> to tensor<2xf32>
// CHECK: %[[L:.*]] = quench.linear %arg0, %[[W]], %[[B]] : (tensor<4x3xf32>, tensor<2x3xf16>, tensor<2xf32>) -> tensor<4x2xf32>
// CHECK-NEXT: return %[[L]]
func.func @linear_f16_weight(%x: tensor<4x3xf32>) -> tensor<4x2xf32> {
  %wh = quench.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]> : tensor<3x2xf16>
  %w = quench.cast %wh : tensor<3x2xf16> to tensor<3x2xf32>
  %bh = quench.constant dense<[1.0, -1.0]> : tensor<2xf16>
  %b = quench.cast %bh : tensor<2xf16> to tensor<2xf32>
  %m = quench.matmul %x, %w : (tensor<4x3xf32>, tensor<3x2xf32>) -> tensor<4x2xf32>
  %y = quench.add %m, %b : (tensor<4x2xf32>, tensor<2xf32>) -> tensor<4x2xf32>
  return %y : tensor<4x2xf32>
}

// -----

// The same with bf16 weights, the cast in a [1, N] bias reshaped to [N].
// CHECK-LABEL: func @linear_bf16_weight
// CHECK: %[[B:.*]] = quench.reshape %{{.*}} : tensor<1x2xf32> -> tensor<2xf32>
// CHECK: %[[W:.*]] = quench.transpose %{{.*}} {permutation = array<i64: 1, 0>} : tensor<3x2xbf16> -> tensor<2x3xbf16>
// CHECK: quench.linear %arg0, %[[W]], %[[B]] : (tensor<4x3xf32>, tensor<2x3xbf16>, tensor<2xf32>) -> tensor<4x2xf32>
func.func @linear_bf16_weight(%x: tensor<4x3xf32>) -> tensor<4x2xf32> {
  %wh = quench.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]> : tensor<3x2xbf16>
  %w = quench.cast %wh : tensor<3x2xbf16> to tensor<3x2xf32>
  %bh = quench.constant dense<[[1.0, -1.0]]> : tensor<1x2xbf16>
  %b = quench.cast %bh : tensor<1x2xbf16> to tensor<1x2xf32>
  %m = quench.matmul %x, %w : (tensor<4x3xf32>, tensor<3x2xf32>) -> tensor<4x2xf32>
  %y = quench.add %b, %m : (tensor<1x2xf32>, tensor<4x2xf32>) -> tensor<4x2xf32>
  return %y : tensor<4x2xf32>
}

// -----

// A weight stored [N, K] and transposed in the graph is the linear's weight
// as it is (no copy), with or without a cast, in either order.
// CHECK-LABEL: func @linear_transposed_weights
// CHECK-DAG: %[[W0:.*]] = quench.constant dense<{{\[\[}}1.000000e+00, 2.000000e+00, 3.000000e+00], [4.000000e+00, 5.000000e+00, 6.000000e+00]]> : tensor<2x3xf32>
// CHECK-DAG: %[[W1:.*]] = quench.constant dense<{{\[\[}}1.000000e+00, 2.000000e+00, 3.000000e+00], [4.000000e+00, 5.000000e+00, 7.000000e+00]]> : tensor<2x3xf16>
// CHECK-DAG: %[[W2:.*]] = quench.constant dense<{{\[\[}}1.000000e+00, 2.000000e+00, 3.000000e+00], [4.000000e+00, 5.000000e+00, 8.000000e+00]]> : tensor<2x3xf16>
// CHECK-DAG: %[[L0:.*]] = quench.linear %arg0, %[[W0]] : (tensor<4x3xf32>, tensor<2x3xf32>) -> tensor<4x2xf32>
// CHECK-DAG: %[[L1:.*]] = quench.linear %arg1, %[[W1]] : (tensor<4x3xf32>, tensor<2x3xf16>) -> tensor<4x2xf32>
// CHECK-DAG: %[[L2:.*]] = quench.linear %arg2, %[[W2]] : (tensor<4x3xf32>, tensor<2x3xf16>) -> tensor<4x2xf32>
// CHECK-NOT: quench.transpose
// CHECK-NOT: quench.matmul
// CHECK: return %[[L0]], %[[L1]], %[[L2]]
func.func @linear_transposed_weights(%x0: tensor<4x3xf32>, %x1: tensor<4x3xf32>, %x2: tensor<4x3xf32>) -> (tensor<4x2xf32>, tensor<4x2xf32>, tensor<4x2xf32>) {
  %w0 = quench.constant dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]> : tensor<2x3xf32>
  %t0 = quench.transpose %w0 {permutation = array<i64: 1, 0>} : tensor<2x3xf32> -> tensor<3x2xf32>
  %m0 = quench.matmul %x0, %t0 : (tensor<4x3xf32>, tensor<3x2xf32>) -> tensor<4x2xf32>
  // Transpose, then cast.
  %w1 = quench.constant dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 7.0]]> : tensor<2x3xf16>
  %t1 = quench.transpose %w1 {permutation = array<i64: 1, 0>} : tensor<2x3xf16> -> tensor<3x2xf16>
  %c1 = quench.cast %t1 : tensor<3x2xf16> to tensor<3x2xf32>
  %m1 = quench.matmul %x1, %c1 : (tensor<4x3xf32>, tensor<3x2xf32>) -> tensor<4x2xf32>
  // Cast, then transpose.
  %w2 = quench.constant dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 8.0]]> : tensor<2x3xf16>
  %c2 = quench.cast %w2 : tensor<2x3xf16> to tensor<2x3xf32>
  %t2 = quench.transpose %c2 {permutation = array<i64: 1, 0>} : tensor<2x3xf32> -> tensor<3x2xf32>
  %m2 = quench.matmul %x2, %t2 : (tensor<4x3xf32>, tensor<3x2xf32>) -> tensor<4x2xf32>
  return %m0, %m1, %m2 : tensor<4x2xf32>, tensor<4x2xf32>, tensor<4x2xf32>
}

// -----

// Gemm(x, Cast(W), b, transB=1) is imported as a linear of the cast: the
// weight becomes the f16 constant.
// CHECK-LABEL: func @linear_of_cast
// CHECK: %[[W:.*]] = quench.constant dense<{{.*}}> : tensor<2x3xf16>
// CHECK: quench.linear %arg0, %[[W]], %{{.*}} : (tensor<4x3xf32>, tensor<2x3xf16>, tensor<2xf32>) -> tensor<4x2xf32>
func.func @linear_of_cast(%x: tensor<4x3xf32>) -> tensor<4x2xf32> {
  %wh = quench.constant dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]> : tensor<2x3xf16>
  %w = quench.cast %wh : tensor<2x3xf16> to tensor<2x3xf32>
  %bh = quench.constant dense<[1.0, -1.0]> : tensor<2xf16>
  %b = quench.cast %bh : tensor<2xf16> to tensor<2xf32>
  %y = quench.linear %x, %w, %b : (tensor<4x3xf32>, tensor<2x3xf32>, tensor<2xf32>) -> tensor<4x2xf32>
  return %y : tensor<4x2xf32>
}

// -----

// Not raised: a narrowing cast (the f16 product of f32 initializers rounds
// the weight), a cast to f64, and a transpose that is not a 2-D swap.
// CHECK-LABEL: func @not_linear_casts
// CHECK-NOT: quench.linear
// CHECK: quench.matmul
// CHECK: quench.matmul
// CHECK: quench.matmul
// CHECK-NOT: quench.linear
func.func @not_linear_casts(%x: tensor<4x3xf16>, %xd: tensor<4x3xf64>, %xb: tensor<2x4x3xf32>) -> (tensor<4x2xf16>, tensor<4x2xf64>, tensor<2x4x2xf32>) {
  %w = quench.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]> : tensor<3x2xf32>
  %wh = quench.cast %w : tensor<3x2xf32> to tensor<3x2xf16>
  %m = quench.matmul %x, %wh : (tensor<4x3xf16>, tensor<3x2xf16>) -> tensor<4x2xf16>
  %v = quench.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]> : tensor<3x2xf16>
  %vd = quench.cast %v : tensor<3x2xf16> to tensor<3x2xf64>
  %md = quench.matmul %xd, %vd : (tensor<4x3xf64>, tensor<3x2xf64>) -> tensor<4x2xf64>
  %u = quench.constant dense<1.0> : tensor<2x2x3xf32>
  %ut = quench.transpose %u {permutation = array<i64: 0, 2, 1>} : tensor<2x2x3xf32> -> tensor<2x3x2xf32>
  %mb = quench.matmul %xb, %ut : (tensor<2x4x3xf32>, tensor<2x3x2xf32>) -> tensor<2x4x2xf32>
  return %m, %md, %mb : tensor<4x2xf16>, tensor<4x2xf64>, tensor<2x4x2xf32>
}

// -----

// Grouped-query attention: keys/values repeated per head group
// (unsqueeze/expand/reshape, Hugging Face's repeat_kv) are multiplied as they
// are, the group's query heads stacked as rows: no repeated copy.
// CHECK-LABEL: func @grouped_query
// CHECK-SAME: (%[[Q:[a-z0-9]+]]: tensor<1x8x?x16xf32>, %[[K:[a-z0-9]+]]: tensor<1x2x?x16xf32>, %[[V:[a-z0-9]+]]: tensor<1x2x?x16xf32>
// CHECK-NOT: quench.expand
// CHECK: %[[QG:.*]] = quench.reshape %[[Q]](%{{.*}}) : tensor<1x8x?x16xf32>, tensor<4xi64> -> tensor<1x2x?x16xf32>
// CHECK: %[[KT:.*]] = quench.transpose %[[K]] {permutation = array<i64: 0, 1, 3, 2>} : tensor<1x2x?x16xf32> -> tensor<1x2x16x?xf32>
// CHECK: %[[SG:.*]] = quench.matmul %[[QG]], %[[KT]] : (tensor<1x2x?x16xf32>, tensor<1x2x16x?xf32>) -> tensor<1x2x?x?xf32>
// CHECK: %[[S:.*]] = quench.reshape %[[SG]](%{{.*}}) : tensor<1x2x?x?xf32>, tensor<4xi64> -> tensor<1x8x?x?xf32>
// CHECK: quench.softmax %[[S]]
// CHECK: %[[PG:.*]] = quench.reshape %{{.*}}(%{{.*}}) : tensor<1x8x?x?xf32>, tensor<4xi64> -> tensor<1x2x?x?xf32>
// CHECK: %[[OG:.*]] = quench.matmul %[[PG]], %[[V]] : (tensor<1x2x?x?xf32>, tensor<1x2x?x16xf32>) -> tensor<1x2x?x16xf32>
// CHECK: quench.reshape %[[OG]](%{{.*}}) : tensor<1x2x?x16xf32>, tensor<4xi64> -> tensor<1x8x?x16xf32>
func.func @grouped_query(%q: tensor<1x8x?x16xf32>, %k: tensor<1x2x?x16xf32>, %v: tensor<1x2x?x16xf32>, %shape5: tensor<5xi64>, %shape4: tensor<4xi64>) -> tensor<1x8x?x16xf32> {
  %ku = quench.unsqueeze %k {axes = array<i64: 2>} : tensor<1x2x?x16xf32> -> tensor<1x2x1x?x16xf32>
  %ke = quench.expand %ku(%shape5) : tensor<1x2x1x?x16xf32>, tensor<5xi64> -> tensor<1x2x4x?x16xf32>
  %kr = quench.reshape %ke(%shape4) : tensor<1x2x4x?x16xf32>, tensor<4xi64> -> tensor<1x8x?x16xf32>
  %kt = quench.transpose %kr {permutation = array<i64: 0, 1, 3, 2>} : tensor<1x8x?x16xf32> -> tensor<1x8x16x?xf32>
  %s = quench.matmul %q, %kt : (tensor<1x8x?x16xf32>, tensor<1x8x16x?xf32>) -> tensor<1x8x?x?xf32>
  %p = quench.softmax %s {axis = 3 : i64} : tensor<1x8x?x?xf32>
  %vu = quench.unsqueeze %v {axes = array<i64: 2>} : tensor<1x2x?x16xf32> -> tensor<1x2x1x?x16xf32>
  %ve = quench.expand %vu(%shape5) : tensor<1x2x1x?x16xf32>, tensor<5xi64> -> tensor<1x2x4x?x16xf32>
  %vr = quench.reshape %ve(%shape4) : tensor<1x2x4x?x16xf32>, tensor<4xi64> -> tensor<1x8x?x16xf32>
  %o = quench.matmul %p, %vr : (tensor<1x8x?x?xf32>, tensor<1x8x?x16xf32>) -> tensor<1x8x?x16xf32>
  return %o : tensor<1x8x?x16xf32>
}
