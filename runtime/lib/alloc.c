/* Buffer allocator of generated code (memref.alloc / dealloc).
 *
 * A model run allocates the same intermediate buffers in the same order
 * every time. Handing them back to the C library at every free makes the
 * next run fault every page in again (glibc trims the heap top and maps
 * large blocks afresh), which cost a small model more time than its
 * arithmetic. Freed buffers are therefore kept in per-size-class free lists
 * and reused; the cache is bounded (QUENCH_BUFFER_CACHE_BYTES) and can be
 * emptied with quench_buffer_cache_trim().
 *
 * Every buffer carries a 16-byte header just below the pointer handed out:
 * the malloc'd base and the size class (or kNoClass for uncached blocks:
 * huge sizes or alignments above QUENCH_TENSOR_ALIGNMENT). */
#include "internal.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum {
  kHeader = 16,
  /* 4 classes per power of two from 64 B to 2^kMaxLog2 B (<= 25% waste). */
  kMinLog2 = 6,
  kMaxLog2 = 30,
  kSubClasses = 4,
  kNumClasses = (kMaxLog2 - kMinLog2) * kSubClasses + 1,
};
static const uint32_t kNoClass = UINT32_MAX;
static const uint32_t kMagic = 0x51424631u; /* "QBF1" */

typedef struct header {
  void *base;
  uint32_t size_class;
  uint32_t magic;
} header;

typedef struct free_block {
  struct free_block *next;
} free_block;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static free_block *free_lists[kNumClasses];
static size_t cached_bytes;

/* Smallest class whose size is >= size; kNoClass if too large. */
static uint32_t class_of(size_t size) {
  if (size <= ((size_t)1 << kMinLog2))
    return 0;
  if (size > ((size_t)1 << kMaxLog2))
    return kNoClass;
  unsigned log2 = 0;
  while (((size_t)1 << (log2 + 1)) < size)
    ++log2;
  /* 2^log2 < size <= 2^(log2+1): quarters of 2^log2 above 2^log2. */
  size_t base = (size_t)1 << log2;
  size_t quarter = base / kSubClasses;
  size_t sub = (size - base + quarter - 1) / quarter; /* 1..kSubClasses */
  return (uint32_t)((log2 - kMinLog2) * kSubClasses + sub);
}

static size_t class_size(uint32_t c) {
  if (c == 0)
    return (size_t)1 << kMinLog2;
  unsigned log2 = kMinLog2 + (c - 1) / kSubClasses;
  size_t sub = (c - 1) % kSubClasses + 1;
  size_t base = (size_t)1 << log2;
  return base + sub * (base / kSubClasses);
}

static size_t cache_limit(void) {
  return (size_t)QUENCH_BUFFER_CACHE_BYTES;
}

void *quench_buffer_alloc(size_t size, size_t alignment) {
  if (alignment < QUENCH_TENSOR_ALIGNMENT)
    alignment = QUENCH_TENSOR_ALIGNMENT;
  if (alignment & (alignment - 1))
    return NULL;
  if (size == 0)
    size = 1;
  uint32_t c = alignment == QUENCH_TENSOR_ALIGNMENT ? class_of(size) : kNoClass;
  if (c != kNoClass) {
    pthread_mutex_lock(&cache_lock);
    free_block *b = free_lists[c];
    if (b) {
      free_lists[c] = b->next;
      cached_bytes -= class_size(c);
    }
    pthread_mutex_unlock(&cache_lock);
    if (b)
      return b;
    size = class_size(c);
  }
  /* The header takes the first `alignment` bytes so that the buffer stays
   * aligned. */
  if (size > SIZE_MAX - alignment)
    return NULL;
  void *base = NULL;
  if (posix_memalign(&base, alignment, alignment + size) != 0)
    return NULL;
  char *p = (char *)base + alignment;
  header h = {base, c, kMagic};
  memcpy(p - kHeader, &h, sizeof h);
  return p;
}

void quench_buffer_free(void *p) {
  if (!p)
    return;
  header h;
  memcpy(&h, (char *)p - kHeader, sizeof h);
  if (h.magic != kMagic)
    abort(); /* not a quench_buffer_alloc pointer: heap corruption */
  if (h.size_class != kNoClass) {
    size_t bytes = class_size(h.size_class);
    pthread_mutex_lock(&cache_lock);
    int keep = cached_bytes + bytes <= cache_limit();
    if (keep) {
      free_block *b = (free_block *)p;
      b->next = free_lists[h.size_class];
      free_lists[h.size_class] = b;
      cached_bytes += bytes;
    }
    pthread_mutex_unlock(&cache_lock);
    if (keep)
      return;
  }
  free(h.base);
}

void quench_buffer_cache_trim(void) {
  free_block *lists[kNumClasses];
  pthread_mutex_lock(&cache_lock);
  memcpy(lists, free_lists, sizeof lists);
  memset(free_lists, 0, sizeof free_lists);
  cached_bytes = 0;
  pthread_mutex_unlock(&cache_lock);
  for (int c = 0; c < kNumClasses; ++c) {
    free_block *b = lists[c];
    while (b) {
      free_block *next = b->next;
      header h;
      memcpy(&h, (char *)b - kHeader, sizeof h);
      free(h.base);
      b = next;
    }
  }
}

size_t quench_buffer_cache_bytes(void) {
  pthread_mutex_lock(&cache_lock);
  size_t n = cached_bytes;
  pthread_mutex_unlock(&cache_lock);
  return n;
}
