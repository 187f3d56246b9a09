/* Thread pool for generated parallel loops.
 *
 * One job at a time. The caller publishes a job (fn, ctx, chunk bounds) and
 * bumps `generation`; every worker wakes, takes chunks from the shared
 * counter `next` until none is left, and acknowledges by decrementing
 * `pending`; the caller takes chunks too and then waits until pending is 0.
 * Chunks are handed out dynamically (up to QUENCH_CHUNKS_PER_THREAD per
 * thread), so a thread that starts late or runs slower (a busy core, a
 * memory stall) takes fewer of them instead of holding up the loop. Workers
 * spin briefly on the atomic generation before sleeping on a condition
 * variable, and the caller spins briefly on pending before sleeping, so
 * back-to-back loops avoid most futex round trips. All workers acknowledge
 * every job (even those without a chunk), so the job fields are never rewritten
 * while a worker may still read them.
 *
 * Failures inside a chunk (a failed run-time check, an allocation the C
 * library refuses) unwind to the chunk runner of the thread that hit them,
 * which records the first one in the job and stops the handing out of
 * chunks; once every thread is done, the caller raises it on its own thread
 * (quench_internal_fail: the run returns the error). No thread leaves a
 * job while another still runs it, so the loop's context (on the caller's
 * stack) outlives every chunk. Workers allocate into the caller's run
 * (quench_internal_run_buffers_adopt), which frees their buffers when it
 * unwinds.
 *
 * Dispatch cost. Handing a loop to the workers costs time even when the loop
 * is empty: the caller publishes the job, the workers notice it (at once when
 * they spin, after a futex wake-up when they sleep), and the caller waits for
 * every acknowledgement. The pool measures that cost when it is created
 * (median time of empty jobs, once with spinning workers and once with
 * sleeping ones; QUENCH_DISPATCH_NS overrides both) and
 * quench_parallel_for_work runs a loop inline unless each of at least two
 * chunks carries QUENCH_CHUNK_DISPATCH_MULTIPLE times the cost that applies
 * at the call (docs/runtime.md, "Thread pool").
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QUENCH_MAX_THREADS 4096
#ifndef QUENCH_SPIN_ITERATIONS
#define QUENCH_SPIN_ITERATIONS 2000
#endif
#ifndef QUENCH_CHUNKS_PER_THREAD
#define QUENCH_CHUNKS_PER_THREAD 4
#endif
/* Estimated operations (estimateParallelIterationCost's unit: a scalar op or
 * 8 vector lanes) that generated code executes per nanosecond on one core;
 * measured with QUENCH_TRACE_PARALLEL (docs/runtime.md, "Thread pool"). */
#ifndef QUENCH_OPS_PER_NS
#define QUENCH_OPS_PER_NS 8
#endif
/* A chunk of quench_parallel_for_work carries at least this many times the
 * dispatch cost: with two threads, a loop then runs in at most 3/4 of its
 * serial time, dispatch included. */
#ifndef QUENCH_CHUNK_DISPATCH_MULTIPLE
#define QUENCH_CHUNK_DISPATCH_MULTIPLE 2
#endif
/* Empty jobs timed per measurement of the dispatch cost. */
#define QUENCH_DISPATCH_SAMPLES_SPINNING 15
#define QUENCH_DISPATCH_SAMPLES_SLEEPING 3

/* Tells the CPU we are in a spin-wait loop (frees pipeline resources for a
 * hyperthread sibling). */
static inline void cpu_relax(void) {
#if (defined(__GNUC__) || defined(__clang__)) &&                               \
    (defined(__x86_64__) || defined(__i386__))
  __asm__ __volatile__("pause");
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

typedef struct worker {
  struct quench_threadpool *pool;
  int index; /* 1 .. num_threads-1 */
  pthread_t thread;
} worker;

struct quench_threadpool {
  int num_threads;
  worker *workers; /* num_threads - 1 entries */

  pthread_mutex_t mutex;
  pthread_cond_t work_cv; /* generation changed or shutdown */
  pthread_cond_t done_cv; /* pending reached 0 */

  atomic_uint_fast64_t generation;
  atomic_int pending;
  atomic_int_fast64_t next; /* the next chunk to take */
  atomic_int shutdown;
  atomic_flag busy; /* a loop is running: further calls run inline */
  atomic_int sleeping; /* workers waiting on work_cv */

  /* Measured dispatch cost in ns: [0] with spinning workers, [1] with at
   * least one sleeping worker. */
  int64_t dispatch_ns[2];
  int trace; /* QUENCH_TRACE_PARALLEL: one line per loop on stderr */

  /* The current job; written by the caller before generation is bumped. */
  quench_parallel_fn fn;
  void *ctx;
  int64_t n;
  int64_t num_chunks;
  quench_run_buffers *run; /* the caller's tracker (NULL: none) */

  /* The job's first failure: set once (failed 0 -> 1) by the thread that
   * hit it, read by the caller after every thread is done. */
  atomic_int failed;
  quench_status failure_status;
  char failure_message[512];
};

static void chunk_bounds(int64_t n, int64_t k, int64_t i, int64_t *begin,
                         int64_t *end) {
  int64_t q = n / k, r = n % k;
  *begin = i * q + (i < r ? i : r);
  *end = (i + 1) * q + (i + 1 < r ? i + 1 : r);
}

/* Runs chunks of the current job until none is left, with the job's run
 * tracking this thread's allocations. A failure in a chunk unwinds here: the
 * first one is recorded and no further chunk is handed out. */
static void take_chunks(quench_threadpool *pool) {
  jmp_buf unwind;
  jmp_buf *saved_unwind = quench_internal_set_unwind(&unwind);
  quench_run_buffers *saved_run = quench_internal_run_buffers_adopt(pool->run);
  /* Nothing read after a longjmp is changed between setjmp and it. */
  if (setjmp(unwind) == 0) {
    for (;;) {
      int64_t i =
          atomic_fetch_add_explicit(&pool->next, 1, memory_order_relaxed);
      if (i >= pool->num_chunks)
        break;
      int64_t begin, end;
      chunk_bounds(pool->n, pool->num_chunks, i, &begin, &end);
      pool->fn(pool->ctx, begin, end);
    }
  } else {
    quench_status status;
    const char *message = quench_internal_last_failure(&status);
    int expected = 0;
    if (atomic_compare_exchange_strong(&pool->failed, &expected, 1)) {
      pool->failure_status = status;
      snprintf(pool->failure_message, sizeof pool->failure_message, "%s",
               message);
    }
    atomic_store_explicit(&pool->next, pool->num_chunks, memory_order_relaxed);
  }
  quench_internal_run_buffers_adopt(saved_run);
  quench_internal_set_unwind(saved_unwind);
}

static void *worker_main(void *arg) {
  worker *self = (worker *)arg;
  quench_threadpool *pool = self->pool;
  uint_fast64_t seen = 0;
  for (;;) {
    /* Wait for a new generation or shutdown: spin, then sleep. */
    uint_fast64_t gen = seen;
    for (int spin = 0; spin < QUENCH_SPIN_ITERATIONS; ++spin) {
      gen = atomic_load_explicit(&pool->generation, memory_order_acquire);
      if (gen != seen || atomic_load_explicit(&pool->shutdown,
                                              memory_order_acquire))
        break;
      cpu_relax();
    }
    if (gen == seen) {
      pthread_mutex_lock(&pool->mutex);
      atomic_fetch_add_explicit(&pool->sleeping, 1, memory_order_relaxed);
      while ((gen = atomic_load_explicit(&pool->generation,
                                         memory_order_acquire)) == seen &&
             !atomic_load_explicit(&pool->shutdown, memory_order_acquire))
        pthread_cond_wait(&pool->work_cv, &pool->mutex);
      atomic_fetch_sub_explicit(&pool->sleeping, 1, memory_order_relaxed);
      pthread_mutex_unlock(&pool->mutex);
    }
    if (gen == seen) /* shutdown */
      break;
    seen = gen;

    take_chunks(pool);
    if (atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel) ==
        1) {
      pthread_mutex_lock(&pool->mutex);
      pthread_cond_signal(&pool->done_cv);
      pthread_mutex_unlock(&pool->mutex);
    }
  }
  return NULL;
}

static void stop_workers(quench_threadpool *pool, int started) {
  pthread_mutex_lock(&pool->mutex);
  atomic_store_explicit(&pool->shutdown, 1, memory_order_release);
  pthread_cond_broadcast(&pool->work_cv);
  pthread_mutex_unlock(&pool->mutex);
  for (int i = 0; i < started; ++i)
    pthread_join(pool->workers[i].thread, NULL);
}

static void run_job(quench_threadpool *pool, int64_t n, int64_t k,
                    quench_parallel_fn fn, void *ctx);
static void set_dispatch_cost(quench_threadpool *pool);

quench_threadpool *quench_threadpool_create(int num_threads,
                                            quench_error *err) {
  if (num_threads < 0 || num_threads > QUENCH_MAX_THREADS) {
    quench_error_set(err, QUENCH_ERR_INVALID_ARGUMENT,
                     "thread count %d is outside 0..%d", num_threads,
                     QUENCH_MAX_THREADS);
    return NULL;
  }
  if (num_threads == 0) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    num_threads = cores < 1 ? 1
                  : cores > QUENCH_MAX_THREADS ? QUENCH_MAX_THREADS
                                               : (int)cores;
  }
  quench_threadpool *pool = calloc(1, sizeof *pool);
  if (!pool) {
    quench_error_set(err, QUENCH_ERR_OUT_OF_MEMORY,
                     "cannot allocate a thread pool");
    return NULL;
  }
  pool->num_threads = num_threads;
  atomic_init(&pool->generation, 0);
  atomic_init(&pool->pending, 0);
  atomic_init(&pool->shutdown, 0);
  atomic_init(&pool->failed, 0);
  atomic_init(&pool->sleeping, 0);
  atomic_flag_clear(&pool->busy);
  const char *trace = getenv("QUENCH_TRACE_PARALLEL");
  pool->trace = trace && *trace && strcmp(trace, "0") != 0;
  if (num_threads > 1) {
    pool->workers = calloc((size_t)(num_threads - 1), sizeof(worker));
    if (!pool->workers) {
      free(pool);
      quench_error_set(err, QUENCH_ERR_OUT_OF_MEMORY,
                       "cannot allocate %d worker records", num_threads - 1);
      return NULL;
    }
  }
  if (pthread_mutex_init(&pool->mutex, NULL) != 0) {
    free(pool->workers);
    free(pool);
    quench_error_set(err, QUENCH_ERR_INTERNAL, "pthread_mutex_init failed");
    return NULL;
  }
  if (pthread_cond_init(&pool->work_cv, NULL) != 0) {
    pthread_mutex_destroy(&pool->mutex);
    free(pool->workers);
    free(pool);
    quench_error_set(err, QUENCH_ERR_INTERNAL, "pthread_cond_init failed");
    return NULL;
  }
  if (pthread_cond_init(&pool->done_cv, NULL) != 0) {
    pthread_cond_destroy(&pool->work_cv);
    pthread_mutex_destroy(&pool->mutex);
    free(pool->workers);
    free(pool);
    quench_error_set(err, QUENCH_ERR_INTERNAL, "pthread_cond_init failed");
    return NULL;
  }
  for (int i = 0; i < num_threads - 1; ++i) {
    worker *w = &pool->workers[i];
    w->pool = pool;
    w->index = i + 1;
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
      char msg[128];
      quench_internal_strerror(rc, msg, sizeof msg);
      stop_workers(pool, i);
      pthread_cond_destroy(&pool->done_cv);
      pthread_cond_destroy(&pool->work_cv);
      pthread_mutex_destroy(&pool->mutex);
      free(pool->workers);
      free(pool);
      quench_error_set(err,
                       rc == EAGAIN ? QUENCH_ERR_OUT_OF_MEMORY
                                    : QUENCH_ERR_INTERNAL,
                       "cannot start worker thread %d of %d: %s", i + 1,
                       num_threads - 1, msg);
      return NULL;
    }
  }
  if (num_threads > 1)
    set_dispatch_cost(pool);
  if (pool->trace)
    fprintf(stderr,
            "quench-parallel: %d threads, dispatch cost %lld ns (spinning "
            "workers), %lld ns (sleeping workers)\n",
            num_threads, (long long)pool->dispatch_ns[0],
            (long long)pool->dispatch_ns[1]);
  quench_error_clear(err);
  return pool;
}

void quench_threadpool_destroy(quench_threadpool *pool) {
  if (!pool)
    return;
  stop_workers(pool, pool->num_threads - 1);
  pthread_cond_destroy(&pool->done_cv);
  pthread_cond_destroy(&pool->work_cv);
  pthread_mutex_destroy(&pool->mutex);
  free(pool->workers);
  free(pool);
}

int quench_threadpool_size(const quench_threadpool *pool) {
  return pool ? pool->num_threads : 1;
}

quench_status quench_parallel_for(quench_threadpool *pool, int64_t n,
                                  int64_t grain, quench_parallel_fn fn,
                                  void *ctx) {
  if (n < 0 || !fn)
    return QUENCH_ERR_INVALID_ARGUMENT;
  if (n == 0)
    return QUENCH_OK;
  if (grain < 1)
    grain = 1;
  int64_t threads = pool ? pool->num_threads : 1;
  int64_t k = n / grain;
  if (threads == 1)
    k = 1;
  else if (k > threads * QUENCH_CHUNKS_PER_THREAD)
    k = threads * QUENCH_CHUNKS_PER_THREAD;
  if (k < 1)
    k = 1;
  if (k == 1 || atomic_flag_test_and_set_explicit(&pool->busy,
                                                  memory_order_acquire)) {
    fn(ctx, 0, n); /* serial, nested or concurrent call */
    return QUENCH_OK;
  }
  run_job(pool, n, k, fn, ctx);
  return QUENCH_OK;
}

static void run_job(quench_threadpool *pool, int64_t n, int64_t k,
                    quench_parallel_fn fn, void *ctx) {
  pthread_mutex_lock(&pool->mutex);
  pool->fn = fn;
  pool->ctx = ctx;
  pool->n = n;
  pool->num_chunks = k;
  pool->run = quench_internal_run_buffers_current();
  atomic_store_explicit(&pool->failed, 0, memory_order_relaxed);
  atomic_store_explicit(&pool->next, 0, memory_order_relaxed);
  atomic_store_explicit(&pool->pending, pool->num_threads - 1,
                        memory_order_relaxed);
  atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
  pthread_cond_broadcast(&pool->work_cv);
  pthread_mutex_unlock(&pool->mutex);

  take_chunks(pool);

  int done = 0;
  for (int spin = 0; spin < QUENCH_SPIN_ITERATIONS && !done; ++spin) {
    done = atomic_load_explicit(&pool->pending, memory_order_acquire) == 0;
    if (!done)
      cpu_relax();
  }
  if (!done) {
    pthread_mutex_lock(&pool->mutex);
    while (atomic_load_explicit(&pool->pending, memory_order_acquire) != 0)
      pthread_cond_wait(&pool->done_cv, &pool->mutex);
    pthread_mutex_unlock(&pool->mutex);
  }
  if (atomic_load_explicit(&pool->failed, memory_order_acquire)) {
    /* Raised on the caller's thread once no thread runs the job: copied,
     * since the pool may run another caller's job once it is free. */
    static _Thread_local char message[sizeof pool->failure_message];
    memcpy(message, pool->failure_message, sizeof message);
    quench_status status = pool->failure_status;
    atomic_flag_clear_explicit(&pool->busy, memory_order_release);
    quench_internal_fail(status, message);
  }
  atomic_flag_clear_explicit(&pool->busy, memory_order_release);
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t saturating_mul(int64_t a, int64_t b) {
  return a != 0 && b > INT64_MAX / a ? INT64_MAX : a * b;
}

quench_status quench_parallel_for_work(quench_threadpool *pool, int64_t n,
                                       int64_t cost, quench_parallel_fn fn,
                                       void *ctx) {
  /* Bad arguments, empty loops and no pool: quench_parallel_for's answer. */
  if (!pool || n <= 0 || !fn)
    return quench_parallel_for(pool, n, 1, fn, ctx);
  if (cost < 1)
    cost = 1;
  int sleeping =
      atomic_load_explicit(&pool->sleeping, memory_order_relaxed) > 0;
  int64_t chunk_ops =
      saturating_mul(saturating_mul(pool->dispatch_ns[sleeping],
                                    QUENCH_CHUNK_DISPATCH_MULTIPLE),
                     QUENCH_OPS_PER_NS);
  int64_t grain = chunk_ops / cost + (chunk_ops % cost != 0);
  if (!pool->trace)
    return quench_parallel_for(pool, n, grain, fn, ctx);
  int64_t start = now_ns();
  quench_status status = quench_parallel_for(pool, n, grain, fn, ctx);
  int64_t chunks = grain < 1 ? n : n / grain;
  if (chunks > pool->num_threads * QUENCH_CHUNKS_PER_THREAD)
    chunks = pool->num_threads * QUENCH_CHUNKS_PER_THREAD;
  if (pool->num_threads == 1)
    chunks = 1;
  fprintf(stderr,
          "quench-parallel: n %lld cost %lld work %lld chunks %lld "
          "workers %s time %lld ns\n",
          (long long)n, (long long)cost, (long long)saturating_mul(n, cost),
          (long long)(chunks < 1 ? 1 : chunks),
          sleeping ? "sleeping" : "spinning", (long long)(now_ns() - start));
  return status;
}

static void empty_body(void *ctx, int64_t begin, int64_t end) {
  (void)ctx;
  (void)begin;
  (void)end;
}

static int compare_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Median time of `samples` empty jobs of one chunk per thread; with
 * `wait_for_sleep`, each job starts once every worker sleeps (or after 5 ms
 * of waiting for that). The pool is not shared yet. */
static int64_t measure_dispatch(quench_threadpool *pool, int samples,
                                int wait_for_sleep) {
  int64_t times[QUENCH_DISPATCH_SAMPLES_SPINNING];
  for (int i = 0; i < samples; ++i) {
    if (wait_for_sleep) {
      struct timespec pause = {0, 20000};
      for (int64_t waited = 0;
           waited < 5000000 &&
           atomic_load_explicit(&pool->sleeping, memory_order_relaxed) <
               pool->num_threads - 1;
           waited += 20000)
        nanosleep(&pause, NULL);
    }
    atomic_flag_test_and_set_explicit(&pool->busy, memory_order_acquire);
    int64_t start = now_ns();
    run_job(pool, pool->num_threads, pool->num_threads, empty_body, NULL);
    times[i] = now_ns() - start;
  }
  qsort(times, (size_t)samples, sizeof times[0], compare_i64);
  return times[samples / 2];
}

/* Sets pool->dispatch_ns from QUENCH_DISPATCH_NS or by measuring. */
static void set_dispatch_cost(quench_threadpool *pool) {
  const char *fixed = getenv("QUENCH_DISPATCH_NS");
  if (fixed && *fixed) {
    char *end;
    long long v = strtoll(fixed, &end, 10);
    if (*end == '\0' && v >= 0) {
      pool->dispatch_ns[0] = pool->dispatch_ns[1] = v;
      return;
    }
    fprintf(stderr,
            "quench: ignoring QUENCH_DISPATCH_NS='%s' (expected a "
            "nonnegative integer of nanoseconds)\n",
            fixed);
  }
  /* Warm up: the workers have just started. */
  measure_dispatch(pool, 5, 0);
  pool->dispatch_ns[0] =
      measure_dispatch(pool, QUENCH_DISPATCH_SAMPLES_SPINNING, 0);
  pool->dispatch_ns[1] =
      measure_dispatch(pool, QUENCH_DISPATCH_SAMPLES_SLEEPING, 1);
  if (pool->dispatch_ns[1] < pool->dispatch_ns[0])
    pool->dispatch_ns[1] = pool->dispatch_ns[0];
}
