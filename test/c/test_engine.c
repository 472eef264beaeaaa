/* The optimizer engine: every run of test/fixtures/mipro/traces.json (real DSPy 3.3.1
 * MIPROv2 + optuna, tools/gen_mipro_traces.py) replayed with its own scores must get the
 * same trials -- numbers, kinds, parameters, minibatch indices -- in the same order, and
 * the same best; the same after a crash at every trial boundary and with a trial in
 * flight (reopen = replay); torn tails, another job's journal, a journal from another
 * sampler (ESEQ), a full disk (injected ENOSPC), QUEUE batches, DSPy's no-candidate
 * ValueError, and call-order errors. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctest.h"
#include "dspex/optim/engine.h"
#include "fixture.h"

static const char SPEC[] = "{\"format\":1,\"optimizer\":\"mipro_v2\"}";

static char *tmpdir(void) {
    static char dir[64];
    strcpy(dir, "/tmp/dspex_engine_XXXXXX");
    return mkdtemp(dir);
}

static void rm_rf(const char *dir) {
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "  cannot remove %s\n", dir);
}

static cJSON *item(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }
static int ival(const cJSON *o, const char *k) { return item(o, k)->valueint; }

/* ---- a run's setup from the fixture ---- */

typedef struct {
    dspex_tpe_param params[64];
    size_t n;
    unsigned char rng[DSPEX_PYRANDOM_STATE_BYTES];
    dspex_engine_config cfg;
} setup_buf;

static void build_setup(const cJSON *run, setup_buf *s) {
    memset(s, 0, sizeof(*s));
    const cJSON *p;
    cJSON_ArrayForEach(p, item(run, "params")) {
        const char *name = fixture_str(p, "name");
        s->params[s->n++] = (dspex_tpe_param){name, strlen(name), (uint32_t)ival(p, "choices")};
    }
    size_t i = 0;
    cJSON_ArrayForEach(p, item(run, "rng_state")) {
        uint32_t w = (uint32_t)p->valuedouble;
        for (int b = 0; b < 4; b++) s->rng[i * 4 + (size_t)b] = (unsigned char)(w >> (8 * b));
        i++;
    }
    dspex_engine_config *c = &s->cfg;
    c->mode = DSPEX_ENGINE_TPE;
    c->params = s->params;
    c->n_params = (uint32_t)s->n;
    dspex_tpe_opts_default(&c->tpe);
    c->tpe.seed = (uint32_t)ival(run, "seed");
    c->num_trials = (uint32_t)ival(run, "num_trials");
    c->valset_size = (uint32_t)ival(run, "valset_size");
    c->minibatch = cJSON_IsTrue(item(run, "minibatch"));
    c->minibatch_size = (uint32_t)ival(run, "minibatch_size");
    c->full_eval_steps = (uint32_t)ival(run, "minibatch_full_eval_steps");
    c->rng_state = s->rng;
    c->blob = "proposals";
    c->blob_len = 9;
}

static const char *KIND[] = {"default", "objective", "full_eval", "candidate"};

/* Checks one asked trial against the fixture's; 1 when equal. */
static int same_trial(const dspex_engine_trial *t, const cJSON *want, const char *name) {
    int ok = t->number == (uint32_t)ival(want, "number") && strcmp(KIND[t->kind], fixture_str(want, "kind")) == 0;
    size_t i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, item(want, "params")) ok = ok && i < t->n_params && t->params[i++] == (uint32_t)v->valueint;
    ok = ok && i == t->n_params;
    const cJSON *ex = item(want, "examples");
    if (cJSON_IsNull(ex)) {
        ok = ok && t->n_examples == 0;
    } else {
        i = 0;
        cJSON_ArrayForEach(v, ex) ok = ok && i < t->n_examples && t->examples[i++] == (uint32_t)v->valueint;
        ok = ok && i == t->n_examples;
    }
    if (!ok) {
        fprintf(stderr, "  %s: trial %u (%s) [", name, t->number, KIND[t->kind]);
        for (uint32_t k = 0; k < t->n_params; k++) fprintf(stderr, "%s%u", k ? "," : "", t->params[k]);
        fprintf(stderr, "] %u examples; DSPy: trial %d (%s)\n", t->n_examples, ival(want, "number"),
                fixture_str(want, "kind"));
    }
    return ok;
}

static dspex_engine_usage one_call = {1, 10, 2, 0.001};

/* Drives a run from trial `from` (0-based) to `to` (exclusive) on an open engine. */
static int drive(dspex_engine *e, const cJSON *run, int from, int to) {
    const cJSON *trials = item(run, "trials");
    const char *name = fixture_str(run, "name");
    for (int i = from; i < to; i++) {
        const cJSON *want = cJSON_GetArrayItem(trials, i);
        dspex_engine_trial t;
        dspex_journal_error err;
        int rc = dspex_engine_ask(e, &t, &err);
        if (rc != DSPEX_ENGINE_OK) {
            fprintf(stderr, "  %s: ask %d -> %d %s\n", name, i, rc, err.message);
            return 0;
        }
        if (!same_trial(&t, want, name)) return 0;
        rc = dspex_engine_tell(e, t.number, 0, item(want, "score")->valuedouble, &one_call, NULL, 0, &err);
        if (rc != DSPEX_ENGINE_OK) {
            fprintf(stderr, "  %s: tell %u -> %d %s\n", name, t.number, rc, err.message);
            return 0;
        }
    }
    return 1;
}

static int finish_ok(dspex_engine *e, const cJSON *run) {
    dspex_engine_trial t;
    dspex_journal_error err;
    dspex_engine_stats st;
    int rc = dspex_engine_ask(e, &t, &err);
    dspex_engine_status(e, &st);
    int n = cJSON_GetArraySize(item(run, "trials"));
    int ok = rc == DSPEX_ENGINE_DONE && st.finished && st.told == (uint32_t)n && st.has_best &&
             st.best_score == item(run, "best_score")->valuedouble &&
             st.best_number == (uint32_t)ival(run, "best_trial") && st.usage.lm_calls == (uint64_t)n &&
             st.planned == (uint32_t)n;
    if (!ok)
        fprintf(stderr, "  %s: end rc %d finished %d told %u/%d best %u %.2f (DSPy %d %.2f) planned %u\n",
                fixture_str(run, "name"), rc, st.finished, st.told, n, st.best_number, st.best_score,
                ival(run, "best_trial"), item(run, "best_score")->valuedouble, st.planned);
    return ok;
}

static dspex_engine *open_engine(const char *path, int *rc_out, dspex_journal_info *info) {
    dspex_engine *e = NULL;
    dspex_journal_error err;
    int rc = dspex_engine_open(path, SPEC, sizeof(SPEC) - 1, NULL, "run", 3, NULL, NULL, &e, info, &err);
    if (rc_out) *rc_out = rc;
    if (rc != DSPEX_ENGINE_OK && rc_out == NULL) fprintf(stderr, "  open: %d %s\n", rc, err.message);
    return e;
}

CTEST(every_dspy_run_is_reproduced) {
    cJSON *doc = fixture_load("test/fixtures/mipro/traces.json");
    CHECK(doc != NULL);
    if (doc == NULL) return;
    char *dir = tmpdir();
    int runs = 0, trials = 0;
    const cJSON *run;
    cJSON_ArrayForEach(run, item(doc, "runs")) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%d.journal", dir, runs);
        setup_buf s;
        build_setup(run, &s);
        dspex_engine *e = open_engine(path, NULL, NULL);
        dspex_journal_error err;
        CHECK(e != NULL && dspex_engine_setup(e, &s.cfg, &err) == DSPEX_ENGINE_OK);
        int n = cJSON_GetArraySize(item(run, "trials"));
        CHECK(drive(e, run, 0, n));
        CHECK(finish_ok(e, run));
        dspex_engine_free(e);
        runs++;
        trials += n;
    }
    CHECK(runs >= 10);
    printf("  %d DSPy runs, %d trials reproduced\n", runs, trials);
    rm_rf(dir);
    cJSON_Delete(doc);
}

/* Collects replayed events. */
typedef struct {
    int setup, asked, told, run, best, done;
    double last_score;
} events;

static int on_event(void *ctx, const dspex_engine_event *ev) {
    events *c = ctx;
    switch (ev->type) {
    case DSPEX_ENGINE_EV_SETUP: c->setup++; break;
    case DSPEX_ENGINE_EV_ASKED: c->asked++; break;
    case DSPEX_ENGINE_EV_TOLD:
        c->told++;
        c->last_score = ev->score;
        break;
    case DSPEX_ENGINE_EV_RUN: c->run++; break;
    case DSPEX_ENGINE_EV_BEST: c->best++; break;
    case DSPEX_ENGINE_EV_DONE: c->done++; break;
    default: break;
    }
    return 0;
}

CTEST(a_crash_at_every_trial_boundary_resumes_to_the_same_trials) {
    cJSON *doc = fixture_load("test/fixtures/mipro/traces.json");
    if (doc == NULL) return;
    const cJSON *run = cJSON_GetArrayItem(item(doc, "runs"), 0);
    int n = cJSON_GetArraySize(item(run, "trials"));
    char *dir = tmpdir();
    for (int cut = 0; cut <= n; cut++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/cut%d.journal", dir, cut);
        setup_buf s;
        build_setup(run, &s);
        dspex_engine *e = open_engine(path, NULL, NULL);
        dspex_journal_error err;
        CHECK(dspex_engine_setup(e, &s.cfg, &err) == DSPEX_ENGINE_OK);
        CHECK(drive(e, run, 0, cut));
        if (cut < n) {
            /* a trial in flight at the crash: asked, never told */
            dspex_engine_trial t;
            CHECK(dspex_engine_ask(e, &t, &err) == DSPEX_ENGINE_OK);
        }
        dspex_engine_free(e); /* the crash: nothing more reaches the journal */
        events ev = {0};
        dspex_journal_info info;
        e = NULL;
        CHECK(dspex_engine_open(path, SPEC, sizeof(SPEC) - 1, NULL, "r2", 2, on_event, &ev, &e, &info, &err) ==
              DSPEX_ENGINE_OK);
        if (e == NULL) break;
        CHECK(ev.setup == 1 && ev.told == cut && ev.run == 1);
        CHECK(ev.asked == (cut < n ? cut + 1 : n));
        dspex_engine_stats st;
        dspex_engine_status(e, &st);
        CHECK(st.told == (uint32_t)cut && st.usage.lm_calls == (uint64_t)cut);
        CHECK(st.outstanding == (cut < n));
        /* the outstanding trial comes back as it was; then the rest as DSPy ran it */
        CHECK(drive(e, run, cut, n));
        CHECK(finish_ok(e, run));
        dspex_engine_free(e);
    }
    rm_rf(dir);
    cJSON_Delete(doc);
}

CTEST(torn_tail_another_spec_and_a_foreign_sampler) {
    cJSON *doc = fixture_load("test/fixtures/mipro/traces.json");
    if (doc == NULL) return;
    const cJSON *run = cJSON_GetArrayItem(item(doc, "runs"), 0);
    char *dir = tmpdir();
    char path[128];
    snprintf(path, sizeof(path), "%s/j", dir);
    setup_buf s;
    build_setup(run, &s);
    dspex_engine *e = open_engine(path, NULL, NULL);
    dspex_journal_error err;
    CHECK(dspex_engine_setup(e, &s.cfg, &err) == DSPEX_ENGINE_OK);
    CHECK(drive(e, run, 0, 4));
    dspex_engine_free(e);

    /* half a record at the end (a crash mid-write): ignored and cut */
    int fd = open(path, O_WRONLY | O_APPEND);
    CHECK(fd >= 0 && write(fd, "DXJR\x40\0\0\0garbage", 15) == 15);
    close(fd);
    dspex_journal_info info;
    int rc;
    e = open_engine(path, &rc, &info);
    CHECK(rc == DSPEX_ENGINE_OK && info.torn_bytes == 15);
    CHECK(drive(e, run, 4, 6));
    dspex_engine_free(e);

    /* another job's spec */
    e = NULL;
    rc = dspex_engine_open(path, "{\"other\":1}", 11, NULL, NULL, 0, NULL, NULL, &e, NULL, &err);
    CHECK(rc == DSPEX_JOURNAL_ESPEC && e == NULL);
    CHECK(strstr(err.message, "different") != NULL || strstr(err.message, "spec") != NULL);

    /* a journal whose ASKED record is not what this sampler proposes */
    char p2[128];
    snprintf(p2, sizeof(p2), "%s/foreign", dir);
    e = open_engine(p2, NULL, NULL);
    CHECK(dspex_engine_setup(e, &s.cfg, &err) == DSPEX_ENGINE_OK);
    dspex_engine_trial t;
    CHECK(dspex_engine_ask(e, &t, &err) == DSPEX_ENGINE_OK); /* default trial */
    CHECK(dspex_engine_tell(e, 1, 0, 50.0, &one_call, NULL, 0, &err) == DSPEX_ENGINE_OK);
    dspex_engine_free(e);
    dspex_journal *j;
    CHECK(dspex_journal_open(p2, SPEC, sizeof(SPEC) - 1, NULL, NULL, NULL, &j, NULL, &err) == DSPEX_JOURNAL_OK);
    unsigned char asked[64] = {0};
    asked[0] = 2;                                     /* trial 2 */
    asked[4] = 1;                                     /* objective */
    asked[6] = (unsigned char)s.n;                    /* n_params */
    for (size_t i = 0; i < s.n; i++) asked[8 + 4 * i] = 1; /* indices the sampler does not pick */
    size_t len = 8 + 4 * s.n;
    asked[len] = 0; /* whole set */
    CHECK(dspex_journal_append(j, DSPEX_ENGINE_REC_ASKED, asked, len + 4, &err) == DSPEX_JOURNAL_OK);
    CHECK(dspex_journal_sync(j, &err) == DSPEX_JOURNAL_OK);
    dspex_journal_close(j);
    e = open_engine(p2, &rc, NULL);
    CHECK(rc == DSPEX_ENGINE_ESEQ && e == NULL);
    rm_rf(dir);
    cJSON_Delete(doc);
}

/* pwrite fails with ENOSPC from the n-th call on. */
typedef struct {
    int calls, fail_from;
} fault;

static ssize_t faulty_pwrite(void *ctx, int fd, const void *buf, size_t n, off_t off) {
    fault *f = ctx;
    if (f->fail_from > 0 && ++f->calls >= f->fail_from) {
        errno = ENOSPC;
        return -1;
    }
    return pwrite(fd, buf, n, off);
}

CTEST(a_full_disk_is_a_clear_error_and_the_journal_stays_readable) {
    cJSON *doc = fixture_load("test/fixtures/mipro/traces.json");
    if (doc == NULL) return;
    const cJSON *run = cJSON_GetArrayItem(item(doc, "runs"), 0);
    int n = cJSON_GetArraySize(item(run, "trials"));
    char *dir = tmpdir();
    char path[128];
    snprintf(path, sizeof(path), "%s/j", dir);
    setup_buf s;
    build_setup(run, &s);
    fault f = {0, 0};
    dspex_journal_io io = {faulty_pwrite, NULL, NULL, &f};
    dspex_journal_opts jo = {0, &io};
    dspex_engine *e = NULL;
    dspex_journal_error err;
    CHECK(dspex_engine_open(path, SPEC, sizeof(SPEC) - 1, &jo, NULL, 0, NULL, NULL, &e, NULL, &err) == DSPEX_ENGINE_OK);
    CHECK(dspex_engine_setup(e, &s.cfg, &err) == DSPEX_ENGINE_OK);
    CHECK(drive(e, run, 0, 3));
    /* the disk fills up during the 4th trial's tell */
    dspex_engine_trial t;
    CHECK(dspex_engine_ask(e, &t, &err) == DSPEX_ENGINE_OK);
    f.calls = 0;
    f.fail_from = 1;
    int rc = dspex_engine_tell(e, t.number, 0, 1.0, &one_call, NULL, 0, &err);
    CHECK(rc == DSPEX_JOURNAL_ENOSPC);
    CHECK(strstr(err.message, "No space") != NULL);
    dspex_engine_stats st;
    dspex_engine_status(e, &st);
    CHECK(st.told == 3 && st.outstanding); /* nothing changed */
    dspex_engine_free(e);
    /* readable, three trials told; the job resumes once there is room */
    events ev = {0};
    e = NULL;
    CHECK(dspex_engine_open(path, SPEC, sizeof(SPEC) - 1, NULL, NULL, 0, on_event, &ev, &e, NULL, &err) ==
          DSPEX_ENGINE_OK);
    CHECK(ev.told == 3);
    CHECK(drive(e, run, 3, n));
    CHECK(finish_ok(e, run));
    dspex_engine_free(e);

    /* a full disk at ask: the sampler moved, so the engine refuses to go on (EBROKEN) */
    snprintf(path, sizeof(path), "%s/j2", dir);
    f.fail_from = 0;
    e = NULL;
    CHECK(dspex_engine_open(path, SPEC, sizeof(SPEC) - 1, &jo, NULL, 0, NULL, NULL, &e, NULL, &err) == DSPEX_ENGINE_OK);
    CHECK(dspex_engine_setup(e, &s.cfg, &err) == DSPEX_ENGINE_OK);
    CHECK(drive(e, run, 0, 2));
    f.calls = 0;
    f.fail_from = 1;
    CHECK(dspex_engine_ask(e, &t, &err) == DSPEX_JOURNAL_ENOSPC);
    f.fail_from = 0;
    CHECK(dspex_engine_ask(e, &t, &err) == DSPEX_JOURNAL_EBROKEN);
    dspex_engine_free(e);
    e = open_engine(path, NULL, NULL);
    CHECK(e != NULL && drive(e, run, 2, n) && finish_ok(e, run));
    dspex_engine_free(e);
    rm_rf(dir);
    cJSON_Delete(doc);
}

CTEST(queue_batches_need_and_resume) {
    char *dir = tmpdir();
    char path[128];
    snprintf(path, sizeof(path), "%s/q", dir);
    dspex_engine *e = open_engine(path, NULL, NULL);
    dspex_journal_error err;
    dspex_engine_trial t;
    CHECK(dspex_engine_ask(e, &t, &err) == DSPEX_ENGINE_ESTATE); /* no setup yet */
    dspex_engine_config c = {0};
    c.mode = DSPEX_ENGINE_QUEUE;
    c.usage.lm_calls = 5;
    CHECK(dspex_engine_setup(e, &c, &err) == DSPEX_ENGINE_OK);
    CHECK(dspex_engine_setup(e, &c, &err) == DSPEX_ENGINE_ESTATE);
    CHECK(dspex_engine_ask(e, &t, &err) == DSPEX_ENGINE_NEED);
    uint32_t idx, ex[3] = {4, 1, 2};
    CHECK(dspex_engine_add_batch(e, 2, NULL, 0, "b0", 2, &idx, &err) == DSPEX_ENGINE_OK && idx == 0);
    CHECK(dspex_engine_add_batch(e, 1, ex, 3, "b1", 2, &idx, &err) == DSPEX_ENGINE_OK && idx == 1);
    double scores[3] = {40.0, 60.0, 55.0};
    for (uint32_t i = 0; i < 3; i++) {
        CHECK(dspex_engine_ask(e, &t, &err) == DSPEX_ENGINE_OK);
        CHECK(t.number == i + 1 && t.kind == DSPEX_TRIAL_CANDIDATE);
        CHECK(t.params[0] == (i < 2 ? 0u : 1u) && t.params[1] == (i < 2 ? i : 0u));
        CHECK(t.n_examples == (i < 2 ? 0u : 3u));
        if (i == 2) CHECK(t.examples[0] == 4 && t.examples[2] == 2);
        if (i == 1) {
            /* tell of the wrong trial; then a crash with trial 2 in flight */
            CHECK(dspex_engine_tell(e, 1, 0, 1.0, &one_call, NULL, 0, &err) == DSPEX_ENGINE_ESTATE);
            dspex_engine_free(e);
            e = open_engine(path, NULL, NULL);
            CHECK(dspex_engine_ask(e, &t, &err) == DSPEX_ENGINE_OK && t.number == 2);
        }
        CHECK(dspex_engine_tell(e, t.number, 0, scores[i], &one_call, "tail", 4, &err) == DSPEX_ENGINE_OK);
    }
    CHECK(dspex_engine_ask(e, &t, &err) == DSPEX_ENGINE_NEED);
    CHECK(dspex_engine_note(e, DSPEX_ENGINE_REC_BEST, "best", 4, &err) == DSPEX_ENGINE_OK);
    CHECK(dspex_engine_note(e, DSPEX_ENGINE_REC_DONE, "done", 4, &err) == DSPEX_ENGINE_OK);
    CHECK(dspex_engine_note(e, DSPEX_ENGINE_REC_TOLD, "x", 1, &err) == DSPEX_ENGINE_EINVAL);
    dspex_engine_stats st;
    dspex_engine_status(e, &st);
    CHECK(st.best_number == 2 && st.best_score == 60.0 && st.usage.lm_calls == 8 && st.planned == 3);
    dspex_engine_free(e);
    events ev = {0};
    e = NULL;
    CHECK(dspex_engine_open(path, SPEC, sizeof(SPEC) - 1, NULL, NULL, 0, on_event, &ev, &e, NULL, &err) ==
          DSPEX_ENGINE_OK);
    CHECK(ev.told == 3 && ev.best == 1 && ev.done == 1 && ev.run == 2 && ev.last_score == 55.0);
    dspex_engine_free(e);
    rm_rf(dir);
}

CTEST(no_candidate_left_is_dspys_value_error) {
    char *dir = tmpdir();
    char path[128];
    snprintf(path, sizeof(path), "%s/n", dir);
    dspex_engine *e = open_engine(path, NULL, NULL);
    dspex_journal_error err;
    dspex_tpe_param p = {"0_predictor_instruction", 23, 1};
    dspex_engine_config c = {0};
    c.mode = DSPEX_ENGINE_TPE;
    c.params = &p;
    c.n_params = 1;
    dspex_tpe_opts_default(&c.tpe);
    c.num_trials = 4;
    c.valset_size = 5;
    c.minibatch = 1;
    c.minibatch_size = 2;
    c.full_eval_steps = 1;
    CHECK(dspex_engine_setup(e, &c, &err) == DSPEX_ENGINE_OK);
    dspex_engine_trial t;
    /* 1 default, 2 objective (2 % 2 == 0: full eval of [0]), 3 full, 4 objective: nothing left */
    const dspex_trial_kind kinds[4] = {DSPEX_TRIAL_DEFAULT, DSPEX_TRIAL_OBJECTIVE, DSPEX_TRIAL_FULL_EVAL,
                                       DSPEX_TRIAL_OBJECTIVE};
    for (int i = 0; i < 4; i++) {
        CHECK(dspex_engine_ask(e, &t, &err) == DSPEX_ENGINE_OK && t.kind == kinds[i]);
        if (i == 0) CHECK(dspex_engine_tell(e, 1, 1, 0.0, &one_call, NULL, 0, &err) == DSPEX_ENGINE_EINVAL);
        CHECK(dspex_engine_tell(e, t.number, 0, 10.0 * i, &one_call, NULL, 0, &err) == DSPEX_ENGINE_OK);
    }
    CHECK(dspex_engine_ask(e, &t, &err) == DSPEX_ENGINE_ENOCAND);
    CHECK(strstr(err.message, "ValueError") != NULL);
    dspex_engine_free(e);
    /* the resumed job reaches the same point */
    e = open_engine(path, NULL, NULL);
    CHECK(e != NULL && dspex_engine_ask(e, &t, &err) == DSPEX_ENGINE_ENOCAND);
    dspex_engine_free(e);
    rm_rf(dir);
}

CTEST(setup_is_validated_before_it_is_written) {
    char *dir = tmpdir();
    char path[128];
    snprintf(path, sizeof(path), "%s/v", dir);
    dspex_engine *e = open_engine(path, NULL, NULL);
    dspex_journal_error err;
    dspex_tpe_param p = {"0_predictor_instruction", 23, 3};
    dspex_engine_config c = {0};
    c.mode = DSPEX_ENGINE_TPE;
    c.params = &p;
    c.n_params = 1;
    dspex_tpe_opts_default(&c.tpe);
    c.num_trials = 3;
    c.valset_size = 5;
    c.minibatch = 1;
    c.minibatch_size = 6;
    c.full_eval_steps = 5;
    CHECK(dspex_engine_setup(e, &c, &err) == DSPEX_ENGINE_EINVAL);
    CHECK(strstr(err.message, "cannot exceed") != NULL);
    c.minibatch = 0;
    c.mode = (dspex_engine_mode)7;
    CHECK(dspex_engine_setup(e, &c, &err) == DSPEX_ENGINE_EINVAL);
    c.mode = DSPEX_ENGINE_TPE;
    CHECK(dspex_engine_setup(e, &c, &err) == DSPEX_ENGINE_OK);
    dspex_engine_free(e);
    events ev = {0};
    e = NULL;
    CHECK(dspex_engine_open(path, SPEC, sizeof(SPEC) - 1, NULL, NULL, 0, on_event, &ev, &e, NULL, &err) ==
          DSPEX_ENGINE_OK);
    CHECK(ev.setup == 1); /* only the valid setup was written */
    /* non-minibatch: every objective trial is a full evaluation and counts for best */
    dspex_engine_trial t;
    for (int i = 0; i < 4; i++) {
        CHECK(dspex_engine_ask(e, &t, &err) == DSPEX_ENGINE_OK);
        CHECK(t.n_examples == 0 && t.counts_for_best);
        CHECK(dspex_engine_tell(e, t.number, i == 2, i == 3 ? 90.0 : 10.0, &one_call, NULL, 0, &err) ==
              DSPEX_ENGINE_OK);
    }
    CHECK(dspex_engine_ask(e, &t, &err) == DSPEX_ENGINE_DONE);
    dspex_engine_stats st;
    dspex_engine_status(e, &st);
    CHECK(st.best_number == 4 && st.best_score == 90.0 && st.finished && st.planned == 4);
    dspex_engine_free(e);
    rm_rf(dir);
}

int main(void) { return ctest_run(); }
