// quench-compile converts 4- and 2-bit weight codes of quantized matmuls
// by a vpermps table lookup when the target has AVX-512F at 512 bits
// (lib/Codegen/CPU/DequantMatmul.cpp); AVX2 targets and --vector-bits=256
// widen and convert the codes instead (vcvtdq2ps).

// RUN: quench-compile %s -o - --emit=llvm --cpu=x86-64-v4 --quant=w4a16 | FileCheck %s --check-prefix=LOOKUP
// LOOKUP: call <16 x float> @llvm.x86.avx512.permvar.sf.512(<16 x float> <float -8.000000e+00,
// RUN: quench-compile %s -o - --emit=llvm --cpu=x86-64-v4 --quant=w2a16 --group-size=16 | FileCheck %s --check-prefix=LOOKUP2
// LOOKUP2: call <16 x float> @llvm.x86.avx512.permvar.sf.512(<16 x float> <float -2.000000e+00, float -1.000000e+00, float 0.000000e+00, float 1.000000e+00, float -2.000000e+00,
// RUN: quench-compile %s -o - --emit=llvm --cpu=x86-64-v4 --quant=w4a16 --vector-bits=256 | FileCheck %s --check-prefix=CONVERT
// RUN: quench-compile %s -o - --emit=llvm --cpu=x86-64-v3 --quant=w4a16 | FileCheck %s --check-prefix=CONVERT
// CONVERT-NOT: @llvm.x86.avx512.permvar
// CONVERT: {{[su]}}itofp {{.*}}<8 x i32>
// CONVERT-NOT: @llvm.x86.avx512.permvar

func.func @main(%x: tensor<1x64xf32> {quench.name = "x"}) -> (tensor<1x48xf32> {quench.name = "y"}) {
  %w = quench.constant dense<0.25> : tensor<48x64xf32>
  %y = quench.linear %x, %w : (tensor<1x64xf32>, tensor<48x64xf32>) -> tensor<1x48xf32>
  return %y : tensor<1x48xf32>
}
