// RUN: quench-opt %s --quench-cpu-pipeline | FileCheck %s
// RUN: quench-opt %s --quench-cpu-pipeline=prepare=0 | FileCheck %s --check-prefix=NOPREP

// The whole model reaches the LLVM dialect: nothing of quench, linalg,
// tensor, memref or scf is left; the weight is one global constant, stored
// [out, in] after raising to quench.linear, then [in, out] again by the
// codegen stage (quench-cpu-pretranspose-rhs: the outer-product kernel
// streams rows of it).
// CHECK: llvm.mlir.global private constant @{{.*}}(dense<{{\[\[}}5.000000e-01, 1.000000e+00], [1.500000e+00{{.*}}> : tensor<8x2xf32>)
// CHECK: llvm.func @f(
// CHECK-NOT: quench.
// CHECK-NOT: linalg.
// CHECK-NOT: tensor.
// CHECK-NOT: memref.
// CHECK-NOT: scf.
// The product is vectorized; the SiLU was raised (prepare) and
// lowered to exp and a division, on vectors; exp is a polynomial (FMAs),
// not a libm call per lane.
// CHECK: llvm.{{fmul|intr.fmuladd}}{{.*}}vector<
// CHECK: llvm.intr.fma{{.*}}vector<
// CHECK: llvm.fdiv{{.*}}vector<
// CHECK-NOT: llvm.call @expf

// NOPREP: llvm.func @f(
// NOPREP-NOT: quench.
// NOPREP-NOT: linalg.
func.func @f(%x: tensor<4x8xf32>) -> tensor<4x2xf32> {
  %w = quench.constant dense<[[0.5, 1.0], [1.5, 2.0], [2.5, 3.0], [3.5, 4.0], [4.5, 5.0], [5.5, 6.0], [6.5, 7.0], [7.5, 8.0]]> : tensor<8x2xf32>
  %m = quench.matmul %x, %w : (tensor<4x8xf32>, tensor<8x2xf32>) -> tensor<4x2xf32>
  %s = quench.sigmoid %m : tensor<4x2xf32>
  %y = quench.mul %m, %s : (tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<4x2xf32>
  return %y : tensor<4x2xf32>
}
