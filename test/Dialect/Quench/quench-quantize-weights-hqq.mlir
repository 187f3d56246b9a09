// RUN: quench-opt %s --quench-quantize-weights="bits=3 group-size=8 symmetric=false scale-type=f32" | FileCheck %s --check-prefix=RTN
// RUN: quench-opt %s --quench-quantize-weights="algo=hqq bits=3 group-size=8 symmetric=false scale-type=f32" | FileCheck %s --check-prefix=HQQ
// RUN: echo '{"version": 1, "default": {"bits": 3, "group_size": 8, "symmetric": false, "scale_type": "f32"}, "layers": [{"match": "/fc/*", "algo": "hqq"}]}' > %t.hqq.json
// RUN: quench-opt %s --quench-quantize-weights="recipe=%t.hqq.json" | FileCheck %s --check-prefix=HQQ
// RUN: echo '{"version": 1, "layers": [{"match": "*", "algo": "hqq", "gptq_dampening": 0.1}]}' > %t.bad.json
// RUN: not quench-opt %s --quench-quantize-weights="recipe=%t.bad.json" 2>&1 | FileCheck %s --check-prefix=BADOPT
// RUN: not quench-opt %s --quench-quantize-weights="algo=hq" 2>&1 | FileCheck %s --check-prefix=BADALGO
// RUN: quench-opt %s --quench-quantize-weights="algo=hqq hqq-lp-norm=2 bits=3 group-size=8 symmetric=false scale-type=f32" | FileCheck %s --check-prefix=L2
// RUN: not quench-opt %s --quench-quantize-weights="algo=hqq hqq-lp-norm=0" 2>&1 | FileCheck %s --check-prefix=BADP

// HQQ (algo=hqq) against RTN on a 3-bit asymmetric group of 8 weights,
// row 1 = [-0.05, 0.02, 0.11, 0.19, 0.31, 0.42, 0.48, 0.61]. RTN spans
// [min, max]: scale 0.66 / 7 = 0.0942857, zero point 1, codes 0 .. 7
// (sum |e|^0.7 = 0.581, sum e^2 = 7.2e-3). HQQ keeps the zero point and
// widens the step to 0.1015679, clipping -0.05 to 0 (code 1): sum |e|^0.7 =
// 0.433, sum e^2 = 4.1e-3. Codes pack 3 bits little-endian: row 1's first
// byte 136 = codes 0, 1, 2 (bits 000 001 0..); 137 = 1, 1, 2. Row 0, whose
// 3.0 outlier sets the range, stays RTN's.
// RTN-LABEL: func.func @linear
// RTN-DAG: quench.constant dense<{{\[\[\[}}0, 146, 228]], {{\[\[}}136, 198, 250]]]> : tensor<2x1x3xui8>
// RTN-DAG: quench.constant dense<{{\[\[}}0.428571433], [0.094285719]]> : tensor<2x1xf32>
// RTN-DAG: quench.constant dense<{{\[\[}}0], [1]]> : tensor<2x1xui8>
// HQQ-LABEL: func.func @linear
// HQQ-DAG: %[[Q:.*]] = quench.constant dense<{{\[\[\[}}0, 146, 228]], {{\[\[}}137, 198, 250]]]> : tensor<2x1x3xui8>
// HQQ-DAG: %[[S:.*]] = quench.constant dense<{{\[\[}}0.428571433], [0.101567909]]> : tensor<2x1xf32>
// HQQ-DAG: %[[Z:.*]] = quench.constant dense<{{\[\[}}0], [1]]> : tensor<2x1xui8>
// HQQ: quench.matmul_nbits %arg0, %[[Q]], %[[S]] zp(%[[Z]]) {bits = 3 : i64, block_size = 8 : i64, in_features = 8 : i64, out_features = 2 : i64}
// HQQ-NOT: quench.linear
// With p = 2 (the squared error, hqq-lp-norm=2) no weight is clipped: the
// steps are the least-squares ones for the same codes, row 0's 0.4299495
// (sum e^2 0.10184 -> 0.10170), row 1's 0.0992476 (7.2e-3 -> 4.2e-3).
// L2-DAG: quench.constant dense<{{\[\[\[}}0, 146, 228]], {{\[\[}}136, 198, 250]]]> : tensor<2x1x3xui8>
// L2-DAG: quench.constant dense<{{\[\[}}0.429949522], [0.0992476344]]> : tensor<2x1xf32>
// BADP: error: hqq-lp-norm must be in (0, 2], got 0
// BADOPT: error: recipe '{{.*}}' layers[0]: 'gptq_dampening' needs "algo": "gptq"
// BADALGO: error: weight quantization: algorithm must be rtn, gptq, hqq, awq or awq+gptq, got 'hq'
func.func @linear(%x: tensor<2x8xf32>) -> tensor<2x2xf32> {
  %w = quench.constant dense<[[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 3.0], [-0.05, 0.02, 0.11, 0.19, 0.31, 0.42, 0.48, 0.61]]> : tensor<2x8xf32>
  %y = quench.linear %x, %w : (tensor<2x8xf32>, tensor<2x8xf32>) -> tensor<2x2xf32> loc("/fc/MatMul")
  return %y : tensor<2x2xf32>
}
