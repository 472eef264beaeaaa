/* The optimizer engine: the search state of one optimization job, driven by ask/tell,
 * with every step in a crash-safe journal (docs/optimizer-engine.md).
 *
 * A job is a journal (include/dspex/optim/journal.h) whose spec record identifies the
 * job, plus the in-memory state rebuilt from it. The caller (dspex_port, for the BEAM)
 * runs candidate programs and reports their scores; the engine decides what runs next:
 *
 *   TPE mode (MIPROv2): a categorical search space (per predictor an instruction index
 *   and a demo-set index), optuna's TPESampler(seed, multivariate=True) (tpe.h) and
 *   CPython's random.Random for minibatches (pyrandom.h), scheduled exactly as DSPy's
 *   MIPROv2._optimize_prompt_parameters does:
 *     trial 1          the default program (every parameter 0) on the whole valset;
 *                      added to the study as trial 0 once told;
 *     trials 2..       objective trials: the sampler's parameters, scored on
 *                      rng.sample(range(valset_size), minibatch_size) (minibatch mode
 *                      and minibatch_size < valset_size) or on the whole valset;
 *     full evaluations (minibatch mode) after objective trial t when
 *                      t % (full_eval_steps + 1) == 0 or t == adjusted - 1: the
 *                      parameter combination with the highest mean minibatch score
 *                      (first seen on ties) not yet fully evaluated, on the whole
 *                      valset, added to the study (it takes the next trial number, as
 *                      optuna's study.add_trial does);
 *     done             after num_trials objective trials (and the full evaluation the
 *                      last one may schedule).
 *   Trial numbers are DSPy's trial_logs keys (optuna's trial number + 1).
 *
 *   QUEUE mode (COPRO, and optimizers whose candidates come from an LM): the caller
 *   adds batches of candidates (each batch with the examples to score it on); ask hands
 *   them out in order; when all are told, ask says NEED and the caller adds the next
 *   batch (or finishes).
 *
 * One trial is outstanding at a time (DSPy's searches are sequential; parity needs it).
 * Asking again before telling returns the same trial, which is also what happens after
 * a resume: a trial asked but not told before a crash is handed out again, same number,
 * parameters and examples.
 *
 * Journal records (types from DSPEX_JOURNAL_USER; layouts in docs/optimizer-engine.md):
 * RUN, SETUP, ASKED, TOLD, BATCH, BEST, DONE. SETUP, BATCH, TOLD and DONE are committed
 * (fdatasync) before the call returns: trial boundaries, one sync per trial. ASKED
 * (recomputed identically on replay), RUN (a note) and BEST (derived: replay finds the
 * best trial again) are only appended and become durable with the next commit. Opening an existing journal replays it: every record is
 * applied again and every ASKED record is compared with what the sampler proposes now,
 * so a journal from a different sampler build stops the resume (ESEQ) instead of
 * continuing a different sequence.
 *
 * State is changed only after its record is written; when a write fails after the
 * sampler has moved (ask), the engine refuses further calls (EBROKEN) and the journal on
 * disk is the truth to resume from. Pure C, no global state; one engine must not be used
 * from two threads at once. */
#ifndef DSPEX_OPTIM_ENGINE_H
#define DSPEX_OPTIM_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "dspex/optim/journal.h"
#include "dspex/optim/pyrandom.h"
#include "dspex/optim/tpe.h"

/* Limits (DSPEX_ENGINE_ELIMIT beyond them). Memory is O(trials x params) for the study
 * and its groups, plus the outstanding trial's examples; blobs are never kept. */
#define DSPEX_ENGINE_MAX_TRIALS DSPEX_TPE_MAX_TRIALS  /* trials of one job */
#define DSPEX_ENGINE_MAX_EXAMPLES (1u << 24)           /* valset size, examples per trial */
#define DSPEX_ENGINE_MAX_BATCH 65536u                   /* candidates in one QUEUE batch */
#define DSPEX_ENGINE_MAX_BATCHES 65536u                 /* QUEUE batches of one job */

/* Record types (docs/optimizer-engine.md, "Journal records"). */
enum {
    DSPEX_ENGINE_REC_RUN = 16,
    DSPEX_ENGINE_REC_SETUP = 17,
    DSPEX_ENGINE_REC_ASKED = 18,
    DSPEX_ENGINE_REC_TOLD = 19,
    DSPEX_ENGINE_REC_BATCH = 20,
    DSPEX_ENGINE_REC_BEST = 21,
    DSPEX_ENGINE_REC_DONE = 22,
};

/* Return codes: the journal's (DSPEX_JOURNAL_E*, -1..-12) pass through, plus these. */
enum {
    DSPEX_ENGINE_OK = 0,
    DSPEX_ENGINE_NEED = 1,       /* ask (QUEUE): every candidate is told; add a batch or finish */
    DSPEX_ENGINE_DONE = 2,       /* ask (TPE): every planned trial is told */
    DSPEX_ENGINE_ESTATE = -20,   /* a call out of order: no setup yet, setup twice, tell of a trial not outstanding */
    DSPEX_ENGINE_ESEQ = -21,     /* replay: the journal's trials differ from what this sampler proposes */
    DSPEX_ENGINE_EBADREC = -22,  /* replay: an engine record that does not parse */
    DSPEX_ENGINE_ENOCAND = -23,  /* TPE minibatch: no combination left to evaluate fully (DSPy raises ValueError) */
    DSPEX_ENGINE_EINVAL = -24,   /* bad argument */
    DSPEX_ENGINE_ELIMIT = -25,   /* beyond a limit above */
    DSPEX_ENGINE_ENOMEM = -26,
};

typedef enum { DSPEX_ENGINE_TPE = 1, DSPEX_ENGINE_QUEUE = 2 } dspex_engine_mode;

typedef enum {
    DSPEX_TRIAL_DEFAULT = 0,   /* TPE: the default program on the whole valset (trial 1) */
    DSPEX_TRIAL_OBJECTIVE = 1, /* TPE: a sampled combination (minibatch or whole valset) */
    DSPEX_TRIAL_FULL_EVAL = 2, /* TPE minibatch mode: a combination on the whole valset */
    DSPEX_TRIAL_CANDIDATE = 3, /* QUEUE: one candidate of a batch */
} dspex_trial_kind;

/* LM spending, summed over the job (each tell adds its trial's). */
typedef struct {
    uint64_t lm_calls, prompt_tokens, completion_tokens;
    double cost; /* dollars */
} dspex_engine_usage;

/* The search a job runs: what dspex_engine_setup takes (and replay reports). */
typedef struct {
    dspex_engine_mode mode;
    /* TPE mode */
    const dspex_tpe_param *params; /* search space, declaration (suggest) order */
    uint32_t n_params;
    dspex_tpe_opts tpe;
    uint32_t num_trials;      /* objective trials (DSPy's num_trials) */
    uint32_t valset_size;     /* >= 1 */
    int minibatch;            /* DSPy's minibatch flag */
    uint32_t minibatch_size;  /* examples per minibatch (>= 1 when minibatch) */
    uint32_t full_eval_steps; /* DSPy's minibatch_full_eval_steps (>= 1 when minibatch) */
    /* MIPROv2's self.rng after its proposals (DSPEX_PYRANDOM_STATE_BYTES, random.getstate
     * layout); NULL seeds nothing: minibatches then come from random.Random(tpe.seed). */
    const unsigned char *rng_state;
    /* both modes */
    dspex_engine_usage usage; /* spent before the search (bootstrapping, proposals) */
    const void *blob;         /* opaque to the engine: the caller's proposals */
    size_t blob_len;
} dspex_engine_config;

typedef struct {
    uint32_t number; /* 1-based */
    dspex_trial_kind kind;
    uint32_t n_params;
    const uint32_t *params; /* TPE: index per parameter; QUEUE: {batch, index in batch} */
    uint32_t n_examples;    /* 0: the whole set */
    const uint32_t *examples; /* indices in draw order (minibatch) or as the batch gave them */
    int counts_for_best;    /* its score can make it the best (DSPy's rules) */
} dspex_engine_trial;

typedef enum {
    DSPEX_ENGINE_EV_RUN,
    DSPEX_ENGINE_EV_SETUP,
    DSPEX_ENGINE_EV_BATCH,
    DSPEX_ENGINE_EV_ASKED,
    DSPEX_ENGINE_EV_TOLD,
    DSPEX_ENGINE_EV_BEST,
    DSPEX_ENGINE_EV_DONE,
} dspex_engine_ev_type;

/* One replayed record, for the caller to rebuild its own state. Pointers are valid only
 * during the visit. */
typedef struct {
    dspex_engine_ev_type type;
    const void *blob; /* RUN, BEST, DONE payload; SETUP and BATCH blob; TOLD tail */
    size_t blob_len;
    const dspex_engine_config *setup;  /* SETUP */
    uint32_t batch, batch_size;       /* BATCH: its index and candidate count */
    const dspex_engine_trial *trial;  /* ASKED */
    uint32_t number;                  /* TOLD */
    int failed;                       /* TOLD */
    double score;                     /* TOLD (NaN when failed) */
    dspex_engine_usage usage;         /* TOLD: the trial's own spending */
} dspex_engine_event;

typedef int (*dspex_engine_visit)(void *ctx, const dspex_engine_event *ev);

typedef struct {
    int has_setup;
    dspex_engine_mode mode;
    uint32_t asked;          /* trials handed out (numbers 1..asked) */
    uint32_t told;           /* of them, told (complete or failed) */
    uint32_t objective_told; /* TPE: objective trials told */
    uint32_t num_trials;     /* TPE: objective trials planned */
    uint32_t planned;        /* TPE: all trials planned (DSPy's adjusted_num_trials); QUEUE: candidates added */
    int outstanding;         /* a trial is asked and not told */
    uint32_t outstanding_number;
    int finished;            /* TPE: every planned trial told */
    int has_best;
    uint32_t best_number;
    double best_score;
    dspex_engine_usage usage; /* setup + every told trial */
    uint64_t sync_us;         /* time this engine spent in fdatasync (this open) */
} dspex_engine_stats;

typedef struct dspex_engine dspex_engine;

/* Opens (creating if missing) the journal at `path` for the job `spec`, replays it
 * (visit, if not NULL, sees every engine record in order) and appends a RUN record
 * holding run_blob (the caller's note for this (re)start), synced. Errors: the
 * journal's (ESPEC for another job's journal, ECORRUPT, EBUSY...) and ESEQ/EBADREC. */
int dspex_engine_open(const char *path, const void *spec, size_t spec_len, const dspex_journal_opts *jopts,
                      const void *run_blob, size_t run_len, dspex_engine_visit visit, void *ctx,
                      dspex_engine **out, dspex_journal_info *info, dspex_journal_error *err);
void dspex_engine_free(dspex_engine *e); /* closes the journal; NULL is fine */

/* Fixes the search (once per job; ESTATE if the journal already has one). */
int dspex_engine_setup(dspex_engine *e, const dspex_engine_config *s, dspex_journal_error *err);
/* QUEUE: appends a batch of n candidates scored on `examples` (n_examples 0: the whole
 * set); *index is its batch number. */
int dspex_engine_add_batch(dspex_engine *e, uint32_t n, const uint32_t *examples, uint32_t n_examples,
                           const void *blob, size_t blob_len, uint32_t *index, dspex_journal_error *err);
/* The next trial (OK), or NEED / DONE. The trial's arrays live until the next call. */
int dspex_engine_ask(dspex_engine *e, dspex_engine_trial *t, dspex_journal_error *err);
/* Reports the outstanding trial's score (failed: the objective raised; ignored by the
 * sampler as optuna ignores FAIL trials; not allowed for DEFAULT/FULL_EVAL trials), its
 * spending and an opaque tail (per-example scores, feedback) kept in the journal only. */
int dspex_engine_tell(dspex_engine *e, uint32_t number, int failed, double score, const dspex_engine_usage *usage,
                      const void *tail, size_t tail_len, dspex_journal_error *err);
/* Appends an opaque BEST (the caller's best program; durable with the next commit) or
 * DONE (why the job stopped; committed) record. */
int dspex_engine_note(dspex_engine *e, uint16_t type, const void *blob, size_t blob_len, dspex_journal_error *err);
void dspex_engine_status(const dspex_engine *e, dspex_engine_stats *st);

#endif
