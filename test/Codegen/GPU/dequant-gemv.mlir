// RUN: quench-opt %s --quench-gpu-dequant-gemv --split-input-file | FileCheck %s
// RUN: not quench-opt %s --quench-gpu-dequant-gemv=max-rows=0 --split-input-file 2>&1 >/dev/null | FileCheck %s --check-prefix=BAD

// BAD: max-rows must be positive and row-tile in [1, 16]

#x = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3)>
#w = affine_map<(d0, d1, d2, d3, d4) -> (d1, d2, d4)>
#s = affine_map<(d0, d1, d2, d3, d4) -> (d1, d4)>
#o = affine_map<(d0, d1, d2, d3, d4) -> (d0, d4)>

// 4-bit codes, one row (decode), N = 48 (three chunks of 16 features),
// K = 64 in two groups of 32: one launch of 3 threads (no K split: the
// partial sums would cost more than the codes), which reads 16 bytes of
// codes per row (one aligned load, as 4 words), dequantizes them with
// shifts, masks and the 2^23 float trick (0x4B000000 = 1258291200), and
// adds its 16 sums to the output. The constants' globals promise 16-byte
// alignment.
// CHECK: memref.global "private" constant @codes4 : memref<2x16x48xi8> = dense<17> {alignment = 16 : i64}
// CHECK: memref.global "private" constant @scales4 : memref<2x48xf16> = dense<1.000000e+00> {alignment = 64 : i64}
// CHECK-LABEL: func.func @w4_gemv(
// CHECK-NOT: linalg.generic
// CHECK-NOT: gpu.alloc
// CHECK: gpu.launch blocks(%{{.*}}, %[[BY:.*]], %{{.*}}) in (%{{.*}} = %c1{{.*}}, %{{.*}} = %{{.*}}, %{{.*}} = %c1{{.*}}) threads(%{{.*}}) in (%{{.*}} = %c32
// CHECK: scf.for %[[B:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args({{.*}}) -> (vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>)
// CHECK: vector.load %{{.*}}[%[[B]], %{{.*}}] {alignment = 16 : i64} : memref<2x48xf16>, vector<16xf16>
// CHECK: vector.shuffle %{{.*}}, %{{.*}} [0, 4, 8, 12] : vector<16xf32>, vector<16xf32>
// CHECK: scf.for %[[J:.*]] = %{{.*}} to %{{.*}} step
// CHECK: %[[BYTES:.*]] = vector.load %{{.*}}[%[[B]], %[[J]], %{{.*}}] {alignment = 16 : i64} : memref<2x16x48xi8>, vector<16xi8>
// CHECK: %[[WORDS:.*]] = vector.bitcast %[[BYTES]] : vector<16xi8> to vector<4xi32>
// CHECK: memref.load %{{.*}} : memref<1x2x16x2xf32>
// CHECK: arith.andi %[[WORDS]], %{{.*}} : vector<4xi32>
// CHECK: arith.ori %{{.*}}, %{{.*}} : vector<4xi32>
// CHECK: arith.bitcast %{{.*}} : vector<4xi32> to vector<4xf32>
// CHECK: arith.subf
// CHECK: arith.mulf
// CHECK: vector.fma
// CHECK: arith.shrui %[[WORDS]]
// CHECK: memref.load %{{.*}} : memref<1x48xf32>
// CHECK: memref.store %{{.*}} : memref<1x48xf32>
// CHECK: gpu.terminator
// CHECK-NOT: gpu.launch
// CHECK: return
memref.global "private" constant @codes4 : memref<2x16x48xi8> = dense<17>
memref.global "private" constant @scales4 : memref<2x48xf16> = dense<1.0> {alignment = 64 : i64}
func.func @w4_gemv(%x: memref<1x2x16x2xf32>, %out: memref<1x48xf32>) {
  %w = memref.get_global @codes4 : memref<2x16x48xi8>
  %s = memref.get_global @scales4 : memref<2x48xf16>
  linalg.generic {indexing_maps = [#x, #w, #s, #o], iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]} ins(%x, %w, %s : memref<1x2x16x2xf32>, memref<2x16x48xi8>, memref<2x48xf16>) outs(%out : memref<1x48xf32>) attrs = {quench.dequant_matmul} {
  ^bb0(%a: f32, %q: i8, %sc: f16, %acc: f32):
    linalg.yield %acc : f32
  }
  return
}

// -----

#x = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3)>
#w = affine_map<(d0, d1, d2, d3, d4) -> (d1, d2, d4)>
#s = affine_map<(d0, d1, d2, d3, d4) -> (d1, d4)>
#o = affine_map<(d0, d1, d2, d3, d4) -> (d0, d4)>

// 8-bit codes per channel (one group of 1024 rows), 16 features, 2 rows,
// zero points: K is split in 8 parts of 128 rows (inside the group); the
// partial sums go to a device scratch buffer [splits, M, N] (one aligned
// vector store per row), a second launch (one thread per output) adds them
// to the output, and the scratch buffer is freed.
// CHECK-LABEL: func.func @w8_split(
// CHECK: %[[SCRATCH:.*]] = gpu.alloc  () : memref<8x2x16xf32>
// CHECK: gpu.launch
// CHECK: vector.load %{{.*}} {alignment = 16 : i64} : memref<1x16xi8>, vector<16xi8>
// CHECK: vector.load %{{.*}} {alignment = 16 : i64} : memref<1x1024x16xi8>, vector<16xi8>
// CHECK: vector.store %{{.*}}, %[[SCRATCH]][{{.*}}] {alignment = 16 : i64} : memref<8x2x16xf32>, vector<16xf32>
// CHECK: } {quench.kernel = "dequant_gemv"}
// CHECK: gpu.launch
// CHECK: scf.for
// CHECK: memref.load %[[SCRATCH]]
// CHECK: } {quench.kernel = "dequant_gemv_reduce"}
// CHECK: gpu.dealloc  %[[SCRATCH]]
func.func @w8_split(%x: memref<2x1x1024x1xf32>, %out: memref<2x16xf32>) {
  %w = gpu.alloc () : memref<1x1024x16xi8>
  %s = gpu.alloc () : memref<1x16xf32>
  %z = gpu.alloc () : memref<1x16xi8>
  linalg.generic {indexing_maps = [#x, #w, #s, #s, #o], iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]} ins(%x, %w, %s, %z : memref<2x1x1024x1xf32>, memref<1x1024x16xi8>, memref<1x16xf32>, memref<1x16xi8>) outs(%out : memref<2x16xf32>) attrs = {quench.dequant_matmul} {
  ^bb0(%a: f32, %q: i8, %sc: f32, %zp: i8, %acc: f32):
    linalg.yield %acc : f32
  }
  return
}

// -----

#x = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3)>
#w = affine_map<(d0, d1, d2, d3, d4) -> (d1, d2, d4)>
#s = affine_map<(d0, d1, d2, d3, d4) -> (d1, d4)>
#o = affine_map<(d0, d1, d2, d3, d4) -> (d0, d4)>

// A dynamic row count: tiles of 4 rows (row-tile) on grid y, ceil(M / 4)
// of them (at least one); rows past M are clamped for loads and not
// stored.
// CHECK-LABEL: func.func @w2_dynamic(
// CHECK: %[[M:.*]] = memref.dim %{{.*}}, %c0
// CHECK: %[[TILES:.*]] = arith.ceildivui %{{.*}}, %c4
// CHECK: %[[GY:.*]] = arith.maxui %[[TILES]], %c1
// CHECK: gpu.launch blocks(%{{.*}}, %[[BY:.*]], %{{.*}}) in (%{{.*}} = %{{.*}}, %{{.*}} = %[[GY]],
// CHECK: arith.muli %[[BY]], %c4
// CHECK-COUNT-4: arith.minui
// CHECK: vector.load %{{.*}} : memref<2x16x32xi8>, vector<16xi8>
// CHECK: arith.shrui %{{.*}}, %{{.*}} : vector<4xi32>
// CHECK: scf.if
// CHECK: memref.store %{{.*}} : memref<?x32xf32>
func.func @w2_dynamic(%x: memref<?x2x16x4xf32>, %out: memref<?x32xf32>) {
  %w = gpu.alloc () : memref<2x16x32xi8>
  %s = gpu.alloc () : memref<2x32xf16>
  linalg.generic {indexing_maps = [#x, #w, #s, #o], iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]} ins(%x, %w, %s : memref<?x2x16x4xf32>, memref<2x16x32xi8>, memref<2x32xf16>) outs(%out : memref<?x32xf32>) attrs = {quench.dequant_matmul} {
  ^bb0(%a: f32, %q: i8, %sc: f16, %acc: f32):
    linalg.yield %acc : f32
  }
  return
}

// -----

#x = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3)>
#w = affine_map<(d0, d1, d2, d3, d4) -> (d1, d2, d4)>
#s = affine_map<(d0, d1, d2, d3, d4) -> (d1, d4)>
#o = affine_map<(d0, d1, d2, d3, d4) -> (d0, d4)>

// Fallbacks to the generic kernels, left as they are: N = 40 (not whole
// 16-byte chunks), 9 static rows (above max-rows), codes in a host buffer
// (a function argument).
// CHECK-LABEL: func.func @fallbacks(
// CHECK-NOT: gpu.launch
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]} ins(%{{.*}} : memref<1x2x16x2xf32>, memref<2x16x40xi8>, memref<2x40xf16>)
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]} ins(%{{.*}} : memref<9x2x16x2xf32>, memref<2x16x48xi8>, memref<2x48xf16>)
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]} ins(%{{.*}} : memref<1x2x16x2xf32>, memref<2x16x48xi8>, memref<2x48xf16>)
// CHECK-NOT: gpu.launch
func.func @fallbacks(%x: memref<1x2x16x2xf32>, %x9: memref<9x2x16x2xf32>,
                     %host: memref<2x16x48xi8>, %o40: memref<1x40xf32>,
                     %o9: memref<9x48xf32>, %o: memref<1x48xf32>) {
  %w40 = gpu.alloc () : memref<2x16x40xi8>
  %s40 = gpu.alloc () : memref<2x40xf16>
  %w = gpu.alloc () : memref<2x16x48xi8>
  %s = gpu.alloc () : memref<2x48xf16>
  linalg.generic {indexing_maps = [#x, #w, #s, #o], iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]} ins(%x, %w40, %s40 : memref<1x2x16x2xf32>, memref<2x16x40xi8>, memref<2x40xf16>) outs(%o40 : memref<1x40xf32>) attrs = {quench.dequant_matmul} {
  ^bb0(%a: f32, %q: i8, %sc: f16, %acc: f32):
    linalg.yield %acc : f32
  }
  linalg.generic {indexing_maps = [#x, #w, #s, #o], iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]} ins(%x9, %w, %s : memref<9x2x16x2xf32>, memref<2x16x48xi8>, memref<2x48xf16>) outs(%o9 : memref<9x48xf32>) attrs = {quench.dequant_matmul} {
  ^bb0(%a: f32, %q: i8, %sc: f16, %acc: f32):
    linalg.yield %acc : f32
  }
  linalg.generic {indexing_maps = [#x, #w, #s, #o], iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]} ins(%x, %host, %s : memref<1x2x16x2xf32>, memref<2x16x48xi8>, memref<2x48xf16>) outs(%o : memref<1x48xf32>) attrs = {quench.dequant_matmul} {
  ^bb0(%a: f32, %q: i8, %sc: f16, %acc: f32):
    linalg.yield %acc : f32
  }
  return
}
