/* The TPE sampler against real optuna: every trace in test/fixtures/tpe/traces.json
 * (tools/gen_tpe_traces.py, optuna TPESampler(seed, multivariate=True)) is replayed --
 * the same adds and told values -- and every proposal must equal optuna's. Plus the
 * API's error paths. */
#include <math.h>
#include <stdint.h>

#include "ctest.h"
#include "dspex/optim/tpe.h"
#include "fixture.h"
#include "optim/parzen.h"

static int build_study(const cJSON *tr, dspex_tpe **out, size_t *n_params) {
    dspex_tpe_param params[DSPEX_TPE_MAX_PARAMS];
    size_t n = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(tr, "params")) {
        if (n == DSPEX_TPE_MAX_PARAMS) return -1;
        const char *name = fixture_str(p, "name");
        params[n++] = (dspex_tpe_param){name, strlen(name),
                                        (uint32_t)cJSON_GetObjectItemCaseSensitive(p, "choices")->valueint};
    }
    dspex_tpe_opts o;
    dspex_tpe_opts_default(&o);
    o.seed = (uint32_t)cJSON_GetObjectItemCaseSensitive(tr, "seed")->valuedouble;
    o.n_startup_trials = (uint32_t)cJSON_GetObjectItemCaseSensitive(tr, "n_startup_trials")->valueint;
    o.n_ei_candidates = (uint32_t)cJSON_GetObjectItemCaseSensitive(tr, "n_ei_candidates")->valueint;
    o.minimize = strcmp(fixture_str(tr, "direction"), "minimize") == 0;
    *n_params = n;
    return dspex_tpe_new(params, n, &o, out);
}

static void read_choices(const cJSON *arr, uint32_t *out) {
    size_t i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) out[i++] = (uint32_t)v->valueint;
}

/* Replays one trace; returns the number of asks that matched, *asks the total. */
static int replay(const cJSON *tr, int *asks, int *failed) {
    dspex_tpe *t;
    size_t np;
    if (build_study(tr, &t, &np) != 0) {
        *failed = 1;
        return 0;
    }
    int ok = 0;
    const cJSON *ev;
    uint32_t want[DSPEX_TPE_MAX_PARAMS], got[DSPEX_TPE_MAX_PARAMS];
    cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(tr, "events")) {
        const char *op = fixture_str(ev, "op");
        uint32_t number = (uint32_t)cJSON_GetObjectItemCaseSensitive(ev, "number")->valueint, n = 0;
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(ev, "value");
        if (strcmp(op, "add") == 0) {
            read_choices(cJSON_GetObjectItemCaseSensitive(ev, "params"), want);
            if (dspex_tpe_add_trial(t, want, value->valuedouble, &n) != 0 || n != number) *failed = 1;
        } else if (strcmp(op, "ask") == 0) {
            read_choices(cJSON_GetObjectItemCaseSensitive(ev, "params"), want);
            (*asks)++;
            if (dspex_tpe_ask(t, &n, got) != 0 || n != number) {
                *failed = 1;
            } else if (memcmp(want, got, np * sizeof(uint32_t)) == 0) {
                ok++;
            } else {
                fprintf(stderr, "  %s trial %u: optuna [", fixture_str(tr, "name"), number);
                for (size_t i = 0; i < np; i++) fprintf(stderr, "%s%u", i ? "," : "", want[i]);
                fprintf(stderr, "] dspex [");
                for (size_t i = 0; i < np; i++) fprintf(stderr, "%s%u", i ? "," : "", got[i]);
                fprintf(stderr, "]\n");
                /* continue with optuna's choice is impossible (the state differs): stop */
                break;
            }
        } else if (strcmp(op, "tell") == 0) {
            double v = cJSON_IsNull(value) ? NAN : value->valuedouble;
            if (dspex_tpe_tell(t, number, v) != 0) *failed = 1;
        }
    }
    dspex_tpe_free(t);
    return ok;
}

CTEST(golden_traces_from_optuna) {
    cJSON *doc = fixture_load("test/fixtures/tpe/traces.json");
    CHECK(doc != NULL);
    if (doc == NULL) return;
    int traces = 0, traces_ok = 0, asks = 0, ok = 0;
    const cJSON *tr;
    cJSON_ArrayForEach(tr, cJSON_GetObjectItemCaseSensitive(doc, "traces")) {
        int a = 0, failed = 0;
        int good = replay(tr, &a, &failed);
        traces++;
        asks += a;
        ok += good;
        if (good == a && !failed) traces_ok++;
        CHECK(!failed);
    }
    printf("  TPE golden traces: %d/%d traces, %d/%d proposals identical to optuna %s (numpy %s)\n",
           traces_ok, traces, ok, asks, fixture_str(doc, "optuna"), fixture_str(doc, "numpy"));
    CHECK(traces >= 40 && asks >= 1500);
    CHECK(traces_ok == traces && ok == asks);
    cJSON_Delete(doc);
}

/* The reference's worked example (§9.5): seed 9, 3 instructions x 6 demo sets, after
 * the default trial: the first proposal is instruction 1, demo set 3. */
CTEST(first_mipro_trial_seed_9) {
    dspex_tpe_param p[2] = {{"0_predictor_instruction", 23, 3}, {"0_predictor_demos", 17, 6}};
    dspex_tpe_opts o;
    dspex_tpe_opts_default(&o);
    dspex_tpe *t;
    CHECK(dspex_tpe_new(p, 2, &o, &t) == 0);
    uint32_t zero[2] = {0, 0}, c[2], n;
    CHECK(dspex_tpe_add_trial(t, zero, 40.0, &n) == 0 && n == 0);
    CHECK(dspex_tpe_ask(t, &n, c) == 0 && n == 1);
    CHECK(c[0] == 1 && c[1] == 3);
    dspex_tpe_free(t);
}

CTEST(api_errors) {
    dspex_tpe_param p[3] = {{"a", 1, 4}, {"b", 1, 1}, {"c", 1, 2}};
    dspex_tpe_opts o;
    dspex_tpe_opts_default(&o);
    dspex_tpe *t;
    CHECK(dspex_tpe_new(p, 3, &o, &t) == 0);
    uint32_t c[3], n;
    CHECK(dspex_tpe_tell(t, 0, 1.0) == DSPEX_TPE_EINVAL); /* no such trial */
    CHECK(dspex_tpe_ask(t, &n, c) == 0 && n == 0 && c[1] == 0 && c[0] < 4 && c[2] < 2);
    CHECK(dspex_tpe_tell(t, 0, 1.0) == 0);
    CHECK(dspex_tpe_tell(t, 0, 2.0) == DSPEX_TPE_EINVAL); /* already finished */
    CHECK(dspex_tpe_fail(t, 0) == DSPEX_TPE_EINVAL);
    uint32_t bad[3] = {4, 0, 0};
    CHECK(dspex_tpe_add_trial(t, bad, 1.0, &n) == DSPEX_TPE_EINVAL);
    uint32_t one[3] = {0, 1, 0}; /* "b" has one choice */
    CHECK(dspex_tpe_add_trial(t, one, 1.0, &n) == DSPEX_TPE_EINVAL);
    uint32_t fine[3] = {3, 0, 1};
    CHECK(dspex_tpe_add_trial(t, fine, NAN, &n) == DSPEX_TPE_EINVAL);
    CHECK(dspex_tpe_add_trial(t, fine, INFINITY, &n) == 0 && n == 1);
    CHECK(dspex_tpe_ask(t, &n, c) == 0 && n == 2);
    CHECK(dspex_tpe_tell(t, 2, NAN) == 0); /* NaN fails the trial */
    dspex_tpe_state st;
    double v;
    CHECK(dspex_tpe_trial(t, 2, &st, &v, c) == 0 && st == DSPEX_TPE_FAIL && isnan(v));
    CHECK(dspex_tpe_trial(t, 1, &st, &v, c) == 0 && st == DSPEX_TPE_COMPLETE && v == INFINITY && c[0] == 3);
    CHECK(dspex_tpe_trial(t, 3, &st, &v, c) == DSPEX_TPE_EINVAL);
    CHECK(dspex_tpe_n_trials(t) == 3 && dspex_tpe_n_params(t) == 3);
    dspex_tpe_free(t);

    dspex_tpe_param dup[2] = {{"x", 1, 2}, {"x", 1, 3}};
    CHECK(dspex_tpe_new(dup, 2, &o, &t) == DSPEX_TPE_EINVAL);
    dspex_tpe_param big[1] = {{"x", 1, DSPEX_TPE_MAX_CHOICES + 1}};
    CHECK(dspex_tpe_new(big, 1, &o, &t) == DSPEX_TPE_ELIMIT);
    dspex_tpe_param zero[1] = {{"x", 1, 0}};
    CHECK(dspex_tpe_new(zero, 1, &o, &t) == DSPEX_TPE_EINVAL);
    o.n_startup_trials = 0;
    CHECK(dspex_tpe_new(p, 3, &o, &t) == DSPEX_TPE_EINVAL);
}

CTEST(single_choice_space_draws_nothing) {
    dspex_tpe_param p[2] = {{"a", 1, 1}, {"b", 1, 1}};
    dspex_tpe_opts o;
    dspex_tpe_opts_default(&o);
    dspex_tpe *t;
    CHECK(dspex_tpe_new(p, 2, &o, &t) == 0);
    for (int i = 0; i < 30; i++) {
        uint32_t c[2] = {9, 9}, n;
        CHECK(dspex_tpe_ask(t, &n, c) == 0 && c[0] == 0 && c[1] == 0);
        CHECK(dspex_tpe_tell(t, n, (double)i) == 0);
    }
    dspex_tpe_free(t);
}

CTEST(same_seed_same_proposals) {
    dspex_tpe_param p[3] = {{"1_predictor_instruction", 23, 12}, {"0_predictor_demos", 17, 9},
                            {"0_predictor_instruction", 23, 5}};
    dspex_tpe_opts o;
    dspex_tpe_opts_default(&o);
    o.seed = 1234;
    dspex_tpe *a, *b;
    CHECK(dspex_tpe_new(p, 3, &o, &a) == 0 && dspex_tpe_new(p, 3, &o, &b) == 0);
    for (int i = 0; i < 40; i++) {
        uint32_t ca[3], cb[3], na, nb;
        CHECK(dspex_tpe_ask(a, &na, ca) == 0 && dspex_tpe_ask(b, &nb, cb) == 0);
        CHECK(na == nb && memcmp(ca, cb, sizeof(ca)) == 0);
        double v = (double)((ca[0] * 7 + ca[1] * 3 + ca[2]) % 11);
        CHECK(dspex_tpe_tell(a, na, v) == 0 && dspex_tpe_tell(b, nb, v) == 0);
    }
    dspex_tpe_free(a);
    dspex_tpe_free(b);
}

CTEST(numpy_pairwise_sum) {
    /* 0.1 summed 10 times: left to right gives 0.9999999999999999; numpy's pairwise
     * order (8 accumulators, then the rest) gives 1.0 */
    double a[200];
    for (int i = 0; i < 200; i++) a[i] = 0.1;
    CHECK(parzen_np_sum(a, 10) == 1.0);
    CHECK(parzen_np_sum(a, 7) == 0.1 + 0.1 + 0.1 + 0.1 + 0.1 + 0.1 + 0.1);
    CHECK(parzen_np_sum(a, 0) == 0.0);
    CHECK(fabs(parzen_np_sum(a, 200) - 20.0) < 1e-12);
}

int main(void) { return ctest_run(); }
