/* Generation sessions and token sampling (runtime.h, "Generation sessions").
 *
 * A session owns the cache inputs of a generation model (quench_model.
 * generation): one buffer per cache, allocated once for `capacity`
 * positions, that the compiled model updates in place. Each run fills the
 * other inputs from the session's length: token ids, an all-ones attention
 * mask over past + new positions, positions past .. past+n-1, and the past
 * length; then it calls quench_model_run with the caches as inputs.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(quench_generation_info) == 40,
               "quench_generation_info layout");

struct quench_session {
  const quench_model *model;
  const quench_generation_info *gen;
  int64_t capacity;
  int64_t length;
  int64_t vocab;
  /* One descriptor per model input; the caches' own buffers. */
  quench_tensor *inputs;
  quench_tensor *outputs;
  /* Scratch for the per-run inputs, grown on demand. */
  void *ids, *mask, *positions;
  int64_t ids_room, mask_room, positions_room;
  int64_t past_length_value;
};

/* Half-precision conversions (round to nearest even). */
static uint16_t f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u, mant = x & 0x7FFFFFu;
  int32_t exp = (int32_t)((x >> 23) & 0xFFu);
  if (exp == 0xFF)
    return (uint16_t)(sign | 0x7C00u | (mant ? 0x200u : 0));
  exp -= 127 - 15;
  if (exp >= 31)
    return (uint16_t)(sign | 0x7C00u);
  if (exp <= 0) {
    if (exp < -10)
      return (uint16_t)sign;
    mant |= 0x800000u;
    uint32_t shift = (uint32_t)(14 - exp);
    uint32_t half = mant >> shift, rest = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rest > mid || (rest == mid && (half & 1)))
      ++half;
    return (uint16_t)(sign | half);
  }
  uint32_t half = ((uint32_t)exp << 10) | (mant >> 13), rest = mant & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1)))
    ++half;
  return (uint16_t)(sign | half);
}

static float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu,
           mant = h & 0x3FFu, x;
  if (exp == 0x1F)
    x = sign | 0x7F800000u | (mant << 13);
  else if (exp)
    x = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  else if (!mant)
    x = sign;
  else {
    exp = 127 - 15 + 1;
    while (!(mant & 0x400u)) {
      mant <<= 1;
      --exp;
    }
    x = sign | (exp << 23) | ((mant & 0x3FFu) << 13);
  }
  float f;
  memcpy(&f, &x, 4);
  return f;
}

static uint16_t f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u)
    return (uint16_t)((x >> 16) | 0x40u);
  x += 0x7FFFu + ((x >> 16) & 1u);
  return (uint16_t)(x >> 16);
}

static float bf16_to_f32(uint16_t h) {
  uint32_t x = (uint32_t)h << 16;
  float f;
  memcpy(&f, &x, 4);
  return f;
}

static const quench_generation_info *generation_of(const quench_model *m) {
  return m && m->abi_version >= 3 ? m->generation : NULL;
}

/* Stores v as element i of a buffer of dtype (integers, floats, bool). */
static void store_int(void *data, quench_dtype dtype, int64_t i, int64_t v) {
  switch (dtype) {
  case QUENCH_DTYPE_I64: ((int64_t *)data)[i] = v; break;
  case QUENCH_DTYPE_U64: ((uint64_t *)data)[i] = (uint64_t)v; break;
  case QUENCH_DTYPE_I32: ((int32_t *)data)[i] = (int32_t)v; break;
  case QUENCH_DTYPE_U32: ((uint32_t *)data)[i] = (uint32_t)v; break;
  case QUENCH_DTYPE_I16: ((int16_t *)data)[i] = (int16_t)v; break;
  case QUENCH_DTYPE_U16: ((uint16_t *)data)[i] = (uint16_t)v; break;
  case QUENCH_DTYPE_I8: ((int8_t *)data)[i] = (int8_t)v; break;
  case QUENCH_DTYPE_U8:
  case QUENCH_DTYPE_BOOL: ((uint8_t *)data)[i] = (uint8_t)v; break;
  case QUENCH_DTYPE_F32: ((float *)data)[i] = (float)v; break;
  case QUENCH_DTYPE_F64: ((double *)data)[i] = (double)v; break;
  case QUENCH_DTYPE_F16:
    ((uint16_t *)data)[i] = f32_to_f16((float)v);
    break;
  case QUENCH_DTYPE_BF16:
    ((uint16_t *)data)[i] = f32_to_bf16((float)v);
    break;
  default: break;
  }
}

static int is_storable(quench_dtype dtype) {
  return dtype != QUENCH_DTYPE_INVALID && quench_dtype_size(dtype) > 0;
}

/* Checks that input `index` is a rank-`rank` tensor of a storable dtype. */
static quench_status check_role(const quench_model *m, int32_t index,
                                const char *role, int32_t rank,
                                quench_error *err) {
  if (index < 0 || index >= m->num_inputs)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "model '%s': the %s input index %d is out of "
                            "range",
                            m->name, role, (int)index);
  const quench_io_info *io = &m->inputs[index];
  if (io->rank != rank || !is_storable(io->dtype))
    return quench_error_set(err, QUENCH_ERR_UNSUPPORTED,
                            "model '%s': the %s input '%s' must be a rank-%d "
                            "tensor of numbers",
                            m->name, role, io->name, (int)rank);
  return QUENCH_OK;
}

static void free_caller_inputs(quench_session *s);

quench_session *quench_session_create(const quench_model *model,
                                      int64_t capacity, quench_error *err) {
  const quench_generation_info *gen = generation_of(model);
  if (!model) {
    quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT, "model is NULL");
    return NULL;
  }
  if (!gen) {
    quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                     "model '%s' is not a generation model (compile a "
                     "decoder exported with past key/values; see "
                     "docs/generation.md)",
                     model->name);
    return NULL;
  }
  if (capacity < 0) {
    quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                     "capacity must be >= 0 (0: the model's default), got %lld",
                     (long long)capacity);
    return NULL;
  }
  if (capacity == 0)
    capacity = gen->capacity;
  if (quench_model_load(model, err) != QUENCH_OK)
    return NULL;
  if (check_role(model, gen->input_ids, "token ids", 2, err) ||
      (gen->attention_mask >= 0 &&
       check_role(model, gen->attention_mask, "attention mask", 2, err)) ||
      (gen->position_ids >= 0 &&
       check_role(model, gen->position_ids, "position ids", 2, err)) ||
      check_role(model, gen->past_length, "past length", 0, err))
    return NULL;
  if (gen->logits < 0 || gen->logits >= model->num_outputs ||
      model->outputs[gen->logits].rank < 2 ||
      model->outputs[gen->logits].shape[model->outputs[gen->logits].rank - 1] <
          1) {
    quench_error_set(err, QUENCH_ERR_UNSUPPORTED,
                     "model '%s': the logits output has no static vocabulary",
                     model->name);
    return NULL;
  }

  quench_session *s = calloc(1, sizeof *s);
  if (!s) {
    quench_error_set(err, QUENCH_ERR_OUT_OF_MEMORY, "cannot allocate a session");
    return NULL;
  }
  s->model = model;
  s->gen = gen;
  s->capacity = capacity;
  const quench_io_info *lo = &model->outputs[gen->logits];
  s->vocab = lo->shape[lo->rank - 1];
  s->inputs = calloc((size_t)model->num_inputs + 1, sizeof *s->inputs);
  s->outputs = calloc((size_t)model->num_outputs + 1, sizeof *s->outputs);
  if (!s->inputs || !s->outputs) {
    quench_session_destroy(s);
    quench_error_set(err, QUENCH_ERR_OUT_OF_MEMORY, "cannot allocate a session");
    return NULL;
  }
  /* The caches: the io shape with its one dynamic dim set to capacity. */
  for (int32_t k = 0; k < gen->num_state; ++k) {
    int32_t i = gen->state[k];
    if (i < 0 || i >= model->num_inputs) {
      quench_session_destroy(s);
      quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                       "model '%s': cache input index %d is out of range",
                       model->name, (int)i);
      return NULL;
    }
    const quench_io_info *io = &model->inputs[i];
    int64_t shape[QUENCH_MAX_RANK];
    int dynamic = 0;
    for (int32_t d = 0; d < io->rank; ++d) {
      shape[d] = io->shape[d];
      if (shape[d] < 0) {
        shape[d] = capacity;
        ++dynamic;
      }
    }
    if (dynamic != 1) {
      quench_session_destroy(s);
      quench_error_set(err, QUENCH_ERR_UNSUPPORTED,
                       "model '%s': cache input '%s' must have exactly one "
                       "dynamic dim (the capacity)",
                       model->name, io->name);
      return NULL;
    }
    quench_error local;
    if (quench_tensor_alloc(&s->inputs[i], io->dtype, io->rank, shape,
                            &local) != QUENCH_OK) {
      quench_session_destroy(s);
      quench_error_set(err, local.code,
                       "cannot allocate the cache '%s' for %lld positions: %s",
                       io->name, (long long)capacity, local.message);
      return NULL;
    }
  }
  quench_error_clear(err);
  return s;
}

void quench_session_destroy(quench_session *s) {
  if (!s)
    return;
  if (s->inputs && s->gen)
    for (int32_t k = 0; k < s->gen->num_state; ++k) {
      int32_t i = s->gen->state[k];
      if (i >= 0 && i < s->model->num_inputs)
        quench_tensor_free(&s->inputs[i]);
    }
  free_caller_inputs(s);
  free(s->inputs);
  free(s->outputs);
  free(s->ids);
  free(s->mask);
  free(s->positions);
  free(s);
}

void quench_session_reset(quench_session *s) {
  if (s)
    s->length = 0;
}

int64_t quench_session_length(const quench_session *s) {
  return s ? s->length : 0;
}

int64_t quench_session_capacity(const quench_session *s) {
  return s ? s->capacity : 0;
}

int64_t quench_session_vocab_size(const quench_session *s) {
  return s ? s->vocab : 0;
}

/* Makes *buf hold at least `count` elements of dtype. */
static int reserve(void **buf, int64_t *room, int64_t count,
                   quench_dtype dtype) {
  if (count <= *room)
    return 1;
  size_t bytes = (size_t)count * quench_dtype_size(dtype);
  void *p = realloc(*buf, bytes ? bytes : 1);
  if (!p)
    return 0;
  *buf = p;
  *room = count;
  return 1;
}

/* A rank-2 [1, n] descriptor over data. */
static void row_tensor(quench_tensor *t, void *data, quench_dtype dtype,
                       int64_t n) {
  memset(t, 0, sizeof *t);
  t->data = data;
  t->dtype = dtype;
  t->rank = 2;
  t->shape[0] = 1;
  t->shape[1] = n;
}

/* ------------------------------------------------------------------------ */
/* Inputs the caller sets (quench_session_set_input)                         */
/* ------------------------------------------------------------------------ */

int quench_generation_caller_input(const quench_model *model, int32_t index) {
  const quench_generation_info *g = generation_of(model);
  if (!g || index < 0 || index >= model->num_inputs)
    return -1;
  if (index == g->input_ids || index == g->attention_mask ||
      index == g->position_ids || index == g->past_length)
    return 0;
  for (int32_t k = 0; k < g->num_state; ++k)
    if (g->state && index == g->state[k])
      return 0;
  return 1;
}

/* Frees the copies of quench_session_set_input. */
static void free_caller_inputs(quench_session *s) {
  if (!s->inputs || !s->model)
    return;
  for (int32_t i = 0; i < s->model->num_inputs; ++i)
    if (quench_generation_caller_input(s->model, i) == 1)
      quench_tensor_free(&s->inputs[i]);
}

/* Fails unless every input the caller sets has been set. */
static quench_status check_caller_inputs_set(const quench_session *s,
                                             quench_error *err) {
  const quench_model *m = s->model;
  for (int32_t i = 0; i < m->num_inputs; ++i)
    if (quench_generation_caller_input(m, i) == 1 && !s->inputs[i].data)
      return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                              "model '%s': input '%s' is not set: the "
                              "session fills only the token ids, mask, "
                              "positions, past length and caches; set the "
                              "others with quench_session_set_input",
                              m->name, m->inputs[i].name);
  return QUENCH_OK;
}

quench_status quench_session_set_input(quench_session *s, const char *name,
                                       const quench_tensor *value,
                                       quench_error *err) {
  if (!s || !name || !value)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "quench_session_set_input: session, name or "
                            "value is NULL");
  const quench_model *m = s->model;
  int32_t i = quench_model_find_input(m, name);
  if (i < 0)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "model '%s' has no input named '%s'", m->name,
                            name);
  if (quench_generation_caller_input(m, i) != 1)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "model '%s': input '%s' is filled by the session "
                            "(token ids, mask, positions, past length or a "
                            "cache); it cannot be set",
                            m->name, name);
  const quench_io_info *io = &m->inputs[i];
  int64_t count = 0;
  size_t bytes = 0;
  quench_error local;
  if (quench_tensor_size(value, &count, &bytes, &local) != QUENCH_OK)
    return quench_error_set(err, local.code, "input '%s': %s", name,
                            local.message);
  int ok = value->dtype == io->dtype && value->rank == io->rank;
  for (int32_t d = 0; ok && d < value->rank; ++d)
    ok = io->shape[d] < 0 || io->shape[d] == value->shape[d];
  if (!ok) {
    char want[128], got[128];
    quench_format_type(io->dtype, io->rank, io->shape, want, sizeof want);
    quench_format_type(value->dtype, value->rank, value->shape, got,
                       sizeof got);
    return quench_error_set(err,
                            value->dtype != io->dtype
                                ? QUENCH_ERR_DTYPE_MISMATCH
                                : QUENCH_ERR_SHAPE_MISMATCH,
                            "input '%s': expected %s, got %s", name, want,
                            got);
  }
  if (!value->data && count > 0)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "input '%s': data is NULL", name);
  /* A copy of the session's own: the caller may free or reuse its tensor. */
  quench_tensor copy;
  if (quench_tensor_alloc(&copy, value->dtype, value->rank, value->shape,
                          &local) != QUENCH_OK)
    return quench_error_set(err, local.code, "input '%s': %s", name,
                            local.message);
  if (bytes)
    memcpy(copy.data, value->data, bytes);
  quench_tensor_free(&s->inputs[i]);
  s->inputs[i] = copy;
  quench_error_clear(err);
  return QUENCH_OK;
}

quench_status quench_session_run(quench_session *s, const int64_t *tokens,
                                 int64_t n, quench_tensor *logits,
                                 quench_threadpool *pool, quench_error *err) {
  if (logits)
    memset(logits, 0, sizeof *logits);
  if (!s || !tokens)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "session or tokens is NULL");
  if (n < 1)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "no tokens to append (n = %lld)", (long long)n);
  if (n > s->capacity - s->length)
    return quench_error_set(
        err, QUENCH_ERR_INVALID_ARGUMENT,
        "the session's cache holds %lld of %lld positions: %lld more %s "
        "not fit (create the session with a larger capacity, up to what "
        "the model's positions allow, or reset it)",
        (long long)s->length, (long long)s->capacity, (long long)n,
        n == 1 ? "token does" : "tokens do");
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= s->vocab)
      return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                              "token %lld (#%lld of %lld) is outside the "
                              "vocabulary [0, %lld)",
                              (long long)tokens[i], (long long)i, (long long)n,
                              (long long)s->vocab);
  const quench_model *m = s->model;
  const quench_generation_info *g = s->gen;
  int64_t past = s->length, total = past + n;
  if (check_caller_inputs_set(s, err) != QUENCH_OK)
    return QUENCH_ERR_INVALID_ARGUMENT;

  quench_dtype ids_type = m->inputs[g->input_ids].dtype;
  if (!reserve(&s->ids, &s->ids_room, n, ids_type))
    return quench_error_set(err, QUENCH_ERR_OUT_OF_MEMORY,
                            "cannot allocate the token ids");
  for (int64_t i = 0; i < n; ++i)
    store_int(s->ids, ids_type, i, tokens[i]);
  row_tensor(&s->inputs[g->input_ids], s->ids, ids_type, n);
  if (g->attention_mask >= 0) {
    quench_dtype t = m->inputs[g->attention_mask].dtype;
    int64_t had = s->mask_room;
    if (!reserve(&s->mask, &s->mask_room, total, t))
      return quench_error_set(err, QUENCH_ERR_OUT_OF_MEMORY,
                              "cannot allocate the attention mask");
    for (int64_t i = had < 0 ? 0 : had; i < s->mask_room; ++i)
      store_int(s->mask, t, i, 1);
    row_tensor(&s->inputs[g->attention_mask], s->mask, t, total);
  }
  if (g->position_ids >= 0) {
    quench_dtype t = m->inputs[g->position_ids].dtype;
    if (!reserve(&s->positions, &s->positions_room, n, t))
      return quench_error_set(err, QUENCH_ERR_OUT_OF_MEMORY,
                              "cannot allocate the position ids");
    for (int64_t i = 0; i < n; ++i)
      store_int(s->positions, t, i, past + i);
    row_tensor(&s->inputs[g->position_ids], s->positions, t, n);
  }
  {
    quench_tensor *t = &s->inputs[g->past_length];
    memset(t, 0, sizeof *t);
    t->dtype = m->inputs[g->past_length].dtype;
    t->rank = 0;
    t->data = &s->past_length_value;
    s->past_length_value = 0;
    store_int(&s->past_length_value, t->dtype, 0, past);
  }

  quench_status st = quench_model_run(m, s->inputs, (size_t)m->num_inputs,
                                      s->outputs, (size_t)m->num_outputs,
                                      pool, err);
  if (st != QUENCH_OK)
    return st;
  for (int32_t k = 0; k < m->num_outputs; ++k)
    if (k != g->logits)
      quench_tensor_free(&s->outputs[k]);
  s->length = total;
  if (logits)
    *logits = s->outputs[g->logits];
  else
    quench_tensor_free(&s->outputs[g->logits]);
  memset(&s->outputs[g->logits], 0, sizeof s->outputs[g->logits]);
  return QUENCH_OK;
}

quench_status quench_session_prefill(quench_session *s, const int64_t *tokens,
                                     int64_t n, float *last_logits,
                                     quench_threadpool *pool,
                                     quench_error *err) {
  quench_tensor out;
  quench_status st =
      quench_session_run(s, tokens, n, last_logits ? &out : NULL, pool, err);
  if (st != QUENCH_OK || !last_logits)
    return st;
  int64_t count = quench_tensor_num_elements(&out);
  int64_t first = count - s->vocab;
  for (int64_t v = 0; v < s->vocab; ++v) {
    int64_t i = first + v;
    switch (out.dtype) {
    case QUENCH_DTYPE_F32: last_logits[v] = ((const float *)out.data)[i]; break;
    case QUENCH_DTYPE_F64:
      last_logits[v] = (float)((const double *)out.data)[i];
      break;
    case QUENCH_DTYPE_F16:
      last_logits[v] =
          f16_to_f32(((const uint16_t *)out.data)[i]);
      break;
    case QUENCH_DTYPE_BF16:
      last_logits[v] =
          bf16_to_f32(((const uint16_t *)out.data)[i]);
      break;
    default: last_logits[v] = NAN; break;
    }
  }
  quench_tensor_free(&out);
  return QUENCH_OK;
}

quench_status quench_session_decode(quench_session *s, int64_t token,
                                    float *last_logits,
                                    quench_threadpool *pool,
                                    quench_error *err) {
  return quench_session_prefill(s, &token, 1, last_logits, pool, err);
}

/* ------------------------------------------------------------------------ */
/* Sampling                                                                 */
/* ------------------------------------------------------------------------ */

/* splitmix64: a small, well-mixed generator; the state is any 64-bit value. */
static uint64_t next_random(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double uniform(uint64_t *state) {
  return (double)(next_random(state) >> 11) * (1.0 / 9007199254740992.0);
}

typedef struct candidate {
  float logit;
  int64_t id;
} candidate;

/* Descending logit, ascending id on ties. */
static int by_logit(const void *a, const void *b) {
  const candidate *x = a, *y = b;
  if (x->logit != y->logit)
    return x->logit < y->logit ? 1 : -1;
  return (x->id > y->id) - (x->id < y->id);
}

quench_status quench_sample(const float *logits, int64_t vocab,
                            const quench_sampling *params,
                            uint64_t *rng_state, int64_t *token,
                            quench_error *err) {
  if (!logits || !token || vocab < 1)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "quench_sample: NULL logits/token or vocab < 1");
  int64_t best = -1;
  for (int64_t i = 0; i < vocab; ++i)
    if (!isnan(logits[i]) && (best < 0 || logits[i] > logits[best]))
      best = i;
  if (best < 0)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "quench_sample: every logit is NaN");
  if (!params || !(params->temperature > 0)) {
    *token = best;
    quench_error_clear(err);
    return QUENCH_OK;
  }
  if (!rng_state)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "quench_sample: rng_state is NULL");
  candidate *c = malloc((size_t)vocab * sizeof *c);
  if (!c)
    return quench_error_set(err, QUENCH_ERR_OUT_OF_MEMORY,
                            "quench_sample: cannot allocate %lld candidates",
                            (long long)vocab);
  int64_t count = 0;
  for (int64_t i = 0; i < vocab; ++i)
    if (!isnan(logits[i]))
      c[count++] = (candidate){logits[i], i};
  int restrict_set = (params->top_k > 0 && params->top_k < count) ||
                     (params->top_p > 0 && params->top_p < 1);
  if (restrict_set)
    qsort(c, (size_t)count, sizeof *c, by_logit);
  if (params->top_k > 0 && params->top_k < count)
    count = params->top_k;
  /* Weights relative to the best logit: 1 for every logit equal to it
   * (also when it is infinite: +inf shares all the mass among the +inf
   * logits, all -inf is uniform), exp((l - best) / T) for the others; a NaN
   * weight (a -inf logit at an infinite temperature) counts as 0. */
  double inv_t = 1.0 / (double)params->temperature, sum = 0;
  double top = (double)logits[best];
  double *p = malloc((size_t)count * sizeof *p);
  if (!p) {
    free(c);
    return quench_error_set(err, QUENCH_ERR_OUT_OF_MEMORY,
                            "quench_sample: cannot allocate %lld weights",
                            (long long)count);
  }
  for (int64_t i = 0; i < count; ++i) {
    double l = (double)c[i].logit;
    p[i] = l == top ? 1.0 : exp((l - top) * inv_t);
    if (isnan(p[i]))
      p[i] = 0;
    sum += p[i];
  }
  if (params->top_p > 0 && params->top_p < 1) {
    double kept = 0;
    int64_t keep = 0;
    while (keep < count && kept < (double)params->top_p * sum)
      kept += p[keep++];
    count = keep > 0 ? keep : 1;
    sum = kept > 0 ? kept : p[0];
  }
  double r = uniform(rng_state) * sum;
  int64_t pick = count - 1;
  for (int64_t i = 0; i < count; ++i) {
    r -= p[i];
    if (r < 0) {
      pick = i;
      break;
    }
  }
  *token = c[pick].id;
  free(p);
  free(c);
  quench_error_clear(err);
  return QUENCH_OK;
}
