// RUN: quench-opt %s --split-input-file --quench-cpu-tile-and-vectorize | FileCheck %s
// RUN: quench-opt %s --split-input-file --quench-cpu-tile-and-vectorize=vector-bits=512 | FileCheck %s --check-prefix=AVX512

// The tile pass alone (test/Target/CPU/quench-cpu-codegen.mlir checks it in
// the whole codegen stage, with epilogue fusion and the smaller passes).

// A small matmul: no tasks (one cache tile), register tiles ordered N, M,
// K of 6 rows x 2 vectors of 8 columns at 256 bits (the default), 8 x 2
// vectors of 16 at 512; the fill is an elementwise tile of 4 vectors.
// CHECK-LABEL: func.func @matmul
// CHECK-NOT: scf.forall
// CHECK: vector.transfer_write {{.*}} : vector<1x32xf32>, tensor<1x32xf32>
// CHECK: scf.for %{{.*}} = %c0 to %c64 step %c16
// CHECK: scf.for %{{.*}} = %c0 to %c24 step %c6
// CHECK: scf.for %{{.*}} = %c0 to %c32 step %c1
// CHECK: vector.contract {{.*}} : vector<6x1xf32>, vector<1x16xf32> into vector<6x16xf32>
// CHECK-NOT: linalg.
// AVX512-LABEL: func.func @matmul
// AVX512: scf.for %{{.*}} = %c0 to %c64 step %c32
// AVX512: scf.for %{{.*}} = %c0 to %c24 step %c8
// AVX512: vector.contract {{.*}} : vector<8x1xf32>, vector<1x32xf32> into vector<8x32xf32>
func.func @matmul(%a: tensor<24x32xf32>, %b: tensor<32x64xf32>) -> tensor<24x64xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<24x64xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<24x64xf32>) -> tensor<24x64xf32>
  %r = linalg.matmul ins(%a, %b : tensor<24x32xf32>, tensor<32x64xf32>)
                     outs(%f : tensor<24x64xf32>) -> tensor<24x64xf32>
  return %r : tensor<24x64xf32>
}

// -----

// 2^20 multiply-adds and more: scf.forall tasks of 48 rows and, cut along
// N into about 4 tasks, 128 columns.
// CHECK-LABEL: func.func @tasks
// CHECK: scf.forall ({{.*}}) = (0, 0) to (96, 512) step (48, 128)
// CHECK: vector.contract {{.*}} : vector<6x1xf32>, vector<1x16xf32> into vector<6x16xf32>
// CHECK: scf.forall.in_parallel
func.func @tasks(%a: tensor<96x64xf32>, %b: tensor<64x512xf32>,
                 %c: tensor<96x512xf32>) -> tensor<96x512xf32> {
  %r = linalg.matmul ins(%a, %b : tensor<96x64xf32>, tensor<64x512xf32>)
                     outs(%c : tensor<96x512xf32>) -> tensor<96x512xf32>
  return %r : tensor<96x512xf32>
}

// -----

// A generic whose body is out + a * b becomes linalg.contract first, so
// that it vectorizes to vector.contract (outer products).
// CHECK-LABEL: func.func @named
// CHECK: vector.contract {{.*}} : vector<6x1xf32>, vector<1x16xf32> into vector<6x16xf32>
// CHECK-NOT: vector.multi_reduction
#a = affine_map<(m, n, k) -> (m, k)>
#b = affine_map<(m, n, k) -> (k, n)>
#c = affine_map<(m, n, k) -> (m, n)>
func.func @named(%x: tensor<12x8xf32>, %w: tensor<8x16xf32>,
                 %acc: tensor<12x16xf32>) -> tensor<12x16xf32> {
  %r = linalg.generic {indexing_maps = [#a, #b, #c],
                       iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : tensor<12x8xf32>, tensor<8x16xf32>) outs(%acc : tensor<12x16xf32>) {
  ^bb0(%in: f32, %wt: f32, %out: f32):
    %p = arith.mulf %in, %wt : f32
    %s = arith.addf %out, %p : f32
    linalg.yield %s : f32
  } -> tensor<12x16xf32>
  return %r : tensor<12x16xf32>
}

// -----

// A dynamic innermost dim: tiles of 4 vectors, the partial last tile
// peeled off and masked; the main loop's tiles are static and unmasked.
// CHECK-LABEL: func.func @dynamic
// CHECK: scf.for
// CHECK: %[[MAIN:.*]] = scf.for {{.*}} step %c32
// CHECK: vector.transfer_read {{.*}} {in_bounds = [true, true]} : tensor<1x32xf32>, vector<1x32xf32>
// CHECK: math.exp {{.*}} : vector<1x32xf32>
// CHECK: scf.for {{.*}} step %c32 iter_args(%{{.*}} = %[[MAIN]])
// CHECK: %[[MASK:.*]] = vector.create_mask %c1, %{{.*}} : vector<1x32xi1>
// CHECK: vector.transfer_read {{.*}}, %[[MASK]] {{.*}} : tensor<1x?xf32>, vector<1x32xf32>
// CHECK: math.exp {{.*}} : vector<1x32xf32>
#id = affine_map<(d0, d1) -> (d0, d1)>
func.func @dynamic(%x: tensor<4x?xf32>) -> tensor<4x?xf32> {
  %c1 = arith.constant 1 : index
  %n = tensor.dim %x, %c1 : tensor<4x?xf32>
  %e = tensor.empty(%n) : tensor<4x?xf32>
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<4x?xf32>) outs(%e : tensor<4x?xf32>) {
  ^bb0(%a: f32, %o: f32):
    %y = math.exp %a : f32
    linalg.yield %y : f32
  } -> tensor<4x?xf32>
  return %r : tensor<4x?xf32>
}

// -----

// Sub-byte elements are not tiled (vector loads of bit-packed i1 would
// be wrong): the op stays linalg (loops later).
// CHECK-LABEL: func.func @bool
// CHECK-NOT: scf.for
// CHECK: linalg.generic
// CHECK: arith.xori {{.*}} : i1
#id = affine_map<(d0) -> (d0)>
func.func @bool(%x: tensor<64xi1>) -> tensor<64xi1> {
  %e = tensor.empty() : tensor<64xi1>
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel"]}
      ins(%x : tensor<64xi1>) outs(%e : tensor<64xi1>) {
  ^bb0(%a: i1, %o: i1):
    %t = arith.constant true
    %y = arith.xori %a, %t : i1
    linalg.yield %y : i1
  } -> tensor<64xi1>
  return %r : tensor<64xi1>
}

// -----

// An op the int8 kernel built already tiled (marked with its vector
// sizes) is vectorized as is, without loops.
// CHECK-LABEL: func.func @pretiled
// CHECK-NOT: scf.for
// CHECK: vector.transfer_read %arg0{{.*}} : tensor<1x16xi32>, vector<1x16xi32>
// CHECK: arith.sitofp {{.*}} : vector<1x16xi32> to vector<1x16xf32>
// CHECK-NOT: __quench_vector_sizes
#id = affine_map<(d0, d1) -> (d0, d1)>
func.func @pretiled(%x: tensor<1x16xi32>) -> tensor<1x16xf32> {
  %e = tensor.empty() : tensor<1x16xf32>
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<1x16xi32>) outs(%e : tensor<1x16xf32>)
      attrs = {__quench_vector_sizes = array<i64: 1, 16>} {
  ^bb0(%a: i32, %o: f32):
    %y = arith.sitofp %a : i32 to f32
    linalg.yield %y : f32
  } -> tensor<1x16xf32>
  return %r : tensor<1x16xf32>
}

// -----

// M known only at run time (a decoder's prefill and decode steps share the
// function): below 4 rows the contraction and its epilogue run row by row,
// each row a static M = 1 with the matrix-vector plan (K outermost, wide
// column tiles); otherwise the blocked plan with the fused epilogue.
// AVX512-LABEL: func.func @dynamic_rows
// AVX512: %[[FEW:.*]] = arith.cmpi ult, %[[M:.*]], %c4 : index
// AVX512: scf.if %[[FEW]] -> (tensor<?x512xf32>) {
// AVX512: scf.for %{{.*}} = %c0 to %[[M]] step %c1 iter_args({{.*}}) -> (tensor<?x512xf32>) {
// AVX512: scf.for %{{.*}} = %c0 to %c256 step %c8
// AVX512: vector.contract {{.*}} : vector<1x8xf32>, vector<8x128xf32> into vector<1x128xf32>
// AVX512: arith.addf {{.*}} : vector<1x64xf32>
// AVX512: tensor.insert_slice {{.*}} into %{{.*}}[%{{.*}}, 0] [1, 512] [1, 1] : tensor<1x512xf32> into tensor<?x512xf32>
// AVX512: } else {
// AVX512: scf.forall
// AVX512: vector.contract {{.*}} : vector<8x1xf32>, vector<1x32xf32> into vector<8x32xf32>
// AVX512: arith.addf {{.*}} : vector<1x32xf32>
func.func @dynamic_rows(%a: tensor<?x256xf32>, %b: tensor<256x512xf32>,
                        %bias: tensor<?x512xf32>) -> tensor<?x512xf32> {
  %zero = arith.constant 0.0 : f32
  %c0 = arith.constant 0 : index
  %m = tensor.dim %a, %c0 : tensor<?x256xf32>
  %e = tensor.empty(%m) : tensor<?x512xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<?x512xf32>) -> tensor<?x512xf32>
  %r = linalg.matmul ins(%a, %b : tensor<?x256xf32>, tensor<256x512xf32>)
                     outs(%f : tensor<?x512xf32>) -> tensor<?x512xf32>
  %e2 = tensor.empty(%m) : tensor<?x512xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>],
                       iterator_types = ["parallel", "parallel"]}
      ins(%r, %bias : tensor<?x512xf32>, tensor<?x512xf32>) outs(%e2 : tensor<?x512xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %t = arith.addf %x, %y : f32
    linalg.yield %t : f32
  } -> tensor<?x512xf32>
  return %s : tensor<?x512xf32>
}
