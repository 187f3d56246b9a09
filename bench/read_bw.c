/* Memory read bandwidth: sums a buffer much larger than the caches as
 * 32-bit integers (wrapping adds vectorize without -ffast-math), best of
 * several passes, on 1 thread. Prints "read-bw: X GB/s (N MiB buffer)". Used by
 * bench/quant_gemv.sh as the ceiling of weight-streaming kernels. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 512;
  size_t n = mib * 1024 * 1024 / sizeof(unsigned);
  unsigned *buf = aligned_alloc(64, n * sizeof(unsigned));
  if (!buf)
    return 1;
  for (size_t i = 0; i < n; ++i)
    buf[i] = (unsigned)(i & 1023);
  double best = 1e30;
  unsigned sink = 0;
  for (int pass = 0; pass < 6; ++pass) {
    double t0 = now();
    unsigned s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i < n; i += 4) {
      s0 += buf[i];
      s1 += buf[i + 1];
      s2 += buf[i + 2];
      s3 += buf[i + 3];
    }
    double t = now() - t0;
    sink += s0 + s1 + s2 + s3;
    if (t < best)
      best = t;
  }
  printf("read-bw: %.1f GB/s (%zu MiB buffer, checksum %u)\n",
         n * sizeof(unsigned) / best / 1e9, mib, sink);
  free(buf);
  return 0;
}
