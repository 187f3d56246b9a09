/* llama.cpp's logits and greedy continuation of a prompt, for
 * bench/generation.py's check that a GGUF file written from a Quench
 * benchmark model computes the same function as the ONNX model.
 *
 *   llamacpp_logits MODEL.gguf PROMPT.txt N LOGITS.f32 [THREADS [CACHE [RUNS]]]
 *
 * PROMPT.txt holds the token ids (whitespace-separated). The prompt is
 * decoded in one batch with the logits of every position requested, written
 * to LOGITS.f32 (raw little-endian float32, [P, vocab]; "-": only the last
 * position's logits are computed, nothing is written); then N - 1 decode
 * steps extend the argmax of the last logits (lowest id on ties), and the N
 * greedy ids are printed on one line ("ids: ..."). RUNS (default 0) more
 * runs of the same (the cache cleared before each) are timed, and the
 * median wall times printed ("prefill_ms: X decode_ms: Y", the decode steps
 * together; the first run's when RUNS is 0). CACHE is the KV
 * cache's type: f32 (default: nothing is rounded to f16 on the way) or f16
 * (llama.cpp's default, what llama-bench uses); no BOS is added (the ids are
 * the model's inputs as given).
 *
 * Built by bench/generation.py against a llama.cpp source tree and build
 * (cc -I SRC/include -I SRC/ggml/include ... -L BUILD/bin -lllama); not part
 * of Quench's build: llama.cpp is a benchmark peer, not a dependency. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llama.h"

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return 1e3 * (double)t.tv_sec + 1e-6 * (double)t.tv_nsec;
}

static int compare_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int argmax(const float *v, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (v[i] > v[best])
      best = i;
  return best;
}

int main(int argc, char **argv) {
  if (argc < 5 || argc > 8) {
    fprintf(stderr,
            "usage: %s MODEL.gguf PROMPT.txt N LOGITS.f32|- [THREADS [f32|f16 "
            "[RUNS]]]\n",
            argv[0]);
    return 2;
  }
  int n_gen = atoi(argv[3]);
  int threads = argc > 5 ? atoi(argv[5]) : 1;
  const char *cache = argc > 6 ? argv[6] : "f32";
  int runs = argc > 7 ? atoi(argv[7]) : 0;
  int all_logits = strcmp(argv[4], "-") != 0;
  if (n_gen < 1 || threads < 1 || runs < 0) {
    fprintf(stderr, "llamacpp_logits: N and THREADS must be positive, RUNS "
            "not negative\n");
    return 2;
  }
  if (strcmp(cache, "f32") != 0 && strcmp(cache, "f16") != 0) {
    fprintf(stderr, "llamacpp_logits: CACHE must be f32 or f16\n");
    return 2;
  }
  FILE *f = fopen(argv[2], "r");
  if (!f) {
    fprintf(stderr, "llamacpp_logits: cannot read %s\n", argv[2]);
    return 1;
  }
  int cap = 64, n = 0;
  llama_token *prompt = malloc(cap * sizeof *prompt);
  long id;
  while (prompt && fscanf(f, "%ld", &id) == 1) {
    if (n == cap) {
      cap *= 2;
      prompt = realloc(prompt, cap * sizeof *prompt);
      if (!prompt)
        break;
    }
    prompt[n++] = (llama_token)id;
  }
  fclose(f);
  if (!prompt || n == 0) {
    fprintf(stderr, "llamacpp_logits: no token ids in %s\n", argv[2]);
    return 1;
  }

  llama_backend_init();
  struct llama_model_params mp = llama_model_default_params();
  struct llama_model *model = llama_model_load_from_file(argv[1], mp);
  if (!model) {
    fprintf(stderr, "llamacpp_logits: cannot load %s\n", argv[1]);
    return 1;
  }
  int vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  struct llama_context_params cp = llama_context_default_params();
  cp.n_ctx = (uint32_t)(n + n_gen + 16);
  cp.n_batch = cp.n_ubatch = (uint32_t)(n > 1 ? n : 1);
  cp.n_threads = cp.n_threads_batch = threads;
  cp.type_k = cp.type_v = cache[1] == '3' ? GGML_TYPE_F32 : GGML_TYPE_F16;
  struct llama_context *ctx = llama_init_from_model(model, cp);
  if (!ctx) {
    fprintf(stderr, "llamacpp_logits: cannot create a context\n");
    return 1;
  }

  struct llama_batch batch = llama_batch_init(n, 0, 1);
  double *times = malloc(2 * (size_t)(runs + 1) * sizeof *times);
  if (!times)
    return 1;
  for (int run = 0; run <= runs; ++run) {
    llama_kv_cache_clear(ctx);
    for (int i = 0; i < n; ++i) {
      batch.token[i] = prompt[i];
      batch.pos[i] = i;
      batch.n_seq_id[i] = 1;
      batch.seq_id[i][0] = 0;
      batch.logits[i] = (run == 0 && all_logits) || i == n - 1;
    }
    batch.n_tokens = n;
    double t0 = now_ms();
    if (llama_decode(ctx, batch) != 0) {
      fprintf(stderr, "llamacpp_logits: llama_decode failed on the prompt\n");
      return 1;
    }
    times[2 * run] = now_ms() - t0;
    if (run == 0 && all_logits) {
      FILE *out = fopen(argv[4], "wb");
      if (!out) {
        fprintf(stderr, "llamacpp_logits: cannot write %s\n", argv[4]);
        return 1;
      }
      for (int i = 0; i < n; ++i)
        if (fwrite(llama_get_logits_ith(ctx, i), sizeof(float),
                   (size_t)vocab, out) != (size_t)vocab) {
          fprintf(stderr, "llamacpp_logits: cannot write %s\n", argv[4]);
          return 1;
        }
      if (fclose(out) != 0) {
        fprintf(stderr, "llamacpp_logits: cannot write %s\n", argv[4]);
        return 1;
      }
    }

    if (run == 0)
      printf("ids:");
    double t1 = now_ms();
    int next = argmax(llama_get_logits_ith(ctx, n - 1), vocab);
    for (int step = 0; step < n_gen; ++step) {
      if (run == 0)
        printf(" %d", next);
      if (step + 1 == n_gen)
        break;
      batch.token[0] = next;
      batch.pos[0] = n + step;
      batch.n_seq_id[0] = 1;
      batch.seq_id[0][0] = 0;
      batch.logits[0] = 1;
      batch.n_tokens = 1;
      if (llama_decode(ctx, batch) != 0) {
        fprintf(stderr, "\nllamacpp_logits: llama_decode failed at step %d\n",
                step);
        return 1;
      }
      next = argmax(llama_get_logits_ith(ctx, 0), vocab);
    }
    times[2 * run + 1] = now_ms() - t1;
    if (run == 0)
      printf("\n");
  }
  /* Medians of the runs after the first (the first when RUNS is 0). */
  int first = runs > 0 ? 1 : 0, count = runs > 0 ? runs : 1;
  double med[2];
  for (int k = 0; k < 2; ++k) {
    double *v = malloc((size_t)count * sizeof *v);
    if (!v)
      return 1;
    for (int r = 0; r < count; ++r)
      v[r] = times[2 * (first + r) + k];
    qsort(v, (size_t)count, sizeof *v, compare_double);
    med[k] = count % 2 ? v[count / 2] : 0.5 * (v[count / 2 - 1] + v[count / 2]);
    free(v);
  }
  printf("prefill_ms: %.3f decode_ms: %.3f\n", med[0], med[1]);
  free(times);
  llama_batch_free(batch);
  llama_free(ctx);
  llama_model_free(model);
  llama_backend_free();
  free(prompt);
  return 0;
}
