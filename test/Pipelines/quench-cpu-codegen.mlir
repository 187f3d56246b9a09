// RUN: quench-opt %s --split-input-file --quench-cpu-codegen | FileCheck %s
// RUN: quench-opt %s --split-input-file --quench-cpu-codegen=vector-bits=512 | FileCheck %s --check-prefix=AVX512
// RUN: quench-opt %s --split-input-file --quench-cpu-codegen=vector-bits=0 | FileCheck %s --check-prefix=NOVEC

// The codegen stage of quench-cpu-pipeline on linalg: parallel tiles become
// scf.forall, register tiles scf.for, tiles vector ops.

// A GEMM: 6x(2 SIMD vectors) register tile on AVX2 (8 rows on AVX-512),
// accumulator carried in registers across the reduction loop.
// CHECK-LABEL: func.func @gemm
// CHECK: scf.forall
// CHECK: scf.for {{.*}} -> (vector<6x16xf32>)
// CHECK: vector.contract {{.*}} vector<6x1xf32>, vector<1x16xf32> into vector<6x16xf32>
// AVX512-LABEL: func.func @gemm
// AVX512: vector.contract {{.*}} into vector<8x32xf32>
// NOVEC-LABEL: func.func @gemm
// NOVEC-NOT: vector.
// NOVEC: linalg.matmul
func.func @gemm(%a: tensor<256x128xf32>, %b: tensor<128x512xf32>,
                %c: tensor<256x512xf32>) -> tensor<256x512xf32> {
  %r = linalg.matmul ins(%a, %b : tensor<256x128xf32>, tensor<128x512xf32>)
                     outs(%c : tensor<256x512xf32>) -> tensor<256x512xf32>
  return %r : tensor<256x512xf32>
}

// -----

// Dynamic sizes: the register-tile loops are peeled, the main part is
// vectorized without masks, the remainders with masks.
// CHECK-LABEL: func.func @gemm_dynamic
// CHECK: scf.forall
// CHECK: vector.contract {{.*}} into vector<6x16xf32>
// CHECK: vector.mask %{{.*}} { vector.contract {{.*}} into vector<6x16xf32> }
func.func @gemm_dynamic(%a: tensor<?x?xf32>, %b: tensor<?x?xf32>,
                        %c: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %r = linalg.matmul ins(%a, %b : tensor<?x?xf32>, tensor<?x?xf32>)
                     outs(%c : tensor<?x?xf32>) -> tensor<?x?xf32>
  return %r : tensor<?x?xf32>
}

// -----

// B stored [N, K] (quench.linear): rows of A and B multiplied along K and
// reduced horizontally into a 4x4 accumulator.
// CHECK-LABEL: func.func @linear
// CHECK: scf.for {{.*}} -> (vector<4x4xf32>)
// CHECK: vector.multi_reduction <add>, {{.*}} [2] : vector<4x4x32xf32> to vector<4x4xf32>
func.func @linear(%x: tensor<64x256xf32>, %w: tensor<128x256xf32>,
                  %c: tensor<64x128xf32>) -> tensor<64x128xf32> {
  %r = linalg.matmul
         indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                          affine_map<(m, n, k) -> (n, k)>,
                          affine_map<(m, n, k) -> (m, n)>]
         ins(%x, %w : tensor<64x256xf32>, tensor<128x256xf32>)
         outs(%c : tensor<64x128xf32>) -> tensor<64x128xf32>
  return %r : tensor<64x128xf32>
}

// -----

// Row reduction (softmax's max): vectors along the reduced dim.
// CHECK-LABEL: func.func @row_max
// CHECK: vector.multi_reduction <maximumf>, {{.*}} [1] : vector<1x32xf32> to vector<1xf32>
func.func @row_max(%x: tensor<64x1024xf32>, %init: tensor<64xf32>) -> tensor<64xf32> {
  %r = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i)>],
                       iterator_types = ["parallel", "reduction"]}
      ins(%x : tensor<64x1024xf32>) outs(%init : tensor<64xf32>) {
  ^bb0(%v: f32, %acc: f32):
    %m = arith.maximumf %v, %acc : f32
    linalg.yield %m : f32
  } -> tensor<64xf32>
  return %r : tensor<64xf32>
}

// -----

// Elementwise with a dynamic innermost dim: masked vectors.
// CHECK-LABEL: func.func @add_dynamic
// CHECK: vector.create_mask
// CHECK: arith.addf {{.*}} : vector<32xf32>
func.func @add_dynamic(%x: tensor<?xf32>, %y: tensor<?xf32>) -> tensor<?xf32> {
  %r = linalg.generic {indexing_maps = [affine_map<(i) -> (i)>, affine_map<(i) -> (i)>,
                                        affine_map<(i) -> (i)>],
                       iterator_types = ["parallel"]}
      ins(%x, %y : tensor<?xf32>, tensor<?xf32>) outs(%x : tensor<?xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %s = arith.addf %a, %b : f32
    linalg.yield %s : f32
  } -> tensor<?xf32>
  return %r : tensor<?xf32>
}

// -----

// quench.qlinear's i8 x i8 -> i32 product (B stored [K, N], as the
// pretranspose pass leaves a constant weight): named like the float
// contractions, so it vectorizes as register tiles of 6 rows x 16 i32
// lanes (outer products), the i8 operands read as i8 vectors.
// CHECK-LABEL: func.func @int8_gemm
// CHECK: vector.contract {{.*}} : vector<6x1xi8>, vector<1x16xi8> into vector<6x16xi32>
// NOVEC-LABEL: func.func @int8_gemm
// NOVEC-NOT: vector.
func.func @int8_gemm(%a: tensor<48x256xi8>, %b: tensor<256x128xi8>) -> tensor<48x128xi32> {
  %c0 = arith.constant 0 : i32
  %e = tensor.empty() : tensor<48x128xi32>
  %init = linalg.fill ins(%c0 : i32) outs(%e : tensor<48x128xi32>) -> tensor<48x128xi32>
  %r = linalg.generic {indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                        affine_map<(m, n, k) -> (k, n)>,
                                        affine_map<(m, n, k) -> (m, n)>],
                       iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%a, %b : tensor<48x256xi8>, tensor<256x128xi8>) outs(%init : tensor<48x128xi32>) {
  ^bb0(%x: i8, %y: i8, %acc: i32):
    %xe = arith.extsi %x : i8 to i32
    %ye = arith.extsi %y : i8 to i32
    %p = arith.muli %xe, %ye : i32
    %s = arith.addi %acc, %p : i32
    linalg.yield %s : i32
  } -> tensor<48x128xi32>
  return %r : tensor<48x128xi32>
}
