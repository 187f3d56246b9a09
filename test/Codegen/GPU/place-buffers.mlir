// RUN: quench-opt %s --quench-gpu-place-buffers --split-input-file | FileCheck %s

// The argument is copied to the device once; allocations are device
// allocations; the result is copied into a fresh host buffer and its device
// allocation freed along with the argument's copy; copies between buffers
// are linalg copies (kernels later).
// CHECK-LABEL: func.func @f(
// CHECK-SAME: %[[ARG:.*]]: memref<4x8xf32>)
// CHECK: %[[IN:.*]] = gpu.alloc () : memref<4x8xf32>
// CHECK: gpu.memcpy %[[IN]], %[[ARG]]
// CHECK: %[[T:.*]] = gpu.alloc () {{.*}}: memref<4x8xf32>
// CHECK: linalg.generic {{.*}} ins(%[[IN]] : {{.*}}) outs(%[[T]]
// CHECK: %[[R:.*]] = gpu.alloc () {{.*}}: memref<4x8xf32>
// CHECK: linalg.copy ins(%[[T]] : {{.*}}) outs(%[[R]]
// CHECK: gpu.dealloc %[[T]]
// CHECK: %[[HOST:.*]] = memref.alloc() : memref<4x8xf32>
// CHECK: gpu.memcpy %[[HOST]], %[[R]]
// CHECK-DAG: gpu.dealloc %[[IN]]
// CHECK-DAG: gpu.dealloc %[[R]]
// CHECK: return %[[HOST]]
#id = affine_map<(d0, d1) -> (d0, d1)>
func.func @f(%x: memref<4x8xf32>) -> memref<4x8xf32> {
  %t = memref.alloc() {alignment = 64 : i64} : memref<4x8xf32>
  linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%x : memref<4x8xf32>) outs(%t : memref<4x8xf32>) {
  ^bb0(%a: f32, %b: f32):
    %s = arith.mulf %a, %a : f32
    linalg.yield %s : f32
  }
  %r = memref.alloc() {alignment = 64 : i64} : memref<4x8xf32>
  memref.copy %t, %r : memref<4x8xf32> to memref<4x8xf32>
  memref.dealloc %t : memref<4x8xf32>
  return %r : memref<4x8xf32>
}

// -----

// A shape computation stays on the host: the 0-d buffer the host loads a
// size from is a host allocation written by host loops (and freed on the
// host); the argument's dimension is read on the host directly.
// CHECK-LABEL: func.func @shape(
// CHECK-SAME: %[[ARG:.*]]: memref<1x?xi64>)
// CHECK: memref.dim %[[ARG]]
// CHECK-NOT: gpu.memcpy
// CHECK: %[[S:.*]] = memref.alloc() {{.*}}: memref<i64>
// CHECK-NOT: linalg.generic
// CHECK: memref.store %{{.*}}, %[[S]][]
// CHECK: %[[V:.*]] = memref.load %[[S]][]
// CHECK: %[[N:.*]] = arith.index_cast %[[V]]
// CHECK: %[[R:.*]] = gpu.alloc (%[[N]])
// CHECK: linalg.generic
// CHECK: memref.dealloc %[[S]]
// CHECK: %[[HOST:.*]] = memref.alloc(%{{.*}}) : memref<?xf32>
// CHECK: gpu.memcpy %[[HOST]], %[[R]]
// CHECK: gpu.dealloc %[[R]]
// CHECK: return %[[HOST]]
func.func @shape(%ids: memref<1x?xi64>) -> memref<?xf32> {
  %c1 = arith.constant 1 : index
  %d = memref.dim %ids, %c1 : memref<1x?xi64>
  %n = arith.index_cast %d : index to i64
  %s = memref.alloc() {alignment = 64 : i64} : memref<i64>
  linalg.generic {indexing_maps = [affine_map<() -> ()>], iterator_types = []} outs(%s : memref<i64>) {
  ^bb0(%o: i64):
    linalg.yield %n : i64
  }
  %v = memref.load %s[] : memref<i64>
  %i = arith.index_cast %v : i64 to index
  %r = memref.alloc(%i) {alignment = 64 : i64} : memref<?xf32>
  linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]} outs(%r : memref<?xf32>) {
  ^bb0(%o: f32):
    %k = linalg.index 0 : index
    %ki = arith.index_cast %k : index to i32
    %kf = arith.sitofp %ki : i32 to f32
    linalg.yield %kf : f32
  }
  memref.dealloc %s : memref<i64>
  return %r : memref<?xf32>
}
