// Every loop is sent to the runtime (min-parallel-work=0); the decision
// itself is tested in parallel-decision.mlir.
// RUN: quench-opt %s --convert-scf-to-quench-runtime="min-parallel-work=0" | FileCheck %s
// RUN: quench-opt %s --convert-scf-to-quench-runtime="min-parallel-work=0" --convert-scf-to-cf \
// RUN:   --finalize-memref-to-llvm --convert-arith-to-llvm --convert-func-to-llvm \
// RUN:   --convert-cf-to-llvm --reconcile-unrealized-casts | FileCheck %s --check-prefix=LLVM

// The runtime functions are declared once.
// CHECK-DAG: func.func private @quench_parallel_for_work(!llvm.ptr, i64, i64, (!llvm.ptr, i64, i64) -> (), !llvm.ptr) -> i32
// CHECK-DAG: func.func private @quench_current_threadpool() -> !llvm.ptr

// LLVM-DAG: llvm.func @quench_parallel_for_work(!llvm.ptr, i64, i64, !llvm.ptr, !llvm.ptr) -> i32
// LLVM-DAG: llvm.func @quench_current_threadpool() -> !llvm.ptr
// LLVM-DAG: llvm.func internal @forall_1d_parallel_body(%{{.*}}: !llvm.ptr, %{{.*}}: i64, %{{.*}}: i64)
// LLVM-NOT: unrealized_conversion_cast

// A 1-D loop capturing two memrefs and a scalar; the dynamic upper bound
// only feeds the trip count.
// CHECK-LABEL: func.func @forall_1d(
// CHECK-SAME:      %[[IN:.*]]: memref<?xf32>, %[[OUT:.*]]: memref<?xf32>, %[[S:.*]]: f32, %[[N:.*]]: index)
// CHECK:         %[[CTX:.*]] = llvm.alloca %{{.*}} x !llvm.struct<(struct<(ptr, ptr, i64, array<1 x i64>, array<1 x i64>)>, f32, struct<(ptr, ptr, i64, array<1 x i64>, array<1 x i64>)>)>
// CHECK:         %[[TRIP:.*]] = arith.maxsi %[[N]], %c0
// CHECK:         %[[F0:.*]] = llvm.getelementptr %[[CTX]][0, 0]
// CHECK:         %[[D0:.*]] = builtin.unrealized_conversion_cast %[[IN]] : memref<?xf32> to !llvm.struct
// CHECK:         llvm.store %[[D0]], %[[F0]]
// CHECK:         %[[F1:.*]] = llvm.getelementptr %[[CTX]][0, 1]
// CHECK:         llvm.store %[[S]], %[[F1]] : f32, !llvm.ptr
// CHECK:         llvm.getelementptr %[[CTX]][0, 2]
// CHECK:         %[[POOL:.*]] = call @quench_current_threadpool()
// CHECK:         %[[FN:.*]] = constant @forall_1d_parallel_body : (!llvm.ptr, i64, i64) -> ()
// CHECK:         %[[N64:.*]] = arith.index_cast %[[TRIP]] : index to i64
// Three operations per iteration: the cost the runtime sizes chunks with.
// CHECK:         %[[COST:.*]] = arith.constant 3 : i64
// CHECK:         call @quench_parallel_for_work(%[[POOL]], %[[N64]], %[[COST]], %[[FN]], %[[CTX]])
// CHECK-NOT:     scf.forall
// CHECK:         return
// CHECK-LABEL: func.func private @forall_1d_parallel_body(
// CHECK-SAME:      %[[C:.*]]: !llvm.ptr, %[[B:.*]]: i64, %[[E:.*]]: i64)
// CHECK-SAME:      attributes {llvm.linkage = #llvm.linkage<internal>, quench.parallel_body}
// CHECK:         llvm.getelementptr %[[C]][0, 0]
// CHECK:         %[[INV:.*]] = builtin.unrealized_conversion_cast %{{.*}} to memref<?xf32>
// CHECK:         %[[SV:.*]] = llvm.load %{{.*}} : !llvm.ptr -> f32
// CHECK:         %[[OUTV:.*]] = builtin.unrealized_conversion_cast %{{.*}} to memref<?xf32>
// CHECK:         %[[BI:.*]] = arith.index_cast %[[B]] : i64 to index
// CHECK:         %[[EI:.*]] = arith.index_cast %[[E]] : i64 to index
// CHECK:         scf.for %[[I:.*]] = %[[BI]] to %[[EI]] step %c1
// CHECK:           %[[X:.*]] = memref.load %[[INV]][%[[I]]]
// CHECK:           %[[Y:.*]] = arith.mulf %[[X]], %[[SV]]
// CHECK:           memref.store %[[Y]], %[[OUTV]][%[[I]]]
func.func @forall_1d(%in: memref<?xf32>, %out: memref<?xf32>, %s: f32, %n: index) {
  scf.forall (%i) in (%n) {
    %x = memref.load %in[%i] : memref<?xf32>
    %y = arith.mulf %x, %s : f32
    memref.store %y, %out[%i] : memref<?xf32>
  }
  return
}

// A 2-D loop with lower bounds and steps: 4 x 30 iterations, walked in rows
// of the inner dimension; the nested scf.forall stays sequential.
// CHECK-LABEL: func.func @forall_2d_nested(
// CHECK:         %[[TOTAL:.*]] = arith.constant 120 : index
// CHECK:         %[[N64:.*]] = arith.index_cast %[[TOTAL]] : index to i64
// CHECK:         call @quench_parallel_for_work(%{{.*}}, %[[N64]],
// CHECK-LABEL: func.func private @forall_2d_nested_parallel_body(
// CHECK-DAG:     %[[C8:.*]] = arith.constant 8 : index
// CHECK-DAG:     %[[C16:.*]] = arith.constant 16 : index
// CHECK-DAG:     %[[C30:.*]] = arith.constant 30 : index
// CHECK-DAG:     %[[C4:.*]] = arith.constant 4 : index
// CHECK:         scf.while (%[[L:.*]] = %{{.*}}) : (index) -> index
// CHECK:         ^bb0(%[[L2:.*]]: index):
// CHECK:           %[[INNER:.*]] = arith.remui %[[L2]], %[[C30]]
// CHECK:           %[[ROW:.*]] = arith.divui %[[L2]], %[[C30]]
// CHECK:           %[[I:.*]] = arith.muli %[[ROW]], %[[C16]]
// CHECK:           %[[RUNEND:.*]] = arith.minsi %[[C30]],
// CHECK:           scf.for %[[J:.*]] = %[[INNER]] to %[[RUNEND]]
// CHECK:             %[[JS:.*]] = arith.muli %[[J]], %[[C4]]
// CHECK:             %[[JV:.*]] = arith.addi %[[C8]], %[[JS]]
// CHECK:             scf.forall (%[[II:.*]]) in (16)
// CHECK:               %[[R:.*]] = arith.addi %[[I]], %[[II]]
// CHECK:               memref.load %{{.*}}[%[[R]], %[[JV]]]
// CHECK:           scf.yield
// CHECK-NOT:   call @quench_parallel_for_work
// CHECK:         return
func.func @forall_2d_nested(%a: memref<64x128xf32>, %b: memref<64x128xf32>) {
  scf.forall (%i, %j) = (0, 8) to (64, 128) step (16, 4) {
    scf.forall (%ii) in (16) {
      %r = arith.addi %i, %ii : index
      %x = memref.load %a[%r, %j] : memref<64x128xf32>
      memref.store %x, %b[%r, %j] : memref<64x128xf32>
    }
  }
  return
}

// Dynamic lower bound and step: the trip count is computed before the loop;
// the lower bound, the step and the inner trip count travel in the context
// (constant bounds are re-created in the body).
// CHECK-LABEL: func.func @parallel_dynamic(
// CHECK-SAME:      %{{.*}}: memref<?x?xf32>, %[[LB:.*]]: index, %[[UB0:.*]]: index, %[[UB1:.*]]: index, %[[ST:.*]]: index)
// CHECK:         %[[CTX:.*]] = llvm.alloca {{.*}} x !llvm.struct<(struct<(ptr, ptr, i64, array<2 x i64>, array<2 x i64>)>, i64, i64, i64)>
// CHECK:         %[[D:.*]] = arith.subi %[[UB0]], %[[LB]]
// CHECK:         %[[SM1:.*]] = arith.subi %[[ST]], %{{.*}}
// CHECK:         %[[NUM:.*]] = arith.addi %[[D]], %[[SM1]]
// CHECK:         %[[Q:.*]] = arith.divsi %[[NUM]], %[[ST]]
// CHECK:         %[[T0:.*]] = arith.maxsi %[[Q]], %{{.*}}
// CHECK:         %[[T1:.*]] = arith.maxsi %[[UB1]], %{{.*}}
// CHECK:         %[[TOTAL:.*]] = arith.muli %[[T0]], %[[T1]]
// CHECK:         arith.index_cast %[[LB]] : index to i64
// CHECK:         arith.index_cast %[[ST]] : index to i64
// CHECK:         arith.index_cast %[[T1]] : index to i64
// CHECK:         arith.index_cast %[[TOTAL]] : index to i64
// CHECK:         call @quench_parallel_for_work
// CHECK-NOT:     scf.parallel
// CHECK-LABEL: func.func private @parallel_dynamic_parallel_body(
// CHECK:         %[[CST:.*]] = arith.constant 1.000000e+00 : f32
// CHECK:         scf.while
// CHECK:           scf.for
// CHECK:             memref.store %[[CST]]
func.func @parallel_dynamic(%m: memref<?x?xf32>, %lb: index, %ub0: index,
                            %ub1: index, %step: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cst = arith.constant 1.0 : f32
  scf.parallel (%i, %j) = (%lb, %c0) to (%ub0, %ub1) step (%step, %c1) {
    memref.store %cst, %m[%i, %j] : memref<?x?xf32>
    scf.reduce
  }
  return
}

// A 3-D loop delinearizes the row index twice.
// CHECK-LABEL: func.func private @parallel_3d_parallel_body(
// CHECK:         ^bb0(%[[L:.*]]: index):
// CHECK:           %[[IN:.*]] = arith.remui %[[L]], %[[C5:.*]] : index
// CHECK:           %[[R:.*]] = arith.divui %[[L]], %[[C5]] : index
// CHECK:           %[[J:.*]] = arith.remui %[[R]], %[[C3:.*]] : index
// CHECK:           %[[I:.*]] = arith.divui %[[R]], %[[C3]] : index
// CHECK:           scf.for %[[K:.*]] = %[[IN]] to
// CHECK:             memref.store %{{.*}}, %{{.*}}[%[[I]], %[[J]], %[[K]]]
func.func @parallel_3d(%m: memref<2x3x5xf32>, %v: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c5 = arith.constant 5 : index
  scf.parallel (%i, %j, %k) = (%c0, %c0, %c0) to (%c2, %c3, %c5) step (%c1, %c1, %c1) {
    memref.store %v, %m[%i, %j, %k] : memref<2x3x5xf32>
    scf.reduce
  }
  return
}

// A loop that never runs is erased; a dynamic zero trip count is the
// runtime's (n = 0 calls nothing).
// CHECK-LABEL: func.func @zero_trip(
// CHECK-NOT:     scf.forall
// CHECK-NOT:     call @quench_parallel_for_work
// CHECK:         return
func.func @zero_trip(%m: memref<8xf32>) {
  %cst = arith.constant 0.0 : f32
  scf.forall (%i) = (4) to (4) step (1) {
    memref.store %cst, %m[%i] : memref<8xf32>
  }
  return
}

// Without captures the context pointer is null.
// CHECK-LABEL: func.func @no_captures(
// CHECK-NOT:     llvm.alloca
// CHECK:         %[[NULL:.*]] = llvm.mlir.zero : !llvm.ptr
// CHECK:         call @quench_parallel_for_work(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[NULL]])
// CHECK-LABEL: func.func private @no_captures_parallel_body(
// CHECK:         memref.get_global @buffer
memref.global "private" @buffer : memref<16xf32> = uninitialized
func.func @no_captures() {
  scf.forall (%i) in (16) {
    %g = memref.get_global @buffer : memref<16xf32>
    %c = arith.constant 2.0 : f32
    memref.store %c, %g[%i] : memref<16xf32>
  }
  return
}

// A loop inside a sequential loop: the context slot is allocated once, at
// function entry, and filled before every call.
// CHECK-LABEL: func.func @in_sequential_loop(
// CHECK:         %[[CTX:.*]] = llvm.alloca
// CHECK:         scf.for %[[K:.*]] =
// CHECK:           %[[F:.*]] = llvm.getelementptr %[[CTX]][0, 1]
// CHECK:           %[[K64:.*]] = arith.index_cast %[[K]] : index to i64
// CHECK:           llvm.store %[[K64]], %[[F]] : i64, !llvm.ptr
// CHECK:           func.call @quench_parallel_for_work
func.func @in_sequential_loop(%m: memref<4x8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %cst = arith.constant 0.0 : f32
  scf.for %k = %c0 to %c4 step %c1 {
    scf.forall (%i) in (8) {
      memref.store %cst, %m[%k, %i] : memref<4x8xf32>
    }
  }
  return
}

// Two loops in one function get two functions with unique names.
// CHECK-LABEL: func.func @two_loops(
// CHECK:         constant @two_loops_parallel_body :
// CHECK:         constant @[[SECOND:two_loops_parallel_body_[0-9]+]] :
// CHECK-LABEL: func.func private @two_loops_parallel_body(
// CHECK:       func.func private @[[SECOND]](
func.func @two_loops(%m: memref<8xf32>, %v: f32) {
  scf.forall (%i) in (8) {
    memref.store %v, %m[%i] : memref<8xf32>
  }
  scf.forall (%i) in (8) {
    memref.store %v, %m[%i] : memref<8xf32>
  }
  return
}

// A parallel reduction stays sequential; the loop nested in it does not.
// CHECK-LABEL: func.func @reduction_stays(
// CHECK:         scf.parallel {{.*}} init
// CHECK:           call @quench_parallel_for_work
// CHECK:           scf.reduce(
func.func @reduction_stays(%m: memref<8xf32>, %o: memref<8x4xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %init = arith.constant 0.0 : f32
  %r = scf.parallel (%i) = (%c0) to (%c8) step (%c1) init (%init) -> f32 {
    %x = memref.load %m[%i] : memref<8xf32>
    scf.forall (%j) in (4) {
      memref.store %x, %o[%i, %j] : memref<8x4xf32>
    }
    scf.reduce(%x : f32) {
    ^bb0(%a: f32, %b: f32):
      %s = arith.addf %a, %b : f32
      scf.reduce.return %s : f32
    }
  }
  return %r : f32
}

// Outlined bodies are not converted again (a second run keeps nested loops
// sequential).
// CHECK-LABEL: func.func private @already_outlined(
// CHECK:         scf.forall
func.func private @already_outlined(%m: memref<8xf32>, %v: f32) attributes {quench.parallel_body} {
  scf.forall (%i) in (8) {
    memref.store %v, %m[%i] : memref<8xf32>
  }
  return
}
