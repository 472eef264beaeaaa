/* Continuous batching: many generations over one model advanced together. Each step is
 * one forward pass (dspex_ctx_eval_rows) over
 *   - one row per decoding generation: the token it just sampled (its own sampler,
 *     grammar mask, stop strings), at its own position in its own KV cache, and
 *   - prompt rows of generations still prefilling (chunked prefill), up to batch_tokens
 *     rows in all,
 * so the weights are read once per step for every sequence. Generations join and leave
 * between steps. Prefills run in join order; a generation whose prompt shares at least
 * DSPEX_BATCH_SHARE tokens with a prompt being prefilled waits for it, so its prefix
 * cache lookup (generate.h) finds the shared part instead of computing it again.
 *
 * Every generation computes exactly what it would alone (rows are independent in the
 * matmuls and attention is per sequence): same logits, same tokens.
 *
 * Not thread-safe: one caller steps a batch at a time (the NIF holds a mutex). */
#ifndef DSPEX_INFER_BATCH_H
#define DSPEX_INFER_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "dspex/infer/generate.h"

#define DSPEX_BATCH_MAX_SEQS 256
#define DSPEX_BATCH_SHARE 32

typedef struct {
    uint64_t steps;       /* forward passes */
    uint64_t rows;        /* rows evaluated (prompt + decode) */
    uint64_t decode_rows; /* of which sampled tokens */
    int32_t max_active;   /* most generations decoded in one step */
} dspex_batch_stats;

typedef struct {
    const dspex_model *m;
    dspex_ctx *scratch;    /* the batched forward's workspace (max batch_tokens rows) */
    int32_t max_seqs;      /* generations at once */
    int32_t batch_tokens;  /* rows per step (>= max_seqs) */
    dspex_gen **gens;      /* [max_seqs] in join order; n of them */
    int32_t n;
    dspex_row *rows;       /* [batch_tokens] the step's rows */
    dspex_gen **row_gen;   /* [batch_tokens] which generation a row belongs to */
    dspex_batch_stats stats;
} dspex_batch;

/* max_seqs 1..DSPEX_BATCH_MAX_SEQS, batch_tokens max_seqs..512. NULL with err set. */
dspex_batch *dspex_batch_new(const dspex_model *m, int32_t max_seqs, int32_t batch_tokens, char *err, size_t errlen);
void dspex_batch_free(dspex_batch *b);

/* Adds a generation of the same model (not owned; it must outlive its membership and its
 * context must not be evaluated elsewhere meanwhile). Returns 0, or -1 when the batch is
 * full, the generation is already in it, or belongs to another model. */
int dspex_batch_add(dspex_batch *b, dspex_gen *g);
/* Removes a generation (a no-op when it is not in the batch). */
void dspex_batch_remove(dspex_batch *b, dspex_gen *g);

/* One step: samples the next token of every generation that has logits, then one
 * forward pass over the step's rows. Finished generations stay in the batch (finish set)
 * until removed. Returns the rows evaluated (0: nothing to do), or -1 with err set (then
 * the step's generations are in an unknown state: end them). */
int dspex_batch_step(dspex_batch *b, char *err, size_t errlen);

#endif
