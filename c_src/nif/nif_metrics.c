/* DSPy's answer metrics (c_src/core/metrics) for DSPex.Metrics.
 *
 *   metrics_normalize(Text)              -> binary | {error, {Type, Msg, Details}}
 *   metrics_score(Metric, Preds, Golds)  -> float | boolean | {error, ...}
 *   metrics_batch(Metric, PredsList, GoldsList) -> {ok, [Result]} | {error, ...}   (dirty CPU)
 *
 * Metric: em | f1 | hotpot_f1 | precision | passage_match (batch also: normalize).
 * Preds / Golds: a binary or a list of binaries (passage_match: passages / answers).
 *
 * Single calls follow the one scheduling rule (nif_util.h): their work is estimated as
 * (prediction bytes x golds + gold bytes + 64 per string, since each gold is compared
 * with the whole prediction) x COST_METRIC_BYTE — the worst case measured for the core
 * is ~50 ns per byte of that estimate (passage match of 16 KiB of Hangul against
 * itself, 2 cores shared by 8 builds). Batches are dirty from the start.
 *
 * Type errors raise {badarg, Message} (ArgumentError in Elixir, via DSPex.NIF.guard/1);
 * invalid UTF-8 and the core's limits come back as
 * {error, {invalid_utf8 | too_large | no_golds | out_of_memory, Message, Details}} with
 * Details = #{offset, index, gold | passage} (index: position in the batch). */
#include <stdio.h>
#include <string.h>

#include "dspex/arena.h"
#include "dspex/metrics.h"
#include "nif_util.h"

/* Work units (nif_util.h: ~1 ns) per byte of metric input: 4 KiB measured ~0.25 ms. */
#define COST_METRIC_BYTE 60u
/* The size walk over gold lists stops once this many bytes say "dirty" anyway. */
#define WALK_BYTES (DSPEX_DIRTY_WORK / COST_METRIC_BYTE + 1)
#define ITEM_STACK_BYTES 2048

#define KIND_NORMALIZE (-1) /* batch(:normalize, texts) */

/* The metric named by an atom (or KIND_NORMALIZE), or -2 when unknown. */
static int metric_of(ErlNifEnv *env, ERL_NIF_TERM t, int allow_normalize) {
    const DspexAtoms *a = dspex_atoms(env);
    if (enif_is_identical(t, a->mt_em)) return DSPEX_METRIC_EM;
    if (enif_is_identical(t, a->mt_f1)) return DSPEX_METRIC_F1;
    if (enif_is_identical(t, a->mt_hotpot_f1)) return DSPEX_METRIC_HOTPOT_F1;
    if (enif_is_identical(t, a->mt_precision)) return DSPEX_METRIC_PRECISION;
    if (enif_is_identical(t, a->mt_passage_match)) return DSPEX_METRIC_PASSAGE_MATCH;
    if (allow_normalize && enif_is_identical(t, a->mt_normalize)) return KIND_NORMALIZE;
    return -2;
}

static ERL_NIF_TERM result_term(ErlNifEnv *env, int metric, double score) {
    const DspexAtoms *a = dspex_atoms(env);
    if (metric == DSPEX_METRIC_EM || metric == DSPEX_METRIC_PASSAGE_MATCH)
        return score != 0.0 ? a->true_ : a->false_;
    return enif_make_double(env, score);
}

static ERL_NIF_TERM status_atom(ErlNifEnv *env, int status) {
    const DspexAtoms *a = dspex_atoms(env);
    switch (status) {
    case DSPEX_METRICS_EUTF8: return a->mt_invalid_utf8;
    case DSPEX_METRICS_ETOOBIG: return a->mt_too_large;
    case DSPEX_METRICS_ENOGOLDS: return a->mt_no_golds;
    default: return a->out_of_memory;
    }
}

/* {error, {Type, Message, #{offset, index, gold | passage}}}. `index` < 0: not a batch. */
static ERL_NIF_TERM metrics_error(ErlNifEnv *env, int metric, const dspex_metrics_error *e, long index) {
    const DspexAtoms *a = dspex_atoms(env);
    const char *what = metric == KIND_NORMALIZE ? "text"
                       : metric == DSPEX_METRIC_PASSAGE_MATCH ? (e->gold ? "answer" : "passage")
                                                              : (e->gold ? "gold" : "prediction");
    char msg[200];
    char where[64] = "";
    if (index >= 0) snprintf(where, sizeof where, " of batch item %ld", index);
    if (e->status == DSPEX_METRICS_EUTF8)
        snprintf(msg, sizeof msg, "invalid UTF-8 at byte %zu of %s %zu%s: metrics take UTF-8 strings", e->offset,
                 what, e->index, where);
    else if (e->status == DSPEX_METRICS_ENOGOLDS)
        snprintf(msg, sizeof msg, "empty list of golds%s: pass at least one gold answer", where);
    else
        snprintf(msg, sizeof msg, "%s (%s %zu%s)", dspex_metrics_strerror(e->status), what, e->index, where);

    ERL_NIF_TERM keys[3], vals[3];
    size_t n = 0;
    keys[n] = a->offset;
    vals[n++] = e->status == DSPEX_METRICS_EUTF8 ? enif_make_uint64(env, e->offset) : a->nil;
    keys[n] = a->mt_index;
    vals[n++] = index >= 0 ? enif_make_long(env, index) : a->nil;
    keys[n] = e->gold ? (metric == DSPEX_METRIC_PASSAGE_MATCH ? a->mt_answer : a->mt_gold)
                      : (metric == DSPEX_METRIC_PASSAGE_MATCH ? a->mt_passage : a->mt_prediction);
    vals[n++] = enif_make_uint64(env, e->index);
    ERL_NIF_TERM details;
    if (!enif_make_map_from_arrays(env, keys, vals, n, &details)) details = enif_make_new_map(env);
    ERL_NIF_TERM m = dspex_make_binary(env, msg, strlen(msg));
    return enif_make_tuple2(env, a->error, enif_make_tuple3(env, status_atom(env, e->status), m, details));
}

/* Reads a binary or a list of binaries into an arena array. Returns 0 on a type error
 * (the caller raises). *bytes accumulates the total size. */
static int texts_of(ErlNifEnv *env, ERL_NIF_TERM t, dspex_arena *ar, dspex_text **out, size_t *n,
                    size_t *bytes) {
    ErlNifBinary bin;
    if (enif_inspect_binary(env, t, &bin)) {
        dspex_text *v = dspex_arena_alloc(ar, sizeof(dspex_text));
        if (v == NULL) return -1;
        v->s = (const char *)bin.data;
        v->len = bin.size;
        *out = v;
        *n = 1;
        *bytes += bin.size;
        return 1;
    }
    unsigned len;
    if (!enif_get_list_length(env, t, &len)) return 0;
    dspex_text *v = dspex_arena_alloc(ar, (len ? len : 1) * sizeof(dspex_text));
    if (v == NULL) return -1;
    ERL_NIF_TERM head, tail = t;
    for (unsigned i = 0; i < len; i++) {
        enif_get_list_cell(env, tail, &head, &tail);
        if (!enif_inspect_binary(env, head, &bin)) return 0;
        v[i].s = (const char *)bin.data;
        v[i].len = bin.size;
        *bytes += bin.size;
    }
    *out = v;
    *n = len;
    return 1;
}

/* ---------------------------------------------------------------------------------- */
/* metrics_normalize/1 */

static ERL_NIF_TERM normalize_run(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    ErlNifBinary in;
    if (!enif_inspect_binary(env, argv[0], &in))
        return dspex_raise_badarg(env, "normalize_text/1 expects a string (binary)");
    dspex_buf out;
    dspex_buf_init(&out);
    size_t off = 0;
    int rc = dspex_normalize_text((const char *)in.data, in.size, &out, &off);
    ERL_NIF_TERM r;
    if (rc != DSPEX_METRICS_OK) {
        dspex_metrics_error e = {(dspex_metrics_status)rc, 0, 0, off};
        r = metrics_error(env, KIND_NORMALIZE, &e, -1);
    } else {
        r = dspex_make_binary(env, out.p ? out.p : "", out.len);
    }
    dspex_buf_free(&out);
    return r;
}

ERL_NIF_TERM dspex_nif_metrics_normalize(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    ErlNifBinary in;
    if (!enif_inspect_binary(env, argv[0], &in))
        return dspex_raise_badarg(env, "normalize_text/1 expects a string (binary)");
    dspex_work w = {0};
    dspex_work_add(&w, in.size * COST_METRIC_BYTE);
    return dspex_run(env, &w, "metrics_normalize", normalize_run, argc, argv);
}

/* ---------------------------------------------------------------------------------- */
/* metrics_score/3 */

static const char *SCORE_TYPES =
    "metric arguments must be a string or a list of strings (a prediction, passages, golds or answers)";

static ERL_NIF_TERM score_run(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    int metric = metric_of(env, argv[0], 0);
    if (metric < 0) return dspex_raise_badarg(env, "unknown metric (em, f1, hotpot_f1, precision, passage_match)");
    _Alignas(16) unsigned char stack[ITEM_STACK_BYTES];
    dspex_arena ar;
    dspex_arena_init_buf(&ar, 0, stack, sizeof stack);
    dspex_text *preds = NULL, *golds = NULL;
    size_t np = 0, ng = 0, bytes = 0;
    int ok = texts_of(env, argv[1], &ar, &preds, &np, &bytes);
    if (ok > 0) ok = texts_of(env, argv[2], &ar, &golds, &ng, &bytes);
    if (ok <= 0) {
        dspex_arena_free(&ar);
        return ok < 0 ? enif_raise_exception(env, dspex_atoms(env)->out_of_memory)
                      : dspex_raise_badarg(env, SCORE_TYPES);
    }
    if (metric != DSPEX_METRIC_PASSAGE_MATCH && np != 1) {
        dspex_arena_free(&ar);
        return dspex_raise_badarg(env, "the prediction must be one string");
    }
    dspex_metrics m;
    dspex_metrics_init(&m);
    double s = 0.0;
    int rc = dspex_metrics_score(&m, (dspex_metric)metric, preds, np, golds, ng, &s);
    ERL_NIF_TERM r = rc == DSPEX_METRICS_OK ? result_term(env, metric, s) : metrics_error(env, metric, &m.err, -1);
    dspex_metrics_free(&m);
    dspex_arena_free(&ar);
    return r;
}

/* Total bytes and count of a binary or a list of binaries (anything else counts as
 * nothing: score_run raises). Stops counting past the normal-scheduler budget. */
static void term_size(ErlNifEnv *env, ERL_NIF_TERM t, size_t *bytes, size_t *count) {
    ErlNifBinary bin;
    *bytes = *count = 0;
    if (enif_inspect_binary(env, t, &bin)) {
        *bytes = bin.size;
        *count = 1;
        return;
    }
    ERL_NIF_TERM head, tail = t;
    while (*bytes + *count <= WALK_BYTES && enif_get_list_cell(env, tail, &head, &tail)) {
        (*count)++;
        if (enif_inspect_binary(env, head, &bin)) *bytes += bin.size;
    }
}

ERL_NIF_TERM dspex_nif_metrics_score(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    /* The work is about (prediction or passage bytes) x (number of golds or answers)
     * plus the gold bytes, plus a fixed cost per string (~64 bytes' worth). */
    size_t pb, pn, gb, gn;
    term_size(env, argv[1], &pb, &pn);
    term_size(env, argv[2], &gb, &gn);
    size_t cost = pb * (gn ? gn : 1) + gb + 64 * (pn + gn);
    dspex_work w = {0};
    dspex_work_add(&w, cost > WALK_BYTES ? DSPEX_DIRTY_WORK + 1 : cost * COST_METRIC_BYTE);
    return dspex_run(env, &w, "metrics_score", score_run, argc, argv);
}

/* ---------------------------------------------------------------------------------- */
/* metrics_batch/3 (dirty CPU) */

ERL_NIF_TERM dspex_nif_metrics_batch(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    int metric = metric_of(env, argv[0], 1);
    if (metric == -2)
        return dspex_raise_badarg(env, "unknown metric (em, f1, hotpot_f1, precision, passage_match, normalize)");
    unsigned n, ngl = 0;
    if (!enif_get_list_length(env, argv[1], &n)) return dspex_raise_badarg(env, "batch/3 expects a list of predictions");
    if (metric != KIND_NORMALIZE) {
        if (!enif_get_list_length(env, argv[2], &ngl)) return dspex_raise_badarg(env, "batch/3 expects a list of golds");
        if (ngl != n) return dspex_raise_badarg(env, "batch/3 needs as many golds as predictions");
    }
    ERL_NIF_TERM *results = enif_alloc((n ? n : 1) * sizeof(ERL_NIF_TERM));
    if (results == NULL) return enif_raise_exception(env, dspex_atoms(env)->out_of_memory);

    dspex_metrics m;
    dspex_metrics_init(&m);
    ERL_NIF_TERM ptail = argv[1], gtail = argv[2], ph, gh, err = 0;
    int failed = 0;
    const char *type_error = NULL;
    for (unsigned i = 0; i < n && !failed && !type_error; i++) {
        enif_get_list_cell(env, ptail, &ph, &ptail);
        if (metric == KIND_NORMALIZE) {
            ErlNifBinary in;
            if (!enif_inspect_binary(env, ph, &in)) {
                type_error = "batch(:normalize, texts) expects a list of strings";
                break;
            }
            m.pred.len = 0;
            m.pred.oom = 0;
            size_t off = 0;
            int rc = dspex_normalize_text((const char *)in.data, in.size, &m.pred, &off);
            if (rc != DSPEX_METRICS_OK) {
                dspex_metrics_error e = {(dspex_metrics_status)rc, 0, 0, off};
                err = metrics_error(env, KIND_NORMALIZE, &e, (long)i);
                failed = 1;
            } else {
                results[i] = dspex_make_binary(env, m.pred.p ? m.pred.p : "", m.pred.len);
            }
            continue;
        }
        enif_get_list_cell(env, gtail, &gh, &gtail);
        _Alignas(16) unsigned char stack[ITEM_STACK_BYTES];
        dspex_arena ar;
        dspex_arena_init_buf(&ar, 0, stack, sizeof stack);
        dspex_text *preds = NULL, *golds = NULL;
        size_t np = 0, ng = 0, bytes = 0;
        int ok = texts_of(env, ph, &ar, &preds, &np, &bytes);
        if (ok > 0) ok = texts_of(env, gh, &ar, &golds, &ng, &bytes);
        if (ok < 0) {
            dspex_arena_free(&ar);
            err = enif_raise_exception(env, dspex_atoms(env)->out_of_memory);
            failed = 1;
            break;
        }
        if (ok == 0 || (metric != DSPEX_METRIC_PASSAGE_MATCH && np != 1)) {
            dspex_arena_free(&ar);
            type_error = metric == DSPEX_METRIC_PASSAGE_MATCH
                             ? "batch(:passage_match, ...) items are passage(s) and answer(s): strings or lists of strings"
                             : "batch/3 items are one prediction string and a gold string or list of gold strings";
            break;
        }
        double s = 0.0;
        int rc = dspex_metrics_score(&m, (dspex_metric)metric, preds, np, golds, ng, &s);
        dspex_arena_free(&ar);
        if (rc != DSPEX_METRICS_OK) {
            err = metrics_error(env, metric, &m.err, (long)i);
            failed = 1;
        } else {
            results[i] = result_term(env, metric, s);
        }
    }
    dspex_metrics_free(&m);
    ERL_NIF_TERM r;
    if (type_error)
        r = dspex_raise_badarg(env, type_error);
    else if (failed)
        r = err;
    else
        r = dspex_ok(env, enif_make_list_from_array(env, results, n));
    enif_free(results);
    return r;
}
