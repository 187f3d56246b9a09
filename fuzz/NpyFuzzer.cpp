//===- NpyFuzzer.cpp - Fuzz the runtime's .npy reader ---------------------===//
//
// Bytes -> quench_npy_read. Properties checked beyond "no crash, no leak":
// a failed read leaves the tensor zeroed with an error message; a tensor
// read back is valid (quench_tensor_size), and writing it and reading the
// file again gives the same dtype, shape and bytes.
//
//===----------------------------------------------------------------------===//

#include "FuzzInput.h"

#include "quench/runtime.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

using quench::fuzz::InputFile;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const InputFile input("input.npy");
  static const std::string copy = input.sibling("copy.npy");
  input.write(data, size);

  quench_tensor t;
  quench_error err;
  quench_status st = quench_npy_read(input.path().c_str(), &t, &err);
  if (st != QUENCH_OK) {
    FUZZ_CHECK(err.code == st && err.message[0] != '\0');
    FUZZ_CHECK(t.data == nullptr && t.rank == 0);
    return 0;
  }
  int64_t count = 0;
  size_t bytes = 0;
  FUZZ_CHECK(quench_tensor_size(&t, &count, &bytes, &err) == QUENCH_OK);
  FUZZ_CHECK(bytes <= size);

  // The typed variant agrees with the untyped read.
  quench_tensor typed;
  st = quench_npy_read_expect(input.path().c_str(), "x", t.dtype, t.rank,
                              t.shape, &typed, &err);
  FUZZ_CHECK(st == QUENCH_OK);
  FUZZ_CHECK(std::memcmp(typed.data, t.data, bytes) == 0);
  quench_tensor_free(&typed);

  // Round trip through the writer.
  FUZZ_CHECK(quench_npy_write(copy.c_str(), &t, &err) == QUENCH_OK);
  quench_tensor back;
  FUZZ_CHECK(quench_npy_read(copy.c_str(), &back, &err) == QUENCH_OK);
  FUZZ_CHECK(back.dtype == t.dtype && back.rank == t.rank);
  for (int32_t d = 0; d < t.rank; ++d)
    FUZZ_CHECK(back.shape[d] == t.shape[d]);
  FUZZ_CHECK(std::memcmp(back.data, t.data, bytes) == 0);
  quench_tensor_free(&back);
  quench_tensor_free(&t);
  return 0;
}
