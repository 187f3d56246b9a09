// RUN: quench-opt %s --split-input-file --quench-smooth="test-act-max=16" 2>/dev/null | FileCheck %s
// RUN: quench-opt %s --split-input-file --quench-smooth="test-act-max=16" 2>&1 >/dev/null | FileCheck %s --check-prefix=REMARK
// RUN: not quench-opt %s --split-input-file --quench-smooth 2>&1 | FileCheck %s --check-prefix=NOSTATS
// RUN: not quench-opt %s --split-input-file --quench-smooth="alpha=1.5 test-act-max=16" 2>&1 | FileCheck %s --check-prefix=BADALPHA
// RUN: quench-opt %s --split-input-file --quench-smooth="alpha=0 test-act-max=16" 2>/dev/null | FileCheck %s --check-prefix=ALPHA0
// RUN: quench-opt %s --split-input-file --quench-smooth="auto-alpha=true test-act-max=16" 2>&1 | FileCheck %s --check-prefix=AUTO

// SmoothQuant with every channel's max |x| = 16, alpha 0.5:
// s_j = sqrt(16) / sqrt(max over the group's weights of |W[:, j]|).
// Q (W [2, 2]) and K (stored [K, N] behind a transpose) read one RMSNorm:
// column maxima 4 and 1, so s = (2, 4); the norm's scale (1, 2) becomes
// (0.5, 0.5), Q's columns are doubled and quadrupled, and K keeps its
// stored layout, rows (= input channels) scaled.
// CHECK-LABEL: func.func @rms_norm_group
// CHECK-DAG: %[[G:.*]] = quench.constant dense<5.000000e-01> : tensor<2xf32>
// CHECK-DAG: %[[WQ:.*]] = quench.constant dense<{{\[\[}}8.000000e+00, 4.000000e+00], [4.000000e+00, -2.000000e+00]]> : tensor<2x2xf32>
// CHECK-DAG: %[[WK:.*]] = quench.constant dense<{{\[\[}}2.000000e+00, 5.000000e-01], [-4.000000e+00, 2.000000e+00]]> : tensor<2x2xf32>
// CHECK-DAG: %[[N:.*]] = quench.rms_norm %arg0, %[[G]]
// CHECK-DAG: quench.linear %[[N]], %[[WQ]]
// CHECK-DAG: %[[T:.*]] = quench.transpose %[[WK]] {permutation = array<i64: 1, 0>}
// CHECK-DAG: quench.linear %[[N]], %[[T]]
// alpha = 0 moves everything into the activations: s_j = 1 / max|W[:, j]|
// = (1/4, 1): the norm's scale becomes (4, 2).
// ALPHA0-LABEL: func.func @rms_norm_group
// ALPHA0: quench.constant dense<[4.000000e+00, 2.000000e+00]> : tensor<2xf32>
// REMARK: remark: SmoothQuant (alpha 0.5): scales migrated into 2 linears (1 group)
// auto-alpha: with equal activation maxima on every channel no candidate is
// predicted to beat the unscaled group (unit tests: unittests/Quant/
// SmoothTest.cpp); the norm keeps its scale.
// AUTO: remark: SmoothQuant (alpha auto): scales migrated into 0 linears (0 groups); 1 group predicted to quantize better unscaled
// AUTO-LABEL: func.func @rms_norm_group
// AUTO: quench.constant dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>
// NOSTATS: error: SmoothQuant needs calibration (--calib or --calib-cache); no input statistics for layers: /q, /k
// BADALPHA: error: SmoothQuant: alpha must be in [0, 1], got 1.5
func.func @rms_norm_group(%x: tensor<3x2xf32>) -> (tensor<3x2xf32>, tensor<3x2xf32>) {
  %g = quench.constant dense<[1.0, 2.0]> : tensor<2xf32>
  %n = quench.rms_norm %x, %g {axis = 1 : i64, epsilon = 1.0e-6 : f64} : (tensor<3x2xf32>, tensor<2xf32>) -> tensor<3x2xf32> loc("/norm")
  %wq = quench.constant dense<[[4.0, 1.0], [2.0, -0.5]]> : tensor<2x2xf32>
  %q = quench.linear %n, %wq : (tensor<3x2xf32>, tensor<2x2xf32>) -> tensor<3x2xf32> loc("/q")
  %wks = quench.constant dense<[[1.0, 0.25], [-1.0, 0.5]]> : tensor<2x2xf32>
  %wk = quench.transpose %wks {permutation = array<i64: 1, 0>} : tensor<2x2xf32> -> tensor<2x2xf32>
  %k = quench.linear %n, %wk : (tensor<3x2xf32>, tensor<2x2xf32>) -> tensor<3x2xf32> loc("/k")
  return %q, %k : tensor<3x2xf32>, tensor<3x2xf32>
}

// -----

// A LayerNorm absorbs 1/s in its scale and bias; the consumer's own bias
// is unchanged. Scales are rounded to powers of two (so that migration is
// exact in f32): column maxima (3, 12) give sqrt(16/3) = 2.31 -> 2 and
// sqrt(16/12) = 1.15 -> 1.
// CHECK-LABEL: func.func @layer_norm_bias
// CHECK-DAG: %[[S:.*]] = quench.constant dense<[5.000000e-01, 1.000000e+00]> : tensor<2xf32>
// CHECK-DAG: %[[B:.*]] = quench.constant dense<[2.500000e-01, -1.000000e+00]> : tensor<2xf32>
// CHECK-DAG: %[[W:.*]] = quench.constant dense<{{\[\[}}6.000000e+00, 1.200000e+01]]> : tensor<1x2xf32>
// CHECK-DAG: %[[WB:.*]] = quench.constant dense<3.000000e+00> : tensor<1xf32>
// CHECK-DAG: %[[N:.*]] = quench.layer_norm %arg0, %[[S]], %[[B]]
// CHECK-DAG: quench.linear %[[N]], %[[W]], %[[WB]]
func.func @layer_norm_bias(%x: tensor<3x2xf32>) -> tensor<3x1xf32> {
  %s = quench.constant dense<[1.0, 1.0]> : tensor<2xf32>
  %b = quench.constant dense<[0.5, -1.0]> : tensor<2xf32>
  %n = quench.layer_norm %x, %s, %b {axis = 1 : i64, epsilon = 1.0e-5 : f64} : (tensor<3x2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<3x2xf32>
  %w = quench.constant dense<[[3.0, 12.0]]> : tensor<1x2xf32>
  %wb = quench.constant dense<3.0> : tensor<1xf32>
  %y = quench.linear %n, %w, %wb : (tensor<3x2xf32>, tensor<1x2xf32>, tensor<1xf32>) -> tensor<3x1xf32> loc("/fc")
  return %y : tensor<3x1xf32>
}

// -----

// LLaMA's MLP: down(silu(gate(x)) * up(x)). The down projection's input is
// a product with the up projection's output, so up's output rows (and
// bias) absorb 1/s: W_down = [4, 1] gives s = (2, 4). Gate and up read a
// function argument: nothing can absorb their scales, they stay (remark).
// CHECK-LABEL: func.func @mlp
// CHECK-DAG: %[[WG:.*]] = quench.constant dense<{{\[\[}}1.000000e+00, 3.000000e+00], [5.000000e+00, 7.000000e+00]]> : tensor<2x2xf32>
// CHECK-DAG: %[[WU:.*]] = quench.constant dense<{{\[\[}}1.000000e+00, 2.000000e+00], [2.000000e+00, 1.000000e+00]]> : tensor<2x2xf32>
// CHECK-DAG: %[[BU:.*]] = quench.constant dense<1.000000e+00> : tensor<2xf32>
// CHECK-DAG: %[[WD:.*]] = quench.constant dense<{{\[\[}}8.000000e+00, 4.000000e+00]]> : tensor<1x2xf32>
// CHECK-DAG: %[[G:.*]] = quench.linear %arg0, %[[WG]]
// CHECK-DAG: %[[A:.*]] = quench.silu %[[G]]
// CHECK-DAG: %[[U:.*]] = quench.linear %arg0, %[[WU]], %[[BU]]
// CHECK-DAG: %[[M:.*]] = quench.mul %[[A]], %[[U]]
// CHECK-DAG: quench.linear %[[M]], %[[WD]]
// REMARK: remark: SmoothQuant (alpha 0.5): scales migrated into 1 linear (1 group); left as they are: /gate (input is a function argument), /up (input is a function argument)
func.func @mlp(%x: tensor<3x2xf32>) -> tensor<3x1xf32> {
  %wg = quench.constant dense<[[1.0, 3.0], [5.0, 7.0]]> : tensor<2x2xf32>
  %g = quench.linear %x, %wg : (tensor<3x2xf32>, tensor<2x2xf32>) -> tensor<3x2xf32> loc("/gate")
  %a = quench.silu %g : tensor<3x2xf32>
  %wu = quench.constant dense<[[2.0, 4.0], [8.0, 4.0]]> : tensor<2x2xf32>
  %bu = quench.constant dense<[2.0, 4.0]> : tensor<2xf32>
  %u = quench.linear %x, %wu, %bu : (tensor<3x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<3x2xf32> loc("/up")
  %m = quench.mul %a, %u : (tensor<3x2xf32>, tensor<3x2xf32>) -> tensor<3x2xf32>
  %wd = quench.constant dense<[[4.0, 1.0]]> : tensor<1x2xf32>
  %d = quench.linear %m, %wd : (tensor<3x2xf32>, tensor<1x2xf32>) -> tensor<3x1xf32> loc("/down")
  return %d : tensor<3x1xf32>
}

// -----

// The norm's output also feeds a residual add: scaling it would change the
// add, so the group stays as it is; so does a linear whose input comes from
// an activation function. A weight shared with another op (a tied
// embedding table) gets a new constant; the gather keeps the original.
// CHECK-LABEL: func.func @unfoldable
// CHECK-DAG: %[[G:.*]] = quench.constant dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>
// CHECK-DAG: %[[E:.*]] = quench.constant dense<{{\[\[}}4.000000e+00, 1.000000e+00], [2.000000e+00, -5.000000e-01]]> : tensor<2x2xf32>
// CHECK-DAG: quench.rms_norm %arg0, %[[G]]
// CHECK-DAG: quench.gather %[[E]]
// CHECK-DAG: quench.linear %{{.*}}, %[[E]]
// CHECK-DAG: %[[E2:.*]] = quench.constant dense<{{\[\[}}8.000000e+00, 4.000000e+00], [4.000000e+00, -2.000000e+00]]> : tensor<2x2xf32>
// CHECK-DAG: quench.linear %{{.*}}, %[[E2]]
// REMARK: remark: SmoothQuant (alpha 0.5): scales migrated into 1 linear (1 group); left as they are: /res (input also read by quench.add), /act (input from quench.gelu)
func.func @unfoldable(%x: tensor<3x2xf32>, %ids: tensor<3xi64>) -> (tensor<3x2xf32>, tensor<3x2xf32>, tensor<3x2xf32>, tensor<3x2xf32>) {
  %g = quench.constant dense<[1.0, 2.0]> : tensor<2xf32>
  %n = quench.rms_norm %x, %g {axis = 1 : i64, epsilon = 1.0e-6 : f64} : (tensor<3x2xf32>, tensor<2xf32>) -> tensor<3x2xf32>
  %e = quench.constant dense<[[4.0, 1.0], [2.0, -0.5]]> : tensor<2x2xf32>
  %emb = quench.gather %e[%ids] {axis = 0 : i64} : (tensor<2x2xf32>, tensor<3xi64>) -> tensor<3x2xf32>
  %r = quench.linear %n, %e : (tensor<3x2xf32>, tensor<2x2xf32>) -> tensor<3x2xf32> loc("/res")
  %sum = quench.add %n, %r : (tensor<3x2xf32>, tensor<3x2xf32>) -> tensor<3x2xf32>
  %act = quench.gelu %sum : tensor<3x2xf32>
  %y = quench.linear %act, %e : (tensor<3x2xf32>, tensor<2x2xf32>) -> tensor<3x2xf32> loc("/act")
  %n2 = quench.rms_norm %emb, %g {axis = 1 : i64, epsilon = 1.0e-6 : f64} : (tensor<3x2xf32>, tensor<2xf32>) -> tensor<3x2xf32>
  %h = quench.linear %n2, %e : (tensor<3x2xf32>, tensor<2x2xf32>) -> tensor<3x2xf32> loc("/head")
  return %emb, %sum, %y, %h : tensor<3x2xf32>, tensor<3x2xf32>, tensor<3x2xf32>, tensor<3x2xf32>
}
