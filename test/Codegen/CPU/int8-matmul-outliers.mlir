// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg --quench-cpu-codegen="vector-bits=512 int8-dot=vnni" | FileCheck %s --check-prefix=VNNI
// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg --quench-cpu-codegen="vector-bits=256 int8-dot=pmaddwd" | FileCheck %s --check-prefix=AVX2
// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg --quench-cpu-codegen="vector-bits=256" | FileCheck %s --check-prefix=GENERIC

// Outlier channels (quench.qlinear with outliers(...)): the float product
// of the C = 2 outlier channels is computed inside the int8 kernel's tiles,
// after each tile's K loop: per column vector, a loop over the channels
// with one f32 accumulator per tile row (load the weight vector of [C, N],
// laid out at compile time, once; per row broadcast x[row, O[c]] and
// vector.fma), handed to the epilogue in place of a tensor. No separate
// outlier product is left. 6 rows x 4 vectors (VNNI), 4 x 2 then 2 x 2
// (AVX2).
// VNNI-LABEL: func.func @rows
// VNNI-NOT: quench.outlier_product
// VNNI: func.call @llvm.x86.avx512.vpdpbusd.512
// VNNI-COUNT-4: scf.for {{.*}} to %c2 {{.*}} -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// VNNI: vector.transfer_read {{.*}} : tensor<2x20xf32>, vector<16xf32>
// VNNI: tensor.extract
// VNNI: vector.broadcast {{.*}} : f32 to vector<16xf32>
// VNNI-COUNT-6: vector.fma {{.*}} : vector<16xf32>
// VNNI-NOT: quench.outlier_product
// AVX2-LABEL: func.func @rows
// AVX2-NOT: quench.outlier_product
// AVX2: func.call @llvm.x86.avx2.pmadd.wd
// AVX2: scf.for {{.*}} to %c2 {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// AVX2-COUNT-4: vector.fma {{.*}} : vector<8xf32>
// AVX2-NOT: quench.outlier_product
// Without the int8 kernel the outlier product is a contraction of its own
// (vectorized as the generic path's float contractions).
// GENERIC-LABEL: func.func @rows
// GENERIC-NOT: vector.fma
// GENERIC: vector.contract
func.func @rows(%x: tensor<2x3x13xf32>) -> tensor<2x3x20xf32> {
  %w = quench.constant dense<"0x81A6CBF0153A5F85AACFF4193E6389AED3F81D42678DB2D7FC21466B91B6DB00254A6F95BADF04294E7399BEE3082D52779DC2E70C31567BA1C6EB10355A7FA5CAEF14395E84A9CEF3183D6288ADD2F71C41668CB1D6FB20456A90B5DAFF24496E94B9DE03284D7298BDE2072C51769CC1E60B30557AA0C5EA0F34597EA4C9EE13385D83A8CDF2173C6187ACD1F61B40658BB0D5FA1F44698FB4D9FE23486D93B8DD02274C7197BCE1062B50759BC0E50A2F54799FC4E90E33587DA3C8ED12375C82A7CCF1163B6086ABD0F51A3F648AAFD4F91E43688EB3D8FD22476C92B7DC01264B7096BBE0052A4F749ABFE4092E53789EC3E80D32577CA2C7EC11365B81A6CBF015"> : tensor<20x13xi8>
  %s = quench.constant dense<0.5> : tensor<20xf32>
  %b = quench.constant dense<0.25> : tensor<20xf32>
  %o = quench.constant dense<"0x000020C0000018C0000010C0000008C0000000C00000F0BF0000E0BF0000D0BF0000C0BF0000B0BF0000A0BF000090BF000080BF000060BF000040BF000020BF000000BF0000C0BE000080BE000000BE000000000000003E0000803E0000C03E0000003F0000203F0000403F0000603F0000803F0000903F0000A03F0000B03F0000C03F0000D03F0000E03F0000F03F00000040000008400000104000001840"> : tensor<20x2xf32>
  %y = quench.qlinear %x, %w, %s bias(%b) input_scale(0.25) outliers(%o, [1, 12]) : (tensor<2x3x13xf32>, tensor<20x13xi8>, tensor<20xf32>, tensor<20xf32>, tensor<20x2xf32>) -> tensor<2x3x20xf32>
  return %y : tensor<2x3x20xf32>
}

// -----

// One row, dynamic scales.
// VNNI-LABEL: func.func @gemv
// VNNI-NOT: quench.outlier_product
// VNNI: vector.fma {{.*}} : vector<16xf32>
func.func @gemv(%x: tensor<1x13xf32>) -> tensor<1x20xf32> {
  %w = quench.constant dense<"0x81A6CBF0153A5F85AACFF4193E6389AED3F81D42678DB2D7FC21466B91B6DB00254A6F95BADF04294E7399BEE3082D52779DC2E70C31567BA1C6EB10355A7FA5CAEF14395E84A9CEF3183D6288ADD2F71C41668CB1D6FB20456A90B5DAFF24496E94B9DE03284D7298BDE2072C51769CC1E60B30557AA0C5EA0F34597EA4C9EE13385D83A8CDF2173C6187ACD1F61B40658BB0D5FA1F44698FB4D9FE23486D93B8DD02274C7197BCE1062B50759BC0E50A2F54799FC4E90E33587DA3C8ED12375C82A7CCF1163B6086ABD0F51A3F648AAFD4F91E43688EB3D8FD22476C92B7DC01264B7096BBE0052A4F749ABFE4092E53789EC3E80D32577CA2C7EC11365B81A6CBF015"> : tensor<20x13xi8>
  %s = quench.constant dense<0.5> : tensor<20xf32>
  %o = quench.constant dense<"0x000020C0000018C0000010C0000008C0000000C00000F0BF0000E0BF0000D0BF0000C0BF0000B0BF0000A0BF000090BF000080BF000060BF000040BF000020BF000000BF0000C0BE000080BE000000BE000000000000003E0000803E0000C03E0000003F0000203F0000403F0000603F0000803F0000903F0000A03F0000B03F0000C03F0000D03F0000E03F0000F03F00000040000008400000104000001840"> : tensor<20x2xf32>
  %y = quench.qlinear %x, %w, %s outliers(%o, [0, 5]) : (tensor<1x13xf32>, tensor<20x13xi8>, tensor<20xf32>, tensor<20x2xf32>) -> tensor<1x20xf32>
  return %y : tensor<1x20xf32>
}
