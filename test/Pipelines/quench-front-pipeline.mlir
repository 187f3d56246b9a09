// RUN: quench-opt %s --quench-front-pipeline | FileCheck %s
// RUN: quench-opt %s --quench-front-pipeline=prepare=0 | FileCheck %s --check-prefix=NOPREP

// The shared front pipeline as quench-opt runs it: prepare raises the
// matmul with a constant weight to a linear, to-linalg lowers it; without
// prepare the matmul is lowered as it is.
// CHECK-LABEL: func @proj
// CHECK-NOT: quench.
// CHECK: %[[W:.*]] = arith.constant dense<5.000000e-01> : tensor<3x4xf32>
// CHECK: linalg.generic
// CHECK-SAME: ins(%{{.*}}, %[[W]] : tensor<2x4xf32>, tensor<3x4xf32>)
// CHECK: return

// NOPREP-LABEL: func @proj
// NOPREP-NOT: quench.
// NOPREP: linalg.matmul
// NOPREP: return
func.func @proj(%x: tensor<2x4xf32>) -> tensor<2x3xf32> {
  %w = quench.constant dense<5.000000e-01> : tensor<4x3xf32>
  %y = quench.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
  return %y : tensor<2x3xf32>
}
