//===- DriverUtils.h - what the command-line tools share --------*- C++ -*-===//
//
// Diagnostics printed as users read them and per-phase timing, for the
// drivers in tools/.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_SUPPORT_DRIVERUTILS_H
#define QUENCH_SUPPORT_DRIVERUTILS_H

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cstdint>
#include <string>

namespace mlir {
class Location;
class MLIRContext;
} // namespace mlir

namespace quench {

/// A location as users read it: `file:line:col` for source files, the
/// node name for imported ONNX nodes ('/blocks.0/Mul' (model.onnx)), empty
/// when unknown.
std::string getUserLocationString(mlir::Location loc);

/// Prints every diagnostic of `context` to stderr as
/// "TOOL: error: LOCATION: message" (warning, note likewise; remarks print
/// as notes), followed by its notes; the op is not printed.
void installDiagnosticPrinter(mlir::MLIRContext &context,
                              llvm::StringRef toolName);

/// Writes the IR between stages (quench-compile --dump-stages): each dump
/// goes to DIR/NN-NAME, NN counting up from 00; a disabled dumper (empty
/// DIR) writes nothing.
class StageDumper {
public:
  explicit StageDumper(llvm::StringRef dir) : dir(dir.str()) {}
  /// Writes `print`'s output as the next dump, atomically. Returns an
  /// error message, or "" on success.
  std::string dump(llvm::StringRef name,
                   llvm::function_ref<void(llvm::raw_ostream &)> print);

private:
  std::string dir;
  unsigned index = 0;
};

/// Times the phases of a compile: with `enabled`, each phase's time and
/// peak resident memory go to stderr when the next one starts, and finish()
/// adds the total and the process's peak memory. Starting a phase also
/// names it as the current stage of out-of-memory messages
/// (OutOfMemory.h), enabled or not.
class PhaseTimer {
public:
  explicit PhaseTimer(bool enabled) : enabled(enabled) {}
  void start(llvm::StringRef phase);
  void stop();
  void finish();
  /// The process's peak resident set so far, in bytes: the kernel's, or
  /// the largest phase's when phases reset the kernel's mark.
  uint64_t peakResidentSet() const;

private:
  bool enabled;
  std::string current;
  std::chrono::steady_clock::time_point begin;
  double total = 0;
  /// The largest per-phase peak resident set, in bytes.
  uint64_t maxPhasePeak = 0;
};

} // namespace quench

#endif // QUENCH_SUPPORT_DRIVERUTILS_H
