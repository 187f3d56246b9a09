// Weights never become LLVM constants (docs/scaling.md): quench-compile
// takes every constant of 4 KB or more out of the lowered module into one
// weight image, streamed into the artifact. Objects and libraries hold the
// image in the section .lrodata.quench_weights; executables keep it in
// .lbss (no bytes) and carry the bytes appended to the file, which the
// runtime maps at load time; a truncated or stripped executable says so.
// (quench.linear computes x·Wᵀ.)

// RUN: rm -rf %t && mkdir -p %t
// RUN: %quench_python %S/Inputs/weights_model.py %t

// RUN: quench-compile %t/model.mlir -o - --emit=llvm --name=wm | FileCheck %s --check-prefix=LLVM
// LLVM: @__quench_weight_image = external constant [16384 x i8], section ".lrodata.quench_weights", code_model "large", align 4096
// LLVM: @wm_model = constant { i32, i32, i32, i32, ptr, ptr, ptr, ptr, ptr, i64, ptr, ptr, i64, ptr, i64 } { i32 5, i32 1, i32 1, i32 1, ptr @wm_model_name, ptr @wm_inputs, ptr @wm_outputs, ptr @wm_entry, ptr @__quench_weight_image, i64 16384, ptr null, ptr null, i64 0, ptr @wm_buffer_sizes, i64 1 }
// LLVM-NOT: [64 x float]

// RUN: quench-compile %t/model.mlir -o %t/wm.o --emit=obj --name=wm
// RUN: llvm-readelf -S %t/wm.o | FileCheck %s --check-prefix=OBJ
// OBJ: .lrodata.quench_weights PROGBITS {{[0-9a-f]+}} {{[0-9a-f]+}} 004000
// RUN: llvm-objcopy --dump-section=.lrodata.quench_weights=%t/image.bin %t/wm.o
// RUN: %quench_python %S/Inputs/weights_model.py %t --check-image %t/image.bin

// RUN: quench-compile %t/model.mlir -o %t/libwm.a --emit=lib --name=wm
// RUN: llvm-ar x --output=%t %t/libwm.a wm.o
// RUN: llvm-objcopy --dump-section=.lrodata.quench_weights=%t/image-lib.bin %t/wm.o
// RUN: cmp %t/image.bin %t/image-lib.bin

// RUN: quench-compile %t/model.mlir -o %t/wm-exe --name=wm
// RUN: llvm-readelf -S %t/wm-exe | FileCheck %s --check-prefix=EXE
// EXE: .lbss NOBITS {{[0-9a-f]+}} {{[0-9a-f]+}} 004000
// RUN: %t/wm-exe --input x=%t/x.npy --output-dir %t
// RUN: %quench_python %S/Inputs/weights_model.py %t --check-output %t/y.npy

// RUN: head -c -32 %t/wm-exe > %t/wm-cut && chmod +x %t/wm-cut
// RUN: not %t/wm-cut --input x=%t/x.npy 2>&1 | FileCheck %s --check-prefix=CUT
// CUT: error: model 'wm': the executable has no weights appended (was it stripped or truncated? compile it again with quench-compile --emit=exe)
// RUN: head -c -4096 %t/wm-exe > %t/wm-short && tail -c 32 %t/wm-exe >> %t/wm-short && chmod +x %t/wm-short
// RUN: not %t/wm-short --input x=%t/x.npy 2>&1 | FileCheck %s --check-prefix=SHORT
// SHORT: error: model 'wm': the weights appended to the executable are damaged

// No temporary is left behind.
// RUN: ls %t | FileCheck %s --check-prefix=FILES
// FILES-NOT: tmp
