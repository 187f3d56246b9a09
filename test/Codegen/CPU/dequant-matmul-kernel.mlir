// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg --quench-cpu-codegen | FileCheck %s
// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg --quench-cpu-codegen=vector-bits=512 | FileCheck %s --check-prefix=AVX512
// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg --quench-cpu-codegen=vector-bits=0 | FileCheck %s --check-prefix=NOVEC
// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg --quench-cpu-codegen="vector-bits=512 code-lookup=1" | FileCheck %s --check-prefix=LOOKUP

// The CPU kernel of quench.matmul_nbits (lib/Codegen/CPU/DequantMatmul.cpp):
// the fused dequantizing generic becomes explicit vector code. Constants in
// panels of nr output features ([N / nr, blocks, J, nr], zero padded: 40
// features -> 2 panels of 32 on AVX2, 1 of 64 on AVX-512, where the 40
// are all remainder: single vectors); the group sums
// of x are a reduction; per code byte vector: one zero-extending load, a
// mask for the low code and a shift for the high one, a conversion and an
// FMA into the partial sums (nv = 4 vectors for one row); per group: the
// scale (f16, widened) times the partial sum, minus zero point x scale x
// group sum.
// CHECK-LABEL: func.func @gemv
// CHECK-DAG: arith.constant dense_resource<{{.*}}> : tensor<2x2x16x32xi8>
// CHECK-DAG: arith.constant dense_resource<{{.*}}> : tensor<2x2x32xf16>
// CHECK-DAG: arith.constant dense_resource<{{.*}}> : tensor<2x2x32xi8>
// CHECK: vector.multi_reduction <add>, {{.*}} [2, 3] : vector<1x1x16x2xf32> to vector<1x1xf32>
// CHECK: scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK: scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK: vector.transfer_read {{.*}} : tensor<2x2x16x32xi8>, vector<8xi8>
// CHECK: arith.extui {{.*}} : vector<8xi8> to vector<8xi32>
// CHECK: arith.andi
// CHECK: arith.sitofp
// CHECK: vector.fma
// CHECK: arith.shrui
// CHECK: arith.sitofp
// CHECK: vector.fma
// CHECK: vector.transfer_read {{.*}} : tensor<2x2x32xf16>, vector<8xf16>
// CHECK: arith.extf
// CHECK: vector.transfer_read {{.*}} : tensor<2x2x32xi8>, vector<8xi8>
// CHECK: arith.sitofp
// CHECK: arith.mulf
// CHECK: vector.fma
// CHECK: arith.mulf
// CHECK: arith.subf
// AVX512-LABEL: func.func @gemv
// AVX512: arith.constant dense_resource<{{.*}}> : tensor<1x2x16x64xi8>
// AVX512: vector.fma {{.*}} : vector<16xf32>
// With code-lookup (AVX-512F): the codes as words of 4 bytes per feature
// ([N / nr, blocks, J / 4, nr] i32), each of their 8 codes converted by a
// vpermps table lookup (one shift, no mask, no conversion), two sets of
// partial sums for one row; the zero point as before.
// LOOKUP: func.func private @llvm.x86.avx512.permvar.sf.512(vector<16xf32>, vector<16xi32>) -> vector<16xf32>
// LOOKUP-LABEL: func.func @gemv
// LOOKUP-DAG: %[[TAB:.*]] = arith.constant dense<[0.000000e+00, 1.000000e+00, {{.*}}, 1.500000e+01]> : vector<16xf32>
// LOOKUP-DAG: arith.constant dense_resource<{{.*}}> : tensor<1x2x4x64xi32>
// LOOKUP: vector.multi_reduction <add>
// LOOKUP: scf.for {{.*}} -> (vector<16xf32>, vector<16xf32>)
// LOOKUP: %[[W:.*]] = vector.transfer_read {{.*}} : tensor<1x2x4x64xi32>, vector<16xi32>
// LOOKUP-NOT: arith.sitofp
// LOOKUP: func.call @llvm.x86.avx512.permvar.sf.512(%[[TAB]], %[[W]])
// LOOKUP: %[[HI:.*]] = arith.shrui %[[W]]
// LOOKUP-NEXT: func.call @llvm.x86.avx512.permvar.sf.512(%[[TAB]], %[[HI]])
// LOOKUP-NOT: arith.sitofp
// LOOKUP: scf.yield
// LOOKUP: arith.addf
// LOOKUP: arith.subf
// NOVEC-LABEL: func.func @gemv
// NOVEC-NOT: vector.
// NOVEC: linalg.generic
// NOVEC-SAME: quench.dequant_matmul
func.func @gemv(%x: tensor<1x64xf32>) -> tensor<1x40xf32> {
  %w = quench.constant dense<17> : tensor<40x2x16xui8>
  %s = quench.constant dense<0.5> : tensor<80xf16>
  %z = quench.constant dense<136> : tensor<40xui8>
  %y = quench.matmul_nbits %x, %w, %s zp(%z) {in_features = 64 : i64, out_features = 40 : i64, bits = 4 : i64, block_size = 32 : i64}
      : (tensor<1x64xf32>, tensor<40x2x16xui8>, tensor<80xf16>, tensor<40xui8>) -> tensor<1x40xf32>
  return %y : tensor<1x40xf32>
}

// -----

// Several rows (dynamic count): tiles of 4 rows x 1 vector (6 x 2 on
// AVX-512), then single rows; 36 features: the last vector is masked
// (no in_bounds on the result's transfers). 8 bits: no shift or mask; implicit
// zero point 128.
// CHECK-LABEL: func.func @rows
// CHECK-DAG: arith.constant dense<1.280000e+02> : vector<8xf32>
// CHECK-DAG: arith.constant dense_resource<{{.*}}> : tensor<5x1x16x8xi8>
// CHECK: scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK-NOT: arith.shrui
// CHECK: arith.extui
// CHECK-NEXT: arith.sitofp
// CHECK: vector.transfer_write %{{.*}}, %{{.*}}[%{{.*}}, %c32] : vector<8xf32>, tensor<?x36xf32>
// AVX512-LABEL: func.func @rows
// LOOKUP-LABEL: func.func @rows
// LOOKUP-NOT: func.call
// LOOKUP: arith.sitofp
// AVX512: arith.constant dense_resource<{{.*}}> : tensor<2x1x16x32xi8>
// AVX512: scf.for {{.*}} -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
func.func @rows(%x: tensor<?x16xf32>) -> tensor<?x36xf32> {
  %w = quench.constant dense<200> : tensor<36x1x16xui8>
  %s = quench.constant dense<0.25> : tensor<36xf32>
  %y = quench.matmul_nbits %x, %w, %s {in_features = 16 : i64, out_features = 36 : i64, bits = 8 : i64, block_size = 16 : i64}
      : (tensor<?x16xf32>, tensor<36x1x16xui8>, tensor<36xf32>) -> tensor<?x36xf32>
  return %y : tensor<?x36xf32>
}

// -----

// Symmetric 4 bits, no zero point: with code-lookup the table holds the
// centred values (-8 .. 7), so no group sums of x are needed.
// LOOKUP-LABEL: func.func @gemv_sym
// LOOKUP-DAG: arith.constant dense<[-8.000000e+00, -7.000000e+00, {{.*}}, 7.000000e+00]> : vector<16xf32>
// LOOKUP-DAG: arith.constant dense_resource<{{.*}}> : tensor<1x2x4x64xi32>
// LOOKUP-NOT: vector.multi_reduction
// LOOKUP: func.call @llvm.x86.avx512.permvar.sf.512
// LOOKUP-NOT: arith.subf
// LOOKUP: return
func.func @gemv_sym(%x: tensor<1x64xf32>) -> tensor<1x32xf32> {
  %w = quench.constant dense<37> : tensor<32x2x16xui8>
  %s = quench.constant dense<0.5> : tensor<64xf16>
  %y = quench.matmul_nbits %x, %w, %s {in_features = 64 : i64, out_features = 32 : i64, bits = 4 : i64, block_size = 32 : i64}
      : (tensor<1x64xf32>, tensor<32x2x16xui8>, tensor<64xf16>) -> tensor<1x32xf32>
  return %y : tensor<1x32xf32>
}
