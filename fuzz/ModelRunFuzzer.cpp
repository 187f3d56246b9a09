//===- ModelRunFuzzer.cpp - Fuzz a compiled model's input checks ----------===//
//
// A real compiled model (fuzz/models/fuzzmodel.onnxtxt: an embedding lookup
// of token ids, a broadcast add of run-time extents and an integer
// division, compiled by quench-compile --emit=obj) run through
// quench_model_run on input tensors decoded from the fuzzer's bytes:
// dtypes, ranks and dims that may or may not match the declaration, NULL
// data, ids outside the table, extents that disagree, zero divisors.
//
// The oracle: a descriptor that does not match the declaration is rejected
// with DTYPE_MISMATCH / SHAPE_MISMATCH / INVALID_ARGUMENT before anything
// runs; a matching one runs, and fails (INVALID_ARGUMENT, the generated
// code's run-time checks) exactly when an id is outside [-16, 16), the
// add's extents differ, or a divisor is 0 (or INT32_MIN / -1); otherwise
// every output element equals the reference. A failed run leaves the
// outputs zeroed. Inputs whose two `M` extents differ (undefined results by
// the C API's contract) only have to return.
//
//===----------------------------------------------------------------------===//

#include "fuzzmodel.h"

#include "FuzzInput.h"

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {
/// Reads the fuzzer's bytes front to back; 0 once they run out.
struct Reader {
  const uint8_t *data;
  size_t size, pos = 0;
  uint8_t byte() { return pos < size ? data[pos++] : 0; }
};

constexpr int kNumInputs = 4;
constexpr int64_t kMaxElements = 1 << 16;

/// A dim from one byte: mostly small, sometimes negative or huge.
int64_t decodeDim(uint8_t b) {
  if (b == 0xff)
    return int64_t(1) << 40;
  if (b == 0xfe)
    return -1;
  return b & 0x1f;
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Reader in{data, size};
  const quench_model &model = fuzzmodel_model;
  quench_tensor inputs[kNumInputs + 1];
  std::memset(inputs, 0, sizeof inputs);
  std::vector<std::vector<uint8_t>> storage(kNumInputs + 1);
  bool declared = true; // every descriptor matches the declaration
  uint8_t flags = in.byte();
  size_t numInputs = (flags & 3) == 1 ? kNumInputs - 1
                     : (flags & 3) == 2 ? kNumInputs + 1
                                        : kNumInputs;
  declared &= numInputs == kNumInputs;
  for (int i = 0; i < kNumInputs + 1; ++i) {
    const quench_io_info &info = model.inputs[i < kNumInputs ? i : 0];
    quench_tensor &t = inputs[i];
    uint8_t dt = in.byte(), rk = in.byte();
    t.dtype = dt < 0xf0 ? info.dtype : static_cast<quench_dtype>(dt & 0xf);
    t.rank = rk < 0xf0 ? info.rank : static_cast<int32_t>(rk & 0xf);
    bool ok = t.dtype == info.dtype && t.rank == info.rank;
    int64_t count = 1;
    for (int32_t d = 0; d < t.rank && d < QUENCH_MAX_RANK; ++d) {
      uint8_t b = in.byte();
      bool keep = d < info.rank && info.shape[d] >= 0 && b < 0xe0;
      t.shape[d] = keep ? info.shape[d] : decodeDim(b);
      ok &= d >= info.rank || info.shape[d] < 0 ||
            info.shape[d] == t.shape[d];
      ok &= t.shape[d] >= 0;
      if (t.shape[d] >= 0)
        count = t.shape[d] > kMaxElements || count > kMaxElements
                    ? kMaxElements + 1
                    : count * t.shape[d];
    }
    size_t item = quench_dtype_size(t.dtype);
    ok &= item != 0 && t.rank <= QUENCH_MAX_RANK;
    bool nullData = (in.byte() & 0x7) == 7;
    if (ok && count <= kMaxElements && !nullData) {
      // Element bytes from the input, repeated; ids mostly small.
      std::vector<uint8_t> &buf = storage[i];
      buf.resize(static_cast<size_t>(count) * item + 1);
      for (size_t k = 0; k < buf.size(); ++k)
        buf[k] = in.pos < in.size ? data[in.pos + k % (in.size - in.pos)] : 0;
      t.data = buf.data();
    } else if (count > kMaxElements && ok) {
      // Too large to allocate here: the descriptor stays valid but without
      // data (the runtime must reject NULL data of a non-empty tensor).
      t.data = nullptr;
    }
    ok &= t.data != nullptr || count == 0;
    if (i < kNumInputs)
      declared &= ok;
  }

  quench_tensor outputs[2];
  quench_error err;
  quench_status st =
      quench_model_run(&model, inputs, numInputs, outputs, 2, nullptr, &err);
  if (st != QUENCH_OK) {
    FUZZ_CHECK(err.code == st && err.message[0] != '\0');
    for (const quench_tensor &o : outputs)
      FUZZ_CHECK(o.data == nullptr);
  }
  if (!declared) {
    FUZZ_CHECK(st != QUENCH_OK);
    return 0;
  }
  const quench_tensor &ids = inputs[0], &x = inputs[1], &a = inputs[2],
                      &b = inputs[3];
  if (a.shape[0] != b.shape[0]) {
    quench_tensor_free(&outputs[0]);
    quench_tensor_free(&outputs[1]);
    return 0;
  }
  int64_t t = ids.shape[1], m = a.shape[0];
  bool valid = x.shape[0] == t;
  const int64_t *idv = static_cast<const int64_t *>(ids.data);
  for (int64_t k = 0; k < t; ++k)
    valid &= idv[k] >= -16 && idv[k] < 16;
  const int32_t *av = static_cast<const int32_t *>(a.data),
                *bv = static_cast<const int32_t *>(b.data);
  for (int64_t k = 0; k < m; ++k)
    valid &= bv[k] != 0 && !(av[k] == INT32_MIN && bv[k] == -1);
  if (!valid) {
    FUZZ_CHECK(st == QUENCH_ERR_INVALID_ARGUMENT);
    return 0;
  }
  if (st != QUENCH_OK)
    std::fprintf(stderr, "unexpected failure: %s\n", err.message);
  FUZZ_CHECK(st == QUENCH_OK);
  const quench_tensor &y = outputs[0], &q = outputs[1];
  FUZZ_CHECK(y.rank == 3 && y.shape[0] == 1 && y.shape[1] == t &&
             y.shape[2] == 4 && q.rank == 1 && q.shape[0] == m);
  const float *xv = static_cast<const float *>(x.data);
  const float *yv = static_cast<const float *>(y.data);
  for (int64_t k = 0; k < t; ++k) {
    int64_t row = idv[k] < 0 ? idv[k] + 16 : idv[k];
    for (int64_t c = 0; c < 4; ++c) {
      float want = static_cast<float>(row * 4 + c) * 0.5f + xv[k * 4 + c];
      float got = yv[k * 4 + c];
      FUZZ_CHECK(std::memcmp(&want, &got, sizeof want) == 0 ||
                 (want != want && got != got));
    }
  }
  const int32_t *qv = static_cast<const int32_t *>(q.data);
  for (int64_t k = 0; k < m; ++k)
    FUZZ_CHECK(qv[k] == av[k] / bv[k]);
  quench_tensor_free(&outputs[0]);
  quench_tensor_free(&outputs[1]);
  return 0;
}
