// RUN: quench-opt %s --split-input-file --quench-share-kernels=min-ops=4 | FileCheck %s
// RUN: quench-opt %s --split-input-file --quench-share-kernels | FileCheck %s --check-prefix=BIG

// Two layers: the same loop nest on different weights (memref.get_global
// results), buffers and a captured scale; the constants are cloned in. The
// two nests become calls of one shared function; the third nest (another
// shape) occurs once and stays inline.
// CHECK-LABEL: func.func @layers
// CHECK: %[[W0:.*]] = memref.get_global @w0
// CHECK: %[[W1:.*]] = memref.get_global @w1
// CHECK: call @layers_kernel_0(%arg0, %[[W0]], %arg2, %arg3)
// CHECK-SAME: (memref<8xf32>, memref<8xf32>, f32, memref<8xf32>) -> ()
// CHECK: call @layers_kernel_0(%arg1, %[[W1]], %arg2, %arg3)
// CHECK: scf.for {{.*}} to %c4
// CHECK: return
// CHECK: func.func private @layers_kernel_0(%arg0: memref<8xf32>, %arg1: memref<8xf32>, %arg2: f32, %arg3: memref<8xf32>)
// CHECK-SAME: attributes {llvm.linkage = #llvm.linkage<internal>, passthrough = ["noinline"]}
// CHECK-DAG: arith.constant 0 : index
// CHECK-DAG: arith.constant 8 : index
// CHECK: scf.for
// CHECK: arith.mulf
// CHECK: arith.addf
// CHECK: return
// CHECK-NOT: func.func private @layers_kernel_1
// The nests have 7 ops each: below min-ops (8 by default) nothing is shared.
// BIG-LABEL: func.func @layers
// BIG-NOT: call
// BIG-NOT: func.func private
memref.global "private" constant @w0 : memref<8xf32> = dense<1.0>
memref.global "private" constant @w1 : memref<8xf32> = dense<2.0>
func.func @layers(%x0: memref<8xf32>, %x1: memref<8xf32>, %s: f32,
                  %out: memref<8xf32>, %small: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  %w0 = memref.get_global @w0 : memref<8xf32>
  %w1 = memref.get_global @w1 : memref<8xf32>
  scf.for %i = %c0 to %c8 step %c1 {
    %a = memref.load %x0[%i] : memref<8xf32>
    %b = memref.load %w0[%i] : memref<8xf32>
    %m = arith.mulf %a, %b : f32
    %t = arith.mulf %m, %s : f32
    %o = arith.addf %t, %a : f32
    memref.store %o, %out[%i] : memref<8xf32>
  }
  scf.for %i = %c0 to %c8 step %c1 {
    %a = memref.load %x1[%i] : memref<8xf32>
    %b = memref.load %w1[%i] : memref<8xf32>
    %m = arith.mulf %a, %b : f32
    %t = arith.mulf %m, %s : f32
    %o = arith.addf %t, %a : f32
    memref.store %o, %out[%i] : memref<8xf32>
  }
  scf.for %i = %c0 to %c4 step %c1 {
    %a = memref.load %small[%i] : memref<4xf32>
    %m = arith.mulf %a, %s : f32
    %t = arith.mulf %m, %s : f32
    %o = arith.addf %t, %a : f32
    memref.store %o, %small[%i] : memref<4xf32>
  }
  return
}

// -----

// Nests that differ in an attribute (here the constant they add) or in an
// operand type stay apart; loop results come back from the shared function.
// CHECK-LABEL: func.func @results
// CHECK: %[[R0:.*]] = call @results_kernel_0(%arg0) : (memref<8xf32>) -> f32
// CHECK: %[[R1:.*]] = call @results_kernel_0(%arg1) : (memref<8xf32>) -> f32
// CHECK: scf.for
// CHECK: arith.addf %{{.*}}, %cst_1
// CHECK: scf.for
// CHECK: memref<16xf32>
// CHECK: return %[[R0]], %[[R1]]
// CHECK: func.func private @results_kernel_0(%arg0: memref<8xf32>) -> f32
func.func @results(%a: memref<8xf32>, %b: memref<8xf32>, %c: memref<8xf32>,
                   %d: memref<16xf32>) -> (f32, f32, f32, f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c16 = arith.constant 16 : index
  %zero = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
  %two = arith.constant 2.0 : f32
  %r0 = scf.for %i = %c0 to %c8 step %c1 iter_args(%acc = %zero) -> f32 {
    %v = memref.load %a[%i] : memref<8xf32>
    %p = arith.addf %v, %one : f32
    %q = arith.mulf %p, %p : f32
    %n = arith.addf %acc, %q : f32
    scf.yield %n : f32
  }
  %r1 = scf.for %i = %c0 to %c8 step %c1 iter_args(%acc = %zero) -> f32 {
    %v = memref.load %b[%i] : memref<8xf32>
    %p = arith.addf %v, %one : f32
    %q = arith.mulf %p, %p : f32
    %n = arith.addf %acc, %q : f32
    scf.yield %n : f32
  }
  %r2 = scf.for %i = %c0 to %c8 step %c1 iter_args(%acc = %zero) -> f32 {
    %v = memref.load %c[%i] : memref<8xf32>
    %p = arith.addf %v, %two : f32
    %q = arith.mulf %p, %p : f32
    %n = arith.addf %acc, %q : f32
    scf.yield %n : f32
  }
  %r3 = scf.for %i = %c0 to %c16 step %c1 iter_args(%acc = %zero) -> f32 {
    %v = memref.load %d[%i] : memref<16xf32>
    %p = arith.addf %v, %one : f32
    %q = arith.mulf %p, %p : f32
    %n = arith.addf %acc, %q : f32
    scf.yield %n : f32
  }
  return %r0, %r1, %r2, %r3 : f32, f32, f32, f32
}

// -----

// A shared nest reads the result of another shared nest: the call of the
// second takes the first call's result.
// CHECK-LABEL: func.func @chained
// CHECK: %[[S0:.*]] = call @chained_kernel_0(%arg0) : (memref<8xf32>) -> f32
// CHECK: %[[S1:.*]] = call @chained_kernel_0(%arg1) : (memref<8xf32>) -> f32
// CHECK: call @chained_kernel_1(%arg0, %[[S0]]) : (memref<8xf32>, f32) -> ()
// CHECK: call @chained_kernel_1(%arg1, %[[S1]]) : (memref<8xf32>, f32) -> ()
func.func @chained(%a: memref<8xf32>, %b: memref<8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %zero = arith.constant 0.0 : f32
  %sa = scf.for %i = %c0 to %c8 step %c1 iter_args(%acc = %zero) -> f32 {
    %v = memref.load %a[%i] : memref<8xf32>
    %q = arith.mulf %v, %v : f32
    %n = arith.addf %acc, %q : f32
    scf.yield %n : f32
  }
  %sb = scf.for %i = %c0 to %c8 step %c1 iter_args(%acc = %zero) -> f32 {
    %v = memref.load %b[%i] : memref<8xf32>
    %q = arith.mulf %v, %v : f32
    %n = arith.addf %acc, %q : f32
    scf.yield %n : f32
  }
  scf.for %i = %c0 to %c8 step %c1 {
    %v = memref.load %a[%i] : memref<8xf32>
    %d = arith.divf %v, %sa : f32
    %e = arith.addf %d, %v : f32
    memref.store %e, %a[%i] : memref<8xf32>
  }
  scf.for %i = %c0 to %c8 step %c1 {
    %v = memref.load %b[%i] : memref<8xf32>
    %d = arith.divf %v, %sb : f32
    %e = arith.addf %d, %v : f32
    memref.store %e, %b[%i] : memref<8xf32>
  }
  return
}
