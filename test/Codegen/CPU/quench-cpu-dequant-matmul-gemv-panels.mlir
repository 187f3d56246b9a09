// RUN: quench-opt %s --quench-cpu-dequant-matmul="vector-bits=512 code-lookup=1 int16-dot=1" --cse | FileCheck %s
// RUN: quench-opt %s --quench-cpu-dequant-matmul="vector-bits=256 int16-dot=1" --cse | FileCheck %s --check-prefix=AVX2

// One-row tiles of several panels (int16 form; docs/lowering.md, "One-row
// tiles of several panels"). A product with a dynamic row count (a
// decoder's prefill and decode in one function) keeps its panels of 32
// features (2 vectors) and, under scf.if rows == 1, sweeps each task's 128
// columns in tiles of 8 vectors: 4 panels side by side (panel p, p + 1,
// p + 2, p + 3, each read at columns 0 and 16), 16 int32 partial sums per
// word step and 8 f32 accumulators per block; the 32 remaining columns of
// the second task (N = 160) take the usual tiles. Rows other than one take
// the tiles of before (else branch).
// CHECK-LABEL: func.func @gemv4_rows
// CHECK-DAG: %[[W:.*]] = arith.constant dense<623191333> : tensor<5x2x4x32xi32>
// CHECK-DAG: %[[S:.*]] = arith.constant dense<5.000000e-01> : tensor<5x2x32xf16>
// CHECK: scf.forall
// CHECK: %[[ONE:.*]] = arith.cmpi eq, %[[ROWS:.*]], %c1 : index
// CHECK: scf.if %[[ONE]]
// CHECK: scf.for %[[COL:.*]] = %c0 to %{{.*}} step %c128
// CHECK: %[[P0:.*]] = arith.divui %{{.*}}, %c32 : index
// CHECK: %[[C0:.*]] = arith.remui %{{.*}}, %c32 : index
// CHECK: %[[C16:.*]] = arith.addi %[[C0]], %c16 : index
// CHECK: %[[P1:.*]] = arith.addi %[[P0]], %c1 : index
// CHECK: %[[P2:.*]] = arith.addi %[[P0]], %c2 : index
// CHECK: %[[P3:.*]] = arith.addi %[[P0]], %c3 : index
// CHECK: scf.for %[[B:.*]] = %c0 to %c2 step %c1 {{.*}} -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// CHECK: scf.for %[[J:.*]] = %c0 to %c4 step %c1 {{.*}} -> (vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>)
// CHECK: vector.transfer_read %[[W]][%[[P0]], %[[B]], %[[J]], %[[C0]]]
// CHECK-COUNT-4: func.call @llvm.x86.avx512.vpdpbusd.512
// CHECK: vector.transfer_read %[[W]][%[[P0]], %[[B]], %[[J]], %[[C16]]]
// CHECK: vector.transfer_read %[[W]][%[[P1]], %[[B]], %[[J]], %[[C0]]]
// CHECK: vector.transfer_read %[[W]][%[[P1]], %[[B]], %[[J]], %[[C16]]]
// CHECK: vector.transfer_read %[[W]][%[[P2]], %[[B]], %[[J]], %[[C0]]]
// CHECK: vector.transfer_read %[[W]][%[[P2]], %[[B]], %[[J]], %[[C16]]]
// CHECK: vector.transfer_read %[[W]][%[[P3]], %[[B]], %[[J]], %[[C0]]]
// CHECK: vector.transfer_read %[[W]][%[[P3]], %[[B]], %[[J]], %[[C16]]]
// CHECK-COUNT-4: func.call @llvm.x86.avx512.vpdpbusd.512
// CHECK: scf.yield
// CHECK: vector.transfer_read %[[S]][%[[P0]], %[[B]], %[[C0]]]
// CHECK: vector.transfer_read %[[S]][%[[P3]], %[[B]], %[[C16]]]
// The rest of the task after the wide tiles: panels of 32 (2 vectors).
// CHECK: scf.for %{{.*}} step %c32
// CHECK: scf.for %{{.*}} -> (vector<16xf32>, vector<16xf32>)
// CHECK: } else {
// CHECK: scf.for %{{.*}} = %c0 to %{{.*}} step %c32
// 256 bits: panels of 8 features (1 vector), one-row tiles of 4 of them.
// AVX2-LABEL: func.func @gemv4_rows
// AVX2: scf.if
// AVX2: scf.for %{{.*}} = %c0 to %{{.*}} step %c32
// AVX2: scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
#x = affine_map<(r, b, j, h, n) -> (r, b, j, h)>
#q = affine_map<(r, b, j, h, n) -> (b, j, n)>
#s = affine_map<(r, b, j, h, n) -> (b, n)>
#y = affine_map<(r, b, j, h, n) -> (r, n)>
func.func @gemv4_rows(%x: tensor<?x2x16x2xf32>, %acc: tensor<?x160xf32>) -> tensor<?x160xf32> {
  %c8_i32 = arith.constant 8 : i32
  %c15_i32 = arith.constant 15 : i32
  %c4_i32 = arith.constant 4 : i32
  %codes = arith.constant dense<37> : tensor<2x16x160xi8>
  %scales = arith.constant dense<0.5> : tensor<2x160xf16>
  %r = linalg.generic {indexing_maps = [#x, #q, #s, #y],
                       iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]}
      ins(%x, %codes, %scales : tensor<?x2x16x2xf32>, tensor<2x16x160xi8>, tensor<2x160xf16>)
      outs(%acc : tensor<?x160xf32>) attrs = {quench.dequant_matmul} {
  ^bb0(%in: f32, %byte: i8, %scale: f16, %out: f32):
    %0 = arith.extui %byte : i8 to i32
    %1 = linalg.index 3 : index
    %2 = arith.index_castui %1 : index to i32
    %3 = arith.muli %2, %c4_i32 : i32
    %4 = arith.shrui %0, %3 : i32
    %5 = arith.andi %4, %c15_i32 : i32
    %6 = arith.extf %scale : f16 to f32
    %7 = arith.subi %5, %c8_i32 : i32
    %8 = arith.sitofp %7 : i32 to f32
    %9 = arith.mulf %8, %6 : f32
    %10 = arith.mulf %in, %9 : f32
    %11 = arith.addf %out, %10 : f32
    linalg.yield %11 : f32
  } -> tensor<?x160xf32>
  return %r : tensor<?x160xf32>
}

// A static single row (8-bit codes, one group of 64): panels of 64
// features (4 vectors) and no run-time branch: every full task is one tile
// of 8 vectors from 2 panels.
// CHECK-LABEL: func.func @gemv8_one
// CHECK-DAG: %[[W8:.*]] = arith.constant dense<623191333> : tensor<4x1x16x64xi32>
// CHECK: scf.forall
// CHECK-NOT: scf.if
// CHECK: scf.for %{{.*}} = %c0 to %{{.*}} step %c128
// CHECK: %[[Q0:.*]] = arith.divui %{{.*}}, %c64 : index
// CHECK: %[[Q1:.*]] = arith.addi %[[Q0]], %c1 : index
// CHECK: scf.for {{.*}} -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// CHECK: vector.transfer_read %[[W8]][%[[Q0]],
// CHECK-COUNT-2: func.call @llvm.x86.avx512.vpdpbusd.512
// CHECK: vector.transfer_read %[[W8]][%[[Q1]],
func.func @gemv8_one(%x: tensor<1x1x64x1xf32>, %acc: tensor<1x256xf32>) -> tensor<1x256xf32> {
  %c128_i32 = arith.constant 128 : i32
  %codes = arith.constant dense<37> : tensor<1x64x256xi8>
  %scales = arith.constant dense<0.5> : tensor<1x256xf16>
  %r = linalg.generic {indexing_maps = [#x, #q, #s, #y],
                       iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]}
      ins(%x, %codes, %scales : tensor<1x1x64x1xf32>, tensor<1x64x256xi8>, tensor<1x256xf16>)
      outs(%acc : tensor<1x256xf32>) attrs = {quench.dequant_matmul} {
  ^bb0(%in: f32, %byte: i8, %scale: f16, %out: f32):
    %0 = arith.extui %byte : i8 to i32
    %6 = arith.extf %scale : f16 to f32
    %7 = arith.subi %0, %c128_i32 : i32
    %8 = arith.sitofp %7 : i32 to f32
    %9 = arith.mulf %8, %6 : f32
    %10 = arith.mulf %in, %9 : f32
    %11 = arith.addf %out, %10 : f32
    linalg.yield %11 : f32
  } -> tensor<1x256xf32>
  return %r : tensor<1x256xf32>
}
