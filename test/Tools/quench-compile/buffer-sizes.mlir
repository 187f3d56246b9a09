// The model descriptor's buffer size table (ABI version 5): one entry per
// allocation with a static size, as the generated code asks the runtime for
// it (bytes plus the 64-byte alignment of MLIR's memref lowering); the
// buffer with a run-time size is left out. quench_model_load warms the
// runtime's buffer cache with it (docs/runtime.md, "Warm buffers").

// RUN: quench-compile %s -o - --emit=llvm --name m | FileCheck %s
// CHECK: @m_buffer_sizes = private constant [2 x i64] [i64 88, i64 192]
// CHECK: @m_model = constant {{.*}} { i32 5, i32 3, i32 3,
// CHECK-SAME: ptr @m_buffer_sizes, i64 2 }
// CHECK-DAG: call ptr @_mlir_memref_to_llvm_alloc(i64 88)
// CHECK-DAG: call ptr @_mlir_memref_to_llvm_alloc(i64 192)
// CHECK-DAG: call ptr @_mlir_memref_to_llvm_alloc(i64 %{{.*}})

func.func @main(%x: tensor<2x3xf32> {quench.name = "x"},
                %y: tensor<?x3xf32> {quench.name = "y"},
                %z: tensor<4x8xf32> {quench.name = "z"})
    -> (tensor<2x3xf32> {quench.name = "out"},
        tensor<?x3xf32> {quench.name = "dynamic"},
        tensor<4x8xf32> {quench.name = "out2"}) {
  %0 = quench.relu %x : tensor<2x3xf32>
  %1 = quench.relu %y : tensor<?x3xf32>
  %2 = quench.relu %z : tensor<4x8xf32>
  return %0, %1, %2 : tensor<2x3xf32>, tensor<?x3xf32>, tensor<4x8xf32>
}
