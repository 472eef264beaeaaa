/* MT19937, the 32-bit Mersenne Twister (Matsumoto & Nishimura 1998), shared by every
 * generator that must reproduce a Python library draw for draw:
 *
 *   - CPython's random.Random seeds it with init_by_array over the 32-bit words of
 *     abs(seed) (see include/dspex/optim/pyrandom.h);
 *   - numpy's legacy RandomState(seed) -- what optuna's TPESampler and RandomSampler
 *     build -- seeds it with init_genrand(seed), 0 <= seed < 2^32.
 *
 * Both libraries then draw the same 53-bit doubles: (a >> 5) * 2^26 + (b >> 6), over
 * 2^53, from two successive words. Pure C, no allocation, no global state: the whole
 * generator is the struct below (2.5 KB), so copying it snapshots the stream. */
#ifndef DSPEX_MT19937_H
#define DSPEX_MT19937_H

#include <stddef.h>
#include <stdint.h>

#define DSPEX_MT_N 624

typedef struct {
    uint32_t mt[DSPEX_MT_N];
    uint32_t index; /* next word to temper; DSPEX_MT_N means "regenerate first" */
} dspex_mt19937;

/* The reference init_genrand: Knuth's linear recurrence from one 32-bit seed.
 * numpy RandomState(seed) is exactly this. */
void dspex_mt_init_genrand(dspex_mt19937 *g, uint32_t seed);

/* The reference init_by_array (starts from init_genrand(19650218)). `len` 0 is
 * treated as the one-word key {0}, which is what CPython does for seed 0. */
void dspex_mt_init_by_array(dspex_mt19937 *g, const uint32_t *key, size_t len);

/* init_by_array over a key of `len` (>= 1) words that `word(ctx, j)` computes on demand:
 * for keys that are not stored as a word array (CPython seeds from the bytes of an
 * integer of any size without copying it). */
void dspex_mt_init_by_words(dspex_mt19937 *g, size_t len, uint32_t (*word)(const void *ctx, size_t j),
                            const void *ctx);

/* Next tempered 32-bit word (the reference genrand_int32). */
uint32_t dspex_mt_next_u32(dspex_mt19937 *g);

/* Next double in [0, 1) with 53 random bits: CPython random(), numpy random_sample(). */
double dspex_mt_next_double(dspex_mt19937 *g);

#endif
