/* Embeddings. See include/dspex/infer/embed.h.
 *
 * The final residual stream of a chunk is what dspex_ctx_eval leaves in c->x when the
 * chunk fits one internal batch (max_batch = chunk length): rows [0, T) of n_embd. The
 * output RMSNorm is applied here, as the output matrix would see it; test_infer_embed.c
 * checks that the last row projected through the output matrix gives the model's
 * logits, so a change in how the context keeps that stream is caught. */
#include "dspex/infer/embed.h"
#include "dspex/errmsg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/infer/context.h"
#include "ops.h"

#define CHUNK 512

int dspex_embed_pooling(const dspex_model *m) {
    char key[96], err[64];
    uint32_t v = 0;
    snprintf(key, sizeof key, "%s.pooling_type", m->hp.arch);
    if (dspex_gguf_find(m->gguf, key) && dspex_gguf_get_u32(m->gguf, key, &v, err, sizeof err) == 0 &&
        v == DSPEX_POOL_LAST)
        return DSPEX_POOL_LAST;
    return DSPEX_POOL_MEAN;
}

int dspex_embed(const dspex_model *m, const int32_t *tokens, size_t n, int pooling, int normalize, float *out,
                char *err, size_t errlen) {
    if (n == 0) {
        dspex_errmsg(err, errlen, "nothing to embed (no tokens)");
        return -1;
    }
    if (n > DSPEX_CTX_MAX) {
        dspex_errmsg(err, errlen, "%zu tokens are more than the %d an embedding context holds", n, DSPEX_CTX_MAX);
        return -1;
    }
    if (m->vocab_only) {
        dspex_errmsg(err, errlen, "the model has no weights (a vocabulary-only file)");
        return -1;
    }
    int64_t d = m->hp.n_embd;
    int32_t chunk = n < CHUNK ? (int32_t)n : CHUNK;
    dspex_ctx *c = dspex_ctx_new(m, (int32_t)n, chunk, err, errlen);
    if (c == NULL) return -1;
    double *acc = calloc((size_t)d, sizeof(double));
    float *row = malloc((size_t)d * sizeof(float));
    int rc = -1;
    if (acc == NULL || row == NULL) {
        dspex_errmsg(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i += (size_t)chunk) {
        int32_t T = n - i < (size_t)chunk ? (int32_t)(n - i) : chunk;
        if (dspex_ctx_eval(c, tokens + i, T, DSPEX_LOGITS_NONE, NULL, NULL, err, errlen) != 0) goto out;
        for (int32_t t = 0; t < T; t++) {
            if (pooling == DSPEX_POOL_LAST && i + (size_t)t + 1 != n) continue;
            dspex_op_rmsnorm(row, c->x + (size_t)t * (size_t)d, m->output_norm, d, 1, m->hp.rms_eps);
            for (int64_t k = 0; k < d; k++) acc[k] += row[k];
        }
    }
    double scale = pooling == DSPEX_POOL_LAST ? 1.0 : 1.0 / (double)n, norm = 0.0;
    for (int64_t k = 0; k < d; k++) norm += (acc[k] * scale) * (acc[k] * scale);
    norm = sqrt(norm);
    if (!normalize || norm == 0.0) norm = 1.0;
    for (int64_t k = 0; k < d; k++) out[k] = (float)(acc[k] * scale / norm);
    rc = 0;
out:
    free(acc);
    free(row);
    dspex_ctx_free(c);
    return rc;
}
