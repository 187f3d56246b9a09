//===- CPUTargetBackend.h - the CPU target backend --------------*- C++ -*-===//
//
// `--target=cpu`: native code for the host's CPU (its real features) or an
// explicit one, as an object with the model's C ABI, a static library or a
// standalone executable linked with the Quench runtime.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_TARGET_CPU_CPUTARGETBACKEND_H
#define QUENCH_TARGET_CPU_CPUTARGETBACKEND_H

#include "quench/Target/TargetBackend.h"

#include <optional>
#include <string>

namespace quench {

/// Options of the CPU backend (command line: registerCPUTargetCLOptions).
struct CPUTargetOptions {
  /// "host" (the features this machine really has) or an LLVM CPU name
  /// such as x86-64-v3 (portable objects).
  std::string cpu = "host";
  /// Extra features, e.g. "+avx2,+fma,-avx512f".
  std::string features;
  /// Vector width of the generated code in bits; default: from the CPU
  /// (512 with AVX-512F, 256 with AVX, else 128); 0: scalar loops.
  std::optional<unsigned> vectorBits;
  /// Use the CPU's integer multiply-add instructions for int8 products
  /// with constant weights (chosen from its features); false: generic.
  bool int8Dot = true;
  /// Convert 4-/2-bit codes by table lookup; default: when the vectors are
  /// 512 bits wide and the CPU has AVX-512F.
  std::optional<bool> codeLookup;
  /// Compute quench.attention with the vectorized kernel
  /// (quench-cpu-attention); false: its linalg decomposition.
  bool attentionKernel = true;
  /// Activations of quantized products (4-/8-bit codes) with at least
  /// `prefillRows` rows (prefill): "float" keeps the 16-bit form, "int8"
  /// quantizes them to int8 per row and block (VNNI targets), "auto" does
  /// so for 4-bit codes only (see docs/quantization.md, "Int8 activations
  /// for prefill").
  std::string prefillActivations = "auto";
  unsigned prefillRows = 16;
  /// LLVM optimization level, 0-3.
  unsigned optLevel = 3;
  /// Directory holding libquench_runtime.a (default: ../lib next to the
  /// running program).
  std::string runtimeDir;
  /// C compiler driver that links executables (default: clang-22, else cc,
  /// else gcc).
  std::string linker;
};

/// Creates a configured CPU backend; fails for an unknown CPU name or a bad
/// option with one message.
llvm::Expected<std::unique_ptr<TargetBackend>>
createCPUTargetBackend(const CPUTargetOptions &options);

/// Registers the CPU backend as "cpu" (its factory reads the command-line
/// options when registerCPUTargetCLOptions was called, else the defaults).
void registerCPUTargetBackend();
/// Registers --cpu, --cpu-features, --vector-bits, --int8-dot,
/// --attention-kernel, -O, --runtime-dir and --linker in the target option
/// category.
void registerCPUTargetCLOptions();
/// The CPU options the command line gives (the defaults when
/// registerCPUTargetCLOptions was not called).
CPUTargetOptions getCPUTargetOptionsFromCL();

} // namespace quench

#endif // QUENCH_TARGET_CPU_CPUTARGETBACKEND_H
