/* pydantic's JSON schema for a type (TypeAdapter(T).json_schema()), with DSPy's key order:
 * "type" first, then alphabetical, recursively. See include/dspex/type.h. */
#include <string.h>

#include "dspex/pytext.h"
#include "dspex/type.h"

#define SCHEMA_MAX_DEFS 64 /* distinct named types ($defs) in one schema */

typedef struct {
    const char *name; /* the definition's name (an enum's or a model's class name) */
    size_t len;
    dspex_val *schema; /* NULL while it is being built (a recursive reference) */
} schema_def;

typedef struct {
    dspex_arena *a;
    schema_def defs[SCHEMA_MAX_DEFS]; /* named types referenced below the top level */
    size_t ndefs;
    int oom;
} schema_ctx;

static dspex_val *sdict(schema_ctx *c, size_t cap) {
    dspex_val *d = dspex_val_new(c->a, DSPEX_V_DICT);
    if (d) {
        d->keys = dspex_arena_alloc(c->a, cap * sizeof(dspex_val *));
        d->items = dspex_arena_alloc(c->a, cap * sizeof(dspex_val *));
    }
    if (d == NULL || d->keys == NULL || d->items == NULL) {
        c->oom = 1;
        return NULL;
    }
    return d;
}

static void sset(schema_ctx *c, dspex_val *d, const char *k, dspex_val *v) {
    if (d == NULL || v == NULL) {
        c->oom = 1;
        return;
    }
    dspex_val *key = dspex_val_str(c->a, k, strlen(k));
    if (key == NULL) {
        c->oom = 1;
        return;
    }
    d->keys[d->n] = key;
    d->items[d->n] = v;
    d->n++;
}

static dspex_val *sstr_n(schema_ctx *c, const char *s, size_t n) {
    dspex_val *v = dspex_val_str(c->a, s, n);
    if (v == NULL) c->oom = 1;
    return v;
}

static dspex_val *sstr(schema_ctx *c, const char *s) { return sstr_n(c, s, strlen(s)); }

static dspex_val *stype(schema_ctx *c, const char *ty, const char *format) {
    dspex_val *d = sdict(c, 2);
    sset(c, d, "type", sstr(c, ty));
    if (format) sset(c, d, "format", sstr(c, format));
    return d;
}

static dspex_val *slist(schema_ctx *c, size_t n) {
    dspex_val *l = dspex_val_new(c->a, DSPEX_V_LIST);
    if (l) l->items = dspex_arena_alloc(c->a, (n ? n : 1) * sizeof(dspex_val *));
    if (l == NULL || l->items == NULL) {
        c->oom = 1;
        return NULL;
    }
    return l;
}

static dspex_val *sbool(schema_ctx *c, int b) {
    dspex_val *v = dspex_val_new(c->a, DSPEX_V_BOOL);
    if (v == NULL) {
        c->oom = 1;
        return NULL;
    }
    v->b = b;
    return v;
}

static dspex_val *sint(schema_ctx *c, long long i) {
    dspex_val *v = dspex_val_int(c->a, i);
    if (v == NULL) c->oom = 1;
    return v;
}

/* The JSON type shared by all values, or NULL when they differ (pydantic then omits it). */
static const char *values_type(dspex_val *const *vals, size_t n) {
    const char *ty = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *o;
        switch (vals[i]->kind) {
        case DSPEX_V_STR: o = "string"; break;
        case DSPEX_V_INT: o = "integer"; break;
        case DSPEX_V_FLOAT: o = "number"; break;
        case DSPEX_V_BOOL: o = "boolean"; break;
        case DSPEX_V_NONE: o = "null"; break;
        default: return NULL;
        }
        if (ty && strcmp(ty, o) != 0) return NULL;
        ty = o;
    }
    return ty;
}

/* {"type": ..., "const": v} for one value, {"type": ..., "enum": [...]} for several. */
static dspex_val *values_schema(schema_ctx *c, dspex_val *const *vals, size_t n, size_t cap) {
    dspex_val *d = sdict(c, cap + 2);
    const char *ty = values_type(vals, n);
    if (ty) sset(c, d, "type", sstr(c, ty));
    if (n == 1) {
        sset(c, d, "const", vals[0]);
    } else {
        dspex_val *l = slist(c, n);
        if (l)
            for (size_t i = 0; i < n; i++) l->items[l->n++] = vals[i];
        sset(c, d, "enum", l);
    }
    return d;
}

static dspex_val *enum_schema(schema_ctx *c, const dspex_type *t) {
    /* an Enum always lists its values (even one), titled by its class name */
    dspex_val *d = sdict(c, 3);
    const char *ty = values_type(t->vals, t->nvals);
    if (ty) sset(c, d, "type", sstr(c, ty));
    dspex_val *l = slist(c, t->nvals);
    if (l)
        for (size_t i = 0; i < t->nvals; i++) l->items[l->n++] = t->vals[i];
    sset(c, d, "enum", l);
    sset(c, d, "title", sstr(c, t->name));
    return d;
}

static dspex_val *schema_rec(schema_ctx *c, const dspex_type *t, int depth);

typedef dspex_val *(*body_fn)(schema_ctx *c, const dspex_type *t, int depth);

/* {"$ref": "#/$defs/<name>"} */
static dspex_val *ref_of(schema_ctx *c, const char *name, size_t len) {
    dspex_buf b;
    dspex_buf_init(&b);
    dspex_buf_puts(&b, "#/$defs/");
    dspex_buf_put(&b, name, len);
    dspex_val *ref = b.oom ? NULL : dspex_val_str(c->a, b.p, b.len);
    dspex_buf_free(&b);
    dspex_val *d = sdict(c, 1);
    sset(c, d, "$ref", ref);
    return d;
}

/* A named type (enum, model): its body at the top level, else a $ref to its definition,
 * built once (registered before its body, so a type that refers to itself terminates). */
static dspex_val *named(schema_ctx *c, const char *name, size_t len, body_fn body, const dspex_type *t, int depth) {
    if (depth == 0) return body(c, t, depth);
    size_t i = 0;
    while (i < c->ndefs && !(c->defs[i].len == len && memcmp(c->defs[i].name, name, len) == 0)) i++;
    if (i == c->ndefs) {
        if (c->ndefs == SCHEMA_MAX_DEFS) {
            c->oom = 1;
            return NULL;
        }
        c->defs[c->ndefs++] = (schema_def){name, len, NULL};
        dspex_val *def = body(c, t, depth);
        if (def == NULL) return NULL;
        c->defs[i].schema = def;
    }
    return ref_of(c, name, len);
}

static dspex_val *enum_body(schema_ctx *c, const dspex_type *t, int depth) {
    (void)depth;
    return enum_schema(c, t);
}

static dspex_val *toolcall_body(schema_ctx *c, const dspex_type *t, int depth) {
    (void)t;
    (void)depth;
    /* dspy.ToolCalls.ToolCall without its "id" (DSPy removes it from the schema) */
    dspex_val *name = sdict(c, 2), *args = sdict(c, 3), *props = sdict(c, 2), *req = slist(c, 2);
    sset(c, name, "title", sstr(c, "Name"));
    sset(c, name, "type", sstr(c, "string"));
    sset(c, args, "additionalProperties", sbool(c, 1));
    sset(c, args, "title", sstr(c, "Args"));
    sset(c, args, "type", sstr(c, "object"));
    sset(c, props, "name", name);
    sset(c, props, "args", args);
    if (req) {
        req->items[req->n++] = sstr(c, "name");
        req->items[req->n++] = sstr(c, "args");
    }
    dspex_val *d = sdict(c, 4);
    sset(c, d, "properties", props);
    sset(c, d, "required", req);
    sset(c, d, "title", sstr(c, "ToolCall"));
    sset(c, d, "type", sstr(c, "object"));
    return d;
}

static dspex_val *tool_calls_body(schema_ctx *c, const dspex_type *t, int depth) {
    /* dspy.ToolCalls without its "tool_call_results" (DSPy removes it from the schema) */
    dspex_val *calls = sdict(c, 3), *props = sdict(c, 1), *req = slist(c, 1);
    sset(c, calls, "items", named(c, "ToolCall", 8, toolcall_body, t, depth + 1));
    sset(c, calls, "title", sstr(c, "Tool Calls"));
    sset(c, calls, "type", sstr(c, "array"));
    sset(c, props, "tool_calls", calls);
    if (req) req->items[req->n++] = sstr(c, "tool_calls");
    dspex_val *d = sdict(c, 4);
    sset(c, d, "properties", props);
    sset(c, d, "required", req);
    sset(c, d, "title", sstr(c, "ToolCalls"));
    sset(c, d, "type", sstr(c, "object"));
    return d;
}

/* GenerateJsonSchema.get_title_from_name: str.title() of the name, "_" as a space. The
 * case mapping is ASCII; other characters are kept as written. */
static dspex_val *field_title(schema_ctx *c, const char *name, size_t n) {
    char *t = dspex_arena_alloc(c->a, n + 1);
    if (t == NULL) {
        c->oom = 1;
        return NULL;
    }
    int prev_cased = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        int lower = ch >= 'a' && ch <= 'z', upper = ch >= 'A' && ch <= 'Z';
        if (lower && !prev_cased) ch = (char)(ch - 'a' + 'A');
        else if (upper && prev_cased) ch = (char)(ch - 'A' + 'a');
        prev_cased = lower || upper || ((unsigned char)ch >= 0x80);
        t[i] = ch == '_' ? ' ' : ch;
    }
    /* .strip() */
    size_t s = 0, e = n;
    while (s < e && t[s] == ' ') s++;
    while (e > s && t[e - 1] == ' ') e--;
    return sstr_n(c, t + s, e - s);
}

/* pydantic leaves the title off a field whose (nullable-unwrapped) type is a named type
 * it references ($ref): a model, an enum, ToolCalls. */
static int titled(const dspex_type *t) {
    if (t->kind == DSPEX_T_UNION && t->nargs == 2 && (t->args[0]->kind == DSPEX_T_NONE || t->args[1]->kind == DSPEX_T_NONE))
        t = t->args[t->args[0]->kind == DSPEX_T_NONE ? 1 : 0];
    return !(t->kind == DSPEX_T_MODEL || t->kind == DSPEX_T_ENUM || t->kind == DSPEX_T_TOOL_CALLS);
}

static int key_eq(const char *k, const char *w) { return strcmp(k, w) == 0; }

/* The JSON-schema keyword of a constraint for a field of type t (pydantic's names). */
static const char *constraint_keyword(const char *key, const dspex_type *t) {
    int str = t->kind == DSPEX_T_STR;
    int obj = t->kind == DSPEX_T_DICT || t->kind == DSPEX_T_MODEL;
    if (key_eq(key, "gt")) return "exclusiveMinimum";
    if (key_eq(key, "ge")) return "minimum";
    if (key_eq(key, "lt")) return "exclusiveMaximum";
    if (key_eq(key, "le")) return "maximum";
    if (key_eq(key, "multiple_of")) return "multipleOf";
    if (key_eq(key, "min_length")) return str ? "minLength" : obj ? "minProperties" : "minItems";
    if (key_eq(key, "max_length")) return str ? "maxLength" : obj ? "maxProperties" : "maxItems";
    return NULL;
}

/* A dict value copied with room for `extra` more keys. */
static dspex_val *grown(schema_ctx *c, dspex_val *d, size_t extra) {
    dspex_val *g = sdict(c, (d ? d->n : 0) + extra);
    if (g == NULL || d == NULL) return g;
    for (size_t i = 0; i < d->n; i++) {
        g->keys[i] = d->keys[i];
        g->items[i] = d->items[i];
    }
    g->n = d->n;
    return g;
}

/* pydantic's model_json_schema(): properties with title / description / default /
 * constraints, required in declaration order, the class name as title, the docstring as
 * description. */
static dspex_val *model_body(schema_ctx *c, const dspex_type *t, int depth) {
    dspex_val *props = sdict(c, t->nfields + 1), *req = slist(c, t->nfields);
    for (size_t i = 0; i < t->nfields && !c->oom; i++) {
        const dspex_model_field *f = &t->fields[i];
        dspex_val *fs = grown(c, schema_rec(c, f->type, depth + 1), 4 + f->nconstraints);
        if (fs == NULL) return NULL;
        if (titled(f->type)) sset(c, fs, "title", field_title(c, f->name, f->name_len));
        if (f->desc) sset(c, fs, "description", sstr_n(c, f->desc, f->desc_len));
        if (f->default_value) sset(c, fs, "default", f->default_value);
        for (size_t k = 0; k < f->nconstraints; k++) {
            const char *kw = constraint_keyword(f->constraints[k].key, f->type);
            if (kw) sset(c, fs, kw, f->constraints[k].value);
        }
        char *name = dspex_arena_strndup(c->a, f->name, f->name_len);
        if (name == NULL) {
            c->oom = 1;
            return NULL;
        }
        sset(c, props, name, fs);
        if (f->default_value == NULL && req) req->items[req->n++] = sstr_n(c, f->name, f->name_len);
    }
    dspex_val *d = sdict(c, 5);
    if (t->desc) sset(c, d, "description", sstr_n(c, t->desc, t->desc_len));
    sset(c, d, "properties", props);
    if (req && req->n) sset(c, d, "required", req);
    sset(c, d, "title", sstr_n(c, t->name, t->name_len));
    sset(c, d, "type", sstr(c, "object"));
    return d;
}

/* The key schema of dict[K, V] as pydantic writes it under "propertyNames": a $ref for
 * an enum, a string schema without its "type" when it says more than "string" (a
 * Literal's enum/const, a date format); NULL when there is nothing to say. */
static dspex_val *property_names(schema_ctx *c, const dspex_type *k, int depth) {
    dspex_val *ks = schema_rec(c, k, depth + 1);
    if (ks == NULL || ks->kind != DSPEX_V_DICT) return NULL;
    if (dspex_dict_get(ks, "$ref", 4)) return ks;
    dspex_val *ty = dspex_dict_get(ks, "type", 4);
    if (ty == NULL || ty->kind != DSPEX_V_STR || ty->slen != 6 || memcmp(ty->s, "string", 6) != 0 || ks->n < 2)
        return NULL;
    dspex_val *rest = sdict(c, ks->n);
    if (rest == NULL) return NULL;
    for (size_t i = 0; i < ks->n; i++) {
        if (ks->keys[i]->slen == 4 && memcmp(ks->keys[i]->s, "type", 4) == 0) continue;
        rest->keys[rest->n] = ks->keys[i];
        rest->items[rest->n++] = ks->items[i];
    }
    return rest;
}

static dspex_val *schema_rec(schema_ctx *c, const dspex_type *t, int depth) {
    if (depth > DSPEX_TYPE_MAX_DEPTH + 2 || c->oom) {
        c->oom = 1;
        return NULL;
    }
    switch (t->kind) {
    case DSPEX_T_STR: return stype(c, "string", NULL);
    case DSPEX_T_INT: return stype(c, "integer", NULL);
    case DSPEX_T_FLOAT: return stype(c, "number", NULL);
    case DSPEX_T_BOOL: return stype(c, "boolean", NULL);
    case DSPEX_T_NONE: return stype(c, "null", NULL);
    case DSPEX_T_DATETIME: return stype(c, "string", "date-time");
    case DSPEX_T_DATE: return stype(c, "string", "date");
    case DSPEX_T_ANY:
    case DSPEX_T_HISTORY: return sdict(c, 1);
    case DSPEX_T_LIST:
    case DSPEX_T_SET:
    case DSPEX_T_FROZENSET: {
        dspex_val *d = sdict(c, 3);
        sset(c, d, "type", sstr(c, "array"));
        sset(c, d, "items", t->nargs ? schema_rec(c, t->args[0], depth + 1) : sdict(c, 1));
        if (t->kind != DSPEX_T_LIST) sset(c, d, "uniqueItems", sbool(c, 1));
        return d;
    }
    case DSPEX_T_TUPLE: {
        dspex_val *d = sdict(c, 4);
        sset(c, d, "type", sstr(c, "array"));
        if (t->nargs == 0 || (t->flags & DSPEX_TF_VARIADIC)) {
            sset(c, d, "items", t->nargs ? schema_rec(c, t->args[0], depth + 1) : sdict(c, 1));
        } else {
            sset(c, d, "maxItems", sint(c, (long long)t->nargs));
            sset(c, d, "minItems", sint(c, (long long)t->nargs));
            dspex_val *l = slist(c, t->nargs);
            if (l)
                for (size_t i = 0; i < t->nargs; i++) l->items[l->n++] = schema_rec(c, t->args[i], depth + 1);
            sset(c, d, "prefixItems", l);
        }
        return d;
    }
    case DSPEX_T_DICT: {
        dspex_val *d = sdict(c, 3);
        sset(c, d, "type", sstr(c, "object"));
        if (t->nargs < 2 || t->args[1]->kind == DSPEX_T_ANY)
            sset(c, d, "additionalProperties", sbool(c, 1));
        else
            sset(c, d, "additionalProperties", schema_rec(c, t->args[1], depth + 1));
        if (t->nargs == 2) {
            dspex_val *pn = property_names(c, t->args[0], depth);
            if (pn) sset(c, d, "propertyNames", pn);
        }
        return d;
    }
    case DSPEX_T_LITERAL: return values_schema(c, t->vals, t->nvals, 0);
    case DSPEX_T_UNION: {
        /* pydantic makes a union with None a nullable schema of the rest: "null" comes
         * last wherever None was written */
        dspex_val *d = sdict(c, 1);
        dspex_val *l = slist(c, t->nargs);
        int nullable = 0;
        if (l)
            for (size_t i = 0; i < t->nargs; i++) {
                if (t->args[i]->kind == DSPEX_T_NONE) {
                    nullable = 1;
                    continue;
                }
                /* members with the same schema (typing.List and list) appear once */
                dspex_val *m = schema_rec(c, t->args[i], depth + 1);
                if (m == NULL) return NULL;
                size_t j = 0;
                while (j < l->n && !dspex_val_equal(l->items[j], m)) j++;
                if (j == l->n) l->items[l->n++] = m;
            }
        if (l && l->n == 1 && !nullable) return l->items[0];
        if (l && nullable) l->items[l->n++] = stype(c, "null", NULL);
        sset(c, d, "anyOf", l);
        return d;
    }
    case DSPEX_T_ENUM: return named(c, t->name, t->name_len, enum_body, t, depth);
    case DSPEX_T_TOOL_CALLS: return named(c, "ToolCalls", 9, tool_calls_body, t, depth);
    case DSPEX_T_MODEL: return named(c, t->name, t->name_len, model_body, t, depth);
    case DSPEX_T_TOOL:
    case DSPEX_T_IMAGE: return sdict(c, 1); /* inputs only: no schema is shown for them */
    }
    return NULL;
}

/* Byte order (== code point order for UTF-8); with type_first, "type" before the rest. */
static int key_before(const dspex_val *a, const dspex_val *b, int type_first) {
    if (type_first) {
        int at = a->slen == 4 && memcmp(a->s, "type", 4) == 0;
        int bt = b->slen == 4 && memcmp(b->s, "type", 4) == 0;
        if (at != bt) return at;
    }
    size_t m = a->slen < b->slen ? a->slen : b->slen;
    int r = memcmp(a->s, b->s, m);
    if (r != 0) return r < 0;
    return a->slen < b->slen;
}

static int key_is(const dspex_val *k, const char *s) {
    size_t n = strlen(s);
    return k && k->kind == DSPEX_V_STR && k->slen == n && memcmp(k->s, s, n) == 0;
}

/* DSPy's order (type_first): every dict sorted, "type" first (_get_json_schema).
 * pydantic's order: sorted, except the names under "properties" (declaration order)
 * and values under "default" (GenerateJsonSchema.sort). */
static void sort_schema(dspex_val *v, int type_first, const dspex_val *parent_key, int depth) {
    if (v == NULL || depth > 2 * DSPEX_TYPE_MAX_DEPTH + 8) return;
    int keep = !type_first && (key_is(parent_key, "properties") || key_is(parent_key, "default"));
    if (v->kind == DSPEX_V_DICT && !keep) {
        for (size_t i = 1; i < v->n; i++) {
            dspex_val *k = v->keys[i], *x = v->items[i];
            size_t j = i;
            while (j > 0 && key_before(k, v->keys[j - 1], type_first)) {
                v->keys[j] = v->keys[j - 1];
                v->items[j] = v->items[j - 1];
                j--;
            }
            v->keys[j] = k;
            v->items[j] = x;
        }
    }
    if (!type_first && key_is(parent_key, "default")) return;
    if (v->kind == DSPEX_V_DICT)
        for (size_t i = 0; i < v->n; i++) sort_schema(v->items[i], type_first, v->keys[i], depth + 1);
    else if (v->kind == DSPEX_V_LIST)
        for (size_t i = 0; i < v->n; i++) sort_schema(v->items[i], type_first, NULL, depth + 1);
}

/* The schema with its "$defs" (unsorted). */
static dspex_val *schema_with_defs(const dspex_type *t, dspex_arena *a) {
    schema_ctx c = {.a = a};
    dspex_val *s = schema_rec(&c, t, 0);
    if (c.oom || s == NULL) return NULL;
    if (c.ndefs) {
        dspex_val *defs = sdict(&c, c.ndefs);
        for (size_t i = 0; i < c.ndefs && !c.oom; i++) {
            char *name = dspex_arena_strndup(a, c.defs[i].name, c.defs[i].len);
            if (name == NULL) return NULL;
            sset(&c, defs, name, c.defs[i].schema);
        }
        /* grow s by one key */
        dspex_val *s2 = sdict(&c, s->n + 1);
        if (c.oom) return NULL;
        for (size_t i = 0; i < s->n; i++) {
            s2->keys[i] = s->keys[i];
            s2->items[i] = s->items[i];
        }
        s2->n = s->n;
        sset(&c, s2, "$defs", defs);
        s = s2;
    }
    return c.oom ? NULL : s;
}

dspex_val *dspex_type_json_schema_val(const dspex_type *t, dspex_arena *a) {
    dspex_val *s = schema_with_defs(t, a);
    if (s) sort_schema(s, 1, NULL, 0);
    return s;
}

int dspex_type_json_schema(const dspex_type *t, dspex_arena *a, dspex_buf *out) {
    dspex_val *s = dspex_type_json_schema_val(t, a);
    if (s == NULL) return -1;
    dspex_json_dumps(s, -1, out);
    return out->oom ? -1 : 0;
}

/* DSPy's _resolve_json_schema_reference: each {"$ref": "#/$defs/N", ...} becomes the
 * (resolved) definition N. Copies what it changes; shares the rest. */
static dspex_val *inline_refs(dspex_val *v, const dspex_val *defs, dspex_arena *a, int depth) {
    if (v == NULL || depth > 2 * DSPEX_TYPE_MAX_DEPTH + 8) return NULL;
    if (v->kind == DSPEX_V_DICT) {
        dspex_val *ref = dspex_dict_get(v, "$ref", 4);
        if (ref && ref->kind == DSPEX_V_STR) {
            const char *slash = ref->s + ref->slen;
            while (slash > ref->s && slash[-1] != '/') slash--;
            dspex_val *def = dspex_dict_get(defs, slash, (size_t)(ref->s + ref->slen - slash));
            return def ? inline_refs(def, defs, a, depth + 1) : v;
        }
    }
    if (v->kind != DSPEX_V_DICT && v->kind != DSPEX_V_LIST) return v;
    dspex_val *c = dspex_val_new(a, v->kind);
    if (c == NULL) return NULL;
    c->items = dspex_arena_alloc(a, (v->n + 1) * sizeof(dspex_val *));
    c->keys = v->kind == DSPEX_V_DICT ? dspex_arena_alloc(a, (v->n + 1) * sizeof(dspex_val *)) : NULL;
    if (c->items == NULL || (v->kind == DSPEX_V_DICT && c->keys == NULL)) return NULL;
    for (size_t i = 0; i < v->n; i++) {
        if (v->kind == DSPEX_V_DICT && depth == 0 && key_is(v->keys[i], "$defs")) continue;
        dspex_val *x = inline_refs(v->items[i], defs, a, depth + 1);
        if (x == NULL) return NULL;
        if (c->keys) c->keys[c->n] = v->keys[i];
        c->items[c->n++] = x;
    }
    return c;
}

dspex_val *dspex_type_json_schema_inline_val(const dspex_type *t, dspex_arena *a) {
    dspex_val *s = schema_with_defs(t, a);
    if (s == NULL) return NULL;
    sort_schema(s, 0, NULL, 0);
    dspex_val *defs = dspex_dict_get(s, "$defs", 5);
    return defs ? inline_refs(s, defs, a, 0) : s;
}
