/* The categorical Parzen estimator of optuna's TPE. See parzen.h; each step names the
 * numpy expression it reproduces, because the order of floating point operations is
 * what makes the proposals identical. */
#include "parzen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* numpy pairwise_sum for doubles: under 8 terms left to right; up to 128 terms eight
 * interleaved accumulators then the remainder; above that, halves split at a multiple
 * of 8. */
double parzen_np_sum(const double *a, size_t n) {
    if (n < 8) {
        double r = -0.0;
        for (size_t i = 0; i < n; i++) r += a[i];
        return r;
    }
    if (n <= 128) {
        double r[8];
        memcpy(r, a, sizeof(r));
        size_t i;
        for (i = 8; i < n - (n % 8); i += 8)
            for (size_t j = 0; j < 8; j++) r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    size_t n2 = n / 2;
    n2 -= n2 % 8;
    return parzen_np_sum(a, n2) + parzen_np_sum(a + n2, n - n2);
}

/* optuna's default_weights(m): 1.0 each below 25 observations, else
 * np.linspace(1/m, 1.0, m - 25) (older trials weigh less) followed by 25 ones. */
static void default_weights(size_t m, double *w) {
    for (size_t i = 0; i < m; i++) w[i] = 1.0;
    if (m < 25) return;
    size_t num = m - 25;
    double start = 1.0 / (double)m, stop = 1.0;
    double delta = stop - start;
    if (num == 1) {
        double y = 0.0 * delta; /* linspace with div == 0: y = arange(1) * delta + start */
        w[0] = y + start;
    } else if (num > 1) {
        double step = delta / (double)(num - 1);
        for (size_t i = 0; i < num; i++) {
            double y = (double)i * step; /* y *= step; then y += start (two roundings) */
            w[i] = y + start;
        }
        w[num - 1] = stop;
    }
}

void parzen_free(parzen *e) {
    if (e->p != NULL) {
        for (size_t s = 0; s < e->n_params; s++) {
            free(e->p[s].lo);
            free(e->p[s].have);
        }
    }
    free(e->p);
    free(e->w);
    memset(e, 0, sizeof(*e));
}

/* A kernel row's sum as numpy computes it: k copies of c with c + 1 at position q
 * (q == k: none, the prior row). */
static double row_sum(double *row, uint32_t k, double c, uint32_t q) {
    for (uint32_t i = 0; i < k; i++) row[i] = c;
    if (q < k) row[q] = c + 1.0;
    return parzen_np_sum(row, k);
}

int parzen_build(parzen *e, const uint32_t *obs, size_t m, size_t n_params, const uint32_t *k) {
    memset(e, 0, sizeof(*e));
    e->m = m;
    e->n_params = n_params;
    e->obs = obs;
    e->n_kernels = m + 1;
    size_t nk = e->n_kernels;
    e->w = malloc(3 * nk * sizeof(double));
    e->p = calloc(n_params ? n_params : 1, sizeof(parzen_param));
    if (e->w == NULL || e->p == NULL) return -1;
    e->log_w = e->w + nk;
    e->cdf = e->w + 2 * nk;

    /* weights = default_weights(m) ++ [prior_weight]; weights /= weights.sum()
     * (with no observations: [1.0]) */
    if (m == 0) {
        e->w[0] = 1.0;
    } else {
        default_weights(m, e->w);
        e->w[m] = 1.0;
        double total = parzen_np_sum(e->w, nk);
        for (size_t j = 0; j < nk; j++) e->w[j] /= total;
    }
    for (size_t j = 0; j < nk; j++) e->log_w[j] = log(e->w[j]);
    /* RandomState.choice(M, p=w): cdf = p.cumsum(); cdf /= cdf[-1] */
    double acc = 0.0;
    for (size_t j = 0; j < nk; j++) {
        acc = j == 0 ? e->w[0] : acc + e->w[j];
        e->cdf[j] = acc;
    }
    for (size_t j = 0; j < nk; j++) e->cdf[j] /= acc;

    uint32_t kmax = 1;
    for (size_t s = 0; s < n_params; s++)
        if (k[s] > kmax) kmax = k[s];
    double *row = malloc(kmax * sizeof(double));
    if (row == NULL) return -1;
    /* np.full((m+1, k), prior_weight / (m+1)); weights[arange(m), obs] += 1;
     * weights /= weights.sum(axis=1, keepdims=True) */
    double c = 1.0 / (double)(m + 1);
    for (size_t s = 0; s < n_params; s++) {
        parzen_param *pp = &e->p[s];
        pp->k = k[s];
        if (m == 0) { /* np.full((1, k), 1.0 / k): no division by a row sum */
            pp->prior = 1.0 / (double)k[s];
            pp->log_prior = log(pp->prior);
            continue;
        }
        pp->lo = malloc(4 * (size_t)k[s] * sizeof(double));
        pp->have = calloc(k[s], 1);
        if (pp->lo == NULL || pp->have == NULL) {
            free(row);
            return -1;
        }
        pp->hi = pp->lo + k[s];
        pp->log_lo = pp->lo + 2 * (size_t)k[s];
        pp->log_hi = pp->lo + 3 * (size_t)k[s];
        double rs = row_sum(row, k[s], c, k[s]);
        pp->prior = c / rs;
        pp->log_prior = log(pp->prior);
        for (size_t j = 0; j < m; j++) {
            uint32_t q = obs[j * n_params + s];
            if (pp->have[q]) continue;
            rs = row_sum(row, k[s], c, q);
            pp->have[q] = 1;
            pp->lo[q] = c / rs;
            pp->hi[q] = (c + 1.0) / rs;
            pp->log_lo[q] = log(pp->lo[q]);
            pp->log_hi[q] = log(pp->hi[q]);
        }
    }
    free(row);
    return 0;
}

/* The value of kernel j's row for parameter s at choice x. */
static double row_value(const parzen *e, size_t j, size_t s, uint32_t x) {
    const parzen_param *pp = &e->p[s];
    if (j >= e->m) return pp->prior;
    uint32_t q = e->obs[j * e->n_params + s];
    return x == q ? pp->hi[q] : pp->lo[q];
}

static double row_log_value(const parzen *e, size_t j, size_t s, uint32_t x) {
    const parzen_param *pp = &e->p[s];
    if (j >= e->m) return pp->log_prior;
    uint32_t q = e->obs[j * e->n_params + s];
    return x == q ? pp->log_hi[q] : pp->log_lo[q];
}

void parzen_sample(const parzen *e, dspex_mt19937 *rng, size_t n, uint32_t *out, size_t *active) {
    size_t nk = e->n_kernels;
    /* active_indices = rng.choice(M, p=w, size=n): searchsorted(cdf, u, side="right") */
    for (size_t i = 0; i < n; i++) {
        double u = dspex_mt_next_double(rng);
        size_t lo = 0, hi = nk;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (e->cdf[mid] <= u)
                lo = mid + 1;
            else
                hi = mid;
        }
        active[i] = lo < nk ? lo : nk - 1; /* u < 1 == cdf[-1], so lo < nk already */
    }
    /* per parameter: rnd_quantile = rng.rand(n); cum = cumsum(row, axis=-1);
     * cum[:, -1] = 1; value = sum(cum < q) */
    for (size_t s = 0; s < e->n_params; s++) {
        uint32_t k = e->p[s].k;
        for (size_t i = 0; i < n; i++) {
            double q = dspex_mt_next_double(rng);
            size_t j = active[i];
            uint32_t count = 0;
            double acc = 0.0;
            for (uint32_t t = 0; t + 1 < k; t++) {
                double v = row_value(e, j, s, t);
                acc = t == 0 ? v : acc + v;
                if (!(acc < q)) break; /* the cumsum never decreases */
                count++;
            }
            out[i * e->n_params + s] = count;
        }
    }
}

void parzen_log_pdf(const parzen *e, const uint32_t *x, size_t n, double *out, double *scratch) {
    size_t nk = e->n_kernels;
    for (size_t i = 0; i < n; i++) {
        const uint32_t *xi = x + i * e->n_params;
        /* weighted_log_pdf = 0; += log(row[x]) per parameter in order; += log(weights) */
        double mx = -INFINITY;
        for (size_t j = 0; j < nk; j++) {
            double v = 0.0;
            for (size_t s = 0; s < e->n_params; s++) v += row_log_value(e, j, s, xi[s]);
            v += e->log_w[j];
            scratch[j] = v;
            if (v > mx) mx = v;
        }
        if (isinf(mx) && mx < 0) mx = 0.0; /* max_[isneginf(max_)] = 0 */
        for (size_t j = 0; j < nk; j++) scratch[j] = exp(scratch[j] - mx);
        out[i] = log(parzen_np_sum(scratch, nk)) + mx;
    }
}
