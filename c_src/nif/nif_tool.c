/* NIF bindings for tools (c_src/core/signature/tool.c).
 *
 * tool_text(Name, Desc | nil, Params) -> Binary     str(dspy.Tool): what ReAct shows
 * tool_args(Params) -> {:ordered, [{Name, Schema}]}  dspy.Tool.args, dicts as ordered terms
 *
 * Params = [{NameBinary, Type, {:value, Default} | nil, DescBinary | nil}] in order.
 * Bad arguments raise ArgumentError; a tool is small (at most DSPEX_TOOL_MAX_PARAMS
 * parameters of bounded types), so these run on the calling scheduler. */
#include <string.h>

#include "dspex/tool.h"
#include "nif_terms.h"

static const char PARAMS_HELP[] =
    "tool params are a list of {name, type, {:value, default} | nil, desc | nil} (at most 256)";

/* Reads Params into *out; 0, or an exception term in *err. */
static int params_arg(ErlNifEnv *env, ERL_NIF_TERM list, dspex_arena *a, dspex_tool_param **out, size_t *n,
                      ERL_NIF_TERM *err) {
    const DspexAtoms *at = dspex_atoms(env);
    unsigned len;
    if (!enif_get_list_length(env, list, &len) || len > DSPEX_TOOL_MAX_PARAMS) {
        *err = dspex_raise_badarg(env, PARAMS_HELP);
        return -1;
    }
    dspex_tool_param *ps = dspex_arena_alloc(a, ((size_t)len + 1) * sizeof *ps);
    if (ps == NULL) {
        *err = enif_raise_exception(env, at->out_of_memory);
        return -1;
    }
    nt_ctx c = {.env = env, .at = at, .a = a};
    ERL_NIF_TERM h;
    size_t k = 0;
    while (enif_get_list_cell(env, list, &h, &list)) {
        int ar, dar;
        const ERL_NIF_TERM *el, *del;
        ErlNifBinary name, desc;
        dspex_tool_param *p = &ps[k];
        memset(p, 0, sizeof *p);
        if (!enif_get_tuple(env, h, &ar, &el) || ar != 4 || !enif_inspect_binary(env, el[0], &name)) {
            *err = dspex_raise_badarg(env, PARAMS_HELP);
            return -1;
        }
        p->name = (const char *)name.data;
        p->name_len = name.size;
        if ((p->type = nt_to_type(&c, el[1], 0)) == NULL) {
            *err = c.status == NT_OOM ? enif_raise_exception(env, at->out_of_memory)
                                      : dspex_raise_badarg(env, c.err ? c.err : "invalid type");
            return -1;
        }
        if (enif_get_tuple(env, el[2], &dar, &del) && dar == 2 && enif_is_identical(del[0], at->value)) {
            if ((p->default_value = nt_to_val(&c, del[1], 0)) == NULL) {
                *err = c.status == NT_OOM ? enif_raise_exception(env, at->out_of_memory)
                                          : dspex_raise_badarg(env, c.err ? c.err : "invalid default value");
                return -1;
            }
        } else if (!enif_is_identical(el[2], at->nil)) {
            *err = dspex_raise_badarg(env, PARAMS_HELP);
            return -1;
        }
        if (enif_inspect_binary(env, el[3], &desc)) {
            p->desc = (const char *)desc.data;
            p->desc_len = desc.size;
        } else if (!enif_is_identical(el[3], at->nil)) {
            *err = dspex_raise_badarg(env, PARAMS_HELP);
            return -1;
        }
        k++;
    }
    *out = ps;
    *n = k;
    return 0;
}

ERL_NIF_TERM dspex_nif_tool_text(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    const DspexAtoms *at = dspex_atoms(env);
    ErlNifBinary name, desc = {0};
    if (argc != 3 || !enif_inspect_binary(env, argv[0], &name) ||
        !(enif_is_identical(argv[1], at->nil) || enif_inspect_binary(env, argv[1], &desc)))
        return dspex_raise_badarg(env, "tool_text takes a name, a description (or nil) and the params");
    dspex_arena a;
    dspex_arena_init(&a, 1u << 26);
    dspex_tool_param *ps = NULL;
    size_t n = 0;
    ERL_NIF_TERM result;
    if (params_arg(env, argv[2], &a, &ps, &n, &result) == 0) {
        dspex_buf b;
        dspex_buf_init(&b);
        if (dspex_tool_text((const char *)name.data, name.size, desc.data ? (const char *)desc.data : NULL, desc.size,
                            ps, n, &a, &b) != 0 ||
            b.oom)
            result = enif_raise_exception(env, at->out_of_memory);
        else
            result = dspex_make_binary(env, b.p ? b.p : "", b.len);
        dspex_buf_free(&b);
    }
    dspex_arena_free(&a);
    return result;
}

ERL_NIF_TERM dspex_nif_tool_args(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    const DspexAtoms *at = dspex_atoms(env);
    if (argc != 1) return dspex_raise_badarg(env, "tool_args/1");
    dspex_arena a;
    dspex_arena_init(&a, 1u << 26);
    dspex_tool_param *ps = NULL;
    size_t n = 0;
    ERL_NIF_TERM result;
    if (params_arg(env, argv[0], &a, &ps, &n, &result) == 0) {
        dspex_val *args = dspex_tool_args(ps, n, &a);
        if (args == NULL || nt_from_val_as(env, args, 1, &result, NULL) != 0)
            result = enif_raise_exception(env, at->out_of_memory);
    }
    dspex_arena_free(&a);
    return result;
}
