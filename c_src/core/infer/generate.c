/* Generation loop. See include/dspex/infer/generate.h. */
#include "dspex/infer/generate.h"
#include "dspex/errmsg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dspex/utf8.h"

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

void dspex_gen_free(dspex_gen *g) {
    if (g == NULL) return;
    dspex_ctx_free(g->ctx);
    dspex_sampler_free(&g->sampler);
    free(g->hist);
    free(g->logits);
    dspex_buf_free(&g->text);
    free(g);
}

dspex_gen *dspex_gen_new(const dspex_model *m, const int32_t *prompt, size_t n, int32_t n_ctx,
                         const dspex_gen_params *p, char *err, size_t errlen) {
    if (n == 0) {
        dspex_errmsg(err, errlen, "the prompt is empty (no tokens)");
        return NULL;
    }
    if (n >= (size_t)n_ctx) {
        dspex_errmsg(err, errlen, "the prompt has %zu tokens; it does not fit in n_ctx %d with room to generate", n, n_ctx);
        return NULL;
    }
    if (p->max_tokens < 1) {
        dspex_errmsg(err, errlen, "max_tokens must be >= 1");
        return NULL;
    }
    if (p->n_stops > DSPEX_GEN_MAX_STOPS) {
        dspex_errmsg(err, errlen, "at most %d stop strings", DSPEX_GEN_MAX_STOPS);
        return NULL;
    }
    dspex_gen *g = calloc(1, sizeof(*g));
    if (g == NULL) goto oom;
    g->m = m;
    g->p = *p;
    for (size_t i = 0; i < p->n_stops; i++) {
        size_t k = strlen(p->stops[i]);
        if (k == 0 || k > DSPEX_GEN_MAX_STOP_LEN) {
            dspex_errmsg(err, errlen, "stop string %zu must be 1..%d bytes", i, DSPEX_GEN_MAX_STOP_LEN);
            dspex_gen_free(g);
            return NULL;
        }
        memcpy(g->stop_buf[i], p->stops[i], k + 1);
    }
    g->p.stops = NULL;
    /* the context holds the prompt and every generated token that still fits */
    int64_t want = (int64_t)n + p->max_tokens;
    int32_t cap = want < n_ctx ? (int32_t)want : n_ctx;
    g->ctx = dspex_ctx_new(m, cap, p->ctx_batch, err, errlen);
    if (g->ctx == NULL) {
        dspex_gen_free(g);
        return NULL;
    }
    g->hist = malloc(((size_t)cap + 1) * sizeof(int32_t));
    g->logits = malloc((size_t)m->hp.n_vocab * sizeof(float));
    if (!g->hist || !g->logits || dspex_sampler_init(&g->sampler, m->hp.n_vocab) != 0) goto oom;
    memcpy(g->hist, prompt, n * sizeof(int32_t));
    g->n_prompt = g->n_hist = n;
    dspex_rng_seed(&g->rng, p->sampling.seed);
    dspex_buf_init(&g->text);
    for (size_t i = 0; i < n; i++)
        if (prompt[i] < 0 || prompt[i] >= m->hp.n_vocab) {
            dspex_errmsg(err, errlen, "token id %d at index %zu is outside the vocabulary (0..%d)", prompt[i], i,
                   m->hp.n_vocab - 1);
            dspex_gen_free(g);
            return NULL;
        }
    return g;
oom:
    dspex_gen_free(g);
    dspex_errmsg(err, errlen, "out of memory");
    return NULL;
}

void dspex_gen_set_logits(dspex_gen *g, const float *logits) {
    memcpy(g->logits, logits, (size_t)g->m->hp.n_vocab * sizeof(float));
    g->has_logits = 1;
}

static void keep_logits(void *ud, int32_t i, const float *logits) {
    (void)i;
    dspex_gen_set_logits(ud, logits);
}

void dspex_gen_prefill_begin(dspex_gen *g) {
    if (g->looked_up) return;
    g->looked_up = 1;
    /* the last prompt token is always evaluated: its logits start the generation */
    int32_t n = (int32_t)g->n_prompt;
    g->reused = (size_t)dspex_prefix_cache_lookup(g->p.prefix, g->ctx, g->hist, n, n - 1);
    g->prefilled = g->reused;
}

void dspex_gen_prefill_done(dspex_gen *g, size_t k) {
    g->prefilled += k;
    dspex_prefix_cache_note_prefill(g->p.prefix, (int32_t)k);
    if (g->prefilled == g->n_prompt) dspex_prefix_cache_insert(g->p.prefix, g->ctx, (int32_t)g->n_prompt);
}

/* Looks for a stop string that ends in the text added since `from`; cuts the text there. */
static int check_stops(dspex_gen *g, size_t from) {
    for (size_t s = 0; s < g->p.n_stops; s++) {
        size_t k = strlen(g->stop_buf[s]);
        size_t start = from > k ? from - k : 0;
        for (size_t i = start; i + k <= g->text.len; i++)
            if (memcmp(g->text.p + i, g->stop_buf[s], k) == 0) {
                g->text.len = i;
                g->text.p[i] = 0;
                return 1;
            }
    }
    return 0;
}

int dspex_gen_next(dspex_gen *g, int32_t *tok, char *err, size_t errlen) {
    const dspex_vocab *v = &g->m->vocab;
    if (g->finish != DSPEX_FINISH_NONE) return 0;
    if (!g->has_logits) {
        dspex_errmsg(err, errlen, "no logits to sample from (the prompt is not evaluated yet)");
        return -1;
    }
    if (g->p.mask_fn)
        g->p.mask_fn(g->p.mask_ud, g->logits, g->m->hp.n_vocab, g->hist + g->n_prompt, g->n_hist - g->n_prompt);
    int32_t t = dspex_sample(&g->sampler, &g->p.sampling, &g->rng, g->logits, g->hist, g->n_hist);
    g->has_logits = 0;
    if (!g->p.ignore_eog && v->eog && t < v->n_tokens && v->eog[t]) {
        g->finish = DSPEX_FINISH_EOG;
        return 0;
    }
    g->hist[g->n_hist++] = t;
    size_t before = g->text.len;
    if (dspex_token_piece(v, t, 0, &g->text) != 0 || g->text.oom) {
        dspex_errmsg(err, errlen, "out of memory");
        return -1;
    }
    if (check_stops(g, before)) {
        g->finish = DSPEX_FINISH_STOP;
        return 0;
    }
    if (g->n_hist - g->n_prompt >= (size_t)g->p.max_tokens) {
        g->finish = DSPEX_FINISH_LENGTH;
        return 0;
    }
    if (g->ctx->n_past >= g->ctx->n_ctx) {
        g->finish = DSPEX_FINISH_CONTEXT;
        return 0;
    }
    *tok = t;
    return 1;
}

int dspex_gen_step(dspex_gen *g, double budget_ms, char *err, size_t errlen) {
    double t0 = now_ms();
    while (g->finish == DSPEX_FINISH_NONE) {
        dspex_gen_prefill_begin(g);
        if (g->prefilled < g->n_prompt) { /* one prompt chunk */
            size_t k = g->n_prompt - g->prefilled;
            if (k > (size_t)g->ctx->max_batch) k = (size_t)g->ctx->max_batch;
            int last = g->prefilled + k == g->n_prompt;
            if (dspex_ctx_eval(g->ctx, g->hist + g->prefilled, (int32_t)k, last ? DSPEX_LOGITS_LAST : DSPEX_LOGITS_NONE,
                               keep_logits, g, err, errlen) != 0)
                return -1;
            dspex_gen_prefill_done(g, k);
        } else {
            int32_t t;
            int rc = dspex_gen_next(g, &t, err, errlen);
            if (rc < 0) return -1;
            if (rc == 1 && dspex_ctx_eval(g->ctx, &t, 1, DSPEX_LOGITS_LAST, keep_logits, g, err, errlen) != 0) return -1;
        }
        if (now_ms() - t0 >= budget_ms) break;
    }
    return 0;
}

/* Bytes at the end of the text that must wait: a tail that is a prefix of a stop string,
 * or an unfinished UTF-8 sequence. */
static size_t held_back(const dspex_gen *g) {
    const char *t = g->text.p;
    size_t n = g->text.len, hold = 0;
    if (g->finish == DSPEX_FINISH_NONE) {
        for (size_t s = 0; s < g->p.n_stops; s++) {
            size_t k = strlen(g->stop_buf[s]);
            for (size_t l = k - 1; l > hold && l > 0; l--) /* longest proper prefix that ends the text */
                if (l <= n && memcmp(t + n - l, g->stop_buf[s], l) == 0) {
                    hold = l;
                    break;
                }
        }
    }
    /* an incomplete multi-byte character at the end (up to 3 bytes) */
    for (size_t back = 1; back <= 3 && back <= n - hold; back++) {
        unsigned char c = (unsigned char)t[n - hold - back];
        if ((c & 0xC0) == 0x80) continue; /* continuation byte: look further back */
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (need > back && g->finish == DSPEX_FINISH_NONE) hold += back;
        break;
    }
    return hold;
}

const char *dspex_gen_take_text(dspex_gen *g, size_t *len) {
    size_t hold = held_back(g);
    size_t end = g->text.len - hold;
    if (end < g->streamed) end = g->streamed;
    *len = end - g->streamed;
    const char *p = g->text.p ? g->text.p + g->streamed : "";
    g->streamed = end;
    return p;
}
