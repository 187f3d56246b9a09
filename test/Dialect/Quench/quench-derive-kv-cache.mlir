// RUN: quench-opt %s --quench-derive-kv-cache -split-input-file -verify-diagnostics | FileCheck %s

// One attention core: positions gathered from a table at range(0, S), the
// causal mask a triangle of -inf, Q·Kᵀ scaled, softmax, ·V. The pass adds
// the past inputs and present outputs, shifts the positions by P and
// rebuilds the mask for queries at P .. P+S-1 over keys 0 .. P+S-1.
// CHECK-LABEL: func @one_core
// CHECK-SAME: (%[[IDS:[a-z0-9]+]]: tensor<1x?xi64> {quench.name = "input_ids"}, %[[PK:[a-z0-9]+]]: tensor<1x1x?x8xf32> {quench.name = "past_key_values.0.key"}, %[[PV:[a-z0-9]+]]: tensor<1x1x?x8xf32> {quench.name = "past_key_values.0.value"})
// CHECK-SAME: -> (tensor<1x1x?x8xf32> {quench.name = "logits"}, tensor<1x1x?x8xf32> {quench.name = "present.0.key"}, tensor<1x1x?x8xf32> {quench.name = "present.0.value"})
// P, the past length, and P + S, the key length:
// CHECK: %[[PSHAPE:.*]] = quench.shape_of %[[PK]]
// CHECK: %[[P:.*]] = quench.gather %[[PSHAPE]]
// CHECK: %[[T:.*]] = quench.add %[[P]], %{{.*}} : (tensor<i64>, tensor<i64>) -> tensor<i64>
// The positions of the new tokens: P .. P+S-1.
// CHECK: %[[START:.*]] = quench.add %{{.*}}, %[[P]]
// CHECK: %[[LIMIT:.*]] = quench.add %{{.*}}, %[[P]]
// CHECK: %[[POS:.*]] = quench.range %[[START]], %[[LIMIT]]
// CHECK: quench.gather %{{.*}}[%[[POS]]]
// The keys: concat(past, new), read transposed.
// CHECK: %[[KEYS:.*]] = quench.concat %[[PK]], %{{.*}} {axis = 2 : i64}
// CHECK: %[[KT:.*]] = quench.transpose %[[KEYS]] {permutation = array<i64: 0, 1, 3, 2>}
// CHECK: quench.matmul %{{.*}}, %[[KT]]
// The mask: [S, P+S], query rows at P.., -inf where key > query.
// CHECK: %[[FULL:.*]] = quench.expand
// CHECK: %[[QEND:.*]] = quench.add %{{.*}}, %[[P]]
// CHECK: %[[Q:.*]] = quench.range %[[P]], %[[QEND]]
// CHECK: %[[QC:.*]] = quench.unsqueeze %[[Q]] {axes = array<i64: 1>}
// CHECK: %[[K:.*]] = quench.range %{{.*}}, %[[T]]
// CHECK: %[[D:.*]] = quench.sub %[[K]], %[[QC]]
// CHECK: %[[C:.*]] = quench.cmp ge, %[[D]]
// CHECK: %[[M:.*]] = quench.where %[[C]], %[[FULL]]
// CHECK: %[[SM:.*]] = quench.add %{{.*}}, %[[M]]
// CHECK: %[[PR:.*]] = quench.softmax %[[SM]]
// CHECK: %[[VALUES:.*]] = quench.concat %[[PV]], %{{.*}} {axis = 2 : i64}
// CHECK: %[[O:.*]] = quench.matmul %[[PR]], %[[VALUES]]
// CHECK: return %[[O]], %[[KEYS]], %[[VALUES]]

func.func @one_core(%ids: tensor<1x?xi64> {quench.name = "input_ids"}) -> (tensor<1x1x?x8xf32> {quench.name = "logits"}) {
  %table = quench.constant dense<1.0> : tensor<16x8xf32>
  %ptable = quench.constant dense<0.5> : tensor<32x8xf32>
  %zero = quench.constant dense<0> : tensor<i64>
  %one = quench.constant dense<1> : tensor<i64>
  %two = quench.constant dense<2.0> : tensor<f32>
  %three = quench.constant dense<3.0> : tensor<f32>
  %scale = quench.constant dense<0.25> : tensor<f32>
  %ninf = quench.constant dense<0xFF800000> : tensor<f32>
  %x = quench.gather %table[%ids] {axis = 0 : i64} : (tensor<16x8xf32>, tensor<1x?xi64>) -> tensor<1x?x8xf32>
  %shp = quench.shape_of %ids : tensor<1x?xi64> -> tensor<2xi64>
  %n = quench.gather %shp[%one] {axis = 0 : i64} : (tensor<2xi64>, tensor<i64>) -> tensor<i64>
  %pos = quench.range %zero, %n, %one : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %pe = quench.gather %ptable[%pos] {axis = 0 : i64} : (tensor<32x8xf32>, tensor<?xi64>) -> tensor<?x8xf32>
  %h = quench.add %x, %pe : (tensor<1x?x8xf32>, tensor<?x8xf32>) -> tensor<1x?x8xf32>
  %h4 = quench.unsqueeze %h {axes = array<i64: 1>} : tensor<1x?x8xf32> -> tensor<1x1x?x8xf32>
  %k = quench.mul %h4, %two : (tensor<1x1x?x8xf32>, tensor<f32>) -> tensor<1x1x?x8xf32>
  %v = quench.mul %h4, %three : (tensor<1x1x?x8xf32>, tensor<f32>) -> tensor<1x1x?x8xf32>
  %kt = quench.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<1x1x?x8xf32> -> tensor<1x1x8x?xf32>
  %s = quench.matmul %h4, %kt : (tensor<1x1x?x8xf32>, tensor<1x1x8x?xf32>) -> tensor<1x1x?x?xf32>
  %ss = quench.mul %s, %scale : (tensor<1x1x?x?xf32>, tensor<f32>) -> tensor<1x1x?x?xf32>
  %n1 = quench.reshape %n : tensor<i64> -> tensor<1xi64>
  %nn = quench.concat %n1, %n1 {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>) -> tensor<2xi64>
  %full = quench.expand %ninf(%nn) : tensor<f32>, tensor<2xi64> -> tensor<?x?xf32>
  %mask = quench.trilu %full {k = 1 : i64, upper = true} : tensor<?x?xf32>
  %masked = quench.add %ss, %mask : (tensor<1x1x?x?xf32>, tensor<?x?xf32>) -> tensor<1x1x?x?xf32>
  %p = quench.softmax %masked {axis = 3 : i64} : tensor<1x1x?x?xf32>
  %o = quench.matmul %p, %v : (tensor<1x1x?x?xf32>, tensor<1x1x?x8xf32>) -> tensor<1x1x?x8xf32>
  return %o : tensor<1x1x?x8xf32>
}

// -----

// A triangle that hides the diagonal too: not causal, the node is named.
func.func @diagonal_masked(%ids: tensor<1x?xi64> {quench.name = "input_ids"}) -> (tensor<1x1x?x8xf32> {quench.name = "logits"}) {
  %table = quench.constant dense<1.0> : tensor<16x8xf32>
  %ptable = quench.constant dense<0.5> : tensor<32x8xf32>
  %zero = quench.constant dense<0> : tensor<i64>
  %one = quench.constant dense<1> : tensor<i64>
  %two = quench.constant dense<2.0> : tensor<f32>
  %three = quench.constant dense<3.0> : tensor<f32>
  %scale = quench.constant dense<0.25> : tensor<f32>
  %ninf = quench.constant dense<0xFF800000> : tensor<f32>
  %x = quench.gather %table[%ids] {axis = 0 : i64} : (tensor<16x8xf32>, tensor<1x?xi64>) -> tensor<1x?x8xf32>
  %shp = quench.shape_of %ids : tensor<1x?xi64> -> tensor<2xi64>
  %n = quench.gather %shp[%one] {axis = 0 : i64} : (tensor<2xi64>, tensor<i64>) -> tensor<i64>
  %pos = quench.range %zero, %n, %one : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %pe = quench.gather %ptable[%pos] {axis = 0 : i64} : (tensor<32x8xf32>, tensor<?xi64>) -> tensor<?x8xf32>
  %h = quench.add %x, %pe : (tensor<1x?x8xf32>, tensor<?x8xf32>) -> tensor<1x?x8xf32>
  %h4 = quench.unsqueeze %h {axes = array<i64: 1>} : tensor<1x?x8xf32> -> tensor<1x1x?x8xf32>
  %k = quench.mul %h4, %two : (tensor<1x1x?x8xf32>, tensor<f32>) -> tensor<1x1x?x8xf32>
  %v = quench.mul %h4, %three : (tensor<1x1x?x8xf32>, tensor<f32>) -> tensor<1x1x?x8xf32>
  %kt = quench.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<1x1x?x8xf32> -> tensor<1x1x8x?xf32>
  %s = quench.matmul %h4, %kt : (tensor<1x1x?x8xf32>, tensor<1x1x8x?xf32>) -> tensor<1x1x?x?xf32>
  %ss = quench.mul %s, %scale : (tensor<1x1x?x?xf32>, tensor<f32>) -> tensor<1x1x?x?xf32>
  %n1 = quench.reshape %n : tensor<i64> -> tensor<1xi64>
  %nn = quench.concat %n1, %n1 {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>) -> tensor<2xi64>
  %full = quench.expand %ninf(%nn) : tensor<f32>, tensor<2xi64> -> tensor<?x?xf32>
  %mask = quench.trilu %full {k = 0 : i64, upper = true} : tensor<?x?xf32>
  // expected-error @unknown {{the attention mask of 'layer0/Add' (quench.add) is not causal: query 0 does not see key 0}}
  %masked = quench.add %ss, %mask : (tensor<1x1x?x?xf32>, tensor<?x?xf32>) -> tensor<1x1x?x?xf32> loc("layer0/Add")
  %p = quench.softmax %masked {axis = 3 : i64} : tensor<1x1x?x?xf32>
  %o = quench.matmul %p, %v : (tensor<1x1x?x?xf32>, tensor<1x1x?x8xf32>) -> tensor<1x1x?x8xf32>
  return %o : tensor<1x1x?x8xf32>
}

// -----

// A triangle that lets each position see the next one.
func.func @sees_next(%ids: tensor<1x?xi64> {quench.name = "input_ids"}) -> (tensor<1x1x?x8xf32> {quench.name = "logits"}) {
  %table = quench.constant dense<1.0> : tensor<16x8xf32>
  %ptable = quench.constant dense<0.5> : tensor<32x8xf32>
  %zero = quench.constant dense<0> : tensor<i64>
  %one = quench.constant dense<1> : tensor<i64>
  %two = quench.constant dense<2.0> : tensor<f32>
  %three = quench.constant dense<3.0> : tensor<f32>
  %scale = quench.constant dense<0.25> : tensor<f32>
  %ninf = quench.constant dense<0xFF800000> : tensor<f32>
  %x = quench.gather %table[%ids] {axis = 0 : i64} : (tensor<16x8xf32>, tensor<1x?xi64>) -> tensor<1x?x8xf32>
  %shp = quench.shape_of %ids : tensor<1x?xi64> -> tensor<2xi64>
  %n = quench.gather %shp[%one] {axis = 0 : i64} : (tensor<2xi64>, tensor<i64>) -> tensor<i64>
  %pos = quench.range %zero, %n, %one : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %pe = quench.gather %ptable[%pos] {axis = 0 : i64} : (tensor<32x8xf32>, tensor<?xi64>) -> tensor<?x8xf32>
  %h = quench.add %x, %pe : (tensor<1x?x8xf32>, tensor<?x8xf32>) -> tensor<1x?x8xf32>
  %h4 = quench.unsqueeze %h {axes = array<i64: 1>} : tensor<1x?x8xf32> -> tensor<1x1x?x8xf32>
  %k = quench.mul %h4, %two : (tensor<1x1x?x8xf32>, tensor<f32>) -> tensor<1x1x?x8xf32>
  %v = quench.mul %h4, %three : (tensor<1x1x?x8xf32>, tensor<f32>) -> tensor<1x1x?x8xf32>
  %kt = quench.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<1x1x?x8xf32> -> tensor<1x1x8x?xf32>
  %s = quench.matmul %h4, %kt : (tensor<1x1x?x8xf32>, tensor<1x1x8x?xf32>) -> tensor<1x1x?x?xf32>
  %ss = quench.mul %s, %scale : (tensor<1x1x?x?xf32>, tensor<f32>) -> tensor<1x1x?x?xf32>
  %n1 = quench.reshape %n : tensor<i64> -> tensor<1xi64>
  %nn = quench.concat %n1, %n1 {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>) -> tensor<2xi64>
  %full = quench.expand %ninf(%nn) : tensor<f32>, tensor<2xi64> -> tensor<?x?xf32>
  %mask = quench.trilu %full {k = 2 : i64, upper = true} : tensor<?x?xf32>
  // expected-error @unknown {{the attention mask of 'layer0/Add' (quench.add) is not causal: query 0 sees key 1}}
  %masked = quench.add %ss, %mask : (tensor<1x1x?x?xf32>, tensor<?x?xf32>) -> tensor<1x1x?x?xf32> loc("layer0/Add")
  %p = quench.softmax %masked {axis = 3 : i64} : tensor<1x1x?x?xf32>
  %o = quench.matmul %p, %v : (tensor<1x1x?x?xf32>, tensor<1x1x?x8xf32>) -> tensor<1x1x?x8xf32>
  return %o : tensor<1x1x?x8xf32>
}

// -----

// Attention without a mask (bidirectional): no cache.
func.func @no_mask(%ids: tensor<1x?xi64> {quench.name = "input_ids"}) -> (tensor<1x1x?x8xf32> {quench.name = "logits"}) {
  %table = quench.constant dense<1.0> : tensor<16x8xf32>
  %ptable = quench.constant dense<0.5> : tensor<32x8xf32>
  %zero = quench.constant dense<0> : tensor<i64>
  %one = quench.constant dense<1> : tensor<i64>
  %two = quench.constant dense<2.0> : tensor<f32>
  %three = quench.constant dense<3.0> : tensor<f32>
  %scale = quench.constant dense<0.25> : tensor<f32>
  %ninf = quench.constant dense<0xFF800000> : tensor<f32>
  %x = quench.gather %table[%ids] {axis = 0 : i64} : (tensor<16x8xf32>, tensor<1x?xi64>) -> tensor<1x?x8xf32>
  %shp = quench.shape_of %ids : tensor<1x?xi64> -> tensor<2xi64>
  %n = quench.gather %shp[%one] {axis = 0 : i64} : (tensor<2xi64>, tensor<i64>) -> tensor<i64>
  %pos = quench.range %zero, %n, %one : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %pe = quench.gather %ptable[%pos] {axis = 0 : i64} : (tensor<32x8xf32>, tensor<?xi64>) -> tensor<?x8xf32>
  %h = quench.add %x, %pe : (tensor<1x?x8xf32>, tensor<?x8xf32>) -> tensor<1x?x8xf32>
  %h4 = quench.unsqueeze %h {axes = array<i64: 1>} : tensor<1x?x8xf32> -> tensor<1x1x?x8xf32>
  %k = quench.mul %h4, %two : (tensor<1x1x?x8xf32>, tensor<f32>) -> tensor<1x1x?x8xf32>
  %v = quench.mul %h4, %three : (tensor<1x1x?x8xf32>, tensor<f32>) -> tensor<1x1x?x8xf32>
  %kt = quench.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<1x1x?x8xf32> -> tensor<1x1x8x?xf32>
  %s = quench.matmul %h4, %kt : (tensor<1x1x?x8xf32>, tensor<1x1x8x?xf32>) -> tensor<1x1x?x?xf32>
  %ss = quench.mul %s, %scale : (tensor<1x1x?x?xf32>, tensor<f32>) -> tensor<1x1x?x?xf32>
  %n1 = quench.reshape %n : tensor<i64> -> tensor<1xi64>
  %nn = quench.concat %n1, %n1 {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>) -> tensor<2xi64>
  %full = quench.expand %ninf(%nn) : tensor<f32>, tensor<2xi64> -> tensor<?x?xf32>
  %mask = quench.trilu %full {k = 1 : i64, upper = true} : tensor<?x?xf32>
  // expected-error @unknown {{the attention of softmax 'layer0/Softmax' (quench.softmax) has no mask}}
  %p = quench.softmax %ss {axis = 3 : i64} : tensor<1x1x?x?xf32> loc("layer0/Softmax")
  %o = quench.matmul %p, %v : (tensor<1x1x?x?xf32>, tensor<1x1x?x8xf32>) -> tensor<1x1x?x8xf32>
  return %o : tensor<1x1x?x8xf32>
}

// -----

// An op the scores path does not know (a soft cap), named.
func.func @unknown_op(%ids: tensor<1x?xi64> {quench.name = "input_ids"}) -> (tensor<1x1x?x8xf32> {quench.name = "logits"}) {
  %table = quench.constant dense<1.0> : tensor<16x8xf32>
  %ptable = quench.constant dense<0.5> : tensor<32x8xf32>
  %zero = quench.constant dense<0> : tensor<i64>
  %one = quench.constant dense<1> : tensor<i64>
  %two = quench.constant dense<2.0> : tensor<f32>
  %three = quench.constant dense<3.0> : tensor<f32>
  %scale = quench.constant dense<0.25> : tensor<f32>
  %ninf = quench.constant dense<0xFF800000> : tensor<f32>
  %x = quench.gather %table[%ids] {axis = 0 : i64} : (tensor<16x8xf32>, tensor<1x?xi64>) -> tensor<1x?x8xf32>
  %shp = quench.shape_of %ids : tensor<1x?xi64> -> tensor<2xi64>
  %n = quench.gather %shp[%one] {axis = 0 : i64} : (tensor<2xi64>, tensor<i64>) -> tensor<i64>
  %pos = quench.range %zero, %n, %one : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %pe = quench.gather %ptable[%pos] {axis = 0 : i64} : (tensor<32x8xf32>, tensor<?xi64>) -> tensor<?x8xf32>
  %h = quench.add %x, %pe : (tensor<1x?x8xf32>, tensor<?x8xf32>) -> tensor<1x?x8xf32>
  %h4 = quench.unsqueeze %h {axes = array<i64: 1>} : tensor<1x?x8xf32> -> tensor<1x1x?x8xf32>
  %k = quench.mul %h4, %two : (tensor<1x1x?x8xf32>, tensor<f32>) -> tensor<1x1x?x8xf32>
  %v = quench.mul %h4, %three : (tensor<1x1x?x8xf32>, tensor<f32>) -> tensor<1x1x?x8xf32>
  %kt = quench.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<1x1x?x8xf32> -> tensor<1x1x8x?xf32>
  %s = quench.matmul %h4, %kt : (tensor<1x1x?x8xf32>, tensor<1x1x8x?xf32>) -> tensor<1x1x?x?xf32>
  %ss = quench.mul %s, %scale : (tensor<1x1x?x?xf32>, tensor<f32>) -> tensor<1x1x?x?xf32>
  %n1 = quench.reshape %n : tensor<i64> -> tensor<1xi64>
  %nn = quench.concat %n1, %n1 {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>) -> tensor<2xi64>
  %full = quench.expand %ninf(%nn) : tensor<f32>, tensor<2xi64> -> tensor<?x?xf32>
  %mask = quench.trilu %full {k = 1 : i64, upper = true} : tensor<?x?xf32>
  %masked = quench.add %ss, %mask : (tensor<1x1x?x?xf32>, tensor<?x?xf32>) -> tensor<1x1x?x?xf32>
  // expected-error @unknown {{pass through 'layer0/Tanh' (quench.tanh), which is not recognized in attention}}
  %capped = quench.tanh %masked : tensor<1x1x?x?xf32> loc("layer0/Tanh")
  %p = quench.softmax %capped {axis = 3 : i64} : tensor<1x1x?x?xf32>
  %o = quench.matmul %p, %v : (tensor<1x1x?x?xf32>, tensor<1x1x?x8xf32>) -> tensor<1x1x?x8xf32>
  return %o : tensor<1x1x?x8xf32>
}

// -----

// A static sequence length: nothing to derive a cache for.
// expected-error @+1 {{the token ids input 'input_ids' is 'tensor<1x4xi64>'; it needs a dynamic sequence length}}
func.func @static_seq(%ids: tensor<1x4xi64> {quench.name = "input_ids"}) -> (tensor<1x1x?x8xf32> {quench.name = "logits"}) {
  %table = quench.constant dense<1.0> : tensor<16x8xf32>
  %ptable = quench.constant dense<0.5> : tensor<32x8xf32>
  %zero = quench.constant dense<0> : tensor<i64>
  %one = quench.constant dense<1> : tensor<i64>
  %two = quench.constant dense<2.0> : tensor<f32>
  %three = quench.constant dense<3.0> : tensor<f32>
  %scale = quench.constant dense<0.25> : tensor<f32>
  %ninf = quench.constant dense<0xFF800000> : tensor<f32>
  %x = quench.gather %table[%ids] {axis = 0 : i64} : (tensor<16x8xf32>, tensor<1x4xi64>) -> tensor<1x?x8xf32>
  %shp = quench.shape_of %ids : tensor<1x4xi64> -> tensor<2xi64>
  %n = quench.gather %shp[%one] {axis = 0 : i64} : (tensor<2xi64>, tensor<i64>) -> tensor<i64>
  %pos = quench.range %zero, %n, %one : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %pe = quench.gather %ptable[%pos] {axis = 0 : i64} : (tensor<32x8xf32>, tensor<?xi64>) -> tensor<?x8xf32>
  %h = quench.add %x, %pe : (tensor<1x?x8xf32>, tensor<?x8xf32>) -> tensor<1x?x8xf32>
  %h4 = quench.unsqueeze %h {axes = array<i64: 1>} : tensor<1x?x8xf32> -> tensor<1x1x?x8xf32>
  %k = quench.mul %h4, %two : (tensor<1x1x?x8xf32>, tensor<f32>) -> tensor<1x1x?x8xf32>
  %v = quench.mul %h4, %three : (tensor<1x1x?x8xf32>, tensor<f32>) -> tensor<1x1x?x8xf32>
  %kt = quench.transpose %k {permutation = array<i64: 0, 1, 3, 2>} : tensor<1x1x?x8xf32> -> tensor<1x1x8x?xf32>
  %s = quench.matmul %h4, %kt : (tensor<1x1x?x8xf32>, tensor<1x1x8x?xf32>) -> tensor<1x1x?x?xf32>
  %ss = quench.mul %s, %scale : (tensor<1x1x?x?xf32>, tensor<f32>) -> tensor<1x1x?x?xf32>
  %n1 = quench.reshape %n : tensor<i64> -> tensor<1xi64>
  %nn = quench.concat %n1, %n1 {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>) -> tensor<2xi64>
  %full = quench.expand %ninf(%nn) : tensor<f32>, tensor<2xi64> -> tensor<?x?xf32>
  %mask = quench.trilu %full {k = 1 : i64, upper = true} : tensor<?x?xf32>
  %masked = quench.add %ss, %mask : (tensor<1x1x?x?xf32>, tensor<?x?xf32>) -> tensor<1x1x?x?xf32>
  %p = quench.softmax %masked {axis = 3 : i64} : tensor<1x1x?x?xf32>
  %o = quench.matmul %p, %v : (tensor<1x1x?x?xf32>, tensor<1x1x?x8xf32>) -> tensor<1x1x?x8xf32>
  return %o : tensor<1x1x?x8xf32>
}
