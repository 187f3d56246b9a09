// RUN: quench-opt %s --quench-cuda-pipeline | FileCheck %s
// RUN: quench-opt %s --quench-cuda-pipeline=emulate=1 | FileCheck %s --check-prefix=EMU

// An f16 matmul (96 x 64 x 80, f32 accumulation, the result rounded to f16)
// runs the tensor-core GEMM kernel (lib/Codegen/GPU/MmaGemm.cpp): its PTX
// stages the tiles in shared memory with 16-byte cp.async (src-size
// operand: zero fill), commits and waits on groups, synchronizes the
// block, loads fragments with ldmatrix (transposed for B stored [K, N]) and
// multiplies with mma.sync m16n8k16 f32.f16.f16.f32.
// CHECK: gpu.binary
// CHECK-SAME: .visible .entry [[K:f_kernel[_0-9]*]](
// CHECK-SAME: .shared .align 16 .b8
// CHECK-SAME: .shared .align 16 .b8
// CHECK-SAME: cp.async.cg.shared.global [%rd{{[0-9+]+}}], [%rd{{[0-9+]+}}], 16, %r{{[0-9]+}};
// CHECK-SAME: cp.async.commit_group;
// CHECK-SAME: cp.async.wait_group \091;
// CHECK-SAME: bar.sync \090;
// CHECK-SAME: ldmatrix.sync.aligned.m8n8.x4.shared.b16
// CHECK-SAME: ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
// CHECK-SAME: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
// CHECK-SAME: cp.async.wait_group \090;

// The emulation runs the same tiles on the CPU: no device code.
// EMU-NOT: gpu.binary
// EMU-NOT: nvvm.
// EMU: llvm.func @f(
func.func @f(%a: tensor<96x64xf16>, %b: tensor<64x80xf16>) -> tensor<96x80xf16> {
  %y = quench.matmul %a, %b : (tensor<96x64xf16>, tensor<64x80xf16>) -> tensor<96x80xf16>
  return %y : tensor<96x80xf16>
}
