/* .npy reading and writing (NumPy format versions 1.0, 2.0, 3.0).
 * Format reference: numpy/lib/format.py's documentation (NEP 1). */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

/* Headers of the files this runtime reads hold at most 8 dims; anything
 * beyond this is not a file we want to parse. */
#define NPY_MAX_HEADER_LEN (1u << 20)

/* ---------------------------------------------------------------------- */
/* dtype <-> descr                                                        */
/* ---------------------------------------------------------------------- */

static const struct {
  const char *code; /* descr without the byte-order character */
  quench_dtype dtype;
  const char *write_descr;
} npy_types[] = {
    {"f4", QUENCH_DTYPE_F32, "<f4"},  {"f2", QUENCH_DTYPE_F16, "<f2"},
    {"V2", QUENCH_DTYPE_BF16, "<V2"}, {"f8", QUENCH_DTYPE_F64, "<f8"},
    {"i1", QUENCH_DTYPE_I8, "|i1"},   {"u1", QUENCH_DTYPE_U8, "|u1"},
    {"i2", QUENCH_DTYPE_I16, "<i2"},  {"u2", QUENCH_DTYPE_U16, "<u2"},
    {"i4", QUENCH_DTYPE_I32, "<i4"},  {"u4", QUENCH_DTYPE_U32, "<u4"},
    {"i8", QUENCH_DTYPE_I64, "<i8"},  {"u8", QUENCH_DTYPE_U64, "<u8"},
    {"b1", QUENCH_DTYPE_BOOL, "|b1"},
};
#define NPY_NUM_TYPES (sizeof npy_types / sizeof npy_types[0])

static const char *descr_for(quench_dtype dtype) {
  for (size_t i = 0; i < NPY_NUM_TYPES; ++i)
    if (npy_types[i].dtype == dtype)
      return npy_types[i].write_descr;
  return NULL;
}

/* ---------------------------------------------------------------------- */
/* Header dict parser                                                     */
/* ---------------------------------------------------------------------- */

typedef struct parser {
  const char *begin, *p, *end;
  const char *path;
  quench_error *err;
  quench_status status;
} parser;

static int fail(parser *ps, quench_status code, const char *what) {
  if (ps->status == QUENCH_OK)
    ps->status = quench_error_set(ps->err, code,
                                  "cannot read '%s': bad .npy header: %s "
                                  "(at header offset %ld)",
                                  ps->path, what, (long)(ps->p - ps->begin));
  return 0;
}

static void skip_ws(parser *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' ||
                             *ps->p == '\n' || *ps->p == '\r' ||
                             *ps->p == '\f' || *ps->p == '\v'))
    ++ps->p;
}

static int consume(parser *ps, char c) {
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == c) {
    ++ps->p;
    return 1;
  }
  return 0;
}

/* A Python string literal without escapes: '...' or "...". */
static int parse_string(parser *ps, char *buf, size_t size) {
  skip_ws(ps);
  if (ps->p >= ps->end || (*ps->p != '\'' && *ps->p != '"'))
    return fail(ps, QUENCH_ERR_MALFORMED_FILE, "expected a quoted string");
  char quote = *ps->p++;
  size_t len = 0;
  while (ps->p < ps->end && *ps->p != quote) {
    if (*ps->p == '\\' || *ps->p == '\n')
      return fail(ps, QUENCH_ERR_MALFORMED_FILE,
                  "unsupported character in string");
    if (len + 1 >= size)
      return fail(ps, QUENCH_ERR_MALFORMED_FILE, "string too long");
    buf[len++] = *ps->p++;
  }
  if (ps->p >= ps->end)
    return fail(ps, QUENCH_ERR_MALFORMED_FILE, "unterminated string");
  ++ps->p;
  buf[len] = '\0';
  return 1;
}

static int parse_word(parser *ps, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, word, n) == 0) {
    const char *after = ps->p + n;
    if (after == ps->end ||
        !((*after >= 'a' && *after <= 'z') || (*after >= 'A' && *after <= 'Z') ||
          (*after >= '0' && *after <= '9') || *after == '_')) {
      ps->p = after;
      return 1;
    }
  }
  return 0;
}

static int parse_bool(parser *ps, int *value) {
  skip_ws(ps);
  if (parse_word(ps, "True")) {
    *value = 1;
    return 1;
  }
  if (parse_word(ps, "False")) {
    *value = 0;
    return 1;
  }
  return fail(ps, QUENCH_ERR_MALFORMED_FILE,
              "'fortran_order' must be True or False");
}

static int parse_dim(parser *ps, int64_t *value) {
  skip_ws(ps);
  int negative = 0;
  if (ps->p < ps->end && (*ps->p == '-' || *ps->p == '+')) {
    negative = *ps->p == '-';
    ++ps->p;
  }
  if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
    return fail(ps, QUENCH_ERR_MALFORMED_FILE,
                "expected an integer in 'shape'");
  int64_t v = 0;
  while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
    int digit = *ps->p - '0';
    if (v > (INT64_MAX - digit) / 10)
      return fail(ps, QUENCH_ERR_MALFORMED_FILE,
                  "dimension in 'shape' does not fit in int64");
    v = v * 10 + digit;
    ++ps->p;
  }
  if (negative && v != 0) {
    char msg[96];
    snprintf(msg, sizeof msg, "negative dimension -%lld in 'shape'",
             (long long)v);
    return fail(ps, QUENCH_ERR_MALFORMED_FILE, msg);
  }
  *value = v;
  return 1;
}

static int parse_shape(parser *ps, int32_t *rank, int64_t *shape) {
  if (!consume(ps, '('))
    return fail(ps, QUENCH_ERR_MALFORMED_FILE, "'shape' must be a tuple");
  int32_t r = 0;
  if (consume(ps, ')')) {
    *rank = 0;
    return 1;
  }
  for (;;) {
    int64_t d;
    if (!parse_dim(ps, &d))
      return 0;
    if (r >= QUENCH_MAX_RANK) {
      char msg[96];
      snprintf(msg, sizeof msg, "rank exceeds the supported maximum of %d",
               QUENCH_MAX_RANK);
      return fail(ps, QUENCH_ERR_UNSUPPORTED, msg);
    }
    shape[r++] = d;
    if (consume(ps, ',')) {
      if (consume(ps, ')'))
        break;
      continue;
    }
    if (consume(ps, ')')) {
      if (r == 1)
        return fail(ps, QUENCH_ERR_MALFORMED_FILE,
                    "'shape' (N) is not a tuple (a 1-d shape is written (N,))");
      break;
    }
    return fail(ps, QUENCH_ERR_MALFORMED_FILE, "expected ',' or ')' in 'shape'");
  }
  *rank = r;
  return 1;
}

typedef struct npy_header {
  char descr[32];
  int fortran_order;
  int32_t rank;
  int64_t shape[QUENCH_MAX_RANK];
} npy_header;

static int parse_header(parser *ps, npy_header *h) {
  int have_descr = 0, have_fortran = 0, have_shape = 0;
  if (!consume(ps, '{'))
    return fail(ps, QUENCH_ERR_MALFORMED_FILE, "expected '{'");
  if (!consume(ps, '}')) {
    for (;;) {
      char key[32];
      if (!parse_string(ps, key, sizeof key))
        return 0;
      int *seen;
      if (strcmp(key, "descr") == 0)
        seen = &have_descr;
      else if (strcmp(key, "fortran_order") == 0)
        seen = &have_fortran;
      else if (strcmp(key, "shape") == 0)
        seen = &have_shape;
      else {
        char msg[96];
        snprintf(msg, sizeof msg, "unknown key '%s'", key);
        return fail(ps, QUENCH_ERR_MALFORMED_FILE, msg);
      }
      if (*seen) {
        char msg[96];
        snprintf(msg, sizeof msg, "duplicate key '%s'", key);
        return fail(ps, QUENCH_ERR_MALFORMED_FILE, msg);
      }
      *seen = 1;
      if (!consume(ps, ':'))
        return fail(ps, QUENCH_ERR_MALFORMED_FILE, "expected ':' after key");
      if (seen == &have_descr) {
        if (!parse_string(ps, h->descr, sizeof h->descr))
          return 0;
      } else if (seen == &have_fortran) {
        if (!parse_bool(ps, &h->fortran_order))
          return 0;
      } else if (!parse_shape(ps, &h->rank, h->shape)) {
        return 0;
      }
      if (consume(ps, ',')) {
        if (consume(ps, '}'))
          break;
        continue;
      }
      if (consume(ps, '}'))
        break;
      return fail(ps, QUENCH_ERR_MALFORMED_FILE, "expected ',' or '}'");
    }
  }
  skip_ws(ps);
  if (ps->p != ps->end)
    return fail(ps, QUENCH_ERR_MALFORMED_FILE, "unexpected text after '}'");
  if (!have_descr || !have_fortran || !have_shape)
    return fail(ps, QUENCH_ERR_MALFORMED_FILE,
                !have_descr     ? "missing key 'descr'"
                : !have_fortran ? "missing key 'fortran_order'"
                                : "missing key 'shape'");
  return 1;
}

static quench_status descr_to_dtype(const char *path, const char *descr,
                                    quench_dtype *dtype, quench_error *err) {
  const char *code = descr;
  char order = '=';
  if (*code == '<' || *code == '>' || *code == '|' || *code == '=')
    order = *code++;
  for (size_t i = 0; i < NPY_NUM_TYPES; ++i) {
    if (strcmp(code, npy_types[i].code) != 0)
      continue;
    if (order == '>' && quench_dtype_size(npy_types[i].dtype) > 1)
      return quench_error_set(
          err, QUENCH_ERR_UNSUPPORTED,
          "cannot read '%s': big-endian dtype '%s' is not supported; "
          "convert with arr.astype('<%s')",
          path, descr, code);
    *dtype = npy_types[i].dtype;
    return QUENCH_OK;
  }
  return quench_error_set(err, QUENCH_ERR_UNSUPPORTED,
                          "cannot read '%s': unsupported dtype '%s' (supported: "
                          "f4 f2 f8 i1 u1 i2 u2 i4 u4 i8 u8 b1, V2 as bfloat16)",
                          path, descr);
}

/* ---------------------------------------------------------------------- */
/* Reading                                                                */
/* ---------------------------------------------------------------------- */

int quench_internal_read_exact(int fd, void *buf, size_t size, off_t offset) {
  char *p = (char *)buf;
  while (size > 0) {
    size_t chunk = size > (1u << 30) ? (1u << 30) : size;
    ssize_t n = pread(fd, p, chunk, offset);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    if (n == 0)
      return EIO;
    p += n;
    size -= (size_t)n;
    offset += n;
  }
  return 0;
}

static quench_status io_error(quench_error *err, const char *what,
                              const char *path, int errnum) {
  char msg[128];
  quench_internal_strerror(errnum, msg, sizeof msg);
  return quench_error_set(err, QUENCH_ERR_IO, "%s '%s': %s", what, path, msg);
}

static quench_status read_file(const char *path, int fd, quench_tensor *out,
                               quench_error *err) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return io_error(err, "cannot read", path, errno);
  if (S_ISDIR(st.st_mode))
    return quench_error_set(err, QUENCH_ERR_IO,
                            "cannot read '%s': is a directory", path);
  if (!S_ISREG(st.st_mode))
    return quench_error_set(err, QUENCH_ERR_IO,
                            "cannot read '%s': not a regular file", path);
  uint64_t file_size = (uint64_t)st.st_size;
  if (file_size == 0)
    return quench_error_set(err, QUENCH_ERR_MALFORMED_FILE,
                            "cannot read '%s': file is empty (expected a .npy "
                            "file)",
                            path);

  unsigned char pre[12];
  size_t have = file_size < sizeof pre ? (size_t)file_size : sizeof pre;
  int rc = quench_internal_read_exact(fd, pre, have, 0);
  if (rc)
    return io_error(err, "cannot read", path, rc);
  if (have < sizeof npy_magic || memcmp(pre, npy_magic, sizeof npy_magic) != 0)
    return quench_error_set(err, QUENCH_ERR_MALFORMED_FILE,
                            "cannot read '%s': not a .npy file (bad magic; "
                            "expected \\x93NUMPY)",
                            path);
  if (have < 8)
    return quench_error_set(err, QUENCH_ERR_MALFORMED_FILE,
                            "cannot read '%s': truncated .npy header (file is "
                            "%llu bytes)",
                            path, (unsigned long long)file_size);
  unsigned major = pre[6], minor = pre[7];
  if (!((major == 1 || major == 2 || major == 3) && minor == 0))
    return quench_error_set(err, QUENCH_ERR_MALFORMED_FILE,
                            "cannot read '%s': unsupported .npy format version "
                            "%u.%u (expected 1.0, 2.0 or 3.0)",
                            path, major, minor);
  size_t prefix = major == 1 ? 10 : 12;
  if (have < prefix)
    return quench_error_set(err, QUENCH_ERR_MALFORMED_FILE,
                            "cannot read '%s': truncated .npy header (file is "
                            "%llu bytes)",
                            path, (unsigned long long)file_size);
  uint64_t header_len =
      major == 1 ? (uint64_t)pre[8] | (uint64_t)pre[9] << 8
                 : (uint64_t)pre[8] | (uint64_t)pre[9] << 8 |
                       (uint64_t)pre[10] << 16 | (uint64_t)pre[11] << 24;
  if (header_len > file_size - prefix)
    return quench_error_set(err, QUENCH_ERR_MALFORMED_FILE,
                            "cannot read '%s': truncated .npy header (header "
                            "length %llu, but only %llu bytes follow)",
                            path, (unsigned long long)header_len,
                            (unsigned long long)(file_size - prefix));
  if (header_len > NPY_MAX_HEADER_LEN)
    return quench_error_set(err, QUENCH_ERR_MALFORMED_FILE,
                            "cannot read '%s': .npy header length %llu exceeds "
                            "the limit of %u bytes",
                            path, (unsigned long long)header_len,
                            NPY_MAX_HEADER_LEN);

  char *text = malloc((size_t)header_len + 1);
  if (!text)
    return quench_error_set(err, QUENCH_ERR_OUT_OF_MEMORY,
                            "cannot read '%s': out of memory", path);
  rc = quench_internal_read_exact(fd, text, (size_t)header_len,
                                  (off_t)prefix);
  if (rc) {
    free(text);
    return io_error(err, "cannot read", path, rc);
  }
  text[header_len] = '\0';
  npy_header h;
  memset(&h, 0, sizeof h);
  parser ps = {text, text, text + header_len, path, err, QUENCH_OK};
  if (strlen(text) != header_len)
    fail(&ps, QUENCH_ERR_MALFORMED_FILE, "NUL byte in header");
  else
    parse_header(&ps, &h);
  free(text);
  if (ps.status != QUENCH_OK)
    return ps.status;

  quench_tensor t;
  memset(&t, 0, sizeof t);
  quench_status st2 = descr_to_dtype(path, h.descr, &t.dtype, err);
  if (st2 != QUENCH_OK)
    return st2;
  if (h.fortran_order)
    return quench_error_set(err, QUENCH_ERR_UNSUPPORTED,
                            "cannot read '%s': fortran_order True is not "
                            "supported (NumPy writes transposed arrays that "
                            "way); save np.ascontiguousarray(arr) instead",
                            path);
  t.rank = h.rank;
  memcpy(t.shape, h.shape, sizeof t.shape);
  char type[QUENCH_MAX_RANK * 24 + 32];
  quench_format_type(t.dtype, t.rank, t.shape, type, sizeof type);
  int64_t count = 0;
  size_t bytes = 0;
  if (quench_tensor_size(&t, &count, &bytes, NULL) != QUENCH_OK)
    return quench_error_set(err, QUENCH_ERR_MALFORMED_FILE,
                            "cannot read '%s': size of %s overflows", path,
                            type);
  uint64_t data_size = file_size - prefix - header_len;
  if (data_size != (uint64_t)bytes)
    return quench_error_set(
        err, QUENCH_ERR_MALFORMED_FILE,
        "cannot read '%s': %s needs %llu data bytes, file has %llu (%s)", path,
        type, (unsigned long long)bytes, (unsigned long long)data_size,
        data_size < (uint64_t)bytes ? "truncated" : "trailing bytes");

  t.data = quench_internal_aligned_alloc(bytes, 0);
  if (!t.data)
    return quench_error_set(err, QUENCH_ERR_OUT_OF_MEMORY,
                            "cannot read '%s': cannot allocate %zu bytes for %s",
                            path, bytes, type);
  rc = quench_internal_read_exact(fd, t.data, bytes,
                                  (off_t)(prefix + header_len));
  if (rc) {
    free(t.data);
    return io_error(err, "cannot read", path, rc);
  }
  *out = t;
  return QUENCH_OK;
}

quench_status quench_npy_read(const char *path, quench_tensor *out,
                              quench_error *err) {
  if (out)
    memset(out, 0, sizeof *out);
  if (!path || !out)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "quench_npy_read: %s is NULL",
                            !path ? "path" : "out");
  int fd;
  do
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* no FIFO hang */
  while (fd < 0 && errno == EINTR);
  if (fd < 0)
    return io_error(err, "cannot open", path, errno);
  quench_status st = read_file(path, fd, out, err);
  close(fd);
  if (st == QUENCH_OK)
    quench_error_clear(err);
  return st;
}

quench_status quench_npy_read_expect(const char *path, const char *name,
                                     quench_dtype expected_dtype,
                                     int32_t expected_rank,
                                     const int64_t *expected_shape,
                                     quench_tensor *out, quench_error *err) {
  if (!name)
    name = "tensor";
  if (expected_rank < -1 || expected_rank > QUENCH_MAX_RANK ||
      (expected_rank > 0 && !expected_shape)) {
    if (out)
      memset(out, 0, sizeof *out);
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "quench_npy_read_expect: bad expected rank %d",
                            (int)expected_rank);
  }
  quench_status st = quench_npy_read(path, out, err);
  if (st != QUENCH_OK) {
    if (err) { /* prefix the display name */
      char tmp[QUENCH_ERROR_MESSAGE_SIZE];
      memcpy(tmp, err->message, sizeof tmp);
      quench_error_set(err, st, "input '%s': %s", name, tmp);
    }
    return st;
  }
  int dtype_ok = expected_dtype == QUENCH_DTYPE_INVALID ||
                 expected_dtype == out->dtype;
  int shape_ok = 1;
  if (expected_rank >= 0) {
    if (expected_rank != out->rank)
      shape_ok = 0;
    else
      for (int32_t i = 0; i < expected_rank; ++i)
        if (expected_shape[i] >= 0 && expected_shape[i] != out->shape[i])
          shape_ok = 0;
  }
  if (dtype_ok && shape_ok)
    return QUENCH_OK;
  char want[QUENCH_MAX_RANK * 24 + 32], got[QUENCH_MAX_RANK * 24 + 32];
  if (expected_rank >= 0)
    quench_format_type(expected_dtype, expected_rank, expected_shape, want,
                       sizeof want);
  else
    snprintf(want, sizeof want, "%s[...]", quench_dtype_name(expected_dtype));
  if (expected_dtype == QUENCH_DTYPE_INVALID) { /* any dtype */
    char tmp[sizeof want];
    snprintf(tmp, sizeof tmp, "any%s", strchr(want, '['));
    memcpy(want, tmp, sizeof want);
  }
  quench_format_type(out->dtype, out->rank, out->shape, got, sizeof got);
  quench_tensor_free(out);
  return quench_error_set(err,
                          dtype_ok ? QUENCH_ERR_SHAPE_MISMATCH
                                   : QUENCH_ERR_DTYPE_MISMATCH,
                          "input '%s': expected %s, got %s (file '%s')", name,
                          want, got, path);
}

/* ---------------------------------------------------------------------- */
/* Writing                                                                */
/* ---------------------------------------------------------------------- */

static int write_all(int fd, const void *buf, size_t size) {
  const char *p = (const char *)buf;
  while (size > 0) {
    size_t chunk = size > (1u << 30) ? (1u << 30) : size;
    ssize_t n = write(fd, p, chunk);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    if (n == 0)
      return EIO;
    p += n;
    size -= (size_t)n;
  }
  return 0;
}

quench_status quench_npy_write(const char *path, const quench_tensor *t,
                               quench_error *err) {
  if (!path || !t)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "quench_npy_write: %s is NULL",
                            !path ? "path" : "tensor");
  size_t bytes = 0;
  quench_error size_err;
  quench_status st = quench_tensor_size(t, NULL, &bytes, &size_err);
  if (st != QUENCH_OK)
    return quench_error_set(err, st, "cannot write '%s': %s", path,
                            size_err.message);
  if (!t->data && bytes > 0)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "cannot write '%s': tensor data is NULL", path);
  const char *descr = descr_for(t->dtype);
  if (!descr)
    return quench_error_set(err, QUENCH_ERR_INTERNAL,
                            "cannot write '%s': no .npy descr for %s", path,
                            quench_dtype_name(t->dtype));

  /* Header: dict + spaces + '\n', so that the data starts at a multiple of
   * 64 bytes (as NumPy does). */
  char dict[512];
  int len = snprintf(dict, sizeof dict,
                     "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     descr);
  for (int32_t i = 0; i < t->rank; ++i)
    len += snprintf(dict + len, sizeof dict - (size_t)len, "%s%lld",
                    i ? ", " : "", (long long)t->shape[i]);
  len += snprintf(dict + len, sizeof dict - (size_t)len, "%s), }",
                  t->rank == 1 ? "," : "");
  size_t prefix = 10;
  size_t total = prefix + (size_t)len + 1;
  total = (total + 63) / 64 * 64;
  if (total - prefix > 65535) { /* cannot happen for rank <= 8 */
    prefix = 12;
    total = (prefix + (size_t)len + 1 + 63) / 64 * 64;
  }
  size_t header_len = total - prefix;
  unsigned char head[640];
  if (total > sizeof head)
    return quench_error_set(err, QUENCH_ERR_INTERNAL,
                            "cannot write '%s': header too long", path);
  memcpy(head, npy_magic, sizeof npy_magic);
  head[6] = prefix == 10 ? 1 : 2;
  head[7] = 0;
  head[8] = (unsigned char)(header_len & 0xff);
  head[9] = (unsigned char)((header_len >> 8) & 0xff);
  if (prefix == 12) {
    head[10] = (unsigned char)((header_len >> 16) & 0xff);
    head[11] = (unsigned char)((header_len >> 24) & 0xff);
  }
  memcpy(head + prefix, dict, (size_t)len);
  memset(head + prefix + len, ' ', total - prefix - (size_t)len - 1);
  head[total - 1] = '\n';

  /* Temporary file next to the target: same file system, so rename is
   * atomic. O_EXCL + a per-attempt suffix avoids clashes between threads and
   * processes without any shared counter. */
  size_t path_len = strlen(path);
  char *tmp = malloc(path_len + 64);
  if (!tmp)
    return quench_error_set(err, QUENCH_ERR_OUT_OF_MEMORY,
                            "cannot write '%s': out of memory", path);
  int fd = -1;
  for (unsigned attempt = 0; attempt < 1000; ++attempt) {
    snprintf(tmp, path_len + 64, "%s.tmp.%ld.%u", path, (long)getpid(),
             attempt);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0 || (errno != EEXIST && errno != EINTR))
      break;
  }
  if (fd < 0) {
    int e = errno;
    char msg[128];
    quench_internal_strerror(e, msg, sizeof msg);
    free(tmp);
    return quench_error_set(err, QUENCH_ERR_IO,
                            "cannot write '%s': cannot create a temporary file "
                            "next to it: %s",
                            path, msg);
  }
  const char *step = "write";
  int rc = write_all(fd, head, total);
  if (!rc && bytes > 0)
    rc = write_all(fd, t->data, bytes);
  if (!rc && fsync(fd) != 0) {
    step = "sync";
    rc = errno;
  }
  if (close(fd) != 0 && !rc) {
    step = "close";
    rc = errno;
  }
  if (!rc && rename(tmp, path) != 0) {
    step = "rename temporary file to";
    rc = errno;
  }
  if (rc) {
    unlink(tmp);
    free(tmp);
    char msg[128];
    quench_internal_strerror(rc, msg, sizeof msg);
    return quench_error_set(err, QUENCH_ERR_IO, "cannot %s '%s': %s", step,
                            path, msg);
  }
  free(tmp);
  quench_error_clear(err);
  return QUENCH_OK;
}
