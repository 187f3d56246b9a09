//===- MappedFile.cpp - read-only file mappings whose pages can be dropped ===//

#include "quench/Support/MappedFile.h"

#include "quench/Support/OutOfMemory.h"

#include "llvm/Support/Errno.h"

#include <fcntl.h>
#include <map>
#include <mutex>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace llvm;

namespace {
/// Live mappings: start address -> end address.
struct Registry {
  std::mutex mutex;
  std::map<uintptr_t, uintptr_t> ranges;
};
} // namespace

static Registry &registry() {
  static Registry *r = new Registry; // outlives static destructors
  return *r;
}

static Error makeError(const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), msg);
}

static size_t pageSize() {
  static size_t size = (size_t)::sysconf(_SC_PAGESIZE);
  return size;
}

Expected<std::shared_ptr<quench::MappedFile>>
quench::MappedFile::openFD(int fd, StringRef name, uint64_t offset,
                           uint64_t length) {
  if (length == 0)
    return std::shared_ptr<MappedFile>(new MappedFile(nullptr, 0, nullptr, 0));
  uint64_t start = offset & ~(uint64_t)(pageSize() - 1);
  size_t mapped = (size_t)(offset - start + length);
  void *base = ::mmap(nullptr, mapped, PROT_READ, MAP_PRIVATE, fd, (off_t)start);
  if (base == MAP_FAILED && errno == ENOMEM)
    quench::reportOutOfMemory(); // the address space (ulimit -v) is full
  if (base == MAP_FAILED)
    return makeError("cannot map " + Twine(length) + " bytes of '" + name +
                     "': " + sys::StrError(errno));
  auto *begin = static_cast<const char *>(base) + (offset - start);
  {
    Registry &r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    r.ranges[(uintptr_t)base] = (uintptr_t)base + mapped;
  }
  return std::shared_ptr<MappedFile>(
      new MappedFile(base, mapped, begin, (size_t)length));
}

Expected<std::shared_ptr<quench::MappedFile>>
quench::MappedFile::open(StringRef path, uint64_t offset, int64_t length) {
  std::string p = path.str();
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused
  // below); it changes nothing for the regular files that are mapped.
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return makeError("cannot open '" + path + "': " + sys::StrError(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return makeError("cannot read '" + path + "': " + sys::StrError(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return makeError("'" + path + "' is not a regular file");
  }
  uint64_t size = (uint64_t)st.st_size;
  if (offset > size || (length >= 0 && (uint64_t)length > size - offset)) {
    ::close(fd);
    return makeError("range [" + Twine(offset) + ", " +
                     Twine(offset + (length < 0 ? 0 : length)) +
                     ") exceeds the " + Twine(size) + " bytes of '" + path +
                     "'");
  }
  uint64_t len = length < 0 ? size - offset : (uint64_t)length;
  auto result = openFD(fd, path, offset, len);
  ::close(fd);
  return result;
}

quench::MappedFile::~MappedFile() {
  if (!base)
    return;
  {
    Registry &r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    r.ranges.erase((uintptr_t)base);
  }
  ::munmap(base, mapped);
}

void quench::releaseMappedPages(ArrayRef<char> data) {
  if (data.empty())
    return;
  uintptr_t page = pageSize();
  uintptr_t lo = ((uintptr_t)data.data() + page - 1) & ~(page - 1);
  uintptr_t hi = ((uintptr_t)data.data() + data.size()) & ~(page - 1);
  if (lo >= hi)
    return;
  Registry &r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  // Clip [lo, hi) to every registered mapping it overlaps.
  auto it = r.ranges.upper_bound(lo);
  if (it != r.ranges.begin())
    --it;
  for (; it != r.ranges.end() && it->first < hi; ++it) {
    uintptr_t a = std::max(lo, it->first), b = std::min(hi, it->second);
    b &= ~(page - 1);
    if (a < b)
      ::madvise((void *)a, b - a, MADV_DONTNEED);
  }
}
