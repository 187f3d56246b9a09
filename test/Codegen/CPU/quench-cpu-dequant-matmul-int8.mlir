// RUN: quench-opt %s --quench-cpu-dequant-matmul="vector-bits=512 code-lookup=1 int16-dot=1" | FileCheck %s --check-prefix=INT16
// RUN: quench-opt %s --quench-cpu-dequant-matmul="vector-bits=256 int16-dot=1" | FileCheck %s --check-prefix=INT16-256
// RUN: quench-opt %s --quench-cpu-dequant-matmul="vector-bits=512 code-lookup=1" | FileCheck %s --check-prefix=FLOAT

// 8-bit codes times int16 activations (int16-dot, VNNI; docs/lowering.md,
// "Int16 activations"): one quantization group per output channel of
// K = 1002 codes (symmetric: zero point 128), 40 outputs, a dynamic row
// count. The group is longer than an activation block (512 codes): x is
// zero padded to 2 x 504 and viewed as 2 blocks, the codes re-laid out as
// words of four codes per feature in panels ([2 panels of 32, 2 blocks,
// 126 words, 32] at 512 bits), the scales repeated per block. The prepass
// quantizes x per row and block with 32639 / amax, the high byte
// (q + 128) >> 8 and the low byte q - 256 * high both signed; per word step
// two vpdpbusd per row and vector (the codes as the unsigned operand); per
// block 256 * high + low - 128 * qsum, converted and scaled by
// s * amax / 32639.
// INT16: func.func private @llvm.x86.avx512.vpdpbusd.512(vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
// INT16-LABEL: func.func @gemm8_channel
// INT16-DAG: %[[WORDS:.*]] = arith.constant dense<623191333> : tensor<2x2x126x32xi32>
// INT16-DAG: %[[SCALES:.*]] = arith.constant dense<5.000000e-01> : tensor<2x2x32xf16>
// INT16: tensor.pad %arg0 low[0, 0, 0, 0] high[0, 0, 6, 0]
// INT16: tensor<?x1x1002x1xf32> to tensor<?x1x1008x1xf32>
// INT16: tensor.expand_shape {{.*}} into tensor<?x1x2x504x1xf32>
// INT16: %[[X:.*]] = tensor.collapse_shape {{.*}} into tensor<?x2x504x1xf32>
// INT16: %[[AMAX:.*]] = linalg.generic {{.*}} ins(%[[X]] : tensor<?x2x504x1xf32>) outs(%{{.*}} : tensor<?x2xf32>)
// INT16: math.absf
// INT16: %[[HI:.*]] = linalg.generic {{.*}} ins(%[[X]], %[[AMAX]] : tensor<?x2x504x1xf32>, tensor<?x2xf32>) outs(%{{.*}} : tensor<?x2x1x504xi8>)
// INT16: arith.constant 3.263900e+04 : f32
// INT16: arith.fptosi
// INT16: %[[C128:.*]] = arith.constant 128 : i32
// INT16: arith.addi %{{.*}}, %[[C128]] : i32
// INT16: arith.shrsi
// INT16: arith.trunci
// INT16: %[[LO:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<?x2x1x504xi8>)
// INT16-NOT: arith.shrsi
// INT16: arith.trunci
// INT16: %[[QSUM:.*]] = linalg.generic {{.*}} ins(%[[HI]], %[[LO]] : tensor<?x2x1x504xi8>, tensor<?x2x1x504xi8>) outs(%{{.*}} : tensor<?x2xi32>)
// INT16: arith.extsi
// INT16: arith.shli
// INT16: arith.extsi
// INT16: scf.forall
// INT16: scf.for {{.*}} -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// INT16: scf.for %{{.*}} = %{{.*}} to %c126 {{.*}} -> (vector<16xi32>,
// INT16: vector.transfer_read %[[HI]]{{.*}} : tensor<?x2x1x504xi8>, vector<4xi8>
// INT16: vector.transfer_read %[[LO]]{{.*}} : tensor<?x2x1x504xi8>, vector<4xi8>
// INT16: %[[W:.*]] = vector.transfer_read %[[WORDS]]{{.*}} : tensor<2x2x126x32xi32>, vector<16xi32>
// INT16-NOT: arith.andi
// INT16: %[[C:.*]] = vector.bitcast %[[W]] : vector<16xi32> to vector<64xi8>
// INT16-NEXT: func.call @llvm.x86.avx512.vpdpbusd.512(%{{.*}}, %[[C]], %{{.*}})
// INT16-NEXT: func.call @llvm.x86.avx512.vpdpbusd.512(%{{.*}}, %[[C]], %{{.*}})
// INT16: arith.constant 3.06381953E-5 : f32
// INT16: tensor.extract %[[QSUM]]
// INT16: arith.muli %{{.*}}, %{{.*}} : i32
// INT16: vector.transfer_read %[[SCALES]]
// INT16: arith.shli {{.*}} : vector<16xi32>
// INT16: arith.addi {{.*}} : vector<16xi32>
// INT16: arith.subi {{.*}} : vector<16xi32>
// INT16: arith.sitofp {{.*}} : vector<16xi32> to vector<16xf32>
// INT16: vector.fma
// 256 bits (AVX-VNNI): vectors of 8, vpdpbusd.256, panels of 8 features
// (4 x 1 register tiles).
// INT16-256: func.func private @llvm.x86.avx512.vpdpbusd.256(vector<8xi32>, vector<32xi8>, vector<32xi8>) -> vector<8xi32>
// INT16-256-LABEL: func.func @gemm8_channel
// INT16-256: arith.constant dense<623191333> : tensor<5x2x126x8xi32>
// INT16-256: func.call @llvm.x86.avx512.vpdpbusd.256
// Without int16-dot the float form stays: code bytes in panels, converted
// and multiplied by FMAs.
// FLOAT-NOT: vpdpbusd
// FLOAT-LABEL: func.func @gemm8_channel
// FLOAT: arith.constant dense<37> : tensor<2x1x1002x32xi8>
// FLOAT: arith.sitofp
// FLOAT: vector.fma
#x = affine_map<(r, b, j, h, n) -> (r, b, j, h)>
#q = affine_map<(r, b, j, h, n) -> (b, j, n)>
#s = affine_map<(r, b, j, h, n) -> (b, n)>
#y = affine_map<(r, b, j, h, n) -> (r, n)>
func.func @gemm8_channel(%x: tensor<?x1x1002x1xf32>, %acc: tensor<?x40xf32>) -> tensor<?x40xf32> {
  %c128_i32 = arith.constant 128 : i32
  %codes = arith.constant dense<37> : tensor<1x1002x40xi8>
  %scales = arith.constant dense<0.5> : tensor<1x40xf16>
  %r = linalg.generic {indexing_maps = [#x, #q, #s, #y],
                       iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]}
      ins(%x, %codes, %scales : tensor<?x1x1002x1xf32>, tensor<1x1002x40xi8>, tensor<1x40xf16>)
      outs(%acc : tensor<?x40xf32>) attrs = {quench.dequant_matmul} {
  ^bb0(%in: f32, %byte: i8, %scale: f16, %out: f32):
    %0 = arith.extui %byte : i8 to i32
    %6 = arith.extf %scale : f16 to f32
    %7 = arith.subi %0, %c128_i32 : i32
    %8 = arith.sitofp %7 : i32 to f32
    %9 = arith.mulf %8, %6 : f32
    %10 = arith.mulf %in, %9 : f32
    %11 = arith.addf %out, %10 : f32
    linalg.yield %11 : f32
  } -> tensor<?x40xf32>
  return %r : tensor<?x40xf32>
}

// With zero points (explicit, one byte per group) activation blocks hold at
// most 256 codes: a group of 600 becomes 3 blocks of 200 (no padding), the
// scales and zero points repeated per block; one row: 4 vectors per tile.
// INT16-LABEL: func.func @gemv8_zp
// INT16-DAG: arith.constant dense<623191333> : tensor<1x3x50x64xi32>
// INT16-DAG: %[[ZP:.*]] = arith.constant dense<-128> : tensor<1x3x64xi8>
// INT16-NOT: tensor.pad
// INT16: tensor.expand_shape {{.*}} into tensor<1x1x3x200x1xf32>
// INT16: tensor.collapse_shape {{.*}} into tensor<1x3x200x1xf32>
// INT16: scf.for {{.*}} -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// INT16: scf.for %{{.*}} = %{{.*}} to %c50 {{.*}} -> (vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>)
// INT16-COUNT-8: func.call @llvm.x86.avx512.vpdpbusd.512
// INT16: vector.transfer_read %[[ZP]]
// INT16: arith.extui {{.*}} : vector<16xi8> to vector<16xi32>
// INT16: arith.muli {{.*}} : vector<16xi32>
// INT16: arith.subi {{.*}} : vector<16xi32>
func.func @gemv8_zp(%x: tensor<1x1x600x1xf32>) -> tensor<1x64xf32> {
  %zero = arith.constant 0.0 : f32
  %codes = arith.constant dense<37> : tensor<1x600x64xi8>
  %scales = arith.constant dense<0.5> : tensor<1x64xf32>
  %zp = arith.constant dense<128> : tensor<1x64xi8>
  %e = tensor.empty() : tensor<1x64xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<1x64xf32>) -> tensor<1x64xf32>
  %r = linalg.generic {indexing_maps = [#x, #q, #s, #s, #y],
                       iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]}
      ins(%x, %codes, %scales, %zp : tensor<1x1x600x1xf32>, tensor<1x600x64xi8>, tensor<1x64xf32>, tensor<1x64xi8>)
      outs(%acc : tensor<1x64xf32>) attrs = {quench.dequant_matmul} {
  ^bb0(%in: f32, %byte: i8, %scale: f32, %z: i8, %out: f32):
    %0 = arith.extui %byte : i8 to i32
    %1 = arith.extui %z : i8 to i32
    %7 = arith.subi %0, %1 : i32
    %8 = arith.sitofp %7 : i32 to f32
    %9 = arith.mulf %8, %scale : f32
    %10 = arith.mulf %in, %9 : f32
    %11 = arith.addf %out, %10 : f32
    linalg.yield %11 : f32
  } -> tensor<1x64xf32>
  return %r : tensor<1x64xf32>
}
