/* Compiled signatures. See nif_compiled.h.
 *
 * signature_compile(Id, Key, {Instructions, Fields}) -> ok
 *   Fields: [{:input | :output, NameAtom, Type, TypeDefined, Desc | nil, [{Key, Number}],
 *             nil | {:value, Default}}], inputs first. */
#include "nif_compiled.h"

#include <string.h>

#include "nif_terms.h"

#define CACHE_BUCKETS 4096 /* power of two */

struct dspex_sig_cache {
    ErlNifRWLock *lock;
    dspex_compiled *buckets[CACHE_BUCKETS];
    size_t count;
    size_t hand; /* second-chance eviction: the next bucket to look at */
};

static void destroy(ErlNifEnv *env, void *obj) {
    (void)env;
    dspex_compiled *c = obj;
    dspex_sig_free(c->sig);
    if (c->env) enif_free_env(c->env);
    for (int ad = 0; ad < 2; ad++)
        if (c->demo_env[ad]) enif_free_env(c->demo_env[ad]);
    if (c->demo_lock) enif_rwlock_destroy(c->demo_lock);
}

int dspex_compiled_load(ErlNifEnv *env, DspexNifPriv *priv) {
    priv->compiled_type = enif_open_resource_type(env, NULL, "dspex_compiled_signature", destroy,
                                                  ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER, NULL);
    if (priv->compiled_type == NULL) return -1;
    priv->sig_cache = enif_alloc(sizeof *priv->sig_cache);
    if (priv->sig_cache == NULL) return -1;
    memset(priv->sig_cache, 0, sizeof *priv->sig_cache);
    priv->sig_cache->lock = enif_rwlock_create("dspex_sig_cache");
    return priv->sig_cache->lock ? 0 : -1;
}

void dspex_compiled_unload(DspexNifPriv *priv) {
    struct dspex_sig_cache *cache = priv->sig_cache;
    if (cache == NULL) return;
    for (size_t b = 0; b < CACHE_BUCKETS; b++) {
        for (dspex_compiled *c = cache->buckets[b]; c != NULL;) {
            dspex_compiled *next = c->next;
            enif_release_resource(c);
            c = next;
        }
    }
    if (cache->lock) enif_rwlock_destroy(cache->lock);
    enif_free(cache);
    priv->sig_cache = NULL;
}

/* Under the lock (read or write): the entry for (id, key), or NULL. */
static dspex_compiled *find(struct dspex_sig_cache *k, unsigned long id, ERL_NIF_TERM key) {
    for (dspex_compiled *c = k->buckets[id & (CACHE_BUCKETS - 1)]; c; c = c->next)
        if (c->id == id && enif_is_identical(c->key, key)) return c;
    return NULL;
}

dspex_compiled *dspex_compiled_acquire(ErlNifEnv *env, ERL_NIF_TERM id_term, ERL_NIF_TERM key) {
    ErlNifUInt64 id;
    if (!enif_get_uint64(env, id_term, &id)) return NULL;
    struct dspex_sig_cache *k = dspex_priv(env)->sig_cache;
    enif_rwlock_rlock(k->lock);
    dspex_compiled *c = find(k, (unsigned long)id, key);
    if (c) {
        __atomic_store_n(&c->used, 1, __ATOMIC_RELAXED);
        enif_keep_resource(c);
    }
    enif_rwlock_runlock(k->lock);
    return c;
}

void dspex_compiled_release(dspex_compiled *c) {
    if (c) enif_release_resource(c);
}

/* Under the write lock: inserts c (the cache takes a reference) and returns the entry
 * dropped to stay within DSPEX_SIG_CACHE_MAX, for the caller to release after unlocking. */
static dspex_compiled *insert(struct dspex_sig_cache *k, dspex_compiled *c) {
    enif_keep_resource(c);
    dspex_compiled **b = &k->buckets[c->id & (CACHE_BUCKETS - 1)];
    c->next = *b;
    *b = c;
    if (++k->count <= DSPEX_SIG_CACHE_MAX) return NULL;
    /* second chance: sweep the buckets, clearing `used`, until an unused entry turns up */
    for (;;) {
        dspex_compiled **p = &k->buckets[k->hand];
        while (*p) {
            dspex_compiled *e = *p;
            if (e != c && !__atomic_load_n(&e->used, __ATOMIC_RELAXED)) {
                *p = e->next;
                k->count--;
                return e;
            }
            __atomic_store_n(&e->used, 0, __ATOMIC_RELAXED);
            p = &e->next;
        }
        k->hand = (k->hand + 1) & (CACHE_BUCKETS - 1);
    }
}

/* ---------------------------------------------------------------- compile */
typedef struct {
    ErlNifEnv *env;
    const DspexAtoms *at;
    dspex_compiled *c;
    const char *err;
    int oom;
} build;

static int fail(build *b, const char *msg) {
    if (b->err == NULL) b->err = msg;
    return -1;
}

static int nomem(build *b) {
    b->oom = 1;
    return fail(b, "out of memory");
}

static int text_of(build *b, ERL_NIF_TERM t, const char **s, size_t *n) {
    ErlNifBinary bin;
    if (!enif_inspect_binary(b->env, t, &bin)) return -1;
    char *copy = dspex_arena_strndup(&b->c->sig->arena, (const char *)bin.data, bin.size);
    if (copy == NULL) return nomem(b);
    *s = copy;
    *n = bin.size;
    return 0;
}

static int build_field(build *b, ERL_NIF_TERM t, size_t idx, int *seen_output) {
    static const char shape[] =
        "signature fields are {:input | :output, name_atom, type, type_defined?, desc | nil, constraints, "
        "nil | {:value, default}}";
    int ar;
    const ERL_NIF_TERM *el;
    dspex_signature *sig = b->c->sig;
    dspex_field *f = &sig->fields[idx];
    memset(f, 0, sizeof *f);
    if (!enif_get_tuple(b->env, t, &ar, &el) || ar != 7) return fail(b, shape);
    if (enif_is_identical(el[0], b->at->input)) {
        if (*seen_output) return fail(b, "signature fields must list the inputs before the outputs");
        f->is_input = 1;
        sig->ninputs++;
    } else if (enif_is_identical(el[0], b->at->output)) {
        *seen_output = 1;
    } else {
        return fail(b, shape);
    }
    if (!enif_is_atom(b->env, el[1]) || dspex_atom_text(b->env, el[1], &sig->arena, &f->name, &f->name_len) != 0)
        return fail(b, "field names must be atoms");
    for (size_t k = 0; k < idx; k++)
        if (sig->fields[k].name_len == f->name_len && memcmp(sig->fields[k].name, f->name, f->name_len) == 0)
            return fail(b, "field names must be distinct (input and output fields too)");
    b->c->names[idx] = enif_make_copy(b->c->env, el[1]);
    dspex_val *nv = dspex_val_new(&sig->arena, DSPEX_V_STR);
    if (nv == NULL) return nomem(b);
    nv->s = f->name;
    nv->slen = f->name_len;
    b->c->name_vals[idx] = nv;
    nt_ctx nc = {.env = b->env, .at = b->at, .a = &sig->arena};
    f->type = nt_to_type(&nc, el[2], 0);
    if (f->type == NULL) return nc.status == NT_OOM ? nomem(b) : fail(b, nc.err ? nc.err : "invalid type");
    f->type_defined = !enif_is_identical(el[3], b->at->false_);
    if (!enif_is_identical(el[4], b->at->nil) && text_of(b, el[4], &f->desc, &f->desc_len) != 0)
        return fail(b, "field descriptions must be binaries or nil");
    unsigned ncons;
    if (!enif_get_list_length(b->env, el[5], &ncons)) return fail(b, "constraints must be a keyword list");
    f->constraints = dspex_arena_alloc(&sig->arena, ((size_t)ncons + 1) * sizeof(dspex_constraint));
    if (f->constraints == NULL) return nomem(b);
    ERL_NIF_TERM l = el[5], h;
    while (enif_get_list_cell(b->env, l, &h, &l)) {
        int ka;
        const ERL_NIF_TERM *kv;
        size_t kl;
        dspex_constraint *k = &f->constraints[f->nconstraints];
        if (!enif_get_tuple(b->env, h, &ka, &kv) || ka != 2 ||
            dspex_atom_text(b->env, kv[0], &sig->arena, &k->key, &kl) != 0 ||
            !(enif_is_number(b->env, kv[1]) || enif_is_identical(kv[1], b->at->true_) ||
              enif_is_identical(kv[1], b->at->false_)))
            return fail(b, "constraints are a keyword list of numbers or booleans");
        k->value = nt_to_val(&nc, kv[1], 0);
        if (k->value == NULL) return nomem(b);
        f->nconstraints++;
    }
    int da;
    const ERL_NIF_TERM *de;
    if (enif_get_tuple(b->env, el[6], &da, &de) && da == 2 && enif_is_identical(de[0], b->at->value)) {
        if (f->is_input) return fail(b, "only output fields have defaults");
        f->has_default = 1;
        b->c->defaults[idx] = enif_make_copy(b->c->env, de[1]);
    } else if (!enif_is_identical(el[6], b->at->nil)) {
        return fail(b, shape);
    }
    return 0;
}

static ERL_NIF_TERM compile_impl(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    DspexNifPriv *priv = dspex_priv(env);
    const DspexAtoms *at = &priv->atoms;
    struct dspex_sig_cache *cache = priv->sig_cache;
    ErlNifUInt64 id;
    ERL_NIF_TERM key = argv[1];
    int ar;
    const ERL_NIF_TERM *el;
    unsigned nfields;
    if (!enif_get_uint64(env, argv[0], &id) || !enif_get_tuple(env, argv[2], &ar, &el) || ar != 2 ||
        !enif_is_binary(env, el[0]) || !enif_get_list_length(env, el[1], &nfields) || nfields > DSPEX_SIG_MAX_FIELDS)
        return dspex_raise_badarg(env,
                                  "signature_compile takes an id, a key and {instructions, fields} (at most 1024 fields)");

    dspex_compiled *hit = dspex_compiled_acquire(env, argv[0], key);
    if (hit) {
        dspex_compiled_release(hit);
        return at->ok;
    }

    dspex_compiled *c = enif_alloc_resource(priv->compiled_type, sizeof *c);
    if (c == NULL) return enif_raise_exception(env, at->out_of_memory);
    memset(c, 0, sizeof *c);
    build b = {.env = env, .at = at, .c = c};
    c->id = (unsigned long)id;
    c->env = enif_alloc_env();
    c->sig = dspex_sig_new();
    c->demo_lock = enif_rwlock_create("dspex_demo_cache");
    if (c->env == NULL || c->sig == NULL || c->demo_lock == NULL) {
        enif_release_resource(c);
        return enif_raise_exception(env, at->out_of_memory);
    }
    c->key = enif_make_copy(c->env, key);
    dspex_signature *sig = c->sig;
    sig->fields = dspex_arena_alloc(&sig->arena, ((size_t)nfields + 1) * sizeof(dspex_field));
    c->names = dspex_arena_alloc(&sig->arena, ((size_t)nfields + 1) * sizeof(ERL_NIF_TERM));
    c->defaults = dspex_arena_alloc(&sig->arena, ((size_t)nfields + 1) * sizeof(ERL_NIF_TERM));
    c->name_vals = dspex_arena_alloc(&sig->arena, ((size_t)nfields + 1) * sizeof(dspex_val *));
    int rc = (sig->fields && c->names && c->defaults && c->name_vals) ? 0 : nomem(&b);
    if (rc == 0) rc = text_of(&b, el[0], &sig->instructions, &sig->instructions_len);
    ERL_NIF_TERM l = el[1], h;
    int seen_output = 0;
    while (rc == 0 && enif_get_list_cell(env, l, &h, &l)) {
        rc = build_field(&b, h, sig->nfields, &seen_output);
        if (rc == 0) sig->nfields++;
    }
    if (rc == 0 && (dxa_prepare(DXA_CHAT, sig, &sig->arena, &c->prep[DXA_CHAT]) != 0 ||
                    dxa_prepare(DXA_JSON, sig, &sig->arena, &c->prep[DXA_JSON]) != 0))
        rc = nomem(&b);
    if (rc != 0) {
        enif_release_resource(c);
        if (b.oom) return enif_raise_exception(env, at->out_of_memory);
        return dspex_raise_badarg(env, b.err ? b.err : "invalid signature");
    }

    enif_rwlock_rwlock(cache->lock);
    dspex_compiled *dropped = NULL;
    if (find(cache, c->id, key) == NULL) dropped = insert(cache, c); /* else: another call won the race */
    enif_rwlock_rwunlock(cache->lock);
    if (dropped) enif_release_resource(dropped);
    enif_release_resource(c); /* the cache holds it now (or it lost the race) */
    return at->ok;
}

ERL_NIF_TERM dspex_nif_signature_compile(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 3) return dspex_raise_badarg(env, "signature_compile/3");
    dspex_work w = {0};
    dspex_work_term(env, &w, argv[2], DSPEX_COST_SCAN_BYTE);
    return dspex_run(env, &w, "signature_compile", compile_impl, argc, argv);
}
