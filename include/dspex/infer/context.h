/* An evaluation context over a shared model: the KV cache (F32, one sequence) and the
 * scratch buffers of the forward pass. Positions are filled in order; the cache holds
 * n_ctx positions and a call that would go past it fails with a clear error (there is no
 * context shifting). dspex_ctx_truncate rewinds to a prefix; the prefix cache
 * (prefix_cache.h) fills a context's first positions with a stored prompt's K/V.
 *
 * Batched evaluation (dspex_ctx_eval_rows): one forward pass over rows that belong to
 * different sequences, each row extending its own context's cache at that context's next
 * position; the matmuls see all rows at once (T rows), attention runs per row over its
 * own sequence. Every row's result is bit-identical to evaluating it alone.
 *
 * Memory: KV = 2 * n_layer * n_ctx * n_head_kv * head_dim * 4 bytes (SmolLM2-135M: 46 KB
 * per position), plus O(max_batch * (n_embd + n_ff + n_vocab)) scratch. */
#ifndef DSPEX_INFER_CONTEXT_H
#define DSPEX_INFER_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "dspex/infer/model.h"

#define DSPEX_CTX_MAX 1048576 /* largest accepted n_ctx */

/* Called by dspex_ctx_eval for each position whose logits were requested: i is the index
 * into the tokens passed, logits has n_vocab raw values (valid during the call). */
typedef void (*dspex_logits_fn)(void *ud, int32_t i, const float *logits);

typedef struct {
    const dspex_model *m;  /* the weights (not owned) */
    int32_t n_ctx;         /* KV capacity in positions */
    int32_t n_past;        /* positions filled */
    int32_t max_batch;     /* tokens per internal forward pass */
    int32_t kv_dim;        /* n_head_kv * head_dim */
    float *k, *v;          /* [n_layer][n_ctx][kv_dim] */
    int32_t *tokens;       /* [n_ctx] tokens whose K/V is cached */
    float *x, *xb, *xb2;   /* [max_batch][max(n_embd, q_dim)] residual stream and temporaries */
    float *q;              /* [max_batch][n_head * head_dim] */
    float *hb, *hb2;       /* [max_batch][n_ff] */
    uint8_t *xq;           /* [max_batch][widest encoded activation row] */
    size_t xq_row;         /* bytes per row of xq */
    float *kb, *vb;        /* [max_batch][kv_dim] new keys / values before they enter a cache */
    int32_t *pos;          /* [max_batch] each row's position */
    float *att;            /* [threads][n_head / n_head_kv][att_cap] attention scores */
    int32_t att_cap;       /* positions per score row */
    float *rope;           /* [max_batch][n_rot] cos, sin pairs */
    float *logits;         /* [max_batch][n_vocab] */
    float yarn_corr[2];    /* yarn correction dims */
} dspex_ctx;

/* n_ctx: 1..min(DSPEX_CTX_MAX, anything); max_batch: 1..512 (0 = 32). NULL on error. */
dspex_ctx *dspex_ctx_new(const dspex_model *m, int32_t n_ctx, int32_t max_batch, char *err, size_t errlen);
/* Scratch only (no KV cache, n_ctx 0): the workspace of dspex_ctx_eval_rows for a batch of
 * up to max_batch (1..512) rows. */
dspex_ctx *dspex_ctx_new_scratch(const dspex_model *m, int32_t max_batch, char *err, size_t errlen);
void dspex_ctx_free(dspex_ctx *c);
/* Keeps positions [0, n) and forgets the rest. */
void dspex_ctx_truncate(dspex_ctx *c, int32_t n);

enum { DSPEX_LOGITS_NONE = 0, DSPEX_LOGITS_LAST = 1, DSPEX_LOGITS_ALL = 2 };

/* Appends tokens[0..n) at positions n_past.. and runs the model over them. With
 * DSPEX_LOGITS_LAST, fn sees the last token's logits; with ALL, every token's. Returns 0,
 * or -1 with err set (bad token id, context full, vocab-only model). */
int dspex_ctx_eval(dspex_ctx *c, const int32_t *tokens, int32_t n, int mode, dspex_logits_fn fn, void *ud, char *err,
                   size_t errlen);

/* One row of a batched forward pass: `token` appended to `seq`'s cache. Rows of one
 * sequence must appear in order (they take consecutive positions). */
typedef struct {
    dspex_ctx *seq;  /* whose KV cache the row extends (same model as the scratch) */
    int32_t token;   /* token id */
    int logits;      /* 1: compute this row's logits */
} dspex_row;

/* Runs rows[0..T) (T <= scratch->max_batch) through the model in one forward pass using
 * scratch's buffers; every sequence's n_past advances by its number of rows. fn sees
 * (ud, row index, logits) for each row that asked for logits. Returns 0, or -1 with err
 * set and nothing changed (a full context, a bad token id, T out of range). */
int dspex_ctx_eval_rows(dspex_ctx *scratch, const dspex_row *rows, int T, dspex_logits_fn fn, void *ud, char *err,
                        size_t errlen);

#endif
