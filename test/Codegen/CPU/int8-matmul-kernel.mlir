// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg --quench-cpu-codegen="vector-bits=512 int8-dot=vnni" | FileCheck %s --check-prefix=VNNI
// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg --quench-cpu-codegen="vector-bits=256 int8-dot=vnni" | FileCheck %s --check-prefix=VNNI256
// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg --quench-cpu-codegen="vector-bits=256 int8-dot=pmaddwd" | FileCheck %s --check-prefix=AVX2
// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg --quench-cpu-codegen="vector-bits=512 int8-dot=pmaddwd" | FileCheck %s --check-prefix=AVX512BW
// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg --quench-cpu-codegen="vector-bits=256" | FileCheck %s --check-prefix=GENERIC
// RUN: quench-opt %s --split-input-file --quench-quantize-weights="activations=static static-input-range=4" --convert-quench-to-linalg --quench-cpu-codegen="vector-bits=512 int8-dot=vnni" | FileCheck %s --check-prefix=CHAIN
// RUN: quench-opt %s --split-input-file --quench-quantize-weights="activations=static static-input-range=4" --convert-quench-to-linalg --quench-cpu-codegen="vector-bits=256 int8-dot=pmaddwd" | FileCheck %s --check-prefix=CHAIN-AVX2

// The int8 kernel of quench.qlinear (lib/Codegen/CPU/Int8Matmul.cpp): the
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
// The 20 columns of a 64-column panel: the product's only user (the
// rescale to f32) is fused into the tile; it takes the row's first 20
// accumulators, and no i32 result is stored.
// VNNI: vector.shape_cast {{.*}} : vector<64xi32> to vector<1x64xi32>
// VNNI: vector.extract_strided_slice {{.*}} : vector<1x64xi32> to vector<1x20xi32>
// VNNI: arith.sitofp {{.*}} : vector<1x20xi32> to vector<1x20xf32>
// VNNI-NOT: xi32>, tensor
// VNNI: vector.transfer_write {{.*}} : vector<1x20xf32>, tensor<1x20xf32>
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

// -----

// Epilogue fusion into the kernel: a static W8A8 chain qlinear -> tanh ->
// qlinear (quench-quantize-weights, static range 4). Each product's only
// user (int32 -> f32 rescale, bias, tanh and the next layer's quantization
// to i8, merged into one elementwise op; then the last rescale) runs inside
// the kernel's register tiles: each tile row's accumulators go through a
// copy of the epilogue on a [1, nr] tile, vectorized by
// quench-cpu-tile-and-vectorize, its read of the accumulators folded into
// the vectors. No i32 tensor of the products is written: the stores are i8
// (the hidden layer) and f32 (the output).
// CHAIN-LABEL: func.func @chain
// CHAIN-NOT: tensor<8x{{[0-9]+}}xi32>
// CHAIN-NOT: vector.transfer_write {{.*}} : vector<{{[0-9x]+}}xi32>
// CHAIN: func.call @llvm.x86.avx512.vpdpbusd.512
// CHAIN: %[[ROW:.*]] = vector.shape_cast %{{.*}} : vector<64xi32> to vector<1x64xi32>
// CHAIN: arith.sitofp %[[ROW]] : vector<1x64xi32> to vector<1x64xf32>
// CHAIN: math.tanh {{.*}} : vector<1x64xf32>
// CHAIN: arith.trunci {{.*}} : vector<1x64xi32> to vector<1x64xi8>
// CHAIN-NEXT: vector.transfer_write {{.*}} : vector<1x64xi8>, tensor<1x64xi8>
// CHAIN-NOT: vector.transfer_write {{.*}} : vector<{{[0-9x]+}}xi32>
// CHAIN: func.call @llvm.x86.avx512.vpdpbusd.512({{.*}}) : (vector<16xi32>, vector<64xi8>, vector<64xi8>)
// CHAIN-NOT: vector.transfer_write {{.*}} : vector<{{[0-9x]+}}xi32>
// CHAIN: vector.transfer_write {{.*}} : vector<1x16xf32>, tensor<1x16xf32>
// CHAIN-NOT: tensor<8x{{[0-9]+}}xi32>
// CHAIN-NOT: vector.transfer_write {{.*}} : vector<{{[0-9x]+}}xi32>
// CHAIN: return
// CHAIN-AVX2-LABEL: func.func @chain
// CHAIN-AVX2-NOT: tensor<8x{{[0-9]+}}xi32>
// CHAIN-AVX2-NOT: vector.transfer_write {{.*}} : vector<{{[0-9x]+}}xi32>
// CHAIN-AVX2: func.call @llvm.x86.avx2.pmadd.wd
// CHAIN-AVX2: vector.transfer_write {{.*}} : vector<1x16xi8>, tensor<1x16xi8>
// CHAIN-AVX2-NOT: vector.transfer_write {{.*}} : vector<{{[0-9x]+}}xi32>
// CHAIN-AVX2: return
func.func @chain(%x: tensor<8x8xf32>) -> tensor<8x16xf32> {
  %w1 = quench.constant dense<0.5> : tensor<64x8xf32>
  %b1 = quench.constant dense<0.25> : tensor<64xf32>
  %w2 = quench.constant dense<-0.25> : tensor<16x64xf32>
  %h = quench.linear %x, %w1, %b1 : (tensor<8x8xf32>, tensor<64x8xf32>, tensor<64xf32>) -> tensor<8x64xf32>
  %t = quench.tanh %h : tensor<8x64xf32>
  %y = quench.linear %t, %w2 : (tensor<8x64xf32>, tensor<16x64xf32>) -> tensor<8x16xf32>
  return %y : tensor<8x16xf32>
}

// -----

// Not fused: the product has two users (the function's result and an
// elementwise op), so the kernel writes the i32 product and the
// elementwise op reads it afterwards.
// CHAIN-LABEL: func.func @two_users
// CHAIN: call @llvm.x86.avx512.vpdpbusd.512
// CHAIN: vector.transfer_write {{.*}} : vector<16xi32>, tensor<4x16xi32>
// CHAIN: arith.sitofp {{.*}} : vector<{{[0-9x]+}}xi32> to vector<{{[0-9x]+}}xf32>
func.func @two_users(%a: tensor<4x4xi8>) -> (tensor<4x16xi32>, tensor<4x16xf32>) {
  %w = arith.constant dense<"0x0B30557A9FC4E90E33587DA2C7EC11365B80A5CAEF14395E83A8CDF2173C6186ABD0F51A3F6489AED3F81D42678CB1D6FB20456A8FB4D9FE23486D92B7DC0126"> : tensor<16x4xi8>
  %c0 = arith.constant 0 : i32
  %e = tensor.empty() : tensor<4x16xi32>
  %init = linalg.fill ins(%c0 : i32) outs(%e : tensor<4x16xi32>) -> tensor<4x16xi32>
  %p = linalg.generic {indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                        affine_map<(m, n, k) -> (n, k)>,
                                        affine_map<(m, n, k) -> (m, n)>],
                       iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%a, %w : tensor<4x4xi8>, tensor<16x4xi8>) outs(%init : tensor<4x16xi32>) {
  ^bb0(%x: i8, %y: i8, %acc: i32):
    %xe = arith.extsi %x : i8 to i32
    %ye = arith.extsi %y : i8 to i32
    %m = arith.muli %xe, %ye : i32
    %s = arith.addi %acc, %m : i32
    linalg.yield %s : i32
  } -> tensor<4x16xi32>
  %fe = tensor.empty() : tensor<4x16xf32>
  %f = linalg.generic {indexing_maps = [affine_map<(m, n) -> (m, n)>,
                                        affine_map<(m, n) -> (m, n)>],
                       iterator_types = ["parallel", "parallel"]}
      ins(%p : tensor<4x16xi32>) outs(%fe : tensor<4x16xf32>) {
  ^bb0(%v: i32, %o: f32):
    %c = arith.sitofp %v : i32 to f32
    linalg.yield %c : f32
  } -> tensor<4x16xf32>
  return %p, %f : tensor<4x16xi32>, tensor<4x16xf32>
}
