// --emit=lib and --emit=exe outputs; the executable's command line.

// RUN: rm -rf %t && mkdir -p %t
// RUN: quench-compile %s -o %t/relu --emit=lib
// RUN: ls %t | FileCheck %s --check-prefix=LIB
// LIB: librelu.a
// LIB-NEXT: relu.h
// RUN: llvm-nm %t/librelu.a | FileCheck %s --check-prefix=NM
// NM: {{[DR]}} relu_model
// NM: T relu_run
// NM-NOT: T main

// RUN: quench-compile %s -o %t/relu-exe --name relu
// RUN: %t/relu-exe --help | FileCheck %s --check-prefix=HELP
// HELP: usage: {{.*}}relu-exe --input NAME=FILE.npy
// HELP: input  x{{ +}}f32[2, 3]
// HELP: output out:0{{ +}}f32[2, 3]

// RUN: not %t/relu-exe 2>&1 | FileCheck %s --check-prefix=MISSING
// MISSING: error: missing input: x (give --input NAME=FILE.npy; see --help)
// RUN: not %t/relu-exe --input y=a.npy 2>&1 | FileCheck %s --check-prefix=UNKNOWN
// UNKNOWN: error: the model has no input 'y'; inputs: 'x'
// RUN: not %t/relu-exe --input x=%t/absent.npy 2>&1 | FileCheck %s --check-prefix=NOFILE
// NOFILE: error: {{.*}}absent.npy
// RUN: not %t/relu-exe --frobnicate 2>&1 | FileCheck %s --check-prefix=BADARG
// BADARG: error: unknown argument '--frobnicate' (see --help)
// RUN: printf 'not a numpy file' > %t/bad.npy
// RUN: not %t/relu-exe --input x=%t/bad.npy 2>&1 | FileCheck %s --check-prefix=MALFORMED
// MALFORMED: error: {{.*}}bad.npy
// RUN: not %t/relu-exe --input x=%t/bad.npy --output-dir %t/nodir 2>&1 | FileCheck %s --check-prefix=NODIR
// NODIR: error: output directory '{{.*}}nodir' does not exist or is not a directory
// RUN: not %t/relu-exe --input x=%t/bad.npy --bench 0 2>&1 | FileCheck %s --check-prefix=BENCH
// BENCH: error: --bench expects a run count in 1..1000000, got '0'

func.func @main(%x: tensor<2x3xf32> {quench.name = "x"}) -> (tensor<2x3xf32> {quench.name = "out:0"}) {
  %0 = quench.relu %x : tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}
