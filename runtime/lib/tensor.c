/* Tensor descriptors: sizes, allocation, formatting. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

quench_status quench_tensor_size(const quench_tensor *t, int64_t *num_elements,
                                 size_t *num_bytes, quench_error *err) {
  if (!t)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "tensor descriptor is NULL");
  size_t itemsize = quench_dtype_size(t->dtype);
  if (itemsize == 0)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "invalid dtype %d", (int)t->dtype);
  if (t->rank < 0 || t->rank > QUENCH_MAX_RANK)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "rank %d is outside 0..%d", (int)t->rank,
                            QUENCH_MAX_RANK);
  int64_t count = 1;
  int overflow = 0;
  for (int32_t i = 0; i < t->rank; ++i) {
    int64_t d = t->shape[i];
    if (d < 0)
      return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                              "dimension %d is negative (%lld)", (int)i,
                              (long long)d);
    if (d != 0 && count > INT64_MAX / d)
      overflow = 1; /* keep going: a later 0 dim or negative dim matters */
    else
      count *= d;
  }
  if (overflow && count != 0)
    return quench_error_set(err, QUENCH_ERR_OUT_OF_MEMORY,
                            "element count of %s[...] overflows int64",
                            quench_dtype_name(t->dtype));
  if (overflow) /* a zero dim after the overflow point: empty tensor */
    count = 0;
  if ((uint64_t)count > (uint64_t)(INT64_MAX / (int64_t)itemsize) ||
      (uint64_t)count > (uint64_t)(SIZE_MAX / itemsize))
    return quench_error_set(err, QUENCH_ERR_OUT_OF_MEMORY,
                            "byte size of %lld %s elements overflows",
                            (long long)count, quench_dtype_name(t->dtype));
  if (num_elements)
    *num_elements = count;
  if (num_bytes)
    *num_bytes = (size_t)count * itemsize;
  quench_error_clear(err);
  return QUENCH_OK;
}

int64_t quench_tensor_num_elements(const quench_tensor *t) {
  int64_t n = -1;
  if (quench_tensor_size(t, &n, NULL, NULL) != QUENCH_OK)
    return -1;
  return n;
}

size_t quench_tensor_byte_size(const quench_tensor *t) {
  size_t n = (size_t)-1;
  if (quench_tensor_size(t, NULL, &n, NULL) != QUENCH_OK)
    return (size_t)-1;
  return n;
}

quench_status quench_tensor_alloc(quench_tensor *t, quench_dtype dtype,
                                  int32_t rank, const int64_t *shape,
                                  quench_error *err) {
  if (!t)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "tensor descriptor is NULL");
  memset(t, 0, sizeof *t);
  if (rank > 0 && !shape)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "shape is NULL for rank %d", (int)rank);
  quench_tensor tmp;
  memset(&tmp, 0, sizeof tmp);
  tmp.dtype = dtype;
  tmp.rank = rank;
  if (rank > 0 && rank <= QUENCH_MAX_RANK)
    memcpy(tmp.shape, shape, (size_t)rank * sizeof(int64_t));
  size_t bytes = 0;
  quench_status st = quench_tensor_size(&tmp, NULL, &bytes, err);
  if (st != QUENCH_OK)
    return st;
  tmp.data = quench_internal_aligned_alloc(bytes, 1);
  if (!tmp.data)
    return quench_error_set(err, QUENCH_ERR_OUT_OF_MEMORY,
                            "cannot allocate %zu bytes", bytes);
  *t = tmp;
  quench_error_clear(err);
  return QUENCH_OK;
}

void quench_tensor_free(quench_tensor *t) {
  if (!t)
    return;
  free(t->data);
  memset(t, 0, sizeof *t);
}

int quench_format_type(quench_dtype dtype, int32_t rank, const int64_t *shape,
                       char *buf, size_t size) {
  char tmp[QUENCH_MAX_RANK * 24 + 32];
  size_t len = 0;
  int n = snprintf(tmp, sizeof tmp, "%s[", quench_dtype_name(dtype));
  len = (size_t)(n > 0 ? n : 0);
  if (rank < 0 || rank > QUENCH_MAX_RANK || (rank > 0 && !shape)) {
    n = snprintf(tmp + len, sizeof tmp - len, "rank %d", (int)rank);
    len += (size_t)(n > 0 ? n : 0);
  } else {
    for (int32_t i = 0; i < rank; ++i) {
      if (shape[i] < 0)
        n = snprintf(tmp + len, sizeof tmp - len, "%s?", i ? ", " : "");
      else
        n = snprintf(tmp + len, sizeof tmp - len, "%s%lld", i ? ", " : "",
                     (long long)shape[i]);
      len += (size_t)(n > 0 ? n : 0);
    }
  }
  n = snprintf(tmp + len, sizeof tmp - len, "]");
  len += (size_t)(n > 0 ? n : 0);
  if (buf && size > 0)
    snprintf(buf, size, "%s", tmp);
  return (int)len;
}
