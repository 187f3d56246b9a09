// RUN: quench-opt %s --split-input-file --quench-quantize-weights | FileCheck %s
// RUN: quench-opt %s --split-input-file --quench-quantize-weights="bits=4 group-size=8 symmetric=false scale-type=f32" | FileCheck %s --check-prefix=ASYM
// RUN: quench-opt %s --split-input-file --quench-quantize-weights="quantize-head=false" | FileCheck %s --check-prefix=HEAD
// RUN: quench-opt %s --split-input-file --quench-quantize-weights="exclude=*/skip/*" | FileCheck %s --check-prefix=EXCL
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="bits=4 group-size=3" 2>&1 | FileCheck %s --check-prefix=BADGROUP
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="recipe=%t.missing.json" 2>&1 | FileCheck %s --check-prefix=NORECIPE
// RUN: echo '{"version": 1, "layers": [{"match": "*/skip/*", "bits": 9}]}' > %t.bad.json
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="recipe=%t.bad.json" 2>&1 | FileCheck %s --check-prefix=BADRECIPE
// RUN: echo '{"version": 1, "default": {"bits": 4, "group_size": 8}, "layers": [{"match": "*/skip/*", "skip": true}]}' > %t.ok.json
// RUN: quench-opt %s --split-input-file --quench-quantize-weights="recipe=%t.ok.json" | FileCheck %s --check-prefix=RECIPE
// RUN: quench-opt %s --split-input-file --quench-quantize-weights="algo=rtn" | FileCheck %s
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="algo=gptq" 2>&1 | FileCheck %s --check-prefix=GPTQ
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="algo=gptq exclude=*/skip/*" 2>&1 | FileCheck %s --check-prefix=GPTQEXCL
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="algo=awq4" 2>&1 | FileCheck %s --check-prefix=BADALGO
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="algo=gptq gptq-dampening=-1" 2>&1 | FileCheck %s --check-prefix=BADDAMP
// RUN: quench-opt %s --split-input-file --quench-quantize-weights="activations=dynamic" | FileCheck %s --check-prefix=DYN
// RUN: quench-opt %s --split-input-file --quench-quantize-weights="activations=static static-input-range=4.0" | FileCheck %s --check-prefix=STATIC
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="activations=static" 2>&1 | FileCheck %s --check-prefix=NORANGE
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="activations=dynamic bits=4 group-size=32" 2>&1 | FileCheck %s --check-prefix=W8A8BITS
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="activations=sometimes" 2>&1 | FileCheck %s --check-prefix=BADACT
// RUN: quench-opt %s --split-input-file --quench-quantize-weights="quantize-embeddings=true" | FileCheck %s --check-prefix=EMB
// RUN: quench-opt %s --split-input-file --quench-quantize-weights="quantize-embeddings=true embedding-bits=4 embedding-group-size=2" | FileCheck %s --check-prefix=EMB4
// RUN: quench-opt %s --split-input-file --quench-quantize-weights="quantize-embeddings=true embedding-bits=2 embedding-group-size=4 symmetric=false scale-type=f32" | FileCheck %s --check-prefix=EMB2
// RUN: quench-opt %s --split-input-file --quench-quantize-weights="exclude=/tok/* quantize-embeddings=true" | FileCheck %s --check-prefix=EMBEXCL
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="quantize-embeddings=true embedding-bits=3" 2>&1 | FileCheck %s --check-prefix=EMBBITS
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="quantize-embeddings=true embedding-bits=4 embedding-group-size=3" 2>&1 | FileCheck %s --check-prefix=EMBGROUP
// Per-layer algorithm in a recipe: only the layers a rule gives "algo":
// "gptq" need calibration (and are named when it is missing); bad values.
// RUN: echo '{"version": 1, "layers": [{"match": "*/keep/*", "algo": "gptq", "gptq_act_order": false, "gptq_dampening": 0.1}]}' > %t.gptq.json
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="recipe=%t.gptq.json" 2>&1 >/dev/null | FileCheck %s --check-prefix=RGPTQ
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="recipe=%t.gptq.json" 2>/dev/null | FileCheck %s --check-prefix=RGPTQOUT
// RUN: echo '{"version": 1, "default": {"algo": "gptq"}, "layers": [{"match": "*/keep/*", "algo": "rtn"}, {"match": "/dense/*", "skip": true}]}' > %t.rtn.json
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="recipe=%t.rtn.json" 2>&1 | FileCheck %s --check-prefix=RRTN
// RUN: echo '{"version": 1, "layers": [{"match": "*", "algo": "awq4"}]}' > %t.badalgo.json
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="recipe=%t.badalgo.json" 2>&1 | FileCheck %s --check-prefix=RBADALGO
// RUN: echo '{"version": 1, "layers": [{"match": "*", "algo": "gptq", "gptq_dampening": -1}]}' > %t.baddamp.json
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="recipe=%t.baddamp.json" 2>&1 | FileCheck %s --check-prefix=RBADDAMP
// RUN: echo '{"version": 1, "layers": [{"match": "*", "gptq_act_order": true}]}' > %t.rtnopt.json
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="recipe=%t.rtnopt.json" 2>&1 | FileCheck %s --check-prefix=RRTNOPT

// Round-to-nearest weight quantization of quench.linear. Weights (2 x 8):
//   row 0: 1 .. 8 / 8 (max |w| = 1), row 1: -2, 0, ..., 0 (max |w| = 2).
// W8A16 per channel, symmetric, f16 scales: scale = max|w| / 127 and codes
// round(w / scale) + 128; one 8-byte group per row.
// CHECK-LABEL: func.func @linear
// CHECK-DAG: %[[W:.*]] = quench.constant dense<{{\[\[\[}}144, 160, 176, 192, 207, 223, 239, 255]], {{\[\[}}1, 128, 128, 128, 128, 128, 128, 128]]]> : tensor<2x1x8xui8>
// CHECK-DAG: %[[S:.*]] = quench.constant dense<{{\[\[}}7.873530e-03], [1.574710e-02]]> : tensor<2x1xf16>
// CHECK: quench.matmul_nbits %arg0, %[[W]], %[[S]] bias(%{{.*}}) {bits = 8 : i64, block_size = 8 : i64, in_features = 8 : i64, out_features = 2 : i64}
// CHECK-NOT: quench.linear
// Asymmetric int4, group 8, f32 scales: row 0 spans [0, 1] (zero included):
// scale 1/15, zero point 0; row 1 spans [-2, 0]: scale 2/15, zero point 15.
// Zero points pack two per byte, low nibble first: one byte per row.
// ASYM-LABEL: func.func @linear
// ASYM-DAG: quench.constant dense<{{\[\[}}0.0666666701], [0.13333334]]> : tensor<2x1xf32>
// ASYM-DAG: quench.constant dense<{{\[\[}}0], [15]]> : tensor<2x1xui8>
// ASYM: quench.matmul_nbits {{.*}} zp(%{{.*}}) bias(%{{.*}}) {bits = 4 : i64, block_size = 8 : i64
// The linear feeds the return: the output head, kept float on request.
// W8A8 (activations=dynamic): int8 codes round(w / scale) in [-127, 127]
// with f32 scales max|w| / 127, no zero point; the input is quantized at
// run time (no input_scale).
// DYN-LABEL: func.func @linear
// DYN-DAG: %[[W:.*]] = quench.constant dense<{{\[\[}}16, 32, 48, 64, 79, 95, 111, 127], [-127, 0, 0, 0, 0, 0, 0, 0]]> : tensor<2x8xi8>
// DYN-DAG: %[[S:.*]] = quench.constant dense<[0.00787401571, 0.0157480314]> : tensor<2xf32>
// DYN: quench.qlinear %arg0, %[[W]], %[[S]] bias(%{{.*}}) : (tensor<3x8xf32>, tensor<2x8xi8>, tensor<2xf32>, tensor<2xf32>) -> tensor<3x2xf32>
// DYN-NOT: quench.linear
// Static: the input scale is the range / 127 (4 / 127).
// STATIC-LABEL: func.func @linear
// STATIC: quench.qlinear {{.*}} bias(%{{.*}}) input_scale(0.0314960629)
// HEAD-LABEL: func.func @linear
// HEAD: quench.linear
// HEAD-NOT: quench.matmul_nbits
func.func @linear(%x: tensor<3x8xf32>) -> tensor<3x2xf32> {
  %w = quench.constant dense<[[0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0],
                              [-2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<2x8xf32>
  %b = quench.constant dense<[0.5, -0.5]> : tensor<2xf32>
  %y = quench.linear %x, %w, %b : (tensor<3x8xf32>, tensor<2x8xf32>, tensor<2xf32>) -> tensor<3x2xf32> loc("/dense/MatMul")
  return %y : tensor<3x2xf32>
}

// -----

// Layers are named by location (the ONNX node name); excluded ones stay
// float, with their weight. A weight that is not a constant is left alone.
// CHECK-LABEL: func.func @named
// HEAD-LABEL: func.func @named
// CHECK-COUNT-2: quench.matmul_nbits
// CHECK: quench.linear %{{.*}}, %arg1
// ASYM-LABEL: func.func @named
// EXCL-LABEL: func.func @named
// EXCL: quench.linear %arg0, %{{.*}} :
// EXCL: quench.matmul_nbits
// EXCL: quench.linear %{{.*}}, %arg1
// DYN-LABEL: func.func @named
// DYN-COUNT-2: quench.qlinear
// DYN: quench.linear %{{.*}}, %arg1
// STATIC-LABEL: func.func @named
// STATIC-COUNT-2: quench.qlinear {{.*}} input_scale(0.0314960629)
// RECIPE-LABEL: func.func @named
// RECIPE: quench.linear %arg0
// RECIPE: quench.matmul_nbits {{.*}} {bits = 4 : i64, block_size = 8 : i64
func.func @named(%x: tensor<1x16xf32>, %wd: tensor<16x16xf32>) -> tensor<1x16xf32> {
  %w0 = quench.constant dense<0.5> : tensor<16x16xf32>
  %w1 = quench.constant dense<0.25> : tensor<16x16xf32>
  %a = quench.linear %x, %w0 : (tensor<1x16xf32>, tensor<16x16xf32>) -> tensor<1x16xf32> loc("/block/skip/MatMul")
  %b = quench.linear %a, %w1 : (tensor<1x16xf32>, tensor<16x16xf32>) -> tensor<1x16xf32> loc("/block/keep/MatMul")
  %c = quench.linear %b, %wd : (tensor<1x16xf32>, tensor<16x16xf32>) -> tensor<1x16xf32>
  return %c : tensor<1x16xf32>
}

// BADGROUP: error: weight quantization: group size 3 times 4 bits is not a whole number of bytes
// NORECIPE: error: cannot read recipe '{{.*}}missing.json'
// BADRECIPE: error: recipe '{{.*}}bad.json' layers[0]: bits must be in [2, 8], got 9
// GPTQ needs each quantized layer's input Gram matrix from calibration,
// which quench-opt cannot provide: every such layer is named at once (not
// the excluded ones, nor the linear whose weight is not a constant).
// GPTQ: error: GPTQ needs calibration (--calib or --calib-cache); no input statistics for layers: /dense/MatMul{{$}}
// GPTQ: error: GPTQ needs calibration (--calib or --calib-cache); no input statistics for layers: /block/skip/MatMul, /block/keep/MatMul{{$}}
// GPTQEXCL: error: GPTQ needs calibration (--calib or --calib-cache); no input statistics for layers: /dense/MatMul{{$}}
// GPTQEXCL: error: GPTQ needs calibration (--calib or --calib-cache); no input statistics for layers: /block/keep/MatMul{{$}}
// BADALGO: error: weight quantization: algorithm must be rtn, gptq, hqq, awq or awq+gptq, got 'awq4'
// BADDAMP: error: weight quantization: GPTQ dampening must be >= 0, got -1
// RGPTQOUT-LABEL: func.func @linear
// RGPTQOUT: quench.matmul_nbits
// RGPTQ-NOT: /dense/MatMul
// RGPTQ: error: GPTQ needs calibration (--calib or --calib-cache); no input statistics for layers: /block/keep/MatMul{{$}}
// RRTN-NOT: /block/keep/MatMul
// RRTN: error: GPTQ needs calibration (--calib or --calib-cache); no input statistics for layers: /block/skip/MatMul{{$}}
// RBADALGO: error: recipe '{{.*}}badalgo.json' layers[0]: algorithm must be rtn, gptq, hqq, awq or awq+gptq, got 'awq4'
// RBADDAMP: error: recipe '{{.*}}baddamp.json' layers[0]: GPTQ dampening must be >= 0, got -1
// RRTNOPT: error: recipe '{{.*}}rtnopt.json' layers[0]: 'gptq_act_order' needs "algo": "gptq"
// Static W8A8 without calibration: every layer lacking a range, at once.
// NORANGE: error: --quant=w8a8 needs calibration (--calib or --calib-cache); no range for layers: /dense/MatMul
// NORANGE: error: --quant=w8a8 needs calibration (--calib or --calib-cache); no range for layers: /block/skip/MatMul, /block/keep/MatMul
// W8A8BITS: error: activation quantization (W8A8) needs 8-bit per-channel symmetric weights, got int4 g32 sym f16
// BADACT: error: activations must be none, static or dynamic, got 'sometimes'

// -----

// Embedding tables (quantize-embeddings): int8 codes per row (symmetric,
// round half to even: -0.5 * 127 = -63.5 -> -64, stored +128 as ui8 and
// padded to a whole group of 8), f32 row scales (an all-zero row gets 0),
// gathered as rows and expanded by quench.dequantize_nbits; without the
// option the table stays float.
// EMB-LABEL: func.func @embedding
// EMB-DAG: %[[Q:.*]] = quench.constant dense<{{\[\[\[}}255, 64, 160, 128, 128, 128, 128, 128]], {{\[\[}}128, 128, 128, 128, 128, 128, 128, 128]]]> : tensor<2x1x8xui8>
// EMB-DAG: %[[S:.*]] = quench.constant dense<{{\[\[}}0.00787401571], [0.000000e+00]]> : tensor<2x1xf32>
// EMB-DAG: %[[R:.*]] = quench.gather %[[Q]][%arg0] {axis = 0 : i64} : (tensor<2x1x8xui8>, tensor<3xi64>) -> tensor<3x1x8xui8>
// EMB-DAG: %[[RS:.*]] = quench.gather %[[S]][%arg0] {axis = 0 : i64} : (tensor<2x1xf32>, tensor<3xi64>) -> tensor<3x1xf32>
// EMB: %[[OUT:.*]] = quench.dequantize_nbits %[[R]], %[[RS]] {bits = 8 : i64, block_size = 8 : i64} : (tensor<3x1x8xui8>, tensor<3x1xf32>) -> tensor<3x4xf32>
// EMB: return %[[OUT]]
// CHECK-LABEL: func.func @embedding
// CHECK: quench.gather {{.*}} : (tensor<2x4xf32>, tensor<3xi64>) -> tensor<3x4xf32>
// int4 in groups of 2 (f16 scales, implicit zero point 8): row 0's groups
// [1, -0.5] (scale 1/7 -> f16 0.1428: codes 15, 4 -> byte 15 + 4 * 16 = 79)
// and [0.25, 0] (scale 0.25/7: codes 15, 8 -> 143); row 1 is all zero
// (scale 0, codes 8: 136). Codes and scales are gathered as rows and
// expanded by quench.dequantize_nbits.
// EMB4-LABEL: func.func @embedding
// EMB4-DAG: %[[Q:.*]] = quench.constant dense<{{\[\[\[}}79], [143]], {{\[\[}}136], [136]]]> : tensor<2x2x1xui8>
// EMB4-DAG: %[[S:.*]] = quench.constant dense<{{\[\[}}1.428220e-01, 3.570560e-02], [0.000000e+00, 0.000000e+00]]> : tensor<2x2xf16>
// EMB4-DAG: %[[R:.*]] = quench.gather %[[Q]][%arg0] {axis = 0 : i64} : (tensor<2x2x1xui8>, tensor<3xi64>) -> tensor<3x2x1xui8>
// EMB4-DAG: %[[RS:.*]] = quench.gather %[[S]][%arg0] {axis = 0 : i64} : (tensor<2x2xf16>, tensor<3xi64>) -> tensor<3x2xf16>
// EMB4: %[[OUT:.*]] = quench.dequantize_nbits %[[R]], %[[RS]] {bits = 4 : i64, block_size = 2 : i64} : (tensor<3x2x1xui8>, tensor<3x2xf16>) -> tensor<3x4xf32>
// EMB4: return %[[OUT]]
// Asymmetric int2, a group of 4 = the row: one group per row, stored as a
// whole-byte group of 8 codes (f32 scales): row 0 spans [-0.5, 1] (scale
// 0.5, zero point 1), its zero points float [V, groups].
// EMB2-LABEL: func.func @embedding
// EMB2-DAG: quench.constant dense<{{\[\[}}5.000000e-01], [0.000000e+00]]> : tensor<2x1xf32>
// EMB2-DAG: quench.constant dense<{{\[\[}}1.000000e+00], [0.000000e+00]]> : tensor<2x1xf32>
// EMB2: quench.dequantize_nbits %{{.*}}, %{{.*}} zp(%{{.*}}) {bits = 2 : i64, block_size = 8 : i64} : (tensor<3x1x2xui8>, tensor<3x1xf32>, tensor<3x1xf32>) -> tensor<3x4xf32>
// A table matching --quant-exclude stays float.
// EMBEXCL-LABEL: func.func @embedding
// EMBEXCL: quench.gather {{.*}} : (tensor<2x4xf32>, tensor<3xi64>) -> tensor<3x4xf32>
// EMBEXCL-NOT: dequantize
// EMBBITS: error: embedding bits must be 8, 4 or 2, got 3
// EMBGROUP: error: embedding group size must be 0 (one scale per row) or a positive multiple of 2 up to 16777216, got 3
func.func @embedding(%ids: tensor<3xi64>) -> tensor<3x4xf32> {
  %t = quench.constant dense<[[1.0, -0.5, 0.25, 0.0], [0.0, 0.0, 0.0, 0.0]]> : tensor<2x4xf32>
  %e = quench.gather %t[%ids] {axis = 0 : i64} : (tensor<2x4xf32>, tensor<3xi64>) -> tensor<3x4xf32> loc("/tok/Gather")
  return %e : tensor<3x4xf32>
}

// -----

// Half-precision weights of an f32 layer (what quench-raise-ops makes of
// an f32 model with f16/bf16 initializers): quantized from their stored
// values (those of @linear, exact in f16 and bf16: the same codes and
// scales); the quantized layers compute in f32.
// CHECK-LABEL: func.func @half_weights
// CHECK: %[[W0:.*]] = quench.constant dense<{{\[\[\[}}144, 160, 176, 192, 207, 223, 239, 255]], {{\[\[}}1, 128, 128, 128, 128, 128, 128, 128]]]> : tensor<2x1x8xui8>
// CHECK: %[[S0:.*]] = quench.constant dense<{{\[\[}}7.873530e-03], [1.574710e-02]]> : tensor<2x1xf16>
// CHECK: quench.matmul_nbits %arg0, %[[W0]], %[[S0]] {{.*}} : (tensor<3x8xf32>, tensor<2x1x8xui8>, tensor<2x1xf16>) -> tensor<3x2xf32>
// CHECK: %[[W1:.*]] = quench.constant dense<{{\[\[\[}}144, 160, 176, 192, 207, 223, 239, 255]], {{\[\[}}1, 128, 128, 128, 128, 128, 128, 128]]]> : tensor<2x1x8xui8>
// CHECK: %[[S1:.*]] = quench.constant dense<{{\[\[}}7.873530e-03], [1.574710e-02]]> : tensor<2x1xf16>
// CHECK: quench.matmul_nbits %arg0, %[[W1]], %[[S1]] {{.*}} : (tensor<3x8xf32>, tensor<2x1x8xui8>, tensor<2x1xf16>) -> tensor<3x2xf32>
// CHECK-NOT: quench.linear
// DYN-LABEL: func.func @half_weights
// DYN-COUNT-2: quench.qlinear %arg0, %{{.*}}, %{{.*}} : (tensor<3x8xf32>, tensor<2x8xi8>, tensor<2xf32>) -> tensor<3x2xf32>
func.func @half_weights(%x: tensor<3x8xf32>) -> (tensor<3x2xf32>, tensor<3x2xf32>) {
  %w = quench.constant dense<[[0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0],
                              [-2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<2x8xf16>
  %v = quench.constant dense<[[0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0],
                              [-2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<2x8xbf16>
  %y = quench.linear %x, %w : (tensor<3x8xf32>, tensor<2x8xf16>) -> tensor<3x2xf32> loc("/half/f16/MatMul")
  %z = quench.linear %x, %v : (tensor<3x8xf32>, tensor<2x8xbf16>) -> tensor<3x2xf32> loc("/half/bf16/MatMul")
  return %y, %z : tensor<3x2xf32>, tensor<3x2xf32>
}

// -----

// A weight left by quench-raise-ops as a transpose of the stored [K, N]
// constant (@linear's weights, stored transposed; one of them f16): the
// constant is read through the transpose (the same codes and scales as
// @linear), and the transpose and the constant go.
// CHECK-LABEL: func.func @transposed_weights
// CHECK-NOT: quench.transpose
// CHECK: %[[W0:.*]] = quench.constant dense<{{\[\[\[}}144, 160, 176, 192, 207, 223, 239, 255]], {{\[\[}}1, 128, 128, 128, 128, 128, 128, 128]]]> : tensor<2x1x8xui8>
// CHECK: %[[S0:.*]] = quench.constant dense<{{\[\[}}7.873530e-03], [1.574710e-02]]> : tensor<2x1xf16>
// CHECK: quench.matmul_nbits %arg0, %[[W0]], %[[S0]] {{.*}} : (tensor<3x8xf32>, tensor<2x1x8xui8>, tensor<2x1xf16>) -> tensor<3x2xf32>
// CHECK: %[[W1:.*]] = quench.constant dense<{{\[\[\[}}144, 160, 176, 192, 207, 223, 239, 255]], {{\[\[}}1, 128, 128, 128, 128, 128, 128, 128]]]> : tensor<2x1x8xui8>
// CHECK: quench.matmul_nbits %arg0, %[[W1]]
// CHECK-NOT: quench.transpose
// CHECK-NOT: tensor<8x2x
// DYN-LABEL: func.func @transposed_weights
// DYN-COUNT-2: quench.qlinear %arg0, %{{.*}}, %{{.*}} : (tensor<3x8xf32>, tensor<2x8xi8>, tensor<2xf32>) -> tensor<3x2xf32>
// DYN-NOT: quench.transpose
func.func @transposed_weights(%x: tensor<3x8xf32>) -> (tensor<3x2xf32>, tensor<3x2xf32>) {
  %w = quench.constant dense<[[0.125, -2.0], [0.25, 0.0], [0.375, 0.0], [0.5, 0.0],
                              [0.625, 0.0], [0.75, 0.0], [0.875, 0.0], [1.0, 0.0]]> : tensor<8x2xf32>
  %v = quench.constant dense<[[0.125, -2.0], [0.25, 0.0], [0.375, 0.0], [0.5, 0.0],
                              [0.625, 0.0], [0.75, 0.0], [0.875, 0.0], [1.0, 0.0]]> : tensor<8x2xf16>
  %wt = quench.transpose %w {permutation = array<i64: 1, 0>} : tensor<8x2xf32> -> tensor<2x8xf32>
  %vt = quench.transpose %v {permutation = array<i64: 1, 0>} : tensor<8x2xf16> -> tensor<2x8xf16>
  %y = quench.linear %x, %wt : (tensor<3x8xf32>, tensor<2x8xf32>) -> tensor<3x2xf32> loc("/transposed/f32/MatMul")
  %z = quench.linear %x, %vt : (tensor<3x8xf32>, tensor<2x8xf16>) -> tensor<3x2xf32> loc("/transposed/f16/MatMul")
  return %y, %z : tensor<3x2xf32>, tensor<3x2xf32>
}
