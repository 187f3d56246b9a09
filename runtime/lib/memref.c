/* Support functions that MLIR's LLVM lowering calls by name.
 *
 * `memref.copy` between buffers whose layouts are not both the identity
 * lowers to a call to `memrefCopy(elem_size, src, dst)` with unranked
 * descriptors ({rank, pointer to the ranked descriptor}); upstream provides
 * it in libmlir_c_runner_utils, which compiled models must not depend on,
 * so the runtime implements the same contract here.
 */
#include "internal.h"

#include <string.h>

typedef struct unranked_memref {
  int64_t rank;
  void *descriptor; /* {allocated, aligned, offset, sizes[rank], strides[rank]} */
} unranked_memref;

void memrefCopy(int64_t elem_size, const unranked_memref *src,
                const unranked_memref *dst);

void memrefCopy(int64_t elem_size, const unranked_memref *src,
                const unranked_memref *dst) {
  int64_t rank = src->rank;
  const int64_t *s = (const int64_t *)src->descriptor;
  const int64_t *d = (const int64_t *)dst->descriptor;
  const char *sbase = ((char *const *)src->descriptor)[1] + s[2] * elem_size;
  char *dbase = ((char *const *)dst->descriptor)[1] + d[2] * elem_size;
  if (rank == 0) {
    memcpy(dbase, sbase, (size_t)elem_size);
    return;
  }
  const int64_t *sizes = s + 3;
  const int64_t *sstrides = s + 3 + rank;
  const int64_t *dstrides = d + 3 + rank;
  for (int64_t k = 0; k < rank; ++k)
    if (sizes[k] == 0)
      return;
  /* Innermost run: contiguous in both when both unit-stride. */
  int64_t inner = sizes[rank - 1];
  int contiguous_inner = sstrides[rank - 1] == 1 && dstrides[rank - 1] == 1;
  int64_t index[QUENCH_MAX_RANK > 16 ? QUENCH_MAX_RANK : 16] = {0};
  if (rank > 16)
    return; /* ranks above the ABI's maximum never reach here */
  for (;;) {
    int64_t so = 0, dof = 0;
    for (int64_t k = 0; k < rank - 1; ++k) {
      so += index[k] * sstrides[k];
      dof += index[k] * dstrides[k];
    }
    if (contiguous_inner) {
      memcpy(dbase + dof * elem_size, sbase + so * elem_size,
             (size_t)(inner * elem_size));
    } else {
      for (int64_t i = 0; i < inner; ++i)
        memcpy(dbase + (dof + i * dstrides[rank - 1]) * elem_size,
               sbase + (so + i * sstrides[rank - 1]) * elem_size,
               (size_t)elem_size);
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
