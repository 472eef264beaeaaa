/* Type terms as DSPy prints them (get_annotation_name) and pydantic's JSON schema for
 * them (TypeAdapter(T).json_schema()), with DSPy's key order: "type" first, then
 * alphabetical, recursively. */
#include <string.h>

#include "dspex/adapter.h"

dxa_type *dxa_type_new(dspex_arena *a, dxa_tkind kind) {
    dxa_type *t = dspex_arena_alloc(a, sizeof *t);
    if (t) t->kind = kind;
    return t;
}

/* ---------------------------------------------------------------- names */
static void literal_str_name(const dxa_val *v, dspex_buf *out) {
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

static void union_members_name(const dxa_type *t, int *first, dspex_buf *out, int depth);

static void type_name_rec(const dxa_type *t, dspex_buf *out, int depth) {
    if (depth > DXA_MAX_DEPTH) return;
    static const char *bare[] = {"str", "int", "float", "bool", "Any", "NoneType", "History",
                                 "list", "dict", "tuple", "set"};
    switch (t->kind) {
    case DXT_STR:
    case DXT_INT:
    case DXT_FLOAT:
    case DXT_BOOL:
    case DXT_ANY:
    case DXT_NONE:
    case DXT_HISTORY: dspex_buf_puts(out, bare[t->kind]); break;
    case DXT_LIST:
    case DXT_DICT:
    case DXT_TUPLE:
    case DXT_SET:
        dspex_buf_puts(out, bare[t->kind]);
        if (t->nargs) {
            dspex_buf_putc(out, '[');
            for (size_t i = 0; i < t->nargs; i++) {
                if (i) dspex_buf_puts(out, ", ");
                type_name_rec(t->args[i], out, depth + 1);
            }
            if (t->variadic) dspex_buf_puts(out, ", Ellipsis");
            dspex_buf_putc(out, ']');
        }
        break;
    case DXT_LITERAL:
        dspex_buf_puts(out, "Literal[");
        for (size_t i = 0; i < t->nlits; i++) {
            if (i) dspex_buf_puts(out, ", ");
            if (t->lits[i]->kind == DXA_STR)
                literal_str_name(t->lits[i], out);
            else
                dxa_py_str(t->lits[i], out);
        }
        dspex_buf_putc(out, ']');
        break;
    case DXT_OPTIONAL:
    case DXT_UNION: {
        int first = 1;
        dspex_buf_puts(out, "Union[");
        union_members_name(t, &first, out, depth + 1);
        dspex_buf_putc(out, ']');
        break;
    }
    case DXT_ENUM: dspex_buf_puts(out, t->enum_name ? t->enum_name : "Enum"); break;
    }
}

/* Python flattens nested Unions and puts Optional's None last (after the inner members). */
static void union_members_name(const dxa_type *t, int *first, dspex_buf *out, int depth) {
    if (depth > DXA_MAX_DEPTH) return;
    for (size_t i = 0; i < t->nargs; i++) {
        const dxa_type *m = t->args[i];
        if (m->kind == DXT_UNION || m->kind == DXT_OPTIONAL) {
            union_members_name(m, first, out, depth + 1);
        } else {
            if (!*first) dspex_buf_puts(out, ", ");
            *first = 0;
            type_name_rec(m, out, depth + 1);
        }
    }
    if (t->kind == DXT_OPTIONAL) {
        if (!*first) dspex_buf_puts(out, ", ");
        *first = 0;
        dspex_buf_puts(out, "NoneType");
    }
}

void dxa_type_name(const dxa_type *t, dspex_buf *out) { type_name_rec(t, out, 0); }

/* ---------------------------------------------------------------- schema values */
typedef struct {
    dspex_arena *a;
    const dxa_type *defs[64];
    size_t ndefs;
    int oom;
} schema_ctx;

static dxa_val *sdict(schema_ctx *c, size_t cap) {
    dxa_val *d = dxa_val_new(c->a, DXA_DICT);
    if (d) {
        d->keys = dspex_arena_alloc(c->a, cap * sizeof(dxa_val *));
        d->items = dspex_arena_alloc(c->a, cap * sizeof(dxa_val *));
    }
    if (d == NULL || d->keys == NULL || d->items == NULL) {
        c->oom = 1;
        return NULL;
    }
    return d;
}

static void sset(schema_ctx *c, dxa_val *d, const char *k, dxa_val *v) {
    if (d == NULL || v == NULL) {
        c->oom = 1;
        return;
    }
    dxa_val *key = dxa_val_str(c->a, k, strlen(k));
    if (key == NULL) {
        c->oom = 1;
        return;
    }
    d->keys[d->n] = key;
    d->items[d->n] = v;
    d->n++;
}

static dxa_val *sstr(schema_ctx *c, const char *s) {
    dxa_val *v = dxa_val_str(c->a, s, strlen(s));
    if (v == NULL) c->oom = 1;
    return v;
}

static dxa_val *stype(schema_ctx *c, const char *ty) {
    dxa_val *d = sdict(c, 1);
    sset(c, d, "type", sstr(c, ty));
    return d;
}

static dxa_val *slist(schema_ctx *c, size_t n) {
    dxa_val *l = dxa_val_new(c->a, DXA_LIST);
    if (l) l->items = dspex_arena_alloc(c->a, (n ? n : 1) * sizeof(dxa_val *));
    if (l == NULL || l->items == NULL) {
        c->oom = 1;
        return NULL;
    }
    return l;
}

static dxa_val *sbool(schema_ctx *c, int b) {
    dxa_val *v = dxa_val_new(c->a, DXA_BOOL);
    if (v == NULL) {
        c->oom = 1;
        return NULL;
    }
    v->b = b;
    return v;
}

static dxa_val *sint(schema_ctx *c, long long i) {
    dxa_val *v = dxa_val_new(c->a, DXA_INT);
    if (v == NULL) {
        c->oom = 1;
        return NULL;
    }
    v->i = i;
    return v;
}

static const char *lit_type(const dxa_val *v) {
    switch (v->kind) {
    case DXA_STR: return "string";
    case DXA_INT: return "integer";
    case DXA_FLOAT: return "number";
    case DXA_BOOL: return "boolean";
    case DXA_NONE: return "null";
    default: return NULL;
    }
}

static dxa_val *enum_schema(schema_ctx *c, const dxa_type *t) {
    dxa_val *d = sdict(c, 3);
    dxa_val *l = slist(c, t->nenum);
    if (l)
        for (size_t i = 0; i < t->nenum; i++) l->items[l->n++] = t->enum_vals[i];
    sset(c, d, "type", sstr(c, "string"));
    sset(c, d, "enum", l);
    sset(c, d, "title", sstr(c, t->enum_name ? t->enum_name : "Enum"));
    return d;
}

static dxa_val *schema_rec(schema_ctx *c, const dxa_type *t, int depth);

static void union_members(schema_ctx *c, const dxa_type *t, dxa_val *list, int depth) {
    if (depth > DXA_MAX_DEPTH || list == NULL) return;
    for (size_t i = 0; i < t->nargs; i++) {
        const dxa_type *m = t->args[i];
        if (m->kind == DXT_UNION || m->kind == DXT_OPTIONAL)
            union_members(c, m, list, depth + 1);
        else
            list->items[list->n++] = schema_rec(c, m, depth + 1);
    }
    if (t->kind == DXT_OPTIONAL) list->items[list->n++] = stype(c, "null");
}

static size_t count_union(const dxa_type *t, int depth) {
    if (depth > DXA_MAX_DEPTH) return 0;
    size_t n = t->kind == DXT_OPTIONAL ? 1 : 0;
    for (size_t i = 0; i < t->nargs; i++) {
        const dxa_type *m = t->args[i];
        n += (m->kind == DXT_UNION || m->kind == DXT_OPTIONAL) ? count_union(m, depth + 1) : 1;
    }
    return n;
}

static dxa_val *schema_rec(schema_ctx *c, const dxa_type *t, int depth) {
    if (depth > DXA_MAX_DEPTH || c->oom) {
        c->oom = 1;
        return NULL;
    }
    switch (t->kind) {
    case DXT_STR: return stype(c, "string");
    case DXT_INT: return stype(c, "integer");
    case DXT_FLOAT: return stype(c, "number");
    case DXT_BOOL: return stype(c, "boolean");
    case DXT_NONE: return stype(c, "null");
    case DXT_ANY:
    case DXT_HISTORY: return sdict(c, 1);
    case DXT_LIST:
    case DXT_SET: {
        dxa_val *d = sdict(c, 3);
        sset(c, d, "type", sstr(c, "array"));
        sset(c, d, "items", t->nargs ? schema_rec(c, t->args[0], depth + 1) : sdict(c, 1));
        if (t->kind == DXT_SET) sset(c, d, "uniqueItems", sbool(c, 1));
        return d;
    }
    case DXT_TUPLE: {
        dxa_val *d = sdict(c, 4);
        sset(c, d, "type", sstr(c, "array"));
        if (t->nargs == 0 || t->variadic) {
            sset(c, d, "items", t->nargs ? schema_rec(c, t->args[0], depth + 1) : sdict(c, 1));
        } else {
            sset(c, d, "maxItems", sint(c, (long long)t->nargs));
            sset(c, d, "minItems", sint(c, (long long)t->nargs));
            dxa_val *l = slist(c, t->nargs);
            if (l)
                for (size_t i = 0; i < t->nargs; i++) l->items[l->n++] = schema_rec(c, t->args[i], depth + 1);
            sset(c, d, "prefixItems", l);
        }
        return d;
    }
    case DXT_DICT: {
        dxa_val *d = sdict(c, 2);
        sset(c, d, "type", sstr(c, "object"));
        if (t->nargs < 2 || t->args[1]->kind == DXT_ANY)
            sset(c, d, "additionalProperties", sbool(c, 1));
        else
            sset(c, d, "additionalProperties", schema_rec(c, t->args[1], depth + 1));
        return d;
    }
    case DXT_LITERAL: {
        dxa_val *d = sdict(c, 2);
        const char *ty = t->nlits ? lit_type(t->lits[0]) : NULL;
        for (size_t i = 1; i < t->nlits && ty; i++) {
            const char *o = lit_type(t->lits[i]);
            if (o == NULL || strcmp(o, ty) != 0) ty = NULL;
        }
        if (ty) sset(c, d, "type", sstr(c, ty));
        if (t->nlits == 1) {
            sset(c, d, "const", t->lits[0]);
        } else {
            dxa_val *l = slist(c, t->nlits);
            if (l)
                for (size_t i = 0; i < t->nlits; i++) l->items[l->n++] = t->lits[i];
            sset(c, d, "enum", l);
        }
        return d;
    }
    case DXT_OPTIONAL:
    case DXT_UNION: {
        size_t n = count_union(t, depth);
        if (n == 1 && t->kind == DXT_UNION) return schema_rec(c, t->args[0], depth + 1);
        dxa_val *d = sdict(c, 1);
        dxa_val *l = slist(c, n);
        union_members(c, t, l, depth + 1);
        sset(c, d, "anyOf", l);
        return d;
    }
    case DXT_ENUM: {
        if (depth == 0) return enum_schema(c, t);
        int seen = 0;
        for (size_t i = 0; i < c->ndefs; i++)
            if (strcmp(c->defs[i]->enum_name ? c->defs[i]->enum_name : "", t->enum_name ? t->enum_name : "") == 0)
                seen = 1;
        if (!seen && c->ndefs < 64) c->defs[c->ndefs++] = t;
        dspex_buf b;
        dspex_buf_init(&b);
        dspex_buf_puts(&b, "#/$defs/");
        dspex_buf_puts(&b, t->enum_name ? t->enum_name : "Enum");
        dxa_val *ref = b.oom ? NULL : dxa_val_str(c->a, b.p, b.len);
        dspex_buf_free(&b);
        dxa_val *d = sdict(c, 1);
        sset(c, d, "$ref", ref);
        return d;
    }
    }
    return NULL;
}

/* "type" first, then byte order (== code point order for UTF-8), recursively. */
static int key_before(const dxa_val *a, const dxa_val *b) {
    int at = a->slen == 4 && memcmp(a->s, "type", 4) == 0;
    int bt = b->slen == 4 && memcmp(b->s, "type", 4) == 0;
    if (at != bt) return at;
    size_t m = a->slen < b->slen ? a->slen : b->slen;
    int r = memcmp(a->s, b->s, m);
    if (r != 0) return r < 0;
    return a->slen < b->slen;
}

static void sort_schema(dxa_val *v, int depth) {
    if (v == NULL || depth > DXA_MAX_DEPTH) return;
    if (v->kind == DXA_DICT) {
        for (size_t i = 1; i < v->n; i++) {
            dxa_val *k = v->keys[i], *x = v->items[i];
            size_t j = i;
            while (j > 0 && key_before(k, v->keys[j - 1])) {
                v->keys[j] = v->keys[j - 1];
                v->items[j] = v->items[j - 1];
                j--;
            }
            v->keys[j] = k;
            v->items[j] = x;
        }
    }
    if (v->kind == DXA_DICT || v->kind == DXA_LIST)
        for (size_t i = 0; i < v->n; i++) sort_schema(v->items[i], depth + 1);
}

dxa_val *dxa_json_schema_val(const dxa_type *t, dspex_arena *a) {
    schema_ctx c = {.a = a};
    dxa_val *s = schema_rec(&c, t, 0);
    if (c.oom || s == NULL) return NULL;
    if (c.ndefs) {
        dxa_val *defs = sdict(&c, c.ndefs);
        for (size_t i = 0; i < c.ndefs; i++)
            sset(&c, defs, c.defs[i]->enum_name ? c.defs[i]->enum_name : "Enum", enum_schema(&c, c.defs[i]));
        /* grow s by one key */
        dxa_val *s2 = sdict(&c, s->n + 1);
        if (c.oom) return NULL;
        for (size_t i = 0; i < s->n; i++) {
            s2->keys[i] = s->keys[i];
            s2->items[i] = s->items[i];
        }
        s2->n = s->n;
        sset(&c, s2, "$defs", defs);
        s = s2;
    }
    if (c.oom) return NULL;
    sort_schema(s, 0);
    return s;
}

int dxa_json_schema(const dxa_type *t, dspex_arena *a, dspex_buf *out) {
    dxa_val *s = dxa_json_schema_val(t, a);
    if (s == NULL) return -1;
    dxa_json_dumps(s, -1, out);
    return out->oom ? -1 : 0;
}
