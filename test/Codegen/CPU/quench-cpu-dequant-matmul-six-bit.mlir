// RUN: quench-opt %s --quench-cpu-dequant-matmul="vector-bits=512 code-lookup=1 int16-dot=0" | FileCheck %s
// RUN: quench-opt %s --quench-cpu-dequant-matmul="vector-bits=512 code-lookup=1 int16-dot=1" | FileCheck %s --check-prefix=INT16
// RUN: quench-opt %s --quench-cpu-dequant-matmul="vector-bits=512 code-lookup=0" | FileCheck %s --check-prefix=NOLOOKUP

// GGUF q6_K layers (8-bit codes in [96, 159] with the implicit zero point
// 128, f32 scales of groups of 16 that factor into an f16 per 256 codes
// times an int8) take the 6-bit forms of KQuantMatmul.cpp: a 4-bit and a
// 2-bit plane of the codes, int8 group scales and f16 super-block scales in
// panels (64 features for one static row, else 32). With float activations
// the codes are converted by two vpermps lookups; with int16 ones
// (int16-dot, no float-activation promise) code bytes are assembled from
// the planes and multiplied by vpdpbusd. 40 features: one whole panel of
// 32 and a padded one. Codes outside the 6-bit range keep the 8-bit forms;
// so does every layer without the lookups (code-lookup=0).

// CHECK: func.func private @llvm.x86.avx512.permvar.sf.512
// CHECK-LABEL: func.func @gemv_q6
// CHECK-DAG: arith.constant dense_resource<quench_q6_lo{{.*}}> : tensor<1x16x2x64xi32>
// CHECK-DAG: arith.constant dense_resource<quench_q6_hi{{.*}}> : tensor<1x16x1x64xi32>
// CHECK-DAG: arith.constant dense_resource<quench_q6_sc{{.*}}> : tensor<1x16x64xi8>
// CHECK-DAG: arith.constant dense_resource<quench_q6_d{{.*}}> : tensor<1x1x64xf16>
// CHECK: scf.forall
// CHECK: arith.extf {{.*}} : vector<16xf16> to vector<16xf32>
// CHECK: call @llvm.x86.avx512.permvar.sf.512
// CHECK: arith.sitofp {{.*}} : vector<16xi8> to vector<16xf32>
// CHECK-LABEL: func.func @gemm_q6
// CHECK-DAG: tensor<2x16x2x32xi32>
// CHECK-DAG: tensor<2x1x32xf16>
// CHECK: call @llvm.x86.avx512.permvar.sf.512
// CHECK-LABEL: func.func @gemv_not_six_bit
// CHECK-NOT: quench_q6
// CHECK: return

// INT16-LABEL: func.func @gemv_q6
// INT16: dense_resource<quench_q6_lo{{.*}}> : tensor<1x16x2x64xi32>
// INT16-NOT: permvar
// INT16: arith.constant dense<252645135> : vector<16xi32>
// INT16: arith.constant dense<808464432> : vector<16xi32>
// INT16: arith.ori {{.*}} : vector<16xi32>
// INT16: call @llvm.x86.avx512.vpdpbusd.512
// INT16-NOT: permvar
// INT16-LABEL: func.func @gemm_q6
// INT16: tensor<2x16x2x32xi32>
// INT16: call @llvm.x86.avx512.vpdpbusd.512
// INT16-LABEL: func.func @gemv_not_six_bit
// INT16-NOT: quench_q6
// INT16: vpdpbusd
// INT16: return

// NOLOOKUP-NOT: quench_q6
// NOLOOKUP-NOT: permvar

#x = affine_map<(r, b, j, h, n) -> (r, b, j, h)>
#q = affine_map<(r, b, j, h, n) -> (b, j, n)>
#s = affine_map<(r, b, j, h, n) -> (b, n)>
#y = affine_map<(r, b, j, h, n) -> (r, n)>
module {
func.func @gemv_q6(%x: tensor<1x16x16x1xf32>, %acc: tensor<1x40xf32>) -> tensor<1x40xf32> {
  %c128_i32 = arith.constant 128 : i32
  %codes = arith.constant dense<100> : tensor<16x16x40xi8>
  %scales = arith.constant dense<0.375> : tensor<16x40xf32>
  %r = linalg.generic {indexing_maps = [#x, #q, #s, #y],
                       iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]}
      ins(%x, %codes, %scales : tensor<1x16x16x1xf32>, tensor<16x16x40xi8>, tensor<16x40xf32>)
      outs(%acc : tensor<1x40xf32>) attrs = {quench.dequant_matmul} {
  ^bb0(%in: f32, %byte: i8, %scale: f32, %out: f32):
    %0 = arith.extui %byte : i8 to i32
    %7 = arith.subi %0, %c128_i32 : i32
    %8 = arith.sitofp %7 : i32 to f32
    %9 = arith.mulf %8, %scale : f32
    %10 = arith.mulf %in, %9 : f32
    %11 = arith.addf %out, %10 : f32
    linalg.yield %11 : f32
  } -> tensor<1x40xf32>
  return %r : tensor<1x40xf32>
}
func.func @gemm_q6(%x: tensor<?x16x16x1xf32>, %acc: tensor<?x40xf32>) -> tensor<?x40xf32> {
  %c128_i32 = arith.constant 128 : i32
  %codes = arith.constant dense<-97> : tensor<16x16x40xi8>
  %scales = arith.constant dense<-0.0625> : tensor<16x40xf32>
  %r = linalg.generic {indexing_maps = [#x, #q, #s, #y],
                       iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]}
      ins(%x, %codes, %scales : tensor<?x16x16x1xf32>, tensor<16x16x40xi8>, tensor<16x40xf32>)
      outs(%acc : tensor<?x40xf32>) attrs = {quench.dequant_matmul} {
  ^bb0(%in: f32, %byte: i8, %scale: f32, %out: f32):
    %0 = arith.extui %byte : i8 to i32
    %7 = arith.subi %0, %c128_i32 : i32
    %8 = arith.sitofp %7 : i32 to f32
    %9 = arith.mulf %8, %scale : f32
    %10 = arith.mulf %in, %9 : f32
    %11 = arith.addf %out, %10 : f32
    linalg.yield %11 : f32
  } -> tensor<?x40xf32>
  return %r : tensor<?x40xf32>
}
func.func @gemv_not_six_bit(%x: tensor<1x16x16x1xf32>, %acc: tensor<1x40xf32>) -> tensor<1x40xf32> {
  %c128_i32 = arith.constant 128 : i32
  %codes = arith.constant dense<-56> : tensor<16x16x40xi8>
  %scales = arith.constant dense<0.375> : tensor<16x40xf32>
  %r = linalg.generic {indexing_maps = [#x, #q, #s, #y],
                       iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]}
      ins(%x, %codes, %scales : tensor<1x16x16x1xf32>, tensor<16x16x40xi8>, tensor<16x40xf32>)
      outs(%acc : tensor<1x40xf32>) attrs = {quench.dequant_matmul} {
  ^bb0(%in: f32, %byte: i8, %scale: f32, %out: f32):
    %0 = arith.extui %byte : i8 to i32
    %7 = arith.subi %0, %c128_i32 : i32
    %8 = arith.sitofp %7 : i32 to f32
    %9 = arith.mulf %8, %scale : f32
    %10 = arith.mulf %in, %9 : f32
    %11 = arith.addf %out, %10 : f32
    linalg.yield %11 : f32
  } -> tensor<1x40xf32>
  return %r : tensor<1x40xf32>
}
}
