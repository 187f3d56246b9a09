//===- OutOfMemory.h - out of memory as an error, not a crash ---*- C++ -*-===//
//
// Every quench tool turns an allocation failure anywhere in the process
// (operator new, LLVM's report_bad_alloc_error, a null malloc or an ENOMEM
// mmap in our own code) into one line on stderr,
//
//   quench-compile: error: out of memory in stage 'quantize' (this stage
//   needs about 2.9 GB for a model with 4.4 GB of weights; available when
//   the stage started: 1.2 GB (address-space limit, ulimit -v, of 4.0 GB))
//
// removes the temporary files registered for removal (FileUtils.h,
// TemporaryFileCleanup), and exits with status 1: no signal, no stack dump.
//
// The handler runs when there may be no memory left, so it allocates
// nothing: the message is formatted ahead of time into a fixed buffer
// whenever what it says changes (the stage, the model's weight bytes), and
// the handler only write(2)s it, unlinks the registered temporaries and
// _exit(1)s. The estimate is a per-stage table (OutOfMemory.cpp,
// kStageMemoryModel; docs/compile.md "Out of memory" describes it).
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_SUPPORT_OUTOFMEMORY_H
#define QUENCH_SUPPORT_OUTOFMEMORY_H

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>
#include <string>

namespace quench {

/// Installs the out-of-memory handlers for the tool `toolName` (the
/// message's prefix): std::set_new_handler and LLVM's bad-alloc handler.
/// Call it at the start of main, after llvm::InitLLVM (which installs
/// LLVM's own new handler, the one that aborts with "LLVM ERROR: out of
/// memory" and a stack dump).
void installOutOfMemoryHandler(llvm::StringRef toolName);

/// Names the stage now running ("import", "quantize", "codegen-obj", ...;
/// empty: none) and reformats the message: the stage's estimated need and
/// the memory available now. PhaseTimer::start calls it, so drivers that
/// time their phases name them for free.
void setCurrentStage(llvm::StringRef stage);

/// What the estimate knows of the model's weights.
struct WeightFootprint {
  /// All weight bytes (named in the message).
  uint64_t total = 0;
  /// Bytes held in memory for the whole compile: weights the model file
  /// carries inline (external data is mapped and streamed).
  uint64_t inMemory = 0;
  /// The largest single weight: a stage holds a few at a time.
  uint64_t largest = 0;
};

/// Sets the model's weights: before import from the input file (its size
/// as total and inMemory), then the importer adds external data as it
/// learns of it (addExternalWeightBytes: total only), and after import the
/// module's constants (their total and largest).
void setModelWeights(const WeightFootprint &weights);
void addExternalWeightBytes(uint64_t bytes);

/// Reports an allocation failure of our own code (a null malloc, an mmap
/// failing with ENOMEM) like every other: the message, the temporaries
/// removed, exit status 1. Does not allocate.
[[noreturn]] void reportOutOfMemory();

/// Test hook (lit tests only): the environment variable
/// QUENCH_TEST_FAIL_ALLOC_IN_STAGE=STAGE[,after-temporary][,llvm] makes the
/// first allocation check point in STAGE fail a real, impossibly large
/// allocation (through operator new, or with `llvm` through
/// llvm::safe_malloc and report_bad_alloc_error). The check points are the
/// start of the stage, or with `after-temporary` the registration of a
/// temporary output file (so that its removal is tested). `point` is
/// "stage" or "temporary".
void checkTestAllocationFailure(llvm::StringRef point);

/// The per-stage memory model: about `base + weights.inMemory +
/// tensorFactor(stage) * weights.largest` bytes of resident memory while
/// `stage` runs (weights stream: a stage holds a few tensors, not the
/// model); std::nullopt when the stage is unknown.
std::optional<uint64_t> estimateStageMemory(llvm::StringRef stage,
                                            const WeightFootprint &weights);

/// The memory this process can still use, from the smallest of
/// MemAvailable (/proc/meminfo), the address-space limit (RLIMIT_AS) less
/// the address space in use, and the cgroup v2 memory.max less
/// memory.current; with the limit that decided it ("address-space limit,
/// ulimit -v, of 4.0 GB"; empty for MemAvailable).
struct AvailableMemory {
  std::optional<uint64_t> bytes;
  std::string limit;
};
AvailableMemory getAvailableMemory();

/// The process's peak resident set (VmHWM of /proc/self/status) in bytes;
/// 0 where unknown.
uint64_t getPeakResidentSet();

/// The message the handler would print now (for tests).
std::string getOutOfMemoryMessage();

/// `bytes` as "2.9 GB", "350 MB", "12 KB" (decimal units).
std::string formatMemorySize(uint64_t bytes);

} // namespace quench

#endif // QUENCH_SUPPORT_OUTOFMEMORY_H
