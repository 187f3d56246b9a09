// RUN: quench-opt %s --quench-cpu-dequant-matmul="vector-bits=512 code-lookup=1 int16-dot=1 int8-prefill-rows=16" | FileCheck %s
// RUN: quench-opt %s --quench-cpu-dequant-matmul="vector-bits=256 int16-dot=1 int8-prefill-rows=16" | FileCheck %s --check-prefix=AVX2
// RUN: quench-opt %s --quench-cpu-dequant-matmul="vector-bits=512 code-lookup=1 int16-dot=1" | FileCheck %s --check-prefix=OFF
// RUN: quench-opt %s --quench-cpu-dequant-matmul="vector-bits=512 code-lookup=1 int16-dot=1 int8-prefill-rows=16 int8-prefill-bits=4" | FileCheck %s --check-prefix=BITS4

// The int8-activation (prefill) form (docs/lowering.md, "Int8 activations
// for prefill"). 4-bit codes, groups of 32 (16 code bytes), symmetric
// (implicit zero point 8), 32 outputs, a dynamic row count: both forms on
// the same word panels, under scf.if rows >= 16. The int8 branch quantizes
// x per row and group with 127 / amax into [R, blocks, 2, 16] bytes and
// sums them per group; its tile (6 rows x 2 vectors) starts each group's
// partial sums at -8 * qsum, adds two vpdpbusd per row, vector and word
// step (even and odd codes; the 4 word steps of a group unrolled: 96
// calls), then scales by s * amax / 127. The else
// branch is the int16 form (32767 / amax, high and low bytes).
// CHECK: func.func private @llvm.x86.avx512.vpdpbusd.512(vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
// CHECK-LABEL: func.func @gemm4_rows
// CHECK: %[[WORDS:.*]] = arith.constant dense<623191333> : tensor<1x2x4x32xi32>
// CHECK: %[[ROWS:.*]] = tensor.dim %arg0, %{{.*}} : tensor<?x2x16x2xf32>
// CHECK: %[[BIG:.*]] = arith.cmpi uge, %[[ROWS]], %{{.*}} : index
// CHECK: scf.if %[[BIG]] -> (tensor<?x32xf32>) {
// CHECK: %[[AMAX:.*]] = linalg.generic {{.*}} ins(%arg0 : tensor<?x2x16x2xf32>) outs(%{{.*}} : tensor<?x2xf32>)
// CHECK: math.absf
// CHECK: %[[Q:.*]] = linalg.generic {{.*}} ins(%arg0, %[[AMAX]] : tensor<?x2x16x2xf32>, tensor<?x2xf32>) outs(%{{.*}} : tensor<?x2x2x16xi8>)
// CHECK: arith.constant 1.270000e+02 : f32
// CHECK: arith.trunci {{.*}} : i32 to i8
// CHECK: %[[QSUM:.*]] = linalg.generic {{.*}} ins(%[[Q]] : tensor<?x2x2x16xi8>) outs(%{{.*}} : tensor<?x2xi32>)
// CHECK: arith.extsi
// CHECK: scf.forall
// CHECK: scf.for
// CHECK: scf.for
// CHECK: tensor.extract %[[QSUM]]
// CHECK: arith.muli %{{.*}}, %c-8_i32 : i32
// CHECK: vector.broadcast %{{.*}} : i32 to vector<16xi32>
// CHECK-COUNT-96: call @llvm.x86.avx512.vpdpbusd.512
// CHECK-NOT: call @llvm.x86.avx512.vpdpbusd.512
// CHECK: tensor.extract %[[AMAX]]
// CHECK: arith.constant 0.00787401571 : f32
// CHECK: arith.sitofp %{{.*}} : vector<16xi32> to vector<16xf32>
// CHECK: vector.fma
// CHECK: } else {
// CHECK: arith.constant 3.276700e+04 : f32
// CHECK: scf.yield
// AVX2-LABEL: func.func @gemm4_rows
// AVX2: tensor<4x2x4x8xi32>
// AVX2: scf.if
// AVX2: call @llvm.x86.avx512.vpdpbusd.256
// With int8-prefill-bits=4 (quench-compile's default, auto), 4-bit codes
// take the int8 form and 8-bit codes keep the int16 form.
// BITS4-LABEL: func.func @gemm4_rows
// BITS4: scf.if
// BITS4: 1.270000e+02
// BITS4-LABEL: func.func @gemm8_zp_static
// BITS4-NOT: 1.270000e+02
// BITS4: arith.constant 3.263900e+04 : f32
// OFF-LABEL: func.func @gemm4_rows
// OFF-NOT: scf.if
// OFF-NOT: 1.270000e+02
// OFF: arith.constant 3.276700e+04 : f32
#x = affine_map<(r, b, j, h, n) -> (r, b, j, h)>
#q = affine_map<(r, b, j, h, n) -> (b, j, n)>
#s = affine_map<(r, b, j, h, n) -> (b, n)>
#y = affine_map<(r, b, j, h, n) -> (r, n)>
func.func @gemm4_rows(%x: tensor<?x2x16x2xf32>, %acc: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %c8_i32 = arith.constant 8 : i32
  %c15_i32 = arith.constant 15 : i32
  %c4_i32 = arith.constant 4 : i32
  %codes = arith.constant dense<37> : tensor<2x16x32xi8>
  %scales = arith.constant dense<0.5> : tensor<2x32xf16>
  %r = linalg.generic {indexing_maps = [#x, #q, #s, #y],
                       iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]}
      ins(%x, %codes, %scales : tensor<?x2x16x2xf32>, tensor<2x16x32xi8>, tensor<2x32xf16>)
      outs(%acc : tensor<?x32xf32>) attrs = {quench.dequant_matmul} {
  ^bb0(%in: f32, %byte: i8, %scale: f16, %out: f32):
    %0 = arith.extui %byte : i8 to i32
    %1 = linalg.index 3 : index
    %2 = arith.index_castui %1 : index to i32
    %3 = arith.muli %2, %c4_i32 : i32
    %4 = arith.shrui %0, %3 : i32
    %5 = arith.andi %4, %c15_i32 : i32
    %6 = arith.extf %scale : f16 to f32
    %7 = arith.subi %5, %c8_i32 : i32
    %8 = arith.sitofp %7 : i32 to f32
    %9 = arith.mulf %8, %6 : f32
    %10 = arith.mulf %in, %9 : f32
    %11 = arith.addf %out, %10 : f32
    linalg.yield %11 : f32
  } -> tensor<?x32xf32>
  return %r : tensor<?x32xf32>
}

// 8-bit codes per output channel (K = 64: one block), explicit zero
// points, a static row count: 32 rows take the int8 form alone (no
// scf.if), one vpdpbusd per row and vector per word step, the zero point
// times the block sum of q subtracted per block; 8 rows (below the
// threshold) keep the int16 form.
// CHECK-LABEL: func.func @gemm8_zp_static
// CHECK-NOT: scf.if
// CHECK: arith.constant 1.270000e+02 : f32
// CHECK: scf.forall
// CHECK-COUNT-12: call @llvm.x86.avx512.vpdpbusd.512
// CHECK: arith.extui %{{.*}} : vector<16xi8> to vector<16xi32>
// CHECK: arith.muli %{{.*}} : vector<16xi32>
// CHECK: arith.subi %{{.*}} : vector<16xi32>
// CHECK-NOT: 3.263900e+04
// CHECK: return
// CHECK-LABEL: func.func @gemm8_zp_few
// CHECK-NOT: 1.270000e+02
// CHECK: arith.constant 3.263900e+04 : f32
func.func @gemm8_zp_static(%x: tensor<32x1x64x1xf32>) -> tensor<32x32xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<32x32xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<32x32xf32>) -> tensor<32x32xf32>
  %codes = arith.constant dense<200> : tensor<1x64x32xi8>
  %scales = arith.constant dense<0.25> : tensor<1x32xf32>
  %zp = arith.constant dense<3> : tensor<1x32xi8>
  %y = linalg.generic {indexing_maps = [#x, #q, #s, #s, #y],
                       iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]}
      ins(%x, %codes, %scales, %zp : tensor<32x1x64x1xf32>, tensor<1x64x32xi8>, tensor<1x32xf32>, tensor<1x32xi8>)
      outs(%acc : tensor<32x32xf32>) attrs = {quench.dequant_matmul} {
  ^bb0(%in: f32, %byte: i8, %scale: f32, %z: i8, %out: f32):
    %0 = arith.extui %byte : i8 to i32
    %1 = arith.extui %z : i8 to i32
    %2 = arith.subi %0, %1 : i32
    %3 = arith.sitofp %2 : i32 to f32
    %4 = arith.mulf %3, %scale : f32
    %5 = arith.mulf %in, %4 : f32
    %6 = arith.addf %out, %5 : f32
    linalg.yield %6 : f32
  } -> tensor<32x32xf32>
  return %y : tensor<32x32xf32>
}

func.func @gemm8_zp_few(%x: tensor<8x1x64x1xf32>) -> tensor<8x32xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<8x32xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<8x32xf32>) -> tensor<8x32xf32>
  %codes = arith.constant dense<200> : tensor<1x64x32xi8>
  %scales = arith.constant dense<0.25> : tensor<1x32xf32>
  %zp = arith.constant dense<3> : tensor<1x32xi8>
  %y = linalg.generic {indexing_maps = [#x, #q, #s, #s, #y],
                       iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]}
      ins(%x, %codes, %scales, %zp : tensor<8x1x64x1xf32>, tensor<1x64x32xi8>, tensor<1x32xf32>, tensor<1x32xi8>)
      outs(%acc : tensor<8x32xf32>) attrs = {quench.dequant_matmul} {
  ^bb0(%in: f32, %byte: i8, %scale: f32, %z: i8, %out: f32):
    %0 = arith.extui %byte : i8 to i32
    %1 = arith.extui %z : i8 to i32
    %2 = arith.subi %0, %1 : i32
    %3 = arith.sitofp %2 : i32 to f32
    %4 = arith.mulf %3, %scale : f32
    %5 = arith.mulf %in, %4 : f32
    %6 = arith.addf %out, %5 : f32
    linalg.yield %6 : f32
  } -> tensor<8x32xf32>
  return %y : tensor<8x32xf32>
}
