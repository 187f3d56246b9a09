// RUN: quench-opt %s --quench-gpu-map-to-launch --split-input-file --verify-diagnostics | FileCheck %s
// RUN: not quench-opt %s --quench-gpu-map-to-launch=block-size=1000 2>&1 | FileCheck %s --check-prefix=BAD

// BAD: block-size must be a multiple of 32 in [32, 1024]

// A 2-D parallel loop becomes one launch over its linearized iteration
// space: 3 x 100 = 300 iterations, blocks of 256 threads, each thread
// delinearizes its index (innermost fastest) and runs the body when in
// range.
// CHECK-LABEL: func.func @par(
// CHECK-DAG: %[[C256:.*]] = arith.constant 256 : index
// CHECK: %[[BLOCKS:.*]] = arith.maxui
// CHECK: gpu.launch blocks(%[[BX:.*]], %{{.*}}, %{{.*}}) in (%{{.*}} = %[[BLOCKS]], %{{.*}} = %c1{{.*}}, %{{.*}} = %c1{{.*}}) threads(%[[TX:.*]], %{{.*}}, %{{.*}}) in (%{{.*}} = %[[C256]],
// CHECK: %[[M:.*]] = arith.muli %[[BX]], %[[C256]]
// CHECK: %[[LIN:.*]] = arith.addi %[[M]], %[[TX]]
// CHECK: %[[IN:.*]] = arith.cmpi ult, %[[LIN]]
// CHECK: scf.if %[[IN]]
// CHECK: arith.remui %[[LIN]]
// CHECK: arith.divui %[[LIN]]
// CHECK: memref.store
// CHECK: gpu.terminator
// CHECK-NOT: scf.parallel
func.func @par(%m: memref<3x100xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %c100 = arith.constant 100 : index
  %f = arith.constant 1.0 : f32
  scf.parallel (%i, %j) = (%c0, %c0) to (%c3, %c100) step (%c1, %c1) {
    memref.store %f, %m[%i, %j] : memref<3x100xf32>
    scf.reduce
  }
  return
}

// -----

// A small static loop takes a block of its size rounded up to a warp.
// CHECK-LABEL: func.func @small(
// CHECK: %[[C32:.*]] = arith.constant 32 : index
// CHECK: gpu.launch {{.*}} threads({{.*}}) in (%{{.*}} = %[[C32]],
func.func @small(%m: memref<5xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c5 = arith.constant 5 : index
  %f = arith.constant 1.0 : f32
  scf.parallel (%i) = (%c0) to (%c5) step (%c1) {
    memref.store %f, %m[%i] : memref<5xf32>
    scf.reduce
  }
  return
}

// -----

// Device memory accessed outside parallel loops runs in a single-thread
// kernel, with the pure ops computing on it; the allocation stays on the
// host.
// CHECK-LABEL: func.func @serial(
// CHECK: %[[X:.*]] = gpu.alloc
// CHECK: gpu.memcpy %[[X]]
// CHECK: gpu.alloc
// CHECK: gpu.launch blocks({{.*}}) in (%{{.*}} = %[[ONE:.*]], %{{.*}} = %[[ONE]], %{{.*}} = %[[ONE]]) threads({{.*}}) in (%{{.*}} = %[[ONE]], %{{.*}} = %[[ONE]], %{{.*}} = %[[ONE]])
// CHECK-NEXT: memref.load
// CHECK-NEXT: arith.addf
// CHECK-NEXT: memref.store
// CHECK-NEXT: gpu.terminator
func.func @serial(%h: memref<f32>) -> memref<f32> {
  %x = gpu.alloc () : memref<f32>
  gpu.memcpy %x, %h : memref<f32>, memref<f32>
  %r = gpu.alloc () : memref<f32>
  %v = memref.load %x[] : memref<f32>
  %w = arith.addf %v, %v : f32
  memref.store %w, %r[] : memref<f32>
  return %r : memref<f32>
}

// -----

// The host may not use a value loaded from device memory.
func.func @bad(%x: memref<f32>) -> index {
  %r = gpu.alloc () : memref<f32>
  %v = memref.load %r[] : memref<f32>
  %i = arith.fptosi %v : f32 to i32
  %j = arith.index_cast %i : i32 to index
  // expected-error@+1 {{on the host uses a value computed from device memory}}
  %k = gpu.alloc (%j) : memref<?xf32>
  return %j : index
}
