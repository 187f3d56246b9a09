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

} // namespace quench

#endif // QUENCH_SUPPORT_FILEUTILS_H
