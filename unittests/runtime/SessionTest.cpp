// Generation sessions (quench_session_*) on a hand-written generation model
// that follows the generated ABI and records what the session feeds it, and
// the sampling helper quench_sample. The same API on real compiled decoders,
// under AddressSanitizer: test/e2e/session_asan.py.
#include "TestUtil.h"

#include "quench/runtime_abi.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <vector>

namespace {

struct Desc0 {
  void *allocated;
  void *aligned;
  int64_t offset;
};
template <int Rank> struct Desc {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes[Rank];
  int64_t strides[Rank];
};

constexpr int kVocab = 5, kHeads = 2, kHeadDim = 3;

// What the last run of the fake model saw.
struct Seen {
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;
  std::vector<int64_t> positions;
  int32_t past = -1;
  const float *cache = nullptr;
  int64_t cacheSizes[4] = {0, 0, 0, 0};
  int runs = 0;
} seen;

uint16_t half(float f) {
  // The few values the fake model writes, exactly.
  if (f == 2.0f)
    return 0x4000;
  if (f == -1.0f)
    return 0xBC00;
  if (f == -0.75f)
    return 0xBA00;
  if (f == -0.5f)
    return 0xB800;
  if (f == -0.25f)
    return 0xB400;
  return 0x0000;
}

float logitOf(int64_t sum, int v) {
  return v == sum % kVocab ? 2.0f : -1.0f + 0.25f * v;
}

// Inputs: input_ids i32[1, ?], past_key_values.0.key f32[1, 2, ?, 3],
// attention_mask bool[1, ?], past_length i32[], position_ids i64[1, ?].
// Writes each new token t at cache[0, h, past + t, c] = token + h + 10 c and
// returns logits f16[1, n, 5]: 2 at (sum of the cached tokens up to and
// including position past + t) mod 5, else -1 + v/4 (attention that reads
// the cache).
void entryFake(void **args) {
  const auto *ids = static_cast<const Desc<2> *>(args[0]);
  const auto *cache = static_cast<const Desc<4> *>(args[1]);
  const auto *mask = static_cast<const Desc<2> *>(args[2]);
  const auto *past = static_cast<const Desc0 *>(args[3]);
  const auto *pos = static_cast<const Desc<2> *>(args[4]);
  auto *out = static_cast<Desc<3> *>(args[5]);
  ++seen.runs;
  int64_t n = ids->sizes[1];
  const int32_t *idv = static_cast<const int32_t *>(ids->aligned);
  seen.ids.assign(idv, idv + n);
  const uint8_t *mv = static_cast<const uint8_t *>(mask->aligned);
  seen.mask.assign(mv, mv + mask->sizes[1]);
  const int64_t *pv = static_cast<const int64_t *>(pos->aligned);
  seen.positions.assign(pv, pv + pos->sizes[1]);
  seen.past = *static_cast<const int32_t *>(past->aligned);
  seen.cache = static_cast<const float *>(cache->aligned);
  std::memcpy(seen.cacheSizes, cache->sizes, sizeof seen.cacheSizes);

  float *c = static_cast<float *>(cache->aligned);
  int64_t cap = cache->sizes[2];
  for (int64_t t = 0; t < n; ++t)
    for (int h = 0; h < kHeads; ++h)
      for (int d = 0; d < kHeadDim; ++d)
        if (seen.past + t < cap)
          c[(h * cap + seen.past + t) * kHeadDim + d] =
              static_cast<float>(idv[t] + h + 10 * d);
  auto *logits = static_cast<uint16_t *>(
      quench_buffer_alloc(sizeof(uint16_t) * n * kVocab, 0));
  int64_t sum = 0;
  for (int64_t p = 0; p < seen.past; ++p)
    sum += static_cast<int64_t>(c[p * kHeadDim]);
  for (int64_t t = 0; t < n; ++t) {
    sum += static_cast<int64_t>(c[(seen.past + t) * kHeadDim]);
    for (int v = 0; v < kVocab; ++v)
      logits[t * kVocab + v] = half(logitOf(sum, v));
  }
  out[0] = {logits, logits, 0, {1, n, kVocab}, {n * kVocab, kVocab, 1}};
}

const int64_t rowShape[] = {1, -1};
const int64_t cacheShape[] = {1, kHeads, -1, kHeadDim};
const int64_t logitsShape[] = {1, -1, kVocab};
const quench_io_info fakeInputs[] = {
    {"input_ids", QUENCH_DTYPE_I32, 2, rowShape},
    {"past_key_values.0.key", QUENCH_DTYPE_F32, 4, cacheShape},
    {"attention_mask", QUENCH_DTYPE_BOOL, 2, rowShape},
    {"past_length", QUENCH_DTYPE_I32, 0, nullptr},
    {"position_ids", QUENCH_DTYPE_I64, 2, rowShape}};
const quench_io_info fakeOutputs[] = {
    {"logits", QUENCH_DTYPE_F16, 3, logitsShape}};
const int32_t fakeState[] = {1};
const quench_generation_info fakeGen = {0, 2, 4, 3, 0, 1, fakeState, 6};
const quench_model fakeModel = {QUENCH_MODEL_ABI_VERSION,
                                5,
                                1,
                                0,
                                "fake",
                                fakeInputs,
                                fakeOutputs,
                                entryFake,
                                nullptr,
                                0,
                                &fakeGen};

int64_t sumOf(const std::vector<int64_t> &tokens) {
  int64_t s = 0;
  for (int64_t t : tokens)
    s += t;
  return s;
}

TEST(Session, FeedsTheRolesAndKeepsTheCacheInPlace) {
  quench_error err;
  quench_session *s = quench_session_create(&fakeModel, 0, &err);
  ASSERT_NE(s, nullptr) << err.message;
  EXPECT_EQ(quench_session_capacity(s), 6);
  EXPECT_EQ(quench_session_vocab_size(s), kVocab);
  EXPECT_EQ(quench_session_length(s), 0);

  std::vector<int64_t> prompt = {3, 1, 4};
  float logits[kVocab];
  ASSERT_EQ(quench_session_prefill(s, prompt.data(), 3, logits, nullptr, &err),
            QUENCH_OK)
      << err.message;
  EXPECT_EQ(seen.ids, (std::vector<int32_t>{3, 1, 4}));
  EXPECT_EQ(seen.mask, (std::vector<uint8_t>{1, 1, 1}));
  EXPECT_EQ(seen.positions, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(seen.past, 0);
  EXPECT_EQ(seen.cacheSizes[0], 1);
  EXPECT_EQ(seen.cacheSizes[1], kHeads);
  EXPECT_EQ(seen.cacheSizes[2], 6);
  EXPECT_EQ(seen.cacheSizes[3], kHeadDim);
  const float *cache = seen.cache;
  for (int v = 0; v < kVocab; ++v)
    EXPECT_EQ(logits[v], logitOf(8, v)) << v;
  EXPECT_EQ(quench_session_length(s), 3);

  // Decode steps: one token each, the mask over past + new, the positions
  // after the past, the same cache buffer.
  std::vector<int64_t> all = prompt;
  for (int64_t token : {2, 0, 4}) {
    ASSERT_EQ(quench_session_decode(s, token, logits, nullptr, &err),
              QUENCH_OK)
        << err.message;
    all.push_back(token);
    int64_t len = static_cast<int64_t>(all.size());
    EXPECT_EQ(seen.ids, (std::vector<int32_t>{static_cast<int32_t>(token)}));
    EXPECT_EQ(seen.mask, std::vector<uint8_t>(len, 1));
    EXPECT_EQ(seen.positions, (std::vector<int64_t>{len - 1}));
    EXPECT_EQ(seen.past, len - 1);
    EXPECT_EQ(seen.cache, cache);
    EXPECT_EQ(quench_session_length(s), len);
    for (int v = 0; v < kVocab; ++v)
      EXPECT_EQ(logits[v], logitOf(sumOf(all), v)) << v;
  }
  // The cache holds every position, written in place.
  for (int64_t p = 0; p < 6; ++p)
    for (int h = 0; h < kHeads; ++h)
      EXPECT_EQ(cache[(h * 6 + p) * kHeadDim + 2], all[p] + h + 20);

  // Full: nothing runs, nothing changes.
  int runs = seen.runs;
  EXPECT_EQ(quench_session_decode(s, 1, logits, nullptr, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message,
               "the session's cache holds 6 of 6 positions: 1 more token does "
               "not fit (create the session with a larger capacity, up to "
               "what the model's positions allow, or reset it)");
  EXPECT_EQ(seen.runs, runs);
  EXPECT_EQ(quench_session_length(s), 6);

  // Reset: positions start again at 0 over the same cache.
  quench_session_reset(s);
  EXPECT_EQ(quench_session_length(s), 0);
  std::vector<int64_t> two = {4, 4};
  ASSERT_EQ(quench_session_prefill(s, two.data(), 2, nullptr, nullptr, &err),
            QUENCH_OK)
      << err.message;
  EXPECT_EQ(seen.past, 0);
  EXPECT_EQ(seen.positions, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(seen.mask, (std::vector<uint8_t>{1, 1}));
  EXPECT_EQ(seen.cache, cache);
  quench_session_destroy(s);
}

TEST(Session, RunReturnsEveryPositionsLogits) {
  quench_error err;
  quench_session *s = quench_session_create(&fakeModel, 4, &err);
  ASSERT_NE(s, nullptr) << err.message;
  EXPECT_EQ(quench_session_capacity(s), 4);
  std::vector<int64_t> prompt = {1, 2, 3};
  quench_tensor out;
  std::vector<int64_t> badPrompt = {1, 7, 2};
  EXPECT_EQ(quench_session_run(s, badPrompt.data(), 3, &out, nullptr, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message,
               "token 7 (#1 of 3) is outside the vocabulary [0, 5)");
  EXPECT_EQ(quench_session_length(s), 0);
  ASSERT_EQ(quench_session_run(s, prompt.data(), 3, &out, nullptr, &err),
            QUENCH_OK)
      << err.message;
  EXPECT_EQ(out.dtype, QUENCH_DTYPE_F16);
  ASSERT_EQ(out.rank, 3);
  EXPECT_EQ(out.shape[0], 1);
  EXPECT_EQ(out.shape[1], 3);
  EXPECT_EQ(out.shape[2], kVocab);
  const uint16_t *h = static_cast<const uint16_t *>(out.data);
  int64_t sums[3] = {1, 3, 6};
  for (int t = 0; t < 3; ++t)
    for (int v = 0; v < kVocab; ++v)
      EXPECT_EQ(h[t * kVocab + v], half(logitOf(sums[t], v)));
  quench_tensor_free(&out);

  // Rejected calls leave `out` empty and the session as it was.
  std::vector<int64_t> bad = {kVocab};
  EXPECT_EQ(quench_session_run(s, bad.data(), 1, &out, nullptr, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message,
               "token 5 (#0 of 1) is outside the vocabulary [0, 5)");
  EXPECT_EQ(out.data, nullptr);
  EXPECT_EQ(quench_session_length(s), 3);
  EXPECT_EQ(quench_session_run(s, prompt.data(), 2, &out, nullptr, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message,
               "the session's cache holds 3 of 4 positions: 2 more tokens do "
               "not fit (create the session with a larger capacity, up to "
               "what the model's positions allow, or reset it)");
  EXPECT_EQ(quench_session_length(s), 3);
  EXPECT_EQ(quench_session_run(s, prompt.data(), 0, &out, nullptr, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(quench_session_run(s, nullptr, 1, &out, nullptr, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(quench_session_run(nullptr, prompt.data(), 1, &out, nullptr,
                               &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  // The last position still fits.
  EXPECT_EQ(quench_session_run(s, prompt.data(), 1, nullptr, nullptr, &err),
            QUENCH_OK)
      << err.message;
  EXPECT_EQ(quench_session_length(s), 4);
  quench_session_destroy(s);
}

TEST(Session, RejectsModelsItCannotDrive) {
  quench_error err;
  // No generation info, or a version-2 model.
  quench_model plain = fakeModel;
  plain.generation = nullptr;
  EXPECT_EQ(quench_session_create(&plain, 0, &err), nullptr);
  EXPECT_EQ(err.code, QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::strstr(err.message, "model 'fake' is not a generation model"),
            nullptr)
      << err.message;
  quench_model v2 = fakeModel;
  v2.abi_version = 2;
  EXPECT_EQ(quench_session_create(&v2, 0, &err), nullptr);
  EXPECT_EQ(err.code, QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(quench_session_create(nullptr, 0, &err), nullptr);
  EXPECT_EQ(quench_session_create(&fakeModel, -2, &err), nullptr);
  EXPECT_STREQ(err.message,
               "capacity must be >= 0 (0: the model's default), got -2");

  // A cache with two dynamic dims.
  const int64_t twoDynamic[] = {-1, kHeads, -1, kHeadDim};
  quench_io_info inputs[5];
  std::memcpy(inputs, fakeInputs, sizeof inputs);
  inputs[1].shape = twoDynamic;
  quench_model m = fakeModel;
  m.inputs = inputs;
  EXPECT_EQ(quench_session_create(&m, 0, &err), nullptr);
  EXPECT_EQ(err.code, QUENCH_ERR_UNSUPPORTED);
  EXPECT_STREQ(err.message, "model 'fake': cache input 'past_key_values.0.key' "
                            "must have exactly one dynamic dim (the capacity)");

  // A past length that is not 0-d; a role index out of range.
  std::memcpy(inputs, fakeInputs, sizeof inputs);
  inputs[3].rank = 2;
  inputs[3].shape = rowShape;
  EXPECT_EQ(quench_session_create(&m, 0, &err), nullptr);
  EXPECT_EQ(err.code, QUENCH_ERR_UNSUPPORTED);
  quench_generation_info gen = fakeGen;
  gen.input_ids = 9;
  m = fakeModel;
  m.generation = &gen;
  EXPECT_EQ(quench_session_create(&m, 0, &err), nullptr);
  EXPECT_EQ(err.code, QUENCH_ERR_INVALID_ARGUMENT);

  // Logits without a static vocabulary.
  const int64_t dynVocab[] = {1, -1, -1};
  quench_io_info outputs[1] = {fakeOutputs[0]};
  outputs[0].shape = dynVocab;
  m = fakeModel;
  m.outputs = outputs;
  EXPECT_EQ(quench_session_create(&m, 0, &err), nullptr);
  EXPECT_EQ(err.code, QUENCH_ERR_UNSUPPORTED);

  // Caches that do not fit in memory: an error, not a crash.
  EXPECT_EQ(quench_session_create(&fakeModel, INT64_MAX / 2, &err), nullptr);
  EXPECT_EQ(err.code, QUENCH_ERR_OUT_OF_MEMORY);

  quench_session_destroy(nullptr);
  quench_session_reset(nullptr);
  EXPECT_EQ(quench_session_length(nullptr), 0);
  EXPECT_EQ(quench_session_capacity(nullptr), 0);
  EXPECT_EQ(quench_session_vocab_size(nullptr), 0);
}

// ---------------------------------------------------------------------------
// quench_sample
// ---------------------------------------------------------------------------

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

int64_t sample(const std::vector<float> &logits, const quench_sampling *p,
               uint64_t *rng) {
  quench_error err;
  int64_t token = -1;
  EXPECT_EQ(quench_sample(logits.data(), static_cast<int64_t>(logits.size()),
                          p, rng, &token, &err),
            QUENCH_OK)
      << err.message;
  return token;
}

// How often each token is picked in `draws` samples.
std::map<int64_t, int> histogram(const std::vector<float> &logits,
                                 const quench_sampling &p, int draws,
                                 uint64_t seed) {
  std::map<int64_t, int> h;
  uint64_t rng = seed;
  for (int i = 0; i < draws; ++i)
    ++h[sample(logits, &p, &rng)];
  return h;
}

// A decoder with inputs the session does not fill (an encoder-decoder's
// encoder mask and cross-attention keys), set with quench_session_set_input.
// Inputs: input_ids i64[1, ?], encoder_attention_mask i64[1, ?],
// cross f32[1, 1, ?, 2], past_length i64[], cache f32[1, 1, ?, 2].
// Records the caller inputs it sees; logits f32[1, n, 5]: 1 at (sum of
// cross + sum of the mask + past) mod 5, else 0.
struct SeenCross {
  std::vector<int64_t> mask;
  std::vector<float> cross;
  int64_t past = -1;
  int runs = 0;
} seenCross;

void entryCross(void **args) {
  const auto *ids = static_cast<const Desc<2> *>(args[0]);
  const auto *mask = static_cast<const Desc<2> *>(args[1]);
  const auto *cross = static_cast<const Desc<4> *>(args[2]);
  const auto *past = static_cast<const Desc0 *>(args[3]);
  auto *out = static_cast<Desc<3> *>(args[5]);
  ++seenCross.runs;
  const int64_t *mv = static_cast<const int64_t *>(mask->aligned);
  seenCross.mask.assign(mv, mv + mask->sizes[1]);
  const float *cv = static_cast<const float *>(cross->aligned);
  seenCross.cross.assign(cv, cv + cross->sizes[2] * 2);
  seenCross.past = *static_cast<const int64_t *>(past->aligned);
  int64_t n = ids->sizes[1], sum = seenCross.past;
  for (float v : seenCross.cross)
    sum += static_cast<int64_t>(v);
  for (int64_t v : seenCross.mask)
    sum += v;
  auto *logits =
      static_cast<float *>(quench_buffer_alloc(sizeof(float) * n * kVocab, 0));
  for (int64_t t = 0; t < n; ++t)
    for (int v = 0; v < kVocab; ++v)
      logits[t * kVocab + v] = v == sum % kVocab ? 1.0f : 0.0f;
  out[0] = {logits, logits, 0, {1, n, kVocab}, {n * kVocab, kVocab, 1}};
}

const int64_t crossShape[] = {1, 1, -1, 2};
const quench_io_info crossInputs[] = {
    {"input_ids", QUENCH_DTYPE_I64, 2, rowShape},
    {"encoder_attention_mask", QUENCH_DTYPE_I64, 2, rowShape},
    {"cross", QUENCH_DTYPE_F32, 4, crossShape},
    {"past_length", QUENCH_DTYPE_I64, 0, nullptr},
    {"cache", QUENCH_DTYPE_F32, 4, crossShape}};
const quench_io_info crossOutputs[] = {
    {"logits", QUENCH_DTYPE_F32, 3, logitsShape}};
const int32_t crossState[] = {4};
const quench_generation_info crossGen = {0, -1, -1, 3, 0, 1, crossState, 8};
const quench_model crossModel = {QUENCH_MODEL_ABI_VERSION,
                                 5,
                                 1,
                                 0,
                                 "cross",
                                 crossInputs,
                                 crossOutputs,
                                 entryCross,
                                 nullptr,
                                 0,
                                 &crossGen};

int argmax(const float *logits) {
  int best = 0;
  for (int v = 1; v < kVocab; ++v)
    if (logits[v] > logits[best])
      best = v;
  return best;
}

TEST(Session, CallerInputsAreKeptAcrossRuns) {
  // Which inputs the caller sets.
  EXPECT_EQ(quench_generation_caller_input(&crossModel, 0), 0);
  EXPECT_EQ(quench_generation_caller_input(&crossModel, 1), 1);
  EXPECT_EQ(quench_generation_caller_input(&crossModel, 2), 1);
  EXPECT_EQ(quench_generation_caller_input(&crossModel, 3), 0);
  EXPECT_EQ(quench_generation_caller_input(&crossModel, 4), 0);
  EXPECT_EQ(quench_generation_caller_input(&crossModel, 5), -1);
  EXPECT_EQ(quench_generation_caller_input(&crossModel, -1), -1);
  EXPECT_EQ(quench_generation_caller_input(nullptr, 0), -1);
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(quench_generation_caller_input(&fakeModel, i), 0) << i;
  quench_model plain = crossModel;
  plain.generation = nullptr;
  EXPECT_EQ(quench_generation_caller_input(&plain, 1), -1);

  quench_error err;
  quench_session *s = quench_session_create(&crossModel, 0, &err);
  ASSERT_NE(s, nullptr) << err.message;
  std::vector<int64_t> prompt = {0, 3};
  float logits[kVocab];
  // Not set yet: nothing runs.
  EXPECT_EQ(quench_session_prefill(s, prompt.data(), 2, logits, nullptr, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message,
               "model 'cross': input 'encoder_attention_mask' is not set: the "
               "session fills only the token ids, mask, positions, past "
               "length and caches; set the others with "
               "quench_session_set_input");
  EXPECT_EQ(seenCross.runs, 0);
  EXPECT_EQ(quench_session_length(s), 0);

  // Bad values: an error, the session unchanged.
  std::vector<int64_t> mask = {1, 1, 0};
  quench_tensor maskT = {mask.data(), QUENCH_DTYPE_I64, 2, {1, 3}};
  EXPECT_EQ(quench_session_set_input(s, "nope", &maskT, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message, "model 'cross' has no input named 'nope'");
  EXPECT_EQ(quench_session_set_input(s, "input_ids", &maskT, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message,
               "model 'cross': input 'input_ids' is filled by the session "
               "(token ids, mask, positions, past length or a cache); it "
               "cannot be set");
  EXPECT_EQ(quench_session_set_input(s, "cache", &maskT, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(quench_session_set_input(s, "past_length", &maskT, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(quench_session_set_input(s, "cross", &maskT, &err),
            QUENCH_ERR_DTYPE_MISMATCH);
  EXPECT_STREQ(err.message,
               "input 'cross': expected f32[1, 1, ?, 2], got i64[1, 3]");
  std::vector<float> cross = {1, 2, 3, 4, 5, 6};
  quench_tensor crossT = {cross.data(), QUENCH_DTYPE_F32, 4, {1, 1, 2, 3}};
  EXPECT_EQ(quench_session_set_input(s, "cross", &crossT, &err),
            QUENCH_ERR_SHAPE_MISMATCH);
  EXPECT_STREQ(err.message,
               "input 'cross': expected f32[1, 1, ?, 2], got f32[1, 1, 2, 3]");
  crossT.rank = 3;
  EXPECT_EQ(quench_session_set_input(s, "cross", &crossT, &err),
            QUENCH_ERR_SHAPE_MISMATCH);
  crossT = {nullptr, QUENCH_DTYPE_F32, 4, {1, 1, 3, 2}};
  EXPECT_EQ(quench_session_set_input(s, "cross", &crossT, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message, "input 'cross': data is NULL");
  crossT = {cross.data(), QUENCH_DTYPE_F32, 9, {1, 1, 3, 2}};
  EXPECT_EQ(quench_session_set_input(s, "cross", &crossT, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  crossT = {cross.data(), QUENCH_DTYPE_F32, 4, {1, 1, -3, 2}};
  EXPECT_EQ(quench_session_set_input(s, "cross", &crossT, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(quench_session_set_input(nullptr, "cross", &crossT, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(quench_session_set_input(s, nullptr, &crossT, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(quench_session_set_input(s, "cross", nullptr, &err),
            QUENCH_ERR_INVALID_ARGUMENT);

  // Set both; the session keeps copies (the caller's buffers change after).
  crossT = {cross.data(), QUENCH_DTYPE_F32, 4, {1, 1, 3, 2}};
  ASSERT_EQ(quench_session_set_input(s, "encoder_attention_mask", &maskT,
                                     &err),
            QUENCH_OK)
      << err.message;
  EXPECT_EQ(quench_session_prefill(s, prompt.data(), 2, logits, nullptr, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::strstr(err.message, "input 'cross' is not set"), nullptr)
      << err.message;
  ASSERT_EQ(quench_session_set_input(s, "cross", &crossT, &err), QUENCH_OK)
      << err.message;
  mask.assign({7, 7, 7});
  cross.assign(6, 100.0f);
  ASSERT_EQ(quench_session_prefill(s, prompt.data(), 2, logits, nullptr, &err),
            QUENCH_OK)
      << err.message;
  EXPECT_EQ(seenCross.mask, (std::vector<int64_t>{1, 1, 0}));
  EXPECT_EQ(seenCross.cross, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(seenCross.past, 0);
  EXPECT_EQ(argmax(logits), (21 + 2) % kVocab);
  // Decode steps and a reset keep them.
  ASSERT_EQ(quench_session_decode(s, 1, logits, nullptr, &err), QUENCH_OK)
      << err.message;
  EXPECT_EQ(seenCross.past, 2);
  EXPECT_EQ(seenCross.cross, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(argmax(logits), (21 + 2 + 2) % kVocab);
  quench_session_reset(s);
  ASSERT_EQ(quench_session_decode(s, 1, logits, nullptr, &err), QUENCH_OK)
      << err.message;
  EXPECT_EQ(seenCross.past, 0);
  EXPECT_EQ(seenCross.mask, (std::vector<int64_t>{1, 1, 0}));
  // Setting again replaces the value (another length).
  std::vector<float> shorter = {2, 2};
  quench_tensor shortT = {shorter.data(), QUENCH_DTYPE_F32, 4, {1, 1, 1, 2}};
  ASSERT_EQ(quench_session_set_input(s, "cross", &shortT, &err), QUENCH_OK)
      << err.message;
  ASSERT_EQ(quench_session_decode(s, 1, logits, nullptr, &err), QUENCH_OK)
      << err.message;
  EXPECT_EQ(seenCross.cross, (std::vector<float>{2, 2}));
  EXPECT_EQ(seenCross.past, 1);
  EXPECT_EQ(argmax(logits), (4 + 2 + 1) % kVocab);
  quench_session_destroy(s);
}

TEST(Sample, GreedyPicksTheLowestIdAmongTheLargest) {
  uint64_t rng = 5;
  std::vector<float> l = {0.5f, 3.0f, -1.0f, 3.0f, 2.9f};
  EXPECT_EQ(sample(l, nullptr, &rng), 1);
  EXPECT_EQ(rng, 5u) << "greedy must not advance the generator";
  for (float t : {0.0f, -1.0f, kNaN}) {
    quench_sampling p = {t, 0, 1.0f};
    EXPECT_EQ(sample(l, &p, &rng), 1) << t;
  }
  // Greedy needs no generator.
  int64_t token = -1;
  quench_error err;
  EXPECT_EQ(quench_sample(l.data(), 5, nullptr, nullptr, &token, &err),
            QUENCH_OK);
  EXPECT_EQ(token, 1);
  // NaN is never the pick; infinities order as numbers.
  EXPECT_EQ(sample({kNaN, 1.0f, kNaN, 2.0f}, nullptr, &rng), 3);
  EXPECT_EQ(sample({-kInf, -kInf, -kInf}, nullptr, &rng), 0);
  EXPECT_EQ(sample({1.0f, kInf, kInf}, nullptr, &rng), 1);
  EXPECT_EQ(sample({kNaN, -kInf}, nullptr, &rng), 1);
}

TEST(Sample, RejectsBadArguments) {
  quench_error err;
  int64_t token = -1;
  uint64_t rng = 0;
  float l[3] = {kNaN, kNaN, kNaN};
  EXPECT_EQ(quench_sample(l, 3, nullptr, &rng, &token, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message, "quench_sample: every logit is NaN");
  EXPECT_EQ(token, -1);
  float ok[2] = {1, 2};
  EXPECT_EQ(quench_sample(ok, 0, nullptr, &rng, &token, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(quench_sample(ok, -1, nullptr, &rng, &token, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(quench_sample(nullptr, 2, nullptr, &rng, &token, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(quench_sample(ok, 2, nullptr, &rng, nullptr, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  quench_sampling hot = {1.0f, 0, 1.0f};
  EXPECT_EQ(quench_sample(ok, 2, &hot, nullptr, &token, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message, "quench_sample: rng_state is NULL");
  // NULL err is fine.
  EXPECT_EQ(quench_sample(l, 3, nullptr, &rng, &token, nullptr),
            QUENCH_ERR_INVALID_ARGUMENT);
}

TEST(Sample, FollowsTheSoftmax) {
  // p = [0.5, 0.25, 0.125, 0.125] at temperature 1.
  std::vector<float> l = {std::log(0.5f), std::log(0.25f), std::log(0.125f),
                          std::log(0.125f)};
  const int draws = 40000;
  quench_sampling t1 = {1.0f, 0, 1.0f};
  auto h = histogram(l, t1, draws, 1234);
  const double want1[4] = {0.5, 0.25, 0.125, 0.125};
  for (int v = 0; v < 4; ++v)
    EXPECT_NEAR(h[v] / double(draws), want1[v], 0.01) << v;
  // Temperature 2: p^(1/2) normalized = [0.369, 0.261, 0.185, 0.185].
  quench_sampling t2 = {2.0f, 0, 1.0f};
  h = histogram(l, t2, draws, 99);
  double z = std::sqrt(0.5) + std::sqrt(0.25) + 2 * std::sqrt(0.125);
  const double want2[4] = {std::sqrt(0.5) / z, std::sqrt(0.25) / z,
                           std::sqrt(0.125) / z, std::sqrt(0.125) / z};
  for (int v = 0; v < 4; ++v)
    EXPECT_NEAR(h[v] / double(draws), want2[v], 0.01) << v;
  // A very low temperature is greedy in effect.
  quench_sampling cold = {1e-6f, 0, 1.0f};
  h = histogram(l, cold, 1000, 7);
  EXPECT_EQ(h[0], 1000);
}

TEST(Sample, TopKAndTopPRestrictTheCandidates) {
  std::vector<float> l = {std::log(0.1f), std::log(0.4f), std::log(0.2f),
                          std::log(0.3f)};
  const int draws = 20000;
  // top_k = 1 is greedy.
  quench_sampling k1 = {1.0f, 1, 1.0f};
  EXPECT_EQ(histogram(l, k1, 500, 3)[1], 500);
  // top_k = 2: tokens 1 and 3, renormalized 4:3.
  quench_sampling k2 = {1.0f, 2, 1.0f};
  auto h = histogram(l, k2, draws, 4);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_NEAR(h[1] / double(draws), 4.0 / 7, 0.012);
  EXPECT_NEAR(h[3] / double(draws), 3.0 / 7, 0.012);
  // top_k >= vocab, 0 or negative: every token.
  for (int32_t k : {4, 100, 0, -3}) {
    quench_sampling all = {1.0f, k, 1.0f};
    EXPECT_EQ(histogram(l, all, 2000, 5).size(), 4u) << k;
  }
  // A tiny top_p is greedy.
  quench_sampling p0 = {1.0f, 0, 1e-6f};
  EXPECT_EQ(histogram(l, p0, 500, 6)[1], 500);
  // top_p = 0.6: the smallest set reaching 0.6 is {1, 3} (0.7).
  quench_sampling p6 = {1.0f, 0, 0.6f};
  h = histogram(l, p6, draws, 8);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_NEAR(h[1] / double(draws), 4.0 / 7, 0.012);
  // top_p = 0.75: {1, 3, 2} (0.9).
  quench_sampling p75 = {1.0f, 0, 0.75f};
  h = histogram(l, p75, draws, 9);
  EXPECT_EQ(h.size(), 3u);
  EXPECT_EQ(h.count(0), 0u);
  // top_p >= 1 or <= 0: every token.
  for (float p : {1.0f, 2.0f, 0.0f, -1.0f}) {
    quench_sampling all = {1.0f, 0, p};
    EXPECT_EQ(histogram(l, all, 2000, 10).size(), 4u) << p;
  }
  // top_k first, then top_p of the renormalized rest: top_k = 3 keeps
  // {1, 3, 2} (4:3:2), top_p = 0.5 then needs 1 and 3.
  quench_sampling kp = {1.0f, 3, 0.5f};
  h = histogram(l, kp, draws, 11);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_EQ(h.count(0) + h.count(2), 0u);
}

TEST(Sample, TiesAndNaNs) {
  // Equal logits: every token equally likely, also within top_k.
  std::vector<float> flat(8, 0.5f);
  quench_sampling t = {1.0f, 0, 1.0f};
  auto h = histogram(flat, t, 16000, 12);
  EXPECT_EQ(h.size(), 8u);
  for (auto &kv : h)
    EXPECT_NEAR(kv.second / 16000.0, 0.125, 0.015) << kv.first;
  // top_k among ties keeps the lowest ids.
  quench_sampling k3 = {1.0f, 3, 1.0f};
  h = histogram(flat, k3, 3000, 13);
  EXPECT_EQ(h.size(), 3u);
  EXPECT_EQ(h.count(0) + h.count(1) + h.count(2), 3u);
  // NaN logits are never picked, with or without restrictions.
  std::vector<float> l = {kNaN, 0.0f, kNaN, 0.0f, kNaN};
  for (quench_sampling p : {quench_sampling{1.0f, 0, 1.0f},
                            quench_sampling{1.0f, 4, 1.0f},
                            quench_sampling{3.0f, 0, 0.9f}}) {
    h = histogram(l, p, 2000, 14);
    EXPECT_EQ(h.size(), 2u);
    EXPECT_EQ(h.count(1) + h.count(3), 2u);
  }
}

TEST(Sample, Infinities) {
  // +inf outweighs every finite logit; several +inf share the mass.
  quench_sampling t = {1.0f, 0, 1.0f};
  auto h = histogram({0.0f, kInf, 5.0f}, t, 1000, 15);
  EXPECT_EQ(h.size(), 1u);
  EXPECT_EQ(h[1], 1000);
  h = histogram({kInf, 0.0f, kInf}, t, 4000, 16);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_NEAR(h[0] / 4000.0, 0.5, 0.04);
  // -inf is never picked beside a finite logit, even at an infinite
  // temperature (every finite logit equally likely).
  quench_sampling hot = {kInf, 0, 1.0f};
  h = histogram({-kInf, 1.0f, 7.0f, -kInf}, hot, 4000, 17);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_NEAR(h[1] / 4000.0, 0.5, 0.04);
  h = histogram({-kInf, 1.0f, 7.0f, -kInf}, t, 1000, 18);
  EXPECT_EQ(h.count(0) + h.count(3), 0u);
  // All -inf: every token equally likely (no better information).
  h = histogram({-kInf, -kInf, -kInf}, t, 3000, 19);
  EXPECT_EQ(h.size(), 3u);
  // Huge finite logits do not overflow.
  h = histogram({-3e38f, 3e38f, 3e38f}, t, 2000, 20);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_EQ(h.count(0), 0u);
}

TEST(Sample, SeedsAreReproducible) {
  std::vector<float> l(50);
  for (int i = 0; i < 50; ++i)
    l[i] = std::sin(0.7f * i);
  quench_sampling p = {0.9f, 20, 0.95f};
  auto run = [&](uint64_t seed) {
    uint64_t rng = seed;
    std::vector<int64_t> ids;
    for (int i = 0; i < 64; ++i)
      ids.push_back(sample(l, &p, &rng));
    return ids;
  };
  EXPECT_EQ(run(1), run(1));
  EXPECT_EQ(run(0), run(0));
  EXPECT_NE(run(1), run(2));
  EXPECT_NE(run(0), run(~0ull));
}

} // namespace
