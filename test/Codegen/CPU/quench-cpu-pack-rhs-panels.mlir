// RUN: quench-opt %s --split-input-file --quench-cpu-pack-rhs-panels=vector-bits=128 | FileCheck %s

// A constant [K, N] = [2, 64] weight of a contraction with a dynamic M is
// packed into panels [N/P, K, P] of P = 8 vectors of 4 f32 = 32 columns:
// panel 0 holds columns 0-31 of rows 0 and 1 (0..31, 64..95), panel 1
// columns 32-63. The product gets a loop over panels and one over their
// columns; its elementwise consumer (bias + ReLU) is expanded alike, and
// the collapse to [M, N] comes after it.
// CHECK-DAG: #[[A:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d3)>
// CHECK-DAG: #[[B:.*]] = affine_map<(d0, d1, d2, d3) -> (d1, d3, d2)>
// CHECK-DAG: #[[C:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @dynamic_rows
// CHECK: %[[W:.*]] = arith.constant dense_resource<[[BLOB:.*]]> : tensor<2x2x32xf32>
// CHECK: %[[E:.*]] = tensor.empty(%{{.*}}) : tensor<?x2x32xf32>
// CHECK: %[[F:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%[[E]] : tensor<?x2x32xf32>)
// CHECK: %[[P:.*]] = linalg.generic {indexing_maps = [#[[A]], #[[B]], #[[C]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME: ins(%arg0, %[[W]] : tensor<?x2xf32>, tensor<2x2x32xf32>) outs(%[[F]] : tensor<?x2x32xf32>)
// CHECK: arith.mulf
// CHECK: arith.addf
// CHECK: %[[BIAS:.*]] = tensor.expand_shape %arg1 {{\[\[}}0], [1, 2]] output_shape [%{{.*}}, 2, 32] : tensor<?x64xf32> into tensor<?x2x32xf32>
// CHECK: %[[R:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel"]}
// CHECK-SAME: ins(%[[P]], %[[BIAS]] : tensor<?x2x32xf32>, tensor<?x2x32xf32>)
// CHECK: arith.maximumf
// CHECK: %[[O:.*]] = tensor.collapse_shape %[[R]] {{\[\[}}0], [1, 2]] : tensor<?x2x32xf32> into tensor<?x64xf32>
// CHECK-NOT: __quench_panel_collapse
// CHECK: return %[[O]]
// The blob (after its alignment word), little-endian f32: 0, 1, then
// element 32 = 64 (row 1 of panel 0), element 64 = 32 (panel 1).
// CHECK: [[BLOB]]: "{{0x08000000000000000000803F[0-9A-F]{240}00008042[0-9A-F]{248}00000042}}
#a = affine_map<(m, n, k) -> (m, k)>
#b = affine_map<(m, n, k) -> (k, n)>
#c = affine_map<(m, n, k) -> (m, n)>
#id = affine_map<(m, n) -> (m, n)>
func.func @dynamic_rows(%x: tensor<?x2xf32>, %bias: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %w = arith.constant dense<[[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0, 30.0, 31.0, 32.0, 33.0, 34.0, 35.0, 36.0, 37.0, 38.0, 39.0, 40.0, 41.0, 42.0, 43.0, 44.0, 45.0, 46.0, 47.0, 48.0, 49.0, 50.0, 51.0, 52.0, 53.0, 54.0, 55.0, 56.0, 57.0, 58.0, 59.0, 60.0, 61.0, 62.0, 63.0], [64.0, 65.0, 66.0, 67.0, 68.0, 69.0, 70.0, 71.0, 72.0, 73.0, 74.0, 75.0, 76.0, 77.0, 78.0, 79.0, 80.0, 81.0, 82.0, 83.0, 84.0, 85.0, 86.0, 87.0, 88.0, 89.0, 90.0, 91.0, 92.0, 93.0, 94.0, 95.0, 96.0, 97.0, 98.0, 99.0, 100.0, 101.0, 102.0, 103.0, 104.0, 105.0, 106.0, 107.0, 108.0, 109.0, 110.0, 111.0, 112.0, 113.0, 114.0, 115.0, 116.0, 117.0, 118.0, 119.0, 120.0, 121.0, 122.0, 123.0, 124.0, 125.0, 126.0, 127.0]]> : tensor<2x64xf32>
  %m = tensor.dim %x, %c0 : tensor<?x2xf32>
  %e = tensor.empty(%m) : tensor<?x64xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<?x64xf32>) -> tensor<?x64xf32>
  %r = linalg.generic {indexing_maps = [#a, #b, #c],
                       iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : tensor<?x2xf32>, tensor<2x64xf32>) outs(%acc : tensor<?x64xf32>) {
  ^bb0(%in: f32, %wt: f32, %out: f32):
    %p = arith.mulf %in, %wt : f32
    %s = arith.addf %out, %p : f32
    linalg.yield %s : f32
  } -> tensor<?x64xf32>
  %y = linalg.generic {indexing_maps = [#id, #id, #id],
                       iterator_types = ["parallel", "parallel"]}
      ins(%r, %bias : tensor<?x64xf32>, tensor<?x64xf32>) outs(%e : tensor<?x64xf32>) {
  ^bb0(%v: f32, %bv: f32, %out: f32):
    %s = arith.addf %v, %bv : f32
    %relu = arith.maximumf %s, %zero : f32
    linalg.yield %relu : f32
  } -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// A weight stored [N, K] (quench.linear's layout, when the pass runs
// alone), one row: packed from the transposed layout, panel 0 = columns
// 0-31 of K row 0 (0, 2, ..., 62) then of K row 1 (1, 3, ..., 63). The
// product's result is returned: the collapse stays right after it.
// CHECK-LABEL: func.func @one_row_nk
// CHECK: %[[W:.*]] = arith.constant dense_resource<[[BLOB:.*]]> : tensor<2x2x32xf32>
// CHECK: %[[P:.*]] = linalg.generic
// CHECK-SAME: ins(%arg0, %[[W]] : tensor<1x2xf32>, tensor<2x2x32xf32>) outs(%{{.*}} : tensor<1x2x32xf32>)
// CHECK: %[[O:.*]] = tensor.collapse_shape %[[P]] {{\[\[}}0], [1, 2]] : tensor<1x2x32xf32> into tensor<1x64xf32>
// CHECK: return %[[O]]
// Elements 0, 1 = 0, 2; element 32 = 1 (K row 1); element 64 = 64 (panel 1).
// CHECK: [[BLOB]]: "{{0x080000000000000000000040[0-9A-F]{240}0000803F[0-9A-F]{248}00008042}}
#a = affine_map<(m, n, k) -> (m, k)>
#b = affine_map<(m, n, k) -> (n, k)>
#c = affine_map<(m, n, k) -> (m, n)>
func.func @one_row_nk(%x: tensor<1x2xf32>) -> tensor<1x64xf32> {
  %zero = arith.constant 0.0 : f32
  %w = arith.constant dense<[[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0], [8.0, 9.0], [10.0, 11.0], [12.0, 13.0], [14.0, 15.0], [16.0, 17.0], [18.0, 19.0], [20.0, 21.0], [22.0, 23.0], [24.0, 25.0], [26.0, 27.0], [28.0, 29.0], [30.0, 31.0], [32.0, 33.0], [34.0, 35.0], [36.0, 37.0], [38.0, 39.0], [40.0, 41.0], [42.0, 43.0], [44.0, 45.0], [46.0, 47.0], [48.0, 49.0], [50.0, 51.0], [52.0, 53.0], [54.0, 55.0], [56.0, 57.0], [58.0, 59.0], [60.0, 61.0], [62.0, 63.0], [64.0, 65.0], [66.0, 67.0], [68.0, 69.0], [70.0, 71.0], [72.0, 73.0], [74.0, 75.0], [76.0, 77.0], [78.0, 79.0], [80.0, 81.0], [82.0, 83.0], [84.0, 85.0], [86.0, 87.0], [88.0, 89.0], [90.0, 91.0], [92.0, 93.0], [94.0, 95.0], [96.0, 97.0], [98.0, 99.0], [100.0, 101.0], [102.0, 103.0], [104.0, 105.0], [106.0, 107.0], [108.0, 109.0], [110.0, 111.0], [112.0, 113.0], [114.0, 115.0], [116.0, 117.0], [118.0, 119.0], [120.0, 121.0], [122.0, 123.0], [124.0, 125.0], [126.0, 127.0]]> : tensor<64x2xf32>
  %e = tensor.empty() : tensor<1x64xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<1x64xf32>) -> tensor<1x64xf32>
  %r = linalg.generic {indexing_maps = [#a, #b, #c],
                       iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : tensor<1x2xf32>, tensor<64x2xf32>) outs(%acc : tensor<1x64xf32>) {
  ^bb0(%in: f32, %wt: f32, %out: f32):
    %p = arith.mulf %in, %wt : f32
    %s = arith.addf %out, %p : f32
    linalg.yield %s : f32
  } -> tensor<1x64xf32>
  return %r : tensor<1x64xf32>
}

// -----

// Left alone: a static M of at least 4 rows (the blocked kernel keeps
// [K, N]), an N that is not a multiple of the panel width, a single panel,
// a computed right-hand side, f16 operands.
// CHECK-LABEL: func.func @left_alone
// CHECK-NOT: collapse_shape
// CHECK-NOT: tensor<2x2x32xf32>
// CHECK: return
#a = affine_map<(m, n, k) -> (m, k)>
#b = affine_map<(m, n, k) -> (k, n)>
#c = affine_map<(m, n, k) -> (m, n)>
func.func @left_alone(%x: tensor<8x2xf32>, %x1: tensor<1x2xf32>,
                      %b: tensor<2x64xf32>, %xh: tensor<1x2xf16>)
    -> (tensor<8x64xf32>, tensor<1x48xf32>, tensor<1x32xf32>, tensor<1x64xf32>, tensor<1x64xf16>) {
  %zero = arith.constant 0.0 : f32
  %w = arith.constant dense<1.5> : tensor<2x64xf32>
  %w48 = arith.constant dense<2.5> : tensor<2x48xf32>
  %w32 = arith.constant dense<3.5> : tensor<2x32xf32>
  %wh = arith.constant dense<1.5> : tensor<2x64xf16>
  %zh = arith.constant 0.0 : f16
  %e8 = tensor.empty() : tensor<8x64xf32>
  %a8 = linalg.fill ins(%zero : f32) outs(%e8 : tensor<8x64xf32>) -> tensor<8x64xf32>
  %r8 = linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : tensor<8x2xf32>, tensor<2x64xf32>) outs(%a8 : tensor<8x64xf32>) {
  ^bb0(%i: f32, %v: f32, %o: f32):
    %p = arith.mulf %i, %v : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  } -> tensor<8x64xf32>
  %e48 = tensor.empty() : tensor<1x48xf32>
  %a48 = linalg.fill ins(%zero : f32) outs(%e48 : tensor<1x48xf32>) -> tensor<1x48xf32>
  %r48 = linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x1, %w48 : tensor<1x2xf32>, tensor<2x48xf32>) outs(%a48 : tensor<1x48xf32>) {
  ^bb0(%i: f32, %v: f32, %o: f32):
    %p = arith.mulf %i, %v : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  } -> tensor<1x48xf32>
  %e32 = tensor.empty() : tensor<1x32xf32>
  %a32 = linalg.fill ins(%zero : f32) outs(%e32 : tensor<1x32xf32>) -> tensor<1x32xf32>
  %r32 = linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x1, %w32 : tensor<1x2xf32>, tensor<2x32xf32>) outs(%a32 : tensor<1x32xf32>) {
  ^bb0(%i: f32, %v: f32, %o: f32):
    %p = arith.mulf %i, %v : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  } -> tensor<1x32xf32>
  %e64 = tensor.empty() : tensor<1x64xf32>
  %a64 = linalg.fill ins(%zero : f32) outs(%e64 : tensor<1x64xf32>) -> tensor<1x64xf32>
  %rb = linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x1, %b : tensor<1x2xf32>, tensor<2x64xf32>) outs(%a64 : tensor<1x64xf32>) {
  ^bb0(%i: f32, %v: f32, %o: f32):
    %p = arith.mulf %i, %v : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  } -> tensor<1x64xf32>
  %eh = tensor.empty() : tensor<1x64xf16>
  %ah = linalg.fill ins(%zh : f16) outs(%eh : tensor<1x64xf16>) -> tensor<1x64xf16>
  %rh = linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%xh, %wh : tensor<1x2xf16>, tensor<2x64xf16>) outs(%ah : tensor<1x64xf16>) {
  ^bb0(%i: f16, %v: f16, %o: f16):
    %p = arith.mulf %i, %v : f16
    %s = arith.addf %o, %p : f16
    linalg.yield %s : f16
  } -> tensor<1x64xf16>
  return %r8, %r48, %r32, %rb, %rh : tensor<8x64xf32>, tensor<1x48xf32>, tensor<1x32xf32>, tensor<1x64xf32>, tensor<1x64xf16>
}

// -----

// A splat weight is packed too (no blob to copy).
// CHECK-LABEL: func.func @splat
// CHECK: arith.constant dense<1.500000e+00> : tensor<2x2x32xf32>
// CHECK: tensor.collapse_shape
#a = affine_map<(m, n, k) -> (m, k)>
#b = affine_map<(m, n, k) -> (k, n)>
#c = affine_map<(m, n, k) -> (m, n)>
func.func @splat(%x: tensor<1x2xf32>) -> tensor<1x64xf32> {
  %zero = arith.constant 0.0 : f32
  %w = arith.constant dense<1.5> : tensor<2x64xf32>
  %e = tensor.empty() : tensor<1x64xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<1x64xf32>) -> tensor<1x64xf32>
  %r = linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : tensor<1x2xf32>, tensor<2x64xf32>) outs(%acc : tensor<1x64xf32>) {
  ^bb0(%i: f32, %v: f32, %o: f32):
    %p = arith.mulf %i, %v : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  } -> tensor<1x64xf32>
  return %r : tensor<1x64xf32>
}
