// RUN: quench-opt %s --split-input-file --quench-pack-sparse-weights | FileCheck %s
// RUN: quench-opt %s --split-input-file --quench-pack-sparse-weights=max-group=4 | FileCheck %s --check-prefix=MAX4
// RUN: quench-opt %s --split-input-file --quench-pack-sparse-weights=bitmask=1 | FileCheck %s --check-prefix=BM

// A 2:4 pruned f32 linear [N = 2, K = 8]: the kept values per row, and one
// nibble of two 2-bit indices per group (first index in the low bits).
// Row 0 [0, -0.4, 0.3, 0 | 1, 1, 0, 0]: groups (1, 2) and (0, 1), i.e.
// 1 | 2 << 2 = 9 and 0 | 1 << 2 = 4: byte 9 | 4 << 4 = 73. Row 1 [0.5, 0,
// 0, -0.5 | 0, 3, -4, 0]: (0, 3) = 12 and (1, 2) = 9: byte 156 (-100).
// CHECK-LABEL: func.func @f32_2to4
// CHECK-DAG: %[[V:.*]] = quench.constant dense<{{\[\[}}-4.000000e-01, 3.000000e-01, 1.000000e+00, 1.000000e+00], [5.000000e-01, -5.000000e-01, 3.000000e+00, -4.000000e+00]]> : tensor<2x4xf32>
// CHECK-DAG: %[[I:.*]] = quench.constant dense<{{\[\[}}73], [-100]]> : tensor<2x1xi8>
// CHECK: quench.sparse_linear %arg0, %[[V]], %[[I]] bias(%arg1) {group = 4 : i64, keep = 2 : i64, quench.sparsity = "2:4 magnitude"}
// CHECK-NOT: quench.linear
func.func @f32_2to4(%x: tensor<?x8xf32>, %b: tensor<2xf32>) -> tensor<?x2xf32> {
  %w = quench.constant dense<[[0.0, -0.4, 0.3, 0.0, 1.0, 1.0, 0.0, 0.0],
                              [0.5, 0.0, 0.0, -0.5, 0.0, 3.0, -4.0, 0.0]]> : tensor<2x8xf32>
  %y = quench.linear %x, %w, %b {quench.sparsity = "2:4 magnitude"} : (tensor<?x8xf32>, tensor<2x8xf32>, tensor<2xf32>) -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}

// -----

// 8-bit symmetric codes (quench-quantize-weights' W8A16 of the weight
// above): the kept codes minus the zero point 128, the same indices, the
// scales as stored, block_size the quantization group.
// CHECK-LABEL: func.func @int8_2to4
// CHECK-DAG: %[[V:.*]] = quench.constant dense<{{\[\[}}-51, 38, 127, 127], [16, -16, 95, -127]]> : tensor<2x4xi8>
// CHECK-DAG: %[[I:.*]] = quench.constant dense<{{\[\[}}73], [-100]]> : tensor<2x1xi8>
// CHECK-DAG: %[[S:.*]] = quench.constant dense<{{\[\[}}7.873530e-03], [3.149410e-02]]> : tensor<2x1xf16>
// CHECK: quench.sparse_linear %arg0, %[[V]], %[[I]] scales(%[[S]]) {block_size = 8 : i64, group = 4 : i64, keep = 2 : i64, quench.sparsity = "2:4 magnitude"}
func.func @int8_2to4(%x: tensor<1x8xf32>) -> tensor<1x2xf32> {
  %q = quench.constant dense<[[[128, 77, 166, 128, 255, 255, 128, 128]], [[144, 128, 128, 112, 128, 223, 1, 128]]]> : tensor<2x1x8xui8>
  %s = quench.constant dense<[[7.873530e-03], [3.149410e-02]]> : tensor<2x1xf16>
  %y = quench.matmul_nbits %x, %q, %s {bits = 8 : i64, block_size = 8 : i64, in_features = 8 : i64, out_features = 2 : i64, quench.sparsity = "2:4 magnitude"} : (tensor<1x8xf32>, tensor<2x1x8xui8>, tensor<2x1xf16>) -> tensor<1x2xf32>
  return %y : tensor<1x2xf32>
}

// -----

// 4-bit symmetric codes (zero point 8; matmul_nbits packs two per byte, low
// nibble first): the kept codes as stored, two per byte (slot 2i low), the
// same indices as above. Row 0 [8, 3, 13, 8 | 15, 15, 8, 8]: 3 | 13 << 4 =
// 211 (-45), 255 (-1); row 1 [9, 8, 8, 7 | 8, 14, 1, 8]: 9 | 7 << 4 = 121,
// 14 | 1 << 4 = 30. 8 + 2 + 4 bytes against 16 dense.
// CHECK-LABEL: func.func @int4_2to4
// CHECK-DAG: %[[V:.*]] = quench.constant dense<{{\[\[}}-45, -1], [121, 30]]> : tensor<2x2xi8>
// CHECK-DAG: %[[I:.*]] = quench.constant dense<{{\[\[}}73], [-100]]> : tensor<2x1xi8>
// CHECK: quench.sparse_linear %arg0, %[[V]], %[[I]] scales(%{{.*}}) {block_size = 8 : i64, group = 4 : i64, keep = 2 : i64, quench.sparsity = "2:4 magnitude", value_bits = 4 : i64}
// CHECK-NOT: quench.matmul_nbits
func.func @int4_2to4(%x: tensor<1x8xf32>) -> tensor<1x2xf32> {
  %q = quench.constant dense<[[[56, 141, 255, 136]], [[137, 120, 232, 129]]]> : tensor<2x1x4xui8>
  %s = quench.constant dense<[[0.25], [0.5]]> : tensor<2x1xf16>
  %y = quench.matmul_nbits %x, %q, %s {bits = 4 : i64, block_size = 8 : i64, in_features = 8 : i64, out_features = 2 : i64, quench.sparsity = "2:4 magnitude"} : (tensor<1x8xf32>, tensor<2x1x4xui8>, tensor<2x1xf16>) -> tensor<1x2xf32>
  return %y : tensor<1x2xf32>
}

// -----

// 4:8 takes 4-bit indices: row 0 keeps columns 1, 2, 4, 5 (one byte per
// two indices: 1 | 2 << 4 = 33, 4 | 5 << 4 = 84). max-group=4 keeps it
// dense.
// CHECK-LABEL: func.func @f32_4to8
// CHECK-DAG: quench.constant dense<{{\[\[}}33, 84]]> : tensor<1x2xi8>
// CHECK: quench.sparse_linear {{.*}} {group = 8 : i64, keep = 4 : i64
// MAX4-LABEL: func.func @f32_4to8
// MAX4: quench.linear
func.func @f32_4to8(%x: tensor<1x8xf32>) -> tensor<1x1xf32> {
  %w = quench.constant dense<[[0.0, -0.4, 0.3, 0.0, 1.0, 1.0, 0.0, 0.0]]> : tensor<1x8xf32>
  %y = quench.linear %x, %w {quench.sparsity = "4:8 magnitude"} : (tensor<1x8xf32>, tensor<1x8xf32>) -> tensor<1x1xf32>
  return %y : tensor<1x1xf32>
}

// -----

// Layers that stay dense: unstructured, a group with more than N nonzeros
// (the weight changed after pruning), 4:8 4-bit codes (4-bit indices: 2 + 2
// bytes per row, as many as the dense codes), K not a multiple of M, and
// linears without the mark.
// CHECK-LABEL: func.func @dense
// CHECK-NOT: quench.sparse_linear
// CHECK-COUNT-3: quench.linear
// CHECK: quench.matmul_nbits
// CHECK: quench.linear
// CHECK-NOT: quench.sparse_linear
func.func @dense(%x: tensor<1x8xf32>, %x6: tensor<1x6xf32>) -> (tensor<1x1xf32>, tensor<1x1xf32>, tensor<1x1xf32>, tensor<1x2xf32>, tensor<1x1xf32>) {
  %w = quench.constant dense<[[0.0, -0.4, 0.3, 0.0, 1.0, 1.0, 0.0, 0.0]]> : tensor<1x8xf32>
  %w3 = quench.constant dense<[[0.0, -0.4, 0.3, 0.1, 1.0, 1.0, 0.0, 0.0]]> : tensor<1x8xf32>
  %a = quench.linear %x, %w {quench.sparsity = "unstructured:0.5 magnitude"} : (tensor<1x8xf32>, tensor<1x8xf32>) -> tensor<1x1xf32>
  %b = quench.linear %x, %w3 {quench.sparsity = "2:4 magnitude"} : (tensor<1x8xf32>, tensor<1x8xf32>) -> tensor<1x1xf32>
  %c = quench.linear %x, %w : (tensor<1x8xf32>, tensor<1x8xf32>) -> tensor<1x1xf32>
  %q = quench.constant dense<[[[8, 8, 8, 8]], [[8, 8, 8, 8]]]> : tensor<2x1x4xui8>
  %s = quench.constant dense<[[1.0], [1.0]]> : tensor<2x1xf32>
  %d = quench.matmul_nbits %x, %q, %s {bits = 4 : i64, block_size = 8 : i64, in_features = 8 : i64, out_features = 2 : i64, quench.sparsity = "4:8 magnitude"} : (tensor<1x8xf32>, tensor<2x1x4xui8>, tensor<2x1xf32>) -> tensor<1x2xf32>
  %w6 = quench.constant dense<[[0.0, -0.4, 0.3, 0.0, 1.0, 1.0]]> : tensor<1x6xf32>
  %e = quench.linear %x6, %w6 {quench.sparsity = "2:4 magnitude"} : (tensor<1x6xf32>, tensor<1x6xf32>) -> tensor<1x1xf32>
  return %a, %b, %c, %d, %e : tensor<1x1xf32>, tensor<1x1xf32>, tensor<1x1xf32>, tensor<1x2xf32>, tensor<1x1xf32>
}

// -----

// Unstructured pruned 8-bit symmetric codes: with `bitmask` (the CPU's
// vpexpandb kernel) a layer whose mask bits plus kept codes are smaller
// than its dense codes is marked for bitmask storage and keeps its op (%a:
// 8 of 16 codes are the zero point 128, 2 + 8 bytes against 16); a dense
// one (%b, no code 128: 2 + 16 bytes) and an f32 linear stay as they are.
// Without the option nothing is marked.
// CHECK-LABEL: func.func @unstructured8
// CHECK-NOT: quench.sparse_storage
// CHECK-NOT: quench.sparse_linear
// BM-LABEL: func.func @unstructured8
// BM: quench.matmul_nbits {{.*}}quench.sparse_storage = "bitmask", quench.sparsity = "unstructured:0.5 magnitude"
// BM: quench.matmul_nbits
// BM-NOT: quench.sparse_storage
// BM: quench.linear
// BM-NOT: quench.sparse_storage
func.func @unstructured8(%x: tensor<1x8xf32>) -> (tensor<1x2xf32>, tensor<1x2xf32>, tensor<1x1xf32>) {
  %q = quench.constant dense<[[[128, 3, 128, 250, 128, 128, 9, 200]], [[1, 128, 128, 128, 7, 77, 128, 129]]]> : tensor<2x1x8xui8>
  %q2 = quench.constant dense<[[[1, 3, 5, 250, 6, 7, 9, 200]], [[1, 2, 3, 4, 7, 77, 8, 129]]]> : tensor<2x1x8xui8>
  %s = quench.constant dense<[[1.0], [0.5]]> : tensor<2x1xf32>
  %a = quench.matmul_nbits %x, %q, %s {bits = 8 : i64, block_size = 8 : i64, in_features = 8 : i64, out_features = 2 : i64, quench.sparsity = "unstructured:0.5 magnitude"} : (tensor<1x8xf32>, tensor<2x1x8xui8>, tensor<2x1xf32>) -> tensor<1x2xf32>
  %b = quench.matmul_nbits %x, %q2, %s {bits = 8 : i64, block_size = 8 : i64, in_features = 8 : i64, out_features = 2 : i64, quench.sparsity = "unstructured:0.5 magnitude"} : (tensor<1x8xf32>, tensor<2x1x8xui8>, tensor<2x1xf32>) -> tensor<1x2xf32>
  %w = quench.constant dense<[[0.0, -0.4, 0.3, 0.0, 1.0, 1.0, 0.0, 0.0]]> : tensor<1x8xf32>
  %c = quench.linear %x, %w {quench.sparsity = "unstructured:0.5 magnitude"} : (tensor<1x8xf32>, tensor<1x8xf32>) -> tensor<1x1xf32>
  return %a, %b, %c : tensor<1x2xf32>, tensor<1x2xf32>, tensor<1x1xf32>
}
