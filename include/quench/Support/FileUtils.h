//===- FileUtils.h - atomic output files ------------------------*- C++ -*-===//
//
// Every quench tool writes its outputs through writeFileAtomically so that a
// failure never leaves a partial file behind.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_SUPPORT_FILEUTILS_H
#define QUENCH_SUPPORT_FILEUTILS_H

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/raw_ostream.h"
#include <string>

namespace quench {

/// Writes `path` by calling `write` on a temporary file in the same
/// directory and renaming it into place once everything was written
/// successfully. `write` returns false to abandon the output. `-` writes to
/// stdout. Returns an empty string on success, else an error message.
std::string
writeFileAtomically(llvm::StringRef path,
                    llvm::function_ref<bool(llvm::raw_ostream &)> write);

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
