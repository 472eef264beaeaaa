/* Continuous batching. See dspex/infer/batch.h. */
#include "dspex/infer/batch.h"
#include "dspex/errmsg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dspex_batch_free(dspex_batch *b) {
    if (b == NULL) return;
    dspex_ctx_free(b->scratch);
    free(b->gens);
    free(b->rows);
    free(b->row_gen);
    free(b);
}

dspex_batch *dspex_batch_new(const dspex_model *m, int32_t max_seqs, int32_t batch_tokens, char *err, size_t errlen) {
    if (max_seqs < 1 || max_seqs > DSPEX_BATCH_MAX_SEQS || batch_tokens < max_seqs || batch_tokens > 512) {
        dspex_errmsg(err, errlen, "max_seqs must be in 1..%d and batch_tokens in max_seqs..512 (got %d, %d)",
               DSPEX_BATCH_MAX_SEQS, max_seqs, batch_tokens);
        return NULL;
    }
    dspex_batch *b = calloc(1, sizeof(*b));
    if (b == NULL) goto oom;
    b->m = m;
    b->max_seqs = max_seqs;
    b->batch_tokens = batch_tokens;
    b->scratch = dspex_ctx_new_scratch(m, batch_tokens, err, errlen);
    if (b->scratch == NULL) {
        dspex_batch_free(b);
        return NULL;
    }
    b->gens = calloc((size_t)max_seqs, sizeof(dspex_gen *));
    b->rows = calloc((size_t)batch_tokens, sizeof(dspex_row));
    b->row_gen = calloc((size_t)batch_tokens, sizeof(dspex_gen *));
    if (b->gens && b->rows && b->row_gen) return b;
oom:
    dspex_batch_free(b);
    dspex_errmsg(err, errlen, "out of memory");
    return NULL;
}

int dspex_batch_add(dspex_batch *b, dspex_gen *g) {
    if (b->n >= b->max_seqs || g->m != b->m) return -1;
    for (int32_t i = 0; i < b->n; i++)
        if (b->gens[i] == g) return -1;
    b->gens[b->n++] = g;
    return 0;
}

void dspex_batch_remove(dspex_batch *b, dspex_gen *g) {
    for (int32_t i = 0; i < b->n; i++)
        if (b->gens[i] == g) {
            memmove(b->gens + i, b->gens + i + 1, (size_t)(b->n - i - 1) * sizeof(dspex_gen *));
            b->n--;
            return;
        }
}

static int prefilling(const dspex_gen *g) { return g->finish == DSPEX_FINISH_NONE && g->prefilled < g->n_prompt; }

/* Tokens two prompts share at their start, up to limit. */
static size_t shared(const dspex_gen *a, const dspex_gen *c, size_t limit) {
    size_t n = a->n_prompt < c->n_prompt ? a->n_prompt : c->n_prompt, k = 0;
    if (n > limit) n = limit;
    while (k < n && a->hist[k] == c->hist[k]) k++;
    return k;
}

/* Whether g should wait for an earlier generation that is prefilling a prompt it shares. */
static int should_wait(const dspex_batch *b, int32_t gi) {
    const dspex_gen *g = b->gens[gi];
    if (g->looked_up) return 0;
    for (int32_t i = 0; i < gi; i++) {
        const dspex_gen *o = b->gens[i];
        if (o->looked_up && prefilling(o) && shared(o, g, DSPEX_BATCH_SHARE) >= DSPEX_BATCH_SHARE) return 1;
    }
    return 0;
}

static void take_logits(void *ud, int32_t i, const float *logits) {
    dspex_batch *b = ud;
    dspex_gen_set_logits(b->row_gen[i], logits);
}

int dspex_batch_step(dspex_batch *b, char *err, size_t errlen) {
    int T = 0, decode = 0;
    /* 1. every decoding generation samples its next token */
    for (int32_t i = 0; i < b->n; i++) {
        dspex_gen *g = b->gens[i];
        if (g->finish != DSPEX_FINISH_NONE || !g->has_logits || prefilling(g)) continue;
        int32_t t;
        int rc = dspex_gen_next(g, &t, err, errlen);
        if (rc < 0) return -1;
        if (rc == 1) {
            b->rows[T] = (dspex_row){g->ctx, t, 1};
            b->row_gen[T++] = g;
        }
    }
    decode = T;
    /* 2. prompt chunks, in join order, in the rows left */
    size_t k_of[DSPEX_BATCH_MAX_SEQS] = {0};
    for (int32_t i = 0; i < b->n && T < b->batch_tokens; i++) {
        dspex_gen *g = b->gens[i];
        if (!prefilling(g) || should_wait(b, i)) continue;
        dspex_gen_prefill_begin(g);
        size_t k = g->n_prompt - g->prefilled, room = (size_t)(b->batch_tokens - T);
        if (k > room) k = room;
        for (size_t j = 0; j < k; j++) {
            size_t at = g->prefilled + j;
            b->rows[T] = (dspex_row){g->ctx, g->hist[at], at + 1 == g->n_prompt};
            b->row_gen[T++] = g;
        }
        k_of[i] = k;
    }
    if (T == 0) return 0;
    if (dspex_ctx_eval_rows(b->scratch, b->rows, T, take_logits, b, err, errlen) != 0) return -1;
    for (int32_t i = 0; i < b->n; i++)
        if (k_of[i]) dspex_gen_prefill_done(b->gens[i], k_of[i]);
    b->stats.steps++;
    b->stats.rows += (uint64_t)T;
    b->stats.decode_rows += (uint64_t)decode;
    if (decode > b->stats.max_active) b->stats.max_active = decode;
    return T;
}
