/* The optimizer engine: one job's search state over its journal. Semantics and limits
 * are in include/dspex/optim/engine.h; record layouts in docs/optimizer-engine.md.
 *
 * Every state change goes through the same two functions, next_trial (what ask hands
 * out) and apply_tell (what a score changes), whether it comes from a live call or from
 * a record replayed at open: a resumed job is rebuilt by the code that built it. */
#include "dspex/optim/engine.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dspex/buf.h"

/* A parameter combination seen in minibatch trials (DSPy's param_score_dict entry). */
typedef struct {
    uint32_t params_at; /* offset into group_params */
    double sum;         /* left-to-right sum of minibatch scores: Python 3.11's sum() */
    uint32_t count;
    int fully; /* already evaluated on the whole valset (fully_evaled_param_combos) */
} group;

typedef struct {
    uint32_t n;
    uint32_t *examples; /* NULL when the batch uses the whole set, or once handed out */
    uint32_t n_examples;
} batch;

struct dspex_engine {
    dspex_journal *j;
    int broken; /* the sampler moved but its record could not be written */
    int has_setup;
    dspex_engine_mode mode;
    /* TPE */
    uint32_t n_params;
    dspex_tpe_opts tpe_opts;
    uint32_t num_trials, valset_size, minibatch, minibatch_size, full_eval_steps, adjusted;
    dspex_tpe *tpe;
    dspex_pyrandom rng;
    uint64_t *draw; /* minibatch_size scratch for pyrandom_sample */
    /* groups, first-seen order, with an open-addressing index by parameters */
    group *groups;
    uint32_t n_groups, groups_cap;
    uint32_t *group_params;
    uint32_t *gindex; /* group number + 1, 0 = empty */
    uint32_t gindex_cap;
    int64_t pending_full; /* group scheduled for a full evaluation, -1 none */
    int no_candidate;
    /* QUEUE */
    batch *batches;
    uint32_t n_batches, batches_cap, next_batch, next_index;
    /* trials */
    uint32_t asked, told, objective_asked, objective_told;
    int outstanding;
    dspex_trial_kind out_kind;
    uint32_t out_number, out_tpe_number;
    uint32_t *out_params;
    uint32_t *out_examples;
    uint32_t out_n_examples, out_examples_cap;
    int out_counts;
    /* results */
    int has_best;
    uint32_t best_number;
    double best_score;
    dspex_engine_usage usage;
    uint64_t sync_ns; /* time spent committing (fdatasync), for the caller's accounting */
    /* replay */
    dspex_engine_visit visit;
    void *visit_ctx;
    dspex_journal_error replay_err;
};

/* ---- helpers ------------------------------------------------------------------------ */

static int fail(dspex_journal_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(dspex_journal_error *err, int code, const char *fmt, ...) {
    if (err != NULL) {
        memset(err, 0, sizeof(*err));
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }
    return code;
}

static void clear_err(dspex_journal_error *err) {
    if (err != NULL) memset(err, 0, sizeof(*err));
}

static int tpe_code(int rc) {
    return rc == DSPEX_TPE_ENOMEM ? DSPEX_ENGINE_ENOMEM
           : rc == DSPEX_TPE_ELIMIT ? DSPEX_ENGINE_ELIMIT
                                    : DSPEX_ENGINE_EINVAL;
}

static void put16(dspex_buf *b, uint16_t v) {
    char c[2] = {(char)(v & 0xff), (char)(v >> 8)};
    dspex_buf_put(b, c, 2);
}
static void put32(dspex_buf *b, uint32_t v) {
    char c[4];
    for (int i = 0; i < 4; i++) c[i] = (char)(v >> (8 * i));
    dspex_buf_put(b, c, 4);
}
static void put64(dspex_buf *b, uint64_t v) {
    put32(b, (uint32_t)v);
    put32(b, (uint32_t)(v >> 32));
}
static void putf64(dspex_buf *b, double d) {
    uint64_t v;
    memcpy(&v, &d, 8);
    put64(b, v);
}
static void put_usage(dspex_buf *b, const dspex_engine_usage *u) {
    put64(b, u->lm_calls);
    put64(b, u->prompt_tokens);
    put64(b, u->completion_tokens);
    putf64(b, u->cost);
}

/* A bounds-checked reader over one record's payload. */
typedef struct {
    const unsigned char *p;
    size_t len, pos;
    int bad;
} reader;

static uint32_t rd32(reader *r) {
    if (r->bad || r->len - r->pos < 4) {
        r->bad = 1;
        return 0;
    }
    const unsigned char *p = r->p + r->pos;
    r->pos += 4;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint16_t rd16(reader *r) {
    if (r->bad || r->len - r->pos < 2) {
        r->bad = 1;
        return 0;
    }
    const unsigned char *p = r->p + r->pos;
    r->pos += 2;
    return (uint16_t)(p[0] | p[1] << 8);
}
static uint64_t rd64(reader *r) {
    uint64_t lo = rd32(r);
    return lo | (uint64_t)rd32(r) << 32;
}
static double rdf64(reader *r) {
    uint64_t v = rd64(r);
    double d;
    memcpy(&d, &v, 8);
    return d;
}
static const unsigned char *rdbytes(reader *r, size_t n) {
    if (r->bad || r->len - r->pos < n) {
        r->bad = 1;
        return NULL;
    }
    const unsigned char *p = r->p + r->pos;
    r->pos += n;
    return p;
}
static void rd_usage(reader *r, dspex_engine_usage *u) {
    u->lm_calls = rd64(r);
    u->prompt_tokens = rd64(r);
    u->completion_tokens = rd64(r);
    u->cost = rdf64(r);
}
/* Reads n u32 values into out (which holds at least n). */
static void rd32s(reader *r, uint32_t *out, uint32_t n) {
    for (uint32_t i = 0; i < n && !r->bad; i++) out[i] = rd32(r);
}

static void add_usage(dspex_engine_usage *to, const dspex_engine_usage *u) {
    to->lm_calls += u->lm_calls;
    to->prompt_tokens += u->prompt_tokens;
    to->completion_tokens += u->completion_tokens;
    to->cost += u->cost;
}

/* Appends a record; with sync, also commits it. A failure leaves the journal as it was
 * (the journal truncates partial records) or broken (reported as EBROKEN later). */
static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int write_rec(dspex_engine *e, uint16_t type, const dspex_buf *b, int sync, dspex_journal_error *err) {
    if (b->oom) return fail(err, DSPEX_ENGINE_ENOMEM, "out of memory building a journal record");
    int rc = dspex_journal_append(e->j, type, b->p ? b->p : "", b->len, err);
    if (rc == DSPEX_JOURNAL_OK && sync) {
        uint64_t t0 = now_ns();
        rc = dspex_journal_sync(e->j, err);
        e->sync_ns += now_ns() - t0;
    }
    return rc;
}

static int ensure_out(dspex_engine *e, uint32_t n_examples) {
    if (n_examples <= e->out_examples_cap) return DSPEX_ENGINE_OK;
    uint32_t *p = realloc(e->out_examples, (size_t)n_examples * sizeof(uint32_t));
    if (p == NULL) return DSPEX_ENGINE_ENOMEM;
    e->out_examples = p;
    e->out_examples_cap = n_examples;
    return DSPEX_ENGINE_OK;
}

/* ---- groups ------------------------------------------------------------------------- */

static uint64_t params_hash(const uint32_t *p, uint32_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (uint32_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static int gindex_grow(dspex_engine *e) {
    uint32_t cap = e->gindex_cap ? e->gindex_cap * 2 : 64;
    uint32_t *idx = calloc(cap, sizeof(*idx));
    if (idx == NULL) return DSPEX_ENGINE_ENOMEM;
    for (uint32_t g = 0; g < e->n_groups; g++) {
        uint64_t h = params_hash(e->group_params + e->groups[g].params_at, e->n_params) & (cap - 1);
        while (idx[h]) h = (h + 1) & (cap - 1);
        idx[h] = g + 1;
    }
    free(e->gindex);
    e->gindex = idx;
    e->gindex_cap = cap;
    return DSPEX_ENGINE_OK;
}

/* The group of these parameters, created (first seen) when missing. */
static int group_of(dspex_engine *e, const uint32_t *params, uint32_t *out) {
    if ((uint64_t)(e->n_groups + 1) * 2 > e->gindex_cap && gindex_grow(e) != DSPEX_ENGINE_OK)
        return DSPEX_ENGINE_ENOMEM;
    uint32_t mask = e->gindex_cap - 1;
    uint64_t h = params_hash(params, e->n_params) & mask;
    while (e->gindex[h]) {
        uint32_t g = e->gindex[h] - 1;
        if (memcmp(e->group_params + e->groups[g].params_at, params, e->n_params * sizeof(uint32_t)) == 0) {
            *out = g;
            return DSPEX_ENGINE_OK;
        }
        h = (h + 1) & mask;
    }
    if (e->n_groups == e->groups_cap) {
        uint32_t cap = e->groups_cap ? e->groups_cap * 2 : 16;
        group *g = realloc(e->groups, cap * sizeof(*g));
        if (g == NULL) return DSPEX_ENGINE_ENOMEM;
        e->groups = g;
        uint32_t *gp = realloc(e->group_params, (size_t)cap * e->n_params * sizeof(uint32_t));
        if (gp == NULL) return DSPEX_ENGINE_ENOMEM;
        e->group_params = gp;
        e->groups_cap = cap;
    }
    uint32_t g = e->n_groups++;
    e->groups[g] = (group){g * e->n_params, 0.0, 0, 0};
    memcpy(e->group_params + (size_t)g * e->n_params, params, e->n_params * sizeof(uint32_t));
    e->gindex[h] = g + 1;
    *out = g;
    return DSPEX_ENGINE_OK;
}

/* get_program_with_highest_avg_score: the highest mean (sum / count) among groups not
 * fully evaluated; a stable descending sort keeps the first seen on ties. -1: none. */
static int64_t best_mean_group(const dspex_engine *e) {
    int64_t best = -1;
    double best_mean = 0.0;
    for (uint32_t g = 0; g < e->n_groups; g++) {
        if (e->groups[g].fully) continue;
        double mean = e->groups[g].sum / (double)e->groups[g].count;
        if (best < 0 || mean > best_mean) {
            best = g;
            best_mean = mean;
        }
    }
    return best;
}

/* ---- the two state transitions -------------------------------------------------------- */

/* Computes the next trial into e->out_* (moving the sampler and the minibatch rng).
 * Returns OK, NEED, DONE or an error. */
static int next_trial(dspex_engine *e, dspex_journal_error *err) {
    if (!e->has_setup) return fail(err, DSPEX_ENGINE_ESTATE, "ask before the job's setup");
    uint32_t number = e->asked + 1;
    if (number > DSPEX_ENGINE_MAX_TRIALS)
        return fail(err, DSPEX_ENGINE_ELIMIT, "a job has at most %u trials", DSPEX_ENGINE_MAX_TRIALS);
    if (e->mode == DSPEX_ENGINE_QUEUE) {
        while (e->next_batch < e->n_batches && e->next_index >= e->batches[e->next_batch].n) {
            free(e->batches[e->next_batch].examples); /* handed out: no longer needed */
            e->batches[e->next_batch].examples = NULL;
            e->next_batch++;
            e->next_index = 0;
        }
        if (e->next_batch >= e->n_batches) return DSPEX_ENGINE_NEED;
        const batch *b = &e->batches[e->next_batch];
        if (ensure_out(e, b->n_examples) != DSPEX_ENGINE_OK) return fail(err, DSPEX_ENGINE_ENOMEM, "out of memory");
        e->out_kind = DSPEX_TRIAL_CANDIDATE;
        e->out_params[0] = e->next_batch;
        e->out_params[1] = e->next_index++;
        e->out_n_examples = b->n_examples;
        if (b->n_examples) memcpy(e->out_examples, b->examples, b->n_examples * sizeof(uint32_t));
        e->out_counts = 1;
    } else if (e->asked == 0) {
        e->out_kind = DSPEX_TRIAL_DEFAULT;
        memset(e->out_params, 0, e->n_params * sizeof(uint32_t));
        e->out_n_examples = 0;
        e->out_counts = 1;
    } else if (e->pending_full >= 0) {
        e->out_kind = DSPEX_TRIAL_FULL_EVAL;
        memcpy(e->out_params, e->group_params + e->groups[e->pending_full].params_at,
               e->n_params * sizeof(uint32_t));
        e->out_n_examples = 0;
        e->out_counts = 1;
    } else if (e->no_candidate) {
        return fail(err, DSPEX_ENGINE_ENOCAND,
                    "no parameter combination is left to evaluate on the whole valset (every one seen in "
                    "minibatch trials was evaluated already; DSPy raises ValueError here)");
    } else if (e->objective_asked < e->num_trials) {
        uint32_t tn;
        int rc = dspex_tpe_ask(e->tpe, &tn, e->out_params);
        if (rc != DSPEX_TPE_OK) return fail(err, tpe_code(rc), "the TPE sampler failed (%d)", rc);
        if (tn + 1 != number) return fail(err, DSPEX_ENGINE_ESTATE, "trial numbering drifted (%u vs %u)", tn + 1, number);
        e->out_kind = DSPEX_TRIAL_OBJECTIVE;
        e->out_tpe_number = tn;
        e->out_counts = !e->minibatch;
        e->out_n_examples = 0;
        if (e->minibatch && e->minibatch_size < e->valset_size) {
            /* create_minibatch: rng.sample(range(len(valset)), batch_size) */
            if (ensure_out(e, e->minibatch_size) != DSPEX_ENGINE_OK)
                return fail(err, DSPEX_ENGINE_ENOMEM, "out of memory");
            if (dspex_pyrandom_sample(&e->rng, e->valset_size, e->minibatch_size, e->draw) != DSPEX_PYRANDOM_OK)
                return fail(err, DSPEX_ENGINE_ENOMEM, "out of memory drawing a minibatch");
            for (uint32_t i = 0; i < e->minibatch_size; i++) e->out_examples[i] = (uint32_t)e->draw[i];
            e->out_n_examples = e->minibatch_size;
        }
        e->objective_asked++;
    } else {
        return DSPEX_ENGINE_DONE;
    }
    e->out_number = number;
    e->outstanding = 1;
    e->asked++;
    return DSPEX_ENGINE_OK;
}

static void consider_best(dspex_engine *e, uint32_t number, double score) {
    if (!e->has_best || score > e->best_score) {
        e->has_best = 1;
        e->best_number = number;
        e->best_score = score;
    }
}

/* Applies a score to the outstanding trial (validated by the caller). */
static int apply_tell(dspex_engine *e, int failed, double score, const dspex_engine_usage *u,
                      dspex_journal_error *err) {
    uint32_t n = e->out_number;
    int rc;
    uint32_t tn;
    switch (e->out_kind) {
    case DSPEX_TRIAL_DEFAULT:
    case DSPEX_TRIAL_FULL_EVAL:
        /* study.add_trial(create_trial(params, value)) */
        rc = dspex_tpe_add_trial(e->tpe, e->out_params, score, &tn);
        if (rc != DSPEX_TPE_OK) return fail(err, tpe_code(rc), "the TPE sampler refused trial %u (%d)", n, rc);
        if (e->out_kind == DSPEX_TRIAL_DEFAULT) {
            e->has_best = 1; /* best_score = default_score */
            e->best_number = n;
            e->best_score = score;
        } else {
            e->groups[e->pending_full].fully = 1;
            e->pending_full = -1;
            consider_best(e, n, score);
        }
        break;
    case DSPEX_TRIAL_OBJECTIVE:
        rc = failed ? dspex_tpe_fail(e->tpe, e->out_tpe_number) : dspex_tpe_tell(e->tpe, e->out_tpe_number, score);
        if (rc != DSPEX_TPE_OK) return fail(err, tpe_code(rc), "the TPE sampler refused trial %u (%d)", n, rc);
        e->objective_told++;
        if (!failed && !e->minibatch) consider_best(e, n, score);
        if (!failed && e->minibatch) {
            uint32_t g;
            if (group_of(e, e->out_params, &g) != DSPEX_ENGINE_OK) return fail(err, DSPEX_ENGINE_ENOMEM, "out of memory");
            e->groups[g].sum += score;
            e->groups[g].count++;
            if (n % (e->full_eval_steps + 1) == 0 || n == e->adjusted - 1) {
                e->pending_full = best_mean_group(e);
                if (e->pending_full < 0) e->no_candidate = 1;
            }
        }
        break;
    case DSPEX_TRIAL_CANDIDATE:
        if (!failed) consider_best(e, n, score);
        break;
    }
    add_usage(&e->usage, u);
    e->told++;
    e->outstanding = 0;
    return DSPEX_ENGINE_OK;
}

/* ---- setup ---------------------------------------------------------------------------- */

static int install_setup(dspex_engine *e, const dspex_engine_config *s, dspex_journal_error *err) {
    if (s->mode == DSPEX_ENGINE_QUEUE) {
        e->n_params = 2;
    } else if (s->mode == DSPEX_ENGINE_TPE) {
        if (s->n_params == 0 || s->params == NULL || s->valset_size == 0)
            return fail(err, DSPEX_ENGINE_EINVAL, "a TPE search needs parameters and a non-empty valset");
        if (s->valset_size > DSPEX_ENGINE_MAX_EXAMPLES || s->num_trials > DSPEX_ENGINE_MAX_TRIALS)
            return fail(err, DSPEX_ENGINE_ELIMIT, "valset or trial count over the engine's limits");
        if (s->minibatch && (s->minibatch_size == 0 || s->full_eval_steps == 0))
            return fail(err, DSPEX_ENGINE_EINVAL, "minibatch_size and minibatch_full_eval_steps must be >= 1");
        if (s->minibatch && s->minibatch_size > s->valset_size)
            return fail(err, DSPEX_ENGINE_EINVAL, "minibatch size (%u) cannot exceed the valset size (%u)",
                        s->minibatch_size, s->valset_size);
        int rc = dspex_tpe_new(s->params, s->n_params, &s->tpe, &e->tpe);
        if (rc != DSPEX_TPE_OK) return fail(err, tpe_code(rc), "bad search space (%d)", rc);
        e->n_params = s->n_params;
        e->tpe_opts = s->tpe;
        e->num_trials = s->num_trials;
        e->valset_size = s->valset_size;
        e->minibatch = s->minibatch ? 1 : 0;
        e->minibatch_size = s->minibatch_size;
        e->full_eval_steps = s->full_eval_steps;
        uint32_t n = s->num_trials, st = s->full_eval_steps;
        e->adjusted = e->minibatch ? n + n / st + 1 + (n % st ? 1 : 0) : n;
        if (s->rng_state != NULL) {
            if (dspex_pyrandom_import(&e->rng, s->rng_state) != DSPEX_PYRANDOM_OK)
                return fail(err, DSPEX_ENGINE_EINVAL, "bad random.Random state");
        } else {
            dspex_pyrandom_seed_u64(&e->rng, s->tpe.seed);
        }
        if (e->minibatch) {
            e->draw = malloc((size_t)(e->minibatch_size ? e->minibatch_size : 1) * sizeof(uint64_t));
            if (e->draw == NULL) return fail(err, DSPEX_ENGINE_ENOMEM, "out of memory");
        }
    } else {
        return fail(err, DSPEX_ENGINE_EINVAL, "unknown engine mode %d", (int)s->mode);
    }
    e->out_params = calloc(e->n_params, sizeof(uint32_t));
    if (e->out_params == NULL) return fail(err, DSPEX_ENGINE_ENOMEM, "out of memory");
    e->mode = s->mode;
    add_usage(&e->usage, &s->usage);
    e->has_setup = 1;
    return DSPEX_ENGINE_OK;
}

static void encode_setup(dspex_buf *b, const dspex_engine_config *s) {
    uint32_t flags = (s->minibatch ? 1u : 0) | (s->rng_state ? 2u : 0) | (s->tpe.minimize ? 4u : 0);
    put16(b, (uint16_t)s->mode);
    put16(b, 0);
    put32(b, s->mode == DSPEX_ENGINE_TPE ? s->n_params : 0);
    put32(b, flags);
    put32(b, s->tpe.seed);
    put32(b, s->tpe.n_startup_trials);
    put32(b, s->tpe.n_ei_candidates);
    put32(b, s->num_trials);
    put32(b, s->valset_size);
    put32(b, s->minibatch_size);
    put32(b, s->full_eval_steps);
    put_usage(b, &s->usage);
    if (s->rng_state) dspex_buf_put(b, (const char *)s->rng_state, DSPEX_PYRANDOM_STATE_BYTES);
    if (s->mode == DSPEX_ENGINE_TPE)
        for (uint32_t i = 0; i < s->n_params; i++) {
            put32(b, s->params[i].n_choices);
            put32(b, (uint32_t)s->params[i].name_len);
            dspex_buf_put(b, s->params[i].name, s->params[i].name_len);
        }
    put32(b, (uint32_t)s->blob_len);
    dspex_buf_put(b, s->blob, s->blob_len);
}

/* Parses a SETUP payload into s; params point into a fresh array the caller frees. */
static int decode_setup(const unsigned char *p, size_t len, dspex_engine_config *s, dspex_tpe_param **params) {
    reader r = {p, len, 0, 0};
    memset(s, 0, sizeof(*s));
    *params = NULL;
    s->mode = (dspex_engine_mode)rd16(&r);
    rd16(&r);
    uint32_t np = rd32(&r), flags = rd32(&r);
    s->tpe.seed = rd32(&r);
    s->tpe.n_startup_trials = rd32(&r);
    s->tpe.n_ei_candidates = rd32(&r);
    s->tpe.minimize = (flags & 4u) != 0;
    s->num_trials = rd32(&r);
    s->valset_size = rd32(&r);
    s->minibatch_size = rd32(&r);
    s->full_eval_steps = rd32(&r);
    s->minibatch = (flags & 1u) != 0;
    rd_usage(&r, &s->usage);
    if (flags & 2u) s->rng_state = rdbytes(&r, DSPEX_PYRANDOM_STATE_BYTES);
    if (r.bad || np > DSPEX_TPE_MAX_PARAMS) return -1;
    if (np > 0) {
        *params = calloc(np, sizeof(**params));
        if (*params == NULL) return -2;
        for (uint32_t i = 0; i < np; i++) {
            (*params)[i].n_choices = rd32(&r);
            uint32_t nl = rd32(&r);
            (*params)[i].name = (const char *)rdbytes(&r, nl);
            (*params)[i].name_len = nl;
        }
    }
    s->params = *params;
    s->n_params = np;
    uint32_t bl = rd32(&r);
    s->blob = rdbytes(&r, bl);
    s->blob_len = bl;
    if (r.bad || r.pos != len) return -1;
    return 0;
}

/* Room for one more batch. */
static int reserve_batch(dspex_engine *e) {
    if (e->n_batches < e->batches_cap) return DSPEX_ENGINE_OK;
    uint32_t cap = e->batches_cap ? e->batches_cap * 2 : 8;
    batch *nb = realloc(e->batches, cap * sizeof(*nb));
    if (nb == NULL) return DSPEX_ENGINE_ENOMEM;
    e->batches = nb;
    e->batches_cap = cap;
    return DSPEX_ENGINE_OK;
}

/* ---- replay ----------------------------------------------------------------------------- */

static int replay_fail(dspex_engine *e, int code, const dspex_journal_record *rec, const char *what) {
    fail(&e->replay_err, code, "journal record %llu at byte %llu: %s", (unsigned long long)rec->seq,
         (unsigned long long)rec->offset, what);
    e->replay_err.offset = rec->offset;
    return 1;
}

static int visit_user(dspex_engine *e, const dspex_engine_event *ev) {
    if (e->visit == NULL) return 0;
    if (e->visit(e->visit_ctx, ev) != 0) {
        fail(&e->replay_err, DSPEX_JOURNAL_ESTOP, "the replay was stopped by its visitor");
        return 1;
    }
    return 0;
}

static int replay_record(void *ctx, const dspex_journal_record *rec) {
    dspex_engine *e = ctx;
    reader r = {rec->payload, rec->len, 0, 0};
    dspex_engine_event ev;
    memset(&ev, 0, sizeof(ev));
    switch (rec->type) {
    case DSPEX_ENGINE_REC_RUN:
    case DSPEX_ENGINE_REC_BEST:
    case DSPEX_ENGINE_REC_DONE:
        ev.type = rec->type == DSPEX_ENGINE_REC_RUN    ? DSPEX_ENGINE_EV_RUN
                  : rec->type == DSPEX_ENGINE_REC_BEST ? DSPEX_ENGINE_EV_BEST
                                                       : DSPEX_ENGINE_EV_DONE;
        ev.blob = rec->payload;
        ev.blob_len = rec->len;
        return visit_user(e, &ev);
    case DSPEX_ENGINE_REC_SETUP: {
        if (e->has_setup) return replay_fail(e, DSPEX_ENGINE_EBADREC, rec, "a second SETUP record");
        dspex_engine_config s;
        dspex_tpe_param *params;
        int rc = decode_setup(rec->payload, rec->len, &s, &params);
        if (rc != 0) {
            free(params);
            return replay_fail(e, rc == -2 ? DSPEX_ENGINE_ENOMEM : DSPEX_ENGINE_EBADREC, rec, "a SETUP record that does not parse");
        }
        dspex_journal_error ierr;
        if (install_setup(e, &s, &ierr) != DSPEX_ENGINE_OK) {
            free(params);
            return replay_fail(e, DSPEX_ENGINE_EBADREC, rec, ierr.message);
        }
        ev.type = DSPEX_ENGINE_EV_SETUP;
        ev.setup = &s;
        ev.blob = s.blob;
        ev.blob_len = s.blob_len;
        int stop = visit_user(e, &ev);
        free(params);
        return stop;
    }
    case DSPEX_ENGINE_REC_BATCH: {
        uint32_t index = rd32(&r), n = rd32(&r), ne = rd32(&r);
        if (r.bad || ne > DSPEX_ENGINE_MAX_EXAMPLES || (size_t)ne * 4 > rec->len - r.pos)
            return replay_fail(e, DSPEX_ENGINE_EBADREC, rec, "a BATCH record that does not parse");
        if (!e->has_setup || e->mode != DSPEX_ENGINE_QUEUE || index != e->n_batches)
            return replay_fail(e, DSPEX_ENGINE_ESEQ, rec, "a BATCH record out of sequence");
        uint32_t *ex = NULL;
        if (ne > 0) {
            ex = malloc((size_t)ne * sizeof(uint32_t));
            if (ex == NULL) return replay_fail(e, DSPEX_ENGINE_ENOMEM, rec, "out of memory");
            rd32s(&r, ex, ne);
        }
        if (reserve_batch(e) != DSPEX_ENGINE_OK) {
            free(ex);
            return replay_fail(e, DSPEX_ENGINE_ENOMEM, rec, "out of memory");
        }
        e->batches[e->n_batches++] = (batch){n, ex, ne};
        ev.type = DSPEX_ENGINE_EV_BATCH;
        ev.batch = index;
        ev.batch_size = n;
        ev.blob = rec->payload + r.pos;
        ev.blob_len = rec->len - r.pos;
        return visit_user(e, &ev);
    }
    case DSPEX_ENGINE_REC_ASKED: {
        uint32_t number = rd32(&r);
        uint16_t kind = rd16(&r), np = rd16(&r);
        if (r.bad) return replay_fail(e, DSPEX_ENGINE_EBADREC, rec, "an ASKED record that does not parse");
        if (e->outstanding) return replay_fail(e, DSPEX_ENGINE_ESEQ, rec, "two trials asked without a tell");
        dspex_journal_error nerr;
        int rc = next_trial(e, &nerr);
        if (rc != DSPEX_ENGINE_OK)
            return replay_fail(e, rc < 0 ? rc : DSPEX_ENGINE_ESEQ, rec,
                               rc < 0 ? nerr.message : "an ASKED record after the search ended");
        int same = number == e->out_number && kind == (uint16_t)e->out_kind && np == e->n_params;
        for (uint32_t i = 0; same && i < np; i++) same = rd32(&r) == e->out_params[i];
        uint32_t ne = same ? rd32(&r) : 0;
        same = same && !r.bad && ne == e->out_n_examples;
        for (uint32_t i = 0; same && i < ne; i++) same = rd32(&r) == e->out_examples[i];
        if (!same || r.bad || r.pos != rec->len)
            return replay_fail(e, DSPEX_ENGINE_ESEQ, rec,
                               "this trial differs from what the sampler proposes now (a journal written by "
                               "another build of the sampler, or a different search space)");
        dspex_engine_trial t = {e->out_number, e->out_kind,     e->n_params, e->out_params,
                                e->out_n_examples, e->out_examples, e->out_counts};
        ev.type = DSPEX_ENGINE_EV_ASKED;
        ev.trial = &t;
        return visit_user(e, &ev);
    }
    case DSPEX_ENGINE_REC_TOLD: {
        uint32_t number = rd32(&r);
        uint16_t state = rd16(&r);
        rd16(&r);
        double score = rdf64(&r);
        dspex_engine_usage u;
        rd_usage(&r, &u);
        if (r.bad || (state != 1 && state != 2))
            return replay_fail(e, DSPEX_ENGINE_EBADREC, rec, "a TOLD record that does not parse");
        if (!e->outstanding || number != e->out_number)
            return replay_fail(e, DSPEX_ENGINE_ESEQ, rec, "a TOLD record for a trial that is not outstanding");
        dspex_journal_error terr;
        if (apply_tell(e, state == 2, score, &u, &terr) != DSPEX_ENGINE_OK)
            return replay_fail(e, terr.code, rec, terr.message);
        ev.type = DSPEX_ENGINE_EV_TOLD;
        ev.number = number;
        ev.failed = state == 2;
        ev.score = state == 2 ? NAN : score;
        ev.usage = u;
        ev.blob = rec->payload + r.pos;
        ev.blob_len = rec->len - r.pos;
        return visit_user(e, &ev);
    }
    default:
        return replay_fail(e, DSPEX_ENGINE_EBADREC, rec, "a record type this engine does not know");
    }
}

/* ---- public API -------------------------------------------------------------------------- */

void dspex_engine_free(dspex_engine *e) {
    if (e == NULL) return;
    dspex_journal_close(e->j);
    dspex_tpe_free(e->tpe);
    free(e->draw);
    free(e->groups);
    free(e->group_params);
    free(e->gindex);
    for (uint32_t i = 0; i < e->n_batches; i++) free(e->batches[i].examples);
    free(e->batches);
    free(e->out_params);
    free(e->out_examples);
    free(e);
}

int dspex_engine_open(const char *path, const void *spec, size_t spec_len, const dspex_journal_opts *jopts,
                      const void *run_blob, size_t run_len, dspex_engine_visit visit, void *ctx,
                      dspex_engine **out, dspex_journal_info *info, dspex_journal_error *err) {
    clear_err(err);
    *out = NULL;
    if (path == NULL || (run_blob == NULL && run_len > 0))
        return fail(err, DSPEX_ENGINE_EINVAL, "engine open: bad arguments");
    dspex_engine *e = calloc(1, sizeof(*e));
    if (e == NULL) return fail(err, DSPEX_ENGINE_ENOMEM, "out of memory opening a job");
    e->pending_full = -1;
    e->visit = visit;
    e->visit_ctx = ctx;
    int rc = dspex_journal_open(path, spec, spec_len, jopts, replay_record, e, &e->j, info, err);
    if (rc == DSPEX_JOURNAL_ESTOP && e->replay_err.code != 0) {
        rc = e->replay_err.code;
        if (err != NULL) *err = e->replay_err;
    }
    if (rc == DSPEX_JOURNAL_OK) {
        e->visit = NULL;
        dspex_buf b;
        dspex_buf_init(&b);
        dspex_buf_put(&b, run_blob, run_len);
        /* not synced: a RUN record is a note, durable with the next commit */
        rc = write_rec(e, DSPEX_ENGINE_REC_RUN, &b, 0, err);
        dspex_buf_free(&b);
    }
    if (rc != DSPEX_JOURNAL_OK) {
        dspex_engine_free(e);
        return rc;
    }
    *out = e;
    return DSPEX_ENGINE_OK;
}

static int usable(dspex_engine *e, dspex_journal_error *err) {
    if (e == NULL) return fail(err, DSPEX_ENGINE_EINVAL, "no engine");
    if (e->broken)
        return fail(err, DSPEX_JOURNAL_EBROKEN,
                    "an earlier journal write failed after the sampler moved on; resume the job from its journal");
    return DSPEX_ENGINE_OK;
}

int dspex_engine_setup(dspex_engine *e, const dspex_engine_config *s, dspex_journal_error *err) {
    clear_err(err);
    int rc = usable(e, err);
    if (rc != DSPEX_ENGINE_OK) return rc;
    if (s == NULL || (s->blob == NULL && s->blob_len > 0)) return fail(err, DSPEX_ENGINE_EINVAL, "setup: bad arguments");
    if (e->has_setup) return fail(err, DSPEX_ENGINE_ESTATE, "the job already has its setup (a resumed journal)");
    /* validate by installing into a scratch engine first: the record is written only for
     * a setup that works, and the state changes only once the record is durable */
    dspex_engine probe;
    memset(&probe, 0, sizeof(probe));
    probe.pending_full = -1;
    rc = install_setup(&probe, s, err);
    dspex_tpe_free(probe.tpe);
    free(probe.draw);
    free(probe.out_params);
    if (rc != DSPEX_ENGINE_OK) return rc;
    dspex_buf b;
    dspex_buf_init(&b);
    encode_setup(&b, s);
    rc = write_rec(e, DSPEX_ENGINE_REC_SETUP, &b, 1, err);
    dspex_buf_free(&b);
    if (rc != DSPEX_ENGINE_OK) return rc;
    rc = install_setup(e, s, err);
    if (rc != DSPEX_ENGINE_OK) e->broken = 1;
    return rc;
}

int dspex_engine_add_batch(dspex_engine *e, uint32_t n, const uint32_t *examples, uint32_t n_examples,
                           const void *blob, size_t blob_len, uint32_t *index, dspex_journal_error *err) {
    clear_err(err);
    int rc = usable(e, err);
    if (rc != DSPEX_ENGINE_OK) return rc;
    if (!e->has_setup || e->mode != DSPEX_ENGINE_QUEUE)
        return fail(err, DSPEX_ENGINE_ESTATE, "batches belong to a QUEUE job after its setup");
    if ((examples == NULL && n_examples > 0) || (blob == NULL && blob_len > 0))
        return fail(err, DSPEX_ENGINE_EINVAL, "add_batch: bad arguments");
    if (n == 0 || n > DSPEX_ENGINE_MAX_BATCH || n_examples > DSPEX_ENGINE_MAX_EXAMPLES ||
        e->n_batches >= DSPEX_ENGINE_MAX_BATCHES)
        return fail(err, DSPEX_ENGINE_ELIMIT, "a batch holds 1..%u candidates, a job at most %u batches",
                    DSPEX_ENGINE_MAX_BATCH, DSPEX_ENGINE_MAX_BATCHES);
    if (reserve_batch(e) != DSPEX_ENGINE_OK) return fail(err, DSPEX_ENGINE_ENOMEM, "out of memory");
    uint32_t *ex = NULL;
    if (n_examples > 0) {
        ex = malloc((size_t)n_examples * sizeof(uint32_t));
        if (ex == NULL) return fail(err, DSPEX_ENGINE_ENOMEM, "out of memory");
        memcpy(ex, examples, (size_t)n_examples * sizeof(uint32_t));
    }
    dspex_buf b;
    dspex_buf_init(&b);
    put32(&b, e->n_batches);
    put32(&b, n);
    put32(&b, n_examples);
    for (uint32_t i = 0; i < n_examples; i++) put32(&b, examples[i]);
    dspex_buf_put(&b, blob, blob_len);
    rc = write_rec(e, DSPEX_ENGINE_REC_BATCH, &b, 1, err);
    dspex_buf_free(&b);
    if (rc != DSPEX_ENGINE_OK) {
        free(ex);
        return rc;
    }
    *index = e->n_batches;
    e->batches[e->n_batches++] = (batch){n, ex, n_examples};
    return DSPEX_ENGINE_OK;
}

static void fill_trial(const dspex_engine *e, dspex_engine_trial *t) {
    *t = (dspex_engine_trial){e->out_number,     e->out_kind,     e->n_params, e->out_params,
                              e->out_n_examples, e->out_examples, e->out_counts};
}

int dspex_engine_ask(dspex_engine *e, dspex_engine_trial *t, dspex_journal_error *err) {
    clear_err(err);
    int rc = usable(e, err);
    if (rc != DSPEX_ENGINE_OK) return rc;
    if (t == NULL) return fail(err, DSPEX_ENGINE_EINVAL, "ask: no trial to fill");
    if (e->outstanding) {
        fill_trial(e, t);
        return DSPEX_ENGINE_OK;
    }
    rc = next_trial(e, err);
    if (rc != DSPEX_ENGINE_OK) return rc;
    dspex_buf b;
    dspex_buf_init(&b);
    put32(&b, e->out_number);
    put16(&b, (uint16_t)e->out_kind);
    put16(&b, (uint16_t)e->n_params);
    for (uint32_t i = 0; i < e->n_params; i++) put32(&b, e->out_params[i]);
    put32(&b, e->out_n_examples);
    for (uint32_t i = 0; i < e->out_n_examples; i++) put32(&b, e->out_examples[i]);
    rc = write_rec(e, DSPEX_ENGINE_REC_ASKED, &b, 0, err);
    dspex_buf_free(&b);
    if (rc != DSPEX_ENGINE_OK) {
        e->broken = 1; /* the sampler moved; the journal did not */
        return rc;
    }
    fill_trial(e, t);
    return DSPEX_ENGINE_OK;
}

int dspex_engine_tell(dspex_engine *e, uint32_t number, int failed, double score, const dspex_engine_usage *usage,
                      const void *tail, size_t tail_len, dspex_journal_error *err) {
    clear_err(err);
    int rc = usable(e, err);
    if (rc != DSPEX_ENGINE_OK) return rc;
    if (usage == NULL || (tail == NULL && tail_len > 0)) return fail(err, DSPEX_ENGINE_EINVAL, "tell: bad arguments");
    if (!e->outstanding || number != e->out_number)
        return fail(err, DSPEX_ENGINE_ESTATE, "trial %u is not the outstanding trial", number);
    if (!failed && !isfinite(score)) return fail(err, DSPEX_ENGINE_EINVAL, "a score must be a finite number");
    if (failed && (e->out_kind == DSPEX_TRIAL_DEFAULT || e->out_kind == DSPEX_TRIAL_FULL_EVAL))
        return fail(err, DSPEX_ENGINE_EINVAL, "a default or full-evaluation trial needs a score (DSPy scores a "
                                              "failed evaluation 0.0)");
    dspex_buf b;
    dspex_buf_init(&b);
    put32(&b, number);
    put16(&b, failed ? 2 : 1);
    put16(&b, 0);
    putf64(&b, failed ? 0.0 : score);
    put_usage(&b, usage);
    dspex_buf_put(&b, tail, tail_len);
    rc = write_rec(e, DSPEX_ENGINE_REC_TOLD, &b, 1, err);
    dspex_buf_free(&b);
    if (rc != DSPEX_ENGINE_OK) return rc;
    rc = apply_tell(e, failed, score, usage, err);
    if (rc != DSPEX_ENGINE_OK) e->broken = 1;
    return rc;
}

int dspex_engine_note(dspex_engine *e, uint16_t type, const void *blob, size_t blob_len, dspex_journal_error *err) {
    clear_err(err);
    int rc = usable(e, err);
    if (rc != DSPEX_ENGINE_OK) return rc;
    if ((type != DSPEX_ENGINE_REC_BEST && type != DSPEX_ENGINE_REC_DONE) || (blob == NULL && blob_len > 0))
        return fail(err, DSPEX_ENGINE_EINVAL, "note: only BEST and DONE records");
    dspex_buf b;
    dspex_buf_init(&b);
    dspex_buf_put(&b, blob, blob_len);
    /* BEST is derived data (replay recomputes the best trial): durable with the next
     * commit, so a new best costs no extra fdatasync; DONE ends the job: committed */
    rc = write_rec(e, type, &b, type == DSPEX_ENGINE_REC_DONE, err);
    dspex_buf_free(&b);
    return rc;
}

void dspex_engine_status(const dspex_engine *e, dspex_engine_stats *st) {
    memset(st, 0, sizeof(*st));
    if (e == NULL) return;
    st->has_setup = e->has_setup;
    st->mode = e->mode;
    st->asked = e->asked;
    st->told = e->told;
    st->objective_told = e->objective_told;
    st->num_trials = e->num_trials;
    if (e->mode == DSPEX_ENGINE_TPE)
        st->planned = e->minibatch ? e->adjusted : e->num_trials + 1;
    else
        for (uint32_t i = 0; i < e->n_batches; i++) st->planned += e->batches[i].n;
    st->outstanding = e->outstanding;
    st->outstanding_number = e->outstanding ? e->out_number : 0;
    st->finished = e->has_setup && e->mode == DSPEX_ENGINE_TPE && !e->outstanding && e->pending_full < 0 &&
                   e->asked > 0 && e->objective_told >= e->num_trials && e->objective_asked >= e->num_trials;
    st->has_best = e->has_best;
    st->best_number = e->best_number;
    st->best_score = e->best_score;
    st->usage = e->usage;
    st->sync_us = e->sync_ns / 1000u;
}
