// RUN: not quench-opt %s --split-input-file --quench-rotate 2>/dev/null | FileCheck %s
// RUN: not quench-opt %s --split-input-file --quench-rotate 2>&1 >/dev/null | FileCheck %s --check-prefix=REMARK
// RUN: quench-opt %s --split-input-file --quench-rotate="rotation=none" 2>&1 | FileCheck %s --check-prefix=NONE
// RUN: not quench-opt %s --split-input-file --quench-rotate="online=true" 2>&1 | FileCheck %s --check-prefix=ONLINE
// RUN: not quench-opt %s --split-input-file --quench-rotate="online=true" 2>/dev/null | FileCheck %s --check-prefix=ODD
// RUN: not quench-opt %s --split-input-file --quench-rotate="rotation=givens" 2>&1 | FileCheck %s --check-prefix=BADNAME
// RUN: not quench-opt %s --split-input-file --quench-rotate 2>&1 | FileCheck %s --check-prefix=ERR

// A LLaMA-style block (the functions named ok_* rotate; the others are
// refused, and left as they are). The embedding table is tied to the head:
// after the rotation the lookup reads E Q and the head its own copy
// E diag(g2) Q. Both norm scales become 1; the o projection (with a bias)
// writes into the stream, q and the head read it.
// REMARK: remark: rotation (hadamard, seed 0): residual stream of width 4 rotated (Hadamard order 4): 1 embedding table, 2 norm scales folded, 2 linears reading it, 1 writing into it
// NONE-NOT: remark
// NONE-LABEL: func.func @ok_block
// NONE: dense<{{\[}}1.000000e+00, 2.000000e+00, 5.000000e-01, 1.500000e+00]>
// BADNAME: error: rotation: unknown rotation 'givens': use hadamard or none
// With online=true, the o projection's input (width 3, odd) is rotated at
// run time by a random orthogonal 3 x 3 (a matmul over a [..., 1, 3] view).
// ODD-LABEL: func.func @ok_block
// ODD: quench.reshape %{{.*}} : tensor<1x3x3xf32> -> tensor<1x3x1x3xf32>
// ODD: quench.matmul %{{.*}}, %{{.*}} : (tensor<1x3x1x3xf32>, tensor<3x3xf32>) -> tensor<1x3x1x3xf32>
// ODD: %[[V:.*]] = quench.reshape %{{.*}} : tensor<1x3x1x3xf32> -> tensor<1x3x3xf32>
// ODD: quench.linear %[[V]],
// CHECK-LABEL: func.func @ok_block
// CHECK-NOT: dense<{{\[}}1.000000e+00, 2.000000e+00, 5.000000e-01, 1.500000e+00]>
// CHECK: %[[T:.*]] = quench.constant dense_resource<{{.*}}> : tensor<5x4xf32>
// CHECK: %[[X:.*]] = quench.gather %[[T]][%arg0]
// CHECK: %[[G1:.*]] = quench.constant dense<1.000000e+00> : tensor<4xf32>
// CHECK: quench.rms_norm %[[X]], %[[G1]]
// CHECK: %[[H:.*]] = quench.add %[[X]],
// CHECK: %[[G2:.*]] = quench.constant dense<1.000000e+00> : tensor<4xf32>
// CHECK: %[[N2:.*]] = quench.rms_norm %[[H]], %[[G2]]
// CHECK: %[[HEAD:.*]] = quench.constant dense_resource<{{.*}}> : tensor<5x4xf32>
// CHECK: quench.linear %[[N2]], %[[HEAD]] :
func.func @ok_block(%ids: tensor<1x3xi64>) -> tensor<1x3x5xf32> {
  %e = quench.constant dense<[[1.0, 0.0, 0.0, 0.5], [0.0, 1.0, 0.0, -0.5], [0.0, 0.0, 1.0, 0.25], [1.0, 1.0, 0.0, 0.0], [0.5, -1.0, 2.0, 1.0]]> : tensor<5x4xf32>
  %x = quench.gather %e[%ids] {axis = 0 : i64} : (tensor<5x4xf32>, tensor<1x3xi64>) -> tensor<1x3x4xf32>
  %g1 = quench.constant dense<[1.0, 2.0, 0.5, 1.5]> : tensor<4xf32>
  %n1 = quench.rms_norm %x, %g1 {axis = 2 : i64, epsilon = 1.0e-5 : f64} : (tensor<1x3x4xf32>, tensor<4xf32>) -> tensor<1x3x4xf32>
  %wq = quench.constant dense<[[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, 1.0], [-1.0, 0.5, 0.0, 2.0]]> : tensor<3x4xf32>
  %q = quench.linear %n1, %wq : (tensor<1x3x4xf32>, tensor<3x4xf32>) -> tensor<1x3x3xf32>
  %a = quench.silu %q : tensor<1x3x3xf32>
  %wo = quench.constant dense<[[1.0, 0.0, 2.0], [0.5, 1.0, 0.0], [0.0, -1.0, 1.0], [2.0, 0.0, 0.5]]> : tensor<4x3xf32>
  %bo = quench.constant dense<[0.1, 0.2, 0.3, 0.4]> : tensor<4xf32>
  %o = quench.linear %a, %wo, %bo : (tensor<1x3x3xf32>, tensor<4x3xf32>, tensor<4xf32>) -> tensor<1x3x4xf32>
  %h = quench.add %x, %o : (tensor<1x3x4xf32>, tensor<1x3x4xf32>) -> tensor<1x3x4xf32>
  %g2 = quench.constant dense<[2.0, 1.0, 1.0, 0.5]> : tensor<4xf32>
  %n2 = quench.rms_norm %h, %g2 {axis = 2 : i64, epsilon = 1.0e-5 : f64} : (tensor<1x3x4xf32>, tensor<4xf32>) -> tensor<1x3x4xf32>
  %logits = quench.linear %n2, %e : (tensor<1x3x4xf32>, tensor<5x4xf32>) -> tensor<1x3x5xf32>
  return %logits : tensor<1x3x5xf32>
}

// -----

// Width 12 = 4 x 3: the Hadamard factor times a random orthogonal 3 x 3.
// Reshapes that keep the last axis and a scalar multiplication (Gemma's
// embedding scale) pass the rotation through; the head reads the stream
// through a transpose of a stored [K, N] weight, which keeps its layout.
// REMARK: remark: rotation (hadamard, seed 0): residual stream of width 12 rotated (Hadamard order 4 x random orthogonal order 3): 1 embedding table, 1 norm scale folded, 1 linear reading it, 0 writing into it
// CHECK-LABEL: func.func @ok_width12
// CHECK: quench.constant dense<1.000000e+00> : tensor<12xf32>
// CHECK: quench.transpose %{{.*}} {permutation = array<i64: 1, 0>} : tensor<12x3xf32> -> tensor<3x12xf32>
func.func @ok_width12(%ids: tensor<2xi64>) -> tensor<1x2x3xf32> {
  %e = quench.constant dense<0.5> : tensor<6x12xf32>
  %x = quench.gather %e[%ids] {axis = 0 : i64} : (tensor<6x12xf32>, tensor<2xi64>) -> tensor<2x12xf32>
  %s = quench.constant dense<3.0> : tensor<f32>
  %xs = quench.mul %x, %s : (tensor<2x12xf32>, tensor<f32>) -> tensor<2x12xf32>
  %r = quench.reshape %xs : tensor<2x12xf32> -> tensor<1x2x12xf32>
  %g = quench.constant dense<2.0> : tensor<12xf32>
  %n = quench.rms_norm %r, %g {axis = 2 : i64, epsilon = 1.0e-5 : f64} : (tensor<1x2x12xf32>, tensor<12xf32>) -> tensor<1x2x12xf32>
  %ws = quench.constant dense<1.0> : tensor<12x3xf32>
  %w = quench.transpose %ws {permutation = array<i64: 1, 0>} : tensor<12x3xf32> -> tensor<3x12xf32>
  %y = quench.linear %n, %w : (tensor<1x2x12xf32>, tensor<3x12xf32>) -> tensor<1x2x3xf32>
  return %y : tensor<1x2x3xf32>
}

// -----

// With online=true the input of the down projection (width 8 = 2^3) is
// rotated at run time: signs / sqrt(8), then quench.hadamard of order 8
// (the fast Walsh-Hadamard transform, lowered to three butterfly stages).
// REMARK: remark: rotation (hadamard, seed 0): residual stream of width 4 rotated (Hadamard order 4): 1 embedding table, 2 norm scales folded, 2 linears reading it, 1 writing into it{{$}}
// ONLINE: remark: rotation (hadamard, seed 0): residual stream of width 4 rotated (Hadamard order 4): 1 embedding table, 2 norm scales folded, 2 linears reading it, 1 writing into it; online Hadamard on the inputs of 1 of them
// ONLINE-LABEL: func.func @ok_online
// ONLINE: %[[U:.*]] = quench.linear
// ONLINE: %[[S:.*]] = quench.mul %[[U]], %{{.*}} : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
// ONLINE: %[[H:.*]] = quench.hadamard %[[S]] {order = 8 : i64} : tensor<2x8xf32>
// ONLINE: quench.linear %[[H]],
func.func @ok_online(%ids: tensor<2xi64>) -> tensor<2x4xf32> {
  %e = quench.constant dense<0.5> : tensor<6x4xf32>
  %x = quench.gather %e[%ids] {axis = 0 : i64} : (tensor<6x4xf32>, tensor<2xi64>) -> tensor<2x4xf32>
  %g = quench.constant dense<2.0> : tensor<4xf32>
  %n = quench.rms_norm %x, %g {axis = 1 : i64, epsilon = 1.0e-5 : f64} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  %wu = quench.constant dense<0.25> : tensor<8x4xf32>
  %u = quench.linear %n, %wu : (tensor<2x4xf32>, tensor<8x4xf32>) -> tensor<2x8xf32>
  %wd = quench.constant dense<0.125> : tensor<4x8xf32>
  %d = quench.linear %u, %wd : (tensor<2x8xf32>, tensor<4x8xf32>) -> tensor<2x4xf32>
  %h = quench.add %x, %d : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
  %n2 = quench.rms_norm %h, %g {axis = 1 : i64, epsilon = 1.0e-5 : f64} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  %wh = quench.constant dense<1.0> : tensor<4x4xf32>
  %y = quench.linear %n2, %wh : (tensor<2x4xf32>, tensor<4x4xf32>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}

// -----

// A per-head q norm (Qwen3) is not a residual stream: q reads the stream's
// norm (rotated), the per-head norm after it stays as it is.
// REMARK: remark: rotation (hadamard, seed 0): residual stream of width 4 rotated (Hadamard order 4): 1 embedding table, 1 norm scale folded, 1 linear reading it, 0 writing into it
// CHECK-LABEL: func.func @ok_qk_norm
// CHECK: quench.constant dense<[1.000000e+00, 3.000000e+00]> : tensor<2xf32>
func.func @ok_qk_norm(%ids: tensor<3xi64>) -> tensor<3x2x2xf32> {
  %e = quench.constant dense<0.5> : tensor<5x4xf32>
  %x = quench.gather %e[%ids] {axis = 0 : i64} : (tensor<5x4xf32>, tensor<3xi64>) -> tensor<3x4xf32>
  %g = quench.constant dense<1.5> : tensor<4xf32>
  %n = quench.rms_norm %x, %g {axis = 1 : i64, epsilon = 1.0e-5 : f64} : (tensor<3x4xf32>, tensor<4xf32>) -> tensor<3x4xf32>
  %w = quench.constant dense<1.0> : tensor<4x4xf32>
  %q = quench.linear %n, %w : (tensor<3x4xf32>, tensor<4x4xf32>) -> tensor<3x4xf32>
  %qh = quench.reshape %q : tensor<3x4xf32> -> tensor<3x2x2xf32>
  %gq = quench.constant dense<[1.0, 3.0]> : tensor<2xf32>
  %qn = quench.rms_norm %qh, %gq {axis = 2 : i64, epsilon = 1.0e-5 : f64} : (tensor<3x2x2xf32>, tensor<2xf32>) -> tensor<3x2x2xf32>
  return %qn : tensor<3x2x2xf32>
}

// -----

// A stream read by a LayerNorm is centered for it, which an RMSNorm of the
// same stream would see: refused.
// ERR: error: {{.*}}rotation: the residual stream cannot be rotated: 'quench.rms_norm' (node /norm) reads a stream that LayerNorms also read: centering it for them would change this norm's input; the model is left as it is
func.func @layer_and_rms_norm(%ids: tensor<3xi64>) -> (tensor<3x4xf32>, tensor<3x4xf32>) {
  %e = quench.constant dense<0.5> : tensor<5x4xf32>
  %x = quench.gather %e[%ids] {axis = 0 : i64} : (tensor<5x4xf32>, tensor<3xi64>) -> tensor<3x4xf32>
  %g = quench.constant dense<1.5> : tensor<4xf32>
  %n = quench.rms_norm %x, %g {axis = 1 : i64, epsilon = 1.0e-5 : f64} : (tensor<3x4xf32>, tensor<4xf32>) -> tensor<3x4xf32> loc("/norm")
  %w = quench.constant dense<1.0> : tensor<4x4xf32>
  %y = quench.linear %n, %w : (tensor<3x4xf32>, tensor<4x4xf32>) -> tensor<3x4xf32>
  %l = quench.layer_norm %x, %g {axis = 1 : i64, epsilon = 1.0e-5 : f64} : (tensor<3x4xf32>, tensor<4xf32>) -> tensor<3x4xf32> loc("/ln_f")
  %z = quench.linear %l, %w : (tensor<3x4xf32>, tensor<4x4xf32>) -> tensor<3x4xf32>
  return %y, %z : tensor<3x4xf32>, tensor<3x4xf32>
}

// -----

// ... and so would a linear reading the stream itself.
// ERR: error: {{.*}}rotation: the residual stream cannot be rotated: 'quench.linear' (node /raw) reads the stream directly: it is centered for its LayerNorms, which would change this linear's input; the model is left as it is
func.func @layer_norm_raw_reader(%ids: tensor<3xi64>) -> (tensor<3x4xf32>, tensor<3x4xf32>) {
  %e = quench.constant dense<0.5> : tensor<5x4xf32>
  %x = quench.gather %e[%ids] {axis = 0 : i64} : (tensor<5x4xf32>, tensor<3xi64>) -> tensor<3x4xf32>
  %g = quench.constant dense<1.5> : tensor<4xf32>
  %w = quench.constant dense<1.0> : tensor<4x4xf32>
  %y = quench.linear %x, %w : (tensor<3x4xf32>, tensor<4x4xf32>) -> tensor<3x4xf32> loc("/raw")
  %l = quench.layer_norm %x, %g {axis = 1 : i64, epsilon = 1.0e-5 : f64} : (tensor<3x4xf32>, tensor<4xf32>) -> tensor<3x4xf32>
  %z = quench.linear %l, %w : (tensor<3x4xf32>, tensor<4x4xf32>) -> tensor<3x4xf32>
  return %y, %z : tensor<3x4xf32>, tensor<3x4xf32>
}

// -----

// A LayerNorm whose output is not read by linears only must have a unit
// scale and no bias to be left in place.
// ERR: error: {{.*}}rotation: the residual stream cannot be rotated: the output of 'quench.layer_norm' (node /ln_f) is read by 'quench.gelu', which cannot absorb the norm's scale and bias
func.func @layer_norm_to_gelu(%ids: tensor<3xi64>) -> tensor<3x4xf32> {
  %e = quench.constant dense<0.5> : tensor<5x4xf32>
  %x = quench.gather %e[%ids] {axis = 0 : i64} : (tensor<5x4xf32>, tensor<3xi64>) -> tensor<3x4xf32>
  %g = quench.constant dense<1.0> : tensor<4xf32>
  %b = quench.constant dense<0.5> : tensor<4xf32>
  %l = quench.layer_norm %x, %g, %b {axis = 1 : i64, epsilon = 1.0e-5 : f64} : (tensor<3x4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<3x4xf32> loc("/ln_f")
  %y = quench.gelu %l : tensor<3x4xf32>
  return %y : tensor<3x4xf32>
}

// -----

// ERR: error: {{.*}}rotation: the residual stream cannot be rotated: the stream is a function input (argument 0), not an embedding lookup
func.func @argument(%x: tensor<3x4xf32>) -> tensor<3x4xf32> {
  %g = quench.constant dense<1.5> : tensor<4xf32>
  %n = quench.rms_norm %x, %g {axis = 1 : i64, epsilon = 1.0e-5 : f64} : (tensor<3x4xf32>, tensor<4xf32>) -> tensor<3x4xf32>
  %w = quench.constant dense<1.0> : tensor<4x4xf32>
  %y = quench.linear %n, %w : (tensor<3x4xf32>, tensor<4x4xf32>) -> tensor<3x4xf32>
  return %y : tensor<3x4xf32>
}

// -----

// The norm's output goes to an activation: its scale cannot be folded.
// ERR: error: {{.*}}rotation: the residual stream cannot be rotated: the output of 'quench.rms_norm' (node /norm) is read by 'quench.silu', which cannot absorb the norm's scale
func.func @norm_to_silu(%ids: tensor<3xi64>) -> tensor<3x4xf32> {
  %e = quench.constant dense<0.5> : tensor<5x4xf32>
  %x = quench.gather %e[%ids] {axis = 0 : i64} : (tensor<5x4xf32>, tensor<3xi64>) -> tensor<3x4xf32>
  %g = quench.constant dense<1.5> : tensor<4xf32>
  %n = quench.rms_norm %x, %g {axis = 1 : i64, epsilon = 1.0e-5 : f64} : (tensor<3x4xf32>, tensor<4xf32>) -> tensor<3x4xf32> loc("/norm")
  %y = quench.silu %n : tensor<3x4xf32>
  return %y : tensor<3x4xf32>
}

// -----

// ERR: error: {{.*}}rotation: the residual stream cannot be rotated: the stream is a function result (result 1)
func.func @stream_result(%ids: tensor<3xi64>) -> (tensor<3x4xf32>, tensor<3x4xf32>) {
  %e = quench.constant dense<0.5> : tensor<5x4xf32>
  %x = quench.gather %e[%ids] {axis = 0 : i64} : (tensor<5x4xf32>, tensor<3xi64>) -> tensor<3x4xf32>
  %g = quench.constant dense<1.5> : tensor<4xf32>
  %n = quench.rms_norm %x, %g {axis = 1 : i64, epsilon = 1.0e-5 : f64} : (tensor<3x4xf32>, tensor<4xf32>) -> tensor<3x4xf32>
  %w = quench.constant dense<1.0> : tensor<4x4xf32>
  %y = quench.linear %n, %w : (tensor<3x4xf32>, tensor<4x4xf32>) -> tensor<3x4xf32>
  return %y, %x : tensor<3x4xf32>, tensor<3x4xf32>
}

// -----

// ERR: error: {{.*}}rotation: the residual stream cannot be rotated: 'quench.mul' (node /scale) scales the stream per channel, which the rotation cannot pass through
func.func @channel_scale(%ids: tensor<3xi64>) -> tensor<3x4xf32> {
  %e = quench.constant dense<0.5> : tensor<5x4xf32>
  %x = quench.gather %e[%ids] {axis = 0 : i64} : (tensor<5x4xf32>, tensor<3xi64>) -> tensor<3x4xf32>
  %c = quench.constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %xs = quench.mul %x, %c : (tensor<3x4xf32>, tensor<4xf32>) -> tensor<3x4xf32> loc("/scale")
  %g = quench.constant dense<1.5> : tensor<4xf32>
  %n = quench.rms_norm %xs, %g {axis = 1 : i64, epsilon = 1.0e-5 : f64} : (tensor<3x4xf32>, tensor<4xf32>) -> tensor<3x4xf32>
  %w = quench.constant dense<1.0> : tensor<4x4xf32>
  %y = quench.linear %n, %w : (tensor<3x4xf32>, tensor<4x4xf32>) -> tensor<3x4xf32>
  return %y : tensor<3x4xf32>
}

// -----

// ERR: error: {{.*}}rotation: no residual stream found (the rotation needs quench.rms_norm or quench.layer_norm over the last axis of the hidden state: transformer models){{$}}
func.func @no_norm(%x: tensor<3x4xf32>) -> tensor<3x4xf32> {
  %w = quench.constant dense<1.0> : tensor<4x4xf32>
  %y = quench.linear %x, %w : (tensor<3x4xf32>, tensor<4x4xf32>) -> tensor<3x4xf32>
  return %y : tensor<3x4xf32>
}

// -----

// A GPT-style model (the char-GPT): LayerNorms read the stream, so it is
// centered first (the table's rows and the writing linear's columns and
// bias lose their mean); each LayerNorm becomes an RMSNorm with a unit
// scale, its scale folded into the reading linear's columns and its bias
// into that linear's bias (W b = 4 x 0.5 = 2 per output, added to the
// head's missing bias).
// REMARK: remark: rotation (hadamard, seed 0): residual stream of width 4 rotated (Hadamard order 4): 1 embedding table, 2 norm scales folded, 2 linears reading it, 1 writing into it; centered first: 2 LayerNorms now RMSNorms{{$}}
// CHECK-LABEL: func.func @ok_gpt
// CHECK-NOT: quench.layer_norm
// CHECK: %[[T:.*]] = quench.constant dense_resource<{{.*}}> : tensor<5x4xf32>
// CHECK: %[[X:.*]] = quench.gather %[[T]][%arg0]
// CHECK: %[[G1:.*]] = quench.constant dense<1.000000e+00> : tensor<4xf32>
// CHECK: %[[N1:.*]] = quench.rms_norm %[[X]], %[[G1]] {axis = 1 : i64, epsilon = 1.000000e-05 : f64}
// CHECK: %[[B1:.*]] = quench.constant dense<2.000000e+00> : tensor<3xf32>
// CHECK: quench.linear %[[N1]], %{{.*}}, %[[B1]] :
// CHECK: quench.rms_norm
// CHECK: quench.linear
// CHECK-NOT: quench.layer_norm
// CHECK: return
func.func @ok_gpt(%ids: tensor<3xi64>) -> tensor<3x5xf32> {
  %e = quench.constant dense<[[1.0, 2.0, 3.0, 6.0], [0.5, 0.0, -1.0, 2.0], [1.0, 1.0, 1.0, 1.0], [3.0, -2.0, 0.0, 1.0], [0.0, 0.0, 0.0, 4.0]]> : tensor<5x4xf32>
  %x = quench.gather %e[%ids] {axis = 0 : i64} : (tensor<5x4xf32>, tensor<3xi64>) -> tensor<3x4xf32>
  %g = quench.constant dense<1.5> : tensor<4xf32>
  %b = quench.constant dense<0.5> : tensor<4xf32>
  %n = quench.layer_norm %x, %g, %b {axis = 1 : i64, epsilon = 1.0e-5 : f64} : (tensor<3x4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<3x4xf32>
  %w1 = quench.constant dense<1.0> : tensor<3x4xf32>
  %h = quench.linear %n, %w1 : (tensor<3x4xf32>, tensor<3x4xf32>) -> tensor<3x3xf32>
  %w2 = quench.constant dense<[[1.0, 0.0, 2.0], [0.0, 1.0, 0.0], [3.0, 0.0, 1.0], [0.0, 2.0, 0.0]]> : tensor<4x3xf32>
  %bo = quench.constant dense<[1.0, 0.0, 0.0, 3.0]> : tensor<4xf32>
  %o = quench.linear %h, %w2, %bo : (tensor<3x3xf32>, tensor<4x3xf32>, tensor<4xf32>) -> tensor<3x4xf32>
  %r = quench.add %x, %o : (tensor<3x4xf32>, tensor<3x4xf32>) -> tensor<3x4xf32>
  %n2 = quench.layer_norm %r, %g {axis = 1 : i64, epsilon = 1.0e-5 : f64} : (tensor<3x4xf32>, tensor<4xf32>) -> tensor<3x4xf32>
  %wh = quench.constant dense<0.25> : tensor<5x4xf32>
  %y = quench.linear %n2, %wh : (tensor<3x4xf32>, tensor<5x4xf32>) -> tensor<3x5xf32>
  return %y : tensor<3x5xf32>
}
