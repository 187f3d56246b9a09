// RUN: quench-opt %s --quench-kv-cache=logits-positions=all -split-input-file -verify-diagnostics | FileCheck %s
// RUN: quench-opt %s --quench-kv-cache -split-input-file -verify-diagnostics | FileCheck %s --check-prefix=LAST
// RUN: quench-opt %s --quench-kv-cache="cache-type=f16 max-seq=64" -split-input-file -verify-diagnostics | FileCheck %s --check-prefix=F16
// RUN: quench-opt %s --quench-kv-cache="cache-type=int8" -split-input-file -verify-diagnostics | FileCheck %s --check-prefix=INT8

// One layer's key: the past input becomes a cache buffer (capacity
// dynamic), a past_length input is added, the concatenation writes the new
// positions into the cache and attention reads a view of it; the present
// output goes.
// CHECK-LABEL: func @one_layer
// CHECK-SAME: (%[[IDS:[a-z0-9_]+]]: tensor<1x?xi64> {quench.name = "input_ids"}, %[[H:[a-z0-9_]+]]: tensor<1x?x16xf32> {quench.name = "h"}, %[[NEW:[a-z0-9_]+]]: tensor<1x2x?x8xf32> {quench.name = "new"}, %[[LEN:[a-z0-9_]+]]: tensor<i64> {quench.name = "past_length"}, %[[CACHE:[a-z0-9_]+]]: memref<1x2x?x8xf32> {quench.name = "past_key_values.0.key"})
// CHECK-SAME: -> (tensor<1x?x16xf32> {quench.name = "logits"}, tensor<1x2x?x8xf32> {quench.name = "attn"})
// CHECK-SAME: quench.generation = {capacity = 2048 : i64, input_ids = "input_ids", logits = "logits", past_length = "past_length", state = ["past_key_values.0.key"]}
// CHECK: %[[L:.*]] = tensor.extract %[[LEN]]{{\[\]}}
// CHECK: %[[P:.*]] = arith.index_cast %[[L]]
// CHECK: %[[C:.*]] = bufferization.to_tensor %[[CACHE]] restrict writable
// CHECK: %[[S:.*]] = tensor.dim %[[NEW]], %{{.*}}
// CHECK: %[[U:.*]] = tensor.insert_slice %[[NEW]] into %[[C]][0, 0, %[[P]], 0] [1, 2, %[[S]], 8] [1, 1, 1, 1]
// CHECK: bufferization.materialize_in_destination %[[U]] in writable %[[CACHE]]
// CHECK: %[[T:.*]] = arith.addi %[[P]], %[[S]]
// CHECK: %[[V:.*]] = tensor.extract_slice %[[U]][0, 0, 0, 0] [1, 2, %[[T]], 8] [1, 1, 1, 1]
// CHECK-NOT: quench.concat
// CHECK: %[[R:.*]] = quench.mul %[[V]], %[[V]]
// CHECK: return %[[H]], %[[R]]

// F16-LABEL: func @one_layer
// F16-SAME: memref<1x2x?x8xf16>
// F16-SAME: capacity = 64 : i64
// F16: quench.cast %{{.*}} : tensor<1x2x?x8xf32> to tensor<1x2x?x8xf16>
// F16: tensor.insert_slice
// F16: quench.cast %{{.*}} : tensor<1x2x?x8xf16> to tensor<1x2x?x8xf32>
// int8: codes and one f32 scale per head and position (max |x| / 127),
// dequantized on read.
// INT8-LABEL: func @one_layer
// INT8-SAME: %[[LEN:[a-z0-9_]+]]: tensor<i64> {quench.name = "past_length"}, %[[CODES:[a-z0-9_]+]]: memref<1x2x?x8xi8> {quench.name = "past_key_values.0.key"}, %[[SCALES:[a-z0-9_]+]]: memref<1x2x?x1xf32> {quench.name = "past_key_values.0.key.scale"}
// INT8-SAME: state = ["past_key_values.0.key", "past_key_values.0.key.scale"]
// INT8: %[[AMAX:.*]] = quench.reduce max %{{.*}} {axes = array<i64: 3>, keep_dims = true}
// INT8: %[[S:.*]] = quench.div %[[AMAX]], %{{.*}} : (tensor<1x2x?x1xf32>, tensor<f32>)
// INT8: quench.floor
// INT8: quench.clip %{{.*}} {max = 1.270000e+02 : f64, min = -1.270000e+02 : f64}
// INT8: quench.cast %{{.*}} : tensor<1x2x?x8xf32> to tensor<1x2x?x8xi8>
// INT8: bufferization.materialize_in_destination %{{.*}} in writable %[[CODES]]
// INT8: bufferization.materialize_in_destination %{{.*}} in writable %[[SCALES]]
// INT8: quench.cast %{{.*}} : tensor<1x2x?x8xi8> to tensor<1x2x?x8xf32>
// INT8: quench.mul %{{.*}}, %{{.*}} : (tensor<1x2x?x8xf32>, tensor<1x2x?x1xf32>) -> tensor<1x2x?x8xf32>
func.func @one_layer(%ids: tensor<1x?xi64> {quench.name = "input_ids"}, %h: tensor<1x?x16xf32> {quench.name = "h"},
                     %past: tensor<1x2x?x8xf32> {quench.name = "past_key_values.0.key"},
                     %new: tensor<1x2x?x8xf32> {quench.name = "new"})
    -> (tensor<1x?x16xf32> {quench.name = "logits"}, tensor<1x2x?x8xf32> {quench.name = "attn"},
        tensor<1x2x?x8xf32> {quench.name = "present.0.key"}) {
  %all = quench.concat %past, %new {axis = 2 : i64} : (tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>) -> tensor<1x2x?x8xf32>
  %y = quench.mul %all, %all : (tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>) -> tensor<1x2x?x8xf32>
  return %h, %y, %all : tensor<1x?x16xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>
}

// -----

// A dynamic batch is fixed to 1 in the cache; the model's types stay.
// CHECK-LABEL: func @dynamic_batch
// CHECK-SAME: memref<1x2x?x8xf32>
// CHECK: tensor.cast %{{.*}} : tensor<?x2x?x8xf32> to tensor<1x2x?x8xf32>
// CHECK: tensor.cast %{{.*}} : tensor<1x2x?x8xf32> to tensor<?x2x?x8xf32>
func.func @dynamic_batch(%ids: tensor<?x?xi64> {quench.name = "input_ids"}, %h: tensor<1x?x16xf32> {quench.name = "h"},
                         %past: tensor<?x2x?x8xf32> {quench.name = "past_key_values.0.key"},
                         %new: tensor<?x2x?x8xf32> {quench.name = "new"})
    -> (tensor<1x?x16xf32> {quench.name = "logits"}, tensor<?x2x?x8xf32> {quench.name = "attn"},
        tensor<?x2x?x8xf32> {quench.name = "present.0.key"}) {
  %all = quench.concat %past, %new {axis = 2 : i64} : (tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>) -> tensor<?x2x?x8xf32>
  %y = quench.mul %all, %all : (tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>) -> tensor<?x2x?x8xf32>
  return %h, %y, %all : tensor<1x?x16xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>
}

// -----

// expected-error @+1 {{past input 'past_key_values.0.value' has no present output 'present.0.value'}}
func.func @no_present(%ids: tensor<1x?xi64> {quench.name = "input_ids"}, %h: tensor<1x?x16xf32> {quench.name = "h"},
                      %past: tensor<1x2x?x8xf32> {quench.name = "past_key_values.0.value"})
    -> (tensor<1x?x16xf32> {quench.name = "logits"}, tensor<1x2x?x8xf32> {quench.name = "attn"}) {
  return %h, %past : tensor<1x?x16xf32>, tensor<1x2x?x8xf32>
}

// -----

func.func @not_a_concat(%ids: tensor<1x?xi64> {quench.name = "input_ids"}, %h: tensor<1x?x16xf32> {quench.name = "h"},
                        %past: tensor<1x2x?x8xf32> {quench.name = "past_key_values.0.key"})
    -> (tensor<1x?x16xf32> {quench.name = "logits"}, tensor<1x2x?x8xf32> {quench.name = "attn"},
        tensor<1x2x?x8xf32> {quench.name = "present.0.key"}) {
  // expected-error @+1 {{present output 'present.0.key' is not concat(past 'past_key_values.0.key', new positions): it is produced by 'quench.neg'}}
  %p = quench.neg %past : tensor<1x2x?x8xf32>
  return %h, %past, %p : tensor<1x?x16xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>
}

// -----

// expected-error @+2 {{past input 'past_key_values.0.key' has a dynamic dimension 3}}
func.func @dynamic_head(%ids: tensor<1x?xi64> {quench.name = "input_ids"}, %h: tensor<1x?x16xf32> {quench.name = "h"},
                        %past: tensor<1x2x?x?xf32> {quench.name = "past_key_values.0.key"},
                        %new: tensor<1x2x?x?xf32> {quench.name = "new"})
    -> (tensor<1x?x16xf32> {quench.name = "logits"}, tensor<1x2x?x?xf32> {quench.name = "attn"},
        tensor<1x2x?x?xf32> {quench.name = "present.0.key"}) {
  %all = quench.concat %past, %new {axis = 2 : i64} : (tensor<1x2x?x?xf32>, tensor<1x2x?x?xf32>) -> tensor<1x2x?x?xf32>
  return %h, %all, %all : tensor<1x?x16xf32>, tensor<1x2x?x?xf32>, tensor<1x2x?x?xf32>
}

// -----

// expected-error @+1 {{no token ids input named 'input_ids'}}
func.func @no_ids(%h: tensor<1x?x16xf32> {quench.name = "h"}, %past: tensor<1x2x?x8xf32> {quench.name = "past_key_values.0.key"},
                  %new: tensor<1x2x?x8xf32> {quench.name = "new"})
    -> (tensor<1x?x16xf32> {quench.name = "logits"}, tensor<1x2x?x8xf32> {quench.name = "attn"},
        tensor<1x2x?x8xf32> {quench.name = "present.0.key"}) {
  %all = quench.concat %past, %new {axis = 2 : i64} : (tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>) -> tensor<1x2x?x8xf32>
  return %h, %all, %all : tensor<1x?x16xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>
}

// -----

// logits-positions=last (the default): the final norm and the LM head run
// on the last position only; the residual add before them (both operands
// vary along the positions) still runs on all of them.
// LAST-LABEL: func @last_logits
// LAST-SAME: -> (tensor<1x1x32xf32> {quench.name = "logits"})
// LAST: %[[SUM:.*]] = quench.add %{{.*}}, %{{.*}} : (tensor<1x?x16xf32>, tensor<1x?x16xf32>) -> tensor<1x?x16xf32>
// LAST: %[[N:.*]] = tensor.dim %[[SUM]], %c1
// LAST: %[[I:.*]] = arith.subi %[[N]], %c1
// LAST: %[[ROW:.*]] = tensor.extract_slice %[[SUM]][0, %[[I]], 0] [1, 1, 16] [1, 1, 1] : tensor<1x?x16xf32> to tensor<1x1x16xf32>
// LAST: %[[NORM:.*]] = quench.rms_norm %[[ROW]], %{{.*}} : (tensor<1x1x16xf32>, tensor<16xf32>) -> tensor<1x1x16xf32>
// LAST: %[[L:.*]] = quench.linear %[[NORM]], %{{.*}} : (tensor<1x1x16xf32>, tensor<32x16xf32>) -> tensor<1x1x32xf32>
// LAST: %[[S:.*]] = quench.mul %[[L]], %{{.*}} : (tensor<1x1x32xf32>, tensor<f32>) -> tensor<1x1x32xf32>
// LAST: return %[[S]]
// CHECK-LABEL: func @last_logits
// CHECK-SAME: -> (tensor<1x?x32xf32> {quench.name = "logits"})
func.func @last_logits(%ids: tensor<1x?xi64> {quench.name = "input_ids"}, %h: tensor<1x?x16xf32> {quench.name = "h"},
                       %past: tensor<1x2x?x8xf32> {quench.name = "past_key_values.0.key"},
                       %new: tensor<1x2x?x8xf32> {quench.name = "new"})
    -> (tensor<1x?x32xf32> {quench.name = "logits"}, tensor<1x2x?x8xf32> {quench.name = "present.0.key"}) {
  %all = quench.concat %past, %new {axis = 2 : i64} : (tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>) -> tensor<1x2x?x8xf32>
  %sum = quench.add %h, %h : (tensor<1x?x16xf32>, tensor<1x?x16xf32>) -> tensor<1x?x16xf32>
  %g = quench.constant dense<1.0> : tensor<16xf32>
  %w = quench.constant dense<0.5> : tensor<32x16xf32>
  %s = quench.constant dense<2.0> : tensor<f32>
  %n = quench.rms_norm %sum, %g {axis = 2 : i64, epsilon = 1.0e-5 : f64} : (tensor<1x?x16xf32>, tensor<16xf32>) -> tensor<1x?x16xf32>
  %l = quench.linear %n, %w : (tensor<1x?x16xf32>, tensor<32x16xf32>) -> tensor<1x?x32xf32>
  %y = quench.mul %l, %s : (tensor<1x?x32xf32>, tensor<f32>) -> tensor<1x?x32xf32>
  return %y, %all : tensor<1x?x32xf32>, tensor<1x2x?x8xf32>
}
