// RUN: quench-opt %s --split-input-file --convert-quench-to-linalg | FileCheck %s

// Dynamic (per-row) input scales, dynamic row count, bias: a max-|x|
// reduction per row, s = amax / 127 (1 for a zero row), quantization to i8
// (x / s, round half to even, NaN -> 0, clamp to [-127, 127]), the exact
// i8 x i8 -> i32 contraction reading the weight as stored ([N, K]), and the
// f32 rescale epilogue f32(acc) * s * w_scale[n] + bias[n].
// CHECK-LABEL: func.func @dynamic
// CHECK-SAME: (%[[X:.*]]: tensor<?x67xf32>, %[[W:.*]]: tensor<16x67xi8>, %[[WS:.*]]: tensor<16xf32>, %[[B:.*]]: tensor<16xf32>)
// CHECK: %[[AMAX:.*]] = linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "reduction"]
// CHECK-SAME: ins(%[[X]] : tensor<?x67xf32>)
// CHECK: math.absf
// CHECK: arith.maximumf
// CHECK: %[[S:.*]] = linalg.generic
// CHECK-SAME: ins(%[[AMAX]] : tensor<?xf32>)
// CHECK: arith.divf
// CHECK: arith.cmpf oeq
// CHECK: arith.select
// CHECK: %[[Q:.*]] = linalg.generic
// CHECK-SAME: ins(%[[X]], %[[S]] : tensor<?x67xf32>, tensor<?xf32>)
// CHECK: arith.divf
// CHECK: math.roundeven
// CHECK: arith.cmpf uno
// CHECK: arith.maxnumf %{{.*}}, %{{.*}} : f32
// CHECK: arith.minnumf
// CHECK: arith.fptosi
// CHECK: arith.trunci %{{.*}} : i32 to i8
// CHECK: } -> tensor<?x67xi8>
// CHECK: %[[ACC:.*]] = linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel", "reduction"]
// CHECK-SAME: ins(%[[Q]], %[[W]] : tensor<?x67xi8>, tensor<16x67xi8>)
// CHECK: arith.extsi %{{.*}} : i8 to i32
// CHECK: arith.extsi %{{.*}} : i8 to i32
// CHECK: arith.muli
// CHECK: arith.addi
// CHECK: } -> tensor<?x16xi32>
// CHECK: linalg.generic
// CHECK-SAME: ins(%[[ACC]], %[[WS]], %[[S]], %[[B]] : tensor<?x16xi32>, tensor<16xf32>, tensor<?xf32>, tensor<16xf32>)
// CHECK: arith.sitofp
// CHECK: arith.mulf
// CHECK: arith.mulf
// CHECK: arith.addf
// CHECK: } -> tensor<?x16xf32>
func.func @dynamic(%x: tensor<?x67xf32>, %w: tensor<16x67xi8>, %s: tensor<16xf32>, %b: tensor<16xf32>) -> tensor<?x16xf32> {
  %y = quench.qlinear %x, %w, %s bias(%b) : (tensor<?x67xf32>, tensor<16x67xi8>, tensor<16xf32>, tensor<16xf32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// Static scale, batch dims, no bias: no reduction, the scale is a constant
// in the quantization and epilogue bodies.
// CHECK-LABEL: func.func @static
// CHECK-NOT: math.absf
// CHECK: %[[Q:.*]] = linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel", "parallel"]
// CHECK: %[[C:.*]] = arith.constant 2.500000e-01 : f32
// CHECK: arith.divf %{{.*}}, %[[C]] : f32
// CHECK: } -> tensor<2x3x64xi8>
// CHECK: %[[ACC:.*]] = linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK-SAME: ins(%[[Q]], %arg1 : tensor<2x3x64xi8>, tensor<8x64xi8>)
// CHECK: } -> tensor<2x3x8xi32>
// CHECK: linalg.generic
// CHECK-SAME: ins(%[[ACC]], %arg2 : tensor<2x3x8xi32>, tensor<8xf32>)
// CHECK: arith.constant 2.500000e-01 : f32
// CHECK: } -> tensor<2x3x8xf32>
func.func @static(%x: tensor<2x3x64xf32>, %w: tensor<8x64xi8>, %s: tensor<8xf32>) -> tensor<2x3x8xf32> {
  %y = quench.qlinear %x, %w, %s input_scale(0.25) : (tensor<2x3x64xf32>, tensor<8x64xi8>, tensor<8xf32>) -> tensor<2x3x8xf32>
  return %y : tensor<2x3x8xf32>
}

// -----

// A 1-D input (one row, no row loops): a 0-D scale.
// CHECK-LABEL: func.func @vector
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["reduction"]
// CHECK: } -> tensor<f32>
// CHECK: } -> tensor<64xi8>
// CHECK: } -> tensor<8xi32>
// CHECK: } -> tensor<8xf32>
func.func @vector(%x: tensor<64xf32>, %w: tensor<8x64xi8>, %s: tensor<8xf32>) -> tensor<8xf32> {
  %y = quench.qlinear %x, %w, %s : (tensor<64xf32>, tensor<8x64xi8>, tensor<8xf32>) -> tensor<8xf32>
  return %y : tensor<8xf32>
}

// -----

// Outlier channels 2 and 5 (dynamic): a constant mask keeps them out of
// the row maximum and gives them code 0; their float part is a gather
// x[:, [2, 5]] and an f32 contraction with the outlier weight (marked
// quench.outlier_product), which the epilogue adds before the bias.
// CHECK-LABEL: func.func @outliers
// CHECK-SAME: (%[[X:.*]]: tensor<?x8xf32>, %[[W:.*]]: tensor<4x8xi8>, %[[WS:.*]]: tensor<4xf32>, %[[B:.*]]: tensor<4xf32>, %[[WO:.*]]: tensor<4x2xf32>)
// CHECK: %[[KEEP:.*]] = arith.constant dense<[1, 1, 0, 1, 1, 0, 1, 1]> : tensor<8xi8>
// CHECK: %[[AMAX:.*]] = linalg.generic
// CHECK-SAME: ins(%[[X]], %[[KEEP]] : tensor<?x8xf32>, tensor<8xi8>)
// CHECK: math.absf
// CHECK: arith.cmpi ne
// CHECK: arith.select
// CHECK: arith.maximumf
// CHECK: %[[S:.*]] = linalg.generic
// CHECK-SAME: ins(%[[AMAX]] : tensor<?xf32>)
// CHECK: %[[Q:.*]] = linalg.generic
// CHECK-SAME: ins(%[[X]], %[[S]], %[[KEEP]] : tensor<?x8xf32>, tensor<?xf32>, tensor<8xi8>)
// CHECK: arith.trunci
// CHECK: arith.select %{{.*}}, %{{.*}}, %{{.*}} : i8
// CHECK: %[[ACC:.*]] = linalg.generic
// CHECK-SAME: ins(%[[Q]], %[[W]] : tensor<?x8xi8>, tensor<4x8xi8>)
// CHECK: %[[CH:.*]] = arith.constant dense<[2, 5]> : tensor<2xi64>
// CHECK: %[[XO:.*]] = linalg.generic
// CHECK-SAME: ins(%[[CH]] : tensor<2xi64>)
// CHECK: linalg.index 0
// CHECK: arith.index_cast
// CHECK: tensor.extract %[[X]]
// CHECK: } -> tensor<?x2xf32>
// CHECK: %[[YO:.*]] = linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel", "reduction"]
// CHECK-SAME: ins(%[[XO]], %[[WO]] : tensor<?x2xf32>, tensor<4x2xf32>)
// CHECK-SAME: quench.outlier_product
// CHECK: arith.mulf
// CHECK: arith.addf
// CHECK: } -> tensor<?x4xf32>
// CHECK: linalg.generic
// CHECK-SAME: ins(%[[ACC]], %[[WS]], %[[YO]], %[[S]], %[[B]] : tensor<?x4xi32>, tensor<4xf32>, tensor<?x4xf32>, tensor<?xf32>, tensor<4xf32>)
// CHECK: arith.sitofp
// CHECK: arith.mulf
// CHECK: arith.mulf
// CHECK: arith.addf
// CHECK: arith.addf
func.func @outliers(%x: tensor<?x8xf32>, %w: tensor<4x8xi8>, %s: tensor<4xf32>, %b: tensor<4xf32>, %o: tensor<4x2xf32>) -> tensor<?x4xf32> {
  %y = quench.qlinear %x, %w, %s bias(%b) outliers(%o, [2, 5]) : (tensor<?x8xf32>, tensor<4x8xi8>, tensor<4xf32>, tensor<4xf32>, tensor<4x2xf32>) -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}
