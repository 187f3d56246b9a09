// --algo=hqq needs no calibration; it implies --asymmetric for weight-only
// schemes (HQQ optimizes zero points), unless --asymmetric=false (then it
// optimizes the scales only); W8A8 keeps its symmetric weights. Recipes
// select it per layer with "algo": "hqq".

// RUN: rm -rf %t && mkdir -p %t
// RUN: quench-compile %s -o %t/a --emit=mlir --stop-after-stage=quantize --quant=w4a16 --group-size=8 --algo=hqq | FileCheck %s
// CHECK: /fc1/MatMul 8x8 int4 g8 asym f16 hqq 256 56
// CHECK: /fc2/MatMul 8x8 int4 g8 asym f16 hqq 256 56
// RUN: quench-compile %s -o %t/b --emit=mlir --stop-after-stage=quantize --quant=w4a16 --group-size=8 --algo=hqq --asymmetric=false | FileCheck %s --check-prefix=SYM
// SYM: /fc1/MatMul 8x8 int4 g8 sym f16 hqq 256 48
// RUN: quench-compile %s -o %t/c --emit=mlir --stop-after-stage=quantize --quant=w8a8-dynamic --algo=hqq | FileCheck %s --check-prefix=W8A8
// W8A8: /fc1/MatMul 8x8 int8 per-channel sym f32, act int8 dynamic per-token hqq
// RUN: echo '{"version": 1, "layers": [{"match": "/fc2/*", "algo": "hqq", "symmetric": false}]}' > %t.recipe.json
// RUN: quench-compile %s -o %t/d --emit=mlir --stop-after-stage=quantize --quant=w4a16 --group-size=8 --quant-recipe=%t.recipe.json | FileCheck %s --check-prefix=RECIPE
// RECIPE: /fc1/MatMul 8x8 int4 g8 sym f16 256 48
// RECIPE: /fc2/MatMul 8x8 int4 g8 asym f16 hqq 256 56
// RUN: not quench-compile %s -o %t/x --quant=w8a16 --algo=awq4 2>&1 | FileCheck %s --check-prefix=BADALGO
// BADALGO: error: --algo must be rtn, gptq, hqq, awq or awq+gptq, got 'awq4'

func.func @main(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
  %w1 = quench.constant dense<[[0.5, -0.25, 0.125, 0.3, -0.7, 0.05, 0.9, -0.05], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], [-0.1, 0.2, -0.3, 0.4, -0.5, 0.6, -0.7, 0.8], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [1.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07], [0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.31], [-0.9, 0.8, -0.7, 0.6, -0.5, 0.4, -0.3, 0.2], [0.11, -0.12, 0.13, -0.14, 0.15, -0.16, 0.17, -0.18]]> : tensor<8x8xf32>
  %w2 = quench.constant dense<-0.25> : tensor<8x8xf32>
  %h = quench.linear %x, %w1 : (tensor<2x8xf32>, tensor<8x8xf32>) -> tensor<2x8xf32> loc("/fc1/MatMul")
  %y = quench.linear %h, %w2 : (tensor<2x8xf32>, tensor<8x8xf32>) -> tensor<2x8xf32> loc("/fc2/MatMul")
  return %y : tensor<2x8xf32>
}
