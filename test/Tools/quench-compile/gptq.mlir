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
// NOQUANT: error: --group-size, --asymmetric, --quant-exclude, --quant-recipe, --quant-embeddings and --algo need --quant (e.g. --quant=w4a16)
// RUN: not quench-compile %s -o %t/x --quant=w8a16 --algo=hqq 2>&1 | FileCheck %s --check-prefix=BADALGO
// BADALGO: error: --algo must be rtn or gptq, got 'hqq'
// RUN: ls %t | count 0
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
