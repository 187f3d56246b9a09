/* Memory read bandwidth: sums a buffer much larger than the caches as
 * 32-bit integers (wrapping adds vectorize without -ffast-math), best of
 * several passes. Usage: read_bw [MiB=512] [THREADS=1]; with T threads each
 * sums its own contiguous 1/T of the buffer (first-touched by that thread),
 * the passes start together (barrier) and a pass's time is the slowest
 * thread's. Prints "read-bw: X GB/s (N MiB buffer, ...)". Used by
 * bench/quant_gemv.sh (1 thread) and bench/scale.sh (2 threads) as the
 * ceiling of weight-streaming kernels. Link with -lpthread. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { PASSES = 6 };

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct part {
  unsigned *buf;
  size_t n;
  unsigned sum;
  double t[PASSES][2]; /* start, end of each pass */
};

static pthread_barrier_t barrier;

static void *run(void *arg) {
  struct part *p = arg;
  for (size_t i = 0; i < p->n; ++i)
    p->buf[i] = (unsigned)(i & 1023);
  for (int pass = 0; pass < PASSES; ++pass) {
    pthread_barrier_wait(&barrier);
    p->t[pass][0] = now();
    unsigned s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i < p->n; i += 4) {
      s0 += p->buf[i];
      s1 += p->buf[i + 1];
      s2 += p->buf[i + 2];
      s3 += p->buf[i + 3];
    }
    p->t[pass][1] = now();
    p->sum += s0 + s1 + s2 + s3;
  }
  return NULL;
}

int main(int argc, char **argv) {
  size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 512;
  int threads = argc > 2 ? atoi(argv[2]) : 1;
  if (threads < 1 || threads > 256 || mib < 1)
    return 2;
  size_t n = mib * 1024 * 1024 / sizeof(unsigned);
  size_t per = n / threads / 16 * 16; /* multiple of 4, 64-byte aligned */
  unsigned *buf = aligned_alloc(64, n * sizeof(unsigned));
  struct part *parts = calloc(threads, sizeof(struct part));
  pthread_t *ids = calloc(threads, sizeof(pthread_t));
  if (!buf || !parts || !ids || per == 0)
    return 1;
  pthread_barrier_init(&barrier, NULL, threads);
  for (int t = 0; t < threads; ++t) {
    parts[t].buf = buf + t * per;
    parts[t].n = per;
    if (t > 0 && pthread_create(&ids[t], NULL, run, &parts[t]))
      return 1;
  }
  run(&parts[0]);
  for (int t = 1; t < threads; ++t)
    pthread_join(ids[t], NULL);
  double best = 1e30;
  unsigned sink = 0;
  for (int pass = 0; pass < PASSES; ++pass) {
    double t0 = 1e30, t1 = 0;
    for (int t = 0; t < threads; ++t) {
      if (parts[t].t[pass][0] < t0)
        t0 = parts[t].t[pass][0];
      if (parts[t].t[pass][1] > t1)
        t1 = parts[t].t[pass][1];
    }
    if (t1 - t0 < best)
      best = t1 - t0;
  }
  for (int t = 0; t < threads; ++t)
    sink += parts[t].sum;
  printf("read-bw: %.1f GB/s (%zu MiB buffer, %d thread%s, checksum %u)\n",
         per * threads * sizeof(unsigned) / best / 1e9, mib, threads,
         threads == 1 ? "" : "s", sink);
  free(buf);
  free(parts);
  free(ids);
  return 0;
}
