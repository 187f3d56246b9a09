// --algo=awq (AWQ, docs/quantization.md) with calibration: the norm's
// group (/q, /k) is scaled: calibration sees channel 1 at 8x the others
// (the norm's scale), so AWQ's power-of-two scales are 2 there and 1/2
// elsewhere, and the norm's scale (1, 8, 1, ...) becomes (2, 4, 2, ...);
// a remark says so. --awq-power-of-two=false keeps unrounded scales.
// --algo=awq+gptq runs GPTQ on the scaled weights; a recipe can ask for
// AWQ per layer (here /k alone: its input is shared with an RTN layer, so
// it is not scaled, only clipped). Errors: no calibration (every AWQ layer
// named), no Gram matrices, W8A8.

// RUN: rm -rf %t && mkdir -p %t/samples/0 %t/samples/1 %t/samples/2 %t/samples/3
// RUN: %quench_python -c "import numpy as np; r = np.random.default_rng(0); [np.save('%t/samples/%%d/input_0.npy' %% i, r.normal(size=(4, 8)).astype(np.float32)) for i in range(4)]"
// RUN: quench-compile %s -o %t/a.mlir --emit=mlir --stop-after-stage=quantize --quant=w4a16 --group-size=8 --algo=awq --calib=%t/samples --calib-cache=%t/c 2>&1 | FileCheck %s --check-prefix=REPORT
// REPORT: note: {{.*}}AWQ: scales migrated into 2 linears (1 of 1 group){{$}}
// REPORT: /q/MatMul 8x8 int4 g8 sym f16 awq 256 48
// REPORT: /k/MatMul 8x8 int4 g8 sym f16 awq 256 48
// RUN: FileCheck %s --input-file=%t/a.mlir
// CHECK: %[[G:.*]] = quench.constant dense<[2.000000e+00, 4.000000e+00, 2.000000e+00, 2.000000e+00, 2.000000e+00, 2.000000e+00, 2.000000e+00, 2.000000e+00]> : tensor<8xf32>
// CHECK: quench.rms_norm %arg0, %[[G]]
// CHECK-COUNT-2: quench.matmul_nbits
// CHECK-NOT: quench.linear
// RUN: quench-compile %s -o %t/b.mlir --emit=mlir --stop-after-stage=quantize --quant=w4a16 --group-size=8 --algo=awq --awq-power-of-two=false --calib-cache=%t/c 2>&1 | FileCheck %s --check-prefix=EXACT
// EXACT: note: {{.*}}AWQ: scales migrated into 2 linears (1 of 1 group){{$}}
// RUN: FileCheck %s --input-file=%t/b.mlir --check-prefix=EXACT-IR
// EXACT-IR: quench.constant dense<[1.65191162, 4.84287405, 1.50246429, 1.37027895, 1.49956048, 1.5138576, 1.39224887, 1.39047968]> : tensor<8xf32>
// RUN: quench-compile %s -o %t/c.mlir --emit=mlir --stop-after-stage=quantize --quant=w4a16 --group-size=8 --algo=awq+gptq --calib-cache=%t/c 2>&1 | FileCheck %s --check-prefix=GPTQ
// GPTQ: /q/MatMul 8x8 int4 g8 sym f16 awq+gptq 256 48
// RUN: echo '{"version": 1, "layers": [{"match": "/k/*", "algo": "awq"}]}' > %t/recipe.json
// RUN: quench-compile %s -o %t/d.mlir --emit=mlir --stop-after-stage=quantize --quant=w4a16 --group-size=8 --quant-recipe=%t/recipe.json --calib-cache=%t/c 2>&1 | FileCheck %s --check-prefix=RECIPE
// RECIPE: note: {{.*}}AWQ: scales migrated into 0 linears (0 of 0 groups); inputs left unscaled (clipping only): /k/MatMul (input shared with layers of other schemes){{$}}
// RECIPE: /q/MatMul 8x8 int4 g8 sym f16 256 48
// RECIPE: /k/MatMul 8x8 int4 g8 sym f16 awq 256 48
// RUN: not quench-compile %s -o %t/x --quant=w4a16 --group-size=8 --algo=awq 2>&1 | FileCheck %s --check-prefix=NOCALIB
// NOCALIB: error: {{.*}}AWQ needs calibration (--calib or --calib-cache, with --calib-gram); no input statistics for layers: /q/MatMul, /k/MatMul{{$}}
// RUN: not quench-compile %s -o %t/x --quant=w4a16 --group-size=8 --algo=awq --calib=%t/samples --calib-gram=false 2>&1 | FileCheck %s --check-prefix=NOCALIB
// RUN: not quench-compile %s -o %t/x --quant=w8a8-dynamic --algo=awq 2>&1 | FileCheck %s --check-prefix=W8A8
// W8A8: error: {{.*}}AWQ is for weight-only schemes; it does not combine with activations=dynamic
// RUN: not ls %t/x

func.func @main(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %g = quench.constant dense<[1.0, 8.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]> : tensor<8xf32>
  %n = quench.rms_norm %x, %g {axis = 1 : i64, epsilon = 1.0e-6 : f64} : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32> loc("/norm")
  %wq = quench.constant dense<[[0.05, -0.9, 0.3, 0.7, -0.2, 0.6, -0.4, 0.1], [0.8, 0.02, -0.6, 0.25, 0.45, -0.35, 0.9, -0.7], [-0.3, 0.04, 0.5, -0.8, 0.15, 0.65, -0.55, 0.2], [0.6, -0.03, -0.1, 0.4, -0.75, 0.3, 0.85, -0.45], [0.2, 0.07, 0.9, -0.5, 0.35, -0.15, 0.1, 0.55], [-0.7, -0.06, 0.2, 0.3, 0.95, -0.25, -0.45, 0.6], [0.4, 0.01, -0.85, 0.1, -0.3, 0.75, 0.5, -0.2], [-0.15, 0.08, 0.35, -0.65, 0.5, 0.05, -0.9, 0.3]]> : tensor<8x8xf32>
  %q = quench.linear %n, %wq : (tensor<4x8xf32>, tensor<8x8xf32>) -> tensor<4x8xf32> loc("/q/MatMul")
  %wk = quench.constant dense<[[0.9, 0.05, -0.3, 0.2, 0.6, -0.8, 0.1, 0.4], [-0.2, -0.04, 0.7, -0.6, 0.3, 0.15, -0.95, 0.5], [0.35, 0.03, -0.45, 0.8, -0.1, 0.55, 0.25, -0.7], [-0.6, 0.06, 0.15, -0.3, 0.85, 0.4, -0.2, 0.1], [0.1, -0.02, 0.6, 0.45, -0.9, 0.2, 0.7, -0.35], [0.75, 0.01, -0.25, 0.05, 0.4, -0.65, 0.3, 0.9], [-0.45, -0.07, 0.85, -0.15, 0.2, 0.6, -0.5, 0.25], [0.3, 0.09, -0.7, 0.55, -0.4, 0.1, 0.8, -0.6]]> : tensor<8x8xf32>
  %k = quench.linear %n, %wk : (tensor<4x8xf32>, tensor<8x8xf32>) -> tensor<4x8xf32> loc("/k/MatMul")
  %s = quench.add %q, %k : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  return %s : tensor<4x8xf32>
}
