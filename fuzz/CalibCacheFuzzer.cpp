//===- CalibCacheFuzzer.cpp - Fuzz the calibration cache reader -----------===//
//
// Bytes -> quench::calib::readCache, with the Gram matrices in memory and
// left in the file (then each read back with loadGram). A cache that reads
// must be consistent (histogram and per-channel sizes, Gram matrices of
// channels^2 doubles) and must survive writeCache + readCache unchanged.
//
// The cache ends with a checksum of its content, which mutations almost
// never keep right: inputs of even length get it recomputed (so the parser
// behind it is fuzzed), odd ones are written as they are (so is the check).
//
//===----------------------------------------------------------------------===//

#include "FuzzInput.h"

#include "quench/Calibration/Statistics.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

using namespace quench::calib;
using quench::fuzz::InputFile;

/// Bitwise equality (a fuzzed Gram matrix may hold NaNs).
static bool sameBits(const std::vector<double> &a,
                     const std::vector<double> &b) {
  return a.size() == b.size() &&
         (a.empty() ||
          std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const InputFile input("cache.qcal");
  static const std::string copy = input.sibling("copy.qcal");
  if (size >= 8 && size % 2 == 0) {
    std::vector<uint8_t> fixed(data, data + size);
    uint64_t sum = fnv1a(fixed.data(), size - 8);
    std::memcpy(fixed.data() + size - 8, &sum, 8);
    input.write(fixed.data(), size);
  } else {
    input.write(data, size);
  }

  CalibrationStats inMemory;
  std::string error = readCache(input.path(), inMemory, true);
  CalibrationStats onFile;
  std::string errorOnFile = readCache(input.path(), onFile, false);
  // Both ways of reading accept and reject the same files.
  FUZZ_CHECK(error.empty() == errorOnFile.empty());
  if (!error.empty())
    return 0;
  FUZZ_CHECK(inMemory.tensors.size() == onFile.tensors.size());
  for (size_t i = 0; i < onFile.tensors.size(); ++i) {
    const TensorStats &t = onFile.tensors[i];
    FUZZ_CHECK(t.channels >= 0);
    if (!t.hasGram())
      continue;
    std::vector<double> gram;
    FUZZ_CHECK(t.loadGram(gram).empty());
    FUZZ_CHECK(sameBits(gram, inMemory.tensors[i].gram));
    FUZZ_CHECK(gram.size() ==
               static_cast<size_t>(t.channels) * static_cast<size_t>(t.channels));
  }
  // What was read writes and reads back the same.
  FUZZ_CHECK(writeCache(copy, inMemory).empty());
  CalibrationStats back;
  FUZZ_CHECK(readCache(copy, back, true).empty());
  FUZZ_CHECK(back.modelChecksum == inMemory.modelChecksum &&
             back.dataChecksum == inMemory.dataChecksum &&
             back.samples == inMemory.samples &&
             back.tensors.size() == inMemory.tensors.size());
  for (size_t i = 0; i < back.tensors.size(); ++i) {
    const TensorStats &a = inMemory.tensors[i], &b = back.tensors[i];
    FUZZ_CHECK(a.name == b.name && a.layers == b.layers &&
               a.channels == b.channels && a.rows == b.rows &&
               a.count == b.count && sameBits(a.gram, b.gram));
  }
  return 0;
}
