//===- CPUTarget.h - host/explicit CPU targets, object emission -*- C++ -*-===//
//
// The CPU side of lib/Target: building an LLVM TargetMachine from the host's
// real CPU features (or an explicit CPU/feature string for portable objects)
// and writing object files in-process, including large read-only weight
// blobs that must not go through per-element LLVM constants.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_TARGET_CPUTARGET_H
#define QUENCH_TARGET_CPUTARGET_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/CodeGen.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <memory>
#include <string>

namespace llvm {
class GlobalVariable;
class Module;
class TargetMachine;
} // namespace llvm

namespace quench {

/// A fully resolved CPU target: what the TargetMachine is built from.
struct CPUTarget {
  std::string triple;
  /// LLVM CPU name (scheduling model and default features).
  std::string cpu;
  /// Comma-separated `+feat`/`-feat` list that overrides the CPU's defaults.
  std::string features;
};

/// Resolves `cpu` ("host", or an LLVM CPU name such as "x86-64-v3" or
/// "znver4") plus `extraFeatures` ("+avx2,-avx512f") for `triple` (empty:
/// the host's).
///
/// For "host" the feature list is the host's real one from CPUID
/// (`sys::getHostCPUFeatures`), not the CPU name's defaults: hypervisors
/// hide features (a "znver4" here has no AVX-512) and code built for the
/// name alone would die with SIGILL. Fails for an unknown triple or CPU name.
llvm::Expected<CPUTarget> resolveCPUTarget(llvm::StringRef cpu = "host",
                                           llvm::StringRef extraFeatures = "",
                                           llvm::StringRef triple = "");

/// The widest vector registers code for `target` should use, in bits: 512
/// with AVX-512F, 256 with AVX, else 128 (SSE, NEON, ...).
unsigned getPreferredVectorBits(const CPUTarget &target);

/// True when `target` has the LLVM subtarget feature `feature` (e.g.
/// "avx2", "avx512vnni"), from its CPU name and feature list.
bool hasCPUFeature(const CPUTarget &target, llvm::StringRef feature);

/// Creates the TargetMachine for `target` (PIC, small code model).
llvm::Expected<std::unique_ptr<llvm::TargetMachine>>
createTargetMachine(const CPUTarget &target,
                    llvm::CodeGenOptLevel optLevel = llvm::CodeGenOptLevel::Aggressive);

/// Sets `module`'s triple and data layout from `tm` and runs LLVM's default
/// per-module optimization pipeline for `optLevel` (0-3) on it, as clang
/// -O<n> does (the vectorizers and unrollers see the target through `tm`).
void optimizeModule(llvm::Module &module, llvm::TargetMachine &tm,
                    unsigned optLevel);

/// Sets `module`'s triple and data layout from `tm` and writes it as an
/// object file to `os`.
llvm::Error emitObjectFile(llvm::Module &module, llvm::TargetMachine &tm,
                           llvm::raw_pwrite_stream &os);

} // namespace quench

#endif // QUENCH_TARGET_CPUTARGET_H
