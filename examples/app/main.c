/*
 * Runs two models compiled by Quench (dense.mlir and gate.onnxtxt, see
 * CMakeLists.txt) on a thread pool through their generated C entry points
 * dense_run and gate_run, and checks every output against the same
 * computation written in C. Exits 0 when everything matches.
 */
#include <math.h>
#include <stdio.h>

#include "dense.h" /* generated: dense_model, dense_run */
#include "gate.h"  /* generated: gate_model, gate_run */
#include <quench/runtime.h>

#define DENSE_BATCH 256 /* the batch dim is dynamic: any size works */
#define DENSE_IN 8
#define DENSE_OUT 4
#define GATE_ROWS 4 /* fixed at compile time (SHAPES a=4x16 b=4x16) */
#define GATE_COLS 16

static int failures = 0;

static void check_close(const char *what, int64_t index, double got,
                        double want) {
  if (fabs(got - want) > 1e-5 * (1.0 + fabs(want))) {
    if (failures < 10)
      fprintf(stderr, "%s[%lld]: got %.7g, expected %.7g\n", what,
              (long long)index, got, want);
    ++failures;
  }
}

static int fail(const char *what, const quench_error *err) {
  fprintf(stderr, "%s: %s (%s)\n", what, err->message,
          quench_status_string(err->code));
  return 1;
}

/* y = relu(x @ w + b) with the weights written in dense.mlir. */
static int run_dense(quench_threadpool *pool) {
  quench_error err;
  quench_tensor x;
  int64_t shape[2] = {DENSE_BATCH, DENSE_IN};
  if (quench_tensor_alloc(&x, QUENCH_DTYPE_F32, 2, shape, &err) != QUENCH_OK)
    return fail("alloc", &err);
  float *xs = x.data;
  for (int i = 0; i < DENSE_BATCH * DENSE_IN; ++i)
    xs[i] = (float)(i % 7 - 3) * 0.5f;

  quench_tensor y;
  if (dense_run(&x, DENSE_NUM_INPUTS, &y, DENSE_NUM_OUTPUTS, pool, &err) !=
      QUENCH_OK) {
    quench_tensor_free(&x);
    return fail("dense_run", &err);
  }
  if (y.dtype != QUENCH_DTYPE_F32 || y.rank != 2 || y.shape[0] != DENSE_BATCH ||
      y.shape[1] != DENSE_OUT) {
    char type[64];
    quench_format_type(y.dtype, y.rank, y.shape, type, sizeof type);
    fprintf(stderr, "dense: unexpected output type %s\n", type);
    ++failures;
  } else {
    const float *ys = y.data;
    for (int i = 0; i < DENSE_BATCH; ++i)
      for (int n = 0; n < DENSE_OUT; ++n) {
        double acc = 0.5 - 0.5 * n; /* b[n] */
        for (int k = 0; k < DENSE_IN; ++k)
          acc += xs[i * DENSE_IN + k] * (0.125 * (k + 1) - 0.25 * n);
        check_close("dense y", i * DENSE_OUT + n, ys[i * DENSE_OUT + n],
                    acc > 0 ? acc : 0);
      }
    printf("%s: %s[%lld, %lld], row 0 = [%g, %g, %g, %g]\n", dense_model.name,
           dense_model.outputs[0].name, (long long)y.shape[0],
           (long long)y.shape[1], ys[0], ys[1], ys[2], ys[3]);
  }
  quench_tensor_free(&y);
  quench_tensor_free(&x);
  return 0;
}

/* probs = softmax(a * b) over the last axis. */
static int run_gate(quench_threadpool *pool) {
  quench_error err;
  quench_tensor in[GATE_NUM_INPUTS], out;
  int64_t shape[2] = {GATE_ROWS, GATE_COLS};
  for (int t = 0; t < 2; ++t)
    if (quench_tensor_alloc(&in[t], QUENCH_DTYPE_F32, 2, shape, &err) !=
        QUENCH_OK) {
      if (t == 1)
        quench_tensor_free(&in[0]);
      return fail("alloc", &err);
    }
  float *a = in[0].data, *b = in[1].data;
  for (int i = 0; i < GATE_ROWS * GATE_COLS; ++i) {
    a[i] = (float)(i % 5) * 0.25f - 0.5f;
    b[i] = (float)(i % 3) + 0.5f;
  }

  /* Inputs are checked against the model's declaration before it runs. */
  quench_tensor bad = in[0];
  bad.shape[0] = GATE_ROWS - 1;
  quench_tensor bad_inputs[2] = {bad, in[1]};
  if (gate_run(bad_inputs, 2, &out, 1, pool, &err) !=
      QUENCH_ERR_SHAPE_MISMATCH) {
    fprintf(stderr, "gate_run accepted a wrong shape\n");
    ++failures;
  } else {
    printf("gate: rejected a wrong input as expected: %s\n", err.message);
  }

  if (gate_run(in, GATE_NUM_INPUTS, &out, GATE_NUM_OUTPUTS, pool, &err) !=
      QUENCH_OK) {
    quench_tensor_free(&in[0]);
    quench_tensor_free(&in[1]);
    return fail("gate_run", &err);
  }
  const float *p = out.data;
  for (int i = 0; i < GATE_ROWS; ++i) {
    double max = -INFINITY, sum = 0;
    for (int j = 0; j < GATE_COLS; ++j) {
      double v = (double)a[i * GATE_COLS + j] * b[i * GATE_COLS + j];
      max = v > max ? v : max;
    }
    for (int j = 0; j < GATE_COLS; ++j)
      sum += exp((double)a[i * GATE_COLS + j] * b[i * GATE_COLS + j] - max);
    for (int j = 0; j < GATE_COLS; ++j) {
      double v = (double)a[i * GATE_COLS + j] * b[i * GATE_COLS + j];
      check_close("gate probs", i * GATE_COLS + j, p[i * GATE_COLS + j],
                  exp(v - max) / sum);
    }
  }
  printf("%s: %s[%d, %d], row 0 starts [%.5f, %.5f, %.5f, ...]\n",
         gate_model.name, gate_model.outputs[0].name, GATE_ROWS, GATE_COLS,
         p[0], p[1], p[2]);
  quench_tensor_free(&out);
  quench_tensor_free(&in[0]);
  quench_tensor_free(&in[1]);
  return 0;
}

int main(void) {
  quench_error err;
  quench_threadpool *pool = quench_threadpool_create(4, &err);
  if (!pool)
    return fail("quench_threadpool_create", &err);
  printf("thread pool: %d threads\n", quench_threadpool_size(pool));

  int rc = run_dense(pool);
  if (rc == 0)
    rc = run_gate(pool);
  quench_threadpool_destroy(pool);

  if (rc != 0 || failures != 0) {
    fprintf(stderr, "FAILED (%d mismatches)\n", failures);
    return 1;
  }
  printf("all outputs match the C reference\n");
  return 0;
}
