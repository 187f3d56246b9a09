// RUN: quench-opt %s --split-input-file --quench-cpu-lower-vector | FileCheck %s

// The to-llvm stage's vector lowering alone. A contraction becomes outer
// products: per row of the accumulator, a broadcast of the A element and
// one vector.fma.
// CHECK-LABEL: func.func @contract
// CHECK-NOT: vector.contract
// CHECK: %[[B:.*]] = vector.extract %arg1[0] : vector<8xf32> from vector<1x8xf32>
// CHECK: %[[A0:.*]] = vector.extract %arg0[0, 0] : f32 from vector<2x1xf32>
// CHECK: %[[A0V:.*]] = vector.broadcast %[[A0]] : f32 to vector<8xf32>
// CHECK: vector.fma %[[A0V]], %[[B]], %{{.*}} : vector<8xf32>
// CHECK: vector.extract %arg0[1, 0]
// CHECK: vector.fma
#a = affine_map<(m, n, k) -> (m, k)>
#b = affine_map<(m, n, k) -> (k, n)>
#c = affine_map<(m, n, k) -> (m, n)>
func.func @contract(%x: vector<2x1xf32>, %w: vector<1x8xf32>, %acc: vector<2x8xf32>) -> vector<2x8xf32> {
  %r = vector.contract {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"], kind = #vector.kind<add>}
      %x, %w, %acc : vector<2x1xf32>, vector<1x8xf32> into vector<2x8xf32>
  return %r : vector<2x8xf32>
}

// -----

// Integer contractions with narrower operands: the operands are
// sign-extended to the accumulator type first, then unrolled the same way
// (multiply and add).
// CHECK-LABEL: func.func @contract_i8
// CHECK: arith.extsi %arg0 : vector<2x1xi8> to vector<2x1xi32>
// CHECK: arith.extsi %arg1 : vector<1x8xi8> to vector<1x8xi32>
// CHECK-NOT: vector.contract
// CHECK: arith.muli {{.*}} : vector<8xi32>
// CHECK: arith.addi {{.*}} : vector<8xi32>
#a = affine_map<(m, n, k) -> (m, k)>
#b = affine_map<(m, n, k) -> (k, n)>
#c = affine_map<(m, n, k) -> (m, n)>
func.func @contract_i8(%x: vector<2x1xi8>, %w: vector<1x8xi8>, %acc: vector<2x8xi32>) -> vector<2x8xi32> {
  %r = vector.contract {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"], kind = #vector.kind<add>}
      %x, %w, %acc : vector<2x1xi8>, vector<1x8xi8> into vector<2x8xi32>
  return %r : vector<2x8xi32>
}

// -----

// Reductions along the innermost dim: one horizontal reduction per row.
// CHECK-LABEL: func.func @row_sum
// CHECK-NOT: vector.multi_reduction
// CHECK-COUNT-4: vector.reduction <add>, {{.*}} : vector<8xf32> into f32
func.func @row_sum(%x: vector<4x8xf32>, %acc: vector<4xf32>) -> vector<4xf32> {
  %r = vector.multi_reduction <add>, %x, %acc [1] : vector<4x8xf32> to vector<4xf32>
  return %r : vector<4xf32>
}

// -----

// exp (vector and scalar alike) becomes a polynomial; sqrt, which has an
// instruction, stays.
// CHECK-LABEL: func.func @exp
// CHECK-NOT: math.exp
// CHECK: math.fma {{.*}} : vector<8xf32>
// CHECK: math.fma {{.*}} : f32
// CHECK: math.sqrt %arg0 : vector<8xf32>
func.func @exp(%x: vector<8xf32>, %s: f32) -> (vector<8xf32>, f32, vector<8xf32>) {
  %v = math.exp %x : vector<8xf32>
  %e = math.exp %s : f32
  %q = math.sqrt %x : vector<8xf32>
  return %v, %e, %q : vector<8xf32>, f32, vector<8xf32>
}

// -----

// Transposes become 1-D shuffles.
// CHECK-LABEL: func.func @transpose
// CHECK-NOT: vector.transpose
// CHECK: vector.shuffle {{.*}} [0, 4, 1, 5, 2, 6, 3, 7] : vector<8xf32>, vector<8xf32>
func.func @transpose(%x: vector<2x4xf32>) -> vector<4x2xf32> {
  %t = vector.transpose %x, [1, 0] : vector<2x4xf32> to vector<4x2xf32>
  return %t : vector<4x2xf32>
}

// -----

// A masked transfer takes its mask as an operand (no vector.mask region).
// CHECK-LABEL: func.func @masked_read
// CHECK-NOT: vector.mask
// CHECK: %[[M:.*]] = vector.create_mask %arg1 : vector<8xi1>
// CHECK: vector.transfer_read %arg0[%{{.*}}], %{{.*}}, %[[M]] : memref<?xf32>, vector<8xf32>
func.func @masked_read(%m: memref<?xf32>, %n: index) -> vector<8xf32> {
  %c0 = arith.constant 0 : index
  %pad = arith.constant 0.0 : f32
  %mask = vector.create_mask %n : vector<8xi1>
  %r = vector.mask %mask { vector.transfer_read %m[%c0], %pad : memref<?xf32>, vector<8xf32> } : vector<8xi1> -> vector<8xf32>
  return %r : vector<8xf32>
}
