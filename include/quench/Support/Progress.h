//===- Progress.h - progress lines of long compile stages -------*- C++ -*-===//
//
// The one way long compile stages (weight quantization, AWQ's scale search,
// pruning) report progress on stderr: "STAGE: WHAT i/N NAME (t s, ETA e s)"
// at most once a second, from the first second on, so short compiles (every
// test model) print nothing; on a terminal the line is rewritten in place.
// The ETA divides the elapsed time by the fraction of the stage's estimated
// work done (the caller's cost model, e.g. K^2 (K + N) for a GPTQ layer).
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_SUPPORT_PROGRESS_H
#define QUENCH_SUPPORT_PROGRESS_H

#include "llvm/ADT/StringRef.h"

#include <chrono>
#include <cstdint>
#include <string>

namespace quench {

class StageProgress {
public:
  /// A stage of `items` items (`what`: "layer", "group") whose estimated
  /// work adds up to `totalWork`; prints nothing when `enabled` is false.
  StageProgress(llvm::StringRef stage, llvm::StringRef what, int64_t items,
                double totalWork, bool enabled);

  /// One more item done (`name`, costing `work` of the estimate). Prints a
  /// line when a second has passed since the last one (or since the start),
  /// and for the last item when anything was printed before.
  void step(llvm::StringRef name, double work);

  /// Seconds since construction.
  double elapsed() const;

  /// Whether a progress line has been printed.
  bool printedAny() const { return printed; }

private:
  std::string stage, what;
  int64_t items, done = 0;
  double totalWork, workDone = 0, lastReport = 0;
  bool enabled, tty, printed = false;
  std::chrono::steady_clock::time_point start;
};

} // namespace quench

#endif // QUENCH_SUPPORT_PROGRESS_H
