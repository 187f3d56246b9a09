/* The host side of models compiled with --target=cuda: MLIR's GPU runtime
 * ABI (the mgpu* functions that gpu-to-llvm and the gpu.binary embedding
 * call) on top of the CUDA driver API, plus the weight upload.
 *
 * The driver, libcuda.so.1 (or $QUENCH_CUDA_DRIVER), is opened with dlopen
 * on first use, so artifacts link and start on machines without CUDA; this
 * file includes no CUDA header and declares the few driver types it uses.
 * Nothing touches the driver before the first call that needs the GPU:
 * mgpuModuleLoad runs from a global constructor and only records the blob.
 *
 * Errors. The mgpu* functions return void or a pointer, so a failure is
 * recorded in thread-local state: the first error on a thread is kept
 * (status + one-line message) and every later "work" call on that thread
 * (alloc, copy, memset, launch, get-function, synchronize, event record)
 * does nothing and returns NULL, until quench_cuda_take_error clears it
 * (quench_model_run does after every entry call). "Release" calls
 * (mgpuMemFree, mgpuStreamDestroy, mgpuEventDestroy, mgpuModuleUnload)
 * still release their non-NULL handle after an error, so that a failed run
 * leaks nothing and host buffers are not freed under a pending copy.
 *
 * State. One process-wide driver state set up once (pthread_once); the
 * device's primary context is retained once and made current on every entry,
 * from whichever thread calls. Streams come from a process-wide pool
 * (created non-blocking, reused by later runs); device buffers from the
 * device's default memory pool with the release threshold at UINT64_MAX
 * (stream-ordered, cached across runs); weights are uploaded once per
 * (image, size) and stay for the life of the process.
 *
 * docs/runtime.md, "CUDA driver", describes the contract.
 */
#include "internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* The driver API subset (values from CUDA 13's cuda.h)                      */
/* ------------------------------------------------------------------------ */

typedef int CUresult;
typedef int CUdevice;
typedef uint64_t CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef struct CUmemPoolHandle_st *CUmemoryPool;

enum {
  CUDA_SUCCESS = 0,
  CUDA_ERROR_INVALID_VALUE = 1,
  CUDA_ERROR_OUT_OF_MEMORY = 2,
  CUDA_ERROR_INSUFFICIENT_DRIVER = 35,
  CUDA_ERROR_NO_DEVICE = 100,
  CUDA_ERROR_INVALID_IMAGE = 200,
  CUDA_ERROR_NO_BINARY_FOR_GPU = 209,
  CUDA_ERROR_INVALID_PTX = 218,
  CUDA_ERROR_JIT_COMPILER_NOT_FOUND = 221,
  CUDA_ERROR_UNSUPPORTED_PTX_VERSION = 222,
  CUDA_ERROR_NOT_READY = 600,
};

enum {
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
  CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97,
  CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED = 115,
  CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8,
  CU_MEMPOOL_ATTR_RELEASE_THRESHOLD = 4,
  CU_STREAM_NON_BLOCKING = 0x1,
  CU_EVENT_DISABLE_TIMING = 0x2,
  CU_MEM_ATTACH_GLOBAL = 0x1,
  CU_JIT_ERROR_LOG_BUFFER = 5,
  CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6,
  CU_JIT_OPTIMIZATION_LEVEL = 7,
  CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION = 4,
  CU_POINTER_ATTRIBUTE_MEMORY_TYPE = 2,
  CU_MEMORYTYPE_DEVICE = 2,
  CU_MEMORYTYPE_ARRAY = 3,
  CU_MEMORYTYPE_UNIFIED = 4,
};

/* cuLaunchKernelEx's configuration with one attribute, the cluster shape
 * (CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION); the value is a 64-byte union
 * aligned like a pointer. */
typedef struct CUlaunchAttribute {
  int id;
  char pad[4];
  union {
    char bytes[64];
    void *align;
    struct {
      unsigned int x, y, z;
    } clusterDim;
  } value;
} CUlaunchAttribute;
_Static_assert(sizeof(CUlaunchAttribute) == 72, "CUlaunchAttribute layout");

typedef struct CUlaunchConfig {
  unsigned int gridDimX, gridDimY, gridDimZ;
  unsigned int blockDimX, blockDimY, blockDimZ;
  unsigned int sharedMemBytes;
  CUstream hStream;
  CUlaunchAttribute *attrs;
  unsigned int numAttrs;
} CUlaunchConfig;

/* Dynamic shared memory a kernel may use without opting in. */
#define DEFAULT_DYNAMIC_SMEM_LIMIT (48 * 1024)
/* Weight images are copied in pieces of this size (cuMemcpyHtoD). */
#define WEIGHT_UPLOAD_CHUNK ((size_t)64 << 20)

typedef struct driver_api {
  CUresult (*Init)(unsigned int);
  CUresult (*DriverGetVersion)(int *);
  CUresult (*GetErrorName)(CUresult, const char **);
  CUresult (*GetErrorString)(CUresult, const char **);
  CUresult (*DeviceGetCount)(int *);
  CUresult (*DeviceGet)(CUdevice *, int);
  CUresult (*DeviceGetName)(char *, int, CUdevice);
  CUresult (*DeviceGetAttribute)(int *, int, CUdevice);
  CUresult (*DevicePrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*CtxSetCurrent)(CUcontext);
  CUresult (*CtxSynchronize)(void);
  CUresult (*ModuleLoadData)(CUmodule *, const void *);
  CUresult (*ModuleLoadDataEx)(CUmodule *, const void *, unsigned int, int *,
                               void **);
  CUresult (*ModuleUnload)(CUmodule);
  CUresult (*ModuleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*FuncSetAttribute)(CUfunction, int, int);
  CUresult (*LaunchKernel)(CUfunction, unsigned int, unsigned int,
                           unsigned int, unsigned int, unsigned int,
                           unsigned int, unsigned int, CUstream, void **,
                           void **);
  CUresult (*StreamCreate)(CUstream *, unsigned int);
  CUresult (*StreamSynchronize)(CUstream);
  CUresult (*StreamDestroy)(CUstream);
  CUresult (*StreamWaitEvent)(CUstream, CUevent, unsigned int);
  CUresult (*EventCreate)(CUevent *, unsigned int);
  CUresult (*EventDestroy)(CUevent);
  CUresult (*EventRecord)(CUevent, CUstream);
  CUresult (*EventSynchronize)(CUevent);
  CUresult (*MemAlloc)(CUdeviceptr *, size_t);
  CUresult (*MemFree)(CUdeviceptr);
  CUresult (*MemAllocManaged)(CUdeviceptr *, size_t, unsigned int);
  CUresult (*MemcpyAsync)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
  CUresult (*MemcpyHtoD)(CUdeviceptr, const void *, size_t);
  CUresult (*MemsetD16Async)(CUdeviceptr, unsigned short, size_t, CUstream);
  CUresult (*MemsetD32Async)(CUdeviceptr, unsigned int, size_t, CUstream);
  /* Optional (stream-ordered allocator, CUDA 11.2+): NULL when absent. */
  CUresult (*DeviceGetDefaultMemPool)(CUmemoryPool *, CUdevice);
  CUresult (*MemPoolSetAttribute)(CUmemoryPool, int, void *);
  CUresult (*MemAllocFromPoolAsync)(CUdeviceptr *, size_t, CUmemoryPool,
                                    CUstream);
  CUresult (*MemFreeAsync)(CUdeviceptr, CUstream);
  /* Optional (thread block clusters, CUDA 12.0+). */
  CUresult (*LaunchKernelEx)(const CUlaunchConfig *, CUfunction, void **,
                             void **);
  /* Optional; only the profiler (QUENCH_CUDA_PROFILE) uses them. */
  CUresult (*EventElapsedTime)(float *, CUevent, CUevent);
  CUresult (*PointerGetAttribute)(void *, int, CUdeviceptr);
} driver_api;

static driver_api drv;

/* Every entry point by its exported name; versioned names where the driver
 * exports several (the unversioned ones are the legacy ABI). */
static const struct {
  const char *name;
  size_t offset;
  bool required;
} driver_symbols[] = {
#define SYM(field, name, required) {name, offsetof(driver_api, field), required}
    SYM(Init, "cuInit", true),
    SYM(DriverGetVersion, "cuDriverGetVersion", true),
    SYM(GetErrorName, "cuGetErrorName", true),
    SYM(GetErrorString, "cuGetErrorString", true),
    SYM(DeviceGetCount, "cuDeviceGetCount", true),
    SYM(DeviceGet, "cuDeviceGet", true),
    SYM(DeviceGetName, "cuDeviceGetName", true),
    SYM(DeviceGetAttribute, "cuDeviceGetAttribute", true),
    SYM(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", true),
    SYM(CtxSetCurrent, "cuCtxSetCurrent", true),
    SYM(CtxSynchronize, "cuCtxSynchronize", true),
    SYM(ModuleLoadData, "cuModuleLoadData", true),
    SYM(ModuleLoadDataEx, "cuModuleLoadDataEx", true),
    SYM(ModuleUnload, "cuModuleUnload", true),
    SYM(ModuleGetFunction, "cuModuleGetFunction", true),
    SYM(FuncSetAttribute, "cuFuncSetAttribute", true),
    SYM(LaunchKernel, "cuLaunchKernel", true),
    SYM(StreamCreate, "cuStreamCreate", true),
    SYM(StreamSynchronize, "cuStreamSynchronize", true),
    SYM(StreamDestroy, "cuStreamDestroy_v2", true),
    SYM(StreamWaitEvent, "cuStreamWaitEvent", true),
    SYM(EventCreate, "cuEventCreate", true),
    SYM(EventDestroy, "cuEventDestroy_v2", true),
    SYM(EventRecord, "cuEventRecord", true),
    SYM(EventSynchronize, "cuEventSynchronize", true),
    SYM(MemAlloc, "cuMemAlloc_v2", true),
    SYM(MemFree, "cuMemFree_v2", true),
    SYM(MemAllocManaged, "cuMemAllocManaged", true),
    SYM(MemcpyAsync, "cuMemcpyAsync", true),
    SYM(MemcpyHtoD, "cuMemcpyHtoD_v2", true),
    SYM(MemsetD16Async, "cuMemsetD16Async", true),
    SYM(MemsetD32Async, "cuMemsetD32Async", true),
    SYM(DeviceGetDefaultMemPool, "cuDeviceGetDefaultMemPool", false),
    SYM(MemPoolSetAttribute, "cuMemPoolSetAttribute", false),
    SYM(MemAllocFromPoolAsync, "cuMemAllocFromPoolAsync", false),
    SYM(MemFreeAsync, "cuMemFreeAsync", false),
    SYM(LaunchKernelEx, "cuLaunchKernelEx", false),
    SYM(EventElapsedTime, "cuEventElapsedTime", false),
    SYM(PointerGetAttribute, "cuPointerGetAttribute", false),
#undef SYM
};

/* ------------------------------------------------------------------------ */
/* Per-thread errors                                                        */
/* ------------------------------------------------------------------------ */

static _Thread_local quench_status thread_status;
static _Thread_local char thread_message[QUENCH_ERROR_MESSAGE_SIZE];

static void vrecord(quench_status status, const char *fmt, va_list ap) {
  if (thread_status != QUENCH_OK)
    return; /* the first error of a run is the one to report */
  int n = vsnprintf(thread_message, sizeof thread_message, fmt, ap);
  if (n < 0)
    snprintf(thread_message, sizeof thread_message, "CUDA runtime error");
  for (char *p = thread_message; *p; ++p)
    if (*p == '\n' || *p == '\r' || *p == '\t')
      *p = ' ';
  thread_status = status;
}

static void record(quench_status status, const char *fmt, ...)
    QUENCH_PRINTF_LIKE(2, 3);
static void record(quench_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vrecord(status, fmt, ap);
  va_end(ap);
}

quench_status quench_cuda_take_error(quench_error *err) {
  quench_status status = thread_status;
  if (status == QUENCH_OK)
    quench_error_clear(err);
  else
    quench_error_set(err, status, "%s", thread_message);
  thread_status = QUENCH_OK;
  thread_message[0] = '\0';
  return status;
}

/* "CUDA_ERROR_OUT_OF_MEMORY: out of memory" for r (the driver's own name and
 * description; the number when it has none). */
static void describe(CUresult r, char *buf, size_t size) {
  const char *name = NULL, *text = NULL;
  if (drv.GetErrorName && drv.GetErrorName(r, &name) != CUDA_SUCCESS)
    name = NULL;
  if (drv.GetErrorString && drv.GetErrorString(r, &text) != CUDA_SUCCESS)
    text = NULL;
  if (name && text)
    snprintf(buf, size, "%s: %s", name, text);
  else if (name)
    snprintf(buf, size, "%s", name);
  else
    snprintf(buf, size, "CUDA error %d", (int)r);
}

static quench_status status_of(CUresult r) {
  return r == CUDA_ERROR_OUT_OF_MEMORY ? QUENCH_ERR_OUT_OF_MEMORY
                                       : QUENCH_ERR_INTERNAL;
}

/* Records "<call> failed with <NAME>: <description>", followed by
 * " (<context>)" when context_fmt is not NULL. */
static void record_cu(CUresult r, const char *call, const char *context_fmt,
                      ...) QUENCH_PRINTF_LIKE(3, 4);
static void record_cu(CUresult r, const char *call, const char *context_fmt,
                      ...) {
  if (thread_status != QUENCH_OK)
    return;
  char what[256], context[256];
  describe(r, what, sizeof what);
  context[0] = '\0';
  if (context_fmt) {
    va_list ap;
    va_start(ap, context_fmt);
    vsnprintf(context, sizeof context, context_fmt, ap);
    va_end(ap);
  }
  record(status_of(r), "%s failed with %s%s%s%s", call, what,
         context[0] ? " (" : "", context, context[0] ? ")" : "");
}

/* ------------------------------------------------------------------------ */
/* Driver and device, set up once                                           */
/* ------------------------------------------------------------------------ */

static pthread_once_t driver_once = PTHREAD_ONCE_INIT;
static atomic_bool driver_ready; /* set up without error */
/* The setup's error, reported by every later entry on every thread. */
static quench_status setup_status;
static char setup_message[QUENCH_ERROR_MESSAGE_SIZE];

/* mgpuSetDefaultDevice before the setup; -1: $QUENCH_CUDA_DEVICE or 0. */
static atomic_int requested_device = -1;

static CUdevice device;
static int device_ordinal;
static CUcontext context;
static char device_name[256];
static int cc_major, cc_minor;
static int smem_optin; /* CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN */
static CUmemoryPool mempool; /* NULL: no stream-ordered allocator */

static void setup_fail(quench_status status, const char *fmt, ...)
    QUENCH_PRINTF_LIKE(2, 3);
static void setup_fail(quench_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(setup_message, sizeof setup_message, fmt, ap);
  va_end(ap);
  setup_status = status;
}

static bool device_chosen;

static bool setup_call(CUresult r, const char *call) {
  if (r == CUDA_SUCCESS)
    return true;
  char what[256];
  describe(r, what, sizeof what);
  if (device_chosen)
    setup_fail(status_of(r), "%s failed with %s (CUDA device %d)", call, what,
               device_ordinal);
  else
    setup_fail(status_of(r), "%s failed with %s", call, what);
  return false;
}

/* The device ordinal: mgpuSetDefaultDevice, else $QUENCH_CUDA_DEVICE, else
 * 0. Returns false (setup error set) for a bad value. */
static bool choose_device(int count) {
  int requested = atomic_load(&requested_device);
  const char *env = getenv("QUENCH_CUDA_DEVICE");
  if (requested >= 0) {
    device_ordinal = requested;
  } else if (env && *env) {
    char *end = NULL;
    long v = strtol(env, &end, 10);
    if (*end != '\0' || end == env || v < 0 || v > INT_MAX ||
        (env[0] < '0' || env[0] > '9')) {
      setup_fail(QUENCH_ERR_INVALID_ARGUMENT,
                 "QUENCH_CUDA_DEVICE='%s' is not a CUDA device number "
                 "(0 .. %d)",
                 env, count - 1);
      return false;
    }
    device_ordinal = (int)v;
  } else {
    device_ordinal = 0;
  }
  if (device_ordinal >= count) {
    setup_fail(QUENCH_ERR_INVALID_ARGUMENT,
               "CUDA device %d was requested (%s) but the driver sees %d "
               "CUDA device%s (0 .. %d)",
               device_ordinal,
               requested >= 0 ? "mgpuSetDefaultDevice" : "QUENCH_CUDA_DEVICE",
               count, count == 1 ? "" : "s", count - 1);
    return false;
  }
  return true;
}

static void profile_setup(void);

static void driver_setup(void) {
  const char *env = getenv("QUENCH_CUDA_DRIVER");
  const char *path = env && *env ? env : "libcuda.so.1";
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char *why = dlerror();
    why = why ? why : "unknown error";
    /* dlerror usually starts with the path itself: say it once. */
    size_t n = strlen(path);
    if (strncmp(why, path, n) == 0 && why[n] == ':' && why[n + 1] == ' ')
      why += n + 2;
    setup_fail(QUENCH_ERR_UNSUPPORTED,
               "cannot load the CUDA driver (%s%s: %s): this model was "
               "compiled with --target=cuda and needs an NVIDIA GPU and its "
               "driver",
               path, env && *env ? ", from QUENCH_CUDA_DRIVER" : "", why);
    return;
  }
  for (size_t i = 0; i < sizeof driver_symbols / sizeof driver_symbols[0];
       ++i) {
    void *sym = dlsym(lib, driver_symbols[i].name);
    if (!sym && driver_symbols[i].required) {
      setup_fail(QUENCH_ERR_UNSUPPORTED,
                 "the CUDA driver %s has no %s: the NVIDIA driver is too old "
                 "or this is not the CUDA driver",
                 path, driver_symbols[i].name);
      return;
    }
    /* POSIX guarantees that function pointers round-trip through void *. */
    memcpy((char *)&drv + driver_symbols[i].offset, &sym, sizeof sym);
  }

  CUresult r = drv.Init(0);
  if (r != CUDA_SUCCESS) {
    const char *name = NULL, *text = NULL;
    char number[32];
    if (drv.GetErrorName(r, &name) != CUDA_SUCCESS || !name) {
      snprintf(number, sizeof number, "CUDA error %d", (int)r);
      name = number;
    }
    if (drv.GetErrorString(r, &text) != CUDA_SUCCESS || !text)
      text = "no description";
    setup_fail(r == CUDA_ERROR_OUT_OF_MEMORY ? QUENCH_ERR_OUT_OF_MEMORY
                                             : QUENCH_ERR_UNSUPPORTED,
               "no usable CUDA device: cuInit failed with %s (%s)", name, text);
    return;
  }
  int count = 0;
  if (!setup_call(drv.DeviceGetCount(&count), "cuDeviceGetCount"))
    return;
  if (count <= 0) {
    setup_fail(QUENCH_ERR_UNSUPPORTED,
               "no usable CUDA device: the CUDA driver reports no device");
    return;
  }
  if (!choose_device(count))
    return;
  device_chosen = true;
  if (!setup_call(drv.DeviceGet(&device, device_ordinal), "cuDeviceGet"))
    return;
  if (!setup_call(drv.DeviceGetName(device_name, (int)sizeof device_name - 1,
                                    device),
                  "cuDeviceGetName"))
    return;
  device_name[sizeof device_name - 1] = '\0';
  if (!setup_call(drv.DeviceGetAttribute(
                      &cc_major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                      device),
                  "cuDeviceGetAttribute") ||
      !setup_call(drv.DeviceGetAttribute(
                      &cc_minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                      device),
                  "cuDeviceGetAttribute") ||
      !setup_call(drv.DeviceGetAttribute(
                      &smem_optin,
                      CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
                      device),
                  "cuDeviceGetAttribute"))
    return;
  if (!setup_call(drv.DevicePrimaryCtxRetain(&context, device),
                  "cuDevicePrimaryCtxRetain") ||
      !setup_call(drv.CtxSetCurrent(context), "cuCtxSetCurrent"))
    return;

  /* The stream-ordered allocator on the device's default pool, which keeps
   * what runs free (release threshold UINT64_MAX) for the next run. */
  int pools = 0;
  if (drv.DeviceGetDefaultMemPool && drv.MemPoolSetAttribute &&
      drv.MemAllocFromPoolAsync && drv.MemFreeAsync &&
      drv.DeviceGetAttribute(&pools, CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED,
                             device) == CUDA_SUCCESS &&
      pools) {
    CUmemoryPool pool = NULL;
    uint64_t threshold = UINT64_MAX;
    if (!setup_call(drv.DeviceGetDefaultMemPool(&pool, device),
                    "cuDeviceGetDefaultMemPool") ||
        !setup_call(drv.MemPoolSetAttribute(
                        pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &threshold),
                    "cuMemPoolSetAttribute(CU_MEMPOOL_ATTR_RELEASE_THRESHOLD)"))
      return;
    mempool = pool;
  }
  profile_setup();
  atomic_store(&driver_ready, true);
}

/* Starts a work call: false (do nothing) when this thread has an error or
 * the driver cannot be set up; otherwise the context is current. */
static bool enter(void) {
  if (thread_status != QUENCH_OK)
    return false;
  pthread_once(&driver_once, driver_setup);
  if (!atomic_load_explicit(&driver_ready, memory_order_acquire)) {
    record(setup_status, "%s", setup_message);
    return false;
  }
  CUresult r = drv.CtxSetCurrent(context);
  if (r != CUDA_SUCCESS) {
    record_cu(r, "cuCtxSetCurrent", NULL);
    return false;
  }
  return true;
}

/* Starts a release call: true when the driver is up (a handle to release
 * can only come from it), with the context made current. */
static bool enter_release(void) {
  if (!atomic_load_explicit(&driver_ready, memory_order_acquire))
    return false;
  drv.CtxSetCurrent(context);
  return true;
}

/* Records r for a release call unless an error is already recorded. */
static void release_result(CUresult r, const char *call) {
  if (r != CUDA_SUCCESS)
    record_cu(r, call, NULL);
}

void mgpuSetDefaultDevice(int32_t ordinal) {
  if (ordinal < 0) {
    record(QUENCH_ERR_INVALID_ARGUMENT,
           "mgpuSetDefaultDevice: invalid CUDA device %d", (int)ordinal);
    return;
  }
  if (atomic_load(&driver_ready)) {
    if (ordinal != device_ordinal)
      record(QUENCH_ERR_UNSUPPORTED,
             "mgpuSetDefaultDevice(%d): the CUDA runtime already uses device "
             "%d; switching devices is not supported",
             (int)ordinal, device_ordinal);
    return;
  }
  atomic_store(&requested_device, ordinal);
}

/* ------------------------------------------------------------------------ */
/* Kernel profiler (QUENCH_CUDA_PROFILE)                                    */
/* ------------------------------------------------------------------------ */

/* With QUENCH_CUDA_PROFILE set (read once, by driver_setup), every launch,
 * copy and memset is bracketed by two timing events on its stream (from a
 * pool, created with flags 0), and the pair waits in `prof_pending` until
 * its stream is known to be done: mgpuStreamSynchronize and stream release
 * (mgpuStreamDestroy, quench_cuda_run_end) collect the stream's pairs,
 * quench_cuda_run_end also every pair its thread left, and the exit handler
 * everything. Collecting adds cuEventElapsedTime to a table by kernel name;
 * the exit handler prints it. Unset, the only cost is one test of
 * `profile_on` per call. The profiler's own failures never touch the run:
 * one warning line, and the pair is dropped. docs/runtime.md, "Kernel
 * profiler". */

typedef enum { PROF_KERNEL, PROF_COPY, PROF_MEMSET } prof_kind;

typedef struct prof_entry {
  prof_kind kind;
  uint64_t calls;
  double total_ms, min_ms;
  unsigned grid[3], block[3]; /* of the last launch collected */
  char name[];
} prof_entry;

typedef struct prof_record {
  CUevent start, end;
  CUstream stream;
  const void *owner; /* &prof_thread of the thread that recorded it */
  prof_entry *entry;
  unsigned grid[3], block[3];
} prof_record;

/* Set by driver_setup before driver_ready; read only after enter() or
 * enter_release() saw driver_ready. */
static bool profile_on;
static char profile_path[4096]; /* "": stderr */

static pthread_mutex_t prof_mutex = PTHREAD_MUTEX_INITIALIZER;
/* Everything below: prof_mutex held. */
static prof_entry **prof_entries;
static size_t prof_num_entries, prof_entries_capacity;
static prof_record *prof_pending;
static size_t prof_num_pending, prof_pending_capacity;
static CUevent *prof_events; /* idle events */
static size_t prof_num_events, prof_events_capacity;
static uint64_t prof_runs;
/* The pseudo-kernels: copies by direction, memsets, the weight upload. */
enum { PROF_HTOD, PROF_DTOH, PROF_DTOD, PROF_HTOH };
static prof_entry *prof_copy[4], *prof_memset, *prof_weights;

static atomic_bool prof_warned;
static _Thread_local char prof_thread;

/* Prints the profiler's one warning line (the first failure only). */
static void prof_warn(const char *fmt, ...) QUENCH_PRINTF_LIKE(1, 2);
static void prof_warn(const char *fmt, ...) {
  if (atomic_exchange(&prof_warned, true))
    return;
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  fprintf(stderr,
          "quench: warning: CUDA profiler (QUENCH_CUDA_PROFILE): %s; the "
          "profile leaves out what it could not time\n",
          what);
}

static void prof_warn_cu(CUresult r, const char *call) {
  char what[256];
  describe(r, what, sizeof what);
  prof_warn("%s failed with %s", call, what);
}

/* Makes room for one more element in *array (prof_mutex held). */
static bool prof_reserve(void **array, size_t count, size_t *capacity,
                         size_t elem) {
  if (count < *capacity)
    return true;
  size_t grown_capacity = *capacity ? 2 * *capacity : 64;
  void *grown = realloc(*array, grown_capacity * elem);
  if (!grown)
    return false;
  *array = grown;
  *capacity = grown_capacity;
  return true;
}

/* The table's entry for (kind, name), added if new (prof_mutex held). */
static prof_entry *prof_entry_locked(prof_kind kind, const char *name) {
  for (size_t i = 0; i < prof_num_entries; ++i)
    if (prof_entries[i]->kind == kind && !strcmp(prof_entries[i]->name, name))
      return prof_entries[i];
  size_t len = strlen(name);
  prof_entry *e = calloc(1, sizeof *e + len + 1);
  if (!e || !prof_reserve((void **)&prof_entries, prof_num_entries,
                          &prof_entries_capacity, sizeof *prof_entries)) {
    free(e);
    prof_warn("out of memory");
    return NULL;
  }
  e->kind = kind;
  memcpy(e->name, name, len + 1);
  prof_entries[prof_num_entries++] = e;
  return e;
}

static prof_entry *prof_entry_for(prof_kind kind, const char *name) {
  pthread_mutex_lock(&prof_mutex);
  prof_entry *e = prof_entry_locked(kind, name);
  pthread_mutex_unlock(&prof_mutex);
  return e;
}

static void prof_events_put(CUevent a, CUevent b) {
  CUevent both[2] = {a, b};
  pthread_mutex_lock(&prof_mutex);
  for (int i = 0; i < 2; ++i) {
    if (!both[i])
      continue;
    if (prof_reserve((void **)&prof_events, prof_num_events,
                     &prof_events_capacity, sizeof *prof_events))
      prof_events[prof_num_events++] = both[i];
    else
      drv.EventDestroy(both[i]);
  }
  pthread_mutex_unlock(&prof_mutex);
}

static CUevent prof_event_take(void) {
  CUevent e = NULL;
  pthread_mutex_lock(&prof_mutex);
  if (prof_num_events)
    e = prof_events[--prof_num_events];
  pthread_mutex_unlock(&prof_mutex);
  if (!e) {
    /* Flags 0: a timing event (CU_EVENT_DISABLE_TIMING cannot be timed). */
    CUresult r = drv.EventCreate(&e, 0);
    if (r != CUDA_SUCCESS) {
      prof_warn_cu(r, "cuEventCreate");
      return NULL;
    }
  }
  return e;
}

/* Starts timing work for entry on stream: false (nothing to time) when
 * profiling is off, entry is NULL or the start event cannot be recorded. */
static bool prof_start(prof_record *rec, prof_entry *entry, CUstream stream) {
  if (!profile_on || !entry)
    return false;
  memset(rec, 0, sizeof *rec);
  rec->entry = entry;
  rec->stream = stream;
  rec->owner = &prof_thread;
  rec->start = prof_event_take();
  rec->end = rec->start ? prof_event_take() : NULL;
  if (!rec->end) {
    prof_events_put(rec->start, NULL);
    return false;
  }
  CUresult r = drv.EventRecord(rec->start, stream);
  if (r != CUDA_SUCCESS) {
    prof_warn_cu(r, "cuEventRecord");
    prof_events_put(rec->start, rec->end);
    return false;
  }
  return true;
}

/* Ends what prof_start began: after work that was issued (issued), records
 * the end event and queues the pair until the stream is done. dims: grid
 * and block of a launch, or NULL. */
static void prof_finish(prof_record *rec, bool issued, const int64_t *dims) {
  if (issued) {
    CUresult r = drv.EventRecord(rec->end, rec->stream);
    if (r != CUDA_SUCCESS) {
      prof_warn_cu(r, "cuEventRecord");
      issued = false;
    }
  }
  if (issued && dims)
    for (int i = 0; i < 3; ++i) {
      rec->grid[i] = (unsigned)dims[i];
      rec->block[i] = (unsigned)dims[3 + i];
    }
  if (issued) {
    pthread_mutex_lock(&prof_mutex);
    if (prof_reserve((void **)&prof_pending, prof_num_pending,
                     &prof_pending_capacity, sizeof *prof_pending))
      prof_pending[prof_num_pending++] = *rec;
    else
      issued = false;
    pthread_mutex_unlock(&prof_mutex);
    if (!issued)
      prof_warn("out of memory");
  }
  if (!issued)
    prof_events_put(rec->start, rec->end);
}

/* Adds the time of every pending pair that matches to the table and takes
 * it off the list: all pairs (all), those on stream, or those of owner
 * (prof_mutex held). Waits for a pair that is not done yet. */
static void prof_collect_locked(bool all, CUstream stream, const void *owner) {
  size_t kept = 0;
  for (size_t i = 0; i < prof_num_pending; ++i) {
    prof_record *rec = &prof_pending[i];
    if (!all && (owner ? rec->owner != owner : rec->stream != stream)) {
      prof_pending[kept++] = *rec;
      continue;
    }
    float ms = 0;
    CUresult r = drv.EventElapsedTime(&ms, rec->start, rec->end);
    if (r == CUDA_ERROR_NOT_READY) {
      r = drv.EventSynchronize(rec->end);
      if (r == CUDA_SUCCESS)
        r = drv.EventElapsedTime(&ms, rec->start, rec->end);
    }
    if (r == CUDA_SUCCESS) {
      prof_entry *e = rec->entry;
      if (e->calls == 0 || ms < e->min_ms)
        e->min_ms = ms;
      ++e->calls;
      e->total_ms += ms;
      if (e->kind == PROF_KERNEL) {
        memcpy(e->grid, rec->grid, sizeof e->grid);
        memcpy(e->block, rec->block, sizeof e->block);
      }
    } else {
      prof_warn_cu(r, "cuEventElapsedTime");
    }
    /* Back to the pool; the pool's array only grows past the pending
     * list's by design, so reserving cannot fail for long. */
    CUevent both[2] = {rec->start, rec->end};
    for (int k = 0; k < 2; ++k)
      if (prof_reserve((void **)&prof_events, prof_num_events,
                       &prof_events_capacity, sizeof *prof_events))
        prof_events[prof_num_events++] = both[k];
      else
        drv.EventDestroy(both[k]);
  }
  prof_num_pending = kept;
}

/* The stream is done (synchronized): time its pairs. */
static void prof_stream_done(CUstream stream) {
  if (!profile_on)
    return;
  pthread_mutex_lock(&prof_mutex);
  prof_collect_locked(false, stream, NULL);
  pthread_mutex_unlock(&prof_mutex);
}

/* The memcpy pseudo-kernel for a copy from src to dst. */
static prof_entry *prof_copy_entry(const void *dst, const void *src) {
  bool dev[2] = {false, false};
  const void *p[2] = {src, dst};
  for (int i = 0; i < 2; ++i) {
    unsigned int type = 0;
    /* Memory the driver does not know (plain host memory) is an error:
     * host. */
    if (drv.PointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
                                (CUdeviceptr)(uintptr_t)p[i]) == CUDA_SUCCESS)
      dev[i] = type == CU_MEMORYTYPE_DEVICE || type == CU_MEMORYTYPE_ARRAY ||
               type == CU_MEMORYTYPE_UNIFIED;
  }
  return prof_copy[dev[0] ? (dev[1] ? PROF_DTOD : PROF_DTOH)
                          : (dev[1] ? PROF_HTOD : PROF_HTOH)];
}

static int prof_compare(const void *a, const void *b) {
  const prof_entry *x = *(prof_entry *const *)a, *y = *(prof_entry *const *)b;
  if (x->total_ms != y->total_ms)
    return x->total_ms > y->total_ms ? -1 : 1;
  return strcmp(x->name, y->name);
}

/* Writes the table (prof_mutex held). */
static void prof_write_locked(FILE *f) {
  prof_entry **sorted = malloc((prof_num_entries + 1) * sizeof *sorted);
  if (!sorted) {
    fprintf(f, "# Quench CUDA profile: out of memory\n");
    return;
  }
  double sum[3] = {0, 0, 0};
  uint64_t calls[3] = {0, 0, 0}, kernels = 0;
  size_t n = 0;
  for (size_t i = 0; i < prof_num_entries; ++i) {
    prof_entry *e = prof_entries[i];
    if (!e->calls)
      continue;
    sorted[n++] = e;
    sum[e->kind] += e->total_ms;
    calls[e->kind] += e->calls;
    kernels += e->kind == PROF_KERNEL;
  }
  qsort(sorted, n, sizeof *sorted, prof_compare);
  double total = sum[0] + sum[1] + sum[2];
  fprintf(f, "# Quench CUDA profile (QUENCH_CUDA_PROFILE): %s (sm_%d%d)\n",
          device_name, cc_major, cc_minor);
  fprintf(f, "# %8s %11s %11s %11s %7s  %-15s %-15s %s\n", "calls", "total ms",
          "mean us", "min us", "share", "grid", "block", "name");
  for (size_t i = 0; i < n; ++i) {
    const prof_entry *e = sorted[i];
    char grid[40] = "-", block[40] = "-";
    if (e->kind == PROF_KERNEL) {
      snprintf(grid, sizeof grid, "%ux%ux%u", e->grid[0], e->grid[1],
               e->grid[2]);
      snprintf(block, sizeof block, "%ux%ux%u", e->block[0], e->block[1],
               e->block[2]);
    }
    fprintf(f, "%10llu %11.3f %11.3f %11.3f %6.2f%%  %-15s %-15s %s\n",
            (unsigned long long)e->calls, e->total_ms,
            1e3 * e->total_ms / (double)e->calls, 1e3 * e->min_ms,
            total > 0 ? 100.0 * e->total_ms / total : 0.0, grid, block,
            e->name);
  }
  fprintf(f,
          "# kernels %.3f ms in %llu launches of %llu kernels; memcpy %.3f ms "
          "in %llu copies; memset %.3f ms in %llu calls; runs %llu",
          sum[PROF_KERNEL], (unsigned long long)calls[PROF_KERNEL],
          (unsigned long long)kernels, sum[PROF_COPY],
          (unsigned long long)calls[PROF_COPY], sum[PROF_MEMSET],
          (unsigned long long)calls[PROF_MEMSET],
          (unsigned long long)prof_runs);
  if (prof_runs)
    fprintf(f, "; kernels per run %.3f ms",
            sum[PROF_KERNEL] / (double)prof_runs);
  fprintf(f, "\n");
  free(sorted);
}

static void prof_at_exit(void) {
  if (!profile_on || !atomic_load(&driver_ready))
    return;
  drv.CtxSetCurrent(context);
  pthread_mutex_lock(&prof_mutex);
  prof_collect_locked(true, NULL, NULL);
  FILE *f = stderr;
  if (profile_path[0]) {
    f = fopen(profile_path, "w");
    if (!f) {
      char why[128];
      quench_internal_strerror(errno, why, sizeof why);
      prof_warn("cannot write %s (%s); the profile follows on stderr",
                profile_path, why);
      f = stderr;
    }
  }
  prof_write_locked(f);
  if (f != stderr && fclose(f) != 0) {
    char why[128];
    quench_internal_strerror(errno, why, sizeof why);
    prof_warn("cannot write %s (%s)", profile_path, why);
  }
  pthread_mutex_unlock(&prof_mutex);
}

/* From driver_setup: reads QUENCH_CUDA_PROFILE. Unset, "" or "0": off;
 * "1": the table goes to stderr at exit; anything else: a file for it. */
static void profile_setup(void) {
  const char *env = getenv("QUENCH_CUDA_PROFILE");
  if (!env || !*env || !strcmp(env, "0"))
    return;
  if (!drv.EventElapsedTime || !drv.PointerGetAttribute) {
    prof_warn("the CUDA driver has no %s", drv.EventElapsedTime
                                               ? "cuPointerGetAttribute"
                                               : "cuEventElapsedTime");
    return;
  }
  if (strcmp(env, "1") != 0) {
    if (strlen(env) >= sizeof profile_path) {
      prof_warn("the file name '%.64s...' is too long", env);
      return;
    }
    snprintf(profile_path, sizeof profile_path, "%s", env);
  }
  static const char *const copy_names[4] = {"memcpy HtoD", "memcpy DtoH",
                                            "memcpy DtoD", "memcpy HtoH"};
  pthread_mutex_lock(&prof_mutex);
  for (int i = 0; i < 4; ++i)
    prof_copy[i] = prof_entry_locked(PROF_COPY, copy_names[i]);
  prof_memset = prof_entry_locked(PROF_MEMSET, "memset");
  prof_weights = prof_entry_locked(PROF_COPY, "memcpy HtoD (weights)");
  pthread_mutex_unlock(&prof_mutex);
  if (atexit(prof_at_exit) != 0) {
    prof_warn("atexit failed");
    return;
  }
  profile_on = true;
}

/* ------------------------------------------------------------------------ */
/* Modules and kernels                                                      */
/* ------------------------------------------------------------------------ */

typedef struct gpu_function {
  CUfunction fn;
  /* The CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES set so far. */
  atomic_int smem_limit;
  uint64_t hash;
  prof_entry *prof; /* its row of the profile; NULL when not profiling */
  char name[]; /* the kernel's name */
} gpu_function;

typedef struct gpu_module {
  const void *data;
  uint64_t size;
  bool jit; /* PTX for mgpuModuleLoadJIT */
  int jit_opt_level;
  pthread_mutex_t mutex; /* guards module and the function table */
  CUmodule module;       /* NULL until the first mgpuModuleGetFunction */
  gpu_function **slots;  /* open addressing by name hash; capacity 2^k */
  size_t capacity, count;
} gpu_module;

static gpu_module *module_new(const void *data, uint64_t size, bool jit,
                              int opt_level) {
  /* From a global constructor: no driver, nothing that can fail loudly. */
  gpu_module *m = calloc(1, sizeof *m);
  if (!m)
    return NULL;
  if (pthread_mutex_init(&m->mutex, NULL) != 0) {
    free(m);
    return NULL;
  }
  m->data = data;
  m->size = size;
  m->jit = jit;
  m->jit_opt_level = opt_level;
  return m;
}

void *mgpuModuleLoad(void *data, uint64_t size) {
  return module_new(data, size, false, 0);
}

void *mgpuModuleLoadJIT(void *data, int32_t optLevel) {
  return module_new(data, 0, true, (int)optLevel);
}

void mgpuModuleUnload(void *handle) {
  gpu_module *m = (gpu_module *)handle;
  if (!m)
    return;
  /* At exit, or when a library holding a model is unloaded; nothing to
   * report to. */
  if (m->module && enter_release())
    drv.ModuleUnload(m->module);
  for (size_t i = 0; i < m->capacity; ++i)
    free(m->slots[i]);
  free(m->slots);
  pthread_mutex_destroy(&m->mutex);
  free(m);
}

/* Loads m->module; called with m->mutex held. */
static bool module_load(gpu_module *m) {
  CUresult r;
  const char *call;
  char log[1024];
  log[0] = '\0';
  if (m->jit) {
    int options[3] = {CU_JIT_ERROR_LOG_BUFFER,
                      CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
                      CU_JIT_OPTIMIZATION_LEVEL};
    void *values[3] = {log, (void *)(uintptr_t)sizeof log,
                       (void *)(uintptr_t)m->jit_opt_level};
    call = "cuModuleLoadDataEx";
    r = drv.ModuleLoadDataEx(&m->module, m->data, 3, options, values);
    log[sizeof log - 1] = '\0';
  } else {
    call = "cuModuleLoadData";
    r = drv.ModuleLoadData(&m->module, m->data);
  }
  if (r == CUDA_SUCCESS)
    return true;
  m->module = NULL;
  char what[256], hint[384];
  describe(r, what, sizeof what);
  quench_status status = status_of(r);
  hint[0] = '\0';
  switch (r) {
  case CUDA_ERROR_NO_BINARY_FOR_GPU:
  case CUDA_ERROR_INVALID_IMAGE:
  case CUDA_ERROR_INVALID_PTX:
    status = QUENCH_ERR_UNSUPPORTED;
    snprintf(hint, sizeof hint,
             "; the model holds no code this GPU can run: compile it with "
             "--cuda-arch=sm_%d%d",
             cc_major, cc_minor);
    break;
  case CUDA_ERROR_UNSUPPORTED_PTX_VERSION:
  case CUDA_ERROR_JIT_COMPILER_NOT_FOUND: {
    int version = 0;
    drv.DriverGetVersion(&version);
    status = QUENCH_ERR_UNSUPPORTED;
    snprintf(hint, sizeof hint,
             "; the driver (CUDA %d.%d) cannot compile the model's PTX: "
             "compile the model with --cuda-arch=sm_%d%d so that it carries "
             "code for this GPU, or update the NVIDIA driver",
             version / 1000, version % 1000 / 10, cc_major, cc_minor);
    break;
  }
  default:
    break;
  }
  record(status, "cannot load the model's GPU code on %s (sm_%d%d): %s failed "
                 "with %s%s%s%s",
         device_name, cc_major, cc_minor, call, what, hint,
         log[0] ? "; JIT log: " : "", log);
  return false;
}

static uint64_t name_hash(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; ++s)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

/* Finds name in m's table (m->mutex held); NULL if absent. */
static gpu_function *function_find(gpu_module *m, const char *name,
                                   uint64_t hash) {
  if (!m->capacity)
    return NULL;
  for (size_t i = hash & (m->capacity - 1);; i = (i + 1) & (m->capacity - 1)) {
    gpu_function *f = m->slots[i];
    if (!f)
      return NULL;
    if (f->hash == hash && strcmp(f->name, name) == 0)
      return f;
  }
}

/* Inserts f (m->mutex held); false when out of memory. */
static bool function_insert(gpu_module *m, gpu_function *f) {
  if (2 * (m->count + 1) > m->capacity) {
    size_t capacity = m->capacity ? 2 * m->capacity : 16;
    gpu_function **slots = calloc(capacity, sizeof *slots);
    if (!slots)
      return false;
    for (size_t i = 0; i < m->capacity; ++i) {
      gpu_function *g = m->slots[i];
      if (!g)
        continue;
      size_t j = g->hash & (capacity - 1);
      while (slots[j])
        j = (j + 1) & (capacity - 1);
      slots[j] = g;
    }
    free(m->slots);
    m->slots = slots;
    m->capacity = capacity;
  }
  size_t j = f->hash & (m->capacity - 1);
  while (m->slots[j])
    j = (j + 1) & (m->capacity - 1);
  m->slots[j] = f;
  ++m->count;
  return true;
}

void *mgpuModuleGetFunction(void *handle, const char *name) {
  gpu_module *m = (gpu_module *)handle;
  if (!enter())
    return NULL;
  if (!m || !name) {
    record(m ? QUENCH_ERR_INTERNAL : QUENCH_ERR_OUT_OF_MEMORY,
           "mgpuModuleGetFunction: %s",
           m ? "no kernel name"
             : "the GPU module was not registered at program start (out of "
               "memory)");
    return NULL;
  }
  uint64_t hash = name_hash(name);
  pthread_mutex_lock(&m->mutex);
  gpu_function *f = function_find(m, name, hash);
  if (!f && (m->module || module_load(m))) {
    CUfunction fn = NULL;
    CUresult r = drv.ModuleGetFunction(&fn, m->module, name);
    if (r != CUDA_SUCCESS) {
      record_cu(r, "cuModuleGetFunction", "kernel '%s'", name);
    } else {
      size_t len = strlen(name);
      f = malloc(sizeof *f + len + 1);
      if (f) {
        f->fn = fn;
        atomic_init(&f->smem_limit, DEFAULT_DYNAMIC_SMEM_LIMIT);
        f->hash = hash;
        f->prof = profile_on ? prof_entry_for(PROF_KERNEL, name) : NULL;
        memcpy(f->name, name, len + 1);
        if (!function_insert(m, f)) {
          free(f);
          f = NULL;
        }
      }
      if (!f)
        record(QUENCH_ERR_OUT_OF_MEMORY,
               "mgpuModuleGetFunction: out of memory for kernel '%s'", name);
    }
  }
  pthread_mutex_unlock(&m->mutex);
  return f;
}

static bool dim_ok(int64_t v) { return v >= 0 && v <= (int64_t)UINT_MAX; }

/* The checks of both launches: false (nothing to launch; an error recorded
 * unless the grid is empty) or true with the dynamic shared memory opted
 * into. dims: grid x, y, z, block x, y, z. */
static bool prepare_launch(gpu_function *f, const int64_t dims[6],
                           int32_t smem) {
  if (!f) {
    record(QUENCH_ERR_INTERNAL, "mgpuLaunchKernel: no kernel function");
    return false;
  }
  bool ok = smem >= 0, empty = false;
  for (int i = 0; i < 6; ++i) {
    ok = ok && dim_ok(dims[i]);
    empty = empty || dims[i] == 0;
  }
  if (!ok) {
    record(QUENCH_ERR_INVALID_ARGUMENT,
           "cannot launch kernel '%s': grid (%lld, %lld, %lld), block (%lld, "
           "%lld, %lld) or %d bytes of dynamic shared memory out of range",
           f->name, (long long)dims[0], (long long)dims[1], (long long)dims[2],
           (long long)dims[3], (long long)dims[4], (long long)dims[5],
           (int)smem);
    return false;
  }
  /* An empty grid or block has nothing to run (dynamic shapes of size 0);
   * the driver would reject it. */
  if (empty)
    return false;
  if (smem > atomic_load_explicit(&f->smem_limit, memory_order_relaxed)) {
    if (smem > smem_optin) {
      record(QUENCH_ERR_UNSUPPORTED,
             "cannot launch kernel '%s': it needs %d bytes of dynamic shared "
             "memory, %s (sm_%d%d) allows at most %d per block",
             f->name, (int)smem, device_name, cc_major, cc_minor, smem_optin);
      return false;
    }
    CUresult r = drv.FuncSetAttribute(
        f->fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem);
    if (r != CUDA_SUCCESS) {
      record_cu(r, "cuFuncSetAttribute",
                "kernel '%s', %d bytes of dynamic shared memory", f->name,
                (int)smem);
      return false;
    }
    /* Concurrent launches may both set it; keep the larger. */
    int seen = atomic_load(&f->smem_limit);
    while (seen < smem &&
           !atomic_compare_exchange_weak(&f->smem_limit, &seen, smem)) {
    }
  }
  return true;
}

static void record_launch_failure(CUresult r, const char *call,
                                  const gpu_function *f, const int64_t dims[6],
                                  int32_t smem) {
  record_cu(r, call,
            "kernel '%s', grid (%lld, %lld, %lld), block (%lld, %lld, %lld), "
            "%d bytes of dynamic shared memory",
            f->name, (long long)dims[0], (long long)dims[1],
            (long long)dims[2], (long long)dims[3], (long long)dims[4],
            (long long)dims[5], (int)smem);
}

void mgpuLaunchKernel(void *function, int64_t gridX, int64_t gridY,
                      int64_t gridZ, int64_t blockX, int64_t blockY,
                      int64_t blockZ, int32_t smem, void *stream,
                      void **params, void **extra, int64_t paramsCount) {
  (void)paramsCount; /* the driver reads params by the kernel's signature */
  if (!enter())
    return;
  gpu_function *f = (gpu_function *)function;
  const int64_t dims[6] = {gridX, gridY, gridZ, blockX, blockY, blockZ};
  if (!prepare_launch(f, dims, smem))
    return;
  prof_record rec;
  bool timed = profile_on && prof_start(&rec, f->prof, (CUstream)stream);
  CUresult r = drv.LaunchKernel(f->fn, (unsigned)gridX, (unsigned)gridY,
                                (unsigned)gridZ, (unsigned)blockX,
                                (unsigned)blockY, (unsigned)blockZ,
                                (unsigned)smem, (CUstream)stream, params, extra);
  if (timed)
    prof_finish(&rec, r == CUDA_SUCCESS, dims);
  if (r != CUDA_SUCCESS)
    record_launch_failure(r, "cuLaunchKernel", f, dims, smem);
}

void mgpuLaunchClusterKernel(void *function, int64_t clusterX,
                             int64_t clusterY, int64_t clusterZ,
                             int64_t gridX, int64_t gridY, int64_t gridZ,
                             int64_t blockX, int64_t blockY, int64_t blockZ,
                             int32_t smem, void *stream, void **params,
                             void **extra) {
  if (!enter())
    return;
  gpu_function *f = (gpu_function *)function;
  const int64_t dims[6] = {gridX, gridY, gridZ, blockX, blockY, blockZ};
  if (f && !drv.LaunchKernelEx) {
    record(QUENCH_ERR_UNSUPPORTED,
           "cannot launch kernel '%s' with thread block clusters: the CUDA "
           "driver has no cuLaunchKernelEx (it needs CUDA 12.0 or newer)",
           f->name);
    return;
  }
  if (f && (clusterX < 1 || clusterY < 1 || clusterZ < 1 ||
            clusterX > (int64_t)UINT_MAX || clusterY > (int64_t)UINT_MAX ||
            clusterZ > (int64_t)UINT_MAX)) {
    record(QUENCH_ERR_INVALID_ARGUMENT,
           "cannot launch kernel '%s': cluster (%lld, %lld, %lld) out of range",
           f->name, (long long)clusterX, (long long)clusterY,
           (long long)clusterZ);
    return;
  }
  if (!prepare_launch(f, dims, smem))
    return;
  CUlaunchAttribute attr;
  memset(&attr, 0, sizeof attr);
  attr.id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
  attr.value.clusterDim.x = (unsigned)clusterX;
  attr.value.clusterDim.y = (unsigned)clusterY;
  attr.value.clusterDim.z = (unsigned)clusterZ;
  CUlaunchConfig config = {(unsigned)gridX,  (unsigned)gridY,
                           (unsigned)gridZ,  (unsigned)blockX,
                           (unsigned)blockY, (unsigned)blockZ,
                           (unsigned)smem,   (CUstream)stream,
                           &attr,            1};
  prof_record rec;
  bool timed = profile_on && prof_start(&rec, f->prof, (CUstream)stream);
  CUresult r = drv.LaunchKernelEx(&config, f->fn, params, extra);
  if (timed)
    prof_finish(&rec, r == CUDA_SUCCESS, dims);
  if (r != CUDA_SUCCESS)
    record_launch_failure(r, "cuLaunchKernelEx", f, dims, smem);
}

/* ------------------------------------------------------------------------ */
/* Streams and events                                                       */
/* ------------------------------------------------------------------------ */

static pthread_mutex_t stream_mutex = PTHREAD_MUTEX_INITIALIZER;
static CUstream *idle_streams; /* streams of finished runs, for reuse */
static size_t num_idle_streams, idle_streams_capacity;

/* The streams this thread has taken and not given back, newest last:
 * MLIR's lowering of `gpu.wait async [deps]` starts a new stream and never
 * destroys the ones it joins, so quench_cuda_run_end returns what a run
 * left behind to the pool. Streams beyond the capacity are not tracked. */
#define MAX_RUN_STREAMS 64
static _Thread_local CUstream run_streams[MAX_RUN_STREAMS];
static _Thread_local size_t num_run_streams;

void *mgpuStreamCreate(void) {
  if (!enter())
    return NULL;
  CUstream s = NULL;
  pthread_mutex_lock(&stream_mutex);
  if (num_idle_streams)
    s = idle_streams[--num_idle_streams];
  pthread_mutex_unlock(&stream_mutex);
  if (!s) {
    CUresult r = drv.StreamCreate(&s, CU_STREAM_NON_BLOCKING);
    if (r != CUDA_SUCCESS) {
      record_cu(r, "cuStreamCreate", NULL);
      return NULL;
    }
  }
  if (num_run_streams < MAX_RUN_STREAMS)
    run_streams[num_run_streams++] = s;
  return s;
}

void mgpuStreamSynchronize(void *stream) {
  if (!enter())
    return;
  CUresult r = drv.StreamSynchronize((CUstream)stream);
  if (r != CUDA_SUCCESS)
    record_cu(r, "cuStreamSynchronize", NULL);
  else if (profile_on)
    prof_stream_done((CUstream)stream);
}

/* Waits for stream and puts it in the pool (a release call). */
static void stream_release(CUstream stream) {
  /* Work still queued after an error (a skipped synchronize) may write into
   * host buffers the caller is about to free: wait for it. */
  CUresult r = drv.StreamSynchronize(stream);
  release_result(r, "cuStreamSynchronize");
  if (r == CUDA_SUCCESS && profile_on)
    prof_stream_done(stream);
  pthread_mutex_lock(&stream_mutex);
  bool kept = false;
  if (num_idle_streams == idle_streams_capacity) {
    size_t capacity = idle_streams_capacity ? 2 * idle_streams_capacity : 8;
    CUstream *grown = realloc(idle_streams, capacity * sizeof *grown);
    if (grown) {
      idle_streams = grown;
      idle_streams_capacity = capacity;
    }
  }
  if (num_idle_streams < idle_streams_capacity) {
    idle_streams[num_idle_streams++] = (CUstream)stream;
    kept = true;
  }
  pthread_mutex_unlock(&stream_mutex);
  if (!kept)
    release_result(drv.StreamDestroy((CUstream)stream), "cuStreamDestroy");
}

void mgpuStreamDestroy(void *stream) {
  if (!stream || !enter_release())
    return;
  for (size_t i = num_run_streams; i-- > 0;)
    if (run_streams[i] == (CUstream)stream) {
      memmove(&run_streams[i], &run_streams[i + 1],
              (num_run_streams - i - 1) * sizeof run_streams[0]);
      --num_run_streams;
      break;
    }
  stream_release((CUstream)stream);
}

size_t quench_cuda_run_begin(void) {
  thread_status = QUENCH_OK; /* nothing left over from outside a run */
  thread_message[0] = '\0';
  return num_run_streams;
}

quench_status quench_cuda_run_end(size_t mark, quench_error *err) {
  if (mark < num_run_streams && enter_release()) {
    while (num_run_streams > mark)
      stream_release(run_streams[--num_run_streams]);
  }
  /* The run is over: whatever it left to time is done (or failed). */
  if (atomic_load_explicit(&driver_ready, memory_order_acquire) && profile_on) {
    drv.CtxSetCurrent(context);
    pthread_mutex_lock(&prof_mutex);
    ++prof_runs;
    prof_collect_locked(false, NULL, &prof_thread);
    pthread_mutex_unlock(&prof_mutex);
  }
  return quench_cuda_take_error(err);
}

void mgpuStreamWaitEvent(void *stream, void *event) {
  if (!enter())
    return;
  CUresult r = drv.StreamWaitEvent((CUstream)stream, (CUevent)event, 0);
  if (r != CUDA_SUCCESS)
    record_cu(r, "cuStreamWaitEvent", NULL);
}

void *mgpuEventCreate(void) {
  if (!enter())
    return NULL;
  CUevent e = NULL;
  CUresult r = drv.EventCreate(&e, CU_EVENT_DISABLE_TIMING);
  if (r != CUDA_SUCCESS) {
    record_cu(r, "cuEventCreate", NULL);
    return NULL;
  }
  return e;
}

void mgpuEventDestroy(void *event) {
  if (event && enter_release())
    release_result(drv.EventDestroy((CUevent)event), "cuEventDestroy");
}

void mgpuEventSynchronize(void *event) {
  if (!enter())
    return;
  CUresult r = drv.EventSynchronize((CUevent)event);
  if (r != CUDA_SUCCESS)
    record_cu(r, "cuEventSynchronize", NULL);
}

void mgpuEventRecord(void *event, void *stream) {
  if (!enter())
    return;
  CUresult r = drv.EventRecord((CUevent)event, (CUstream)stream);
  if (r != CUDA_SUCCESS)
    record_cu(r, "cuEventRecord", NULL);
}

/* ------------------------------------------------------------------------ */
/* Memory                                                                   */
/* ------------------------------------------------------------------------ */

/* Managed (host-shared) allocations, which cuMemFree must release: a small
 * list, empty in the common case (checked without the lock). */
static pthread_mutex_t managed_mutex = PTHREAD_MUTEX_INITIALIZER;
static CUdeviceptr *managed;
static size_t num_managed, managed_capacity;
static atomic_size_t managed_count;

static bool managed_add(CUdeviceptr p) {
  bool ok = true;
  pthread_mutex_lock(&managed_mutex);
  if (num_managed == managed_capacity) {
    size_t capacity = managed_capacity ? 2 * managed_capacity : 16;
    CUdeviceptr *grown = realloc(managed, capacity * sizeof *grown);
    if (grown) {
      managed = grown;
      managed_capacity = capacity;
    } else {
      ok = false;
    }
  }
  if (ok) {
    managed[num_managed++] = p;
    atomic_store(&managed_count, num_managed);
  }
  pthread_mutex_unlock(&managed_mutex);
  return ok;
}

static bool managed_remove(CUdeviceptr p) {
  if (atomic_load(&managed_count) == 0)
    return false;
  bool found = false;
  pthread_mutex_lock(&managed_mutex);
  for (size_t i = 0; i < num_managed; ++i)
    if (managed[i] == p) {
      managed[i] = managed[--num_managed];
      found = true;
      break;
    }
  atomic_store(&managed_count, num_managed);
  pthread_mutex_unlock(&managed_mutex);
  return found;
}

static void record_alloc_failure(CUresult r, const char *call, uint64_t bytes,
                                 const char *what) {
  if (thread_status != QUENCH_OK)
    return;
  char text[256];
  describe(r, text, sizeof text);
  record(status_of(r), "cannot allocate %llu bytes of %s on %s: %s failed with %s",
         (unsigned long long)bytes, what, device_name, call, text);
}

void *mgpuMemAlloc(uint64_t bytes, void *stream, uint8_t isHostShared) {
  if (!enter() || bytes == 0)
    return NULL;
  CUdeviceptr p = 0;
  CUresult r;
  if (isHostShared) {
    r = drv.MemAllocManaged(&p, (size_t)bytes, CU_MEM_ATTACH_GLOBAL);
    if (r != CUDA_SUCCESS) {
      record_alloc_failure(r, "cuMemAllocManaged", bytes, "managed memory");
      return NULL;
    }
    if (!managed_add(p)) {
      drv.MemFree(p);
      record(QUENCH_ERR_OUT_OF_MEMORY, "mgpuMemAlloc: out of host memory");
      return NULL;
    }
    return (void *)(uintptr_t)p;
  }
  if (mempool) {
    r = drv.MemAllocFromPoolAsync(&p, (size_t)bytes, mempool, (CUstream)stream);
    /* Without a stream (a synchronous gpu.alloc) the buffer must be usable
     * on any stream once this returns. */
    if (r == CUDA_SUCCESS && !stream) {
      r = drv.StreamSynchronize(NULL);
      if (r != CUDA_SUCCESS) {
        record_cu(r, "cuStreamSynchronize", NULL);
        return NULL;
      }
    }
    if (r != CUDA_SUCCESS) {
      record_alloc_failure(r, "cuMemAllocFromPoolAsync", bytes, "GPU memory");
      return NULL;
    }
  } else {
    r = drv.MemAlloc(&p, (size_t)bytes);
    if (r != CUDA_SUCCESS) {
      record_alloc_failure(r, "cuMemAlloc", bytes, "GPU memory");
      return NULL;
    }
  }
  return (void *)(uintptr_t)p;
}

void mgpuMemFree(void *ptr, void *stream) {
  if (!ptr || !enter_release())
    return;
  CUdeviceptr p = (CUdeviceptr)(uintptr_t)ptr;
  if (managed_remove(p)) {
    if (stream)
      release_result(drv.StreamSynchronize((CUstream)stream),
                     "cuStreamSynchronize");
    release_result(drv.MemFree(p), "cuMemFree");
  } else if (mempool && stream) {
    release_result(drv.MemFreeAsync(p, (CUstream)stream), "cuMemFreeAsync");
  } else {
    /* cuMemFree does not wait for stream-ordered users of the buffer. */
    if (mempool)
      release_result(drv.CtxSynchronize(), "cuCtxSynchronize");
    release_result(drv.MemFree(p), "cuMemFree");
  }
}

void mgpuMemcpy(void *dst, void *src, uint64_t bytes, void *stream) {
  if (!enter() || bytes == 0)
    return;
  prof_record rec;
  bool timed = profile_on &&
               prof_start(&rec, prof_copy_entry(dst, src), (CUstream)stream);
  CUresult r = drv.MemcpyAsync((CUdeviceptr)(uintptr_t)dst,
                               (CUdeviceptr)(uintptr_t)src, (size_t)bytes,
                               (CUstream)stream);
  if (timed)
    prof_finish(&rec, r == CUDA_SUCCESS, NULL);
  if (r != CUDA_SUCCESS)
    record_cu(r, "cuMemcpyAsync", "%llu bytes", (unsigned long long)bytes);
}

void mgpuMemset32(void *dst, uint32_t value, uint64_t count, void *stream) {
  if (!enter() || count == 0)
    return;
  prof_record rec;
  bool timed = profile_on && prof_start(&rec, prof_memset, (CUstream)stream);
  CUresult r = drv.MemsetD32Async((CUdeviceptr)(uintptr_t)dst, value,
                                  (size_t)count, (CUstream)stream);
  if (timed)
    prof_finish(&rec, r == CUDA_SUCCESS, NULL);
  if (r != CUDA_SUCCESS)
    record_cu(r, "cuMemsetD32Async", "%llu elements",
              (unsigned long long)count);
}

void mgpuMemset16(void *dst, uint16_t value, uint64_t count, void *stream) {
  if (!enter() || count == 0)
    return;
  prof_record rec;
  bool timed = profile_on && prof_start(&rec, prof_memset, (CUstream)stream);
  CUresult r = drv.MemsetD16Async((CUdeviceptr)(uintptr_t)dst, value,
                                  (size_t)count, (CUstream)stream);
  if (timed)
    prof_finish(&rec, r == CUDA_SUCCESS, NULL);
  if (r != CUDA_SUCCESS)
    record_cu(r, "cuMemsetD16Async", "%llu elements",
              (unsigned long long)count);
}

/* ------------------------------------------------------------------------ */
/* Weights                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct uploaded_weights {
  const void *image;
  uint64_t size;
  CUdeviceptr copy;
} uploaded_weights;

static pthread_mutex_t weights_mutex = PTHREAD_MUTEX_INITIALIZER;
static uploaded_weights *weights;
static size_t num_weights, weights_capacity;
static char empty_weights; /* what a 0-byte image maps to */

void *quench_cuda_weights(const void *image, uint64_t size) {
  if (thread_status != QUENCH_OK)
    return NULL;
  if (size == 0)
    return &empty_weights;
  if (!enter())
    return NULL;
  if (!image) {
    record(QUENCH_ERR_INVALID_ARGUMENT,
           "quench_cuda_weights: the weight image is NULL");
    return NULL;
  }
  void *result = NULL;
  /* One lock for lookups and uploads: a second run that needs the same
   * weights waits for the first upload instead of starting its own. */
  pthread_mutex_lock(&weights_mutex);
  for (size_t i = 0; i < num_weights && !result; ++i)
    if (weights[i].image == image && weights[i].size == size)
      result = (void *)(uintptr_t)weights[i].copy;
  if (!result && num_weights == weights_capacity) {
    size_t capacity = weights_capacity ? 2 * weights_capacity : 4;
    uploaded_weights *grown = realloc(weights, capacity * sizeof *grown);
    if (grown) {
      weights = grown;
      weights_capacity = capacity;
    } else {
      record(QUENCH_ERR_OUT_OF_MEMORY, "quench_cuda_weights: out of memory");
    }
  }
  if (!result && num_weights < weights_capacity) {
    CUdeviceptr copy = 0;
    CUresult r = drv.MemAlloc(&copy, (size_t)size);
    if (r != CUDA_SUCCESS) {
      record_alloc_failure(r, "cuMemAlloc", size, "GPU memory for the weights");
    } else {
      /* In pieces: an image mapped from the executable is paged in piece by
       * piece, not all at once. */
      const char *src = (const char *)image;
      /* Synchronous copies: on the legacy default stream (NULL). */
      prof_record rec;
      bool timed = profile_on && prof_start(&rec, prof_weights, NULL);
      for (uint64_t done = 0; done < size && r == CUDA_SUCCESS;) {
        size_t n = size - done < WEIGHT_UPLOAD_CHUNK ? (size_t)(size - done)
                                                     : WEIGHT_UPLOAD_CHUNK;
        r = drv.MemcpyHtoD(copy + done, src + done, n);
        if (r != CUDA_SUCCESS)
          record_cu(r, "cuMemcpyHtoD",
                    "uploading %llu bytes of weights at offset %llu",
                    (unsigned long long)size, (unsigned long long)done);
        done += n;
      }
      if (timed)
        prof_finish(&rec, r == CUDA_SUCCESS, NULL);
      if (r == CUDA_SUCCESS) {
        weights[num_weights++] = (uploaded_weights){image, size, copy};
        result = (void *)(uintptr_t)copy;
      } else {
        drv.MemFree(copy);
      }
    }
  }
  pthread_mutex_unlock(&weights_mutex);
  return result;
}
