//===- DriverUtils.cpp - what the command-line tools share ----------------===//

#include "quench/Support/DriverUtils.h"

#include "quench/Support/FileUtils.h"
#include "quench/Support/OutOfMemory.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Location.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

#include <fcntl.h>
#include <algorithm>
#include <sys/resource.h>
#include <unistd.h>

using namespace llvm;

std::string quench::getUserLocationString(mlir::Location loc) {
  if (auto fl = dyn_cast<mlir::FileLineColLoc>(loc)) {
    if (fl.getLine() == 0)
      return fl.getFilename().str();
    return (fl.getFilename().getValue() + ":" + Twine(fl.getLine()) + ":" +
            Twine(fl.getColumn()))
        .str();
  }
  if (auto nl = dyn_cast<mlir::NameLoc>(loc)) {
    std::string inner = getUserLocationString(nl.getChildLoc());
    return "'" + nl.getName().str() + "'" +
           (inner.empty() ? "" : " (" + inner + ")");
  }
  if (auto fused = dyn_cast<mlir::FusedLoc>(loc)) {
    std::string out;
    for (mlir::Location l : fused.getLocations()) {
      std::string part = getUserLocationString(l);
      if (!part.empty())
        out += (out.empty() ? "" : ", ") + part;
    }
    return out;
  }
  if (auto cs = dyn_cast<mlir::CallSiteLoc>(loc))
    return getUserLocationString(cs.getCallee());
  return "";
}

void quench::installDiagnosticPrinter(mlir::MLIRContext &context,
                                      StringRef toolName) {
  context.printOpOnDiagnostic(false);
  std::string tool = toolName.str();
  context.getDiagEngine().registerHandler([tool](mlir::Diagnostic &diag) {
    auto &os = diag.getSeverity() == mlir::DiagnosticSeverity::Error
                   ? WithColor::error(errs(), tool)
               : diag.getSeverity() == mlir::DiagnosticSeverity::Warning
                   ? WithColor::warning(errs(), tool)
                   : WithColor::note(errs(), tool);
    std::string loc = getUserLocationString(diag.getLocation());
    if (!loc.empty())
      os << loc << ": ";
    os << diag.str() << "\n";
    for (const mlir::Diagnostic &note : diag.getNotes())
      WithColor::note(errs(), tool) << note.str() << "\n";
    return mlir::success();
  });
}

std::string quench::StageDumper::dump(
    StringRef name, function_ref<void(raw_ostream &)> print) {
  if (dir.empty())
    return "";
  SmallString<256> path(dir);
  char prefix[16];
  snprintf(prefix, sizeof prefix, "%02u-", index++);
  sys::path::append(path, prefix + name.str());
  return writeFileAtomically(path, [&](raw_ostream &os) {
    print(os);
    return true;
  });
}

/// Resets the process's peak resident set (VmHWM) to its current size
/// (Linux >= 4.0), so that the next reading is the peak of one phase.
static bool resetPeakResidentSet() {
  int fd = ::open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  bool ok = ::write(fd, "5", 1) == 1;
  ::close(fd);
  return ok;
}

void quench::PhaseTimer::start(StringRef phase) {
  stop();
  current = phase.str();
  if (enabled)
    resetPeakResidentSet();
  begin = std::chrono::steady_clock::now();
  setCurrentStage(phase);
}

void quench::PhaseTimer::stop() {
  if (current.empty())
    return;
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                           begin)
                 .count();
  total += s;
  if (enabled) {
    uint64_t peak = getPeakResidentSet();
    maxPhasePeak = std::max(maxPhasePeak, peak);
    errs() << format("time: %-22s %8.3f s %8.0f MB peak\n", current.c_str(), s,
                     peak / 1048576.0);
  }
  current.clear();
}

uint64_t quench::PhaseTimer::peakResidentSet() const {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  // Resetting VmHWM per phase lowers what getrusage reports for the
  // process: the phases' largest peak is the true one.
  return std::max({static_cast<uint64_t>(ru.ru_maxrss) * 1024, maxPhasePeak,
                   getPeakResidentSet()});
}

void quench::PhaseTimer::finish() {
  stop();
  if (!enabled)
    return;
  errs() << format("time: %-22s %8.3f s\n", "total", total)
         << format("peak memory: %.1f MB\n", peakResidentSet() / 1048576.0);
}
