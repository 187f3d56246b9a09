// Every unsupported op is listed in one error, with node names and domains;
// nothing is written.
// RUN: rm -rf %t && %quench_python %S/Inputs/make_model.py unsupported %t
// RUN: not quench-import %t/model.onnx -o %t/out.mlir 2>&1 | FileCheck %s
// RUN: not test -e %t/out.mlir

// CHECK: quench-import: error: 3 node(s) use operators Quench does not support: 'first_det' (Det), '<unnamed>' (NonZero), 'third' (com.example.Custom)
// CHECK-NOT: error
