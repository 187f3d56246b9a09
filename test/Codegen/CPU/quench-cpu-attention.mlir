// RUN: quench-opt %s --quench-cpu-attention --canonicalize --cse | FileCheck %s
// RUN: quench-opt %s --quench-cpu-attention=vector-bits=512 --canonicalize --cse | FileCheck %s --check-prefix=AVX512
// RUN: quench-opt %s --quench-cpu-attention=vector-bits=64 | FileCheck %s --check-prefix=NARROW

// A decode step of grouped-query attention (12 query heads on 4 kv heads,
// T dynamic, a padding mask [1, 1, 1, T]): one task per kv head with its 3
// query heads as the rows; a loop over T, 8 keys a step (256 bits), with
// per row the running max, the running sums and 8 accumulator vectors of
// the 64 output features in registers (30 loop-carried vectors); keys past
// T masked; the scores of 8 keys summed by shuffles; exp on vectors; the
// rows divided by their sums and written into the task's slice. Nothing
// of size T but the inputs: the only tensor made is the result.
// The extents the kernel takes to be equal are checked first (a failed
// check ends the run with an error: convert-assert-to-quench-runtime).
// CHECK-LABEL: func.func @decode_gqa
// CHECK-NOT: linalg.
// CHECK: %[[T:.*]] = tensor.dim %arg1, %c2 : tensor<1x4x?x64xf32>
// CHECK: cf.assert %{{.*}}, "fused attention: the numbers of value and key positions differ
// CHECK: cf.assert %{{.*}}, "fused attention: the bias's columns and the key positions differ
// CHECK: %[[OUT:.*]] = tensor.empty() : tensor<1x12x1x64xf32>
// CHECK-NOT: tensor.empty
// CHECK: scf.forall (%[[G:.*]]) in (4) shared_outs(%[[SH:.*]] = %[[OUT]])
// CHECK: %[[SLICE:.*]] = tensor.extract_slice %[[SH]][0, %{{.*}}, 0, 0] [1, 3, 1, 64] [1, 1, 1, 1]
// CHECK: %[[ACC:.*]]:30 = scf.for %[[T0:.*]] = %c0 to %[[T]] step %c8 iter_args({{.*}}) -> (vector<8xf32>,
// CHECK: vector.create_mask %{{.*}} : vector<8xi1>
// CHECK: vector.transfer_read %{{.*}} : tensor<1x4x?x64xf32>, vector<8xf32>
// CHECK: vector.fma
// CHECK: vector.shuffle %{{.*}} [0, 8, 2, 10, 4, 12, 6, 14] : vector<8xf32>, vector<8xf32>
// CHECK: vector.shuffle %{{.*}} [0, 1, 2, 3, 8, 9, 10, 11] : vector<8xf32>, vector<8xf32>
// CHECK: vector.transfer_read %{{.*}}[%c0, %c0, %c0, %[[T0]]]{{.*}} : tensor<1x1x1x?xf32>, vector<8xf32>
// CHECK: math.exp %{{.*}} : vector<8xf32>
// CHECK: vector.fma
// CHECK: scf.yield
// CHECK: vector.reduction <add>, %[[ACC]]#1 : vector<8xf32> into f32
// CHECK: vector.transfer_write %{{.*}}, %[[SLICE]][%c0, %c0, %c0, %c0] {in_bounds = [true]} : vector<8xf32>, tensor<1x3x1x64xf32>
// CHECK: tensor.parallel_insert_slice
// CHECK-NOT: quench.attention
// 512 bits: 16 keys a step, 4 vectors per row.
// AVX512-LABEL: func.func @decode_gqa
// AVX512: scf.for {{.*}} step %c16 iter_args({{.*}}) -> (vector<16xf32>,
// AVX512: vector.shuffle %{{.*}} [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23] : vector<16xf32>, vector<16xf32>
// Below 128 bits the kernel is not built (quench-decompose-attention).
// NARROW-LABEL: func.func @decode_gqa
// NARROW: quench.attention
func.func @decode_gqa(%q: tensor<1x12x1x64xf32>, %k: tensor<1x4x?x64xf32>,
                      %v: tensor<1x4x?x64xf32>, %m: tensor<1x1x1x?xf32>)
    -> tensor<1x12x1x64xf32> {
  %r = quench.attention %q, %k, %v bias(%m) {scale = 1.250000e-01 : f64}
      : (tensor<1x12x1x64xf32>, tensor<1x4x?x64xf32>, tensor<1x4x?x64xf32>,
         tensor<1x1x1x?xf32>) -> tensor<1x12x1x64xf32>
  return %r : tensor<1x12x1x64xf32>
}

// The int8 cache: codes read as i8 and converted on load, the scales
// [B, Hk, T, 1] collapsed to [B, Hk, T] and read 8 positions at a time;
// tasks of batch (dynamic) x kv head.
// CHECK-LABEL: func.func @int8_cache
// CHECK-DAG: %[[KS:.*]] = tensor.collapse_shape %arg3 {{\[}}[0], [1], [2, 3]] : tensor<?x2x?x1xf32> into tensor<?x2x?xf32>
// CHECK-DAG: %[[VS:.*]] = tensor.collapse_shape %arg4 {{\[}}[0], [1], [2, 3]] : tensor<?x2x?x1xf32> into tensor<?x2x?xf32>
// CHECK: scf.forall (%[[B:.*]], %{{.*}}) in (%{{.*}}, 2)
// CHECK: scf.for
// CHECK: %[[K:.*]] = vector.transfer_read %arg1[%[[B]], {{.*}} : tensor<?x2x?x16xi8>, vector<8xi8>
// CHECK: arith.sitofp %[[K]] : vector<8xi8> to vector<8xf32>
// CHECK: vector.transfer_read %[[KS]][%[[B]], {{.*}} : tensor<?x2x?xf32>, vector<8xf32>
// CHECK: vector.transfer_read %[[VS]][%[[B]], {{.*}} : tensor<?x2x?xf32>, vector<8xf32>
// CHECK: %[[V:.*]] = vector.transfer_read %arg2[%[[B]], {{.*}} : tensor<?x2x?x16xi8>, vector<8xi8>
// CHECK: arith.sitofp %[[V]] : vector<8xi8> to vector<8xf32>
// CHECK-NOT: quench.attention
func.func @int8_cache(%q: tensor<?x4x1x16xf32>, %k: tensor<?x2x?x16xi8>,
                      %v: tensor<?x2x?x16xi8>, %ks: tensor<?x2x?x1xf32>,
                      %vs: tensor<?x2x?x1xf32>) -> tensor<?x4x1x16xf32> {
  %r = quench.attention %q, %k, %v key_scale(%ks) value_scale(%vs)
      {scale = 2.500000e-01 : f64}
      : (tensor<?x4x1x16xf32>, tensor<?x2x?x16xi8>, tensor<?x2x?x16xi8>,
         tensor<?x2x?x1xf32>, tensor<?x2x?x1xf32>) -> tensor<?x4x1x16xf32>
  return %r : tensor<?x4x1x16xf32>
}

// Multi-head prefill with a dynamic S and an f16 cache: tasks of 4
// positions of one head (16 loop-carried vectors: 4 rows of max, sums and
// 2 vectors of the 12 output features), the positions that do not fill a
// block one at a time; the feature tails (20 = 8 + 8 + 4, 12 = 8 + 4)
// are masked transfers.
// CHECK-LABEL: func.func @prefill_mha
// CHECK: scf.forall (%{{.*}}, %{{.*}}) in (2, %{{.*}})
// CHECK: tensor.extract_slice {{.*}} to tensor<1x1x?x12xf32>
// CHECK: scf.for %{{.*}} step %c4 iter_args
// CHECK: vector.transfer_read %arg0[%c0, %{{.*}}, %{{.*}}, %c16], %{{.*}} : tensor<1x2x?x20xf32>, vector<8xf32>
// CHECK: scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK: arith.extf %{{.*}} : vector<8xf16> to vector<8xf32>
// CHECK: vector.transfer_write {{.*}}, %c8] : vector<8xf32>, tensor<1x1x?x12xf32>
// CHECK: scf.for %{{.*}} step %c1 iter_args
// CHECK: scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
func.func @prefill_mha(%q: tensor<1x2x?x20xf32>, %k: tensor<1x2x?x20xf16>,
                       %v: tensor<1x2x?x12xf16>, %m: tensor<1x1x?x?xf32>)
    -> tensor<1x2x?x12xf32> {
  %r = quench.attention %q, %k, %v bias(%m) {scale = 1.0 : f64}
      : (tensor<1x2x?x20xf32>, tensor<1x2x?x20xf16>, tensor<1x2x?x12xf16>,
         tensor<1x1x?x?xf32>) -> tensor<1x2x?x12xf32>
  return %r : tensor<1x2x?x12xf32>
}

// Only f32 queries: others stay for quench-decompose-attention.
// CHECK-LABEL: func.func @f16_query
// CHECK: quench.attention
func.func @f16_query(%q: tensor<1x2x1x16xf16>, %k: tensor<1x2x8x16xf16>,
                     %v: tensor<1x2x8x16xf16>) -> tensor<1x2x1x16xf16> {
  %r = quench.attention %q, %k, %v {scale = 2.500000e-01 : f64}
      : (tensor<1x2x1x16xf16>, tensor<1x2x8x16xf16>, tensor<1x2x8x16xf16>)
      -> tensor<1x2x1x16xf16>
  return %r : tensor<1x2x1x16xf16>
}

// f64 keys: left for the decomposition too.
// CHECK-LABEL: func.func @f64_keys
// CHECK: quench.attention
func.func @f64_keys(%q: tensor<1x2x1x16xf32>, %k: tensor<1x2x8x16xf64>,
                    %v: tensor<1x2x8x16xf32>) -> tensor<1x2x1x16xf32> {
  %r = quench.attention %q, %k, %v {scale = 2.500000e-01 : f64}
      : (tensor<1x2x1x16xf32>, tensor<1x2x8x16xf64>, tensor<1x2x8x16xf32>)
      -> tensor<1x2x1x16xf32>
  return %r : tensor<1x2x1x16xf32>
}
