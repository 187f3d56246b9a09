/* Loading a model (quench_model_load): its weights, and warm buffers.
 *
 * quench-compile --emit=exe links the model with its weight image as a
 * .lbss region (address space, no file bytes) and appends the image to the
 * executable file, page aligned, followed by a 32-byte trailer:
 *   "QUENCHW1", u64 version (1), u64 offset, u64 size   (little-endian)
 * (lib/Target/Weights.cpp writes it). Loading maps the image from the file
 * over the region, so the weights are read from the page cache as they are
 * used and never copied; where that mapping is impossible (offsets not
 * page aligned for this system's page size) they are read into the region.
 *
 * The first run should not pay for mapping the weights page by page: at
 * load, the image (mapped from the file, or in the object's own section for
 * objects and libraries) is read one byte per page, which brings every page
 * in (from the page cache, or from the file with the kernel's read-ahead)
 * and maps it before the first run. Plain POSIX reads: MAP_POPULATE and
 * MADV_POPULATE_READ are Linux extensions (docs/runtime.md, "Language and
 * portability"), and POSIX_MADV_WILLNEED on the executable's mapping made
 * the later runs of a 125M-parameter model ~8 % slower (measured,
 * docs/benchmarks.md "Code size and first run").
 *
 * Nor should it pay for fresh buffer memory: a model of ABI version 5
 * lists the buffer sizes a run allocates (quench_model.buffer_sizes), and
 * loading puts buffers of those sizes, with their pages touched, into the
 * runtime's buffer cache (alloc.c), once per model.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum { TRAILER_BYTES = 32, MAX_LOADED = 64 };

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static const void *loaded[MAX_LOADED];   /* weight images loaded */
static int num_loaded;
static const quench_model *warmed[MAX_LOADED]; /* buffer caches warmed */
static int num_warmed;

/* Brings the weight image [addr, addr + size) into memory and maps its
 * pages: one read per page. */
static void prefetch_weights(const void *addr, uint64_t size) {
  uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  volatile const unsigned char *bytes = (const unsigned char *)addr;
  unsigned char sum = 0;
  for (uint64_t i = 0; i < size; i += page)
    sum = (unsigned char)(sum + bytes[i]);
  (void)sum;
}

static uint64_t read_le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = v << 8 | p[i];
  return v;
}

/* errno's text, thread-safe. */
static const char *error_text(int errnum, char *buf, size_t size) {
  quench_internal_strerror(errnum, buf, size);
  return buf;
}

static quench_status map_appended(const quench_model *m, quench_error *err) {
  const char *self = "/proc/self/exe";
  char why[128];
  int fd = open(self, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return quench_error_set(err, QUENCH_ERR_IO,
                            "model '%s': cannot open the executable (%s) to "
                            "map its weights: %s",
                            m->name, self, error_text(errno, why, sizeof why));
  quench_status st = QUENCH_OK;
  struct stat s;
  unsigned char trailer[TRAILER_BYTES];
  if (fstat(fd, &s) != 0 || s.st_size < TRAILER_BYTES ||
      quench_internal_read_exact(fd, trailer, TRAILER_BYTES,
                                 s.st_size - TRAILER_BYTES) != 0 ||
      memcmp(trailer, "QUENCHW1", 8) != 0 || read_le64(trailer + 8) != 1) {
    st = quench_error_set(err, QUENCH_ERR_IO,
                          "model '%s': the executable has no weights appended "
                          "(was it stripped or truncated? compile it again "
                          "with quench-compile --emit=exe)",
                          m->name);
    goto done;
  }
  uint64_t offset = read_le64(trailer + 16), size = read_le64(trailer + 24);
  uint64_t file = (uint64_t)s.st_size;
  if (size != m->weights_size || offset > file || size > file - offset ||
      file - offset - size < TRAILER_BYTES) {
    st = quench_error_set(err, QUENCH_ERR_IO,
                          "model '%s': the weights appended to the executable "
                          "are damaged (%llu bytes at %llu in a file of %llu; "
                          "the model has %llu)",
                          m->name, (unsigned long long)size,
                          (unsigned long long)offset,
                          (unsigned long long)s.st_size,
                          (unsigned long long)m->weights_size);
    goto done;
  }
  uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  if (offset % page == 0 && (uintptr_t)m->weights % page == 0 &&
      size % page == 0) {
    void *p = mmap(m->weights, (size_t)size, PROT_READ, MAP_PRIVATE | MAP_FIXED,
                   fd, (off_t)offset);
    if (p == MAP_FAILED)
      st = quench_error_set(err, QUENCH_ERR_IO,
                            "model '%s': cannot map its %llu bytes of weights "
                            "from the executable: %s",
                            m->name, (unsigned long long)size,
                            error_text(errno, why, sizeof why));
  } else {
    int rc = quench_internal_read_exact(fd, m->weights, (size_t)size,
                                        (off_t)offset);
    if (rc != 0)
      st = quench_error_set(err, QUENCH_ERR_IO,
                            "model '%s': cannot read its weights from the "
                            "executable: %s",
                            m->name, error_text(rc, why, sizeof why));
  }
done:
  close(fd);
  return st;
}

/* Whether the model's weights need loading (an image to map or read). */
static int has_weight_image(const quench_model *model) {
  return model->abi_version >= 2 &&
         (model->weights_storage == QUENCH_WEIGHTS_APPENDED ||
          model->weights_storage == QUENCH_WEIGHTS_EMBEDDED) &&
         model->weights_size != 0;
}

/* Whether the model has a buffer size table to warm the cache with. */
static int has_buffer_sizes(const quench_model *model) {
  return model->abi_version >= 5 && model->buffer_sizes &&
         model->num_buffer_sizes != 0;
}

quench_status quench_model_load(const quench_model *model, quench_error *err) {
  if (!model)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT, "model is NULL");
  int weights = has_weight_image(model), buffers = has_buffer_sizes(model);
  if (!weights && !buffers)
    return QUENCH_OK;
  if (weights && !model->weights)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "model '%s' has no weight image address",
                            model->name);
  pthread_mutex_lock(&load_lock);
  quench_status st = QUENCH_OK;
  int found = !weights;
  for (int i = 0; i < num_loaded && !found; ++i)
    found = loaded[i] == model->weights;
  if (!found) {
    if (model->weights_storage == QUENCH_WEIGHTS_APPENDED)
      st = map_appended(model, err);
    if (st == QUENCH_OK)
      prefetch_weights(model->weights, model->weights_size);
    if (st == QUENCH_OK && num_loaded < MAX_LOADED)
      loaded[num_loaded++] = model->weights;
  }
  /* The buffer cache, once per model (beyond MAX_LOADED models: not at
   * all, rather than at every run). */
  found = !buffers || st != QUENCH_OK || num_warmed == MAX_LOADED;
  for (int i = 0; i < num_warmed && !found; ++i)
    found = warmed[i] == model;
  if (!found) {
    quench_internal_buffer_cache_warm(model->buffer_sizes,
                                      model->num_buffer_sizes,
                                      QUENCH_BUFFER_WARM_BYTES);
    warmed[num_warmed++] = model;
  }
  pthread_mutex_unlock(&load_lock);
  return st;
}
