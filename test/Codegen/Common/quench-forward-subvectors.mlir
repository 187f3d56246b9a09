// RUN: quench-opt %s --split-input-file --quench-forward-subvectors | FileCheck %s

// Rows of a vector just written to a tensor are read from the vector: a
// static in-bounds box inside the written one, directly or through a
// static slice, becomes vector.extract_strided_slice.
// CHECK-LABEL: func.func @rows
// CHECK-SAME: (%[[V:.*]]: vector<6x16xf32>
// CHECK-NOT: vector.transfer_read
// CHECK: vector.extract_strided_slice %[[V]] {offsets = [0, 0], sizes = [1, 16], strides = [1, 1]}
// CHECK: vector.extract_strided_slice %[[V]] {offsets = [3, 8], sizes = [1, 8], strides = [1, 1]}
func.func @rows(%v: vector<6x16xf32>, %t: tensor<6x16xf32>)
    -> (vector<1x16xf32>, vector<1x8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %pad = ub.poison : f32
  %w = vector.transfer_write %v, %t[%c0, %c0] {in_bounds = [true, true]} : vector<6x16xf32>, tensor<6x16xf32>
  %r0 = vector.transfer_read %w[%c0, %c0], %pad {in_bounds = [true, true]} : tensor<6x16xf32>, vector<1x16xf32>
  %s = tensor.extract_slice %w[2, 8] [2, 8] [1, 1] : tensor<6x16xf32> to tensor<2x8xf32>
  %r3 = vector.transfer_read %s[%c1, %c0], %pad {in_bounds = [true, true]} : tensor<2x8xf32>, vector<1x8xf32>
  return %r0, %r3 : vector<1x16xf32>, vector<1x8xf32>
}

// -----

// Left alone: a dynamic index, a box beyond the written one, a masked
// write.
// CHECK-LABEL: func.func @not_forwarded
// CHECK-COUNT-3: vector.transfer_read
// CHECK-NOT: vector.extract_strided_slice
func.func @not_forwarded(%v: vector<4x8xf32>, %t: tensor<8x8xf32>, %i: index,
                         %m: vector<4x8xi1>)
    -> (vector<1x8xf32>, vector<1x8xf32>, vector<1x8xf32>) {
  %c0 = arith.constant 0 : index
  %c5 = arith.constant 5 : index
  %pad = ub.poison : f32
  %w = vector.transfer_write %v, %t[%c0, %c0] {in_bounds = [true, true]} : vector<4x8xf32>, tensor<8x8xf32>
  %a = vector.transfer_read %w[%i, %c0], %pad {in_bounds = [true, true]} : tensor<8x8xf32>, vector<1x8xf32>
  %b = vector.transfer_read %w[%c5, %c0], %pad {in_bounds = [true, true]} : tensor<8x8xf32>, vector<1x8xf32>
  %wm = vector.transfer_write %v, %t[%c0, %c0], %m {in_bounds = [true, true]} : vector<4x8xf32>, tensor<8x8xf32>
  %c = vector.transfer_read %wm[%c0, %c0], %pad {in_bounds = [true, true]} : tensor<8x8xf32>, vector<1x8xf32>
  return %a, %b, %c : vector<1x8xf32>, vector<1x8xf32>, vector<1x8xf32>
}
