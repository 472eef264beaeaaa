/* The type model's rules: construction, union normalisation, equality, None-admission,
 * names and the signature-string syntax. See include/dspex/type.h. */
#include "dspex/type.h"

#include <string.h>

#include "dspex/pytext.h"

dspex_type *dspex_type_new(dspex_arena *a, dspex_type_kind kind) {
    dspex_type *t = dspex_arena_alloc(a, sizeof *t);
    if (t) t->kind = kind;
    return t;
}

int dspex_type_is_special(const dspex_type *t) {
    switch (t->kind) {
    case DSPEX_T_LITERAL: return 1;
    case DSPEX_T_UNION: return !(t->flags & DSPEX_TF_PIPE);
    case DSPEX_T_LIST:
    case DSPEX_T_SET:
    case DSPEX_T_FROZENSET:
    case DSPEX_T_DICT:
    case DSPEX_T_TUPLE: return (t->flags & DSPEX_TF_ALIAS) != 0;
    default: return 0;
    }
}

/* ---------------------------------------------------------------- equality */
/* typing.Literal and Python ==, same type: 1 and True differ, 1.0 and 1 differ. */
static int lit_same(const dspex_val *x, const dspex_val *y) {
    return x->kind == y->kind && dspex_val_equal(x, y);
}

/* Whether every member of x has an equal member in y (Union and Literal compare as sets). */
static int members_in(const dspex_type *x, const dspex_type *y, int depth);

static int equal_rec(const dspex_type *x, const dspex_type *y, int depth) {
    if (depth > DSPEX_TYPE_MAX_DEPTH) return 0;
    if (x->kind != y->kind) return 0;
    switch (x->kind) {
    case DSPEX_T_UNION: return members_in(x, y, depth) && members_in(y, x, depth);
    case DSPEX_T_LITERAL:
        for (int pass = 0; pass < 2; pass++) {
            const dspex_type *a = pass ? y : x, *b = pass ? x : y;
            for (size_t i = 0; i < a->nvals; i++) {
                size_t j = 0;
                while (j < b->nvals && !lit_same(a->vals[i], b->vals[j])) j++;
                if (j == b->nvals) return 0;
            }
        }
        return 1;
    case DSPEX_T_MODEL:
        /* one declaring module, one model */
        return x->module_len == y->module_len && memcmp(x->module, y->module, x->module_len) == 0 &&
               x->name_len == y->name_len && memcmp(x->name, y->name, x->name_len) == 0;
    case DSPEX_T_ENUM:
        if (x->name_len != y->name_len || memcmp(x->name, y->name, x->name_len) != 0 || x->nvals != y->nvals)
            return 0;
        for (size_t i = 0; i < x->nvals; i++)
            if (!lit_same(x->vals[i], y->vals[i]) || !dspex_val_equal(x->names[i], y->names[i])) return 0;
        return 1;
    default:
        /* list[int] == typing.List[int], but a bare typing.List is not list */
        if (x->nargs != y->nargs || (x->flags & DSPEX_TF_VARIADIC) != (y->flags & DSPEX_TF_VARIADIC)) return 0;
        if (x->nargs == 0 && (x->flags & DSPEX_TF_ALIAS) != (y->flags & DSPEX_TF_ALIAS)) return 0;
        for (size_t i = 0; i < x->nargs; i++)
            if (!equal_rec(x->args[i], y->args[i], depth + 1)) return 0;
        return 1;
    }
}

static int members_in(const dspex_type *x, const dspex_type *y, int depth) {
    for (size_t i = 0; i < x->nargs; i++) {
        size_t j = 0;
        while (j < y->nargs && !equal_rec(x->args[i], y->args[j], depth + 1)) j++;
        if (j == y->nargs) return 0;
    }
    return 1;
}

int dspex_type_equal(const dspex_type *x, const dspex_type *y) { return equal_rec(x, y, 0); }

/* ---------------------------------------------------------------- construction */
typedef struct {
    dspex_type **items;
    size_t n, cap;
} tvec;

static int tv_add(dspex_arena *a, tvec *v, dspex_type *t) {
    for (size_t i = 0; i < v->n; i++)
        if (dspex_type_equal(v->items[i], t)) return 0;
    if (v->n >= DSPEX_TYPE_MAX_MEMBERS) return -1;
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 8;
        dspex_type **ni = dspex_arena_alloc(a, nc * sizeof *ni);
        if (ni == NULL) return -1;
        if (v->n) memcpy(ni, v->items, v->n * sizeof *ni);
        v->items = ni;
        v->cap = nc;
    }
    v->items[v->n++] = t;
    return 0;
}

dspex_type *dspex_type_union(dspex_arena *a, dspex_type *const *members, size_t n, int pipe) {
    int typing = !pipe;
    tvec flat = {0};
    for (size_t i = 0; i < n; i++) {
        const dspex_type *m = members[i];
        if (dspex_type_is_special(m)) typing = 1;
        if (m->kind == DSPEX_T_UNION) {
            for (size_t j = 0; j < m->nargs; j++)
                if (tv_add(a, &flat, m->args[j]) != 0) return NULL;
        } else if (tv_add(a, &flat, (dspex_type *)m) != 0) {
            return NULL;
        }
    }
    if (flat.n == 1) return flat.items[0];
    dspex_type *u = dspex_type_new(a, DSPEX_T_UNION);
    if (u == NULL) return NULL;
    u->flags = typing ? 0 : DSPEX_TF_PIPE;
    u->nargs = flat.n;
    u->args = flat.items;
    return u;
}

dspex_type *dspex_type_literal(dspex_arena *a, dspex_val *const *vals, size_t n) {
    dspex_type *t = dspex_type_new(a, DSPEX_T_LITERAL);
    if (t == NULL) return NULL;
    t->vals = dspex_arena_alloc(a, (n ? n : 1) * sizeof *t->vals);
    if (t->vals == NULL) return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < t->nvals && !lit_same(t->vals[j], vals[i])) j++;
        if (j == t->nvals) t->vals[t->nvals++] = vals[i];
    }
    return t;
}

int dspex_type_allows_none(const dspex_type *t) {
    if (t->kind == DSPEX_T_NONE) return 1;
    if (t->kind != DSPEX_T_UNION) return 0;
    for (size_t i = 0; i < t->nargs; i++)
        if (t->args[i]->kind == DSPEX_T_NONE) return 1; /* members are never unions */
    return 0;
}

/* ---------------------------------------------------------------- names */
static const char *const BASE_NAMES[] = {
    [DSPEX_T_STR] = "str",          [DSPEX_T_INT] = "int",       [DSPEX_T_FLOAT] = "float",
    [DSPEX_T_BOOL] = "bool",        [DSPEX_T_ANY] = "Any",       [DSPEX_T_NONE] = "NoneType",
    [DSPEX_T_HISTORY] = "History",  [DSPEX_T_DATETIME] = "datetime", [DSPEX_T_DATE] = "date",
    [DSPEX_T_LIST] = "list",        [DSPEX_T_SET] = "set",       [DSPEX_T_FROZENSET] = "frozenset",
    [DSPEX_T_DICT] = "dict",        [DSPEX_T_TUPLE] = "tuple",   [DSPEX_T_LITERAL] = "Literal",
    [DSPEX_T_UNION] = "Union",      [DSPEX_T_ENUM] = "Enum",     [DSPEX_T_TOOL] = "Tool",
    [DSPEX_T_TOOL_CALLS] = "ToolCalls", [DSPEX_T_IMAGE] = "Image", [DSPEX_T_MODEL] = "BaseModel"};

/* DSPy's _quoted_string_for_literal_type_annotation */
static void literal_str_name(const dspex_val *v, dspex_buf *out) {
    int has_single = memchr(v->s, '\'', v->slen) != NULL;
    int has_double = memchr(v->s, '"', v->slen) != NULL;
    if (has_single && !has_double) {
        dspex_buf_putc(out, '"');
        dspex_buf_put(out, v->s, v->slen);
        dspex_buf_putc(out, '"');
    } else if (has_single && has_double) {
        dspex_buf_putc(out, '\'');
        for (size_t i = 0; i < v->slen; i++) {
            if (v->s[i] == '\'') dspex_buf_putc(out, '\\');
            dspex_buf_putc(out, v->s[i]);
        }
        dspex_buf_putc(out, '\'');
    } else {
        dspex_buf_putc(out, '\'');
        dspex_buf_put(out, v->s, v->slen);
        dspex_buf_putc(out, '\'');
    }
}

static void name_rec(const dspex_type *t, dspex_buf *out, int depth) {
    if (depth > DSPEX_TYPE_MAX_DEPTH) return;
    switch (t->kind) {
    case DSPEX_T_ENUM:
    case DSPEX_T_MODEL: dspex_buf_put(out, t->name, t->name_len); return;
    case DSPEX_T_LITERAL:
        dspex_buf_puts(out, "Literal[");
        for (size_t i = 0; i < t->nvals; i++) {
            if (i) dspex_buf_puts(out, ", ");
            if (t->vals[i]->kind == DSPEX_V_STR)
                literal_str_name(t->vals[i], out);
            else
                dspex_py_str(t->vals[i], out);
        }
        dspex_buf_putc(out, ']');
        return;
    case DSPEX_T_UNION:
        dspex_buf_puts(out, t->flags & DSPEX_TF_PIPE ? "UnionType[" : "Union[");
        for (size_t i = 0; i < t->nargs; i++) {
            if (i) dspex_buf_puts(out, ", ");
            name_rec(t->args[i], out, depth + 1);
        }
        dspex_buf_putc(out, ']');
        return;
    default: break;
    }
    dspex_buf_puts(out, BASE_NAMES[t->kind]);
    /* get_origin(typing.List) is list with no args: DSPy prints "list[]" */
    if (t->nargs == 0 && !(t->flags & DSPEX_TF_ALIAS)) return;
    dspex_buf_putc(out, '[');
    for (size_t i = 0; i < t->nargs; i++) {
        if (i) dspex_buf_puts(out, ", ");
        name_rec(t->args[i], out, depth + 1);
    }
    if (t->flags & DSPEX_TF_VARIADIC) dspex_buf_puts(out, ", Ellipsis");
    dspex_buf_putc(out, ']');
}

void dspex_type_name(const dspex_type *t, dspex_buf *out) { name_rec(t, out, 0); }

/* ---------------------------------------------------------------- signature syntax */
static void string_rec(const dspex_type *t, dspex_buf *out, int depth);

static void literal_values(const dspex_type *t, dspex_buf *out) {
    dspex_buf_puts(out, "Literal[");
    for (size_t i = 0; i < t->nvals; i++) {
        if (i) dspex_buf_puts(out, ", ");
        dspex_py_repr(t->vals[i], out);
    }
    dspex_buf_putc(out, ']');
}

static void args_string(const dspex_type *t, size_t from, size_t to, dspex_buf *out, int depth) {
    for (size_t i = from; i < to; i++) {
        if (i > from) dspex_buf_puts(out, ", ");
        string_rec(t->args[i], out, depth + 1);
    }
}

static void string_rec(const dspex_type *t, dspex_buf *out, int depth) {
    if (depth > DSPEX_TYPE_MAX_DEPTH) return;
    static const char *const ALIASES[] = {[DSPEX_T_LIST] = "List", [DSPEX_T_SET] = "Set",
                                          [DSPEX_T_FROZENSET] = "FrozenSet", [DSPEX_T_DICT] = "Dict",
                                          [DSPEX_T_TUPLE] = "Tuple"};
    switch (t->kind) {
    case DSPEX_T_NONE: dspex_buf_puts(out, "None"); return;
    case DSPEX_T_DATETIME: dspex_buf_puts(out, "datetime.datetime"); return;
    case DSPEX_T_DATE: dspex_buf_puts(out, "datetime.date"); return;
    case DSPEX_T_TOOL: dspex_buf_puts(out, "dspy.Tool"); return;
    case DSPEX_T_TOOL_CALLS: dspex_buf_puts(out, "dspy.ToolCalls"); return;
    case DSPEX_T_IMAGE: dspex_buf_puts(out, "dspy.Image"); return;
    case DSPEX_T_MODEL: dspex_buf_put(out, t->name, t->name_len); return; /* no string syntax for models */
    case DSPEX_T_LITERAL:
    case DSPEX_T_ENUM: literal_values(t, out); return;
    case DSPEX_T_UNION: {
        if (t->flags & DSPEX_TF_PIPE) {
            for (size_t i = 0; i < t->nargs; i++) {
                if (i) dspex_buf_puts(out, " | ");
                string_rec(t->args[i], out, depth + 1);
            }
            return;
        }
        size_t n = t->nargs;
        if (t->args[n - 1]->kind == DSPEX_T_NONE) {
            /* None written last: Optional[...] (what typing.Optional builds) */
            dspex_buf_puts(out, n == 2 ? "Optional[" : "Optional[Union[");
            args_string(t, 0, n - 1, out, depth);
            dspex_buf_puts(out, n == 2 ? "]" : "]]");
            return;
        }
        dspex_buf_puts(out, "Union[");
        args_string(t, 0, n, out, depth);
        dspex_buf_putc(out, ']');
        return;
    }
    default: break;
    }
    int generic = t->kind >= DSPEX_T_LIST && t->kind <= DSPEX_T_TUPLE;
    dspex_buf_puts(out, generic && (t->flags & DSPEX_TF_ALIAS) ? ALIASES[t->kind] : BASE_NAMES[t->kind]);
    if (t->nargs == 0) return;
    dspex_buf_putc(out, '[');
    args_string(t, 0, t->nargs, out, depth);
    if (t->flags & DSPEX_TF_VARIADIC) dspex_buf_puts(out, ", ...");
    dspex_buf_putc(out, ']');
}

void dspex_type_string(const dspex_type *t, dspex_buf *out) { string_rec(t, out, 0); }
