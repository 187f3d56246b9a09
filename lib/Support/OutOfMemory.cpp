//===- OutOfMemory.cpp - out of memory as an error, not a crash -----------===//
//
// The handlers of include/quench/Support/OutOfMemory.h. Everything that
// needs memory (reading /proc and the limits, formatting numbers) happens
// in setCurrentStage and setModelWeights; the handler itself touches
// only static storage and async-signal-safe calls (write, unlink via
// llvm::sys::RunInterruptHandlers, _exit).
//
//===----------------------------------------------------------------------===//

#include "quench/Support/OutOfMemory.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/ErrorHandling.h"
#include "llvm/Support/MemAlloc.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Signals.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <sys/resource.h>
#include <unistd.h>

using namespace llvm;

//===----------------------------------------------------------------------===//
// The memory model
//===----------------------------------------------------------------------===//

namespace {
/// Resident memory while a stage runs: about
///   kBaseBytes + heap weights + tensorFactor * largest weight,
/// because weights stream (docs/scaling.md): external data is mapped and
/// released behind its readers, derived weights live in the weight arena,
/// and a stage holds a few tensors at a time (a source and its transposed
/// or quantized form), not the model. Heap weights are those a model file
/// carries inline (they stay in memory for the whole compile). Measured
/// with `quench-compile --time` (each phase's own peak) on LLaMA-shaped
/// models of 1.1B parameters (fp32, largest weight 262 MB) at none and
/// w4a16 and 6.7B parameters (f16, largest 262 MB) at w4a16, --emit=exe:
/// the largest peak, less the base, over the largest weight, rounded up
/// (docs/compile.md, "Out of memory", has the numbers).
struct StageMemory {
  const char *stage;
  double tensorFactor;
};
const StageMemory kStageMemoryModel[] = {
    {"import", 0.0},
    {"prepare", 2.0},
    // Calibration runs the model segment by segment (--calib-segment-mb,
    // 512 MB by default: about two of the largest weights) with one
    // segment's statistics; not measured at scale.
    {"calibrate", 8.0},
    {"quantize", 3.0},
    {"to-linalg", 1.0},
    {"codegen", 2.0},
    {"bufferize", 1.0},
    {"to-llvm", 1.5},
    {"translate", 1.5},
    {"llvm-opt", 1.5},
    {"codegen-obj", 1.5},
    {"write", 1.5},
    {"link", 1.5},
};
/// Stages not in the table (another target's): the largest factor above.
constexpr double kUnknownStageFactor = 8.0;
/// The compiler itself (libMLIR, contexts, the pass pipelines) with a
/// model of a few kilobytes: 120 MiB measured.
constexpr uint64_t kBaseBytes = 130'000'000;
} // namespace

std::optional<uint64_t>
quench::estimateStageMemory(StringRef stage, const WeightFootprint &weights) {
  if (stage.empty())
    return std::nullopt;
  double factor = kUnknownStageFactor;
  for (const StageMemory &s : kStageMemoryModel)
    if (stage == s.stage)
      factor = s.tensorFactor;
  return kBaseBytes + weights.inMemory +
         (uint64_t)(factor * (double)weights.largest);
}

std::string quench::formatMemorySize(uint64_t bytes) {
  char buf[32];
  if (bytes >= 1'000'000'000)
    snprintf(buf, sizeof buf, "%.1f GB", bytes / 1e9);
  else if (bytes >= 1'000'000)
    snprintf(buf, sizeof buf, "%.0f MB", bytes / 1e6);
  else if (bytes >= 1'000)
    snprintf(buf, sizeof buf, "%.0f KB", bytes / 1e3);
  else
    snprintf(buf, sizeof buf, "%llu B", (unsigned long long)bytes);
  return buf;
}

//===----------------------------------------------------------------------===//
// Available memory
//===----------------------------------------------------------------------===//

/// The value of `key` ("MemAvailable:") in a /proc file of "key: N kB"
/// lines, in bytes.
static std::optional<uint64_t> readProcKB(const char *path, StringRef key) {
  auto buf = MemoryBuffer::getFileAsStream(path);
  if (!buf)
    return std::nullopt;
  StringRef text = (*buf)->getBuffer();
  size_t at = text.find(key);
  if (at == StringRef::npos)
    return std::nullopt;
  StringRef rest = text.drop_front(at + key.size()).ltrim();
  uint64_t kb;
  if (rest.take_while([](char c) { return c >= '0' && c <= '9'; })
          .getAsInteger(10, kb))
    return std::nullopt;
  return kb * 1024;
}

uint64_t quench::getPeakResidentSet() {
  return readProcKB("/proc/self/status", "VmHWM:").value_or(0);
}

/// A cgroup v2 file holding one number or "max".
static std::optional<uint64_t> readCgroupValue(const std::string &path) {
  auto buf = MemoryBuffer::getFileAsStream(path);
  if (!buf)
    return std::nullopt;
  uint64_t v;
  if ((*buf)->getBuffer().trim().getAsInteger(10, v))
    return std::nullopt;
  return v;
}

quench::AvailableMemory quench::getAvailableMemory() {
  AvailableMemory best;
  auto consider = [&](uint64_t bytes, std::string limit) {
    if (!best.bytes || bytes < *best.bytes) {
      best.bytes = bytes;
      best.limit = std::move(limit);
    }
  };
  if (auto avail = readProcKB("/proc/meminfo", "MemAvailable:"))
    consider(*avail, "");

  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    uint64_t used = readProcKB("/proc/self/status", "VmSize:").value_or(0);
    uint64_t limit = (uint64_t)rl.rlim_cur;
    consider(limit > used ? limit - used : 0,
             "the address-space limit (ulimit -v) of " +
                 formatMemorySize(limit));
  }

  // cgroup v2: "0::/PATH"; every ancestor's memory.max applies too.
  if (auto buf = MemoryBuffer::getFileAsStream("/proc/self/cgroup")) {
    SmallVector<StringRef> lines;
    (*buf)->getBuffer().split(lines, '\n');
    for (StringRef line : lines) {
      if (!line.consume_front("0::"))
        continue;
      std::string dir = line.trim().str();
      while (true) {
        std::string base = "/sys/fs/cgroup" + (dir == "/" ? "" : dir);
        auto max = readCgroupValue(base + "/memory.max");
        auto current = readCgroupValue(base + "/memory.current");
        if (max && current)
          consider(*max > *current ? *max - *current : 0,
                   "the cgroup memory limit (memory.max) of " +
                       formatMemorySize(*max));
        if (dir.empty() || dir == "/")
          break;
        size_t slash = dir.rfind('/');
        dir = slash == 0 || slash == std::string::npos ? "/"
                                                       : dir.substr(0, slash);
      }
    }
  }
  return best;
}

//===----------------------------------------------------------------------===//
// The preformatted message and the handlers
//===----------------------------------------------------------------------===//

namespace {
/// One preformatted message. Two of them alternate so that the handler,
/// which may run on any thread, always reads a complete one.
struct Message {
  char text[1024];
  size_t length;
};
Message messages[2];
std::atomic<Message *> current{nullptr};

/// What the message says (guarded by `stateMutex`; never read by the
/// handler).
std::mutex stateMutex;
struct State {
  std::string tool = "quench";
  std::string stage;
  std::optional<quench::WeightFootprint> weights;
  quench::AvailableMemory available;
} state;

/// QUENCH_TEST_FAIL_ALLOC_IN_STAGE, parsed at installation.
struct TestHook {
  std::string stage;
  bool afterTemporary = false;
  bool llvmPath = false;
} testHook;
} // namespace

static std::string formatMessage(const State &s) {
  std::string msg = s.tool + ": error: out of memory";
  if (!s.stage.empty())
    msg += " in stage '" + s.stage + "'";
  std::string details;
  if (s.weights)
    if (auto need = quench::estimateStageMemory(s.stage, *s.weights))
      details = "this stage needs about " + quench::formatMemorySize(*need) +
                (s.weights->total
                     ? " for a model with " +
                           quench::formatMemorySize(s.weights->total) +
                           " of weights"
                     : std::string(" for a model without weights"));
  if (s.available.bytes) {
    if (!details.empty())
      details += "; ";
    details += (s.stage.empty() ? "available at startup: "
                                : "available when the stage started: ") +
               quench::formatMemorySize(*s.available.bytes);
    if (!s.available.limit.empty())
      details += " under " + s.available.limit;
  }
  if (!details.empty())
    msg += " (" + details + ")";
  return msg + "\n";
}

/// Formats the message into the buffer the handler is not reading.
/// Called with `stateMutex` held.
static void publish() {
  std::string msg = formatMessage(state);
  Message *next = current.load() == &messages[0] ? &messages[1] : &messages[0];
  size_t n = std::min(msg.size(), sizeof next->text);
  memcpy(next->text, msg.data(), n);
  if (n == sizeof next->text)
    next->text[n - 1] = '\n';
  next->length = n;
  current.store(next);
}

void quench::reportOutOfMemory() {
  // The first thread out of memory reports; any other waits for its exit.
  static std::atomic<bool> reporting{false};
  if (reporting.exchange(true))
    for (;;)
      ::pause();
  static const char fallback[] = "error: out of memory\n";
  const Message *m = current.load();
  const char *text = m ? m->text : fallback;
  size_t length = m ? m->length : sizeof fallback - 1;
  while (length) {
    ssize_t w = ::write(2, text, length);
    if (w <= 0)
      break;
    text += w;
    length -= (size_t)w;
  }
  // Removes the files registered with llvm::sys::RemoveFileOnSignal
  // (TemporaryFileCleanup and LLVM's own temporaries); signal-safe, no
  // allocation.
  sys::RunInterruptHandlers();
  ::_exit(1);
}

static void newHandler() { quench::reportOutOfMemory(); }

static void badAllocHandler(void *, const char *, bool) {
  quench::reportOutOfMemory();
}

/// LLVM reports a thread it cannot start (its stack cannot be mapped) as a
/// fatal error, "pthread_create failed: Resource temporarily unavailable":
/// under an address-space limit that is running out of memory. Every other
/// fatal error keeps LLVM's default report (LLVM then aborts or exits as
/// before).
static void fatalErrorHandler(void *, const char *reason, bool) {
  struct rlimit rl;
  if (strncmp(reason, "pthread_create failed", 21) == 0 &&
      getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    quench::reportOutOfMemory();
  static const char prefix[] = "LLVM ERROR: ";
  (void)!::write(2, prefix, sizeof prefix - 1);
  (void)!::write(2, reason, strlen(reason));
  (void)!::write(2, "\n", 1);
}

void quench::installOutOfMemoryHandler(StringRef toolName) {
  {
    std::lock_guard<std::mutex> lock(stateMutex);
    state.tool = toolName.str();
    state.available = quench::getAvailableMemory();
    publish();
  }
  if (const char *hook = ::getenv("QUENCH_TEST_FAIL_ALLOC_IN_STAGE")) {
    SmallVector<StringRef> parts;
    StringRef(hook).split(parts, ',');
    testHook.stage = parts.front().trim().str();
    for (StringRef p : ArrayRef(parts).drop_front()) {
      testHook.afterTemporary |= p.trim() == "after-temporary";
      testHook.llvmPath |= p.trim() == "llvm";
    }
  }
  std::set_new_handler(newHandler);
  install_bad_alloc_error_handler(badAllocHandler);
  install_fatal_error_handler(fatalErrorHandler);
}

void quench::setCurrentStage(StringRef stage) {
  {
    std::lock_guard<std::mutex> lock(stateMutex);
    state.stage = stage.str();
    state.available = quench::getAvailableMemory();
    publish();
  }
  checkTestAllocationFailure("stage");
}

void quench::setModelWeights(const WeightFootprint &weights) {
  std::lock_guard<std::mutex> lock(stateMutex);
  state.weights = weights;
  publish();
}

void quench::addExternalWeightBytes(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(stateMutex);
  WeightFootprint w = state.weights.value_or(WeightFootprint{});
  w.total += bytes;
  state.weights = w;
  publish();
}

std::string quench::getOutOfMemoryMessage() {
  std::lock_guard<std::mutex> lock(stateMutex);
  return formatMessage(state);
}

void quench::checkTestAllocationFailure(StringRef point) {
  if (testHook.stage.empty() ||
      point != (testHook.afterTemporary ? "temporary" : "stage"))
    return;
  {
    std::lock_guard<std::mutex> lock(stateMutex);
    if (state.stage != testHook.stage)
      return;
  }
  // More than any machine's address space: the allocation really fails.
  volatile size_t huge = size_t(1) << 62;
  void *p = testHook.llvmPath ? safe_malloc(huge) : ::operator new(huge);
  // Not reached (the handlers exit); keeps the allocation from being elided.
  asm volatile("" : : "r"(p) : "memory");
  testHook.llvmPath ? free(p) : ::operator delete(p);
}
