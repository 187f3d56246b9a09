//===- WeightArena.cpp - derived weights spilled to a scratch file --------===//
//
// See WeightArena.h. One file, appended to with pwrite (which fills the page
// cache, not the process's resident set) and mapped back entry by entry.
// Offsets are handed out under a mutex; the writes themselves run unlocked,
// so passes that derive weights in parallel do not serialize on the disk.
//
//===----------------------------------------------------------------------===//

#include "quench/Support/WeightArena.h"

#include "quench/Support/FileUtils.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Errno.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/Path.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

using namespace llvm;

static Error makeError(const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), msg);
}

quench::WeightArena &quench::WeightArena::get() {
  static WeightArena *arena = new WeightArena; // outlives static destructors
  return *arena;
}

static std::string defaultDirectory() {
  SmallString<128> dir;
  sys::path::system_temp_directory(/*ErasedOnReboot=*/true, dir);
  return std::string(dir);
}

quench::WeightArena::WeightArena() : directory(defaultDirectory()) {
  if (const char *env = std::getenv("QUENCH_WEIGHT_ARENA"))
    if (StringRef(env) == "0")
      threshold = SIZE_MAX;
}

quench::WeightArena::WeightArena(std::string directory)
    : directory(std::move(directory)) {}

bool quench::WeightArena::accepts(size_t size) const {
  return size >= getThreshold();
}

size_t quench::WeightArena::getThreshold() const {
  std::lock_guard<std::mutex> lock(mutex);
  return threshold;
}

void quench::WeightArena::setThreshold(size_t bytes) {
  std::lock_guard<std::mutex> lock(mutex);
  threshold = bytes;
}

uint64_t quench::WeightArena::getBytesStored() const {
  std::lock_guard<std::mutex> lock(mutex);
  return stored;
}

std::string quench::WeightArena::getDirectory() const {
  std::lock_guard<std::mutex> lock(mutex);
  return directory;
}

Error quench::WeightArena::open() {
  if (fd)
    return Error::success();
  // An unnamed file where the file system supports it; else a named one,
  // unlinked at once. Either way nothing outlives the process.
  int file = ::open(directory.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (file < 0) {
    std::string path = directory + "/quench-weights-XXXXXX";
    file = ::mkostemp(path.data(), O_CLOEXEC);
    if (file < 0)
      return makeError("cannot create the weight arena in '" + directory +
                       "': " + sys::StrError(errno));
    ::unlink(path.c_str());
  }
  fd = std::shared_ptr<const int>(new int(file), [](const int *p) {
    ::close(*p);
    delete p;
  });
  return Error::success();
}

namespace {
/// Keeps an entry's mapping and frees its file space when the last
/// reference goes (the arena is append-only: a dead entry would otherwise
/// hold disk space until the process exits).
struct Entry {
  std::shared_ptr<quench::MappedFile> mapping;
  std::shared_ptr<const int> fd;
  uint64_t offset, length;
  ~Entry() {
    mapping.reset();
    if (length)
      ::fallocate(*fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  (off_t)offset, (off_t)length);
  }
};
} // namespace

Expected<std::shared_ptr<quench::MappedFile>>
quench::WeightArena::store(ArrayRef<char> data) {
  static const uint64_t page = (uint64_t)::sysconf(_SC_PAGESIZE);
  std::shared_ptr<const int> file;
  uint64_t offset;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (Error e = open())
      return std::move(e);
    file = fd;
    offset = alignTo(end, page);
    end = offset + data.size();
  }
  if (std::error_code ec = writeAllAt(*file, data, offset)) {
    ::fallocate(*file, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                (off_t)offset, (off_t)data.size());
    return makeError("cannot write " + Twine(data.size()) +
                     " bytes to the weight arena in '" + getDirectory() +
                     "': " + ec.message());
  }
  auto mapping =
      MappedFile::openFD(*file, "the weight arena", offset, data.size());
  if (!mapping)
    return mapping.takeError();
  {
    std::lock_guard<std::mutex> lock(mutex);
    stored += data.size();
  }
  // Built in place: a moved-from temporary would punch the hole.
  std::shared_ptr<Entry> entry(
      new Entry{std::move(*mapping), std::move(file), offset,
                (uint64_t)data.size()});
  MappedFile *view = entry->mapping.get();
  return std::shared_ptr<MappedFile>(std::move(entry), view);
}
