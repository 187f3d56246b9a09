/* One compiled model run from several threads at once, and a soak run
 * (test/e2e/concurrent_runs.py builds this against the model `m`).
 *
 * The model (concurrent_runs.py): y = (relu(x @ W1) + r) @ W2 with x
 * f32[B, 64], r f32[R, 128] (R must equal B: checked at run time) and
 * e = table[ids] with ids i64[1, T] (16 rows: checked at run time).
 *
 *   concurrent_runs THREADS ITERATIONS SOAK_RUNS
 *
 * Threads: every thread has its own inputs (B, T and values differ per
 * thread) and output buffers and runs the model ITERATIONS times, half
 * without a pool and half on a pool shared by all threads (the C API's
 * contract, docs/runtime.md); every third run is a bad input (R != B, or
 * an id out of range) that must fail with QUENCH_ERR_INVALID_ARGUMENT. Each
 * good run's outputs must equal, bit for bit, that thread's reference
 * computed before the threads started.
 *
 * Soak: SOAK_RUNS runs on one thread, every tenth a bad input that fails
 * after the run has allocated its intermediate buffers; the resident set
 * (VmRSS) after the first tenth of the runs and at the end must not differ
 * by more than 2 MiB. Prints one line per phase; exits 1 on any problem. */
#define _POSIX_C_SOURCE 200809L
#include "m.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kIn = 64, kHidden = 128, kOut = 32, kRows = 16, kDim = 8 };

typedef struct inputs {
  int64_t batch, tokens;
  float *x, *r;
  int64_t *ids;
  quench_tensor t[3];
} inputs;

static uint32_t next_random(uint32_t *state) {
  *state = *state * 1664525u + 1013904223u;
  return *state >> 8;
}

/* Inputs of batch and tokens with values from seed; `bad` 1: R = B + 1,
 * 2: an id of 16. */
static void make_inputs(inputs *in, int64_t batch, int64_t tokens,
                        uint32_t seed, int bad) {
  in->batch = batch;
  in->tokens = tokens;
  int64_t rows = bad == 1 ? batch + 1 : batch;
  in->x = malloc(sizeof(float) * (size_t)(batch * kIn));
  in->r = malloc(sizeof(float) * (size_t)(rows * kHidden));
  in->ids = malloc(sizeof(int64_t) * (size_t)tokens);
  for (int64_t i = 0; i < batch * kIn; ++i)
    in->x[i] = (float)(next_random(&seed) % 2001) / 1000.0f - 1.0f;
  for (int64_t i = 0; i < rows * kHidden; ++i)
    in->r[i] = (float)(next_random(&seed) % 2001) / 1000.0f - 1.0f;
  for (int64_t i = 0; i < tokens; ++i)
    in->ids[i] = (int64_t)(next_random(&seed) % 32) - 16;
  if (bad == 2)
    in->ids[tokens - 1] = 16;
  in->t[0] = (quench_tensor){in->x, QUENCH_DTYPE_F32, 2, {batch, kIn}};
  in->t[1] = (quench_tensor){in->r, QUENCH_DTYPE_F32, 2, {rows, kHidden}};
  in->t[2] = (quench_tensor){in->ids, QUENCH_DTYPE_I64, 2, {1, tokens}};
}

static void free_inputs(inputs *in) {
  free(in->x);
  free(in->r);
  free(in->ids);
}

static quench_threadpool *shared_pool;

typedef struct worker {
  int index, iterations, problems, good, bad;
  inputs good_in, bad_in;
  quench_tensor want[M_NUM_OUTPUTS];
} worker;

static int same_outputs(const quench_tensor *a, const quench_tensor *b) {
  for (int i = 0; i < M_NUM_OUTPUTS; ++i) {
    size_t n = quench_tensor_byte_size(&a[i]);
    if (n != quench_tensor_byte_size(&b[i]) ||
        memcmp(a[i].data, b[i].data, n) != 0)
      return 0;
  }
  return 1;
}

static void *work(void *arg) {
  worker *w = arg;
  for (int it = 0; it < w->iterations; ++it) {
    quench_threadpool *pool = it % 2 ? shared_pool : NULL;
    quench_tensor out[M_NUM_OUTPUTS];
    quench_error err;
    if (it % 3 == 2) {
      quench_status st = m_run(w->bad_in.t, 3, out, M_NUM_OUTPUTS, pool, &err);
      if (st != QUENCH_ERR_INVALID_ARGUMENT || out[0].data) {
        fprintf(stderr, "thread %d run %d: bad input gave status %d (%s)\n",
                w->index, it, (int)st, err.message);
        ++w->problems;
      }
      ++w->bad;
      continue;
    }
    quench_status st = m_run(w->good_in.t, 3, out, M_NUM_OUTPUTS, pool, &err);
    if (st != QUENCH_OK) {
      fprintf(stderr, "thread %d run %d: %s\n", w->index, it, err.message);
      ++w->problems;
      continue;
    }
    if (!same_outputs(out, w->want)) {
      fprintf(stderr, "thread %d run %d: outputs differ from the reference\n",
              w->index, it);
      ++w->problems;
    }
    ++w->good;
    for (int i = 0; i < M_NUM_OUTPUTS; ++i)
      quench_tensor_free(&out[i]);
  }
  return NULL;
}

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0)
      kib = strtol(line + 6, NULL, 10);
  if (f)
    fclose(f);
  return kib;
}

static int threads_phase(int num_threads, int iterations) {
  quench_error err;
  shared_pool = quench_threadpool_create(2, &err);
  if (!shared_pool) {
    fprintf(stderr, "pool: %s\n", err.message);
    return 1;
  }
  worker *ws = calloc((size_t)num_threads, sizeof *ws);
  for (int t = 0; t < num_threads; ++t) {
    worker *w = &ws[t];
    w->index = t;
    w->iterations = iterations;
    make_inputs(&w->good_in, 1 + t % 4, 1 + t % 5, 1000u + (uint32_t)t, 0);
    make_inputs(&w->bad_in, 2, 3, 7u + (uint32_t)t, 1 + t % 2);
    if (m_run(w->good_in.t, 3, w->want, M_NUM_OUTPUTS, NULL, &err) !=
        QUENCH_OK) {
      fprintf(stderr, "reference of thread %d: %s\n", t, err.message);
      return 1;
    }
  }
  pthread_t *tids = calloc((size_t)num_threads, sizeof *tids);
  for (int t = 0; t < num_threads; ++t)
    pthread_create(&tids[t], NULL, work, &ws[t]);
  int problems = 0, good = 0, bad = 0;
  for (int t = 0; t < num_threads; ++t) {
    pthread_join(tids[t], NULL);
    problems += ws[t].problems;
    good += ws[t].good;
    bad += ws[t].bad;
    for (int i = 0; i < M_NUM_OUTPUTS; ++i)
      quench_tensor_free(&ws[t].want[i]);
    free_inputs(&ws[t].good_in);
    free_inputs(&ws[t].bad_in);
  }
  printf("threads: %d threads x %d runs: %d good runs equal to the reference, "
         "%d bad inputs rejected, %d problems\n",
         num_threads, iterations, good, bad, problems);
  free(tids);
  free(ws);
  quench_threadpool_destroy(shared_pool);
  return problems != 0;
}

static int soak_phase(int runs) {
  inputs good, bad;
  make_inputs(&good, 64, 8, 42u, 0);
  make_inputs(&bad, 64, 8, 43u, 1);
  long warm = -1;
  int problems = 0;
  for (int i = 0; i < runs; ++i) {
    quench_tensor out[M_NUM_OUTPUTS];
    quench_error err;
    int is_bad = i % 10 == 9;
    quench_status st =
        m_run(is_bad ? bad.t : good.t, 3, out, M_NUM_OUTPUTS, NULL, &err);
    if (st != (is_bad ? QUENCH_ERR_INVALID_ARGUMENT : QUENCH_OK)) {
      fprintf(stderr, "soak run %d: status %d (%s)\n", i, (int)st,
              err.message);
      ++problems;
    }
    for (int k = 0; st == QUENCH_OK && k < M_NUM_OUTPUTS; ++k)
      quench_tensor_free(&out[k]);
    if (i + 1 == runs / 10)
      warm = rss_kib();
  }
  long end = rss_kib();
  long growth = end - warm;
  printf("soak: %d runs (%d bad inputs), VmRSS %ld KiB after %d runs, %ld KiB "
         "at the end (%+ld KiB; limit +2048 KiB)\n",
         runs, runs / 10, warm, runs / 10, end, growth);
  free_inputs(&good);
  free_inputs(&bad);
  return problems != 0 || warm < 0 || growth > 2048;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s THREADS ITERATIONS SOAK_RUNS\n", argv[0]);
    return 2;
  }
  int threads = atoi(argv[1]), iterations = atoi(argv[2]),
      soak = atoi(argv[3]);
  int failed = 0;
  if (threads > 0)
    failed |= threads_phase(threads, iterations);
  if (soak > 0)
    failed |= soak_phase(soak);
  return failed;
}
