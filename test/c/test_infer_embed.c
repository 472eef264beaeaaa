/* Embeddings (c_src/core/infer/embed.c) on a tiny random-weight model written in memory:
 * the last-token state projected through the output matrix equals the model's logits
 * (so the embedding reads the right stream), chunked (> 512 tokens) equals one pass,
 * mean pooling averages, normalization gives unit vectors, errors are clear. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "dspex/infer/context.h"
#include "dspex/infer/embed.h"
#include "dspex/infer/quant.h"
#include "test_infer_gguf_writer.h"

static dspex_model *tiny(gw_bytes *keep) {
    gw_tiny_model(keep, "llama", 0 /* f32 */, 64, 2, 4, 2, 128);
    char err[256];
    dspex_gguf *g = dspex_gguf_parse(keep->p, keep->len, err, sizeof(err));
    if (g == NULL) return NULL;
    dspex_model_params mp = {1, 1};
    return dspex_model_from_gguf(g, &mp, err, sizeof(err));
}

typedef struct {
    int32_t nv;
    float *row;
} last_row;

static void keep_last(void *ud, int32_t i, const float *lg) {
    (void)i;
    last_row *a = ud;
    memcpy(a->row, lg, sizeof(float) * (size_t)a->nv);
}

CTEST(last_state_reproduces_the_logits) {
    gw_bytes keep = {0};
    dspex_model *m = tiny(&keep);
    CHECK(m != NULL);
    if (m == NULL) return;
    int32_t ids[9] = {1, 5, 9, 17, 33, 2, 64, 100, 7};
    int64_t d = m->hp.n_embd, nv = m->hp.n_vocab;
    float *e = malloc((size_t)d * sizeof(float)), *logits = malloc((size_t)nv * sizeof(float));
    float *w = malloc((size_t)d * sizeof(float));
    char err[256];
    CHECK(dspex_embed(m, ids, 9, DSPEX_POOL_LAST, 0, e, err, sizeof err) == 0);
    dspex_ctx *c = dspex_ctx_new(m, 16, 0, err, sizeof err);
    last_row a = {(int32_t)nv, logits};
    CHECK(dspex_ctx_eval(c, ids, 9, DSPEX_LOGITS_LAST, keep_last, &a, err, sizeof err) == 0);
    double worst = 0;
    for (int64_t r = 0; r < nv; r++) {
        dspex_dequantize_row(m->output.type, m->output.data + (size_t)r * m->output.row_bytes, w, d);
        double dot = 0;
        for (int64_t k = 0; k < d; k++) dot += (double)w[k] * e[k];
        double diff = fabs(dot - logits[r]);
        if (diff > worst) worst = diff;
    }
    CHECK(worst < 1e-3);
    dspex_ctx_free(c);
    free(e), free(logits), free(w);
    dspex_model_free(m);
    free(keep.p);
}

CTEST(mean_pooling_chunks_and_normalization) {
    gw_bytes keep = {0};
    dspex_model *m = tiny(&keep);
    if (m == NULL) {
        CHECK(0);
        return;
    }
    int64_t d = m->hp.n_embd;
    size_t n = 700; /* two chunks */
    int32_t *ids = malloc(n * sizeof(int32_t));
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)(i * 7 % 120) + 1;
    float *a = malloc((size_t)d * sizeof(float)), *b = malloc((size_t)d * sizeof(float));
    char err[256];
    CHECK(dspex_embed(m, ids, n, DSPEX_POOL_MEAN, 1, a, err, sizeof err) == 0);
    double norm = 0;
    for (int64_t k = 0; k < d; k++) norm += (double)a[k] * a[k];
    CHECK(fabs(norm - 1.0) < 1e-5);
    /* the mean of the first two tokens' states = the mean pooling of both */
    float *s0 = malloc((size_t)d * sizeof(float)), *s1 = malloc((size_t)d * sizeof(float));
    CHECK(dspex_embed(m, ids, 1, DSPEX_POOL_LAST, 0, s0, err, sizeof err) == 0);
    CHECK(dspex_embed(m, ids, 2, DSPEX_POOL_LAST, 0, s1, err, sizeof err) == 0);
    CHECK(dspex_embed(m, ids, 2, DSPEX_POOL_MEAN, 0, b, err, sizeof err) == 0);
    double worst = 0;
    for (int64_t k = 0; k < d; k++) worst = fmax(worst, fabs((s0[k] + s1[k]) / 2 - b[k]));
    CHECK(worst < 1e-5);
    CHECK(dspex_embed_pooling(m) == DSPEX_POOL_MEAN);
    CHECK(dspex_embed(m, ids, 0, DSPEX_POOL_MEAN, 1, a, err, sizeof err) == -1 && strstr(err, "no tokens"));
    ids[3] = 1 << 30;
    CHECK(dspex_embed(m, ids, 5, DSPEX_POOL_MEAN, 1, a, err, sizeof err) == -1 && strstr(err, "outside"));
    free(ids), free(a), free(b), free(s0), free(s1);
    dspex_model_free(m);
    free(keep.p);
}

int main(void) { return ctest_run(); }
