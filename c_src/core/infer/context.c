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
 * over a batch of rows; each row has its own sequence (KV cache) and position, so one
 * sequence's prompt chunk and several sequences' next tokens are the same computation.
 * See dspex/infer/context.h. */
#include <math.h>
#include "dspex/errmsg.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

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
    free(c->kb);
    free(c->vb);
    free(c->pos);
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

/* Grows the per-thread attention scores ([threads][group][n]: a task scores the query
 * heads of one kv head together) to hold n positions. */
static int att_reserve(dspex_ctx *c, int32_t n) {
    if (n <= c->att_cap) return 0;
    size_t group = (size_t)(c->m->hp.n_head / c->m->hp.n_head_kv);
    size_t sz = bytes(bytes((size_t)dspex_pool_threads(c->m->pool) * group, (size_t)n), sizeof(float));
    float *a = sz ? realloc(c->att, sz) : NULL;
    if (a == NULL) return -1;
    c->att = a;
    c->att_cap = n;
    return 0;
}

static dspex_ctx *ctx_alloc(const dspex_model *m, int32_t n_ctx, int32_t max_batch, char *err, size_t errlen) {
    if (m->vocab_only) {
        dspex_errmsg(err, errlen, "this file holds only a tokenizer (no tensors); it cannot be evaluated");
        return NULL;
    }
    if (max_batch <= 0) max_batch = 32;
    if (max_batch > 512) max_batch = 512;
    if (n_ctx > 0 && max_batch > n_ctx) max_batch = n_ctx;
    const dspex_hparams *hp = &m->hp;
    dspex_ctx *c = calloc(1, sizeof(*c));
    if (c == NULL) goto oom;
    c->m = m;
    c->n_ctx = n_ctx;
    c->max_batch = max_batch;
    c->kv_dim = hp->n_head_kv * hp->head_dim;
    size_t B = (size_t)max_batch, qd = (size_t)hp->n_head * hp->head_dim;
    size_t wide = qd > (size_t)hp->n_embd ? qd : (size_t)hp->n_embd;
    if (n_ctx > 0) {
        size_t kv = bytes(bytes((size_t)hp->n_layer * (size_t)n_ctx, (size_t)c->kv_dim), sizeof(float));
        if (kv == 0) goto oom;
        c->k = calloc(1, kv);
        c->v = calloc(1, kv);
        c->tokens = calloc((size_t)n_ctx, sizeof(int32_t));
        if (!c->k || !c->v || !c->tokens || att_reserve(c, n_ctx) != 0) goto oom;
    }
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
    c->kb = malloc(B * (size_t)c->kv_dim * sizeof(float));
    c->vb = malloc(B * (size_t)c->kv_dim * sizeof(float));
    c->pos = malloc(B * sizeof(int32_t));
    c->rope = malloc(B * (size_t)hp->n_rot * sizeof(float));
    c->logits = malloc(bytes(B * (size_t)hp->n_vocab, sizeof(float)));
    if (!c->x || !c->xb || !c->xb2 || !c->q || !c->hb || !c->hb2 || !c->xq || !c->kb || !c->vb || !c->pos ||
        !c->rope || !c->logits)
        goto oom;
    float start = floorf(corr_dim(hp->n_rot, hp->yarn_orig_ctx, hp->yarn_beta_fast, hp->rope_base));
    float end = ceilf(corr_dim(hp->n_rot, hp->yarn_orig_ctx, hp->yarn_beta_slow, hp->rope_base));
    c->yarn_corr[0] = fmaxf(0.0f, start);
    c->yarn_corr[1] = fminf((float)hp->n_rot - 1, end);
    return c;
oom:
    dspex_ctx_free(c);
    dspex_errmsg(err, errlen, "out of memory for a %d-position context", n_ctx);
    return NULL;
}

dspex_ctx *dspex_ctx_new(const dspex_model *m, int32_t n_ctx, int32_t max_batch, char *err, size_t errlen) {
    if (n_ctx < 1 || n_ctx > DSPEX_CTX_MAX) {
        dspex_errmsg(err, errlen, "n_ctx = %d is out of range (1..%d)", n_ctx, DSPEX_CTX_MAX);
        return NULL;
    }
    return ctx_alloc(m, n_ctx, max_batch, err, errlen);
}

dspex_ctx *dspex_ctx_new_scratch(const dspex_model *m, int32_t max_batch, char *err, size_t errlen) {
    if (max_batch < 1 || max_batch > 512) {
        dspex_errmsg(err, errlen, "max_batch = %d is out of range (1..512)", max_batch);
        return NULL;
    }
    return ctx_alloc(m, 0, max_batch, err, errlen);
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

/* One batch of T <= max_batch rows; s is the scratch, c->pos[t] each row's position
 * (assigned by the caller), n_out rows (indices out[]) get logits in s->logits. */
static void forward(dspex_ctx *s, const dspex_row *rows, int T, const int *out, int n_out) {
    const dspex_model *m = s->m;
    const dspex_hparams *hp = &m->hp;
    const int64_t n = hp->n_embd, qd = (int64_t)hp->n_head * hp->head_dim, kvd = s->kv_dim, ff = hp->n_ff;

    for (int t = 0; t < T; t++) /* embedding rows (dequantized, like ggml_get_rows) */
        dspex_dequantize_row(m->tok_embd.type, m->tok_embd.data + (size_t)rows[t].token * m->tok_embd.row_bytes,
                             s->x + t * n, n);
    dspex_op_rope_table(s, s->pos, T);

    for (int l = 0; l < hp->n_layer; l++) {
        const dspex_layer *L = &m->layers[l];

        /* attention */
        dspex_op_rmsnorm(s->xb, s->x, L->attn_norm, n, T, hp->rms_eps);
        dspex_op_matmul(s, &L->wq, s->xb, T, s->q, qd);
        dspex_op_matmul(s, &L->wk, s->xb, T, s->kb, kvd);
        dspex_op_matmul(s, &L->wv, s->xb, T, s->vb, kvd);
        if (L->bq) add_rows(s->q, L->bq, qd, T);
        if (L->bk) add_rows(s->kb, L->bk, kvd, T);
        if (L->bv) add_rows(s->vb, L->bv, kvd, T);
        dspex_op_rope(s, s->q, T, hp->n_head);
        dspex_op_rope(s, s->kb, T, hp->n_head_kv);
        for (int t = 0; t < T; t++) { /* into each row's own cache */
            dspex_ctx *c = rows[t].seq;
            size_t at = ((size_t)l * c->n_ctx + (size_t)s->pos[t]) * kvd;
            memcpy(c->k + at, s->kb + t * kvd, (size_t)kvd * sizeof(float));
            memcpy(c->v + at, s->vb + t * kvd, (size_t)kvd * sizeof(float));
        }
        dspex_op_attention(s, l, rows, s->q, s->pos, T, s->xb2);
        dspex_op_matmul(s, &L->wo, s->xb2, T, s->xb, n);
        if (L->bo) add_rows(s->xb, L->bo, n, T);
        for (int64_t i = 0; i < n * T; i++) s->x[i] += s->xb[i];

        /* feed-forward */
        dspex_op_rmsnorm(s->xb, s->x, L->ffn_norm, n, T, hp->rms_eps);
        dspex_op_matmul(s, &L->w_gate, s->xb, T, s->hb, ff);
        dspex_op_matmul(s, &L->w_up, s->xb, T, s->hb2, ff);
        dspex_op_swiglu(s->hb, s->hb2, ff * T);
        dspex_op_matmul(s, &L->w_down, s->hb, T, s->xb, n);
        for (int64_t i = 0; i < n * T; i++) s->x[i] += s->xb[i];
    }

    if (n_out > 0) { /* the rows that want logits, gathered */
        for (int i = 0; i < n_out; i++)
            dspex_op_rmsnorm(s->xb + i * n, s->x + out[i] * n, m->output_norm, n, 1, hp->rms_eps);
        dspex_op_matmul(s, &m->output, s->xb, n_out, s->logits, hp->n_vocab);
    }
    for (int t = 0; t < T; t++) rows[t].seq->tokens[s->pos[t]] = rows[t].token;
}

static int check_tokens(const dspex_model *m, const dspex_row *rows, int T, char *err, size_t errlen) {
    for (int t = 0; t < T; t++)
        if (rows[t].token < 0 || rows[t].token >= m->hp.n_vocab) {
            dspex_errmsg(err, errlen, "token id %d at index %d is outside the vocabulary (0..%d)", rows[t].token, t,
                   m->hp.n_vocab - 1);
            return -1;
        }
    return 0;
}

int dspex_ctx_eval_rows(dspex_ctx *s, const dspex_row *rows, int T, dspex_logits_fn fn, void *ud, char *err,
                        size_t errlen) {
    if (T < 1 || T > s->max_batch) {
        dspex_errmsg(err, errlen, "a batch holds 1..%d rows, not %d", s->max_batch, T);
        return -1;
    }
    if (check_tokens(s->m, rows, T, err, errlen) != 0) return -1;
    /* positions: each sequence's next ones, in row order (n_past counts up, then back) */
    int32_t need = 0;
    int t = 0;
    for (; t < T; t++) {
        dspex_ctx *c = rows[t].seq;
        if (c->m != s->m || c->k == NULL || c->n_past >= c->n_ctx) break;
        s->pos[t] = c->n_past++;
        if (s->pos[t] + 1 > need) need = s->pos[t] + 1;
    }
    for (int u = 0; u < t; u++) rows[u].seq->n_past--;
    if (t < T) {
        const dspex_ctx *c = rows[t].seq;
        if (c->m != s->m || c->k == NULL)
            dspex_errmsg(err, errlen, "row %d's context belongs to another model or has no cache", t);
        else
            dspex_errmsg(err, errlen, "context window full at row %d: n_ctx %d (no context shift)", t, c->n_ctx);
        return -1;
    }
    if (att_reserve(s, need) != 0) {
        dspex_errmsg(err, errlen, "out of memory");
        return -1;
    }
    int out[512], n_out = 0;
    for (t = 0; t < T; t++)
        if (rows[t].logits) out[n_out++] = t;
    forward(s, rows, T, out, n_out);
    for (t = 0; t < T; t++) rows[t].seq->n_past++;
    if (fn)
        for (int i = 0; i < n_out; i++) fn(ud, out[i], s->logits + (size_t)i * s->m->hp.n_vocab);
    return 0;
}

int dspex_ctx_eval(dspex_ctx *c, const int32_t *tokens, int32_t n, int mode, dspex_logits_fn fn, void *ud, char *err,
                   size_t errlen) {
    if (n <= 0) return 0;
    if (c->k == NULL) {
        dspex_errmsg(err, errlen, "a scratch context has no cache to evaluate into");
        return -1;
    }
    if ((int64_t)c->n_past + n > c->n_ctx) {
        dspex_errmsg(err, errlen,
               "context window full: %d tokens cached + %d new > n_ctx %d (no context shift; raise n_ctx or shorten "
               "the input)",
               c->n_past, n, c->n_ctx);
        return -1;
    }
    dspex_row rows[512];
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->m->hp.n_vocab) {
            dspex_errmsg(err, errlen, "token id %d at index %d is outside the vocabulary (0..%d)", tokens[i], i,
                   c->m->hp.n_vocab - 1);
            return -1;
        }
    for (int32_t i = 0; i < n; i += c->max_batch) {
        int T = n - i < c->max_batch ? n - i : c->max_batch;
        int last_chunk = i + T == n;
        for (int t = 0; t < T; t++)
            rows[t] = (dspex_row){c, tokens[i + t],
                                  mode == DSPEX_LOGITS_ALL || (mode == DSPEX_LOGITS_LAST && last_chunk && t == T - 1)};
        int32_t base = i;
        if (dspex_ctx_eval_rows(c, rows, T, NULL, NULL, err, errlen) != 0) return -1;
        if (fn && mode == DSPEX_LOGITS_ALL)
            for (int t = 0; t < T; t++) fn(ud, base + t, c->logits + (size_t)t * c->m->hp.n_vocab);
        else if (fn && mode == DSPEX_LOGITS_LAST && last_chunk)
            fn(ud, n - 1, c->logits);
    }
    return 0;
}
