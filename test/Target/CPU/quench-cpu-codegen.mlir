// RUN: quench-opt %s --split-input-file --quench-cpu-codegen | FileCheck %s
// RUN: quench-opt %s --split-input-file --quench-cpu-codegen=vector-bits=512 | FileCheck %s --check-prefix=AVX512
// RUN: quench-opt %s --split-input-file --quench-cpu-codegen=vector-bits=0 | FileCheck %s --check-prefix=NOVEC
// RUN: quench-opt %s --split-input-file --quench-cpu-codegen=attention-kernel=0 | FileCheck %s --check-prefix=DECOMP

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

// Dynamic sizes: below 4 rows, row by row (matrix-vector tiles); else the
// register-tile loops are peeled, the main part is vectorized without
// masks, the remainders with masked reads that pad with zeros and an
// unmasked contraction (its extra lanes add zeros; the masked write drops
// them).
// CHECK-LABEL: func.func @gemm_dynamic
// CHECK: %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK: scf.if
// CHECK: vector.contract {{.*}} : vector<1x8xf32>, vector<8x64xf32> into vector<1x64xf32>
// CHECK: } else {
// CHECK: scf.forall
// CHECK: vector.contract {{.*}} into vector<6x16xf32>
// CHECK: vector.transfer_read %{{.*}}[%c0, %c0], %[[ZERO]], %{{.*}} {in_bounds = [true, true]} : tensor<?x16xf32>, vector<6x16xf32>
// CHECK-NEXT: vector.contract {{.*}} into vector<6x16xf32>
// CHECK-NOT: vector.mask %{{.*}} { vector.contract
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

// -----

// Epilogue fusion, W8A8: quench.qlinear's i8 x i8 -> i32 product whose only
// user rescales to f32, applies tanh and requantizes to i8 for the next
// layer. The product is computed inside the epilogue's register tiles: each
// 6 x 16 i32 accumulator starts from zero in registers and runs over all
// of K; then its rows go through the epilogue one after the other (rows
// unrolled, read from the K loop's vector result) and are stored as i8.
// No i32 tensor anywhere.
// CHECK-LABEL: func.func @w8a8_epilogue
// CHECK-NOT: tensor<{{[0-9x]+}}xi32>
// CHECK: %[[ZERO:.*]] = arith.constant dense<0> : vector<6x16xi32>
// CHECK-NOT: tensor<{{[0-9x]+}}xi32>
// CHECK: scf.forall
// CHECK: %[[ACC:.*]] = scf.for {{.*}} iter_args(%{{.*}} = %[[ZERO]]) -> (vector<6x16xi32>)
// CHECK: vector.contract {{.*}} : vector<6x1xi8>, vector<1x16xi8> into vector<6x16xi32>
// CHECK: %[[ROW0:.*]] = vector.extract %[[ACC]][0] : vector<16xi32> from vector<6x16xi32>
// CHECK: %[[R0:.*]] = vector.shape_cast %[[ROW0]]
// CHECK: arith.sitofp %[[R0]] : vector<1x16xi32> to vector<1x16xf32>
// CHECK: math.tanh {{.*}} : vector<1x16xf32>
// CHECK: %[[Q:.*]] = arith.trunci {{.*}} : vector<1x16xi32> to vector<1x16xi8>
// CHECK: vector.transfer_write %[[Q]], {{.*}} : vector<1x16xi8>, tensor<1x16xi8>
// CHECK: vector.extract %[[ACC]][5] : vector<16xi32> from vector<6x16xi32>
// CHECK-NOT: tensor<{{[0-9x]+}}xi32>
// CHECK: return
// AVX512-LABEL: func.func @w8a8_epilogue
// AVX512: %[[ACC:.*]] = scf.for {{.*}} -> (vector<8x32xi32>)
// AVX512: vector.extract %[[ACC]][7] : vector<32xi32> from vector<8x32xi32>
// NOVEC-LABEL: func.func @w8a8_epilogue
// NOVEC: linalg.generic
// NOVEC: linalg.generic
func.func @w8a8_epilogue(%a: tensor<48x256xi8>, %b: tensor<256x128xi8>,
                         %ws: tensor<128xf32>) -> tensor<48x128xi8> {
  %c0 = arith.constant 0 : i32
  %sx = arith.constant 0.03125 : f32
  %sy = arith.constant 0.0078125 : f32
  %lo = arith.constant -127.0 : f32
  %hi = arith.constant 127.0 : f32
  %e = tensor.empty() : tensor<48x128xi32>
  %init = linalg.fill ins(%c0 : i32) outs(%e : tensor<48x128xi32>) -> tensor<48x128xi32>
  %acc = linalg.generic {indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                          affine_map<(m, n, k) -> (k, n)>,
                                          affine_map<(m, n, k) -> (m, n)>],
                         iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%a, %b : tensor<48x256xi8>, tensor<256x128xi8>) outs(%init : tensor<48x128xi32>) {
  ^bb0(%x: i8, %y: i8, %s: i32):
    %xe = arith.extsi %x : i8 to i32
    %ye = arith.extsi %y : i8 to i32
    %p = arith.muli %xe, %ye : i32
    %r = arith.addi %s, %p : i32
    linalg.yield %r : i32
  } -> tensor<48x128xi32>
  %eq = tensor.empty() : tensor<48x128xi8>
  %q = linalg.generic {indexing_maps = [affine_map<(m, n) -> (m, n)>,
                                        affine_map<(m, n) -> (n)>,
                                        affine_map<(m, n) -> (m, n)>],
                       iterator_types = ["parallel", "parallel"]}
      ins(%acc, %ws : tensor<48x128xi32>, tensor<128xf32>) outs(%eq : tensor<48x128xi8>) {
  ^bb0(%v: i32, %w: f32, %o: i8):
    %f = arith.sitofp %v : i32 to f32
    %f1 = arith.mulf %f, %sx : f32
    %f2 = arith.mulf %f1, %w : f32
    %t = math.tanh %f2 : f32
    %d = arith.divf %t, %sy : f32
    %rd = math.roundeven %d : f32
    %c1 = arith.maxnumf %rd, %lo : f32
    %c2 = arith.minnumf %c1, %hi : f32
    %i = arith.fptosi %c2 : f32 to i32
    %i8 = arith.trunci %i : i32 to i8
    linalg.yield %i8 : i8
  } -> tensor<48x128xi8>
  return %q : tensor<48x128xi8>
}

// -----

// Epilogue fusion, float: a linear (B already [K, N]) whose bias add and
// GELU follow it. One parallel loop nest: the accumulators go from the K
// loop straight into the epilogue, row by row, which writes the result.
// CHECK-LABEL: func.func @linear_gelu_epilogue
// CHECK: %[[ZERO:.*]] = arith.constant dense<0.000000e+00> : vector<6x16xf32>
// CHECK: scf.forall
// CHECK: %[[ACC:.*]] = scf.for {{.*}} iter_args(%{{.*}} = %[[ZERO]]) -> (vector<6x16xf32>)
// CHECK: vector.contract {{.*}} into vector<6x16xf32>
// CHECK: %[[ROW0:.*]] = vector.extract %[[ACC]][0] : vector<16xf32> from vector<6x16xf32>
// CHECK: %[[R0:.*]] = vector.shape_cast %[[ROW0]]
// CHECK: arith.addf %[[R0]], {{.*}} : vector<1x16xf32>
// CHECK: math.erf {{.*}} : vector<1x16xf32>
// CHECK: vector.transfer_write {{.*}} : vector<1x16xf32>, tensor<1x16xf32>
// CHECK-NOT: scf.forall (
// CHECK: return
func.func @linear_gelu_epilogue(%x: tensor<96x256xf32>, %w: tensor<256x128xf32>,
                                %bias: tensor<128xf32>) -> tensor<96x128xf32> {
  %zero = arith.constant 0.0 : f32
  %half = arith.constant 0.5 : f32
  %one = arith.constant 1.0 : f32
  %rsqrt2 = arith.constant 0.707106769 : f32
  %e = tensor.empty() : tensor<96x128xf32>
  %init = linalg.fill ins(%zero : f32) outs(%e : tensor<96x128xf32>) -> tensor<96x128xf32>
  %mm = linalg.matmul ins(%x, %w : tensor<96x256xf32>, tensor<256x128xf32>)
                      outs(%init : tensor<96x128xf32>) -> tensor<96x128xf32>
  %e2 = tensor.empty() : tensor<96x128xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(m, n) -> (m, n)>,
                                        affine_map<(m, n) -> (n)>,
                                        affine_map<(m, n) -> (m, n)>],
                       iterator_types = ["parallel", "parallel"]}
      ins(%mm, %bias : tensor<96x128xf32>, tensor<128xf32>) outs(%e2 : tensor<96x128xf32>) {
  ^bb0(%v: f32, %b: f32, %o: f32):
    %s = arith.addf %v, %b : f32
    %a = arith.mulf %s, %rsqrt2 : f32
    %er = math.erf %a : f32
    %h = arith.mulf %s, %half : f32
    %p = arith.addf %er, %one : f32
    %g = arith.mulf %h, %p : f32
    linalg.yield %g : f32
  } -> tensor<96x128xf32>
  return %y : tensor<96x128xf32>
}

// -----

// Not fused: the product has a second user (the function's result). It is
// computed once into its own tensor, and the epilogue is a separate loop
// nest reading it.
// CHECK-LABEL: func.func @two_users
// CHECK: scf.forall
// CHECK: scf.for {{.*}} -> (vector<6x16xf32>)
// CHECK: vector.contract {{.*}} into vector<6x16xf32>
// CHECK: vector.transfer_write {{.*}} : vector<6x16xf32>, tensor<6x16xf32>
// CHECK: scf.forall.in_parallel
// CHECK: math.tanh
// CHECK: return
func.func @two_users(%x: tensor<96x256xf32>, %w: tensor<256x128xf32>)
    -> (tensor<96x128xf32>, tensor<96x128xf32>) {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<96x128xf32>
  %init = linalg.fill ins(%zero : f32) outs(%e : tensor<96x128xf32>) -> tensor<96x128xf32>
  %mm = linalg.matmul ins(%x, %w : tensor<96x256xf32>, tensor<256x128xf32>)
                      outs(%init : tensor<96x128xf32>) -> tensor<96x128xf32>
  %e2 = tensor.empty() : tensor<96x128xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(m, n) -> (m, n)>,
                                        affine_map<(m, n) -> (m, n)>],
                       iterator_types = ["parallel", "parallel"]}
      ins(%mm : tensor<96x128xf32>) outs(%e2 : tensor<96x128xf32>) {
  ^bb0(%v: f32, %o: f32):
    %t = math.tanh %v : f32
    linalg.yield %t : f32
  } -> tensor<96x128xf32>
  return %mm, %y : tensor<96x128xf32>, tensor<96x128xf32>
}

// -----

// Epilogue fusion into tasks only: a matrix x vector product streams B's
// rows (8 per step for f32) with its K loop outermost, so no register tile holds a finished
// sum; each task computes its 1024 columns, then runs the epilogue (SiLU)
// on them, in the same task.
// CHECK-LABEL: func.func @gemv_epilogue
// CHECK: scf.forall
// CHECK: scf.for %{{.*}} = %c0 to %c512 step %c8
// CHECK: vector.contract
// CHECK-NOT: scf.forall.in_parallel
// CHECK: math.exp {{.*}} : vector<1x32xf32>
// CHECK: scf.forall.in_parallel
// CHECK-NOT: math.exp
// CHECK: return
func.func @gemv_epilogue(%x: tensor<1x512xf32>, %w: tensor<512x4096xf32>) -> tensor<1x4096xf32> {
  %zero = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
  %e = tensor.empty() : tensor<1x4096xf32>
  %init = linalg.fill ins(%zero : f32) outs(%e : tensor<1x4096xf32>) -> tensor<1x4096xf32>
  %mm = linalg.matmul ins(%x, %w : tensor<1x512xf32>, tensor<512x4096xf32>)
                      outs(%init : tensor<1x4096xf32>) -> tensor<1x4096xf32>
  %e2 = tensor.empty() : tensor<1x4096xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(m, n) -> (m, n)>,
                                        affine_map<(m, n) -> (m, n)>],
                       iterator_types = ["parallel", "parallel"]}
      ins(%mm : tensor<1x4096xf32>) outs(%e2 : tensor<1x4096xf32>) {
  ^bb0(%v: f32, %o: f32):
    %n = arith.negf %v : f32
    %x1 = math.exp %n : f32
    %d = arith.addf %x1, %one : f32
    %s = arith.divf %v, %d : f32
    linalg.yield %s : f32
  } -> tensor<1x4096xf32>
  return %y : tensor<1x4096xf32>
}

// -----

// A small batch (M = 16 <= kMaxThinRows) of a B of 4 MiB takes the
// matrix-vector plan: B streamed once, the K loop (8 rows of B per step)
// outermost in each task, register tiles of the blocked tile's rows (8 on
// AVX-512, 6 on AVX2) x 24 (12) accumulators inside it. The same batch times a cache-sized B keeps
// the blocked plan (K blocks of 256 inside the register tiles' loops).
// CHECK-LABEL: func.func @small_batch
// CHECK: scf.forall
// CHECK-NEXT: tensor.extract_slice
// CHECK: scf.for %{{.*}} = %c0 to %c1024 step %c8
// CHECK: scf.for %{{.*}} = %c0 to %c256 step %c16
// CHECK: scf.for %{{.*}} = %c0 to %c12 step %c6
// CHECK: vector.contract {{.*}} : vector<6x8xf32>, vector<8x16xf32> into vector<6x16xf32>
// CHECK: vector.contract {{.*}} : vector<4x8xf32>, vector<8x16xf32> into vector<4x16xf32>
// AVX512-LABEL: func.func @small_batch
// AVX512: scf.for %{{.*}} = %c0 to %c1024 step %c8
// AVX512: step %c48
// AVX512: scf.for %{{.*}} = %c0 to %c16 step %c8
// AVX512: vector.contract {{.*}} : vector<8x8xf32>, vector<8x48xf32> into vector<8x48xf32>
// CHECK-LABEL: func.func @small_batch_cached
// CHECK-NOT: step %c8 iter_args
// CHECK: vector.contract {{.*}} : vector<6x1xf32>, vector<1x16xf32> into vector<6x16xf32>
#mk = affine_map<(m, n, k) -> (m, k)>
#kn = affine_map<(m, n, k) -> (k, n)>
#mn = affine_map<(m, n, k) -> (m, n)>
func.func @small_batch(%x: tensor<16x1024xf32>, %w: tensor<1024x1024xf32>) -> tensor<16x1024xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<16x1024xf32>
  %init = linalg.fill ins(%zero : f32) outs(%e : tensor<16x1024xf32>) -> tensor<16x1024xf32>
  %mm = linalg.generic {indexing_maps = [#mk, #kn, #mn],
                        iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : tensor<16x1024xf32>, tensor<1024x1024xf32>)
      outs(%init : tensor<16x1024xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  } -> tensor<16x1024xf32>
  return %mm : tensor<16x1024xf32>
}
func.func @small_batch_cached(%x: tensor<16x64xf32>, %w: tensor<64x64xf32>) -> tensor<16x64xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<16x64xf32>
  %init = linalg.fill ins(%zero : f32) outs(%e : tensor<16x64xf32>) -> tensor<16x64xf32>
  %mm = linalg.generic {indexing_maps = [#mk, #kn, #mn],
                        iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : tensor<16x64xf32>, tensor<64x64xf32>)
      outs(%init : tensor<16x64xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  } -> tensor<16x64xf32>
  return %mm : tensor<16x64xf32>
}

// -----

// Fused attention: the vectorized kernel (quench-cpu-attention) by default;
// with attention-kernel=0 (and at vector-bits=0) the linalg decomposition.
// CHECK-LABEL: func.func @attention
// CHECK-NOT: quench.attention
// CHECK: scf.forall
// CHECK: vector.shuffle
// CHECK: math.exp {{.*}} : vector<8xf32>
// DECOMP-LABEL: func.func @attention
// DECOMP-NOT: vector.shuffle
// DECOMP: math.exp
// DECOMP-NOT: quench.attention
// NOVEC-LABEL: func.func @attention
// NOVEC-NOT: vector.
// NOVEC: linalg.generic
func.func @attention(%q: tensor<1x4x1x16xf32>, %k: tensor<1x2x?x16xf16>,
                     %v: tensor<1x2x?x16xf16>) -> tensor<1x4x1x16xf32> {
  %r = quench.attention %q, %k, %v {scale = 2.500000e-01 : f64}
      : (tensor<1x4x1x16xf32>, tensor<1x2x?x16xf16>, tensor<1x2x?x16xf16>)
      -> tensor<1x4x1x16xf32>
  return %r : tensor<1x4x1x16xf32>
}
