/* Helpers of bench/gpu/check.sh that need no Python on the GPU machine.
 *
 *   gpucheck cmp GOT.npy WANT.npy TOL   max |got - want| / max(1e-30, max |want|)
 *                                        (f32, same shape); exit 0 when <= TOL
 *   gpucheck bw MIB                      device-to-device copy bandwidth of the
 *                                        CUDA driver (cuMemcpyDtoD of MIB MiB,
 *                                        median of 10), GB/s counting read +
 *                                        write: the measured memory ceiling
 *   gpucheck name                        the GPU's name
 *
 * Links the Quench runtime for .npy reading; loads libcuda.so.1 with dlopen
 * like the runtime does, so it builds on machines without CUDA.
 */
#include "quench/runtime.h"

#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* IEEE half bits to double. */
static double half_to_double(uint16_t h) {
  int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  double v = e == 0    ? ldexp(m, -24)
             : e == 31 ? (m ? NAN : INFINITY)
                       : ldexp(m + 1024, e - 25);
  return (h & 0x8000) ? -v : v;
}

/* Element i of an f32, f16 or i32 tensor. */
static double element(const quench_tensor *t, int64_t i) {
  switch (t->dtype) {
  case QUENCH_DTYPE_F16:
    return half_to_double(((const uint16_t *)t->data)[i]);
  case QUENCH_DTYPE_I32:
    return (double)((const int32_t *)t->data)[i];
  default:
    return (double)((const float *)t->data)[i];
  }
}

static int cmp(const char *got_path, const char *want_path, double tol) {
  quench_tensor got, want;
  quench_error err;
  if (quench_npy_read(got_path, &got, &err) != QUENCH_OK ||
      quench_npy_read(want_path, &want, &err) != QUENCH_OK) {
    fprintf(stderr, "gpucheck: %s\n", err.message);
    return 2;
  }
  int64_t n = 0, m = 0;
  quench_tensor_size(&got, &n, NULL, NULL);
  quench_tensor_size(&want, &m, NULL, NULL);
  /* f32 outputs, f16 (f16 layers) or i32 (int8 tensor-core sums). */
  if (got.dtype != want.dtype ||
      (got.dtype != QUENCH_DTYPE_F32 && got.dtype != QUENCH_DTYPE_F16 &&
       got.dtype != QUENCH_DTYPE_I32) ||
      n != m || got.rank != want.rank ||
      memcmp(got.shape, want.shape, sizeof(int64_t) * (size_t)got.rank)) {
    fprintf(stderr, "gpucheck: %s and %s differ in dtype or shape\n",
            got_path, want_path);
    return 1;
  }
  double diff = 0, scale = 1e-30;
  for (int64_t i = 0; i < n; ++i) {
    double a = element(&got, i), b = element(&want, i);
    double d = fabs(a - b);
    if (!(d <= diff)) /* NaN propagates */
      diff = d;
    if (fabs(b) > scale)
      scale = fabs(b);
  }
  double rel = diff / scale;
  printf("%.3g\n", rel);
  return rel <= tol ? 0 : 1;
}

typedef int (*fn_int)(unsigned);
typedef int (*fn_dev)(int *, int);
typedef int (*fn_ctx)(void **, unsigned, int);
typedef int (*fn_alloc)(uint64_t *, size_t);
typedef int (*fn_copy)(uint64_t, uint64_t, size_t);
typedef int (*fn_sync)(void);
typedef int (*fn_name)(char *, int, int);

static void *sym(void *lib, const char *name) {
  void *p = dlsym(lib, name);
  if (!p) {
    fprintf(stderr, "gpucheck: the CUDA driver has no %s\n", name);
    exit(2);
  }
  return p;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int gpu(int argc, char **argv, int bandwidth) {
  void *lib = dlopen("libcuda.so.1", RTLD_NOW);
  if (!lib) {
    fprintf(stderr, "gpucheck: no CUDA driver: %s\n", dlerror());
    return 2;
  }
  int dev = 0;
  void *ctx = NULL;
  if (((fn_int)sym(lib, "cuInit"))(0) ||
      ((fn_dev)sym(lib, "cuDeviceGet"))(&dev, 0) ||
      ((fn_ctx)sym(lib, "cuCtxCreate_v2"))(&ctx, 0, dev)) {
    fprintf(stderr, "gpucheck: no usable CUDA device\n");
    return 2;
  }
  if (!bandwidth) {
    char name[256] = "";
    ((fn_name)sym(lib, "cuDeviceGetName"))(name, sizeof name, dev);
    printf("%s\n", name);
    return 0;
  }
  size_t bytes = (size_t)(argc > 2 ? atof(argv[2]) : 1024) * (1u << 20);
  uint64_t src = 0, dst = 0;
  fn_alloc alloc = (fn_alloc)sym(lib, "cuMemAlloc_v2");
  fn_copy copy = (fn_copy)sym(lib, "cuMemcpyDtoD_v2");
  fn_sync sync = (fn_sync)sym(lib, "cuCtxSynchronize");
  if (alloc(&src, bytes) || alloc(&dst, bytes)) {
    fprintf(stderr, "gpucheck: cannot allocate 2 x %zu bytes\n", bytes);
    return 2;
  }
  copy(dst, src, bytes);
  sync();
  double t[10];
  for (int i = 0; i < 10; ++i) {
    double t0 = now();
    copy(dst, src, bytes);
    sync();
    t[i] = now() - t0;
  }
  qsort(t, 10, sizeof t[0], cmpd);
  printf("%.1f\n", 2.0 * (double)bytes / t[5] / 1e9);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 5 && !strcmp(argv[1], "cmp"))
    return cmp(argv[2], argv[3], atof(argv[4]));
  if (argc >= 2 && !strcmp(argv[1], "bw"))
    return gpu(argc, argv, 1);
  if (argc == 2 && !strcmp(argv[1], "name"))
    return gpu(argc, argv, 0);
  fprintf(stderr, "usage: gpucheck cmp GOT.npy WANT.npy TOL | bw [MIB] | "
                  "name\n");
  return 2;
}
