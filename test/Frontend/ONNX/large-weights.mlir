// Large initializers become dense_resource blobs (bytes, not per-element
// text); --elide-weights prints the IR without them.
// RUN: rm -rf %t && %quench_python %S/Inputs/make_model.py large_weight %t
// RUN: quench-import %t/model.onnx | FileCheck %s
// RUN: quench-import %t/model.onnx | quench-opt | FileCheck %s
// RUN: quench-import %t/model.onnx --elide-weights | FileCheck %s --check-prefix=ELIDED

// CHECK: %[[W:.*]] = quench.constant dense_resource<[[BLOB:.*]]> : tensor<64x32xf32>
// CHECK: quench.matmul %arg0, %[[W]]
// CHECK: dialect_resources: {
// CHECK-NEXT: builtin: {
// CHECK-NEXT: [[BLOB]]: "0x{{[0-9A-F]+}}

// ELIDED: quench.constant dense_resource<{{.*}}> : tensor<64x32xf32>
// ELIDED-NOT: "0x
