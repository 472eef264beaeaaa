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

static dspex_val *value(call *c, ERL_NIF_TERM t, const char *what) {
    dspex_val *v = nt_to_val(&c->nc, t, 0);
    const DspexAtoms *at = c->nc.at;
    if (v != NULL && v->kind != DSPEX_V_DICT) {
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
    dspex_val **demos = dspex_arena_alloc(&a, ((size_t)nd + 1) * sizeof(dspex_val *));
    dspex_val *inputs = NULL;
    dxa_msgs msgs;
    dspex_buf text;
    dspex_buf_init(&text);
    if (demos == NULL) goto oom;
    ERL_NIF_TERM l = argv[3], h;
    size_t k = 0;
    while (enif_get_list_cell(env, l, &h, &l)) {
        if ((demos[k++] = value(&c, h, "each demo must be a map with atom keys")) == NULL) goto done;
        if (rescheduled(&c)) goto done;
    }
    if ((inputs = value(&c, argv[4], "inputs must be a map with atom keys")) == NULL || rescheduled(&c)) goto done;
    if (dxa_format(ad, cs->sig, &cs->prep[ad], demos, k, inputs, &a, &text, &msgs) != 0) goto oom;
    {
        /* one binary holds every content but the system message (a resource binary) */
        ERL_NIF_TERM all;
        unsigned char *dst = enif_make_new_binary(env, text.len, &all);
        if (dst == NULL) goto oom;
        if (text.len) memcpy(dst, text.p, text.len);
        ERL_NIF_TERM roles[3] = {dspex_make_binary(env, "system", 6), dspex_make_binary(env, "user", 4),
                                 dspex_make_binary(env, "assistant", 9)};
        ERL_NIF_TERM keys[2] = {at->ad_content, at->ad_role};
        ERL_NIF_TERM *maps = enif_alloc(msgs.n * sizeof(ERL_NIF_TERM));
        if (maps == NULL) goto oom;
        size_t off = 0;
        for (size_t i = 0; i < msgs.n; i++) {
            const dxa_msg *m = &msgs.msgs[i];
            ERL_NIF_TERM content;
            if (i == 0) {
                content = enif_make_resource_binary(env, cs, m->content, m->len);
            } else {
                off = (size_t)(m->content - text.p);
                content = enif_make_sub_binary(env, all, off, m->len);
            }
            ERL_NIF_TERM vals[2] = {content, roles[m->role]};
            if (!enif_make_map_from_arrays(env, keys, vals, 2, &maps[i])) {
                enif_free(maps);
                goto oom;
            }
        }
        c.result = dspex_ok(env, enif_make_list_from_array(env, maps, (unsigned)msgs.n));
        enif_free(maps);
    }
    goto done;
oom:
    c.result = enif_raise_exception(env, at->out_of_memory);
done:
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
    dspex_val *outputs = value(&c, argv[3], "outputs must be a map with atom keys");
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
    dspex_val *inputs = value(&c, argv[3], "inputs must be a map with atom keys");
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
