/* CPython's random.Random, draw for draw (CPython 3.11 algorithms; unchanged through
 * 3.13 for everything here). With the same seed and the same calls, these functions
 * return exactly what Python returns and leave the generator in exactly the state
 * Python's would be in (compare dspex_pyrandom_export with random.getstate()).
 *
 * Python ints are unbounded; here ranges and counts are 64-bit and the limits below
 * say where a call returns DSPEX_PYRANDOM_ELIMIT instead of a value. Pure C, no global
 * state; only sample() allocates (O(k) scratch, freed before return). */
#ifndef DSPEX_OPTIM_PYRANDOM_H
#define DSPEX_OPTIM_PYRANDOM_H

#include <stddef.h>
#include <stdint.h>

#include "dspex/mt19937.h"

typedef struct {
    dspex_mt19937 mt; /* Python's gauss_next cache is not modelled: gauss() is not offered */
} dspex_pyrandom;

enum {
    DSPEX_PYRANDOM_OK = 0,
    DSPEX_PYRANDOM_EVALUE = -1, /* where Python raises ValueError/IndexError (empty range...) */
    DSPEX_PYRANDOM_ENOMEM = -2,
    DSPEX_PYRANDOM_ELIMIT = -3, /* beyond the 64-bit limits documented per function */
};

/* Largest seed accepted, in bytes of magnitude (Python accepts any int). */
#define DSPEX_PYRANDOM_MAX_SEED_BYTES (1u << 20)
/* Largest k for sample(): 4 ** ceil(log4(3k)) must fit in 64 bits. */
#define DSPEX_PYRANDOM_MAX_SAMPLE ((uint64_t)1 << 32)
/* Bytes of an exported state: 624 words then the index, all uint32 little-endian. */
#define DSPEX_PYRANDOM_STATE_BYTES (4 * (DSPEX_MT_N + 1))

/* random.Random(seed) for an int seed: `mag` holds abs(seed) little-endian (any
 * length; high zero bytes are ignored). len 0 means seed 0. */
int dspex_pyrandom_seed_int(dspex_pyrandom *r, const unsigned char *mag, size_t len);
/* random.Random(seed) for 0 <= seed < 2^64 (convenience over seed_int). */
void dspex_pyrandom_seed_u64(dspex_pyrandom *r, uint64_t seed);

/* random.getstate()[1]: 624 words and the position, little-endian uint32 each. */
void dspex_pyrandom_export(const dspex_pyrandom *r, unsigned char out[DSPEX_PYRANDOM_STATE_BYTES]);
/* random.setstate(): EVALUE if the position is > 624 (Python rejects it too). */
int dspex_pyrandom_import(dspex_pyrandom *r, const unsigned char in[DSPEX_PYRANDOM_STATE_BYTES]);

/* random(): [0, 1) with 53 random bits. */
double dspex_pyrandom_random(dspex_pyrandom *r);
/* uniform(a, b) = a + (b - a) * random(). */
double dspex_pyrandom_uniform(dspex_pyrandom *r, double a, double b);
/* getrandbits(k): k bits into ceil(k/32) words, least significant word first; the
 * top word holds k % 32 (or 32) bits. k 0 draws nothing. */
void dspex_pyrandom_getrandbits(dspex_pyrandom *r, uint32_t *words, uint64_t k);
/* getrandbits(k) for k <= 64. */
uint64_t dspex_pyrandom_getrandbits64(dspex_pyrandom *r, unsigned k);
/* _randbelow(n) (the getrandbits rejection loop): uniform in [0, n). n 0 returns 0
 * without drawing (Python would loop forever; every caller here excludes it). */
uint64_t dspex_pyrandom_randbelow(dspex_pyrandom *r, uint64_t n);
/* randrange(start, stop, step); stop/step as in Python's 3-argument form. EVALUE for an
 * empty range or step 0. The number of choices must be < 2^64 (always true unless the
 * range spans all of int64 with step +-1). */
int dspex_pyrandom_randrange(dspex_pyrandom *r, int64_t start, int64_t stop, int64_t step, int64_t *out);
/* randint(a, b) = randrange(a, b + 1). EVALUE if a > b; ELIMIT if b - a + 1 == 2^64. */
int dspex_pyrandom_randint(dspex_pyrandom *r, int64_t a, int64_t b, int64_t *out);
/* choice(seq) for len(seq) == n: the index chosen, _randbelow(n). EVALUE if n == 0. */
int dspex_pyrandom_choice(dspex_pyrandom *r, uint64_t n, uint64_t *out);
/* shuffle(x) in place over n elements of elem_size bytes (<= 64, else ELIMIT). */
int dspex_pyrandom_shuffle(dspex_pyrandom *r, void *base, size_t n, size_t elem_size);
/* sample(range(n), k): out[0..k) are the chosen population indices, in Python's order,
 * using the same pool-or-set strategy as Python (which changes the draws). EVALUE if
 * k > n, ELIMIT if k > DSPEX_PYRANDOM_MAX_SAMPLE, ENOMEM if scratch fails. */
int dspex_pyrandom_sample(dspex_pyrandom *r, uint64_t n, uint64_t k, uint64_t *out);
/* choices(range(n), k=k) without weights: floor(random() * n) each. EVALUE if n == 0
 * and k > 0 (Python raises IndexError), ELIMIT if n > 2^53. */
int dspex_pyrandom_choices(dspex_pyrandom *r, uint64_t n, size_t k, uint64_t *out);
/* choices(population, cum_weights=cum, k=k) with len == n: bisect_right over
 * cum[0..n-1) of random() * (cum[n-1] + 0.0). Pass weights through
 * dspex_pyrandom_accumulate first to get choices(population, weights=...). EVALUE if
 * n == 0, or the total is <= 0 or not finite (Python's ValueErrors). */
int dspex_pyrandom_choices_cum(dspex_pyrandom *r, const double *cum, size_t n, size_t k, uint64_t *out);
/* itertools.accumulate over float weights, left to right, in place. */
void dspex_pyrandom_accumulate(double *w, size_t n);

#endif
