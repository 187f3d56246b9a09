// RUN: quench-opt %s --quench-gpu-mma-sp-gemm --canonicalize --split-input-file | FileCheck %s
// RUN: quench-opt %s --quench-gpu-mma-sp-gemm=emulate=1 --canonicalize --split-input-file | FileCheck %s --check-prefix=EMU

#x = affine_map<(d0, d1, d2, d3, d4) -> (d0, d2, d4)>
#w = affine_map<(d0, d1, d2, d3, d4) -> (d1, d2, d3)>
#y = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1)>

// An f16 2:4 sparse linear (the specification generic of
// quench.sparse_linear on device buffers): x [?, 32] viewed [?, 8, 4],
// values and indices [32, 16, 2]. One launch of ceil(32 / 64) x ceil(rows /
// 32) blocks of 128 threads; per K step (two: K = 64) each lane loads 4
// 32-bit registers of values, one metadata word (2 x i16) and 4 registers
// per n8 tile of x, then 4 mma.sp m16n8k32 share the A fragment; the
// epilogue adds in-range elements to the output.
// The metadata constant: 2 tiles x 2 steps x 32 lanes x 2 halves (a resource blob: its words are checked by
// unittests/Quant/SparseStorageTest.cpp); row 0
// (even: indices 0, 1 = nibble 0x4 per group) in the low half of lane 0,
// row 8 (even) in its high half: 0x4444, 0x4444; lane 4 (rows 1 and 9,
// odd: indices 1, 3 = nibble 0xD): 0xDDDD = -8739 as i16.
// CHECK: memref.global "private" constant @__quench_mma_sp_metadata : memref<256xi16> = dense_resource<quench_mma_sp_metadata> {alignment = 16 : i64}
// CHECK-LABEL: func.func @f16(
// CHECK-NOT: linalg.generic
// CHECK: %[[META:.*]] = memref.get_global @__quench_mma_sp_metadata
// CHECK: gpu.launch blocks({{.*}}) in (%{{.*}} = %c1{{.*}}, %{{.*}} = %{{.*}}, %{{.*}} = %c1{{.*}}) threads({{.*}}) in (%{{.*}} = %c128{{.*}}, %{{.*}} = %c1{{.*}}, %{{.*}} = %c1{{.*}})
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>)
// CHECK-COUNT-4: vector.load %{{.*}} {alignment = 4 : i64} : memref<1024xf16>, vector<2xf16>
// CHECK: vector.load %[[META]][%{{.*}}] {alignment = 4 : i64} : memref<256xi16>, vector<2xi16>
// CHECK: nvgpu.mma.sp.sync(%{{.*}}, %{{.*}}, %{{.*}}) metadata(%{{.*}}) {mmaShape = [16, 8, 32]} : (vector<4x2xf16>, vector<4x2xf16>, vector<2x2xf32>) -> vector<2x2xf32>
// CHECK-COUNT-3: nvgpu.mma.sp.sync
// CHECK: scf.if
// CHECK: memref.load
// CHECK: arith.addf
// CHECK: memref.store

// The emulation: one thread per block, loops over warps and lanes, the
// lanes' registers in buffers, mma.sp by its definition (no nvgpu).
// EMU-LABEL: func.func @f16(
// EMU-NOT: nvgpu.
// EMU: gpu.launch {{.*}} threads({{.*}}) in (%{{.*}} = %c1{{.*}}, %{{.*}} = %c1{{.*}}, %{{.*}} = %c1{{.*}})
// EMU: memref.alloc() : memref<32x4x2xf16>
// EMU: memref.alloc() : memref<32x4x4x2xf16>
// EMU: memref.alloc() : memref<32x2xi16>
// EMU: memref.alloc() : memref<32x16xf32>
// EMU: arith.shrui
// EMU: arith.extf
// EMU: arith.mulf
memref.global "private" constant @v : memref<32x32xf16> = dense<1.5>
memref.global "private" constant @i : memref<32x16x2xi8> = dense<"0x00010001000100010001000100010001000100010001000100010001000100010103010301030103010301030103010301030103010301030103010301030103000100010001000100010001000100010001000100010001000100010001000101030103010301030103010301030103010301030103010301030103010301030001000100010001000100010001000100010001000100010001000100010001010301030103010301030103010301030103010301030103010301030103010300010001000100010001000100010001000100010001000100010001000100010103010301030103010301030103010301030103010301030103010301030103000100010001000100010001000100010001000100010001000100010001000101030103010301030103010301030103010301030103010301030103010301030001000100010001000100010001000100010001000100010001000100010001010301030103010301030103010301030103010301030103010301030103010300010001000100010001000100010001000100010001000100010001000100010103010301030103010301030103010301030103010301030103010301030103000100010001000100010001000100010001000100010001000100010001000101030103010301030103010301030103010301030103010301030103010301030001000100010001000100010001000100010001000100010001000100010001010301030103010301030103010301030103010301030103010301030103010300010001000100010001000100010001000100010001000100010001000100010103010301030103010301030103010301030103010301030103010301030103000100010001000100010001000100010001000100010001000100010001000101030103010301030103010301030103010301030103010301030103010301030001000100010001000100010001000100010001000100010001000100010001010301030103010301030103010301030103010301030103010301030103010300010001000100010001000100010001000100010001000100010001000100010103010301030103010301030103010301030103010301030103010301030103000100010001000100010001000100010001000100010001000100010001000101030103010301030103010301030103010301030103010301030103010301030001000100010001000100010001000100010001000100010001000100010001010301030103010301030103010301030103010301030103010301030103010300010001000100010001000100010001000100010001000100010001000100010103010301030103010301030103010301030103010301030103010301030103">
func.func @f16(%n: index) -> memref<?x32xf32> {
  %cst = arith.constant 0.000000e+00 : f32
  %x = gpu.alloc (%n) : memref<?x64xf16>
  %xe = memref.expand_shape %x [[0], [1, 2]] output_shape [%n, 16, 4] : memref<?x64xf16> into memref<?x16x4xf16>
  %v = memref.get_global @v : memref<32x32xf16>
  %ve = memref.expand_shape %v [[0], [1, 2]] output_shape [32, 16, 2] : memref<32x32xf16> into memref<32x16x2xf16>
  %i = memref.get_global @i : memref<32x16x2xi8>
  %y = gpu.alloc (%n) : memref<?x32xf32>
  linalg.generic {indexing_maps = [#x, #w, #w, #y], iterator_types = ["parallel", "parallel", "reduction", "reduction", "reduction"]} ins(%xe, %ve, %i : memref<?x16x4xf16>, memref<32x16x2xf16>, memref<32x16x2xi8>) outs(%y : memref<?x32xf32>) attrs = {quench.sparse_matmul} {
  ^bb0(%a: f16, %b: f16, %c: i8, %out: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = linalg.index 4 : index
    %3 = arith.index_cast %2 : index to i8
    %4 = arith.cmpi eq, %c, %3 : i8
    %5 = arith.mulf %0, %1 : f32
    %6 = arith.select %4, %5, %cst : f32
    %7 = arith.addf %out, %6 : f32
    linalg.yield %7 : f32
  }
  return %y : memref<?x32xf32>
}

// -----

#x = affine_map<(d0, d1, d2, d3, d4) -> (d0, d2, d4)>
#w = affine_map<(d0, d1, d2, d3, d4) -> (d1, d2, d3)>
#y = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1)>

// int8 (W8A8's contraction, i32 sums): m16n8k64 with 32-bit registers of
// 4 int8; K = 128: 2 steps.
// CHECK-LABEL: func.func @i8(
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (vector<2x2xi32>, vector<2x2xi32>, vector<2x2xi32>, vector<2x2xi32>)
// CHECK: vector.load {{.*}} : memref<1024xi8>, vector<4xi8>
// CHECK: nvgpu.mma.sp.sync(%{{.*}}, %{{.*}}, %{{.*}}) metadata(%{{.*}}) {mmaShape = [16, 8, 64]} : (vector<4x4xi8>, vector<4x4xi8>, vector<2x2xi32>) -> vector<2x2xi32>
// CHECK: arith.addi
// EMU-LABEL: func.func @i8(
// EMU-NOT: nvgpu.
// EMU: memref.alloc() : memref<32x4x4xi8>
// EMU: arith.extsi
// EMU: arith.muli
memref.global "private" constant @v8 : memref<16x64xi8> = dense<3>
memref.global "private" constant @i8idx : memref<16x32x2xi8> = dense<"0x00010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001">
func.func @i8() -> memref<40x16xi32> {
  %c0 = arith.constant 0 : i32
  %x = gpu.alloc () : memref<40x128xi8>
  %xe = memref.expand_shape %x [[0], [1, 2]] output_shape [40, 32, 4] : memref<40x128xi8> into memref<40x32x4xi8>
  %v = memref.get_global @v8 : memref<16x64xi8>
  %ve = memref.expand_shape %v [[0], [1, 2]] output_shape [16, 32, 2] : memref<16x64xi8> into memref<16x32x2xi8>
  %i = memref.get_global @i8idx : memref<16x32x2xi8>
  %y = gpu.alloc () : memref<40x16xi32>
  linalg.generic {indexing_maps = [#x, #w, #w, #y], iterator_types = ["parallel", "parallel", "reduction", "reduction", "reduction"]} ins(%xe, %ve, %i : memref<40x32x4xi8>, memref<16x32x2xi8>, memref<16x32x2xi8>) outs(%y : memref<40x16xi32>) attrs = {quench.sparse_matmul} {
  ^bb0(%a: i8, %b: i8, %c: i8, %out: i32):
    %0 = arith.extsi %a : i8 to i32
    %1 = arith.extsi %b : i8 to i32
    %2 = linalg.index 4 : index
    %3 = arith.index_cast %2 : index to i8
    %4 = arith.cmpi eq, %c, %3 : i8
    %5 = arith.muli %0, %1 : i32
    %6 = arith.select %4, %5, %c0 : i32
    %7 = arith.addi %out, %6 : i32
    linalg.yield %7 : i32
  }
  return %y : memref<40x16xi32>
}

// -----

#x = affine_map<(d0, d1, d2, d3, d4) -> (d0, d2, d4)>
#w = affine_map<(d0, d1, d2, d3, d4) -> (d1, d2, d3)>
#y = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1)>

// Fallbacks (generic kernels): N not a multiple of 16 (8 features), and an
// f32 layer (no f32 sparse tensor-core form).
// CHECK-LABEL: func.func @fallbacks(
// CHECK-NOT: gpu.launch
// CHECK-COUNT-2: linalg.generic
memref.global "private" constant @v8x : memref<8x16xf16> = dense<1.5>
memref.global "private" constant @i8x : memref<8x8x2xi8> = dense<"0x0001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001">
memref.global "private" constant @vf : memref<16x16xf32> = dense<1.5>
memref.global "private" constant @if : memref<16x8x2xi8> = dense<"0x00010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001000100010001">
func.func @fallbacks() {
  %cst = arith.constant 0.000000e+00 : f32
  %x = gpu.alloc () : memref<4x32xf16>
  %xe = memref.expand_shape %x [[0], [1, 2]] output_shape [4, 8, 4] : memref<4x32xf16> into memref<4x8x4xf16>
  %v = memref.get_global @v8x : memref<8x16xf16>
  %ve = memref.expand_shape %v [[0], [1, 2]] output_shape [8, 8, 2] : memref<8x16xf16> into memref<8x8x2xf16>
  %i = memref.get_global @i8x : memref<8x8x2xi8>
  %y = gpu.alloc () : memref<4x8xf32>
  linalg.generic {indexing_maps = [#x, #w, #w, #y], iterator_types = ["parallel", "parallel", "reduction", "reduction", "reduction"]} ins(%xe, %ve, %i : memref<4x8x4xf16>, memref<8x8x2xf16>, memref<8x8x2xi8>) outs(%y : memref<4x8xf32>) attrs = {quench.sparse_matmul} {
  ^bb0(%a: f16, %b: f16, %c: i8, %out: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = linalg.index 4 : index
    %3 = arith.index_cast %2 : index to i8
    %4 = arith.cmpi eq, %c, %3 : i8
    %5 = arith.mulf %0, %1 : f32
    %6 = arith.select %4, %5, %cst : f32
    %7 = arith.addf %out, %6 : f32
    linalg.yield %7 : f32
  }
  %xf = gpu.alloc () : memref<4x32xf32>
  %xfe = memref.expand_shape %xf [[0], [1, 2]] output_shape [4, 8, 4] : memref<4x32xf32> into memref<4x8x4xf32>
  %vf = memref.get_global @vf : memref<16x16xf32>
  %vfe = memref.expand_shape %vf [[0], [1, 2]] output_shape [16, 8, 2] : memref<16x16xf32> into memref<16x8x2xf32>
  %if = memref.get_global @if : memref<16x8x2xi8>
  %yf = gpu.alloc () : memref<4x16xf32>
  linalg.generic {indexing_maps = [#x, #w, #w, #y], iterator_types = ["parallel", "parallel", "reduction", "reduction", "reduction"]} ins(%xfe, %vfe, %if : memref<4x8x4xf32>, memref<16x8x2xf32>, memref<16x8x2xi8>) outs(%yf : memref<4x16xf32>) attrs = {quench.sparse_matmul} {
  ^bb0(%a: f32, %b: f32, %c: i8, %out: f32):
    %2 = linalg.index 4 : index
    %3 = arith.index_cast %2 : index to i8
    %4 = arith.cmpi eq, %c, %3 : i8
    %5 = arith.mulf %a, %b : f32
    %6 = arith.select %4, %5, %cst : f32
    %7 = arith.addf %out, %6 : f32
    linalg.yield %7 : f32
  }
  return
}
