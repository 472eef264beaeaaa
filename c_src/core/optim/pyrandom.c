/* CPython 3.11's random.Random over MT19937. See include/dspex/optim/pyrandom.h; the
 * Python-level algorithms are Lib/random.py, the seeding is Modules/_randommodule.c. */
#include "dspex/optim/pyrandom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


/* ---- seeding --------------------------------------------------------------------- */

/* A seed integer's magnitude, least significant byte first. */
typedef struct {
    const unsigned char *lo;
    size_t lo_len;
} seed_bytes;

static unsigned seed_byte(const seed_bytes *s, size_t i) { return s->lo[i]; }

static uint32_t seed_word(const seed_bytes *s, size_t nbytes, size_t j) {
    uint32_t w = 0;
    for (size_t b = 0; b < 4 && 4 * j + b < nbytes; b++) w |= (uint32_t)seed_byte(s, 4 * j + b) << (8 * b);
    return w;
}

/* init_by_array over the words of the integer, computed on the fly (no allocation). */
typedef struct {
    const seed_bytes *s;
    size_t nbytes;
} seed_key;

static uint32_t seed_key_word(const void *ctx, size_t j) {
    const seed_key *k = ctx;
    return seed_word(k->s, k->nbytes, j);
}

static void seed_from(dspex_pyrandom *r, const seed_bytes *s, size_t nbytes) {
    while (nbytes > 0 && seed_byte(s, nbytes - 1) == 0) nbytes--; /* abs(n).bit_length() */
    size_t len = nbytes ? (nbytes + 3) / 4 : 1;
    seed_key k = {s, nbytes};
    dspex_mt_init_by_words(&r->mt, len, seed_key_word, &k);
}

int dspex_pyrandom_seed_int(dspex_pyrandom *r, const unsigned char *mag, size_t len) {
    if (len > DSPEX_PYRANDOM_MAX_SEED_BYTES) return DSPEX_PYRANDOM_ELIMIT;
    seed_bytes s = {.lo = mag, .lo_len = len};
    seed_from(r, &s, len);
    return DSPEX_PYRANDOM_OK;
}

void dspex_pyrandom_seed_u64(dspex_pyrandom *r, uint64_t seed) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(seed >> (8 * i));
    dspex_pyrandom_seed_int(r, b, 8);
}

void dspex_pyrandom_export(const dspex_pyrandom *r, unsigned char out[DSPEX_PYRANDOM_STATE_BYTES]) {
    for (int i = 0; i <= DSPEX_MT_N; i++) {
        uint32_t w = i < DSPEX_MT_N ? r->mt.mt[i] : r->mt.index;
        for (int b = 0; b < 4; b++) out[4 * i + b] = (unsigned char)(w >> (8 * b));
    }
}

int dspex_pyrandom_import(dspex_pyrandom *r, const unsigned char in[DSPEX_PYRANDOM_STATE_BYTES]) {
    uint32_t words[DSPEX_MT_N + 1];
    for (int i = 0; i <= DSPEX_MT_N; i++)
        words[i] = (uint32_t)in[4 * i] | (uint32_t)in[4 * i + 1] << 8 | (uint32_t)in[4 * i + 2] << 16 |
                   (uint32_t)in[4 * i + 3] << 24;
    if (words[DSPEX_MT_N] > DSPEX_MT_N) return DSPEX_PYRANDOM_EVALUE;
    memcpy(r->mt.mt, words, sizeof(r->mt.mt));
    r->mt.index = words[DSPEX_MT_N];
    return DSPEX_PYRANDOM_OK;
}

/* ---- draws ----------------------------------------------------------------------- */

double dspex_pyrandom_random(dspex_pyrandom *r) { return dspex_mt_next_double(&r->mt); }

double dspex_pyrandom_uniform(dspex_pyrandom *r, double a, double b) {
    double u = dspex_pyrandom_random(r);
    double width = b - a; /* separate statements: no fused multiply-add, as in Python */
    double scaled = width * u;
    return a + scaled;
}

void dspex_pyrandom_getrandbits(dspex_pyrandom *r, uint32_t *words, uint64_t k) {
    /* Words from least significant up; the last keeps its top `k` bits. */
    for (size_t i = 0; k > 0; i++) {
        uint32_t w = dspex_mt_next_u32(&r->mt);
        if (k < 32) {
            w >>= 32 - k;
            k = 0;
        } else {
            k -= 32;
        }
        words[i] = w;
    }
}

uint64_t dspex_pyrandom_getrandbits64(dspex_pyrandom *r, unsigned k) {
    if (k == 0) return 0;
    if (k > 64) k = 64;
    if (k <= 32) return dspex_mt_next_u32(&r->mt) >> (32 - k);
    uint64_t lo = dspex_mt_next_u32(&r->mt);
    uint64_t hi = dspex_mt_next_u32(&r->mt) >> (64 - k);
    return lo | hi << 32;
}

static unsigned bit_length(uint64_t n) {
    unsigned k = 0;
    while (n) {
        k++;
        n >>= 1;
    }
    return k;
}

uint64_t dspex_pyrandom_randbelow(dspex_pyrandom *r, uint64_t n) {
    if (n == 0) return 0;
    unsigned k = bit_length(n); /* not (n-1): Python uses n.bit_length() */
    uint64_t v = dspex_pyrandom_getrandbits64(r, k);
    while (v >= n) v = dspex_pyrandom_getrandbits64(r, k);
    return v;
}

int dspex_pyrandom_randrange(dspex_pyrandom *r, int64_t start, int64_t stop, int64_t step, int64_t *out) {
    uint64_t n, ustep;
    if (step > 0) {
        if (stop <= start) return DSPEX_PYRANDOM_EVALUE;
        uint64_t width = (uint64_t)stop - (uint64_t)start; /* exact: 1 .. 2^64-1 */
        ustep = (uint64_t)step;
        n = width / ustep + (width % ustep != 0); /* (width + step - 1) // step */
    } else if (step < 0) {
        if (stop >= start) return DSPEX_PYRANDOM_EVALUE;
        uint64_t width = (uint64_t)start - (uint64_t)stop;
        uint64_t s = 0 - (uint64_t)step; /* |step|, exact even for INT64_MIN */
        n = width / s + (width % s != 0); /* (width + step + 1) // step */
        ustep = (uint64_t)step;           /* two's complement: multiplication wraps right */
    } else {
        return DSPEX_PYRANDOM_EVALUE;
    }
    uint64_t v = dspex_pyrandom_randbelow(r, n);
    /* start + step * v lies in [start, stop) (or (stop, start]) so the wrapped unsigned
     * arithmetic is exact once read back as int64. */
    uint64_t res = (uint64_t)start + ustep * v;
    *out = res <= (uint64_t)INT64_MAX ? (int64_t)res : -(int64_t)(~res) - 1;
    return DSPEX_PYRANDOM_OK;
}

int dspex_pyrandom_randint(dspex_pyrandom *r, int64_t a, int64_t b, int64_t *out) {
    if (a > b) return DSPEX_PYRANDOM_EVALUE;
    uint64_t width = (uint64_t)b - (uint64_t)a + 1; /* 0 means 2^64 */
    if (width == 0) return DSPEX_PYRANDOM_ELIMIT;
    uint64_t res = (uint64_t)a + dspex_pyrandom_randbelow(r, width);
    *out = res <= (uint64_t)INT64_MAX ? (int64_t)res : -(int64_t)(~res) - 1;
    return DSPEX_PYRANDOM_OK;
}

int dspex_pyrandom_choice(dspex_pyrandom *r, uint64_t n, uint64_t *out) {
    if (n == 0) return DSPEX_PYRANDOM_EVALUE;
    *out = dspex_pyrandom_randbelow(r, n);
    return DSPEX_PYRANDOM_OK;
}

int dspex_pyrandom_shuffle(dspex_pyrandom *r, void *base, size_t n, size_t elem_size) {
    if (elem_size > 64) return DSPEX_PYRANDOM_ELIMIT;
    unsigned char tmp[64], *p = base;
    for (size_t i = n; i-- > 1;) {
        size_t j = (size_t)dspex_pyrandom_randbelow(r, (uint64_t)i + 1);
        if (j == i) continue;
        memcpy(tmp, p + i * elem_size, elem_size);
        memcpy(p + i * elem_size, p + j * elem_size, elem_size);
        memcpy(p + j * elem_size, tmp, elem_size);
    }
    return DSPEX_PYRANDOM_OK;
}

/* Python's threshold between the list ("pool") and set strategies:
 * 21 + (4 ** ceil(log(3k, 4)) if k > 5), with math.log(x, 4) = log(x) / log(4). */
static uint64_t sample_setsize(uint64_t k) {
    uint64_t setsize = 21;
    if (k > 5) {
        double e = ceil(log((double)(k * 3)) / log(4.0));
        setsize += (uint64_t)1 << (2 * (unsigned)e);
    }
    return setsize;
}

/* Open-addressing set of chosen indices for the set strategy (only membership matters,
 * so the table layout cannot change the draws). */
static int set_insert(uint64_t *slots, size_t mask, uint64_t v) {
    size_t h = (size_t)((v + 1) * 0x9E3779B97F4A7C15ULL) & mask;
    while (slots[h] != 0) {
        if (slots[h] == v + 1) return 0;
        h = (h + 1) & mask;
    }
    slots[h] = v + 1; /* 0 marks an empty slot */
    return 1;
}

int dspex_pyrandom_sample(dspex_pyrandom *r, uint64_t n, uint64_t k, uint64_t *out) {
    if (k > n) return DSPEX_PYRANDOM_EVALUE;
    if (k > DSPEX_PYRANDOM_MAX_SAMPLE) return DSPEX_PYRANDOM_ELIMIT;
    if (k == 0) return DSPEX_PYRANDOM_OK;
    uint64_t setsize = sample_setsize(k);
    if (n <= setsize) {
        /* pool: n <= setsize <= 12k + 21, so the copy is O(k) */
        uint64_t *pool = malloc((size_t)n * sizeof(*pool));
        if (pool == NULL) return DSPEX_PYRANDOM_ENOMEM;
        for (uint64_t i = 0; i < n; i++) pool[i] = i;
        for (uint64_t i = 0; i < k; i++) {
            uint64_t j = dspex_pyrandom_randbelow(r, n - i);
            out[i] = pool[j];
            pool[j] = pool[n - i - 1];
        }
        free(pool);
        return DSPEX_PYRANDOM_OK;
    }
    size_t cap = 16;
    while (cap < 2 * k) cap *= 2;
    uint64_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL) return DSPEX_PYRANDOM_ENOMEM;
    for (uint64_t i = 0; i < k; i++) {
        uint64_t j = dspex_pyrandom_randbelow(r, n);
        while (!set_insert(slots, cap - 1, j)) j = dspex_pyrandom_randbelow(r, n);
        out[i] = j;
    }
    free(slots);
    return DSPEX_PYRANDOM_OK;
}

int dspex_pyrandom_choices(dspex_pyrandom *r, uint64_t n, size_t k, uint64_t *out) {
    if (n == 0) return k == 0 ? DSPEX_PYRANDOM_OK : DSPEX_PYRANDOM_EVALUE; /* Python indexes only when k > 0 */
    if (n > ((uint64_t)1 << 53)) return DSPEX_PYRANDOM_ELIMIT;
    double fn = (double)n;
    for (size_t i = 0; i < k; i++) {
        double x = floor(dspex_pyrandom_random(r) * fn);
        out[i] = (uint64_t)x; /* < n: random() <= 1 - 2^-53 */
    }
    return DSPEX_PYRANDOM_OK;
}

int dspex_pyrandom_choices_cum(dspex_pyrandom *r, const double *cum, size_t n, size_t k, uint64_t *out) {
    if (n == 0) return DSPEX_PYRANDOM_EVALUE;
    double total = cum[n - 1] + 0.0;
    if (!(total > 0.0)) return DSPEX_PYRANDOM_EVALUE; /* also NaN, as Python's `<= 0.0` test then isfinite */
    if (!isfinite(total)) return DSPEX_PYRANDOM_EVALUE;
    for (size_t i = 0; i < k; i++) {
        double x = dspex_pyrandom_random(r) * total;
        size_t lo = 0, hi = n - 1; /* bisect_right(cum, x, 0, n - 1), Python's exact loop */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (x < cum[mid])
                hi = mid;
            else
                lo = mid + 1;
        }
        out[i] = lo;
    }
    return DSPEX_PYRANDOM_OK;
}

void dspex_pyrandom_accumulate(double *w, size_t n) {
    for (size_t i = 1; i < n; i++) w[i] = w[i - 1] + w[i];
}
