// REQUIRES: ptxas
// RUN: rm -rf %t && mkdir -p %t
// RUN: quench-compile %s -o %t/sm80 --emit=obj --target=cuda --cuda-arch=sm_80
// RUN: quench-compile %s -o %t/sm90 --emit=obj --target=cuda --cuda-arch=sm_90
// RUN: test -s %t/sm80.o && test -s %t/sm90.o

// The Toolkit's ptxas assembles the tensor-core GEMM kernels (f16, B
// stored [K, N] and [N, K] (linear), batched, a dynamic row count) for
// sm_80 and sm_90: mma.sync, ldmatrix and cp.async are valid there.
func.func @f(%a: tensor<?x64xf16>, %b: tensor<64x80xf16>, %x: tensor<2x40x32xf16>, %w: tensor<24x32xf16>, %p: tensor<3x33x24xf16>, %q: tensor<3x24x40xf16>) -> (tensor<?x80xf16>, tensor<2x40x24xf16>, tensor<3x33x40xf16>) {
  %y = quench.matmul %a, %b : (tensor<?x64xf16>, tensor<64x80xf16>) -> tensor<?x80xf16>
  %z = quench.linear %x, %w : (tensor<2x40x32xf16>, tensor<24x32xf16>) -> tensor<2x40x24xf16>
  %r = quench.matmul %p, %q : (tensor<3x33x24xf16>, tensor<3x24x40xf16>) -> tensor<3x33x40xf16>
  return %y, %z, %r : tensor<?x80xf16>, tensor<2x40x24xf16>, tensor<3x33x40xf16>
}
