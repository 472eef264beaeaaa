/* The categorical Parzen estimator inside optuna's TPE (optuna/samplers/_tpe/
 * parzen_estimator.py and probability_distributions.py), with numpy's order of floating
 * point operations. Internal to c_src/core/optim (tpe.c); see include/dspex/optim/tpe.h. */
#ifndef DSPEX_OPTIM_PARZEN_H
#define DSPEX_OPTIM_PARZEN_H

#include <stddef.h>
#include <stdint.h>

#include "dspex/mt19937.h"

/* One parameter's kernel rows. A kernel that observed choice q has the row
 * c/rs_q everywhere except (c+1)/rs_q at q, where c = 1/(m+1) and rs_q is numpy's
 * pairwise sum of that row before division (it depends on q's position); the prior
 * kernel's row is c/rs everywhere. Rows are computed only for observed q. */
typedef struct {
    uint32_t k;
    double *lo, *hi, *log_lo, *log_hi; /* [k], valid where have[q] */
    unsigned char *have;
    double prior, log_prior; /* the prior row's value (1/k when there are no observations) */
} parzen_param;

typedef struct {
    size_t m;         /* observations */
    size_t n_kernels; /* m + 1 (the prior), or 1 when m == 0 */
    size_t n_params;
    const uint32_t *obs; /* m x n_params choice indices, borrowed */
    double *w, *log_w, *cdf;
    parzen_param *p;
} parzen;

/* numpy's pairwise summation (np.add.reduce over a contiguous axis). */
double parzen_np_sum(const double *a, size_t n);

/* Builds the estimator over m observations (rows of n_params indices, each < k[s]).
 * Returns 0, or -1 when out of memory (then parzen_free is still safe). */
int parzen_build(parzen *e, const uint32_t *obs, size_t m, size_t n_params, const uint32_t *k);
void parzen_free(parzen *e);

/* _MixtureOfProductDistribution.sample(rng, n): n kernel draws, then n uniforms per
 * parameter. out is n x n_params; active is scratch for n kernel indices. */
void parzen_sample(const parzen *e, dspex_mt19937 *rng, size_t n, uint32_t *out, size_t *active);

/* log_pdf of each of the n points in x (n x n_params) into out[n]; scratch holds
 * n_kernels doubles. */
void parzen_log_pdf(const parzen *e, const uint32_t *x, size_t n, double *out, double *scratch);

#endif
