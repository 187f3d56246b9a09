// RUN: quench-opt %s --quench-gpu-mma-gemm --canonicalize --split-input-file | FileCheck %s
// RUN: quench-opt %s --quench-gpu-mma-gemm=emulate=1 --canonicalize --split-input-file | FileCheck %s --check-prefix=EMU
// RUN: not quench-opt %s --quench-gpu-mma-gemm=min-rows=-1 --split-input-file 2>&1 >/dev/null | FileCheck %s --check-prefix=BAD

// BAD: min-rows must not be negative

// f16 [100, 40] x [40, 72] into f32 (a linalg.matmul on device buffers):
// one launch of ceil(72/64) x ceil(100/64) blocks of 128 threads with the
// A and B stages in workgroup memory (3 x 64 x 40 and 3 x 32 x 72 halves);
// two K tiles requested before the loop (16-byte cp.async, zero-filled
// outside the matrix: src-size 8 or 0), then per K tile: wait until one
// group is pending at most, barrier, request tile kt + 2, and per 16 of K
// 2 ldmatrix.x4 of A, 2 transposed ldmatrix.x4 of B (stored [K, N]) and 8
// mma.sync m16n8k16 on loop-carried f32 accumulators; the epilogue adds
// each in-range pair to the output.
// CHECK-LABEL: func.func @kn(
// CHECK-NOT: linalg.matmul
// CHECK: %[[A1:.*]] = memref.collapse_shape %{{.*}} {{\[\[}}0, 1]] : memref<100x40xf16> into memref<4000xf16>
// CHECK: gpu.launch blocks(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %c2{{.*}}, %{{.*}} = %{{.*}}, %{{.*}} = %c1{{.*}}) threads(%[[TID:[^,]*]], %{{.*}}, %{{.*}}) in (%{{.*}} = %c128{{.*}}, %{{.*}} = %c1{{.*}}, %{{.*}} = %c1{{.*}}) workgroup(%[[AS:.*]] : memref<3x64x40xf16, #gpu.address_space<workgroup>>, %[[BS:.*]] : memref<3x32x72xf16, #gpu.address_space<workgroup>>)
// CHECK: %[[N8:.*]] = arith.select %{{.*}}, %c8{{.*}}, %c0
// CHECK: nvgpu.device_async_copy %[[A1]][%{{.*}}], %[[AS]][%{{.*}}, %{{.*}}, %{{.*}}], 8, %[[N8]] {bypassL1}
// CHECK: nvgpu.device_async_copy %{{.*}}, %[[BS]]
// CHECK: nvgpu.device_async_create_group
// CHECK: nvgpu.device_async_create_group
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>)
// CHECK: nvgpu.device_async_wait %{{.*}} {numGroups = 1 : i32}
// CHECK-NEXT: gpu.barrier
// CHECK: nvgpu.device_async_copy
// CHECK: nvgpu.device_async_create_group
// CHECK: nvgpu.ldmatrix %[[AS]][{{.*}}] {numTiles = 4 : i32, transpose = false} : memref<3x64x40xf16, #gpu.address_space<workgroup>> -> vector<4x2xf16>
// CHECK: nvgpu.ldmatrix %[[BS]][{{.*}}] {numTiles = 4 : i32, transpose = true} : memref<3x32x72xf16, #gpu.address_space<workgroup>> -> vector<4x2xf16>
// CHECK-COUNT-8: nvgpu.mma.sync({{.*}}) {mmaShape = [16, 8, 16]} : (vector<4x2xf16>, vector<2x2xf16>, vector<2x2xf32>) -> vector<2x2xf32>
// CHECK: nvgpu.ldmatrix
// CHECK-COUNT-8: nvgpu.mma.sync
// CHECK: scf.yield
// CHECK: nvgpu.device_async_wait %{{.*}} {numGroups = 0 : i32}
// CHECK: scf.if
// CHECK: memref.load %{{.*}} : memref<7200xf32>
// CHECK: arith.addf
// CHECK: memref.store %{{.*}} : memref<7200xf32>
// CHECK: gpu.terminator
// CHECK-NOT: gpu.launch
// CHECK: return

// The emulation: the same grid with one thread per block, the stages as
// ordinary buffers, the copies a loop over the 128 threads (masked 16-byte
// copies instead of cp.async); ldmatrix and mma.sync by their definitions,
// warp by warp, over a warp's fragment registers (A [32 lanes][2 m16
// tiles][4][2 halves], B [32][4 n8 tiles][2][2]).
// EMU-LABEL: func.func @kn(
// EMU-NOT: nvgpu.
// EMU: gpu.launch {{.*}} threads({{.*}}) in (%{{.*}} = %c1{{.*}}, %{{.*}} = %c1{{.*}}, %{{.*}} = %c1{{.*}})
// EMU: memref.alloc() : memref<3x64x40xf16>
// EMU: memref.alloc() : memref<3x32x72xf16>
// EMU: memref.alloc() : memref<128x32xf32>
// EMU: memref.alloc() : memref<32x2x4x2xf16>
// EMU: memref.alloc() : memref<32x4x2x2xf16>
// EMU: scf.for %{{.*}} = %c0{{.*}} to %c128
// EMU: scf.if
// EMU: vector.load %{{.*}} : memref<4000xf16>, vector<8xf16>
// EMU: vector.store %{{.*}} : memref<3x64x40xf16>, vector<8xf16>
// EMU: scf.for %[[W:.*]] = %c0{{.*}} to %c4
// EMU: scf.for %{{.*}} = %c0{{.*}} to %c32
// EMU: memref.load %{{.*}} : memref<3x64x40xf16>
// EMU: memref.store %{{.*}} : memref<32x2x4x2xf16>
// EMU-NOT: gpu.barrier
// EMU: memref.dealloc
// EMU: gpu.terminator
func.func @kn() -> memref<100x72xf32> {
  %a = gpu.alloc () : memref<100x40xf16>
  %b = gpu.alloc () : memref<40x72xf16>
  %c = gpu.alloc () : memref<100x72xf32>
  linalg.matmul ins(%a, %b : memref<100x40xf16>, memref<40x72xf16>) outs(%c : memref<100x72xf32>)
  gpu.dealloc %a : memref<100x40xf16>
  gpu.dealloc %b : memref<40x72xf16>
  return %c : memref<100x72xf32>
}

// -----

// A linear layer of an f16 model: x [2, ?, 48] times a constant weight
// [56, 48] stored [N, K]: the batch dims fold into a dynamic row count,
// B is read with untransposed ldmatrix ([N][K + 8] stages); the weight's
// global promises 16-byte alignment.
// CHECK: memref.global "private" constant @w : memref<56x48xf16> = dense<1.000000e+00> {alignment = 16 : i64}
// CHECK-LABEL: func.func @linear(
// CHECK: %[[ROWS:.*]] = arith.muli %arg0, %c2
// CHECK: arith.ceildivui %[[ROWS]], %c64
// CHECK: gpu.launch {{.*}} workgroup(%{{.*}} : memref<3x64x40xf16, #gpu.address_space<workgroup>>, %[[BS:.*]] : memref<3x64x40xf16, #gpu.address_space<workgroup>>)
// CHECK: nvgpu.ldmatrix %[[BS]][{{.*}}] {numTiles = 4 : i32, transpose = false}
// CHECK-NOT: transpose = true
// CHECK: gpu.terminator
memref.global "private" constant @w : memref<56x48xf16> = dense<1.0>
func.func @linear(%n: index) -> memref<2x?x56xf32> {
  %x = gpu.alloc (%n) : memref<2x?x48xf16>
  %w = memref.get_global @w : memref<56x48xf16>
  %y = gpu.alloc (%n) : memref<2x?x56xf32>
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>, affine_map<(d0, d1, d2, d3) -> (d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x, %w : memref<2x?x48xf16>, memref<56x48xf16>) outs(%y : memref<2x?x56xf32>) {
  ^bb0(%a: f16, %b: f16, %acc: f32):
    %0 = arith.extf %a : f16 to f32
    %1 = arith.extf %b : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %acc, %2 : f32
    linalg.yield %3 : f32
  }
  gpu.dealloc %x : memref<2x?x48xf16>
  return %y : memref<2x?x56xf32>
}

// -----

// Batched [3, 33, 24] x [3, 24, 40]: grid z over the batch, B's batch
// offset in the copies.
// CHECK-LABEL: func.func @batched(
// CHECK: gpu.launch blocks(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %c1, %{{.*}} = %c1, %{{.*}} = %c3)
// CHECK-SAME: workgroup(%{{.*}} : memref<3x64x40xf16, #gpu.address_space<workgroup>>, %{{.*}} : memref<3x32x72xf16, #gpu.address_space<workgroup>>)
// CHECK: nvgpu.mma.sync({{.*}}) {mmaShape = [16, 8, 16]} : (vector<4x2xf16>, vector<2x2xf16>, vector<2x2xf32>) -> vector<2x2xf32>
func.func @batched() -> memref<3x33x40xf32> {
  %a = gpu.alloc () : memref<3x33x24xf16>
  %b = gpu.alloc () : memref<3x24x40xf16>
  %c = gpu.alloc () : memref<3x33x40xf32>
  linalg.batch_matmul ins(%a, %b : memref<3x33x24xf16>, memref<3x24x40xf16>) outs(%c : memref<3x33x40xf32>)
  return %c : memref<3x33x40xf32>
}

// -----

// The W8A8 contraction (i8 x i8 into i32, the weight stored [N, K]): K
// tiles of 64 bytes ([64][64 + 16] i8 stages), 16-element copies,
// ldmatrix of 8-bit fragments and mma.sync m16n8k32 into i32.
// CHECK-LABEL: func.func @w8a8(
// CHECK: gpu.launch {{.*}} workgroup(%[[AS:.*]] : memref<3x64x80xi8, #gpu.address_space<workgroup>>, %[[BS:.*]] : memref<3x64x80xi8, #gpu.address_space<workgroup>>)
// CHECK: nvgpu.device_async_copy %{{.*}}[%{{.*}}], %[[AS]][%{{.*}}, %{{.*}}, %{{.*}}], 16, %{{.*}} {bypassL1}
// CHECK: nvgpu.ldmatrix %[[AS]][{{.*}}] {numTiles = 4 : i32, transpose = false} : memref<3x64x80xi8, #gpu.address_space<workgroup>> -> vector<4x4xi8>
// CHECK: nvgpu.ldmatrix %[[BS]][{{.*}}] {numTiles = 4 : i32, transpose = false} : memref<3x64x80xi8, #gpu.address_space<workgroup>> -> vector<4x4xi8>
// CHECK: nvgpu.mma.sync({{.*}}) {mmaShape = [16, 8, 32]} : (vector<4x4xi8>, vector<2x4xi8>, vector<2x2xi32>) -> vector<2x2xi32>
// CHECK: arith.addi %{{.*}} : i32
// CHECK: memref.store %{{.*}} : memref<{{[0-9]+}}xi32>
// EMU-LABEL: func.func @w8a8(
// EMU: memref.alloc() : memref<128x32xi32>
// EMU: memref.alloc() : memref<32x2x4x4xi8>
// EMU: memref.alloc() : memref<32x4x2x4xi8>
// EMU: arith.extsi %{{.*}} : i8 to i32
// EMU: arith.muli
func.func @w8a8() -> memref<80x72xi32> {
  %q = gpu.alloc () : memref<80x208xi8>
  %w = gpu.alloc () : memref<72x208xi8>
  %acc = gpu.alloc () : memref<80x72xi32>
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%q, %w : memref<80x208xi8>, memref<72x208xi8>) outs(%acc : memref<80x72xi32>) {
  ^bb0(%a: i8, %b: i8, %c: i32):
    %0 = arith.extsi %a : i8 to i32
    %1 = arith.extsi %b : i8 to i32
    %2 = arith.muli %0, %1 : i32
    %3 = arith.addi %c, %2 : i32
    linalg.yield %3 : i32
  }
  return %acc : memref<80x72xi32>
}

// -----

// Not handled (the generic kernels take them): decode (4 static rows, below
// min-rows), K not a multiple of 8 (rows of A not 16-byte aligned), f32
// operands, an operand that is not a device buffer (a host argument), a
// broadcast batch of B, bf16 (no bf16 nvgpu.mma.sync lowering), int8 with B
// stored [K, N] (ldmatrix transposes 16-bit elements only).
// CHECK-LABEL: func.func @fallbacks(
// CHECK-NOT: gpu.launch
// CHECK-COUNT-7: linalg.
// CHECK-NOT: gpu.launch
// CHECK: return
func.func @fallbacks(%host: memref<32x64xf16>) {
  %a = gpu.alloc () : memref<4x64xf16>
  %b = gpu.alloc () : memref<64x32xf16>
  %c = gpu.alloc () : memref<4x32xf32>
  linalg.matmul ins(%a, %b : memref<4x64xf16>, memref<64x32xf16>) outs(%c : memref<4x32xf32>)
  %a2 = gpu.alloc () : memref<32x12xf16>
  %b2 = gpu.alloc () : memref<12x32xf16>
  %c2 = gpu.alloc () : memref<32x32xf32>
  linalg.matmul ins(%a2, %b2 : memref<32x12xf16>, memref<12x32xf16>) outs(%c2 : memref<32x32xf32>)
  %a3 = gpu.alloc () : memref<32x64xf32>
  %b3 = gpu.alloc () : memref<64x32xf32>
  linalg.matmul ins(%a3, %b3 : memref<32x64xf32>, memref<64x32xf32>) outs(%c2 : memref<32x32xf32>)
  linalg.matmul ins(%host, %b : memref<32x64xf16>, memref<64x32xf16>) outs(%c2 : memref<32x32xf32>)
  %a5 = gpu.alloc () : memref<2x32x64xf16>
  %b5 = gpu.alloc () : memref<1x64x32xf16>
  %c5 = gpu.alloc () : memref<2x32x32xf32>
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>, affine_map<(d0, d1, d2, d3) -> (0, d3, d2)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%a5, %b5 : memref<2x32x64xf16>, memref<1x64x32xf16>) outs(%c5 : memref<2x32x32xf32>) {
  ^bb0(%x: f16, %y: f16, %acc: f32):
    %0 = arith.extf %x : f16 to f32
    %1 = arith.extf %y : f16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %acc, %2 : f32
    linalg.yield %3 : f32
  }
  %a6 = gpu.alloc () : memref<32x64xbf16>
  %b6 = gpu.alloc () : memref<64x32xbf16>
  linalg.matmul ins(%a6, %b6 : memref<32x64xbf16>, memref<64x32xbf16>) outs(%c2 : memref<32x32xf32>)
  %a7 = gpu.alloc () : memref<32x64xi8>
  %b7 = gpu.alloc () : memref<64x32xi8>
  %c7 = gpu.alloc () : memref<32x32xi32>
  linalg.matmul ins(%a7, %b7 : memref<32x64xi8>, memref<64x32xi8>) outs(%c7 : memref<32x32xi32>)
  return
}
