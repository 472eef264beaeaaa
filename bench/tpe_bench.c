/* The C TPE sampler's ask time on MIPROv2-shaped studies (run by bench/tpe.exs, which
 * compiles this file with the optim core). Usage: tpe_bench P N_INSTR N_DEMOS TRIALS SECONDS
 *
 * Each study: the default trial (all indices 0) added, then TRIALS ask/tell rounds with
 * a scripted score; repeated until SECONDS have passed. Prints the mean time per ask
 * and an FNV-1a digest of the first study's proposals (bench/py/tpe_bench.py prints the
 * same digest for optuna, so the comparison is between identical work). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dspex/optim/tpe.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* the scripted objective, identical in bench/py/tpe_bench.py */
static double score(const uint32_t *v, size_t n) {
    long sum = 0;
    for (size_t i = 0; i < n; i++) sum += ((long)v[i] * 37 + (long)i * 11) % 17;
    return (double)sum / 17.0 * 100.0 / (double)n;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s P N_INSTR N_DEMOS TRIALS SECONDS\n", argv[0]);
        return 2;
    }
    int preds = atoi(argv[1]), ni = atoi(argv[2]), nd = atoi(argv[3]), trials = atoi(argv[4]);
    double seconds = atof(argv[5]);
    dspex_tpe_param params[64];
    char names[64][32];
    size_t np = 0;
    for (int i = 0; i < preds; i++) {
        snprintf(names[np], 32, "%d_predictor_instruction", i);
        params[np] = (dspex_tpe_param){names[np], strlen(names[np]), (uint32_t)ni};
        np++;
        if (nd > 0) {
            snprintf(names[np], 32, "%d_predictor_demos", i);
            params[np] = (dspex_tpe_param){names[np], strlen(names[np]), (uint32_t)nd};
            np++;
        }
    }
    dspex_tpe_opts o;
    dspex_tpe_opts_default(&o);
    uint64_t digest = 1469598103934665603ULL;
    double asked = 0, spent = 0, start = now();
    int studies = 0;
    do {
        dspex_tpe *t;
        if (dspex_tpe_new(params, np, &o, &t) != 0) return 1;
        uint32_t c[64] = {0}, n;
        if (dspex_tpe_add_trial(t, c, score(c, np), &n) != 0) return 1;
        for (int k = 0; k < trials; k++) {
            double t0 = now();
            if (dspex_tpe_ask(t, &n, c) != 0) return 1;
            spent += now() - t0;
            asked++;
            if (studies == 0)
                for (size_t i = 0; i < np; i++) digest = (digest ^ c[i]) * 1099511628211ULL;
            if (dspex_tpe_tell(t, n, score(c, np)) != 0) return 1;
        }
        dspex_tpe_free(t);
        studies++;
    } while (now() - start < seconds);
    printf("studies=%d asks=%.0f us_per_ask=%.3f digest=%016llx\n", studies, asked, spent / asked * 1e6,
           (unsigned long long)digest);
    return 0;
}
