/* infer_bench: the engine's own timing loop, shaped like the test data's llbench.c (the
 * llama.cpp C-API harness), for iterating on kernels without the BEAM: prefill the same
 * 128 LCG token ids in one dspex_ctx_eval (internal batches of max_batch, default 32 like
 * generate.c), then 128 single-token evals with greedy argmax. Prints one JSON line with
 * medians over RUNS. The product-path figures come from bench/infer.exs.
 *
 *   cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Iinclude -Ic_src/core \
 *      tools/infer_bench.c c_src/core/infer/[a-z]*.c -o _build/infer_bench -lm -lpthread
 *   _build/infer_bench model.gguf THREADS [RUNS] [MAX_BATCH]      (DSPEX_SIMD=0: scalar kernels)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dspex/infer/context.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* kB of resident anonymous memory (KV, scratch, heap) and of resident file pages (the
 * mmap'd weights), from /proc/self/status; -1 where unavailable. */
static void rss(long *anon, long *file) {
    *anon = *file = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return;
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "RssAnon:", 8) == 0) *anon = atol(line + 8);
        if (strncmp(line, "RssFile:", 8) == 0) *file = atol(line + 8);
    }
    fclose(f);
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    int32_t n_vocab, best;
} argmax_acc;

static void on_logits(void *ud, int32_t i, const float *lg) {
    (void)i;
    argmax_acc *a = ud;
    int32_t b = 0;
    for (int32_t k = 1; k < a->n_vocab; k++)
        if (lg[k] > lg[b]) b = k;
    a->best = b;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s model.gguf threads [runs] [max_batch]\n", argv[0]);
        return 2;
    }
    int nth = atoi(argv[2]), runs = argc > 3 ? atoi(argv[3]) : 3, mb = argc > 4 ? atoi(argv[4]) : 0;
    if (runs < 1 || runs > 16) runs = 3;
    enum { P = 128, G = 128 };
    char err[512];
    dspex_model_params mp = {nth, 1};
    dspex_model *m = dspex_model_load(argv[1], &mp, err, sizeof(err));
    if (!m) {
        fprintf(stderr, "%s\n", err);
        return 3;
    }
    int32_t nv = m->hp.n_vocab, pr[P];
    unsigned x = 12345;
    for (int i = 0; i < P; i++) {
        x = x * 1103515245u + 12345u;
        pr[i] = 300 + (int32_t)((x >> 8) % (unsigned)(nv > 30300 ? 30000 : nv - 300));
    }
    dspex_ctx *c = dspex_ctx_new(m, 512, mb, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "%s\n", err);
        return 4;
    }
    argmax_acc acc = {nv, 0};
    double pp[16], tg[16];
    dspex_ctx_eval(c, pr, 16, DSPEX_LOGITS_LAST, on_logits, &acc, err, sizeof(err)); /* warm-up */
    for (int r = 0; r < runs; r++) {
        dspex_ctx_truncate(c, 0);
        double t0 = now();
        if (dspex_ctx_eval(c, pr, P, DSPEX_LOGITS_LAST, on_logits, &acc, err, sizeof(err))) return 5;
        double t1 = now();
        pp[r] = P / (t1 - t0);
        t0 = now();
        for (int g = 0; g < G; g++) {
            int32_t t = acc.best;
            if (dspex_ctx_eval(c, &t, 1, DSPEX_LOGITS_LAST, on_logits, &acc, err, sizeof(err))) return 6;
        }
        t1 = now();
        tg[r] = G / (t1 - t0);
    }
    qsort(pp, (size_t)runs, sizeof(double), cmp);
    qsort(tg, (size_t)runs, sizeof(double), cmp);
    long anon, file;
    rss(&anon, &file);
    printf("{\"isa\":\"%s\",\"threads\":%d,\"pp128_median\":%.1f,\"tg128_median\":%.2f,\"pp_min\":%.1f,\"pp_max\":%.1f,"
           "\"tg_min\":%.2f,\"tg_max\":%.2f,\"rss_anon_mb\":%.1f,\"rss_file_mb\":%.1f}\n",
           m->kern.isa, nth, pp[runs / 2], tg[runs / 2], pp[0], pp[runs - 1], tg[0], tg[runs - 1], anon / 1024.0,
           file / 1024.0);
    dspex_ctx_free(c);
    dspex_model_free(m);
    return 0;
}
