/* NIF bindings for the adapters (c_src/core/adapter/render.c, parse.c): converts
 * %DSPex.Signature{} / field structs / Elixir values into the core's type and value trees
 * and the results back into terms. Binaries are referenced, not copied, while a call runs.
 * Calls whose inputs exceed DIRTY_BYTES reschedule themselves on a dirty CPU scheduler. */
#include <math.h>
#include <string.h>

#include "dspex/adapter.h"
#include "nif_util.h"

#define DIRTY_BYTES (64 * 1024)       /* format: total string bytes of the arguments */
#define DIRTY_PARSE_BYTES (16 * 1024) /* parse: pathological text costs ~30 ns/byte */
#define MAX_TERM_DEPTH 200
#define ARENA_STACK_BYTES 8192        /* first arena chunk lives on the C stack */
#define ARENA_LIMIT ((size_t)1 << 32) /* bound on one call's scratch memory */

typedef struct {
    ErlNifEnv *env;
    const DspexAtoms *at;
    dspex_arena *a;
    size_t bytes; /* string bytes seen (decides dirty scheduling) */
    const char *err; /* badarg message */
    ERL_NIF_TERM *name_terms; /* field name atoms, by field index */
} conv;

static int bad(conv *c, const char *msg) {
    if (c->err == NULL) c->err = msg;
    return -1;
}

/* The atom's text as UTF-8. OTP 25's enif_get_atom only speaks Latin-1, so Latin-1 text
 * is transcoded and atoms beyond Latin-1 are read from their external term format. */
static int atom_text(conv *c, ERL_NIF_TERM t, const char **s, size_t *n) {
    unsigned len;
    if (enif_get_atom_length(c->env, t, &len, ERL_NIF_LATIN1)) {
        char *l1 = dspex_arena_alloc(c->a, len + 1);
        char *buf = dspex_arena_alloc(c->a, 2 * (size_t)len + 1);
        if (l1 == NULL || buf == NULL) return bad(c, "out of memory");
        if (!enif_get_atom(c->env, t, l1, len + 1, ERL_NIF_LATIN1)) return -1;
        size_t o = 0;
        for (unsigned i = 0; i < len; i++) {
            unsigned char ch = (unsigned char)l1[i];
            if (ch < 0x80) {
                buf[o++] = (char)ch;
            } else {
                buf[o++] = (char)(0xc0 | (ch >> 6));
                buf[o++] = (char)(0x80 | (ch & 0x3f));
            }
        }
        buf[o] = '\0';
        *s = buf;
        *n = o;
        return 0;
    }
    if (!enif_is_atom(c->env, t)) return -1;
    ErlNifBinary ext;
    if (!enif_term_to_binary(c->env, t, &ext)) return bad(c, "out of memory");
    int rc = -1;
    /* 131, then ATOM_UTF8_EXT (118, u16 len) or SMALL_ATOM_UTF8_EXT (119, u8 len) */
    if (ext.size >= 3 && ext.data[0] == 131) {
        size_t off = 0, l = 0;
        if (ext.data[1] == 119) {
            l = ext.data[2];
            off = 3;
        } else if (ext.data[1] == 118 && ext.size >= 4) {
            l = ((size_t)ext.data[2] << 8) | ext.data[3];
            off = 4;
        }
        if (off && off + l <= ext.size) {
            char *buf = dspex_arena_strndup(c->a, (const char *)ext.data + off, l);
            if (buf) {
                *s = buf;
                *n = l;
                rc = 0;
            }
        }
    }
    enif_release_binary(&ext);
    return rc;
}

/* ---------------------------------------------------------------- values */
static dxa_val *to_val(conv *c, ERL_NIF_TERM t, int depth);

static dxa_val *map_to_dict(conv *c, ERL_NIF_TERM m, int depth, int skip_struct) {
    size_t n;
    if (!enif_get_map_size(c->env, m, &n)) return NULL;
    dxa_val *d = dxa_val_new(c->a, DXA_DICT);
    if (d == NULL) return NULL;
    d->keys = dspex_arena_alloc(c->a, (n + 1) * sizeof(dxa_val *));
    d->items = dspex_arena_alloc(c->a, (n + 1) * sizeof(dxa_val *));
    if (d->keys == NULL || d->items == NULL) return NULL;
    ErlNifMapIterator it;
    if (!enif_map_iterator_create(c->env, m, &it, ERL_NIF_MAP_ITERATOR_FIRST)) return NULL;
    ERL_NIF_TERM k, v;
    while (enif_map_iterator_get_pair(c->env, &it, &k, &v)) {
        if (!(skip_struct && enif_is_identical(k, c->at->ad_struct))) {
            dxa_val *kv = to_val(c, k, depth + 1);
            dxa_val *vv = kv ? to_val(c, v, depth + 1) : NULL;
            if (vv == NULL) {
                enif_map_iterator_destroy(c->env, &it);
                return NULL;
            }
            d->keys[d->n] = kv;
            d->items[d->n] = vv;
            d->n++;
        }
        enif_map_iterator_next(c->env, &it);
    }
    enif_map_iterator_destroy(c->env, &it);
    return d;
}

static dxa_val *list_to_seq(conv *c, ERL_NIF_TERM l, dxa_vkind kind, int depth) {
    unsigned n;
    if (!enif_get_list_length(c->env, l, &n)) {
        bad(c, "improper lists cannot be rendered; pass a proper list");
        return NULL;
    }
    dxa_val *v = dxa_val_new(c->a, kind);
    if (v == NULL) return NULL;
    v->items = dspex_arena_alloc(c->a, ((size_t)n + 1) * sizeof(dxa_val *));
    if (v->items == NULL) return NULL;
    ERL_NIF_TERM h;
    while (enif_get_list_cell(c->env, l, &h, &l)) {
        dxa_val *x = to_val(c, h, depth + 1);
        if (x == NULL) return NULL;
        v->items[v->n++] = x;
    }
    return v;
}

/* An integer beyond 64 bits, rendered as decimal text from its external term format
 * (SMALL_BIG_EXT 110 / LARGE_BIG_EXT 111: sign byte, little-endian base-256 digits). */
static dxa_val *big_int(conv *c, ERL_NIF_TERM t) {
    ErlNifBinary ext;
    if (!enif_term_to_binary(c->env, t, &ext)) {
        bad(c, "out of memory");
        return NULL;
    }
    dxa_val *v = NULL;
    size_t n = 0, off = 0;
    if (ext.size >= 3 && ext.data[0] == 131 && ext.data[1] == 110) {
        n = ext.data[2];
        off = 3;
    } else if (ext.size >= 6 && ext.data[0] == 131 && ext.data[1] == 111) {
        n = ((size_t)ext.data[2] << 24) | ((size_t)ext.data[3] << 16) | ((size_t)ext.data[4] << 8) | ext.data[5];
        off = 6;
    }
    if (off == 0 || n == 0 || n > 4096 || off + 1 + n > ext.size) {
        enif_release_binary(&ext);
        bad(c, "integers beyond 32768 bits are not supported in adapter values");
        return NULL;
    }
    int neg = ext.data[off] != 0;
    const unsigned char *d = ext.data + off + 1;
    /* repeated division by 10^9 of the base-256 number (most significant byte last) */
    unsigned char *num = dspex_arena_alloc(c->a, n);
    char *digits = dspex_arena_alloc(c->a, n * 3 + 2);
    if (num == NULL || digits == NULL) goto out;
    for (size_t i = 0; i < n; i++) num[i] = d[n - 1 - i]; /* big-endian copy */
    size_t len = n, nd = 0;
    while (len > 0) {
        unsigned long long rem = 0;
        size_t j = 0;
        for (size_t i = 0; i < len; i++) {
            unsigned long long cur = (rem << 8) | num[i];
            unsigned long long q = cur / 1000000000ULL;
            rem = cur % 1000000000ULL;
            if (j > 0 || q > 0) num[j++] = (unsigned char)q;
        }
        len = j;
        for (int k = 0; k < 9 && (len > 0 || rem > 0 || k == 0); k++) {
            digits[nd++] = (char)('0' + rem % 10);
            rem /= 10;
        }
    }
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    if (neg) digits[nd++] = '-';
    for (size_t i = 0; i < nd / 2; i++) {
        char tmp = digits[i];
        digits[i] = digits[nd - 1 - i];
        digits[nd - 1 - i] = tmp;
    }
    v = dxa_val_new(c->a, DXA_INT);
    if (v) {
        v->s = digits;
        v->slen = nd;
        v->i = neg ? -9223372036854775807LL - 1 : 9223372036854775807LL; /* saturated */
    }
out:
    enif_release_binary(&ext);
    if (v == NULL) bad(c, "out of memory");
    return v;
}

static dxa_val *to_val(conv *c, ERL_NIF_TERM t, int depth) {
    if (depth > MAX_TERM_DEPTH) {
        bad(c, "value nested more than 200 levels deep");
        return NULL;
    }
    ErlNifBinary bin;
    dxa_val *v;
    if (enif_is_binary(c->env, t)) {
        if (!enif_inspect_binary(c->env, t, &bin)) return NULL;
        v = dxa_val_new(c->a, DXA_STR);
        if (v == NULL) return NULL;
        v->s = (const char *)bin.data;
        v->slen = bin.size;
        c->bytes += bin.size;
        return v;
    }
    if (enif_is_atom(c->env, t)) {
        if (enif_is_identical(t, c->at->nil)) return dxa_val_new(c->a, DXA_NONE);
        if (enif_is_identical(t, c->at->true_) || enif_is_identical(t, c->at->false_)) {
            v = dxa_val_new(c->a, DXA_BOOL);
            if (v) v->b = enif_is_identical(t, c->at->true_);
            return v;
        }
        v = dxa_val_new(c->a, DXA_STR);
        if (v == NULL || atom_text(c, t, &v->s, &v->slen) != 0) return NULL;
        return v;
    }
    if (enif_is_number(c->env, t)) {
        ErlNifSInt64 i;
        double d;
        if (enif_get_int64(c->env, t, &i)) {
            v = dxa_val_new(c->a, DXA_INT);
            if (v) v->i = (long long)i;
            return v;
        }
        if (enif_get_double(c->env, t, &d)) {
            v = dxa_val_new(c->a, DXA_FLOAT);
            if (v) v->f = d;
            return v;
        }
        return big_int(c, t);
    }
    if (enif_is_list(c->env, t)) return list_to_seq(c, t, DXA_LIST, depth);
    int arity;
    const ERL_NIF_TERM *el;
    if (enif_get_tuple(c->env, t, &arity, &el)) {
        if (arity == 2 && enif_is_identical(el[0], c->at->ad_ordered) && enif_is_list(c->env, el[1])) {
            /* {:ordered, [{k, v}]}: a dict with insertion order */
            unsigned n;
            if (!enif_get_list_length(c->env, el[1], &n)) return NULL;
            v = dxa_val_new(c->a, DXA_DICT);
            if (v == NULL) return NULL;
            v->keys = dspex_arena_alloc(c->a, ((size_t)n + 1) * sizeof(dxa_val *));
            v->items = dspex_arena_alloc(c->a, ((size_t)n + 1) * sizeof(dxa_val *));
            if (v->keys == NULL || v->items == NULL) return NULL;
            ERL_NIF_TERM l = el[1], h;
            while (enif_get_list_cell(c->env, l, &h, &l)) {
                int pa;
                const ERL_NIF_TERM *pe;
                if (!enif_get_tuple(c->env, h, &pa, &pe) || pa != 2) {
                    bad(c, "{:ordered, pairs} takes a list of {key, value} tuples");
                    return NULL;
                }
                dxa_val *k = to_val(c, pe[0], depth + 1), *x = k ? to_val(c, pe[1], depth + 1) : NULL;
                if (x == NULL) return NULL;
                v->keys[v->n] = k;
                v->items[v->n] = x;
                v->n++;
            }
            return v;
        }
        v = dxa_val_new(c->a, DXA_TUPLE);
        if (v == NULL) return NULL;
        v->items = dspex_arena_alloc(c->a, ((size_t)arity + 1) * sizeof(dxa_val *));
        if (v->items == NULL) return NULL;
        for (int i = 0; i < arity; i++) {
            dxa_val *x = to_val(c, el[i], depth + 1);
            if (x == NULL) return NULL;
            v->items[v->n++] = x;
        }
        return v;
    }
    if (enif_is_map(c->env, t)) {
        ERL_NIF_TERM st;
        if (enif_get_map_value(c->env, t, c->at->ad_struct, &st)) {
            ERL_NIF_TERM inner;
            if (enif_is_identical(st, c->at->ad_history_mod) &&
                enif_get_map_value(c->env, t, c->at->ad_messages, &inner)) {
                v = list_to_seq(c, inner, DXA_HISTORY, depth);
                return v;
            }
            if (enif_is_identical(st, c->at->ad_mapset_mod) && enif_get_map_value(c->env, t, c->at->ad_map, &inner) &&
                enif_is_map(c->env, inner)) {
                dxa_val *d = map_to_dict(c, inner, depth, 0);
                if (d == NULL) return NULL;
                d->kind = DXA_SET;
                d->items = d->keys;
                d->keys = NULL;
                return d;
            }
            return map_to_dict(c, t, depth, 1);
        }
        return map_to_dict(c, t, depth, 0);
    }
    bad(c, "adapter values must be strings, numbers, booleans, nil, atoms, lists, tuples or maps");
    return NULL;
}

/* ---------------------------------------------------------------- types */
static dxa_type *to_type(conv *c, ERL_NIF_TERM t, int depth);

static int type_list(conv *c, ERL_NIF_TERM l, dxa_type *out, int allow_ellipsis, int depth) {
    unsigned n;
    if (!enif_get_list_length(c->env, l, &n) || n == 0) return bad(c, "type argument lists must be non-empty lists");
    out->args = dspex_arena_alloc(c->a, (size_t)n * sizeof(dxa_type *));
    if (out->args == NULL) return bad(c, "out of memory");
    ERL_NIF_TERM h;
    while (enif_get_list_cell(c->env, l, &h, &l)) {
        if (allow_ellipsis && enif_is_identical(h, c->at->sig_ellipsis)) {
            out->variadic = 1;
            continue;
        }
        dxa_type *a = to_type(c, h, depth + 1);
        if (a == NULL) return -1;
        out->args[out->nargs++] = a;
    }
    return 0;
}

static dxa_type *to_type(conv *c, ERL_NIF_TERM t, int depth) {
    const DspexAtoms *at = c->at;
    if (depth > MAX_TERM_DEPTH) {
        bad(c, "type nested too deeply");
        return NULL;
    }
    if (enif_is_atom(c->env, t)) {
        static const dxa_tkind kinds[] = {DXT_STR,  DXT_INT,  DXT_FLOAT, DXT_BOOL,  DXT_ANY, DXT_NONE,
                                          DXT_HISTORY, DXT_LIST, DXT_DICT, DXT_TUPLE, DXT_SET};
        ERL_NIF_TERM names[] = {at->sig_str,  at->sig_int,  at->sig_float, at->sig_bool,  at->sig_any, at->sig_none,
                                at->sig_history, at->sig_list, at->sig_dict, at->sig_tuple, at->sig_set};
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
            if (enif_is_identical(t, names[i])) return dxa_type_new(c->a, kinds[i]);
        bad(c, "unknown type atom in signature field (expected :str, :int, :float, :bool, :any, :none, "
               ":history, :list, :dict, :tuple or :set)");
        return NULL;
    }
    int arity;
    const ERL_NIF_TERM *el;
    if (!enif_get_tuple(c->env, t, &arity, &el) || arity < 2) {
        bad(c, "invalid type term in signature field; see DSPex.Signature.Field");
        return NULL;
    }
    dxa_type *ty = NULL;
    ERL_NIF_TERM tag = el[0];
    if ((enif_is_identical(tag, at->sig_list) || enif_is_identical(tag, at->sig_set) ||
         enif_is_identical(tag, at->sig_optional)) &&
        arity == 2) {
        ty = dxa_type_new(c->a, enif_is_identical(tag, at->sig_list)  ? DXT_LIST
                                : enif_is_identical(tag, at->sig_set) ? DXT_SET
                                                                      : DXT_OPTIONAL);
        if (ty == NULL) return NULL;
        ty->args = dspex_arena_alloc(c->a, sizeof(dxa_type *));
        if (ty->args == NULL) return NULL;
        ty->args[0] = to_type(c, el[1], depth + 1);
        if (ty->args[0] == NULL) return NULL;
        ty->nargs = 1;
        return ty;
    }
    if (enif_is_identical(tag, at->sig_dict) && arity == 3) {
        ty = dxa_type_new(c->a, DXT_DICT);
        if (ty == NULL) return NULL;
        ty->args = dspex_arena_alloc(c->a, 2 * sizeof(dxa_type *));
        if (ty->args == NULL) return NULL;
        ty->args[0] = to_type(c, el[1], depth + 1);
        ty->args[1] = ty->args[0] ? to_type(c, el[2], depth + 1) : NULL;
        if (ty->args[1] == NULL) return NULL;
        ty->nargs = 2;
        return ty;
    }
    if ((enif_is_identical(tag, at->sig_tuple) || enif_is_identical(tag, at->sig_union)) && arity == 2) {
        ty = dxa_type_new(c->a, enif_is_identical(tag, at->sig_tuple) ? DXT_TUPLE : DXT_UNION);
        if (ty == NULL || type_list(c, el[1], ty, ty->kind == DXT_TUPLE, depth) != 0) return NULL;
        return ty;
    }
    if (enif_is_identical(tag, at->sig_literal) && arity == 2) {
        dxa_val *l = to_val(c, el[1], depth + 1);
        if (l == NULL || l->kind != DXA_LIST || l->n == 0) {
            bad(c, "{:literal, values} takes a non-empty list");
            return NULL;
        }
        ty = dxa_type_new(c->a, DXT_LITERAL);
        if (ty == NULL) return NULL;
        ty->lits = l->items;
        ty->nlits = l->n;
        return ty;
    }
    if (enif_is_identical(tag, at->ad_enum) && arity == 3) {
        dxa_val *name = to_val(c, el[1], depth + 1);
        dxa_val *l = name ? to_val(c, el[2], depth + 1) : NULL;
        if (l == NULL || name->kind != DXA_STR || l->kind != DXA_LIST) {
            bad(c, "{:enum, \"Name\", values} takes a name and a list of string values");
            return NULL;
        }
        ty = dxa_type_new(c->a, DXT_ENUM);
        if (ty == NULL) return NULL;
        ty->enum_name = dspex_arena_strndup(c->a, name->s, name->slen);
        if (ty->enum_name == NULL) return NULL;
        for (size_t i = 0; i < l->n; i++)
            if (l->items[i]->kind != DXA_STR) {
                bad(c, "enum values must be strings");
                return NULL;
            }
        ty->enum_vals = l->items;
        ty->nenum = l->n;
        return ty;
    }
    bad(c, "invalid type term in signature field; see DSPex.Signature.Field");
    return NULL;
}

/* ---------------------------------------------------------------- signature */
static int field_from(conv *c, ERL_NIF_TERM f, int is_input, dxa_field *out, ERL_NIF_TERM *name_term) {
    ERL_NIF_TERM name, type, desc, cons;
    if (!enif_is_map(c->env, f) || !enif_get_map_value(c->env, f, c->at->ad_name, &name) ||
        !enif_get_map_value(c->env, f, c->at->ad_type, &type))
        return bad(c, "signature fields must be %DSPex.Signature.Field{} structs with :name and :type");
    if (!enif_is_atom(c->env, name) || atom_text(c, name, &out->name, &out->name_len) != 0)
        return bad(c, "field names must be atoms");
    *name_term = name;
    out->is_input = is_input;
    out->type = to_type(c, type, 0);
    if (out->type == NULL) return -1;
    if (enif_get_map_value(c->env, f, c->at->ad_desc, &desc) && !enif_is_identical(desc, c->at->nil)) {
        ErlNifBinary b;
        if (!enif_inspect_binary(c->env, desc, &b)) return bad(c, "field desc must be a binary or nil");
        out->desc = (const char *)b.data;
        out->desc_len = b.size;
    }
    if (enif_get_map_value(c->env, f, c->at->ad_constraints, &cons) && enif_is_list(c->env, cons)) {
        unsigned n;
        if (!enif_get_list_length(c->env, cons, &n)) return bad(c, "constraints must be a keyword list");
        out->constraints = dspex_arena_alloc(c->a, ((size_t)n + 1) * sizeof(dxa_constraint));
        if (out->constraints == NULL) return bad(c, "out of memory");
        ERL_NIF_TERM h;
        while (enif_get_list_cell(c->env, cons, &h, &cons)) {
            int ar;
            const ERL_NIF_TERM *kv;
            size_t kl;
            dxa_constraint *k = &out->constraints[out->nconstraints];
            if (!enif_get_tuple(c->env, h, &ar, &kv) || ar != 2 || atom_text(c, kv[0], &k->key, &kl) != 0)
                return bad(c, "constraints must be a keyword list");
            k->value = to_val(c, kv[1], 1);
            if (k->value == NULL) return -1;
            out->nconstraints++;
        }
    }
    return 0;
}

static int sig_from(conv *c, ERL_NIF_TERM s, dxa_sig *sig) {
    ERL_NIF_TERM ins, outs, instr;
    unsigned ni, no;
    memset(sig, 0, sizeof *sig);
    if (!enif_is_map(c->env, s) || !enif_get_map_value(c->env, s, c->at->ad_inputs, &ins) ||
        !enif_get_map_value(c->env, s, c->at->ad_outputs, &outs) || !enif_get_list_length(c->env, ins, &ni) ||
        !enif_get_list_length(c->env, outs, &no))
        return bad(c, "expected a %DSPex.Signature{} with :inputs and :outputs lists");
    if (enif_get_map_value(c->env, s, c->at->ad_instructions, &instr) && !enif_is_identical(instr, c->at->nil)) {
        ErlNifBinary b;
        if (!enif_inspect_binary(c->env, instr, &b)) return bad(c, "signature instructions must be a binary");
        sig->instructions = (const char *)b.data;
        sig->instructions_len = b.size;
        c->bytes += b.size;
    }
    sig->fields = dspex_arena_alloc(c->a, ((size_t)ni + no + 1) * sizeof(dxa_field));
    c->name_terms = dspex_arena_alloc(c->a, ((size_t)ni + no + 1) * sizeof(ERL_NIF_TERM));
    if (sig->fields == NULL || c->name_terms == NULL) return bad(c, "out of memory");
    ERL_NIF_TERM h;
    while (enif_get_list_cell(c->env, ins, &h, &ins)) {
        if (field_from(c, h, 1, &sig->fields[sig->nfields], &c->name_terms[sig->nfields]) != 0) return -1;
        sig->nfields++;
    }
    sig->ninputs = sig->nfields;
    while (enif_get_list_cell(c->env, outs, &h, &outs)) {
        if (field_from(c, h, 0, &sig->fields[sig->nfields], &c->name_terms[sig->nfields]) != 0) return -1;
        sig->nfields++;
    }
    return 0;
}

/* The signature term as the core's dxa_sig, for other concerns (nif_grammar.c builds the
 * adapters' output grammars from it). 0, or -1 with *err set. Memory in arena a. */
int dspex_nif_adapter_sig(ErlNifEnv *env, ERL_NIF_TERM t, dspex_arena *a, dxa_sig *out, const char **err);
int dspex_nif_adapter_sig(ErlNifEnv *env, ERL_NIF_TERM t, dspex_arena *a, dxa_sig *out, const char **err) {
    conv c = {.env = env, .at = dspex_atoms(env), .a = a};
    int rc = sig_from(&c, t, out);
    if (rc != 0) *err = c.err ? c.err : "invalid signature";
    return rc;
}

/* ---------------------------------------------------------------- results */
/* A decimal integer beyond 64 bits (at most 4300 digits) as an Erlang bignum, built as
 * LARGE_BIG_EXT and decoded with enif_binary_to_term. */
static ERL_NIF_TERM big_term(ErlNifEnv *env, const dxa_val *v) {
    const char *s = v->s;
    size_t n = v->slen;
    int neg = n > 0 && s[0] == '-';
    if (neg) {
        s++;
        n--;
    }
    if (n == 0 || n > 4300) return dspex_atoms(env)->nil;
    size_t cap = n / 2 + 2; /* bytes: log256(10^n) < n/2 + 1 */
    unsigned char *buf = enif_alloc(7 + cap);
    if (buf == NULL) return enif_raise_exception(env, dspex_atoms(env)->out_of_memory);
    unsigned char *num = buf + 7; /* little-endian base 256 */
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned carry = (unsigned)(s[i] - '0');
        for (size_t j = 0; j < len; j++) {
            unsigned cur = num[j] * 10u + carry;
            num[j] = (unsigned char)(cur & 0xff);
            carry = cur >> 8;
        }
        while (carry && len < cap) {
            num[len++] = (unsigned char)(carry & 0xff);
            carry >>= 8;
        }
    }
    while (len > 0 && num[len - 1] == 0) len--;
    ERL_NIF_TERM t;
    if (len == 0) {
        t = enif_make_int(env, 0);
    } else {
        buf[0] = 131;
        buf[1] = 111;
        buf[2] = (unsigned char)(len >> 24);
        buf[3] = (unsigned char)(len >> 16);
        buf[4] = (unsigned char)(len >> 8);
        buf[5] = (unsigned char)len;
        buf[6] = (unsigned char)neg;
        if (enif_binary_to_term(env, buf, 7 + len, &t, 0) == 0) t = dspex_atoms(env)->nil;
    }
    enif_free(buf);
    return t;
}

static ERL_NIF_TERM from_val(ErlNifEnv *env, const dxa_val *v, int depth) {
    const DspexAtoms *at = dspex_atoms(env);
    if (depth > MAX_TERM_DEPTH * 2) return at->nil;
    switch (v->kind) {
    case DXA_NONE: return at->nil;
    case DXA_BOOL: return v->b ? at->true_ : at->false_;
    case DXA_INT: return v->s ? big_term(env, v) : enif_make_int64(env, (ErlNifSInt64)v->i);
    case DXA_FLOAT: return isfinite(v->f) ? enif_make_double(env, v->f) : at->nil; /* no inf/nan in Erlang */
    case DXA_STR: return dspex_make_binary(env, v->s, v->slen);
    case DXA_TUPLE: {
        ERL_NIF_TERM small[16];
        ERL_NIF_TERM *arr = v->n <= 16 ? small : enif_alloc(v->n * sizeof(ERL_NIF_TERM));
        if (arr == NULL) return enif_raise_exception(env, at->out_of_memory);
        for (size_t i = 0; i < v->n; i++) arr[i] = from_val(env, v->items[i], depth + 1);
        ERL_NIF_TERM t = enif_make_tuple_from_array(env, arr, (unsigned)v->n);
        if (arr != small) enif_free(arr);
        return t;
    }
    case DXA_LIST:
    case DXA_SET:
    case DXA_HISTORY: {
        ERL_NIF_TERM l = enif_make_list(env, 0);
        for (size_t i = v->n; i > 0; i--) l = enif_make_list_cell(env, from_val(env, v->items[i - 1], depth + 1), l);
        return l;
    }
    case DXA_DICT: {
        ERL_NIF_TERM m = enif_make_new_map(env);
        for (size_t i = 0; i < v->n; i++) {
            ERL_NIF_TERM out;
            enif_make_map_put(env, m, from_val(env, v->keys[i], depth + 1), from_val(env, v->items[i], depth + 1),
                              &out);
            m = out;
        }
        return m;
    }
    }
    return at->nil;
}

static int adapter_kind(ErlNifEnv *env, ERL_NIF_TERM t, dxa_adapter *ad) {
    const DspexAtoms *at = dspex_atoms(env);
    if (enif_is_identical(t, at->ad_chat)) {
        *ad = DXA_CHAT;
        return 0;
    }
    if (enif_is_identical(t, at->ad_json)) {
        *ad = DXA_JSON;
        return 0;
    }
    return -1;
}

static int on_dirty(void) { return enif_thread_type() == ERL_NIF_THR_DIRTY_CPU_SCHEDULER; }

/* ---------------------------------------------------------------- format */
static ERL_NIF_TERM do_format(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);

ERL_NIF_TERM dspex_nif_adapter_format(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    return do_format(env, argc, argv);
}

static ERL_NIF_TERM do_format(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    const DspexAtoms *at = dspex_atoms(env);
    dxa_adapter ad;
    if (argc != 4 || adapter_kind(env, argv[0], &ad) != 0)
        return dspex_raise_badarg(env, "adapter must be :chat or :json");
    dspex_arena a;
    _Alignas(16) unsigned char stack_chunk[ARENA_STACK_BYTES];
    dspex_arena_init_buf(&a, ARENA_LIMIT, stack_chunk, sizeof stack_chunk);
    conv c = {.env = env, .at = at, .a = &a};
    dxa_sig sig;
    ERL_NIF_TERM result;
    unsigned nd;
    if (sig_from(&c, argv[1], &sig) != 0) goto badarg;
    if (!enif_get_list_length(env, argv[2], &nd)) {
        bad(&c, "demos must be a list of maps");
        goto badarg;
    }
    dxa_val **demos = dspex_arena_alloc(&a, ((size_t)nd + 1) * sizeof(dxa_val *));
    if (demos == NULL) goto oom;
    ERL_NIF_TERM l = argv[2], h;
    size_t k = 0;
    while (enif_get_list_cell(env, l, &h, &l)) {
        if (!enif_is_map(env, h)) {
            bad(&c, "each demo must be a map with atom keys");
            goto badarg;
        }
        demos[k] = to_val(&c, h, 0);
        if (demos[k] == NULL) goto badarg;
        k++;
    }
    if (!enif_is_map(env, argv[3])) {
        bad(&c, "inputs must be a map with atom keys");
        goto badarg;
    }
    dxa_val *inputs = to_val(&c, argv[3], 0);
    if (inputs == NULL) goto badarg;
    if (c.bytes > DIRTY_BYTES && !on_dirty()) {
        dspex_arena_free(&a);
        return enif_schedule_nif(env, "adapter_format_dirty", ERL_NIF_DIRTY_JOB_CPU_BOUND, do_format, argc, argv);
    }
    dxa_msgs msgs;
    if (dxa_format(ad, &sig, demos, k, inputs, &a, &msgs) != 0) goto oom;
    {
        ERL_NIF_TERM roles[3] = {dspex_make_binary(env, "system", 6), dspex_make_binary(env, "user", 4),
                                 dspex_make_binary(env, "assistant", 9)};
        ERL_NIF_TERM keys[2] = {at->ad_role, at->ad_content};
        result = enif_make_list(env, 0);
        for (size_t i = msgs.n; i > 0; i--) {
            ERL_NIF_TERM vals[2] = {roles[msgs.msgs[i - 1].role],
                                    dspex_make_binary(env, msgs.msgs[i - 1].content, msgs.msgs[i - 1].len)};
            ERL_NIF_TERM m;
            if (!enif_make_map_from_arrays(env, keys, vals, 2, &m)) goto oom;
            result = enif_make_list_cell(env, m, result);
        }
    }
    dspex_arena_free(&a);
    return dspex_ok(env, result);
badarg:
    dspex_arena_free(&a);
    return dspex_raise_badarg(env, c.err ? c.err : "invalid adapter arguments");
oom:
    dspex_arena_free(&a);
    return enif_raise_exception(env, at->out_of_memory);
}

ERL_NIF_TERM dspex_nif_adapter_format_assistant(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    const DspexAtoms *at = dspex_atoms(env);
    dxa_adapter ad;
    if (argc != 4 || adapter_kind(env, argv[0], &ad) != 0)
        return dspex_raise_badarg(env, "adapter must be :chat or :json");
    dspex_arena a;
    _Alignas(16) unsigned char stack_chunk[ARENA_STACK_BYTES];
    dspex_arena_init_buf(&a, ARENA_LIMIT, stack_chunk, sizeof stack_chunk);
    conv c = {.env = env, .at = at, .a = &a};
    dxa_sig sig;
    const char *missing = NULL;
    if (sig_from(&c, argv[1], &sig) != 0) goto badarg;
    if (!enif_is_map(env, argv[2])) {
        bad(&c, "outputs must be a map with atom keys");
        goto badarg;
    }
    dxa_val *outputs = to_val(&c, argv[2], 0);
    if (outputs == NULL) goto badarg;
    if (c.bytes > DIRTY_BYTES && !on_dirty()) {
        dspex_arena_free(&a);
        return enif_schedule_nif(env, "adapter_format_assistant_dirty", ERL_NIF_DIRTY_JOB_CPU_BOUND,
                                 dspex_nif_adapter_format_assistant, argc, argv);
    }
    if (!enif_is_identical(argv[3], at->nil)) {
        ErlNifBinary b;
        if (!enif_inspect_binary(env, argv[3], &b)) {
            bad(&c, "missing-field message must be a binary or nil");
            goto badarg;
        }
        missing = dspex_arena_strndup(&a, (const char *)b.data, b.size);
        if (missing == NULL) goto oom;
    }
    dspex_buf out;
    dspex_buf_init(&out);
    if (dxa_format_assistant(ad, &sig, outputs, missing, &out) != 0) {
        dspex_buf_free(&out);
        goto oom;
    }
    ERL_NIF_TERM bin = dspex_make_binary(env, out.p ? out.p : "", out.len);
    dspex_buf_free(&out);
    dspex_arena_free(&a);
    return dspex_ok(env, bin);
badarg:
    dspex_arena_free(&a);
    return dspex_raise_badarg(env, c.err ? c.err : "invalid adapter arguments");
oom:
    dspex_arena_free(&a);
    return enif_raise_exception(env, at->out_of_memory);
}

/* ---------------------------------------------------------------- parse */
static ERL_NIF_TERM do_parse(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    const DspexAtoms *at = dspex_atoms(env);
    dxa_adapter ad;
    ErlNifBinary text;
    if (argc != 3 || adapter_kind(env, argv[0], &ad) != 0)
        return dspex_raise_badarg(env, "adapter must be :chat or :json");
    if (!enif_inspect_binary(env, argv[2], &text)) return dspex_raise_badarg(env, "completion must be a binary");
    if (text.size > DIRTY_PARSE_BYTES && !on_dirty())
        return enif_schedule_nif(env, "adapter_parse_dirty", ERL_NIF_DIRTY_JOB_CPU_BOUND, do_parse, argc, argv);
    dspex_arena a;
    _Alignas(16) unsigned char stack_chunk[ARENA_STACK_BYTES];
    dspex_arena_init_buf(&a, ARENA_LIMIT, stack_chunk, sizeof stack_chunk);
    conv c = {.env = env, .at = at, .a = &a};
    dxa_sig sig;
    if (sig_from(&c, argv[1], &sig) != 0) {
        dspex_arena_free(&a);
        return dspex_raise_badarg(env, c.err ? c.err : "invalid signature");
    }
    size_t nout = sig.nfields - sig.ninputs;
    dxa_val **vals = dspex_arena_alloc(&a, (nout + 1) * sizeof(dxa_val *));
    dxa_err *err = dspex_arena_alloc(&a, sizeof(dxa_err));
    if (vals == NULL || err == NULL) {
        dspex_arena_free(&a);
        return enif_raise_exception(env, at->out_of_memory);
    }
    int rc = dxa_parse(ad, &sig, (const char *)text.data, text.size, &a, vals, err);
    ERL_NIF_TERM result;
    if (rc < 0) {
        dspex_arena_free(&a);
        return enif_raise_exception(env, at->out_of_memory);
    }
    if (rc > 0) {
        result = dspex_error(env, at->ad_adapter_parse, err->message, -1);
        if (err->full) {
            /* the whole message (it quotes the LM response, which can be long) */
            ERL_NIF_TERM msg = dspex_make_binary(env, err->full, err->full_len);
            result = enif_make_tuple2(env, at->error, enif_make_tuple3(env, at->ad_adapter_parse, msg, at->nil));
        }
    } else {
        ERL_NIF_TERM m = enif_make_new_map(env);
        for (size_t k = 0; k < nout; k++) {
            ERL_NIF_TERM out;
            enif_make_map_put(env, m, c.name_terms[sig.ninputs + k], from_val(env, vals[k], 0), &out);
            m = out;
        }
        result = dspex_ok(env, m);
    }
    dspex_arena_free(&a);
    return result;
}

ERL_NIF_TERM dspex_nif_adapter_parse(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    return do_parse(env, argc, argv);
}

/* Parse one value text against a type term (DSPy's parse_value); for tests and tools. */
ERL_NIF_TERM dspex_nif_adapter_parse_value(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    const DspexAtoms *at = dspex_atoms(env);
    ErlNifBinary text;
    if (argc != 2 || !enif_inspect_binary(env, argv[1], &text))
        return dspex_raise_badarg(env, "parse_value takes a type term and a binary");
    dspex_arena a;
    _Alignas(16) unsigned char stack_chunk[ARENA_STACK_BYTES];
    dspex_arena_init_buf(&a, ARENA_LIMIT, stack_chunk, sizeof stack_chunk);
    conv c = {.env = env, .at = at, .a = &a};
    dxa_type *t = to_type(&c, argv[0], 0);
    if (t == NULL) {
        dspex_arena_free(&a);
        return dspex_raise_badarg(env, c.err ? c.err : "invalid type");
    }
    dxa_val *v = NULL;
    dxa_err *err = dspex_arena_alloc(&a, sizeof(dxa_err));
    if (err == NULL) {
        dspex_arena_free(&a);
        return enif_raise_exception(env, at->out_of_memory);
    }
    int rc = dxa_parse_value(t, (const char *)text.data, text.size, &a, &v, err);
    ERL_NIF_TERM result = rc < 0   ? enif_raise_exception(env, at->out_of_memory)
                          : rc > 0 ? dspex_error(env, at->ad_adapter_parse, err->message, -1)
                                   : dspex_ok(env, from_val(env, v, 0));
    dspex_arena_free(&a);
    return result;
}
