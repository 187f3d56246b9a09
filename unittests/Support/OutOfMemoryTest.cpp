//===- OutOfMemoryTest.cpp - the out-of-memory message and handlers -------===//
//
// The estimate, the message's wording, the limits it reads, and (in death
// tests) that an allocation failure exits with status 1, the message and the
// registered temporaries removed.
//
//===----------------------------------------------------------------------===//

#include "quench/Support/FileUtils.h"
#include "quench/Support/OutOfMemory.h"

#include "llvm/Support/ErrorHandling.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemAlloc.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

using namespace quench;

TEST(OutOfMemory, FormatsSizesInDecimalUnits) {
  EXPECT_EQ(formatMemorySize(512), "512 B");
  EXPECT_EQ(formatMemorySize(12'300), "12 KB");
  EXPECT_EQ(formatMemorySize(350'000'000), "350 MB");
  EXPECT_EQ(formatMemorySize(2'900'000'000ull), "2.9 GB");
}

TEST(OutOfMemory, EstimateScalesWithTheLargestWeightPerStage) {
  // Streamed weights: a 4.4 GB model whose largest weight is 262 MB.
  WeightFootprint streamed{4'400'000'000ull, 0, 262'000'000};
  EXPECT_FALSE(estimateStageMemory("", streamed));
  uint64_t base = *estimateStageMemory("quantize", WeightFootprint{});
  uint64_t quantize = *estimateStageMemory("quantize", streamed);
  uint64_t object = *estimateStageMemory("codegen-obj", streamed);
  EXPECT_GT(base, 0u);
  EXPECT_GT(quantize, base + 2 * 262'000'000ull);
  EXPECT_LT(quantize, 1'500'000'000ull) << "not proportional to the model";
  EXPECT_LT(object, quantize);
  // Inline weights stay in memory for the whole compile.
  WeightFootprint inline_{400'000'000, 400'000'000, 49'000'000};
  EXPECT_GT(*estimateStageMemory("codegen-obj", inline_), base + 400'000'000);
  // A stage the table does not know (another target's) gets the largest
  // factor.
  EXPECT_GE(*estimateStageMemory("gpu-binary", streamed), quantize);
}

TEST(OutOfMemory, MessageNamesStageNeedAndAvailable) {
  installOutOfMemoryHandler("quench-test");
  WeightFootprint weights{4'400'000'000ull, 0, 262'000'000};
  setModelWeights(weights);
  setCurrentStage("quantize");
  std::string msg = getOutOfMemoryMessage();
  std::string need = formatMemorySize(*estimateStageMemory("quantize", weights));
  EXPECT_EQ(msg.rfind("quench-test: error: out of memory in stage 'quantize' "
                      "(this stage needs about " + need +
                          " for a model with 4.4 GB of weights; available "
                          "when the stage started: ",
                      0),
            0u)
      << msg;
  EXPECT_EQ(msg.back(), '\n');
  EXPECT_EQ(msg.find('\n'), msg.size() - 1) << "one line";
  setCurrentStage("");
  EXPECT_EQ(getOutOfMemoryMessage().rfind(
                "quench-test: error: out of memory (available at startup: ", 0),
            0u);
}

TEST(OutOfMemory, AddressSpaceLimitIsReported) {
  struct rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_AS, &saved), 0);
  if (saved.rlim_max != RLIM_INFINITY)
    GTEST_SKIP() << "a hard address-space limit is already set";
  struct rlimit rl = saved;
  rl.rlim_cur = (rlim_t)1 << 46; // 64 TiB: limits nothing in practice
  ASSERT_EQ(setrlimit(RLIMIT_AS, &rl), 0);
  AvailableMemory avail = getAvailableMemory();
  ASSERT_EQ(setrlimit(RLIMIT_AS, &saved), 0);
  // MemAvailable is smaller than 64 TiB less what is mapped.
  ASSERT_TRUE(avail.bytes);
  EXPECT_LT(*avail.bytes, (uint64_t)1 << 46);

  rl.rlim_cur = (rlim_t)1 << 20; // below what is mapped: nothing available
  ASSERT_EQ(setrlimit(RLIMIT_AS, &rl), 0);
  avail = getAvailableMemory();
  ASSERT_EQ(setrlimit(RLIMIT_AS, &saved), 0);
  ASSERT_TRUE(avail.bytes);
  EXPECT_EQ(*avail.bytes, 0u);
  EXPECT_EQ(avail.limit, "the address-space limit (ulimit -v) of 1 MB");
}

/// Creates a registered temporary, then fails an allocation with `fail`.
static void failWithTemporary(const std::string &path, void (*fail)()) {
  installOutOfMemoryHandler("quench-test");
  setCurrentStage("write");
  std::error_code ec;
  llvm::raw_fd_ostream(path, ec) << "partial";
  TemporaryFileCleanup cleanup(path);
  fail();
}

static void failOperatorNew() {
  volatile size_t huge = size_t(1) << 62;
  void *p = ::operator new(huge);
  asm volatile("" : : "r"(p) : "memory");
}

static void failSafeMalloc() {
  volatile size_t huge = size_t(1) << 62;
  void *p = llvm::safe_malloc(huge);
  asm volatile("" : : "r"(p) : "memory");
}

class OutOfMemoryDeathTest : public ::testing::Test {
protected:
  void SetUp() override {
    llvm::SmallString<128> p;
    ASSERT_FALSE(llvm::sys::fs::createTemporaryFile("oom-test", "tmp", p));
    path = std::string(p);
    llvm::sys::fs::remove(path);
  }
  void TearDown() override { llvm::sys::fs::remove(path); }
  std::string path;
};

TEST_F(OutOfMemoryDeathTest, OperatorNewExitsWithOneLineAndRemovesTemporaries) {
  EXPECT_EXIT(failWithTemporary(path, failOperatorNew),
              ::testing::ExitedWithCode(1),
              "^quench-test: error: out of memory in stage 'write' \\([^\n]*\\)\n$");
  EXPECT_FALSE(llvm::sys::fs::exists(path));
}

TEST_F(OutOfMemoryDeathTest, LLVMBadAllocExitsWithOneLine) {
  EXPECT_EXIT(failWithTemporary(path, failSafeMalloc),
              ::testing::ExitedWithCode(1),
              "^quench-test: error: out of memory in stage 'write'");
  EXPECT_FALSE(llvm::sys::fs::exists(path));
}

TEST_F(OutOfMemoryDeathTest, ReportOutOfMemoryFromOwnCode) {
  EXPECT_EXIT(failWithTemporary(path, [] { reportOutOfMemory(); }),
              ::testing::ExitedWithCode(1),
              "out of memory in stage 'write'");
  EXPECT_FALSE(llvm::sys::fs::exists(path));
}
