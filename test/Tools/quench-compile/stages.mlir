// The compile driver runs the registered CPU pipeline in named stages that
// can be listed, stopped after and dumped, and wraps the model in its C ABI.

// RUN: quench-compile --list-stages | FileCheck %s --check-prefix=STAGES
// STAGES: prepare
// STAGES-NEXT: kv-cache
// STAGES-NEXT: attention
// STAGES-NEXT: fuse-linears
// STAGES-NEXT: to-linalg
// STAGES-NEXT: codegen
// STAGES-NEXT: bufferize
// STAGES-NEXT: to-llvm
// STAGES-NEXT: llvm
// STAGES-NEXT: codegen-obj

// RUN: quench-compile --list-stages --rotate=hadamard | FileCheck %s --check-prefix=ROTATE
// ROTATE: prepare
// ROTATE-NEXT: rotate
// ROTATE-NEXT: kv-cache

// RUN: quench-compile %s -o - --stop-after-stage=to-linalg | FileCheck %s --check-prefix=LINALG
// The entry is renamed after the model (here: from the input's name) and
// asks for MLIR's C interface; quench ops are gone.
// LINALG: func.func @stages_graph(
// LINALG-SAME: llvm.emit_c_interface
// LINALG: linalg.generic
// LINALG-NOT: quench.

// RUN: quench-compile %s -o - --emit=llvm --name=tiny --cpu=x86-64-v3 | FileCheck %s --check-prefix=LLVM
// Only the descriptor and the run function are exported; the descriptor
// points at the input/output tables and the internal entry.
// LLVM-DAG: @tiny_model = constant { i32, i32, i32, i32, ptr, ptr, ptr, ptr, ptr, i64, ptr, ptr, i64, ptr, i64 } { i32 5, i32 1, i32 1, i32 0, ptr @tiny_model_name, ptr @tiny_inputs, ptr @tiny_outputs, ptr @tiny_entry, ptr null, i64 0, ptr null, ptr null, i64 0, ptr null, i64 0 }
// LLVM-DAG: @tiny_inputs = private constant [1 x { ptr, i32, i32, ptr }] [{ ptr, i32, i32, ptr } { ptr @tiny_inputs_name0, i32 1, i32 2, ptr @tiny_inputs_shape0 }]
// LLVM-DAG: @tiny_inputs_shape0 = private constant [2 x i64] [i64 -1, i64 8]
// LLVM-DAG: @tiny_inputs_name0 = private {{.*}}c"x\00"
// LLVM-DAG: @tiny_outputs_name0 = private {{.*}}c"y\00"
// LLVM-DAG: define i32 @tiny_run(ptr {{.*}}, i64 {{.*}}, ptr {{.*}}, i64 {{.*}}, ptr {{.*}}, ptr {{.*}})
// LLVM-DAG: define internal void @tiny_entry(ptr
// LLVM-NOT: define {{.*}}@main(

// RUN: rm -rf %t && mkdir -p %t
// RUN: quench-compile %s -o %t/m --emit=obj --dump-stages=%t/dump
// RUN: ls %t %t/dump | FileCheck %s --check-prefix=DUMP
// DUMP: m.h
// DUMP: m.o
// DUMP: 00-input.mlir
// DUMP-NEXT: 01-prepare.mlir
// DUMP-NEXT: 02-kv-cache.mlir
// DUMP-NEXT: 03-attention.mlir
// DUMP-NEXT: 04-fuse-linears.mlir
// DUMP-NEXT: 05-to-linalg.mlir
// DUMP-NEXT: 06-codegen.mlir
// DUMP-NEXT: 07-bufferize.mlir
// DUMP-NEXT: 08-to-llvm.mlir
// DUMP-NEXT: 09-llvm.ll
// DUMP-NEXT: 10-llvm-opt.ll

// RUN: FileCheck %s --check-prefix=HEADER < %t/m.h
// HEADER: [0] x  f32[?, 8]
// HEADER: [0] y  f32[?, 4]
// HEADER: #define M_NUM_INPUTS 1
// HEADER: #define M_NUM_OUTPUTS 1
// HEADER: extern const quench_model m_model;
// HEADER: quench_status m_run(const quench_tensor *inputs, size_t num_inputs,

func.func @main(%x: tensor<?x8xf32> {quench.name = "x"}) -> (tensor<?x4xf32> {quench.name = "y"}) {
  %w = quench.constant dense<0.25> : tensor<8x4xf32>
  %0 = quench.matmul %x, %w : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  return %0 : tensor<?x4xf32>
}
