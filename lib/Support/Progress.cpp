//===- Progress.cpp - progress lines of long compile stages ---------------===//

#include "quench/Support/Progress.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/raw_ostream.h"

using namespace quench;

StageProgress::StageProgress(llvm::StringRef stage, llvm::StringRef what,
                             int64_t items, double totalWork, bool enabled)
    : stage(stage.str()), what(what.str()), items(items),
      totalWork(totalWork), enabled(enabled && items > 0),
      tty(llvm::sys::Process::StandardErrIsDisplayed()),
      start(std::chrono::steady_clock::now()) {}

double StageProgress::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                       start)
      .count();
}

void StageProgress::step(llvm::StringRef name, double work) {
  ++done;
  workDone += work;
  if (!enabled)
    return;
  double now = elapsed();
  bool last = done >= items;
  if (!(now - lastReport >= 1.0 || (last && printed)))
    return;
  lastReport = now;
  printed = true;
  llvm::raw_ostream &os = llvm::errs();
  os << (tty ? "\r" : "") << stage << ": " << what << " " << done << "/"
     << items << " " << name << " (" << llvm::format("%.1f s", now);
  double fraction = totalWork > 0 ? workDone / totalWork
                                  : static_cast<double>(done) / items;
  if (!last && fraction > 0)
    os << ", ETA " << llvm::format("%.0f s", now * (1 - fraction) / fraction);
  os << ")" << (tty ? "\x1b[K" : "") << (tty && !last ? "" : "\n");
  os.flush();
}
