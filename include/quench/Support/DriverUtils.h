//===- DriverUtils.h - what the command-line tools share --------*- C++ -*-===//
//
// Diagnostics printed as users read them and per-phase timing, for the
// drivers in tools/.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_SUPPORT_DRIVERUTILS_H
#define QUENCH_SUPPORT_DRIVERUTILS_H

#include "llvm/ADT/StringRef.h"

#include <chrono>
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

/// Times the phases of a compile: with `enabled`, each phase's time goes to
/// stderr when the next one starts, and finish() adds the total and the
/// peak memory.
class PhaseTimer {
public:
  explicit PhaseTimer(bool enabled) : enabled(enabled) {}
  void start(llvm::StringRef phase);
  void stop();
  void finish();

private:
  bool enabled;
  std::string current;
  std::chrono::steady_clock::time_point begin;
  double total = 0;
};

} // namespace quench

#endif // QUENCH_SUPPORT_DRIVERUTILS_H
