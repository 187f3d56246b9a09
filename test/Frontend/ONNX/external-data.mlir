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
