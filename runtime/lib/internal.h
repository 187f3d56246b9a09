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

#include "quench/runtime.h"

#include <stddef.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the Quench runtime supports little-endian hosts only"
#endif
#endif

/* Writes strerror_r(errnum) into buf (thread-safe). */
void quench_internal_strerror(int errnum, char *buf, size_t size);

/* Allocates size bytes (at least 1) aligned to QUENCH_TENSOR_ALIGNMENT,
 * zeroed when zero != 0. Returns NULL on failure. Free with free(). */
void *quench_internal_aligned_alloc(size_t size, int zero);

#endif
