// Malformed, truncated, empty and missing model files: one precise error,
// nonzero exit, no output file.
// RUN: rm -rf %t && mkdir -p %t

// RUN: not quench-import %t/missing.onnx -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=MISSING
// MISSING: quench-import: error: cannot read '{{.*}}missing.onnx': No such file or directory

// RUN: printf '' > %t/empty.onnx
// RUN: not quench-import %t/empty.onnx -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=EMPTY
// EMPTY: quench-import: error: '{{.*}}empty.onnx' is empty

// A length-delimited field that claims more bytes than the file has.
// RUN: printf '\x08\x07\x3a\xff\x7f\x0a' > %t/truncated.onnx
// RUN: not quench-import %t/truncated.onnx -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=TRUNC
// TRUNC: quench-import: error: '{{.*}}truncated.onnx' is not a valid ONNX model (protobuf parsing failed: the file is truncated or not ONNX)

// RUN: printf '<\n ir_version: 8,\n opset_import: ["" : 17]\n>\nagraph (float[3] X) => (float[3] Y) {\n Y = Relu(X\n}\n' > %t/syntax.onnxtxt
// RUN: not quench-import %t/syntax.onnxtxt -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=SYNTAX
// SYNTAX: quench-import: error: '{{.*}}syntax.onnxtxt' is not valid ONNX textual syntax

// RUN: not test -e %t/out.mlir

// No input at all.
// RUN: not quench-import 2>&1 | FileCheck %s --check-prefix=NOINPUT
// NOINPUT: no input model given

// An output path in a missing directory.
// RUN: not quench-import %S/matmul-add-relu.onnxtxt -o %t/no/such/dir/out.mlir 2>&1 | FileCheck %s --check-prefix=OUTDIR
// OUTDIR: quench-import: error: {{.*}}out.mlir
