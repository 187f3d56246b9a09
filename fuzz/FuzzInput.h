//===- FuzzInput.h - Fuzz inputs as files -------------------------*- C++ -*-===//
//
// The readers under test take paths (the drivers' only way in), so every
// target writes the fuzzer's bytes to a file in a private temporary
// directory and calls the real entry point on it. The directory holds
// nothing else: an ONNX model's external-data references can only name the
// model itself or files that do not exist.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_FUZZ_FUZZINPUT_H
#define QUENCH_FUZZ_FUZZINPUT_H

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

/// A fuzz target's own check of what it computed (a round trip, a reference
/// output): prints the failed condition and aborts, which libFuzzer reports
/// as a finding.
#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "fuzz check failed: %s (%s:%d)\n", #cond,          \
                   __FILE__, __LINE__);                                        \
      std::abort();                                                            \
    }                                                                          \
  } while (0)

namespace quench::fuzz {

/// A file that holds the current input. Created in a directory made by
/// mkdtemp under $TMPDIR (default /dev/shm when it exists, else /tmp);
/// the directory and its files are removed at exit.
class InputFile {
public:
  /// `name` is the file's name inside the directory (its extension selects
  /// the format where a reader looks at it, e.g. `model.onnx`).
  explicit InputFile(const char *name);
  /// Replaces the file's content with `size` bytes. Aborts on I/O errors
  /// (the fuzzing machine's problem, not the reader's).
  void write(const uint8_t *data, size_t size) const;
  /// The file's path.
  const std::string &path() const { return path_; }
  /// Another path in the same directory (not created).
  std::string sibling(const char *name) const;

private:
  std::string path_;
};

} // namespace quench::fuzz

#endif // QUENCH_FUZZ_FUZZINPUT_H
