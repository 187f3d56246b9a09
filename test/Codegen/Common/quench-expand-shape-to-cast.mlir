// quench-expand-shape-to-cast: memref.expand_shape with two dynamic sizes
// in one reassociation group (MLIR 22's expand-strided-metadata crashes on
// it, llvm/llvm-project#186830) becomes a reinterpret_cast of the source's
// strided metadata; other expand_shapes are left to upstream.

// RUN: quench-opt %s --quench-expand-shape-to-cast | FileCheck %s
// RUN: quench-opt %s --quench-expand-shape-to-cast --expand-strided-metadata | FileCheck %s --check-prefix=LOWERED

// CHECK-LABEL: func.func @rows
// CHECK-SAME: (%[[M:.*]]: memref<?x32xf32>, %[[B:.*]]: index, %[[T:.*]]: index)
// CHECK: %[[C32:.*]] = arith.constant 32 : index
// CHECK: %[[BASE:.*]], %{{.*}}, %{{.*}}:2, %{{.*}}:2 = memref.extract_strided_metadata %[[M]]
// CHECK: %[[S0:.*]] = arith.muli %[[T]], %[[C32]] : index
// CHECK: memref.reinterpret_cast %[[BASE]] to offset: [0], sizes: [%[[B]], %[[T]], 32], strides: [%[[S0]], 32, 1] : memref<f32> to memref<?x?x32xf32>
// CHECK-NOT: memref.expand_shape
// LOWERED-LABEL: func.func @rows
// LOWERED-NOT: memref.expand_shape
func.func @rows(%m: memref<?x32xf32>, %b: index, %t: index) -> memref<?x?x32xf32> {
  %e = memref.expand_shape %m [[0, 1], [2]] output_shape [%b, %t, 32] : memref<?x32xf32> into memref<?x?x32xf32>
  return %e : memref<?x?x32xf32>
}

// A strided source (a column slice): the innermost stride of each group is
// the source's stride, the outer ones multiply by the inner sizes.
// CHECK-LABEL: func.func @strided
// CHECK-SAME: (%[[M:.*]]: memref<?x?xf32, strided<[?, 1], offset: ?>>, %[[A:.*]]: index, %[[B:.*]]: index, %[[C:.*]]: index)
// CHECK: %[[BASE:.*]], %[[OFF:.*]], %{{.*}}:2, %[[ST:.*]]:2 = memref.extract_strided_metadata %[[M]]
// CHECK: %[[S1:.*]] = arith.muli %[[ST]]#0, %[[B]] : index
// CHECK: memref.reinterpret_cast %[[BASE]] to offset: [%[[OFF]]], sizes: [%[[A]], %[[B]], %[[C]]], strides: [%[[S1]], %[[ST]]#0, 1]
func.func @strided(%m: memref<?x?xf32, strided<[?, 1], offset: ?>>, %a: index, %b: index, %c: index) -> memref<?x?x?xf32, strided<[?, ?, 1], offset: ?>> {
  %e = memref.expand_shape %m [[0, 1], [2]] output_shape [%a, %b, %c] : memref<?x?xf32, strided<[?, 1], offset: ?>> into memref<?x?x?xf32, strided<[?, ?, 1], offset: ?>>
  return %e : memref<?x?x?xf32, strided<[?, ?, 1], offset: ?>>
}

// One dynamic size per group: upstream lowers it, the pass leaves it.
// CHECK-LABEL: func.func @single
// CHECK: memref.expand_shape
// CHECK-NOT: memref.reinterpret_cast
func.func @single(%m: memref<?x32xf32>, %b: index) -> memref<?x4x32xf32> {
  %e = memref.expand_shape %m [[0, 1], [2]] output_shape [%b, 4, 32] : memref<?x32xf32> into memref<?x4x32xf32>
  return %e : memref<?x4x32xf32>
}
