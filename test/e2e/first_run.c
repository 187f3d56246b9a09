/* The first run of a compiled model after quench_model_load takes every
 * buffer it allocates from the warmed buffer cache (test/e2e/first_run.py
 * builds this against the static-shape model `m`).
 *
 *   first_run X.npy OUT.npy
 *
 * Checks that the descriptor (ABI version 5) has a buffer size table, that
 * quench_model_load put buffers into the cache, that the first run leaves
 * the cache exactly as the load left it (a buffer the run had to get from
 * the C library would be in the cache after the run), that a second run
 * gives bit-identical outputs, and writes the output for the script to
 * compare with NumPy. Prints one line; exits 1 on any problem. */
#include "m.h"

#include <stdio.h>
#include <string.h>

static int fail(const char *what, const quench_error *err) {
  fprintf(stderr, "first_run: %s%s%s\n", what, err ? ": " : "",
          err ? err->message : "");
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 3)
    return fail("usage: first_run X.npy OUT.npy", NULL);
  quench_error err;
  if (m_model.abi_version != QUENCH_MODEL_ABI_VERSION ||
      m_model.num_buffer_sizes == 0)
    return fail("the descriptor has no buffer size table", NULL);
  quench_tensor x;
  if (quench_npy_read(argv[1], &x, &err) != QUENCH_OK)
    return fail("cannot read the input", &err);
  if (quench_buffer_cache_bytes() != 0)
    return fail("the cache is not empty before the load", NULL);
  if (quench_model_load(&m_model, &err) != QUENCH_OK)
    return fail("load failed", &err);
  size_t warmed = quench_buffer_cache_bytes();
  if (warmed == 0)
    return fail("the load warmed no buffers", NULL);
  quench_tensor first[M_NUM_OUTPUTS], second[M_NUM_OUTPUTS];
  if (m_run(&x, 1, first, M_NUM_OUTPUTS, NULL, &err) != QUENCH_OK)
    return fail("the first run failed", &err);
  size_t after = quench_buffer_cache_bytes();
  if (after != warmed) {
    fprintf(stderr,
            "first_run: the first run added %lld bytes to the warmed cache "
            "(%zu after the load, %zu after the run)\n",
            (long long)after - (long long)warmed, warmed, after);
    return 1;
  }
  if (m_run(&x, 1, second, M_NUM_OUTPUTS, NULL, &err) != QUENCH_OK)
    return fail("the second run failed", &err);
  for (int i = 0; i < M_NUM_OUTPUTS; ++i)
    if (quench_tensor_byte_size(&first[i]) !=
            quench_tensor_byte_size(&second[i]) ||
        memcmp(first[i].data, second[i].data,
               quench_tensor_byte_size(&first[i])) != 0)
      return fail("the second run's outputs differ from the first's", NULL);
  if (quench_npy_write(argv[2], &first[0], &err) != QUENCH_OK)
    return fail("cannot write the output", &err);
  printf("first-run: %llu static buffers, %zu bytes warmed at load, the "
         "first run added 0\n",
         (unsigned long long)m_model.num_buffer_sizes, warmed);
  for (int i = 0; i < M_NUM_OUTPUTS; ++i) {
    quench_tensor_free(&first[i]);
    quench_tensor_free(&second[i]);
  }
  quench_tensor_free(&x);
  return 0;
}
