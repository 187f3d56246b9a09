// Thread pool and quench_parallel_for.
#include "quench/runtime_abi.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <chrono>
#include <thread>
#include <utility>
#include <vector>

namespace {

struct SumCtx {
  std::atomic<int64_t> sum{0};
  std::atomic<int64_t> calls{0};
  std::atomic<int64_t> minChunk{INT64_MAX};
  std::vector<std::atomic<int>> *hits = nullptr;
};

void sumBody(void *p, int64_t begin, int64_t end) {
  auto *ctx = static_cast<SumCtx *>(p);
  int64_t s = 0;
  for (int64_t i = begin; i < end; ++i) {
    s += i;
    if (ctx->hits)
      (*ctx->hits)[static_cast<size_t>(i)]++;
  }
  ctx->sum += s;
  ctx->calls++;
  int64_t len = end - begin, cur = ctx->minChunk.load();
  while (len < cur && !ctx->minChunk.compare_exchange_weak(cur, len)) {
  }
}

struct ChunkLog {
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> chunks;
};

void logBody(void *p, int64_t begin, int64_t end) {
  auto *log = static_cast<ChunkLog *>(p);
  std::lock_guard<std::mutex> lock(log->mu);
  log->chunks.emplace_back(begin, end);
}

std::vector<std::pair<int64_t, int64_t>> chunksOf(quench_threadpool *pool, int64_t n,
                                                  int64_t grain) {
  ChunkLog log;
  EXPECT_EQ(quench_parallel_for(pool, n, grain, logBody, &log), QUENCH_OK);
  std::sort(log.chunks.begin(), log.chunks.end());
  return log.chunks;
}

class PoolSizes : public ::testing::TestWithParam<int> {};

} // namespace

TEST(ThreadPool, CreateSizes) {
  quench_error err;
  for (int n : {1, 2, 4, 7}) {
    quench_threadpool *pool = quench_threadpool_create(n, &err);
    ASSERT_NE(pool, nullptr) << err.message;
    EXPECT_EQ(err.code, QUENCH_OK);
    EXPECT_EQ(quench_threadpool_size(pool), n);
    quench_threadpool_destroy(pool);
  }
  quench_threadpool *all = quench_threadpool_create(0, &err);
  ASSERT_NE(all, nullptr) << err.message;
  EXPECT_EQ(quench_threadpool_size(all), static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
  quench_threadpool_destroy(all);
  EXPECT_EQ(quench_threadpool_size(nullptr), 1);
  quench_threadpool_destroy(nullptr);
}

TEST(ThreadPool, CreateRejectsBadCounts) {
  quench_error err;
  EXPECT_EQ(quench_threadpool_create(-1, &err), nullptr);
  EXPECT_EQ(err.code, QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.message).find("-1"), std::string::npos) << err.message;
  EXPECT_EQ(quench_threadpool_create(1 << 20, &err), nullptr);
  EXPECT_EQ(err.code, QUENCH_ERR_INVALID_ARGUMENT);
}

TEST_P(PoolSizes, SumsEveryIndexExactlyOnce) {
  quench_error err;
  quench_threadpool *pool = quench_threadpool_create(GetParam(), &err);
  ASSERT_NE(pool, nullptr) << err.message;
  for (int64_t n : {1, 2, 3, 5, 64, 1000, 100003}) {
    for (int64_t grain : {0, 1, 7, 1000, 200000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      SumCtx ctx;
      ctx.hits = &hits;
      ASSERT_EQ(quench_parallel_for(pool, n, grain, sumBody, &ctx), QUENCH_OK);
      EXPECT_EQ(ctx.sum.load(), n * (n - 1) / 2) << "n=" << n << " grain=" << grain;
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "index " << i;
      int64_t g = grain < 1 ? 1 : grain;
      EXPECT_LE(ctx.calls.load(), 4 * quench_threadpool_size(pool));
      if (n >= g)
        EXPECT_GE(ctx.minChunk.load(), g) << "n=" << n << " grain=" << grain;
      else
        EXPECT_EQ(ctx.calls.load(), 1);
    }
  }
  quench_threadpool_destroy(pool);
}

INSTANTIATE_TEST_SUITE_P(Threads, PoolSizes, ::testing::Values(1, 2, 4, 0));

TEST(ThreadPool, NullPoolRunsInline) {
  SumCtx ctx;
  ASSERT_EQ(quench_parallel_for(nullptr, 100, 1, sumBody, &ctx), QUENCH_OK);
  EXPECT_EQ(ctx.sum.load(), 4950);
  EXPECT_EQ(ctx.calls.load(), 1);
}

TEST(ThreadPool, ZeroIterationsNeverCallsFn) {
  quench_threadpool *pool = quench_threadpool_create(4, nullptr);
  ASSERT_NE(pool, nullptr);
  SumCtx ctx;
  EXPECT_EQ(quench_parallel_for(pool, 0, 1, sumBody, &ctx), QUENCH_OK);
  EXPECT_EQ(quench_parallel_for(nullptr, 0, 1, sumBody, &ctx), QUENCH_OK);
  EXPECT_EQ(ctx.calls.load(), 0);
  EXPECT_EQ(quench_parallel_for(pool, -1, 1, sumBody, &ctx), QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(quench_parallel_for(pool, 10, 1, nullptr, &ctx), QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ctx.calls.load(), 0);
  quench_threadpool_destroy(pool);
}

TEST(ThreadPool, PartitionIsDeterministicAndDocumented) {
  quench_threadpool *pool = quench_threadpool_create(4, nullptr);
  ASSERT_NE(pool, nullptr);
  using Chunks = std::vector<std::pair<int64_t, int64_t>>;
  // Up to 4 chunks per thread.
  Chunks ones;
  for (int64_t i = 0; i < 10; ++i)
    ones.push_back({i, i + 1});
  EXPECT_EQ(chunksOf(pool, 10, 1), ones);
  Chunks sixteen;
  for (int64_t i = 0, b = 0; i < 16; ++i) { // q = 2, r = 8
    int64_t e = b + (i < 8 ? 3 : 2);
    sixteen.push_back({b, e});
    b = e;
  }
  EXPECT_EQ(chunksOf(pool, 40, 1), sixteen);
  EXPECT_EQ(chunksOf(pool, 10, 4), (Chunks{{0, 5}, {5, 10}}));
  EXPECT_EQ(chunksOf(pool, 10, 3), (Chunks{{0, 4}, {4, 7}, {7, 10}}));
  EXPECT_EQ(chunksOf(pool, 3, 5), (Chunks{{0, 3}}));
  EXPECT_EQ(chunksOf(pool, 2, 0), (Chunks{{0, 1}, {1, 2}}));
  for (int i = 0; i < 50; ++i)
    ASSERT_EQ(chunksOf(pool, 1001, 10), chunksOf(pool, 1001, 10));
  quench_threadpool_destroy(pool);
}

TEST(ThreadPool, ChunksRunOnDistinctThreads) {
  quench_threadpool *pool = quench_threadpool_create(4, nullptr);
  ASSERT_NE(pool, nullptr);
  struct Ctx {
    std::mutex mu;
    std::set<std::thread::id> ids;
  } ctx;
  // Each chunk takes 50 ms: the 8 chunks cannot all be taken by one thread
  // before the others wake.
  auto body = [](void *p, int64_t, int64_t) {
    auto *c = static_cast<Ctx *>(p);
    {
      std::lock_guard<std::mutex> lock(c->mu);
      c->ids.insert(std::this_thread::get_id());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  };
  ASSERT_EQ(quench_parallel_for(pool, 8, 1, body, &ctx), QUENCH_OK);
  EXPECT_GE(ctx.ids.size(), 3u);
  EXPECT_EQ(ctx.ids.count(std::this_thread::get_id()), 1u); // caller helps
  quench_threadpool_destroy(pool);
}

TEST(ThreadPool, SlowChunkDoesNotHoldBackTheOthers) {
  // Two threads, 8 chunks; chunk 0 takes 300 ms, the others none: whoever
  // takes chunk 0 is busy while the other thread takes all the rest.
  quench_threadpool *pool = quench_threadpool_create(2, nullptr);
  ASSERT_NE(pool, nullptr);
  struct Ctx {
    std::mutex mu;
    std::vector<std::pair<int64_t, std::thread::id>> runs;
  } ctx;
  auto body = [](void *p, int64_t begin, int64_t) {
    auto *c = static_cast<Ctx *>(p);
    {
      std::lock_guard<std::mutex> lock(c->mu);
      c->runs.push_back({begin, std::this_thread::get_id()});
    }
    if (begin == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
  };
  ASSERT_EQ(quench_parallel_for(pool, 8, 1, body, &ctx), QUENCH_OK);
  ASSERT_EQ(ctx.runs.size(), 8u);
  std::thread::id slow;
  for (auto &[begin, id] : ctx.runs)
    if (begin == 0)
      slow = id;
  int bySlow = 0;
  for (auto &[begin, id] : ctx.runs)
    bySlow += id == slow;
  EXPECT_EQ(bySlow, 1);
  quench_threadpool_destroy(pool);
}

namespace {
struct NestedCtx {
  quench_threadpool *pool;
  std::atomic<int64_t> sum{0};
};
void innerBody(void *p, int64_t begin, int64_t end) {
  auto *c = static_cast<NestedCtx *>(p);
  for (int64_t i = begin; i < end; ++i)
    c->sum += i;
}
void outerBody(void *p, int64_t begin, int64_t end) {
  auto *c = static_cast<NestedCtx *>(p);
  for (int64_t i = begin; i < end; ++i)
    EXPECT_EQ(quench_parallel_for(c->pool, 100, 1, innerBody, c), QUENCH_OK);
}
} // namespace

TEST(ThreadPool, NestedCallsRunInline) {
  quench_threadpool *pool = quench_threadpool_create(4, nullptr);
  ASSERT_NE(pool, nullptr);
  NestedCtx ctx;
  ctx.pool = pool;
  ASSERT_EQ(quench_parallel_for(pool, 16, 1, outerBody, &ctx), QUENCH_OK);
  EXPECT_EQ(ctx.sum.load(), 16 * 4950);
  quench_threadpool_destroy(pool);
}

TEST(ThreadPool, ConcurrentCallersShareAPool) {
  quench_threadpool *pool = quench_threadpool_create(3, nullptr);
  ASSERT_NE(pool, nullptr);
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        SumCtx ctx;
        quench_parallel_for(pool, 1000, 1, sumBody, &ctx);
        if (ctx.sum.load() != 499500)
          bad++;
      }
    });
  for (auto &t : threads)
    t.join();
  EXPECT_EQ(bad.load(), 0);
  quench_threadpool_destroy(pool);
}

TEST(ThreadPool, TenThousandRepeatedCalls) {
  quench_threadpool *pool = quench_threadpool_create(4, nullptr);
  ASSERT_NE(pool, nullptr);
  SumCtx ctx;
  for (int i = 0; i < 10000; ++i)
    ASSERT_EQ(quench_parallel_for(pool, 64, 1, sumBody, &ctx), QUENCH_OK);
  EXPECT_EQ(ctx.sum.load(), int64_t{10000} * (64 * 63 / 2));
  EXPECT_EQ(ctx.calls.load(), 160000); // 16 chunks per call
  quench_threadpool_destroy(pool);
}

TEST(ThreadPool, CreateDestroyCycles) {
  for (int i = 0; i < 200; ++i) {
    quench_threadpool *pool = quench_threadpool_create(1 + i % 4, nullptr);
    ASSERT_NE(pool, nullptr);
    if (i % 2) {
      SumCtx ctx;
      ASSERT_EQ(quench_parallel_for(pool, 100, 1, sumBody, &ctx), QUENCH_OK);
      ASSERT_EQ(ctx.sum.load(), 4950);
    }
    quench_threadpool_destroy(pool);
  }
}

namespace {

/// Chunks of quench_parallel_for_work(pool, n, cost), sorted.
std::vector<std::pair<int64_t, int64_t>> workChunksOf(quench_threadpool *pool,
                                                      int64_t n, int64_t cost) {
  ChunkLog log;
  EXPECT_EQ(quench_parallel_for_work(pool, n, cost, logBody, &log), QUENCH_OK);
  std::sort(log.chunks.begin(), log.chunks.end());
  return log.chunks;
}

/// Sets an environment variable for the lifetime of the object.
class ScopedEnv {
public:
  ScopedEnv(const char *name, const char *value) : name(name) {
    if (const char *old = getenv(name))
      saved = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (saved.empty())
      unsetenv(name);
    else
      setenv(name, saved.c_str(), 1);
  }

private:
  const char *name;
  std::string saved;
};

} // namespace

TEST(ThreadPool, WorkBelowTheDispatchCostRunsInline) {
  // Dispatch 1000 ns: a chunk must carry 2 x 1000 ns, at 8 estimated
  // operations per ns 16000 operations, so a loop needs 32000 to be split.
  ScopedEnv env("QUENCH_DISPATCH_NS", "1000");
  quench_threadpool *pool = quench_threadpool_create(4, nullptr);
  ASSERT_NE(pool, nullptr);
  using Chunks = std::vector<std::pair<int64_t, int64_t>>;
  EXPECT_EQ(workChunksOf(pool, 100, 319), (Chunks{{0, 100}})); // 31900
  EXPECT_EQ(workChunksOf(pool, 1, 1000000), (Chunks{{0, 1}}));
  // 32000 operations: two chunks of 16000.
  EXPECT_EQ(workChunksOf(pool, 100, 320), (Chunks{{0, 50}, {50, 100}}));
  // Plenty of work: up to 4 chunks per thread.
  EXPECT_EQ(workChunksOf(pool, 1000, 10000).size(), 16u);
  // Cost < 1 counts as 1; n = 0 calls nothing; bad arguments are rejected.
  EXPECT_EQ(workChunksOf(pool, 31999, 0), (Chunks{{0, 31999}}));
  EXPECT_EQ(workChunksOf(pool, 0, 100000), Chunks{});
  ChunkLog log;
  EXPECT_EQ(quench_parallel_for_work(pool, -1, 1, logBody, &log),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(quench_parallel_for_work(pool, 10, 1, nullptr, &log),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(workChunksOf(nullptr, 1000, 1000), (Chunks{{0, 1000}}));
  quench_threadpool_destroy(pool);
}

TEST(ThreadPool, MeasuredDispatchCostSplitsLargeLoopsOnly) {
  ScopedEnv env("QUENCH_DISPATCH_NS", "");
  quench_threadpool *pool = quench_threadpool_create(2, nullptr);
  ASSERT_NE(pool, nullptr);
  // Whatever the measurement gave (it is at least the time of two atomic
  // round trips): one operation never pays for a dispatch, a second's worth
  // of operations always does.
  EXPECT_EQ(workChunksOf(pool, 1, 1).size(), 1u);
  std::vector<std::pair<int64_t, int64_t>> big =
      workChunksOf(pool, 64, int64_t{1} << 40);
  EXPECT_EQ(big.size(), 8u);
  SumCtx ctx;
  ASSERT_EQ(
      quench_parallel_for_work(pool, 1000, int64_t{1} << 40, sumBody, &ctx),
      QUENCH_OK);
  EXPECT_EQ(ctx.sum.load(), 499500);
  quench_threadpool_destroy(pool);
}
