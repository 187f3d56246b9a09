// RUN: quench-opt %s --split-input-file --quench-cpu-dequant-matmul="vector-bits=512 code-lookup=1 int16-dot=1 bitmask-expand=1" | FileCheck %s
// RUN: quench-opt %s --split-input-file --quench-cpu-dequant-matmul="vector-bits=512 code-lookup=1 int16-dot=1" -verify-diagnostics

// Bitmask storage of unstructured pruned 8-bit codes (docs/sparsity.md,
// "Unstructured storage"): a decode GEMV (one row: tiles of 4 vectors of
// 16 features, panels of nr = 64) over K = 8 codes of 16 features, 62 of
// them other than the zero point 128. The panel words (one panel, one
// block, two word steps, lanes 16..63 padding = 128) are cut into 64-byte
// vectors in the order (panel vector q, word step): a mask word each (bit
// 4 l + t: byte t of lane l kept; q = 1..3 are padding, mask 0), the kept
// bytes packed into one run (62 + 64 bytes of padding) and the start of
// each panel vector's run. Per word step and vector: the mask, 64 bytes at
// the running offset, vpexpandb with 128 in the other bytes, then the
// dense int16 path's two vpdpbusd; the offset advances by the mask's
// population count.
// CHECK: func.func private @llvm.x86.avx512.mask.expand.v64i8(vector<64xi8>, vector<64xi8>, vector<64xi1>) -> vector<64xi8>
// CHECK-LABEL: func.func @gemv8_bitmask
// CHECK-DAG: %[[MASKS:.*]] = arith.constant dense<{{\[\[\[\[}}-1266935969749621460, 1680901001833382813]], {{\[\[}}0, 0]], {{\[\[}}0, 0]], {{\[\[}}0, 0]]]]> : tensor<1x4x1x2xi64>
// CHECK-DAG: %[[VALS:.*]] = arith.constant dense_resource<quench_bitmask_values> : tensor<126xi8>
// CHECK-DAG: %[[STARTS:.*]] = arith.constant dense<{{\[\[}}0, 62, 62, 62]]> : tensor<1x4xi32>
// CHECK-DAG: %[[FILL:.*]] = arith.constant dense<-128> : vector<64xi8>
// CHECK-NOT: tensor<1x1x2x64xi32>
// CHECK: tensor.extract %[[STARTS]]
// CHECK: scf.for {{.*}} -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, index, index, index, index)
// CHECK: scf.for {{.*}} -> (vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, index, index, index, index)
// CHECK: %[[M:.*]] = tensor.extract %[[MASKS]]
// CHECK: %[[R:.*]] = vector.transfer_read %[[VALS]]{{.*}} : tensor<126xi8>, vector<64xi8>
// CHECK: %[[MB:.*]] = vector.broadcast %[[M]] : i64 to vector<1xi64>
// CHECK: %[[MV:.*]] = vector.bitcast %[[MB]] : vector<1xi64> to vector<64xi1>
// CHECK: %[[C:.*]] = func.call @llvm.x86.avx512.mask.expand.v64i8(%[[R]], %[[FILL]], %[[MV]])
// CHECK: math.ctpop %[[M]] : i64
// CHECK: func.call @llvm.x86.avx512.vpdpbusd.512(%{{.*}}, %[[C]], %{{.*}})
// CHECK-NEXT: func.call @llvm.x86.avx512.vpdpbusd.512(%{{.*}}, %[[C]], %{{.*}})
#x = affine_map<(r, b, j, h, n) -> (r, b, j, h)>
#q = affine_map<(r, b, j, h, n) -> (b, j, n)>
#s = affine_map<(r, b, j, h, n) -> (b, n)>
#y = affine_map<(r, b, j, h, n) -> (r, n)>
func.func @gemv8_bitmask(%x: tensor<1x1x8x1xf32>, %acc: tensor<1x16xf32>) -> tensor<1x16xf32> {
  %c128_i32 = arith.constant 128 : i32
  %codes = arith.constant dense<[[[-128, -128, -114, -128, -128, -128, -110, -103, -128, 117, -128, 123, -128, -128, -128, -128], [-128, -126, -128, 101, -128, -114, -128, -126, -111, 118, -128, -112, 106, 116, 106, 125], [-102, -128, 121, -128, -128, 111, -128, -128, -128, -114, -128, 115, -128, 127, 106, -102], [-115, -128, -128, -116, 116, -126, -128, 115, -128, -128, -128, -102, 123, -128, 116, 106], [123, -122, 125, -128, -128, -128, -128, -128, -128, -128, -128, -128, -108, 125, 120, 103], [-128, -128, -113, -128, -128, -123, -128, 114, 119, -128, -124, -128, -119, -128, -102, -128], [103, -128, -128, -128, -128, -118, -114, -128, -108, -128, -128, -112, -128, 110, 126, -128], [112, -109, -128, -108, -128, -107, 117, -128, -122, 115, -128, 100, -128, -128, -128, -128]]]> : tensor<1x8x16xi8>
  %scales = arith.constant dense<0.5> : tensor<1x16xf16>
  // expected-error @+1 {{bitmask sparse storage needs the int16 8-bit kernel}}
  %r = linalg.generic {indexing_maps = [#x, #q, #s, #y],
                       iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel"]}
      ins(%x, %codes, %scales : tensor<1x1x8x1xf32>, tensor<1x8x16xi8>, tensor<1x16xf16>)
      outs(%acc : tensor<1x16xf32>) attrs = {quench.dequant_matmul, quench.sparse_storage = "bitmask"} {
  ^bb0(%in: f32, %byte: i8, %scale: f16, %out: f32):
    %0 = arith.extui %byte : i8 to i32
    %6 = arith.extf %scale : f16 to f32
    %7 = arith.subi %0, %c128_i32 : i32
    %8 = arith.sitofp %7 : i32 to f32
    %9 = arith.mulf %8, %6 : f32
    %10 = arith.mulf %in, %9 : f32
    %11 = arith.addf %out, %10 : f32
    linalg.yield %11 : f32
  } -> tensor<1x16xf32>
  return %r : tensor<1x16xf32>
}
