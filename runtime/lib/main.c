/* The command line of standalone model executables (quench_model_main).
 *
 *   MODEL --input NAME=FILE.npy ... [--output-dir DIR] [--bench N]
 *         [--threads N] [--help]
 *
 * and for generation models (quench_model.generation; docs/generation.md)
 *
 *   MODEL --input input_ids=PROMPT.npy [--input NAME=FILE.npy ...]
 *         [--generate N] [--temperature T] [--top-k K] [--top-p P]
 *         [--seed S] [--eos ID] [--capacity C] [--output-dir DIR]
 *         [--bench N] [--threads N]
 *
 *   (the other --inputs: those the session does not fill, such as an
 *   encoder-decoder's encoder mask and cross-attention keys/values)
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
          "  --metadata             print the model's metadata (JSON, e.g. a "
          "GGUF\n"
          "                         tokenizer) and exit; alone\n"
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

/* Matches argv[*i] against `names`, as `--opt VALUE` or `--opt=VALUE`:
 * returns the name's index and sets *value (moving *i past a separate
 * value), -1 when no name matches, -2 when the value is missing (error
 * printed). */
static int match_option(int argc, char **argv, int *i,
                        const char *const *names, int count,
                        const char **value, const char *prog) {
  const char *a = argv[*i];
  for (int k = 0; k < count; ++k) {
    size_t len = strlen(names[k]);
    if (strncmp(a, names[k], len) != 0 || (a[len] != '\0' && a[len] != '='))
      continue;
    if (a[len] == '=')
      *value = a + len + 1;
    else if (*i + 1 < argc)
      *value = argv[++*i];
    else {
      fail(prog, "%s needs a value (see --help)", a);
      return -2;
    }
    return k;
  }
  return -1;
}

/* 0 when `dir` is a writable directory; else prints why and returns 1. */
static int check_output_dir(const char *dir, const char *prog) {
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    fail(prog, "output directory '%s' does not exist or is not a directory",
         dir);
    return 1;
  }
  if (access(dir, W_OK) != 0) {
    fail(prog, "output directory '%s' is not writable", dir);
    return 1;
  }
  return 0;
}

/* DIR/NAME.npy with NAME made safe as a file name (sanitize), and with
 * "_<index>" appended when index >= 0. Ownership: the caller frees it;
 * NULL when out of memory. */
static char *output_path(const char *dir, const char *name, int index) {
  char *base = strdup(name);
  size_t len = strlen(dir) + strlen(name) + 32;
  char *path = malloc(len);
  if (!base || !path) {
    free(base);
    free(path);
    return NULL;
  }
  sanitize(base);
  if (index >= 0)
    snprintf(path, len, "%s/%s_%d.npy", dir, base, index);
  else
    snprintf(path, len, "%s/%s.npy", dir, base);
  free(base);
  return path;
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

/* ------------------------------------------------------------------------ */
/* Generation models                                                        */
/* ------------------------------------------------------------------------ */

/* Most --input NAME=FILE.npy values for a generation model's caller inputs
 * (quench_generation_caller_input). */
#define MAX_CALLER_INPUTS 1024

typedef struct gen_options {
  const char *prompt_path;
  /* "NAME=FILE.npy" of the inputs the session does not fill. */
  const char *caller_inputs[MAX_CALLER_INPUTS];
  int num_caller_inputs;
  const char *output_dir;
  long generate; /* -1: no generation, run the prompt once */
  long bench;
  long threads;
  long long capacity;
  long long eos; /* -1: none */
  int has_seed;
  unsigned long long seed;
  quench_sampling sampling;
} gen_options;

static void generation_usage(const quench_model *m, const char *prog,
                             FILE *f) {
  fprintf(f,
          "usage: %s --input %s=PROMPT.npy [--input NAME=FILE.npy ...]\n"
          "          [--generate N] [--temperature T] [--top-k K]\n"
          "          [--top-p P] [--seed S] [--eos ID] [--capacity C] "
          "[--output-dir DIR]\n"
          "          [--bench N] [--threads N]\n\n"
          "Runs the generation model '%s' compiled by quench-compile: the "
          "prompt (token\n"
          "ids, int64 [1, P]) in one run, then one run per generated token "
          "with the keys\n"
          "and values of earlier positions kept in the session's cache.\n\n"
          "  --input NAME=FILE.npy\n"
          "                    any other input the session does not fill "
          "(an encoder-decoder's\n"
          "                    encoder mask and cross-attention keys/values): "
          "set once, used\n"
          "                    by every step\n"
          "  --generate N      generate N tokens; prints them and the "
          "prefill and decode\n"
          "                    tokens/s, writes DIR/generated_ids.npy (int64 "
          "[1, n]) with\n"
          "                    --output-dir. Without it: runs the prompt "
          "once and writes\n"
          "                    or summarizes the logits\n"
          "  --temperature T   sampling temperature (default 0: greedy, the "
          "most likely token)\n"
          "  --top-k K         sample among the K most likely tokens (0: "
          "all)\n"
          "  --top-p P         sample among the most likely tokens whose "
          "probability sums to P\n"
          "  --seed S          random seed (default: from the clock; printed)\n"
          "  --eos ID          stop after generating token ID\n"
          "  --capacity C      cache capacity in positions (default %lld, "
          "quench-compile --max-seq)\n"
          "  --output-dir DIR  where to write the outputs\n"
          "  --bench N         run the prompt (or the whole generation) N more "
          "times and\n"
          "                    print the median time\n"
          "  --threads N       threads for parallel loops (default 0: every "
          "core)\n"
          "  --metadata        print the model's metadata (JSON, e.g. a GGUF "
          "tokenizer)\n"
          "                    and exit; alone\n"
          "  --help            this text\n\n"
          "Model:\n",
          prog, m->inputs[m->generation->input_ids].name, m->name,
          (long long)m->generation->capacity);
  print_io(f, "input ", m->inputs, m->num_inputs);
  print_io(f, "output", m->outputs, m->num_outputs);
}

static int parse_double(const char *s, double lo, double hi, double *out) {
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || !*s || *end || !(v >= lo && v <= hi))
    return 0;
  *out = v;
  return 1;
}

static int parse_ll(const char *s, long long lo, long long hi,
                    long long *out) {
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || !*s || *end || v < lo || v > hi)
    return 0;
  *out = v;
  return 1;
}

/* Generates opt->generate tokens after the prompt; fills ids/count and the
 * times. Returns 0 on success (error printed otherwise). */
static int generate_once(const quench_model *m, quench_session *s,
                         const int64_t *prompt, int64_t prompt_len,
                         const gen_options *opt, quench_threadpool *pool,
                         int64_t *ids, int64_t *count, double *prefill_ms,
                         double *decode_ms, const char *prog) {
  (void)m;
  quench_error err;
  int64_t vocab = quench_session_vocab_size(s);
  float *logits = malloc((size_t)vocab * sizeof *logits);
  if (!logits) {
    fail(prog, "out of memory");
    return 1;
  }
  uint64_t rng = (uint64_t)opt->seed;
  quench_session_reset(s);
  double t0 = now_ms();
  if (quench_session_prefill(s, prompt, prompt_len, logits, pool, &err) !=
      QUENCH_OK) {
    fail(prog, "%s", err.message);
    free(logits);
    return 1;
  }
  *prefill_ms = now_ms() - t0;
  *count = 0;
  double t1 = now_ms();
  for (long i = 0; i < opt->generate; ++i) {
    int64_t token;
    if (quench_sample(logits, vocab, &opt->sampling, &rng, &token, &err) !=
        QUENCH_OK) {
      fail(prog, "%s", err.message);
      free(logits);
      return 1;
    }
    ids[(*count)++] = token;
    if (token == opt->eos || i + 1 == opt->generate)
      break;
    if (quench_session_decode(s, token, logits, pool, &err) != QUENCH_OK) {
      fail(prog, "%s", err.message);
      free(logits);
      return 1;
    }
  }
  *decode_ms = now_ms() - t1;
  free(logits);
  return 0;
}

static int generation_main(const quench_model *m, int argc, char **argv,
                           const char *prog) {
  const quench_generation_info *g = m->generation;
  const char *ids_name = m->inputs[g->input_ids].name;
  gen_options opt = {0};
  opt.generate = -1;
  opt.eos = -1;
  static const char *const names[] = {
      "--input", "--output-dir", "--bench", "--threads", "--generate",
      "--temperature", "--top-k", "--top-p", "--seed", "--eos", "--capacity"};
  enum { N_NAMES = sizeof names / sizeof names[0] };
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    const char *value = NULL;
    int which = match_option(argc, argv, &i, names, N_NAMES, &value, prog);
    if (which == -2)
      return 2;
    if (which < 0) {
      if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
        generation_usage(m, prog, stdout);
        return 0;
      }
      fail(prog, "unknown argument '%s' (see --help)", a);
      return 2;
    }
    double d;
    long long ll;
    switch (which) {
    case 0: {
      const char *eq = strchr(value, '=');
      if (!eq || eq == value || !eq[1]) {
        fail(prog, "--input expects NAME=FILE.npy, got '%s'", value);
        return 2;
      }
      size_t len = (size_t)(eq - value);
      if (strlen(ids_name) != len || strncmp(value, ids_name, len) != 0) {
        /* An input the session does not fill (an encoder-decoder's
         * encoder mask and cross-attention keys/values): set once. */
        int32_t index = -1;
        for (int32_t k = 0; k < m->num_inputs; ++k)
          if (strlen(m->inputs[k].name) == len &&
              strncmp(m->inputs[k].name, value, len) == 0)
            index = k;
        if (quench_generation_caller_input(m, index) != 1) {
          fail(prog,
               "%s '%.*s': the generation model takes --input %s=PROMPT.npy "
               "and its inputs that the session does not fill; the caches, "
               "past length, mask and positions are kept by the session",
               index < 0 ? "no input" : "input", (int)len, value, ids_name);
          return 2;
        }
        for (int k = 0; k < opt.num_caller_inputs; ++k)
          if (strncmp(opt.caller_inputs[k], value, len + 1) == 0) {
            fail(prog, "input '%.*s' is given twice", (int)len, value);
            return 2;
          }
        if (opt.num_caller_inputs == MAX_CALLER_INPUTS) {
          fail(prog, "more than %d --input options", MAX_CALLER_INPUTS);
          return 2;
        }
        opt.caller_inputs[opt.num_caller_inputs++] = value;
        break;
      }
      if (opt.prompt_path) {
        fail(prog, "input '%s' is given twice", ids_name);
        return 2;
      }
      opt.prompt_path = eq + 1;
      break;
    }
    case 1: opt.output_dir = value; break;
    case 2:
      if (!parse_long(value, 1, 1000000, &opt.bench)) {
        fail(prog, "--bench expects a run count in 1..1000000, got '%s'",
             value);
        return 2;
      }
      break;
    case 3:
      if (!parse_long(value, 0, 4096, &opt.threads)) {
        fail(prog, "--threads expects 0..4096, got '%s'", value);
        return 2;
      }
      break;
    case 4:
      if (!parse_long(value, 1, 100000000, &opt.generate)) {
        fail(prog, "--generate expects a token count >= 1, got '%s'", value);
        return 2;
      }
      break;
    case 5:
      if (!parse_double(value, 0, 1e6, &d)) {
        fail(prog, "--temperature expects a number >= 0, got '%s'", value);
        return 2;
      }
      opt.sampling.temperature = (float)d;
      break;
    case 6:
      if (!parse_ll(value, 0, 1 << 30, &ll)) {
        fail(prog, "--top-k expects a count >= 0, got '%s'", value);
        return 2;
      }
      opt.sampling.top_k = (int32_t)ll;
      break;
    case 7:
      if (!parse_double(value, 0, 1, &d) || d == 0) {
        fail(prog, "--top-p expects a probability in (0, 1], got '%s'",
             value);
        return 2;
      }
      opt.sampling.top_p = (float)d;
      break;
    case 8: {
      char *end = NULL;
      errno = 0;
      opt.seed = strtoull(value, &end, 10);
      if (errno || !*value || *end || value[0] == '-') {
        fail(prog, "--seed expects a non-negative integer, got '%s'", value);
        return 2;
      }
      opt.has_seed = 1;
      break;
    }
    case 9:
      if (!parse_ll(value, 0, INT64_MAX, &opt.eos)) {
        fail(prog, "--eos expects a token id >= 0, got '%s'", value);
        return 2;
      }
      break;
    case 10:
      if (!parse_ll(value, 1, INT64_MAX / 2, &opt.capacity)) {
        fail(prog, "--capacity expects a position count >= 1, got '%s'",
             value);
        return 2;
      }
      break;
    }
  }
  if (!opt.prompt_path) {
    fail(prog, "missing input %s (give --input %s=PROMPT.npy; see --help)",
         ids_name, ids_name);
    return 1;
  }
  for (int32_t k = 0; k < m->num_inputs; ++k) {
    if (quench_generation_caller_input(m, k) != 1)
      continue;
    size_t len = strlen(m->inputs[k].name);
    int given = 0;
    for (int j = 0; j < opt.num_caller_inputs; ++j)
      given |= strncmp(opt.caller_inputs[j], m->inputs[k].name, len) == 0 &&
               opt.caller_inputs[j][len] == '=';
    if (!given) {
      fail(prog,
           "missing input %s (give --input %s=FILE.npy: the session keeps "
           "it for every step; see --help)",
           m->inputs[k].name, m->inputs[k].name);
      return 1;
    }
  }
  if (opt.generate < 0 && (opt.sampling.temperature > 0 ||
                           opt.sampling.top_k || opt.sampling.top_p > 0 ||
                           opt.has_seed || opt.eos >= 0)) {
    fail(prog, "--temperature, --top-k, --top-p, --seed and --eos need "
               "--generate N");
    return 2;
  }
  if (opt.output_dir && check_output_dir(opt.output_dir, prog))
    return 1;
  if (!opt.has_seed) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    opt.seed = (unsigned long long)ts.tv_sec * 1000000007ull +
               (unsigned long long)ts.tv_nsec;
  }

  int rc = 1;
  quench_error err;
  quench_tensor prompt_t = {0}, logits_t = {0};
  quench_session *session = NULL;
  quench_threadpool *pool = NULL;
  int64_t *prompt = NULL, *ids = NULL;
  double *times = NULL;
  char *path = NULL;
  if (quench_model_load(m, &err) != QUENCH_OK) {
    fail(prog, "%s", err.message);
    goto done;
  }
  {
    int64_t want[2] = {1, -1};
    if (quench_npy_read_expect(opt.prompt_path, ids_name, QUENCH_DTYPE_INVALID,
                               2, want, &prompt_t, &err) != QUENCH_OK) {
      fail(prog, "%s", err.message);
      goto done;
    }
  }
  int64_t prompt_len = prompt_t.shape[1];
  if (prompt_len < 1) {
    fail(prog, "input '%s' (file '%s') is empty: the prompt needs at least "
               "one token",
         ids_name, opt.prompt_path);
    goto done;
  }
  if (prompt_t.dtype != QUENCH_DTYPE_I64 && prompt_t.dtype != QUENCH_DTYPE_I32) {
    fail(prog, "input '%s': expected token ids as int64 or int32 [1, P], got "
               "%s (file '%s')",
         ids_name, quench_dtype_name(prompt_t.dtype), opt.prompt_path);
    goto done;
  }
  prompt = malloc((size_t)prompt_len * sizeof *prompt);
  ids = malloc((size_t)(opt.generate > 0 ? opt.generate : 1) * sizeof *ids);
  if (!prompt || !ids) {
    fail(prog, "out of memory");
    goto done;
  }
  for (int64_t i = 0; i < prompt_len; ++i)
    prompt[i] = prompt_t.dtype == QUENCH_DTYPE_I64
                    ? ((const int64_t *)prompt_t.data)[i]
                    : ((const int32_t *)prompt_t.data)[i];
  {
    long long capacity = opt.capacity ? opt.capacity : (long long)g->capacity;
    /* The last generated token is never fed back. */
    long long needed = (long long)prompt_len +
                       (opt.generate > 1 ? opt.generate - 1 : 0);
    if (needed > capacity) {
      fail(prog,
           "the prompt (%lld tokens) and %ld generated tokens need %lld "
           "cache positions, more than the capacity %lld (raise --capacity "
           "or compile with a larger --max-seq)",
           (long long)prompt_len, opt.generate > 0 ? opt.generate : 0L, needed,
           capacity);
      goto done;
    }
    session = quench_session_create(m, capacity, &err);
    if (!session) {
      fail(prog, "%s", err.message);
      goto done;
    }
  }
  for (int k = 0; k < opt.num_caller_inputs; ++k) {
    const char *eq = strchr(opt.caller_inputs[k], '=');
    int32_t index = -1;
    for (int32_t j = 0; j < m->num_inputs; ++j)
      if (strlen(m->inputs[j].name) == (size_t)(eq - opt.caller_inputs[k]) &&
          strncmp(m->inputs[j].name, opt.caller_inputs[k],
                  (size_t)(eq - opt.caller_inputs[k])) == 0)
        index = j;
    const quench_io_info *io = &m->inputs[index];
    quench_tensor value = {0};
    if (quench_npy_read_expect(eq + 1, io->name, io->dtype, io->rank,
                               io->shape, &value, &err) != QUENCH_OK ||
        quench_session_set_input(session, io->name, &value, &err) !=
            QUENCH_OK) {
      quench_tensor_free(&value);
      fail(prog, "%s", err.message);
      goto done;
    }
    quench_tensor_free(&value);
  }
  pool = quench_threadpool_create((int)opt.threads, &err);
  if (!pool) {
    fail(prog, "%s", err.message);
    goto done;
  }

  if (opt.generate < 0) {
    /* One run of the prompt: the logits, as a plain run would give. */
    double t0 = now_ms();
    if (quench_session_run(session, prompt, prompt_len, &logits_t, pool,
                           &err) != QUENCH_OK) {
      fail(prog, "%s", err.message);
      goto done;
    }
    double first = now_ms() - t0;
    const quench_io_info *info = &m->outputs[g->logits];
    if (opt.output_dir) {
      path = output_path(opt.output_dir, info->name, -1);
      if (!path) {
        fail(prog, "out of memory");
        goto done;
      }
      if (quench_npy_write(path, &logits_t, &err) != QUENCH_OK) {
        fail(prog, "output '%s': %s", info->name, err.message);
        goto done;
      }
      printf("wrote %s\n", path);
    } else {
      summarize(info, &logits_t);
    }
    if (opt.bench > 0) {
      times = malloc((size_t)opt.bench * sizeof *times);
      if (!times) {
        fail(prog, "out of memory");
        goto done;
      }
      for (long r = 0; r < opt.bench; ++r) {
        quench_session_reset(session);
        double t = now_ms();
        if (quench_session_run(session, prompt, prompt_len, NULL, pool,
                               &err) != QUENCH_OK) {
          fail(prog, "%s", err.message);
          goto done;
        }
        times[r] = now_ms() - t;
      }
      qsort(times, (size_t)opt.bench, sizeof *times, compare_double);
      printf("bench: %ld runs of %lld tokens, %d threads, median %.4g ms, "
             "min %.4g ms (first run %.4g ms)\n",
             opt.bench, (long long)prompt_len, quench_threadpool_size(pool),
             times[opt.bench / 2], times[0], first);
    }
    rc = 0;
    goto done;
  }

  int64_t count = 0;
  double prefill_ms = 0, decode_ms = 0;
  if (generate_once(m, session, prompt, prompt_len, &opt, pool, ids, &count,
                    &prefill_ms, &decode_ms, prog))
    goto done;
  printf("generated %lld tokens:", (long long)count);
  for (int64_t i = 0; i < count; ++i)
    printf(" %lld", (long long)ids[i]);
  printf("\n");
  if (opt.sampling.temperature > 0)
    printf("sampling: temperature %g, top-k %d, top-p %g, seed %llu\n",
           (double)opt.sampling.temperature, (int)opt.sampling.top_k,
           (double)(opt.sampling.top_p > 0 ? opt.sampling.top_p : 1.0f),
           opt.seed);
  if (opt.output_dir) {
    path = output_path(opt.output_dir, "generated_ids", -1);
    if (!path) {
      fail(prog, "out of memory");
      goto done;
    }
    quench_tensor out = {0};
    out.data = ids;
    out.dtype = QUENCH_DTYPE_I64;
    out.rank = 2;
    out.shape[0] = 1;
    out.shape[1] = count;
    if (quench_npy_write(path, &out, &err) != QUENCH_OK) {
      fail(prog, "%s", err.message);
      goto done;
    }
    printf("wrote %s\n", path);
  }
  if (opt.bench > 0) {
    /* Repeat the whole generation; report medians. */
    times = malloc(2 * (size_t)opt.bench * sizeof *times);
    if (!times) {
      fail(prog, "out of memory");
      goto done;
    }
    for (long r = 0; r < opt.bench; ++r) {
      int64_t c = 0;
      if (generate_once(m, session, prompt, prompt_len, &opt, pool, ids, &c,
                        &times[r], &times[opt.bench + r], prog))
        goto done;
    }
    qsort(times, (size_t)opt.bench, sizeof *times, compare_double);
    qsort(times + opt.bench, (size_t)opt.bench, sizeof *times,
          compare_double);
    prefill_ms = times[opt.bench / 2];
    decode_ms = times[opt.bench + opt.bench / 2];
  }
  printf("prefill: %lld tokens in %.3f ms (%.1f tokens/s)\n",
         (long long)prompt_len, prefill_ms,
         prefill_ms > 0 ? 1e3 * (double)prompt_len / prefill_ms : 0.0);
  if (count > 1)
    printf("decode: %lld tokens in %.3f ms (%.1f tokens/s, %.3f ms/token)\n",
           (long long)(count - 1), decode_ms,
           decode_ms > 0 ? 1e3 * (double)(count - 1) / decode_ms : 0.0,
           decode_ms / (double)(count - 1));
  printf("threads: %d%s\n", quench_threadpool_size(pool),
         opt.bench > 0 ? " (medians of --bench runs)" : "");
  rc = 0;

done:
  quench_tensor_free(&prompt_t);
  quench_tensor_free(&logits_t);
  quench_session_destroy(session);
  quench_threadpool_destroy(pool);
  free(prompt);
  free(ids);
  free(times);
  free(path);
  return rc;
}

int quench_model_main(const quench_model *m, int argc, char **argv) {
  const char *prog = argc > 0 && argv[0] ? argv[0] : "model";
  if (!m || m->abi_version != QUENCH_MODEL_ABI_VERSION) {
    fail(prog, "model ABI version mismatch");
    return 1;
  }
  if (argc == 2 && strcmp(argv[1], "--metadata") == 0) {
    size_t size;
    const char *metadata = quench_model_metadata(m, &size);
    if (!metadata) {
      fail(prog, "the model carries no metadata");
      return 1;
    }
    fwrite(metadata, 1, size, stdout);
    fputc('\n', stdout);
    return fflush(stdout) == 0 ? 0 : 1;
  }
  if (m->generation)
    return generation_main(m, argc, argv, prog);
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
    static const char *const names[] = {"--input", "--output-dir", "--bench",
                                        "--threads"};
    int which = match_option(argc, argv, &i, names, 4, &value, prog);
    if (which == -2) {
      rc = 2;
      goto done;
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
    if (check_output_dir(opt.output_dir, prog))
      goto done;
    for (int32_t k = 0; k < m->num_outputs; ++k) {
      out_paths[k] = output_path(opt.output_dir, m->outputs[k].name, -1);
      /* Two names that sanitize alike get their index appended. */
      for (int32_t j = 0; j < k && out_paths[k]; ++j)
        if (strcmp(out_paths[j], out_paths[k]) == 0) {
          free(out_paths[k]);
          out_paths[k] = output_path(opt.output_dir, m->outputs[k].name, k);
          break;
        }
      if (!out_paths[k]) {
        fail(prog, "out of memory");
        goto done;
      }
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
