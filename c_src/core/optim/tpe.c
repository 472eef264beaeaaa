/* optuna's TPESampler(multivariate=True) over categorical parameters, driven by
 * ask/tell. See include/dspex/optim/tpe.h for the semantics; the comments below name the
 * optuna code each step mirrors (optuna/samplers/_tpe/sampler.py, _random.py). */
#include "dspex/optim/tpe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/mt19937.h"
#include "parzen.h"

struct dspex_tpe {
    dspex_tpe_opts opts;
    size_t n_params;
    dspex_tpe_param *params; /* names point into `names` */
    char *names;
    uint32_t *space; /* multi-choice parameters in sorted-name order (optuna's relative space) */
    size_t n_space;
    dspex_mt19937 rng_tpe;    /* TPESampler._rng: RandomState(seed) */
    dspex_mt19937 rng_random; /* TPESampler._random_sampler._rng: another RandomState(seed) */
    uint32_t n_trials, cap;
    uint32_t n_complete;
    unsigned char *state;
    double *value;
    uint32_t *choices; /* n_trials x n_params */
};

void dspex_tpe_opts_default(dspex_tpe_opts *o) {
    o->seed = 9;
    o->n_startup_trials = 10;
    o->n_ei_candidates = 24;
    o->minimize = 0;
}

/* Python's str ordering for UTF-8 names: bytewise, a prefix first. */
static int name_cmp(const dspex_tpe_param *a, const dspex_tpe_param *b) {
    size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = n ? memcmp(a->name, b->name, n) : 0;
    if (c != 0) return c;
    return (a->name_len > b->name_len) - (a->name_len < b->name_len);
}

int dspex_tpe_new(const dspex_tpe_param *params, size_t n_params, const dspex_tpe_opts *opts,
                  dspex_tpe **out) {
    *out = NULL;
    if (n_params > DSPEX_TPE_MAX_PARAMS) return DSPEX_TPE_ELIMIT;
    if (opts->n_startup_trials == 0 || opts->n_ei_candidates == 0) return DSPEX_TPE_EINVAL;
    if (opts->n_ei_candidates > DSPEX_TPE_MAX_EI_CANDIDATES) return DSPEX_TPE_ELIMIT;
    size_t name_bytes = 0;
    for (size_t i = 0; i < n_params; i++) {
        if (params[i].n_choices == 0 || (params[i].name == NULL && params[i].name_len > 0))
            return DSPEX_TPE_EINVAL;
        if (params[i].n_choices > DSPEX_TPE_MAX_CHOICES || params[i].name_len > DSPEX_TPE_MAX_NAME)
            return DSPEX_TPE_ELIMIT;
        name_bytes += params[i].name_len;
    }
    for (size_t i = 0; i < n_params; i++) /* optuna keys parameters by name */
        for (size_t j = 0; j < i; j++)
            if (name_cmp(&params[i], &params[j]) == 0) return DSPEX_TPE_EINVAL;
    dspex_tpe *t = calloc(1, sizeof(*t));
    if (t == NULL) return DSPEX_TPE_ENOMEM;
    t->opts = *opts;
    t->n_params = n_params;
    t->params = calloc(n_params ? n_params : 1, sizeof(*t->params));
    t->names = malloc(name_bytes ? name_bytes : 1);
    t->space = calloc(n_params ? n_params : 1, sizeof(*t->space));
    if (t->params == NULL || t->names == NULL || t->space == NULL) {
        dspex_tpe_free(t);
        return DSPEX_TPE_ENOMEM;
    }
    char *p = t->names;
    for (size_t i = 0; i < n_params; i++) {
        t->params[i] = params[i];
        if (params[i].name_len) memcpy(p, params[i].name, params[i].name_len);
        t->params[i].name = p;
        p += params[i].name_len;
        if (params[i].n_choices > 1) {
            /* insertion into sorted order; ties are impossible (names are unique) */
            size_t at = t->n_space;
            while (at > 0 && name_cmp(&t->params[t->space[at - 1]], &t->params[i]) > 0) {
                t->space[at] = t->space[at - 1];
                at--;
            }
            t->space[at] = (uint32_t)i;
            t->n_space++;
        }
    }
    dspex_mt_init_genrand(&t->rng_tpe, opts->seed);
    dspex_mt_init_genrand(&t->rng_random, opts->seed);
    *out = t;
    return DSPEX_TPE_OK;
}

void dspex_tpe_free(dspex_tpe *t) {
    if (t == NULL) return;
    free(t->params);
    free(t->names);
    free(t->space);
    free(t->state);
    free(t->value);
    free(t->choices);
    free(t);
}

size_t dspex_tpe_n_params(const dspex_tpe *t) { return t->n_params; }
uint32_t dspex_tpe_n_trials(const dspex_tpe *t) { return t->n_trials; }

static int reserve_trial(dspex_tpe *t) {
    if (t->n_trials >= DSPEX_TPE_MAX_TRIALS) return DSPEX_TPE_ELIMIT;
    if (t->n_trials < t->cap) return DSPEX_TPE_OK;
    uint32_t cap = t->cap ? t->cap * 2 : 64;
    if (cap > DSPEX_TPE_MAX_TRIALS) cap = DSPEX_TPE_MAX_TRIALS;
    size_t np = t->n_params ? t->n_params : 1;
    unsigned char *st = realloc(t->state, cap);
    if (st == NULL) return DSPEX_TPE_ENOMEM;
    t->state = st;
    double *v = realloc(t->value, cap * sizeof(double));
    if (v == NULL) return DSPEX_TPE_ENOMEM;
    t->value = v;
    uint32_t *c = realloc(t->choices, (size_t)cap * np * sizeof(uint32_t));
    if (c == NULL) return DSPEX_TPE_ENOMEM;
    t->choices = c;
    t->cap = cap;
    return DSPEX_TPE_OK;
}

/* RandomSampler.sample_independent for a categorical: rng.uniform over the one-hot
 * bounds [0, 1] (k draws, 0 + 1 * u == u), then argmax (the first maximum). */
static uint32_t random_categorical(dspex_mt19937 *rng, uint32_t k) {
    uint32_t best = 0;
    double best_u = -1.0;
    for (uint32_t i = 0; i < k; i++) {
        double u = dspex_mt_next_double(rng);
        if (u > best_u) {
            best_u = u;
            best = i;
        }
    }
    return best;
}

typedef struct {
    const dspex_tpe *t;
    uint32_t number;
} ranked;

/* _split_complete_trials_single_objective: sorted(trials, key=value[, reverse=True]),
 * which is stable, so equal values keep trial order. qsort is not stable; the trial
 * number as a second key gives the same order. */
static int cmp_best_first(const void *pa, const void *pb) {
    const ranked *a = pa, *b = pb;
    double va = a->t->value[a->number], vb = b->t->value[b->number];
    if (va != vb) {
        int a_first = a->t->opts.minimize ? va < vb : va > vb;
        return a_first ? -1 : 1;
    }
    return (a->number > b->number) - (a->number < b->number);
}

/* TPESampler._sample over the relative space, for the trial being asked (not yet stored:
 * optuna leaves the current trial out of its own observations). */
static int tpe_sample(dspex_tpe *t, uint32_t *choices) {
    const size_t S = t->n_space, P = t->n_params, n_ei = t->opts.n_ei_candidates;
    uint32_t n = t->n_complete; /* trials not RUNNING (FAIL ones are not in the list) */
    double g = ceil(0.1 * (double)n); /* default_gamma: min(ceil(0.1 * n), 25) */
    uint32_t n_below = g < 25.0 ? (uint32_t)g : 25;
    if (n_below > n) n_below = n;

    int rc = DSPEX_TPE_ENOMEM;
    ranked *rank = malloc((n ? n : 1) * sizeof(*rank));
    unsigned char *is_below = calloc(t->n_trials ? t->n_trials : 1, 1);
    uint32_t *obs_below = malloc(((size_t)n_below + 1) * S * sizeof(uint32_t));
    uint32_t *obs_above = malloc(((size_t)t->n_trials + 1) * S * sizeof(uint32_t));
    uint32_t *k = malloc((S ? S : 1) * sizeof(uint32_t));
    uint32_t *cand = malloc(n_ei * S * sizeof(uint32_t));
    size_t *active = malloc(n_ei * sizeof(size_t));
    double *lb = malloc(2 * n_ei * sizeof(double));
    double *scratch = malloc(((size_t)t->n_trials + 1) * sizeof(double));
    parzen below = {0}, above = {0};
    if (!rank || !is_below || !obs_below || !obs_above || !k || !cand || !active || !lb || !scratch) goto done;

    size_t nr = 0;
    for (uint32_t i = 0; i < t->n_trials; i++)
        if (t->state[i] == DSPEX_TPE_COMPLETE) rank[nr++] = (ranked){t, i};
    qsort(rank, nr, sizeof(*rank), cmp_best_first);
    for (uint32_t i = 0; i < n_below; i++) is_below[rank[i].number] = 1;

    /* below: the best n_below COMPLETE trials; above: the other COMPLETE trials and the
     * RUNNING ones (constant liar); both in trial-number order. */
    size_t mb = 0, ma = 0;
    for (uint32_t i = 0; i < t->n_trials; i++) {
        if (t->state[i] == DSPEX_TPE_FAIL) continue;
        uint32_t *dst = is_below[i] ? obs_below + mb++ * S : obs_above + ma++ * S;
        for (size_t s = 0; s < S; s++) dst[s] = t->choices[(size_t)i * P + t->space[s]];
    }
    for (size_t s = 0; s < S; s++) k[s] = t->params[t->space[s]].n_choices;
    if (parzen_build(&below, obs_below, mb, S, k) != 0 || parzen_build(&above, obs_above, ma, S, k) != 0)
        goto done;

    /* samples_below = mpe_below.sample(self._rng.rng, n_ei_candidates);
     * acq = log l(x) - log g(x); best = np.argmax(acq) (the first maximum) */
    parzen_sample(&below, &t->rng_tpe, n_ei, cand, active);
    double *la = lb + n_ei;
    parzen_log_pdf(&below, cand, n_ei, lb, scratch);
    parzen_log_pdf(&above, cand, n_ei, la, scratch);
    size_t best = 0;
    double best_acq = 0.0;
    for (size_t i = 0; i < n_ei; i++) {
        double acq = lb[i] - la[i];
        if (i == 0 || acq > best_acq || (isnan(acq) && !isnan(best_acq))) {
            best = i;
            best_acq = acq;
            if (isnan(acq)) break; /* np.argmax stops at the first NaN */
        }
    }
    for (size_t s = 0; s < S; s++) choices[t->space[s]] = cand[best * S + s];
    rc = DSPEX_TPE_OK;
done:
    parzen_free(&below);
    parzen_free(&above);
    free(rank);
    free(is_below);
    free(obs_below);
    free(obs_above);
    free(k);
    free(cand);
    free(active);
    free(lb);
    free(scratch);
    return rc;
}

int dspex_tpe_ask(dspex_tpe *t, uint32_t *number, uint32_t *choices) {
    int rc = reserve_trial(t);
    if (rc != DSPEX_TPE_OK) return rc;
    uint32_t *row = t->choices + (size_t)t->n_trials * t->n_params;
    for (size_t i = 0; i < t->n_params; i++) row[i] = 0; /* one-choice params: no draw */
    if (t->n_space > 0) {
        if (t->n_complete < t->opts.n_startup_trials) {
            /* _sample_relative returns {} during startup; every suggest then goes to
             * the RandomSampler, in suggest (declaration) order */
            for (size_t i = 0; i < t->n_params; i++)
                if (t->params[i].n_choices > 1) row[i] = random_categorical(&t->rng_random, t->params[i].n_choices);
        } else {
            rc = tpe_sample(t, row);
            if (rc != DSPEX_TPE_OK) return rc;
        }
    }
    *number = t->n_trials;
    t->state[t->n_trials] = DSPEX_TPE_RUNNING;
    t->value[t->n_trials] = NAN;
    t->n_trials++;
    memcpy(choices, row, t->n_params * sizeof(uint32_t));
    return DSPEX_TPE_OK;
}

int dspex_tpe_tell(dspex_tpe *t, uint32_t number, double value) {
    if (number >= t->n_trials || t->state[number] != DSPEX_TPE_RUNNING) return DSPEX_TPE_EINVAL;
    if (isnan(value)) {
        t->state[number] = DSPEX_TPE_FAIL;
        return DSPEX_TPE_OK;
    }
    t->state[number] = DSPEX_TPE_COMPLETE;
    t->value[number] = value;
    t->n_complete++;
    return DSPEX_TPE_OK;
}

int dspex_tpe_fail(dspex_tpe *t, uint32_t number) {
    if (number >= t->n_trials || t->state[number] != DSPEX_TPE_RUNNING) return DSPEX_TPE_EINVAL;
    t->state[number] = DSPEX_TPE_FAIL;
    return DSPEX_TPE_OK;
}

int dspex_tpe_add_trial(dspex_tpe *t, const uint32_t *choices, double value, uint32_t *number) {
    if (isnan(value)) return DSPEX_TPE_EINVAL;
    for (size_t i = 0; i < t->n_params; i++)
        if (choices[i] >= t->params[i].n_choices) return DSPEX_TPE_EINVAL;
    int rc = reserve_trial(t);
    if (rc != DSPEX_TPE_OK) return rc;
    memcpy(t->choices + (size_t)t->n_trials * t->n_params, choices, t->n_params * sizeof(uint32_t));
    t->state[t->n_trials] = DSPEX_TPE_COMPLETE;
    t->value[t->n_trials] = value;
    t->n_complete++;
    *number = t->n_trials++;
    return DSPEX_TPE_OK;
}

int dspex_tpe_trial(const dspex_tpe *t, uint32_t number, dspex_tpe_state *state, double *value,
                    uint32_t *choices) {
    if (number >= t->n_trials) return DSPEX_TPE_EINVAL;
    *state = (dspex_tpe_state)t->state[number];
    *value = t->value[number];
    if (choices != NULL) memcpy(choices, t->choices + (size_t)number * t->n_params, t->n_params * sizeof(uint32_t));
    return DSPEX_TPE_OK;
}
