// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg --quench-cpu-codegen="vector-bits=512 int8-dot=vnni" | FileCheck %s --check-prefix=VNNI
// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg --quench-cpu-codegen="vector-bits=256 int8-dot=vnni" | FileCheck %s --check-prefix=VNNI256
// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg --quench-cpu-codegen="vector-bits=256 int8-dot=pmaddwd" | FileCheck %s --check-prefix=AVX2
// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg --quench-cpu-codegen="vector-bits=512 int8-dot=pmaddwd" | FileCheck %s --check-prefix=AVX512BW
// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg --quench-cpu-codegen="vector-bits=256" | FileCheck %s --check-prefix=GENERIC

// The int8 kernel of quench.qlinear (lib/Pipelines/Int8Matmul.cpp): the
// constant weight [N, K] = [20, 13] packed at compile time into panels of
// nr columns x K groups (4 bytes for vpdpbusd, 2 for vpmaddwd), zero
// padded: one row streams nv = 4 vectors (nr = 64 / 32 columns at 512 /
// 256 bits); K = 13 is 3 full groups of 4 and a masked tail (6 + 1 of 2).
// vpdpbusd takes u8 = q xor 0x80 and starts from -128 * column sums;
// vpmaddwd takes q as i16, each product added with vpaddd.
// VNNI: func.func private @llvm.x86.avx512.vpdpbusd.512(vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
// VNNI-LABEL: func.func @gemv
// VNNI-DAG: %[[W:.*]] = arith.constant dense_resource<quench_int8_panel{{.*}}> : tensor<1x4x256xi8>
// VNNI-DAG: %[[SUM:.*]] = arith.constant dense_resource<quench_int8_colsum{{.*}}> : tensor<1x64xi32>
// VNNI: arith.xori {{.*}} : vector<1x13xi8>
// VNNI: vector.transfer_read %[[SUM]]
// VNNI: arith.subi
// VNNI: scf.for {{.*}} -> (vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>)
// VNNI: vector.transfer_read {{.*}} {in_bounds = [true]} : tensor<1x13xi8>, vector<4xi8>
// VNNI: vector.bitcast {{.*}} : vector<4xi8> to vector<1xi32>
// VNNI: vector.broadcast {{.*}} : i32 to vector<16xi32>
// VNNI: vector.transfer_read %[[W]]{{.*}} : tensor<1x4x256xi8>, vector<64xi8>
// VNNI: func.call @llvm.x86.avx512.vpdpbusd.512
// The K tail: the activation group read is masked (no in_bounds).
// VNNI: scf.yield
// VNNI: vector.transfer_read %{{.*}}[%c0, %c12], %{{.*}} : tensor<1x13xi8>, vector<4xi8>
// VNNI: call @llvm.x86.avx512.vpdpbusd.512
// The 20 columns of a 64-column panel: masked result transfers.
// VNNI: vector.transfer_write {{.*}}[%c0, %c16] : vector<16xi32>, tensor<1x20xi32>
// VNNI256-LABEL: func.func @gemv
// VNNI256: arith.constant dense_resource<quench_int8_panel{{.*}}> : tensor<1x4x128xi8>
// VNNI256: func.call @llvm.x86.avx512.vpdpbusd.256({{.*}}) : (vector<8xi32>, vector<32xi8>, vector<32xi8>) -> vector<8xi32>
// AVX2-LABEL: func.func @gemv
// AVX2: arith.constant dense_resource<quench_int8_panel{{.*}}> : tensor<1x7x64xi8>
// AVX2-NOT: quench_int8_colsum
// AVX2: arith.extsi {{.*}} : vector<1x13xi8> to vector<1x13xi16>
// AVX2: vector.transfer_read {{.*}} : tensor<1x13xi16>, vector<2xi16>
// AVX2: vector.bitcast {{.*}} : vector<2xi16> to vector<1xi32>
// AVX2: arith.extsi {{.*}} : vector<16xi8> to vector<16xi16>
// AVX2: func.call @llvm.x86.avx2.pmadd.wd({{.*}}) : (vector<16xi16>, vector<16xi16>) -> vector<8xi32>
// AVX2: arith.addi {{.*}} : vector<8xi32>
// AVX512BW-LABEL: func.func @gemv
// AVX512BW: func.call @llvm.x86.avx512.pmaddw.d.512({{.*}}) : (vector<32xi16>, vector<32xi16>) -> vector<16xi32>
// GENERIC-LABEL: func.func @gemv
// GENERIC-NOT: call
// GENERIC-NOT: quench_int8_panel
// GENERIC: vector.contract {{.*}} : vector<1x4xi8>, vector<4x20xi8> into vector<1x20xi32>
func.func @gemv(%x: tensor<1x13xf32>) -> tensor<1x20xf32> {
  %w = quench.constant dense<"0x81A6CBF0153A5F85AACFF4193E6389AED3F81D42678DB2D7FC21466B91B6DB00254A6F95BADF04294E7399BEE3082D52779DC2E70C31567BA1C6EB10355A7FA5CAEF14395E84A9CEF3183D6288ADD2F71C41668CB1D6FB20456A90B5DAFF24496E94B9DE03284D7298BDE2072C51769CC1E60B30557AA0C5EA0F34597EA4C9EE13385D83A8CDF2173C6187ACD1F61B40658BB0D5FA1F44698FB4D9FE23486D93B8DD02274C7197BCE1062B50759BC0E50A2F54799FC4E90E33587DA3C8ED12375C82A7CCF1163B6086ABD0F51A3F648AAFD4F91E43688EB3D8FD22476C92B7DC01264B7096BBE0052A4F749ABFE4092E53789EC3E80D32577CA2C7EC11365B81A6CBF015"> : tensor<20x13xi8>
  %s = quench.constant dense<0.5> : tensor<20xf32>
  %y = quench.qlinear %x, %w, %s : (tensor<1x13xf32>, tensor<20x13xi8>, tensor<20xf32>) -> tensor<1x20xf32>
  return %y : tensor<1x20xf32>
}

// -----

// Rows (batch dims collapsed, 2 x 3 = 6): register tiles of 6 rows x 4
// vectors (vpdpbusd, 512 bits), 4 x 2 (vpmaddwd, 256 bits: 16-column
// panels, 2 of them for N = 20) then a tile of the 2 remaining rows.
// VNNI-LABEL: func.func @rows
// VNNI: tensor.collapse_shape
// VNNI: scf.for {{.*}} -> (vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>)
// VNNI-COUNT-24: func.call @llvm.x86.avx512.vpdpbusd.512
// VNNI: tensor.expand_shape
// AVX2-LABEL: func.func @rows
// AVX2: arith.constant dense_resource<quench_int8_panel{{.*}}> : tensor<2x7x32xi8>
// AVX2: scf.for {{.*}} -> (vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>)
// AVX2-COUNT-8: func.call @llvm.x86.avx2.pmadd.wd
// AVX2: scf.for {{.*}} -> (vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>)
// AVX2-COUNT-4: func.call @llvm.x86.avx2.pmadd.wd
func.func @rows(%x: tensor<2x3x13xf32>) -> tensor<2x3x20xf32> {
  %w = quench.constant dense<"0x81A6CBF0153A5F85AACFF4193E6389AED3F81D42678DB2D7FC21466B91B6DB00254A6F95BADF04294E7399BEE3082D52779DC2E70C31567BA1C6EB10355A7FA5CAEF14395E84A9CEF3183D6288ADD2F71C41668CB1D6FB20456A90B5DAFF24496E94B9DE03284D7298BDE2072C51769CC1E60B30557AA0C5EA0F34597EA4C9EE13385D83A8CDF2173C6187ACD1F61B40658BB0D5FA1F44698FB4D9FE23486D93B8DD02274C7197BCE1062B50759BC0E50A2F54799FC4E90E33587DA3C8ED12375C82A7CCF1163B6086ABD0F51A3F648AAFD4F91E43688EB3D8FD22476C92B7DC01264B7096BBE0052A4F749ABFE4092E53789EC3E80D32577CA2C7EC11365B81A6CBF015"> : tensor<20x13xi8>
  %s = quench.constant dense<0.5> : tensor<20xf32>
  %y = quench.qlinear %x, %w, %s input_scale(0.25) : (tensor<2x3x13xf32>, tensor<20x13xi8>, tensor<20xf32>) -> tensor<2x3x20xf32>
  return %y : tensor<2x3x20xf32>
}

// -----

// Weights computed at run time (a function argument): the generic
// contraction stays (vector.contract of i8 into i32, outer products).
// VNNI-LABEL: func.func @runtime_weight
// VNNI-NOT: call
// VNNI: vector.contract {{.*}} : vector<4x4xi8>, vector<4x20xi8> into vector<4x20xi32>
func.func @runtime_weight(%x: tensor<4x13xf32>, %w: tensor<20x13xi8>) -> tensor<4x20xf32> {
  %s = quench.constant dense<0.5> : tensor<20xf32>
  %y = quench.qlinear %x, %w, %s : (tensor<4x13xf32>, tensor<20x13xi8>, tensor<20xf32>) -> tensor<4x20xf32>
  return %y : tensor<4x20xf32>
}
