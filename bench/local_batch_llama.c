/* llama.cpp's side of bench/local_batch.exs: the same requests handled one at a time
 * through llama.cpp's C API (the prebuilt libllama of node-llama-cpp 3.22.1 = llama.cpp
 * v0.5.0, flash attention off, F32 KV cache, like DSPex's engine).
 *
 * Input (stdin): one request per line, "G t1 t2 ... tn": generate G greedy tokens (no end
 * of generation) after the prompt token ids t1..tn. For each request the KV cache is
 * either cleared ("fresh") or trimmed to the prompt's common prefix with the previous
 * request ("keep", what llama-server's cache_prompt does), then the rest of the prompt is
 * decoded in one llama_decode and G tokens one by one with argmax on the logits.
 * Output: one JSON line {"mode", "requests", "prompt_tokens", "prefilled_tokens",
 * "generated_tokens", "seconds"}.
 *
 *   cc -O2 -o local_batch_llama bench/local_batch_llama.c -I$R/llama-src/include \
 *      -I$R/llama-src/ggml/include -L$L -l:libllama.v0.5.0.so -l:libggml.v0.5.0.so \
 *      -l:libggml-base.so -Wl,-rpath,$L
 *   ./local_batch_llama $L model.gguf THREADS fresh|keep N_CTX < requests.txt */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml-backend.h"
#include "llama.h"

#define MAX_REQ 4096
#define MAX_TOK 16384

static void logcb(enum ggml_log_level l, const char *t, void *u) {
    (void)u;
    if (l >= GGML_LOG_LEVEL_ERROR) fputs(t, stderr);
}
static bool quiet(float p, void *u) {
    (void)p;
    (void)u;
    return true;
}
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s BACKEND_DIR MODEL THREADS fresh|keep N_CTX < requests\n", argv[0]);
        return 2;
    }
    int nth = atoi(argv[3]), keep = strcmp(argv[4], "keep") == 0, n_ctx = atoi(argv[5]);
    static llama_token prompt[MAX_TOK], prev[MAX_TOK];
    static int gens[MAX_REQ], lens[MAX_REQ];
    static llama_token *reqs[MAX_REQ];
    int n_req = 0;
    while (n_req < MAX_REQ && scanf("%d", &gens[n_req]) == 1) {
        int n = 0, c;
        while ((c = getchar()) != '\n' && c != EOF) {
            if (c == ' ') continue;
            ungetc(c, stdin);
            if (n >= MAX_TOK || scanf("%d", &prompt[n]) != 1) return 2;
            n++;
        }
        reqs[n_req] = malloc(sizeof(llama_token) * (size_t)(n ? n : 1));
        if (reqs[n_req] == NULL) return 2;
        memcpy(reqs[n_req], prompt, sizeof(llama_token) * (size_t)n);
        lens[n_req++] = n;
    }
    llama_log_set(logcb, NULL);
    ggml_backend_load_all_from_path(argv[1]);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.progress_callback = quiet;
    struct llama_model *m = llama_model_load_from_file(argv[2], mp);
    if (!m) return 3;
    const struct llama_vocab *v = llama_model_get_vocab(m);
    int nv = llama_vocab_n_tokens(v);
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_batch = cp.n_ubatch = 512;
    cp.n_threads = cp.n_threads_batch = nth;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.type_k = cp.type_v = GGML_TYPE_F32;
    struct llama_context *c = llama_init_from_model(m, cp);
    if (!c) return 4;
    llama_memory_t mem = llama_get_memory(c);
    /* warm-up */
    llama_decode(c, llama_batch_get_one(reqs[0], lens[0] < 16 ? lens[0] : 16));
    llama_memory_clear(mem, true);
    long prompt_tokens = 0, prefilled = 0, generated = 0;
    int n_prev = 0;
    double t0 = now();
    for (int r = 0; r < n_req; r++) {
        int n = lens[r], from = 0;
        if (keep) {
            while (from < n && from < n_prev && prev[from] == reqs[r][from]) from++;
            if (from == n) from = n - 1; /* the last prompt token gives the first logits */
            llama_memory_seq_rm(mem, 0, from, -1);
        } else {
            llama_memory_clear(mem, true);
        }
        for (int i = from; i < n; i += 512) {
            int k = n - i < 512 ? n - i : 512;
            if (llama_decode(c, llama_batch_get_one(reqs[r] + i, k))) return 5;
        }
        prompt_tokens += n;
        prefilled += n - from;
        memcpy(prev, reqs[r], sizeof(llama_token) * (size_t)n);
        n_prev = n;
        llama_token t;
        for (int g = 0; g < gens[r]; g++) {
            float *lg = llama_get_logits_ith(c, -1);
            int best = 0;
            for (int i = 1; i < nv; i++)
                if (lg[i] > lg[best]) best = i;
            t = best;
            generated++;
            if (g + 1 == gens[r]) break;
            if (llama_decode(c, llama_batch_get_one(&t, 1))) return 6;
            n_prev = 0; /* the cache now holds generated tokens after the prompt */
        }
        if (keep && gens[r] > 1) { /* keep only the prompt for the next request */
            llama_memory_seq_rm(mem, 0, n, -1);
            n_prev = n;
        }
    }
    double secs = now() - t0;
    printf("{\"mode\":\"%s\",\"requests\":%d,\"prompt_tokens\":%ld,\"prefilled_tokens\":%ld,\"generated_tokens\":%ld,"
           "\"seconds\":%.3f}\n",
           keep ? "keep" : "fresh", n_req, prompt_tokens, prefilled, generated, secs);
    return 0;
}
