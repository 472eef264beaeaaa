/* A TPE sampler over categorical parameters that proposes exactly what optuna's
 * TPESampler(seed=seed, multivariate=True) proposes: the sampler DSPy's MIPROv2 runs
 * over its per-predictor instruction and demo-set indices. Verified against optuna 5.0.0
 * (test/fixtures/tpe/traces.json); for MIPROv2's sequential use optuna 3.6 and 4.x
 * propose the same (reference §9.5), while with trials in flight this follows 5.0's
 * constant_liar default, which older versions did not have.
 *
 * A study has a fixed search space: parameters named as in Python, each with a number
 * of choices (values are the indices 0..n-1, like MIPROv2's `range(n)`). It is driven
 * like optuna's ask-and-tell interface:
 *
 *   dspex_tpe_ask      - a new trial (the next trial number) and its parameters;
 *   dspex_tpe_tell     - the trial's objective value (NaN marks it failed, like optuna);
 *   dspex_tpe_add_trial- a finished trial the sampler did not propose (MIPROv2 adds the
 *                        default program first and each full evaluation later).
 *
 * Semantics carried over from optuna (reference §9.5):
 *   - trial numbers count asks and adds in call order; failed trials keep their number
 *     but are ignored by the sampler;
 *   - while fewer than n_startup_trials trials are COMPLETE, each parameter with more
 *     than one choice is drawn independently from a second RandomState(seed) stream
 *     (optuna's RandomSampler), in declaration order;
 *   - then all parameters with more than one choice are drawn jointly (multivariate TPE)
 *     in the order of their names as Python sorts strings; one-choice parameters are 0
 *     and never consume randomness;
 *   - trials asked but not told yet count as "above" observations (optuna 5's
 *     constant_liar default), so asking several trials before telling matches optuna.
 *   - floating point follows numpy's order of operations (pairwise sums, sequential
 *     cumsums) and uses the C library's log/exp, as numpy does on x86-64 without
 *     AVX-512 (numpy's AVX-512 log/exp may differ in the last bit: near-ties could then
 *     break differently).
 *
 * Pure C, no global state; one study must not be used from two threads at once.
 * Memory is O(trials x params) plus O(trials x params) scratch during an ask. */
#ifndef DSPEX_OPTIM_TPE_H
#define DSPEX_OPTIM_TPE_H

#include <stddef.h>
#include <stdint.h>

/* Limits (DSPEX_TPE_ELIMIT beyond them). An ask costs about
 * 24 x trials x params + params x distinct-observed-choices x choices operations. */
#define DSPEX_TPE_MAX_PARAMS 256
#define DSPEX_TPE_MAX_CHOICES 1024
#define DSPEX_TPE_MAX_NAME 256
#define DSPEX_TPE_MAX_TRIALS 100000u
#define DSPEX_TPE_MAX_EI_CANDIDATES 4096

enum {
    DSPEX_TPE_OK = 0,
    DSPEX_TPE_EINVAL = -1, /* bad argument: unknown or finished trial, index out of range... */
    DSPEX_TPE_ENOMEM = -2,
    DSPEX_TPE_ELIMIT = -3,
};

typedef enum {
    DSPEX_TPE_RUNNING = 0, /* asked, not told */
    DSPEX_TPE_COMPLETE = 1,
    DSPEX_TPE_FAIL = 2,
} dspex_tpe_state;

typedef struct {
    const char *name; /* bytes (UTF-8), compared bytewise = Python's code point order */
    size_t name_len;
    uint32_t n_choices; /* >= 1 */
} dspex_tpe_param;

typedef struct {
    uint32_t seed;             /* TPESampler(seed=...); numpy needs 0 <= seed < 2^32 */
    uint32_t n_startup_trials; /* optuna's default 10; >= 1 */
    uint32_t n_ei_candidates;  /* optuna's default 24; >= 1 */
    int minimize;              /* 0: direction="maximize" (MIPROv2), 1: "minimize" */
} dspex_tpe_opts;

typedef struct dspex_tpe dspex_tpe;

/* MIPROv2's settings: seed 9 (DSPy's default), 10 startup trials, 24 candidates,
 * maximize. */
void dspex_tpe_opts_default(dspex_tpe_opts *o);

/* Copies the parameter list (declaration order = MIPROv2's suggest order). */
int dspex_tpe_new(const dspex_tpe_param *params, size_t n_params, const dspex_tpe_opts *opts,
                  dspex_tpe **out);
void dspex_tpe_free(dspex_tpe *t);

size_t dspex_tpe_n_params(const dspex_tpe *t);
/* Number of trials so far (asked or added). */
uint32_t dspex_tpe_n_trials(const dspex_tpe *t);

/* Starts trial *number and writes its parameter indices, declaration order, into
 * choices[0..n_params). */
int dspex_tpe_ask(dspex_tpe *t, uint32_t *number, uint32_t *choices);
/* Finishes a RUNNING trial with its value; NaN fails it (optuna: "returned nan"). */
int dspex_tpe_tell(dspex_tpe *t, uint32_t number, double value);
/* Finishes a RUNNING trial as failed (an exception in the objective). */
int dspex_tpe_fail(dspex_tpe *t, uint32_t number);
/* study.add_trial(create_trial(params, value)): a COMPLETE trial with these indices.
 * NaN is EINVAL (optuna rejects it too). */
int dspex_tpe_add_trial(dspex_tpe *t, const uint32_t *choices, double value, uint32_t *number);

/* Reads trial `number`: state, value (NaN unless COMPLETE), and, if choices is not NULL,
 * its parameter indices. */
int dspex_tpe_trial(const dspex_tpe *t, uint32_t number, dspex_tpe_state *state, double *value,
                    uint32_t *choices);

#endif
