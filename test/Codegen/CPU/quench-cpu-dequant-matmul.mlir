// RUN: quench-opt %s --quench-cpu-dequant-matmul | FileCheck %s
// RUN: quench-opt %s --quench-cpu-dequant-matmul=vector-bits=512 | FileCheck %s --check-prefix=AVX512
// RUN: quench-opt %s --quench-cpu-dequant-matmul="vector-bits=512 code-lookup=1" | FileCheck %s --check-prefix=LOOKUP
// RUN: quench-opt %s --quench-cpu-dequant-matmul=vector-bits=64 | FileCheck %s --check-prefix=NARROW
// RUN: quench-opt %s --quench-cpu-dequant-matmul="vector-bits=512 code-lookup=1 int16-dot=1" | FileCheck %s --check-prefix=INT16
// RUN: quench-opt %s --quench-cpu-dequant-matmul="vector-bits=256 int16-dot=1" | FileCheck %s --check-prefix=INT16-256

// The pass alone (dequant-matmul-kernel.mlir checks the kernel through the
// whole codegen stage), on the fused dequantizing generic that
// convert-quench-to-linalg makes of a 4-bit quench.matmul_nbits (one row,
// 64 inputs in 2 groups of 32, 32 outputs, symmetric: zero point 8).
// 256 bits (the default): the codes in panels of 32 features
// ([1, blocks, J, 32]), the group sums of x as a linalg reduction (left to
// the tile pass), tasks of features with 4 vectors of 8 partial sums per
// row; per code byte vector a zero-extending load, a mask for the low
// code, a shift for the high one, conversions and FMAs.
// CHECK-NOT: func.func private
// CHECK-LABEL: func.func @gemv_sym
// CHECK-DAG: %[[CODES:.*]] = arith.constant dense<37> : tensor<1x2x16x32xi8>
// CHECK-DAG: arith.constant dense<5.000000e-01> : tensor<1x2x32xf16>
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction", "reduction"]
// CHECK-SAME: ins(%arg0 : tensor<1x2x16x2xf32>) outs(%{{.*}} : tensor<1x2xf32>)
// CHECK: scf.forall
// CHECK: scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK: vector.transfer_read %[[CODES]]{{.*}} : tensor<1x2x16x32xi8>, vector<8xi8>
// CHECK: arith.extui {{.*}} : vector<8xi8> to vector<8xi32>
// CHECK: arith.andi
// CHECK: arith.sitofp
// CHECK: vector.fma
// CHECK: arith.shrui
// CHECK: arith.sitofp
// CHECK: vector.fma
// CHECK-NOT: quench.dequant_matmul
// 512 bits: panels of 64 features, vectors of 16.
// AVX512-LABEL: func.func @gemv_sym
// AVX512: arith.constant dense<37> : tensor<1x2x16x64xi8>
// AVX512: vector.fma {{.*}} : vector<16xf32>
// With code-lookup (AVX-512F): codes as words of four bytes converted by
// vpermps on a table of the centred codes (so no group sums of x), the
// intrinsic declared in the module.
// LOOKUP: func.func private @llvm.x86.avx512.permvar.sf.512(vector<16xf32>, vector<16xi32>) -> vector<16xf32>
// LOOKUP-LABEL: func.func @gemv_sym
// LOOKUP: arith.constant dense<623191333> : tensor<1x2x4x64xi32>
// LOOKUP-NOT: iterator_types = ["parallel", "parallel", "reduction", "reduction"]
// LOOKUP: arith.constant dense<[-8.000000e+00, -7.000000e+00, {{.*}}, 7.000000e+00]> : vector<16xf32>
// LOOKUP: func.call @llvm.x86.avx512.permvar.sf.512
// LOOKUP: vector.fma
// With int16-dot (VNNI): x quantized to int16 per row and group (max |x|,
// then the high and low bytes laid out [R, blocks, P, J], then the group
// sums of the int16 values), the codes in the lookup's words, and per word
// step two masks and a shift and four vpdpbusd (high bytes times codes,
// low bytes times codes) into int32 partial sums; per group 256 * high +
// low - 8 * qsum, converted and scaled by s * amax / 32767.
// INT16: func.func private @llvm.x86.avx512.vpdpbusd.512(vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
// INT16-LABEL: func.func @gemv_sym
// INT16-DAG: %[[WORDS:.*]] = arith.constant dense<623191333> : tensor<1x2x4x64xi32>
// INT16: %[[AMAX:.*]] = linalg.generic {{.*}} ins(%arg0 : tensor<1x2x16x2xf32>) outs(%{{.*}} : tensor<1x2xf32>)
// INT16: math.absf
// INT16: arith.maximumf
// INT16: %[[HI:.*]] = linalg.generic {{.*}} ins(%arg0, %[[AMAX]] : tensor<1x2x16x2xf32>, tensor<1x2xf32>) outs(%{{.*}} : tensor<1x2x2x16xi8>)
// INT16: arith.fptosi
// INT16: arith.shrsi
// INT16: arith.trunci
// INT16: %[[LO:.*]] = linalg.generic {{.*}} ins(%arg0, %[[AMAX]] : tensor<1x2x16x2xf32>, tensor<1x2xf32>) outs(%{{.*}} : tensor<1x2x2x16xi8>)
// INT16-NOT: arith.shrsi
// INT16: arith.trunci
// INT16: %[[QSUM:.*]] = linalg.generic {{.*}} ins(%[[HI]], %[[LO]] : tensor<1x2x2x16xi8>, tensor<1x2x2x16xi8>) outs(%{{.*}} : tensor<1x2xi32>)
// INT16: scf.forall
// INT16: scf.for {{.*}} -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// INT16: scf.for {{.*}} -> (vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>)
// INT16: vector.transfer_read %[[HI]]{{.*}} : tensor<1x2x2x16xi8>, vector<4xi8>
// INT16: vector.bitcast {{.*}} : vector<4xi8> to vector<1xi32>
// INT16: vector.transfer_read %[[WORDS]]{{.*}} : tensor<1x2x4x64xi32>, vector<16xi32>
// INT16: arith.andi
// INT16: arith.shrui
// INT16: arith.andi
// INT16: func.call @llvm.x86.avx512.vpdpbusd.512
// INT16-NOT: permvar
// INT16: tensor.extract %[[AMAX]]
// INT16: tensor.extract %[[QSUM]]
// INT16: arith.muli {{.*}} : i32
// INT16: arith.shli {{.*}} : vector<16xi32>
// INT16: arith.subi {{.*}} : vector<16xi32>
// INT16: arith.sitofp {{.*}} : vector<16xi32> to vector<16xf32>
// INT16: vector.fma
// 256 bits (AVX-VNNI): the same with 8 lanes and vpdpbusd.256.
// INT16-256: func.func private @llvm.x86.avx512.vpdpbusd.256(vector<8xi32>, vector<32xi8>, vector<32xi8>) -> vector<8xi32>
// INT16-256: func.call @llvm.x86.avx512.vpdpbusd.256
// Below 128 bits the generic stays (the tile pass handles it).
// NARROW-NOT: scf.forall
// NARROW: linalg.generic {{.*}} attrs = {quench.dequant_matmul}
#x = affine_map<(r, b, j, h, n) -> (r, b, j, h)>
#q = affine_map<(r, b, j, h, n) -> (b, j, n)>
#s = affine_map<(r, b, j, h, n) -> (b, n)>
#y = affine_map<(r, b, j, h, n) -> (r, n)>
func.func @gemv_sym(%x: tensor<1x2x16x2xf32>) -> tensor<1x32xf32> {
  %c8_i32 = arith.constant 8 : i32
  %c15_i32 = arith.constant 15 : i32
  %c4_i32 = arith.constant 4 : i32
  %zero = arith.constant 0.0 : f32
  %codes = arith.constant dense<37> : tensor<2x16x32xi8>
  %scales = arith.constant dense<0.5> : tensor<2x32xf16>
  %e = tensor.empty() : tensor<1x32xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<1x32xf32>) -> tensor<1x32xf32>
  %r = linalg.generic {indexing_maps = [#x, #q, #s, #y],
                       iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]}
      ins(%x, %codes, %scales : tensor<1x2x16x2xf32>, tensor<2x16x32xi8>, tensor<2x32xf16>)
      outs(%acc : tensor<1x32xf32>) attrs = {quench.dequant_matmul} {
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
  } -> tensor<1x32xf32>
  return %r : tensor<1x32xf32>
}
