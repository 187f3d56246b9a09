// RUN: not quench-opt %s --quench-quantize-weights="algo=awq bits=4 group-size=8" 2>&1 | FileCheck %s --check-prefix=NOSTATS
// RUN: not quench-opt %s --quench-quantize-weights="algo=awq+gptq bits=4 group-size=8" 2>&1 | FileCheck %s --check-prefix=NOSTATS
// RUN: echo '{"version": 1, "default": {"bits": 4, "group_size": 8}, "layers": [{"match": "/k/*", "algo": "awq+gptq", "gptq_dampening": 0.05}]}' > %t.recipe.json
// RUN: not quench-opt %s --quench-quantize-weights="recipe=%t.recipe.json" 2>&1 | FileCheck %s --check-prefix=RECIPE
// RUN: echo '{"version": 1, "layers": [{"match": "*", "algo": "awq", "gptq_dampening": 0.05}]}' > %t.bad.json
// RUN: not quench-opt %s --quench-quantize-weights="recipe=%t.bad.json" 2>&1 | FileCheck %s --check-prefix=BADOPT
// RUN: not quench-opt %s --quench-quantize-weights="algo=awq activations=dynamic" 2>&1 | FileCheck %s --check-prefix=W8A8
// RUN: echo '{"version": 1, "layers": [{"match": "/q/*", "algo": "awq"}]}' > %t.w8a8.json
// RUN: not quench-opt %s --quench-quantize-weights="recipe=%t.w8a8.json activations=static static-input-range=4" 2>&1 | FileCheck %s --check-prefix=W8A8-STATIC
// RUN: quench-opt %s --quench-quantize-weights="algo=awq bits=4 group-size=8 quantize-head=false exclude=/q/*,/k/*" | FileCheck %s --check-prefix=NONE

// AWQ (algo=awq, awq+gptq, or a recipe's "algo") needs every AWQ layer's
// input Gram matrix and per-channel mean |x| from calibration
// (quench-compile --calib; test/Tools/quench-compile/awq.mlir), which
// quench-opt cannot provide: every such layer is named at once, the module
// is unchanged. awq+gptq layers are named by AWQ's error (not GPTQ's).
// NOSTATS: error: AWQ needs calibration (--calib or --calib-cache, with --calib-gram); no input statistics for layers: /q/MatMul, /k/MatMul, /o/MatMul{{$}}
// NOSTATS-NOT: GPTQ
// A recipe confines AWQ to some layers; gptq_* fields need awq+gptq or gptq.
// RECIPE: error: AWQ needs calibration (--calib or --calib-cache, with --calib-gram); no input statistics for layers: /k/MatMul{{$}}
// BADOPT: error: recipe '{{.*}}' layers[0]: 'gptq_dampening' needs "algo": "gptq" or "awq+gptq"
// AWQ is weight-only: no W8A8 (its search ignores the activations' rounding).
// W8A8: error: AWQ is for weight-only schemes; it does not combine with activations=dynamic
// W8A8-STATIC: error: AWQ is for weight-only schemes; it does not combine with activations=static
// With no AWQ layer left (excluded, head kept float), nothing is asked for.
// NONE-LABEL: func.func @norm_group
// NONE-COUNT-3: quench.linear
func.func @norm_group(%x: tensor<3x8xf32>) -> tensor<3x8xf32> {
  %g = quench.constant dense<1.0> : tensor<8xf32>
  %n = quench.rms_norm %x, %g {axis = 1 : i64, epsilon = 1.0e-6 : f64} : (tensor<3x8xf32>, tensor<8xf32>) -> tensor<3x8xf32> loc("/norm")
  %wq = quench.constant dense<0.5> : tensor<8x8xf32>
  %q = quench.linear %n, %wq : (tensor<3x8xf32>, tensor<8x8xf32>) -> tensor<3x8xf32> loc("/q/MatMul")
  %wk = quench.constant dense<-0.25> : tensor<8x8xf32>
  %k = quench.linear %n, %wk : (tensor<3x8xf32>, tensor<8x8xf32>) -> tensor<3x8xf32> loc("/k/MatMul")
  %s = quench.add %q, %k : (tensor<3x8xf32>, tensor<3x8xf32>) -> tensor<3x8xf32>
  %wo = quench.constant dense<0.125> : tensor<8x8xf32>
  %y = quench.linear %s, %wo : (tensor<3x8xf32>, tensor<8x8xf32>) -> tensor<3x8xf32> loc("/o/MatMul")
  return %y : tensor<3x8xf32>
}
