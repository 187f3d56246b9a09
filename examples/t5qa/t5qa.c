/* t5qa: answers questions with the small T5 of t5qa.py, compiled by Quench.
 *
 * Links three models compiled from Hugging Face Optimum's seq2seq split
 * (README.md; docs/generation.md, "Encoder-decoder models"):
 *
 *   t5qa_encoder       encoder_model.onnx
 *   t5qa_decoder       decoder_model.onnx (no past)
 *   t5qa_decoder_past  decoder_with_past_model.onnx (a generation model:
 *                      quench-compile keeps its self-attention keys/values
 *                      in a session's cache)
 *
 * Per question: the encoder runs once; decoder_model runs once on the start
 * token and gives the first answer token and the cross-attention keys and
 * values (its present.{i}.encoder.* outputs), which are set as inputs of the
 * with-past decoder's session (quench_session_set_input) for the whole
 * answer; the session then appends the start token and the first answer
 * token in one call and one token per call until </s>. Greedy decoding.
 *
 *   t5qa --tokenizer tokenizer.json "where is delhi?" ...
 *   t5qa --ids 113,36,63,4,1 ...         (question token ids, no tokenizer)
 *
 * Prints each answer (text with --tokenizer, and its ids) and the time of
 * each phase and the answers' tokens/s. Exit status 0, 1 on any error (one
 * line on stderr), 2 for a usage error.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include "t5qa_decoder.h"
#include "t5qa_decoder_past.h"
#include "t5qa_encoder.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_QUESTIONS 256

static const char *prog = "t5qa";

static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: error: ", prog);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* ------------------------------------------------------------------------ */
/* The word tokenizer of t5qa.py (tokenizer.json)                           */
/* ------------------------------------------------------------------------ */

typedef struct tokenizer {
  char **vocab;
  int64_t size;
  int64_t pad, eos, unk, start;
} tokenizer;

static void tokenizer_free(tokenizer *t) {
  for (int64_t i = 0; i < t->size; ++i)
    free(t->vocab[i]);
  free(t->vocab);
  memset(t, 0, sizeof *t);
}

/* The integer after "key": in json, or def. */
static int64_t json_int(const char *json, const char *key, int64_t def) {
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\"", key);
  const char *p = strstr(json, pattern);
  if (!p)
    return def;
  p = strchr(p + strlen(pattern), ':');
  if (!p)
    return def;
  char *end = NULL;
  long long v = strtoll(p + 1, &end, 10);
  return end == p + 1 ? def : (int64_t)v;
}

/* Reads the "vocab" array of strings of t5qa.py's tokenizer.json (the words
 * have no escapes but \" and \\). Returns 0 or prints an error. */
static int tokenizer_load(tokenizer *t, const char *path) {
  memset(t, 0, sizeof *t);
  FILE *f = fopen(path, "rb");
  if (!f) {
    fail("cannot open the tokenizer '%s': %s", path, strerror(errno));
    return 1;
  }
  size_t cap = 1 << 16, len = 0;
  char *json = malloc(cap + 1);
  size_t got;
  while (json && (got = fread(json + len, 1, cap - len, f)) > 0) {
    len += got;
    if (len == cap) {
      char *bigger = realloc(json, 2 * cap + 1);
      if (!bigger) {
        free(json);
        json = NULL;
        break;
      }
      json = bigger;
      cap *= 2;
    }
  }
  fclose(f);
  if (!json) {
    fail("out of memory reading '%s'", path);
    return 1;
  }
  json[len] = 0;
  const char *p = strstr(json, "\"vocab\"");
  p = p ? strchr(p, '[') : NULL;
  if (!p) {
    fail("'%s' has no \"vocab\" array (not a t5qa.py tokenizer.json)", path);
    free(json);
    return 1;
  }
  ++p;
  int64_t room = 0;
  for (;;) {
    while (isspace((unsigned char)*p) || *p == ',')
      ++p;
    if (*p == ']')
      break;
    if (*p != '"') {
      fail("'%s': malformed \"vocab\" array", path);
      tokenizer_free(t);
      free(json);
      return 1;
    }
    const char *q = ++p;
    size_t n = 0;
    while (*q && *q != '"') {
      q += *q == '\\' && q[1] ? 2 : 1;
      ++n;
    }
    if (!*q) {
      fail("'%s': unterminated string in \"vocab\"", path);
      tokenizer_free(t);
      free(json);
      return 1;
    }
    if (t->size == room) {
      room = room ? 2 * room : 256;
      char **v = realloc(t->vocab, (size_t)room * sizeof *v);
      if (!v) {
        fail("out of memory");
        tokenizer_free(t);
        free(json);
        return 1;
      }
      t->vocab = v;
    }
    char *word = malloc(n + 1);
    if (!word) {
      fail("out of memory");
      tokenizer_free(t);
      free(json);
      return 1;
    }
    size_t k = 0;
    for (; p < q; ++p)
      word[k++] = *p == '\\' ? *++p : *p;
    word[k] = 0;
    t->vocab[t->size++] = word;
    p = q + 1;
  }
  t->pad = json_int(json, "pad_id", 0);
  t->eos = json_int(json, "eos_id", 1);
  t->unk = json_int(json, "unk_id", 2);
  t->start = json_int(json, "decoder_start_id", t->pad);
  free(json);
  if (t->size < 3) {
    fail("'%s': the vocabulary is too small", path);
    tokenizer_free(t);
    return 1;
  }
  return 0;
}

/* Lowercase words ([a-z0-9']+) and the marks ? . , as tokens, then </s>.
 * Returns the count, or -1 when more than `room` ids would be needed. */
static int64_t tokenizer_encode(const tokenizer *t, const char *text,
                                int64_t *ids, int64_t room) {
  int64_t n = 0;
  char word[256];
  for (const char *p = text; *p;) {
    unsigned char c = (unsigned char)tolower((unsigned char)*p);
    size_t len = 0;
    if (isalnum(c) || c == '\'') {
      while (*p && (isalnum((unsigned char)*p) || *p == '\'')) {
        if (len + 1 < sizeof word)
          word[len++] = (char)tolower((unsigned char)*p);
        ++p;
      }
    } else if (c == '?' || c == '.' || c == ',') {
      word[len++] = (char)c;
      ++p;
    } else {
      ++p;
      continue;
    }
    word[len] = 0;
    int64_t id = t->unk;
    for (int64_t i = 0; i < t->size; ++i)
      if (strcmp(t->vocab[i], word) == 0) {
        id = i;
        break;
      }
    if (n == room)
      return -1;
    ids[n++] = id;
  }
  if (n == room)
    return -1;
  ids[n++] = t->eos;
  return n;
}

/* The answer's words (up to </s>; punctuation joined to the word before). */
static void tokenizer_print(const tokenizer *t, const int64_t *ids,
                            int64_t n) {
  int first = 1;
  for (int64_t i = 0; i < n && ids[i] != t->eos; ++i) {
    if (ids[i] == t->pad)
      continue;
    const char *w = ids[i] >= 0 && ids[i] < t->size ? t->vocab[ids[i]]
                                                    : "<unk>";
    int mark = strlen(w) == 1 && strchr("?.,", w[0]);
    printf("%s%s", first || mark ? "" : " ", w);
    first = 0;
  }
}

/* ------------------------------------------------------------------------ */
/* The three models                                                         */
/* ------------------------------------------------------------------------ */

typedef struct t5 {
  quench_session *session; /* of t5qa_decoder_past */
  quench_threadpool *pool;
  int64_t vocab, start, eos, max_answer;
  float *logits;
  /* Inputs of the encoder and decoder_model, by index. */
  quench_tensor enc_in[T5QA_ENCODER_NUM_INPUTS];
  quench_tensor dec_in[T5QA_DECODER_NUM_INPUTS];
  quench_tensor enc_out[T5QA_ENCODER_NUM_OUTPUTS];
  quench_tensor dec_out[T5QA_DECODER_NUM_OUTPUTS];
} t5;

typedef struct timing {
  double encoder_ms, first_ms, past_ms;
  int64_t past_tokens, answer_tokens;
} timing;

/* Index of the output named `name` of m, or -1. */
static int32_t find_output(const quench_model *m, const char *name) {
  for (int32_t i = 0; i < m->num_outputs; ++i)
    if (strcmp(m->outputs[i].name, name) == 0)
      return i;
  return -1;
}

/* A [1, n] tensor of `dtype` holding ids (or ones when ids is NULL). */
static int int_row(quench_tensor *t, quench_dtype dtype, const int64_t *ids,
                   int64_t n, const char *name) {
  quench_error err;
  int64_t shape[2] = {1, n};
  quench_tensor_free(t);
  if (quench_tensor_alloc(t, dtype, 2, shape, &err) != QUENCH_OK) {
    fail("input '%s': %s", name, err.message);
    return 1;
  }
  for (int64_t i = 0; i < n; ++i) {
    int64_t v = ids ? ids[i] : 1;
    switch (dtype) {
    case QUENCH_DTYPE_I64: ((int64_t *)t->data)[i] = v; break;
    case QUENCH_DTYPE_I32: ((int32_t *)t->data)[i] = (int32_t)v; break;
    case QUENCH_DTYPE_F32: ((float *)t->data)[i] = (float)v; break;
    case QUENCH_DTYPE_BOOL: ((uint8_t *)t->data)[i] = v != 0; break;
    default:
      fail("input '%s': token ids and masks must be i64, i32, f32 or bool, "
           "got %s",
           name, quench_dtype_name(dtype));
      return 1;
    }
  }
  return 0;
}

static void t5_free_outputs(t5 *m) {
  for (int i = 0; i < T5QA_ENCODER_NUM_OUTPUTS; ++i)
    quench_tensor_free(&m->enc_out[i]);
  for (int i = 0; i < T5QA_DECODER_NUM_OUTPUTS; ++i)
    quench_tensor_free(&m->dec_out[i]);
}

static void t5_destroy(t5 *m) {
  t5_free_outputs(m);
  for (int i = 0; i < T5QA_ENCODER_NUM_INPUTS; ++i)
    quench_tensor_free(&m->enc_in[i]);
  /* decoder_model's encoder_hidden_states is the encoder's output. */
  int32_t h = quench_model_find_input(&t5qa_decoder_model,
                                      "encoder_hidden_states");
  for (int i = 0; i < T5QA_DECODER_NUM_INPUTS; ++i)
    if (i != h)
      quench_tensor_free(&m->dec_in[i]);
  t5qa_decoder_past_session_destroy(m->session);
  quench_threadpool_destroy(m->pool);
  free(m->logits);
}

/* The last position's logits of a [1, n, vocab] or [1, vocab] f32 tensor. */
static int last_logits(const quench_tensor *t, int64_t vocab, float *out) {
  int64_t count = quench_tensor_num_elements(t);
  if (t->dtype != QUENCH_DTYPE_F32 || count < vocab ||
      t->shape[t->rank - 1] != vocab) {
    fail("decoder_model's logits are not f32 [.., %lld]", (long long)vocab);
    return 1;
  }
  memcpy(out, (const float *)t->data + (count - vocab),
         (size_t)vocab * sizeof *out);
  return 0;
}

static int64_t argmax(const float *logits, int64_t vocab) {
  int64_t token = 0;
  quench_error err;
  /* Greedy (no sampling parameters): the largest logit, lowest id on ties. */
  if (quench_sample(logits, vocab, NULL, NULL, &token, &err) != QUENCH_OK)
    return -1;
  return token;
}

/* Checks the three models' inputs and outputs, creates the session. */
static int t5_init(t5 *m, int threads, int64_t max_answer, int64_t start,
                   int64_t eos) {
  quench_error err;
  memset(m, 0, sizeof *m);
  m->start = start;
  m->eos = eos;
  m->max_answer = max_answer;
  const quench_model *models[] = {&t5qa_encoder_model, &t5qa_decoder_model,
                                  &t5qa_decoder_past_model};
  for (int i = 0; i < 3; ++i)
    if (quench_model_load(models[i], &err) != QUENCH_OK) {
      fail("%s", err.message);
      return 1;
    }
  /* attention_mask is optional (all ones: questions are not padded). */
  static const char *const enc_inputs[] = {"input_ids", "attention_mask"};
  static const char *const dec_inputs[] = {
      "input_ids", "encoder_attention_mask", "encoder_hidden_states"};
  for (int32_t i = 0; i < t5qa_encoder_model.num_inputs; ++i)
    if (strcmp(t5qa_encoder_model.inputs[i].name, enc_inputs[0]) &&
        strcmp(t5qa_encoder_model.inputs[i].name, enc_inputs[1])) {
      fail("the encoder has an input '%s'; expected input_ids and "
           "attention_mask (Optimum's encoder_model.onnx)",
           t5qa_encoder_model.inputs[i].name);
      return 1;
    }
  if (quench_model_find_input(&t5qa_encoder_model, "input_ids") < 0) {
    fail("the encoder has no input input_ids (Optimum's encoder_model.onnx)");
    return 1;
  }
  for (int32_t i = 0; i < t5qa_decoder_model.num_inputs; ++i) {
    const char *n = t5qa_decoder_model.inputs[i].name;
    if (strcmp(n, dec_inputs[0]) && strcmp(n, dec_inputs[1]) &&
        strcmp(n, dec_inputs[2])) {
      fail("the decoder has an input '%s'; expected input_ids, "
           "encoder_attention_mask and encoder_hidden_states (Optimum's "
           "decoder_model.onnx)",
           n);
      return 1;
    }
  }
  if (quench_model_find_input(&t5qa_decoder_model, "encoder_hidden_states") <
          0 ||
      quench_model_find_input(&t5qa_decoder_model, "input_ids") < 0 ||
      find_output(&t5qa_decoder_model, "logits") < 0) {
    fail("the decoder needs inputs input_ids and encoder_hidden_states and "
         "an output logits (Optimum's decoder_model.onnx)");
    return 1;
  }
  if (!t5qa_decoder_past_model.generation) {
    fail("t5qa_decoder_past is not a generation model: compile "
         "decoder_with_past_model.onnx with the default --kv-cache=auto");
    return 1;
  }
  /* Every input of the with-past decoder that its session does not fill
   * must come from the prompt's encoder or first decoder step. */
  for (int32_t i = 0; i < t5qa_decoder_past_model.num_inputs; ++i) {
    if (quench_generation_caller_input(&t5qa_decoder_past_model, i) != 1)
      continue;
    const char *n = t5qa_decoder_past_model.inputs[i].name;
    char present[256];
    if (strcmp(n, "encoder_attention_mask") == 0 ||
        strcmp(n, "encoder_hidden_states") == 0)
      continue;
    if (strncmp(n, "past_key_values.", 16) == 0 &&
        snprintf(present, sizeof present, "present.%s", n + 16) <
            (int)sizeof present &&
        find_output(&t5qa_decoder_model, present) >= 0)
      continue;
    fail("the with-past decoder's input '%s' is neither the encoder mask, "
         "the encoder output nor a cross-attention past that "
         "decoder_model outputs as 'present.%s'",
         n, strncmp(n, "past_key_values.", 16) == 0 ? n + 16 : n);
    return 1;
  }
  /* The start token and max_answer - 1 answer tokens are fed back. */
  m->session = t5qa_decoder_past_session_create(max_answer, &err);
  if (!m->session) {
    fail("%s", err.message);
    return 1;
  }
  m->vocab = quench_session_vocab_size(m->session);
  const quench_io_info *lo =
      &t5qa_decoder_model.outputs[find_output(&t5qa_decoder_model, "logits")];
  if (lo->shape[lo->rank - 1] != m->vocab) {
    fail("the decoders' vocabularies differ (%lld, %lld)",
         (long long)lo->shape[lo->rank - 1], (long long)m->vocab);
    return 1;
  }
  if (start < 0 || start >= m->vocab) {
    fail("the decoder start token %lld is outside the vocabulary",
         (long long)start);
    return 1;
  }
  m->logits = malloc((size_t)m->vocab * sizeof *m->logits);
  m->pool = quench_threadpool_create(threads, &err);
  if (!m->logits || !m->pool) {
    fail("%s", m->pool ? "out of memory" : err.message);
    return 1;
  }
  return 0;
}

/* Answers one question (ids ending with </s>): answer ids into `answer`
 * (at most max_answer, with the final </s> if reached), times into *tm. */
static int t5_answer(t5 *m, const int64_t *question, int64_t n,
                     int64_t *answer, int64_t *answer_len, timing *tm) {
  quench_error err;
  const quench_model *enc = &t5qa_encoder_model, *dec = &t5qa_decoder_model,
                     *past = &t5qa_decoder_past_model;
  t5_free_outputs(m);
  *answer_len = 0;

  /* 1. The encoder, once. */
  double t0 = now_ms();
  for (int32_t i = 0; i < enc->num_inputs; ++i)
    if (int_row(&m->enc_in[i], enc->inputs[i].dtype,
                strcmp(enc->inputs[i].name, "input_ids") == 0 ? question
                                                               : NULL,
                n, enc->inputs[i].name))
      return 1;
  if (t5qa_encoder_run(m->enc_in, T5QA_ENCODER_NUM_INPUTS, m->enc_out,
                       T5QA_ENCODER_NUM_OUTPUTS, m->pool, &err) != QUENCH_OK) {
    fail("encoder: %s", err.message);
    return 1;
  }
  int32_t h = find_output(enc, "last_hidden_state");
  if (h < 0)
    h = 0;
  double t1 = now_ms();

  /* 2. decoder_model on the start token: the first answer token and the
   * cross-attention keys/values (present.{i}.encoder.*). */
  for (int32_t i = 0; i < dec->num_inputs; ++i) {
    const char *name = dec->inputs[i].name;
    if (strcmp(name, "encoder_hidden_states") == 0) {
      m->dec_in[i] = m->enc_out[h];
    } else if (strcmp(name, "input_ids") == 0) {
      if (int_row(&m->dec_in[i], dec->inputs[i].dtype, &m->start, 1, name))
        return 1;
    } else if (int_row(&m->dec_in[i], dec->inputs[i].dtype, NULL, n, name)) {
      return 1;
    }
  }
  if (t5qa_decoder_run(m->dec_in, T5QA_DECODER_NUM_INPUTS, m->dec_out,
                       T5QA_DECODER_NUM_OUTPUTS, m->pool, &err) != QUENCH_OK) {
    fail("decoder: %s", err.message);
    return 1;
  }
  if (last_logits(&m->dec_out[find_output(dec, "logits")], m->vocab,
                  m->logits))
    return 1;
  int64_t token = argmax(m->logits, m->vocab);
  answer[(*answer_len)++] = token;
  double t2 = now_ms();
  tm->encoder_ms += t1 - t0;
  tm->first_ms += t2 - t1;
  tm->answer_tokens += 1;
  if (token == m->eos || m->max_answer == 1)
    return 0;

  /* 3. The with-past decoder: the prompt's inputs once, then the start
   * token and the answer so far, one token per call. */
  for (int32_t i = 0; i < past->num_inputs; ++i) {
    if (quench_generation_caller_input(past, i) != 1)
      continue;
    const char *name = past->inputs[i].name;
    const quench_tensor *value = NULL;
    quench_tensor mask = {0};
    if (strcmp(name, "encoder_attention_mask") == 0) {
      /* All ones (no padding), in this input's dtype. */
      if (int_row(&mask, past->inputs[i].dtype, NULL, n, name))
        return 1;
      value = &mask;
    } else if (strcmp(name, "encoder_hidden_states") == 0) {
      value = &m->enc_out[h];
    } else {
      char present[256];
      snprintf(present, sizeof present, "present.%s", name + 16);
      value = &m->dec_out[find_output(dec, present)];
    }
    quench_status st =
        t5qa_decoder_past_session_set_input(m->session, name, value, &err);
    quench_tensor_free(&mask);
    if (st != QUENCH_OK) {
      fail("%s", err.message);
      return 1;
    }
  }
  t5qa_decoder_past_session_reset(m->session);
  int64_t prompt[2] = {m->start, token};
  if (t5qa_decoder_past_prefill(m->session, prompt, 2, m->logits, m->pool,
                                &err) != QUENCH_OK) {
    fail("decoder with past: %s", err.message);
    return 1;
  }
  int64_t fed = 2;
  for (;;) {
    token = argmax(m->logits, m->vocab);
    answer[(*answer_len)++] = token;
    if (token == m->eos || *answer_len == m->max_answer)
      break;
    if (t5qa_decoder_past_decode(m->session, token, m->logits, m->pool,
                                 &err) != QUENCH_OK) {
      fail("decoder with past: %s", err.message);
      return 1;
    }
    ++fed;
  }
  double t3 = now_ms();
  tm->past_ms += t3 - t2;
  tm->past_tokens += fed;
  tm->answer_tokens += *answer_len - 1;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Command line                                                             */
/* ------------------------------------------------------------------------ */

static void usage(FILE *f) {
  fprintf(f,
          "usage: %s [--tokenizer tokenizer.json] [--ids IDS] [--threads N] "
          "[--bench R]\n"
          "          [--max-answer N] [QUESTION ...]\n\n"
          "Answers questions with the T5 of examples/t5qa compiled by "
          "Quench (encoder\n"
          "once, cross-attention keys/values once per question, then the "
          "decoder with\n"
          "its self-attention cache), greedy.\n\n"
          "  QUESTION         question text (needs --tokenizer)\n"
          "  --ids IDS        a question as token ids separated by commas "
          "(</s> included)\n"
          "  --tokenizer F    t5qa.py's tokenizer.json: encodes text "
          "questions, prints\n"
          "                   the answers' text\n"
          "  --threads N      threads of the models' thread pool (default "
          "1; 0: every core)\n"
          "  --bench R        answer everything R more times; print the "
          "median times\n"
          "  --max-answer N   stop answers after N tokens (default 8)\n",
          prog);
}

static int parse_ids(const char *s, int64_t *ids, int64_t room,
                     int64_t *n) {
  *n = 0;
  while (*s) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno || v < 0 || *n == room)
      return 1;
    ids[(*n)++] = v;
    s = end;
    if (*s == ',')
      ++s;
    else if (*s)
      return 1;
  }
  return *n == 0;
}

static int compare_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef struct question {
  const char *text; /* NULL for --ids */
  int64_t ids[512];
  int64_t n;
} question;

int main(int argc, char **argv) {
  if (argc > 0 && argv[0])
    prog = argv[0];
  const char *tokenizer_path = NULL;
  long threads = 1, bench = 0, max_answer = 8;
  static question questions[MAX_QUESTIONS];
  int count = 0;
  const char *texts[MAX_QUESTIONS];
  int is_text[MAX_QUESTIONS];
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    }
    int takes = strcmp(a, "--tokenizer") == 0 || strcmp(a, "--ids") == 0 ||
                strcmp(a, "--threads") == 0 || strcmp(a, "--bench") == 0 ||
                strcmp(a, "--max-answer") == 0;
    if (!takes && a[0] == '-' && a[1] == '-') {
      fail("unknown option '%s' (see --help)", a);
      return 2;
    }
    if (takes && i + 1 >= argc) {
      fail("%s needs a value", a);
      return 2;
    }
    if (count == MAX_QUESTIONS &&
        (!takes || strcmp(a, "--ids") == 0)) {
      fail("more than %d questions", MAX_QUESTIONS);
      return 2;
    }
    const char *v = takes ? argv[++i] : a;
    char *end = NULL;
    if (!takes) {
      texts[count] = v;
      is_text[count++] = 1;
    } else if (strcmp(a, "--tokenizer") == 0) {
      tokenizer_path = v;
    } else if (strcmp(a, "--ids") == 0) {
      question *q = &questions[count];
      if (parse_ids(v, q->ids, 512, &q->n)) {
        fail("--ids expects up to 512 token ids >= 0 separated by commas, "
             "got '%s'",
             v);
        return 2;
      }
      texts[count] = NULL;
      is_text[count++] = 0;
    } else {
      long *dst = strcmp(a, "--threads") == 0   ? &threads
                  : strcmp(a, "--bench") == 0   ? &bench
                                                : &max_answer;
      long lo = dst == &max_answer ? 1 : 0, hi = dst == &bench ? 100000
                                               : dst == &threads ? 4096
                                                                 : 4096;
      errno = 0;
      long n = strtol(v, &end, 10);
      if (errno || !*v || *end || n < lo || n > hi) {
        fail("%s expects an integer in %ld..%ld, got '%s'", a, lo, hi, v);
        return 2;
      }
      *dst = n;
    }
  }
  if (count == 0) {
    fail("no question (give QUESTION text with --tokenizer, or --ids; see "
         "--help)");
    return 2;
  }

  int rc = 1;
  tokenizer tok = {0};
  int have_tok = 0;
  t5 m;
  memset(&m, 0, sizeof m);
  int64_t *answers = NULL, *lengths = NULL;
  double *times = NULL;
  if (tokenizer_path) {
    if (tokenizer_load(&tok, tokenizer_path))
      return 1;
    have_tok = 1;
  }
  for (int k = 0; k < count; ++k) {
    question *q = &questions[k];
    q->text = texts[k];
    if (!is_text[k])
      continue;
    if (!have_tok) {
      fail("question '%s' is text: give --tokenizer tokenizer.json (or the "
           "ids with --ids)",
           q->text);
      return 2;
    }
    q->n = tokenizer_encode(&tok, q->text, q->ids, 512);
    if (q->n < 0) {
      fail("question '%s' has more than 511 tokens", q->text);
      goto done;
    }
  }
  if (t5_init(&m, (int)threads, max_answer, have_tok ? tok.start : 0,
              have_tok ? tok.eos : 1))
    goto done;
  for (int k = 0; k < count; ++k)
    for (int64_t i = 0; i < questions[k].n; ++i)
      if (questions[k].ids[i] >= m.vocab) {
        fail("question %d: token id %lld is outside the vocabulary [0, "
             "%lld)",
             k + 1, (long long)questions[k].ids[i], (long long)m.vocab);
        goto done;
      }
  answers = malloc((size_t)count * (size_t)max_answer * sizeof *answers);
  lengths = malloc((size_t)count * sizeof *lengths);
  times = malloc(4 * (size_t)(bench + 1) * sizeof *times);
  if (!answers || !lengths || !times) {
    fail("out of memory");
    goto done;
  }
  timing total = {0};
  for (long r = 0; r <= bench; ++r) {
    timing tm = {0};
    for (int k = 0; k < count; ++k)
      if (t5_answer(&m, questions[k].ids, questions[k].n,
                    answers + (size_t)k * (size_t)max_answer, &lengths[k],
                    &tm))
        goto done;
    times[r] = tm.encoder_ms;
    times[(bench + 1) + r] = tm.first_ms;
    times[2 * (bench + 1) + r] = tm.past_ms;
    times[3 * (bench + 1) + r] = tm.encoder_ms + tm.first_ms + tm.past_ms;
    total = tm;
  }
  for (int k = 0; k < count; ++k) {
    const int64_t *a = answers + (size_t)k * (size_t)max_answer;
    if (questions[k].text)
      printf("%s -> ", questions[k].text);
    else
      printf("question %d -> ", k + 1);
    if (have_tok) {
      tokenizer_print(&tok, a, lengths[k]);
      printf(" ");
    }
    printf("[ids:");
    for (int64_t i = 0; i < lengths[k]; ++i)
      printf(" %lld", (long long)a[i]);
    printf("]\n");
  }
  /* Medians over the runs (the first one included without --bench). */
  if (bench > 0)
    for (int p = 0; p < 4; ++p)
      qsort(times + p * (bench + 1) + 1, (size_t)bench, sizeof *times,
            compare_double);
  double med[4];
  for (int p = 0; p < 4; ++p)
    med[p] = bench > 0 ? times[p * (bench + 1) + 1 + bench / 2]
                       : times[p * (bench + 1)];
  printf("%d questions, %lld answer tokens, %d threads%s:\n", count,
         (long long)total.answer_tokens, quench_threadpool_size(m.pool),
         bench > 0 ? " (medians of --bench runs)" : "");
  printf("  encoder: %.3f ms (%.3f ms/question)\n", med[0], med[0] / count);
  printf("  first step (decoder_model: cross-attention keys/values and the "
         "first token): %.3f ms\n",
         med[1]);
  printf("  decoder with past: %lld positions in %.3f ms (%.1f tokens/s)\n",
         (long long)total.past_tokens, med[2],
         med[2] > 0 ? 1e3 * (double)total.past_tokens / med[2] : 0.0);
  printf("  answers: %lld tokens in %.3f ms (%.1f tokens/s, encoder "
         "included)\n",
         (long long)total.answer_tokens, med[3],
         med[3] > 0 ? 1e3 * (double)total.answer_tokens / med[3] : 0.0);
  rc = 0;

done:
  t5_destroy(&m);
  tokenizer_free(&tok);
  free(answers);
  free(lengths);
  free(times);
  return rc;
}
