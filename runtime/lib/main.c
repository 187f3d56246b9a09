/* The command line of standalone model executables (quench_model_main).
 *
 *   MODEL --input NAME=FILE.npy ... [--output-dir DIR] [--bench N]
 *         [--threads N] [--help]
 *
 * Everything that can be checked before running is checked first (options,
 * input names, files, dtypes, shapes, the output directory), so a bad
 * invocation fails with one line on stderr and writes nothing.
 */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct options {
  const char **input_paths; /* per model input, NULL when not given */
  const char *output_dir;
  long bench;
  long threads;
} options;

static void print_io(FILE *f, const char *kind, const quench_io_info *io,
                     int32_t n) {
  for (int32_t i = 0; i < n; ++i) {
    char type[160];
    quench_format_type(io[i].dtype, io[i].rank, io[i].shape, type, sizeof type);
    fprintf(f, "  %s %-20s %s\n", kind, io[i].name, type);
  }
}

static void usage(const quench_model *m, const char *prog, FILE *f) {
  fprintf(f,
          "usage: %s --input NAME=FILE.npy ... [--output-dir DIR] [--bench N] "
          "[--threads N]\n\n"
          "Runs the model '%s' compiled by quench-compile.\n\n"
          "  --input NAME=FILE.npy  value of graph input NAME (every input is "
          "required;\n"
          "                         dtype and shape must match, '?' dims take "
          "any size)\n"
          "  --output-dir DIR       write every output to DIR/<name>.npy "
          "(characters\n"
          "                         other than [A-Za-z0-9._-] in names become "
          "'_');\n"
          "                         without it, outputs are summarized on "
          "stdout\n"
          "  --bench N              run N more times after the first run and "
          "print the\n"
          "                         median, minimum and mean latency\n"
          "  --threads N            threads for parallel loops (default 0: "
          "every core)\n"
          "  --help                 this text\n\n"
          "Model:\n",
          prog, m->name);
  print_io(f, "input ", m->inputs, m->num_inputs);
  print_io(f, "output", m->outputs, m->num_outputs);
}

/* Prints "PROG: error: MESSAGE" on stderr. */
static void fail(const char *prog, const char *fmt, ...) QUENCH_PRINTF_LIKE(2, 3);
static void fail(const char *prog, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: error: ", prog);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static int parse_long(const char *s, long lo, long hi, long *out) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || !*s || *end || v < lo || v > hi)
    return 0;
  *out = v;
  return 1;
}

/* Makes `name` safe as a file name in place. */
static void sanitize(char *name) {
  for (char *p = name; *p; ++p) {
    char c = *p;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok)
      *p = '_';
  }
  if (name[0] == '.' || name[0] == '\0')
    name[0] = '_';
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int compare_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Prints "name dtype[shape]: v0 v1 ... (N values)" for an output. */
static void summarize(const quench_io_info *info, const quench_tensor *t) {
  char type[160];
  quench_format_type(t->dtype, t->rank, t->shape, type, sizeof type);
  int64_t n = quench_tensor_num_elements(t);
  printf("%s %s:", info->name, type);
  int64_t shown = n < 8 ? n : 8;
  for (int64_t i = 0; i < shown; ++i) {
    const char *p = (const char *)t->data + i * (int64_t)quench_dtype_size(t->dtype);
    switch (t->dtype) {
    case QUENCH_DTYPE_F32: printf(" %.6g", (double)*(const float *)p); break;
    case QUENCH_DTYPE_F64: printf(" %.6g", *(const double *)p); break;
    case QUENCH_DTYPE_I8: printf(" %d", (int)*(const int8_t *)p); break;
    case QUENCH_DTYPE_U8: printf(" %u", (unsigned)*(const uint8_t *)p); break;
    case QUENCH_DTYPE_BOOL: printf(" %u", (unsigned)*(const uint8_t *)p); break;
    case QUENCH_DTYPE_I16: printf(" %d", (int)*(const int16_t *)p); break;
    case QUENCH_DTYPE_U16: printf(" %u", (unsigned)*(const uint16_t *)p); break;
    case QUENCH_DTYPE_I32: printf(" %ld", (long)*(const int32_t *)p); break;
    case QUENCH_DTYPE_U32: printf(" %lu", (unsigned long)*(const uint32_t *)p); break;
    case QUENCH_DTYPE_I64: printf(" %lld", (long long)*(const int64_t *)p); break;
    case QUENCH_DTYPE_U64: printf(" %llu", (unsigned long long)*(const uint64_t *)p); break;
    default: printf(" 0x%04x", (unsigned)*(const uint16_t *)p); break;
    }
  }
  printf("%s (%lld values)\n", n > shown ? " ..." : "", (long long)n);
}

int quench_model_main(const quench_model *m, int argc, char **argv) {
  const char *prog = argc > 0 && argv[0] ? argv[0] : "model";
  if (!m || m->abi_version != QUENCH_MODEL_ABI_VERSION) {
    fail(prog, "model ABI version mismatch");
    return 1;
  }
  options opt = {0};
  opt.input_paths = calloc((size_t)m->num_inputs + 1, sizeof(char *));
  quench_tensor *inputs =
      calloc((size_t)m->num_inputs + 1, sizeof(quench_tensor));
  quench_tensor *outputs =
      calloc((size_t)m->num_outputs + 1, sizeof(quench_tensor));
  char **out_paths = calloc((size_t)m->num_outputs + 1, sizeof(char *));
  double *times = NULL;
  quench_threadpool *pool = NULL;
  int rc = 1;
  if (!opt.input_paths || !inputs || !outputs || !out_paths) {
    fail(prog, "out of memory");
    goto done;
  }

  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    const char *value = NULL;
    /* --opt VALUE and --opt=VALUE */
    const char *names[] = {"--input", "--output-dir", "--bench", "--threads"};
    int which = -1;
    for (int k = 0; k < 4; ++k) {
      size_t len = strlen(names[k]);
      if (strncmp(a, names[k], len) == 0 && (a[len] == '\0' || a[len] == '=')) {
        which = k;
        if (a[len] == '=')
          value = a + len + 1;
        else if (i + 1 < argc)
          value = argv[++i];
        else {
          fail(prog, "%s needs a value (see --help)", a);
          rc = 2;
          goto done;
        }
      }
    }
    if (which < 0) {
      if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
        usage(m, prog, stdout);
        rc = 0;
        goto done;
      }
      fail(prog, "unknown argument '%s' (see --help)", a);
      rc = 2;
      goto done;
    }
    if (which == 0) {
      const char *eq = strchr(value, '=');
      if (!eq || eq == value || !eq[1]) {
        fprintf(stderr,
                "%s: error: --input expects NAME=FILE.npy, got '%s'\n", prog,
                value);
        rc = 2;
        goto done;
      }
      char name[256];
      size_t len = (size_t)(eq - value);
      if (len >= sizeof name)
        len = sizeof name - 1;
      memcpy(name, value, len);
      name[len] = '\0';
      int32_t idx = quench_model_find_input(m, name);
      if (idx < 0) {
        fprintf(stderr, "%s: error: the model has no input '%s'; inputs:", prog,
                name);
        for (int32_t k = 0; k < m->num_inputs; ++k)
          fprintf(stderr, " '%s'", m->inputs[k].name);
        fputc('\n', stderr);
        goto done;
      }
      if (opt.input_paths[idx]) {
        fail(prog, "input '%s' is given twice", name);
        goto done;
      }
      opt.input_paths[idx] = eq + 1;
    } else if (which == 1) {
      opt.output_dir = value;
    } else if (which == 2) {
      if (!parse_long(value, 1, 1000000, &opt.bench)) {
        fail(prog, "--bench expects a run count in 1..1000000, got '%s'",
             value);
        rc = 2;
        goto done;
      }
    } else {
      if (!parse_long(value, 0, 4096, &opt.threads)) {
        fail(prog, "--threads expects 0..4096, got '%s'", value);
        rc = 2;
        goto done;
      }
    }
  }

  /* Every input is required. */
  {
    int missing = 0;
    for (int32_t k = 0; k < m->num_inputs; ++k)
      missing += opt.input_paths[k] == NULL;
    if (missing) {
      fprintf(stderr, "%s: error: missing input%s:", prog, missing > 1 ? "s" : "");
      for (int32_t k = 0; k < m->num_inputs; ++k)
        if (!opt.input_paths[k])
          fprintf(stderr, " %s", m->inputs[k].name);
      fprintf(stderr, " (give --input NAME=FILE.npy; see --help)\n");
      goto done;
    }
  }

  /* The output directory and file names, before anything runs. */
  if (opt.output_dir) {
    struct stat st;
    if (stat(opt.output_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
      fail(prog, "output directory '%s' does not exist or is not a directory",
           opt.output_dir);
      goto done;
    }
    if (access(opt.output_dir, W_OK) != 0) {
      fail(prog, "output directory '%s' is not writable", opt.output_dir);
      goto done;
    }
    for (int32_t k = 0; k < m->num_outputs; ++k) {
      size_t len = strlen(opt.output_dir) + strlen(m->outputs[k].name) + 32;
      out_paths[k] = malloc(len);
      if (!out_paths[k]) {
        fail(prog, "out of memory");
        goto done;
      }
      char *base = strdup(m->outputs[k].name);
      if (!base) {
        fail(prog, "out of memory");
        goto done;
      }
      sanitize(base);
      snprintf(out_paths[k], len, "%s/%s.npy", opt.output_dir, base);
      /* Two names that sanitize alike get their index appended. */
      for (int32_t j = 0; j < k; ++j)
        if (strcmp(out_paths[j], out_paths[k]) == 0) {
          snprintf(out_paths[k], len, "%s/%s_%d.npy", opt.output_dir, base,
                   (int)k);
          break;
        }
      free(base);
    }
  }

  quench_error err;
  /* The weights (mapped from this executable) before reading any input. */
  if (quench_model_load(m, &err) != QUENCH_OK) {
    fail(prog, "%s", err.message);
    goto done;
  }
  for (int32_t k = 0; k < m->num_inputs; ++k) {
    const quench_io_info *info = &m->inputs[k];
    if (quench_npy_read_expect(opt.input_paths[k], info->name, info->dtype,
                               info->rank, info->shape, &inputs[k],
                               &err) != QUENCH_OK) {
      fail(prog, "%s", err.message);
      goto done;
    }
  }

  pool = quench_threadpool_create((int)opt.threads, &err);
  if (!pool) {
    fail(prog, "%s", err.message);
    goto done;
  }

  double t0 = now_ms();
  if (quench_model_run(m, inputs, (size_t)m->num_inputs, outputs,
                       (size_t)m->num_outputs, pool, &err) != QUENCH_OK) {
    fail(prog, "%s", err.message);
    goto done;
  }
  double first = now_ms() - t0;

  if (opt.output_dir) {
    for (int32_t k = 0; k < m->num_outputs; ++k) {
      if (quench_npy_write(out_paths[k], &outputs[k], &err) != QUENCH_OK) {
        fail(prog, "output '%s': %s", m->outputs[k].name, err.message);
        goto done;
      }
      printf("wrote %s\n", out_paths[k]);
    }
  } else {
    for (int32_t k = 0; k < m->num_outputs; ++k)
      summarize(&m->outputs[k], &outputs[k]);
  }

  if (opt.bench > 0) {
    times = malloc((size_t)opt.bench * sizeof *times);
    if (!times) {
      fail(prog, "out of memory");
      goto done;
    }
    quench_tensor *scratch =
        calloc((size_t)m->num_outputs + 1, sizeof(quench_tensor));
    if (!scratch) {
      fail(prog, "out of memory");
      goto done;
    }
    double sum = 0;
    for (long r = 0; r < opt.bench; ++r) {
      double s = now_ms();
      quench_status st =
          quench_model_run(m, inputs, (size_t)m->num_inputs, scratch,
                           (size_t)m->num_outputs, pool, &err);
      times[r] = now_ms() - s;
      sum += times[r];
      for (int32_t k = 0; k < m->num_outputs; ++k)
        quench_tensor_free(&scratch[k]);
      if (st != QUENCH_OK) {
        fail(prog, "%s", err.message);
        free(scratch);
        goto done;
      }
    }
    free(scratch);
    qsort(times, (size_t)opt.bench, sizeof *times, compare_double);
    double median = opt.bench % 2
                        ? times[opt.bench / 2]
                        : 0.5 * (times[opt.bench / 2 - 1] + times[opt.bench / 2]);
    printf("bench: %ld runs, %d threads, median %.4g ms, min %.4g ms, mean "
           "%.4g ms (first run %.4g ms)\n",
           opt.bench, quench_threadpool_size(pool), median, times[0],
           sum / (double)opt.bench, first);
  }
  rc = 0;

done:
  if (inputs)
    for (int32_t k = 0; k < m->num_inputs; ++k)
      quench_tensor_free(&inputs[k]);
  if (outputs)
    for (int32_t k = 0; k < m->num_outputs; ++k)
      quench_tensor_free(&outputs[k]);
  if (out_paths)
    for (int32_t k = 0; k < m->num_outputs; ++k)
      free(out_paths[k]);
  quench_threadpool_destroy(pool);
  free(times);
  free(out_paths);
  free(outputs);
  free(inputs);
  free((void *)opt.input_paths);
  return rc;
}
