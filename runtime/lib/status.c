/* Status codes, errors, dtypes. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *quench_status_string(quench_status status) {
  switch (status) {
  case QUENCH_OK:
    return "ok";
  case QUENCH_ERR_INVALID_ARGUMENT:
    return "invalid argument";
  case QUENCH_ERR_DTYPE_MISMATCH:
    return "dtype mismatch";
  case QUENCH_ERR_SHAPE_MISMATCH:
    return "shape mismatch";
  case QUENCH_ERR_IO:
    return "I/O error";
  case QUENCH_ERR_MALFORMED_FILE:
    return "malformed file";
  case QUENCH_ERR_OUT_OF_MEMORY:
    return "out of memory";
  case QUENCH_ERR_UNSUPPORTED:
    return "unsupported";
  case QUENCH_ERR_INTERNAL:
    return "internal error";
  }
  return "unknown status";
}

void quench_error_clear(quench_error *err) {
  if (!err)
    return;
  err->code = QUENCH_OK;
  err->message[0] = '\0';
}

quench_status quench_error_set(quench_error *err, quench_status code,
                               const char *fmt, ...) {
  if (!err)
    return code;
  /* Format into a local buffer first: the arguments may point into
   * err->message itself (e.g. when adding context to an earlier error). */
  char buf[QUENCH_ERROR_MESSAGE_SIZE];
  buf[0] = '\0';
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
      buf[0] = '\0';
  }
  err->code = code;
  memcpy(err->message, buf, sizeof buf);
  /* One line: control characters (from file names, say) become spaces. */
  for (char *p = err->message; *p; ++p)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  return code;
}

void quench_internal_strerror(int errnum, char *buf, size_t size) {
  if (size == 0)
    return;
  if (strerror_r(errnum, buf, size) != 0)
    snprintf(buf, size, "error %d", errnum);
}

void *quench_internal_aligned_alloc(size_t size, int zero) {
  if (size == 0)
    size = 1;
  /* Round up to the alignment so that vector code may touch the tail. */
  if (size > SIZE_MAX - (QUENCH_TENSOR_ALIGNMENT - 1))
    return NULL;
  size = (size + QUENCH_TENSOR_ALIGNMENT - 1) &
         ~(size_t)(QUENCH_TENSOR_ALIGNMENT - 1);
  void *p = NULL;
  if (posix_memalign(&p, QUENCH_TENSOR_ALIGNMENT, size) != 0)
    return NULL;
  if (zero)
    memset(p, 0, size);
  return p;
}

static const struct {
  const char *name;
  size_t size;
} dtype_info[QUENCH_DTYPE_COUNT] = {
    [QUENCH_DTYPE_INVALID] = {"invalid", 0}, [QUENCH_DTYPE_F32] = {"f32", 4},
    [QUENCH_DTYPE_F16] = {"f16", 2},         [QUENCH_DTYPE_BF16] = {"bf16", 2},
    [QUENCH_DTYPE_F64] = {"f64", 8},         [QUENCH_DTYPE_I8] = {"i8", 1},
    [QUENCH_DTYPE_U8] = {"u8", 1},           [QUENCH_DTYPE_I16] = {"i16", 2},
    [QUENCH_DTYPE_U16] = {"u16", 2},         [QUENCH_DTYPE_I32] = {"i32", 4},
    [QUENCH_DTYPE_U32] = {"u32", 4},         [QUENCH_DTYPE_I64] = {"i64", 8},
    [QUENCH_DTYPE_U64] = {"u64", 8},         [QUENCH_DTYPE_BOOL] = {"bool", 1},
};

size_t quench_dtype_size(quench_dtype dtype) {
  if ((int)dtype <= 0 || (int)dtype >= QUENCH_DTYPE_COUNT)
    return 0;
  return dtype_info[dtype].size;
}

const char *quench_dtype_name(quench_dtype dtype) {
  if ((int)dtype <= 0 || (int)dtype >= QUENCH_DTYPE_COUNT)
    return "invalid";
  return dtype_info[dtype].name;
}

quench_dtype quench_dtype_from_name(const char *name) {
  if (!name)
    return QUENCH_DTYPE_INVALID;
  for (int i = 1; i < QUENCH_DTYPE_COUNT; ++i)
    if (strcmp(name, dtype_info[i].name) == 0)
      return (quench_dtype)i;
  return QUENCH_DTYPE_INVALID;
}
