// Outlier splitting (LLM.int8()) in quench-quantize-weights: W8A8 layers
// keep the input channels whose calibrated maximum stands out in float.
// RUN: quench-opt %s --split-input-file --quench-quantize-weights="activations=static outliers=auto test-channel-max=1,1,1,20,1,1,2,1" | FileCheck %s --check-prefix=AUTO
// RUN: quench-opt %s --split-input-file --quench-quantize-weights="activations=dynamic outliers=auto test-channel-max=1,1,1,20,1,1,2,1" | FileCheck %s --check-prefix=DYN
// RUN: quench-opt %s --split-input-file --quench-quantize-weights="activations=static outliers=2 outlier-cap=2 test-channel-max=1,1,1,20,1,1,2,1" | FileCheck %s --check-prefix=TWO
// RUN: quench-opt %s --split-input-file --quench-quantize-weights="activations=static static-input-range=4 outliers=auto test-channel-max=1,1,1,2,1,1,2,1" | FileCheck %s --check-prefix=NONE
// A recipe chooses per layer (here the two largest channels, as TWO).
// RUN: echo '{"version": 1, "layers": [{"match": "/dense/*", "outliers": 2}]}' > %t.two.json
// RUN: quench-opt %s --split-input-file --quench-quantize-weights="activations=static outlier-cap=2 recipe=%t.two.json test-channel-max=1,1,1,20,1,1,2,1" | FileCheck %s --check-prefix=TWO
// RUN: echo '{"version": 1, "layers": [{"match": "/dense/*", "outliers": 0}]}' > %t.off.json
// RUN: quench-opt %s --split-input-file --quench-quantize-weights="activations=static static-input-range=4 outliers=auto recipe=%t.off.json test-channel-max=1,1,1,20,1,1,2,1" | FileCheck %s --check-prefix=NONE
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="recipe=%t.two.json" 2>&1 | FileCheck %s --check-prefix=RNOTW8A8
// RUN: echo '{"version": 1, "layers": [{"match": "*", "outliers": "many"}]}' > %t.bad.json
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="activations=dynamic recipe=%t.bad.json" 2>&1 | FileCheck %s --check-prefix=RBAD
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="activations=dynamic outliers=auto" 2>&1 | FileCheck %s --check-prefix=NOSTATS
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="outliers=auto test-channel-max=1,1,1,20,1,1,2,1" 2>&1 | FileCheck %s --check-prefix=NOTW8A8
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="activations=dynamic outliers=some" 2>&1 | FileCheck %s --check-prefix=BADVALUE
// RUN: not quench-opt %s --split-input-file --quench-quantize-weights="activations=dynamic outliers=auto outlier-threshold=1" 2>&1 | FileCheck %s --check-prefix=BADTHRESHOLD

// Channel 3's maximum is 20x the median (1): with the default threshold
// (6) and cap (K / 8 = 1) it stays in float. Its weight column (0.5, 0)
// becomes the f32 outlier weight; the int8 codes are 0 there and the row
// scales come from the other columns (row 0: max 1 -> 1/127, codes
// round(w * 127)); the static range is the other channels' largest
// maximum, 2 (input_scale 2/127).
// AUTO-LABEL: func.func @linear
// AUTO-DAG: %[[W:.*]] = quench.constant dense<{{\[\[}}16, 32, 48, 0, 79, 95, 111, 127], [-127, 0, 0, 0, 0, 0, 0, 0]]> : tensor<2x8xi8>
// AUTO-DAG: %[[S:.*]] = quench.constant dense<[0.00787401571, 0.0157480314]> : tensor<2xf32>
// AUTO-DAG: %[[WO:.*]] = quench.constant dense<{{\[\[}}5.000000e-01], [0.000000e+00]]> : tensor<2x1xf32>
// AUTO: quench.qlinear %arg0, %[[W]], %[[S]] bias(%{{.*}}) input_scale(0.0157480314) outliers(%[[WO]], [3])
// AUTO-NOT: quench.linear
// DYN-LABEL: func.func @linear
// DYN: quench.qlinear %arg0, %{{.*}}, %{{.*}} bias(%{{.*}}) outliers(%{{.*}}, [3]) :
// The two largest channels (3, then 6), cap 2: row 0's scale is set by
// 1.0 again (column 7); columns 3 and 6 go to the float weight.
// TWO-LABEL: func.func @linear
// TWO-DAG: %[[W:.*]] = quench.constant dense<{{\[\[}}16, 32, 48, 0, 79, 95, 0, 127], [-127, 0, 0, 0, 0, 0, 0, 0]]> : tensor<2x8xi8>
// TWO-DAG: %[[WO:.*]] = quench.constant dense<{{\[\[}}5.000000e-01, 8.750000e-01], [0.000000e+00, 0.000000e+00]]> : tensor<2x2xf32>
// TWO: quench.qlinear {{.*}} input_scale(0.00787401571) outliers(%[[WO]], [3, 6])
// No channel above 6x the median: a plain qlinear with the calibrated
// range (here static-input-range, 4 / 127).
// NONE-LABEL: func.func @linear
// NONE: quench.qlinear {{.*}} input_scale(0.0314960629) :
// NONE-NOT: outliers
// NOSTATS: error: outlier splitting needs calibration (--calib or --calib-cache); no channel maxima for layers: /dense/MatMul
// NOTW8A8: error: outlier splitting (outliers=auto) needs W8A8 (activations=static or dynamic)
// RNOTW8A8: error: outlier splitting (recipe) needs W8A8 (activations=static or dynamic)
// RBAD: error: recipe '{{.*}}bad.json' layers[0]: 'outliers' must be "auto" or a number of channels
// BADVALUE: error: outliers must be auto or a number of channels, got 'some'
// BADTHRESHOLD: error: outlier-threshold must be a number above 1, got 1
func.func @linear(%x: tensor<3x8xf32>) -> tensor<3x2xf32> {
  %w = quench.constant dense<[[0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0],
                              [-2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<2x8xf32>
  %b = quench.constant dense<[0.5, -0.5]> : tensor<2xf32>
  %y = quench.linear %x, %w, %b : (tensor<3x8xf32>, tensor<2x8xf32>, tensor<2xf32>) -> tensor<3x2xf32> loc("/dense/MatMul")
  return %y : tensor<3x2xf32>
}
