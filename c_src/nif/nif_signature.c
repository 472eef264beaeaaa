/* NIF bindings: signature strings and the type model (c_src/core/signature/).
 *
 * signature_parse(Binary, :string | :class) ->
 *     {ok, {Inputs, Outputs}}  each field {Name, Type, TypeDefined, Prefix, Column} where Name
 *                              is the existing atom or, when there is none, the binary
 *   | {error, {signature_parse, Message, Column}}
 * type_normalize(Type | Binary, :string | :class) -> {ok, Type} | {error, {signature_parse, Msg, Column}}
 * type_text(Type, :name | :string | :json_schema) -> Binary
 * value_text(Value, :str | :repr) -> Binary            Python str() / repr()
 * type_validate(Type, Value) -> {ok, V} | {ok_tagged, V} | {error, Message}
 *                                                      pydantic's validation (lax mode)
 * constraints_text([{Key, Number}]) -> Binary          "greater than: 0, ..."
 * infer_prefix(Binary) -> Binary                        DSPy's infer_prefix (no ':')
 * field_name_valid(Binary) -> boolean                   an identifier of <= 255 characters
 * cleandoc(Binary) -> Binary                            inspect.cleandoc
 *
 * Type terms are documented in DSPex.Signature.Field (lib/dspex/signature/field.ex). */
#include <string.h>

#include "dspex/adapter.h"
#include "dspex/pytext.h"
#include "dspex/signature.h"
#include "nif_terms.h"

static int mode_of(ErlNifEnv *env, ERL_NIF_TERM t, dspex_sig_mode *mode) {
    const DspexAtoms *a = dspex_atoms(env);
    if (enif_is_identical(t, a->mode_string)) *mode = DSPEX_SIG_STRING;
    else if (enif_is_identical(t, a->mode_class)) *mode = DSPEX_SIG_CLASS;
    else return 0;
    return 1;
}

static ERL_NIF_TERM buf_term(ErlNifEnv *env, dspex_buf *b) {
    ERL_NIF_TERM t = b->oom ? enif_raise_exception(env, dspex_atoms(env)->out_of_memory)
                            : dspex_make_binary(env, b->p ? b->p : "", b->len);
    dspex_buf_free(b);
    return t;
}

/* ---------------------------------------------------------------- signature_parse */
static int fields_term(ErlNifEnv *env, const dspex_field *fields, size_t n, ERL_NIF_TERM *out) {
    const DspexAtoms *a = dspex_atoms(env);
    ERL_NIF_TERM list = enif_make_list(env, 0);
    for (size_t i = n; i-- > 0;) {
        const dspex_field *f = &fields[i];
        ERL_NIF_TERM name, type, prefix;
        /* an existing atom is returned as such: the caller decides on new atoms */
        if (!dspex_existing_atom(env, f->name, f->name_len, &name)) name = dspex_make_binary(env, f->name, f->name_len);
        if (nt_from_type(env, f->type, &type) != 0) return 0;
        dspex_buf p;
        dspex_buf_init(&p);
        if (dspex_sig_infer_prefix(f->name, f->name_len, &p) != 0) {
            dspex_buf_free(&p);
            return 0;
        }
        dspex_buf_putc(&p, ':'); /* DSPy stores infer_prefix(name) + ":" */
        prefix = buf_term(env, &p);
        ERL_NIF_TERM cols = enif_make_uint64(env, (ErlNifUInt64)f->column);
        list = enif_make_list_cell(
            env, enif_make_tuple5(env, name, type, f->type_defined ? a->true_ : a->false_, prefix, cols), list);
    }
    *out = list;
    return 1;
}

static ERL_NIF_TERM signature_parse_impl(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *a = dspex_atoms(env);
    ErlNifBinary bin;
    dspex_sig_mode mode;
    if (!enif_inspect_binary(env, argv[0], &bin))
        return dspex_raise_badarg(env, "signature must be a binary, e.g. \"question -> answer\"");
    if (!mode_of(env, argv[1], &mode)) return dspex_raise_badarg(env, "signature mode must be :string or :class");
    dspex_signature *sig = NULL;
    dspex_sig_error err;
    dspex_sig_status st = dspex_sig_parse((const char *)bin.data, bin.size, mode, &sig, &err);
    if (st == DSPEX_SIG_ENOMEM) return enif_raise_exception(env, a->out_of_memory);
    if (st != DSPEX_SIG_OK) return dspex_error(env, a->signature_parse, err.message, err.column ? (long)err.column : -1);
    ERL_NIF_TERM ins, outs;
    int ok = fields_term(env, sig->fields, sig->ninputs, &ins) &&
             fields_term(env, sig->fields + sig->ninputs, sig->nfields - sig->ninputs, &outs);
    dspex_sig_free(sig);
    if (!ok) return enif_raise_exception(env, a->out_of_memory);
    return dspex_ok(env, enif_make_tuple2(env, ins, outs));
}

ERL_NIF_TERM dspex_nif_signature_parse(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    dspex_work w = {0};
    ErlNifBinary bin;
    if (argc == 2 && enif_inspect_binary(env, argv[0], &bin)) dspex_work_add(&w, bin.size * DSPEX_COST_SIGNATURE_BYTE);
    return dspex_run(env, &w, "signature_parse", signature_parse_impl, argc, argv);
}

/* ---------------------------------------------------------------- types */
/* A type term, or a type string parsed in `mode`, into arena a. Returns NULL and sets
 * *result (an error tuple or a raise) on failure. */
static dspex_type *type_arg(ErlNifEnv *env, ERL_NIF_TERM t, dspex_sig_mode mode, dspex_arena *a,
                            ERL_NIF_TERM *result) {
    ErlNifBinary bin;
    if (enif_inspect_binary(env, t, &bin)) {
        dspex_type *ty = NULL;
        dspex_sig_error err;
        dspex_sig_status st = dspex_sig_parse_type((const char *)bin.data, bin.size, mode, a, &ty, &err);
        if (st == DSPEX_SIG_ENOMEM) *result = enif_raise_exception(env, dspex_atoms(env)->out_of_memory);
        else if (st != DSPEX_SIG_OK)
            *result = dspex_error(env, dspex_atoms(env)->signature_parse, err.message, err.column ? (long)err.column : -1);
        return ty;
    }
    nt_ctx c = {.env = env, .at = dspex_atoms(env), .a = a};
    dspex_type *ty = nt_to_type(&c, t, 0);
    if (ty == NULL)
        *result = c.status == NT_OOM ? enif_raise_exception(env, dspex_atoms(env)->out_of_memory)
                                     : dspex_raise_badarg(env, c.err ? c.err : "invalid type");
    return ty;
}

ERL_NIF_TERM dspex_nif_type_normalize(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    dspex_sig_mode mode;
    if (argc != 2 || !mode_of(env, argv[1], &mode)) return dspex_raise_badarg(env, "type mode must be :string or :class");
    dspex_arena a;
    dspex_arena_init(&a, 1u << 24);
    ERL_NIF_TERM result = 0;
    dspex_type *t = type_arg(env, argv[0], mode, &a, &result);
    if (t != NULL) {
        ERL_NIF_TERM out;
        result = nt_from_type(env, t, &out) == 0 ? dspex_ok(env, out)
                                                  : enif_raise_exception(env, dspex_atoms(env)->out_of_memory);
    }
    dspex_arena_free(&a);
    return result;
}

ERL_NIF_TERM dspex_nif_type_text(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    const DspexAtoms *at = dspex_atoms(env);
    if (argc != 2) return dspex_raise_badarg(env, "type_text/2");
    dspex_arena a;
    dspex_arena_init(&a, 1u << 24);
    ERL_NIF_TERM result = 0;
    dspex_type *t = type_arg(env, argv[0], DSPEX_SIG_CLASS, &a, &result);
    if (t != NULL) {
        dspex_buf b;
        dspex_buf_init(&b);
        if (enif_is_identical(argv[1], at->text_name))
            dspex_type_name(t, &b);
        else if (enif_is_identical(argv[1], at->mode_string))
            dspex_type_string(t, &b);
        else if (enif_is_identical(argv[1], at->text_json_schema)) {
            if (dspex_type_json_schema(t, &a, &b) != 0) b.oom = 1;
        } else {
            dspex_buf_free(&b);
            dspex_arena_free(&a);
            return dspex_raise_badarg(env, "type_text: what must be :name, :string or :json_schema");
        }
        result = buf_term(env, &b);
    } else if (!enif_is_exception(env, result)) {
        /* a type string that does not parse */
        result = dspex_raise_badarg(env, "invalid type string");
    }
    dspex_arena_free(&a);
    return result;
}

/* ---------------------------------------------------------------- Python text */
static ERL_NIF_TERM value_text_impl(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *at = dspex_atoms(env);
    dspex_arena a;
    dspex_arena_init(&a, 0);
    nt_ctx c = {.env = env, .at = at, .a = &a};
    dspex_val *v = nt_to_val(&c, argv[0], 0);
    ERL_NIF_TERM result;
    if (v == NULL) {
        result = c.status == NT_OOM ? enif_raise_exception(env, at->out_of_memory)
                                    : dspex_raise_badarg(env, c.err ? c.err : "invalid value");
    } else {
        dspex_buf b;
        dspex_buf_init(&b);
        if (enif_is_identical(argv[1], at->text_repr))
            dspex_py_repr(v, &b);
        else
            dspex_py_str(v, &b);
        result = buf_term(env, &b);
    }
    dspex_arena_free(&a);
    return result;
}

ERL_NIF_TERM dspex_nif_value_text(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 2) return dspex_raise_badarg(env, "value_text/2");
    dspex_work w = {0};
    dspex_work_term(env, &w, argv[0], DSPEX_COST_COPY_BYTE);
    return dspex_run(env, &w, "value_text", value_text_impl, argc, argv);
}

/* ---------------------------------------------------------------- validation */
static ERL_NIF_TERM validate_impl(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *at = dspex_atoms(env);
    dspex_arena a;
    dspex_arena_init(&a, 1u << 30);
    nt_ctx c = {.env = env, .at = at, .a = &a};
    ERL_NIF_TERM result;
    dspex_type *t = nt_to_type(&c, argv[0], 0);
    dspex_val *v = t ? nt_to_val(&c, argv[1], 0) : NULL;
    dxa_err *err = dspex_arena_alloc(&a, sizeof(dxa_err));
    if (v == NULL || err == NULL) {
        result = c.status == NT_OOM || err == NULL ? enif_raise_exception(env, at->out_of_memory)
                                                   : dspex_raise_badarg(env, c.err ? c.err : "invalid argument");
    } else {
        dspex_val *out = NULL;
        err->message[0] = '\0';
        int rc = dxa_validate(t, v, &a, &out, err), tagged = 0;
        ERL_NIF_TERM x;
        if (rc < 0 || (rc == 0 && nt_from_val(env, out, &x, &tagged) != 0))
            result = enif_raise_exception(env, at->out_of_memory);
        else if (rc > 0)
            result = enif_make_tuple2(env, at->error, dspex_make_binary(env, err->message, strlen(err->message)));
        else
            result = enif_make_tuple2(env, tagged ? at->ad_ok_tagged : at->ok, x);
    }
    dspex_arena_free(&a);
    return result;
}

ERL_NIF_TERM dspex_nif_type_validate(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    if (argc != 2) return dspex_raise_badarg(env, "type_validate/2");
    dspex_work w = {0};
    dspex_work_term(env, &w, argv[1], DSPEX_COST_COPY_BYTE);
    return dspex_run(env, &w, "type_validate", validate_impl, argc, argv);
}

ERL_NIF_TERM dspex_nif_constraints_text(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    const DspexAtoms *at = dspex_atoms(env);
    unsigned n;
    if (argc != 1 || !enif_get_list_length(env, argv[0], &n) || n > 64)
        return dspex_raise_badarg(env, "constraints must be a keyword list");
    dspex_arena a;
    dspex_arena_init(&a, 0);
    dspex_field f = {0};
    f.constraints = dspex_arena_alloc(&a, ((size_t)n + 1) * sizeof(dspex_constraint));
    nt_ctx c = {.env = env, .at = at, .a = &a};
    ERL_NIF_TERM l = argv[0], h, result = 0;
    while (f.constraints && enif_get_list_cell(env, l, &h, &l)) {
        int ar;
        const ERL_NIF_TERM *kv;
        size_t kl;
        dspex_constraint *k = &f.constraints[f.nconstraints];
        if (!enif_get_tuple(env, h, &ar, &kv) || ar != 2 || dspex_atom_text(env, kv[0], &a, &k->key, &kl) != 0 ||
            (k->value = nt_to_val(&c, kv[1], 0)) == NULL) {
            result = dspex_raise_badarg(env, "constraints must be a keyword list");
            break;
        }
        f.nconstraints++;
    }
    if (result == 0) {
        dspex_buf b;
        dspex_buf_init(&b);
        dspex_constraints_text(&f, &b);
        result = buf_term(env, &b);
    }
    dspex_arena_free(&a);
    return result;
}

ERL_NIF_TERM dspex_nif_infer_prefix(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    ErlNifBinary bin;
    if (argc != 1 || !enif_inspect_binary(env, argv[0], &bin) || bin.size > 4096)
        return dspex_raise_badarg(env, "infer_prefix takes a field name (a binary of at most 4096 bytes)");
    dspex_buf b;
    dspex_buf_init(&b);
    if (dspex_sig_infer_prefix((const char *)bin.data, bin.size, &b) != 0) b.oom = 1;
    return buf_term(env, &b);
}

ERL_NIF_TERM dspex_nif_field_name_valid(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    ErlNifBinary bin;
    if (argc != 1 || !enif_inspect_binary(env, argv[0], &bin)) return dspex_raise_badarg(env, "field names are binaries");
    const DspexAtoms *a = dspex_atoms(env);
    return dspex_sig_valid_name((const char *)bin.data, bin.size, 1) ? a->true_ : a->false_;
}

static ERL_NIF_TERM cleandoc_impl(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    ErlNifBinary bin;
    if (!enif_inspect_binary(env, argv[0], &bin)) return dspex_raise_badarg(env, "cleandoc takes a binary");
    dspex_buf b;
    dspex_buf_init(&b);
    dspex_py_cleandoc((const char *)bin.data, bin.size, &b);
    return buf_term(env, &b);
}

ERL_NIF_TERM dspex_nif_cleandoc(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    dspex_work w = {0};
    ErlNifBinary bin;
    if (argc == 1 && enif_inspect_binary(env, argv[0], &bin)) dspex_work_add(&w, bin.size * DSPEX_COST_SCAN_BYTE);
    return dspex_run(env, &w, "cleandoc", cleandoc_impl, argc, argv);
}
