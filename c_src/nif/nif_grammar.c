/* Grammar-constrained decoding bindings (c_src/core/grammar): compiled grammars are NIF
 * resources (refcounted by the VM and by the matchers of running generations), compiled
 * for one model's vocabulary on a dirty CPU scheduler; local_gen_new/3 takes one as its
 * `grammar` parameter (nif_local.c). Matching text schedules by the one rule
 * (nif_util.h); compiling and sampling always run on a dirty CPU scheduler. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dspex/infer/grammar_adapter.h"
#include "nif_compiled.h"
#include "nif_local.h"

#define COST_MATCH_BYTE 10u /* one automaton step per byte, ~10 ns (nif_util.h's units) */
#define ERRLEN 320

typedef struct {
    dspex_grammar *g; /* one reference */
} local_grammar;

static void grammar_dtor(ErlNifEnv *env, void *obj) {
    (void)env;
    local_grammar *lg = obj;
    dspex_grammar_release(lg->g);
}

int dspex_nif_grammar_init(ErlNifEnv *env, DspexNifPriv *priv) {
    priv->local_grammar_type = enif_open_resource_type(env, NULL, "dspex_local_grammar", grammar_dtor,
                                                           ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER, NULL);
    return priv->local_grammar_type ? 0 : -1;
}

dspex_grammar *dspex_nif_grammar_get(ErlNifEnv *env, ERL_NIF_TERM t) {
    local_grammar *lg;
    if (!enif_get_resource(env, t, dspex_priv(env)->local_grammar_type, (void **)&lg)) return NULL;
    return lg->g;
}

static int limit_arg(ErlNifEnv *env, ERL_NIF_TERM map, ERL_NIF_TERM key, double lo, double hi, double *out) {
    ERL_NIF_TERM v;
    long l;
    if (!enif_get_map_value(env, map, key, &v)) return 0;
    if (!enif_get_long(env, v, &l) || l < lo || l > hi) return -1;
    *out = (double)l;
    return 1;
}

/* local_grammar(model, spec, limits): spec {:json_schema, text} | :json_object |
 * {:chat, id, key} | {:json, id, key} (a compiled signature, nif_compiled.h: :stale when
 * it is not compiled as given); limits %{json_depth:, ref_depth:, max_bytes:,
 * cache_bytes:} (any subset). */
ERL_NIF_TERM dspex_nif_local_grammar(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *a = dspex_atoms(env);
    local_model *lm = dspex_nif_local_model(env, argv[0]);
    if (lm == NULL || !enif_is_map(env, argv[2]))
        return dspex_raise_badarg(env, "local_grammar/3 expects a model, a grammar spec and a limits map");
    dspex_grammar_limits lim = dspex_grammar_default_limits();
    double jd = lim.json_depth, rd = lim.ref_depth, mb = (double)lim.max_bytes, cb = (double)lim.cache_bytes;
    if (limit_arg(env, argv[2], a->gr_json_depth, 1, 32, &jd) < 0 || limit_arg(env, argv[2], a->gr_ref_depth, 1, 32, &rd) < 0 ||
        limit_arg(env, argv[2], a->gr_max_bytes, 4096, 1 << 30, &mb) < 0 ||
        limit_arg(env, argv[2], a->gr_cache_bytes, 0, 1 << 30, &cb) < 0)
        return dspex_raise_badarg(env, "local_grammar/3: json_depth and ref_depth must be in 1..32, max_bytes in "
                                       "4096..2^30, cache_bytes in 0..2^30");
    lim = (dspex_grammar_limits){(int)jd, (int)rd, (size_t)mb, (size_t)cb};
    char err[ERRLEN] = "";
    dspex_gvocab *gv = dspex_nif_local_gvocab(lm, err, sizeof err);
    if (gv == NULL) return dspex_error(env, a->lo_grammar, err, -1);
    dspex_grammar *g = NULL;
    int arity;
    const ERL_NIF_TERM *tup;
    ErlNifBinary text;
    if (enif_is_identical(argv[1], a->gr_json_object)) {
        g = dspex_grammar_json_object(gv, &lim, err, sizeof err);
    } else if (enif_get_tuple(env, argv[1], &arity, &tup) && arity == 2 && enif_is_identical(tup[0], a->gr_json_schema) &&
               enif_inspect_binary(env, tup[1], &text)) {
        g = dspex_grammar_json_schema((const char *)text.data, text.size, gv, &lim, err, sizeof err);
    } else if (enif_get_tuple(env, argv[1], &arity, &tup) && arity == 3 &&
               (enif_is_identical(tup[0], a->ad_chat) || enif_is_identical(tup[0], a->ad_json))) {
        dspex_compiled *cs = dspex_compiled_acquire(env, tup[1], tup[2]);
        if (cs == NULL) return a->ad_stale;
        g = dspex_grammar_adapter(enif_is_identical(tup[0], a->ad_chat) ? DXA_CHAT : DXA_JSON, cs->sig, gv, &lim, err,
                                  sizeof err);
        dspex_compiled_release(cs);
    } else {
        return dspex_raise_badarg(env, "local_grammar/3: spec must be {:json_schema, binary}, :json_object, "
                                       "{:chat, id, key} or {:json, id, key}");
    }
    if (g == NULL) return dspex_error(env, a->lo_grammar, err, -1);
    local_grammar *r = enif_alloc_resource(dspex_priv(env)->local_grammar_type, sizeof(local_grammar));
    if (r == NULL) {
        dspex_grammar_release(g);
        return enif_raise_exception(env, a->out_of_memory);
    }
    r->g = g;
    ERL_NIF_TERM t = enif_make_resource(env, r);
    enif_release_resource(r);
    return dspex_ok(env, t);
}

static ERL_NIF_TERM do_match(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *a = dspex_atoms(env);
    dspex_grammar *g = dspex_nif_grammar_get(env, argv[0]);
    ErlNifBinary text;
    if (g == NULL || !enif_inspect_binary(env, argv[1], &text))
        return dspex_raise_badarg(env, "local_grammar_match/2 expects a grammar and a binary");
    size_t at = 0;
    int r = dspex_grammar_match(g, (const char *)text.data, text.size, &at);
    if (r == 2) return a->gr_complete;
    if (r == 1) return a->gr_prefix;
    return enif_make_tuple2(env, a->gr_reject, enif_make_uint64(env, at));
}

ERL_NIF_TERM dspex_nif_local_grammar_match(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    ErlNifBinary text;
    dspex_work w = {0};
    if (enif_inspect_binary(env, argv[1], &text)) dspex_work_add(&w, text.size * COST_MATCH_BYTE);
    return dspex_run(env, &w, "local_grammar_match", do_match, argc, argv);
}

ERL_NIF_TERM dspex_nif_local_grammar_stats(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *a = dspex_atoms(env);
    dspex_grammar *g = dspex_nif_grammar_get(env, argv[0]);
    if (g == NULL) return dspex_raise_badarg(env, "local_grammar_stats/1 expects a grammar");
    dspex_grammar_stats st;
    dspex_grammar_get_stats(g, &st);
    ERL_NIF_TERM k[] = {a->gr_rules, a->gr_states, a->gr_classes, a->gr_max_depth, a->lo_bytes, a->gr_min_bytes,
                        a->gr_cache_entries, a->gr_cache_bytes, a->gr_walks, a->gr_walk_ns, a->gr_masks, a->gr_mask_ns};
    ERL_NIF_TERM v[] = {enif_make_int(env, st.rules),          enif_make_int(env, st.states),
                        enif_make_int(env, st.classes),        enif_make_int(env, st.max_depth),
                        enif_make_uint64(env, st.bytes),       enif_make_int(env, st.min_bytes),
                        enif_make_uint64(env, st.cache_entries), enif_make_uint64(env, st.cache_bytes),
                        enif_make_uint64(env, st.walks),       enif_make_uint64(env, st.walk_ns),
                        enif_make_uint64(env, st.masks),       enif_make_uint64(env, st.mask_ns)};
    ERL_NIF_TERM m;
    enif_make_map_from_arrays(env, k, v, sizeof k / sizeof k[0], &m);
    return m;
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* local_grammar_sample(grammar, max_tokens, seed): a random output of the grammar - each
 * step masks uniformly random logits and takes the best allowed token - with the time
 * spent in the masks. {text, tokens, ended, mask_ns}. Dirty CPU (max_tokens <= 100000). */
ERL_NIF_TERM dspex_nif_local_grammar_sample(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *a = dspex_atoms(env);
    dspex_grammar *g = dspex_nif_grammar_get(env, argv[0]);
    int max_tokens;
    ErlNifUInt64 seed;
    if (g == NULL || !enif_get_int(env, argv[1], &max_tokens) || max_tokens < 1 || max_tokens > 100000 ||
        !enif_get_uint64(env, argv[2], &seed))
        return dspex_raise_badarg(env, "local_grammar_sample/3 expects a grammar, max_tokens in 1..100000 and a seed");
    dspex_gvocab *gv = dspex_grammar_gvocab(g);
    int32_t n = dspex_gvocab_size(gv);
    float *logits = malloc((size_t)n * sizeof(float));
    int32_t *gen = malloc((size_t)max_tokens * sizeof(int32_t));
    dspex_matcher *m = dspex_matcher_new(g, max_tokens);
    dspex_buf text;
    dspex_buf_init(&text);
    if (!logits || !gen || !m) {
        free(logits), free(gen), dspex_matcher_free(m);
        return enif_raise_exception(env, a->out_of_memory);
    }
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1, mask_ns = 0;
    int k = 0, ended = 0;
    for (; k < max_tokens; k++) {
        for (int32_t t = 0; t < n; t++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            logits[t] = (float)(s >> 40) * (1.0f / 16777216.0f);
        }
        uint64_t t0 = now_ns();
        dspex_matcher_hook(m, logits, n, gen, (size_t)k);
        mask_ns += now_ns() - t0;
        int32_t best = -1;
        for (int32_t t = 0; t < n; t++)
            if (logits[t] != -INFINITY && (best < 0 || logits[t] > logits[best])) best = t;
        if (best < 0 || dspex_gvocab_is_eog(gv, best)) {
            ended = best >= 0;
            break;
        }
        size_t len;
        const char *p = dspex_gvocab_piece(gv, best, &len);
        dspex_buf_put(&text, p, len);
        gen[k] = best;
    }
    ERL_NIF_TERM out = text.oom ? enif_raise_exception(env, a->out_of_memory)
                                : enif_make_tuple4(env, dspex_make_binary(env, text.p ? text.p : "", text.len),
                                                   enif_make_int(env, k), ended ? a->true_ : a->false_,
                                                   enif_make_uint64(env, mask_ns));
    dspex_buf_free(&text);
    free(logits), free(gen);
    dspex_matcher_free(m);
    return out;
}
