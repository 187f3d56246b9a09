//===- MappedFile.h - read-only file mappings whose pages can be dropped -*- C++ -*-===//
//
// Large weights are never copied wholesale: a model's external data is
// mapped read-only, derived weights (quantized, transposed) are spilled to a
// scratch file and mapped back (WeightArena), and consumers that stream a
// weight once (quantization, object emission) call releaseMappedPages when
// done with it, so that the process's resident set stays near one tensor
// however large the model (docs/scaling.md).
//
// Reading a mapped file charges its pages to the process's RSS (the kernel's
// RssFile) until they are unmapped or released; releasing a private
// read-only file mapping's pages is always safe: a later read faults them in
// again from the page cache or the file.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_SUPPORT_MAPPEDFILE_H
#define QUENCH_SUPPORT_MAPPEDFILE_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>

namespace quench {

/// A read-only private mapping of [offset, offset + length) of a file,
/// registered for releaseMappedPages. Unmapped (and unregistered) when the
/// last shared_ptr goes.
class MappedFile {
public:
  /// Maps `length` bytes of `path` from `offset` (length < 0: to the end).
  /// A zero-length range maps nothing and has empty data(). Only regular
  /// files are mapped: a FIFO, device or directory is an error (opening
  /// does not block on a FIFO).
  static llvm::Expected<std::shared_ptr<MappedFile>>
  open(llvm::StringRef path, uint64_t offset = 0, int64_t length = -1);
  /// Maps `length` bytes of the open file `fd` from `offset` (the caller
  /// keeps `fd`; the mapping does not need it afterwards).
  static llvm::Expected<std::shared_ptr<MappedFile>>
  openFD(int fd, llvm::StringRef nameForErrors, uint64_t offset,
         uint64_t length);

  ~MappedFile();
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;

  llvm::ArrayRef<char> data() const { return {begin, size}; }

private:
  MappedFile(void *base, size_t mapped, const char *begin, size_t size)
      : base(base), mapped(mapped), begin(begin), size(size) {}
  void *base;       // what mmap returned (page aligned)
  size_t mapped;    // bytes mapped from base
  const char *begin; // the requested range
  size_t size;
};

/// Drops the resident pages of `data` (whole pages inside it) that belong to
/// a live MappedFile, so that they no longer count in the process's RSS.
/// Anything else (heap memory, other mappings) is left alone, so callers may
/// pass any weight data. Thread-safe.
void releaseMappedPages(llvm::ArrayRef<char> data);

} // namespace quench

#endif // QUENCH_SUPPORT_MAPPEDFILE_H
