// quench_model_run with hand-written entry points that follow the generated
// ABI: input validation, descriptors, strided outputs, outputs returned
// twice, the per-call thread pool, and memrefCopy.
#include "TestUtil.h"

#include "quench/runtime_abi.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

// Sanitized builds: the out-of-memory test needs a failed allocation to
// return NULL, as the C library's does, instead of ASan's report.
#if defined(__SANITIZE_ADDRESS__)
#define QUENCH_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QUENCH_TEST_ASAN 1
#endif
#endif
#ifdef QUENCH_TEST_ASAN
extern "C" const char *__asan_default_options() {
  return "allocator_may_return_null=1";
}
#endif

namespace {

// Rank-2 memref descriptor as the generated code sees it.
struct Desc2 {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes[2];
  int64_t strides[2];
};

quench_threadpool *seenPool;

// y = 2 * x (x: f32[?, 3]); also returns the transpose of x as a strided
// view of one allocation, and y a second time.
void entryScaleTranspose(void **args) {
  const Desc2 *x = static_cast<const Desc2 *>(args[0]);
  Desc2 *out = static_cast<Desc2 *>(args[1]);
  seenPool = quench_current_threadpool();
  int64_t n = x->sizes[0];
  const float *in = static_cast<const float *>(x->aligned) + x->offset;
  // Buffers of generated code come from the runtime's allocator.
  float *y = static_cast<float *>(
      quench_buffer_alloc(sizeof(float) * (n * 3 + 1), 0));
  float *t = static_cast<float *>(
      quench_buffer_alloc(sizeof(float) * (n * 3 + 1), 0));
  for (int64_t i = 0; i < n * 3; ++i) {
    y[i] = 2 * in[i];
    t[i] = in[i];
  }
  out[0] = {y, y, 0, {n, 3}, {3, 1}};
  // The transpose [3, n] viewed over row-major [n, 3] storage.
  out[1] = {t, t, 0, {3, n}, {1, 3}};
  out[2] = out[0];
}

const int64_t xShape[] = {-1, 3};
const int64_t yShape[] = {-1, 3};
const int64_t tShape[] = {3, -1};
const quench_io_info inputs[] = {{"x", QUENCH_DTYPE_F32, 2, xShape}};
const quench_io_info outputs[] = {{"y", QUENCH_DTYPE_F32, 2, yShape},
                                  {"xt", QUENCH_DTYPE_F32, 2, tShape},
                                  {"y_again", QUENCH_DTYPE_F32, 2, yShape}};
const quench_model model = {QUENCH_MODEL_ABI_VERSION, 1, 3, 0, "test",
                            inputs, outputs, entryScaleTranspose};

TEST(Model, RunsAndCopiesStridedAndRepeatedOutputs) {
  float data[6] = {1, 2, 3, 4, 5, 6};
  quench_tensor x = {data, QUENCH_DTYPE_F32, 2, {2, 3}};
  quench_tensor out[3];
  quench_error err;
  quench_threadpool *pool = quench_threadpool_create(2, &err);
  ASSERT_NE(pool, nullptr);
  ASSERT_EQ(quench_model_run(&model, &x, 1, out, 3, pool, &err), QUENCH_OK)
      << err.message;
  EXPECT_EQ(seenPool, pool);
  EXPECT_EQ(quench_current_threadpool(), nullptr);
  const float *y = static_cast<const float *>(out[0].data);
  const float *xt = static_cast<const float *>(out[1].data);
  const float *y2 = static_cast<const float *>(out[2].data);
  EXPECT_EQ(out[1].shape[0], 3);
  EXPECT_EQ(out[1].shape[1], 2);
  const float wantT[6] = {1, 4, 2, 5, 3, 6};
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(y[i], 2 * data[i]);
    EXPECT_EQ(y2[i], 2 * data[i]);
    EXPECT_EQ(xt[i], wantT[i]);
  }
  EXPECT_NE(out[0].data, out[2].data);
  for (quench_tensor &t : out)
    quench_tensor_free(&t);
  quench_threadpool_destroy(pool);
}

TEST(Model, RejectsMismatchedInputs) {
  float data[8] = {0};
  quench_tensor out[3];
  quench_error err;
  quench_tensor wrongShape = {data, QUENCH_DTYPE_F32, 2, {2, 4}};
  EXPECT_EQ(quench_model_run(&model, &wrongShape, 1, out, 3, nullptr, &err),
            QUENCH_ERR_SHAPE_MISMATCH);
  EXPECT_STREQ(err.message, "input 'x' (#0): expected f32[?, 3], got f32[2, 4]");
  EXPECT_EQ(out[0].data, nullptr);
  quench_tensor wrongType = {data, QUENCH_DTYPE_I32, 2, {2, 3}};
  EXPECT_EQ(quench_model_run(&model, &wrongType, 1, out, 3, nullptr, &err),
            QUENCH_ERR_DTYPE_MISMATCH);
  EXPECT_STREQ(err.message, "input 'x' (#0): expected f32[?, 3], got i32[2, 3]");
  quench_tensor wrongRank = {data, QUENCH_DTYPE_F32, 1, {6}};
  EXPECT_EQ(quench_model_run(&model, &wrongRank, 1, out, 3, nullptr, &err),
            QUENCH_ERR_SHAPE_MISMATCH);
  quench_tensor noData = {nullptr, QUENCH_DTYPE_F32, 2, {2, 3}};
  EXPECT_EQ(quench_model_run(&model, &noData, 1, out, 3, nullptr, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message, "input 'x' (#0): data is NULL");
  quench_tensor ok = {data, QUENCH_DTYPE_F32, 2, {2, 3}};
  EXPECT_EQ(quench_model_run(&model, &ok, 2, out, 3, nullptr, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message, "model 'test' takes 1 inputs, got 2");
  EXPECT_EQ(quench_model_run(&model, &ok, 1, out, 1, nullptr, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(quench_model_run(nullptr, &ok, 1, out, 3, nullptr, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  quench_model old = model;
  old.abi_version = 99;
  EXPECT_EQ(quench_model_run(&old, &ok, 1, out, 3, nullptr, &err),
            QUENCH_ERR_UNSUPPORTED);
}

TEST(Model, Metadata) {
  size_t size = 99;
  EXPECT_EQ(quench_model_metadata(&model, &size), nullptr);
  EXPECT_EQ(size, 0u);
  EXPECT_EQ(quench_model_metadata(nullptr, &size), nullptr);
  quench_model withMetadata = model;
  withMetadata.metadata = "{\"a\": 1}";
  withMetadata.metadata_size = 8;
  EXPECT_STREQ(quench_model_metadata(&withMetadata, &size), "{\"a\": 1}");
  EXPECT_EQ(size, 8u);
  EXPECT_NE(quench_model_metadata(&withMetadata, nullptr), nullptr);
  // Version 3 descriptors have no metadata fields: never read.
  withMetadata.abi_version = 3;
  EXPECT_EQ(quench_model_metadata(&withMetadata, &size), nullptr);
  EXPECT_EQ(size, 0u);
}

// A run that allocates two buffers and then fails a run-time check (as a
// cf.assert of generated code does), or fails a third allocation.
bool failAllocation;
void entryAllocateThenFail(void **) {
  void *a = _mlir_memref_to_llvm_alloc(4096);
  void *b = _mlir_memref_to_llvm_aligned_alloc(64, 8192);
  static_cast<char *>(a)[0] = static_cast<char *>(b)[0] = 1;
  if (failAllocation)
    (void)_mlir_memref_to_llvm_alloc(SIZE_MAX / 2);
  quench_rt_check_failed("node 'n' (Div): integer division by zero");
}

const quench_model failingModel = {QUENCH_MODEL_ABI_VERSION, 1, 3, 0, "bad",
                                   inputs, outputs, entryAllocateThenFail};

TEST(Model, FailedCheckFreesTheRunsBuffers) {
  float data[6] = {0};
  quench_tensor x = {data, QUENCH_DTYPE_F32, 2, {2, 3}};
  quench_tensor out[3];
  quench_error err;
  failAllocation = false;
  quench_buffer_cache_trim();
  ASSERT_EQ(quench_buffer_cache_bytes(), 0u);
  EXPECT_EQ(quench_model_run(&failingModel, &x, 1, out, 3, nullptr, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message,
               "model 'bad': node 'n' (Div): integer division by zero");
  EXPECT_EQ(out[0].data, nullptr);
  // Both buffers went back to the allocator (its cache holds them).
  EXPECT_GE(quench_buffer_cache_bytes(), 4096u + 8192u);
  // A good run afterwards tracks nothing of the failed one.
  ASSERT_EQ(quench_model_run(&model, &x, 1, out, 3, nullptr, &err), QUENCH_OK);
  for (quench_tensor &t : out)
    quench_tensor_free(&t);
  quench_buffer_cache_trim();
}

TEST(Model, FailedAllocationEndsTheRunWithOutOfMemory) {
  float data[6] = {0};
  quench_tensor x = {data, QUENCH_DTYPE_F32, 2, {2, 3}};
  quench_tensor out[3];
  quench_error err;
  failAllocation = true;
  quench_buffer_cache_trim();
  EXPECT_EQ(quench_model_run(&failingModel, &x, 1, out, 3, nullptr, &err),
            QUENCH_ERR_OUT_OF_MEMORY);
  EXPECT_NE(std::strstr(err.message, "model 'bad': out of memory: cannot "
                                     "allocate a buffer of"),
            nullptr)
      << err.message;
  EXPECT_EQ(out[0].data, nullptr);
  EXPECT_GE(quench_buffer_cache_bytes(), 4096u + 8192u);
  quench_buffer_cache_trim();
  failAllocation = false;
}

// A check whose message carries values (quench_rt_check_failed_values):
// `{0}` and `{1}` become the values, everything else stays.
void entryIndexOutOfRange(void **) {
  quench_rt_check_failed_values(
      "node 'g' (Gather): index {0} is outside [-{1}, {1}) of axis 0 {2}",
      INT64_MIN, 65);
}

const quench_model indexModel = {QUENCH_MODEL_ABI_VERSION, 1, 3, 0, "idx",
                                 inputs, outputs, entryIndexOutOfRange};

TEST(Model, FailedCheckFormatsItsValues) {
  float data[6] = {0};
  quench_tensor x = {data, QUENCH_DTYPE_F32, 2, {2, 3}};
  quench_tensor out[3];
  quench_error err;
  EXPECT_EQ(quench_model_run(&indexModel, &x, 1, out, 3, nullptr, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(err.message,
               "model 'idx': node 'g' (Gather): index -9223372036854775808 is "
               "outside [-65, 65) of axis 0 {2}");
  EXPECT_EQ(out[0].data, nullptr);
}

// A parallel loop whose chunks allocate a buffer each and, on a worker
// thread (not the run's), fail a check or an allocation: the failure ends
// the run with its status and message on the caller's thread, after every
// chunk in flight finished, and frees the workers' buffers.
pthread_t runThread;
bool failOnWorkerByAllocation;
std::atomic<int> workerChunks;

void chunkAllocateThenFail(void *, int64_t, int64_t) {
  void *buffer = _mlir_memref_to_llvm_alloc(4096);
  static_cast<char *>(buffer)[0] = 1;
  usleep(2000); // both threads take chunks
  if (pthread_equal(pthread_self(), runThread))
    return _mlir_memref_to_llvm_free(buffer);
  ++workerChunks;
  if (failOnWorkerByAllocation)
    (void)_mlir_memref_to_llvm_alloc(SIZE_MAX / 2);
  quench_rt_check_failed_values("node 'w' (Div): divisor {0} on a worker", 0,
                                0);
}

void entryParallelFailure(void **) {
  runThread = pthread_self();
  quench_parallel_for(quench_current_threadpool(), 64, 1,
                      chunkAllocateThenFail, nullptr);
}

const quench_model parallelModel = {QUENCH_MODEL_ABI_VERSION, 1, 3, 0, "par",
                                    inputs, outputs, entryParallelFailure};

TEST(Model, FailureOnAWorkerEndsTheRun) {
  float data[6] = {0};
  quench_tensor x = {data, QUENCH_DTYPE_F32, 2, {2, 3}};
  quench_tensor out[3];
  quench_error err;
  quench_threadpool *pool = quench_threadpool_create(2, &err);
  ASSERT_NE(pool, nullptr);
  for (bool byAllocation : {false, true}) {
    failOnWorkerByAllocation = byAllocation;
    workerChunks = 0;
    quench_buffer_cache_trim();
    EXPECT_EQ(quench_model_run(&parallelModel, &x, 1, out, 3, pool, &err),
              byAllocation ? QUENCH_ERR_OUT_OF_MEMORY
                           : QUENCH_ERR_INVALID_ARGUMENT);
    ASSERT_GE(workerChunks.load(), 1) << "no chunk ran on the worker";
    if (byAllocation)
      EXPECT_NE(std::strstr(err.message, "model 'par': out of memory: cannot "
                                         "allocate a buffer of"),
                nullptr)
          << err.message;
    else
      EXPECT_STREQ(err.message, "model 'par': node 'w' (Div): divisor 0 on a "
                                "worker");
    EXPECT_EQ(out[0].data, nullptr);
    // The worker's buffer went back to the allocator with the run.
    EXPECT_GE(quench_buffer_cache_bytes(), 4096u);
  }
  // The pool is free again: a good run uses it.
  seenPool = nullptr;
  ASSERT_EQ(quench_model_run(&model, &x, 1, out, 3, pool, &err), QUENCH_OK);
  EXPECT_EQ(seenPool, pool);
  for (quench_tensor &t : out)
    quench_tensor_free(&t);
  quench_threadpool_destroy(pool);
  quench_buffer_cache_trim();
}

// A model whose run allocates the buffers of its size table (as generated
// code does: the sizes it asks for, all held until the end) and records the
// cache's bytes before and after allocating them.
const uint64_t warmSizes[] = {4096 + 64, 24576 + 64, 300000, 1 << 20,
                              1 << 20};
constexpr size_t kWarmCount = sizeof warmSizes / sizeof warmSizes[0];
size_t cachedAtEntry, cachedAfterAllocs;

void entryAllocatesTheTable(void **) {
  cachedAtEntry = quench_buffer_cache_bytes();
  void *held[kWarmCount];
  for (size_t i = 0; i < kWarmCount; ++i) {
    held[i] = _mlir_memref_to_llvm_alloc(warmSizes[i]);
    std::memset(held[i], 1, warmSizes[i]);
  }
  cachedAfterAllocs = quench_buffer_cache_bytes();
  for (void *p : held)
    _mlir_memref_to_llvm_free(p);
}

const quench_model warmModel = {
    QUENCH_MODEL_ABI_VERSION, 1, 0, 0, "warm", inputs, nullptr,
    entryAllocatesTheTable, nullptr, 0, nullptr, nullptr, 0, warmSizes,
    kWarmCount};

// Whether every page of [p, p + size) is resident.
bool resident(const void *p, size_t size) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  uintptr_t begin = reinterpret_cast<uintptr_t>(p) & ~(page - 1);
  size_t pages = (reinterpret_cast<uintptr_t>(p) + size - begin + page - 1) /
                 page;
  std::vector<unsigned char> in(pages);
  if (mincore(reinterpret_cast<void *>(begin), pages * page, in.data()) != 0)
    return false;
  for (unsigned char v : in)
    if (!(v & 1))
      return false;
  return true;
}

TEST(Model, LoadWarmsTheBufferCacheForTheFirstRun) {
  // What the table's buffers take in the cache (size classes).
  quench_buffer_cache_trim();
  std::vector<void *> buffers;
  for (uint64_t size : warmSizes)
    buffers.push_back(quench_buffer_alloc(size, 0));
  for (void *p : buffers)
    quench_buffer_free(p);
  size_t want = quench_buffer_cache_bytes();
  ASSERT_GE(want, 4096u + 24576u + 300000u + (2u << 20));
  quench_buffer_cache_trim();

  // A version-4 descriptor has no table: never read, nothing warmed.
  quench_model v4 = warmModel;
  v4.abi_version = 4;
  quench_error err;
  ASSERT_EQ(quench_model_load(&v4, &err), QUENCH_OK);
  EXPECT_EQ(quench_buffer_cache_bytes(), 0u);

  ASSERT_EQ(quench_model_load(&warmModel, &err), QUENCH_OK);
  EXPECT_EQ(quench_buffer_cache_bytes(), want);
  // The cached buffers' pages are mapped already.
  void *big = quench_buffer_alloc(1 << 20, 0);
  EXPECT_TRUE(resident(big, 1 << 20));
  quench_buffer_free(big);
  EXPECT_EQ(quench_buffer_cache_bytes(), want);

  // The first run takes every buffer from the cache (none from the C
  // library) and leaves the cache as it found it.
  float data[6] = {0};
  quench_tensor x = {data, QUENCH_DTYPE_F32, 2, {2, 3}};
  ASSERT_EQ(quench_model_run(&warmModel, &x, 1, nullptr, 0, nullptr, &err),
            QUENCH_OK)
      << err.message;
  EXPECT_EQ(cachedAtEntry, want);
  EXPECT_EQ(cachedAfterAllocs, 0u);
  EXPECT_EQ(quench_buffer_cache_bytes(), want);

  // Once per model: a later load (every run loads) warms nothing again.
  quench_buffer_cache_trim();
  ASSERT_EQ(quench_model_load(&warmModel, &err), QUENCH_OK);
  EXPECT_EQ(quench_buffer_cache_bytes(), 0u);
}

TEST(Model, WarmingSkipsTablesOverTheLimitAndUncachedSizes) {
  quench_error err;
  quench_buffer_cache_trim();
  // Over QUENCH_BUFFER_WARM_BYTES: nothing at all.
  const uint64_t tooMuch[] = {4096, QUENCH_BUFFER_WARM_BYTES + 1};
  quench_model large = warmModel;
  large.buffer_sizes = tooMuch;
  large.num_buffer_sizes = 2;
  ASSERT_EQ(quench_model_load(&large, &err), QUENCH_OK);
  EXPECT_EQ(quench_buffer_cache_bytes(), 0u);
  // A size the cache never keeps (over 1 GiB) is left out; the rest warms.
  const uint64_t uncached[] = {(uint64_t)3 << 30, 4096};
  quench_model huge = warmModel;
  huge.buffer_sizes = uncached;
  huge.num_buffer_sizes = 2;
  ASSERT_EQ(quench_model_load(&huge, &err), QUENCH_OK);
  EXPECT_EQ(quench_buffer_cache_bytes(), 4096u);
  quench_buffer_cache_trim();
}

TEST(Model, FindsInputsByName) {
  EXPECT_EQ(quench_model_find_input(&model, "x"), 0);
  EXPECT_EQ(quench_model_find_input(&model, "y"), -1);
  EXPECT_EQ(quench_model_find_input(nullptr, "x"), -1);
  EXPECT_EQ(quench_model_find_input(&model, nullptr), -1);
}

TEST(Model, MemrefCopyHandlesStridesAndOffsets) {
  // src: 2x3 view with offset 1 and row stride 4 over 9 floats; dst: a
  // column-major 2x3 buffer.
  float src[9] = {0, 1, 2, 3, 0, 4, 5, 6, 0};
  float dst[6] = {0};
  Desc2 s = {src, src, 1, {2, 3}, {4, 1}};
  Desc2 d = {dst, dst, 0, {2, 3}, {1, 2}};
  quench_unranked_memref us = {2, &s}, ud = {2, &d};
  memrefCopy(sizeof(float), &us, &ud);
  const float want[6] = {1, 4, 2, 5, 3, 6};
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(dst[i], want[i]);
}

} // namespace
