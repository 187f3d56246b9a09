// RUN: rm -rf %t && %quench_python %S/Inputs/make_model.py bad_dtype %t
// RUN: not quench-import %t/model.onnx -o %t/out.mlir 2>&1 | FileCheck %s
// RUN: not test -e %t/out.mlir
// CHECK: quench-import: error: graph input 'X' has unsupported element type COMPLEX64
