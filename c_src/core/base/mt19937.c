/* MT19937 per the authors' reference mt19937ar.c (2002 seeding). See
 * include/dspex/mt19937.h. */
#include "dspex/mt19937.h"

#define MT_M 397
#define MATRIX_A 0x9908b0dfU
#define UPPER_MASK 0x80000000U
#define LOWER_MASK 0x7fffffffU

void dspex_mt_init_genrand(dspex_mt19937 *g, uint32_t seed) {
    g->mt[0] = seed;
    for (uint32_t i = 1; i < DSPEX_MT_N; i++)
        g->mt[i] = 1812433253U * (g->mt[i - 1] ^ (g->mt[i - 1] >> 30)) + i;
    g->index = DSPEX_MT_N;
}

typedef struct {
    const uint32_t *key;
} array_key;

static uint32_t array_word(const void *ctx, size_t j) { return ((const array_key *)ctx)->key[j]; }

void dspex_mt_init_by_array(dspex_mt19937 *g, const uint32_t *key, size_t len) {
    static const uint32_t zero = 0;
    if (len == 0) {
        key = &zero;
        len = 1;
    }
    array_key k = {key};
    dspex_mt_init_by_words(g, len, array_word, &k);
}

void dspex_mt_init_by_words(dspex_mt19937 *g, size_t len, uint32_t (*word)(const void *ctx, size_t j),
                            const void *ctx) {
    dspex_mt_init_genrand(g, 19650218U);
    uint32_t *mt = g->mt;
    size_t i = 1, j = 0;
    for (size_t k = DSPEX_MT_N > len ? DSPEX_MT_N : len; k; k--) {
        /* The key index j and its value are added mod 2^32, as in the reference. */
        mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525U)) + word(ctx, j) + (uint32_t)j;
        i++;
        j++;
        if (i >= DSPEX_MT_N) {
            mt[0] = mt[DSPEX_MT_N - 1];
            i = 1;
        }
        if (j >= len) j = 0;
    }
    for (size_t k = DSPEX_MT_N - 1; k; k--) {
        mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941U)) - (uint32_t)i;
        i++;
        if (i >= DSPEX_MT_N) {
            mt[0] = mt[DSPEX_MT_N - 1];
            i = 1;
        }
    }
    mt[0] = 0x80000000U; /* MSB is 1, assuring a non-zero initial array */
    g->index = DSPEX_MT_N;
}

static void regenerate(dspex_mt19937 *g) {
    uint32_t *mt = g->mt;
    int kk;
    for (kk = 0; kk < DSPEX_MT_N - MT_M; kk++) {
        uint32_t y = (mt[kk] & UPPER_MASK) | (mt[kk + 1] & LOWER_MASK);
        mt[kk] = mt[kk + MT_M] ^ (y >> 1) ^ ((y & 1U) ? MATRIX_A : 0U);
    }
    for (; kk < DSPEX_MT_N - 1; kk++) {
        uint32_t y = (mt[kk] & UPPER_MASK) | (mt[kk + 1] & LOWER_MASK);
        mt[kk] = mt[kk + (MT_M - DSPEX_MT_N)] ^ (y >> 1) ^ ((y & 1U) ? MATRIX_A : 0U);
    }
    uint32_t y = (mt[DSPEX_MT_N - 1] & UPPER_MASK) | (mt[0] & LOWER_MASK);
    mt[DSPEX_MT_N - 1] = mt[MT_M - 1] ^ (y >> 1) ^ ((y & 1U) ? MATRIX_A : 0U);
    g->index = 0;
}

uint32_t dspex_mt_next_u32(dspex_mt19937 *g) {
    /* index > N only if a caller restored a malformed state; regenerate rather than
     * read past the array. */
    if (g->index >= DSPEX_MT_N) regenerate(g);
    uint32_t y = g->mt[g->index++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680U;
    y ^= (y << 15) & 0xefc60000U;
    y ^= y >> 18;
    return y;
}

double dspex_mt_next_double(dspex_mt19937 *g) {
    uint32_t a = dspex_mt_next_u32(g) >> 5, b = dspex_mt_next_u32(g) >> 6;
    return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}
