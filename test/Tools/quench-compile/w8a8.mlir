// The W8A8 presets of --quant: w8a8-dynamic rewrites linears into
// quench.qlinear without input_scale; w8a8 (static) needs calibration and
// names every layer it lacks; both quantize weights per output channel.

// RUN: rm -rf %t && mkdir -p %t
// RUN: quench-compile %s -o - --quant=w8a8-dynamic --stop-after-stage=quantize 2>/dev/null | FileCheck %s --check-prefix=DYN
// DYN-LABEL: func.func
// DYN-COUNT-2: quench.qlinear %{{[^ ]*}}, %{{[^ ]*}}, %{{[^ ]*}} :
// DYN-NOT: quench.linear
// RUN: quench-compile %s -o %t/m --quant=w8a8-dynamic | FileCheck %s --check-prefix=REPORT
// REPORT: /l0/MatMul {{.*}} int8 per-channel sym f32, act int8 dynamic per-token
// RUN: not quench-compile %s -o %t/x --quant=w8a8 2>&1 | FileCheck %s --check-prefix=NOCALIB
// NOCALIB: error: {{.*}}--quant=w8a8 needs calibration (--calib or --calib-cache); no range for layers: /l0/MatMul, /l1/MatMul
// RUN: not quench-compile %s -o %t/x --quant=w8a8-dynamic --group-size=32 2>&1 | FileCheck %s --check-prefix=GROUP
// GROUP: error: {{.*}}--quant=w8a8-dynamic quantizes weights per output channel: --group-size must be 0
// RUN: not quench-compile %s -o %t/x --quant=w8a4 2>&1 | FileCheck %s --check-prefix=UNKNOWN
// UNKNOWN: error: {{.*}}unknown quantization 'w8a4': use none, w8a16, w4a16, w3a16, w2a16, w8a8 or w8a8-dynamic
// RUN: not ls %t/x

func.func @main(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %w0 = quench.constant dense<0.5> : tensor<16x16xf32>
  %w1 = quench.constant dense<0.25> : tensor<8x16xf32>
  %h = quench.linear %x, %w0 : (tensor<4x16xf32>, tensor<16x16xf32>) -> tensor<4x16xf32> loc("/l0/MatMul")
  %y = quench.linear %h, %w1 : (tensor<4x16xf32>, tensor<8x16xf32>) -> tensor<4x8xf32> loc("/l1/MatMul")
  return %y : tensor<4x8xf32>
}
