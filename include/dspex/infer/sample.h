/* Token sampling over raw logits, in llama.cpp's default chain order:
 *   penalties (repeat over the last N tokens, frequency, presence) -> top-k -> top-p ->
 *   min-p -> temperature -> softmax -> draw,
 * or argmax when temperature <= 0 (greedy; penalties still apply). The random stream is
 * xoshiro256** seeded through splitmix64, so a seed reproduces a generation exactly on
 * any machine. Work per token: O(n_vocab) plus O(k log k) for top-k, or a full sort
 * (O(n_vocab log n_vocab)) when top-p runs without top-k. */
#ifndef DSPEX_INFER_SAMPLE_H
#define DSPEX_INFER_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    float temperature;       /* <= 0: greedy */
    int32_t top_k;           /* <= 0: off */
    float top_p;             /* >= 1: off */
    float min_p;             /* <= 0: off */
    float repeat_penalty;    /* 1: off */
    int32_t repeat_last_n;   /* window for the three penalties (0: off, -1: everything) */
    float frequency_penalty; /* 0: off */
    float presence_penalty;  /* 0: off */
    uint64_t seed;           /* random stream seed */
} dspex_sampling;

typedef struct {
    uint64_t s[4]; /* xoshiro256** state */
} dspex_rng;

void dspex_rng_seed(dspex_rng *r, uint64_t seed);
double dspex_rng_uniform(dspex_rng *r); /* [0, 1) with 53 random bits */

/* Working memory for dspex_sample (n_vocab candidates). */
typedef struct {
    int32_t n_vocab;
    void *cand;      /* [n_vocab] (logit, id) candidates */
    double *prob;    /* [n_vocab] candidate weights */
    uint16_t *count; /* [n_vocab] per-token counts for the penalties */
} dspex_sampler;

int dspex_sampler_init(dspex_sampler *s, int32_t n_vocab);
void dspex_sampler_free(dspex_sampler *s);

/* Picks the next token. logits (n_vocab) is modified (penalties). history holds the
 * previous tokens (prompt + generated) for the penalties. */
int32_t dspex_sample(dspex_sampler *s, const dspex_sampling *p, dspex_rng *rng, float *logits, const int32_t *history,
                     size_t n_history);

#endif
