/* A fake CUDA driver for the tests of runtime/lib/cuda.c, loaded through
 * QUENCH_CUDA_DRIVER=<this library>. It exports the driver entry points the
 * runtime loads, backed by host memory: "device" memory is malloc'd (so a
 * device address is a host address), copies are memcpy, modules accept any
 * blob, launches are counted and run a host function registered for the
 * kernel's name (fake_cuda_register_kernel), if any; streams and events are
 * small heap objects. Every call is counted (fake_cuda_calls).
 *
 * Checks that a real driver would make: every call except cuInit, the
 * error-string functions, and cuCtxSetCurrent needs a prior successful
 * cuInit and the retained context current on the calling thread
 * (CUDA_ERROR_NOT_INITIALIZED / CUDA_ERROR_INVALID_CONTEXT); frees of
 * unknown pointers fail (CUDA_ERROR_INVALID_VALUE).
 *
 * Switches: FAKE_CUDA_FAIL="cuInit=100,cuModuleLoadData=209" (read at the
 * first call) makes the named entry points return the given CUresult, as
 * does fake_cuda_fail(name, code) at run time (code 0 clears);
 * FAKE_CUDA_DEVICES (default 1) is the device count;
 * FAKE_CUDA_REPORT=<file> writes "<entry point> <calls>" lines to the file
 * at exit (for end-to-end tests that run a compiled executable on the fake).
 *
 * Time: a deterministic fake clock per stream (one more for the NULL
 * stream), in microseconds. A launch advances its stream's clock by
 * FAKE_CUDA_KERNEL_US (default 10), or by what fake_cuda_kernel_us(name,
 * us) set for the kernel; a copy or memset by FAKE_CUDA_COPY_US (default
 * 2). cuEventRecord stamps the event with its stream's clock and
 * cuEventElapsedTime gives the difference, as a real driver would for
 * work that ran back to back; events created with CU_EVENT_DISABLE_TIMING,
 * or not recorded, cannot be timed (CUDA_ERROR_INVALID_HANDLE).
 * cuPointerGetAttribute(CU_POINTER_ATTRIBUTE_MEMORY_TYPE) says
 * CU_MEMORYTYPE_DEVICE inside a live allocation and fails with
 * CUDA_ERROR_INVALID_VALUE for other (host) memory, like a real driver for
 * memory it does not know.
 *
 * Test-only; not part of the runtime. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef uint64_t CUdeviceptr;
typedef void (*fake_kernel_fn)(void **params, const unsigned grid[3],
                               const unsigned block[3]);

#define EXPORT __attribute__((visibility("default")))

enum {
  SUCCESS = 0,
  INVALID_VALUE = 1,
  NOT_INITIALIZED = 3,
  INVALID_CONTEXT = 201,
  INVALID_HANDLE = 400,
  NOT_FOUND = 500,
};

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;

/* ---- call counters and failure switches ---- */

#define MAX_NAMES 64
static struct {
  char name[48];
  long calls;
  int fail; /* CUresult to return, 0 = work */
} table[MAX_NAMES];
static int num_names;
static int env_read;

static int slot(const char *name) { /* mutex held */
  for (int i = 0; i < num_names; ++i)
    if (strcmp(table[i].name, name) == 0)
      return i;
  if (num_names == MAX_NAMES)
    abort();
  snprintf(table[num_names].name, sizeof table[num_names].name, "%s", name);
  return num_names++;
}

static void write_report(void) {
  const char *path = getenv("FAKE_CUDA_REPORT");
  FILE *f = path ? fopen(path, "w") : NULL;
  if (!f)
    return;
  pthread_mutex_lock(&mutex);
  for (int i = 0; i < num_names; ++i)
    fprintf(f, "%s %ld\n", table[i].name, table[i].calls);
  pthread_mutex_unlock(&mutex);
  fclose(f);
}

static void read_env(void) { /* mutex held */
  if (env_read)
    return;
  env_read = 1;
  if (getenv("FAKE_CUDA_REPORT"))
    atexit(write_report);
  const char *env = getenv("FAKE_CUDA_FAIL");
  if (!env)
    return;
  char buf[512];
  snprintf(buf, sizeof buf, "%s", env);
  char *save = NULL;
  for (char *item = strtok_r(buf, ",", &save); item;
       item = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(item, '=');
    if (!eq)
      continue;
    *eq = '\0';
    table[slot(item)].fail = atoi(eq + 1);
  }
}

/* Counts a call of name; returns the failure to inject (0: none). */
static CUresult count(const char *name) {
  pthread_mutex_lock(&mutex);
  read_env();
  int i = slot(name);
  ++table[i].calls;
  CUresult r = table[i].fail;
  pthread_mutex_unlock(&mutex);
  return r;
}

EXPORT long fake_cuda_calls(const char *name) {
  pthread_mutex_lock(&mutex);
  long n = 0;
  for (int i = 0; i < num_names; ++i)
    if (strcmp(table[i].name, name) == 0)
      n = table[i].calls;
  pthread_mutex_unlock(&mutex);
  return n;
}

EXPORT void fake_cuda_fail(const char *name, int code) {
  pthread_mutex_lock(&mutex);
  read_env();
  table[slot(name)].fail = code;
  pthread_mutex_unlock(&mutex);
}

/* ---- state ---- */

static int initialized;
static char the_context; /* the primary context's handle */
static _Thread_local void *current_context;
static uint64_t release_threshold;
static char the_pool;

/* Live allocations (malloc'd), to check frees and count what is live. */
#define MAX_ALLOCS 4096
static struct {
  void *p;
  size_t size;
} allocs[MAX_ALLOCS];
static long live_allocs;

static const void *last_image;
static unsigned last_dynamic_smem_attr;

static CUresult check(const char *name) {
  CUresult r = count(name);
  if (r)
    return r;
  if (!initialized)
    return NOT_INITIALIZED;
  if (current_context != &the_context)
    return INVALID_CONTEXT;
  return SUCCESS;
}

static CUresult fake_alloc(CUdeviceptr *p, size_t size) {
  void *mem = calloc(1, size ? size : 1);
  if (!mem)
    return 2;
  pthread_mutex_lock(&mutex);
  int i = 0;
  while (i < MAX_ALLOCS && allocs[i].p)
    ++i;
  if (i == MAX_ALLOCS) {
    pthread_mutex_unlock(&mutex);
    free(mem);
    return 2;
  }
  allocs[i].p = mem;
  allocs[i].size = size;
  ++live_allocs;
  pthread_mutex_unlock(&mutex);
  *p = (CUdeviceptr)(uintptr_t)mem;
  return SUCCESS;
}

static CUresult fake_free(CUdeviceptr p) {
  void *mem = (void *)(uintptr_t)p;
  pthread_mutex_lock(&mutex);
  int i = 0;
  while (i < MAX_ALLOCS && allocs[i].p != mem)
    ++i;
  if (i == MAX_ALLOCS) {
    pthread_mutex_unlock(&mutex);
    return INVALID_VALUE;
  }
  allocs[i].p = NULL;
  --live_allocs;
  pthread_mutex_unlock(&mutex);
  free(mem);
  return SUCCESS;
}

EXPORT long fake_cuda_live_allocations(void) {
  pthread_mutex_lock(&mutex);
  long n = live_allocs;
  pthread_mutex_unlock(&mutex);
  return n;
}

EXPORT uint64_t fake_cuda_release_threshold(void) { return release_threshold; }
EXPORT const void *fake_cuda_last_image(void) { return last_image; }
EXPORT unsigned fake_cuda_last_dynamic_smem_attribute(void) {
  return last_dynamic_smem_attr;
}

/* ---- kernels ---- */

#define MAX_KERNELS 32
static struct {
  char name[64];
  fake_kernel_fn fn;
} kernels[MAX_KERNELS];
static int num_kernels;

EXPORT void fake_cuda_register_kernel(const char *name, fake_kernel_fn fn) {
  pthread_mutex_lock(&mutex);
  if (num_kernels < MAX_KERNELS) {
    snprintf(kernels[num_kernels].name, sizeof kernels[num_kernels].name, "%s",
             name);
    kernels[num_kernels++].fn = fn;
  }
  pthread_mutex_unlock(&mutex);
}

/* A function handle: the kernel's name and host implementation; owned by
 * its module (a list freed by cuModuleUnload). */
typedef struct fake_function {
  char name[64];
  fake_kernel_fn fn;
  struct fake_function *next;
} fake_function;

typedef struct fake_module {
  fake_function *functions;
} fake_module;

/* ---- time ---- */

typedef struct fake_stream {
  double clock_us;
} fake_stream;

typedef struct fake_event {
  unsigned flags;
  int recorded;
  double stamp_us;
} fake_event;

static fake_stream null_stream; /* the NULL (legacy default) stream */

static double env_us(const char *name, double fallback) {
  const char *env = getenv(name);
  return env && *env ? atof(env) : fallback;
}

#define MAX_TIMED_KERNELS 32
static struct {
  char name[64];
  double us;
} kernel_times[MAX_TIMED_KERNELS];
static int num_kernel_times;

/* Sets how long each launch of kernel name takes (us < 0: the default). */
EXPORT void fake_cuda_kernel_us(const char *name, double us) {
  pthread_mutex_lock(&mutex);
  int i = 0;
  while (i < num_kernel_times && strcmp(kernel_times[i].name, name) != 0)
    ++i;
  if (i == num_kernel_times && num_kernel_times < MAX_TIMED_KERNELS) {
    snprintf(kernel_times[i].name, sizeof kernel_times[i].name, "%s", name);
    ++num_kernel_times;
  }
  if (i < MAX_TIMED_KERNELS)
    kernel_times[i].us = us;
  pthread_mutex_unlock(&mutex);
}

static double kernel_us(const char *name) {
  double us = -1;
  pthread_mutex_lock(&mutex);
  for (int i = 0; i < num_kernel_times; ++i)
    if (strcmp(kernel_times[i].name, name) == 0)
      us = kernel_times[i].us;
  pthread_mutex_unlock(&mutex);
  return us >= 0 ? us : env_us("FAKE_CUDA_KERNEL_US", 10);
}

/* Runs work of us microseconds on stream s. A stream is used by one thread
 * at a time; the NULL stream by any, hence the lock. */
static void advance(void *s, double us) {
  pthread_mutex_lock(&mutex);
  (s ? (fake_stream *)s : &null_stream)->clock_us += us;
  pthread_mutex_unlock(&mutex);
}

/* ---- entry points ---- */

EXPORT CUresult cuInit(unsigned flags) {
  CUresult r = count("cuInit");
  if (r)
    return r;
  if (flags)
    return INVALID_VALUE;
  initialized = 1;
  return SUCCESS;
}

EXPORT CUresult cuDriverGetVersion(int *v) {
  count("cuDriverGetVersion");
  *v = 12040;
  return SUCCESS;
}

static const struct {
  int code;
  const char *name, *text;
} errors[] = {
    {0, "CUDA_SUCCESS", "no error"},
    {1, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {3, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {100, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {201, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {209, "CUDA_ERROR_NO_BINARY_FOR_GPU",
     "no kernel image is available for execution on the device"},
    {222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
     "the provided PTX was compiled with an unsupported toolchain."},
    {500, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {700, "CUDA_ERROR_ILLEGAL_ADDRESS",
     "an illegal memory access was encountered"},
};

EXPORT CUresult cuGetErrorName(CUresult r, const char **s) {
  for (size_t i = 0; i < sizeof errors / sizeof errors[0]; ++i)
    if (errors[i].code == r) {
      *s = errors[i].name;
      return SUCCESS;
    }
  *s = NULL;
  return INVALID_VALUE;
}

EXPORT CUresult cuGetErrorString(CUresult r, const char **s) {
  for (size_t i = 0; i < sizeof errors / sizeof errors[0]; ++i)
    if (errors[i].code == r) {
      *s = errors[i].text;
      return SUCCESS;
    }
  *s = NULL;
  return INVALID_VALUE;
}

static int device_count(void) {
  const char *env = getenv("FAKE_CUDA_DEVICES");
  return env ? atoi(env) : 1;
}

EXPORT CUresult cuDeviceGetCount(int *n) {
  CUresult r = count("cuDeviceGetCount");
  if (r)
    return r;
  if (!initialized)
    return NOT_INITIALIZED;
  *n = device_count();
  return SUCCESS;
}

EXPORT CUresult cuDeviceGet(int *dev, int ordinal) {
  CUresult r = count("cuDeviceGet");
  if (r)
    return r;
  if (ordinal < 0 || ordinal >= device_count())
    return 101; /* CUDA_ERROR_INVALID_DEVICE */
  *dev = ordinal;
  return SUCCESS;
}

EXPORT CUresult cuDeviceGetName(char *name, int len, int dev) {
  CUresult r = count("cuDeviceGetName");
  if (r)
    return r;
  snprintf(name, (size_t)len, "Fake GPU %d", dev);
  return SUCCESS;
}

EXPORT CUresult cuDeviceGetAttribute(int *v, int attr, int dev) {
  (void)dev;
  CUresult r = count("cuDeviceGetAttribute");
  if (r)
    return r;
  switch (attr) {
  case 75: /* compute capability major */
    *v = 8;
    return SUCCESS;
  case 76: /* minor */
    *v = 0;
    return SUCCESS;
  case 97: /* max shared memory per block, opt-in */
    *v = 166912;
    return SUCCESS;
  case 115: /* memory pools supported */
    *v = 1;
    return SUCCESS;
  default:
    return INVALID_VALUE;
  }
}

EXPORT CUresult cuDevicePrimaryCtxRetain(void **ctx, int dev) {
  (void)dev;
  CUresult r = count("cuDevicePrimaryCtxRetain");
  if (r)
    return r;
  if (!initialized)
    return NOT_INITIALIZED;
  *ctx = &the_context;
  return SUCCESS;
}

EXPORT CUresult cuCtxSetCurrent(void *ctx) {
  CUresult r = count("cuCtxSetCurrent");
  if (r)
    return r;
  current_context = ctx;
  return SUCCESS;
}

EXPORT CUresult cuCtxSynchronize(void) { return check("cuCtxSynchronize"); }

EXPORT CUresult cuModuleLoadData(void **mod, const void *image) {
  CUresult r = check("cuModuleLoadData");
  if (r)
    return r;
  last_image = image;
  *mod = calloc(1, sizeof(fake_module));
  return SUCCESS;
}

EXPORT CUresult cuModuleLoadDataEx(void **mod, const void *image, unsigned n,
                                   int *options, void **values) {
  (void)n, (void)options, (void)values;
  CUresult r = check("cuModuleLoadDataEx");
  if (r)
    return r;
  last_image = image;
  *mod = calloc(1, sizeof(fake_module));
  return SUCCESS;
}

EXPORT CUresult cuModuleUnload(void *mod) {
  CUresult r = check("cuModuleUnload");
  if (r)
    return r;
  fake_module *m = (fake_module *)mod;
  while (m->functions) {
    fake_function *f = m->functions;
    m->functions = f->next;
    free(f);
  }
  free(m);
  return SUCCESS;
}

EXPORT CUresult cuModuleGetFunction(void **fn, void *mod, const char *name) {
  CUresult r = check("cuModuleGetFunction");
  if (r)
    return r;
  if (!mod || !name)
    return INVALID_VALUE;
  if (strncmp(name, "missing", 7) == 0)
    return NOT_FOUND;
  fake_function *f = calloc(1, sizeof *f);
  snprintf(f->name, sizeof f->name, "%s", name);
  pthread_mutex_lock(&mutex);
  for (int i = 0; i < num_kernels; ++i)
    if (strcmp(kernels[i].name, name) == 0)
      f->fn = kernels[i].fn;
  fake_module *m = (fake_module *)mod;
  f->next = m->functions;
  m->functions = f;
  pthread_mutex_unlock(&mutex);
  *fn = f;
  return SUCCESS;
}

EXPORT CUresult cuFuncSetAttribute(void *fn, int attr, int value) {
  CUresult r = check("cuFuncSetAttribute");
  if (r)
    return r;
  if (!fn || attr != 8 || value < 0 || value > 166912)
    return INVALID_VALUE;
  last_dynamic_smem_attr = (unsigned)value;
  return SUCCESS;
}

EXPORT CUresult cuLaunchKernel(void *fn, unsigned gx, unsigned gy, unsigned gz,
                               unsigned bx, unsigned by, unsigned bz,
                               unsigned smem, void *stream, void **params,
                               void **extra) {
  (void)stream, (void)extra;
  CUresult r = check("cuLaunchKernel");
  if (r)
    return r;
  if (!fn || !gx || !gy || !gz || !bx || !by || !bz ||
      (smem > 48 * 1024 && smem > last_dynamic_smem_attr))
    return INVALID_VALUE;
  fake_function *f = (fake_function *)fn;
  if (f->fn) {
    unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
    f->fn(params, grid, block);
  }
  advance(stream, kernel_us(f->name));
  return SUCCESS;
}

/* cuLaunchKernelEx's configuration (cuda.h's layout). */
typedef struct {
  int id;
  char pad[4];
  union {
    char bytes[64];
    void *align;
    unsigned dims[3];
  } value;
} fake_launch_attribute;
typedef struct {
  unsigned grid[3], block[3], smem;
  void *stream;
  fake_launch_attribute *attrs;
  unsigned num_attrs;
} fake_launch_config;

static unsigned last_cluster[3];

EXPORT void fake_cuda_last_cluster(unsigned out[3]) {
  memcpy(out, last_cluster, sizeof last_cluster);
}

EXPORT CUresult cuLaunchKernelEx(const fake_launch_config *config, void *fn,
                                 void **params, void **extra) {
  (void)extra;
  CUresult r = check("cuLaunchKernelEx");
  if (r)
    return r;
  if (!fn || !config || config->num_attrs != 1 || !config->attrs ||
      config->attrs[0].id != 4 /* CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION */)
    return INVALID_VALUE;
  const unsigned *cluster = config->attrs[0].value.dims;
  for (int i = 0; i < 3; ++i)
    if (!config->grid[i] || !config->block[i] || !cluster[i] ||
        config->grid[i] % cluster[i])
      return INVALID_VALUE;
  memcpy(last_cluster, cluster, sizeof last_cluster);
  fake_function *f = (fake_function *)fn;
  if (f->fn)
    f->fn(params, config->grid, config->block);
  advance(config->stream, kernel_us(f->name));
  return SUCCESS;
}

EXPORT CUresult cuStreamCreate(void **s, unsigned flags) {
  CUresult r = check("cuStreamCreate");
  if (r)
    return r;
  if (flags != 1) /* the runtime's streams are non-blocking */
    return INVALID_VALUE;
  *s = calloc(1, sizeof(fake_stream));
  return SUCCESS;
}

EXPORT CUresult cuStreamSynchronize(void *s) {
  (void)s;
  return check("cuStreamSynchronize");
}

EXPORT CUresult cuStreamDestroy_v2(void *s) {
  CUresult r = check("cuStreamDestroy_v2");
  if (r)
    return r;
  free(s);
  return SUCCESS;
}

EXPORT CUresult cuStreamWaitEvent(void *s, void *e, unsigned flags) {
  (void)s, (void)flags;
  CUresult r = check("cuStreamWaitEvent");
  return r ? r : e ? SUCCESS : INVALID_VALUE;
}

EXPORT CUresult cuEventCreate(void **e, unsigned flags) {
  CUresult r = check("cuEventCreate");
  if (r)
    return r;
  fake_event *ev = calloc(1, sizeof *ev);
  ev->flags = flags;
  *e = ev;
  return SUCCESS;
}

EXPORT CUresult cuEventDestroy_v2(void *e) {
  CUresult r = check("cuEventDestroy_v2");
  if (r)
    return r;
  free(e);
  return SUCCESS;
}

EXPORT CUresult cuEventRecord(void *e, void *s) {
  CUresult r = check("cuEventRecord");
  if (r)
    return r;
  if (!e)
    return INVALID_VALUE;
  fake_event *ev = (fake_event *)e;
  pthread_mutex_lock(&mutex);
  ev->recorded = 1;
  ev->stamp_us = (s ? (fake_stream *)s : &null_stream)->clock_us;
  pthread_mutex_unlock(&mutex);
  return SUCCESS;
}

EXPORT CUresult cuEventElapsedTime(float *ms, void *start, void *end) {
  CUresult r = check("cuEventElapsedTime");
  if (r)
    return r;
  if (!ms || !start || !end)
    return INVALID_VALUE;
  fake_event *a = (fake_event *)start, *b = (fake_event *)end;
  if (!a->recorded || !b->recorded || (a->flags & 2) || (b->flags & 2))
    return INVALID_HANDLE; /* what the driver says for these */
  *ms = (float)((b->stamp_us - a->stamp_us) / 1000.0);
  return SUCCESS;
}

EXPORT CUresult cuPointerGetAttribute(void *data, int attr, CUdeviceptr p) {
  CUresult r = check("cuPointerGetAttribute");
  if (r)
    return r;
  if (!data || attr != 2) /* CU_POINTER_ATTRIBUTE_MEMORY_TYPE */
    return INVALID_VALUE;
  const char *q = (const char *)(uintptr_t)p;
  int found = 0;
  pthread_mutex_lock(&mutex);
  for (int i = 0; i < MAX_ALLOCS && !found; ++i)
    found = allocs[i].p && q >= (const char *)allocs[i].p &&
            q < (const char *)allocs[i].p + allocs[i].size;
  pthread_mutex_unlock(&mutex);
  if (!found)
    return INVALID_VALUE;
  *(unsigned *)data = 2; /* CU_MEMORYTYPE_DEVICE */
  return SUCCESS;
}

EXPORT CUresult cuEventSynchronize(void *e) {
  CUresult r = check("cuEventSynchronize");
  return r ? r : e ? SUCCESS : INVALID_VALUE;
}

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t size) {
  CUresult r = check("cuMemAlloc_v2");
  return r ? r : fake_alloc(p, size);
}

EXPORT CUresult cuMemAllocManaged(CUdeviceptr *p, size_t size, unsigned flags) {
  CUresult r = check("cuMemAllocManaged");
  if (r)
    return r;
  return flags == 1 ? fake_alloc(p, size) : INVALID_VALUE;
}

EXPORT CUresult cuMemFree_v2(CUdeviceptr p) {
  CUresult r = check("cuMemFree_v2");
  return r ? r : fake_free(p);
}

EXPORT CUresult cuDeviceGetDefaultMemPool(void **pool, int dev) {
  (void)dev;
  CUresult r = check("cuDeviceGetDefaultMemPool");
  if (r)
    return r;
  *pool = &the_pool;
  return SUCCESS;
}

EXPORT CUresult cuMemPoolSetAttribute(void *pool, int attr, void *value) {
  CUresult r = check("cuMemPoolSetAttribute");
  if (r)
    return r;
  if (pool != &the_pool || attr != 4) /* CU_MEMPOOL_ATTR_RELEASE_THRESHOLD */
    return INVALID_VALUE;
  memcpy(&release_threshold, value, sizeof release_threshold);
  return SUCCESS;
}

EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr *p, size_t size,
                                        void *pool, void *stream) {
  (void)stream;
  CUresult r = check("cuMemAllocFromPoolAsync");
  if (r)
    return r;
  return pool == &the_pool ? fake_alloc(p, size) : INVALID_VALUE;
}

EXPORT CUresult cuMemFreeAsync(CUdeviceptr p, void *stream) {
  (void)stream;
  CUresult r = check("cuMemFreeAsync");
  return r ? r : fake_free(p);
}

EXPORT CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t n,
                              void *stream) {
  CUresult r = check("cuMemcpyAsync");
  if (r)
    return r;
  memcpy((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n);
  advance(stream, env_us("FAKE_CUDA_COPY_US", 2));
  return SUCCESS;
}

EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n) {
  CUresult r = check("cuMemcpyHtoD_v2");
  if (r)
    return r;
  memcpy((void *)(uintptr_t)dst, src, n);
  advance(NULL, env_us("FAKE_CUDA_COPY_US", 2));
  return SUCCESS;
}

EXPORT CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned value, size_t n,
                                 void *stream) {
  CUresult r = check("cuMemsetD32Async");
  if (r)
    return r;
  uint32_t *p = (uint32_t *)(uintptr_t)dst;
  for (size_t i = 0; i < n; ++i)
    p[i] = value;
  advance(stream, env_us("FAKE_CUDA_COPY_US", 2));
  return SUCCESS;
}

EXPORT CUresult cuMemsetD16Async(CUdeviceptr dst, unsigned short value,
                                 size_t n, void *stream) {
  CUresult r = check("cuMemsetD16Async");
  if (r)
    return r;
  uint16_t *p = (uint16_t *)(uintptr_t)dst;
  for (size_t i = 0; i < n; ++i)
    p[i] = value;
  advance(stream, env_us("FAKE_CUDA_COPY_US", 2));
  return SUCCESS;
}
