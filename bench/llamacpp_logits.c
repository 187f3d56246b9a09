/* llama.cpp's logits and greedy continuation of a prompt, for
 * bench/generation.py's check that a GGUF file written from a Quench
 * benchmark model computes the same function as the ONNX model.
 *
 *   llamacpp_logits MODEL.gguf PROMPT.txt N LOGITS.f32 [THREADS]
 *
 * PROMPT.txt holds the token ids (whitespace-separated). The prompt is
 * decoded in one batch with the logits of every position requested, written
 * to LOGITS.f32 (raw little-endian float32, [P, vocab]); then N - 1 decode
 * steps extend the argmax of the last logits (lowest id on ties), and the N
 * greedy ids are printed on one line ("ids: ..."). The KV cache is f32
 * (type_k = type_v = GGML_TYPE_F32), so nothing is rounded to f16 on the
 * way; no BOS is added (the ids are the model's inputs as given).
 *
 * Built by bench/generation.py against a llama.cpp source tree and build
 * (cc -I SRC/include -I SRC/ggml/include ... -L BUILD/bin -lllama); not part
 * of Quench's build: llama.cpp is a benchmark peer, not a dependency. */
#include <stdio.h>
#include <stdlib.h>

#include "llama.h"

static int argmax(const float *v, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (v[i] > v[best])
      best = i;
  return best;
}

int main(int argc, char **argv) {
  if (argc < 5 || argc > 6) {
    fprintf(stderr, "usage: %s MODEL.gguf PROMPT.txt N LOGITS.f32 [THREADS]\n",
            argv[0]);
    return 2;
  }
  int n_gen = atoi(argv[3]);
  int threads = argc > 5 ? atoi(argv[5]) : 1;
  if (n_gen < 1 || threads < 1) {
    fprintf(stderr, "llamacpp_logits: N and THREADS must be positive\n");
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
  cp.type_k = GGML_TYPE_F32;
  cp.type_v = GGML_TYPE_F32;
  struct llama_context *ctx = llama_init_from_model(model, cp);
  if (!ctx) {
    fprintf(stderr, "llamacpp_logits: cannot create a context\n");
    return 1;
  }

  struct llama_batch batch = llama_batch_init(n, 0, 1);
  for (int i = 0; i < n; ++i) {
    batch.token[i] = prompt[i];
    batch.pos[i] = i;
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = 0;
    batch.logits[i] = 1;
  }
  batch.n_tokens = n;
  if (llama_decode(ctx, batch) != 0) {
    fprintf(stderr, "llamacpp_logits: llama_decode failed on the prompt\n");
    return 1;
  }
  FILE *out = fopen(argv[4], "wb");
  if (!out) {
    fprintf(stderr, "llamacpp_logits: cannot write %s\n", argv[4]);
    return 1;
  }
  for (int i = 0; i < n; ++i)
    if (fwrite(llama_get_logits_ith(ctx, i), sizeof(float), (size_t)vocab,
               out) != (size_t)vocab) {
      fprintf(stderr, "llamacpp_logits: cannot write %s\n", argv[4]);
      return 1;
    }
  if (fclose(out) != 0) {
    fprintf(stderr, "llamacpp_logits: cannot write %s\n", argv[4]);
    return 1;
  }

  printf("ids:");
  int next = argmax(llama_get_logits_ith(ctx, n - 1), vocab);
  for (int step = 0; step < n_gen; ++step) {
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
  printf("\n");
  llama_batch_free(batch);
  llama_free(ctx);
  llama_model_free(model);
  llama_backend_free();
  free(prompt);
  return 0;
}
