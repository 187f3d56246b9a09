//===- FileUtils.h - atomic output files ------------------------*- C++ -*-===//
//
// Every quench tool writes its outputs through writeFileAtomically so that a
// failure never leaves a partial file behind; temporaries are registered
// (TemporaryFileCleanup) so that an abnormal exit (out of memory, SIGINT,
// SIGTERM, a crash) removes them too.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_SUPPORT_FILEUTILS_H
#define QUENCH_SUPPORT_FILEUTILS_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/raw_ostream.h"
#include <cstdint>
#include <string>
#include <system_error>

namespace quench {

/// Registers the temporary file `path` (existing or about to be created)
/// for removal if the process ends abnormally while this object lives: out
/// of memory (OutOfMemory.h), an interrupt or termination signal, a crash.
/// Backed by llvm::sys::RemoveFileOnSignal, whose removal is signal-safe and
/// allocates nothing. The destructor only unregisters: removing or renaming
/// the file on the normal paths stays the owner's job.
class TemporaryFileCleanup {
public:
  explicit TemporaryFileCleanup(llvm::StringRef path);
  ~TemporaryFileCleanup();
  TemporaryFileCleanup(const TemporaryFileCleanup &) = delete;
  TemporaryFileCleanup &operator=(const TemporaryFileCleanup &) = delete;

private:
  std::string path;
};

/// Writes `path` by calling `write` on a temporary file in the same
/// directory and renaming it into place once everything was written
/// successfully. `write` returns false to abandon the output. `-` writes to
/// stdout; an existing character device or FIFO is written into (never
/// replaced), a directory is an error. Returns an empty string on success,
/// else an error message.
std::string
writeFileAtomically(llvm::StringRef path,
                    llvm::function_ref<bool(llvm::raw_ostream &)> write);

/// Why `path` must not be written as an output: it exists and is not a
/// regular file (a directory; a device node or FIFO, which a rename would
/// replace, unless `streamable`: text outputs are written into character
/// devices and FIFOs such as /dev/null), or it is the same file as one of
/// `inputs` (also through a hard or symbolic link). "" when it may be
/// written (or does not exist); "-" (stdout) always may.
/// writeFileAtomically checks the first; drivers check both before they
/// start.
std::string checkOutputPath(llvm::StringRef path,
                            llvm::ArrayRef<std::string> inputs = {},
                            bool streamable = false);

/// Writes all of `data` to the open file `fd` at `offset` (pwrite in
/// chunks, EINTR retried). Returns the error (ENOSPC when the file system
/// stops taking bytes), or success.
std::error_code writeAllAt(int fd, llvm::ArrayRef<char> data,
                           uint64_t offset);

/// `path` with `ext` (".ll") appended unless it already ends with it; "-"
/// (stdout) stays as it is.
std::string withExtension(llvm::StringRef path, llvm::StringRef ext);

/// `path` without a trailing `ext` (".o"), if it has one.
std::string withoutExtension(llvm::StringRef path, llvm::StringRef ext);

/// Writes the text `print` produces to withExtension(`out`, `ext`)
/// atomically (stdout for "-"). Returns the path written ("" for stdout),
/// or sets `error` and returns "".
std::string writeTextOutput(llvm::StringRef out, llvm::StringRef ext,
                            llvm::function_ref<void(llvm::raw_ostream &)> print,
                            std::string &error);

} // namespace quench

#endif // QUENCH_SUPPORT_FILEUTILS_H
