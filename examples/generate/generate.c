/*
 * Generates tokens from stories260K (a llama2.c TinyStories model) compiled
 * by Quench with a key/value cache: the prompt in one prefill call, then one
 * decode call per token, each reading the cache of the earlier positions
 * instead of recomputing them. Greedy by default; --temperature, --top-k,
 * --top-p and --seed sample with quench_sample. Prints the generated token
 * ids (or their text with --tokenizer) and the prefill and decode speed.
 * See README.md.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stories.h" /* generated: stories_session_create, stories_prefill,
                        stories_decode, STORIES_VOCAB_SIZE, ... */
#include <quench/runtime.h>

#define MAX_PROMPT 512

typedef struct options {
  int64_t prompt[MAX_PROMPT];
  int64_t prompt_len;
  long tokens;
  quench_sampling sampling;
  unsigned long long seed;
  int seed_given;
  long threads;
  long eos;
  long bench;
  const char *tokenizer;
} options;

static void usage(FILE *f, const char *prog) {
  fprintf(f,
          "usage: %s [--prompt IDS] [-n N] [--temperature T] [--top-k K] "
          "[--top-p P]\n"
          "          [--seed S] [--threads N] [--eos ID] [--bench R] "
          "[--tokenizer tok512.bin]\n\n"
          "Generates N tokens (default 64) after the prompt with stories260K "
          "and prints\nthem with the prefill and decode speed.\n\n"
          "  --prompt IDS       prompt token ids, separated by commas or "
          "spaces (default 1,\n"
          "                     the beginning-of-sequence token)\n"
          "  -n, --tokens N     tokens to generate (default 64; the prompt "
          "and N - 1 of\n"
          "                     them must fit the model's %d positions)\n"
          "  --temperature T    0 (default): greedy; > 0: sample from "
          "softmax(logits / T)\n"
          "  --top-k K          sample among the K most likely tokens (0: "
          "all)\n"
          "  --top-p P          sample among the most likely tokens whose "
          "probability\n"
          "                     sums to P (1: all)\n"
          "  --seed S           random seed for sampling (default: from the "
          "clock; printed)\n"
          "  --threads N        threads for the model (default 1)\n"
          "  --bench R          generate R more times (same tokens) and "
          "print the median\n"
          "                     prefill and decode times (the first run "
          "includes one-time\n"
          "                     costs)\n"
          "  --eos ID           stop after generating this token (default: "
          "none; llama2.c\n"
          "                     stops at 1, which starts the next story)\n"
          "  --tokenizer FILE   llama2.c tokenizer (tok512.bin): print text, "
          "not ids\n",
          prog, (int)STORIES_DEFAULT_CAPACITY);
}

static int parse_long(const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    return 0;
  *out = v;
  return 1;
}

static int parse_float(const char *s, float *out) {
  char *end;
  errno = 0;
  float v = strtof(s, &end);
  if (errno || end == s || *end || v != v)
    return 0;
  *out = v;
  return 1;
}

/* "1,374 324" -> ids; 0 on a malformed list. */
static int parse_prompt(const char *s, options *o, const char *prog) {
  o->prompt_len = 0;
  while (*s) {
    while (*s == ',' || *s == ' ')
      ++s;
    if (!*s)
      break;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || (*end && *end != ',' && *end != ' ')) {
      fprintf(stderr, "%s: --prompt expects token ids, got '%s'\n", prog, s);
      return 0;
    }
    if (v < 0 || v >= STORIES_VOCAB_SIZE) {
      fprintf(stderr, "%s: prompt token %lld is outside the vocabulary "
                      "[0, %d)\n",
              prog, v, (int)STORIES_VOCAB_SIZE);
      return 0;
    }
    if (o->prompt_len == MAX_PROMPT) {
      fprintf(stderr, "%s: the prompt has more than %d tokens\n", prog,
              MAX_PROMPT);
      return 0;
    }
    o->prompt[o->prompt_len++] = v;
    s = end;
  }
  if (o->prompt_len == 0) {
    fprintf(stderr, "%s: --prompt is empty\n", prog);
    return 0;
  }
  return 1;
}

/* Returns 0 to run, else the exit status. */
static int parse_args(int argc, char **argv, options *o) {
  const char *prog = argv[0];
  memset(o, 0, sizeof *o);
  o->prompt[0] = 1;
  o->prompt_len = 1;
  o->tokens = 64;
  o->sampling.top_p = 1.0f;
  o->threads = 1;
  o->eos = -1;
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout, prog);
      return -1;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "%s: unknown option or missing value: '%s'\n", prog, a);
      usage(stderr, prog);
      return 2;
    }
    const char *v = argv[++i];
    long n;
    int ok = 1;
    if (!strcmp(a, "--prompt"))
      ok = parse_prompt(v, o, prog);
    else if (!strcmp(a, "-n") || !strcmp(a, "--tokens"))
      ok = parse_long(v, 1, STORIES_DEFAULT_CAPACITY, &o->tokens);
    else if (!strcmp(a, "--temperature"))
      ok = parse_float(v, &o->sampling.temperature) &&
           o->sampling.temperature >= 0;
    else if (!strcmp(a, "--top-k")) {
      ok = parse_long(v, 0, STORIES_VOCAB_SIZE, &n);
      o->sampling.top_k = (int32_t)n;
    } else if (!strcmp(a, "--top-p"))
      ok = parse_float(v, &o->sampling.top_p) && o->sampling.top_p > 0 &&
           o->sampling.top_p <= 1;
    else if (!strcmp(a, "--seed")) {
      char *end;
      errno = 0;
      o->seed = strtoull(v, &end, 10);
      ok = !errno && end != v && !*end && v[0] != '-';
      o->seed_given = 1;
    } else if (!strcmp(a, "--threads"))
      ok = parse_long(v, 1, 256, &o->threads);
    else if (!strcmp(a, "--bench"))
      ok = parse_long(v, 1, 100000, &o->bench);
    else if (!strcmp(a, "--eos"))
      ok = parse_long(v, 0, STORIES_VOCAB_SIZE - 1, &o->eos);
    else if (!strcmp(a, "--tokenizer"))
      o->tokenizer = v;
    else {
      fprintf(stderr, "%s: unknown option '%s'\n", prog, a);
      usage(stderr, prog);
      return 2;
    }
    if (!ok) {
      if (strcmp(a, "--prompt"))
        fprintf(stderr, "%s: bad value for %s: '%s'\n", prog, a, v);
      return 2;
    }
  }
  if (o->prompt_len + o->tokens - 1 > STORIES_DEFAULT_CAPACITY) {
    fprintf(stderr,
            "%s: the prompt (%lld tokens) and %ld generated tokens need "
            "%lld positions; the model has %d\n",
            prog, (long long)o->prompt_len, o->tokens,
            (long long)(o->prompt_len + o->tokens - 1),
            (int)STORIES_DEFAULT_CAPACITY);
    return 2;
  }
  if (!o->seed_given)
    o->seed = (unsigned long long)time(NULL);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* llama2.c tokenizer (tokenizer.bin / tok512.bin), decoding only           */
/* ------------------------------------------------------------------------ */

/* Format: int32 max_token_length, then per token float32 score, int32
 * length, `length` bytes. */
typedef struct tokenizer {
  char **pieces;
  int32_t count;
} tokenizer;

static void tokenizer_free(tokenizer *t) {
  for (int32_t i = 0; t->pieces && i < t->count; ++i)
    free(t->pieces[i]);
  free(t->pieces);
  t->pieces = NULL;
}

static int tokenizer_load(tokenizer *t, const char *path, int32_t vocab,
                          const char *prog) {
  FILE *f = fopen(path, "rb");
  t->count = 0;
  t->pieces = calloc((size_t)vocab, sizeof *t->pieces);
  if (!f || !t->pieces) {
    fprintf(stderr, "%s: cannot read the tokenizer '%s': %s\n", prog, path,
            f ? "out of memory" : strerror(errno));
    if (f)
      fclose(f);
    return 0;
  }
  int32_t max_len;
  int ok = fread(&max_len, 4, 1, f) == 1 && max_len > 0;
  for (; ok && t->count < vocab; ++t->count) {
    float score;
    int32_t len;
    ok = fread(&score, 4, 1, f) == 1 && fread(&len, 4, 1, f) == 1 &&
         len >= 0 && len <= max_len;
    if (!ok)
      break;
    char *piece = malloc((size_t)len + 1);
    if (!piece || fread(piece, 1, (size_t)len, f) != (size_t)len) {
      free(piece);
      ok = 0;
      break;
    }
    piece[len] = '\0';
    t->pieces[t->count] = piece;
  }
  fclose(f);
  if (!ok) {
    fprintf(stderr,
            "%s: '%s' is not a llama2.c tokenizer of %d tokens (entry %d "
            "is missing or malformed)\n",
            prog, path, (int)vocab, (int)t->count);
    tokenizer_free(t);
    return 0;
  }
  return 1;
}

/* Prints the text of `token` as llama2.c does: no leading space right after
 * BOS (1), raw bytes for "<0xHH>" pieces, nothing for unprintable ones. */
static void print_piece(const tokenizer *t, int64_t prev, int64_t token) {
  const char *piece = t->pieces[token];
  if (prev == 1 && piece[0] == ' ')
    ++piece;
  unsigned byte;
  char close;
  if (sscanf(piece, "<0x%02X%c", &byte, &close) == 2 && close == '>') {
    if (byte == '\n' || byte == '\t' || (byte >= 0x20 && byte < 0x7F))
      putchar((int)byte);
    return;
  }
  fputs(piece, stdout);
}

/* ------------------------------------------------------------------------ */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int fail(const char *prog, const char *what, const quench_error *err) {
  fprintf(stderr, "%s: %s: %s\n", prog, what, err->message);
  return 1;
}

typedef struct timing {
  double prefill_ms, decode_ms;
  int64_t generated;
} timing;

/* One generation in `session` (reset first): the prompt in one prefill
 * call, then a sampled token and one decode call per step. Prints the
 * tokens as they come when `print`; only the model's calls are timed.
 * Returns 0, or 1 after printing the error. */
static int generate_once(quench_session *session, const options *o,
                         const tokenizer *tok, quench_threadpool *pool,
                         int print, timing *time_out, const char *prog) {
  quench_error err;
  float logits[STORIES_VOCAB_SIZE];
  uint64_t rng = o->seed;
  timing t = {0, 0, 0};
  stories_session_reset(session);
  double t0 = now_ms();
  if (stories_prefill(session, o->prompt, o->prompt_len, logits, pool,
                      &err) != QUENCH_OK)
    return fail(prog, "stories_prefill", &err);
  t.prefill_ms = now_ms() - t0;

  if (print)
    fputs(tok->pieces ? "output: " : "output:", stdout);
  int64_t prev = o->prompt[o->prompt_len - 1];
  for (long i = 0; i < o->tokens; ++i) {
    int64_t token;
    if (quench_sample(logits, STORIES_VOCAB_SIZE, &o->sampling, &rng, &token,
                      &err) != QUENCH_OK) {
      if (print)
        putchar('\n');
      return fail(prog, "quench_sample", &err);
    }
    ++t.generated;
    if (print) {
      if (tok->pieces)
        print_piece(tok, prev, token);
      else
        printf(" %lld", (long long)token);
      fflush(stdout);
    }
    prev = token;
    if (token == o->eos || i + 1 == o->tokens)
      break;
    t0 = now_ms();
    quench_status st = stories_decode(session, token, logits, pool, &err);
    t.decode_ms += now_ms() - t0;
    if (st != QUENCH_OK) {
      if (print)
        putchar('\n');
      return fail(prog, "stories_decode", &err);
    }
  }
  if (print)
    putchar('\n');
  *time_out = t;
  return 0;
}

static int compare_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  const char *prog = argc > 0 ? argv[0] : "quench_generate";
  options o;
  int rc = parse_args(argc, argv, &o);
  if (rc)
    return rc < 0 ? 0 : rc;

  tokenizer tok = {NULL, 0};
  if (o.tokenizer &&
      !tokenizer_load(&tok, o.tokenizer, STORIES_VOCAB_SIZE, prog))
    return 1;

  quench_error err;
  quench_threadpool *pool = NULL;
  quench_session *session = NULL;
  double *times = NULL;
  rc = 1;
  if (o.threads > 1 &&
      !(pool = quench_threadpool_create((int)o.threads, &err))) {
    fail(prog, "quench_threadpool_create", &err);
    goto done;
  }
  /* Room for the prompt and every generated token but the last, which is
   * never fed back. */
  session = stories_session_create(o.prompt_len + o.tokens - 1, &err);
  if (!session) {
    fail(prog, "stories_session_create", &err);
    goto done;
  }

  printf("prompt (%lld tokens):", (long long)o.prompt_len);
  for (int64_t i = 0; i < o.prompt_len; ++i)
    printf(" %lld", (long long)o.prompt[i]);
  printf("\n");
  if (o.sampling.temperature > 0)
    printf("sampling: temperature %g, top-k %d, top-p %g, seed %llu\n",
           (double)o.sampling.temperature, (int)o.sampling.top_k,
           (double)o.sampling.top_p, o.seed);
  else
    printf("greedy decoding\n");

  timing t;
  if (generate_once(session, &o, &tok, pool, 1, &t, prog))
    goto done;
  const char *what = "";
  if (o.bench > 0) {
    /* The same generation again (same seed, same tokens): medians. */
    times = malloc(2 * (size_t)o.bench * sizeof *times);
    if (!times) {
      fprintf(stderr, "%s: out of memory\n", prog);
      goto done;
    }
    for (long r = 0; r < o.bench; ++r) {
      timing b;
      if (generate_once(session, &o, &tok, pool, 0, &b, prog))
        goto done;
      times[r] = b.prefill_ms;
      times[o.bench + r] = b.decode_ms;
    }
    qsort(times, (size_t)o.bench, sizeof *times, compare_double);
    qsort(times + o.bench, (size_t)o.bench, sizeof *times, compare_double);
    t.prefill_ms = times[o.bench / 2];
    t.decode_ms = times[o.bench + o.bench / 2];
    what = " (medians of --bench runs)";
  }

  printf("prefill: %lld tokens in %.3f ms (%.1f tokens/s)%s\n",
         (long long)o.prompt_len, t.prefill_ms,
         t.prefill_ms > 0 ? 1e3 * (double)o.prompt_len / t.prefill_ms : 0.0,
         what);
  /* The first token comes from the prefill's logits; every later one from a
   * decode step. */
  if (t.generated > 1)
    printf("decode: %lld tokens in %.3f ms (%.1f tokens/s)%s\n",
           (long long)(t.generated - 1), t.decode_ms,
           t.decode_ms > 0 ? 1e3 * (double)(t.generated - 1) / t.decode_ms
                           : 0.0,
           what);
  printf("threads: %d, cache: %lld of %lld positions\n",
         quench_threadpool_size(pool),
         (long long)quench_session_length(session),
         (long long)quench_session_capacity(session));
  rc = 0;

done:
  free(times);
  stories_session_destroy(session);
  quench_threadpool_destroy(pool);
  tokenizer_free(&tok);
  return rc;
}
