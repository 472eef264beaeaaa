/* A generation: prompt prefill, then sample / append / evaluate one token at a time,
 * advanced in bounded slices (dspex_gen_step) so a caller on a shared scheduler can
 * stream tokens and stop between slices. Stops on an end-of-generation token, a stop
 * string (the text is cut before it), max_tokens, or the context window. Streaming text
 * is held back while its tail could still become a stop string or ends inside a UTF-8
 * sequence, so what was streamed is always a prefix of the final text.
 *
 * A logits hook (mask_fn) runs on every step's logits before sampling: the place where
 * grammar-constrained decoding masks tokens (a mask sets logits to -INFINITY).
 *
 * With a prefix cache (p.prefix), the prompt's longest cached prefix is copied into the
 * context when its prefill starts (all but the last prompt token, whose logits are
 * needed) and the prefilled prompt is offered back to the cache when prefill ends.
 *
 * dspex_gen_step drives one generation alone; batch.h drives many together through the
 * lower-level calls at the end of this file (prefill bookkeeping, sampling, logits). */
#ifndef DSPEX_INFER_GENERATE_H
#define DSPEX_INFER_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "dspex/buf.h"
#include "dspex/infer/context.h"
#include "dspex/infer/prefix_cache.h"
#include "dspex/infer/sample.h"

#define DSPEX_GEN_MAX_STOPS 16    /* stop strings per generation */
#define DSPEX_GEN_MAX_STOP_LEN 256 /* bytes per stop string */

enum {
    DSPEX_FINISH_NONE = 0, /* still running */
    DSPEX_FINISH_EOG,      /* the model emitted an end-of-generation token */
    DSPEX_FINISH_STOP,     /* a stop string appeared */
    DSPEX_FINISH_LENGTH,   /* max_tokens reached */
    DSPEX_FINISH_CONTEXT   /* the context window is full */
};

typedef void (*dspex_mask_fn)(void *ud, float *logits, int32_t n_vocab, const int32_t *generated, size_t n_generated);

typedef struct {
    dspex_sampling sampling;     /* sampler settings */
    int32_t max_tokens;          /* >= 1 */
    int ignore_eog;              /* 1: keep going after end-of-generation tokens */
    const char *const *stops;    /* stop strings (NUL-terminated), may be NULL */
    size_t n_stops;
    dspex_mask_fn mask_fn;       /* optional logits hook */
    void *mask_ud;
    dspex_prefix_cache *prefix;  /* optional shared-prefix KV cache (not owned) */
    int32_t ctx_batch;           /* rows per forward of the generation's own context (0 = 32;
                                    1 when a batch (batch.h) evaluates it) */
} dspex_gen_params;

typedef struct {
    dspex_ctx *ctx;              /* KV cache + scratch (owned) */
    const dspex_model *m;        /* weights */
    dspex_gen_params p;          /* settings (stop strings copied below) */
    char stop_buf[DSPEX_GEN_MAX_STOPS][DSPEX_GEN_MAX_STOP_LEN + 1];
    dspex_sampler sampler;       /* sampling scratch */
    dspex_rng rng;               /* seeded random stream */
    int32_t *hist;               /* prompt + generated tokens */
    size_t n_prompt, n_hist;     /* prompt length, tokens so far */
    size_t prefilled;            /* prompt tokens in the cache (evaluated or reused) */
    size_t reused;               /* prompt tokens copied from the prefix cache */
    int looked_up;               /* the prefix cache was consulted */
    float *logits;               /* the latest logits (copied, n_vocab) */
    int has_logits;              /* logits hold the next-token distribution */
    dspex_buf text;              /* generated text */
    size_t streamed;             /* bytes of text already handed out */
    int finish;                  /* DSPEX_FINISH_* */
} dspex_gen;

/* Creates a generation over prompt[0..n) with a context of n_ctx positions. Errors: an
 * empty prompt, a prompt that does not fit (n >= n_ctx), a vocab-only model, bad
 * parameters. */
dspex_gen *dspex_gen_new(const dspex_model *m, const int32_t *prompt, size_t n, int32_t n_ctx,
                         const dspex_gen_params *p, char *err, size_t errlen);
void dspex_gen_free(dspex_gen *g);

/* Runs until done or until about budget_ms of work has been spent (at least one prompt
 * chunk or one token per call). Returns 0, or -1 with err set. */
int dspex_gen_step(dspex_gen *g, double budget_ms, char *err, size_t errlen);

/* Text that became final since the last call: *len bytes at the returned pointer (valid
 * until the next step). */
const char *dspex_gen_take_text(dspex_gen *g, size_t *len);

/* Generated token ids so far: n_hist - n_prompt of them. */
static inline const int32_t *dspex_gen_tokens(const dspex_gen *g, size_t *n) {
    *n = g->n_hist - g->n_prompt;
    return g->hist + g->n_prompt;
}

/* ---- the pieces dspex_gen_step is made of (used by batch.c) ---- */

/* Starts the prefill (once): copies the cached prefix into the context. */
void dspex_gen_prefill_begin(dspex_gen *g);
/* Records that k more prompt tokens were evaluated; at the end of the prompt, offers it to
 * the prefix cache. */
void dspex_gen_prefill_done(dspex_gen *g, size_t k);
/* Samples the next token from the current logits, appends it, checks stop conditions.
 * Returns 1 with *tok to evaluate next, 0 when the generation finished, -1 on error. */
int dspex_gen_next(dspex_gen *g, int32_t *tok, char *err, size_t errlen);
/* Takes logits (n_vocab) as the next-token distribution. */
void dspex_gen_set_logits(dspex_gen *g, const float *logits);

#endif
