// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg --quench-cpu-sparse-matmul | FileCheck %s
// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg --quench-cpu-sparse-matmul=vector-bits=512 | FileCheck %s --check-prefix=AVX512
// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg --quench-cpu-sparse-matmul=vector-bits=128 | FileCheck %s --check-prefix=NARROW
// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg "--quench-cpu-sparse-matmul=vector-bits=512 int16-dot=1" | FileCheck %s --check-prefix=I16
// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg "--quench-cpu-sparse-matmul=vector-bits=512 int16-dot=1 bitmask-expand=1" | FileCheck %s --check-prefix=EXP

// The sparse kernel replaces quench.sparse_linear's generic (via
// convert-quench-to-linalg). 2:4 f32, one static row (decode GEMV), 32
// outputs, K = 16 (4 groups, 8 slots per row): 256 bits (AVX2) take
// panels of 4 vectors of 8 features, values [1, G = 4, keep = 2, 32] and
// one 32-bit index word per (panel, group, slot, vector) ([1, 4, 2, 4, 1]);
// per group one load of x's 4 values repeated over 8 lanes; per slot and
// vector a broadcast word, a variable shift, vpermps and an FMA. No
// quench.sparse_matmul generic and no dense [32, 16] weight remain.
// CHECK: func.func private @llvm.x86.avx2.permps(vector<8xf32>, vector<8xi32>) -> vector<8xf32>
// CHECK-LABEL: func.func @f32_gemv
// CHECK-NOT: quench.sparse_matmul
// CHECK-DAG: arith.constant {{.*}} : tensor<1x4x2x32xf32>
// CHECK-DAG: arith.constant {{.*}} : tensor<1x4x2x4x1xi32>
// CHECK: scf.forall
// CHECK: scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK: vector.transfer_read {{.*}} : tensor<1x4x4xf32>, vector<4xf32>
// CHECK: vector.shuffle {{.*}} [0, 1, 2, 3, 0, 1, 2, 3] : vector<4xf32>, vector<4xf32>
// CHECK: tensor.extract {{.*}} : tensor<1x4x2x4x1xi32>
// CHECK: vector.broadcast {{.*}} : i32 to vector<8xi32>
// CHECK: arith.shrui
// CHECK: vector.transfer_read {{.*}} : tensor<1x4x2x32xf32>, vector<8xf32>
// CHECK: call @llvm.x86.avx2.permps
// CHECK: vector.fma
// CHECK-NOT: tensor<32x16xf32>
// AVX-512: 16 lanes, panels of 64 features (32 used, zero padded), the
// 16-lane permute.
// AVX512: func.func private @llvm.x86.avx512.permvar.sf.512(vector<16xf32>, vector<16xi32>) -> vector<16xf32>
// AVX512-LABEL: func.func @f32_gemv
// AVX512-DAG: arith.constant {{.*}} : tensor<1x4x2x64xf32>
// AVX512: vector.shuffle {{.*}} [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3] : vector<4xf32>, vector<4xf32>
// AVX512: call @llvm.x86.avx512.permvar.sf.512
// Narrower vectors: the generic stays (scalar loops later).
// NARROW-LABEL: func.func @f32_gemv
// NARROW: quench.sparse_matmul
func.func @f32_gemv(%x: tensor<1x16xf32>) -> tensor<1x32xf32> {
  %v = quench.constant dense<0.5> : tensor<32x8xf32>
  %i = quench.constant dense<73> : tensor<32x2xi8>
  %y = quench.sparse_linear %x, %v, %i {group = 4 : i64, keep = 2 : i64} : (tensor<1x16xf32>, tensor<32x8xf32>, tensor<32x2xi8>) -> tensor<1x32xf32>
  return %y : tensor<1x32xf32>
}

// -----

// 4:8 int8 codes with f16 scales per block of 8 (one group), dynamic rows
// (tiles of 4 rows and single rows), 24 outputs (not a multiple of the
// panel: masked accumulator reads and writes). 4-bit indices: with 16
// lanes two words per vector, picked per lane by a shuffle.
// CHECK-LABEL: func.func @int8_rows
// CHECK-DAG: arith.constant {{.*}} : tensor<3x2x4x8xi8>
// CHECK-DAG: arith.constant {{.*}} : tensor<3x2x8xf16>
// CHECK: vector.transfer_read {{.*}} : tensor<3x2x4x8xi8>, vector<8xi8>
// CHECK: arith.extsi
// CHECK: arith.sitofp
// CHECK: call @llvm.x86.avx2.permps
// CHECK: arith.extf {{.*}} : vector<8xf16> to vector<8xf32>
// CHECK: vector.fma
// AVX512-LABEL: func.func @int8_rows
// AVX512-DAG: arith.constant {{.*}} : tensor<1x2x4x2x2xi32>
// AVX512: vector.transfer_read {{.*}} : tensor<1x2x4x2x2xi32>, vector<2xi32>
// AVX512: vector.shuffle {{.*}} [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1] : vector<2xi32>, vector<2xi32>
func.func @int8_rows(%x: tensor<?x16xf32>) -> tensor<?x24xf32> {
  %v = quench.constant dense<3> : tensor<24x8xi8>
  %i = quench.constant dense<16> : tensor<24x4xi8>
  %s = quench.constant dense<0.25> : tensor<24x2xf16>
  %y = quench.sparse_linear %x, %v, %i scales(%s) {block_size = 8 : i64, group = 8 : i64, keep = 4 : i64} : (tensor<?x16xf32>, tensor<24x8xi8>, tensor<24x4xi8>, tensor<24x2xf16>) -> tensor<?x24xf32>
  return %y : tensor<?x24xf32>
}

// -----

// 2:4 4-bit codes (value_bits = 4): the panels hold two codes per byte, slot
// 0 of a group in the low nibble and slot 1 in the high one, two's
// complement: the op's byte -45 = 0xD3 (codes 3, 13, i.e. -5, 5) becomes
// 0x5B at 256 bits. One row: 4 vectors per panel (32 features at 256 bits,
// 64 at 512). Slot 0 decodes by a sign extension, a left shift by 28 and an
// arithmetic right shift by 28, slot 1 by an arithmetic right shift by 4 of
// the same extended bytes (loaded once). At 512 bits the nibbles are the
// codes + 8 as in the op (0xD3) and their floats one vpermps of the table
// [-8, 7] each (slot 1 after a logical shift by 4).
// CHECK-LABEL: func.func @int4_gemv
// CHECK-DAG: arith.constant dense_resource<[[VALS:quench_sparse_values_[0-9]+]]> : tensor<1x4x1x32xi8>
// CHECK: %[[B:.*]] = vector.transfer_read {{.*}} : tensor<1x4x1x32xi8>, vector<8xi8>
// CHECK: %[[E:.*]] = arith.extsi %[[B]] : vector<8xi8> to vector<8xi32>
// CHECK: %[[L:.*]] = arith.shli %[[E]], %{{.*}} : vector<8xi32>
// CHECK: %[[LO:.*]] = arith.shrsi %[[L]], %{{.*}} : vector<8xi32>
// CHECK: arith.sitofp %[[LO]] : vector<8xi32> to vector<8xf32>
// CHECK: call @llvm.x86.avx2.permps
// CHECK: vector.fma
// CHECK: %[[HI:.*]] = arith.shrsi %[[E]], %{{.*}} : vector<8xi32>
// CHECK: arith.sitofp %[[HI]] : vector<8xi32> to vector<8xf32>
// CHECK: [[VALS]]: "0x080000005B5B5B5B
// AVX512-LABEL: func.func @int4_gemv
// AVX512-DAG: arith.constant dense_resource<{{.*}}> : tensor<1x4x1x64xi8>
// AVX512: vector.transfer_read {{.*}} : tensor<1x4x1x64xi8>, vector<16xi8>
// AVX512: %[[E:.*]] = arith.extsi {{.*}} : vector<16xi8> to vector<16xi32>
// AVX512: %[[T:.*]] = arith.constant dense<[-8.000000e+00, -7.000000e+00, {{.*}}, 7.000000e+00]> : vector<16xf32>
// AVX512: call @llvm.x86.avx512.permvar.sf.512(%[[T]], %[[E]])
// AVX512: call @llvm.x86.avx512.permvar.sf.512
// AVX512: vector.fma
// AVX512: %[[H:.*]] = arith.shrui %[[E]], %{{.*}} : vector<16xi32>
// AVX512: call @llvm.x86.avx512.permvar.sf.512(%{{.*}}, %[[H]])
// AVX512: quench_sparse_values_{{[0-9]+}}: "0x08000000D3D3D3D3
// NARROW-LABEL: func.func @int4_gemv
// NARROW: linalg.generic
//
// int16-dot (VNNI) at 512 bits: the int16 form. A prepass quantizes x per
// row and scale block (amax, then the bytes: high byte ^ 128, low byte);
// per step of two groups and vector 32 code bytes (byte k holds code k of
// the expanded vector, 4 l + 2 h + j, in its low nibble and code k + 32 in
// its high one: the op's nibbles 3 (slot 0) and 0xD (slot 1) give 0x33,
// 0xDD) and two 64-bit index planes (lane indices 1, 2 | 0, 1: low plane
// 0b1001 per lane = 0x99 per byte pair, high plane 0b0010 = 0x22; lanes
// 32-63 are padding); the code bytes broadcast to both halves, the upper
// one shifted by 4 (one 64-bit variable shift), masked and biased, the
// code sum and the two products per row by
// vpdpbusd, the activation bytes gathered by vpshufb.
// I16-DAG: func.func private @llvm.x86.avx512.pshuf.b.512(vector<64xi8>, vector<64xi8>) -> vector<64xi8>
// I16-DAG: func.func private @llvm.x86.avx512.vpdpbusd.512(vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
// I16-LABEL: func.func @int4_gemv
// I16-DAG: arith.constant dense_resource<[[C:quench_sparse_values_[0-9]+]]> : tensor<1x2x4x32xi8>
// I16-DAG: arith.constant dense_resource<quench_sparse_index_bytes> : tensor<1x2x4x16xi8>
// I16: linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction", "reduction"]
// I16: arith.maximumf
// I16: linalg.generic
// I16: arith.xori
// I16: vector.transfer_read {{.*}} : tensor<1x2x4x32xi8>, vector<32xi8>
// I16: vector.shuffle {{.*}} : vector<32xi8>, vector<32xi8>
// I16: arith.shrui {{.*}} : vector<8xi64>
// I16: arith.andi {{.*}} : vector<64xi8>
// I16: arith.subi {{.*}} : vector<64xi8>
// I16: call @llvm.x86.avx512.vpdpbusd.512
// I16: vector.bitcast {{.*}} : vector<8xi8> to vector<64xi1>
// I16: arith.select
// I16: call @llvm.x86.avx512.pshuf.b.512
// I16: call @llvm.x86.avx512.vpdpbusd.512
// I16: call @llvm.x86.avx512.pshuf.b.512
// I16: call @llvm.x86.avx512.vpdpbusd.512
// I16: arith.sitofp
// I16: vector.fma
// I16: [[C]]: "0x0800000033DD33DD
// I16: quench_sparse_index_bytes: "0x0800000099999999999999992222222222222222
//
// With bitmask-expand (AVX512-VBMI2) the expand form: per step and vector
// 32 code bytes (byte 2 l + j: group 0's kept code j in the low nibble,
// group 1's in the high one: 0x33, 0xDD) and one 64-bit mask per group
// (bit 4 l + index: indices 1, 2 give 0x6 per lane, 0, 1 give 0x3; the
// padding lanes keep inputs 0 and 1); the prepass also sums q per block;
// the codes masked and shifted, expanded by vpexpandb (the zero point 8
// elsewhere), four vpdpbusd per row with the broadcast activation words,
// and t = 256 H + L - 8 Σq.
// EXP-DAG: func.func private @llvm.x86.avx512.mask.expand.v64i8(vector<64xi8>, vector<64xi8>, vector<64xi1>) -> vector<64xi8>
// EXP-LABEL: func.func @int4_gemv
// EXP-DAG: arith.constant dense_resource<quench_sparse_masks> : tensor<1x2x4x2xi64>
// EXP-DAG: arith.constant dense_resource<[[C:quench_sparse_values_[0-9]+]]> : tensor<1x2x4x32xi8>
// EXP: arith.maximumf
// EXP: linalg.generic
// EXP: arith.fptosi
// EXP: arith.addi {{.*}} : i32
// EXP: linalg.generic
// EXP-NOT: arith.xori
// EXP: vector.transfer_read {{.*}} : tensor<1x2x4x32xi8>, vector<32xi8>
// EXP: arith.andi {{.*}} : vector<32xi8>
// EXP: arith.shrui {{.*}} : vector<32xi8>
// EXP: tensor.extract {{.*}} : tensor<1x2x4x2xi64>
// EXP: call @llvm.x86.avx512.mask.expand.v64i8
// EXP: call @llvm.x86.avx512.mask.expand.v64i8
// EXP-NOT: pshuf.b
// EXP: vector.broadcast {{.*}} : i32 to vector<16xi32>
// EXP: call @llvm.x86.avx512.vpdpbusd.512
// EXP: call @llvm.x86.avx512.vpdpbusd.512
// EXP: call @llvm.x86.avx512.vpdpbusd.512
// EXP: call @llvm.x86.avx512.vpdpbusd.512
// EXP: arith.shli {{.*}} : i32
// EXP: arith.subi {{.*}} : vector<16xi32>
// EXP: vector.fma
// EXP: quench_sparse_masks: "0x0800000066666666666666663333333333333333
// EXP: [[C]]: "0x0800000033DD33DD
func.func @int4_gemv(%x: tensor<1x16xf32>) -> tensor<1x32xf32> {
  %v = quench.constant dense<-45> : tensor<32x4xi8>
  %i = quench.constant dense<73> : tensor<32x2xi8>
  %s = quench.constant dense<0.5> : tensor<32x1xf16>
  %y = quench.sparse_linear %x, %v, %i scales(%s) {block_size = 16 : i64, group = 4 : i64, keep = 2 : i64, value_bits = 4 : i64} : (tensor<1x16xf32>, tensor<32x4xi8>, tensor<32x2xi8>, tensor<32x1xf16>) -> tensor<1x32xf32>
  return %y : tensor<1x32xf32>
}
