/* Elixir terms <-> core values and types. See nif_terms.h. */
#include "nif_terms.h"

#include <math.h>
#include <string.h>

static void *bad(nt_ctx *c, const char *msg) {
    if (c->status == NT_OK) {
        c->status = NT_BAD;
        c->err = msg;
    }
    return NULL;
}

static void *oom(nt_ctx *c) {
    if (c->status == NT_OK) {
        c->status = NT_OOM;
        c->err = "out of memory";
    }
    return NULL;
}

static dspex_val *new_val(nt_ctx *c, dspex_vkind kind) {
    dspex_val *v = dspex_val_new(c->a, kind);
    return v ? v : oom(c);
}

static int charge(nt_ctx *c, size_t n) {
    if (c->work) dspex_work_add(c->work, n);
    return 0;
}

/* ---------------------------------------------------------------- values */
/* An integer beyond 64 bits as decimal text, from its external term format
 * (SMALL_BIG_EXT 110 / LARGE_BIG_EXT 111: sign byte, little-endian base-256 digits). */
static dspex_val *big_int(nt_ctx *c, ERL_NIF_TERM t) {
    ErlNifBinary ext;
    if (!enif_term_to_binary(c->env, t, &ext)) return oom(c);
    dspex_val *v = NULL;
    size_t n = 0, off = 0;
    if (ext.size >= 3 && ext.data[0] == 131 && ext.data[1] == 110) {
        n = ext.data[2];
        off = 3;
    } else if (ext.size >= 6 && ext.data[0] == 131 && ext.data[1] == 111) {
        n = ((size_t)ext.data[2] << 24) | ((size_t)ext.data[3] << 16) | ((size_t)ext.data[4] << 8) | ext.data[5];
        off = 6;
    }
    if (off == 0 || n == 0 || n > 1786 || off + 1 + n > ext.size) {
        /* 1786 bytes: Python's default limit of 4300 decimal digits */
        enif_release_binary(&ext);
        return bad(c, "integers beyond 4300 decimal digits are not supported in adapter values");
    }
    charge(c, n * n / 16);
    int neg = ext.data[off] != 0;
    const unsigned char *d = ext.data + off + 1;
    /* repeated division by 10^9 of the base-256 number (most significant byte first) */
    unsigned char *num = dspex_arena_alloc(c->a, n);
    char *digits = dspex_arena_alloc(c->a, n * 3 + 2);
    if (num == NULL || digits == NULL) goto out;
    for (size_t i = 0; i < n; i++) num[i] = d[n - 1 - i];
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
    v = dspex_val_new(c->a, DSPEX_V_INT);
    if (v) {
        v->s = digits;
        v->slen = nd;
        v->i = neg ? -9223372036854775807LL - 1 : 9223372036854775807LL; /* saturated */
    }
out:
    enif_release_binary(&ext);
    return v ? v : oom(c);
}

static dspex_val *list_to_seq(nt_ctx *c, ERL_NIF_TERM l, dspex_vkind kind, int depth) {
    unsigned n;
    if (!enif_get_list_length(c->env, l, &n)) return bad(c, "improper lists cannot be rendered; pass a proper list");
    dspex_val *v = new_val(c, kind);
    if (v == NULL) return NULL;
    v->items = dspex_arena_alloc(c->a, ((size_t)n + 1) * sizeof(dspex_val *));
    if (v->items == NULL) return oom(c);
    ERL_NIF_TERM h;
    while (enif_get_list_cell(c->env, l, &h, &l)) {
        dspex_val *x = nt_to_val(c, h, depth + 1);
        if (x == NULL) return NULL;
        v->items[v->n++] = x;
    }
    return v;
}

static dspex_val *map_to_dict(nt_ctx *c, ERL_NIF_TERM m, int depth) {
    size_t n;
    if (!enif_get_map_size(c->env, m, &n)) return NULL;
    ERL_NIF_TERM st;
    if (enif_get_map_value(c->env, m, c->at->nt_struct, &st)) {
        c->status = NT_STRUCT;
        c->err = "a struct is not plain data";
        return NULL;
    }
    charge(c, n * DSPEX_COST_TERM);
    dspex_val *d = new_val(c, DSPEX_V_DICT);
    if (d == NULL) return NULL;
    d->keys = dspex_arena_alloc(c->a, (n + 1) * sizeof(dspex_val *));
    d->items = dspex_arena_alloc(c->a, (n + 1) * sizeof(dspex_val *));
    if (d->keys == NULL || d->items == NULL) return oom(c);
    ErlNifMapIterator it;
    if (!enif_map_iterator_create(c->env, m, &it, ERL_NIF_MAP_ITERATOR_FIRST)) return oom(c);
    ERL_NIF_TERM k, v;
    while (enif_map_iterator_get_pair(c->env, &it, &k, &v)) {
        dspex_val *kv = nt_to_val(c, k, depth + 1);
        dspex_val *vv = kv ? nt_to_val(c, v, depth + 1) : NULL;
        if (vv == NULL) {
            enif_map_iterator_destroy(c->env, &it);
            return NULL;
        }
        d->keys[d->n] = kv;
        d->items[d->n] = vv;
        d->n++;
        enif_map_iterator_next(c->env, &it);
    }
    enif_map_iterator_destroy(c->env, &it);
    return d;
}

/* {:ordered, [{k, v}]}: a dict in insertion order */
static dspex_val *ordered(nt_ctx *c, ERL_NIF_TERM pairs, int depth) {
    unsigned n;
    if (!enif_get_list_length(c->env, pairs, &n)) return bad(c, "{:ordered, pairs} takes a list of {key, value} tuples");
    dspex_val *v = new_val(c, DSPEX_V_DICT);
    if (v == NULL) return NULL;
    v->keys = dspex_arena_alloc(c->a, ((size_t)n + 1) * sizeof(dspex_val *));
    v->items = dspex_arena_alloc(c->a, ((size_t)n + 1) * sizeof(dspex_val *));
    if (v->keys == NULL || v->items == NULL) return oom(c);
    ERL_NIF_TERM h;
    while (enif_get_list_cell(c->env, pairs, &h, &pairs)) {
        int pa;
        const ERL_NIF_TERM *pe;
        if (!enif_get_tuple(c->env, h, &pa, &pe) || pa != 2)
            return bad(c, "{:ordered, pairs} takes a list of {key, value} tuples");
        dspex_val *k = nt_to_val(c, pe[0], depth + 1), *x = k ? nt_to_val(c, pe[1], depth + 1) : NULL;
        if (x == NULL) return NULL;
        /* a repeated key keeps its first position and takes the last value, like a dict */
        size_t j = 0;
        while (j < v->n && !dspex_val_equal(v->keys[j], k)) j++;
        v->keys[j] = j < v->n ? v->keys[j] : k;
        v->items[j] = x;
        if (j == v->n) v->n++;
    }
    return v;
}

/* {:__dspex__, Tag, Payload} */
static dspex_val *tagged(nt_ctx *c, const ERL_NIF_TERM *el, int depth) {
    const DspexAtoms *at = c->at;
    ERL_NIF_TERM tag = el[1], payload = el[2];
    if (enif_is_identical(tag, at->nt_set) || enif_is_identical(tag, at->nt_frozenset)) {
        dspex_val *v = list_to_seq(c, payload, enif_is_identical(tag, at->nt_set) ? DSPEX_V_SET : DSPEX_V_FROZENSET,
                                   depth);
        return v;
    }
    if (enif_is_identical(tag, at->nt_history)) return list_to_seq(c, payload, DSPEX_V_HISTORY, depth);
    if (enif_is_identical(tag, at->nt_datetime) || enif_is_identical(tag, at->nt_date)) {
        ErlNifBinary b;
        if (!enif_inspect_binary(c->env, payload, &b)) return bad(c, "{:__dspex__, :datetime | :date, iso} takes a binary");
        dspex_val *v = new_val(c, enif_is_identical(tag, at->nt_date) ? DSPEX_V_DATE : DSPEX_V_DATETIME);
        if (v) {
            v->s = (const char *)b.data;
            v->slen = b.size;
        }
        return v;
    }
    return bad(c, "unknown {:__dspex__, tag, value} value (tags: :set, :frozenset, :history, :datetime, :date)");
}

dspex_val *nt_to_val(nt_ctx *c, ERL_NIF_TERM t, int depth) {
    if (depth > NT_MAX_DEPTH) return bad(c, "value nested more than 200 levels deep");
    charge(c, DSPEX_COST_TERM);
    ErlNifBinary bin;
    dspex_val *v;
    if (enif_is_binary(c->env, t)) {
        if (!enif_inspect_binary(c->env, t, &bin)) return oom(c);
        v = new_val(c, DSPEX_V_STR);
        if (v == NULL) return NULL;
        v->s = (const char *)bin.data;
        v->slen = bin.size;
        charge(c, bin.size * DSPEX_COST_COPY_BYTE);
        return v;
    }
    if (enif_is_atom(c->env, t)) {
        if (enif_is_identical(t, c->at->nil)) return new_val(c, DSPEX_V_NONE);
        if (enif_is_identical(t, c->at->true_) || enif_is_identical(t, c->at->false_)) {
            v = new_val(c, DSPEX_V_BOOL);
            if (v) v->b = enif_is_identical(t, c->at->true_);
            return v;
        }
        v = new_val(c, DSPEX_V_STR);
        if (v == NULL) return NULL;
        if (dspex_atom_text(c->env, t, c->a, &v->s, &v->slen) != 0) return oom(c);
        return v;
    }
    if (enif_is_number(c->env, t)) {
        ErlNifSInt64 i;
        double d;
        if (enif_get_double(c->env, t, &d)) {
            v = new_val(c, DSPEX_V_FLOAT);
            if (v) v->f = d;
            return v;
        }
        if (enif_get_int64(c->env, t, &i)) {
            v = new_val(c, DSPEX_V_INT);
            if (v) v->i = (long long)i;
            return v;
        }
        return big_int(c, t);
    }
    if (enif_is_list(c->env, t)) return list_to_seq(c, t, DSPEX_V_LIST, depth);
    int arity;
    const ERL_NIF_TERM *el;
    if (enif_get_tuple(c->env, t, &arity, &el)) {
        if (arity == 2 && enif_is_identical(el[0], c->at->nt_ordered) && enif_is_list(c->env, el[1]))
            return ordered(c, el[1], depth);
        if (arity == 3 && enif_is_identical(el[0], c->at->nt_dspex)) return tagged(c, el, depth);
        v = new_val(c, DSPEX_V_TUPLE);
        if (v == NULL) return NULL;
        v->items = dspex_arena_alloc(c->a, ((size_t)arity + 1) * sizeof(dspex_val *));
        if (v->items == NULL) return oom(c);
        for (int i = 0; i < arity; i++) {
            dspex_val *x = nt_to_val(c, el[i], depth + 1);
            if (x == NULL) return NULL;
            v->items[v->n++] = x;
        }
        return v;
    }
    if (enif_is_map(c->env, t)) return map_to_dict(c, t, depth);
    return bad(c, "adapter values must be strings, numbers, booleans, nil, atoms, lists, tuples or maps");
}

dspex_val *nt_record(nt_ctx *c, ERL_NIF_TERM map, const ERL_NIF_TERM *names, dspex_val *const *keys, size_t n) {
    ERL_NIF_TERM st, v;
    if (!enif_is_map(c->env, map)) return bad(c, "expected a map with atom keys");
    if (enif_get_map_value(c->env, map, c->at->nt_struct, &st)) {
        c->status = NT_STRUCT;
        c->err = "a struct is not plain data";
        return NULL;
    }
    charge(c, n * DSPEX_COST_TERM);
    dspex_val *d = new_val(c, DSPEX_V_DICT);
    if (d == NULL) return NULL;
    d->keys = dspex_arena_alloc(c->a, (n + 1) * sizeof(dspex_val *));
    d->items = dspex_arena_alloc(c->a, (n + 1) * sizeof(dspex_val *));
    if (d->keys == NULL || d->items == NULL) return oom(c);
    for (size_t i = 0; i < n; i++) {
        if (!enif_get_map_value(c->env, map, names[i], &v)) continue;
        dspex_val *x = nt_to_val(c, v, 1);
        if (x == NULL) return NULL;
        d->keys[d->n] = keys[i];
        d->items[d->n++] = x;
    }
    return d;
}

/* ---------------------------------------------------------------- types */
static dspex_type *new_type(nt_ctx *c, dspex_type_kind kind) {
    dspex_type *t = dspex_type_new(c->a, kind);
    return t ? t : oom(c);
}

static const char TYPE_HELP[] =
    "unknown type; supported: :str (:string), :int (:integer), :float, :bool (:boolean), :any, :none, :history, "
    ":datetime, :date, :tool, :tool_calls, :image, :list, :dict (:map), :tuple, :set, :frozenset, {:list, t}, {:set, t}, {:frozenset, t}, "
    "{:dict, k, v}, {:tuple, [t]}, {:tuple, [t, :ellipsis]}, {:literal, [values]}, {:optional, t}, "
    "{:union, [t]}, {:union_type, [t]}, {:typing, generic}, {:enum, \"Name\", [value | {name, value}]}, or a DSPy "
    "type string such as \"list[str]\"";

typedef struct {
    ERL_NIF_TERM atom;
    dspex_type_kind kind;
} atom_kind;

static int type_list(nt_ctx *c, ERL_NIF_TERM l, dspex_type ***out, size_t *n, int *variadic, int depth) {
    unsigned len;
    if (!enif_get_list_length(c->env, l, &len) || len == 0 || len > DSPEX_TYPE_MAX_MEMBERS) {
        bad(c, "type argument lists must be non-empty lists of at most 256 types");
        return -1;
    }
    *out = dspex_arena_alloc(c->a, (size_t)len * sizeof(dspex_type *));
    if (*out == NULL) {
        oom(c);
        return -1;
    }
    *n = 0;
    ERL_NIF_TERM h;
    unsigned idx = 0;
    while (enif_get_list_cell(c->env, l, &h, &l)) {
        if (variadic && enif_is_identical(h, c->at->sig_ellipsis)) {
            if (idx != 1 || len != 2) {
                bad(c, ":ellipsis is only allowed as {:tuple, [t, :ellipsis]}");
                return -1;
            }
            *variadic = 1;
            idx++;
            continue;
        }
        dspex_type *a = nt_to_type(c, h, depth + 1);
        if (a == NULL) return -1;
        (*out)[(*n)++] = a;
        idx++;
    }
    return 0;
}

/* A Literal or Enum value: binary, integer, float, boolean, nil, or an atom (its name). */
static dspex_val *literal_value(nt_ctx *c, ERL_NIF_TERM t) {
    if (enif_is_atom(c->env, t) || enif_is_binary(c->env, t) || enif_is_number(c->env, t)) {
        dspex_val *v = nt_to_val(c, t, NT_MAX_DEPTH);
        if (v && v->kind == DSPEX_V_FLOAT && !isfinite(v->f)) return bad(c, "Literal floats must be finite");
        if (v && v->kind == DSPEX_V_STR) {
            /* own the bytes: a type may outlive the call (compiled signatures) */
            const char *s = dspex_arena_strndup(c->a, v->s, v->slen);
            if (s == NULL) return oom(c);
            v->s = s;
        }
        return v;
    }
    return bad(c, "Literal values must be strings, numbers, booleans, nil or atoms");
}

/* The class name of an enum given as an atom: the last segment of a module name. */
static int enum_name(nt_ctx *c, ERL_NIF_TERM t, dspex_type *ty) {
    const char *s;
    size_t n;
    ErlNifBinary b;
    if (enif_is_binary(c->env, t) && enif_inspect_binary(c->env, t, &b)) {
        s = (const char *)b.data;
        n = b.size;
    } else if (enif_is_atom(c->env, t) && !enif_is_identical(t, c->at->nil) &&
               dspex_atom_text(c->env, t, c->a, &s, &n) == 0) {
        if (n > 7 && memcmp(s, "Elixir.", 7) == 0) {
            const char *dot = s + n;
            while (dot > s && dot[-1] != '.') dot--;
            n -= (size_t)(dot - s);
            s = dot;
        }
    } else {
        return -1;
    }
    if (n == 0) return -1;
    ty->name = dspex_arena_strndup(c->a, s, n);
    ty->name_len = n;
    return ty->name ? 0 : -1;
}

static dspex_type *enum_type(nt_ctx *c, ERL_NIF_TERM name, ERL_NIF_TERM members) {
    unsigned n;
    static const char help[] = "enum types are {:enum, \"Name\", [value, ...]} or {:enum, \"Name\", [{member, value}, "
                               "...]} with string or integer values";
    if (!enif_get_list_length(c->env, members, &n) || n == 0 || n > DSPEX_TYPE_MAX_MEMBERS) return bad(c, help);
    dspex_type *t = new_type(c, DSPEX_T_ENUM);
    if (t == NULL) return NULL;
    if (enum_name(c, name, t) != 0) return bad(c, help);
    t->vals = dspex_arena_alloc(c->a, n * sizeof(dspex_val *));
    t->names = dspex_arena_alloc(c->a, n * sizeof(dspex_val *));
    if (t->vals == NULL || t->names == NULL) return oom(c);
    ERL_NIF_TERM h;
    while (enif_get_list_cell(c->env, members, &h, &members)) {
        int ar;
        const ERL_NIF_TERM *el;
        dspex_val *mname, *val;
        if (enif_get_tuple(c->env, h, &ar, &el)) {
            if (ar != 2) return bad(c, help);
            mname = literal_value(c, el[0]);
            val = mname ? literal_value(c, el[1]) : NULL;
        } else {
            /* values only: each member is named by its value's text */
            val = literal_value(c, h);
            mname = val;
        }
        if (val == NULL) return NULL;
        if ((val->kind != DSPEX_V_STR && val->kind != DSPEX_V_INT) || mname->kind != DSPEX_V_STR) {
            if (mname->kind == DSPEX_V_INT && mname == val) {
                /* {:enum, "N", [1, 2]}: members named by their decimal text */
                char tmp[32];
                int len = snprintf(tmp, sizeof tmp, "%lld", val->i);
                mname = dspex_val_str(c->a, tmp, (size_t)len);
                if (mname == NULL) return oom(c);
            } else {
                return bad(c, help);
            }
        }
        t->vals[t->nvals] = val;
        t->names[t->nvals] = mname;
        t->nvals++;
    }
    return t;
}

static const char MODEL_HELP[] =
    "model types are {:model, Module, \"Name\", desc | nil, [{\"field\", type, desc | nil, {:value, default} | nil, "
    "constraints}]} (DSPex.Schema builds them)";

/* A binary copied into the arena (a type may outlive the call: compiled signatures). */
static const char *own_text(nt_ctx *c, ERL_NIF_TERM t, size_t *len) {
    ErlNifBinary b;
    if (!enif_inspect_binary(c->env, t, &b)) return NULL;
    char *s = dspex_arena_strndup(c->a, (const char *)b.data, b.size);
    if (s == NULL) return oom(c);
    *len = b.size;
    return s;
}

/* A value owned by the arena (defaults and constraint values outlive the call too). */
static dspex_val *own_val(nt_ctx *c, ERL_NIF_TERM t, int depth) {
    dspex_val *v = nt_to_val(c, t, depth);
    if (v == NULL) return NULL;
    dspex_val *copy = dspex_val_copy(v, c->a);
    return copy ? copy : oom(c);
}

static int model_field(nt_ctx *c, ERL_NIF_TERM t, dspex_model_field *f, int depth) {
    int ar;
    const ERL_NIF_TERM *el;
    if (!enif_get_tuple(c->env, t, &ar, &el) || ar != 5 || (f->name = own_text(c, el[0], &f->name_len)) == NULL) {
        bad(c, MODEL_HELP);
        return -1;
    }
    if ((f->type = nt_to_type(c, el[1], depth + 1)) == NULL) return -1;
    if (!enif_is_identical(el[2], c->at->nil) && (f->desc = own_text(c, el[2], &f->desc_len)) == NULL) {
        bad(c, MODEL_HELP);
        return -1;
    }
    int dar;
    const ERL_NIF_TERM *del;
    if (enif_get_tuple(c->env, el[3], &dar, &del) && dar == 2 && enif_is_identical(del[0], c->at->value)) {
        if ((f->default_value = own_val(c, del[1], 0)) == NULL) return -1;
    } else if (!enif_is_identical(el[3], c->at->nil)) {
        bad(c, MODEL_HELP);
        return -1;
    }
    unsigned nc;
    if (!enif_get_list_length(c->env, el[4], &nc) || nc > 16) {
        bad(c, MODEL_HELP);
        return -1;
    }
    f->constraints = dspex_arena_alloc(c->a, ((size_t)nc + 1) * sizeof(dspex_constraint));
    if (f->constraints == NULL) {
        oom(c);
        return -1;
    }
    ERL_NIF_TERM l = el[4], h;
    while (enif_get_list_cell(c->env, l, &h, &l)) {
        int kar;
        const ERL_NIF_TERM *kv;
        size_t kl;
        dspex_constraint *k = &f->constraints[f->nconstraints];
        if (!enif_get_tuple(c->env, h, &kar, &kv) || kar != 2 || dspex_atom_text(c->env, kv[0], c->a, &k->key, &kl) != 0 ||
            (k->value = own_val(c, kv[1], 0)) == NULL) {
            bad(c, MODEL_HELP);
            return -1;
        }
        f->nconstraints++;
    }
    return 0;
}

static dspex_type *model_type(nt_ctx *c, const ERL_NIF_TERM *el, int depth) {
    dspex_type *t = new_type(c, DSPEX_T_MODEL);
    if (t == NULL) return NULL;
    unsigned nf;
    if (!enif_is_atom(c->env, el[1]) || dspex_atom_text(c->env, el[1], c->a, &t->module, &t->module_len) != 0 ||
        (t->name = own_text(c, el[2], &t->name_len)) == NULL || t->name_len == 0 ||
        !enif_get_list_length(c->env, el[4], &nf) || nf > DSPEX_MODEL_MAX_FIELDS)
        return bad(c, MODEL_HELP);
    if (!enif_is_identical(el[3], c->at->nil) && (t->desc = own_text(c, el[3], &t->desc_len)) == NULL)
        return bad(c, MODEL_HELP);
    t->fields = dspex_arena_alloc(c->a, ((size_t)nf + 1) * sizeof(dspex_model_field));
    if (t->fields == NULL) return oom(c);
    memset(t->fields, 0, ((size_t)nf + 1) * sizeof(dspex_model_field));
    ERL_NIF_TERM l = el[4], h;
    while (enif_get_list_cell(c->env, l, &h, &l)) {
        if (model_field(c, h, &t->fields[t->nfields], depth) != 0) return NULL;
        t->nfields++;
    }
    return t;
}

static dspex_type *generic(nt_ctx *c, dspex_type_kind kind, ERL_NIF_TERM const *args, int nargs, int depth) {
    dspex_type *t = new_type(c, kind);
    if (t == NULL) return NULL;
    t->args = dspex_arena_alloc(c->a, (size_t)nargs * sizeof(dspex_type *));
    if (t->args == NULL) return oom(c);
    for (int i = 0; i < nargs; i++) {
        t->args[i] = nt_to_type(c, args[i], depth + 1);
        if (t->args[i] == NULL) return NULL;
    }
    t->nargs = (size_t)nargs;
    return t;
}

dspex_type *nt_to_type(nt_ctx *c, ERL_NIF_TERM t, int depth) {
    const DspexAtoms *at = c->at;
    if (depth > DSPEX_TYPE_MAX_DEPTH) return bad(c, "type nested more than 32 levels deep");
    if (enif_is_atom(c->env, t)) {
        const atom_kind scalars[] = {
            {at->sig_str, DSPEX_T_STR},         {at->sig_string, DSPEX_T_STR},     {at->sig_int, DSPEX_T_INT},
            {at->sig_integer, DSPEX_T_INT},     {at->sig_float, DSPEX_T_FLOAT},    {at->sig_bool, DSPEX_T_BOOL},
            {at->sig_boolean, DSPEX_T_BOOL},    {at->sig_any, DSPEX_T_ANY},        {at->sig_none, DSPEX_T_NONE},
            {at->sig_history, DSPEX_T_HISTORY}, {at->sig_history_mod, DSPEX_T_HISTORY},
            {at->sig_datetime, DSPEX_T_DATETIME}, {at->sig_date, DSPEX_T_DATE}, {at->sig_list, DSPEX_T_LIST},
            {at->sig_dict, DSPEX_T_DICT},       {at->sig_map, DSPEX_T_DICT},       {at->sig_tuple, DSPEX_T_TUPLE},
            {at->sig_set, DSPEX_T_SET},         {at->sig_frozenset, DSPEX_T_FROZENSET},
            {at->sig_tool, DSPEX_T_TOOL},       {at->sig_tool_mod, DSPEX_T_TOOL},
            {at->sig_tool_calls, DSPEX_T_TOOL_CALLS}, {at->sig_tool_calls_mod, DSPEX_T_TOOL_CALLS},
            {at->sig_image, DSPEX_T_IMAGE},     {at->sig_image_mod, DSPEX_T_IMAGE}};
        for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++)
            if (enif_is_identical(t, scalars[i].atom)) return new_type(c, scalars[i].kind);
        return bad(c, TYPE_HELP);
    }
    int arity;
    const ERL_NIF_TERM *el;
    if (!enif_get_tuple(c->env, t, &arity, &el) || arity < 2) return bad(c, TYPE_HELP);
    ERL_NIF_TERM tag = el[0];
    if (arity == 2 && (enif_is_identical(tag, at->sig_list) || enif_is_identical(tag, at->sig_set) ||
                       enif_is_identical(tag, at->sig_frozenset)))
        return generic(c,
                       enif_is_identical(tag, at->sig_list)  ? DSPEX_T_LIST
                       : enif_is_identical(tag, at->sig_set) ? DSPEX_T_SET
                                                             : DSPEX_T_FROZENSET,
                       el + 1, 1, depth);
    if (arity == 3 && enif_is_identical(tag, at->sig_dict)) return generic(c, DSPEX_T_DICT, el + 1, 2, depth);
    if (arity == 2 && enif_is_identical(tag, at->sig_tuple)) {
        dspex_type *ty = new_type(c, DSPEX_T_TUPLE);
        int variadic = 0;
        if (ty == NULL || type_list(c, el[1], &ty->args, &ty->nargs, &variadic, depth) != 0) return NULL;
        if (variadic) ty->flags |= DSPEX_TF_VARIADIC;
        return ty;
    }
    if (arity == 2 && enif_is_identical(tag, at->sig_optional)) {
        dspex_type *m[2] = {nt_to_type(c, el[1], depth + 1), NULL};
        if (m[0] == NULL) return NULL;
        m[1] = new_type(c, DSPEX_T_NONE);
        if (m[1] == NULL) return NULL;
        dspex_type *u = dspex_type_union(c->a, m, 2, 0);
        return u ? u : oom(c);
    }
    if (arity == 2 && (enif_is_identical(tag, at->sig_union) || enif_is_identical(tag, at->sig_union_type))) {
        dspex_type **members;
        size_t n;
        if (type_list(c, el[1], &members, &n, NULL, depth) != 0) return NULL;
        dspex_type *u = dspex_type_union(c->a, members, n, enif_is_identical(tag, at->sig_union_type));
        return u ? u : bad(c, "a union has at most 256 members");
    }
    if (arity == 2 && enif_is_identical(tag, at->sig_typing)) {
        dspex_type *g = nt_to_type(c, el[1], depth + 1);
        if (g == NULL) return NULL;
        if (g->kind < DSPEX_T_LIST || g->kind > DSPEX_T_TUPLE)
            return bad(c, "{:typing, t} takes a list, set, frozenset, dict or tuple type (typing.List & co)");
        g->flags |= DSPEX_TF_ALIAS;
        return g;
    }
    if (arity == 2 && enif_is_identical(tag, at->sig_literal)) {
        unsigned n;
        if (!enif_get_list_length(c->env, el[1], &n) || n == 0 || n > DSPEX_TYPE_MAX_MEMBERS)
            return bad(c, "{:literal, values} takes a non-empty list of at most 256 values");
        dspex_val **vals = dspex_arena_alloc(c->a, n * sizeof(dspex_val *));
        if (vals == NULL) return oom(c);
        ERL_NIF_TERM l = el[1], h;
        size_t k = 0;
        while (enif_get_list_cell(c->env, l, &h, &l)) {
            vals[k] = literal_value(c, h);
            if (vals[k] == NULL) return NULL;
            k++;
        }
        dspex_type *lt = dspex_type_literal(c->a, vals, k);
        return lt ? lt : oom(c);
    }
    if (arity == 3 && enif_is_identical(tag, at->sig_enum)) return enum_type(c, el[1], el[2]);
    if (arity == 5 && enif_is_identical(tag, at->sig_model)) return model_type(c, el, depth);
    return bad(c, TYPE_HELP);
}

/* ---------------------------------------------------------------- back to terms */
typedef struct {
    ErlNifEnv *env;
    const DspexAtoms *at;
    int tagged;
    int ordered; /* dicts as {:ordered, [{k, v}]} */
} from_ctx;

/* A decimal integer beyond 64 bits (at most 4300 digits) as an Erlang bignum, built as
 * LARGE_BIG_EXT and decoded with enif_binary_to_term. */
static int big_term(from_ctx *c, const dspex_val *v, ERL_NIF_TERM *out) {
    const char *s = v->s;
    size_t n = v->slen;
    int neg = n > 0 && s[0] == '-';
    if (neg) {
        s++;
        n--;
    }
    if (n == 0 || n > 4300) {
        *out = c->at->nil;
        return 0;
    }
    size_t cap = n / 2 + 2; /* bytes: log256(10^n) < n/2 + 1 */
    unsigned char *buf = enif_alloc(7 + cap);
    if (buf == NULL) return -1;
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
    if (len == 0) {
        *out = enif_make_int(c->env, 0);
    } else {
        buf[0] = 131;
        buf[1] = 111;
        buf[2] = (unsigned char)(len >> 24);
        buf[3] = (unsigned char)(len >> 16);
        buf[4] = (unsigned char)(len >> 8);
        buf[5] = (unsigned char)len;
        buf[6] = (unsigned char)neg;
        if (enif_binary_to_term(c->env, buf, 7 + len, out, 0) == 0) *out = c->at->nil;
    }
    enif_free(buf);
    return 0;
}

static int from_val(from_ctx *c, const dspex_val *v, ERL_NIF_TERM *out, int depth) {
    const DspexAtoms *at = c->at;
    ErlNifEnv *env = c->env;
    if (depth > 2 * 256) {
        *out = at->nil;
        return 0;
    }
    switch (v->kind) {
    case DSPEX_V_NONE: *out = at->nil; return 0;
    case DSPEX_V_BOOL: *out = v->b ? at->true_ : at->false_; return 0;
    case DSPEX_V_INT:
        if (v->s) return big_term(c, v, out);
        *out = enif_make_int64(env, (ErlNifSInt64)v->i);
        return 0;
    case DSPEX_V_FLOAT: *out = isfinite(v->f) ? enif_make_double(env, v->f) : at->nil; return 0;
    case DSPEX_V_STR: {
        unsigned char *dst = enif_make_new_binary(env, v->slen, out);
        if (dst == NULL) return -1;
        if (v->slen) memcpy(dst, v->s, v->slen);
        return 0;
    }
    case DSPEX_V_DATETIME:
    case DSPEX_V_DATE: {
        ERL_NIF_TERM text;
        unsigned char *dst = enif_make_new_binary(env, v->slen, &text);
        if (dst == NULL) return -1;
        memcpy(dst, v->s, v->slen);
        c->tagged = 1;
        *out = enif_make_tuple3(env, at->nt_dspex, v->kind == DSPEX_V_DATE ? at->nt_date : at->nt_datetime, text);
        return 0;
    }
    case DSPEX_V_TUPLE: {
        ERL_NIF_TERM small[16];
        ERL_NIF_TERM *arr = v->n <= 16 ? small : enif_alloc(v->n * sizeof(ERL_NIF_TERM));
        if (arr == NULL) return -1;
        int rc = 0;
        for (size_t i = 0; i < v->n && rc == 0; i++) rc = from_val(c, v->items[i], &arr[i], depth + 1);
        if (rc == 0) *out = enif_make_tuple_from_array(env, arr, (unsigned)v->n);
        if (arr != small) enif_free(arr);
        return rc;
    }
    case DSPEX_V_LIST:
    case DSPEX_V_SET:
    case DSPEX_V_FROZENSET:
    case DSPEX_V_HISTORY: {
        ERL_NIF_TERM l = enif_make_list(env, 0);
        for (size_t i = v->n; i > 0; i--) {
            ERL_NIF_TERM x;
            if (from_val(c, v->items[i - 1], &x, depth + 1) != 0) return -1;
            l = enif_make_list_cell(env, x, l);
        }
        if (v->kind == DSPEX_V_SET || v->kind == DSPEX_V_FROZENSET) {
            c->tagged = 1;
            l = enif_make_tuple3(env, at->nt_dspex, v->kind == DSPEX_V_SET ? at->nt_set : at->nt_frozenset, l);
        }
        *out = l;
        return 0;
    }
    case DSPEX_V_DICT: {
        if (c->ordered) {
            ERL_NIF_TERM l = enif_make_list(env, 0);
            for (size_t i = v->n; i > 0; i--) {
                ERL_NIF_TERM k, x;
                if (from_val(c, v->keys[i - 1], &k, depth + 1) != 0 || from_val(c, v->items[i - 1], &x, depth + 1) != 0)
                    return -1;
                l = enif_make_list_cell(env, enif_make_tuple2(env, k, x), l);
            }
            *out = enif_make_tuple2(env, at->nt_ordered, l);
            return 0;
        }
        ERL_NIF_TERM m = enif_make_new_map(env);
        for (size_t i = 0; i < v->n; i++) {
            ERL_NIF_TERM k, x, m2;
            if (from_val(c, v->keys[i], &k, depth + 1) != 0 || from_val(c, v->items[i], &x, depth + 1) != 0)
                return -1;
            enif_make_map_put(env, m, k, x, &m2);
            m = m2;
        }
        *out = m;
        return 0;
    }
    }
    *out = at->nil;
    return 0;
}

int nt_from_val(ErlNifEnv *env, const dspex_val *v, ERL_NIF_TERM *out, int *tagged) {
    return nt_from_val_as(env, v, 0, out, tagged);
}

int nt_from_val_as(ErlNifEnv *env, const dspex_val *v, int ordered, ERL_NIF_TERM *out, int *tagged) {
    from_ctx c = {.env = env, .at = dspex_atoms(env), .ordered = ordered};
    int rc = from_val(&c, v, out, 0);
    if (tagged) *tagged |= c.tagged;
    return rc;
}

static int from_type(ErlNifEnv *env, const DspexAtoms *at, const dspex_type *t, ERL_NIF_TERM *out, int depth);

static int type_list_term(ErlNifEnv *env, const DspexAtoms *at, dspex_type *const *args, size_t n, int variadic,
                          ERL_NIF_TERM *out, int depth) {
    ERL_NIF_TERM l = enif_make_list(env, 0);
    if (variadic) l = enif_make_list_cell(env, at->sig_ellipsis, l);
    for (size_t i = n; i > 0; i--) {
        ERL_NIF_TERM x;
        if (from_type(env, at, args[i - 1], &x, depth + 1) != 0) return -1;
        l = enif_make_list_cell(env, x, l);
    }
    *out = l;
    return 0;
}

static int vals_list(ErlNifEnv *env, dspex_val *const *vals, dspex_val *const *names, size_t n, ERL_NIF_TERM *out) {
    ERL_NIF_TERM l = enif_make_list(env, 0);
    for (size_t i = n; i > 0; i--) {
        ERL_NIF_TERM x, nm;
        if (nt_from_val(env, vals[i - 1], &x, NULL) != 0) return -1;
        if (names) {
            if (nt_from_val(env, names[i - 1], &nm, NULL) != 0) return -1;
            x = enif_make_tuple2(env, nm, x);
        }
        l = enif_make_list_cell(env, x, l);
    }
    *out = l;
    return 0;
}

static int from_type(ErlNifEnv *env, const DspexAtoms *at, const dspex_type *t, ERL_NIF_TERM *out, int depth) {
    if (depth > DSPEX_TYPE_MAX_DEPTH + 2) return -1;
    ERL_NIF_TERM x, y;
    switch (t->kind) {
    case DSPEX_T_STR: *out = at->sig_str; return 0;
    case DSPEX_T_INT: *out = at->sig_int; return 0;
    case DSPEX_T_FLOAT: *out = at->sig_float; return 0;
    case DSPEX_T_BOOL: *out = at->sig_bool; return 0;
    case DSPEX_T_ANY: *out = at->sig_any; return 0;
    case DSPEX_T_NONE: *out = at->sig_none; return 0;
    case DSPEX_T_HISTORY: *out = at->sig_history; return 0;
    case DSPEX_T_DATETIME: *out = at->sig_datetime; return 0;
    case DSPEX_T_DATE: *out = at->sig_date; return 0;
    case DSPEX_T_TOOL: *out = at->sig_tool; return 0;
    case DSPEX_T_TOOL_CALLS: *out = at->sig_tool_calls; return 0;
    case DSPEX_T_IMAGE: *out = at->sig_image; return 0;
    case DSPEX_T_MODEL:
        /* the declaring module stands for the model */
        if (!dspex_existing_atom(env, t->module, t->module_len, out)) *out = at->sig_any;
        return 0;
    case DSPEX_T_LITERAL:
        if (vals_list(env, t->vals, NULL, t->nvals, &x) != 0) return -1;
        *out = enif_make_tuple2(env, at->sig_literal, x);
        return 0;
    case DSPEX_T_ENUM: {
        /* members named by their value's text are written as plain values */
        int named = 0;
        for (size_t i = 0; i < t->nvals; i++) {
            dspex_buf b;
            dspex_buf_init(&b);
            if (t->vals[i]->kind == DSPEX_V_STR)
                dspex_buf_put(&b, t->vals[i]->s, t->vals[i]->slen);
            else
                dspex_buf_printf(&b, "%lld", t->vals[i]->i);
            if (b.len != t->names[i]->slen || memcmp(b.p ? b.p : "", t->names[i]->s, b.len) != 0) named = 1;
            dspex_buf_free(&b);
        }
        if (vals_list(env, t->vals, named ? t->names : NULL, t->nvals, &x) != 0) return -1;
        y = dspex_make_binary(env, t->name, t->name_len);
        *out = enif_make_tuple3(env, at->sig_enum, y, x);
        return 0;
    }
    case DSPEX_T_UNION: {
        size_t n = t->nargs;
        if (t->flags & DSPEX_TF_PIPE) {
            if (type_list_term(env, at, t->args, n, 0, &x, depth) != 0) return -1;
            *out = enif_make_tuple2(env, at->sig_union_type, x);
            return 0;
        }
        if (t->args[n - 1]->kind == DSPEX_T_NONE) {
            /* None last: {:optional, inner} */
            if (n == 2) {
                if (from_type(env, at, t->args[0], &x, depth + 1) != 0) return -1;
            } else {
                if (type_list_term(env, at, t->args, n - 1, 0, &y, depth) != 0) return -1;
                x = enif_make_tuple2(env, at->sig_union, y);
            }
            *out = enif_make_tuple2(env, at->sig_optional, x);
            return 0;
        }
        if (type_list_term(env, at, t->args, n, 0, &x, depth) != 0) return -1;
        *out = enif_make_tuple2(env, at->sig_union, x);
        return 0;
    }
    default: break;
    }
    static const dspex_type_kind gk[] = {DSPEX_T_LIST, DSPEX_T_SET, DSPEX_T_FROZENSET, DSPEX_T_DICT, DSPEX_T_TUPLE};
    ERL_NIF_TERM tags[] = {at->sig_list, at->sig_set, at->sig_frozenset, at->sig_dict, at->sig_tuple};
    ERL_NIF_TERM tag = at->sig_list;
    for (size_t i = 0; i < 5; i++)
        if (gk[i] == t->kind) tag = tags[i];
    if (t->nargs == 0) {
        *out = tag;
    } else if (t->kind == DSPEX_T_TUPLE) {
        if (type_list_term(env, at, t->args, t->nargs, (t->flags & DSPEX_TF_VARIADIC) != 0, &x, depth) != 0) return -1;
        *out = enif_make_tuple2(env, tag, x);
    } else if (t->kind == DSPEX_T_DICT) {
        if (from_type(env, at, t->args[0], &x, depth + 1) != 0 || from_type(env, at, t->args[1], &y, depth + 1) != 0)
            return -1;
        *out = enif_make_tuple3(env, tag, x, y);
    } else {
        if (from_type(env, at, t->args[0], &x, depth + 1) != 0) return -1;
        *out = enif_make_tuple2(env, tag, x);
    }
    /* a bare typing alias is its own type ("list[]" in prompts); with arguments it names
     * and validates like the builtin generic */
    if ((t->flags & DSPEX_TF_ALIAS) && t->nargs == 0) *out = enif_make_tuple2(env, at->sig_typing, *out);
    return 0;
}

int nt_from_type(ErlNifEnv *env, const dspex_type *t, ERL_NIF_TERM *out) {
    return from_type(env, dspex_atoms(env), t, out, 0);
}
