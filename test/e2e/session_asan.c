/*
 * The generation session API (runtime.h, "Generation sessions") on a real
 * compiled decoder with past key/values, built by test/e2e/session_asan.py
 * together with the runtime's own sources under AddressSanitizer and
 * UndefinedBehaviorSanitizer.
 *
 *   session_asan PROMPT GREEDY
 *
 * PROMPT and GREEDY are comma-separated token ids: the prompt and the
 * model's greedy continuation computed without a cache (the references of
 * test/e2e/gen_past_models.py). The model is compiled as `tiny` (a
 * generation model; tiny.h) and its no-past twin as `plain` (plain.h).
 * Prints one line per check group and exits 0 when every check passed.
 */
#define _POSIX_C_SOURCE 200809L

#include "plain.h"
#include "tiny.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IDS 256

static int failures = 0;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                     \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
      ++failures;                                                              \
    }                                                                          \
  } while (0)

static int64_t prompt[MAX_IDS], greedy[MAX_IDS];
static int64_t prompt_len, greedy_len;

static int64_t parse_ids(const char *text, int64_t *ids) {
  int64_t n = 0;
  const char *p = text;
  while (*p) {
    char *end;
    long long v = strtoll(p, &end, 10);
    if (end == p || n == MAX_IDS || (*end && *end != ','))
      return -1;
    ids[n++] = v;
    p = *end ? end + 1 : end;
  }
  return n;
}

static int same_ids(const int64_t *a, const int64_t *b, int64_t n) {
  return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

static void print_ids(const char *what, const int64_t *ids, int64_t n) {
  fprintf(stderr, "  %s:", what);
  for (int64_t i = 0; i < n; ++i)
    fprintf(stderr, " %lld", (long long)ids[i]);
  fputc('\n', stderr);
}

/* Prefill `p` tokens, then pick `n` tokens (feeding each back except the
 * last) with `params` (NULL: greedy) and the generator seeded with `seed`.
 * The session is reset first. Returns the first failing status. */
static quench_status generate(quench_session *s, const int64_t *pr, int64_t p,
                              int64_t n, const quench_sampling *params,
                              uint64_t seed, quench_threadpool *pool,
                              int64_t *out, quench_error *err) {
  float logits[TINY_VOCAB_SIZE];
  uint64_t rng = seed;
  tiny_session_reset(s);
  quench_status st = tiny_prefill(s, pr, p, logits, pool, err);
  for (int64_t i = 0; st == QUENCH_OK && i < n; ++i) {
    st = quench_sample(logits, TINY_VOCAB_SIZE, params, &rng, &out[i], err);
    if (st == QUENCH_OK && i + 1 < n)
      st = tiny_decode(s, out[i], logits, pool, err);
  }
  return st;
}

/* Greedy through the model-prefixed wrappers, on the calling thread and on
 * a pool; the default capacity; run() with its full logits. */
static void test_greedy(void) {
  quench_error err;
  quench_session *s = tiny_session_create(0, &err);
  CHECK(s != NULL, "tiny_session_create(0): %s", err.message);
  if (!s)
    return;
  CHECK(quench_session_capacity(s) == TINY_DEFAULT_CAPACITY,
        "capacity 0 gave %lld positions, expected the default %d",
        (long long)quench_session_capacity(s), (int)TINY_DEFAULT_CAPACITY);
  CHECK(quench_session_vocab_size(s) == TINY_VOCAB_SIZE, "vocab %lld",
        (long long)quench_session_vocab_size(s));
  CHECK(quench_session_length(s) == 0, "new session has length %lld",
        (long long)quench_session_length(s));

  quench_threadpool *pool = quench_threadpool_create(2, &err);
  CHECK(pool != NULL, "quench_threadpool_create: %s", err.message);
  int64_t ids[MAX_IDS];
  for (int with_pool = 0; with_pool < 2; ++with_pool) {
    memset(ids, 0xff, sizeof ids);
    quench_status st = generate(s, prompt, prompt_len, greedy_len, NULL, 0,
                                with_pool ? pool : NULL, ids, &err);
    CHECK(st == QUENCH_OK, "greedy generation: %s", err.message);
    CHECK(same_ids(ids, greedy, greedy_len),
          "greedy ids (%s) differ from the reference",
          with_pool ? "2-thread pool" : "no pool");
    if (!same_ids(ids, greedy, greedy_len)) {
      print_ids("got", ids, greedy_len);
      print_ids("expected", greedy, greedy_len);
    }
    CHECK(quench_session_length(s) == prompt_len + greedy_len - 1,
          "length %lld after the generation, expected %lld",
          (long long)quench_session_length(s),
          (long long)(prompt_len + greedy_len - 1));
  }

  /* quench_session_run: the logits of the last new position (the model is
   * compiled with the default --kv-logits-positions=last), what prefill
   * hands back. */
  float last[TINY_VOCAB_SIZE];
  quench_session *t = tiny_session_create(prompt_len + 1, &err);
  CHECK(t != NULL, "create: %s", err.message);
  tiny_session_reset(s);
  quench_tensor logits;
  quench_status st = quench_session_run(s, prompt, prompt_len, &logits, pool,
                                        &err);
  CHECK(st == QUENCH_OK, "quench_session_run: %s", err.message);
  if (t && st == QUENCH_OK) {
    CHECK(tiny_prefill(t, prompt, prompt_len, last, NULL, &err) == QUENCH_OK,
          "prefill: %s", err.message);
    CHECK(logits.dtype == QUENCH_DTYPE_F32 && logits.rank == 3 &&
              logits.shape[0] == 1 && logits.shape[1] == 1 &&
              logits.shape[2] == TINY_VOCAB_SIZE,
          "quench_session_run logits: dtype %d rank %d",
          (int)logits.dtype, (int)logits.rank);
    if (logits.rank == 3 && logits.shape[1] == 1) {
      const float *l = (const float *)logits.data;
      for (int v = 0; v < TINY_VOCAB_SIZE; ++v)
        CHECK(fabsf(l[v] - last[v]) <= 1e-5f * (1 + fabsf(last[v])),
              "run vs prefill logit %d: %g vs %g", v, l[v], last[v]);
    }
    /* A decode step's logits through run: [1, 1, vocab]; NULL logits. */
    quench_tensor_free(&logits);
    CHECK(quench_session_run(s, &greedy[0], 1, &logits, NULL, &err) ==
              QUENCH_OK,
          "run(1 token): %s", err.message);
    CHECK(logits.rank == 3 && logits.shape[1] == 1, "decode logits rank %d",
          (int)logits.rank);
    CHECK(quench_session_run(s, &greedy[1], 1, NULL, NULL, &err) == QUENCH_OK,
          "run(NULL logits): %s", err.message);
    CHECK(quench_session_length(s) == prompt_len + 2, "length %lld",
          (long long)quench_session_length(s));
  }
  quench_tensor_free(&logits);
  tiny_session_destroy(t);
  tiny_session_destroy(s);
  quench_threadpool_destroy(pool);
  printf("greedy: done (default capacity %d, vocab %d)\n",
         (int)TINY_DEFAULT_CAPACITY, (int)TINY_VOCAB_SIZE);
}

/* Reset keeps nothing of the previous sequence: a long sequence, reset,
 * another prompt gives what a fresh session gives for that prompt. */
static void test_reset(void) {
  quench_error err;
  quench_session *a = tiny_session_create(0, &err);
  quench_session *b = tiny_session_create(0, &err);
  CHECK(a && b, "create: %s", err.message);
  if (!a || !b) {
    tiny_session_destroy(a);
    tiny_session_destroy(b);
    return;
  }
  int64_t ids[MAX_IDS], again[MAX_IDS];
  CHECK(generate(a, prompt, prompt_len, greedy_len, NULL, 0, NULL, ids,
                 &err) == QUENCH_OK,
        "generate: %s", err.message);
  tiny_session_reset(a);
  CHECK(quench_session_length(a) == 0, "length %lld after reset",
        (long long)quench_session_length(a));
  CHECK(generate(a, prompt, prompt_len, greedy_len, NULL, 0, NULL, again,
                 &err) == QUENCH_OK,
        "generate after reset: %s", err.message);
  CHECK(same_ids(ids, again, greedy_len), "ids differ after reset");
  CHECK(same_ids(again, greedy, greedy_len),
        "ids after reset differ from the reference");

  /* A shorter, different prompt (the reference's last tokens) after a long
   * sequence vs a fresh session. */
  int64_t p2[3] = {greedy[greedy_len - 1], prompt[0], greedy[0]};
  int64_t fresh[8], reused[8];
  CHECK(generate(b, p2, 3, 8, NULL, 0, NULL, fresh, &err) == QUENCH_OK,
        "generate: %s", err.message);
  CHECK(generate(a, p2, 3, 8, NULL, 0, NULL, reused, &err) == QUENCH_OK,
        "generate: %s", err.message);
  CHECK(same_ids(fresh, reused, 8),
        "a reset session differs from a fresh one on another prompt");
  tiny_session_destroy(a);
  tiny_session_destroy(b);
  printf("reset: done\n");
}

/* Sampling: reproducible with a seed, different with another seed;
 * top_k = 1 and a tiny top_p are greedy. */
static void test_sampling(void) {
  quench_error err;
  quench_session *s = tiny_session_create(0, &err);
  CHECK(s != NULL, "create: %s", err.message);
  if (!s)
    return;
  quench_sampling hot = {1.0f, 0, 1.0f};
  int64_t a[MAX_IDS], b[MAX_IDS], c[MAX_IDS];
  CHECK(generate(s, prompt, prompt_len, greedy_len, &hot, 42, NULL, a, &err) ==
            QUENCH_OK,
        "sample: %s", err.message);
  CHECK(generate(s, prompt, prompt_len, greedy_len, &hot, 42, NULL, b, &err) ==
            QUENCH_OK,
        "sample: %s", err.message);
  CHECK(generate(s, prompt, prompt_len, greedy_len, &hot, 43, NULL, c, &err) ==
            QUENCH_OK,
        "sample: %s", err.message);
  CHECK(same_ids(a, b, greedy_len), "the same seed gave different tokens");
  CHECK(!same_ids(a, c, greedy_len),
        "seeds 42 and 43 gave the same %lld tokens",
        (long long)greedy_len);
  CHECK(!same_ids(a, greedy, greedy_len),
        "temperature 1 sampled exactly the greedy continuation");
  for (int64_t i = 0; i < greedy_len; ++i)
    CHECK(a[i] >= 0 && a[i] < TINY_VOCAB_SIZE, "sampled token %lld",
          (long long)a[i]);

  quench_sampling top1 = {1.5f, 1, 1.0f}, nucleus = {1.5f, 0, 1e-6f},
                  both = {0.7f, 5, 0.5f};
  CHECK(generate(s, prompt, prompt_len, greedy_len, &top1, 7, NULL, a, &err) ==
            QUENCH_OK,
        "sample: %s", err.message);
  CHECK(same_ids(a, greedy, greedy_len), "top_k = 1 is not greedy");
  CHECK(generate(s, prompt, prompt_len, greedy_len, &nucleus, 7, NULL, a,
                 &err) == QUENCH_OK,
        "sample: %s", err.message);
  CHECK(same_ids(a, greedy, greedy_len), "top_p = 1e-6 is not greedy");
  CHECK(generate(s, prompt, prompt_len, greedy_len, &both, 9, NULL, a, &err) ==
            QUENCH_OK,
        "sample: %s", err.message);
  CHECK(generate(s, prompt, prompt_len, greedy_len, &both, 9, NULL, b, &err) ==
            QUENCH_OK,
        "sample: %s", err.message);
  CHECK(same_ids(a, b, greedy_len), "top-k + top-p not reproducible");

  /* NaN logits are never picked; all NaN is an error. */
  float logits[TINY_VOCAB_SIZE];
  for (int v = 0; v < TINY_VOCAB_SIZE; ++v)
    logits[v] = NAN;
  int64_t token = -1;
  uint64_t rng = 1;
  CHECK(quench_sample(logits, TINY_VOCAB_SIZE, &hot, &rng, &token, &err) ==
                QUENCH_ERR_INVALID_ARGUMENT &&
            err.message[0],
        "all-NaN logits were accepted");
  logits[17] = -3.0f;
  logits[60] = -2.5f;
  for (int i = 0; i < 200; ++i) {
    CHECK(quench_sample(logits, TINY_VOCAB_SIZE, &hot, &rng, &token, &err) ==
              QUENCH_OK,
          "sample: %s", err.message);
    CHECK(token == 17 || token == 60, "picked token %lld (NaN logit)",
          (long long)token);
  }
  tiny_session_destroy(s);
  printf("sampling: done\n");
}

/* Sessions of one model generating at the same time on several threads. */
typedef struct worker {
  pthread_barrier_t *start;
  quench_threadpool *pool;
  uint64_t seed;
  int64_t greedy_ids[MAX_IDS], sampled[MAX_IDS];
  int64_t greedy_repeats_ok, sampled_repeats_ok, rounds;
  quench_error err;
  quench_status status;
} worker;

enum { ROUNDS = 10, WORKERS = 3 };

static void *work(void *arg) {
  worker *w = arg;
  quench_threadpool *pool = w->pool;
  w->status = QUENCH_OK;
  quench_session *s = tiny_session_create(0, &w->err);
  if (!s)
    w->status = w->err.code;
  pthread_barrier_wait(w->start);
  quench_sampling hot = {0.8f, 20, 0.95f};
  for (int r = 0; r < ROUNDS && w->status == QUENCH_OK; ++r) {
    int64_t ids[MAX_IDS];
    w->status = generate(s, prompt, prompt_len, greedy_len, NULL, 0, pool,
                         ids, &w->err);
    if (w->status != QUENCH_OK)
      break;
    if (r == 0)
      memcpy(w->greedy_ids, ids, sizeof ids);
    else
      w->greedy_repeats_ok += same_ids(ids, w->greedy_ids, greedy_len);
    w->status = generate(s, prompt, prompt_len, greedy_len, &hot, w->seed,
                         pool, ids, &w->err);
    if (r == 0)
      memcpy(w->sampled, ids, sizeof ids);
    else
      w->sampled_repeats_ok += same_ids(ids, w->sampled, greedy_len);
    ++w->rounds;
  }
  tiny_session_destroy(s);
  return NULL;
}

static void test_threads(void) {
  quench_error err;
  /* The single-threaded references of the workers' sampled sequences. */
  quench_session *s = tiny_session_create(0, &err);
  CHECK(s != NULL, "create: %s", err.message);
  if (!s)
    return;
  quench_sampling hot = {0.8f, 20, 0.95f};
  int64_t ref[WORKERS][MAX_IDS];
  for (int k = 0; k < WORKERS; ++k)
    CHECK(generate(s, prompt, prompt_len, greedy_len, &hot, 100 + k, NULL,
                   ref[k], &err) == QUENCH_OK,
          "sample: %s", err.message);
  tiny_session_destroy(s);

  /* Worker 0 runs on its own thread only; workers 1 and 2 share a 2-thread
   * pool (concurrent loops on one pool run inline, docs/runtime.md). */
  quench_threadpool *shared = quench_threadpool_create(2, &err);
  CHECK(shared != NULL, "quench_threadpool_create: %s", err.message);
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, WORKERS);
  static worker w[WORKERS];
  pthread_t th[WORKERS];
  for (int k = 0; k < WORKERS; ++k) {
    memset(&w[k], 0, sizeof w[k]);
    w[k].start = &start;
    w[k].pool = k ? shared : NULL;
    w[k].seed = 100 + (uint64_t)k;
    CHECK(pthread_create(&th[k], NULL, work, &w[k]) == 0, "pthread_create");
  }
  for (int k = 0; k < WORKERS; ++k)
    pthread_join(th[k], NULL);
  pthread_barrier_destroy(&start);
  quench_threadpool_destroy(shared);
  for (int k = 0; k < WORKERS; ++k) {
    CHECK(w[k].status == QUENCH_OK, "worker %d: %s", k, w[k].err.message);
    CHECK(w[k].rounds == ROUNDS, "worker %d ran %lld of %d rounds", k,
          (long long)w[k].rounds, ROUNDS);
    CHECK(same_ids(w[k].greedy_ids, greedy, greedy_len),
          "worker %d: greedy ids differ from the reference", k);
    CHECK(w[k].greedy_repeats_ok == ROUNDS - 1,
          "worker %d: greedy ids changed between rounds", k);
    CHECK(same_ids(w[k].sampled, ref[k], greedy_len),
          "worker %d: sampled ids differ from one thread's", k);
    CHECK(w[k].sampled_repeats_ok == ROUNDS - 1,
          "worker %d: sampled ids changed between rounds", k);
  }
  CHECK(!same_ids(ref[0], ref[1], greedy_len),
        "seeds 100 and 101 sampled the same tokens");
  printf("threads: done (%d sessions x %d rounds)\n", WORKERS, ROUNDS);
}

/* A failed call leaves the session as it was: the generation goes on and
 * still gives the reference. */
static void test_errors_keep_state(void) {
  quench_error err;
  /* Room for exactly the prompt and the fed-back tokens. */
  int64_t cap = prompt_len + greedy_len - 1;
  quench_session *s = tiny_session_create(cap, &err);
  CHECK(s != NULL, "create(%lld): %s", (long long)cap, err.message);
  if (!s)
    return;
  CHECK(quench_session_capacity(s) == cap, "capacity %lld",
        (long long)quench_session_capacity(s));
  float logits[TINY_VOCAB_SIZE];
  int64_t too_long[MAX_IDS + 1];
  for (int64_t i = 0; i <= cap; ++i)
    too_long[i] = prompt[i % prompt_len];

  /* A prompt longer than the capacity. */
  quench_status st = tiny_prefill(s, too_long, cap + 1, logits, NULL, &err);
  CHECK(st == QUENCH_ERR_INVALID_ARGUMENT && strstr(err.message, "capacity"),
        "prefill of %lld tokens into %lld positions: status %d '%s'",
        (long long)(cap + 1), (long long)cap, (int)st, err.message);
  CHECK(quench_session_length(s) == 0, "length %lld after a failed prefill",
        (long long)quench_session_length(s));

  /* Bad tokens in the prompt. */
  int64_t bad[MAX_IDS];
  memcpy(bad, prompt, (size_t)prompt_len * sizeof *bad);
  bad[prompt_len / 2] = TINY_VOCAB_SIZE;
  st = tiny_prefill(s, bad, prompt_len, logits, NULL, &err);
  CHECK(st == QUENCH_ERR_INVALID_ARGUMENT && strstr(err.message, "vocabulary"),
        "token %d in the prompt: status %d '%s'", (int)TINY_VOCAB_SIZE,
        (int)st, err.message);
  bad[prompt_len / 2] = -1;
  st = tiny_prefill(s, bad, prompt_len, logits, NULL, &err);
  CHECK(st == QUENCH_ERR_INVALID_ARGUMENT && strstr(err.message, "vocabulary"),
        "token -1 in the prompt: status %d '%s'", (int)st, err.message);
  CHECK(quench_session_length(s) == 0, "length %lld after bad prompts",
        (long long)quench_session_length(s));
  /* Degenerate arguments. */
  CHECK(tiny_prefill(s, prompt, 0, logits, NULL, &err) ==
            QUENCH_ERR_INVALID_ARGUMENT,
        "n = 0 accepted");
  CHECK(tiny_prefill(s, prompt, -3, logits, NULL, &err) ==
            QUENCH_ERR_INVALID_ARGUMENT,
        "n = -3 accepted");
  CHECK(tiny_prefill(s, NULL, 2, logits, NULL, &err) ==
            QUENCH_ERR_INVALID_ARGUMENT,
        "NULL tokens accepted");
  CHECK(tiny_prefill(NULL, prompt, 2, logits, NULL, &err) ==
            QUENCH_ERR_INVALID_ARGUMENT,
        "NULL session accepted");
  CHECK(quench_session_run(NULL, prompt, 2, NULL, NULL, NULL) ==
            QUENCH_ERR_INVALID_ARGUMENT,
        "NULL session (NULL err) accepted");

  /* The generation, with bad decode steps in between. */
  st = tiny_prefill(s, prompt, prompt_len, logits, NULL, &err);
  CHECK(st == QUENCH_OK, "prefill: %s", err.message);
  int64_t ids[MAX_IDS];
  uint64_t rng = 0;
  for (int64_t i = 0; st == QUENCH_OK && i < greedy_len; ++i) {
    CHECK(quench_sample(logits, TINY_VOCAB_SIZE, NULL, &rng, &ids[i], &err) ==
              QUENCH_OK,
          "sample: %s", err.message);
    if (i + 1 == greedy_len)
      break;
    int64_t before = quench_session_length(s);
    float junk[TINY_VOCAB_SIZE];
    CHECK(tiny_decode(s, -5, junk, NULL, &err) == QUENCH_ERR_INVALID_ARGUMENT,
          "token -5 accepted at step %lld", (long long)i);
    CHECK(tiny_decode(s, TINY_VOCAB_SIZE + 1000, junk, NULL, &err) ==
              QUENCH_ERR_INVALID_ARGUMENT,
          "token vocab+1000 accepted at step %lld", (long long)i);
    CHECK(tiny_prefill(s, too_long, cap - before + 1, junk, NULL, &err) ==
              QUENCH_ERR_INVALID_ARGUMENT,
          "%lld tokens accepted with %lld of %lld positions used",
          (long long)(cap - before + 1), (long long)before, (long long)cap);
    CHECK(quench_session_length(s) == before,
          "a failed call changed the length from %lld to %lld",
          (long long)before, (long long)quench_session_length(s));
    st = tiny_decode(s, ids[i], logits, NULL, &err);
    CHECK(st == QUENCH_OK, "decode at step %lld: %s", (long long)i,
          err.message);
  }
  CHECK(same_ids(ids, greedy, greedy_len),
        "greedy ids with failed calls in between differ from the reference");
  CHECK(quench_session_length(s) == cap, "length %lld, capacity %lld",
        (long long)quench_session_length(s), (long long)cap);

  /* Full: one more token fails, twice, and the session stays full. */
  for (int k = 0; k < 2; ++k) {
    st = tiny_decode(s, ids[0], logits, NULL, &err);
    CHECK(st == QUENCH_ERR_INVALID_ARGUMENT && err.message[0],
          "decode past the capacity: status %d '%s'", (int)st, err.message);
    CHECK(quench_session_length(s) == cap, "length %lld after overflow",
          (long long)quench_session_length(s));
  }
  printf("capacity overflow message: %s\n", err.message);
  /* Still usable after a reset. */
  CHECK(generate(s, prompt, prompt_len, greedy_len, NULL, 0, NULL, ids,
                 &err) == QUENCH_OK,
        "generate after overflow + reset: %s", err.message);
  CHECK(same_ids(ids, greedy, greedy_len),
        "ids after overflow + reset differ from the reference");
  tiny_session_destroy(s);

  /* Capacity 1: prefill of one token, then full. */
  s = tiny_session_create(1, &err);
  CHECK(s != NULL, "create(1): %s", err.message);
  if (s) {
    CHECK(tiny_prefill(s, prompt, 1, NULL, NULL, &err) == QUENCH_OK,
          "prefill(1) with NULL logits: %s", err.message);
    CHECK(tiny_decode(s, prompt[0], NULL, NULL, &err) ==
              QUENCH_ERR_INVALID_ARGUMENT,
          "decode into a full 1-position session accepted");
    tiny_session_destroy(s);
  }
  printf("errors: done\n");
}

static void test_create(void) {
  quench_error err;
  quench_session *s = quench_session_create(&plain_model, 0, &err);
  CHECK(s == NULL && err.code == QUENCH_ERR_INVALID_ARGUMENT &&
            strstr(err.message, "not a generation model") &&
            strstr(err.message, "plain"),
        "session of a model without past: %p '%s'", (void *)s, err.message);
  printf("non-generation model: %s\n", err.message);
  quench_session_destroy(s);

  s = quench_session_create(NULL, 0, &err);
  CHECK(s == NULL && err.code == QUENCH_ERR_INVALID_ARGUMENT, "NULL model");
  s = tiny_session_create(-1, &err);
  CHECK(s == NULL && err.code == QUENCH_ERR_INVALID_ARGUMENT &&
            err.message[0],
        "capacity -1: '%s'", err.message);
  /* Caches that cannot be allocated (about 2^47 bytes), and whose byte size
   * overflows: a clear error, not a crash. */
  s = tiny_session_create((int64_t)1 << 40, &err);
  CHECK(s == NULL && err.code == QUENCH_ERR_OUT_OF_MEMORY && err.message[0],
        "capacity 2^40: %p code %d '%s'", (void *)s, (int)err.code,
        err.message);
  quench_session_destroy(s);
  s = tiny_session_create(INT64_MAX, &err);
  CHECK(s == NULL && err.code == QUENCH_ERR_OUT_OF_MEMORY && err.message[0],
        "capacity INT64_MAX: %p code %d '%s'", (void *)s, (int)err.code,
        err.message);
  quench_session_destroy(s);
  printf("huge capacity: %s\n", err.message);

  /* NULL-safe accessors. */
  quench_session_destroy(NULL);
  quench_session_reset(NULL);
  CHECK(quench_session_length(NULL) == 0 && quench_session_capacity(NULL) == 0 &&
            quench_session_vocab_size(NULL) == 0,
        "accessors of NULL");
  printf("create: done\n");
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s PROMPT_IDS GREEDY_IDS (comma-separated)\n",
            argv[0]);
    return 2;
  }
  prompt_len = parse_ids(argv[1], prompt);
  greedy_len = parse_ids(argv[2], greedy);
  if (prompt_len < 1 || greedy_len < 2 ||
      prompt_len + greedy_len > TINY_DEFAULT_CAPACITY) {
    fprintf(stderr, "bad ids (prompt %lld, greedy %lld, capacity %d)\n",
            (long long)prompt_len, (long long)greedy_len,
            (int)TINY_DEFAULT_CAPACITY);
    return 2;
  }
  test_create();
  test_greedy();
  test_reset();
  test_sampling();
  test_errors_keep_state();
  test_threads();
  if (failures) {
    fprintf(stderr, "%d checks FAILED\n", failures);
    return 1;
  }
  printf("all session checks passed\n");
  return 0;
}
