/* Support functions that MLIR's LLVM lowering calls by name.
 *
 * `memref.copy` between buffers whose layouts are not both the identity
 * lowers to a call to `memrefCopy(elem_size, src, dst)` with unranked
 * descriptors ({rank, pointer to the ranked descriptor}); upstream provides
 * it in libmlir_c_runner_utils, which compiled models must not depend on,
 * so the runtime implements the same contract here. Likewise the generic
 * allocation functions that buffers are allocated and freed with
 * (finalize-memref-to-llvm's use-generic-functions): every buffer of a
 * compiled model comes from the runtime's caching allocator (alloc.c).
 * Declared in quench/runtime_abi.h.
 */
#include "internal.h"

#include <string.h>

/* Generated code uses the buffer without a null check: a failed
 * allocation ends the run with QUENCH_ERR_OUT_OF_MEMORY instead. */
void *_mlir_memref_to_llvm_alloc(size_t size) {
  void *p = quench_buffer_alloc(size, 0);
  if (!p)
    quench_internal_alloc_failed(size);
  return p;
}

void *_mlir_memref_to_llvm_aligned_alloc(size_t alignment, size_t size) {
  void *p = quench_buffer_alloc(size, alignment);
  if (!p)
    quench_internal_alloc_failed(size);
  return p;
}

void _mlir_memref_to_llvm_free(void *p) { quench_buffer_free(p); }

void quench_internal_strided_copy(char *dst, const int64_t *dst_strides,
                                  const char *src, const int64_t *src_strides,
                                  const int64_t *sizes, int64_t rank,
                                  size_t item) {
  if (rank == 0) {
    memcpy(dst, src, item);
    return;
  }
  for (int64_t k = 0; k < rank; ++k)
    if (sizes[k] == 0)
      return;
  int64_t inner = sizes[rank - 1];
  int unit = src_strides[rank - 1] == 1 && dst_strides[rank - 1] == 1;
  int64_t index[QUENCH_MAX_RANK] = {0};
  for (;;) {
    int64_t so = 0, dof = 0;
    for (int64_t k = 0; k < rank - 1; ++k) {
      so += index[k] * src_strides[k];
      dof += index[k] * dst_strides[k];
    }
    if (unit) {
      memcpy(dst + dof * (int64_t)item, src + so * (int64_t)item,
             (size_t)inner * item);
    } else {
      for (int64_t i = 0; i < inner; ++i)
        memcpy(dst + (dof + i * dst_strides[rank - 1]) * (int64_t)item,
               src + (so + i * src_strides[rank - 1]) * (int64_t)item, item);
    }
    int64_t k = rank - 2;
    for (; k >= 0; --k) {
      if (++index[k] < sizes[k])
        break;
      index[k] = 0;
    }
    if (k < 0)
      return;
  }
}

void memrefCopy(int64_t elem_size, const quench_unranked_memref *src,
                const quench_unranked_memref *dst) {
  int64_t rank = src->rank;
  if (rank < 0 || rank > QUENCH_MAX_RANK)
    return; /* the generated ABI never goes beyond QUENCH_MAX_RANK */
  const int64_t *s = (const int64_t *)src->descriptor;
  const int64_t *d = (const int64_t *)dst->descriptor;
  const char *sbase = ((char *const *)src->descriptor)[1] + s[2] * elem_size;
  char *dbase = ((char *const *)dst->descriptor)[1] + d[2] * elem_size;
  quench_internal_strided_copy(dbase, d + 3 + rank, sbase, s + 3 + rank, s + 3,
                               rank, (size_t)elem_size);
}
