// RUN: quench-opt --convert-quench-to-linalg --split-input-file --verify-diagnostics %s

// Constant Gather indices outside [-n, n) of a static axis are a compile
// error naming the node (here none: the generic description; the
// hostile e2e case gather-big-constant-index-out-of-range has a named one)
// and the index (docs/reliability.md).
func.func @gather_const_out_of_range(%t: tensor<8x4xf32>) -> tensor<3x4xf32> {
  %i = quench.constant dense<[3, -9, 8]> : tensor<3xi64>
  // expected-error @below {{a gather (Gather): index -9 is outside [-8, 8) of axis 0}}
  // expected-error @below {{failed to legalize operation 'quench.gather'}}
  %0 = quench.gather %t[%i] {axis = 0 : i64} : (tensor<8x4xf32>, tensor<3xi64>) -> tensor<3x4xf32>
  return %0 : tensor<3x4xf32>
}
