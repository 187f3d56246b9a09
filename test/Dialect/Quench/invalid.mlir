// RUN: quench-opt %s -split-input-file -verify-diagnostics

// Every verifier of the quench dialect, one failing case per rule.

func.func @add_element_types(%a: tensor<2xf32>, %b: tensor<2xf16>) {
  // expected-error @+1 {{requires the same element type for operands and result}}
  %0 = quench.add %a, %b : (tensor<2xf32>, tensor<2xf16>) -> tensor<2xf32>
  return
}

// -----

func.func @sub_not_broadcastable(%a: tensor<2x3xf32>, %b: tensor<4xf32>) {
  // expected-error @+1 {{operand shapes are not broadcast-compatible: [2x3] vs [4]}}
  %0 = quench.sub %a, %b : (tensor<2x3xf32>, tensor<4xf32>) -> tensor<2x3xf32>
  return
}

// -----

func.func @mul_result_shape(%a: tensor<2x3xf32>, %b: tensor<3xf32>) {
  // expected-error @+1 {{result shape [3x3] does not match the expected shape [2x3]}}
  %0 = quench.mul %a, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<3x3xf32>
  return
}

// -----

func.func @div_result_rank(%a: tensor<2x3xf32>, %b: tensor<3xf32>) {
  // expected-error @+1 {{result rank 1 does not match the expected rank 2}}
  %0 = quench.div %a, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<6xf32>
  return
}

// -----

func.func @pow_int(%a: tensor<2xi32>) {
  // expected-error @+1 {{must be ranked tensor of}}
  %0 = quench.pow %a, %a : (tensor<2xi32>, tensor<2xi32>) -> tensor<2xi32>
  return
}

// -----

func.func @min_types(%a: tensor<2xi32>, %b: tensor<2xi64>) {
  // expected-error @+1 {{requires the same element type}}
  %0 = quench.min %a, %b : (tensor<2xi32>, tensor<2xi64>) -> tensor<2xi32>
  return
}

// -----

func.func @max_shape(%a: tensor<2xi32>, %b: tensor<3xi32>) {
  // expected-error @+1 {{not broadcast-compatible}}
  %0 = quench.max %a, %b : (tensor<2xi32>, tensor<3xi32>) -> tensor<2xi32>
  return
}

// -----

func.func @mod_types(%a: tensor<2xi32>, %b: tensor<2xi32>) {
  // expected-error @+1 {{requires the same element type}}
  %0 = quench.mod %a, %b : (tensor<2xi32>, tensor<2xi32>) -> tensor<2xi64>
  return
}

// -----

func.func @cmp_types(%a: tensor<2xf32>, %b: tensor<2xf16>) {
  // expected-error @+1 {{requires operands of the same element type}}
  %0 = quench.cmp eq, %a, %b : (tensor<2xf32>, tensor<2xf16>) -> tensor<2xi1>
  return
}

// -----

func.func @cmp_shape(%a: tensor<2xf32>, %b: tensor<3xf32>) {
  // expected-error @+1 {{not broadcast-compatible}}
  %0 = quench.cmp eq, %a, %b : (tensor<2xf32>, tensor<3xf32>) -> tensor<2xi1>
  return
}

// -----

func.func @logical_shape(%a: tensor<2xi1>, %b: tensor<3xi1>) {
  // expected-error @+1 {{not broadcast-compatible}}
  %0 = quench.logical and, %a, %b : (tensor<2xi1>, tensor<3xi1>) -> tensor<2xi1>
  return
}

// -----

func.func @where_types(%c: tensor<2xi1>, %a: tensor<2xf32>, %b: tensor<2xf16>) {
  // expected-error @+1 {{requires the same element type for both branches and the result}}
  %0 = quench.where %c, %a, %b : (tensor<2xi1>, tensor<2xf32>, tensor<2xf16>) -> tensor<2xf32>
  return
}

// -----

func.func @where_shape(%c: tensor<3xi1>, %a: tensor<2xf32>, %b: tensor<2xf32>) {
  // expected-error @+1 {{not broadcast-compatible}}
  %0 = quench.where %c, %a, %b : (tensor<3xi1>, tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
  return
}

// -----

func.func @clip_bounds(%a: tensor<2xf32>) {
  // expected-error @+1 {{requires min <= max}}
  %0 = quench.clip %a {min = 2.0 : f64, max = 1.0 : f64} : tensor<2xf32>
  return
}

// -----

func.func @unary_type(%a: tensor<2xf32>) {
  // expected-error @+1 {{requires the same type for all operands and results}}
  %0 = "quench.exp"(%a) : (tensor<2xf32>) -> tensor<2xf16>
  return
}

// -----

func.func @cast_shape(%a: tensor<2xf32>) {
  // expected-error @+1 {{requires the same shape for all operands and results}}
  %0 = quench.cast %a : tensor<2xf32> to tensor<3xi32>
  return
}

// -----

func.func @matmul_types(%a: tensor<2x3xf32>, %b: tensor<3x4xf16>) {
  // expected-error @+1 {{requires the same element type for operands and result}}
  %0 = quench.matmul %a, %b : (tensor<2x3xf32>, tensor<3x4xf16>) -> tensor<2x4xf32>
  return
}

// -----

func.func @matmul_rank0(%a: tensor<f32>, %b: tensor<3x4xf32>) {
  // expected-error @+1 {{requires operands of rank >= 1}}
  %0 = quench.matmul %a, %b : (tensor<f32>, tensor<3x4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @matmul_k(%a: tensor<2x3xf32>, %b: tensor<5x4xf32>) {
  // expected-error @+1 {{contracting dimensions differ: 3 vs 5}}
  %0 = quench.matmul %a, %b : (tensor<2x3xf32>, tensor<5x4xf32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @matmul_batch(%a: tensor<2x2x3xf32>, %b: tensor<3x3x4xf32>) {
  // expected-error @+1 {{batch dimensions are not broadcast-compatible}}
  %0 = quench.matmul %a, %b : (tensor<2x2x3xf32>, tensor<3x3x4xf32>) -> tensor<2x2x4xf32>
  return
}

// -----

func.func @matmul_result(%a: tensor<3xf32>, %b: tensor<3x4xf32>) {
  // Vector-matrix drops the promoted dimension.
  // expected-error @+1 {{result rank 2 does not match the expected rank 1}}
  %0 = quench.matmul %a, %b : (tensor<3xf32>, tensor<3x4xf32>) -> tensor<1x4xf32>
  return
}

// -----

func.func @linear_types(%x: tensor<2x8xf16>, %w: tensor<4x8xf32>) {
  // expected-error @+1 {{requires the weight element type to be the input's, or f16/bf16 for an f32 input}}
  %0 = quench.linear %x, %w : (tensor<2x8xf16>, tensor<4x8xf32>) -> tensor<2x4xf16>
  return
}

// -----

func.func @linear_bf16_weight_f64(%x: tensor<2x8xf64>, %w: tensor<4x8xbf16>) {
  // expected-error @+1 {{requires the weight element type to be the input's, or f16/bf16 for an f32 input}}
  %0 = quench.linear %x, %w : (tensor<2x8xf64>, tensor<4x8xbf16>) -> tensor<2x4xf64>
  return
}

// -----

func.func @linear_result_type(%x: tensor<2x8xf32>, %w: tensor<4x8xf16>) {
  // expected-error @+1 {{requires the same element type for input and result}}
  %0 = quench.linear %x, %w : (tensor<2x8xf32>, tensor<4x8xf16>) -> tensor<2x4xf16>
  return
}

// -----

func.func @linear_weight_rank(%x: tensor<2x8xf32>, %w: tensor<1x4x8xf32>) {
  // expected-error @+1 {{requires a 2-D weight [out_features, in_features]}}
  %0 = quench.linear %x, %w : (tensor<2x8xf32>, tensor<1x4x8xf32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @linear_input_rank(%x: tensor<f32>, %w: tensor<4x8xf32>) {
  // expected-error @+1 {{requires an input of rank >= 1}}
  %0 = quench.linear %x, %w : (tensor<f32>, tensor<4x8xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @linear_features(%x: tensor<2x7xf32>, %w: tensor<4x8xf32>) {
  // expected-error @+1 {{input features 7}}
  %0 = quench.linear %x, %w : (tensor<2x7xf32>, tensor<4x8xf32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @linear_bias_type(%x: tensor<2x8xf32>, %w: tensor<4x8xf32>, %b: tensor<4xf16>) {
  // expected-error @+1 {{requires the bias element type to match the input}}
  %0 = quench.linear %x, %w, %b : (tensor<2x8xf32>, tensor<4x8xf32>, tensor<4xf16>) -> tensor<2x4xf32>
  return
}

// -----

func.func @linear_bias_shape(%x: tensor<2x8xf32>, %w: tensor<4x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{requires a 1-D bias of length 4}}
  %0 = quench.linear %x, %w, %b : (tensor<2x8xf32>, tensor<4x8xf32>, tensor<8xf32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @linear_result(%x: tensor<2x8xf32>, %w: tensor<4x8xf32>) {
  // expected-error @+1 {{result shape [2x8] does not match the expected shape [2x4]}}
  %0 = quench.linear %x, %w : (tensor<2x8xf32>, tensor<4x8xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @layer_norm_axis(%x: tensor<2x8xf32>, %s: tensor<8xf32>) {
  // expected-error @+1 {{axis 2 is out of range for rank 2}}
  %0 = quench.layer_norm %x, %s {axis = 2 : i64, epsilon = 1.0e-5 : f64}
      : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @layer_norm_eps(%x: tensor<2x8xf32>, %s: tensor<8xf32>) {
  // expected-error @+1 {{requires a non-negative epsilon}}
  %0 = quench.layer_norm %x, %s {axis = 1 : i64, epsilon = -1.0 : f64}
      : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @layer_norm_scale(%x: tensor<2x8xf32>, %s: tensor<2x8xf32>) {
  // expected-error @+1 {{scale rank 2 does not match the expected rank 1}}
  %0 = quench.layer_norm %x, %s {axis = 1 : i64, epsilon = 1.0e-5 : f64}
      : (tensor<2x8xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @layer_norm_bias(%x: tensor<2x8xf32>, %s: tensor<8xf32>, %b: tensor<8xf16>) {
  // expected-error @+1 {{requires the bias element type to match the input}}
  %0 = quench.layer_norm %x, %s, %b {axis = 1 : i64, epsilon = 1.0e-5 : f64}
      : (tensor<2x8xf32>, tensor<8xf32>, tensor<8xf16>) -> tensor<2x8xf32>
  return
}

// -----

func.func @layer_norm_result(%x: tensor<2x8xf32>, %s: tensor<8xf32>) {
  // expected-error @+1 {{requires the result type to equal the input type}}
  %0 = quench.layer_norm %x, %s {axis = 1 : i64, epsilon = 1.0e-5 : f64}
      : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf16>
  return
}

// -----

func.func @rms_norm_axis(%x: tensor<2x8xf32>, %s: tensor<8xf32>) {
  // expected-error @+1 {{axis -1 is out of range for rank 2}}
  %0 = quench.rms_norm %x, %s {axis = -1 : i64, epsilon = 1.0e-5 : f64}
      : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @rms_norm_eps(%x: tensor<2x8xf32>, %s: tensor<8xf32>) {
  // expected-error @+1 {{requires a non-negative epsilon}}
  %0 = quench.rms_norm %x, %s {axis = 1 : i64, epsilon = -1.0e-5 : f64}
      : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @rms_norm_scale(%x: tensor<2x8xf32>, %s: tensor<4xf32>) {
  // expected-error @+1 {{scale shape [4] does not match the expected shape [8]}}
  %0 = quench.rms_norm %x, %s {axis = 1 : i64, epsilon = 1.0e-5 : f64}
      : (tensor<2x8xf32>, tensor<4xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @rms_norm_result(%x: tensor<2x8xf32>, %s: tensor<8xf32>) {
  // expected-error @+1 {{requires the result type to equal the input type}}
  %0 = quench.rms_norm %x, %s {axis = 1 : i64, epsilon = 1.0e-5 : f64}
      : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<1x8xf32>
  return
}

// -----

func.func @softmax_axis(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{axis 3 is out of range for rank 2}}
  %0 = quench.softmax %x {axis = 3 : i64} : tensor<2x8xf32>
  return
}

// -----

func.func @gather_axis(%t: tensor<10x8xf32>, %i: tensor<4xi64>) {
  // expected-error @+1 {{axis 2 is out of range for rank 2}}
  %0 = quench.gather %t[%i] {axis = 2 : i64} : (tensor<10x8xf32>, tensor<4xi64>) -> tensor<4x8xf32>
  return
}

// -----

func.func @gather_type(%t: tensor<10x8xf32>, %i: tensor<4xi64>) {
  // expected-error @+1 {{requires the result element type to match the data}}
  %0 = quench.gather %t[%i] {axis = 0 : i64} : (tensor<10x8xf32>, tensor<4xi64>) -> tensor<4x8xf16>
  return
}

// -----

func.func @gather_shape(%t: tensor<10x8xf32>, %i: tensor<4xi64>) {
  // expected-error @+1 {{result shape [10x4] does not match the expected shape [4x8]}}
  %0 = quench.gather %t[%i] {axis = 0 : i64} : (tensor<10x8xf32>, tensor<4xi64>) -> tensor<10x4xf32>
  return
}

// -----

func.func @reduce_type(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{requires the result element type to match the input}}
  %0 = quench.reduce sum %x {axes = array<i64: 1>, keep_dims = false} : (tensor<2x8xf32>) -> tensor<2xf16>
  return
}

// -----

func.func @reduce_axes_range(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{axes entry 2 is out of range for rank 2}}
  %0 = quench.reduce sum %x {axes = array<i64: 2>, keep_dims = false} : (tensor<2x8xf32>) -> tensor<2xf32>
  return
}

// -----

func.func @reduce_axes_sorted(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{axes must be sorted and unique}}
  %0 = quench.reduce max %x {axes = array<i64: 1, 0>, keep_dims = false} : (tensor<2x8xf32>) -> tensor<f32>
  return
}

// -----

func.func @reduce_keep_dims(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{result rank 1 does not match the expected rank 2}}
  %0 = quench.reduce mean %x {axes = array<i64: 1>, keep_dims = true} : (tensor<2x8xf32>) -> tensor<2xf32>
  return
}

// -----

func.func @reshape_type(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{requires the result element type to match the input}}
  %0 = quench.reshape %x : tensor<2x8xf32> -> tensor<16xf16>
  return
}

// -----

func.func @reshape_shape_len(%x: tensor<?x8xf32>, %s: tensor<3xi64>) {
  // expected-error @+1 {{shape operand has 3 entries for a result of rank 2}}
  %0 = quench.reshape %x(%s) : tensor<?x8xf32>, tensor<3xi64> -> tensor<?x?xf32>
  return
}

// -----

func.func @reshape_dynamic(%x: tensor<?x8xf32>) {
  // expected-error @+1 {{requires a shape operand when the result shape is dynamic}}
  %0 = quench.reshape %x : tensor<?x8xf32> -> tensor<?xf32>
  return
}

// -----

func.func @reshape_count(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{cannot reshape 16 elements into 15}}
  %0 = quench.reshape %x : tensor<2x8xf32> -> tensor<3x5xf32>
  return
}

// -----

func.func @transpose_type(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{requires the result element type to match the input}}
  %0 = quench.transpose %x {permutation = array<i64: 1, 0>} : tensor<2x8xf32> -> tensor<8x2xi32>
  return
}

// -----

func.func @transpose_len(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{permutation has 3 entries for rank 2}}
  %0 = quench.transpose %x {permutation = array<i64: 1, 0, 2>} : tensor<2x8xf32> -> tensor<8x2xf32>
  return
}

// -----

func.func @transpose_perm(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{permutation is not a permutation of [0, rank)}}
  %0 = quench.transpose %x {permutation = array<i64: 1, 1>} : tensor<2x8xf32> -> tensor<8x8xf32>
  return
}

// -----

func.func @transpose_result(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{result shape [2x8] does not match the expected shape [8x2]}}
  %0 = quench.transpose %x {permutation = array<i64: 1, 0>} : tensor<2x8xf32> -> tensor<2x8xf32>
  return
}

// -----

func.func @concat_empty() {
  // expected-error @+1 {{requires at least one input}}
  %0 = quench.concat {axis = 0 : i64} : () -> tensor<2xf32>
  return
}

// -----

func.func @concat_axis(%a: tensor<2xf32>) {
  // expected-error @+1 {{axis 1 is out of range for rank 1}}
  %0 = quench.concat %a, %a {axis = 1 : i64} : (tensor<2xf32>, tensor<2xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @concat_type(%a: tensor<2xf32>, %b: tensor<2xf16>) {
  // expected-error @+1 {{requires all inputs to have the result element type}}
  %0 = quench.concat %a, %b {axis = 0 : i64} : (tensor<2xf32>, tensor<2xf16>) -> tensor<4xf32>
  return
}

// -----

func.func @concat_rank(%a: tensor<2xf32>, %b: tensor<1x2xf32>) {
  // expected-error @+1 {{requires all inputs to have the result rank}}
  %0 = quench.concat %a, %b {axis = 0 : i64} : (tensor<2xf32>, tensor<1x2xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @concat_other_dim(%a: tensor<2x3xf32>, %b: tensor<2x4xf32>) {
  // expected-error @+1 {{inputs differ in non-concatenated dimension 1}}
  %0 = quench.concat %a, %b {axis = 0 : i64} : (tensor<2x3xf32>, tensor<2x4xf32>) -> tensor<4x3xf32>
  return
}

// -----

func.func @concat_result(%a: tensor<2x3xf32>, %b: tensor<5x3xf32>) {
  // expected-error @+1 {{result shape [6x3] does not match the expected shape [7x3]}}
  %0 = quench.concat %a, %b {axis = 0 : i64} : (tensor<2x3xf32>, tensor<5x3xf32>) -> tensor<6x3xf32>
  return
}

// -----

func.func @slice_len(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{requires starts, ends and steps with one entry per dimension (2)}}
  %0 = quench.slice %x {starts = array<i64: 0>, ends = array<i64: 2>, steps = array<i64: 1>}
      : tensor<4x8xf32> -> tensor<2x8xf32>
  return
}

// -----

func.func @slice_step(%x: tensor<4xf32>) {
  // expected-error @+1 {{requires non-zero steps}}
  %0 = quench.slice %x {starts = array<i64: 0>, ends = array<i64: 2>, steps = array<i64: 0>}
      : tensor<4xf32> -> tensor<2xf32>
  return
}

// -----

func.func @slice_start(%x: tensor<4xf32>) {
  // expected-error @+1 {{requires non-negative (normalized) starts}}
  %0 = quench.slice %x {starts = array<i64: -1>, ends = array<i64: 4>, steps = array<i64: 1>}
      : tensor<4xf32> -> tensor<1xf32>
  return
}

// -----

func.func @slice_bounds(%x: tensor<4xf32>) {
  // expected-error @+1 {{bounds [0, 9) are not normalized for dimension 0 of size 4}}
  %0 = quench.slice %x {starts = array<i64: 0>, ends = array<i64: 9>, steps = array<i64: 1>}
      : tensor<4xf32> -> tensor<4xf32>
  return
}

// -----

func.func @slice_result(%x: tensor<8xf32>) {
  // Every other element of [1, 8): 4 elements.
  // expected-error @+1 {{result shape [3] does not match the expected shape [4]}}
  %0 = quench.slice %x {starts = array<i64: 1>, ends = array<i64: 8>, steps = array<i64: 2>}
      : tensor<8xf32> -> tensor<3xf32>
  return
}

// -----

func.func @slice_type(%x: tensor<8xf32>) {
  // expected-error @+1 {{requires the result element type to match the input}}
  %0 = quench.slice %x {starts = array<i64: 0>, ends = array<i64: 8>, steps = array<i64: 1>}
      : tensor<8xf32> -> tensor<8xf16>
  return
}

// -----

func.func @split_axis(%x: tensor<8xf32>) {
  // expected-error @+1 {{axis 1 is out of range for rank 1}}
  %0:2 = quench.split %x {axis = 1 : i64, sizes = array<i64: 4, 4>} : tensor<8xf32> -> tensor<4xf32>, tensor<4xf32>
  return
}

// -----

func.func @split_count(%x: tensor<8xf32>) {
  // expected-error @+1 {{has 3 sizes for 2 results}}
  %0:2 = quench.split %x {axis = 0 : i64, sizes = array<i64: 4, 2, 2>} : tensor<8xf32> -> tensor<4xf32>, tensor<4xf32>
  return
}

// -----

func.func @split_negative(%x: tensor<8xf32>) {
  // expected-error @+1 {{requires non-negative sizes}}
  %0:2 = quench.split %x {axis = 0 : i64, sizes = array<i64: -1, 9>} : tensor<8xf32> -> tensor<?xf32>, tensor<9xf32>
  return
}

// -----

func.func @split_type(%x: tensor<8xf32>) {
  // expected-error @+1 {{requires results with the input element type}}
  %0:2 = quench.split %x {axis = 0 : i64, sizes = array<i64: 4, 4>} : tensor<8xf32> -> tensor<4xf32>, tensor<4xf16>
  return
}

// -----

func.func @split_result(%x: tensor<8xf32>) {
  // expected-error @+1 {{result shape [3] does not match the expected shape [4]}}
  %0:2 = quench.split %x {axis = 0 : i64, sizes = array<i64: 4, 4>} : tensor<8xf32> -> tensor<3xf32>, tensor<4xf32>
  return
}

// -----

func.func @split_sum(%x: tensor<8xf32>) {
  // expected-error @+1 {{sizes sum to 6 but dimension 0 has size 8}}
  %0:2 = quench.split %x {axis = 0 : i64, sizes = array<i64: 3, 3>} : tensor<8xf32> -> tensor<3xf32>, tensor<3xf32>
  return
}

// -----

func.func @expand_rank(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{cannot broadcast to a lower rank}}
  %0 = quench.expand %x : tensor<2x8xf32> -> tensor<8xf32>
  return
}

// -----

func.func @expand_dynamic(%x: tensor<1x8xf32>) {
  // expected-error @+1 {{requires a shape operand when the result shape is dynamic}}
  %0 = quench.expand %x : tensor<1x8xf32> -> tensor<?x8xf32>
  return
}

// -----

func.func @expand_dim(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{input dimension 0 of size 2 cannot broadcast to 3}}
  %0 = quench.expand %x : tensor<2x8xf32> -> tensor<3x8xf32>
  return
}

// -----

func.func @expand_type(%x: tensor<1x8xf32>) {
  // expected-error @+1 {{requires the result element type to match the input}}
  %0 = quench.expand %x : tensor<1x8xf32> -> tensor<3x8xi32>
  return
}

// -----

func.func @squeeze_size(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{cannot squeeze dimension 0 of size 2}}
  %0 = quench.squeeze %x {axes = array<i64: 0>} : tensor<2x8xf32> -> tensor<8xf32>
  return
}

// -----

func.func @squeeze_axes(%x: tensor<1x8xf32>) {
  // expected-error @+1 {{axes entry 5 is out of range for rank 2}}
  %0 = quench.squeeze %x {axes = array<i64: 5>} : tensor<1x8xf32> -> tensor<8xf32>
  return
}

// -----

func.func @squeeze_result(%x: tensor<1x8xf32>) {
  // expected-error @+1 {{result shape [4] does not match the expected shape [8]}}
  %0 = quench.squeeze %x {axes = array<i64: 0>} : tensor<1x8xf32> -> tensor<4xf32>
  return
}

// -----

func.func @unsqueeze_axes(%x: tensor<8xf32>) {
  // expected-error @+1 {{axes must be sorted and unique}}
  %0 = quench.unsqueeze %x {axes = array<i64: 0, 0>} : tensor<8xf32> -> tensor<1x1x8xf32>
  return
}

// -----

func.func @unsqueeze_result(%x: tensor<8xf32>) {
  // expected-error @+1 {{result shape [8x1] does not match the expected shape [1x8]}}
  %0 = quench.unsqueeze %x {axes = array<i64: 0>} : tensor<8xf32> -> tensor<8x1xf32>
  return
}

// -----

func.func @unsqueeze_type(%x: tensor<8xf32>) {
  // expected-error @+1 {{requires the result element type to match the input}}
  %0 = quench.unsqueeze %x {axes = array<i64: 0>} : tensor<8xf32> -> tensor<1x8xf16>
  return
}

// -----

func.func @trilu_rank(%x: tensor<8xf32>) {
  // expected-error @+1 {{requires an input of rank >= 2}}
  %0 = quench.trilu %x {upper = false, k = 0 : i64} : tensor<8xf32>
  return
}

// -----

func.func @shape_of_len(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{result has 3 entries for an input of rank 2}}
  %0 = quench.shape_of %x : tensor<2x8xf32> -> tensor<3xi64>
  return
}

// -----

func.func @range_operands(%s: tensor<1xi64>, %l: tensor<i64>, %d: tensor<i64>) {
  // expected-error @+1 {{requires 0-D start, limit and delta of the result element type}}
  %0 = quench.range %s, %l, %d : (tensor<1xi64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  return
}

// -----

func.func @range_result(%s: tensor<i64>, %l: tensor<i64>, %d: tensor<i64>) {
  // expected-error @+1 {{requires a 1-D result}}
  %0 = quench.range %s, %l, %d : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?x?xi64>
  return
}

// -----

func.func @quantize_linear_shape(%x: tensor<4x8xf32>, %s: tensor<f32>) {
  // expected-error @+1 {{requires the result shape to equal the input shape}}
  %0 = quench.quantize_linear %x, %s {axis = 1 : i64} : (tensor<4x8xf32>, tensor<f32>) -> tensor<8x4xi8>
  return
}

// -----

func.func @quantize_linear_scale_rank(%x: tensor<4x8xf32>, %s: tensor<1x8xf32>) {
  // expected-error @+1 {{requires a 0-D or 1-D scale}}
  %0 = quench.quantize_linear %x, %s {axis = 1 : i64} : (tensor<4x8xf32>, tensor<1x8xf32>) -> tensor<4x8xi8>
  return
}

// -----

func.func @quantize_linear_axis(%x: tensor<4x8xf32>, %s: tensor<8xf32>) {
  // expected-error @+1 {{axis 2 is out of range for rank 2}}
  %0 = quench.quantize_linear %x, %s {axis = 2 : i64} : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xi8>
  return
}

// -----

func.func @quantize_linear_axis_len(%x: tensor<4x8xf32>, %s: tensor<8xf32>) {
  // expected-error @+1 {{scale has 8 entries but the quantized axis has 4}}
  %0 = quench.quantize_linear %x, %s {axis = 0 : i64} : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xi8>
  return
}

// -----

func.func @quantize_linear_zp_type(%x: tensor<4x8xf32>, %s: tensor<f32>, %z: tensor<ui8>) {
  // expected-error @+1 {{requires the zero point to have the quantized element type}}
  %0 = quench.quantize_linear %x, %s, %z {axis = 1 : i64} : (tensor<4x8xf32>, tensor<f32>, tensor<ui8>) -> tensor<4x8xi8>
  return
}

// -----

func.func @quantize_linear_zp_shape(%x: tensor<4x8xf32>, %s: tensor<f32>, %z: tensor<8xi8>) {
  // expected-error @+1 {{requires scale and zero point of one shape}}
  %0 = quench.quantize_linear %x, %s, %z {axis = 1 : i64} : (tensor<4x8xf32>, tensor<f32>, tensor<8xi8>) -> tensor<4x8xi8>
  return
}

// -----

func.func @dequantize_linear_shape(%x: tensor<4x8xi8>, %s: tensor<f32>) {
  // expected-error @+1 {{requires the result shape to equal the input shape}}
  %0 = quench.dequantize_linear %x, %s {axis = 1 : i64} : (tensor<4x8xi8>, tensor<f32>) -> tensor<4xf32>
  return
}

// -----

func.func @dequantize_linear_type(%x: tensor<4x8xi8>, %s: tensor<f32>) {
  // expected-error @+1 {{requires the result element type to be the scale's}}
  %0 = quench.dequantize_linear %x, %s {axis = 1 : i64} : (tensor<4x8xi8>, tensor<f32>) -> tensor<4x8xf16>
  return
}

// -----

func.func @dequantize_linear_zp(%x: tensor<4x8xi8>, %s: tensor<f32>, %z: tensor<ui8>) {
  // expected-error @+1 {{requires the zero point to have the quantized element type}}
  %0 = quench.dequantize_linear %x, %s, %z {axis = 1 : i64} : (tensor<4x8xi8>, tensor<f32>, tensor<ui8>) -> tensor<4x8xf32>
  return
}

// -----

func.func @dynamic_quantize_shape(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{requires the result shape to equal the input shape}}
  %0:3 = quench.dynamic_quantize_linear %x : tensor<4x8xf32> -> tensor<8xui8>, tensor<f32>, tensor<ui8>
  return
}

// -----

func.func @dynamic_quantize_type(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{requires ui8 result and zero point}}
  %0:3 = quench.dynamic_quantize_linear %x : tensor<4x8xf32> -> tensor<4x8xi8>, tensor<f32>, tensor<i8>
  return
}

// -----

func.func @dynamic_quantize_scale(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{requires 0-D scale and zero point}}
  %0:3 = quench.dynamic_quantize_linear %x : tensor<4x8xf32> -> tensor<4x8xui8>, tensor<1xf32>, tensor<ui8>
  return
}

// -----

func.func @matmul_integer_type(%a: tensor<4x8xi16>, %b: tensor<8x2xi8>) {
  // expected-error @+1 {{requires 8-bit integer operands}}
  %0 = quench.matmul_integer %a, %b : (tensor<4x8xi16>, tensor<8x2xi8>) -> tensor<4x2xi32>
  return
}

// -----

func.func @matmul_integer_lhs_zp(%a: tensor<4x8xui8>, %b: tensor<8x2xi8>, %z: tensor<i8>) {
  // expected-error @+1 {{requires the lhs zero point to have the lhs type}}
  %0 = quench.matmul_integer %a, %b zp(%z) : (tensor<4x8xui8>, tensor<8x2xi8>, tensor<i8>) -> tensor<4x2xi32>
  return
}

// -----

func.func @matmul_integer_rhs_zp(%a: tensor<4x8xui8>, %b: tensor<8x2xi8>, %z: tensor<ui8>) {
  // expected-error @+1 {{requires the rhs zero point to have the rhs type}}
  %0 = quench.matmul_integer %a, %b rhs_zp(%z) : (tensor<4x8xui8>, tensor<8x2xi8>, tensor<ui8>) -> tensor<4x2xi32>
  return
}

// -----

func.func @matmul_integer_k(%a: tensor<4x8xui8>, %b: tensor<7x2xi8>) {
  // expected-error @+1 {{contracting dimensions differ: 8 vs 7}}
  %0 = quench.matmul_integer %a, %b : (tensor<4x8xui8>, tensor<7x2xi8>) -> tensor<4x2xi32>
  return
}

// -----

func.func @matmul_integer_result(%a: tensor<4x8xui8>, %b: tensor<8x2xi8>) {
  // expected-error @+1 {{result shape [2x4] does not match the expected shape [4x2]}}
  %0 = quench.matmul_integer %a, %b : (tensor<4x8xui8>, tensor<8x2xi8>) -> tensor<2x4xi32>
  return
}

// -----

func.func @qlinear_matmul_type(%a: tensor<4x8xui8>, %s: tensor<f32>, %z: tensor<ui8>,
                               %b: tensor<8x2xi16>, %zb: tensor<i16>) {
  // expected-error @+1 {{requires 8-bit integer operands and result}}
  %0 = quench.qlinear_matmul %a, %s, %z, %b, %s, %zb, %s, %z
      : (tensor<4x8xui8>, tensor<f32>, tensor<ui8>, tensor<8x2xi16>, tensor<f32>, tensor<i16>, tensor<f32>, tensor<ui8>) -> tensor<4x2xui8>
  return
}

// -----

func.func @qlinear_matmul_zp(%a: tensor<4x8xui8>, %s: tensor<f32>, %z: tensor<ui8>,
                             %b: tensor<8x2xi8>) {
  // expected-error @+1 {{requires each zero point to have its operand's type}}
  %0 = quench.qlinear_matmul %a, %s, %z, %b, %s, %z, %s, %z
      : (tensor<4x8xui8>, tensor<f32>, tensor<ui8>, tensor<8x2xi8>, tensor<f32>, tensor<ui8>, tensor<f32>, tensor<ui8>) -> tensor<4x2xui8>
  return
}

// -----

func.func @qlinear_matmul_k(%a: tensor<4x8xui8>, %s: tensor<f32>, %z: tensor<ui8>,
                            %b: tensor<6x2xi8>, %zb: tensor<i8>) {
  // expected-error @+1 {{contracting dimensions differ: 8 vs 6}}
  %0 = quench.qlinear_matmul %a, %s, %z, %b, %s, %zb, %s, %z
      : (tensor<4x8xui8>, tensor<f32>, tensor<ui8>, tensor<6x2xi8>, tensor<f32>, tensor<i8>, tensor<f32>, tensor<ui8>) -> tensor<4x2xui8>
  return
}

// -----

func.func @matmul_nbits_bits(%x: tensor<1x64xf32>, %w: tensor<16x2x16xui8>, %s: tensor<32xf32>) {
  // expected-error @+1 {{bits must be in [2, 8], got 9}}
  %0 = quench.matmul_nbits %x, %w, %s {in_features = 64 : i64, out_features = 16 : i64, bits = 9 : i64, block_size = 32 : i64}
      : (tensor<1x64xf32>, tensor<16x2x16xui8>, tensor<32xf32>) -> tensor<1x16xf32>
  return
}

// -----

func.func @matmul_nbits_block(%x: tensor<1x64xf32>, %w: tensor<16x2x16xui8>, %s: tensor<32xf32>) {
  // expected-error @+1 {{block_size * bits must be a positive multiple of 8, got 3 * 4}}
  %0 = quench.matmul_nbits %x, %w, %s {in_features = 64 : i64, out_features = 16 : i64, bits = 4 : i64, block_size = 3 : i64}
      : (tensor<1x64xf32>, tensor<16x2x16xui8>, tensor<32xf32>) -> tensor<1x16xf32>
  return
}

// -----

func.func @matmul_nbits_features(%x: tensor<1x64xf32>, %w: tensor<16x2x16xui8>, %s: tensor<32xf32>) {
  // expected-error @+1 {{requires positive in_features and out_features}}
  %0 = quench.matmul_nbits %x, %w, %s {in_features = 0 : i64, out_features = 16 : i64, bits = 4 : i64, block_size = 32 : i64}
      : (tensor<1x64xf32>, tensor<16x2x16xui8>, tensor<32xf32>) -> tensor<1x16xf32>
  return
}

// -----

func.func @matmul_nbits_weight_type(%x: tensor<1x64xf32>, %w: tensor<16x2x16xi8>, %s: tensor<32xf32>) {
  // expected-error @+1 {{requires a ui8 packed weight}}
  %0 = quench.matmul_nbits %x, %w, %s {in_features = 64 : i64, out_features = 16 : i64, bits = 4 : i64, block_size = 32 : i64}
      : (tensor<1x64xf32>, tensor<16x2x16xi8>, tensor<32xf32>) -> tensor<1x16xf32>
  return
}

// -----

func.func @matmul_nbits_weight_shape(%x: tensor<1x64xf32>, %w: tensor<16x2x32xui8>, %s: tensor<32xf32>) {
  // expected-error @+1 {{weight shape [16x2x32] does not match the expected shape [16x2x16]}}
  %0 = quench.matmul_nbits %x, %w, %s {in_features = 64 : i64, out_features = 16 : i64, bits = 4 : i64, block_size = 32 : i64}
      : (tensor<1x64xf32>, tensor<16x2x32xui8>, tensor<32xf32>) -> tensor<1x16xf32>
  return
}

// -----

func.func @matmul_nbits_scale_count(%x: tensor<1x64xf32>, %w: tensor<16x2x16xui8>, %s: tensor<16xf32>) {
  // expected-error @+1 {{requires 32 scales}}
  %0 = quench.matmul_nbits %x, %w, %s {in_features = 64 : i64, out_features = 16 : i64, bits = 4 : i64, block_size = 32 : i64}
      : (tensor<1x64xf32>, tensor<16x2x16xui8>, tensor<16xf32>) -> tensor<1x16xf32>
  return
}

// -----

func.func @matmul_nbits_input(%x: tensor<1x63xf32>, %w: tensor<16x2x16xui8>, %s: tensor<32xf32>) {
  // expected-error @+1 {{input features 63 do not match in_features 64}}
  %0 = quench.matmul_nbits %x, %w, %s {in_features = 64 : i64, out_features = 16 : i64, bits = 4 : i64, block_size = 32 : i64}
      : (tensor<1x63xf32>, tensor<16x2x16xui8>, tensor<32xf32>) -> tensor<1x16xf32>
  return
}

// -----

func.func @matmul_nbits_zp_packed(%x: tensor<1x64xf32>, %w: tensor<16x2x16xui8>, %s: tensor<32xf32>, %z: tensor<32xui8>) {
  // Two 4-bit zero points per byte: 16 rows x 1 byte.
  // expected-error @+1 {{requires 16 bytes of packed zero points}}
  %0 = quench.matmul_nbits %x, %w, %s zp(%z) {in_features = 64 : i64, out_features = 16 : i64, bits = 4 : i64, block_size = 32 : i64}
      : (tensor<1x64xf32>, tensor<16x2x16xui8>, tensor<32xf32>, tensor<32xui8>) -> tensor<1x16xf32>
  return
}

// -----

func.func @matmul_nbits_zp_float(%x: tensor<1x64xf32>, %w: tensor<16x2x16xui8>, %s: tensor<32xf32>, %z: tensor<16xf32>) {
  // expected-error @+1 {{requires 32 float zero points}}
  %0 = quench.matmul_nbits %x, %w, %s zp(%z) {in_features = 64 : i64, out_features = 16 : i64, bits = 4 : i64, block_size = 32 : i64}
      : (tensor<1x64xf32>, tensor<16x2x16xui8>, tensor<32xf32>, tensor<16xf32>) -> tensor<1x16xf32>
  return
}

// -----

func.func @matmul_nbits_zp_type(%x: tensor<1x64xf32>, %w: tensor<16x2x16xui8>, %s: tensor<32xf32>, %z: tensor<16xi32>) {
  // expected-error @+1 {{requires ui8 packed zero points or zero points of the scales' element type}}
  %0 = quench.matmul_nbits %x, %w, %s zp(%z) {in_features = 64 : i64, out_features = 16 : i64, bits = 4 : i64, block_size = 32 : i64}
      : (tensor<1x64xf32>, tensor<16x2x16xui8>, tensor<32xf32>, tensor<16xi32>) -> tensor<1x16xf32>
  return
}

// -----

func.func @matmul_nbits_bias(%x: tensor<1x64xf32>, %w: tensor<16x2x16xui8>, %s: tensor<32xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{requires a 1-D bias of length 16}}
  %0 = quench.matmul_nbits %x, %w, %s bias(%b) {in_features = 64 : i64, out_features = 16 : i64, bits = 4 : i64, block_size = 32 : i64}
      : (tensor<1x64xf32>, tensor<16x2x16xui8>, tensor<32xf32>, tensor<8xf32>) -> tensor<1x16xf32>
  return
}

// -----

func.func @matmul_nbits_result(%x: tensor<1x64xf32>, %w: tensor<16x2x16xui8>, %s: tensor<32xf32>) {
  // expected-error @+1 {{result shape [1x8] does not match the expected shape [1x16]}}
  %0 = quench.matmul_nbits %x, %w, %s {in_features = 64 : i64, out_features = 16 : i64, bits = 4 : i64, block_size = 32 : i64}
      : (tensor<1x64xf32>, tensor<16x2x16xui8>, tensor<32xf32>) -> tensor<1x8xf32>
  return
}

// -----

func.func @qlinear_k(%x: tensor<2x32xf32>, %w: tensor<16x64xi8>, %s: tensor<16xf32>) {
  // expected-error @+1 {{input features 32 do not match weight in_features 64}}
  %0 = quench.qlinear %x, %w, %s : (tensor<2x32xf32>, tensor<16x64xi8>, tensor<16xf32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @qlinear_scale(%x: tensor<2x64xf32>, %w: tensor<16x64xi8>, %s: tensor<8xf32>) {
  // expected-error @+1 {{requires a 1-D weight_scale of length 16}}
  %0 = quench.qlinear %x, %w, %s : (tensor<2x64xf32>, tensor<16x64xi8>, tensor<8xf32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @qlinear_bias(%x: tensor<2x64xf32>, %w: tensor<16x64xi8>, %s: tensor<16xf32>, %b: tensor<15xf32>) {
  // expected-error @+1 {{requires a 1-D bias of length 16}}
  %0 = quench.qlinear %x, %w, %s bias(%b) : (tensor<2x64xf32>, tensor<16x64xi8>, tensor<16xf32>, tensor<15xf32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @qlinear_result(%x: tensor<2x64xf32>, %w: tensor<16x64xi8>, %s: tensor<16xf32>) {
  // expected-error @+1 {{result shape [2x8] does not match the expected shape [2x16]}}
  %0 = quench.qlinear %x, %w, %s : (tensor<2x64xf32>, tensor<16x64xi8>, tensor<16xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @qlinear_outlier_shape(%x: tensor<2x64xf32>, %w: tensor<16x64xi8>, %s: tensor<16xf32>, %o: tensor<16x3xf32>) {
  // expected-error @+1 {{requires an outlier_weight of shape [16, 2]}}
  %0 = quench.qlinear %x, %w, %s outliers(%o, [1, 5]) : (tensor<2x64xf32>, tensor<16x64xi8>, tensor<16xf32>, tensor<16x3xf32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @qlinear_outlier_order(%x: tensor<2x64xf32>, %w: tensor<16x64xi8>, %s: tensor<16xf32>, %o: tensor<16x2xf32>) {
  // expected-error @+1 {{requires outlier_channels strictly increasing in [0, 64), got 1}}
  %0 = quench.qlinear %x, %w, %s outliers(%o, [5, 1]) : (tensor<2x64xf32>, tensor<16x64xi8>, tensor<16xf32>, tensor<16x2xf32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @qlinear_outlier_range(%x: tensor<2x64xf32>, %w: tensor<16x64xi8>, %s: tensor<16xf32>, %o: tensor<16x1xf32>) {
  // expected-error @+1 {{requires outlier_channels strictly increasing in [0, 64), got 64}}
  %0 = quench.qlinear %x, %w, %s outliers(%o, [64]) : (tensor<2x64xf32>, tensor<16x64xi8>, tensor<16xf32>, tensor<16x1xf32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @qlinear_outlier_none(%x: tensor<2x64xf32>, %w: tensor<16x64xi8>, %s: tensor<16xf32>, %o: tensor<16x0xf32>) {
  // expected-error @+1 {{requires at least one outlier channel}}
  %0 = quench.qlinear %x, %w, %s outliers(%o, []) : (tensor<2x64xf32>, tensor<16x64xi8>, tensor<16xf32>, tensor<16x0xf32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @qlinear_input_scale(%x: tensor<2x64xf32>, %w: tensor<16x64xi8>, %s: tensor<16xf32>) {
  // expected-error @+1 {{requires a finite positive input_scale}}
  %0 = quench.qlinear %x, %w, %s input_scale(0.0) : (tensor<2x64xf32>, tensor<16x64xi8>, tensor<16xf32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @qlinear_weight_rank(%x: tensor<2x64xf32>, %w: tensor<16x4x16xi8>, %s: tensor<16xf32>) {
  // expected-error @+1 {{requires a 2-D weight [out_features, in_features]}}
  %0 = quench.qlinear %x, %w, %s : (tensor<2x64xf32>, tensor<16x4x16xi8>, tensor<16xf32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @qlinear_big_k(%x: tensor<2x132105xf32>, %w: tensor<16x132105xi8>, %s: tensor<16xf32>) {
  // expected-error @+1 {{in_features 132105 exceeds 132104: the int32 sum of int8 products could overflow}}
  %0 = quench.qlinear %x, %w, %s : (tensor<2x132105xf32>, tensor<16x132105xi8>, tensor<16xf32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @attention_heads(%q: tensor<1x3x?x16xf32>, %k: tensor<1x2x?x16xf32>) {
  // expected-error @+1 {{requires static head counts with the query's (3) a multiple of the key's (2)}}
  %0 = quench.attention %q, %k, %k {scale = 1.0 : f64} : (tensor<1x3x?x16xf32>, tensor<1x2x?x16xf32>, tensor<1x2x?x16xf32>) -> tensor<1x3x?x16xf32>
  return
}

// -----

func.func @attention_features(%q: tensor<1x4x?x16xf32>, %k: tensor<1x2x?x8xf32>) {
  // expected-error @+1 {{key shape [1x2x?x8] does not match the expected shape [1x2x?x16]}}
  %0 = quench.attention %q, %k, %k {scale = 1.0 : f64} : (tensor<1x4x?x16xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>) -> tensor<1x4x?x8xf32>
  return
}

// -----

func.func @attention_i8_without_scale(%q: tensor<1x4x?x16xf32>, %k: tensor<1x2x?x16xi8>, %v: tensor<1x2x?x16xf32>) {
  // expected-error @+1 {{requires key_scale with an i8 key}}
  %0 = quench.attention %q, %k, %v {scale = 1.0 : f64} : (tensor<1x4x?x16xf32>, tensor<1x2x?x16xi8>, tensor<1x2x?x16xf32>) -> tensor<1x4x?x16xf32>
  return
}

// -----

func.func @attention_scale_with_float(%q: tensor<1x4x?x16xf32>, %k: tensor<1x2x?x16xf32>, %s: tensor<1x2x?x1xf32>) {
  // expected-error @+1 {{requires no value_scale with a float value}}
  %0 = quench.attention %q, %k, %k value_scale(%s) {scale = 1.0 : f64} : (tensor<1x4x?x16xf32>, tensor<1x2x?x16xf32>, tensor<1x2x?x16xf32>, tensor<1x2x?x1xf32>) -> tensor<1x4x?x16xf32>
  return
}

// -----

func.func @attention_bias(%q: tensor<1x4x5x16xf32>, %k: tensor<1x2x7x16xf32>, %b: tensor<1x1x5x6xf32>) {
  // expected-error @+1 {{bias shape [1x1x5x6] does not broadcast to [1x4x5x7]}}
  %0 = quench.attention %q, %k, %k bias(%b) {scale = 1.0 : f64} : (tensor<1x4x5x16xf32>, tensor<1x2x7x16xf32>, tensor<1x2x7x16xf32>, tensor<1x1x5x6xf32>) -> tensor<1x4x5x16xf32>
  return
}

// -----

func.func @dequantize_nbits_bits(%c: tensor<4x2x12xui8>, %s: tensor<4x2xf16>) {
  // expected-error @+1 {{bits must be 2, 4 or 8, got 3}}
  %0 = quench.dequantize_nbits %c, %s {bits = 3 : i64, block_size = 32 : i64}
      : (tensor<4x2x12xui8>, tensor<4x2xf16>) -> tensor<4x64xf32>
  return
}

// -----

func.func @dequantize_nbits_blocks(%c: tensor<4x2x16xui8>, %s: tensor<4x2xf16>) {
  // expected-error @+1 {{2 blocks of 32 do not hold 65 features}}
  %0 = quench.dequantize_nbits %c, %s {bits = 4 : i64, block_size = 32 : i64}
      : (tensor<4x2x16xui8>, tensor<4x2xf16>) -> tensor<4x65xf32>
  return
}

// -----

func.func @dequantize_nbits_bytes(%c: tensor<4x2x32xui8>, %s: tensor<4x2xf16>) {
  // expected-error @+1 {{codes shape [4x2x32] does not match the expected shape [4x2x16]}}
  %0 = quench.dequantize_nbits %c, %s {bits = 4 : i64, block_size = 32 : i64}
      : (tensor<4x2x32xui8>, tensor<4x2xf16>) -> tensor<4x64xf32>
  return
}

// -----

func.func @dequantize_nbits_scales(%c: tensor<4x2x16xui8>, %s: tensor<3x2xf16>) {
  // expected-error @+1 {{scales shape [3x2] does not match the expected shape [4x2]}}
  %0 = quench.dequantize_nbits %c, %s {bits = 4 : i64, block_size = 32 : i64}
      : (tensor<4x2x16xui8>, tensor<3x2xf16>) -> tensor<4x64xf32>
  return
}

// -----

func.func @dequantize_nbits_zp(%c: tensor<4x2x16xui8>, %s: tensor<4x2xf16>, %z: tensor<4x2xf32>) {
  // expected-error @+1 {{requires zero points of the scales' element type}}
  %0 = quench.dequantize_nbits %c, %s zp(%z) {bits = 4 : i64, block_size = 32 : i64}
      : (tensor<4x2x16xui8>, tensor<4x2xf16>, tensor<4x2xf32>) -> tensor<4x64xf32>
  return
}

// -----

func.func @sparse_linear_pattern(%x: tensor<1x8xf32>, %v: tensor<2x8xf32>, %i: tensor<2x2xi8>) {
  // expected-error @+1 {{requires 1 <= keep < group <= 16, got 4:4}}
  %0 = quench.sparse_linear %x, %v, %i {group = 4 : i64, keep = 4 : i64}
      : (tensor<1x8xf32>, tensor<2x8xf32>, tensor<2x2xi8>) -> tensor<1x2xf32>
  return
}

// -----

func.func @sparse_linear_k(%x: tensor<1x6xf32>, %v: tensor<2x3xf32>, %i: tensor<2x1xi8>) {
  // expected-error @+1 {{input features 6 are not a multiple of the group 4}}
  %0 = quench.sparse_linear %x, %v, %i {group = 4 : i64, keep = 2 : i64}
      : (tensor<1x6xf32>, tensor<2x3xf32>, tensor<2x1xi8>) -> tensor<1x2xf32>
  return
}

// -----

func.func @sparse_linear_values(%x: tensor<1x8xf32>, %v: tensor<2x8xf32>, %i: tensor<2x1xi8>) {
  // expected-error @+1 {{requires values [N, 4] (K / group * keep), got 8 columns}}
  %0 = quench.sparse_linear %x, %v, %i {group = 4 : i64, keep = 2 : i64}
      : (tensor<1x8xf32>, tensor<2x8xf32>, tensor<2x1xi8>) -> tensor<1x2xf32>
  return
}

// -----

func.func @sparse_linear_indices(%x: tensor<1x16xf32>, %v: tensor<2x8xf32>, %i: tensor<2x2xi8>) {
  // 4:8 takes 4-bit indices: 8 slots in 4 bytes.
  // expected-error @+1 {{requires indices [N, 4] (4-bit indices)}}
  %0 = quench.sparse_linear %x, %v, %i {group = 8 : i64, keep = 4 : i64}
      : (tensor<1x16xf32>, tensor<2x8xf32>, tensor<2x2xi8>) -> tensor<1x2xf32>
  return
}

// -----

func.func @sparse_linear_scales(%x: tensor<1x8xf32>, %v: tensor<2x4xi8>, %i: tensor<2x1xi8>) {
  // expected-error @+1 {{requires scales and block_size exactly with i8 values}}
  %0 = quench.sparse_linear %x, %v, %i {group = 4 : i64, keep = 2 : i64}
      : (tensor<1x8xf32>, tensor<2x4xi8>, tensor<2x1xi8>) -> tensor<1x2xf32>
  return
}

// -----

func.func @sparse_linear_block(%x: tensor<1x16xf32>, %v: tensor<2x8xi8>, %i: tensor<2x2xi8>, %s: tensor<2x3xf16>) {
  // expected-error @+1 {{requires a block_size that is a multiple of the group or at least K, got 6}}
  %0 = quench.sparse_linear %x, %v, %i scales(%s) {block_size = 6 : i64, group = 4 : i64, keep = 2 : i64}
      : (tensor<1x16xf32>, tensor<2x8xi8>, tensor<2x2xi8>, tensor<2x3xf16>) -> tensor<1x2xf32>
  return
}

// -----

func.func @sparse_linear_scale_shape(%x: tensor<1x16xf32>, %v: tensor<2x8xi8>, %i: tensor<2x2xi8>, %s: tensor<2x3xf16>) {
  // expected-error @+1 {{requires scales [N, 2]}}
  %0 = quench.sparse_linear %x, %v, %i scales(%s) {block_size = 8 : i64, group = 4 : i64, keep = 2 : i64}
      : (tensor<1x16xf32>, tensor<2x8xi8>, tensor<2x2xi8>, tensor<2x3xf16>) -> tensor<1x2xf32>
  return
}

// -----

func.func @sparse_linear_nibble_cols(%x: tensor<1x16xf32>, %v: tensor<2x8xi8>, %i: tensor<2x2xi8>, %s: tensor<2x1xf16>) {
  // 4-bit codes: 8 slots in 4 bytes.
  // expected-error @+1 {{requires values [N, 4] (K / group * keep 4-bit codes, two per byte), got 8 columns}}
  %0 = quench.sparse_linear %x, %v, %i scales(%s) {block_size = 16 : i64, group = 4 : i64, keep = 2 : i64, value_bits = 4 : i64}
      : (tensor<1x16xf32>, tensor<2x8xi8>, tensor<2x2xi8>, tensor<2x1xf16>) -> tensor<1x2xf32>
  return
}

// -----

func.func @sparse_linear_nibble_float(%x: tensor<1x8xf32>, %v: tensor<2x2xf32>, %i: tensor<2x1xi8>) {
  // expected-error @+1 {{requires i8 values and an f32 input with value_bits = 4}}
  %0 = quench.sparse_linear %x, %v, %i {group = 4 : i64, keep = 2 : i64, value_bits = 4 : i64}
      : (tensor<1x8xf32>, tensor<2x2xf32>, tensor<2x1xi8>) -> tensor<1x2xf32>
  return
}

// -----

func.func @sparse_linear_value_bits(%x: tensor<1x8xf32>, %v: tensor<2x4xi8>, %i: tensor<2x1xi8>, %s: tensor<2x1xf16>) {
  // expected-error @+1 {{requires value_bits 4 or 8, got 2}}
  %0 = quench.sparse_linear %x, %v, %i scales(%s) {block_size = 8 : i64, group = 4 : i64, keep = 2 : i64, value_bits = 2 : i64}
      : (tensor<1x8xf32>, tensor<2x4xi8>, tensor<2x1xi8>, tensor<2x1xf16>) -> tensor<1x2xf32>
  return
}

// -----

func.func @sparse_linear_result(%x: tensor<3x8xf32>, %v: tensor<2x4xf32>, %i: tensor<2x1xi8>) {
  // expected-error @+1 {{result}}
  %0 = quench.sparse_linear %x, %v, %i {group = 4 : i64, keep = 2 : i64}
      : (tensor<3x8xf32>, tensor<2x4xf32>, tensor<2x1xi8>) -> tensor<3x3xf32>
  return
}

// -----

func.func @hadamard_order(%x: tensor<2x12xf32>) {
  // expected-error @+1 {{order must be a power of two, got 3}}
  %0 = quench.hadamard %x {order = 3 : i64} : tensor<2x12xf32>
  return
}

// -----

func.func @hadamard_divides(%x: tensor<2x12xf32>) {
  // expected-error @+1 {{order 8 does not divide the last dimension 12}}
  %0 = quench.hadamard %x {order = 8 : i64} : tensor<2x12xf32>
  return
}

// -----

func.func @hadamard_dynamic(%x: tensor<2x?xf32>) {
  // expected-error @+1 {{requires a static last dimension}}
  %0 = quench.hadamard %x {order = 2 : i64} : tensor<2x?xf32>
  return
}

// -----

func.func @sparse_linear_f16_values(%x: tensor<1x8xf16>, %v: tensor<2x4xf32>, %i: tensor<2x1xi8>) {
  // expected-error @+1 {{values of type 'f32' do not match an input of type 'f16'}}
  %0 = quench.sparse_linear %x, %v, %i {group = 4 : i64, keep = 2 : i64}
      : (tensor<1x8xf16>, tensor<2x4xf32>, tensor<2x1xi8>) -> tensor<1x2xf32>
  return
}

// -----

func.func @sparse_linear_i8_result(%x: tensor<1x8xi8>, %v: tensor<2x4xi8>, %i: tensor<2x1xi8>) {
  // expected-error @+1 {{requires an i32 result exactly with an i8 input}}
  %0 = quench.sparse_linear %x, %v, %i {group = 4 : i64, keep = 2 : i64}
      : (tensor<1x8xi8>, tensor<2x4xi8>, tensor<2x1xi8>) -> tensor<1x2xf32>
  return
}

// -----

func.func @sparse_linear_i8_bias(%x: tensor<1x8xi8>, %v: tensor<2x4xi8>, %i: tensor<2x1xi8>, %b: tensor<2xf32>) {
  // expected-error @+1 {{requires no bias with an i8 input}}
  %0 = quench.sparse_linear %x, %v, %i bias(%b) {group = 4 : i64, keep = 2 : i64}
      : (tensor<1x8xi8>, tensor<2x4xi8>, tensor<2x1xi8>, tensor<2xf32>) -> tensor<1x2xi32>
  return
}
