// RUN: quench-opt %s --quench-derive-kv-cache | FileCheck %s
// RUN: quench-opt %s --quench-raise-ops --quench-derive-kv-cache --quench-kv-cache --quench-fuse-attention | FileCheck %s --check-prefix=FUSED

// Grouped-query attention (2 query heads, 1 kv head) whose kv head is
// repeated as Hugging Face's repeat_kv writes it, with run-time shapes
// (unsqueeze, expand and reshape to [1, 2, S, 8] from the sequence length).
//
// As it is: the cache holds the kv head, before the repetition; the
// repetition is replayed on the cached keys/values with the key length
// P + S in its shapes, computed before the replayed ops (they must
// dominate them: the IR is verified after the pass).
// CHECK-LABEL: func @gqa
// CHECK-SAME: %[[PK:[a-z0-9]+]]: tensor<1x1x?x8xf32> {quench.name = "past_key_values.0.key"}
// CHECK-SAME: -> (tensor<1x?x16xf32> {quench.name = "logits"}, tensor<1x1x?x8xf32> {quench.name = "present.0.key"}, tensor<1x1x?x8xf32> {quench.name = "present.0.value"})
// CHECK: %[[KEYS:.*]] = quench.concat %[[PK]], %{{.*}} {axis = 2 : i64}
// CHECK: %[[K5:.*]] = quench.unsqueeze %[[KEYS]] {axes = array<i64: 2>}
// CHECK: %[[SHAPE5:.*]] = quench.add
// CHECK-NEXT: %[[KE:.*]] = quench.expand %[[K5]](%[[SHAPE5]]) : tensor<1x1x1x?x8xf32>, tensor<5xi64> -> tensor<1x1x2x?x8xf32>
// CHECK: %[[SHAPE4:.*]] = quench.add
// CHECK-NEXT: quench.reshape %[[KE]](%[[SHAPE4]]) : tensor<1x1x2x?x8xf32>, tensor<4xi64> -> tensor<1x2x?x8xf32>
//
// Raised first (quench-raise-ops: products on the kv head, the query
// heads' rows grouped), the scores' reshapes take the key length from the
// keys as read, so that quench-fuse-attention recognizes the grouped form
// and forms one attention on the cache of the kv head.
// FUSED-LABEL: func @gqa
// FUSED: quench.attention %{{.*}}, %{{.*}}, %{{.*}} bias(%{{.*}}) {scale = 2.500000e-01 : f64} : (tensor<1x2x?x8xf32>, tensor<1x1x?x8xf32>, tensor<1x1x?x8xf32>, tensor<1x1x?x?xf32>) -> tensor<1x2x?x8xf32>
// FUSED-NOT: quench.softmax

func.func @gqa(%ids: tensor<1x?xi64> {quench.name = "input_ids"}) -> (tensor<1x?x16xf32> {quench.name = "logits"}) {
  %table = quench.constant dense<1.0> : tensor<16x8xf32>
  %ptable = quench.constant dense<0.5> : tensor<32x8xf32>
  %zero = quench.constant dense<0> : tensor<i64>
  %one = quench.constant dense<1> : tensor<i64>
  %c1 = quench.constant dense<1> : tensor<1xi64>
  %c2 = quench.constant dense<2> : tensor<1xi64>
  %c8 = quench.constant dense<8> : tensor<1xi64>
  %two = quench.constant dense<2.0> : tensor<f32>
  %three = quench.constant dense<3.0> : tensor<f32>
  %four = quench.constant dense<4.0> : tensor<f32>
  %scale = quench.constant dense<0.25> : tensor<f32>
  %ninf = quench.constant dense<0xFF800000> : tensor<f32>
  %x = quench.gather %table[%ids] {axis = 0 : i64} : (tensor<16x8xf32>, tensor<1x?xi64>) -> tensor<1x?x8xf32>
  %shp = quench.shape_of %ids : tensor<1x?xi64> -> tensor<2xi64>
  %n = quench.gather %shp[%one] {axis = 0 : i64} : (tensor<2xi64>, tensor<i64>) -> tensor<i64>
  %pos = quench.range %zero, %n, %one : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %pe = quench.gather %ptable[%pos] {axis = 0 : i64} : (tensor<32x8xf32>, tensor<?xi64>) -> tensor<?x8xf32>
  %h = quench.add %x, %pe : (tensor<1x?x8xf32>, tensor<?x8xf32>) -> tensor<1x?x8xf32>
  %h4 = quench.unsqueeze %h {axes = array<i64: 1>} : tensor<1x?x8xf32> -> tensor<1x1x?x8xf32>
  %q1 = quench.mul %h4, %four : (tensor<1x1x?x8xf32>, tensor<f32>) -> tensor<1x1x?x8xf32>
  %q = quench.concat %h4, %q1 {axis = 1 : i64} : (tensor<1x1x?x8xf32>, tensor<1x1x?x8xf32>) -> tensor<1x2x?x8xf32>
  %k = quench.mul %h4, %two : (tensor<1x1x?x8xf32>, tensor<f32>) -> tensor<1x1x?x8xf32>
  %v = quench.mul %h4, %three : (tensor<1x1x?x8xf32>, tensor<f32>) -> tensor<1x1x?x8xf32>
  %n1 = quench.reshape %n : tensor<i64> -> tensor<1xi64>
  %rs5 = quench.concat %c1, %c1, %c2, %n1, %c8 {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<5xi64>
  %rs4 = quench.concat %c1, %c2, %n1, %c8 {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %k5 = quench.unsqueeze %k {axes = array<i64: 2>} : tensor<1x1x?x8xf32> -> tensor<1x1x1x?x8xf32>
  %ke = quench.expand %k5(%rs5) : tensor<1x1x1x?x8xf32>, tensor<5xi64> -> tensor<1x1x2x?x8xf32>
  %kr = quench.reshape %ke(%rs4) : tensor<1x1x2x?x8xf32>, tensor<4xi64> -> tensor<1x2x?x8xf32>
  %v5 = quench.unsqueeze %v {axes = array<i64: 2>} : tensor<1x1x?x8xf32> -> tensor<1x1x1x?x8xf32>
  %ve = quench.expand %v5(%rs5) : tensor<1x1x1x?x8xf32>, tensor<5xi64> -> tensor<1x1x2x?x8xf32>
  %vr = quench.reshape %ve(%rs4) : tensor<1x1x2x?x8xf32>, tensor<4xi64> -> tensor<1x2x?x8xf32>
  %kt = quench.transpose %kr {permutation = array<i64: 0, 1, 3, 2>} : tensor<1x2x?x8xf32> -> tensor<1x2x8x?xf32>
  %s = quench.matmul %q, %kt : (tensor<1x2x?x8xf32>, tensor<1x2x8x?xf32>) -> tensor<1x2x?x?xf32>
  %ss = quench.mul %s, %scale : (tensor<1x2x?x?xf32>, tensor<f32>) -> tensor<1x2x?x?xf32>
  %nn = quench.concat %n1, %n1 {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>) -> tensor<2xi64>
  %full = quench.expand %ninf(%nn) : tensor<f32>, tensor<2xi64> -> tensor<?x?xf32>
  %mask = quench.trilu %full {k = 1 : i64, upper = true} : tensor<?x?xf32>
  %masked = quench.add %ss, %mask : (tensor<1x2x?x?xf32>, tensor<?x?xf32>) -> tensor<1x2x?x?xf32>
  %p = quench.softmax %masked {axis = 3 : i64} : tensor<1x2x?x?xf32>
  %o = quench.matmul %p, %vr : (tensor<1x2x?x?xf32>, tensor<1x2x?x8xf32>) -> tensor<1x2x?x8xf32>
  %ot = quench.transpose %o {permutation = array<i64: 0, 2, 1, 3>} : tensor<1x2x?x8xf32> -> tensor<1x?x2x8xf32>
  %c16 = quench.constant dense<16> : tensor<1xi64>
  %rs3 = quench.concat %c1, %n1, %c16 {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64>
  %logits = quench.reshape %ot(%rs3) : tensor<1x?x2x8xf32>, tensor<3xi64> -> tensor<1x?x16xf32>
  return %logits : tensor<1x?x16xf32>
}
