// RUN: quench-opt --quench-check-buffer-sizes --split-input-file %s | FileCheck %s
// RUN: quench-opt --quench-check-buffer-sizes="max-bytes=1000" --split-input-file %s | FileCheck %s --check-prefix=LIMIT

// quench-check-buffer-sizes: before an allocation with run-time extents, a
// check that the extents are non-negative and the buffer's bytes (f64: the
// product cannot wrap) stay at most max-bytes (default 2^62); the message
// names the node and carries the first two run-time extents.

// CHECK:       llvm.mlir.global internal constant @[[MSG:quench_check_values_message_[0-9a-f_]+]]("node 'fill': a buffer of shape ?x4x?xf32 with run-time extents {0} and {1} is larger than 4611686018427387904 bytes or has a negative extent (sizes computed from input values)\00")
// CHECK:       llvm.func @quench_rt_check_failed_values(!llvm.ptr, i64, i64)
// CHECK-LABEL: func.func @two_dynamic(
// CHECK-SAME:      %[[N:.+]]: index, %[[M:.+]]: index
// CHECK-DAG:     %[[ZERO:.+]] = arith.constant 0 : i64
// CHECK-DAG:     %[[STATIC:.+]] = arith.constant 1.600000e+01 : f64
// CHECK:         %[[NI:.+]] = arith.index_cast %[[N]] : index to i64
// CHECK:         %[[NNEG:.+]] = arith.cmpi sge, %[[NI]], %[[ZERO]] : i64
// CHECK:         %[[NF:.+]] = arith.sitofp %[[NI]] : i64 to f64
// CHECK:         %[[B1:.+]] = arith.mulf %[[STATIC]], %[[NF]] : f64
// CHECK:         %[[MI:.+]] = arith.index_cast %[[M]] : index to i64
// CHECK:         %[[MNEG:.+]] = arith.cmpi sge, %[[MI]], %[[ZERO]] : i64
// CHECK:         %[[BOTH:.+]] = arith.andi %[[NNEG]], %[[MNEG]] : i1
// CHECK:         %[[MF:.+]] = arith.sitofp %[[MI]] : i64 to f64
// CHECK:         %[[B2:.+]] = arith.mulf %[[B1]], %[[MF]] : f64
// CHECK:         %[[MAXB:.+]] = arith.constant 4.6116860184273879E+18 : f64
// CHECK:         %[[FITS:.+]] = arith.cmpf ole, %[[B2]], %[[MAXB]] : f64
// CHECK:         %[[OK:.+]] = arith.andi %[[BOTH]], %[[FITS]] : i1
// CHECK:         %[[BAD:.+]] = arith.xori %[[OK]], %{{.+}} : i1
// CHECK:         scf.if %[[BAD]] {
// CHECK:           %[[A:.+]] = llvm.mlir.addressof @[[MSG]] : !llvm.ptr
// CHECK:           %[[P:.+]] = llvm.getelementptr %[[A]][0, 0]
// CHECK:           llvm.call @quench_rt_check_failed_values(%[[P]], %[[NI]], %[[MI]])
// CHECK:         }
// CHECK:         memref.alloc(%[[N]], %[[M]]) : memref<?x4x?xf32>
// LIMIT-LABEL: func.func @two_dynamic(
// LIMIT:         arith.constant 1.000000e+03 : f64
func.func @two_dynamic(%n: index, %m: index) -> memref<?x4x?xf32> {
  %0 = memref.alloc(%n, %m) : memref<?x4x?xf32> loc("fill")
  return %0 : memref<?x4x?xf32>
}

// -----

// Static buffers are left alone; alloca is checked as alloc; one message
// checked twice is stored once.
// CHECK-COUNT-1: llvm.mlir.global internal constant
// CHECK-NOT:     llvm.mlir.global
// CHECK-LABEL: func.func @static_and_alloca(
// CHECK:         memref.alloc() : memref<4x4xf32>
// CHECK:         scf.if
// CHECK:         memref.alloca(%{{.+}}) : memref<?xi8>
// CHECK:         scf.if
// CHECK:         memref.alloca(%{{.+}}) : memref<?xi8>
func.func @static_and_alloca(%n: index) {
  %0 = memref.alloc() : memref<4x4xf32>
  %1 = memref.alloca(%n) : memref<?xi8> loc("tmp")
  %2 = memref.alloca(%n) : memref<?xi8> loc("tmp")
  memref.dealloc %0 : memref<4x4xf32>
  return
}

// -----

// Device code is left alone.
// CHECK-LABEL: func.func @in_launch(
// CHECK-NOT:     scf.if
// CHECK:         gpu.launch
// CHECK:           memref.alloca(%{{.+}}) : memref<?xf32>
func.func @in_launch(%n: index) {
  %c1 = arith.constant 1 : index
  gpu.launch blocks(%bx, %by, %bz) in (%x = %c1, %y = %c1, %z = %c1)
             threads(%tx, %ty, %tz) in (%u = %c1, %v = %c1, %w = %c1) {
    %0 = memref.alloca(%n) : memref<?xf32>
    gpu.terminator
  }
  return
}
