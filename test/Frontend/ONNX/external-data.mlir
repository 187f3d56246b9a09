// External-data initializers are read relative to the model; any location
// that leaves the model's directory is refused.
// RUN: rm -rf %t && mkdir -p %t

// RUN: %quench_python %S/Inputs/make_model.py external_ok %t/ok
// RUN: quench-import %t/ok/model.onnx | FileCheck %s --check-prefix=OK
// OK: quench.constant dense<{{\[\[}}0.000000e+00, 1.000000e+00, 2.000000e+00, 3.000000e+00], [4.000000e+00

// RUN: %quench_python %S/Inputs/make_model.py external_escape %t/escape
// RUN: not quench-import %t/escape/model.onnx -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=ESCAPE
// ESCAPE: quench-import: error: initializer 'W': external data location '../secret.bin' leaves the model's directory

// RUN: %quench_python %S/Inputs/make_model.py external_absolute %t/abs
// RUN: not quench-import %t/abs/model.onnx -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=ABS
// ABS: quench-import: error: initializer 'W': external data location '/etc/passwd' must be a relative path inside the model's directory

// RUN: %quench_python %S/Inputs/make_model.py external_missing %t/missing
// RUN: not quench-import %t/missing/model.onnx -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=MISSING
// MISSING: quench-import: error: initializer 'W': external data file '{{.*}}nothere.bin' does not exist

// RUN: %quench_python %S/Inputs/make_model.py external_short %t/short
// RUN: not quench-import %t/short/model.onnx -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=SHORT
// SHORT: quench-import: error: initializer 'W': external data range [0, 64) exceeds the 32 bytes of 'weights.bin'

// A symlink inside the directory that points outside it is refused too.
// RUN: mkdir -p %t/link && cp %t/ok/model.onnx %t/link/ && ln -s %t/ok/weights.bin %t/link/weights.bin
// RUN: not quench-import %t/link/model.onnx -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=LINK
// LINK: quench-import: error: initializer 'W': external data location 'weights.bin' resolves outside the model's directory

// RUN: not test -e %t/out.mlir

// Large external initializers stay in the mapped data file (not read at
// load time) yet pass the ONNX checker and shape inference from any working
// directory; small ones (the Reshape shape) are read so that shape inference
// sees their values. W1 (page-aligned offset) and W2 (4 mod 8) are borrowed
// from the mapping, claiming the alignment they have; W3 (2 mod 4,
// misaligned for f32) is copied. Every value is the file's.
// RUN: mkdir -p %t/large %t/cwd
// RUN: %quench_python %S/Inputs/make_model.py external_large %t/large
// RUN: cd %t/cwd && quench-import ../large/model.onnx | FileCheck %s --check-prefix=LARGE
// LARGE: func.func @main(%{{.*}}: tensor<1x128xf32> {quench.name = "X"}) -> (tensor<128x1xf32>
// LARGE-DAG: quench.constant dense_resource<[[W1:initializer__W1_]]> : tensor<128x256xf32>
// LARGE-DAG: quench.constant dense_resource<[[W2:initializer__W2_]]> : tensor<256x128xf32>
// LARGE-DAG: quench.constant dense_resource<[[W3:initializer__W3_]]> : tensor<128x128xf32>
// LARGE-DAG: quench.constant dense<[128, 1]> : tensor<2xi64>
// LARGE: quench.reshape %{{.*}} : tensor<1x128xf32> -> tensor<128x1xf32>
// LARGE-DAG: [[W1]]: "0x08000000000000000000003F0000803F0000C03F
// LARGE-DAG: [[W2]]: "0x040000000000803F000000400000404000008040
// LARGE-DAG: [[W3]]: "0x08000000000000C0000080BF000000000000803F
