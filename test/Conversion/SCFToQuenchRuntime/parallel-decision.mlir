// RUN: quench-opt %s --convert-scf-to-quench-runtime | FileCheck %s
// RUN: quench-opt %s --convert-scf-to-quench-runtime="min-parallel-work=1000" | FileCheck %s --check-prefix=LOW

// Parallelism is decided per loop from its work, iterations x the estimated
// operations of one iteration (estimateParallelIterationCost): loops with
// constant trip counts below min-parallel-work (default 16384) stay
// sequential where they are; the others, and every loop with a run-time
// trip count, go to quench_parallel_for_work with their cost, and the
// runtime decides from n * cost and its measured dispatch cost.

// 512 iterations of 3 operations (load, mulf, store): 1536 < 16384.
// CHECK-LABEL: func.func @small_static(
// CHECK:         scf.forall (%{{.*}}) in (512)
// CHECK-NOT:     quench_parallel_for_work
// CHECK:         return
// LOW-LABEL: func.func @small_static(
// LOW:         %[[COST:.*]] = arith.constant 3 : i64
// LOW:         call @quench_parallel_for_work(%{{.*}}, %{{.*}}, %[[COST]],
func.func @small_static(%in: memref<512xf32>, %out: memref<512xf32>, %s: f32) {
  scf.forall (%i) in (512) {
    %x = memref.load %in[%i] : memref<512xf32>
    %y = arith.mulf %x, %s : f32
    memref.store %y, %out[%i] : memref<512xf32>
  }
  return
}

// 64 rows of an inner loop of 1024 x 3 operations: 64 x 3072 = 196608 >=
// 16384.
// CHECK-LABEL: func.func @large_static(
// CHECK-NOT:     scf.forall
// CHECK:         %[[COST:.*]] = arith.constant 3072 : i64
// CHECK:         call @quench_parallel_for_work(%{{.*}}, %{{.*}}, %[[COST]],
func.func @large_static(%in: memref<64x1024xf32>, %out: memref<64x1024xf32>,
                        %s: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c1024 = arith.constant 1024 : index
  scf.forall (%i) in (64) {
    scf.for %j = %c0 to %c1024 step %c1 {
      %x = memref.load %in[%i, %j] : memref<64x1024xf32>
      %y = arith.mulf %x, %s : f32
      memref.store %y, %out[%i, %j] : memref<64x1024xf32>
    }
  }
  return
}

// The same small body over a run-time extent: the work is only known at run
// time, so the runtime decides (serial below two chunks' worth of work).
// CHECK-LABEL: func.func @small_dynamic(
// CHECK:         %[[COST:.*]] = arith.constant 3 : i64
// CHECK:         call @quench_parallel_for_work(%{{.*}}, %{{.*}}, %[[COST]],
func.func @small_dynamic(%in: memref<?xf32>, %out: memref<?xf32>, %s: f32,
                         %n: index) {
  scf.forall (%i) in (%n) {
    %x = memref.load %in[%i] : memref<?xf32>
    %y = arith.mulf %x, %s : f32
    memref.store %y, %out[%i] : memref<?xf32>
  }
  return
}

// Two vector ops of 64 lanes (8 estimated operations each, one per 8 lanes)
// and a store: 17 per iteration, x 1024 = 17408 >= 16384.
// CHECK-LABEL: func.func @vector_static(
// CHECK:         %[[COST:.*]] = arith.constant 17 : i64
// CHECK:         call @quench_parallel_for_work(%{{.*}}, %{{.*}}, %[[COST]],
func.func @vector_static(%in: memref<1024x64xf32>, %out: memref<1024x64xf32>,
                         %s: vector<64xf32>) {
  %c0 = arith.constant 0 : index
  %pad = arith.constant 0.0 : f32
  scf.forall (%i) in (1024) {
    %x = vector.transfer_read %in[%i, %c0], %pad : memref<1024x64xf32>, vector<64xf32>
    %y = arith.mulf %x, %s : vector<64xf32>
    vector.transfer_write %y, %out[%i, %c0] : vector<64xf32>, memref<1024x64xf32>
  }
  return
}

// Inner loops up to a tile-size bound: min(344 - i, 256) is at most 256, so
// the full-tile loop runs at most 256 floordiv 32 = 8 times and the remainder
// loop at most 256 times (without the bound both would count 256 trips:
// 2 + 256 + 256 = 514).
// CHECK-LABEL: func.func @tile_bounded(
// CHECK:         %[[COST:.*]] = arith.constant 266 : i64
// CHECK:         call @quench_parallel_for_work(%{{.*}}, %{{.*}}, %[[COST]],
func.func @tile_bounded(%m: memref<344x256xf32>, %v: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c32 = arith.constant 32 : index
  %n = memref.dim %m, %c0 : memref<344x256xf32>
  scf.forall (%i) = (0) to (%n) step (256) {
    %t = affine.min affine_map<(d0) -> (-d0 + 344, 256)>(%i)
    %full = affine.apply affine_map<()[s0] -> ((s0 floordiv 32) * 32)>()[%t]
    scf.for %j = %c0 to %full step %c32 {
      memref.store %v, %m[%i, %j] : memref<344x256xf32>
    }
    scf.for %j = %full to %t step %c1 {
      memref.store %v, %m[%i, %j] : memref<344x256xf32>
    }
  }
  return
}
