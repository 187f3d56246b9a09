// RUN: quench-opt %s --quench-fuse-attention -split-input-file | FileCheck %s

// LLaMA-style grouped-query attention as quench-raise-ops leaves it (4 query
// heads, 2 kv heads, dynamic S and T): the query rows of a kv head stacked
// by a reshape whose shape comes from the exporter's shape_of/slice/concat,
// the scores split back to [B, H, S, T], divided by sqrt(d), plus a causal
// mask [S, T]; P reshaped to the groups again for P·V. The fused op reads
// the query reshaped to [B, H, S, D] (the scores' B, H, S), K and V as they
// are, and the mask unsqueezed to rank 4.
// CHECK-LABEL: func @llama_gqa
// CHECK-SAME: (%[[Q:.*]]: tensor<1x4x?x16xf32>, %[[K:.*]]: tensor<1x2x?x16xf32>, %[[V:.*]]: tensor<1x2x?x16xf32>, %[[M:.*]]: tensor<?x?xf32>)
// CHECK: %[[ROWS:.*]] = quench.reshape %[[Q]]
// CHECK: %[[SPLIT:.*]] = quench.concat {{.*}} -> tensor<4xi64>
// CHECK-DAG: %[[BHS:.*]] = quench.slice %[[SPLIT]] {ends = array<i64: 3>, starts = array<i64: 0>, steps = array<i64: 1>} : tensor<4xi64> -> tensor<3xi64>
// CHECK-DAG: %[[D:.*]] = quench.constant dense<16> : tensor<1xi64>
// CHECK: %[[QS:.*]] = quench.concat %[[BHS]], %[[D]]
// CHECK: %[[QUERY:.*]] = quench.reshape %[[ROWS]](%[[QS]]) : tensor<1x2x?x16xf32>, tensor<4xi64> -> tensor<1x4x?x16xf32>
// CHECK: %[[BIAS:.*]] = quench.unsqueeze %[[M]] {axes = array<i64: 0, 1>} : tensor<?x?xf32> -> tensor<1x1x?x?xf32>
// CHECK: %[[O:.*]] = quench.attention %[[QUERY]], %[[K]], %[[V]] bias(%[[BIAS]]) {scale = 2.500000e-01 : f64} : (tensor<1x4x?x16xf32>, tensor<1x2x?x16xf32>, tensor<1x2x?x16xf32>, tensor<1x1x?x?xf32>) -> tensor<1x4x?x16xf32>
// CHECK-NOT: quench.softmax
// CHECK-NOT: quench.matmul
// CHECK: return %[[O]]
func.func @llama_gqa(%q: tensor<1x4x?x16xf32>, %k: tensor<1x2x?x16xf32>, %v: tensor<1x2x?x16xf32>, %mask: tensor<?x?xf32>) -> tensor<1x4x?x16xf32> {
  %two = quench.constant dense<2> : tensor<1xi64>
  %four = quench.constant dense<4> : tensor<1xi64>
  %sixteen = quench.constant dense<16> : tensor<1xi64>
  %sqrt_d = quench.constant dense<4.0> : tensor<f32>
  %qs = quench.shape_of %q : tensor<1x4x?x16xf32> -> tensor<4xi64>
  %b = quench.slice %qs {ends = array<i64: 1>, starts = array<i64: 0>, steps = array<i64: 1>} : tensor<4xi64> -> tensor<1xi64>
  %s = quench.slice %qs {ends = array<i64: 3>, starts = array<i64: 2>, steps = array<i64: 1>} : tensor<4xi64> -> tensor<1xi64>
  %s2 = quench.mul %s, %two : (tensor<1xi64>, tensor<1xi64>) -> tensor<1xi64>
  %rows_shape = quench.concat %b, %two, %s2, %sixteen {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %rows = quench.reshape %q(%rows_shape) : tensor<1x4x?x16xf32>, tensor<4xi64> -> tensor<1x2x?x16xf32>
  %kt = quench.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<1x2x?x16xf32> -> tensor<1x2x16x?xf32>
  %sg = quench.matmul %rows, %kt : (tensor<1x2x?x16xf32>, tensor<1x2x16x?xf32>) -> tensor<1x2x?x?xf32>
  %ks = quench.shape_of %k : tensor<1x2x?x16xf32> -> tensor<4xi64>
  %t = quench.slice %ks {ends = array<i64: 3>, starts = array<i64: 2>, steps = array<i64: 1>} : tensor<4xi64> -> tensor<1xi64>
  %split_shape = quench.concat %b, %four, %s, %t {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %scores = quench.reshape %sg(%split_shape) : tensor<1x2x?x?xf32>, tensor<4xi64> -> tensor<1x4x?x?xf32>
  %scaled = quench.div %scores, %sqrt_d : (tensor<1x4x?x?xf32>, tensor<f32>) -> tensor<1x4x?x?xf32>
  %masked = quench.add %scaled, %mask : (tensor<1x4x?x?xf32>, tensor<?x?xf32>) -> tensor<1x4x?x?xf32>
  %p = quench.softmax %masked {axis = 3 : i64} : tensor<1x4x?x?xf32>
  %ps = quench.shape_of %p : tensor<1x4x?x?xf32> -> tensor<4xi64>
  %pb = quench.slice %ps {ends = array<i64: 1>, starts = array<i64: 0>, steps = array<i64: 1>} : tensor<4xi64> -> tensor<1xi64>
  %psq = quench.slice %ps {ends = array<i64: 3>, starts = array<i64: 2>, steps = array<i64: 1>} : tensor<4xi64> -> tensor<1xi64>
  %pt = quench.slice %ps {ends = array<i64: 4>, starts = array<i64: 3>, steps = array<i64: 1>} : tensor<4xi64> -> tensor<1xi64>
  %psq2 = quench.mul %psq, %two : (tensor<1xi64>, tensor<1xi64>) -> tensor<1xi64>
  %pg_shape = quench.concat %pb, %two, %psq2, %pt {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %pg = quench.reshape %p(%pg_shape) : tensor<1x4x?x?xf32>, tensor<4xi64> -> tensor<1x2x?x?xf32>
  %og = quench.matmul %pg, %v : (tensor<1x2x?x?xf32>, tensor<1x2x?x16xf32>) -> tensor<1x2x?x16xf32>
  %o_shape = quench.concat %pb, %four, %psq, %sixteen {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %o = quench.reshape %og(%o_shape) : tensor<1x2x?x16xf32>, tensor<4xi64> -> tensor<1x4x?x16xf32>
  return %o : tensor<1x4x?x16xf32>
}

// -----

// GPT-2: scores scaled, masked by `where(causal, s, finfo.min)`, plus the
// padding mask [B, 1, 1, T]. The mask term becomes where(causal, 0, fill)
// on the condition's own shape; the two terms are summed on [1, 1, S, T].
// CHECK-LABEL: func @gpt2_where
// CHECK-SAME: (%[[Q:.*]]: tensor<1x4x?x16xf32>, %[[K:.*]]: tensor<1x4x?x16xf32>, %[[V:.*]]: tensor<1x4x?x16xf32>, %[[C:.*]]: tensor<?x?xi1>, %[[AM:.*]]: tensor<1x1x1x?xf32>)
// CHECK-DAG: %[[ZERO:.*]] = quench.constant dense<0.000000e+00> : tensor<f32>
// CHECK-DAG: %[[FILL:.*]] = quench.constant dense<-3.40282347E+38> : tensor<f32>
// CHECK: %[[W:.*]] = quench.where %[[C]], %[[ZERO]], %[[FILL]] : (tensor<?x?xi1>, tensor<f32>, tensor<f32>) -> tensor<?x?xf32>
// CHECK: %[[W4:.*]] = quench.unsqueeze %[[W]] {axes = array<i64: 0, 1>} : tensor<?x?xf32> -> tensor<1x1x?x?xf32>
// CHECK: %[[BIAS:.*]] = quench.add %[[AM]], %[[W4]] : (tensor<1x1x1x?xf32>, tensor<1x1x?x?xf32>) -> tensor<1x1x?x?xf32>
// CHECK: %[[O:.*]] = quench.attention %[[Q]], %[[K]], %[[V]] bias(%[[BIAS]]) {scale = 2.500000e-01 : f64}
// CHECK-NOT: quench.softmax
// CHECK: return %[[O]]
func.func @gpt2_where(%q: tensor<1x4x?x16xf32>, %k: tensor<1x4x?x16xf32>, %v: tensor<1x4x?x16xf32>, %causal: tensor<?x?xi1>, %am: tensor<1x1x1x?xf32>) -> tensor<1x4x?x16xf32> {
  %c = quench.constant dense<0.25> : tensor<f32>
  %min = quench.constant dense<-3.40282347E+38> : tensor<f32>
  %kt = quench.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<1x4x?x16xf32> -> tensor<1x4x16x?xf32>
  %s = quench.matmul %q, %kt : (tensor<1x4x?x16xf32>, tensor<1x4x16x?xf32>) -> tensor<1x4x?x?xf32>
  %scaled = quench.mul %s, %c : (tensor<1x4x?x?xf32>, tensor<f32>) -> tensor<1x4x?x?xf32>
  %w = quench.where %causal, %scaled, %min : (tensor<?x?xi1>, tensor<1x4x?x?xf32>, tensor<f32>) -> tensor<1x4x?x?xf32>
  %x = quench.add %w, %am : (tensor<1x4x?x?xf32>, tensor<1x1x1x?xf32>) -> tensor<1x4x?x?xf32>
  %p = quench.softmax %x {axis = 3 : i64} : tensor<1x4x?x?xf32>
  %o = quench.matmul %p, %v : (tensor<1x4x?x?xf32>, tensor<1x4x?x16xf32>) -> tensor<1x4x?x16xf32>
  return %o : tensor<1x4x?x16xf32>
}

// -----

// A scale after the terms scales them too; `t - s` negates the scores.
// softmax(((s + b) * 0.5 - m) / 2) = softmax(0.25 s + 0.25 b - 0.5 m), and
// the mask selected where the condition holds: where(c, fill, s).
// CHECK-LABEL: func @scale_after_bias
// CHECK-SAME: (%[[Q:.*]]: tensor<1x2x8x4xf32>, %[[K:.*]]: tensor<1x2x8x4xf32>, %[[V:.*]]: tensor<1x2x8x4xf32>, %[[B:.*]]: tensor<8x8xf32>, %[[M:.*]]: tensor<1x1x1x8xf32>, %[[C:.*]]: tensor<1x1x8x8xi1>)
// CHECK-DAG: %[[FILL:.*]] = quench.constant dense<0xFF800000> : tensor<f32>
// CHECK-DAG: %[[ZERO:.*]] = quench.constant dense<0.000000e+00> : tensor<f32>
// CHECK: %[[W:.*]] = quench.where %[[C]], %[[FILL]], %[[ZERO]]
// CHECK: %[[HALF:.*]] = quench.constant dense<-5.000000e-01> : tensor<f32>
// CHECK: %[[MS:.*]] = quench.mul %[[M]], %[[HALF]] : (tensor<1x1x1x8xf32>, tensor<f32>) -> tensor<1x1x1x8xf32>
// CHECK: %[[S1:.*]] = quench.add %[[W]], %[[MS]] : (tensor<1x1x8x8xf32>, tensor<1x1x1x8xf32>) -> tensor<1x1x8x8xf32>
// CHECK: %[[QUARTER:.*]] = quench.constant dense<2.500000e-01> : tensor<f32>
// CHECK: %[[BS:.*]] = quench.mul %[[B]], %[[QUARTER]] : (tensor<8x8xf32>, tensor<f32>) -> tensor<8x8xf32>
// CHECK: %[[B4:.*]] = quench.unsqueeze %[[BS]]
// CHECK: %[[S2:.*]] = quench.add %[[S1]], %[[B4]]
// CHECK: quench.attention %[[Q]], %[[K]], %[[V]] bias(%[[S2]]) {scale = 2.500000e-01 : f64}
func.func @scale_after_bias(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>, %b: tensor<8x8xf32>, %m: tensor<1x1x1x8xf32>, %c: tensor<1x1x8x8xi1>) -> tensor<1x2x8x4xf32> {
  %half = quench.constant dense<0.5> : tensor<f32>
  %two = quench.constant dense<2.0> : tensor<1xf32>
  %ninf = quench.constant dense<0xFF800000> : tensor<f32>
  %kt = quench.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<1x2x8x4xf32> -> tensor<1x2x4x8xf32>
  %s = quench.matmul %q, %kt : (tensor<1x2x8x4xf32>, tensor<1x2x4x8xf32>) -> tensor<1x2x8x8xf32>
  %x0 = quench.add %b, %s : (tensor<8x8xf32>, tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %x1 = quench.mul %half, %x0 : (tensor<f32>, tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %x2 = quench.sub %x1, %m : (tensor<1x2x8x8xf32>, tensor<1x1x1x8xf32>) -> tensor<1x2x8x8xf32>
  %x3 = quench.div %x2, %two : (tensor<1x2x8x8xf32>, tensor<1xf32>) -> tensor<1x2x8x8xf32>
  %x4 = quench.where %c, %ninf, %x3 : (tensor<1x1x8x8xi1>, tensor<f32>, tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %p = quench.softmax %x4 {axis = 3 : i64} : tensor<1x2x8x8xf32>
  %o = quench.matmul %p, %v : (tensor<1x2x8x8xf32>, tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
  return %o : tensor<1x2x8x4xf32>
}

// -----

// torch's scaled_dot_product_attention export: q and kᵀ each scaled by
// sqrt(scale) (here 1/sqrt(sqrt(16)) each: scale 1/4); no mask, no bias.
// CHECK-LABEL: func @sdpa_split_scale
// CHECK-SAME: (%[[Q:.*]]: tensor<2x4x?x16xf32>, %[[K:.*]]: tensor<2x4x?x16xf32>, %[[V:.*]]: tensor<2x4x?x8xf32>)
// CHECK: %[[O:.*]] = quench.attention %[[Q]], %[[K]], %[[V]] {scale = 2.500000e-01 : f64} : (tensor<2x4x?x16xf32>, tensor<2x4x?x16xf32>, tensor<2x4x?x8xf32>) -> tensor<2x4x?x8xf32>
// CHECK-NOT: quench.mul
// CHECK: return %[[O]]
func.func @sdpa_split_scale(%q: tensor<2x4x?x16xf32>, %k: tensor<2x4x?x16xf32>, %v: tensor<2x4x?x8xf32>) -> tensor<2x4x?x8xf32> {
  %c = quench.constant dense<0.5> : tensor<f32>
  %qs = quench.mul %q, %c : (tensor<2x4x?x16xf32>, tensor<f32>) -> tensor<2x4x?x16xf32>
  %kt = quench.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<2x4x?x16xf32> -> tensor<2x4x16x?xf32>
  %kts = quench.mul %kt, %c : (tensor<2x4x16x?xf32>, tensor<f32>) -> tensor<2x4x16x?xf32>
  %s = quench.matmul %qs, %kts : (tensor<2x4x?x16xf32>, tensor<2x4x16x?xf32>) -> tensor<2x4x?x?xf32>
  %p = quench.softmax %s {axis = 3 : i64} : tensor<2x4x?x?xf32>
  %o = quench.matmul %p, %v : (tensor<2x4x?x?xf32>, tensor<2x4x?x8xf32>) -> tensor<2x4x?x8xf32>
  return %o : tensor<2x4x?x8xf32>
}

// -----

// An f16 cache (quench-kv-cache --kv-cache=f16): the keys and values are
// widened on read; the fused op reads the f16 views.
// CHECK-LABEL: func @f16_cache
// CHECK-SAME: (%[[Q:.*]]: tensor<1x4x?x16xf32>, %[[KC:.*]]: tensor<1x4x?x16xf16>, %[[VC:.*]]: tensor<1x4x?x16xf16>)
// CHECK-NOT: quench.cast
// CHECK: %[[O:.*]] = quench.attention %[[Q]], %[[KC]], %[[VC]] {scale = 2.500000e-01 : f64} : (tensor<1x4x?x16xf32>, tensor<1x4x?x16xf16>, tensor<1x4x?x16xf16>) -> tensor<1x4x?x16xf32>
// CHECK: return %[[O]]
func.func @f16_cache(%q: tensor<1x4x?x16xf32>, %kc: tensor<1x4x?x16xf16>, %vc: tensor<1x4x?x16xf16>) -> tensor<1x4x?x16xf32> {
  %c = quench.constant dense<0.25> : tensor<f32>
  %k = quench.cast %kc : tensor<1x4x?x16xf16> to tensor<1x4x?x16xf32>
  %v = quench.cast %vc : tensor<1x4x?x16xf16> to tensor<1x4x?x16xf32>
  %kt = quench.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<1x4x?x16xf32> -> tensor<1x4x16x?xf32>
  %s = quench.matmul %q, %kt : (tensor<1x4x?x16xf32>, tensor<1x4x16x?xf32>) -> tensor<1x4x?x?xf32>
  %x = quench.mul %s, %c : (tensor<1x4x?x?xf32>, tensor<f32>) -> tensor<1x4x?x?xf32>
  %p = quench.softmax %x {axis = 3 : i64} : tensor<1x4x?x?xf32>
  %o = quench.matmul %p, %v : (tensor<1x4x?x?xf32>, tensor<1x4x?x16xf32>) -> tensor<1x4x?x16xf32>
  return %o : tensor<1x4x?x16xf32>
}

// -----

// The int8 cache as quench-kv-cache reads it: views of the codes and of
// the scales with the same length, cast(codes) * scales. The fused op
// takes the i8 views and the scales: no dequantized copy. A cast to a
// less static type (the past input's) is looked through.
// CHECK-LABEL: func @int8_cache
// CHECK-SAME: (%[[Q:.*]]: tensor<1x2x?x16xf32>, %[[KC:.*]]: tensor<1x2x?x16xi8>, %[[KS:.*]]: tensor<1x2x?x1xf32>, %[[VC:.*]]: tensor<1x2x?x16xi8>, %[[VS:.*]]: tensor<1x2x?x1xf32>, %[[N:.*]]: index)
// CHECK-DAG: %[[K:.*]] = tensor.extract_slice %[[KC]][0, 0, 0, 0] [1, 2, %[[N]], 16]
// CHECK-DAG: %[[KSV:.*]] = tensor.extract_slice %[[KS]][0, 0, 0, 0] [1, 2, %[[N]], 1]
// CHECK-DAG: %[[V:.*]] = tensor.extract_slice %[[VC]][0, 0, 0, 0] [1, 2, %[[N]], 16]
// CHECK-DAG: %[[VSV:.*]] = tensor.extract_slice %[[VS]][0, 0, 0, 0] [1, 2, %[[N]], 1]
// CHECK-NOT: quench.cast
// CHECK: quench.attention %[[Q]], %[[K]], %[[V]] key_scale(%[[KSV]]) value_scale(%[[VSV]]) {scale = 2.500000e-01 : f64} : (tensor<1x2x?x16xf32>, tensor<1x2x?x16xi8>, tensor<1x2x?x16xi8>, tensor<1x2x?x1xf32>, tensor<1x2x?x1xf32>) -> tensor<1x2x?x16xf32>
// CHECK-NOT: quench.cast
func.func @int8_cache(%q: tensor<1x2x?x16xf32>, %kc: tensor<1x2x?x16xi8>, %ks: tensor<1x2x?x1xf32>, %vc: tensor<1x2x?x16xi8>, %vs: tensor<1x2x?x1xf32>, %n: index) -> tensor<1x2x?x16xf32> {
  %c = quench.constant dense<0.25> : tensor<f32>
  %k8 = tensor.extract_slice %kc[0, 0, 0, 0] [1, 2, %n, 16] [1, 1, 1, 1] : tensor<1x2x?x16xi8> to tensor<1x2x?x16xi8>
  %kf = quench.cast %k8 : tensor<1x2x?x16xi8> to tensor<1x2x?x16xf32>
  %ksv = tensor.extract_slice %ks[0, 0, 0, 0] [1, 2, %n, 1] [1, 1, 1, 1] : tensor<1x2x?x1xf32> to tensor<1x2x?x1xf32>
  %kd = quench.mul %kf, %ksv : (tensor<1x2x?x16xf32>, tensor<1x2x?x1xf32>) -> tensor<1x2x?x16xf32>
  %k = tensor.cast %kd : tensor<1x2x?x16xf32> to tensor<?x2x?x16xf32>
  %v8 = tensor.extract_slice %vc[0, 0, 0, 0] [1, 2, %n, 16] [1, 1, 1, 1] : tensor<1x2x?x16xi8> to tensor<1x2x?x16xi8>
  %vf = quench.cast %v8 : tensor<1x2x?x16xi8> to tensor<1x2x?x16xf32>
  %vsv = tensor.extract_slice %vs[0, 0, 0, 0] [1, 2, %n, 1] [1, 1, 1, 1] : tensor<1x2x?x1xf32> to tensor<1x2x?x1xf32>
  %v = quench.mul %vsv, %vf : (tensor<1x2x?x1xf32>, tensor<1x2x?x16xf32>) -> tensor<1x2x?x16xf32>
  %kt = quench.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<?x2x?x16xf32> -> tensor<?x2x16x?xf32>
  %s = quench.matmul %q, %kt : (tensor<1x2x?x16xf32>, tensor<?x2x16x?xf32>) -> tensor<1x2x?x?xf32>
  %x = quench.mul %s, %c : (tensor<1x2x?x?xf32>, tensor<f32>) -> tensor<1x2x?x?xf32>
  %p = quench.softmax %x {axis = 3 : i64} : tensor<1x2x?x?xf32>
  %o = quench.matmul %p, %v : (tensor<1x2x?x?xf32>, tensor<1x2x?x16xf32>) -> tensor<1x2x?x16xf32>
  return %o : tensor<1x2x?x16xf32>
}

// -----

// The scales of an int8 read must be one per position of the codes read:
// here they are a view of another length, so the keys stay dequantized
// (the attention still fuses, reading the f32 product).
// CHECK-LABEL: func @int8_scale_length
// CHECK: %[[KD:.*]] = quench.mul
// CHECK: quench.attention %{{.*}}, %[[KD]], %{{.*}} {scale
func.func @int8_scale_length(%q: tensor<1x2x?x16xf32>, %kc: tensor<1x2x?x16xi8>, %ks: tensor<1x2x?x1xf32>, %v: tensor<1x2x?x16xf32>, %n: index, %m: index) -> tensor<1x2x?x16xf32> {
  %k8 = tensor.extract_slice %kc[0, 0, 0, 0] [1, 2, %n, 16] [1, 1, 1, 1] : tensor<1x2x?x16xi8> to tensor<1x2x?x16xi8>
  %kf = quench.cast %k8 : tensor<1x2x?x16xi8> to tensor<1x2x?x16xf32>
  %ksv = tensor.extract_slice %ks[0, 0, 0, 0] [1, 2, %m, 1] [1, 1, 1, 1] : tensor<1x2x?x1xf32> to tensor<1x2x?x1xf32>
  %kd = quench.mul %kf, %ksv : (tensor<1x2x?x16xf32>, tensor<1x2x?x1xf32>) -> tensor<1x2x?x16xf32>
  %kt = quench.transpose %kd {permutation = array<i64: 0, 1, 3, 2>} : tensor<1x2x?x16xf32> -> tensor<1x2x16x?xf32>
  %s = quench.matmul %q, %kt : (tensor<1x2x?x16xf32>, tensor<1x2x16x?xf32>) -> tensor<1x2x?x?xf32>
  %p = quench.softmax %s {axis = 3 : i64} : tensor<1x2x?x?xf32>
  %o = quench.matmul %p, %v : (tensor<1x2x?x?xf32>, tensor<1x2x?x16xf32>) -> tensor<1x2x?x16xf32>
  return %o : tensor<1x2x?x16xf32>
}

// -----

// T5: no scaling, a position bias with the heads in its shape (plus the
// mask, already summed into it by the model) shared by the layers.
// CHECK-LABEL: func @t5_position_bias
// CHECK-SAME: (%[[Q:.*]]: tensor<1x4x?x32xf32>, %[[K:.*]]: tensor<1x4x?x32xf32>, %[[V:.*]]: tensor<1x4x?x32xf32>, %[[PB:.*]]: tensor<1x4x?x?xf32>)
// CHECK: %[[O1:.*]] = quench.attention %[[Q]], %[[K]], %[[V]] bias(%[[PB]]) {scale = 1.000000e+00 : f64}
// CHECK: %[[O2:.*]] = quench.attention %[[O1]], %[[K]], %[[V]] bias(%[[PB]]) {scale = 1.000000e+00 : f64}
// CHECK: return %[[O2]]
func.func @t5_position_bias(%q: tensor<1x4x?x32xf32>, %k: tensor<1x4x?x32xf32>, %v: tensor<1x4x?x32xf32>, %pb: tensor<1x4x?x?xf32>) -> tensor<1x4x?x32xf32> {
  %kt = quench.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<1x4x?x32xf32> -> tensor<1x4x32x?xf32>
  %s = quench.matmul %q, %kt : (tensor<1x4x?x32xf32>, tensor<1x4x32x?xf32>) -> tensor<1x4x?x?xf32>
  %x = quench.add %s, %pb : (tensor<1x4x?x?xf32>, tensor<1x4x?x?xf32>) -> tensor<1x4x?x?xf32>
  %p = quench.softmax %x {axis = 3 : i64} : tensor<1x4x?x?xf32>
  %o = quench.matmul %p, %v : (tensor<1x4x?x?xf32>, tensor<1x4x?x32xf32>) -> tensor<1x4x?x32xf32>
  %s2 = quench.matmul %o, %kt : (tensor<1x4x?x32xf32>, tensor<1x4x32x?xf32>) -> tensor<1x4x?x?xf32>
  %x2 = quench.add %pb, %s2 : (tensor<1x4x?x?xf32>, tensor<1x4x?x?xf32>) -> tensor<1x4x?x?xf32>
  %p2 = quench.softmax %x2 {axis = 3 : i64} : tensor<1x4x?x?xf32>
  %o2 = quench.matmul %p2, %v : (tensor<1x4x?x?xf32>, tensor<1x4x?x32xf32>) -> tensor<1x4x?x32xf32>
  return %o2 : tensor<1x4x?x32xf32>
}

// -----

// Not fused: the probabilities are also an output.
// CHECK-LABEL: func @probabilities_returned
// CHECK-NOT: quench.attention
// CHECK: quench.softmax
func.func @probabilities_returned(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>) -> (tensor<1x2x8x4xf32>, tensor<1x2x8x8xf32>) {
  %kt = quench.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<1x2x8x4xf32> -> tensor<1x2x4x8xf32>
  %s = quench.matmul %q, %kt : (tensor<1x2x8x4xf32>, tensor<1x2x4x8xf32>) -> tensor<1x2x8x8xf32>
  %p = quench.softmax %s {axis = 3 : i64} : tensor<1x2x8x8xf32>
  %o = quench.matmul %p, %v : (tensor<1x2x8x8xf32>, tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
  return %o, %p : tensor<1x2x8x4xf32>, tensor<1x2x8x8xf32>
}

// -----

// Not fused: the scores are also read elsewhere.
// CHECK-LABEL: func @scores_read_twice
// CHECK-NOT: quench.attention
// CHECK: quench.softmax
func.func @scores_read_twice(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>) -> (tensor<1x2x8x4xf32>, tensor<1x2x8x8xf32>) {
  %c = quench.constant dense<0.5> : tensor<f32>
  %kt = quench.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<1x2x8x4xf32> -> tensor<1x2x4x8xf32>
  %s = quench.matmul %q, %kt : (tensor<1x2x8x4xf32>, tensor<1x2x4x8xf32>) -> tensor<1x2x8x8xf32>
  %x = quench.mul %s, %c : (tensor<1x2x8x8xf32>, tensor<f32>) -> tensor<1x2x8x8xf32>
  %p = quench.softmax %x {axis = 3 : i64} : tensor<1x2x8x8xf32>
  %o = quench.matmul %p, %v : (tensor<1x2x8x8xf32>, tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
  return %o, %s : tensor<1x2x8x4xf32>, tensor<1x2x8x8xf32>
}

// -----

// Not fused: a tanh soft-cap (Gemma 2) between the scores and the softmax
// is not an affine function of the scores.
// CHECK-LABEL: func @softcap
// CHECK-NOT: quench.attention
// CHECK: quench.tanh
// CHECK: quench.softmax
func.func @softcap(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32> {
  %cap = quench.constant dense<50.0> : tensor<f32>
  %kt = quench.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<1x2x8x4xf32> -> tensor<1x2x4x8xf32>
  %s = quench.matmul %q, %kt : (tensor<1x2x8x4xf32>, tensor<1x2x4x8xf32>) -> tensor<1x2x8x8xf32>
  %x = quench.div %s, %cap : (tensor<1x2x8x8xf32>, tensor<f32>) -> tensor<1x2x8x8xf32>
  %t = quench.tanh %x : tensor<1x2x8x8xf32>
  %y = quench.mul %t, %cap : (tensor<1x2x8x8xf32>, tensor<f32>) -> tensor<1x2x8x8xf32>
  %p = quench.softmax %y {axis = 3 : i64} : tensor<1x2x8x8xf32>
  %o = quench.matmul %p, %v : (tensor<1x2x8x8xf32>, tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
  return %o : tensor<1x2x8x4xf32>
}

// -----

// Not fused: the softmax is over the queries, not the keys.
// CHECK-LABEL: func @softmax_other_axis
// CHECK-NOT: quench.attention
// CHECK: quench.softmax %{{.*}} {axis = 2 : i64}
func.func @softmax_other_axis(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32> {
  %kt = quench.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<1x2x8x4xf32> -> tensor<1x2x4x8xf32>
  %s = quench.matmul %q, %kt : (tensor<1x2x8x4xf32>, tensor<1x2x4x8xf32>) -> tensor<1x2x8x8xf32>
  %p = quench.softmax %s {axis = 2 : i64} : tensor<1x2x8x8xf32>
  %o = quench.matmul %p, %v : (tensor<1x2x8x8xf32>, tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
  return %o : tensor<1x2x8x4xf32>
}

// -----

// Not fused: a `where` fill of -1e4 is not "minus infinity" (a row masked
// everywhere would differ), so the select is not an additive mask.
// CHECK-LABEL: func @finite_fill
// CHECK-NOT: quench.attention
// CHECK: quench.where
// CHECK: quench.softmax
func.func @finite_fill(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>, %c: tensor<8x8xi1>) -> tensor<1x2x8x4xf32> {
  %fill = quench.constant dense<-1.0e4> : tensor<f32>
  %kt = quench.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<1x2x8x4xf32> -> tensor<1x2x4x8xf32>
  %s = quench.matmul %q, %kt : (tensor<1x2x8x4xf32>, tensor<1x2x4x8xf32>) -> tensor<1x2x8x8xf32>
  %x = quench.where %c, %s, %fill : (tensor<8x8xi1>, tensor<1x2x8x8xf32>, tensor<f32>) -> tensor<1x2x8x8xf32>
  %p = quench.softmax %x {axis = 3 : i64} : tensor<1x2x8x8xf32>
  %o = quench.matmul %p, %v : (tensor<1x2x8x8xf32>, tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
  return %o : tensor<1x2x8x4xf32>
}

// -----

// Not fused: the grouped reshape of the scores does not split the heads
// (its last dim is not the key length but a fixed 8 of another tensor).
// CHECK-LABEL: func @gqa_not_a_split
// CHECK-NOT: quench.attention
// CHECK: quench.softmax
func.func @gqa_not_a_split(%q: tensor<1x2x?x16xf32>, %k: tensor<1x2x?x16xf32>, %v: tensor<1x2x?x16xf32>, %shape: tensor<4xi64>) -> tensor<1x4x?x16xf32> {
  %kt = quench.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<1x2x?x16xf32> -> tensor<1x2x16x?xf32>
  %sg = quench.matmul %q, %kt : (tensor<1x2x?x16xf32>, tensor<1x2x16x?xf32>) -> tensor<1x2x?x?xf32>
  %scores = quench.reshape %sg(%shape) : tensor<1x2x?x?xf32>, tensor<4xi64> -> tensor<1x4x?x?xf32>
  %p = quench.softmax %scores {axis = 3 : i64} : tensor<1x4x?x?xf32>
  %pg = quench.reshape %p(%shape) : tensor<1x4x?x?xf32>, tensor<4xi64> -> tensor<1x2x?x?xf32>
  %og = quench.matmul %pg, %v : (tensor<1x2x?x?xf32>, tensor<1x2x?x16xf32>) -> tensor<1x2x?x16xf32>
  %o = quench.reshape %og(%shape) : tensor<1x2x?x16xf32>, tensor<4xi64> -> tensor<1x4x?x16xf32>
  return %o : tensor<1x4x?x16xf32>
}

// -----

// GPT-2 as exported without a cache (dynamic batch): Q, K, V split from one
// projection, Kᵀ written as one transpose of [B, T, H, D] ([0, 2, 3, 1]).
// The key becomes transpose(X, [0, 2, 1, 3]); the batches of Q, K and V are
// the same run-time extent (the split's input's), followed through the
// exporter's shape_of/gather/reshape/concat.
// CHECK-LABEL: func @folded_key_transpose
// CHECK: %[[QKV:.*]]:3 = quench.split
// CHECK: %[[X:.*]] = quench.reshape %[[QKV]]#1
// CHECK: %[[K:.*]] = quench.transpose %[[X]] {permutation = array<i64: 0, 2, 1, 3>} : tensor<?x?x4x12xf32> -> tensor<?x4x?x12xf32>
// CHECK: quench.attention %{{.*}}, %[[K]], %{{.*}} {scale = 0.2886{{[0-9]*}} : f64} : (tensor<?x4x?x12xf32>, tensor<?x4x?x12xf32>, tensor<?x4x?x12xf32>) -> tensor<?x4x?x12xf32>
func.func @folded_key_transpose(%h: tensor<?x?x144xf32>) -> tensor<?x4x?x12xf32> {
  %zero = quench.constant dense<0> : tensor<i64>
  %one = quench.constant dense<1> : tensor<i64>
  %four = quench.constant dense<4> : tensor<1xi64>
  %twelve = quench.constant dense<12> : tensor<1xi64>
  %sqrt = quench.constant dense<3.46410155> : tensor<f32>
  %qkv:3 = quench.split %h {axis = 2 : i64, sizes = array<i64: 48, 48, 48>} : tensor<?x?x144xf32> -> tensor<?x?x48xf32>, tensor<?x?x48xf32>, tensor<?x?x48xf32>
  %sq = quench.shape_of %qkv#0 : tensor<?x?x48xf32> -> tensor<3xi64>
  %bq = quench.gather %sq[%zero] {axis = 0 : i64} : (tensor<3xi64>, tensor<i64>) -> tensor<i64>
  %sqs = quench.gather %sq[%one] {axis = 0 : i64} : (tensor<3xi64>, tensor<i64>) -> tensor<i64>
  %bq1 = quench.reshape %bq : tensor<i64> -> tensor<1xi64>
  %sq1 = quench.reshape %sqs : tensor<i64> -> tensor<1xi64>
  %shq = quench.concat %bq1, %sq1, %four, %twelve {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %q4 = quench.reshape %qkv#0(%shq) : tensor<?x?x48xf32>, tensor<4xi64> -> tensor<?x?x4x12xf32>
  %q = quench.transpose %q4 {permutation = array<i64: 0, 2, 1, 3>} : tensor<?x?x4x12xf32> -> tensor<?x4x?x12xf32>
  %sk = quench.shape_of %qkv#1 : tensor<?x?x48xf32> -> tensor<3xi64>
  %bk = quench.gather %sk[%zero] {axis = 0 : i64} : (tensor<3xi64>, tensor<i64>) -> tensor<i64>
  %tk = quench.gather %sk[%one] {axis = 0 : i64} : (tensor<3xi64>, tensor<i64>) -> tensor<i64>
  %bk1 = quench.reshape %bk : tensor<i64> -> tensor<1xi64>
  %tk1 = quench.reshape %tk : tensor<i64> -> tensor<1xi64>
  %shk = quench.concat %bk1, %tk1, %four, %twelve {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %k4 = quench.reshape %qkv#1(%shk) : tensor<?x?x48xf32>, tensor<4xi64> -> tensor<?x?x4x12xf32>
  %v4 = quench.reshape %qkv#2(%shk) : tensor<?x?x48xf32>, tensor<4xi64> -> tensor<?x?x4x12xf32>
  %v = quench.transpose %v4 {permutation = array<i64: 0, 2, 1, 3>} : tensor<?x?x4x12xf32> -> tensor<?x4x?x12xf32>
  %kt = quench.transpose %k4 {permutation = array<i64: 0, 2, 3, 1>} : tensor<?x?x4x12xf32> -> tensor<?x4x12x?xf32>
  %s = quench.matmul %q, %kt : (tensor<?x4x?x12xf32>, tensor<?x4x12x?xf32>) -> tensor<?x4x?x?xf32>
  %x = quench.div %s, %sqrt : (tensor<?x4x?x?xf32>, tensor<f32>) -> tensor<?x4x?x?xf32>
  %p = quench.softmax %x {axis = 3 : i64} : tensor<?x4x?x?xf32>
  %o = quench.matmul %p, %v : (tensor<?x4x?x?xf32>, tensor<?x4x?x12xf32>) -> tensor<?x4x?x12xf32>
  return %o : tensor<?x4x?x12xf32>
}

// -----

// Not fused: cross-attention whose keys come from another input with its
// own dynamic batch; the batches cannot be shown equal (the matmul would
// broadcast a batch of 1), so the chain stays.
// CHECK-LABEL: func @cross_attention_other_batch
// CHECK-NOT: quench.attention
// CHECK: quench.softmax
func.func @cross_attention_other_batch(%q: tensor<?x4x?x8xf32>, %k: tensor<?x4x?x8xf32>, %v: tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32> {
  %kt = quench.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<?x4x?x8xf32> -> tensor<?x4x8x?xf32>
  %s = quench.matmul %q, %kt : (tensor<?x4x?x8xf32>, tensor<?x4x8x?xf32>) -> tensor<?x4x?x?xf32>
  %p = quench.softmax %s {axis = 3 : i64} : tensor<?x4x?x?xf32>
  %o = quench.matmul %p, %v : (tensor<?x4x?x?xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  return %o : tensor<?x4x?x8xf32>
}
