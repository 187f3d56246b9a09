// quench-compile picks the int8 kernel's instructions from the target's
// CPU features (and --vector-bits): vpdpbusd with AVX512-VNNI (zmm) or
// AVX-VNNI (ymm), else vpmaddwd with AVX-512BW (zmm) or AVX2 (ymm);
// --int8-dot=false, or a target with neither, keeps the generic
// contraction. The LLVM IR calls the intrinsic.

// RUN: quench-compile %s -o - --emit=llvm --cpu=x86-64-v3 | FileCheck %s --check-prefix=AVX2
// AVX2: call <8 x i32> @llvm.x86.avx2.pmadd.wd(<16 x i16>
// RUN: quench-compile %s -o - --emit=llvm --cpu=x86-64-v3 --cpu-features=+avxvnni | FileCheck %s --check-prefix=AVXVNNI
// AVXVNNI: call <8 x i32> @llvm.x86.avx512.vpdpbusd.256(<8 x i32>
// RUN: quench-compile %s -o - --emit=llvm --cpu=x86-64-v4 | FileCheck %s --check-prefix=AVX512BW
// AVX512BW: call <16 x i32> @llvm.x86.avx512.pmaddw.d.512(<32 x i16>
// RUN: quench-compile %s -o - --emit=llvm --cpu=x86-64-v4 --cpu-features=+avx512vnni | FileCheck %s --check-prefix=VNNI
// VNNI: call <16 x i32> @llvm.x86.avx512.vpdpbusd.512(<16 x i32>
// RUN: quench-compile %s -o - --emit=llvm --cpu=x86-64-v4 --cpu-features=+avx512vnni --vector-bits=256 | FileCheck %s --check-prefix=AVXVNNI
// RUN: quench-compile %s -o - --emit=llvm --cpu=x86-64-v4 --cpu-features=+avx512vnni --int8-dot=false | FileCheck %s --check-prefix=GENERIC
// RUN: quench-compile %s -o - --emit=llvm --cpu=x86-64-v2 --cpu-features=+avx | FileCheck %s --check-prefix=GENERIC
// GENERIC-NOT: @llvm.x86.avx
// GENERIC: mul <{{[0-9]+}} x i32>
// GENERIC-NOT: @llvm.x86.avx

func.func @main(%x: tensor<3x13xf32> {quench.name = "x"}) -> (tensor<3x20xf32> {quench.name = "y"}) {
  %w = quench.constant dense<"0x81A6CBF0153A5F85AACFF4193E6389AED3F81D42678DB2D7FC21466B91B6DB00254A6F95BADF04294E7399BEE3082D52779DC2E70C31567BA1C6EB10355A7FA5CAEF14395E84A9CEF3183D6288ADD2F71C41668CB1D6FB20456A90B5DAFF24496E94B9DE03284D7298BDE2072C51769CC1E60B30557AA0C5EA0F34597EA4C9EE13385D83A8CDF2173C6187ACD1F61B40658BB0D5FA1F44698FB4D9FE23486D93B8DD02274C7197BCE1062B50759BC0E50A2F54799FC4E90E33587DA3C8ED12375C82A7CCF1163B6086ABD0F51A3F648AAFD4F91E43688EB3D8FD22476C92B7DC01264B7096BBE0052A4F749ABFE4092E53789EC3E80D32577CA2C7EC11365B81A6CBF015"> : tensor<20x13xi8>
  %s = quench.constant dense<0.5> : tensor<20xf32>
  %y = quench.qlinear %x, %w, %s : (tensor<3x13xf32>, tensor<20x13xi8>, tensor<20xf32>) -> tensor<3x20xf32>
  return %y : tensor<3x20xf32>
}
