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
// stored [N, K] (PyTorch nn.Linear layout).
// CHECK-LABEL: func @linear
// CHECK-DAG: %[[W:.*]] = quench.constant dense<{{\[\[}}1.000000e+00, 3.000000e+00, 5.000000e+00], [2.000000e+00, 4.000000e+00, 6.000000e+00]]> : tensor<2x3xf32>
// CHECK-DAG: %[[B:.*]] = quench.constant dense<[1.000000e+00, -1.000000e+00]> : tensor<2xf32>
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

// Without a bias.
// CHECK-LABEL: func @linear_no_bias
// CHECK: quench.linear %arg0, %{{.*}} : (tensor<5x3xf32>, tensor<2x3xf32>) -> tensor<5x2xf32>
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
