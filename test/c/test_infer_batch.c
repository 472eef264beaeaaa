/* Shared-prefix KV reuse and continuous batching on a tiny random-weight model (written
 * in memory): batched rows of several sequences give bit-identical logits to evaluating
 * each alone; a context filled from the prefix cache gives the same logits as a full
 * prefill; the cache splits shared prefixes, stays within its bytes and evicts LRU
 * leaves; generations decoded in a batch (joining and leaving between steps, greedy and
 * seeded sampling, stop strings) produce the same tokens as each run alone; concurrent
 * prompts sharing a prefix prefill it once. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "dspex/infer/batch.h"
#include "test_infer_gguf_writer.h"

static dspex_model *tiny(const char *arch, uint32_t type, gw_bytes *keep) {
    gw_tiny_model(keep, arch, type, 64, 2, 4, 2, 128);
    char err[256];
    dspex_gguf *g = dspex_gguf_parse(keep->p, keep->len, err, sizeof(err));
    if (g == NULL) return NULL;
    dspex_model_params mp = {2, 1};
    return dspex_model_from_gguf(g, &mp, err, sizeof(err));
}

typedef struct {
    int32_t nv;
    float *rows; /* [n][nv] indexed by the callback's i */
} rows_acc;

static void keep_rows(void *ud, int32_t i, const float *lg) {
    rows_acc *a = ud;
    memcpy(a->rows + (size_t)i * a->nv, lg, sizeof(float) * (size_t)a->nv);
}

static void prompt_of(int32_t *ids, int n, int salt, int nv) {
    for (int i = 0; i < n; i++) ids[i] = (i * 37 + 5 + salt * 11 * (i >= 20)) % (nv - 1);
}

CTEST(rows_of_several_sequences_equal_each_alone) {
    const char *archs[2] = {"llama", "qwen2"};
    for (int a = 0; a < 2; a++) {
        gw_bytes b;
        dspex_model *m = tiny(archs[a], DSPEX_T_Q8_0, &b);
        CHECK(m != NULL);
        if (!m) continue;
        int nv = m->hp.n_vocab;
        char err[256];
        int32_t p[3][24];
        for (int s = 0; s < 3; s++) prompt_of(p[s], 24, s + 1, nv);
        /* alone: each sequence's logits after every token */
        float *alone = malloc(sizeof(float) * 3 * 24 * (size_t)nv), *batched = malloc(sizeof(float) * 3 * 24 * (size_t)nv);
        for (int s = 0; s < 3; s++) {
            dspex_ctx *c = dspex_ctx_new(m, 64, 8, err, sizeof err);
            rows_acc r = {nv, alone + (size_t)s * 24 * nv};
            CHECK(dspex_ctx_eval(c, p[s], 24, DSPEX_LOGITS_ALL, keep_rows, &r, err, sizeof err) == 0);
            dspex_ctx_free(c);
        }
        /* batched: sequence s is fed in chunks of (s + 1) tokens, interleaved */
        dspex_ctx *seq[3], *scratch = dspex_ctx_new_scratch(m, 16, err, sizeof err);
        for (int s = 0; s < 3; s++) seq[s] = dspex_ctx_new(m, 64, 1, err, sizeof err);
        int fed[3] = {0, 0, 0};
        while (fed[0] < 24 || fed[1] < 24 || fed[2] < 24) {
            dspex_row rows[16];
            int owner[16], at[16], T = 0;
            for (int s = 0; s < 3; s++)
                for (int k = 0; k < s + 1 && fed[s] < 24; k++, fed[s]++) {
                    rows[T] = (dspex_row){seq[s], p[s][fed[s]], 1};
                    owner[T] = s, at[T++] = fed[s];
                }
            float *out = malloc(sizeof(float) * (size_t)T * nv);
            rows_acc r = {nv, out};
            CHECK(dspex_ctx_eval_rows(scratch, rows, T, keep_rows, &r, err, sizeof err) == 0);
            for (int t = 0; t < T; t++)
                memcpy(batched + ((size_t)owner[t] * 24 + at[t]) * nv, out + (size_t)t * nv, sizeof(float) * nv);
            free(out);
        }
        CHECK(memcmp(alone, batched, sizeof(float) * 3 * 24 * (size_t)nv) == 0);
        for (int s = 0; s < 3; s++) CHECK(seq[s]->n_past == 24);
        /* a full context refuses the whole batch and changes nothing */
        dspex_ctx *small = dspex_ctx_new(m, 2, 1, err, sizeof err);
        dspex_row two[3] = {{seq[0], 1, 0}, {small, 1, 0}, {small, 2, 0}};
        CHECK(dspex_ctx_eval_rows(scratch, two, 3, NULL, NULL, err, sizeof err) == 0);
        two[0] = (dspex_row){small, 3, 0};
        CHECK(dspex_ctx_eval_rows(scratch, two, 1, NULL, NULL, err, sizeof err) == -1 && strstr(err, "full"));
        CHECK(small->n_past == 2 && seq[0]->n_past == 25);
        dspex_row bad = {seq[1], nv + 5, 0};
        CHECK(dspex_ctx_eval_rows(scratch, &bad, 1, NULL, NULL, err, sizeof err) == -1 && seq[1]->n_past == 24);
        CHECK(dspex_ctx_eval_rows(scratch, &bad, 17, NULL, NULL, err, sizeof err) == -1);
        dspex_ctx_free(small);
        for (int s = 0; s < 3; s++) dspex_ctx_free(seq[s]);
        dspex_ctx_free(scratch);
        free(alone);
        free(batched);
        dspex_model_free(m);
        free(b.p);
    }
}

static void last_logits(void *ud, int32_t i, const float *lg) {
    (void)i;
    rows_acc *a = ud;
    memcpy(a->rows, lg, sizeof(float) * (size_t)a->nv);
}

CTEST(prefix_cache_reuse_gives_the_same_logits) {
    gw_bytes b;
    dspex_model *m = tiny("qwen2", DSPEX_T_Q4_0, &b);
    CHECK(m != NULL);
    if (!m) return;
    int nv = m->hp.n_vocab;
    char err[256];
    dspex_prefix_cache *pc = dspex_prefix_cache_new(m, 64u << 20);
    int32_t p1[40], p2[40];
    prompt_of(p1, 40, 1, nv);
    prompt_of(p2, 40, 2, nv); /* shares the first 20 tokens with p1 */
    float *full = malloc(sizeof(float) * nv), *reused = malloc(sizeof(float) * nv);
    /* p1 prefilled in full, stored */
    dspex_ctx *c = dspex_ctx_new(m, 64, 8, err, sizeof err);
    CHECK(dspex_prefix_cache_lookup(pc, c, p1, 40, 39) == 0);
    rows_acc r = {nv, full};
    CHECK(dspex_ctx_eval(c, p1, 40, DSPEX_LOGITS_LAST, last_logits, &r, err, sizeof err) == 0);
    dspex_prefix_cache_insert(pc, c, 40);
    dspex_ctx_free(c);
    /* p1 again: 39 positions copied, the last evaluated: identical logits */
    c = dspex_ctx_new(m, 64, 8, err, sizeof err);
    CHECK(dspex_prefix_cache_lookup(pc, c, p1, 40, 39) == 39 && c->n_past == 39);
    r.rows = reused;
    CHECK(dspex_ctx_eval(c, p1 + 39, 1, DSPEX_LOGITS_LAST, last_logits, &r, err, sizeof err) == 0);
    CHECK(memcmp(full, reused, sizeof(float) * nv) == 0);
    dspex_ctx_free(c);
    /* p2: the 20 shared positions come from the cache, the rest is computed */
    c = dspex_ctx_new(m, 64, 8, err, sizeof err);
    dspex_ctx *ref = dspex_ctx_new(m, 64, 8, err, sizeof err);
    r.rows = full;
    CHECK(dspex_ctx_eval(ref, p2, 40, DSPEX_LOGITS_LAST, last_logits, &r, err, sizeof err) == 0);
    CHECK(dspex_prefix_cache_lookup(pc, c, p2, 40, 39) == 20);
    r.rows = reused;
    CHECK(dspex_ctx_eval(c, p2 + 20, 20, DSPEX_LOGITS_LAST, last_logits, &r, err, sizeof err) == 0);
    CHECK(memcmp(full, reused, sizeof(float) * nv) == 0);
    CHECK(memcmp(c->k, ref->k, sizeof(float) * (size_t)c->kv_dim * 40) == 0); /* layer 0 */
    dspex_prefix_cache_insert(pc, c, 40); /* splits p1's node at 20 */
    dspex_prefix_stats st;
    dspex_prefix_cache_stats(pc, &st);
    CHECK(st.nodes == 3 && st.lookups == 3 && st.hits == 2 && st.reused_tokens == 59);
    CHECK(st.inserted_tokens == 60); /* 40 + the 20 p2 does not share */
    CHECK(st.bytes >= 60 * st.token_bytes && st.bytes < 60 * st.token_bytes + 3 * 256);
    /* a prompt that is a prefix of what is held adds nothing */
    dspex_prefix_cache_insert(pc, c, 30);
    dspex_prefix_cache_stats(pc, &st);
    CHECK(st.nodes == 3 && st.inserted_tokens == 60);
    dspex_ctx_free(c);
    dspex_ctx_free(ref);
    dspex_prefix_cache_free(pc);
    free(full);
    free(reused);
    dspex_model_free(m);
    free(b.p);
}

CTEST(prefix_cache_is_bounded_and_evicts_lru_leaves) {
    gw_bytes b;
    dspex_model *m = tiny("llama", DSPEX_T_F32, &b);
    CHECK(m != NULL);
    if (!m) return;
    char err[256];
    int nv = m->hp.n_vocab;
    dspex_prefix_cache *probe = dspex_prefix_cache_new(m, 1);
    dspex_prefix_stats st;
    dspex_prefix_cache_stats(probe, &st);
    size_t tb = st.token_bytes;
    dspex_prefix_cache_free(probe);
    /* room for ~70 positions: a 40-token shared stem + leaves of 10 */
    size_t cap = 70 * tb + 8 * 256;
    dspex_prefix_cache *pc = dspex_prefix_cache_new(m, cap);
    int32_t p[6][50];
    for (int s = 0; s < 6; s++) {
        for (int i = 0; i < 50; i++) p[s][i] = i < 40 ? (i * 7 + 1) % (nv - 1) : (s * 13 + i) % (nv - 1);
        dspex_ctx *c = dspex_ctx_new(m, 64, 16, err, sizeof err);
        int32_t got = dspex_prefix_cache_lookup(pc, c, p[s], 50, 49);
        CHECK(got == (s == 0 ? 0 : 40));
        CHECK(dspex_ctx_eval(c, p[s] + got, 50 - got, DSPEX_LOGITS_NONE, NULL, NULL, err, sizeof err) == 0);
        dspex_prefix_cache_insert(pc, c, 50);
        dspex_prefix_cache_stats(pc, &st);
        CHECK(st.bytes <= cap);
        dspex_ctx_free(c);
    }
    CHECK(st.evictions > 0 && st.nodes >= 2);
    /* the stem survived (every lookup touched it); the oldest leaf went first */
    dspex_ctx *c = dspex_ctx_new(m, 64, 16, err, sizeof err);
    CHECK(dspex_prefix_cache_lookup(pc, c, p[5], 50, 49) == 49);
    dspex_ctx_free(c);
    c = dspex_ctx_new(m, 64, 16, err, sizeof err);
    CHECK(dspex_prefix_cache_lookup(pc, c, p[1], 50, 49) == 40);
    dspex_ctx_free(c);
    /* capacity 0 disables reuse; a tiny capacity stores only what fits */
    dspex_prefix_cache *off = dspex_prefix_cache_new(m, 0);
    c = dspex_ctx_new(m, 64, 16, err, sizeof err);
    CHECK(dspex_ctx_eval(c, p[0], 50, DSPEX_LOGITS_NONE, NULL, NULL, err, sizeof err) == 0);
    dspex_prefix_cache_insert(off, c, 50);
    dspex_prefix_cache_insert(pc, c, 50);
    dspex_prefix_cache *tinyc = dspex_prefix_cache_new(m, 10 * tb + 512);
    dspex_prefix_cache_insert(tinyc, c, 50);
    dspex_prefix_cache_stats(tinyc, &st);
    CHECK(st.bytes <= 10 * tb + 512 && st.inserted_tokens >= 9 && st.inserted_tokens <= 10);
    dspex_ctx_free(c);
    c = dspex_ctx_new(m, 64, 16, err, sizeof err);
    CHECK(dspex_prefix_cache_lookup(off, c, p[0], 50, 49) == 0);
    dspex_prefix_cache_stats(off, &st);
    CHECK(st.bytes == 0 && st.lookups == 1 && st.hits == 0);
    dspex_ctx_free(c);
    dspex_prefix_cache_free(off);
    dspex_prefix_cache_free(tinyc);
    dspex_prefix_cache_free(pc);
    dspex_model_free(m);
    free(b.p);
}

typedef struct {
    int32_t prompt[60];
    int n;
    dspex_gen_params p;
} job;

static void make_jobs(job *jobs, int n_jobs, int nv, int shared) {
    static const char *stop[] = {"ld"};
    for (int j = 0; j < n_jobs; j++) {
        job *x = &jobs[j];
        memset(x, 0, sizeof(*x));
        x->n = 24 + (j % 3) * 12;
        for (int i = 0; i < x->n; i++)
            x->prompt[i] = (i < shared ? (i * 7 + 3) : (i * 31 + j * 17 + 1)) % (nv - 1);
        x->p.sampling = (dspex_sampling){j % 2 ? 0.9f : 0.0f, 20, 0.95f, 0.05f, 1.1f, 16, 0.0f, 0.0f, (uint64_t)(100 + j)};
        x->p.max_tokens = 6 + j * 3;
        x->p.ignore_eog = 1;
        if (j == 3) x->p.stops = stop, x->p.n_stops = 1;
    }
}

static void run_alone(dspex_model *m, job *x, dspex_prefix_cache *pc, int32_t *toks, size_t *n, char *text) {
    char err[256];
    dspex_gen_params p = x->p;
    p.prefix = pc;
    dspex_gen *g = dspex_gen_new(m, x->prompt, (size_t)x->n, 128, &p, err, sizeof err);
    while (g->finish == DSPEX_FINISH_NONE) dspex_gen_step(g, 1e9, err, sizeof err);
    const int32_t *t = dspex_gen_tokens(g, n);
    memcpy(toks, t, *n * sizeof(int32_t));
    memcpy(text, g->text.p ? g->text.p : "", g->text.len + 1);
    dspex_gen_free(g);
}

CTEST(batched_generations_equal_each_alone) {
    gw_bytes b;
    dspex_model *m = tiny("llama", DSPEX_T_Q4_1, &b);
    CHECK(m != NULL);
    if (!m) return;
    int nv = m->hp.n_vocab;
    char err[256];
    enum { J = 6 };
    job jobs[J];
    make_jobs(jobs, J, nv, 0);
    int32_t want[J][64], got[64];
    size_t n_want[J];
    char text[J][512];
    for (int j = 0; j < J; j++) run_alone(m, &jobs[j], NULL, want[j], &n_want[j], text[j]);
    /* the batch: 4 seats, 16 rows per step; jobs 4 and 5 join when seats free up; job 2
     * is dropped after a few steps */
    dspex_batch *bt = dspex_batch_new(m, 4, 16, err, sizeof err);
    CHECK(bt != NULL);
    dspex_gen *g[J] = {0};
    int next = 0, steps = 0, done[J] = {0};
    for (; next < 4; next++) {
        jobs[next].p.ctx_batch = 1;
        g[next] = dspex_gen_new(m, jobs[next].prompt, (size_t)jobs[next].n, 128, &jobs[next].p, err, sizeof err);
        CHECK(dspex_batch_add(bt, g[next]) == 0);
    }
    CHECK(dspex_batch_add(bt, g[0]) == -1); /* full (and already in) */
    for (;;) {
        int rc = dspex_batch_step(bt, err, sizeof err);
        CHECK(rc >= 0 && rc <= 16);
        steps++;
        if (steps == 3) dspex_batch_remove(bt, g[2]), done[2] = 2;
        for (int j = 0; j < J; j++)
            if (g[j] && !done[j] && g[j]->finish != DSPEX_FINISH_NONE) {
                size_t n;
                const int32_t *t = dspex_gen_tokens(g[j], &n);
                memcpy(got, t, n * sizeof(int32_t));
                CHECK(n == n_want[j] && memcmp(got, want[j], n * sizeof(int32_t)) == 0);
                CHECK(strcmp(g[j]->text.p ? g[j]->text.p : "", text[j]) == 0);
                dspex_batch_remove(bt, g[j]);
                done[j] = 1;
                if (next < J) {
                    jobs[next].p.ctx_batch = 1;
                    g[next] = dspex_gen_new(m, jobs[next].prompt, (size_t)jobs[next].n, 128, &jobs[next].p, err,
                                            sizeof err);
                    CHECK(dspex_batch_add(bt, g[next]) == 0);
                    next++;
                }
            }
        if (bt->n == 0 || steps > 500) break;
    }
    for (int j = 0; j < J; j++) CHECK(done[j] != 0);
    CHECK(bt->stats.max_active >= 3 && bt->stats.steps == (uint64_t)steps - 1);
    CHECK(dspex_batch_step(bt, err, sizeof err) == 0);
    for (int j = 0; j < J; j++) dspex_gen_free(g[j]);
    dspex_batch_free(bt);
    CHECK(dspex_batch_new(m, 4, 2, err, sizeof err) == NULL && strstr(err, "batch_tokens"));
    dspex_model_free(m);
    free(b.p);
}

CTEST(concurrent_prompts_with_a_shared_prefix_prefill_it_once) {
    gw_bytes b;
    dspex_model *m = tiny("qwen2", DSPEX_T_Q8_0, &b);
    CHECK(m != NULL);
    if (!m) return;
    int nv = m->hp.n_vocab;
    char err[256];
    enum { J = 5 };
    job jobs[J];
    make_jobs(jobs, J, nv, 20); /* prompts of 24..48 tokens, the first 20 shared */
    int32_t want[J][64];
    size_t n_want[J];
    char text[J][512];
    for (int j = 0; j < J; j++) run_alone(m, &jobs[j], NULL, want[j], &n_want[j], text[j]);
    dspex_prefix_cache *pc = dspex_prefix_cache_new(m, 16u << 20);
    dspex_batch *bt = dspex_batch_new(m, J, 8, err, sizeof err); /* small steps: prefill spans several */
    dspex_gen *g[J];
    size_t total = 0;
    for (int j = 0; j < J; j++) {
        jobs[j].p.ctx_batch = 1;
        jobs[j].p.prefix = pc;
        g[j] = dspex_gen_new(m, jobs[j].prompt, (size_t)jobs[j].n, 128, &jobs[j].p, err, sizeof err);
        CHECK(dspex_batch_add(bt, g[j]) == 0);
        total += (size_t)jobs[j].n;
    }
    int guard = 0;
    while (dspex_batch_step(bt, err, sizeof err) > 0 && guard++ < 500) {
    }
    for (int j = 0; j < J; j++) {
        size_t n;
        const int32_t *t = dspex_gen_tokens(g[j], &n);
        CHECK(g[j]->finish != DSPEX_FINISH_NONE && n == n_want[j] && memcmp(t, want[j], n * sizeof(int32_t)) == 0);
        CHECK(j == 0 ? g[j]->reused == 0 : g[j]->reused == 20);
    }
    dspex_prefix_stats st;
    dspex_prefix_cache_stats(pc, &st);
    CHECK(st.hits == J - 1 && st.reused_tokens == 20 * (J - 1));
    CHECK(st.prefilled_tokens == total - 20 * (J - 1));
    for (int j = 0; j < J; j++) dspex_gen_free(g[j]);
    dspex_batch_free(bt);
    dspex_prefix_cache_free(pc);
    dspex_model_free(m);
    free(b.p);
}

int main(void) { return ctest_run(); }
