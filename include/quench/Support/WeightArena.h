//===- WeightArena.h - derived weights spilled to a scratch file -*- C++ -*-===//
//
// Passes derive large weights from the model's (quantized codes, transposed
// or packed matrices). Kept on the heap they would add up to a second copy
// of the model; the arena instead appends each one to a process-wide scratch
// file and maps it back read-only, so that a derived weight costs page cache,
// not resident memory, once it has been written, and its pages can be
// dropped after each read (releaseMappedPages). docs/scaling.md.
//
// The file is created in the system temporary directory ($TMPDIR, else /tmp)
// and unlinked at once: nothing is left behind, even after a crash. Entries
// are page aligned.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_SUPPORT_WEIGHTARENA_H
#define QUENCH_SUPPORT_WEIGHTARENA_H

#include "quench/Support/MappedFile.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace quench {

class WeightArena {
public:
  /// Data of this many bytes or more goes to the arena by default.
  static constexpr size_t kDefaultThreshold = size_t(1) << 20;

  /// The process's arena. Its file is created on the first store(); the
  /// environment variable QUENCH_WEIGHT_ARENA=0 disables it (everything
  /// stays on the heap).
  static WeightArena &get();

  /// An arena of its own in `directory` (tests); threshold kDefaultThreshold.
  explicit WeightArena(std::string directory);

  /// Whether `size` bytes belong in the arena (size >= the threshold).
  bool accepts(size_t size) const;
  /// The threshold; SIZE_MAX when the arena is disabled. Tests lower it.
  size_t getThreshold() const;
  void setThreshold(size_t bytes);

  /// Appends `data` to the scratch file (pwrite) and maps the copy back
  /// read-only: the returned mapping's data() equals `data` and is page
  /// aligned. Its file space is freed (hole punched) when the last reference
  /// goes. Fails when the file cannot be created or written (disk full).
  llvm::Expected<std::shared_ptr<MappedFile>> store(llvm::ArrayRef<char> data);

  /// Bytes stored so far (page padding excluded).
  uint64_t getBytesStored() const;
  /// The directory the scratch file is (or will be) created in.
  std::string getDirectory() const;

  WeightArena(const WeightArena &) = delete;
  WeightArena &operator=(const WeightArena &) = delete;

private:
  WeightArena();
  llvm::Error open(); // with `mutex` held


  mutable std::mutex mutex;
  /// The scratch file's descriptor, closed with its last user (the arena
  /// and every live entry, which punches its hole on the way out).
  std::shared_ptr<const int> fd;
  std::string directory;
  uint64_t end = 0;    // file offset after the last entry
  uint64_t stored = 0; // payload bytes
  size_t threshold = kDefaultThreshold;
};

} // namespace quench

#endif // QUENCH_SUPPORT_WEIGHTARENA_H
