// quench-full-rank-writes: a lower-rank vector.transfer_write on a
// tensor at the origin gets the destination's rank, because MLIR 22's
// one-shot bufferization takes vector<16xf32> written at [0, 0] of a
// tensor<8x48xf32> for a full overwrite (it zips 8 with 16) and lets two
// write chains from one zero-filled tensor share a buffer.

// RUN: quench-opt %s --quench-full-rank-writes | FileCheck %s
// RUN: quench-opt %s --quench-full-rank-writes --one-shot-bufferize | FileCheck %s --check-prefix=BUF

// CHECK-LABEL: func.func @origin
// CHECK: %[[V:.*]] = vector.shape_cast %{{.*}} : vector<16xf32> to vector<1x16xf32>
// CHECK: vector.transfer_write %[[V]], %{{.*}}[%c0, %c0] {in_bounds = [true, true]} : vector<1x16xf32>, tensor<8x48xf32>
// Elsewhere than the origin the analysis is right: left alone.
// CHECK: vector.transfer_write %{{.*}}, %{{.*}}[%c0, %c16] {in_bounds = [true]} : vector<16xf32>, tensor<8x48xf32>
// Two chains of writes from one zero-filled tensor: the second one must
// get its own buffer (a copy of the zeros), not the first one's results.
// BUF-LABEL: func.func @origin
// BUF: %[[A:.*]] = memref.alloc() {{.*}} : memref<8x48xf32>
// BUF: linalg.fill {{.*}} outs(%[[A]]
// BUF: %[[B:.*]] = memref.alloc() {{.*}} : memref<8x48xf32>
// BUF: memref.copy %[[A]], %[[B]]
func.func @origin(%v: vector<16xf32>, %w: vector<16xf32>) -> (tensor<8x48xf32>, tensor<8x48xf32>) {
  %c0 = arith.constant 0 : index
  %c16 = arith.constant 16 : index
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<8x48xf32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<8x48xf32>) -> tensor<8x48xf32>
  %a = vector.transfer_write %v, %f[%c0, %c0] {in_bounds = [true]} : vector<16xf32>, tensor<8x48xf32>
  %a2 = vector.transfer_write %v, %a[%c0, %c16] {in_bounds = [true]} : vector<16xf32>, tensor<8x48xf32>
  %b = vector.transfer_write %w, %f[%c0, %c0] {in_bounds = [true]} : vector<16xf32>, tensor<8x48xf32>
  return %a2, %b : tensor<8x48xf32>, tensor<8x48xf32>
}

// A write that covers the whole destination is not touched.
// CHECK-LABEL: func.func @whole
// CHECK: vector.transfer_write %{{.*}}, %{{.*}}[%c0] {in_bounds = [true]} : vector<16xf32>, tensor<16xf32>
func.func @whole(%v: vector<16xf32>, %t: tensor<16xf32>) -> tensor<16xf32> {
  %c0 = arith.constant 0 : index
  %r = vector.transfer_write %v, %t[%c0] {in_bounds = [true]} : vector<16xf32>, tensor<16xf32>
  return %r : tensor<16xf32>
}
