// The host-side CUDA runtime (runtime/lib/cuda.c) without a GPU: with no
// driver at all, and with the fake driver of FakeCudaDriver.c (host memory,
// call counters, injected failures). The driver is set up once per process,
// so each suite runs in its own process with its own environment
// (CMakeLists.txt: runtime.cuda.<Suite>):
//   CudaNoDriver       QUENCH_CUDA_DRIVER=/nonexistent/libcuda.so.1
//   CudaDefaultDriver  QUENCH_CUDA_DRIVER unset (libcuda.so.1; skipped where
//                      a real driver is installed)
//   CudaInitFails      the fake, with FAKE_CUDA_FAIL=cuInit=100
//   CudaFake           the fake
//   CudaProfile        the fake; every test forks a child that sets
//                      QUENCH_CUDA_PROFILE before its first GPU call
#include "TestUtil.h"

#include "quench/runtime_abi.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using quench_test::ScratchDir;

namespace {

const char kMissingDriverTail[] =
    "): this model was compiled with --target=cuda and needs an NVIDIA GPU "
    "and its driver";

// ---- a GPU module registered at program start, as generated code does ----

const char blob[] = "a fatbin would be here";
void *gpuModule;
// Whether the driver library was loaded right after mgpuModuleLoad ran from
// a global constructor (it must not be).
bool driverLoadedAtStartup = true;

__attribute__((constructor(123))) void registerModule() {
  gpuModule = mgpuModuleLoad(const_cast<char *>(blob), sizeof blob);
  const char *path = getenv("QUENCH_CUDA_DRIVER");
  driverLoadedAtStartup =
      path && dlopen(path, RTLD_NOW | RTLD_NOLOAD) != nullptr;
}

// ---- the fake driver's controls ----

struct Fake {
  long (*calls)(const char *);
  void (*fail)(const char *, int);
  long (*liveAllocations)();
  uint64_t (*releaseThreshold)();
  const void *(*lastImage)();
  void (*registerKernel)(const char *,
                         void (*)(void **, const unsigned *, const unsigned *));
  void (*lastCluster)(unsigned *);
  void (*kernelUs)(const char *, double);

  // The fake the runtime loaded (the same library: dlopen of one path gives
  // one handle).
  static Fake &get() {
    static Fake fake = [] {
      Fake f{};
      void *lib = dlopen(QUENCH_FAKE_CUDA_DRIVER, RTLD_NOW | RTLD_LOCAL);
      if (!lib)
        return f;
      f.calls = reinterpret_cast<decltype(f.calls)>(dlsym(lib, "fake_cuda_calls"));
      f.fail = reinterpret_cast<decltype(f.fail)>(dlsym(lib, "fake_cuda_fail"));
      f.liveAllocations = reinterpret_cast<decltype(f.liveAllocations)>(
          dlsym(lib, "fake_cuda_live_allocations"));
      f.releaseThreshold = reinterpret_cast<decltype(f.releaseThreshold)>(
          dlsym(lib, "fake_cuda_release_threshold"));
      f.lastImage = reinterpret_cast<decltype(f.lastImage)>(
          dlsym(lib, "fake_cuda_last_image"));
      f.registerKernel = reinterpret_cast<decltype(f.registerKernel)>(
          dlsym(lib, "fake_cuda_register_kernel"));
      f.lastCluster = reinterpret_cast<decltype(f.lastCluster)>(
          dlsym(lib, "fake_cuda_last_cluster"));
      f.kernelUs = reinterpret_cast<decltype(f.kernelUs)>(
          dlsym(lib, "fake_cuda_kernel_us"));
      return f;
    }();
    return fake;
  }
};

struct Error {
  quench_status status;
  std::string message;
};

Error takeError() {
  quench_error err;
  quench_status st = quench_cuda_take_error(&err);
  EXPECT_EQ(err.code, st);
  return {st, err.message};
}

// ---- a tiny --target=cuda model: y = x + w[16:20] on the "GPU" ----

struct Desc1 {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes[1];
  int64_t strides[1];
};

alignas(4096) float weightImage[1024];
const int kWeightOffset = 16; // floats

// The fake's host implementation of kernel "add": y[i] = x[i] + w[i].
void addKernel(void **params, const unsigned *grid, const unsigned *block) {
  const float *x = *static_cast<float **>(params[0]);
  const float *w = *static_cast<float **>(params[1]);
  float *y = *static_cast<float **>(params[2]);
  for (unsigned i = 0; i < grid[0] * block[0]; ++i)
    y[i] = x[i] + w[i];
}

void gpuEntry(void **args) {
  const Desc1 *x = static_cast<const Desc1 *>(args[0]);
  Desc1 *out = static_cast<Desc1 *>(args[1]);
  void *s = mgpuStreamCreate();
  char *w = static_cast<char *>(
      quench_cuda_weights(weightImage, sizeof weightImage));
  void *dx = mgpuMemAlloc(16, s, 0);
  void *dy = mgpuMemAlloc(16, s, 0);
  mgpuMemcpy(dx, static_cast<float *>(x->aligned) + x->offset, 16, s);
  void *f = mgpuModuleGetFunction(gpuModule, "add");
  void *dw = w ? w + kWeightOffset * sizeof(float) : nullptr;
  void *params[] = {&dx, &dw, &dy};
  mgpuLaunchKernel(f, 1, 1, 1, 4, 1, 1, 0, s, params, nullptr, 3);
  float *y = static_cast<float *>(quench_buffer_alloc(16, 0));
  mgpuMemcpy(y, dy, 16, s);
  mgpuMemFree(dx, s);
  mgpuMemFree(dy, s);
  mgpuStreamSynchronize(s);
  mgpuStreamDestroy(s);
  *out = {y, y, 0, {4}, {1}};
}

const int64_t shape4[] = {4};
const quench_io_info gpuInputs[] = {{"x", QUENCH_DTYPE_F32, 1, shape4}};
const quench_io_info gpuOutputs[] = {{"y", QUENCH_DTYPE_F32, 1, shape4}};
const quench_model gpuModel = {QUENCH_MODEL_ABI_VERSION,
                               1,
                               1,
                               QUENCH_WEIGHTS_EMBEDDED,
                               "gpu",
                               gpuInputs,
                               gpuOutputs,
                               gpuEntry,
                               weightImage,
                               sizeof weightImage};

void fillWeights() {
  for (int i = 0; i < 1024; ++i)
    weightImage[i] = static_cast<float>(i) * 0.5f;
}

// Runs gpuModel on {1, 2, 3, 4}; returns the status, output in *y.
quench_status runModel(quench_tensor *y, quench_error *err) {
  float data[4] = {1, 2, 3, 4};
  quench_tensor x = {data, QUENCH_DTYPE_F32, 1, {4}};
  return quench_model_run(&gpuModel, &x, 1, y, 1, nullptr, err);
}

void expectModelOutput(const quench_tensor &y) {
  ASSERT_NE(y.data, nullptr);
  const float *v = static_cast<const float *>(y.data);
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(v[i], static_cast<float>(i + 1) + weightImage[kWeightOffset + i]);
}

// A failed run: the status and message, zeroed outputs, and the output
// buffer the entry allocated given back (to the buffer cache).
void expectFailedRun(quench_status want, const std::string &message) {
  quench_buffer_cache_trim();
  quench_tensor y;
  std::memset(&y, 0x5a, sizeof y);
  quench_error err;
  EXPECT_EQ(runModel(&y, &err), want);
  EXPECT_EQ(err.code, want);
  EXPECT_EQ(std::string(err.message), message);
  EXPECT_EQ(y.data, nullptr);
  EXPECT_EQ(y.rank, 0);
  EXPECT_GT(quench_buffer_cache_bytes(), 0u) << "output buffer not freed";
  // Nothing left over on the thread.
  EXPECT_EQ(takeError().status, QUENCH_OK);
}

// ======================== no driver ========================

TEST(CudaNoDriver, ReportsTheMissingDriverOnce) {
  ASSERT_NE(gpuModule, nullptr);
  EXPECT_FALSE(driverLoadedAtStartup);
  EXPECT_EQ(mgpuStreamCreate(), nullptr);
  Error e = takeError();
  EXPECT_EQ(e.status, QUENCH_ERR_UNSUPPORTED);
  EXPECT_EQ(e.message,
            std::string("cannot load the CUDA driver (/nonexistent/libcuda.so.1, "
                        "from QUENCH_CUDA_DRIVER: cannot open shared object "
                        "file: No such file or directory") +
                kMissingDriverTail);
  // Taken: the state is clear.
  Error again = takeError();
  EXPECT_EQ(again.status, QUENCH_OK);
  EXPECT_EQ(again.message, "");
}

TEST(CudaNoDriver, LaterCallsDoNothing) {
  EXPECT_EQ(mgpuMemAlloc(64, nullptr, 0), nullptr);
  // Everything after the first error is a no-op: these pointers would crash
  // if anything touched them.
  void *bogus = reinterpret_cast<void *>(uintptr_t{0x10});
  EXPECT_EQ(mgpuModuleGetFunction(gpuModule, "k"), nullptr);
  void *params[] = {bogus};
  mgpuLaunchKernel(bogus, 1, 1, 1, 1, 1, 1, 0, bogus, params, nullptr, 1);
  mgpuMemcpy(bogus, bogus, 64, bogus);
  mgpuMemset32(bogus, 1, 16, bogus);
  mgpuMemset16(bogus, 1, 16, bogus);
  mgpuStreamSynchronize(bogus);
  mgpuStreamWaitEvent(bogus, bogus);
  mgpuEventRecord(bogus, bogus);
  mgpuEventSynchronize(bogus);
  EXPECT_EQ(mgpuEventCreate(), nullptr);
  EXPECT_EQ(quench_cuda_weights(weightImage, sizeof weightImage), nullptr);
  // Release calls with handles the driver never gave: nothing to release.
  mgpuMemFree(bogus, bogus);
  mgpuStreamDestroy(bogus);
  mgpuEventDestroy(bogus);
  Error e = takeError();
  EXPECT_EQ(e.status, QUENCH_ERR_UNSUPPORTED);
  EXPECT_NE(e.message.find("cannot load the CUDA driver"), std::string::npos);
}

TEST(CudaNoDriver, ModulesLoadAndUnloadWithoutADriver) {
  void *m = mgpuModuleLoad(const_cast<char *>(blob), sizeof blob);
  ASSERT_NE(m, nullptr);
  mgpuModuleUnload(m);
  mgpuModuleUnload(nullptr);
  void *j = mgpuModuleLoadJIT(const_cast<char *>(blob), 2);
  ASSERT_NE(j, nullptr);
  mgpuModuleUnload(j);
  // An empty weight image needs no driver.
  EXPECT_NE(quench_cuda_weights(weightImage, 0), nullptr);
  EXPECT_EQ(takeError().status, QUENCH_OK);
}

TEST(CudaNoDriver, ErrorsAreThreadLocal) {
  EXPECT_EQ(mgpuStreamCreate(), nullptr);
  Error other;
  std::thread t([&] { other = takeError(); });
  t.join();
  EXPECT_EQ(other.status, QUENCH_OK);
  EXPECT_EQ(takeError().status, QUENCH_ERR_UNSUPPORTED);
}

TEST(CudaNoDriver, ModelRunReportsTheErrorWithZeroedOutputs) {
  expectFailedRun(QUENCH_ERR_UNSUPPORTED,
                  std::string("cannot load the CUDA driver "
                              "(/nonexistent/libcuda.so.1, from "
                              "QUENCH_CUDA_DRIVER: cannot open shared object "
                              "file: No such file or directory") +
                      kMissingDriverTail);
  // A left-over error from outside a run does not fail the next run's
  // checks before the entry, and is replaced by the run's own.
  EXPECT_EQ(mgpuStreamCreate(), nullptr);
  expectFailedRun(QUENCH_ERR_UNSUPPORTED,
                  std::string("cannot load the CUDA driver "
                              "(/nonexistent/libcuda.so.1, from "
                              "QUENCH_CUDA_DRIVER: cannot open shared object "
                              "file: No such file or directory") +
                      kMissingDriverTail);
}

TEST(CudaNoDriver, ExecutablePrintsOneLineAndWritesNothing) {
  ScratchDir in, out;
  float data[4] = {1, 2, 3, 4};
  quench_tensor x = {data, QUENCH_DTYPE_F32, 1, {4}};
  quench_error err;
  std::string xPath = in.file("x.npy");
  ASSERT_EQ(quench_npy_write(xPath.c_str(), &x, &err), QUENCH_OK);
  std::string input = "x=" + xPath;
  std::string outDir = out.path();
  const char *argv[] = {"gpu", "--input", input.c_str(), "--output-dir",
                        outDir.c_str(), nullptr};
  testing::internal::CaptureStderr();
  testing::internal::CaptureStdout();
  int rc = quench_model_main(&gpuModel, 5, const_cast<char **>(argv));
  std::string stdoutText = testing::internal::GetCapturedStdout();
  std::string stderrText = testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, 1);
  EXPECT_EQ(stdoutText, "");
  EXPECT_EQ(stderrText,
            std::string("gpu: error: cannot load the CUDA driver "
                        "(/nonexistent/libcuda.so.1, from QUENCH_CUDA_DRIVER: "
                        "cannot open shared object file: No such file or "
                        "directory") +
                kMissingDriverTail + "\n");
  EXPECT_TRUE(out.entries().empty());
}

// ============= the default driver name, where there is none =============

TEST(CudaDefaultDriver, ReportsLibcudaMissing) {
  unsetenv("QUENCH_CUDA_DRIVER"); // before the first call sets the driver up
  if (void *real = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL)) {
    dlclose(real);
    GTEST_SKIP() << "a CUDA driver is installed";
  }
  EXPECT_EQ(mgpuModuleGetFunction(gpuModule, "k"), nullptr);
  Error e = takeError();
  EXPECT_EQ(e.status, QUENCH_ERR_UNSUPPORTED);
  EXPECT_EQ(e.message,
            std::string("cannot load the CUDA driver (libcuda.so.1: cannot "
                        "open shared object file: No such file or directory") +
                kMissingDriverTail);
}

// ======================== cuInit fails ========================

TEST(CudaInitFails, ReportsNoDeviceOnEveryRun) {
  const std::string message =
      "no usable CUDA device: cuInit failed with CUDA_ERROR_NO_DEVICE (no "
      "CUDA-capable device is detected)";
  EXPECT_EQ(mgpuStreamCreate(), nullptr);
  Error e = takeError();
  EXPECT_EQ(e.status, QUENCH_ERR_UNSUPPORTED);
  EXPECT_EQ(e.message, message);
  fillWeights();
  expectFailedRun(QUENCH_ERR_UNSUPPORTED, message);
  expectFailedRun(QUENCH_ERR_UNSUPPORTED, message);
  // The driver is set up (and fails) once per process.
  Fake &fake = Fake::get();
  ASSERT_NE(fake.calls, nullptr);
  EXPECT_EQ(fake.calls("cuInit"), 1);
  EXPECT_EQ(fake.calls("cuDeviceGetCount"), 0);
  EXPECT_EQ(fake.calls("cuStreamCreate"), 0);
}

// ======================== the fake driver ========================

class CudaFake : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_NE(fake.calls, nullptr) << "cannot open " QUENCH_FAKE_CUDA_DRIVER;
    ASSERT_EQ(takeError().status, QUENCH_OK);
  }
  void TearDown() override {
    EXPECT_EQ(takeError().status, QUENCH_OK) << "an error was left over";
  }
  Fake &fake = Fake::get();
};

TEST_F(CudaFake, ModuleLoadDoesNotTouchTheDriver) {
  EXPECT_FALSE(driverLoadedAtStartup);
  // A module registered now is not loaded until its first kernel is asked
  // for, and then exactly once.
  long loads = fake.calls("cuModuleLoadData");
  static const char other[] = "another blob";
  void *m = mgpuModuleLoad(const_cast<char *>(other), sizeof other);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(fake.calls("cuModuleLoadData"), loads);
  void *f = mgpuModuleGetFunction(m, "k");
  EXPECT_NE(f, nullptr);
  EXPECT_EQ(fake.calls("cuModuleLoadData"), loads + 1);
  EXPECT_EQ(fake.lastImage(), other);
  EXPECT_NE(mgpuModuleGetFunction(m, "k2"), nullptr);
  EXPECT_EQ(fake.calls("cuModuleLoadData"), loads + 1);
  long unloads = fake.calls("cuModuleUnload");
  mgpuModuleUnload(m);
  EXPECT_EQ(fake.calls("cuModuleUnload"), unloads + 1);
}

TEST_F(CudaFake, GetFunctionIsCachedPerName) {
  void *m = mgpuModuleLoad(const_cast<char *>(blob), sizeof blob);
  long gets = fake.calls("cuModuleGetFunction");
  // 100 names force the table to grow a few times.
  std::vector<void *> first;
  for (int i = 0; i < 100; ++i)
    first.push_back(mgpuModuleGetFunction(m, ("k" + std::to_string(i)).c_str()));
  EXPECT_EQ(fake.calls("cuModuleGetFunction"), gets + 100);
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int r = 0; r < 50; ++r)
        for (int i = 0; i < 100; ++i)
          if (mgpuModuleGetFunction(m, ("k" + std::to_string(i)).c_str()) !=
              first[i])
            ++mismatches;
      if (quench_cuda_take_error(nullptr) != QUENCH_OK)
        ++mismatches;
    });
  for (std::thread &t : threads)
    t.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(fake.calls("cuModuleGetFunction"), gets + 100);
  mgpuModuleUnload(m);
}

TEST_F(CudaFake, ModuleLoadFailureNamesTheDeviceAndTheFix) {
  void *m = mgpuModuleLoad(const_cast<char *>(blob), sizeof blob);
  fake.fail("cuModuleLoadData", 209);
  EXPECT_EQ(mgpuModuleGetFunction(m, "k"), nullptr);
  fake.fail("cuModuleLoadData", 0);
  Error e = takeError();
  EXPECT_EQ(e.status, QUENCH_ERR_UNSUPPORTED);
  EXPECT_EQ(e.message,
            "cannot load the model's GPU code on Fake GPU 0 (sm_80): "
            "cuModuleLoadData failed with CUDA_ERROR_NO_BINARY_FOR_GPU: no "
            "kernel image is available for execution on the device; the "
            "model holds no code this GPU can run: compile it with "
            "--cuda-arch=sm_80");
  // Not cached: the next run tries again.
  EXPECT_NE(mgpuModuleGetFunction(m, "k"), nullptr);
  mgpuModuleUnload(m);

  void *j = mgpuModuleLoadJIT(const_cast<char *>(blob), 3);
  fake.fail("cuModuleLoadDataEx", 222);
  EXPECT_EQ(mgpuModuleGetFunction(j, "k"), nullptr);
  fake.fail("cuModuleLoadDataEx", 0);
  e = takeError();
  EXPECT_EQ(e.status, QUENCH_ERR_UNSUPPORTED);
  EXPECT_EQ(e.message,
            "cannot load the model's GPU code on Fake GPU 0 (sm_80): "
            "cuModuleLoadDataEx failed with CUDA_ERROR_UNSUPPORTED_PTX_VERSION: "
            "the provided PTX was compiled with an unsupported toolchain.; the "
            "driver (CUDA 12.4) cannot compile the model's PTX: compile the "
            "model with --cuda-arch=sm_80 so that it carries code for this "
            "GPU, or update the NVIDIA driver");
  mgpuModuleUnload(j);
}

TEST_F(CudaFake, MissingKernel) {
  EXPECT_EQ(mgpuModuleGetFunction(gpuModule, "missing_kernel"), nullptr);
  Error e = takeError();
  EXPECT_EQ(e.status, QUENCH_ERR_INTERNAL);
  EXPECT_EQ(e.message, "cuModuleGetFunction failed with CUDA_ERROR_NOT_FOUND: "
                       "named symbol not found (kernel 'missing_kernel')");
}

TEST_F(CudaFake, StreamsComeFromThePool) {
  void *a = mgpuStreamCreate();
  void *b = mgpuStreamCreate();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  long creates = fake.calls("cuStreamCreate");
  long syncs = fake.calls("cuStreamSynchronize");
  mgpuStreamDestroy(a);
  mgpuStreamDestroy(b);
  // Destroy waits for the stream's work before it goes back to the pool.
  EXPECT_EQ(fake.calls("cuStreamSynchronize"), syncs + 2);
  void *c = mgpuStreamCreate();
  void *d = mgpuStreamCreate();
  EXPECT_EQ(fake.calls("cuStreamCreate"), creates);
  EXPECT_TRUE((c == a && d == b) || (c == b && d == a));
  mgpuStreamDestroy(c);
  mgpuStreamDestroy(d);
  EXPECT_EQ(fake.calls("cuStreamDestroy_v2"), 0);
}

TEST_F(CudaFake, MemoryComesFromTheDevicePool) {
  void *s = mgpuStreamCreate();
  long live = fake.liveAllocations();
  EXPECT_EQ(fake.releaseThreshold(), UINT64_MAX);
  long allocs = fake.calls("cuMemAllocFromPoolAsync");
  long frees = fake.calls("cuMemFreeAsync");
  void *p = mgpuMemAlloc(1000, s, 0);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(fake.calls("cuMemAllocFromPoolAsync"), allocs + 1);
  EXPECT_EQ(fake.liveAllocations(), live + 1);
  mgpuMemFree(p, s);
  EXPECT_EQ(fake.calls("cuMemFreeAsync"), frees + 1);
  EXPECT_EQ(fake.liveAllocations(), live);
  // Zero bytes: NULL, no error, nothing to free.
  EXPECT_EQ(mgpuMemAlloc(0, s, 0), nullptr);
  mgpuMemFree(nullptr, s);
  // Host-shared: managed memory, freed with cuMemFree.
  long managedFrees = fake.calls("cuMemFree_v2");
  void *m = mgpuMemAlloc(64, s, 1);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(fake.calls("cuMemAllocManaged"), 1);
  mgpuMemFree(m, s);
  EXPECT_EQ(fake.calls("cuMemFree_v2"), managedFrees + 1);
  // Without a stream: allocated and freed synchronously.
  void *q = mgpuMemAlloc(32, nullptr, 0);
  ASSERT_NE(q, nullptr);
  long ctxSyncs = fake.calls("cuCtxSynchronize");
  mgpuMemFree(q, nullptr);
  EXPECT_EQ(fake.calls("cuCtxSynchronize"), ctxSyncs + 1);
  EXPECT_EQ(fake.liveAllocations(), live);
  mgpuStreamDestroy(s);
}

TEST_F(CudaFake, CopiesAndMemsets) {
  void *s = mgpuStreamCreate();
  uint32_t host[8] = {1, 2, 3, 0xabcd0004, 5, 6, 7, 8}, back[8] = {};
  void *d = mgpuMemAlloc(sizeof host, s, 0);
  mgpuMemcpy(d, host, sizeof host, s);
  mgpuMemset32(d, 0xdeadbeef, 2, s);
  mgpuMemset16(static_cast<char *>(d) + 8, 0x1234, 3, s);
  mgpuMemcpy(back, d, sizeof back, s);
  mgpuStreamSynchronize(s);
  EXPECT_EQ(back[0], 0xdeadbeefu);
  EXPECT_EQ(back[1], 0xdeadbeefu);
  EXPECT_EQ(back[2], 0x12341234u);
  EXPECT_EQ(back[3] & 0xffffu, 0x1234u);
  EXPECT_EQ(back[3] >> 16, 0xabcdu); // past the 3 16-bit elements
  for (int i = 4; i < 8; ++i)
    EXPECT_EQ(back[i], host[i]);
  mgpuMemFree(d, s);
  mgpuStreamDestroy(s);
}

TEST_F(CudaFake, EventsAndEmptyLaunches) {
  void *s = mgpuStreamCreate();
  void *t = mgpuStreamCreate();
  void *e = mgpuEventCreate();
  ASSERT_NE(e, nullptr);
  mgpuEventRecord(e, s);
  mgpuStreamWaitEvent(t, e);
  mgpuEventSynchronize(e);
  mgpuEventDestroy(e);
  EXPECT_EQ(fake.calls("cuEventRecord"), 1);
  EXPECT_EQ(fake.calls("cuStreamWaitEvent"), 1);
  EXPECT_EQ(fake.calls("cuEventDestroy_v2"), 1);
  long launches = fake.calls("cuLaunchKernel");
  void *f = mgpuModuleGetFunction(gpuModule, "empty");
  mgpuLaunchKernel(f, 0, 1, 1, 32, 1, 1, 0, s, nullptr, nullptr, 0);
  mgpuLaunchKernel(f, 4, 1, 1, 32, 1, 0, 0, s, nullptr, nullptr, 0);
  EXPECT_EQ(fake.calls("cuLaunchKernel"), launches);
  mgpuStreamDestroy(s);
  mgpuStreamDestroy(t);
}

TEST_F(CudaFake, LargeDynamicSharedMemoryIsOptedIntoOnce) {
  void *s = mgpuStreamCreate();
  void *f = mgpuModuleGetFunction(gpuModule, "smem");
  long sets = fake.calls("cuFuncSetAttribute");
  long launches = fake.calls("cuLaunchKernel");
  mgpuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 48 * 1024, s, nullptr, nullptr, 0);
  EXPECT_EQ(fake.calls("cuFuncSetAttribute"), sets);
  mgpuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 100000, s, nullptr, nullptr, 0);
  mgpuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 100000, s, nullptr, nullptr, 0);
  mgpuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 90000, s, nullptr, nullptr, 0);
  EXPECT_EQ(fake.calls("cuFuncSetAttribute"), sets + 1);
  EXPECT_EQ(fake.calls("cuLaunchKernel"), launches + 4);
  EXPECT_EQ(takeError().status, QUENCH_OK);
  mgpuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 200000, s, nullptr, nullptr, 0);
  Error e = takeError();
  EXPECT_EQ(e.status, QUENCH_ERR_UNSUPPORTED);
  EXPECT_EQ(e.message, "cannot launch kernel 'smem': it needs 200000 bytes of "
                       "dynamic shared memory, Fake GPU 0 (sm_80) allows at "
                       "most 166912 per block");
  mgpuLaunchKernel(f, int64_t{1} << 33, 1, 1, 32, 1, 1, 0, s, nullptr, nullptr,
                   0);
  e = takeError();
  EXPECT_EQ(e.status, QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(e.message, "cannot launch kernel 'smem': grid (8589934592, 1, 1), "
                       "block (32, 1, 1) or 0 bytes of dynamic shared memory "
                       "out of range");
  EXPECT_EQ(fake.calls("cuLaunchKernel"), launches + 4);
  mgpuStreamDestroy(s);
}

// The fake's kernel "count": adds 1 to counter[0] per launch, records the
// grid.
unsigned clusterGrid[3];
void countKernel(void **params, const unsigned *grid, const unsigned *) {
  ++**static_cast<int **>(params[0]);
  std::memcpy(clusterGrid, grid, sizeof clusterGrid);
}

TEST_F(CudaFake, ClusterLaunch) {
  fake.registerKernel("count", countKernel);
  void *s = mgpuStreamCreate();
  void *f = mgpuModuleGetFunction(gpuModule, "count");
  int counter = 0;
  int *p = &counter;
  void *params[] = {&p};
  mgpuLaunchClusterKernel(f, 2, 1, 1, 8, 2, 1, 128, 1, 1, 0, s, params,
                          nullptr);
  EXPECT_EQ(takeError().status, QUENCH_OK);
  EXPECT_EQ(counter, 1);
  unsigned cluster[3];
  fake.lastCluster(cluster);
  EXPECT_EQ(cluster[0], 2u);
  EXPECT_EQ(cluster[1], 1u);
  EXPECT_EQ(cluster[2], 1u);
  EXPECT_EQ(clusterGrid[0], 8u);
  EXPECT_EQ(clusterGrid[1], 2u);
  // A cluster that does not divide the grid: the driver's error.
  mgpuLaunchClusterKernel(f, 3, 1, 1, 8, 2, 1, 128, 1, 1, 0, s, params,
                          nullptr);
  Error e = takeError();
  EXPECT_EQ(e.status, QUENCH_ERR_INTERNAL);
  EXPECT_EQ(e.message, "cuLaunchKernelEx failed with CUDA_ERROR_INVALID_VALUE: "
                       "invalid argument (kernel 'count', grid (8, 2, 1), "
                       "block (128, 1, 1), 0 bytes of dynamic shared memory)");
  mgpuLaunchClusterKernel(f, 0, 1, 1, 8, 2, 1, 128, 1, 1, 0, s, params,
                          nullptr);
  e = takeError();
  EXPECT_EQ(e.status, QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(e.message,
            "cannot launch kernel 'count': cluster (0, 1, 1) out of range");
  EXPECT_EQ(counter, 1);
  mgpuStreamDestroy(s);
}

TEST_F(CudaFake, OutOfMemoryStopsTheRestButReleasesEverything) {
  long live = fake.liveAllocations();
  void *s = mgpuStreamCreate();
  void *a = mgpuMemAlloc(256, s, 0);
  ASSERT_NE(a, nullptr);
  fake.fail("cuMemAllocFromPoolAsync", 2);
  EXPECT_EQ(mgpuMemAlloc(1024, s, 0), nullptr);
  fake.fail("cuMemAllocFromPoolAsync", 0);
  // The rest of the "run" does nothing...
  long copies = fake.calls("cuMemcpyAsync");
  long launches = fake.calls("cuLaunchKernel");
  EXPECT_EQ(mgpuMemAlloc(16, s, 0), nullptr);
  char host[256];
  mgpuMemcpy(a, host, sizeof host, s);
  mgpuLaunchKernel(mgpuModuleGetFunction(gpuModule, "k"), 1, 1, 1, 1, 1, 1, 0,
                   s, nullptr, nullptr, 0);
  EXPECT_EQ(fake.calls("cuMemcpyAsync"), copies);
  EXPECT_EQ(fake.calls("cuLaunchKernel"), launches);
  // ...but releases what it holds.
  long creates = fake.calls("cuStreamCreate");
  mgpuMemFree(a, s);
  mgpuStreamDestroy(s);
  EXPECT_EQ(fake.liveAllocations(), live);
  Error e = takeError();
  EXPECT_EQ(e.status, QUENCH_ERR_OUT_OF_MEMORY);
  EXPECT_EQ(e.message, "cannot allocate 1024 bytes of GPU memory on Fake GPU "
                       "0: cuMemAllocFromPoolAsync failed with "
                       "CUDA_ERROR_OUT_OF_MEMORY: out of memory");
  // Cleared: work again, and the stream went back to the pool.
  void *s2 = mgpuStreamCreate();
  EXPECT_EQ(s2, s);
  EXPECT_EQ(fake.calls("cuStreamCreate"), creates);
  void *b = mgpuMemAlloc(16, s2, 0);
  EXPECT_NE(b, nullptr);
  mgpuMemFree(b, s2);
  mgpuStreamDestroy(s2);
}

TEST_F(CudaFake, WeightsAreUploadedOncePerImage) {
  // Two chunks and a bit.
  size_t size = (size_t{64} << 20) * 2 + 12345;
  std::vector<unsigned char> image(size);
  for (size_t i = 0; i < size; ++i)
    image[i] = static_cast<unsigned char>(i * 7 + (i >> 20));
  long allocs = fake.calls("cuMemAlloc_v2");
  long copies = fake.calls("cuMemcpyHtoD_v2");
  std::vector<void *> got(6);
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t)
    threads.emplace_back([&, t] {
      got[t] = quench_cuda_weights(image.data(), size);
      if (quench_cuda_take_error(nullptr) != QUENCH_OK)
        got[t] = nullptr;
    });
  for (std::thread &t : threads)
    t.join();
  ASSERT_NE(got[0], nullptr);
  for (void *p : got)
    EXPECT_EQ(p, got[0]);
  EXPECT_EQ(fake.calls("cuMemAlloc_v2"), allocs + 1);
  EXPECT_EQ(fake.calls("cuMemcpyHtoD_v2"), copies + 3);
  // The fake's device memory is host memory: compare the copy.
  EXPECT_EQ(std::memcmp(got[0], image.data(), size), 0);
  // A second "run".
  EXPECT_EQ(quench_cuda_weights(image.data(), size), got[0]);
  EXPECT_EQ(fake.calls("cuMemAlloc_v2"), allocs + 1);
  // An empty image: a dummy address, no upload.
  EXPECT_NE(quench_cuda_weights(image.data(), 0), nullptr);
  EXPECT_EQ(fake.calls("cuMemAlloc_v2"), allocs + 1);
  // A failed upload is reported and not remembered.
  std::vector<unsigned char> other(4096, 1);
  fake.fail("cuMemcpyHtoD_v2", 700);
  EXPECT_EQ(quench_cuda_weights(other.data(), other.size()), nullptr);
  fake.fail("cuMemcpyHtoD_v2", 0);
  Error e = takeError();
  EXPECT_EQ(e.status, QUENCH_ERR_INTERNAL);
  EXPECT_EQ(e.message, "cuMemcpyHtoD failed with CUDA_ERROR_ILLEGAL_ADDRESS: an "
                       "illegal memory access was encountered (uploading 4096 "
                       "bytes of weights at offset 0)");
  void *w = quench_cuda_weights(other.data(), other.size());
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(std::memcmp(w, other.data(), other.size()), 0);
}

TEST_F(CudaFake, ModelRunsOnTheFakeGpu) {
  fillWeights();
  fake.registerKernel("add", addKernel);
  quench_tensor y;
  quench_error err;
  ASSERT_EQ(runModel(&y, &err), QUENCH_OK) << err.message;
  expectModelOutput(y);
  quench_tensor_free(&y);
  long live = fake.liveAllocations();
  long uploads = fake.calls("cuMemAlloc_v2");
  long loads = fake.calls("cuModuleLoadData");
  long gets = fake.calls("cuModuleGetFunction");
  long creates = fake.calls("cuStreamCreate");
  // Concurrent runs on several threads (each makes the context current on
  // its thread, or the fake fails the calls).
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int r = 0; r < 25; ++r) {
        quench_tensor out;
        quench_error e;
        if (runModel(&out, &e) != QUENCH_OK) {
          ++failures;
          continue;
        }
        const float *v = static_cast<const float *>(out.data);
        for (int i = 0; i < 4; ++i)
          if (v[i] != static_cast<float>(i + 1) + weightImage[kWeightOffset + i])
            ++failures;
        quench_tensor_free(&out);
      }
    });
  for (std::thread &t : threads)
    t.join();
  EXPECT_EQ(failures.load(), 0);
  // Weights, module and kernel once; at most one stream per concurrent run;
  // every buffer freed.
  EXPECT_EQ(fake.calls("cuMemAlloc_v2"), uploads);
  EXPECT_EQ(fake.calls("cuModuleLoadData"), loads);
  EXPECT_EQ(fake.calls("cuModuleGetFunction"), gets);
  EXPECT_LE(fake.calls("cuStreamCreate"), creates + 4);
  EXPECT_EQ(fake.liveAllocations(), live);
}

TEST_F(CudaFake, ModelRunReportsAGpuFailureAndRecovers) {
  fillWeights();
  fake.registerKernel("add", addKernel);
  quench_tensor y;
  quench_error err;
  ASSERT_EQ(runModel(&y, &err), QUENCH_OK) << err.message;
  quench_tensor_free(&y);
  long live = fake.liveAllocations();
  long launches = fake.calls("cuLaunchKernel");
  long copies = fake.calls("cuMemcpyAsync");
  fake.fail("cuLaunchKernel", 700);
  expectFailedRun(QUENCH_ERR_INTERNAL,
                  "cuLaunchKernel failed with CUDA_ERROR_ILLEGAL_ADDRESS: an "
                  "illegal memory access was encountered (kernel 'add', grid "
                  "(1, 1, 1), block (4, 1, 1), 0 bytes of dynamic shared "
                  "memory)");
  fake.fail("cuLaunchKernel", 0);
  EXPECT_EQ(fake.calls("cuLaunchKernel"), launches + 1);
  // The copy of the input ran, the copy of the output after the failure did
  // not; the device buffers were freed.
  EXPECT_EQ(fake.calls("cuMemcpyAsync"), copies + 1);
  EXPECT_EQ(fake.liveAllocations(), live);
  ASSERT_EQ(runModel(&y, &err), QUENCH_OK) << err.message;
  expectModelOutput(y);
  quench_tensor_free(&y);
}

TEST_F(CudaFake, DeviceSelection) {
  // The driver is already set up on device 0 ($QUENCH_CUDA_DEVICE unset).
  mgpuSetDefaultDevice(0);
  EXPECT_EQ(takeError().status, QUENCH_OK);
  mgpuSetDefaultDevice(1);
  Error e = takeError();
  EXPECT_EQ(e.status, QUENCH_ERR_UNSUPPORTED);
  EXPECT_EQ(e.message, "mgpuSetDefaultDevice(1): the CUDA runtime already uses "
                       "device 0; switching devices is not supported");
}

// $QUENCH_CUDA_DEVICE (runtime.cuda.CudaBadDevice: QUENCH_CUDA_DEVICE=2 with
// FAKE_CUDA_DEVICES=2).
TEST(CudaBadDevice, ReportsTheDeviceCount) {
  EXPECT_EQ(mgpuStreamCreate(), nullptr);
  Error e = takeError();
  EXPECT_EQ(e.status, QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(e.message, "CUDA device 2 was requested (QUENCH_CUDA_DEVICE) but "
                       "the driver sees 2 CUDA devices (0 .. 1)");
}

// ======================== the kernel profiler ========================
//
// QUENCH_CUDA_PROFILE is read once, when the driver is set up, and the table
// is written at exit: each test forks a child that sets the variable, does
// its GPU work (the parent of this suite never touches the GPU) and exits;
// the parent reads the table and the child's stderr. The fake's clock makes
// every launch take FAKE_CUDA_KERNEL_US (10) or what fake_cuda_kernel_us set,
// every copy and memset FAKE_CUDA_COPY_US (2) microseconds.

struct ProfileRow {
  long calls = 0;
  double totalMs = 0, meanUs = 0, minUs = 0, share = 0;
  std::string grid, block, name;
};

struct Profile {
  std::string text, totals;
  std::vector<ProfileRow> rows;
  const ProfileRow *find(const std::string &name) const {
    for (const ProfileRow &r : rows)
      if (r.name == name)
        return &r;
    return nullptr;
  }
};

std::string readFile(const std::string &path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The table's rows: "calls total-ms mean-us min-us share% grid block name",
// the name being the rest of the line; '#' lines are the header and totals.
Profile parseProfile(const std::string &text) {
  Profile p;
  p.text = text;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("# kernels ", 0) == 0)
      p.totals = line;
    if (line.empty() || line[0] == '#')
      continue;
    std::istringstream f(line);
    ProfileRow r;
    std::string share;
    f >> r.calls >> r.totalMs >> r.meanUs >> r.minUs >> share >> r.grid >>
        r.block;
    r.share = std::atof(share.c_str());
    std::getline(f >> std::ws, r.name);
    p.rows.push_back(r);
  }
  return p;
}

// Runs child() in a forked process with QUENCH_CUDA_PROFILE=profile (unset
// when null); the child's stderr goes to *stderrText. Returns the child's
// exit status (its return value), -1 if it did not exit.
int runChild(const char *profile, const std::function<int()> &child,
             std::string *stderrText) {
  ScratchDir dir;
  std::string errPath = dir.file("stderr.txt");
  fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(errPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || dup2(fd, 2) < 0)
      _exit(100);
    if (profile)
      setenv("QUENCH_CUDA_PROFILE", profile, 1);
    else
      unsetenv("QUENCH_CUDA_PROFILE");
    exit(child()); // exit, not _exit: the atexit handler writes the table
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid)
    return -1;
  *stderrText = readFile(errPath);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// n runs of gpuModel on this thread: 0 when every output was right.
int runModelTimes(int n) {
  for (int r = 0; r < n; ++r) {
    quench_tensor y;
    quench_error err;
    if (runModel(&y, &err) != QUENCH_OK)
      return 1;
    const float *v = static_cast<const float *>(y.data);
    for (int i = 0; i < 4; ++i)
      if (v[i] != static_cast<float>(i + 1) + weightImage[kWeightOffset + i])
        return 1;
    quench_tensor_free(&y);
  }
  return 0;
}

class CudaProfile : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_NE(fake.calls, nullptr) << "cannot open " QUENCH_FAKE_CUDA_DRIVER;
    ASSERT_NE(fake.kernelUs, nullptr);
    // The children must set the driver up themselves.
    ASSERT_EQ(fake.calls("cuInit"), 0);
  }
  Fake &fake = Fake::get();
  ScratchDir dir;
};

void expectRow(const Profile &p, const std::string &name, long calls,
               double totalMs, double meanUs, const char *grid = "-",
               const char *block = "-") {
  const ProfileRow *r = p.find(name);
  ASSERT_NE(r, nullptr) << "no row '" << name << "' in\n" << p.text;
  EXPECT_EQ(r->calls, calls) << name;
  EXPECT_NEAR(r->totalMs, totalMs, 1e-3) << name;
  EXPECT_NEAR(r->meanUs, meanUs, 1e-3) << name;
  EXPECT_NEAR(r->minUs, meanUs, 1e-3) << name;
  EXPECT_EQ(r->grid, grid) << name;
  EXPECT_EQ(r->block, block) << name;
}

TEST_F(CudaProfile, ListsEveryKernelAndCopyWithCountsAndTimes) {
  std::string file = dir.file("run.prof"), err;
  int rc = runChild(
      file.c_str(),
      [&] {
        Fake &f = Fake::get();
        fillWeights();
        f.registerKernel("add", addKernel);
        f.kernelUs("slow", 30);
        if (runModelTimes(3))
          return 3;
        void *s = mgpuStreamCreate();
        void *slow = mgpuModuleGetFunction(gpuModule, "slow");
        for (int i = 0; i < 5; ++i)
          mgpuLaunchKernel(slow, 8, 2, 1, 64, 1, 1, 0, s, nullptr, nullptr, 0);
        mgpuLaunchKernel(slow, 0, 2, 1, 64, 1, 1, 0, s, nullptr, nullptr, 0);
        void *clustered = mgpuModuleGetFunction(gpuModule, "clustered");
        for (int i = 0; i < 2; ++i)
          mgpuLaunchClusterKernel(clustered, 2, 1, 1, 8, 2, 1, 128, 1, 1, 0, s,
                                  nullptr, nullptr);
        // Resolved, never launched: no row.
        mgpuModuleGetFunction(gpuModule, "unused");
        void *a = mgpuMemAlloc(64, s, 0), *b = mgpuMemAlloc(64, s, 0);
        char host[64] = {}, host2[64];
        mgpuMemcpy(b, a, 64, s);
        mgpuMemcpy(host2, host, 64, s);
        mgpuMemset32(a, 0, 16, s);
        mgpuMemFree(a, s);
        mgpuMemFree(b, s);
        mgpuStreamSynchronize(s);
        mgpuStreamDestroy(s);
        if (quench_cuda_take_error(nullptr) != QUENCH_OK)
          return 4;
        return 0;
      },
      &err);
  ASSERT_EQ(rc, 0) << err;
  EXPECT_EQ(err, "");
  Profile p = parseProfile(readFile(file));
  EXPECT_EQ(p.text.rfind("# Quench CUDA profile (QUENCH_CUDA_PROFILE): Fake "
                         "GPU 0 (sm_80)\n",
                         0),
            0u)
      << p.text;
  // Sorted by total time (ties by name); nothing without calls.
  std::vector<std::string> names;
  for (const ProfileRow &r : p.rows)
    names.push_back(r.name);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "slow", "add", "clustered", "memcpy DtoH", "memcpy HtoD",
                       "memcpy DtoD", "memcpy HtoD (weights)", "memcpy HtoH",
                       "memset"}))
      << p.text;
  expectRow(p, "slow", 5, 0.150, 30, "8x2x1", "64x1x1");
  expectRow(p, "add", 3, 0.030, 10, "1x1x1", "4x1x1");
  expectRow(p, "clustered", 2, 0.020, 10, "8x2x1", "128x1x1");
  // The model's input and output copies, one each per run.
  expectRow(p, "memcpy HtoD", 3, 0.006, 2);
  expectRow(p, "memcpy DtoH", 3, 0.006, 2);
  expectRow(p, "memcpy DtoD", 1, 0.002, 2);
  expectRow(p, "memcpy HtoH", 1, 0.002, 2);
  expectRow(p, "memset", 1, 0.002, 2);
  // Uploaded once, in one piece.
  expectRow(p, "memcpy HtoD (weights)", 1, 0.002, 2);
  // Shares of the 0.220 ms timed in all.
  EXPECT_NEAR(p.find("slow")->share, 100 * 0.150 / 0.220, 0.01);
  EXPECT_NEAR(p.find("memset")->share, 100 * 0.002 / 0.220, 0.01);
  EXPECT_EQ(p.totals,
            "# kernels 0.200 ms in 10 launches of 3 kernels; memcpy 0.018 ms "
            "in 9 copies; memset 0.002 ms in 1 calls; runs 3; kernels per "
            "run 0.067 ms");
}

TEST_F(CudaProfile, ConcurrentRunsOnThreads) {
  std::string file = dir.file("threads.prof"), err;
  int rc = runChild(
      file.c_str(),
      [&] {
        fillWeights();
        Fake::get().registerKernel("add", addKernel);
        std::atomic<int> failures{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t)
          threads.emplace_back([&] { failures += runModelTimes(25) ? 1 : 0; });
        for (std::thread &t : threads)
          t.join();
        return failures.load() ? 3 : 0;
      },
      &err);
  ASSERT_EQ(rc, 0) << err;
  EXPECT_EQ(err, "");
  Profile p = parseProfile(readFile(file));
  expectRow(p, "add", 100, 1.000, 10, "1x1x1", "4x1x1");
  expectRow(p, "memcpy HtoD", 100, 0.200, 2);
  expectRow(p, "memcpy DtoH", 100, 0.200, 2);
  expectRow(p, "memcpy HtoD (weights)", 1, 0.002, 2);
  EXPECT_EQ(p.totals,
            "# kernels 1.000 ms in 100 launches of 1 kernels; memcpy 0.402 ms "
            "in 201 copies; memset 0.000 ms in 0 calls; runs 100; kernels "
            "per run 0.010 ms");
}

TEST_F(CudaProfile, OffMeansNoEventsAndNoTable) {
  for (const char *value : {static_cast<const char *>(nullptr), "", "0"}) {
    std::string err;
    int rc = runChild(
        value,
        [&] {
          Fake &f = Fake::get();
          fillWeights();
          f.registerKernel("add", addKernel);
          if (runModelTimes(3))
            return 3;
          if (f.calls("cuLaunchKernel") != 3)
            return 4;
          for (const char *call :
               {"cuEventCreate", "cuEventRecord", "cuEventElapsedTime",
                "cuPointerGetAttribute"})
            if (f.calls(call) != 0) {
              fprintf(stderr, "%s called %ld times\n", call, f.calls(call));
              return 5;
            }
          return 0;
        },
        &err);
    EXPECT_EQ(rc, 0) << (value ? value : "unset") << ": " << err;
    EXPECT_EQ(err, "") << (value ? value : "unset");
  }
}

TEST_F(CudaProfile, OneGoesToStderr) {
  std::string err;
  int rc = runChild(
      "1",
      [&] {
        fillWeights();
        Fake::get().registerKernel("add", addKernel);
        return runModelTimes(2);
      },
      &err);
  ASSERT_EQ(rc, 0) << err;
  Profile p = parseProfile(err);
  expectRow(p, "add", 2, 0.020, 10, "1x1x1", "4x1x1");
  EXPECT_NE(p.totals.find("; runs 2;"), std::string::npos) << err;
}

TEST_F(CudaProfile, ProfilerFailuresWarnOnceAndDoNotBreakRuns) {
  std::string file = dir.file("failing.prof"), err;
  int rc = runChild(
      file.c_str(),
      [&] {
        Fake &f = Fake::get();
        fillWeights();
        f.registerKernel("add", addKernel);
        // Run 1 gets no events, run 2 cannot time them; runs 3 and 4 are timed.
        f.fail("cuEventCreate", 2);
        if (runModelTimes(1))
          return 3;
        f.fail("cuEventCreate", 0);
        f.fail("cuEventElapsedTime", 1);
        if (runModelTimes(1))
          return 4;
        f.fail("cuEventElapsedTime", 0);
        return runModelTimes(2) ? 5 : 0;
      },
      &err);
  ASSERT_EQ(rc, 0) << err;
  EXPECT_EQ(err, "quench: warning: CUDA profiler (QUENCH_CUDA_PROFILE): "
                 "cuEventCreate failed with CUDA_ERROR_OUT_OF_MEMORY: out of "
                 "memory; the profile leaves out what it could not time\n");
  Profile p = parseProfile(readFile(file));
  expectRow(p, "add", 2, 0.020, 10, "1x1x1", "4x1x1");
  EXPECT_NE(p.totals.find("; runs 4;"), std::string::npos) << p.text;
}

TEST_F(CudaProfile, UnwritableFileFallsBackToStderr) {
  std::string file = dir.file("no-such-dir/x.prof"), err;
  int rc = runChild(
      file.c_str(),
      [&] {
        fillWeights();
        Fake::get().registerKernel("add", addKernel);
        return runModelTimes(1);
      },
      &err);
  ASSERT_EQ(rc, 0) << err;
  std::string warning = "quench: warning: CUDA profiler (QUENCH_CUDA_PROFILE): "
                        "cannot write " +
                        file +
                        " (No such file or directory); the profile follows "
                        "on stderr; the profile leaves out what it could not "
                        "time\n";
  ASSERT_EQ(err.rfind(warning, 0), 0u) << err;
  expectRow(parseProfile(err.substr(warning.size())), "add", 1, 0.010, 10,
            "1x1x1", "4x1x1");
}

} // namespace
