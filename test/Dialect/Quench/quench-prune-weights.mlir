// RUN: quench-opt %s --split-input-file --quench-prune-weights="sparsity=2:4" | FileCheck %s
// RUN: quench-opt %s --split-input-file --quench-prune-weights="sparsity=4:8 prune-head=true" | FileCheck %s --check-prefix=M48
// RUN: quench-opt %s --split-input-file --quench-prune-weights="sparsity=unstructured:0.5" | FileCheck %s --check-prefix=UNSTR
// RUN: quench-opt %s --split-input-file --quench-prune-weights="sparsity=none" | FileCheck %s --check-prefix=NONE
// RUN: quench-opt %s --split-input-file --quench-prune-weights="sparsity=2:4" --quench-quantize-weights | FileCheck %s --check-prefix=W8
// RUN: quench-opt %s --split-input-file --quench-prune-weights="sparsity=2:4" --quench-quantize-weights="bits=4 group-size=8 symmetric=false scale-type=f32" | FileCheck %s --check-prefix=W4ASYM
// RUN: not quench-opt %s --split-input-file --quench-prune-weights="sparsity=2:4 method=sparsegpt" 2>&1 | FileCheck %s --check-prefix=NOGRAM
// RUN: not quench-opt %s --split-input-file --quench-prune-weights="sparsity=3:2" 2>&1 | FileCheck %s --check-prefix=BADPAT
// RUN: not quench-opt %s --split-input-file --quench-prune-weights="sparsity=2:4 method=random" 2>&1 | FileCheck %s --check-prefix=BADMETHOD
// RUN: echo '{"version": 1, "default": {"sparsity": "unstructured:0.5"}, "layers": [{"match": "/body/*", "sparsity": "none"}]}' > %t.recipe.json
// RUN: quench-opt %s --split-input-file --quench-prune-weights="sparsity=2:4 prune-head=true recipe=%t.recipe.json" | FileCheck %s --check-prefix=RECIPE
// RUN: echo '{"version": 1, "layers": [{"match": "*", "sparsity": "5:4"}]}' > %t.bad.json
// RUN: not quench-opt %s --split-input-file --quench-prune-weights="sparsity=2:4 recipe=%t.bad.json" 2>&1 | FileCheck %s --check-prefix=BADRECIPE
// The quantizer accepts the recipe's "sparsity" field (and ignores it).
// RUN: quench-opt %s --split-input-file --quench-quantize-weights="recipe=%t.recipe.json" | FileCheck %s --check-prefix=QRECIPE

// Magnitude pruning of a linear's weight [N = 2, K = 8]. 2:4 keeps the two
// largest |w| of every 4 consecutive weights of a row (ties: the lower
// index): row 0 [0.1, -0.4, 0.3, 0.05 | 1, 1, -1, 1] -> [0, -0.4, 0.3, 0 |
// 1, 1, 0, 0]; row 1 [0.5, 0, 0, -0.5 | 2, 3, -4, 1] -> [0.5, 0, 0, -0.5 |
// 0, 3, -4, 0]. The output projection (the second linear, returned) stays
// dense by default.
// CHECK-LABEL: func.func @two_layers
// CHECK-DAG: %[[W:.*]] = quench.constant dense<{{\[\[}}0.000000e+00, -4.000000e-01, 3.000000e-01, 0.000000e+00, 1.000000e+00, 1.000000e+00, 0.000000e+00, 0.000000e+00], [5.000000e-01, 0.000000e+00, 0.000000e+00, -5.000000e-01, 0.000000e+00, 3.000000e+00, -4.000000e+00, 0.000000e+00]]> : tensor<2x8xf32>
// CHECK-DAG: %[[H:.*]] = quench.constant dense<{{\[\[}}1.000000e+00, 2.000000e+00], [3.000000e+00, 4.000000e+00], [5.000000e+00, 6.000000e+00], [7.000000e+00, 8.000000e+00]]> : tensor<4x2xf32>
// CHECK: %[[Y:.*]] = quench.linear %arg0, %[[W]] {quench.sparsity = "2:4 magnitude"}
// CHECK: quench.linear %[[Y]], %[[H]] :
// 4:8 keeps the four largest of each row; with prune-head the head is
// pruned too (its rows of 2 weights are one partial group: both kept).
// M48-LABEL: func.func @two_layers
// M48-DAG: quench.constant dense<{{\[\[}}0.000000e+00, 0.000000e+00, 0.000000e+00, 0.000000e+00, 1.000000e+00, 1.000000e+00, -1.000000e+00, 1.000000e+00], [0.000000e+00, 0.000000e+00, 0.000000e+00, 0.000000e+00, 2.000000e+00, 3.000000e+00, -4.000000e+00, 1.000000e+00]]> : tensor<2x8xf32>
// M48-DAG: quench.linear {{.*}} {quench.sparsity = "4:8 magnitude"} : (tensor<1x8xf32>, tensor<2x8xf32>)
// M48-DAG: quench.linear {{.*}} {quench.sparsity = "4:8 magnitude"} : (tensor<1x2xf32>, tensor<4x2xf32>)
// Unstructured 50 %: the four largest |w| of each row.
// UNSTR-LABEL: func.func @two_layers
// UNSTR: quench.constant dense<{{\[\[}}0.000000e+00, 0.000000e+00, 0.000000e+00, 0.000000e+00, 1.000000e+00, 1.000000e+00, -1.000000e+00, 1.000000e+00], [0.000000e+00, 0.000000e+00, 0.000000e+00, 0.000000e+00, 2.000000e+00, 3.000000e+00, -4.000000e+00, 1.000000e+00]]> : tensor<2x8xf32>
// UNSTR: {quench.sparsity = "unstructured:0.5 magnitude"}
// NONE-LABEL: func.func @two_layers
// NONE-NOT: quench.sparsity
// Pruned, then quantized (W8A16 per channel, symmetric): pruned weights
// get the code 128 (the zero point), i.e. exactly 0; row 0's scale is
// 1 / 127 (f16), so -0.4 -> 128 - 51, 0.3 -> 128 + 38, 1 -> 255.
// W8-LABEL: func.func @two_layers
// W8: quench.constant dense<{{\[\[\[}}128, 77, 166, 128, 255, 255, 128, 128]], {{\[\[}}144, 128, 128, 112, 128, 223, 1, 128]]]> : tensor<2x1x8xui8>
// Asymmetric int4 (one group of 8 per row): 0 lies in every pruned
// row's range, so its code is the integer zero point (row 0: [-0.4, 1],
// scale 1.4 / 15, zero point round(0.4 / scale) = 4; row 1: [-4, 3],
// scale 7 / 15, zero point 9).
// W4ASYM-LABEL: func.func @two_layers
// W4ASYM-DAG: quench.constant dense<{{\[\[}}4], [9]]> : tensor<2x1xui8>
// Codes (two per byte, low nibble first): row 0 [4, 0, 7, 4, 15, 15, 4, 4],
// row 1 [10, 9, 9, 8, 9, 15, 0, 9].
// W4ASYM-DAG: quench.constant dense<{{\[\[\[}}4, 71, 255, 68]], {{\[\[}}154, 137, 249, 144]]]> : tensor<2x1x4xui8>
// RECIPE-LABEL: func.func @two_layers
// RECIPE: quench.linear %arg0, %{{.*}} :
// RECIPE: quench.linear %{{.*}} {quench.sparsity = "unstructured:0.5 magnitude"}
// QRECIPE-LABEL: func.func @two_layers
// QRECIPE-COUNT-2: quench.matmul_nbits
func.func @two_layers(%x: tensor<1x8xf32>) -> tensor<1x4xf32> {
  %w = quench.constant dense<[[0.1, -0.4, 0.3, 0.05, 1.0, 1.0, -1.0, 1.0],
                              [0.5, 0.0, 0.0, -0.5, 2.0, 3.0, -4.0, 1.0]]> : tensor<2x8xf32>
  %h = quench.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]> : tensor<4x2xf32>
  %y = quench.linear %x, %w : (tensor<1x8xf32>, tensor<2x8xf32>) -> tensor<1x2xf32> loc("/body/MatMul")
  %z = quench.linear %y, %h : (tensor<1x2xf32>, tensor<4x2xf32>) -> tensor<1x4xf32> loc("/head/MatMul")
  return %z : tensor<1x4xf32>
}

// SparseGPT needs each pruned layer's Gram matrix (quench-opt has none):
// every such layer is named at once, not the head.
// NOGRAM: error: --prune=sparsegpt needs calibration (--calib or --calib-cache); no input statistics for layers: /body/MatMul{{$}}
// BADPAT: error: sparsity '3:2': use N:M
// BADMETHOD: error: pruning method must be magnitude or sparsegpt, got 'random'
// BADRECIPE: error: recipe '{{.*}}bad.json' layers[0]: sparsity '5:4': use N:M

// -----

// A weight stored [K, N] behind a transpose (quench-raise-ops' form of a
// MatMul initializer) stays so: N:M groups run along K, i.e. down the
// stored columns. Column 0 of the stored [8, 2] is row 0 of the weight.
// CHECK-LABEL: func.func @transposed
// CHECK: %[[C:.*]] = quench.constant dense<{{\[\[}}0.000000e+00, 5.000000e-01], [-4.000000e-01, 0.000000e+00], [3.000000e-01, 0.000000e+00], [0.000000e+00, -5.000000e-01], [1.000000e+00, 0.000000e+00], [1.000000e+00, 3.000000e+00], [0.000000e+00, -4.000000e+00], [0.000000e+00, 0.000000e+00]]> : tensor<8x2xf32>
// CHECK: %[[T:.*]] = quench.transpose %[[C]]
// CHECK: quench.linear %arg0, %[[T]] {quench.sparsity = "2:4 magnitude"}
func.func @transposed(%x: tensor<1x8xf32>) -> tensor<1x2xf32> {
  %w = quench.constant dense<[[0.1, 0.5], [-0.4, 0.0], [0.3, 0.0], [0.05, -0.5],
                              [1.0, 2.0], [1.0, 3.0], [-1.0, -4.0], [1.0, 1.0]]> : tensor<8x2xf32>
  %wt = quench.transpose %w {permutation = array<i64: 1, 0>} : tensor<8x2xf32> -> tensor<2x8xf32>
  %y = quench.linear %x, %wt : (tensor<1x8xf32>, tensor<2x8xf32>) -> tensor<1x2xf32> loc("/t/MatMul")
  %r = quench.relu %y : tensor<1x2xf32>
  return %r : tensor<1x2xf32>
}
