// --algo=gptq needs calibration statistics (the input Gram matrix of every
// quantized linear); without them quench-compile names every such layer at
// once and writes nothing. --algo needs --quant and is rtn or gptq.

// RUN: rm -rf %t && mkdir -p %t
// RUN: not quench-compile %s -o %t/x --quant=w4a16 --group-size=8 --algo=gptq 2>&1 | FileCheck %s
// CHECK: error: {{.*}}GPTQ needs calibration (--calib or --calib-cache); no input statistics for layers: /fc1/MatMul, /fc2/MatMul{{ ?$}}
// CHECK: error: stage 'quantize' failed (see above)
// RUN: not quench-compile %s -o %t/x --quant=w8a16 --algo=gptq --quant-exclude='/fc1/*' 2>&1 | FileCheck %s --check-prefix=EXCL
// EXCL: error: {{.*}}GPTQ needs calibration (--calib or --calib-cache); no input statistics for layers: /fc2/MatMul{{ ?$}}
// RUN: not quench-compile %s -o %t/x --algo=gptq 2>&1 | FileCheck %s --check-prefix=NOQUANT
// NOQUANT: error: --algo needs --quant (e.g. --quant=w4a16)
// RUN: not quench-compile %s -o %t/x --quant=w8a16 --algo=nearest 2>&1 | FileCheck %s --check-prefix=BADALGO
// BADALGO: error: --algo must be rtn, gptq, hqq, awq or awq+gptq, got 'nearest'
// RUN: ls %t | count 0
// A recipe can ask for GPTQ on some layers only: only those need (and,
// without calibration, are named as lacking) input statistics; with
// calibration they are rounded by GPTQ, the others by RTN.
// RUN: echo '{"version": 1, "layers": [{"match": "/fc2/*", "algo": "gptq", "gptq_dampening": 0.05}]}' > %t.recipe.json
// RUN: not quench-compile %s -o %t/x --quant=w4a16 --group-size=8 --quant-recipe=%t.recipe.json 2>&1 | FileCheck %s --check-prefix=RECIPE-NOCALIB
// RECIPE-NOCALIB: error: {{.*}}GPTQ needs calibration (--calib or --calib-cache); no input statistics for layers: /fc2/MatMul{{ ?$}}
// RUN: mkdir -p %t.samples && %quench_python -c "import numpy as np; np.save('%t.samples/input_0.npy', np.random.default_rng(0).normal(size=(2, 8)).astype(np.float32))"
// RUN: quench-compile %s -o %t.recipe --emit=mlir --stop-after-stage=quantize --quant=w4a16 --group-size=8 --quant-recipe=%t.recipe.json --calib=%t.samples --quant-threads=2 | FileCheck %s --check-prefix=RECIPE
// RECIPE: /fc1/MatMul 8x8 int4 g8 sym f16 256
// RECIPE: /fc2/MatMul 8x8 int4 g8 sym f16 gptq 256
// --algo=rtn is the default scheme.
// RUN: quench-compile %s -o - --emit=mlir --stop-after-stage=quantize --quant=w8a16 --algo=rtn | FileCheck %s --check-prefix=RTN
// RTN-COUNT-2: quench.matmul_nbits

func.func @main(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
  %w1 = quench.constant dense<0.5> : tensor<8x8xf32>
  %w2 = quench.constant dense<-0.25> : tensor<8x8xf32>
  %h = quench.linear %x, %w1 : (tensor<2x8xf32>, tensor<8x8xf32>) -> tensor<2x8xf32> loc("/fc1/MatMul")
  %y = quench.linear %h, %w2 : (tensor<2x8xf32>, tensor<8x8xf32>) -> tensor<2x8xf32> loc("/fc2/MatMul")
  return %y : tensor<2x8xf32>
}
