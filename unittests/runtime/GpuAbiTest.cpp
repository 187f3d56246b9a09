// MLIR 22's own lowering of GPU host code (gpu_abi.mlir, compiled at build
// time by mlir-opt/mlir-translate/llc; see CMakeLists.txt) linked with the
// runtime and run on the fake CUDA driver (QUENCH_CUDA_DRIVER): checks that
// runtime/lib/cuda.c implements the mgpu* calls MLIR actually emits, with the
// same argument order and units (bytes for copies, elements for memsets,
// the launch's parameter array, the cluster shape).
#include "quench/runtime_abi.h"

#include <gtest/gtest.h>

#include <dlfcn.h>

#include <cstdint>
#include <cstring>

// The lowered functions (memref<16xT> arguments expand to allocated,
// aligned, offset, size, stride).
extern "C" {
void scale(float *, float *, int64_t, int64_t, int64_t);
void fill(int16_t *, int16_t *, int64_t, int64_t, int64_t, float *, float *,
          int64_t, int64_t, int64_t);
void cluster(float *, float *, int64_t, int64_t, int64_t);
}

namespace {

struct Fake {
  long (*calls)(const char *) = nullptr;
  void (*registerKernel)(const char *,
                         void (*)(void **, const unsigned *,
                                  const unsigned *)) = nullptr;
  void (*lastCluster)(unsigned *) = nullptr;
  long (*liveAllocations)() = nullptr;
  Fake() {
    void *lib = dlopen(QUENCH_FAKE_CUDA_DRIVER, RTLD_NOW | RTLD_LOCAL);
    if (!lib)
      return;
    calls = reinterpret_cast<decltype(calls)>(dlsym(lib, "fake_cuda_calls"));
    registerKernel = reinterpret_cast<decltype(registerKernel)>(
        dlsym(lib, "fake_cuda_register_kernel"));
    lastCluster = reinterpret_cast<decltype(lastCluster)>(
        dlsym(lib, "fake_cuda_last_cluster"));
    liveAllocations = reinterpret_cast<decltype(liveAllocations)>(
        dlsym(lib, "fake_cuda_live_allocations"));
  }
};

Fake &fake() {
  static Fake f;
  return f;
}

// Kernel "twice" on the host: its parameters are the memref descriptor's
// fields, each passed by address.
unsigned lastBlock[3];
void twice(void **params, const unsigned *, const unsigned *block) {
  float *aligned = *static_cast<float **>(params[1]);
  int64_t offset = *static_cast<int64_t *>(params[2]);
  int64_t size = *static_cast<int64_t *>(params[3]);
  int64_t stride = *static_cast<int64_t *>(params[4]);
  for (int64_t i = 0; i < size; ++i)
    aligned[offset + i * stride] *= 2;
  std::memcpy(lastBlock, block, sizeof lastBlock);
}

class GpuAbi : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_NE(fake().calls, nullptr) << "cannot open " QUENCH_FAKE_CUDA_DRIVER;
    fake().registerKernel("twice", twice);
    ASSERT_EQ(quench_cuda_take_error(nullptr), QUENCH_OK);
  }
  void TearDown() override {
    quench_error err;
    EXPECT_EQ(quench_cuda_take_error(&err), QUENCH_OK) << err.message;
  }
};

TEST_F(GpuAbi, LaunchAndCopies) {
  float h[16];
  for (int i = 0; i < 16; ++i)
    h[i] = static_cast<float>(i);
  long live = fake().liveAllocations();
  scale(h, h, 0, 16, 1);
  for (int i = 0; i < 16; ++i)
    EXPECT_EQ(h[i], 2.0f * static_cast<float>(i));
  EXPECT_EQ(lastBlock[0], 16u);
  EXPECT_EQ(fake().calls("cuModuleLoadDataEx"), 1); // PTX: mgpuModuleLoadJIT
  EXPECT_EQ(fake().liveAllocations(), live);
  // Again: same module and kernel, the stream from the pool.
  long creates = fake().calls("cuStreamCreate");
  scale(h, h, 0, 16, 1);
  EXPECT_EQ(h[3], 12.0f);
  EXPECT_EQ(fake().calls("cuModuleLoadDataEx"), 1);
  EXPECT_EQ(fake().calls("cuModuleGetFunction"), 1);
  EXPECT_EQ(fake().calls("cuStreamCreate"), creates);
}

TEST_F(GpuAbi, MemsetsAndEventsOfJoinedChains) {
  int16_t a[16] = {};
  float b[16] = {};
  long live = fake().liveAllocations();
  size_t mark = quench_cuda_run_begin();
  fill(a, a, 0, 16, 1, b, b, 0, 16, 1);
  EXPECT_EQ(quench_cuda_run_end(mark, nullptr), QUENCH_OK);
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(a[i], 7);
    EXPECT_EQ(b[i], 1.5f);
  }
  EXPECT_GE(fake().calls("cuEventRecord"), 2);
  EXPECT_GE(fake().calls("cuStreamWaitEvent"), 2);
  EXPECT_EQ(fake().calls("cuEventCreate"), fake().calls("cuEventDestroy_v2"));
  EXPECT_EQ(fake().liveAllocations(), live);
  // MLIR's lowering abandons the streams it joins; run_end gave them back,
  // so more runs create no streams.
  long creates = fake().calls("cuStreamCreate");
  for (int r = 0; r < 5; ++r) {
    mark = quench_cuda_run_begin();
    fill(a, a, 0, 16, 1, b, b, 0, 16, 1);
    EXPECT_EQ(quench_cuda_run_end(mark, nullptr), QUENCH_OK);
  }
  EXPECT_EQ(fake().calls("cuStreamCreate"), creates);
}

TEST_F(GpuAbi, ClusterLaunch) {
  float h[16];
  for (int i = 0; i < 16; ++i)
    h[i] = 1;
  cluster(h, h, 0, 16, 1);
  EXPECT_EQ(h[5], 2.0f);
  unsigned shape[3];
  fake().lastCluster(shape);
  EXPECT_EQ(shape[0], 2u);
  EXPECT_EQ(shape[1], 1u);
  EXPECT_EQ(lastBlock[0], 8u);
  EXPECT_EQ(fake().calls("cuLaunchKernelEx"), 1);
}

} // namespace
