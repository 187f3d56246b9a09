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
 * Every buffer carries a 48-byte header just below the pointer handed out
 * (inside the first `alignment` >= 64 bytes of its block): the malloc'd
 * base, the size class (or kNoClass for uncached blocks: huge sizes or
 * alignments above QUENCH_TENSOR_ALIGNMENT), and its links in the list of
 * the run that allocated it (quench_run_buffers, internal.h), which frees
 * what a failed run leaves behind.
 *
 * The first run of a model would still get every buffer fresh from the C
 * library and fault its pages in (zero-filled by the kernel): for a small
 * model, twice the time of the later runs. quench_model_load therefore
 * warms the cache with the sizes the compiler knows a run allocates
 * (quench_internal_buffer_cache_warm, from quench_model.buffer_sizes). */
#include "internal.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
  kHeader = 48,
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
  /* The run tracking the buffer (NULL: none) and its neighbours there. */
  quench_run_buffers *run;
  struct header *prev, *next;
} header;
_Static_assert(sizeof(header) <= kHeader, "header too large");

/* The run whose buffers this thread's allocations belong to, or NULL. One
 * lock for every run's list: runs allocate rarely (the cache). */
static _Thread_local quench_run_buffers *tracker;
static pthread_mutex_t track_lock = PTHREAD_MUTEX_INITIALIZER;

static header *header_of(void *p) { return (header *)((char *)p - kHeader); }

/* Adds the buffer at p to this thread's run, if any. */
static void *track(void *p) {
  header *h = header_of(p);
  h->run = tracker;
  h->prev = NULL;
  h->next = NULL;
  if (tracker) {
    pthread_mutex_lock(&track_lock);
    h->next = (header *)tracker->head;
    if (h->next)
      h->next->prev = h;
    tracker->head = h;
    pthread_mutex_unlock(&track_lock);
  }
  return p;
}

/* Removes h from its run's list. */
static void untrack(header *h) {
  if (!h->run)
    return;
  pthread_mutex_lock(&track_lock);
  if (h->prev)
    h->prev->next = h->next;
  else
    h->run->head = h->next;
  if (h->next)
    h->next->prev = h->prev;
  h->run = NULL;
  pthread_mutex_unlock(&track_lock);
}

void quench_internal_run_buffers_begin(quench_run_buffers *r) {
  r->saved = tracker;
  r->head = NULL;
  tracker = r;
}

quench_run_buffers *quench_internal_run_buffers_current(void) { return tracker; }

quench_run_buffers *quench_internal_run_buffers_adopt(quench_run_buffers *r) {
  quench_run_buffers *previous = tracker;
  tracker = r;
  return previous;
}

void quench_internal_run_buffers_end(int free_them) {
  quench_run_buffers *r = tracker;
  if (!r)
    return;
  tracker = r->saved;
  for (;;) {
    pthread_mutex_lock(&track_lock);
    header *h = (header *)r->head;
    if (h) {
      r->head = h->next;
      if (h->next)
        h->next->prev = NULL;
      h->run = NULL;
    }
    pthread_mutex_unlock(&track_lock);
    if (!h)
      break;
    if (free_them)
      quench_buffer_free((char *)h + kHeader);
  }
}

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
      return track(b);
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
  header *h = header_of(p);
  h->base = base;
  h->size_class = c;
  h->magic = kMagic;
  return track(p);
}

void quench_buffer_free(void *p) {
  if (!p)
    return;
  header *hp = header_of(p);
  if (hp->magic != kMagic)
    abort(); /* not a quench_buffer_alloc pointer: heap corruption */
  untrack(hp);
  header h = *hp;
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
      free(header_of(b)->base);
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

/* Writes one byte of every page of [p, p + size): the kernel maps the
 * pages now instead of at the run's first store. */
static void touch_pages(char *p, size_t size, size_t page) {
  volatile char *bytes = p;
  bytes[0] = 0;
  uintptr_t next = ((uintptr_t)p | (page - 1)) + 1;
  for (uintptr_t end = (uintptr_t)p + size; next < end; next += page)
    bytes[next - (uintptr_t)p] = 0;
}

/* The size class a table entry warms, kNoClass if none (never cached). */
static uint32_t warm_class(uint64_t size) {
  return size > SIZE_MAX ? kNoClass : class_of(size ? (size_t)size : 1);
}

size_t quench_internal_buffer_cache_warm(const uint64_t *sizes, uint64_t n,
                                         size_t limit) {
  /* The cached (class) bytes the table needs: all or nothing, and never
   * more than the cache keeps. */
  if (limit > cache_limit())
    limit = cache_limit();
  size_t total = 0;
  for (uint64_t i = 0; i < n; ++i) {
    uint32_t c = warm_class(sizes[i]);
    if (c == kNoClass)
      continue; /* never cached: nothing to warm */
    size_t bytes = class_size(c);
    if (bytes > limit - total)
      return 0;
    total += bytes;
  }
  if (total == 0)
    return 0;
  long pagesize = sysconf(_SC_PAGESIZE);
  size_t page = pagesize > 0 ? (size_t)pagesize : 4096;
  /* Hold all of them at once, as the run does (its buffers live until its
   * end), so that the cache gets one buffer per allocation site; buffers
   * already cached are reused. Held buffers are chained through their
   * first bytes. Not part of any run. */
  quench_run_buffers *run = quench_internal_run_buffers_adopt(NULL);
  free_block *held = NULL;
  for (uint64_t i = 0; i < n; ++i) {
    if (warm_class(sizes[i]) == kNoClass)
      continue;
    size_t size = sizes[i] ? (size_t)sizes[i] : 1;
    free_block *b = quench_buffer_alloc(size, 0);
    if (!b)
      break; /* out of memory: warm what we have */
    touch_pages((char *)b, size, page);
    b->next = held;
    held = b;
  }
  while (held) {
    free_block *next = held->next;
    quench_buffer_free(held);
    held = next;
  }
  quench_internal_run_buffers_adopt(run);
  return total;
}
