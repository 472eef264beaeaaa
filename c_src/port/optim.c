/* The optimizer engine's side of the protocol: {optim_*, Id, ...} commands decoded into
 * calls on c_src/core/optim/engine.c, one final reply per command
 * (docs/port-protocol.md, "Optimizer jobs"). A port holds up to DP_MAX_JOBS open jobs,
 * each an engine with its journal; the BEAM names them by the integer `open` returns.
 *
 * Journal syncs (fdatasync at every trial boundary) run on the loop thread: a job's
 * port is its own process (DSPex.Optimize opens one per job), so no HTTP transfer waits
 * behind a sync. Every frame was checked by dp_etf_valid before it gets here. */
#include "port.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/optim/engine.h"

/* ---------------------------------------------------------------- replies */

static void begin_reply(ei_x_buff *x, long long id) {
    ei_x_new_with_version(x);
    ei_x_encode_tuple_header(x, 3);
    ei_x_encode_atom(x, "optim");
    ei_x_encode_longlong(x, id);
}

static void reply_atom(dp_ctx *ctx, long long id, const char *atom) {
    ei_x_buff x;
    begin_reply(&x, id);
    ei_x_encode_atom(&x, atom);
    dp_send(ctx, &x);
}

static const char *error_type(int code) {
    switch (code) {
    case DSPEX_JOURNAL_EIO: return "io";
    case DSPEX_JOURNAL_ENOSPC: return "disk_full";
    case DSPEX_JOURNAL_ENOTJOURNAL: return "not_a_journal";
    case DSPEX_JOURNAL_ECORRUPT: return "corrupt";
    case DSPEX_JOURNAL_ESPEC: return "spec_mismatch";
    case DSPEX_JOURNAL_EBUSY: return "busy";
    case DSPEX_JOURNAL_EBROKEN: return "broken";
    case DSPEX_JOURNAL_ELIMIT:
    case DSPEX_ENGINE_ELIMIT: return "limit";
    case DSPEX_JOURNAL_ENOMEM:
    case DSPEX_ENGINE_ENOMEM: return "no_memory";
    case DSPEX_ENGINE_ESTATE: return "state";
    case DSPEX_ENGINE_ESEQ: return "sequence";
    case DSPEX_ENGINE_EBADREC: return "corrupt";
    case DSPEX_ENGINE_ENOCAND: return "no_candidate";
    default: return "bad_request";
    }
}

/* {error, Id, Type, Message, #{offset => N, errno => E}} */
static void reply_error(dp_ctx *ctx, long long id, const char *type, const char *msg, uint64_t offset, int sys_errno) {
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 5);
    ei_x_encode_atom(&x, "error");
    ei_x_encode_longlong(&x, id);
    ei_x_encode_atom(&x, type);
    ei_x_encode_binary(&x, msg, (long)strlen(msg));
    ei_x_encode_map_header(&x, 2);
    ei_x_encode_atom(&x, "offset");
    ei_x_encode_ulonglong(&x, offset);
    ei_x_encode_atom(&x, "errno");
    ei_x_encode_long(&x, sys_errno);
    dp_send(ctx, &x);
}

static void reply_engine_error(dp_ctx *ctx, long long id, int code, const dspex_journal_error *err) {
    reply_error(ctx, id, error_type(code), err->message[0] ? err->message : "optimizer engine error", err->offset,
                err->sys_errno);
}

static void encode_usage(ei_x_buff *x, const dspex_engine_usage *u) {
    ei_x_encode_map_header(x, 4);
    ei_x_encode_atom(x, "lm_calls");
    ei_x_encode_ulonglong(x, u->lm_calls);
    ei_x_encode_atom(x, "prompt_tokens");
    ei_x_encode_ulonglong(x, u->prompt_tokens);
    ei_x_encode_atom(x, "completion_tokens");
    ei_x_encode_ulonglong(x, u->completion_tokens);
    ei_x_encode_atom(x, "cost");
    ei_x_encode_double(x, u->cost);
}

static void encode_u32s(ei_x_buff *x, const uint32_t *v, uint32_t n) {
    if (n > 0) {
        ei_x_encode_list_header(x, n);
        for (uint32_t i = 0; i < n; i++) ei_x_encode_ulong(x, v[i]);
    }
    ei_x_encode_empty_list(x);
}

static const char *KINDS[] = {"default", "objective", "full_eval", "candidate"};

static void encode_trial(ei_x_buff *x, const dspex_engine_trial *t) {
    ei_x_encode_map_header(x, 5);
    ei_x_encode_atom(x, "number");
    ei_x_encode_ulong(x, t->number);
    ei_x_encode_atom(x, "kind");
    ei_x_encode_atom(x, KINDS[t->kind]);
    ei_x_encode_atom(x, "params");
    encode_u32s(x, t->params, t->n_params);
    ei_x_encode_atom(x, "examples");
    if (t->n_examples == 0)
        ei_x_encode_atom(x, "all");
    else
        encode_u32s(x, t->examples, t->n_examples);
    ei_x_encode_atom(x, "counts_for_best");
    ei_x_encode_boolean(x, t->counts_for_best);
}

static void encode_stats(ei_x_buff *x, const dspex_engine_stats *st, uint64_t port_us) {
    ei_x_encode_map_header(x, 12);
    ei_x_encode_atom(x, "port_us");
    ei_x_encode_ulonglong(x, port_us);
    ei_x_encode_atom(x, "sync_us");
    ei_x_encode_ulonglong(x, st->sync_us);
    ei_x_encode_atom(x, "asked");
    ei_x_encode_ulong(x, st->asked);
    ei_x_encode_atom(x, "told");
    ei_x_encode_ulong(x, st->told);
    ei_x_encode_atom(x, "objective_told");
    ei_x_encode_ulong(x, st->objective_told);
    ei_x_encode_atom(x, "num_trials");
    ei_x_encode_ulong(x, st->num_trials);
    ei_x_encode_atom(x, "planned");
    ei_x_encode_ulong(x, st->planned);
    ei_x_encode_atom(x, "outstanding");
    if (st->outstanding)
        ei_x_encode_ulong(x, st->outstanding_number);
    else
        ei_x_encode_atom(x, "nil");
    ei_x_encode_atom(x, "finished");
    ei_x_encode_boolean(x, st->finished);
    ei_x_encode_atom(x, "best_number");
    if (st->has_best)
        ei_x_encode_ulong(x, st->best_number);
    else
        ei_x_encode_atom(x, "nil");
    ei_x_encode_atom(x, "best_score");
    if (st->has_best)
        ei_x_encode_double(x, st->best_score);
    else
        ei_x_encode_atom(x, "nil");
    ei_x_encode_atom(x, "usage");
    encode_usage(x, &st->usage);
}

static void encode_config(ei_x_buff *x, const dspex_engine_config *c) {
    ei_x_encode_map_header(x, 11);
    ei_x_encode_atom(x, "mode");
    ei_x_encode_atom(x, c->mode == DSPEX_ENGINE_TPE ? "tpe" : "queue");
    ei_x_encode_atom(x, "params");
    if (c->n_params > 0) {
        ei_x_encode_list_header(x, c->n_params);
        for (uint32_t i = 0; i < c->n_params; i++) {
            ei_x_encode_tuple_header(x, 2);
            ei_x_encode_binary(x, c->params[i].name, (long)c->params[i].name_len);
            ei_x_encode_ulong(x, c->params[i].n_choices);
        }
    }
    ei_x_encode_empty_list(x);
    ei_x_encode_atom(x, "seed");
    ei_x_encode_ulong(x, c->tpe.seed);
    ei_x_encode_atom(x, "n_startup_trials");
    ei_x_encode_ulong(x, c->tpe.n_startup_trials);
    ei_x_encode_atom(x, "n_ei_candidates");
    ei_x_encode_ulong(x, c->tpe.n_ei_candidates);
    ei_x_encode_atom(x, "num_trials");
    ei_x_encode_ulong(x, c->num_trials);
    ei_x_encode_atom(x, "valset_size");
    ei_x_encode_ulong(x, c->valset_size);
    ei_x_encode_atom(x, "minibatch");
    ei_x_encode_boolean(x, c->minibatch);
    ei_x_encode_atom(x, "minibatch_size");
    ei_x_encode_ulong(x, c->minibatch_size);
    ei_x_encode_atom(x, "full_eval_steps");
    ei_x_encode_ulong(x, c->full_eval_steps);
    ei_x_encode_atom(x, "usage");
    encode_usage(x, &c->usage);
}

/* ---------------------------------------------------------------- decoding */

typedef struct {
    const char *buf;
    int idx;
    char err[200];
} dec;

static int dec_fail(dec *d, const char *what) {
    snprintf(d->err, sizeof(d->err), "%s", what);
    return -1;
}

/* A binary into a fresh buffer (NUL-terminated; *len without the NUL). */
static int dec_bin(dec *d, char **out, size_t *len, const char *what) {
    int type, size;
    if (ei_get_type(d->buf, &d->idx, &type, &size) != 0 || type != ERL_BINARY_EXT || size < 0)
        return dec_fail(d, what);
    char *p = malloc((size_t)size + 1);
    if (p == NULL) return dec_fail(d, "out of memory");
    long got = 0;
    if (ei_decode_binary(d->buf, &d->idx, p, &got) != 0) {
        free(p);
        return dec_fail(d, what);
    }
    p[got] = 0;
    free(*out);
    *out = p;
    *len = (size_t)got;
    return 0;
}

static int dec_u64(dec *d, unsigned long long *out, unsigned long long max, const char *what) {
    long long v;
    if (ei_decode_longlong(d->buf, &d->idx, &v) != 0 || v < 0 || (unsigned long long)v > max)
        return dec_fail(d, what);
    *out = (unsigned long long)v;
    return 0;
}

static int dec_u32(dec *d, uint32_t *out, const char *what) {
    unsigned long long v;
    if (dec_u64(d, &v, UINT32_MAX, what) != 0) return -1;
    *out = (uint32_t)v;
    return 0;
}

/* An integer or a float. */
static int dec_number(dec *d, double *out, const char *what) {
    int type, size;
    if (ei_get_type(d->buf, &d->idx, &type, &size) != 0) return dec_fail(d, what);
    if (type == ERL_FLOAT_EXT || type == NEW_FLOAT_EXT) return ei_decode_double(d->buf, &d->idx, out) ? dec_fail(d, what) : 0;
    long long v;
    if (ei_decode_longlong(d->buf, &d->idx, &v) != 0) return dec_fail(d, what);
    *out = (double)v;
    return 0;
}

/* A list of non-negative integers (term_to_binary writes a list of bytes as a string). */
static int dec_u32_list(dec *d, uint32_t **out, uint32_t *n, const char *what) {
    int type, size;
    *out = NULL;
    *n = 0;
    if (ei_get_type(d->buf, &d->idx, &type, &size) != 0 || size < 0) return dec_fail(d, what);
    if (type == ERL_STRING_EXT) {
        unsigned char *s = malloc((size_t)size + 1);
        if (s == NULL) return dec_fail(d, "out of memory");
        if (ei_decode_string(d->buf, &d->idx, (char *)s) != 0) {
            free(s);
            return dec_fail(d, what);
        }
        uint32_t *v = malloc(((size_t)size ? (size_t)size : 1) * sizeof(uint32_t));
        if (v == NULL) {
            free(s);
            return dec_fail(d, "out of memory");
        }
        for (int i = 0; i < size; i++) v[i] = s[i];
        free(s);
        *out = v;
        *n = (uint32_t)size;
        return 0;
    }
    int arity;
    if (ei_decode_list_header(d->buf, &d->idx, &arity) != 0 || arity < 0) return dec_fail(d, what);
    if (arity == 0) return 0;
    uint32_t *v = malloc((size_t)arity * sizeof(uint32_t));
    if (v == NULL) return dec_fail(d, "out of memory");
    for (int i = 0; i < arity; i++)
        if (dec_u32(d, &v[i], what) != 0) {
            free(v);
            return -1;
        }
    if (ei_decode_list_header(d->buf, &d->idx, &arity) != 0 || arity != 0) {
        free(v);
        return dec_fail(d, what);
    }
    *out = v;
    *n = (uint32_t)(size > 0 ? size : 0);
    return 0;
}

static int dec_usage(dec *d, dspex_engine_usage *u) {
    int n;
    memset(u, 0, sizeof(*u));
    if (ei_decode_map_header(d->buf, &d->idx, &n) != 0) return dec_fail(d, "usage must be a map");
    for (int i = 0; i < n; i++) {
        char key[MAXATOMLEN_UTF8];
        unsigned long long v = 0;
        if (ei_decode_atom(d->buf, &d->idx, key) != 0) return dec_fail(d, "usage keys must be atoms");
        int rc = 0;
        if (strcmp(key, "lm_calls") == 0)
            rc = dec_u64(d, &v, UINT64_MAX >> 1, "usage.lm_calls"), u->lm_calls = v;
        else if (strcmp(key, "prompt_tokens") == 0)
            rc = dec_u64(d, &v, UINT64_MAX >> 1, "usage.prompt_tokens"), u->prompt_tokens = v;
        else if (strcmp(key, "completion_tokens") == 0)
            rc = dec_u64(d, &v, UINT64_MAX >> 1, "usage.completion_tokens"), u->completion_tokens = v;
        else if (strcmp(key, "cost") == 0)
            rc = dec_number(d, &u->cost, "usage.cost");
        else
            rc = ei_skip_term(d->buf, &d->idx) ? dec_fail(d, "bad usage") : 0;
        if (rc != 0) return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- jobs */

static dspex_engine *job_of(dp_ctx *ctx, dec *d, long long *job) {
    if (ei_decode_longlong(d->buf, &d->idx, job) != 0 || *job < 1 || *job > DP_MAX_JOBS ||
        ctx->jobs[*job - 1] == NULL) {
        dec_fail(d, "no such optimizer job in this port");
        return NULL;
    }
    return ctx->jobs[*job - 1];
}

/* Replay visitor: every event becomes one element of the reply's list. */
typedef struct {
    ei_x_buff *x;
} replay_ctx;

static int on_event(void *vctx, const dspex_engine_event *ev) {
    ei_x_buff *x = ((replay_ctx *)vctx)->x;
    /* an empty payload may come without a pointer: never hand ei a NULL source */
    const char *blob = ev->blob_len ? (const char *)ev->blob : "";
    ei_x_encode_list_header(x, 1);
    switch (ev->type) {
    case DSPEX_ENGINE_EV_RUN:
    case DSPEX_ENGINE_EV_BEST:
    case DSPEX_ENGINE_EV_DONE:
        ei_x_encode_tuple_header(x, 2);
        ei_x_encode_atom(x, ev->type == DSPEX_ENGINE_EV_RUN ? "run" : ev->type == DSPEX_ENGINE_EV_BEST ? "best" : "done");
        ei_x_encode_binary(x, blob, (long)ev->blob_len);
        break;
    case DSPEX_ENGINE_EV_SETUP:
        ei_x_encode_tuple_header(x, 3);
        ei_x_encode_atom(x, "setup");
        encode_config(x, ev->setup);
        ei_x_encode_binary(x, blob, (long)ev->blob_len);
        break;
    case DSPEX_ENGINE_EV_BATCH:
        ei_x_encode_tuple_header(x, 4);
        ei_x_encode_atom(x, "batch");
        ei_x_encode_ulong(x, ev->batch);
        ei_x_encode_ulong(x, ev->batch_size);
        ei_x_encode_binary(x, blob, (long)ev->blob_len);
        break;
    case DSPEX_ENGINE_EV_ASKED:
        ei_x_encode_tuple_header(x, 2);
        ei_x_encode_atom(x, "asked");
        encode_trial(x, ev->trial);
        break;
    case DSPEX_ENGINE_EV_TOLD:
        ei_x_encode_tuple_header(x, 5);
        ei_x_encode_atom(x, "told");
        ei_x_encode_ulong(x, ev->number);
        if (ev->failed)
            ei_x_encode_atom(x, "failed");
        else
            ei_x_encode_double(x, ev->score);
        encode_usage(x, &ev->usage);
        ei_x_encode_binary(x, blob, (long)ev->blob_len);
        break;
    }
    return 0;
}

/* {optim_open, Id, #{path, spec, run, max_record}} */
static void cmd_open(dp_ctx *ctx, dec *d, long long id) {
    char *path = NULL, *spec = NULL, *run = NULL;
    size_t path_len = 0, spec_len = 0, run_len = 0;
    unsigned long long max_record = 0;
    int n, slot = -1;
    if (ei_decode_map_header(d->buf, &d->idx, &n) != 0) {
        dec_fail(d, "optim_open takes a map");
        goto bad;
    }
    for (int i = 0; i < n; i++) {
        char key[MAXATOMLEN_UTF8];
        if (ei_decode_atom(d->buf, &d->idx, key) != 0) {
            dec_fail(d, "optim_open map keys must be atoms");
            goto bad;
        }
        int rc;
        if (strcmp(key, "path") == 0)
            rc = dec_bin(d, &path, &path_len, "path must be a binary");
        else if (strcmp(key, "spec") == 0)
            rc = dec_bin(d, &spec, &spec_len, "spec must be a binary");
        else if (strcmp(key, "run") == 0)
            rc = dec_bin(d, &run, &run_len, "run must be a binary");
        else if (strcmp(key, "max_record") == 0)
            rc = dec_u64(d, &max_record, DSPEX_JOURNAL_MAX_RECORD_CAP, "max_record out of range");
        else
            rc = ei_skip_term(d->buf, &d->idx) ? dec_fail(d, "bad term") : 0;
        if (rc != 0) goto bad;
    }
    if (path == NULL || spec == NULL || path_len == 0 || strlen(path) != path_len) {
        dec_fail(d, "optim_open needs a path (without NUL bytes) and a spec");
        goto bad;
    }
    for (int i = 0; i < DP_MAX_JOBS && slot < 0; i++)
        if (ctx->jobs[i] == NULL) slot = i;
    if (slot < 0) {
        reply_error(ctx, id, "limit", "this port already holds the most optimizer jobs it can (64)", 0, 0);
        goto done;
    }
    ei_x_buff events;
    ei_x_new(&events);
    replay_ctx rctx = {&events};
    dspex_journal_opts jo = {(uint32_t)max_record, NULL};
    dspex_journal_info info;
    dspex_journal_error err;
    dspex_engine *e = NULL;
    int rc = dspex_engine_open(path, spec, spec_len, &jo, run ? run : "", run_len, on_event, &rctx, &e, &info, &err);
    if (rc != DSPEX_ENGINE_OK) {
        ei_x_free(&events);
        reply_engine_error(ctx, id, rc, &err);
        goto done;
    }
    ei_x_encode_empty_list(&events);
    ctx->jobs[slot] = e;
    ei_x_buff x;
    begin_reply(&x, id);
    ei_x_encode_tuple_header(&x, 4);
    ei_x_encode_atom(&x, "opened");
    ei_x_encode_long(&x, slot + 1);
    ei_x_encode_map_header(&x, 4);
    ei_x_encode_atom(&x, "records");
    ei_x_encode_ulonglong(&x, info.records);
    ei_x_encode_atom(&x, "file_bytes");
    ei_x_encode_ulonglong(&x, info.file_bytes);
    ei_x_encode_atom(&x, "torn_bytes");
    ei_x_encode_ulonglong(&x, info.torn_bytes);
    ei_x_encode_atom(&x, "created");
    ei_x_encode_boolean(&x, info.records == 2 && info.user_records == 0);
    ei_x_append_buf(&x, events.buff, events.index);
    ei_x_free(&events);
    dp_send(ctx, &x);
    goto done;
bad:
    reply_error(ctx, id, "bad_request", d->err, 0, 0);
done:
    free(path);
    free(spec);
    free(run);
}

/* {optim_setup, Id, Job, #{mode, params, seed, ...}, Blob} */
static void cmd_setup(dp_ctx *ctx, dec *d, long long id) {
    long long job;
    dspex_engine *e = job_of(ctx, d, &job);
    dspex_tpe_param params[DSPEX_TPE_MAX_PARAMS];
    char *names[DSPEX_TPE_MAX_PARAMS];
    uint32_t np = 0;
    char *rng = NULL, *blob = NULL;
    size_t rng_len = 0, blob_len = 0;
    dspex_engine_config c;
    memset(&c, 0, sizeof(c));
    dspex_tpe_opts_default(&c.tpe);
    int n;
    if (e == NULL) goto bad;
    if (ei_decode_map_header(d->buf, &d->idx, &n) != 0) {
        dec_fail(d, "optim_setup takes a config map");
        goto bad;
    }
    for (int i = 0; i < n; i++) {
        char key[MAXATOMLEN_UTF8];
        if (ei_decode_atom(d->buf, &d->idx, key) != 0) {
            dec_fail(d, "config keys must be atoms");
            goto bad;
        }
        int rc = 0;
        if (strcmp(key, "mode") == 0) {
            char mode[MAXATOMLEN_UTF8];
            if (ei_decode_atom(d->buf, &d->idx, mode) != 0) {
                rc = dec_fail(d, "mode must be tpe or queue");
            } else if (strcmp(mode, "tpe") == 0) {
                c.mode = DSPEX_ENGINE_TPE;
            } else if (strcmp(mode, "queue") == 0) {
                c.mode = DSPEX_ENGINE_QUEUE;
            } else {
                rc = dec_fail(d, "mode must be tpe or queue");
            }
        } else if (strcmp(key, "params") == 0) {
            int arity;
            if (ei_decode_list_header(d->buf, &d->idx, &arity) != 0 || arity < 0 || arity > DSPEX_TPE_MAX_PARAMS ||
                np > 0) {
                rc = dec_fail(d, "params must be a list of at most 256 {name, choices}");
            } else {
                for (int k = 0; k < arity && rc == 0; k++) {
                    int ta;
                    size_t nl = 0;
                    names[np] = NULL;
                    if (ei_decode_tuple_header(d->buf, &d->idx, &ta) != 0 || ta != 2 ||
                        dec_bin(d, &names[np], &nl, "a parameter name must be a binary") != 0) {
                        free(names[np]);
                        rc = dec_fail(d, "params must be {name, choices} tuples");
                        break;
                    }
                    params[np].name = names[np];
                    params[np].name_len = nl;
                    np++;
                    rc = dec_u32(d, &params[np - 1].n_choices, "a parameter's choices must be a count");
                }
                if (rc == 0 && arity > 0 && (ei_decode_list_header(d->buf, &d->idx, &arity) != 0 || arity != 0))
                    rc = dec_fail(d, "params must be a proper list");
            }
        } else if (strcmp(key, "seed") == 0) {
            rc = dec_u32(d, &c.tpe.seed, "seed must be 0 .. 2^32-1 (numpy's RandomState)");
        } else if (strcmp(key, "n_startup_trials") == 0) {
            rc = dec_u32(d, &c.tpe.n_startup_trials, "bad n_startup_trials");
        } else if (strcmp(key, "n_ei_candidates") == 0) {
            rc = dec_u32(d, &c.tpe.n_ei_candidates, "bad n_ei_candidates");
        } else if (strcmp(key, "num_trials") == 0) {
            rc = dec_u32(d, &c.num_trials, "bad num_trials");
        } else if (strcmp(key, "valset_size") == 0) {
            rc = dec_u32(d, &c.valset_size, "bad valset_size");
        } else if (strcmp(key, "minibatch") == 0) {
            int b;
            rc = ei_decode_boolean(d->buf, &d->idx, &b) ? dec_fail(d, "minibatch must be a boolean") : 0;
            c.minibatch = b;
        } else if (strcmp(key, "minibatch_size") == 0) {
            rc = dec_u32(d, &c.minibatch_size, "bad minibatch_size");
        } else if (strcmp(key, "full_eval_steps") == 0) {
            rc = dec_u32(d, &c.full_eval_steps, "bad full_eval_steps");
        } else if (strcmp(key, "rng_state") == 0) {
            int type, size;
            if (ei_get_type(d->buf, &d->idx, &type, &size) == 0 && type == ERL_ATOM_EXT)
                rc = ei_skip_term(d->buf, &d->idx) ? dec_fail(d, "bad rng_state") : 0; /* nil */
            else if (dec_bin(d, &rng, &rng_len, "rng_state must be a binary") != 0 ||
                     rng_len != DSPEX_PYRANDOM_STATE_BYTES)
                rc = dec_fail(d, "rng_state must be 2500 bytes (random.getstate() words)");
        } else if (strcmp(key, "usage") == 0) {
            rc = dec_usage(d, &c.usage);
        } else {
            rc = ei_skip_term(d->buf, &d->idx) ? dec_fail(d, "bad term") : 0;
        }
        if (rc != 0) goto bad;
    }
    if (dec_bin(d, &blob, &blob_len, "the setup blob must be a binary") != 0) goto bad;
    c.params = params;
    c.n_params = np;
    c.rng_state = (const unsigned char *)rng;
    c.blob = blob;
    c.blob_len = blob_len;
    dspex_journal_error err;
    int rc = dspex_engine_setup(e, &c, &err);
    if (rc == DSPEX_ENGINE_OK)
        reply_atom(ctx, id, "ok");
    else
        reply_engine_error(ctx, id, rc, &err);
    goto done;
bad:
    reply_error(ctx, id, "bad_request", d->err, 0, 0);
done:
    for (uint32_t i = 0; i < np; i++) free(names[i]);
    free(rng);
    free(blob);
}

/* {optim_batch, Id, Job, N, Examples | all, Blob} */
static void cmd_batch(dp_ctx *ctx, dec *d, long long id) {
    long long job;
    uint32_t n = 0, ne = 0, *ex = NULL;
    char *blob = NULL;
    size_t blob_len = 0;
    dspex_engine *e = job_of(ctx, d, &job);
    if (e == NULL || dec_u32(d, &n, "the batch size must be a count") != 0) goto bad;
    int type, size;
    if (ei_get_type(d->buf, &d->idx, &type, &size) == 0 && (type == ERL_ATOM_EXT || type == ERL_SMALL_ATOM_UTF8_EXT ||
                                                           type == ERL_ATOM_UTF8_EXT || type == ERL_SMALL_ATOM_EXT)) {
        char a[MAXATOMLEN_UTF8];
        if (ei_decode_atom(d->buf, &d->idx, a) != 0 || strcmp(a, "all") != 0) {
            dec_fail(d, "examples must be a list of indices or all");
            goto bad;
        }
    } else if (dec_u32_list(d, &ex, &ne, "examples must be a list of indices or all") != 0) {
        goto bad;
    }
    if (dec_bin(d, &blob, &blob_len, "the batch blob must be a binary") != 0) goto bad;
    dspex_journal_error err;
    uint32_t index;
    int rc = dspex_engine_add_batch(e, n, ex, ne, blob, blob_len, &index, &err);
    if (rc == DSPEX_ENGINE_OK) {
        ei_x_buff x;
        begin_reply(&x, id);
        ei_x_encode_tuple_header(&x, 2);
        ei_x_encode_atom(&x, "batch");
        ei_x_encode_ulong(&x, index);
        dp_send(ctx, &x);
    } else {
        reply_engine_error(ctx, id, rc, &err);
    }
    goto done;
bad:
    reply_error(ctx, id, "bad_request", d->err, 0, 0);
done:
    free(ex);
    free(blob);
}

/* {optim_ask, Id, Job} */
static void cmd_ask(dp_ctx *ctx, dec *d, long long id) {
    long long job;
    dspex_engine *e = job_of(ctx, d, &job);
    if (e == NULL) {
        reply_error(ctx, id, "bad_request", d->err, 0, 0);
        return;
    }
    dspex_engine_trial t;
    dspex_journal_error err;
    int rc = dspex_engine_ask(e, &t, &err);
    if (rc == DSPEX_ENGINE_NEED || rc == DSPEX_ENGINE_DONE) {
        reply_atom(ctx, id, rc == DSPEX_ENGINE_NEED ? "need" : "done");
    } else if (rc == DSPEX_ENGINE_OK) {
        ei_x_buff x;
        begin_reply(&x, id);
        ei_x_encode_tuple_header(&x, 2);
        ei_x_encode_atom(&x, "trial");
        encode_trial(&x, &t);
        dp_send(ctx, &x);
    } else {
        reply_engine_error(ctx, id, rc, &err);
    }
}

static void send_stats(dp_ctx *ctx, long long id, const char *tag, const dspex_engine *e) {
    dspex_engine_stats st;
    dspex_engine_status(e, &st);
    ei_x_buff x;
    begin_reply(&x, id);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, tag);
    encode_stats(&x, &st, ctx->optim_ns / 1000u);
    dp_send(ctx, &x);
}

/* The next trial as a reply term: {trial, Map} | need | done | {error, Type, Message}. */
static void encode_next(ei_x_buff *x, dspex_engine *e) {
    dspex_engine_trial t;
    dspex_journal_error err;
    int rc = dspex_engine_ask(e, &t, &err);
    if (rc == DSPEX_ENGINE_OK) {
        ei_x_encode_tuple_header(x, 2);
        ei_x_encode_atom(x, "trial");
        encode_trial(x, &t);
    } else if (rc == DSPEX_ENGINE_NEED || rc == DSPEX_ENGINE_DONE) {
        ei_x_encode_atom(x, rc == DSPEX_ENGINE_NEED ? "need" : "done");
    } else {
        ei_x_encode_tuple_header(x, 3);
        ei_x_encode_atom(x, "error");
        ei_x_encode_atom(x, error_type(rc));
        ei_x_encode_binary(x, err.message, (long)strlen(err.message));
    }
}

/* {optim_tell, Id, Job, Number, Score | failed, Usage, Tail} and
 * {optim_tell_ask, ...same...}: the latter also asks for the next trial, so a trial
 * boundary is one crossing. */
static void cmd_tell(dp_ctx *ctx, dec *d, long long id, int and_ask) {
    long long job;
    uint32_t number;
    double score = 0.0;
    int failed = 0;
    dspex_engine_usage u;
    char *tail = NULL;
    size_t tail_len = 0;
    dspex_engine *e = job_of(ctx, d, &job);
    if (e == NULL || dec_u32(d, &number, "the trial number must be a count") != 0) goto bad;
    int type, size;
    if (ei_get_type(d->buf, &d->idx, &type, &size) == 0 && (type == ERL_ATOM_EXT || type == ERL_SMALL_ATOM_UTF8_EXT ||
                                                           type == ERL_ATOM_UTF8_EXT || type == ERL_SMALL_ATOM_EXT)) {
        char a[MAXATOMLEN_UTF8];
        if (ei_decode_atom(d->buf, &d->idx, a) != 0 || strcmp(a, "failed") != 0) {
            dec_fail(d, "a score is a number or failed");
            goto bad;
        }
        failed = 1;
    } else if (dec_number(d, &score, "a score is a number or failed") != 0) {
        goto bad;
    }
    if (dec_usage(d, &u) != 0 || dec_bin(d, &tail, &tail_len, "the tail must be a binary") != 0) goto bad;
    dspex_journal_error err;
    int rc = dspex_engine_tell(e, number, failed, score, &u, tail, tail_len, &err);
    if (rc != DSPEX_ENGINE_OK) {
        reply_engine_error(ctx, id, rc, &err);
    } else if (!and_ask) {
        send_stats(ctx, id, "told", e);
    } else {
        /* ask first: the status then counts the new trial as asked */
        ei_x_buff next;
        ei_x_new(&next);
        encode_next(&next, e);
        dspex_engine_stats st;
        dspex_engine_status(e, &st);
        ei_x_buff x;
        begin_reply(&x, id);
        ei_x_encode_tuple_header(&x, 3);
        ei_x_encode_atom(&x, "told");
        encode_stats(&x, &st, ctx->optim_ns / 1000u);
        ei_x_append_buf(&x, next.buff, next.index);
        ei_x_free(&next);
        dp_send(ctx, &x);
    }
    goto done;
bad:
    reply_error(ctx, id, "bad_request", d->err, 0, 0);
done:
    free(tail);
}

/* {optim_note, Id, Job, best | done, Blob} */
static void cmd_note(dp_ctx *ctx, dec *d, long long id) {
    long long job;
    char *blob = NULL;
    size_t blob_len = 0;
    char what[MAXATOMLEN_UTF8];
    dspex_engine *e = job_of(ctx, d, &job);
    if (e == NULL) goto bad;
    if (ei_decode_atom(d->buf, &d->idx, what) != 0 || (strcmp(what, "best") != 0 && strcmp(what, "done") != 0)) {
        dec_fail(d, "a note is best or done");
        goto bad;
    }
    if (dec_bin(d, &blob, &blob_len, "the note must be a binary") != 0) goto bad;
    dspex_journal_error err;
    int rc = dspex_engine_note(e, strcmp(what, "best") == 0 ? DSPEX_ENGINE_REC_BEST : DSPEX_ENGINE_REC_DONE, blob,
                               blob_len, &err);
    if (rc == DSPEX_ENGINE_OK)
        reply_atom(ctx, id, "ok");
    else
        reply_engine_error(ctx, id, rc, &err);
    goto done;
bad:
    reply_error(ctx, id, "bad_request", d->err, 0, 0);
done:
    free(blob);
}

static void handle(dp_ctx *ctx, const char *buf, long long id);

void dp_optim_handle(dp_ctx *ctx, const char *buf, size_t len, long long id) {
    (void)len;
    uint64_t t0 = uv_hrtime();
    handle(ctx, buf, id);
    ctx->optim_ns += uv_hrtime() - t0;
}

static void handle(dp_ctx *ctx, const char *buf, long long id) {
    dec d = {buf, 0, {0}};
    int ver, arity;
    char tag[MAXATOMLEN_UTF8];
    long long id2;
    /* dp_decode already read these; read them again to reach the arguments */
    if (ei_decode_version(buf, &d.idx, &ver) != 0 || ei_decode_tuple_header(buf, &d.idx, &arity) != 0 ||
        ei_decode_atom(buf, &d.idx, tag) != 0 || ei_decode_longlong(buf, &d.idx, &id2) != 0) {
        reply_error(ctx, id, "bad_request", "malformed optimizer command", 0, 0);
        return;
    }
    if (strcmp(tag, "optim_open") == 0 && arity == 3) {
        cmd_open(ctx, &d, id);
    } else if (strcmp(tag, "optim_setup") == 0 && arity == 5) {
        cmd_setup(ctx, &d, id);
    } else if (strcmp(tag, "optim_batch") == 0 && arity == 6) {
        cmd_batch(ctx, &d, id);
    } else if (strcmp(tag, "optim_ask") == 0 && arity == 3) {
        cmd_ask(ctx, &d, id);
    } else if (strcmp(tag, "optim_tell") == 0 && arity == 7) {
        cmd_tell(ctx, &d, id, 0);
    } else if (strcmp(tag, "optim_tell_ask") == 0 && arity == 7) {
        cmd_tell(ctx, &d, id, 1);
    } else if (strcmp(tag, "optim_note") == 0 && arity == 5) {
        cmd_note(ctx, &d, id);
    } else if (strcmp(tag, "optim_status") == 0 && arity == 3) {
        long long job;
        dspex_engine *e = job_of(ctx, &d, &job);
        if (e == NULL)
            reply_error(ctx, id, "bad_request", d.err, 0, 0);
        else
            send_stats(ctx, id, "status", e);
    } else if (strcmp(tag, "optim_close") == 0 && arity == 3) {
        long long job;
        dspex_engine *e = job_of(ctx, &d, &job);
        if (e == NULL) {
            reply_error(ctx, id, "bad_request", d.err, 0, 0);
        } else {
            dspex_engine_free(e);
            ctx->jobs[job - 1] = NULL;
            reply_atom(ctx, id, "ok");
        }
    } else {
        char msg[128];
        snprintf(msg, sizeof(msg), "unknown command %.64s/%d", tag, arity);
        reply_error(ctx, id, "bad_request", msg, 0, 0);
    }
}

void dp_optim_close_all(dp_ctx *ctx) {
    for (int i = 0; i < DP_MAX_JOBS; i++) {
        dspex_engine_free(ctx->jobs[i]);
        ctx->jobs[i] = NULL;
    }
}
