/*
 * Quench runtime: the small C library linked into every model artifact that
 * Quench generates (object files, static libraries, standalone executables).
 *
 * This header is the application API: what a program that links a compiled
 * model calls (tensors, errors, thread pools, .npy files, model runs). The
 * functions that only generated code calls (parallel loops, the buffer
 * allocator, MLIR's memref hooks) are in quench/runtime_abi.h, which is not
 * for applications.
 *
 * Pure C11 + POSIX threads; no MLIR/LLVM dependency; no global mutable state:
 * every piece of state lives in an object the caller creates and passes in.
 * All functions are safe to call from several threads at once as long as they
 * do not share a mutable object (tensor, error, thread pool: see each
 * section for the exceptions that are allowed).
 *
 * Conventions
 *  - Functions that can fail return a quench_status and take a trailing
 *    `quench_error *err`. When err is non-NULL it is always written: on
 *    success err->code = QUENCH_OK and err->message = "", on failure the code
 *    and a one-line message naming the file/argument, what was expected and
 *    what was found. err may be NULL (only the status is returned).
 *  - Ownership is stated for every function ("Ownership:"). Memory handed to
 *    the caller is released with the function named there, never with free()
 *    unless stated.
 *
 * docs/runtime.md describes the design in more detail.
 */
#ifndef QUENCH_RUNTIME_H
#define QUENCH_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QUENCH_RUNTIME_VERSION_MAJOR 0
#define QUENCH_RUNTIME_VERSION_MINOR 1

/** Largest tensor rank the runtime (and the generated C ABI) supports. */
#define QUENCH_MAX_RANK 8
/** Size of quench_error::message, including the terminating NUL. */
#define QUENCH_ERROR_MESSAGE_SIZE 512
/** Alignment in bytes of every buffer allocated by the runtime. */
#define QUENCH_TENSOR_ALIGNMENT 64

#if defined(__GNUC__) || defined(__clang__)
#define QUENCH_PRINTF_LIKE(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define QUENCH_PRINTF_LIKE(fmt, args)
#endif

/* ------------------------------------------------------------------------ */
/* Status codes and errors                                                  */
/* ------------------------------------------------------------------------ */

/** Result of every fallible runtime function. Values are part of the ABI. */
typedef enum quench_status {
  QUENCH_OK = 0,
  QUENCH_ERR_INVALID_ARGUMENT = 1, /**< bad argument (NULL, negative, ...) */
  QUENCH_ERR_DTYPE_MISMATCH = 2,   /**< element type differs from expected */
  QUENCH_ERR_SHAPE_MISMATCH = 3,   /**< rank or dimensions differ */
  QUENCH_ERR_IO = 4,               /**< open/read/write/rename failed */
  QUENCH_ERR_MALFORMED_FILE = 5,   /**< file content is not valid */
  QUENCH_ERR_OUT_OF_MEMORY = 6,    /**< allocation failed or size overflow */
  QUENCH_ERR_UNSUPPORTED = 7,      /**< valid but not supported (e.g. '>f4') */
  QUENCH_ERR_INTERNAL = 8          /**< bug or unexpected system failure */
} quench_status;

/** Number of quench_status values (they are 0 .. QUENCH_STATUS_COUNT-1). */
#define QUENCH_STATUS_COUNT 9

/**
 * Short lower-case description of a status, e.g. "ok", "shape mismatch".
 * Unknown values give "unknown status".
 * Ownership: returns a static string; never NULL; do not free.
 */
const char *quench_status_string(quench_status status);

/**
 * Error report. The caller owns it (usually on the stack); functions only
 * write into it. Not shared between threads.
 */
typedef struct quench_error {
  quench_status code;
  char message[QUENCH_ERROR_MESSAGE_SIZE]; /**< NUL-terminated, one line */
} quench_error;

/** Sets err to QUENCH_OK with an empty message. NULL-safe. */
void quench_error_clear(quench_error *err);

/**
 * Fills err (if non-NULL) with code and a printf-formatted message, truncated
 * to fit; newlines are replaced by spaces. Returns code, so that
 * `return quench_error_set(err, QUENCH_ERR_IO, "...");` reads naturally.
 * Meant for drivers and applications too.
 */
quench_status quench_error_set(quench_error *err, quench_status code,
                               const char *fmt, ...) QUENCH_PRINTF_LIKE(3, 4);

/* ------------------------------------------------------------------------ */
/* Element types                                                            */
/* ------------------------------------------------------------------------ */

/** Element types. Values are part of the ABI; 0 is "no/any type". */
typedef enum quench_dtype {
  QUENCH_DTYPE_INVALID = 0,
  QUENCH_DTYPE_F32 = 1,
  QUENCH_DTYPE_F16 = 2,
  QUENCH_DTYPE_BF16 = 3,
  QUENCH_DTYPE_F64 = 4,
  QUENCH_DTYPE_I8 = 5,
  QUENCH_DTYPE_U8 = 6,
  QUENCH_DTYPE_I16 = 7,
  QUENCH_DTYPE_U16 = 8,
  QUENCH_DTYPE_I32 = 9,
  QUENCH_DTYPE_U32 = 10,
  QUENCH_DTYPE_I64 = 11,
  QUENCH_DTYPE_U64 = 12,
  QUENCH_DTYPE_BOOL = 13 /**< one byte per element, 0 or 1 */
} quench_dtype;

/** One past the largest quench_dtype value. */
#define QUENCH_DTYPE_COUNT 14

/** Size of one element in bytes; 0 for QUENCH_DTYPE_INVALID/unknown values. */
size_t quench_dtype_size(quench_dtype dtype);

/**
 * Short name: "f32", "f16", "bf16", "f64", "i8", "u8", "i16", "u16", "i32",
 * "u32", "i64", "u64", "bool"; "invalid" for anything else.
 * Ownership: static string; never NULL; do not free.
 */
const char *quench_dtype_name(quench_dtype dtype);

/**
 * Parses a name produced by quench_dtype_name (exact, case-sensitive).
 * Returns QUENCH_DTYPE_INVALID for unknown names or NULL.
 */
quench_dtype quench_dtype_from_name(const char *name);

/* ------------------------------------------------------------------------ */
/* Tensors                                                                  */
/* ------------------------------------------------------------------------ */

/**
 * Tensor descriptor. The data is always dense, contiguous and row-major
 * (C order): element (i0, ..., i{r-1}) is at linear index
 * ((i0 * shape[1] + i1) * shape[2] + ...) and byte offset index * itemsize.
 * Multi-byte elements are in the host's byte order (little-endian on every
 * supported target). rank 0 is a scalar (one element); entries
 * shape[rank .. QUENCH_MAX_RANK-1] are ignored (the runtime sets them to 0).
 *
 * The descriptor does not own `data` by itself: whoever filled it says who
 * frees it. Buffers from quench_tensor_alloc / quench_npy_read are freed with
 * quench_tensor_free.
 */
typedef struct quench_tensor {
  void *data;
  quench_dtype dtype;
  int32_t rank;
  int64_t shape[QUENCH_MAX_RANK];
} quench_tensor;

/**
 * Checks dtype, rank (0..QUENCH_MAX_RANK) and dims (>= 0), and computes the
 * element count and byte size (either output pointer may be NULL).
 * Fails with QUENCH_ERR_INVALID_ARGUMENT for a bad descriptor and
 * QUENCH_ERR_OUT_OF_MEMORY when the count or byte size overflows int64_t /
 * size_t. Does not look at t->data.
 */
quench_status quench_tensor_size(const quench_tensor *t, int64_t *num_elements,
                                 size_t *num_bytes, quench_error *err);

/** Element count (product of dims, 1 for rank 0); -1 if invalid/overflow. */
int64_t quench_tensor_num_elements(const quench_tensor *t);

/** Byte size (num_elements * itemsize); (size_t)-1 if invalid/overflow. */
size_t quench_tensor_byte_size(const quench_tensor *t);

/**
 * Fills *t with dtype/rank/shape and a new zero-initialized buffer aligned to
 * QUENCH_TENSOR_ALIGNMENT (never NULL, also for zero elements).
 * shape may be NULL when rank is 0. On failure *t is zeroed (data NULL).
 * Ownership: the caller owns t->data and frees it with quench_tensor_free.
 */
quench_status quench_tensor_alloc(quench_tensor *t, quench_dtype dtype,
                                  int32_t rank, const int64_t *shape,
                                  quench_error *err);

/**
 * Frees t->data (which must come from quench_tensor_alloc or quench_npy_read,
 * or be NULL) and zeroes the descriptor. NULL-safe; freeing twice is safe.
 */
void quench_tensor_free(quench_tensor *t);

/**
 * Writes a type string such as "f32[1, 8]" (rank 0: "f32[]"; a dim < 0 is
 * printed as "?", meaning "any") into buf (always NUL-terminated when
 * size > 0, truncated if needed). Returns the length snprintf would produce.
 * Ownership: buf is the caller's.
 */
int quench_format_type(quench_dtype dtype, int32_t rank, const int64_t *shape,
                       char *buf, size_t size);

/* ------------------------------------------------------------------------ */
/* Thread pool                                                              */
/* ------------------------------------------------------------------------ */

/**
 * Opaque pool of worker threads that runs the parallel loops of compiled
 * models (pass it to quench_model_run).
 */
typedef struct quench_threadpool quench_threadpool;

/**
 * Creates a pool that runs parallel loops on num_threads threads in total:
 * num_threads - 1 workers started now plus the thread that runs the loop
 * (the caller of quench_model_run). num_threads == 0 means the number of
 * online cores (sysconf(_SC_NPROCESSORS_ONLN)); negative values or more
 * than 4096 are invalid. No environment variable is consulted.
 * Returns NULL on failure (err filled).
 * Ownership: the caller owns the pool; release with quench_threadpool_destroy.
 */
quench_threadpool *quench_threadpool_create(int num_threads, quench_error *err);

/**
 * Stops and joins the workers and frees the pool. NULL-safe. Must not be
 * called while a model run (or any parallel loop) on this pool is running.
 */
void quench_threadpool_destroy(quench_threadpool *pool);

/** Total threads (workers + caller); 1 for a NULL pool. */
int quench_threadpool_size(const quench_threadpool *pool);

/* ------------------------------------------------------------------------ */
/* Buffer cache of compiled models                                          */
/* ------------------------------------------------------------------------ */

/*
 * Compiled models allocate their intermediate buffers from the runtime
 * (quench_buffer_alloc in runtime_abi.h), which keeps freed buffers for
 * reuse by later runs instead of returning them to the C library.
 */

/** Most bytes of freed buffers kept for reuse. */
#ifndef QUENCH_BUFFER_CACHE_BYTES
#define QUENCH_BUFFER_CACHE_BYTES ((size_t)1 << 30)
#endif

/** Most bytes of buffers that quench_model_load puts into the cache for a
 * model's first run (quench_model.buffer_sizes, rounded to size classes);
 * a model whose table needs more, or more than QUENCH_BUFFER_CACHE_BYTES,
 * is not warmed at all. */
#ifndef QUENCH_BUFFER_WARM_BYTES
#define QUENCH_BUFFER_WARM_BYTES ((size_t)256 << 20)
#endif

/** Releases every cached buffer to the C library. Thread-safe. */
void quench_buffer_cache_trim(void);

/** Bytes currently held in the cache. */
size_t quench_buffer_cache_bytes(void);

/* ------------------------------------------------------------------------ */
/* .npy files                                                               */
/* ------------------------------------------------------------------------ */

/**
 * Reads a NumPy .npy file (format versions 1.0, 2.0 and 3.0).
 *
 * Accepted: header dict with exactly the keys 'descr', 'fortran_order' and
 * 'shape' (any order, any whitespace, optional trailing comma, single or
 * double quotes); fortran_order False; shape a tuple of 0..QUENCH_MAX_RANK
 * non-negative integers (`()` is a scalar, `(3,)` a vector); descr one of
 * '<f4' '<f2' '<f8' '<i1' '<u1' '<i2' '<u2' '<i4' '<u4' '<i8' '<u8' '<b1'
 * and '<V2' (bfloat16, what NumPy + ml_dtypes writes), each with byte-order
 * character '<', '|', '=' or none (the runtime only runs on little-endian
 * hosts; '>' is also accepted on 1-byte types); data size exactly
 * count * itemsize. Bool bytes are not checked for 0/1. Data is not
 * byte-swapped or converted.
 * Rejected: big-endian data ('>' on a multi-byte type: QUENCH_ERR_UNSUPPORTED,
 * the message says to convert with astype('<f4') or similar),
 * fortran_order True, other dtypes and rank > QUENCH_MAX_RANK (all
 * QUENCH_ERR_UNSUPPORTED), and every malformed file
 * (QUENCH_ERR_MALFORMED_FILE: empty file, bad magic, version, header length,
 * dict syntax, unknown/duplicate/missing keys, negative dims, element count
 * or byte size overflow, truncated data, trailing bytes). Open/read failures
 * (missing file, directory, FIFO or other non-regular file) are
 * QUENCH_ERR_IO. The size check happens before the data buffer is allocated.
 *
 * Ownership: on success *out holds a new buffer (aligned, see
 * quench_tensor_alloc) that the caller frees with quench_tensor_free. On
 * failure *out is zeroed and nothing needs freeing.
 */
quench_status quench_npy_read(const char *path, quench_tensor *out,
                              quench_error *err);

/**
 * quench_npy_read plus a type check, for named model inputs. expected_dtype
 * QUENCH_DTYPE_INVALID accepts any dtype; expected_rank -1 accepts any rank
 * (expected_shape is then ignored and may be NULL); an expected_shape entry
 * of -1 accepts any size. On mismatch the message reads e.g.
 *   input 'x': expected f32[1, 8], got i64[1, 8] (file 'x.npy')
 * (name is a display name; NULL means "tensor"), the code is
 * QUENCH_ERR_DTYPE_MISMATCH when the dtype differs, else
 * QUENCH_ERR_SHAPE_MISMATCH, and *out is zeroed (nothing to free).
 * Ownership: as quench_npy_read.
 */
quench_status quench_npy_read_expect(const char *path, const char *name,
                                     quench_dtype expected_dtype,
                                     int32_t expected_rank,
                                     const int64_t *expected_shape,
                                     quench_tensor *out, quench_error *err);

/**
 * Writes t (contiguous row-major, see quench_tensor) as a .npy file: format
 * version 1.0 (2.0 if the header does not fit in 65535 bytes), little-endian
 * descr as listed for quench_npy_read (bf16 as '<V2', bool as '|b1', 1-byte
 * ints as '|i1'/'|u1'), fortran_order False, header padded so the data starts
 * at a multiple of 64 bytes.
 *
 * The file is written to a temporary file in the same directory
 * ("<path>.tmp.<pid>.<n>"), flushed to disk, and renamed over path, so
 * readers never see a partial file, and on any failure the temporary file is
 * removed and an existing file at path is left unchanged. t->data may be NULL
 * only when the tensor has zero elements.
 * Ownership: reads t; the caller keeps it.
 */
quench_status quench_npy_write(const char *path, const quench_tensor *t,
                               quench_error *err);

/* ------------------------------------------------------------------------ */
/* Compiled models                                                          */
/* ------------------------------------------------------------------------ */

/**
 * Version of the quench_model layout; checked by quench_model_run, which
 * also runs models of versions 1 (no weight fields), 2 (no generation
 * field), 3 (no metadata fields) and 4 (no buffer size table).
 */
#define QUENCH_MODEL_ABI_VERSION 5

/** Where a compiled model's weights are (quench_model.weights_storage). */
typedef enum quench_weight_storage {
  /** No weight image (no large constants, or resolved by symbol). */
  QUENCH_WEIGHTS_NONE = 0,
  /** In the model's object file (objects and static libraries). */
  QUENCH_WEIGHTS_EMBEDDED = 1,
  /** Appended to the executable file, mapped at load time (executables). */
  QUENCH_WEIGHTS_APPENDED = 2,
} quench_weight_storage;

/** A model input or output as seen from C. Part of the generated ABI. */
typedef struct quench_io_info {
  const char *name;     /**< graph name (ONNX input/output name) */
  quench_dtype dtype;   /**< element type (an int-sized enum) */
  int32_t rank;         /**< number of dims, 0..QUENCH_MAX_RANK */
  const int64_t *shape; /**< rank dims; -1 marks a dynamic dim */
} quench_io_info;

/**
 * The roles of a generation model's inputs and outputs: a decoder whose past
 * keys/values quench-compile turned into caches (--kv-cache; see
 * docs/generation.md). Indices are into quench_model.inputs / outputs.
 * Part of the generated ABI (version 3).
 */
typedef struct quench_generation_info {
  int32_t input_ids;      /**< token ids [1, seq] (i64 or i32) */
  int32_t attention_mask; /**< mask [1, past + seq] (all ones), or -1 */
  int32_t position_ids;   /**< positions [1, seq] = past .. past+seq-1, or -1 */
  int32_t past_length;    /**< positions already in the caches (0-d) */
  int32_t logits;         /**< output: [1, seq, vocab] or [1, vocab] */
  int32_t num_state;      /**< number of cache inputs */
  /** The cache inputs' indices. Each has exactly one dynamic dim, the
   * capacity in positions; the model writes the new positions into them
   * in place. */
  const int32_t *state;
  int64_t capacity; /**< default capacity (quench-compile --max-seq) */
} quench_generation_info;

/**
 * Entry point generated by quench-compile. args holds one pointer per input
 * to an MLIR ranked memref descriptor {allocated, aligned, offset,
 * sizes[rank], strides[rank]} (all 8-byte fields), followed, when the model
 * has outputs, by a pointer to storage for the output descriptors, laid out
 * one after the other in output order. Every output buffer is a fresh
 * allocation of quench_buffer_alloc (runtime_abi.h) that the caller frees
 * with quench_buffer_free (`allocated` is what to free).
 * Called only through quench_model_run.
 */
typedef void (*quench_model_entry)(void **args);

/**
 * Constant description of a compiled model; quench-compile emits one per
 * model as `<name>_model`. Inputs and outputs are in graph order.
 */
typedef struct quench_model {
  uint32_t abi_version; /**< QUENCH_MODEL_ABI_VERSION */
  int32_t num_inputs;
  int32_t num_outputs;
  int32_t weights_storage; /**< a quench_weight_storage (0 in version 1) */
  const char *name; /**< model (symbol prefix) name */
  const quench_io_info *inputs;
  const quench_io_info *outputs;
  quench_model_entry entry;
  /* Version 2: */
  void *weights;         /**< the weight image (page aligned), or NULL */
  uint64_t weights_size; /**< its size in bytes */
  /* Version 3: */
  /** Set for generation models (quench_session_create), else NULL. */
  const quench_generation_info *generation;
  /* Version 4: */
  /** The model's metadata: a NUL-terminated JSON object (UTF-8) that the
   * importer kept for later use, e.g. a GGUF file's tokenizer (docs/gguf.md,
   * "Metadata kept"), or NULL. Read it with quench_model_metadata. */
  const char *metadata;
  uint64_t metadata_size; /**< its length in bytes, without the NUL */
  /* Version 5: */
  /** The sizes in bytes that one run asks the buffer allocator for at the
   * allocation sites whose size the compiler knew (one entry per site, in
   * program order; sites with run-time sizes are left out), or NULL.
   * quench_model_load puts buffers of these sizes into the buffer cache
   * with their pages touched, so that the first run does not fault fresh
   * memory in (docs/runtime.md, "Warm buffers"). */
  const uint64_t *buffer_sizes;
  uint64_t num_buffer_sizes; /**< entries in buffer_sizes */
} quench_model;

/**
 * The metadata JSON object a model carries (quench_model.metadata), or NULL
 * when it has none (also for models of ABI versions before 4 and a NULL
 * model). When `size` is not NULL it receives the length in bytes (0 for
 * none). The string is part of the model's constant data: never free it.
 */
const char *quench_model_metadata(const quench_model *model, size_t *size);

/**
 * Makes the model's weights available, once per process: for an executable
 * (QUENCH_WEIGHTS_APPENDED) maps the weights appended to the executable
 * file (/proc/self/exe) over model->weights, read-only and without copying;
 * then (executables, objects and libraries alike) reads one byte of every
 * page of the weight image, so that the first run finds the weights in
 * memory and mapped instead of faulting them in one page at a time. Also
 * once per process and model (ABI version 5), it warms the buffer cache
 * with the buffers a run allocates (quench_model.buffer_sizes; skipped when
 * they take more than QUENCH_BUFFER_WARM_BYTES). quench_model_run calls it
 * on every run (only the first does any work); call it first, at startup,
 * so that the first run does not pay for it, and to report a missing or
 * damaged weight image before anything else. Fails with QUENCH_ERR_IO
 * (message names the problem, e.g. a stripped executable) and leaves the
 * model unusable. Thread-safe.
 */
quench_status quench_model_load(const quench_model *model, quench_error *err);

/**
 * Runs a compiled model once.
 *
 * inputs[i] must match model->inputs[i]: same dtype and rank, every static
 * dim equal (a dynamic dim takes any size >= 0; dims that a model requires
 * to agree across inputs, such as a shared sequence length, must agree or
 * the results are undefined), data non-NULL unless the tensor is empty.
 * A mismatch gives QUENCH_ERR_DTYPE_MISMATCH or QUENCH_ERR_SHAPE_MISMATCH
 * with a message such as
 *   input 'x' (#0): expected f32[?, 8], got f32[2, 9]
 * and nothing runs. num_inputs and num_outputs must equal the model's
 * counts (QUENCH_ERR_INVALID_ARGUMENT otherwise).
 *
 * pool runs the model's parallel loops (NULL: on the calling thread only).
 * Several threads may run the same model at once (each with its own inputs
 * and outputs); they may share a pool: a loop that finds the pool busy
 * with another run's loop runs on its own calling thread.
 *
 * A model compiled with --target=cuda also fails when its GPU work does:
 * no CUDA driver or device (QUENCH_ERR_UNSUPPORTED), GPU memory exhausted
 * (QUENCH_ERR_OUT_OF_MEMORY), any other driver error (QUENCH_ERR_INTERNAL),
 * with the driver's message (docs/runtime.md, "CUDA driver").
 *
 * Ownership: inputs are only read. On success every outputs[i] is filled
 * with a new contiguous row-major tensor that the caller frees with
 * quench_tensor_free; on failure every outputs[i] is zeroed (nothing to
 * free).
 */
quench_status quench_model_run(const quench_model *model,
                               const quench_tensor *inputs, size_t num_inputs,
                               quench_tensor *outputs, size_t num_outputs,
                               quench_threadpool *pool, quench_error *err);

/**
 * Index of the input named `name` in model->inputs, or -1 (also for NULL
 * arguments).
 */
int32_t quench_model_find_input(const quench_model *model, const char *name);

/* ------------------------------------------------------------------------ */
/* Generation sessions                                                      */
/* ------------------------------------------------------------------------ */

/*
 * A session holds the state of one generated sequence of a generation model
 * (quench_model.generation != NULL): the key/value caches, preallocated for
 * `capacity` positions, and the number of positions they hold. Each call
 * appends tokens: their keys and values are written into the caches in
 * place and attention reads the caches, so a step never recomputes or
 * copies the past. Sessions are independent: several may run the same model
 * at once on different threads; one session must not be used by two
 * threads at once.
 */
typedef struct quench_session quench_session;

/**
 * Creates a session of `model` with room for `capacity` positions (prompt
 * plus generated tokens; 0: the model's default, quench-compile --max-seq).
 * The caches are allocated (and zeroed) now. Fails with
 * QUENCH_ERR_INVALID_ARGUMENT for a model that is not a generation model or
 * a negative capacity, QUENCH_ERR_OUT_OF_MEMORY when the caches do not fit.
 * Ownership: the caller destroys the session with quench_session_destroy.
 */
quench_session *quench_session_create(const quench_model *model,
                                      int64_t capacity, quench_error *err);

/**
 * Whether input `index` of a generation model is one the caller sets with
 * quench_session_set_input (1) or one a session fills itself (0: the token
 * ids, attention mask, position ids, past length and caches); -1 when
 * `model` is not a generation model or `index` is out of range. An
 * encoder-decoder's decoder with past (docs/generation.md, "Encoder-decoder
 * models") has such inputs: the encoder's attention mask and the
 * cross-attention keys/values.
 */
int quench_generation_caller_input(const quench_model *model, int32_t index);

/**
 * Sets input `name` of the session's model to a copy of `value`, for every
 * later run of the session until it is set again: an input that the session
 * does not fill itself (quench_generation_caller_input), such as the
 * cross-attention keys/values and encoder_attention_mask of a T5 decoder,
 * computed once per prompt. quench_session_reset keeps it. Every such input
 * must be set before the first run (QUENCH_ERR_INVALID_ARGUMENT naming it
 * otherwise). Fails without changing the session: QUENCH_ERR_INVALID_ARGUMENT
 * for NULL arguments, a name the model does not have, or an input the
 * session fills; QUENCH_ERR_DTYPE_MISMATCH / QUENCH_ERR_SHAPE_MISMATCH when
 * the dtype, rank or a static dim differs from the model's input (dynamic
 * dims take any size; dims the model needs to agree, such as the encoder
 * length shared by the mask and the keys/values, must agree);
 * QUENCH_ERR_OUT_OF_MEMORY when the copy cannot be allocated.
 * Ownership: value is only read; the session frees its copy.
 */
quench_status quench_session_set_input(quench_session *session,
                                       const char *name,
                                       const quench_tensor *value,
                                       quench_error *err);

/** Frees the session and its caches. NULL-safe. */
void quench_session_destroy(quench_session *session);

/** Forgets every position (length 0); the caches stay allocated. */
void quench_session_reset(quench_session *session);

/** Positions the session holds (prompt and generated tokens so far). */
int64_t quench_session_length(const quench_session *session);

/** Capacity in positions. */
int64_t quench_session_capacity(const quench_session *session);

/** Vocabulary size (the logits' last dim). */
int64_t quench_session_vocab_size(const quench_session *session);

/**
 * Appends `n` >= 1 tokens in one run of the model (a prompt at once, or one
 * generated token). Fails without changing the session when the tokens do
 * not fit (length + n > capacity: QUENCH_ERR_INVALID_ARGUMENT, the message
 * gives the numbers), when a token is outside [0, vocab) (same code), or
 * when the model fails. `logits` may be NULL; else it receives the model's
 * logits output for the new tokens, the model's dtype: [1, 1, vocab] (the
 * last new token's; models compiled with the default
 * --kv-logits-positions=last), [1, n, vocab] (--kv-logits-positions=all)
 * or [1, vocab].
 * Ownership: the caller frees *logits with quench_tensor_free; tokens are
 * only read.
 */
quench_status quench_session_run(quench_session *session,
                                 const int64_t *tokens, int64_t n,
                                 quench_tensor *logits,
                                 quench_threadpool *pool, quench_error *err);

/**
 * quench_session_run for a prompt of `n` tokens that writes only the last
 * position's logits, as floats, into last_logits (vocab values; may be
 * NULL).
 */
quench_status quench_session_prefill(quench_session *session,
                                     const int64_t *tokens, int64_t n,
                                     float *last_logits,
                                     quench_threadpool *pool,
                                     quench_error *err);

/** One decode step: quench_session_prefill with one token. */
quench_status quench_session_decode(quench_session *session, int64_t token,
                                    float *last_logits,
                                    quench_threadpool *pool,
                                    quench_error *err);

/** How quench_sample picks a token. */
typedef struct quench_sampling {
  /** Softmax temperature; <= 0 picks the most likely token (greedy). */
  float temperature;
  /** Keep only the k most likely tokens (0: all). */
  int32_t top_k;
  /** Keep the smallest set of most likely tokens whose probability sums to
   * at least top_p (nucleus sampling; >= 1 or <= 0: all). */
  float top_p;
} quench_sampling;

/**
 * Picks a token from `vocab` logits: the most likely one (lowest id on
 * ties) when params is NULL or temperature <= 0, else a random one from the
 * softmax of logits / temperature restricted by top_k and then top_p.
 * *rng_state is the random generator's state: seed it once (any value) and
 * pass it to every call; the same seed gives the same tokens. NaN logits
 * are never picked; +inf logits share all the probability (a -inf logit is
 * never picked beside a larger one; all -inf: uniform). Fails
 * (QUENCH_ERR_INVALID_ARGUMENT) for vocab < 1, NULL pointers or all-NaN
 * logits, QUENCH_ERR_OUT_OF_MEMORY if scratch space cannot be allocated.
 */
quench_status quench_sample(const float *logits, int64_t vocab,
                            const quench_sampling *params,
                            uint64_t *rng_state, int64_t *token,
                            quench_error *err);

/**
 * The command-line program of a standalone executable (quench-compile
 * --emit=exe makes `main` call it): parses argv (see --help), reads the
 * inputs from .npy files, runs the model, and writes or prints the outputs.
 * Returns the process exit status: 0 on success, 1 on any error (one line on
 * stderr), 2 for a usage error.
 */
int quench_model_main(const quench_model *model, int argc, char **argv);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* QUENCH_RUNTIME_H */
