/* NIF bindings: DSPy signature strings (c_src/core/signature/signature.c).
 *
 * signature_parse(Binary) ->
 *     {ok, {Inputs, Outputs}}        each field {NameBin, Type, TypeDefined, PrefixBin}
 *   | {error, {signature_parse, MessageBin, Column}}
 *
 * Type terms: str | int | float | bool | any | none | history | list | dict | tuple | set
 *   | {list, T} | {set, T} | {dict, K, V} | {tuple, [T]} (tuple[T, ...] is {tuple, [T, ellipsis]})
 *   | {literal, [Bin | Int | Float | true | false | nil]} | {optional, T} | {union, [T]}
 */
#include "nif_util.h"

#include <string.h>

#include "dspex/signature.h"

/* Inputs larger than this parse on a dirty CPU scheduler. */
#define SIG_DIRTY_THRESHOLD 8192

static int make_bin(ErlNifEnv *env, const char *s, size_t n, ERL_NIF_TERM *out) {
    unsigned char *dst = enif_make_new_binary(env, n, out);
    if (dst == NULL) return 0;
    if (n) memcpy(dst, s, n);
    return 1;
}

static int lit_term(ErlNifEnv *env, const dspex_sig_literal *l, ERL_NIF_TERM *out) {
    const DspexAtoms *a = dspex_atoms(env);
    switch (l->kind) {
    case DSPEX_SIG_LIT_STR: return make_bin(env, l->str, l->str_len, out);
    case DSPEX_SIG_LIT_INT: *out = enif_make_int64(env, (ErlNifSInt64)l->i); return 1;
    case DSPEX_SIG_LIT_FLOAT: *out = enif_make_double(env, l->f); return 1;
    case DSPEX_SIG_LIT_BOOL: *out = l->b ? a->true_ : a->false_; return 1;
    case DSPEX_SIG_LIT_NONE: *out = a->nil; return 1;
    }
    return 0;
}

static int type_term(ErlNifEnv *env, const dspex_sig_type *t, ERL_NIF_TERM *out) {
    const DspexAtoms *a = dspex_atoms(env);
    ERL_NIF_TERM tag;
    switch (t->kind) {
    case DSPEX_SIG_T_STR: *out = a->sig_str; return 1;
    case DSPEX_SIG_T_INT: *out = a->sig_int; return 1;
    case DSPEX_SIG_T_FLOAT: *out = a->sig_float; return 1;
    case DSPEX_SIG_T_BOOL: *out = a->sig_bool; return 1;
    case DSPEX_SIG_T_ANY: *out = a->sig_any; return 1;
    case DSPEX_SIG_T_NONE: *out = a->sig_none; return 1;
    case DSPEX_SIG_T_HISTORY: *out = a->sig_history; return 1;
    case DSPEX_SIG_T_LIST: tag = a->sig_list; break;
    case DSPEX_SIG_T_SET: tag = a->sig_set; break;
    case DSPEX_SIG_T_DICT: tag = a->sig_dict; break;
    case DSPEX_SIG_T_TUPLE: tag = a->sig_tuple; break;
    case DSPEX_SIG_T_LITERAL: tag = a->sig_literal; break;
    case DSPEX_SIG_T_OPTIONAL: tag = a->sig_optional; break;
    case DSPEX_SIG_T_UNION: tag = a->sig_union; break;
    default: return 0;
    }
    if (!t->has_args) {
        *out = tag;
        return 1;
    }
    switch (t->kind) {
    case DSPEX_SIG_T_LIST:
    case DSPEX_SIG_T_SET:
    case DSPEX_SIG_T_OPTIONAL: {
        ERL_NIF_TERM inner;
        if (t->nargs != 1 || !type_term(env, t->args[0], &inner)) return 0;
        *out = enif_make_tuple2(env, tag, inner);
        return 1;
    }
    case DSPEX_SIG_T_DICT: {
        ERL_NIF_TERM k, v;
        if (t->nargs != 2 || !type_term(env, t->args[0], &k) || !type_term(env, t->args[1], &v))
            return 0;
        *out = enif_make_tuple3(env, tag, k, v);
        return 1;
    }
    case DSPEX_SIG_T_LITERAL: {
        ERL_NIF_TERM list = enif_make_list(env, 0);
        for (size_t i = t->nlits; i-- > 0;) {
            ERL_NIF_TERM v;
            if (!lit_term(env, &t->lits[i], &v)) return 0;
            list = enif_make_list_cell(env, v, list);
        }
        *out = enif_make_tuple2(env, tag, list);
        return 1;
    }
    default: { /* TUPLE, UNION */
        ERL_NIF_TERM list = enif_make_list(env, 0);
        if (t->variadic) list = enif_make_list_cell(env, a->sig_ellipsis, list);
        for (size_t i = t->nargs; i-- > 0;) {
            ERL_NIF_TERM v;
            if (!type_term(env, t->args[i], &v)) return 0;
            list = enif_make_list_cell(env, v, list);
        }
        *out = enif_make_tuple2(env, tag, list);
        return 1;
    }
    }
}

static int fields_term(ErlNifEnv *env, const dspex_sig_field *fields, size_t n, ERL_NIF_TERM *out) {
    const DspexAtoms *a = dspex_atoms(env);
    ERL_NIF_TERM list = enif_make_list(env, 0);
    for (size_t i = n; i-- > 0;) {
        ERL_NIF_TERM name, type;
        if (!make_bin(env, fields[i].name, fields[i].name_len, &name)) return 0;
        if (!type_term(env, fields[i].type, &type)) return 0;
        ERL_NIF_TERM defined = fields[i].type_defined ? a->true_ : a->false_;
        /* DSPy's stored prefix: infer_prefix(name) + ":" */
        ERL_NIF_TERM prefix;
        unsigned char *p = enif_make_new_binary(env, fields[i].prefix_len + 1, &prefix);
        if (p == NULL) return 0;
        memcpy(p, fields[i].prefix, fields[i].prefix_len);
        p[fields[i].prefix_len] = ':';
        list = enif_make_list_cell(env, enif_make_tuple4(env, name, type, defined, prefix), list);
    }
    *out = list;
    return 1;
}

static ERL_NIF_TERM signature_parse_impl(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const DspexAtoms *a = dspex_atoms(env);
    ErlNifBinary bin;
    if (!enif_inspect_binary(env, argv[0], &bin))
        return dspex_raise_badarg(env, "signature must be a binary, e.g. \"question -> answer\"");
    dspex_signature *sig = NULL;
    dspex_sig_error err;
    dspex_sig_status st = dspex_sig_parse((const char *)bin.data, bin.size, &sig, &err);
    if (st == DSPEX_SIG_ENOMEM) return enif_raise_exception(env, a->out_of_memory);
    if (st != DSPEX_SIG_OK)
        return dspex_error(env, a->signature_parse, err.message, err.column ? (long)err.column : -1);
    ERL_NIF_TERM ins, outs;
    int ok = fields_term(env, sig->fields, sig->ninputs, &ins) &&
             fields_term(env, sig->fields + sig->ninputs, sig->nfields - sig->ninputs, &outs);
    dspex_sig_free(sig);
    if (!ok) return enif_raise_exception(env, a->out_of_memory);
    return dspex_ok(env, enif_make_tuple2(env, ins, outs));
}

ERL_NIF_TERM dspex_nif_signature_parse(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    ErlNifBinary bin;
    if (argc == 1 && enif_inspect_binary(env, argv[0], &bin) && bin.size > SIG_DIRTY_THRESHOLD)
        return enif_schedule_nif(env, "signature_parse", ERL_NIF_DIRTY_JOB_CPU_BOUND,
                                 signature_parse_impl, argc, argv);
    return signature_parse_impl(env, argc, argv);
}
