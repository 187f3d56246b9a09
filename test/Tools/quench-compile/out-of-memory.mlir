// Out of memory is an error, not a crash (issue #20, point 4): an
// allocation failure in any stage prints one line naming the stage and the
// estimated need, exits with status 1 (no signal, no stack dump) and leaves
// no output and no temporary file behind.
//
// QUENCH_TEST_FAIL_ALLOC_IN_STAGE=STAGE[,after-temporary][,llvm] makes a
// real, impossibly large allocation fail at the start of STAGE (or once a
// temporary output file exists), through operator new or, with `llvm`,
// through llvm::safe_malloc and report_bad_alloc_error.

// RUN: rm -rf %t && mkdir -p %t/tmp

// operator new in the quantize stage.
// RUN: env QUENCH_TEST_FAIL_ALLOC_IN_STAGE=quantize not quench-compile %s -o %t/m --quant=w8a16 2> %t.quantize.err
// RUN: FileCheck %s --check-prefix=QUANT --input-file=%t.quantize.err
// RUN: count 1 < %t.quantize.err
// QUANT: quench-compile: error: out of memory in stage 'quantize' (this stage needs about {{[0-9]+}} MB for a model with 512 B of weights; available when the stage started: {{[0-9.]+ [KMG]?B}}{{( under .*)?}})

// The exit status is 1, not a signal.
// RUN: env QUENCH_TEST_FAIL_ALLOC_IN_STAGE=quantize sh -c 'quench-compile %s -o %t/m --quant=w8a16 2>/dev/null; echo "exit=$?"' | FileCheck %s --check-prefix=STATUS
// STATUS: exit=1

// LLVM's report_bad_alloc_error (safe_malloc) in a codegen stage.
// RUN: env QUENCH_TEST_FAIL_ALLOC_IN_STAGE=codegen,llvm not quench-compile %s -o %t/m 2> %t.codegen.err
// RUN: FileCheck %s --check-prefix=LLVM --input-file=%t.codegen.err --implicit-check-not=LLVM --implicit-check-not=Stack --implicit-check-not=PLEASE
// RUN: count 1 < %t.codegen.err
// LLVM: quench-compile: error: out of memory in stage 'codegen' (this stage needs about

// In the serialization stages.
// RUN: env QUENCH_TEST_FAIL_ALLOC_IN_STAGE=codegen-obj not quench-compile %s -o %t/m --emit=obj 2>&1 | FileCheck %s --check-prefix=OBJ
// OBJ: error: out of memory in stage 'codegen-obj'

// While the output's temporary file exists (--emit=obj writes OUT.o through
// OUT.o.tmp-XXXXXXXX): it is removed.
// RUN: env QUENCH_TEST_FAIL_ALLOC_IN_STAGE=write,after-temporary not quench-compile %s -o %t/m --emit=obj 2>&1 | FileCheck %s --check-prefix=WRITE
// WRITE: error: out of memory in stage 'write'
// RUN: env QUENCH_TEST_FAIL_ALLOC_IN_STAGE=write,after-temporary not quench-compile %s -o %t/m --emit=mlir 2>&1 | FileCheck %s --check-prefix=WRITE

// While linking an executable: the temporary object (in TMPDIR) is removed.
// RUN: env TMPDIR=%t/tmp QUENCH_TEST_FAIL_ALLOC_IN_STAGE=link,after-temporary not quench-compile %s -o %t/m 2>&1 | FileCheck %s --check-prefix=LINK
// LINK: error: out of memory in stage 'link'
// RUN: ls %t/tmp | count 0

// Before the first stage of quench-import, and at import for ONNX input.
// RUN: printf '<\n ir_version: 8,\n opset_import: ["" : 17]\n>\nagraph (float[2, 3] X) => (float[2, 3] Y) {\n Y = Relu(X)\n}\n' > %t.relu.onnxtxt
// RUN: env QUENCH_TEST_FAIL_ALLOC_IN_STAGE=import not quench-compile %t.relu.onnxtxt -o %t/m 2>&1 | FileCheck %s --check-prefix=IMPORT
// IMPORT: quench-compile: error: out of memory in stage 'import' (this stage needs about {{[0-9]+}} MB for a model with {{[0-9]+}} B of weights;
// RUN: env QUENCH_TEST_FAIL_ALLOC_IN_STAGE=import not quench-import %t.relu.onnxtxt -o %t/m.mlir 2>&1 | FileCheck %s --check-prefix=QIMPORT
// QIMPORT: quench-import: error: out of memory in stage 'import'
// RUN: env QUENCH_TEST_FAIL_ALLOC_IN_STAGE=write,after-temporary not quench-import %t.relu.onnxtxt -o %t/m.mlir 2>&1 | FileCheck %s --check-prefix=QWRITE
// QWRITE: quench-import: error: out of memory in stage 'write'

// A real limit: 600 MB of address space fits the compiler (about 340 MB of
// libraries, heap and thread stacks at startup) but not the quantization of
// a 512 MiB weight. The failing allocation is wherever the limit is hit.
// RUN: not sh -c 'ulimit -v 600000 && exec quench-compile %S/Inputs/large-splat-weight.mlir -o %t/big --quant=w8a16' 2> %t.ulimit.err
// RUN: FileCheck %s --check-prefix=ULIMIT --input-file=%t.ulimit.err
// RUN: count 1 < %t.ulimit.err
// ULIMIT: quench-compile: error: out of memory in stage 'quantize' (this stage needs about {{[0-9.]+}} GB for a model with 537 MB of weights; available when the stage started: {{[0-9]+}} MB under the address-space limit (ulimit -v) of 614 MB)
// quench-opt has no stages: the message says what was available.
// RUN: not sh -c 'ulimit -v 600000 && exec quench-opt --quench-quantize-weights %S/Inputs/large-splat-weight.mlir -o %t/big.mlir' 2>&1 | FileCheck %s --check-prefix=OPT
// OPT: quench-opt: error: out of memory (available at startup: {{[0-9]+}} MB under the address-space limit (ulimit -v) of 614 MB)

// Nothing was written, no temporary is left.
// RUN: rmdir %t/tmp
// RUN: ls %t | count 0

func.func @main(%x: tensor<4x16xf32> {quench.name = "x"}) -> (tensor<4x8xf32> {quench.name = "y"}) {
  %w = quench.constant dense<0.5> : tensor<8x16xf32>
  %y = quench.linear %x, %w : (tensor<4x16xf32>, tensor<8x16xf32>) -> tensor<4x8xf32> loc("/l0/MatMul")
  return %y : tensor<4x8xf32>
}
