/* llama.cpp's (ggml's) CPU matrix product y = x W for one weight type, the
 * peer of bench/small_batch.sh: W is [K, N] (ggml: N rows of K), x [M, K]
 * f32, as test-backend-ops' MUL_MAT perf cases but for any M, K, N.
 *
 *   ggml_matmul TYPE K N M THREADS RUNS [BUFFER]
 *
 * TYPE is a ggml type name (f32, q4_0, q4_K, q8_0, ...). W holds random
 * normal values times 0.02 quantized to TYPE by ggml_quantize_chunk, x
 * random normal. Prints "ggml: TYPE K N M threads T buffer B median X ms
 * min Y ms cpu Z ms" over RUNS timed graph computations after one warm-up
 * (Z: the median process CPU time per run, all threads' together) (the activations'
 * conversion to the type's dot-product partner, e.g. q8_0, included). As in
 * llama.cpp's model loader, W lives in the CPU device's first extra buffer
 * type that supports the product (the repacked, interleaved layouts of
 * q4_0, ... with their AVX2/AVX-512 kernels), else in host memory; the
 * line says which ("buffer AMX", "buffer CPU_AARCH64" (the repacked layouts,
 * x86 included, in this llama.cpp version) or "buffer CPU"). BUFFER
 * names the buffer type to use instead (e.g. CPU_AARCH64 on an AMX host, to
 * time the AVX-512 kernels; CPU: host memory, no repacking).
 *
 * Built by bench/small_batch.sh against a llama.cpp source tree and build
 * (cc -I SRC/ggml/include ... -L BUILD/bin -lggml -lggml-base -lggml-cpu);
 * not part of Quench's build: llama.cpp is a benchmark peer. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml.h"

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return 1e3 * (double)t.tv_sec + 1e-6 * (double)t.tv_nsec;
}

static double cpu_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return 1e3 * (double)t.tv_sec + 1e-6 * (double)t.tv_nsec;
}

static int compare_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Standard normal samples (Box-Muller on a 64-bit LCG). */
static uint64_t state = 0x9E3779B97F4A7C15ull;
static float normal(void) {
  double u[2];
  for (int i = 0; i < 2; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    u[i] = ((state >> 11) + 0.5) / 9007199254740992.0;
  }
  return (float)(sqrt(-2 * log(u[0])) * cos(6.283185307179586 * u[1]));
}

int main(int argc, char **argv) {
  if (argc != 7 && argc != 8) {
    fprintf(stderr, "usage: %s TYPE K N M THREADS RUNS [BUFFER]\n", argv[0]);
    return 2;
  }
  enum ggml_type type = GGML_TYPE_COUNT;
  for (int t = 0; t < GGML_TYPE_COUNT; ++t) {
    const char *name = ggml_type_name((enum ggml_type)t);
    if (name && strcmp(name, argv[1]) == 0)
      type = (enum ggml_type)t;
  }
  long k = atol(argv[2]), n = atol(argv[3]), m = atol(argv[4]);
  int threads = atoi(argv[5]), runs = atoi(argv[6]);
  if (type == GGML_TYPE_COUNT || k <= 0 || n <= 0 || m <= 0 || threads <= 0 ||
      runs <= 0 || k % ggml_blck_size(type) != 0) {
    fprintf(stderr, "%s: bad type or sizes\n", argv[0]);
    return 2;
  }
  ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
  ggml_backend_t backend = dev ? ggml_backend_dev_init(dev, NULL) : NULL;
  if (!backend) {
    fprintf(stderr, "%s: no CPU backend\n", argv[0]);
    return 1;
  }
  ggml_backend_cpu_set_n_threads(backend, threads);

  /* Weights: a context of their own, in the first extra buffer type whose
   * product with x the device supports (llama.cpp's weight_buft_supported). */
  struct ggml_init_params wp = {ggml_tensor_overhead() * 4, NULL, true};
  struct ggml_context *wctx = ggml_init(wp);
  struct ggml_tensor *w = ggml_new_tensor_2d(wctx, type, k, n);
  struct ggml_init_params gp = {ggml_tensor_overhead() * 16 +
                                    ggml_graph_overhead(),
                                NULL, true};
  struct ggml_context *ctx = ggml_init(gp);
  struct ggml_tensor *x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, k, m);
  struct ggml_tensor *y = ggml_mul_mat(ctx, w, x);
  ggml_backend_buffer_type_t buft = ggml_backend_cpu_buffer_type();
  ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
  ggml_backend_dev_get_extra_bufts_t extra =
      (ggml_backend_dev_get_extra_bufts_t)ggml_backend_reg_get_proc_address(
          reg, "ggml_backend_dev_get_extra_bufts");
  const char *want = argc == 8 ? argv[7] : NULL;
  if (want && strcmp(want, ggml_backend_buft_name(buft)) != 0)
    buft = NULL;
  for (ggml_backend_buffer_type_t *b = extra ? extra(dev) : NULL; b && *b;
       ++b) {
    if (want && strcmp(want, ggml_backend_buft_name(*b)) != 0)
      continue;
    w->buffer = ggml_backend_buft_alloc_buffer(*b, 0);
    int ok = ggml_backend_dev_supports_op(dev, y);
    ggml_backend_buffer_free(w->buffer);
    w->buffer = NULL;
    if (ok) {
      buft = *b;
      break;
    }
  }
  if (!buft) {
    fprintf(stderr, "%s: no buffer type %s for this product\n", argv[0], want);
    return 1;
  }
  ggml_backend_buffer_t wbuf = ggml_backend_alloc_ctx_tensors_from_buft(wctx, buft);
  ggml_backend_buffer_set_usage(wbuf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
  ggml_backend_buffer_t gbuf = ggml_backend_alloc_ctx_tensors(ctx, backend);
  if (!wbuf || !gbuf) {
    fprintf(stderr, "%s: out of memory\n", argv[0]);
    return 1;
  }

  float *src = malloc(sizeof(float) * k * n);
  for (long i = 0; i < k * n; ++i)
    src[i] = 0.02f * normal();
  size_t wbytes = ggml_row_size(type, k) * n;
  void *packed = malloc(wbytes);
  if (type == GGML_TYPE_F32)
    memcpy(packed, src, wbytes);
  else
    ggml_quantize_chunk(type, src, packed, 0, n, k, NULL);
  ggml_backend_tensor_set(w, packed, 0, wbytes); /* repacks, if extra */
  free(packed);
  float *xs = malloc(sizeof(float) * k * m);
  for (long i = 0; i < k * m; ++i)
    xs[i] = normal();
  ggml_backend_tensor_set(x, xs, 0, sizeof(float) * k * m);
  free(src);
  free(xs);

  struct ggml_cgraph *graph = ggml_new_graph(ctx);
  ggml_build_forward_expand(graph, y);
  double *times = malloc(sizeof(double) * runs);
  double *cpu = malloc(sizeof(double) * runs);
  ggml_backend_graph_compute(backend, graph); /* warm-up */
  for (int r = 0; r < runs; ++r) {
    double t0 = now_ms(), c0 = cpu_ms();
    ggml_backend_graph_compute(backend, graph);
    times[r] = now_ms() - t0;
    cpu[r] = cpu_ms() - c0;
  }
  qsort(times, runs, sizeof(double), compare_double);
  qsort(cpu, runs, sizeof(double), compare_double);
  printf("ggml: %s K %ld N %ld M %ld threads %d buffer %s median %.4f ms "
         "min %.4f ms cpu %.4f ms\n",
         argv[1], k, n, m, threads, ggml_backend_buft_name(buft),
         times[runs / 2], times[0], cpu[runs / 2]);
  free(times);
  free(cpu);
  ggml_backend_buffer_free(gbuf);
  ggml_backend_buffer_free(wbuf);
  ggml_free(ctx);
  ggml_free(wctx);
  ggml_backend_free(backend);
  return 0;
}
