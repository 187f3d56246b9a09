// RUN: quench-opt %s --quench-cuda-pipeline | FileCheck %s
// RUN: quench-opt %s --quench-cuda-pipeline=chip=sm_90a | FileCheck %s --check-prefix=SM90A
// RUN: quench-opt %s --quench-cuda-pipeline=emulate=1 | FileCheck %s --check-prefix=EMU

// The model reaches the LLVM dialect on the host and PTX on the device: one
// device binary (every kernel in one module) whose PTX targets sm_80; the
// host allocates device buffers, copies the input in and the output out,
// and launches the kernels on one stream through the mgpu* runtime ABI.
// CHECK: llvm.func @f(
// CHECK-NOT: linalg.
// CHECK-NOT: scf.
// CHECK: llvm.call @mgpuStreamCreate
// CHECK: llvm.call @mgpuMemAlloc
// CHECK: llvm.call @mgpuMemcpy
// CHECK: gpu.launch_func <%[[STREAM:.*]] : !llvm.ptr> @[[MOD:.*]]::@f_kernel blocks
// CHECK: gpu.launch_func <%[[STREAM]] : !llvm.ptr> @[[MOD]]::@f_kernel_0 blocks
// CHECK: gpu.launch_func <%[[STREAM]] : !llvm.ptr> @[[MOD]]::@f_kernel_1 blocks
// CHECK: llvm.call @mgpuStreamSynchronize
// CHECK: llvm.call @mgpuMemcpy
// CHECK: llvm.call @mgpuMemFree
// CHECK: gpu.binary @[[MOD]] [#gpu.object<#nvvm.target<O = 3, chip = "sm_80", features = "+ptx80">
// CHECK-SAME: assembly = "
// CHECK-SAME: .target sm_80
// CHECK-SAME: .visible .entry f_kernel(
// CHECK-SAME: ld.global
// CHECK-SAME: st.global
// CHECK-NOT: gpu.binary

// SM90A: #nvvm.target<O = 3, chip = "sm_90a"
// SM90A-SAME: .target sm_90a

// The emulation runs the same mapping on the CPU: no device code, the
// launches are loops on the host.
// EMU-NOT: gpu.binary
// EMU-NOT: mgpu
// EMU: llvm.func @f(
// EMU: llvm.call @_mlir_memref_to_llvm_alloc
func.func @f(%x: tensor<4x8xf32>) -> tensor<4x2xf32> {
  %w = quench.constant dense<[[0.5, 1.0], [1.5, 2.0], [2.5, 3.0], [3.5, 4.0], [4.5, 5.0], [5.5, 6.0], [6.5, 7.0], [7.5, 8.0]]> : tensor<8x2xf32>
  %m = quench.matmul %x, %w : (tensor<4x8xf32>, tensor<8x2xf32>) -> tensor<4x2xf32>
  %s = quench.sigmoid %m : tensor<4x2xf32>
  %y = quench.mul %m, %s : (tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<4x2xf32>
  return %y : tensor<4x2xf32>
}
