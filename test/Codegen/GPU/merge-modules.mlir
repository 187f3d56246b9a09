// RUN: quench-opt %s --quench-gpu-merge-modules | FileCheck %s

// Every kernel moves into the first device module (renamed on a clash) and
// the launches follow.
// CHECK: gpu.module @a_kernel {
// CHECK: gpu.func @k(
// CHECK: gpu.func @k_0(
// CHECK: gpu.func @other(
// CHECK-NOT: gpu.module
// CHECK: gpu.launch_func @a_kernel::@k blocks
// CHECK: gpu.launch_func @a_kernel::@k_0 blocks
// CHECK: gpu.launch_func @a_kernel::@other blocks
module attributes {gpu.container_module} {
  gpu.module @a_kernel {
    gpu.func @k(%m: memref<4xf32>) kernel {
      gpu.return
    }
  }
  gpu.module @b_kernel {
    gpu.func @k(%m: memref<4xf32>) kernel {
      gpu.return
    }
  }
  gpu.module @c_kernel {
    gpu.func @other(%m: memref<4xf32>) kernel {
      gpu.return
    }
  }
  func.func @f(%m: memref<4xf32>) {
    %c1 = arith.constant 1 : index
    gpu.launch_func @a_kernel::@k blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%m : memref<4xf32>)
    gpu.launch_func @b_kernel::@k blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%m : memref<4xf32>)
    gpu.launch_func @c_kernel::@other blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%m : memref<4xf32>)
    return
  }
}
