/* Local GGUF inference bindings (c_src/core/infer). Two resource types:
 *   model: a loaded dspex_model, refcounted by the VM, shared by any processes, freed
 *          (threads joined, file unmapped) when the last reference is collected; it also
 *          owns the model's prefix cache (prefix_cache.h), its batch (batch.h: the
 *          generations decoded together, created on first use) and the pid of the
 *          process that drives the batch (DSPex.Local.Batcher);
 *   gen:   one generation (KV cache, sampler, text), holding a reference to its model.
 *          A generation in the batch is stepped only by local_batch_step; the batch does
 *          not keep it alive (no reference cycle): its destructor leaves the batch.
 * Everything that can take more than ~1 ms runs on a dirty CPU scheduler: load, inspect,
 * eval_logprobs, generation and batch steps always; tokenize, detokenize and chat
 * rendering by the one rule (nif_sched.c) on their input's size. A generation advances
 * in slices of about budget_ms per call (the Elixir side loops, streams and stops when
 * its caller dies or cancels), so no scheduler is held for long. The resource types live
 * in the NIF's private data (slots below). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dspex/infer/batch.h"
#include "dspex/infer/chat.h"
#include "dspex/infer/embed.h"
#include "dspex/infer/generate.h"
#include "nif_local.h"

#define COST_TOKENIZE_BYTE 400u /* work units (ns) per text byte: ~0.4 us measured (BPE, 49k vocab) */
#define COST_DETOKENIZE_ID 130u /* per token id: ~0.13 us */
#define MAX_PATH_BYTES 4096
#define MAX_TOP 1000          /* eval_logprobs top-k bound */
#define ERRLEN 256

typedef struct local_gen local_gen;

struct local_model {
    dspex_model *m;     /* owned */
    dspex_gvocab *gv;   /* token index for grammars (owned, built on first use) */
    ErlNifMutex *gv_mu; /* guards gv's construction */
    dspex_prefix_cache *pc; /* shared-prefix KV reuse (owned; capacity 0 = off) */
    ErlNifMutex *batch_mu;  /* guards the batch and its members (held during a step) */
    dspex_batch *batch;     /* generations decoded together (owned, created on first join) */
    local_gen **members;    /* [max_seqs] the batch's generations (not referenced) */
    int32_t max_seqs, batch_tokens;
    ErlNifMutex *info_mu;   /* guards the fields below (never held long) */
    ErlNifPid driver;       /* the process that steps the batch */
    int has_driver;
    dspex_batch_stats bstats; /* a copy of the batch's counters after its last step */
    int32_t active;         /* members after the last step */
};

struct local_gen {
    dspex_gen *g;          /* owned */
    local_model *model;    /* kept alive while the generation exists */
    ErlNifMutex *mu;       /* one step at a time */
    size_t reported;       /* generated tokens already returned */
    dspex_matcher *matcher; /* grammar-constrained decoding (owned), or NULL */
    int in_batch;          /* a member of model->batch (guarded by model->batch_mu) */
    long id;               /* the caller's id for it in the batch */
};

static void model_dtor(ErlNifEnv *env, void *obj) {
    (void)env;
    local_model *lm = obj;
    dspex_batch_free(lm->batch); /* empty: every member held a reference to the model */
    free(lm->members);
    dspex_prefix_cache_free(lm->pc);
    dspex_model_free(lm->m);
    lm->m = NULL;
    dspex_gvocab_release(lm->gv);
    if (lm->gv_mu) enif_mutex_destroy(lm->gv_mu);
    if (lm->batch_mu) enif_mutex_destroy(lm->batch_mu);
    if (lm->info_mu) enif_mutex_destroy(lm->info_mu);
}

/* Takes lg out of its model's batch; call with batch_mu held. */
static void batch_drop(local_model *lm, local_gen *lg) {
    if (!lg->in_batch) return;
    dspex_batch_remove(lm->batch, lg->g);
    for (int32_t i = 0; i < lm->max_seqs; i++)
        if (lm->members[i] == lg) lm->members[i] = NULL;
    lg->in_batch = 0;
}

static void gen_dtor(ErlNifEnv *env, void *obj) {
    (void)env;
    local_gen *lg = obj;
    if (lg->model && lg->model->batch_mu) {
        enif_mutex_lock(lg->model->batch_mu);
        batch_drop(lg->model, lg);
        enif_mutex_unlock(lg->model->batch_mu);
    }
    dspex_gen_free(lg->g);
    dspex_matcher_free(lg->matcher); /* after the generation that calls it */
    if (lg->mu) enif_mutex_destroy(lg->mu);
    if (lg->model) enif_release_resource(lg->model);
}

int dspex_nif_local_init(ErlNifEnv *env, DspexNifPriv *priv) {
    ErlNifResourceFlags fl = ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER;
    priv->local_model_type = enif_open_resource_type(env, NULL, "dspex_local_model", model_dtor, fl, NULL);
    priv->local_gen_type = enif_open_resource_type(env, NULL, "dspex_local_gen", gen_dtor, fl, NULL);
    return priv->local_model_type && priv->local_gen_type ? dspex_nif_grammar_init(env, priv) : -1;
}

/* ------------------------------------------------------------------ helpers */

static ERL_NIF_TERM err_term(ErlNifEnv *env, ERL_NIF_TERM type, const char *msg) { return dspex_error(env, type, msg, -1); }

static local_model *get_model(ErlNifEnv *env, ERL_NIF_TERM t) {
    local_model *lm;
    if (!enif_get_resource(env, t, dspex_priv(env)->local_model_type, (void **)&lm) || lm->m == NULL) return NULL;
    return lm;
}

local_model *dspex_nif_local_model(ErlNifEnv *env, ERL_NIF_TERM t) { return get_model(env, t); }

dspex_gvocab *dspex_nif_local_gvocab(local_model *lm, char *err, size_t errlen) {
    enif_mutex_lock(lm->gv_mu);
    if (lm->gv == NULL) lm->gv = dspex_gvocab_new(&lm->m->vocab, err, errlen);
    dspex_gvocab *gv = lm->gv;
    enif_mutex_unlock(lm->gv_mu);
    return gv;
}

static ERL_NIF_TERM bin(ErlNifEnv *env, const char *p, size_t n) { return dspex_make_binary(env, p, n); }
static ERL_NIF_TERM cstr(ErlNifEnv *env, const char *s) { return bin(env, s, strlen(s)); }
static ERL_NIF_TERM dstr(ErlNifEnv *env, dspex_str s) { return bin(env, s.p, s.n); }

/* A NUL-terminated copy of a binary path, or NULL (embedded NUL, too long). */
static char *path_arg(ErlNifEnv *env, ERL_NIF_TERM t) {
    ErlNifBinary b;
    if (!enif_inspect_binary(env, t, &b) || b.size == 0 || b.size > MAX_PATH_BYTES || memchr(b.data, 0, b.size)) return NULL;
    char *p = malloc(b.size + 1);
    if (p == NULL) return NULL;
    memcpy(p, b.data, b.size);
    p[b.size] = 0;
    return p;
}

/* Token ids from a proper list of integers; returns count or -1. */
static long ids_arg(ErlNifEnv *env, ERL_NIF_TERM list, int32_t **out) {
    unsigned n;
    if (!enif_get_list_length(env, list, &n)) return -1;
    int32_t *ids = malloc((n ? n : 1) * sizeof(int32_t));
    if (ids == NULL) return -1;
    ERL_NIF_TERM h, t = list;
    for (unsigned i = 0; i < n; i++) {
        int v;
        if (!enif_get_list_cell(env, t, &h, &t) || !enif_get_int(env, h, &v)) {
            free(ids);
            return -1;
        }
        ids[i] = v;
    }
    *out = ids;
    return (long)n;
}

static ERL_NIF_TERM id_list(ErlNifEnv *env, const int32_t *ids, size_t n) {
    ERL_NIF_TERM l = enif_make_list(env, 0);
    for (size_t i = n; i > 0; i--) l = enif_make_list_cell(env, enif_make_int(env, ids[i - 1]), l);
    return l;
}

static int map_num(ErlNifEnv *env, ERL_NIF_TERM map, ERL_NIF_TERM key, double *out) {
    ERL_NIF_TERM v;
    if (!enif_get_map_value(env, map, key, &v)) return 0;
    long l;
    if (enif_get_double(env, v, out)) return 1;
    if (enif_get_long(env, v, &l)) {
        *out = (double)l;
        return 1;
    }
    return -1;
}

static int map_bool(ErlNifEnv *env, ERL_NIF_TERM map, ERL_NIF_TERM key, int *out) {
    ERL_NIF_TERM v;
    if (!enif_get_map_value(env, map, key, &v)) return 0;
    const DspexAtoms *a = dspex_atoms(env);
    if (enif_is_identical(v, a->true_)) *out = 1;
    else if (enif_is_identical(v, a->false_)) *out = 0;
    else return -1;
    return 1;
}

/* ------------------------------------------------------------------ load / info */

ERL_NIF_TERM dspex_nif_local_load(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *a = dspex_atoms(env);
    char *path = path_arg(env, argv[0]);
    if (path == NULL) return dspex_raise_badarg(env, "local_load/2: path must be a non-empty binary without NUL bytes");
    if (!enif_is_map(env, argv[1])) {
        free(path);
        return dspex_raise_badarg(env, "local_load/2: options must be a map");
    }
    double threads = 1, prefix = 0, max_seqs = 8, batch_tokens = 128;
    int simd = 1;
    if (map_num(env, argv[1], a->lo_threads, &threads) < 0 || map_bool(env, argv[1], a->lo_simd, &simd) < 0 ||
        threads < 1 || threads > DSPEX_POOL_MAX_THREADS) {
        free(path);
        return dspex_raise_badarg(env, "local_load/2: threads must be an integer in 1..256 and simd a boolean");
    }
    if (map_num(env, argv[1], enif_make_atom(env, "prefix_cache"), &prefix) < 0 ||
        map_num(env, argv[1], enif_make_atom(env, "max_seqs"), &max_seqs) < 0 ||
        map_num(env, argv[1], enif_make_atom(env, "batch_tokens"), &batch_tokens) < 0 || !(prefix >= 0) ||
        prefix > 1e15 || max_seqs < 1 || max_seqs > DSPEX_BATCH_MAX_SEQS || batch_tokens < max_seqs ||
        batch_tokens > 512) {
        free(path);
        return dspex_raise_badarg(env, "local_load/2: prefix_cache must be bytes >= 0, max_seqs in 1..256 and "
                                       "batch_tokens in max_seqs..512");
    }
    dspex_model_params mp = {(int)threads, simd};
    char err[ERRLEN];
    dspex_model *m = dspex_model_load(path, &mp, err, sizeof(err));
    free(path);
    if (m == NULL) return err_term(env, a->lo_model_load, err);
    local_model *lm = enif_alloc_resource(dspex_priv(env)->local_model_type, sizeof(local_model));
    if (lm == NULL) {
        dspex_model_free(m);
        return err_term(env, a->lo_model_load, "out of memory");
    }
    memset(lm, 0, sizeof(*lm));
    lm->m = m;
    lm->gv_mu = enif_mutex_create("dspex_local_gvocab");
    lm->batch_mu = enif_mutex_create("dspex_local_batch");
    lm->info_mu = enif_mutex_create("dspex_local_info");
    lm->max_seqs = (int32_t)max_seqs;
    lm->batch_tokens = (int32_t)batch_tokens;
    lm->members = calloc((size_t)lm->max_seqs, sizeof(local_gen *));
    lm->pc = m->vocab_only ? NULL : dspex_prefix_cache_new(m, (size_t)prefix);
    ERL_NIF_TERM t = enif_make_resource(env, lm);
    enif_release_resource(lm);
    if (lm->gv_mu == NULL || lm->batch_mu == NULL || lm->info_mu == NULL || lm->members == NULL || (!m->vocab_only && lm->pc == NULL))
        return enif_raise_exception(env, a->out_of_memory);
    return dspex_ok(env, t);
}

static ERL_NIF_TERM chat_family_term(ErlNifEnv *env, const dspex_model *m) {
    if (m->chat_template.n == 0) return dspex_atoms(env)->nil;
    char other[32];
    int f = dspex_chat_detect(m->chat_template.p, m->chat_template.n, other);
    if (f >= 0) return cstr(env, dspex_chat_families[f]);
    return dspex_atoms(env)->nil;
}

static ERL_NIF_TERM tensor_types(ErlNifEnv *env, const dspex_gguf *g) {
    size_t counts[DSPEX_T_COUNT] = {0};
    for (size_t i = 0; i < dspex_gguf_n_tensors(g); i++) {
        int t = dspex_gguf_tensor_at(g, i)->type;
        if (t >= 0 && t < DSPEX_T_COUNT) counts[t]++;
    }
    ERL_NIF_TERM map = enif_make_new_map(env);
    char tb[16];
    for (int t = 0; t < DSPEX_T_COUNT; t++)
        if (counts[t]) enif_make_map_put(env, map, cstr(env, dspex_ggml_type_name(t, tb)), enif_make_uint64(env, counts[t]), &map);
    return map;
}

static ERL_NIF_TERM model_info(ErlNifEnv *env, const dspex_model *m) {
    const DspexAtoms *a = dspex_atoms(env);
    const dspex_hparams *hp = &m->hp;
    const dspex_vocab *v = &m->vocab;
    dspex_str name = {"", 0};
    char err[ERRLEN];
    dspex_gguf_get_str(m->gguf, "general.name", &name, err, sizeof(err));
    ERL_NIF_TERM eog = enif_make_list(env, 0);
    for (int32_t i = v->n_tokens; i > 0; i--)
        if (v->eog && v->eog[i - 1]) eog = enif_make_list_cell(env, enif_make_int(env, i - 1), eog);
    ERL_NIF_TERM tok = v->type == DSPEX_VOCAB_SPM ? a->lo_spm : v->type == DSPEX_VOCAB_BPE ? a->lo_bpe : a->lo_none;
    ERL_NIF_TERM scaling = hp->rope_scaling == DSPEX_ROPE_SCALING_LINEAR ? a->lo_linear
                           : hp->rope_scaling == DSPEX_ROPE_SCALING_YARN ? a->lo_yarn : a->lo_none;
#define ID(x) ((x) >= 0 ? enif_make_int(env, (x)) : a->nil)
    ERL_NIF_TERM keys[] = {a->lo_arch,      a->lo_name,       a->lo_n_ctx_train, a->lo_n_embd,   a->lo_n_layer,
                           a->lo_n_head,    a->lo_n_head_kv,  a->lo_head_dim,    a->lo_n_ff,     a->lo_n_vocab,
                           a->lo_rope_base, a->lo_rope_type,  a->lo_rope_scaling, a->lo_rms_eps, a->lo_tokenizer,
                           a->lo_pre,       a->lo_bos,        a->lo_eos,         a->lo_eot,      a->lo_eog,
                           a->lo_add_bos,   a->lo_add_eos,    a->lo_chat_template, a->lo_chat_family, a->lo_tensor_types,
                           a->lo_file_size, a->lo_kernels,    a->lo_threads,     a->lo_vocab_only, a->lo_tied};
    ERL_NIF_TERM vals[] = {cstr(env, hp->arch),
                           dstr(env, name),
                           enif_make_int(env, hp->n_ctx_train),
                           enif_make_int(env, hp->n_embd),
                           enif_make_int(env, hp->n_layer),
                           enif_make_int(env, hp->n_head),
                           enif_make_int(env, hp->n_head_kv),
                           enif_make_int(env, hp->head_dim),
                           enif_make_int(env, hp->n_ff),
                           enif_make_int(env, hp->n_vocab),
                           enif_make_double(env, hp->rope_base),
                           hp->rope_neox ? a->lo_neox : a->lo_norm,
                           scaling,
                           enif_make_double(env, hp->rms_eps),
                           tok,
                           cstr(env, v->pre_name),
                           ID(v->bos),
                           ID(v->eos),
                           ID(v->eot),
                           eog,
                           v->add_bos ? a->true_ : a->false_,
                           v->add_eos ? a->true_ : a->false_,
                           m->chat_template.n ? dstr(env, m->chat_template) : a->nil,
                           chat_family_term(env, m),
                           tensor_types(env, m->gguf),
                           enif_make_uint64(env, dspex_gguf_file_size(m->gguf)),
                           cstr(env, m->kern.isa),
                           enif_make_int(env, m->pool ? dspex_pool_threads(m->pool) : 0),
                           m->vocab_only ? a->true_ : a->false_,
                           m->tied ? a->true_ : a->false_};
#undef ID
    ERL_NIF_TERM map;
    enif_make_map_from_arrays(env, keys, vals, sizeof(keys) / sizeof(keys[0]), &map);
    return map;
}

ERL_NIF_TERM dspex_nif_local_info(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    local_model *lm = get_model(env, argv[0]);
    if (lm == NULL) return dspex_raise_badarg(env, "local_info/1 expects a model");
    return model_info(env, lm->m);
}

/* A metadata value as a term: numbers, booleans, binaries; arrays as {:array, type, n}
 * (their contents can be 150k strings; mix dspex.model.info shows sizes). */
static ERL_NIF_TERM kv_value(ErlNifEnv *env, const dspex_gguf_kv *kv) {
    const DspexAtoms *a = dspex_atoms(env);
    switch (kv->type) {
    case DSPEX_GGUF_U8:
    case DSPEX_GGUF_U16:
    case DSPEX_GGUF_U32:
    case DSPEX_GGUF_U64: return enif_make_uint64(env, kv->v.u);
    case DSPEX_GGUF_I8:
    case DSPEX_GGUF_I16:
    case DSPEX_GGUF_I32:
    case DSPEX_GGUF_I64: return enif_make_int64(env, kv->v.i);
    case DSPEX_GGUF_F32:
    case DSPEX_GGUF_F64: return isfinite(kv->v.f) ? enif_make_double(env, kv->v.f) : a->nil;
    case DSPEX_GGUF_BOOL: return kv->v.u ? a->true_ : a->false_;
    case DSPEX_GGUF_STRING: return dstr(env, kv->v.s);
    default:
        return enif_make_tuple3(env, a->lo_array, cstr(env, dspex_gguf_vtype_name(kv->arr_type)),
                                enif_make_uint64(env, kv->arr_n));
    }
}

ERL_NIF_TERM dspex_nif_local_inspect(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *a = dspex_atoms(env);
    char *path = path_arg(env, argv[0]);
    if (path == NULL) return dspex_raise_badarg(env, "local_inspect/1: path must be a non-empty binary without NUL bytes");
    char err[ERRLEN];
    dspex_gguf *g = dspex_gguf_open(path, err, sizeof(err));
    if (g == NULL) {
        free(path);
        return err_term(env, a->lo_model_load, err);
    }
    ERL_NIF_TERM meta = enif_make_list(env, 0);
    for (size_t i = dspex_gguf_n_kv(g); i > 0; i--) {
        const dspex_gguf_kv *kv = dspex_gguf_kv_at(g, i - 1);
        meta = enif_make_list_cell(env, enif_make_tuple2(env, dstr(env, kv->key), kv_value(env, kv)), meta);
    }
    ERL_NIF_TERM tens = enif_make_list(env, 0);
    char tb[16];
    for (size_t i = dspex_gguf_n_tensors(g); i > 0; i--) {
        const dspex_gguf_tensor *t = dspex_gguf_tensor_at(g, i - 1);
        ERL_NIF_TERM shape = enif_make_list(env, 0);
        for (int d = t->n_dims; d > 0; d--) shape = enif_make_list_cell(env, enif_make_int64(env, t->ne[d - 1]), shape);
        ERL_NIF_TERM k[4] = {a->lo_name, a->lo_shape, a->lo_type, a->lo_bytes};
        ERL_NIF_TERM v[4] = {dstr(env, t->name), shape, cstr(env, dspex_ggml_type_name(t->type, tb)),
                             enif_make_uint64(env, t->nbytes)};
        ERL_NIF_TERM m;
        enif_make_map_from_arrays(env, k, v, 4, &m);
        tens = enif_make_list_cell(env, m, tens);
    }
    ERL_NIF_TERM k[6] = {a->lo_gguf_version, a->lo_file_size, a->lo_metadata, a->lo_tensors, a->lo_supported, a->lo_reason};
    ERL_NIF_TERM v[6] = {enif_make_uint(env, dspex_gguf_version(g)), enif_make_uint64(env, dspex_gguf_file_size(g)), meta,
                         tens, a->false_, a->nil};
    ERL_NIF_TERM out;
    enif_make_map_from_arrays(env, k, v, 6, &out);
    /* supported? = does the engine load it (the GGUF is parsed again, on its own mapping) */
    dspex_gguf_free(g);
    dspex_model_params mp = {1, 1};
    dspex_model *m = dspex_model_load(path, &mp, err, sizeof(err));
    free(path);
    if (m) {
        enif_make_map_update(env, out, a->lo_supported, a->true_, &out);
        enif_make_map_put(env, out, enif_make_atom(env, "info"), model_info(env, m), &out);
        dspex_model_free(m);
    } else {
        enif_make_map_update(env, out, a->lo_reason, cstr(env, err), &out);
    }
    return dspex_ok(env, out);
}

/* ------------------------------------------------------------------ tokens */

static ERL_NIF_TERM do_tokenize(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *a = dspex_atoms(env);
    local_model *lm = get_model(env, argv[0]);
    ErlNifBinary text;
    if (lm == NULL || !enif_inspect_binary(env, argv[1], &text))
        return dspex_raise_badarg(env, "local_tokenize/4 expects a model and a binary");
    int add = enif_is_identical(argv[2], a->true_), parse = enif_is_identical(argv[3], a->true_);
    if (lm->m->vocab.type == DSPEX_VOCAB_NONE) return err_term(env, a->lo_inference, "the model has no vocabulary");
    dspex_buf out;
    dspex_buf_init(&out);
    if (dspex_tokenize(&lm->m->vocab, (const char *)text.data, text.size, add, parse, &out) != 0) {
        dspex_buf_free(&out);
        return enif_raise_exception(env, a->out_of_memory);
    }
    ERL_NIF_TERM l = id_list(env, (const int32_t *)out.p, out.len / 4);
    dspex_buf_free(&out);
    return dspex_ok(env, l);
}

ERL_NIF_TERM dspex_nif_local_tokenize(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    ErlNifBinary text;
    dspex_work w = {0};
    if (enif_inspect_binary(env, argv[1], &text)) dspex_work_add(&w, text.size * COST_TOKENIZE_BYTE);
    return dspex_run(env, &w, "local_tokenize", do_tokenize, argc, argv);
}

static ERL_NIF_TERM do_detokenize(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *a = dspex_atoms(env);
    local_model *lm = get_model(env, argv[0]);
    int32_t *ids = NULL;
    long n = lm ? ids_arg(env, argv[1], &ids) : -1;
    if (n < 0) return dspex_raise_badarg(env, "local_detokenize/3 expects a model and a list of integer token ids");
    const dspex_vocab *v = &lm->m->vocab;
    for (long i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= v->n_tokens) {
            free(ids);
            char msg[128];
            snprintf(msg, sizeof(msg), "token id at index %ld is outside the vocabulary (0..%d)", i, v->n_tokens - 1);
            return dspex_raise_badarg(env, msg);
        }
    dspex_buf out;
    dspex_buf_init(&out);
    int rc = dspex_detokenize(v, ids, (size_t)n, 0, enif_is_identical(argv[2], a->true_), &out);
    free(ids);
    if (rc != 0 || out.oom) {
        dspex_buf_free(&out);
        return enif_raise_exception(env, a->out_of_memory);
    }
    ERL_NIF_TERM b = bin(env, out.p ? out.p : "", out.len);
    dspex_buf_free(&out);
    return b;
}

ERL_NIF_TERM dspex_nif_local_detokenize(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    unsigned n;
    dspex_work w = {0};
    if (enif_get_list_length(env, argv[1], &n)) dspex_work_add(&w, (size_t)n * COST_DETOKENIZE_ID);
    return dspex_run(env, &w, "local_detokenize", do_detokenize, argc, argv);
}

/* ------------------------------------------------------------------ chat templates */

static void families_text(char *buf, size_t n, const char *lead) {
    size_t o = (size_t)snprintf(buf, n, "%s", lead);
    for (int i = 0; dspex_chat_families[i] && o + 24 < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? ", " : "", dspex_chat_families[i]);
}

static ERL_NIF_TERM do_chat_render(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *a = dspex_atoms(env);
    local_model *lm = get_model(env, argv[0]);
    unsigned n;
    if (lm == NULL || !enif_get_list_length(env, argv[1], &n))
        return dspex_raise_badarg(env, "local_chat_render/4 expects a model and a list of {role, content} binaries");
    char msg[700];
    int family;
    ErlNifBinary name;
    if (enif_inspect_binary(env, argv[2], &name)) {
        char nm[48];
        size_t k = name.size < sizeof(nm) - 1 ? name.size : sizeof(nm) - 1;
        memcpy(nm, name.data, k);
        nm[k] = 0;
        family = name.size < sizeof(nm) ? dspex_chat_family(nm) : -1;
        if (family < 0) {
            families_text(msg, sizeof(msg), "unknown chat_template name; valid names: ");
            return err_term(env, a->lo_chat_template, msg);
        }
    } else {
        const dspex_model *m = lm->m;
        if (m->chat_template.n == 0) {
            families_text(msg, sizeof(msg),
                          "the model has no tokenizer.chat_template; pass chat_template: with one of ");
            return err_term(env, a->lo_chat_template, msg);
        }
        char other[32];
        family = dspex_chat_detect(m->chat_template.p, m->chat_template.n, other);
        if (family == -2) {
            snprintf(msg, sizeof(msg), "the model's chat template is llama.cpp's '%s' family, which this engine does not "
                     "render; pass chat_template: with a supported family", other);
            return err_term(env, a->lo_chat_template, msg);
        }
        if (family < 0) {
            families_text(msg, sizeof(msg),
                          "the model's tokenizer.chat_template matches no known family; pass chat_template: with one of ");
            return err_term(env, a->lo_chat_template, msg);
        }
    }
    dspex_chat_msg *msgs = calloc(n ? n : 1, sizeof(dspex_chat_msg));
    char **copies = calloc(2 * (n ? n : 1), sizeof(char *));
    ERL_NIF_TERM h, t = argv[1], result = 0;
    int bad = msgs == NULL || copies == NULL;
    for (unsigned i = 0; i < n && !bad; i++) {
        const ERL_NIF_TERM *tup;
        int arity;
        ErlNifBinary r, c;
        if (!enif_get_list_cell(env, t, &h, &t) || !enif_get_tuple(env, h, &arity, &tup) || arity != 2 ||
            !enif_inspect_binary(env, tup[0], &r) || !enif_inspect_binary(env, tup[1], &c) ||
            memchr(r.data, 0, r.size) || memchr(c.data, 0, c.size)) {
            bad = 1;
            break;
        }
        copies[2 * i] = malloc(r.size + 1);
        copies[2 * i + 1] = malloc(c.size + 1);
        if (!copies[2 * i] || !copies[2 * i + 1]) {
            bad = 2;
            break;
        }
        memcpy(copies[2 * i], r.data, r.size);
        copies[2 * i][r.size] = 0;
        memcpy(copies[2 * i + 1], c.data, c.size);
        copies[2 * i + 1][c.size] = 0;
        msgs[i] = (dspex_chat_msg){copies[2 * i], copies[2 * i + 1]};
    }
    if (!bad) {
        dspex_buf out;
        dspex_buf_init(&out);
        if (dspex_chat_render(family, msgs, n, enif_is_identical(argv[3], a->true_), &out) == 0)
            result = dspex_ok(env, enif_make_tuple2(env, bin(env, out.p ? out.p : "", out.len),
                                                    cstr(env, dspex_chat_families[family])));
        else
            bad = 2;
        dspex_buf_free(&out);
    }
    if (copies)
        for (unsigned i = 0; i < 2 * n; i++) free(copies[i]);
    free(copies);
    free(msgs);
    if (bad == 1) return dspex_raise_badarg(env, "local_chat_render/4: messages must be {role, content} binaries without NUL");
    if (bad) return enif_raise_exception(env, a->out_of_memory);
    return result;
}

ERL_NIF_TERM dspex_nif_local_chat_render(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    /* the messages are converted and copied once into the rendered text */
    dspex_work w = {0};
    dspex_work_term(env, &w, argv[1], DSPEX_COST_COPY_BYTE);
    return dspex_run(env, &w, "local_chat_render", do_chat_render, argc, argv);
}

/* ------------------------------------------------------------------ eval_logprobs */

typedef struct {
    ErlNifEnv *env;       /* where the row terms are built */
    int32_t n_vocab, top; /* vocabulary size, entries per row */
    const int32_t *ids; /* the evaluated sequence */
    long n;             /* its length */
    ERL_NIF_TERM *rows; /* per position: {pos, [{id, logprob}], next_logprob | nil} */
    int32_t *best;      /* scratch: top ids */
} lp_ctx;

static void lp_row(void *ud, int32_t i, const float *lg) {
    lp_ctx *c = ud;
    double mx = -INFINITY, s = 0.0;
    for (int32_t k = 0; k < c->n_vocab; k++) mx = lg[k] > mx ? lg[k] : mx;
    for (int32_t k = 0; k < c->n_vocab; k++) s += exp((double)lg[k] - mx);
    double lse = mx + log(s);
    int32_t n = 0; /* insertion into a descending top list (ties: lower id first) */
    for (int32_t k = 0; k < c->n_vocab; k++) {
        if (n == c->top && !(lg[k] > lg[c->best[n - 1]])) continue;
        int32_t j = n < c->top ? n++ : n - 1;
        while (j > 0 && lg[k] > lg[c->best[j - 1]]) {
            c->best[j] = c->best[j - 1];
            j--;
        }
        c->best[j] = k;
    }
    ERL_NIF_TERM l = enif_make_list(c->env, 0);
    for (int32_t j = n; j > 0; j--) {
        int32_t id = c->best[j - 1];
        l = enif_make_list_cell(c->env,
                                enif_make_tuple2(c->env, enif_make_int(c->env, id),
                                                 enif_make_double(c->env, (double)lg[id] - lse)),
                                l);
    }
    ERL_NIF_TERM next = i + 1 < c->n ? enif_make_double(c->env, (double)lg[c->ids[i + 1]] - lse)
                                      : dspex_atoms(c->env)->nil;
    c->rows[i] = enif_make_tuple3(c->env, enif_make_int(c->env, i), l, next);
}

ERL_NIF_TERM dspex_nif_local_eval_logprobs(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *a = dspex_atoms(env);
    local_model *lm = get_model(env, argv[0]);
    int top, n_ctx;
    int32_t *ids = NULL;
    long n = lm ? ids_arg(env, argv[1], &ids) : -1;
    if (n < 0 || !enif_get_int(env, argv[2], &top) || !enif_get_int(env, argv[3], &n_ctx) || top < 1 || top > MAX_TOP) {
        free(ids);
        return dspex_raise_badarg(env, "local_eval_logprobs/4 expects a model, token ids, top in 1..1000 and n_ctx");
    }
    if (n == 0) {
        free(ids);
        return dspex_ok(env, enif_make_list(env, 0));
    }
    char err[ERRLEN];
    const dspex_model *m = lm->m;
    if (n > n_ctx) {
        free(ids);
        snprintf(err, sizeof(err), "%ld tokens do not fit in n_ctx %d (no context shift)", n, n_ctx);
        return err_term(env, a->lo_context_window, err);
    }
    dspex_ctx *c = dspex_ctx_new(m, (int32_t)n, 0, err, sizeof(err));
    if (c == NULL) {
        free(ids);
        return err_term(env, a->lo_inference, err);
    }
    if (top > m->hp.n_vocab) top = m->hp.n_vocab;
    lp_ctx lc = {env, m->hp.n_vocab, top, ids, n, malloc((size_t)n * sizeof(ERL_NIF_TERM)),
                 malloc((size_t)top * sizeof(int32_t))};
    ERL_NIF_TERM res;
    if (lc.rows == NULL || lc.best == NULL) {
        res = enif_raise_exception(env, a->out_of_memory);
    } else if (dspex_ctx_eval(c, ids, (int32_t)n, DSPEX_LOGITS_ALL, lp_row, &lc, err, sizeof(err)) != 0) {
        res = err_term(env, strstr(err, "context") ? a->lo_context_window : a->lo_inference, err);
    } else {
        res = dspex_ok(env, enif_make_list_from_array(env, lc.rows, (unsigned)n));
    }
    free(lc.rows);
    free(lc.best);
    free(ids);
    dspex_ctx_free(c);
    return res;
}

/* ------------------------------------------------------------------ generation */

ERL_NIF_TERM dspex_nif_local_gen_new(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *a = dspex_atoms(env);
    local_model *lm = get_model(env, argv[0]);
    int32_t *ids = NULL;
    long n = lm ? ids_arg(env, argv[1], &ids) : -1;
    if (n < 0 || !enif_is_map(env, argv[2])) {
        free(ids);
        return dspex_raise_badarg(env, "local_gen_new/3 expects a model, token ids and a parameter map");
    }
    ERL_NIF_TERM p = argv[2];
    double temp = 0.8, top_k = 40, top_p = 0.95, min_p = 0.05, rep = 1.0, rep_n = 64, freq = 0, pres = 0, seed = 0,
           max_tokens = 256, n_ctx = 2048;
    int ignore = 0, batched = 0;
    struct {
        ERL_NIF_TERM key;
        double *v;
    } nums[] = {{a->lo_temperature, &temp}, {a->lo_top_k, &top_k},         {a->lo_top_p, &top_p},
                {a->lo_min_p, &min_p},      {a->lo_repeat_penalty, &rep},   {a->lo_repeat_last_n, &rep_n},
                {a->lo_frequency_penalty, &freq}, {a->lo_presence_penalty, &pres}, {a->lo_seed, &seed},
                {a->lo_max_tokens, &max_tokens}, {a->lo_n_ctx, &n_ctx}};
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
        if (map_num(env, p, nums[i].key, nums[i].v) < 0 || !isfinite(*nums[i].v)) {
            free(ids);
            return dspex_raise_badarg(env, "local_gen_new/3: sampling parameters must be numbers");
        }
    if (map_bool(env, p, a->lo_ignore_eos, &ignore) < 0 || map_bool(env, p, enif_make_atom(env, "batched"), &batched) < 0 ||
        max_tokens < 1 || max_tokens > 1e9 || n_ctx < 1 ||
        n_ctx > DSPEX_CTX_MAX || top_k > 1e9 || rep_n > 1e9 || rep_n < -1 || seed < 0) {
        free(ids);
        return dspex_raise_badarg(env, "local_gen_new/3: max_tokens, n_ctx, top_k, repeat_last_n or seed out of range");
    }
    /* grammar-constrained decoding: a matcher per generation, budget = the tokens it may
     * still generate */
    ERL_NIF_TERM gt;
    dspex_matcher *matcher = NULL;
    if (enif_get_map_value(env, p, a->lo_grammar, &gt) && !enif_is_identical(gt, a->nil)) {
        dspex_grammar *gr = dspex_nif_grammar_get(env, gt);
        if (gr == NULL || ignore) {
            free(ids);
            return dspex_raise_badarg(env, "local_gen_new/3: grammar must be a compiled grammar (and ignore_eos false)");
        }
        int64_t budget = (int64_t)n_ctx - n < (int64_t)max_tokens ? (int64_t)n_ctx - n : (int64_t)max_tokens;
        matcher = dspex_matcher_new(gr, budget > 0 ? budget : 1);
        if (matcher == NULL) {
            free(ids);
            return enif_raise_exception(env, a->out_of_memory);
        }
    }
    /* stop strings: a list of binaries */
    ERL_NIF_TERM stops_t;
    char *stops[DSPEX_GEN_MAX_STOPS];
    size_t n_stops = 0;
    if (enif_get_map_value(env, p, a->lo_stop, &stops_t)) {
        ERL_NIF_TERM h, t = stops_t;
        while (enif_get_list_cell(env, t, &h, &t)) {
            ErlNifBinary s;
            if (n_stops == DSPEX_GEN_MAX_STOPS || !enif_inspect_binary(env, h, &s) || s.size == 0 ||
                s.size > DSPEX_GEN_MAX_STOP_LEN || memchr(s.data, 0, s.size)) {
                for (size_t i = 0; i < n_stops; i++) free(stops[i]);
                free(ids);
                dspex_matcher_free(matcher);
                return dspex_raise_badarg(env, "local_gen_new/3: stop must be at most 16 binaries of 1..256 bytes");
            }
            stops[n_stops] = malloc(s.size + 1);
            if (stops[n_stops] == NULL) break;
            memcpy(stops[n_stops], s.data, s.size);
            stops[n_stops++][s.size] = 0;
        }
    }
    dspex_gen_params gp = {{(float)temp, (int32_t)top_k, (float)top_p, (float)min_p, (float)rep, (int32_t)rep_n,
                            (float)freq, (float)pres, (uint64_t)seed},
                           (int32_t)max_tokens, ignore, (const char *const *)stops, n_stops,
                           matcher ? dspex_matcher_hook : NULL, matcher, lm->pc, batched ? 1 : 0};
    char err[ERRLEN];
    dspex_gen *g = dspex_gen_new(lm->m, ids, (size_t)n, (int32_t)n_ctx, &gp, err, sizeof(err));
    for (size_t i = 0; i < n_stops; i++) free(stops[i]);
    free(ids);
    if (g == NULL) {
        dspex_matcher_free(matcher);
        return err_term(env, strstr(err, "fit") ? a->lo_context_window : a->lo_inference, err);
    }
    local_gen *lg = enif_alloc_resource(dspex_priv(env)->local_gen_type, sizeof(local_gen));
    if (lg == NULL) {
        dspex_gen_free(g);
        dspex_matcher_free(matcher);
        return enif_raise_exception(env, a->out_of_memory);
    }
    memset(lg, 0, sizeof(*lg));
    lg->g = g;
    lg->matcher = matcher;
    lg->mu = enif_mutex_create("dspex_local_gen");
    lg->model = lm;
    enif_keep_resource(lm);
    ERL_NIF_TERM t = enif_make_resource(env, lg);
    enif_release_resource(lg);
    if (lg->mu == NULL) return enif_raise_exception(env, a->out_of_memory);
    return dspex_ok(env, t);
}

/* {status, new token ids, new final text} of a generation since the last report. */
static ERL_NIF_TERM gen_delta(ErlNifEnv *env, local_gen *lg) {
    const DspexAtoms *a = dspex_atoms(env);
    size_t nt, k;
    const int32_t *toks = dspex_gen_tokens(lg->g, &nt);
    ERL_NIF_TERM ids = id_list(env, toks + lg->reported, nt - lg->reported);
    lg->reported = nt;
    const char *txt = dspex_gen_take_text(lg->g, &k);
    ERL_NIF_TERM status;
    switch (lg->g->finish) {
    case DSPEX_FINISH_NONE: status = a->lo_running; break;
    case DSPEX_FINISH_LENGTH: status = enif_make_tuple2(env, a->lo_done, a->lo_length); break;
    case DSPEX_FINISH_CONTEXT: status = enif_make_tuple2(env, a->lo_done, a->lo_context_full); break;
    default: status = enif_make_tuple2(env, a->lo_done, a->lo_stop); break;
    }
    return enif_make_tuple3(env, status, ids, bin(env, txt, k));
}

ERL_NIF_TERM dspex_nif_local_gen_step(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *a = dspex_atoms(env);
    local_gen *lg;
    double budget;
    long lb;
    if (!enif_get_resource(env, argv[0], dspex_priv(env)->local_gen_type, (void **)&lg))
        return dspex_raise_badarg(env, "local_gen_step/2 expects a generation");
    if (!enif_get_double(env, argv[1], &budget)) {
        if (!enif_get_long(env, argv[1], &lb)) return dspex_raise_badarg(env, "local_gen_step/2: budget_ms must be a number");
        budget = (double)lb;
    }
    if (enif_mutex_trylock(lg->mu) != 0) return err_term(env, a->lo_busy, "another process is stepping this generation");
    enif_mutex_lock(lg->model->batch_mu);
    int in_batch = lg->in_batch;
    enif_mutex_unlock(lg->model->batch_mu);
    if (in_batch) {
        enif_mutex_unlock(lg->mu);
        return err_term(env, a->lo_busy, "this generation is stepped by its model's batch");
    }
    char err[ERRLEN];
    ERL_NIF_TERM res;
    if (dspex_gen_step(lg->g, budget, err, sizeof(err)) != 0) {
        res = err_term(env, strstr(err, "context") ? a->lo_context_window : a->lo_inference, err);
    } else {
        res = gen_delta(env, lg);
    }
    enif_mutex_unlock(lg->mu);
    return res;
}

/* ------------------------------------------------------------------ batching */

static local_gen *get_gen(ErlNifEnv *env, ERL_NIF_TERM t) {
    local_gen *lg;
    return enif_get_resource(env, t, dspex_priv(env)->local_gen_type, (void **)&lg) ? lg : NULL;
}

/* local_driver(model): the pid stepping the model's batch, or nil. */
ERL_NIF_TERM dspex_nif_local_driver(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    local_model *lm = get_model(env, argv[0]);
    if (lm == NULL) return dspex_raise_badarg(env, "local_driver/1 expects a model");
    enif_mutex_lock(lm->info_mu);
    ERL_NIF_TERM r = lm->has_driver ? enif_make_pid(env, &lm->driver) : dspex_atoms(env)->nil;
    enif_mutex_unlock(lm->info_mu);
    return r;
}

/* local_driver_claim(model, expected, pid): sets the driver to pid (or nil) when the
 * current one is `expected` (a pid or nil); true when it did. */
ERL_NIF_TERM dspex_nif_local_driver_claim(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *a = dspex_atoms(env);
    local_model *lm = get_model(env, argv[0]);
    ErlNifPid want, next;
    int want_nil = enif_is_identical(argv[1], a->nil), next_nil = enif_is_identical(argv[2], a->nil);
    if (lm == NULL || (!want_nil && !enif_get_local_pid(env, argv[1], &want)) ||
        (!next_nil && !enif_get_local_pid(env, argv[2], &next)))
        return dspex_raise_badarg(env, "local_driver_claim/3 expects a model and two pids (or nil)");
    enif_mutex_lock(lm->info_mu);
    int same = want_nil ? !lm->has_driver
                        : lm->has_driver && enif_is_identical(enif_make_pid(env, &lm->driver), argv[1]);
    if (same) {
        lm->has_driver = !next_nil;
        if (!next_nil) lm->driver = next;
    }
    enif_mutex_unlock(lm->info_mu);
    return same ? a->true_ : a->false_;
}

/* local_batch_join(model, gen, id): the generation (made with batched: true) joins the
 * model's batch; :ok, or {:error, {:busy, message, nil}} when the batch is full. */
ERL_NIF_TERM dspex_nif_local_batch_join(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *a = dspex_atoms(env);
    local_model *lm = get_model(env, argv[0]);
    local_gen *lg = get_gen(env, argv[1]);
    long id;
    if (lm == NULL || lg == NULL || lg->model != lm || !enif_get_long(env, argv[2], &id))
        return dspex_raise_badarg(env, "local_batch_join/3 expects a model, one of its generations and an integer id");
    char err[ERRLEN];
    ERL_NIF_TERM res = a->ok;
    enif_mutex_lock(lm->batch_mu);
    if (lm->batch == NULL) lm->batch = dspex_batch_new(lm->m, lm->max_seqs, lm->batch_tokens, err, sizeof err);
    int32_t slot = -1;
    for (int32_t i = 0; lm->batch && i < lm->max_seqs && slot < 0; i++)
        if (lm->members[i] == NULL) slot = i;
    if (lm->batch == NULL) {
        res = err_term(env, a->lo_inference, err);
    } else if (lg->in_batch) {
        res = err_term(env, a->lo_busy, "the generation is already in the batch");
    } else if (slot < 0 || enif_mutex_trylock(lg->mu) != 0) {
        res = err_term(env, a->lo_busy, slot < 0 ? "the batch is full" : "the generation is being stepped");
    } else {
        if (dspex_batch_add(lm->batch, lg->g) == 0) {
            lm->members[slot] = lg;
            lg->in_batch = 1;
            lg->id = id;
        } else {
            res = err_term(env, a->lo_busy, "the batch is full");
        }
        enif_mutex_unlock(lg->mu);
    }
    enif_mutex_unlock(lm->batch_mu);
    return res;
}

/* local_batch_leave(model, gen): takes the generation out of the batch (cancel). :ok */
ERL_NIF_TERM dspex_nif_local_batch_leave(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    local_model *lm = get_model(env, argv[0]);
    local_gen *lg = get_gen(env, argv[1]);
    if (lm == NULL || lg == NULL || lg->model != lm)
        return dspex_raise_badarg(env, "local_batch_leave/2 expects a model and one of its generations");
    enif_mutex_lock(lm->batch_mu);
    batch_drop(lm, lg);
    enif_mutex_unlock(lm->batch_mu);
    return dspex_atoms(env)->ok;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* local_batch_step(model, budget_ms), dirty CPU: batch steps (one forward pass each) until
 * about budget_ms is spent, a generation finishes or nothing is left to do. Returns
 * [{id, status, new_ids, new_text}] for every member with news (finished members leave
 * the batch), or {:error, reason} (then every member has left). */
ERL_NIF_TERM dspex_nif_local_batch_step(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *a = dspex_atoms(env);
    local_model *lm = get_model(env, argv[0]);
    double budget;
    long lb;
    if (lm == NULL) return dspex_raise_badarg(env, "local_batch_step/2 expects a model");
    if (!enif_get_double(env, argv[1], &budget)) {
        if (!enif_get_long(env, argv[1], &lb)) return dspex_raise_badarg(env, "local_batch_step/2: budget_ms must be a number");
        budget = (double)lb;
    }
    char err[ERRLEN];
    ERL_NIF_TERM res = enif_make_list(env, 0);
    enif_mutex_lock(lm->batch_mu);
    if (lm->batch != NULL) {
        double t0 = now_ms();
        int rc = 0;
        for (;;) {
            rc = dspex_batch_step(lm->batch, err, sizeof err);
            if (rc <= 0 || now_ms() - t0 >= budget) break;
            int finished = 0;
            for (int32_t i = 0; i < lm->max_seqs; i++)
                if (lm->members[i] && lm->members[i]->g->finish != DSPEX_FINISH_NONE) finished = 1;
            if (finished) break;
        }
        if (rc < 0) {
            res = err_term(env, strstr(err, "context") ? a->lo_context_window : a->lo_inference, err);
            for (int32_t i = 0; i < lm->max_seqs; i++)
                if (lm->members[i]) batch_drop(lm, lm->members[i]);
        } else {
            for (int32_t i = 0; i < lm->max_seqs; i++) {
                local_gen *lg = lm->members[i];
                if (lg == NULL) continue;
                size_t nt;
                dspex_gen_tokens(lg->g, &nt);
                int done = lg->g->finish != DSPEX_FINISH_NONE;
                if (nt == lg->reported && !done) continue;
                ERL_NIF_TERM d = gen_delta(env, lg);
                const ERL_NIF_TERM *el;
                int ar;
                enif_get_tuple(env, d, &ar, &el);
                res = enif_make_list_cell(env, enif_make_tuple4(env, enif_make_long(env, lg->id), el[0], el[1], el[2]),
                                          res);
                if (done) batch_drop(lm, lg);
            }
        }
        enif_mutex_lock(lm->info_mu);
        lm->bstats = lm->batch->stats;
        lm->active = lm->batch->n;
        enif_mutex_unlock(lm->info_mu);
    }
    enif_mutex_unlock(lm->batch_mu);
    return res;
}

/* local_stats(model): the prefix cache's and the batch's counters. */
ERL_NIF_TERM dspex_nif_local_stats(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    local_model *lm = get_model(env, argv[0]);
    if (lm == NULL) return dspex_raise_badarg(env, "local_stats/1 expects a model");
    dspex_prefix_stats ps = {0};
    if (lm->pc) dspex_prefix_cache_stats(lm->pc, &ps);
    dspex_batch_stats bs = {0};
    int32_t active = 0;
    enif_mutex_lock(lm->info_mu);
    bs = lm->bstats, active = lm->active;
    enif_mutex_unlock(lm->info_mu);
    struct {
        const char *k;
        uint64_t v;
    } kv[] = {{"prefix_lookups", ps.lookups},
              {"prefix_hits", ps.hits},
              {"reused_tokens", ps.reused_tokens},
              {"prefilled_tokens", ps.prefilled_tokens},
              {"cached_tokens", ps.inserted_tokens},
              {"cache_evictions", ps.evictions},
              {"cache_bytes", ps.bytes},
              {"cache_capacity", ps.capacity},
              {"cache_nodes", ps.nodes},
              {"batch_steps", bs.steps},
              {"batch_rows", bs.rows},
              {"batch_decode_rows", bs.decode_rows},
              {"batch_max_active", (uint64_t)bs.max_active},
              {"batch_active", (uint64_t)active},
              {"max_seqs", (uint64_t)lm->max_seqs},
              {"batch_tokens", (uint64_t)lm->batch_tokens}};
    ERL_NIF_TERM map = enif_make_new_map(env);
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        enif_make_map_put(env, map, enif_make_atom(env, kv[i].k), enif_make_uint64(env, kv[i].v), &map);
    return map;
}

/* ------------------------------------------------------------------ embeddings */

/* One text's token ids per call, on a dirty CPU scheduler (a forward pass without
 * logits; the Elixir side loops over texts, so no call holds a scheduler for more than
 * one text). */
/* local_embed(model, ids, pooling, normalize): pooling :mean | :last | nil (the file's);
 * {:ok, [float]} or {:error, {:inference, message, nil}}. */
ERL_NIF_TERM dspex_nif_local_embed(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *a = dspex_atoms(env);
    local_model *lm = get_model(env, argv[0]);
    unsigned n;
    if (lm == NULL || !enif_get_list_length(env, argv[1], &n))
        return dspex_raise_badarg(env, "local_embed/4 expects a model and a list of token ids");
    int pooling;
    if (enif_is_identical(argv[2], a->nil)) pooling = dspex_embed_pooling(lm->m);
    else if (enif_is_identical(argv[2], a->em_mean)) pooling = DSPEX_POOL_MEAN;
    else if (enif_is_identical(argv[2], a->em_last)) pooling = DSPEX_POOL_LAST;
    else return dspex_raise_badarg(env, "local_embed/4: pooling must be :mean, :last or nil");
    int32_t *ids = malloc((n ? n : 1) * sizeof(int32_t));
    float *out = malloc((size_t)lm->m->hp.n_embd * sizeof(float));
    if (ids == NULL || out == NULL) {
        free(ids), free(out);
        return enif_raise_exception(env, a->out_of_memory);
    }
    ERL_NIF_TERM h, t = argv[1];
    for (unsigned i = 0; i < n; i++) {
        int v;
        if (!enif_get_list_cell(env, t, &h, &t) || !enif_get_int(env, h, &v)) {
            free(ids), free(out);
            return dspex_raise_badarg(env, "local_embed/4: token ids must be integers");
        }
        ids[i] = v;
    }
    char err[ERRLEN];
    ERL_NIF_TERM res;
    if (dspex_embed(lm->m, ids, n, pooling, enif_is_identical(argv[3], a->true_), out, err, sizeof err) != 0) {
        res = dspex_error(env, a->lo_inference, err, -1);
    } else {
        ERL_NIF_TERM l = enif_make_list(env, 0);
        for (int64_t k = lm->m->hp.n_embd; k > 0; k--) l = enif_make_list_cell(env, enif_make_double(env, out[k - 1]), l);
        res = dspex_ok(env, l);
    }
    free(ids), free(out);
    return res;
}
