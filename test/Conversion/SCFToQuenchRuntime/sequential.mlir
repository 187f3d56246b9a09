// RUN: quench-opt %s -split-input-file -verify-diagnostics \
// RUN:   --convert-scf-to-quench-runtime="min-parallel-work=0" | FileCheck %s

// Loops that convert-scf-to-quench-runtime leaves sequential, and a clash
// with the runtime's symbol names.

// CHECK-LABEL: func.func @mapped(
// CHECK:         scf.forall {{.*}} in (8)
// CHECK:         } {mapping = [#gpu.thread<x>]}
// CHECK-NOT:     quench_parallel_for
func.func @mapped(%m: memref<8xf32>, %v: f32) {
  scf.forall (%i) in (8) {
    memref.store %v, %m[%i] : memref<8xf32>
  } {mapping = [#gpu.thread<x>]}
  return
}

// -----

// CHECK-LABEL: func.func @on_tensors(
// CHECK:         scf.forall {{.*}} shared_outs
// CHECK-NOT:     quench_parallel_for
func.func @on_tensors(%t: tensor<8xf32>) -> tensor<8xf32> {
  %r = scf.forall (%i) in (8) shared_outs(%o = %t) -> tensor<8xf32> {
    %s = tensor.extract_slice %o[%i] [1] [1] : tensor<8xf32> to tensor<1xf32>
    scf.forall.in_parallel {
      tensor.parallel_insert_slice %s into %o[%i] [1] [1] : tensor<1xf32> into tensor<8xf32>
    }
  }
  return %r : tensor<8xf32>
}

// -----

// A captured tensor has no LLVM representation.
// CHECK-LABEL: func.func @captures_tensor(
// CHECK:         scf.forall
// CHECK-NOT:     quench_parallel_for
func.func @captures_tensor(%t: tensor<8xf32>, %m: memref<8xf32>) {
  scf.forall (%i) in (8) {
    %x = tensor.extract %t[%i] : tensor<8xf32>
    memref.store %x, %m[%i] : memref<8xf32>
  }
  return
}

// -----

// expected-error @+1 {{'quench_parallel_for_work' must be a func.func of type}}
func.func private @quench_parallel_for_work(i64) -> i32

func.func @clash(%m: memref<8xf32>, %v: f32) {
  scf.forall (%i) in (8) {
    memref.store %v, %m[%i] : memref<8xf32>
  }
  return
}
