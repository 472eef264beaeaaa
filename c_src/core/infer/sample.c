/* Sampling. See include/dspex/infer/sample.h. */
#include "dspex/infer/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ random stream */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void dspex_rng_seed(dspex_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next64(dspex_rng *r) {
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double dspex_rng_uniform(dspex_rng *r) { return (double)(next64(r) >> 11) * (1.0 / 9007199254740992.0); }

/* ------------------------------------------------------------------ sampler */

typedef struct {
    float v;    /* logit */
    int32_t id; /* token */
} cand;

int dspex_sampler_init(dspex_sampler *s, int32_t n_vocab) {
    s->n_vocab = n_vocab;
    s->cand = malloc((size_t)n_vocab * sizeof(cand));
    s->prob = malloc((size_t)n_vocab * sizeof(double));
    s->count = calloc((size_t)n_vocab, sizeof(uint16_t));
    if (!s->cand || !s->prob || !s->count) {
        dspex_sampler_free(s);
        return -1;
    }
    return 0;
}

void dspex_sampler_free(dspex_sampler *s) {
    free(s->cand);
    free(s->prob);
    free(s->count);
    memset(s, 0, sizeof(*s));
}

static void penalties(dspex_sampler *s, const dspex_sampling *p, float *logits, const int32_t *h, size_t n) {
    if (p->repeat_last_n == 0) return;
    if (p->repeat_penalty == 1.0f && p->frequency_penalty == 0.0f && p->presence_penalty == 0.0f) return;
    size_t from = (p->repeat_last_n < 0 || (size_t)p->repeat_last_n >= n) ? 0 : n - (size_t)p->repeat_last_n;
    for (size_t i = from; i < n; i++)
        if (h[i] >= 0 && h[i] < s->n_vocab && s->count[h[i]] < UINT16_MAX) s->count[h[i]]++;
    for (size_t i = from; i < n; i++) {
        int32_t t = h[i];
        if (t < 0 || t >= s->n_vocab || s->count[t] == 0) continue; /* each token once */
        float c = (float)s->count[t];
        float *l = &logits[t];
        *l = *l > 0 ? *l / p->repeat_penalty : *l * p->repeat_penalty;
        *l -= c * p->frequency_penalty + p->presence_penalty;
        s->count[t] = 0;
    }
}


static int cand_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

int32_t dspex_sample(dspex_sampler *s, const dspex_sampling *p, dspex_rng *rng, float *logits, const int32_t *history,
                     size_t n_history) {
    int32_t V = s->n_vocab;
    penalties(s, p, logits, history, n_history);
    if (p->temperature <= 0.0f) { /* greedy: the first maximum */
        int32_t b = 0;
        for (int32_t i = 1; i < V; i++)
            if (logits[i] > logits[b]) b = i;
        return b;
    }
    /* candidates sorted by logit, descending (only the top k when top-k is on) */
    int32_t n = V;
    cand *c = s->cand;
    for (int32_t i = 0; i < V; i++) c[i] = (cand){logits[i], i};
    if (p->top_k > 0 && p->top_k < V) {
        /* partial selection: keep the k largest with a min-heap-free pass (quickselect) */
        int32_t k = p->top_k, lo = 0, hi = V - 1;
        while (lo < hi) {
            cand pivot = c[(lo + hi) / 2];
            int32_t i = lo, j = hi;
            while (i <= j) {
                while (cand_desc(&c[i], &pivot) < 0) i++;
                while (cand_desc(&c[j], &pivot) > 0) j--;
                if (i <= j) {
                    cand t = c[i];
                    c[i] = c[j];
                    c[j] = t;
                    i++;
                    j--;
                }
            }
            if (k - 1 <= j) hi = j;
            else if (k - 1 >= i) lo = i;
            else break;
        }
        n = k;
    }
    qsort(c, (size_t)n, sizeof(cand), cand_desc);
    /* softmax over the candidates (for top-p and min-p), in double */
    double mx = c[0].v, sum = 0.0, *pr = s->prob;
    for (int32_t i = 0; i < n; i++) sum += (pr[i] = exp((double)c[i].v - mx));
    if (p->top_p < 1.0f) {
        double cum = 0.0;
        int32_t keep = n;
        for (int32_t i = 0; i < n; i++) {
            cum += pr[i] / sum;
            if (cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (p->min_p > 0.0f) {
        double thr = (double)p->min_p * pr[0]; /* relative to the most likely candidate */
        int32_t keep = 1;
        while (keep < n && pr[keep] >= thr) keep++;
        n = keep;
    }
    /* temperature, then draw */
    sum = 0.0;
    for (int32_t i = 0; i < n; i++) sum += (pr[i] = exp(((double)c[i].v - mx) / (double)p->temperature));
    double u = dspex_rng_uniform(rng) * sum, acc = 0.0;
    int32_t pick = c[n - 1].id;
    for (int32_t i = 0; i < n; i++) {
        acc += pr[i];
        if (u < acc) {
            pick = c[i].id;
            break;
        }
    }
    return pick;
}
