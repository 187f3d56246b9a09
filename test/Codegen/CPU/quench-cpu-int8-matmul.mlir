// RUN: quench-opt %s --split-input-file --quench-cpu-int8-matmul | FileCheck %s --check-prefix=NONE
// RUN: quench-opt %s --split-input-file --quench-cpu-int8-matmul="vector-bits=512 int8-dot=vnni" | FileCheck %s --check-prefix=VNNI
// RUN: quench-opt %s --split-input-file --quench-cpu-int8-matmul="int8-dot=pmaddwd" | FileCheck %s --check-prefix=AVX2
// RUN: quench-opt %s --split-input-file --quench-cpu-int8-matmul="vector-bits=128 int8-dot=vnni" | FileCheck %s --check-prefix=NONE

// The pass alone (int8-matmul-kernel.mlir checks the kernel through the
// whole codegen stage). An i8 x i8 -> i32 contraction with a constant
// [K, N] = [8, 16] weight. int8-dot=none (the default) and vector widths
// other than 256 and 512 leave it alone.
// NONE-NOT: func.func private
// NONE-LABEL: func.func @gemv
// NONE-NOT: call
// NONE: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]
// NONE-SAME: ins(%arg0, %{{.*}} : tensor<2x8xi8>, tensor<8x16xi8>)
// vpdpbusd (512 bits): the intrinsic is declared; the weight is packed in
// one panel of 64 columns x 2 groups of 4 bytes, with its column sums for
// the u8 correction; the activations are made unsigned (xor 0x80) by an
// elementwise generic left to the tile pass; the product is scf.forall
// tasks of columns calling the intrinsic.
// VNNI: func.func private @llvm.x86.avx512.vpdpbusd.512(vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
// VNNI-LABEL: func.func @gemv
// VNNI-DAG: %[[W:.*]] = arith.constant dense_resource<quench_int8_panel> : tensor<1x2x256xi8>
// VNNI-DAG: arith.constant dense_resource<quench_int8_colsum> : tensor<1x64xi32>
// VNNI: %[[U:.*]] = linalg.generic {{.*}} ins(%arg0 : tensor<2x8xi8>) outs(%{{.*}} : tensor<2x8xi8>)
// VNNI: arith.xori
// VNNI: scf.forall (%{{.*}}) in (1) shared_outs(%{{.*}}) -> (tensor<2x16xi32>)
// VNNI: vector.transfer_read %[[U]]{{.*}} : tensor<2x8xi8>, vector<4xi8>
// VNNI: vector.transfer_read %[[W]]{{.*}} : tensor<1x2x256xi8>, vector<64xi8>
// VNNI: func.call @llvm.x86.avx512.vpdpbusd.512
// VNNI-NOT: iterator_types = ["parallel", "parallel", "reduction"]
// vpmaddwd (256 bits, the default width): 2-byte groups, activations and
// weights widened to i16, no column sums.
// AVX2: func.func private @llvm.x86.avx2.pmadd.wd(vector<16xi16>, vector<16xi16>) -> vector<8xi32>
// AVX2-LABEL: func.func @gemv
// AVX2: arith.constant dense_resource<quench_int8_panel> : tensor<1x4x32xi8>
// AVX2-NOT: quench_int8_colsum
// AVX2: arith.extsi %{{.*}} : i8 to i16
// AVX2: scf.forall
// AVX2: arith.extsi {{.*}} : vector<16xi8> to vector<16xi16>
// AVX2: func.call @llvm.x86.avx2.pmadd.wd({{.*}}) : (vector<16xi16>, vector<16xi16>) -> vector<8xi32>
#x = affine_map<(m, n, k) -> (m, k)>
#w = affine_map<(m, n, k) -> (k, n)>
#o = affine_map<(m, n, k) -> (m, n)>
func.func @gemv(%x: tensor<2x8xi8>) -> tensor<2x16xi32> {
  %w = arith.constant dense<3> : tensor<8x16xi8>
  %c0 = arith.constant 0 : i32
  %e = tensor.empty() : tensor<2x16xi32>
  %f = linalg.fill ins(%c0 : i32) outs(%e : tensor<2x16xi32>) -> tensor<2x16xi32>
  %r = linalg.generic {indexing_maps = [#x, #w, #o],
                       iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : tensor<2x8xi8>, tensor<8x16xi8>) outs(%f : tensor<2x16xi32>) {
  ^bb0(%a: i8, %b: i8, %acc: i32):
    %ea = arith.extsi %a : i8 to i32
    %eb = arith.extsi %b : i8 to i32
    %p = arith.muli %ea, %eb : i32
    %s = arith.addi %acc, %p : i32
    linalg.yield %s : i32
  } -> tensor<2x16xi32>
  return %r : tensor<2x16xi32>
}

// -----

// A computed right-hand side is not the kernel's: nothing changes, and
// no intrinsic is declared.
// VNNI-LABEL: func.func @computed_rhs
// VNNI-NOT: call
// VNNI: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]
// VNNI-SAME: ins(%arg0, %arg1 : tensor<2x8xi8>, tensor<8x16xi8>)
#x = affine_map<(m, n, k) -> (m, k)>
#w = affine_map<(m, n, k) -> (k, n)>
#o = affine_map<(m, n, k) -> (m, n)>
func.func @computed_rhs(%x: tensor<2x8xi8>, %w: tensor<8x16xi8>,
                        %acc: tensor<2x16xi32>) -> tensor<2x16xi32> {
  %r = linalg.generic {indexing_maps = [#x, #w, #o],
                       iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : tensor<2x8xi8>, tensor<8x16xi8>) outs(%acc : tensor<2x16xi32>) {
  ^bb0(%a: i8, %b: i8, %c: i32):
    %ea = arith.extsi %a : i8 to i32
    %eb = arith.extsi %b : i8 to i32
    %p = arith.muli %ea, %eb : i32
    %s = arith.addi %c, %p : i32
    linalg.yield %s : i32
  } -> tensor<2x16xi32>
  return %r : tensor<2x16xi32>
}
