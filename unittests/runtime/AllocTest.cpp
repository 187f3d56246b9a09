// The buffer allocator of generated code (runtime/lib/alloc.c).
#include "quench/runtime_abi.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace {

bool aligned(const void *p, size_t a) {
  return reinterpret_cast<uintptr_t>(p) % a == 0;
}

class BufferAlloc : public ::testing::Test {
protected:
  void SetUp() override { quench_buffer_cache_trim(); }
  void TearDown() override { quench_buffer_cache_trim(); }
};

TEST_F(BufferAlloc, AlignedAndWritable) {
  for (size_t size : {size_t(0), size_t(1), size_t(63), size_t(64),
                      size_t(1000), size_t(1) << 20}) {
    void *p = quench_buffer_alloc(size, 0);
    ASSERT_NE(p, nullptr) << size;
    EXPECT_TRUE(aligned(p, QUENCH_TENSOR_ALIGNMENT)) << size;
    std::memset(p, 0xab, size);
    quench_buffer_free(p);
  }
  for (size_t align : {size_t(128), size_t(4096)}) {
    void *p = quench_buffer_alloc(100, align);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(aligned(p, align)) << align;
    quench_buffer_free(p);
  }
}

TEST_F(BufferAlloc, RejectsBadAlignment) {
  EXPECT_EQ(quench_buffer_alloc(16, 96), nullptr);
  EXPECT_EQ(quench_buffer_alloc(SIZE_MAX - 8, 0), nullptr);
  quench_buffer_free(nullptr); // NULL-safe
}

TEST_F(BufferAlloc, ReusesFreedBuffersOfTheSameClass) {
  void *a = quench_buffer_alloc(1000, 0);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(quench_buffer_cache_bytes(), 0u);
  quench_buffer_free(a);
  // Classes are at most 25% larger than the request.
  size_t cached = quench_buffer_cache_bytes();
  EXPECT_GE(cached, 1000u);
  EXPECT_LE(cached, 1250u);
  void *b = quench_buffer_alloc(1001, 0);
  EXPECT_EQ(a, b);
  EXPECT_EQ(quench_buffer_cache_bytes(), 0u);
  // A much larger request gets a new block.
  void *c = quench_buffer_alloc(4000, 0);
  EXPECT_NE(c, b);
  quench_buffer_free(b);
  quench_buffer_free(c);
  EXPECT_GT(quench_buffer_cache_bytes(), cached);
  quench_buffer_cache_trim();
  EXPECT_EQ(quench_buffer_cache_bytes(), 0u);
}

TEST_F(BufferAlloc, SizeClassesCoverEveryRequest) {
  // Every size from 1 to 64 KiB fits its class: write the whole request,
  // free, and the next allocation of that exact size reuses the block.
  for (size_t size = 1; size <= (size_t(1) << 16); size += size / 7 + 1) {
    auto *p = static_cast<unsigned char *>(quench_buffer_alloc(size, 0));
    ASSERT_NE(p, nullptr);
    std::memset(p, 0x5a, size);
    quench_buffer_free(p);
    size_t cls = quench_buffer_cache_bytes();
    EXPECT_GE(cls, size);
    EXPECT_LE(cls, std::max<size_t>(64, size + size / 4 + 1)) << size;
    EXPECT_EQ(quench_buffer_alloc(size, 0), p);
    quench_buffer_free(p);
    quench_buffer_cache_trim();
  }
}

TEST_F(BufferAlloc, OverAlignedBuffersAreNotCached) {
  void *p = quench_buffer_alloc(256, 4096);
  ASSERT_NE(p, nullptr);
  quench_buffer_free(p);
  EXPECT_EQ(quench_buffer_cache_bytes(), 0u);
}

TEST_F(BufferAlloc, MlirEntryPoints) {
  void *p = _mlir_memref_to_llvm_aligned_alloc(64, 512);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(aligned(p, 64));
  _mlir_memref_to_llvm_free(p);
  void *q = _mlir_memref_to_llvm_alloc(512);
  EXPECT_EQ(q, p); // same class, reused
  _mlir_memref_to_llvm_free(q);
}

TEST_F(BufferAlloc, ThreadSafe) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([t] {
      std::vector<unsigned char *> live;
      for (int i = 0; i < 2000; ++i) {
        size_t size = 64 + static_cast<size_t>((i * 37 + t * 11) % 5000);
        auto *p = static_cast<unsigned char *>(quench_buffer_alloc(size, 0));
        ASSERT_NE(p, nullptr);
        p[0] = static_cast<unsigned char>(t);
        p[size - 1] = static_cast<unsigned char>(t);
        live.push_back(p);
        if (live.size() > 8) {
          EXPECT_EQ(live.front()[0], t);
          quench_buffer_free(live.front());
          live.erase(live.begin());
        }
      }
      for (unsigned char *p : live)
        quench_buffer_free(p);
    });
  for (std::thread &t : threads)
    t.join();
}

} // namespace
