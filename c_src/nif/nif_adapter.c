/* NIF bindings for the adapters (c_src/core/adapter/render.c, parse.c), on compiled
 * signatures (nif_compiled.c).
 *
 * adapter_format(Adapter, Id, Key, Demos, Inputs) -> {ok, [%{role, content}]} | stale | plain
 * adapter_format_assistant(Adapter, Id, Key, Outputs, Missing) -> {ok, Binary} | stale | plain
 * adapter_format_user(Adapter, Id, Key, Inputs) -> {ok, Binary} | stale | plain
 *     format_user_message_content: the input blocks, no output reminder
 * adapter_parse(Adapter, Id, Key, Text, Ordered) ->
 *     {ok, %{name => value}} | {ok_tagged, ...} (values hold {:__dspex__, tag, payload})
 *   | {error, {adapter_parse, Message, Details}} | stale
 *     Details = {LmResponse, [MissingName], [FoundName], [{Name, Reason}]} (the field whose
 *     value did not parse or validate, and why)
 *     Ordered: true gives dict values as {:ordered, [{k, v}]} in the LM's key order
 * adapter_parse_value(Type, Text) -> {ok, Value} | {ok_tagged, Value} | {error, {adapter_parse, Msg, nil}}
 *
 * Adapter is :chat or :json; Id and Key name a compiled signature (nif_compiled.h).
 * `stale`: no signature with that id was compiled from Key (compile and call again); `plain`: a demo/input/output holds a struct (convert it to plain data and call
 * again). Values are the plain tagged data of nif_terms.h; binaries are referenced, not
 * copied, while a call runs. Message contents are sub-binaries of one binary, the system
 * message a resource binary of the compiled signature (no copy). Work is estimated while
 * the values are converted (nif_util.h): past the bound the call restarts on a dirty CPU
 * scheduler, having thrown away at most that much work. */
#include <string.h>

#include "dspex/adapter.h"
#include "nif_compiled.h"
#include "nif_terms.h"

#define ARENA_STACK_BYTES 8192        /* first arena chunk lives on the C stack */
#define ARENA_LIMIT ((size_t)1 << 32) /* bound on one call's scratch memory */

static int adapter_kind(ErlNifEnv *env, ERL_NIF_TERM t, dxa_adapter *ad) {
    const DspexAtoms *at = dspex_atoms(env);
    if (enif_is_identical(t, at->ad_chat)) *ad = DXA_CHAT;
    else if (enif_is_identical(t, at->ad_json)) *ad = DXA_JSON;
    else return -1;
    return 0;
}

/* A converted value, or the call's answer when conversion stops (*result set). */
typedef struct {
    ErlNifEnv *env;
    int argc;
    const ERL_NIF_TERM *argv;
    dspex_nif_fn self;
    const char *name;
    nt_ctx nc;
    ERL_NIF_TERM result;
} call;

/* A demo/inputs/outputs map: only the signature's fields are read (nt_record). */
static dspex_val *value(call *c, const dspex_compiled *cs, ERL_NIF_TERM t, const char *what) {
    dspex_val *v = nt_record(&c->nc, t, cs->names, cs->name_vals, cs->sig->nfields);
    const DspexAtoms *at = c->nc.at;
    if (v == NULL && c->nc.status == NT_BAD && !enif_is_map(c->env, t)) {
        c->result = dspex_raise_badarg(c->env, what);
        return NULL;
    }
    if (v == NULL) {
        switch (c->nc.status) {
        case NT_STRUCT: c->result = at->ad_plain; break;
        case NT_OOM: c->result = enif_raise_exception(c->env, at->out_of_memory); break;
        default: c->result = dspex_raise_badarg(c->env, c->nc.err ? c->nc.err : what);
        }
        return NULL;
    }
    return v;
}

/* Past the work bound on a normal scheduler: the caller answers with c->result. */
static int rescheduled(call *c) {
    if (!dspex_work_over(c->nc.work) || !dspex_on_normal_scheduler()) return 0;
    c->result = enif_schedule_nif(c->env, c->name, ERL_NIF_DIRTY_JOB_CPU_BOUND, c->self, c->argc, c->argv);
    return 1;
}

/* ---------------------------------------------------------------- format */
/* Demo cache. The demo messages depend only on the signature, the adapter and the demos,
 * and a predictor passes the same demos on every call: a compiled signature keeps, per
 * adapter, the last demos list it formatted and their messages. A call whose demos are
 * identical (enif_is_identical: the same maps compare by pointer) copies the messages
 * instead of converting and rendering the demos again. Lists charged more than
 * DEMO_CACHE_WORK units (~64 KiB of text) are not kept, which bounds the memory a
 * compiled signature holds; the cached messages live in their own binary, so a large
 * input never stays pinned by the cache. */
#define DEMO_CACHE_WORK 65536

/* A copy of the cached demo messages when `demos` is the cached list (0 otherwise). */
static int demo_hit(ErlNifEnv *env, dspex_compiled *cs, dxa_adapter ad, ERL_NIF_TERM demos, ERL_NIF_TERM *msgs) {
    int hit = 0;
    enif_rwlock_rlock(cs->demo_lock);
    if (cs->demo_env[ad] && enif_is_identical(demos, cs->demo_key[ad])) {
        *msgs = enif_make_copy(env, cs->demo_msgs[ad]);
        hit = 1;
    }
    enif_rwlock_runlock(cs->demo_lock);
    return hit;
}

static void demo_store(dspex_compiled *cs, dxa_adapter ad, ERL_NIF_TERM demos, ERL_NIF_TERM msgs) {
    ErlNifEnv *e = enif_alloc_env();
    if (e == NULL) return; /* not cached: the next call renders again */
    ERL_NIF_TERM k = enif_make_copy(e, demos), m = enif_make_copy(e, msgs);
    enif_rwlock_rwlock(cs->demo_lock);
    ErlNifEnv *old = cs->demo_env[ad];
    cs->demo_env[ad] = e;
    cs->demo_key[ad] = k;
    cs->demo_msgs[ad] = m;
    enif_rwlock_rwunlock(cs->demo_lock);
    if (old) enif_free_env(old);
}

/* %{role: R, content: C} for messages msgs[from .. to): contents are sub-binaries of one
 * new binary holding text[msgs[from].content .. end of msgs[to - 1]] (they are laid out
 * one after another in the call's buffer). */
static int message_maps(ErlNifEnv *env, const DspexAtoms *at, const dxa_msgs *msgs, size_t from, size_t to,
                        ERL_NIF_TERM *maps) {
    if (from >= to) return 0;
    const char *base = msgs->msgs[from].content;
    size_t len = (size_t)(msgs->msgs[to - 1].content + msgs->msgs[to - 1].len - base);
    ERL_NIF_TERM all;
    unsigned char *dst = enif_make_new_binary(env, len, &all);
    if (dst == NULL) return -1;
    if (len) memcpy(dst, base, len);
    ERL_NIF_TERM roles[3] = {dspex_make_binary(env, "system", 6), dspex_make_binary(env, "user", 4),
                             dspex_make_binary(env, "assistant", 9)};
    ERL_NIF_TERM keys[2] = {at->ad_content, at->ad_role};
    for (size_t i = from; i < to; i++) {
        const dxa_msg *m = &msgs->msgs[i];
        ERL_NIF_TERM vals[2] = {enif_make_sub_binary(env, all, (size_t)(m->content - base), m->len), roles[m->role]};
        if (!enif_make_map_from_arrays(env, keys, vals, 2, &maps[i - from])) return -1;
    }
    return 0;
}

ERL_NIF_TERM dspex_nif_adapter_format(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    const DspexAtoms *at = dspex_atoms(env);
    dxa_adapter ad;
    if (argc != 5 || adapter_kind(env, argv[0], &ad) != 0) return dspex_raise_badarg(env, "adapter must be :chat or :json");
    unsigned nd;
    if (!enif_get_list_length(env, argv[3], &nd)) return dspex_raise_badarg(env, "demos must be a list of maps");
    dspex_compiled *cs = dspex_compiled_acquire(env, argv[1], argv[2]);
    if (cs == NULL) return at->ad_stale;

    dspex_arena a;
    _Alignas(16) unsigned char stack_chunk[ARENA_STACK_BYTES];
    dspex_arena_init_buf(&a, ARENA_LIMIT, stack_chunk, sizeof stack_chunk);
    dspex_work w = {0};
    call c = {.env = env, .argc = argc, .argv = argv, .self = dspex_nif_adapter_format, .name = "adapter_format",
              .nc = {.env = env, .at = at, .a = &a, .work = &w}};
    ERL_NIF_TERM cached = 0;
    int hit = nd > 0 && demo_hit(env, cs, ad, argv[3], &cached);
    unsigned ncached = 0;
    if (hit && !enif_get_list_length(env, cached, &ncached)) hit = 0;
    dspex_val **demos = dspex_arena_alloc(&a, ((size_t)nd + 1) * sizeof(dspex_val *));
    dspex_val *inputs = NULL;
    ERL_NIF_TERM *maps = NULL;
    dxa_msgs msgs;
    dspex_buf text;
    dspex_buf_init(&text);
    if (demos == NULL) goto oom;
    size_t k = 0;
    if (!hit) {
        ERL_NIF_TERM l = argv[3], h;
        while (enif_get_list_cell(env, l, &h, &l)) {
            if ((demos[k++] = value(&c, cs, h, "each demo must be a map with atom keys")) == NULL) goto done;
            if (rescheduled(&c)) goto done;
        }
    }
    size_t demo_work = w.units;
    if ((inputs = value(&c, cs, argv[4], "inputs must be a map with atom keys")) == NULL || rescheduled(&c)) goto done;
    if (dxa_format(ad, cs->sig, &cs->prep[ad], demos, k, inputs, &a, &text, &msgs) != 0) goto oom;
    {
        /* [system | demo messages (cached or new) | history and the user turn] */
        size_t nrest = msgs.n - 1 - msgs.ndemo, ndm = hit ? ncached : msgs.ndemo;
        size_t total = 1 + ndm + nrest;
        maps = enif_alloc(total * sizeof(ERL_NIF_TERM));
        if (maps == NULL) goto oom;
        ERL_NIF_TERM sys[2] = {enif_make_resource_binary(env, cs, msgs.msgs[0].content, msgs.msgs[0].len),
                               dspex_make_binary(env, "system", 6)};
        ERL_NIF_TERM keys[2] = {at->ad_content, at->ad_role};
        if (!enif_make_map_from_arrays(env, keys, sys, 2, &maps[0])) goto oom;
        if (hit) {
            ERL_NIF_TERM l = cached, h;
            size_t i = 1;
            while (enif_get_list_cell(env, l, &h, &l)) maps[i++] = h;
        } else if (message_maps(env, at, &msgs, 1, 1 + msgs.ndemo, maps + 1) != 0) {
            goto oom;
        }
        if (message_maps(env, at, &msgs, 1 + msgs.ndemo, msgs.n, maps + 1 + ndm) != 0) goto oom;
        if (!hit && nd > 0 && demo_work <= DEMO_CACHE_WORK)
            demo_store(cs, ad, argv[3], enif_make_list_from_array(env, maps + 1, (unsigned)ndm));
        c.result = dspex_ok(env, enif_make_list_from_array(env, maps, (unsigned)total));
    }
    goto done;
oom:
    c.result = enif_raise_exception(env, at->out_of_memory);
done:
    if (maps) enif_free(maps);
    dspex_buf_free(&text);
    dspex_arena_free(&a);
    dspex_compiled_release(cs);
    return c.result;
}

ERL_NIF_TERM dspex_nif_adapter_format_assistant(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    const DspexAtoms *at = dspex_atoms(env);
    dxa_adapter ad;
    if (argc != 5 || adapter_kind(env, argv[0], &ad) != 0) return dspex_raise_badarg(env, "adapter must be :chat or :json");
    dspex_compiled *cs = dspex_compiled_acquire(env, argv[1], argv[2]);
    if (cs == NULL) return at->ad_stale;
    dspex_arena a;
    _Alignas(16) unsigned char stack_chunk[ARENA_STACK_BYTES];
    dspex_arena_init_buf(&a, ARENA_LIMIT, stack_chunk, sizeof stack_chunk);
    dspex_work w = {0};
    call c = {.env = env, .argc = argc, .argv = argv, .self = dspex_nif_adapter_format_assistant,
              .name = "adapter_format_assistant", .nc = {.env = env, .at = at, .a = &a, .work = &w}};
    const char *missing = NULL;
    dspex_val *outputs = value(&c, cs, argv[3], "outputs must be a map with atom keys");
    if (outputs == NULL || rescheduled(&c)) goto done;
    if (!enif_is_identical(argv[4], at->nil)) {
        ErlNifBinary b;
        if (!enif_inspect_binary(env, argv[4], &b)) {
            c.result = dspex_raise_badarg(env, "missing-field message must be a binary or nil");
            goto done;
        }
        missing = dspex_arena_strndup(&a, (const char *)b.data, b.size);
        if (missing == NULL) goto oom;
    }
    dspex_buf out;
    dspex_buf_init(&out);
    if (dxa_format_assistant(ad, cs->sig, outputs, missing, &out) != 0) {
        dspex_buf_free(&out);
        goto oom;
    }
    c.result = dspex_ok(env, dspex_make_binary(env, out.p ? out.p : "", out.len));
    dspex_buf_free(&out);
    goto done;
oom:
    c.result = enif_raise_exception(env, at->out_of_memory);
done:
    dspex_arena_free(&a);
    dspex_compiled_release(cs);
    return c.result;
}

ERL_NIF_TERM dspex_nif_adapter_format_user(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    const DspexAtoms *at = dspex_atoms(env);
    dxa_adapter ad;
    if (argc != 4 || adapter_kind(env, argv[0], &ad) != 0) return dspex_raise_badarg(env, "adapter must be :chat or :json");
    dspex_compiled *cs = dspex_compiled_acquire(env, argv[1], argv[2]);
    if (cs == NULL) return at->ad_stale;
    dspex_arena a;
    _Alignas(16) unsigned char stack_chunk[ARENA_STACK_BYTES];
    dspex_arena_init_buf(&a, ARENA_LIMIT, stack_chunk, sizeof stack_chunk);
    dspex_work w = {0};
    call c = {.env = env, .argc = argc, .argv = argv, .self = dspex_nif_adapter_format_user,
              .name = "adapter_format_user", .nc = {.env = env, .at = at, .a = &a, .work = &w}};
    dspex_val *inputs = value(&c, cs, argv[3], "inputs must be a map with atom keys");
    if (inputs != NULL && !rescheduled(&c)) {
        dspex_buf out;
        dspex_buf_init(&out);
        if (dxa_format_user(cs->sig, inputs, &out) != 0)
            c.result = enif_raise_exception(env, at->out_of_memory);
        else
            c.result = dspex_ok(env, dspex_make_binary(env, out.p ? out.p : "", out.len));
        dspex_buf_free(&out);
    }
    dspex_arena_free(&a);
    dspex_compiled_release(cs);
    return c.result;
}

/* ---------------------------------------------------------------- parse */
static ERL_NIF_TERM names_where(ErlNifEnv *env, const dspex_compiled *cs, const dxa_out *how, int missing) {
    const dspex_signature *sig = cs->sig;
    ERL_NIF_TERM l = enif_make_list(env, 0);
    for (size_t k = sig->nfields - sig->ninputs; k > 0; k--)
        if ((how[k - 1] == DXA_OUT_MISSING) == missing) l = enif_make_list_cell(env, cs->names[sig->ninputs + k - 1], l);
    return l;
}

static ERL_NIF_TERM parse_impl(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *at = dspex_atoms(env);
    dxa_adapter ad = DXA_CHAT;
    ErlNifBinary text;
    adapter_kind(env, argv[0], &ad);
    int ordered = enif_is_identical(argv[4], at->true_);
    dspex_compiled *cs = dspex_compiled_acquire(env, argv[1], argv[2]);
    if (cs == NULL) return at->ad_stale;
    enif_inspect_binary(env, argv[3], &text);
    const dspex_signature *sig = cs->sig;
    dspex_arena a;
    _Alignas(16) unsigned char stack_chunk[ARENA_STACK_BYTES];
    dspex_arena_init_buf(&a, ARENA_LIMIT, stack_chunk, sizeof stack_chunk);
    size_t nout = sig->nfields - sig->ninputs;
    dspex_val **vals = dspex_arena_alloc(&a, (nout + 1) * sizeof(dspex_val *));
    dxa_out *how = dspex_arena_alloc(&a, (nout + 1) * sizeof(dxa_out));
    dxa_err *err = dspex_arena_alloc(&a, sizeof(dxa_err));
    if (vals == NULL || how == NULL || err == NULL) {
        dspex_arena_free(&a);
        dspex_compiled_release(cs);
        return enif_raise_exception(env, at->out_of_memory);
    }
    int rc = dxa_parse(ad, sig, (const char *)text.data, text.size, &a, vals, how, err);
    ERL_NIF_TERM result;
    if (rc < 0) {
        result = enif_raise_exception(env, at->out_of_memory);
    } else if (rc > 0) {
        ERL_NIF_TERM msg = err->full ? dspex_make_binary(env, err->full, err->full_len)
                                     : dspex_make_binary(env, err->message, strlen(err->message));
        /* the response the message quotes: the whole text, or the JSON object found in it */
        size_t off = (size_t)(err->response - (const char *)text.data);
        ERL_NIF_TERM resp = off <= text.size && err->response_len <= text.size - off
                                ? enif_make_sub_binary(env, argv[3], off, err->response_len)
                                : argv[3];
        ERL_NIF_TERM bad = enif_make_list(env, 0);
        if (err->bad_field) {
            size_t fi = (size_t)(err->bad_field - sig->fields);
            bad = enif_make_list1(
                env, enif_make_tuple2(env, cs->names[fi], dspex_make_binary(env, err->reason, strlen(err->reason))));
        }
        ERL_NIF_TERM details =
            enif_make_tuple4(env, resp, names_where(env, cs, how, 1), names_where(env, cs, how, 0), bad);
        result = enif_make_tuple2(env, at->error, enif_make_tuple3(env, at->ad_adapter_parse, msg, details));
    } else {
        ERL_NIF_TERM m = enif_make_new_map(env);
        int tagged = 0;
        for (size_t k = 0; k < nout && rc == 0; k++) {
            size_t fi = sig->ninputs + k;
            ERL_NIF_TERM v, m2;
            switch (how[k]) {
            case DXA_OUT_PARSED: rc = nt_from_val_as(env, vals[k], ordered, &v, &tagged); break;
            case DXA_OUT_DEFAULT: v = enif_make_copy(env, cs->defaults[fi]); break;
            default: v = at->nil;
            }
            if (rc == 0) {
                enif_make_map_put(env, m, cs->names[fi], v, &m2);
                m = m2;
            }
        }
        result = rc ? enif_raise_exception(env, at->out_of_memory)
                    : enif_make_tuple2(env, tagged ? at->ad_ok_tagged : at->ok, m);
    }
    dspex_arena_free(&a);
    dspex_compiled_release(cs);
    return result;
}

ERL_NIF_TERM dspex_nif_adapter_parse(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    dxa_adapter ad;
    ErlNifBinary text;
    if (argc != 5 || adapter_kind(env, argv[0], &ad) != 0) return dspex_raise_badarg(env, "adapter must be :chat or :json");
    if (!enif_inspect_binary(env, argv[3], &text)) return dspex_raise_badarg(env, "completion must be a binary");
    dspex_work w = {0};
    dspex_work_add(&w, text.size * DSPEX_COST_TEXT_BYTE);
    return dspex_run(env, &w, "adapter_parse", parse_impl, argc, argv);
}

static ERL_NIF_TERM parse_value_impl(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *at = dspex_atoms(env);
    ErlNifBinary text;
    enif_inspect_binary(env, argv[1], &text);
    dspex_arena a;
    _Alignas(16) unsigned char stack_chunk[ARENA_STACK_BYTES];
    dspex_arena_init_buf(&a, ARENA_LIMIT, stack_chunk, sizeof stack_chunk);
    nt_ctx c = {.env = env, .at = at, .a = &a};
    dspex_type *t = nt_to_type(&c, argv[0], 0);
    if (t == NULL) {
        dspex_arena_free(&a);
        return dspex_raise_badarg(env, c.err ? c.err : "invalid type");
    }
    dspex_val *v = NULL;
    dxa_err *err = dspex_arena_alloc(&a, sizeof(dxa_err));
    if (err == NULL) {
        dspex_arena_free(&a);
        return enif_raise_exception(env, at->out_of_memory);
    }
    err->message[0] = '\0';
    int rc = dxa_parse_value(t, (const char *)text.data, text.size, &a, &v, err);
    ERL_NIF_TERM result, out;
    int tagged = 0;
    if (rc < 0 || (rc == 0 && nt_from_val(env, v, &out, &tagged) != 0))
        result = enif_raise_exception(env, at->out_of_memory);
    else if (rc > 0)
        result = dspex_error(env, at->ad_adapter_parse, err->message, -1);
    else
        result = enif_make_tuple2(env, tagged ? at->ad_ok_tagged : at->ok, out);
    dspex_arena_free(&a);
    return result;
}

/* DSPy's parse_value for one text and type term (tests and tools). */
ERL_NIF_TERM dspex_nif_adapter_parse_value(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    ErlNifBinary text;
    if (argc != 2 || !enif_inspect_binary(env, argv[1], &text))
        return dspex_raise_badarg(env, "parse_value takes a type term and a binary");
    dspex_work w = {0};
    dspex_work_add(&w, text.size * DSPEX_COST_TEXT_BYTE);
    return dspex_run(env, &w, "adapter_parse_value", parse_value_impl, argc, argv);
}
