/* Running compiled models: input validation, memref descriptors, outputs.
 *
 * The generated entry point speaks MLIR's C interface for ranked memrefs:
 * a descriptor is {allocated, aligned, offset, sizes[r], strides[r]}, every
 * field 8 bytes (pointers and int64_t) on the 64-bit targets Quench
 * supports, so a rank-r descriptor is 8 * (3 + 2r) bytes and the output
 * descriptors (one struct of structs) are laid out back to back. This file
 * builds input descriptors over the caller's buffers, calls the entry, and
 * copies every output into a fresh quench_tensor (outputs may be strided
 * views or shared with nothing the caller knows about), freeing the
 * generated allocation.
 */
#include "internal.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(void *) == 8, "the generated ABI needs 64-bit pointers");
_Static_assert(sizeof(quench_dtype) == 4, "quench_dtype must be int-sized");
_Static_assert(sizeof(quench_io_info) == 24, "quench_io_info layout");
_Static_assert(sizeof(quench_model) == 104, "quench_model layout");

static _Thread_local quench_threadpool *current_pool;

/* The run in progress on this thread: where a failed run-time check or
 * allocation unwinds to (NULL outside quench_model_run), and why. */
static _Thread_local jmp_buf *check_unwind;
static _Thread_local const char *check_message;
static _Thread_local quench_status check_status;
static _Thread_local char alloc_message[96];

_Noreturn void quench_internal_fail(quench_status status, const char *message) {
  if (!check_unwind) {
    /* Generated code called outside quench_model_run: nothing to unwind to. */
    fprintf(stderr, "quench: %s%s\n",
            status == QUENCH_ERR_OUT_OF_MEMORY ? "" : "run-time check failed: ",
            message);
    abort();
  }
  check_message = message;
  check_status = status;
  longjmp(*check_unwind, 1);
}

jmp_buf *quench_internal_set_unwind(jmp_buf *unwind) {
  jmp_buf *previous = check_unwind;
  check_unwind = unwind;
  return previous;
}

const char *quench_internal_last_failure(quench_status *status) {
  *status = check_status;
  return check_message;
}

void quench_rt_check_failed(const char *message) {
  quench_internal_fail(QUENCH_ERR_INVALID_ARGUMENT, message);
}

/* Appends the decimal value to out[*n..cap), truncating silently. */
static void append_i64(char *out, size_t cap, size_t *n, int64_t value) {
  int w = snprintf(out + *n, cap - *n, "%lld", (long long)value);
  if (w > 0)
    *n += (size_t)w < cap - *n ? (size_t)w : cap - *n - 1;
}

void quench_rt_check_failed_values(const char *message, int64_t v0,
                                   int64_t v1) {
  static _Thread_local char formatted[512];
  size_t n = 0, cap = sizeof formatted;
  for (const char *p = message; *p && n + 1 < cap; ++p) {
    if (p[0] == '{' && (p[1] == '0' || p[1] == '1') && p[2] == '}') {
      append_i64(formatted, cap, &n, p[1] == '0' ? v0 : v1);
      p += 2;
      continue;
    }
    formatted[n++] = *p;
  }
  formatted[n] = '\0';
  quench_rt_check_failed(formatted);
}

_Noreturn void quench_internal_alloc_failed(size_t size) {
  snprintf(alloc_message, sizeof alloc_message,
           "out of memory: cannot allocate a buffer of %zu bytes at run time",
           size);
  quench_internal_fail(QUENCH_ERR_OUT_OF_MEMORY, alloc_message);
}

/* The GPU runtime of --target=cuda models (runtime/lib/cuda.c) records
 * errors per thread while the entry runs. Weak: an artifact without GPU code
 * never pulls cuda.o from the archive, and these are then NULL. */
#pragma weak quench_cuda_run_begin
#pragma weak quench_cuda_run_end

quench_threadpool *quench_current_threadpool(void) { return current_pool; }

/* Words (8-byte fields) in a rank-r memref descriptor. */
static size_t descriptor_words(int32_t rank) { return 3 + 2 * (size_t)rank; }

int32_t quench_model_find_input(const quench_model *model, const char *name) {
  if (!model || !name)
    return -1;
  for (int32_t i = 0; i < model->num_inputs; ++i)
    if (model->inputs[i].name && strcmp(model->inputs[i].name, name) == 0)
      return i;
  return -1;
}

/* Validates inputs[i] against its declaration. */
static quench_status check_input(const quench_io_info *info, int32_t index,
                                 const quench_tensor *t, quench_error *err) {
  int64_t count = 0;
  quench_status st = quench_tensor_size(t, &count, NULL, err);
  if (st != QUENCH_OK) {
    char msg[QUENCH_ERROR_MESSAGE_SIZE];
    snprintf(msg, sizeof msg, "%s", err ? err->message : "bad descriptor");
    return quench_error_set(err, st, "input '%s' (#%d): %s", info->name,
                            (int)index, msg);
  }
  int ok = t->dtype == info->dtype && t->rank == info->rank;
  for (int32_t d = 0; ok && d < t->rank; ++d)
    ok = info->shape[d] < 0 || info->shape[d] == t->shape[d];
  if (!ok) {
    char want[128], got[128];
    quench_format_type(info->dtype, info->rank, info->shape, want, sizeof want);
    quench_format_type(t->dtype, t->rank, t->shape, got, sizeof got);
    return quench_error_set(err,
                            t->dtype != info->dtype ? QUENCH_ERR_DTYPE_MISMATCH
                                                    : QUENCH_ERR_SHAPE_MISMATCH,
                            "input '%s' (#%d): expected %s, got %s", info->name,
                            (int)index, want, got);
  }
  if (!t->data && count > 0)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "input '%s' (#%d): data is NULL", info->name,
                            (int)index);
  return QUENCH_OK;
}

quench_status quench_model_run(const quench_model *model,
                               const quench_tensor *inputs, size_t num_inputs,
                               quench_tensor *outputs, size_t num_outputs,
                               quench_threadpool *pool, quench_error *err) {
  if (outputs && model && num_outputs == (size_t)model->num_outputs)
    memset(outputs, 0, num_outputs * sizeof *outputs);
  if (!model || !model->entry)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT, "model is NULL");
  if (model->abi_version < 1 || model->abi_version > QUENCH_MODEL_ABI_VERSION)
    return quench_error_set(err, QUENCH_ERR_UNSUPPORTED,
                            "model '%s' was compiled for model ABI %u, this "
                            "runtime has ABI %d",
                            model->name ? model->name : "?",
                            model->abi_version, QUENCH_MODEL_ABI_VERSION);
  if (num_inputs != (size_t)model->num_inputs)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "model '%s' takes %d inputs, got %zu", model->name,
                            (int)model->num_inputs, num_inputs);
  if (num_outputs != (size_t)model->num_outputs)
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "model '%s' has %d outputs, got room for %zu",
                            model->name, (int)model->num_outputs, num_outputs);
  if ((num_inputs && !inputs) || (num_outputs && !outputs))
    return quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                            "inputs or outputs array is NULL");
  {
    quench_status st = quench_model_load(model, err);
    if (st != QUENCH_OK)
      return st;
  }
  for (size_t i = 0; i < num_inputs; ++i) {
    quench_status st = check_input(&model->inputs[i], (int32_t)i, &inputs[i], err);
    if (st != QUENCH_OK)
      return st;
  }

  /* One block: the argument pointers, the input descriptors, the output
   * descriptors. */
  size_t words = 0;
  for (size_t i = 0; i < num_inputs; ++i)
    words += descriptor_words(model->inputs[i].rank);
  size_t out_words = 0;
  for (size_t i = 0; i < num_outputs; ++i)
    out_words += descriptor_words(model->outputs[i].rank);
  size_t num_args = num_inputs + (num_outputs ? 1 : 0);
  void **args = calloc(num_args + words + out_words + 1, sizeof(int64_t));
  if (!args)
    return quench_error_set(err, QUENCH_ERR_OUT_OF_MEMORY,
                            "cannot allocate argument descriptors");
  int64_t *cursor = (int64_t *)(args + num_args);
  for (size_t i = 0; i < num_inputs; ++i) {
    const quench_tensor *t = &inputs[i];
    void **desc = (void **)cursor;
    desc[0] = t->data;
    desc[1] = t->data;
    cursor[2] = 0;
    int64_t stride = 1;
    for (int32_t d = t->rank - 1; d >= 0; --d) {
      cursor[3 + d] = t->shape[d];
      cursor[3 + t->rank + d] = stride;
      stride *= t->shape[d] > 0 ? t->shape[d] : 1;
    }
    args[i] = desc;
    cursor += descriptor_words(t->rank);
  }
  int64_t *out_desc = cursor;
  if (num_outputs)
    args[num_inputs] = out_desc;

  quench_threadpool *saved = current_pool;
  jmp_buf *saved_unwind = check_unwind;
  jmp_buf unwind;
  quench_run_buffers buffers;
  current_pool = pool;
  size_t gpu_mark = quench_cuda_run_begin ? quench_cuda_run_begin() : 0;
  /* Nothing set between here and a longjmp is read after it (C11 7.13.2.1):
   * the locals above keep their values. */
  if (setjmp(unwind) != 0) {
    /* A run-time check of the generated code failed (inconsistent input
     * shapes, an index out of range, a zero divisor) or an allocation did:
     * the run stops there and frees the buffers it had allocated. */
    quench_internal_run_buffers_end(1);
    check_unwind = saved_unwind;
    current_pool = saved;
    if (quench_cuda_run_end) {
      quench_error ignored;
      (void)quench_cuda_run_end(gpu_mark, &ignored);
    }
    free(args);
    return quench_error_set(err, check_status, "model '%s': %s",
                            model->name ? model->name : "?", check_message);
  }
  quench_internal_run_buffers_begin(&buffers);
  check_unwind = &unwind;
  model->entry(args);
  check_unwind = saved_unwind;
  quench_internal_run_buffers_end(0);
  current_pool = saved;
  /* A failed GPU call made the rest of the run's GPU calls no-ops: its
   * outputs are garbage, report the error instead. */
  quench_status result =
      quench_cuda_run_end ? quench_cuda_run_end(gpu_mark, err) : QUENCH_OK;

  /* Copy every output into a runtime-owned tensor, then free what the model
   * allocated (also on failure). An output returned twice (`return %x, %x`)
   * is one allocation: free each pointer once. */
  cursor = out_desc;
  for (size_t i = 0; i < num_outputs && result == QUENCH_OK; ++i) {
    const quench_io_info *info = &model->outputs[i];
    const char *aligned = ((char **)cursor)[1];
    int64_t offset = cursor[2];
    const int64_t *sizes = cursor + 3;
    const int64_t *strides = cursor + 3 + info->rank;
    size_t item = quench_dtype_size(info->dtype);
    result = quench_tensor_alloc(&outputs[i], info->dtype, info->rank, sizes, err);
    if (result == QUENCH_OK) {
      int64_t dense[QUENCH_MAX_RANK];
      int64_t stride = 1;
      for (int32_t d = info->rank - 1; d >= 0; --d) {
        dense[d] = stride;
        stride *= sizes[d];
      }
      quench_internal_strided_copy(outputs[i].data, dense,
                                   aligned + offset * (int64_t)item, strides,
                                   sizes, info->rank, item);
    }
    cursor += descriptor_words(info->rank);
  }
  cursor = out_desc;
  for (size_t i = 0; i < num_outputs; ++i) {
    void *allocated = ((void **)cursor)[0];
    int seen = 0;
    int64_t *other = out_desc;
    for (size_t j = 0; j < i && !seen; ++j) {
      seen = ((void **)other)[0] == allocated;
      other += descriptor_words(model->outputs[j].rank);
    }
    if (!seen)
      quench_buffer_free(allocated);
    cursor += descriptor_words(model->outputs[i].rank);
  }
  free(args);
  if (result != QUENCH_OK) {
    for (size_t i = 0; i < num_outputs; ++i)
      quench_tensor_free(&outputs[i]);
    return result;
  }
  quench_error_clear(err);
  return QUENCH_OK;
}

const char *quench_model_metadata(const quench_model *model, size_t *size) {
  const char *metadata =
      model && model->abi_version >= 4 ? model->metadata : NULL;
  if (size)
    *size = metadata ? (size_t)model->metadata_size : 0;
  return metadata;
}
