/* Times llama.cpp's CPU matrix product (ggml_mul_mat) on one shape: a
 * weight of N rows of K (random normal, quantized by ggml to the given
 * type: q4_0, q8_0, f32, ...) times M activation rows of K f32, on T
 * threads, the benchmark peer of bench/prefill_int8.py. ggml quantizes the
 * activations itself as its kernels need (q8_0 blocks for q4_0/q8_0).
 * Prints "ggml TYPE M K N threads T: median X ms (min Y, runs R)".
 * Build: clang -O2 -I SRC/ggml/include ggml_mul_mat.c -L BUILD/bin
 *        -lggml -lggml-base -lggml-cpu -Wl,-rpath,BUILD/bin -lm
 * Usage: ggml_mul_mat TYPE M K N THREADS RUNS
 * Not part of Quench; a measuring tool. */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml-cpu.h"
#include "ggml.h"

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* xorshift + Box-Muller: reproducible normal values. */
static uint64_t rng_state = 88172645463325252ull;
static float normal(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  double u1 = ((rng_state >> 11) + 1.0) / 9007199254740993.0;
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  double u2 = (rng_state >> 11) / 9007199254740992.0;
  return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: %s TYPE M K N THREADS RUNS\n", argv[0]);
    return 2;
  }
  const char *tname = argv[1];
  long m = atol(argv[2]), k = atol(argv[3]), n = atol(argv[4]);
  int threads = atoi(argv[5]), runs = atoi(argv[6]);
  enum ggml_type type = GGML_TYPE_COUNT;
  for (int t = 0; t < GGML_TYPE_COUNT; ++t) {
    const char *name = ggml_type_name((enum ggml_type)t);
    if (name && strcmp(name, tname) == 0)
      type = (enum ggml_type)t;
  }
  if (type == GGML_TYPE_COUNT || m <= 0 || k <= 0 || n <= 0 || threads <= 0 ||
      runs <= 0 || k % ggml_blck_size(type) != 0) {
    fprintf(stderr, "ggml_mul_mat: bad type '%s' or sizes\n", tname);
    return 2;
  }
  size_t wbytes = ggml_row_size(type, k) * n;
  struct ggml_init_params params = {
      .mem_size = wbytes + (size_t)(m * k + m * n) * 4 + 64 * 1024 * 1024,
      .mem_buffer = NULL,
      .no_alloc = false};
  struct ggml_context *ctx = ggml_init(params);
  struct ggml_tensor *w = ggml_new_tensor_2d(ctx, type, k, n);
  struct ggml_tensor *x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, k, m);
  float *wf = malloc(sizeof(float) * k * n);
  for (long i = 0; i < k * n; ++i)
    wf[i] = normal();
  if (type == GGML_TYPE_F32)
    memcpy(w->data, wf, sizeof(float) * k * n);
  else
    ggml_quantize_chunk(type, wf, w->data, 0, n, k, NULL);
  free(wf);
  for (long i = 0; i < k * m; ++i)
    ((float *)x->data)[i] = normal();
  struct ggml_tensor *y = ggml_mul_mat(ctx, w, x);
  struct ggml_cgraph *gf = ggml_new_graph(ctx);
  ggml_build_forward_expand(gf, y);
  ggml_graph_compute_with_ctx(ctx, gf, threads); /* warm-up */
  double *t = malloc(sizeof(double) * runs);
  for (int r = 0; r < runs; ++r) {
    double t0 = now_ms();
    ggml_graph_compute_with_ctx(ctx, gf, threads);
    t[r] = now_ms() - t0;
  }
  qsort(t, runs, sizeof(double), cmp_double);
  printf("ggml %s M %ld K %ld N %ld threads %d: median %.3f ms (min %.3f, "
         "runs %d)\n",
         tname, m, k, n, threads, t[runs / 2], t[0], runs);
  free(t);
  ggml_free(ctx);
  return 0;
}
