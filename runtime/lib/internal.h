/* Private helpers shared by the runtime sources. Include first. */
#ifndef QUENCH_RUNTIME_INTERNAL_H
#define QUENCH_RUNTIME_INTERNAL_H

/* Strict POSIX.1-2008 on top of C11: the XSI strerror_r, posix_memalign,
 * pthreads, fsync. Undo _GNU_SOURCE should a parent build add it. */
#ifdef _GNU_SOURCE
#undef _GNU_SOURCE
#endif
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "quench/runtime_abi.h"

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the Quench runtime supports little-endian hosts only"
#endif
#endif

/* Writes strerror_r(errnum) into buf (thread-safe). */
void quench_internal_strerror(int errnum, char *buf, size_t size);

/* Reads exactly size bytes of fd at offset (pread, in chunks, EINTR
 * retried); returns 0 or an errno value (EIO for a short read). */
int quench_internal_read_exact(int fd, void *buf, size_t size, off_t offset);

/* Allocates size bytes (at least 1) aligned to QUENCH_TENSOR_ALIGNMENT,
 * zeroed when zero != 0. Returns NULL on failure. Free with free(). */
void *quench_internal_aligned_alloc(size_t size, int zero);

/* Copies the strided view {src, sizes, src_strides} into the strided view
 * {dst, sizes, dst_strides}; strides are in elements of item bytes and the
 * base pointers point at element 0. rank is 0..QUENCH_MAX_RANK; rows that
 * are unit-stride in both views are copied with one memcpy. Used for model
 * outputs (quench_model_run) and MLIR's memrefCopy. */
void quench_internal_strided_copy(char *dst, const int64_t *dst_strides,
                                  const char *src, const int64_t *src_strides,
                                  const int64_t *sizes, int64_t rank,
                                  size_t item);

/* The buffers that generated code allocated during one quench_model_run
 * and has not freed yet: on the run's thread, and on the pool's threads
 * while they run the run's parallel loops (they adopt the run's tracker,
 * threadpool.c). A run that unwinds (a failed run-time check, a failed
 * allocation, also on a worker) frees them all; a run that returns stops
 * tracking what is left (its outputs). */
typedef struct quench_run_buffers {
  struct quench_run_buffers *saved; /* the thread's previous tracker */
  void *head;                       /* list of buffer headers (alloc.c) */
} quench_run_buffers;

/* Starts tracking this thread's allocations in r (nested runs stack). */
void quench_internal_run_buffers_begin(quench_run_buffers *r);
/* Stops tracking with the thread's innermost tracker, first freeing every
 * buffer still in it when free_them != 0. (It takes no argument: after a
 * longjmp, quench_model_run must not read its own changed locals.) */
void quench_internal_run_buffers_end(int free_them);

/* The calling thread's tracker (NULL: none). */
quench_run_buffers *quench_internal_run_buffers_current(void);
/* Makes r the calling thread's tracker without stacking (NULL: none) and
 * returns the previous one: a worker adopts the tracker of the run whose
 * parallel loop it executes, and restores its own afterwards. */
quench_run_buffers *quench_internal_run_buffers_adopt(quench_run_buffers *r);

/* Puts buffers for the given allocation sizes (what generated code asks
 * quench_buffer_alloc for, at QUENCH_TENSOR_ALIGNMENT) into the buffer
 * cache with their pages touched, all allocated at once as a run holds
 * them, reusing buffers already cached; sizes the cache does not keep are
 * skipped. Does nothing when their size classes take more than `limit`
 * bytes or than QUENCH_BUFFER_CACHE_BYTES. Returns those bytes (0: nothing
 * warmed). alloc.c. */
size_t quench_internal_buffer_cache_warm(const uint64_t *sizes, uint64_t n,
                                         size_t limit);

/* Called by the allocation functions of generated code when the C library
 * has no memory: the run stops with QUENCH_ERR_OUT_OF_MEMORY (model.c,
 * quench_internal_fail). Does not return. */
_Noreturn void quench_internal_alloc_failed(size_t size);

/* Ends what the calling thread runs with an error: unwinds to the point
 * set by quench_internal_set_unwind (quench_model_run on the run's thread;
 * a parallel loop's chunk runner on the pool's threads, which hands the
 * failure on to the loop's caller, threadpool.c), or, with none set
 * (generated code called directly), prints the message and aborts. The
 * message must outlive the unwind (static or thread-local storage). */
_Noreturn void quench_internal_fail(quench_status status, const char *message);

/* Sets where the calling thread's failures unwind to (NULL: abort) and
 * returns the previous point. */
jmp_buf *quench_internal_set_unwind(jmp_buf *unwind);

/* The status and message of the calling thread's last failure (valid right
 * after the unwind it caused). */
const char *quench_internal_last_failure(quench_status *status);

#endif
