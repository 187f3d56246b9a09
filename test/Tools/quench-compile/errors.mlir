// Bad invocations and inputs: one clear message, nonzero exit, no output.

// RUN: rm -rf %t && mkdir -p %t
// RUN: not quench-compile %s -o %t/x 2>&1 | FileCheck %s --check-prefix=SEVERAL
// SEVERAL: error: the module has several public functions: @good @scalar @unranked @wide; choose one with --entry
// RUN: not quench-compile %s --entry=scalar -o %t/x 2>&1 | FileCheck %s --check-prefix=SCALAR
// SCALAR: error: input 'input_0' has type i32: compiled models take and return ranked tensors
// RUN: not quench-compile %s --entry=unranked -o %t/x 2>&1 | FileCheck %s --check-prefix=UNRANKED
// UNRANKED: error: input 'u' has type tensor<*xf32>: compiled models take and return ranked tensors
// RUN: not quench-compile %s --entry=wide -o %t/x 2>&1 | FileCheck %s --check-prefix=WIDE
// WIDE: error: output 'output_0' has type tensor<2xi4>, whose element type has no C ABI dtype
// RUN: not quench-compile %s --entry=nothere -o %t/x 2>&1 | FileCheck %s --check-prefix=NOENTRY
// NOENTRY: error: the module has no function 'nothere' with a body
// RUN: not quench-compile %s --entry=good -o %t/x --cpu=nonsense 2>&1 | FileCheck %s --check-prefix=CPU
// CPU: error: unknown CPU 'nonsense' for target
// RUN: not quench-compile %s --entry=good -o %t/x --cpu-features=avx2 2>&1 | FileCheck %s --check-prefix=FEATURE
// FEATURE: error: malformed CPU feature 'avx2' (expected +name or -name)
// RUN: not quench-compile %s --entry=good -o %t/x --name=int 2>&1 | FileCheck %s --check-prefix=NAME
// NAME: error: invalid model name 'int': use --name with a C identifier
// RUN: not quench-compile %s --entry=good -o %t/x --stop-after-stage=nope 2>&1 | FileCheck %s --check-prefix=STAGE
// STAGE: error: unknown stage 'nope'; stages: prepare kv-cache attention fuse-linears to-linalg codegen bufferize to-llvm
// RUN: not quench-compile %s --entry=good -o - --emit=obj 2>&1 | FileCheck %s --check-prefix=STDOUT
// STDOUT: error: -o - (stdout) is only for --emit=mlir, llvm and ptx
// RUN: not quench-compile %s --entry=good 2>&1 | FileCheck %s --check-prefix=NOOUT
// NOOUT: error: no output given: use -o OUT
// RUN: not quench-compile %t/absent.onnx -o %t/x 2>&1 | FileCheck %s --check-prefix=NOFILE
// NOFILE: error: {{.*}}absent.onnx
// RUN: not quench-compile %s --entry=good -o %t/no/such/dir/x --emit=obj 2>&1 | FileCheck %s --check-prefix=NODIR
// NODIR: error: {{.*}}no/such/dir
// RUN: not quench-compile %s --entry=good -o %t/x --target=tpu 2>&1 | FileCheck %s --check-prefix=TARGET
// TARGET: error: unknown --target 'tpu': registered targets: cpu, cuda
// Nothing was written.
// RUN: ls %t | count 0

func.func @good(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
func.func @scalar(%x: i32) -> tensor<4xf32> {
  %c = quench.constant dense<1.0> : tensor<4xf32>
  return %c : tensor<4xf32>
}
func.func @unranked(%u: tensor<*xf32> {quench.name = "u"}) -> tensor<*xf32> {
  return %u : tensor<*xf32>
}
func.func @wide(%x: tensor<2xf32>) -> tensor<2xi4> {
  %c = quench.constant dense<1> : tensor<2xi4>
  return %c : tensor<2xi4>
}
