/* Evaluation context and the transformer forward pass (llama / qwen2), read top to bottom:
 *
 *   x = embed(tokens)
 *   for each layer:
 *       h = rmsnorm(x) * attn_norm
 *       q, k, v = Wq h (+bq), Wk h (+bk), Wv h (+bv)      k, v written into the cache
 *       rope(q), rope(k)                                   NORM (llama) / NEOX (qwen2)
 *       x += Wo attention(q, K, V) (+bo)                   causal, GQA
 *       h = rmsnorm(x) * ffn_norm
 *       x += Wdown (silu(Wgate h) * Wup h)
 *   logits = Wout (rmsnorm(x) * output_norm)
 *
 * See dspex/infer/context.h. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

static void seterr(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ lifecycle */

void dspex_ctx_free(dspex_ctx *c) {
    if (c == NULL) return;
    free(c->k);
    free(c->v);
    free(c->tokens);
    free(c->x);
    free(c->xb);
    free(c->xb2);
    free(c->q);
    free(c->hb);
    free(c->hb2);
    free(c->xq);
    free(c->att);
    free(c->rope);
    free(c->logits);
    free(c);
}

/* n * size with overflow check; 0 on overflow. */
static size_t bytes(size_t n, size_t size) { return n && size > SIZE_MAX / n ? 0 : n * size; }

static float corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
    return (float)n_dims * logf((float)n_ctx_orig / (n_rot * 2 * (float)M_PI)) / (2 * logf(base));
}

dspex_ctx *dspex_ctx_new(const dspex_model *m, int32_t n_ctx, int32_t max_batch, char *err, size_t errlen) {
    if (m->vocab_only) {
        seterr(err, errlen, "this file holds only a tokenizer (no tensors); it cannot be evaluated");
        return NULL;
    }
    if (n_ctx < 1 || n_ctx > DSPEX_CTX_MAX) {
        seterr(err, errlen, "n_ctx = %d is out of range (1..%d)", n_ctx, DSPEX_CTX_MAX);
        return NULL;
    }
    if (max_batch <= 0) max_batch = 32;
    if (max_batch > 512) max_batch = 512;
    if (max_batch > n_ctx) max_batch = n_ctx;
    const dspex_hparams *hp = &m->hp;
    dspex_ctx *c = calloc(1, sizeof(*c));
    if (c == NULL) goto oom;
    c->m = m;
    c->n_ctx = n_ctx;
    c->max_batch = max_batch;
    c->kv_dim = hp->n_head_kv * hp->head_dim;
    size_t B = (size_t)max_batch, qd = (size_t)hp->n_head * hp->head_dim;
    size_t wide = qd > (size_t)hp->n_embd ? qd : (size_t)hp->n_embd;
    size_t kv = bytes(bytes((size_t)hp->n_layer * (size_t)n_ctx, (size_t)c->kv_dim), sizeof(float));
    if (kv == 0) goto oom;
    c->k = calloc(1, kv);
    c->v = calloc(1, kv);
    c->tokens = calloc((size_t)n_ctx, sizeof(int32_t));
    c->x = calloc(B * wide, sizeof(float));
    c->xb = calloc(B * wide, sizeof(float));
    c->xb2 = calloc(B * wide, sizeof(float));
    c->q = calloc(B * qd, sizeof(float));
    c->hb = calloc(B * (size_t)hp->n_ff, sizeof(float));
    c->hb2 = calloc(B * (size_t)hp->n_ff, sizeof(float));
    /* widest encoded activation row: f16 (2 bytes/elem) bounds every type we encode */
    size_t widest = wide > (size_t)hp->n_ff ? wide : (size_t)hp->n_ff;
    c->xq_row = widest * 2 + 64;
    c->xq = malloc(B * c->xq_row);
    c->att = malloc(bytes((size_t)dspex_pool_threads(m->pool) * (size_t)n_ctx, sizeof(float)));
    c->rope = malloc(B * (size_t)hp->n_rot * sizeof(float));
    c->logits = malloc(bytes(B * (size_t)hp->n_vocab, sizeof(float)));
    if (!c->k || !c->v || !c->tokens || !c->x || !c->xb || !c->xb2 || !c->q || !c->hb || !c->hb2 || !c->xq ||
        !c->att || !c->rope || !c->logits)
        goto oom;
    float start = floorf(corr_dim(hp->n_rot, hp->yarn_orig_ctx, hp->yarn_beta_fast, hp->rope_base));
    float end = ceilf(corr_dim(hp->n_rot, hp->yarn_orig_ctx, hp->yarn_beta_slow, hp->rope_base));
    c->yarn_corr[0] = fmaxf(0.0f, start);
    c->yarn_corr[1] = fminf((float)hp->n_rot - 1, end);
    return c;
oom:
    dspex_ctx_free(c);
    seterr(err, errlen, "out of memory for a %d-position context", n_ctx);
    return NULL;
}

void dspex_ctx_truncate(dspex_ctx *c, int32_t n) {
    if (n < 0) n = 0;
    if (n < c->n_past) c->n_past = n;
}

/* ------------------------------------------------------------------ forward */

static void add_rows(float *y, const float *b, int64_t n, int T) {
    for (int t = 0; t < T; t++)
        for (int64_t i = 0; i < n; i++) y[(int64_t)t * n + i] += b[i];
}

/* One batch of T <= max_batch tokens at positions n_past..n_past+T-1. */
static void forward(dspex_ctx *c, const int32_t *tok, int T, int mode) {
    const dspex_model *m = c->m;
    const dspex_hparams *hp = &m->hp;
    const int64_t n = hp->n_embd, qd = (int64_t)hp->n_head * hp->head_dim, kvd = c->kv_dim, ff = hp->n_ff;
    const int32_t pos0 = c->n_past;

    for (int t = 0; t < T; t++) /* embedding rows (dequantized, like ggml_get_rows) */
        dspex_dequantize_row(m->tok_embd.type, m->tok_embd.data + (size_t)tok[t] * m->tok_embd.row_bytes, c->x + t * n,
                             n);
    dspex_op_rope_table(c, pos0, T);

    for (int l = 0; l < hp->n_layer; l++) {
        const dspex_layer *L = &m->layers[l];
        float *kc = c->k + ((size_t)l * c->n_ctx + (size_t)pos0) * kvd;
        float *vc = c->v + ((size_t)l * c->n_ctx + (size_t)pos0) * kvd;

        /* attention */
        dspex_op_rmsnorm(c->xb, c->x, L->attn_norm, n, T, hp->rms_eps);
        dspex_op_matmul(c, &L->wq, c->xb, T, c->q, qd);
        dspex_op_matmul(c, &L->wk, c->xb, T, kc, kvd);
        dspex_op_matmul(c, &L->wv, c->xb, T, vc, kvd);
        if (L->bq) add_rows(c->q, L->bq, qd, T);
        if (L->bk) add_rows(kc, L->bk, kvd, T);
        if (L->bv) add_rows(vc, L->bv, kvd, T);
        dspex_op_rope(c, c->q, T, hp->n_head);
        dspex_op_rope(c, kc, T, hp->n_head_kv);
        dspex_op_attention(c, l, c->q, pos0, T, c->xb2);
        dspex_op_matmul(c, &L->wo, c->xb2, T, c->xb, n);
        if (L->bo) add_rows(c->xb, L->bo, n, T);
        for (int64_t i = 0; i < n * T; i++) c->x[i] += c->xb[i];

        /* feed-forward */
        dspex_op_rmsnorm(c->xb, c->x, L->ffn_norm, n, T, hp->rms_eps);
        dspex_op_matmul(c, &L->w_gate, c->xb, T, c->hb, ff);
        dspex_op_matmul(c, &L->w_up, c->xb, T, c->hb2, ff);
        dspex_op_swiglu(c->hb, c->hb2, ff * T);
        dspex_op_matmul(c, &L->w_down, c->hb, T, c->xb, n);
        for (int64_t i = 0; i < n * T; i++) c->x[i] += c->xb[i];
    }

    if (mode == DSPEX_LOGITS_ALL) {
        dspex_op_rmsnorm(c->xb, c->x, m->output_norm, n, T, hp->rms_eps);
        dspex_op_matmul(c, &m->output, c->xb, T, c->logits, hp->n_vocab);
    } else if (mode == DSPEX_LOGITS_LAST) {
        dspex_op_rmsnorm(c->xb, c->x + (T - 1) * n, m->output_norm, n, 1, hp->rms_eps);
        dspex_op_matmul(c, &m->output, c->xb, 1, c->logits, hp->n_vocab);
    }
    memcpy(c->tokens + pos0, tok, (size_t)T * sizeof(int32_t));
    c->n_past += T;
}

int dspex_ctx_eval(dspex_ctx *c, const int32_t *tokens, int32_t n, int mode, dspex_logits_fn fn, void *ud, char *err,
                   size_t errlen) {
    const dspex_hparams *hp = &c->m->hp;
    if (n <= 0) return 0;
    if ((int64_t)c->n_past + n > c->n_ctx) {
        seterr(err, errlen,
               "context window full: %d tokens cached + %d new > n_ctx %d (no context shift; raise n_ctx or shorten "
               "the input)",
               c->n_past, n, c->n_ctx);
        return -1;
    }
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab) {
            seterr(err, errlen, "token id %d at index %d is outside the vocabulary (0..%d)", tokens[i], i,
                   hp->n_vocab - 1);
            return -1;
        }
    for (int32_t i = 0; i < n; i += c->max_batch) {
        int T = n - i < c->max_batch ? n - i : c->max_batch;
        int last_chunk = i + T == n;
        int m = mode == DSPEX_LOGITS_ALL ? DSPEX_LOGITS_ALL
                : (mode == DSPEX_LOGITS_LAST && last_chunk) ? DSPEX_LOGITS_LAST : DSPEX_LOGITS_NONE;
        forward(c, tokens + i, T, m);
        if (fn && m == DSPEX_LOGITS_ALL)
            for (int t = 0; t < T; t++) fn(ud, i + t, c->logits + (size_t)t * hp->n_vocab);
        else if (fn && m == DSPEX_LOGITS_LAST)
            fn(ud, n - 1, c->logits);
    }
    return 0;
}
