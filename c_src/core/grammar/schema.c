/* JSON Schema -> NFA, and the generic JSON rules. The schema is read into the adapters'
 * value tree (pyvalue.h) after a strict JSON check; keyword coverage is listed in
 * grammar.h. Called rules: JSON strings (GK_STRING), generic objects and arrays per
 * remaining depth (GK_GOBJ, GK_GARR), and $ref targets (GK_REF, one rule per target and
 * recursion level - a target that can reach itself is unrolled ref_depth levels, then
 * its recursive branches are cut, so a required recursion is "admits no value").
 * Everything else is inlined. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/json.h"
#include "dspex/pytext.h"
#include "dspex/value.h"
#include "grammar_int.h"

#define MAX_TARGETS 1024
#define MAX_SCAN ((size_t)1 << 22) /* schema nodes visited by the recursion scan */
#define MAX_LEN_BOUND 100000      /* minLength / maxLength / minItems / maxItems */

/* ---------------------------------------------------------------- value helpers */
static const dspex_val *get(const dspex_val *v, const char *key) {
    if (v == NULL || v->kind != DSPEX_V_DICT) return NULL;
    return dspex_dict_get(v, key, strlen(key));
}

static int is_str(const dspex_val *v, const char *s) {
    return v && v->kind == DSPEX_V_STR && v->slen == strlen(s) && memcmp(v->s, s, v->slen) == 0;
}

static int num_of(const dspex_val *v, double *out) {
    if (v == NULL) return 0;
    if (v->kind == DSPEX_V_INT) {
        *out = v->s ? (v->s[0] == '-' ? -1e300 : 1e300) : (double)v->i;
        return 1;
    }
    if (v->kind == DSPEX_V_FLOAT) {
        *out = v->f;
        return 1;
    }
    return 0;
}

/* A non-negative integer keyword (minLength, maxItems, ...); -1 when absent. */
static long count_kw(gb *b, const dspex_val *node, const char *kw) {
    const dspex_val *v = get(node, kw);
    if (v == NULL) return -1;
    double d;
    if (!num_of(v, &d) || d < 0 || d != (double)(long)d) {
        gb_fail(b, "schema: %s must be a non-negative integer", kw);
        return -1;
    }
    if (d > MAX_LEN_BOUND) {
        gb_fail(b, "schema: %s %.0f is above the supported %d", kw, d, MAX_LEN_BOUND);
        return -1;
    }
    return (long)d;
}

/* ---------------------------------------------------------------- JSON pieces */
void gj_ws(gb *b, int32_t from, int32_t to) {
    gb_eps(b, from, to);
    gb_byte(b, from, ' ', to);
    int32_t cur = gb_state(b);
    gb_byte(b, from, '\n', cur);
    gb_eps(b, cur, to);
    for (int i = 0; i < G_WS_INDENT; i++) {
        int32_t nx = gb_state(b);
        gb_byte(b, cur, ' ', nx);
        gb_eps(b, nx, to);
        cur = nx;
    }
}

/* ":" with an optional space */
static void colon(gb *b, int32_t from, int32_t to) {
    int32_t m = gb_state(b);
    gb_byte(b, from, ':', m);
    gb_eps(b, m, to);
    gb_byte(b, m, ' ', to);
}

/* "," then whitespace */
static void comma(gb *b, int32_t from, int32_t to) {
    int32_t m = gb_state(b);
    gb_byte(b, from, ',', m);
    gj_ws(b, m, to);
}

static void hex(gb *b, int32_t from, int32_t to) {
    gb_range(b, from, '0', '9', to);
    gb_range(b, from, 'a', 'f', to);
    gb_range(b, from, 'A', 'F', to);
}

void gj_char(gb *b, int32_t from, int32_t to) {
    gb_range(b, from, 0x20, 0x21, to);
    gb_range(b, from, 0x23, 0x5B, to);
    gb_range(b, from, 0x5D, 0x7E, to);
    gb_cp_range(b, from, 0x80, 0x10FFFF, to);
    int32_t esc = gb_state(b);
    gb_byte(b, from, '\\', esc);
    static const char simple[] = "\"\\/bfnrt";
    for (const char *p = simple; *p; p++) gb_byte(b, esc, (unsigned char)*p, to);
    /* \uXXXX without surrogates (D800-DFFF) */
    int32_t u = gb_state(b), h1 = gb_state(b), h1d = gb_state(b), h2 = gb_state(b), h3 = gb_state(b);
    gb_byte(b, esc, 'u', u);
    gb_range(b, u, '0', '9', h1);
    gb_range(b, u, 'a', 'c', h1);
    gb_range(b, u, 'A', 'C', h1);
    gb_range(b, u, 'e', 'f', h1);
    gb_range(b, u, 'E', 'F', h1);
    gb_byte(b, u, 'd', h1d);
    gb_byte(b, u, 'D', h1d);
    hex(b, h1, h2);
    gb_range(b, h1d, '0', '7', h2);
    hex(b, h2, h3);
    hex(b, h3, to);
}

/* "..." with a length range of characters (max < 0: unbounded) */
static void string_len(gb *b, long mn, long mx, int32_t from, int32_t to) {
    int32_t cur = gb_state(b), end = gb_state(b);
    gb_byte(b, from, '"', cur);
    gb_byte(b, end, '"', to);
    for (long i = 0; i < mn && !b->failed; i++) {
        int32_t nx = gb_state(b);
        gj_char(b, cur, nx);
        cur = nx;
    }
    if (mx < 0) {
        gb_eps(b, cur, end);
        gj_char(b, cur, cur);
        return;
    }
    for (long i = mn; i < mx && !b->failed; i++) {
        int32_t nx = gb_state(b);
        gb_eps(b, cur, end);
        gj_char(b, cur, nx);
        cur = nx;
    }
    gb_eps(b, cur, end);
}

static void literal_value(gb *b, const dspex_val *v, int32_t from, int32_t to) {
    dspex_buf t;
    dspex_buf_init(&t);
    dspex_json_dumps(v, -1, &t);
    if (t.oom) gb_fail(b, "out of memory");
    else gb_lit(b, from, t.p, t.len, to);
    dspex_buf_free(&t);
}

void gj_any_value(gb *b, int depth, int32_t from, int32_t to) {
    gb_ref(b, (gkey){GK_STRING, NULL, NULL, 0}, from, to);
    gn_number(b, NULL, NULL, from, to);
    gb_lits(b, from, "true", to);
    gb_lits(b, from, "false", to);
    gb_lits(b, from, "null", to);
    if (depth > 0) {
        gb_ref(b, (gkey){GK_GOBJ, NULL, NULL, depth}, from, to);
        gb_ref(b, (gkey){GK_GARR, NULL, NULL, depth}, from, to);
    }
}

/* { "key": value, ... } with values of one schema (NULL: any value at depth - 1) */
static void dict_body(gb *b, const dspex_val *vs, const dspex_val *doc, int rdepth, int depth, int32_t from,
                      int32_t to) {
    int32_t open = gb_state(b), first = gb_state(b), more = gb_state(b), ws = gb_state(b);
    gb_byte(b, from, '{', open);
    gj_ws(b, open, first);
    gb_byte(b, first, '}', to);
    for (int i = 0; i < 2; i++) { /* the first member, then ", member" repeated */
        int32_t at = first, k = gb_state(b), c = gb_state(b);
        if (i) {
            at = gb_state(b);
            comma(b, more, at);
        }
        gb_ref(b, (gkey){GK_STRING, NULL, NULL, 0}, at, k);
        colon(b, k, c);
        if (vs) gj_schema(b, vs, doc, rdepth, c, more);
        else gj_any_value(b, depth - 1, c, more);
    }
    gj_ws(b, more, ws);
    gb_byte(b, ws, '}', to);
}

static void array_any_body(gb *b, int depth, int32_t from, int32_t to) {
    int32_t open = gb_state(b), first = gb_state(b), more = gb_state(b), ws = gb_state(b);
    gb_byte(b, from, '[', open);
    gj_ws(b, open, first);
    gb_byte(b, first, ']', to);
    gj_any_value(b, depth - 1, first, more);
    int32_t m1 = gb_state(b);
    comma(b, more, m1);
    gj_any_value(b, depth - 1, m1, more);
    gj_ws(b, more, ws);
    gb_byte(b, ws, ']', to);
}

/* ---------------------------------------------------------------- $ref */
static const dspex_val *resolve(gb *b, const dspex_val *doc, const dspex_val *ref) {
    if (ref->kind != DSPEX_V_STR) {
        gb_fail(b, "schema: $ref must be a string");
        return NULL;
    }
    const char *s = ref->s;
    size_t n = ref->slen;
    if (n == 0 || s[0] != '#') {
        gb_fail(b, "schema: only local $refs (\"#...\") are supported, got \"%.*s\"", (int)(n > 80 ? 80 : n), s);
        return NULL;
    }
    const dspex_val *cur = doc;
    size_t i = 1;
    if (i < n && s[i] != '/') {
        gb_fail(b, "schema: $ref \"%.*s\" is not a JSON pointer", (int)(n > 80 ? 80 : n), s);
        return NULL;
    }
    while (i < n) {
        i++; /* '/' */
        char tok[256];
        size_t k = 0;
        while (i < n && s[i] != '/') {
            char c = s[i++];
            if (c == '~' && i < n && (s[i] == '0' || s[i] == '1')) c = s[i++] == '0' ? '~' : '/';
            if (k < sizeof tok - 1) tok[k++] = c;
        }
        tok[k] = 0;
        if (cur && cur->kind == DSPEX_V_DICT) {
            cur = dspex_dict_get(cur, tok, k);
        } else if (cur && (cur->kind == DSPEX_V_LIST) && k > 0 && k < 10) {
            char *end;
            unsigned long idx = strtoul(tok, &end, 10);
            cur = (*end == 0 && idx < cur->n) ? cur->items[idx] : NULL;
        } else {
            cur = NULL;
        }
        if (cur == NULL) {
            gb_fail(b, "schema: $ref \"%.*s\" does not resolve", (int)(n > 80 ? 80 : n), s);
            return NULL;
        }
    }
    return cur;
}

static int reach_scan(gb *b, const dspex_val *t, const dspex_val *doc);

/* Collects the $ref targets in node's subtree (not following refs). */
static void refs_in(gb *b, const dspex_val *node, const dspex_val *doc, const dspex_val **out, size_t *nout, size_t cap,
                    int depth) {
    if (b->failed || node == NULL || depth > G_MAX_NEST + 8) return;
    if (++b->scan > MAX_SCAN) {
        gb_fail(b, "schema: too large to analyse");
        return;
    }
    if (node->kind == DSPEX_V_DICT) {
        for (size_t i = 0; i < node->n; i++) {
            const dspex_val *k = node->keys[i];
            if (k->kind == DSPEX_V_STR && k->slen == 4 && memcmp(k->s, "$ref", 4) == 0) {
                const dspex_val *t = resolve(b, doc, node->items[i]);
                if (t && *nout < cap) out[(*nout)++] = t;
            } else {
                refs_in(b, node->items[i], doc, out, nout, cap, depth + 1);
            }
        }
    } else if (node->kind == DSPEX_V_LIST) {
        for (size_t i = 0; i < node->n; i++) refs_in(b, node->items[i], doc, out, nout, cap, depth + 1);
    }
}

/* Whether target can reach itself through $refs (breadth-first over targets; memoized,
 * and the nodes visited by all these scans together are bounded). */
static int reaches_itself(gb *b, const dspex_val *t, const dspex_val *doc) {
    for (size_t i = 0; i < b->nrec; i++)
        if (b->rec_node[i] == t) return b->rec_val[i];
    if (b->nrec == b->cap_rec) {
        size_t nc = b->cap_rec ? b->cap_rec * 2 : 16;
        const void **nn = dspex_arena_alloc(b->a, nc * sizeof(void *));
        int8_t *nv = dspex_arena_alloc(b->a, nc);
        if (!nn || !nv) {
            gb_fail(b, "out of memory");
            return 0;
        }
        if (b->nrec) {
            memcpy(nn, b->rec_node, b->nrec * sizeof(void *));
            memcpy(nv, b->rec_val, b->nrec);
        }
        b->rec_node = nn;
        b->rec_val = nv;
        b->cap_rec = nc;
    }
    int r = reach_scan(b, t, doc);
    b->rec_node[b->nrec] = t;
    b->rec_val[b->nrec++] = (int8_t)r;
    return r;
}

static int reach_scan(gb *b, const dspex_val *t, const dspex_val *doc) {
    const dspex_val **seen = dspex_arena_alloc(b->a, MAX_TARGETS * sizeof(*seen));
    const dspex_val **found = dspex_arena_alloc(b->a, MAX_TARGETS * sizeof(*found));
    if (seen == NULL || found == NULL) {
        gb_fail(b, "out of memory");
        return 0;
    }
    size_t ns = 0;
    seen[ns++] = t;
    for (size_t q = 0; q < ns && !b->failed; q++) {
        size_t nf = 0;
        refs_in(b, seen[q], doc, found, &nf, MAX_TARGETS, 0);
        for (size_t i = 0; i < nf; i++) {
            if (found[i] == t) return 1;
            size_t j;
            for (j = 0; j < ns; j++)
                if (seen[j] == found[i]) break;
            if (j == ns) {
                if (ns == MAX_TARGETS) {
                    gb_fail(b, "schema: more than %d distinct $ref targets", MAX_TARGETS);
                    return 0;
                }
                seen[ns++] = found[i];
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- schemas */
static void schema(gb *b, const dspex_val *node, const dspex_val *doc, int rdepth, int32_t from, int32_t to);

static void object_body(gb *b, const dspex_val *node, const dspex_val *doc, int rdepth, int32_t from, int32_t to) {
    const dspex_val *props = get(node, "properties");
    const dspex_val *req = get(node, "required");
    const dspex_val *addl = get(node, "additionalProperties");
    if (props && props->kind != DSPEX_V_DICT) {
        gb_fail(b, "schema: properties must be an object");
        return;
    }
    if (req && req->kind != DSPEX_V_LIST) {
        gb_fail(b, "schema: required must be an array");
        return;
    }
    size_t n = props ? props->n : 0;
    int extra = addl ? !(addl->kind == DSPEX_V_BOOL && !addl->b) : n == 0;
    const dspex_val *extra_schema = addl && addl->kind == DSPEX_V_DICT ? addl : NULL;
    if (n == 0 && (extra_schema || extra)) {
        /* a dict: every key, values of one schema */
        if (extra_schema) dict_body(b, extra_schema, doc, rdepth, 0, from, to);
        else gb_ref(b, (gkey){GK_GOBJ, NULL, NULL, b->lim.json_depth}, from, to);
        return;
    }
    for (size_t i = 0; req && i < req->n; i++) {
        const dspex_val *r = req->items[i];
        if (r->kind != DSPEX_V_STR) {
            gb_fail(b, "schema: required must list strings");
            return;
        }
        if (!props || !dspex_dict_get(props, r->s, r->slen)) {
            if (!extra) {
                gb_fail(b, "schema: required property \"%.*s\" is not in properties", (int)(r->slen > 60 ? 60 : r->slen),
                        r->s);
                return;
            }
        }
    }
    int32_t open = gb_state(b), close = gb_state(b);
    gb_byte(b, from, '{', open);
    int32_t *f = dspex_arena_alloc(b->a, (n + 1) * sizeof(int32_t)), *c = dspex_arena_alloc(b->a, (n + 1) * sizeof(int32_t));
    if (f == NULL || c == NULL) {
        gb_fail(b, "out of memory");
        return;
    }
    f[n] = gb_state(b);
    c[n] = gb_state(b);
    for (size_t ii = n; ii > 0 && !b->failed; ii--) {
        size_t i = ii - 1;
        const dspex_val *key = props->keys[i];
        if (key->kind != DSPEX_V_STR) {
            gb_fail(b, "schema: property names must be strings");
            return;
        }
        int required = 0;
        for (size_t j = 0; req && j < req->n; j++)
            if (req->items[j]->slen == key->slen && memcmp(req->items[j]->s, key->s, key->slen) == 0) required = 1;
        f[i] = gb_state(b);
        c[i] = gb_state(b);
        /* the member: "key": value */
        int32_t kf = gb_state(b), vf = gb_state(b), kc = gb_state(b), vc = gb_state(b), cm = gb_state(b);
        dspex_buf kt;
        dspex_buf_init(&kt);
        dspex_json_string(key->s, key->slen, &kt);
        if (kt.oom) {
            dspex_buf_free(&kt);
            gb_fail(b, "out of memory");
            return;
        }
        gb_lit(b, f[i], kt.p, kt.len, kf);
        colon(b, kf, vf);
        schema(b, props->items[i], doc, rdepth, vf, c[i + 1]);
        comma(b, c[i], cm);
        gb_lit(b, cm, kt.p, kt.len, kc);
        colon(b, kc, vc);
        schema(b, props->items[i], doc, rdepth, vc, c[i + 1]);
        dspex_buf_free(&kt);
        if (!required) {
            gb_eps(b, f[i], f[i + 1]);
            gb_eps(b, c[i], c[i + 1]);
        }
    }
    gj_ws(b, open, f[0]);
    /* additional properties after the known ones */
    int32_t fe = f[n], ce = c[n];
    if (extra) {
        int32_t k = gb_state(b), v = gb_state(b), m = gb_state(b), k2 = gb_state(b), v2 = gb_state(b);
        gb_ref(b, (gkey){GK_STRING, NULL, NULL, 0}, fe, k);
        colon(b, k, v);
        if (extra_schema) schema(b, extra_schema, doc, rdepth, v, ce);
        else gj_any_value(b, b->lim.json_depth - 1, v, ce);
        comma(b, ce, m);
        gb_ref(b, (gkey){GK_STRING, NULL, NULL, 0}, m, k2);
        colon(b, k2, v2);
        if (extra_schema) schema(b, extra_schema, doc, rdepth, v2, ce);
        else gj_any_value(b, b->lim.json_depth - 1, v2, ce);
    }
    gb_eps(b, fe, close);
    gj_ws(b, ce, close);
    gb_byte(b, close, '}', to);
}

static void array_body(gb *b, const dspex_val *node, const dspex_val *doc, int rdepth, int32_t from, int32_t to) {
    const dspex_val *prefix = get(node, "prefixItems");
    const dspex_val *items = get(node, "items");
    const dspex_val *rest = items;
    if (items && items->kind == DSPEX_V_LIST) { /* draft 4 tuple form */
        prefix = items;
        rest = get(node, "additionalItems");
    }
    if (prefix && prefix->kind != DSPEX_V_LIST) {
        gb_fail(b, "schema: prefixItems must be an array");
        return;
    }
    size_t np = prefix ? prefix->n : 0;
    long mn = count_kw(b, node, "minItems"), mx = count_kw(b, node, "maxItems");
    if (b->failed) return;
    if (mn < 0) mn = 0;
    int rest_ok = !(rest && rest->kind == DSPEX_V_BOOL && !rest->b);
    if (!rest_ok && (mx < 0 || mx > (long)np)) mx = (long)np;
    if (mx >= 0 && mx < mn) return; /* unsatisfiable: nothing */
    int32_t open = gb_state(b), close = gb_state(b);
    gb_byte(b, from, '[', open);
    int32_t p = gb_state(b);
    gj_ws(b, open, p);
    long unroll = (long)np > mn ? (long)np : mn;
    if (mx >= 0 && unroll > mx) unroll = mx;
    if (mx >= 0) unroll = mx; /* bounded: every position */
    for (long k = 0; k < unroll && !b->failed; k++) {
        const dspex_val *sk = k < (long)np ? prefix->items[k] : rest;
        if (k >= mn) gj_ws(b, p, close);
        int32_t e = gb_state(b), nx = gb_state(b);
        if (k > 0) comma(b, p, e);
        else gb_eps(b, p, e);
        if (sk) schema(b, sk, doc, rdepth, e, nx);
        else gj_any_value(b, b->lim.json_depth - 1, e, nx);
        p = nx;
    }
    if (mx < 0) { /* unbounded tail */
        int32_t e = gb_state(b), nx = gb_state(b);
        if (unroll == 0) {
            gb_eps(b, p, e);
            gj_ws(b, p, close);
            if (rest) schema(b, rest, doc, rdepth, e, nx);
            else gj_any_value(b, b->lim.json_depth - 1, e, nx);
            p = nx;
            e = gb_state(b);
        }
        comma(b, p, e);
        if (rest) schema(b, rest, doc, rdepth, e, p);
        else gj_any_value(b, b->lim.json_depth - 1, e, p);
    }
    gj_ws(b, p, close);
    gb_byte(b, close, ']', to);
}

static const char *format_regex(const dspex_val *f) {
    static const char *const fmts[][2] = {
        {"date", "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"},
        {"time", "^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?$"},
        {"date-time",
         "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?"
         "(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?$"},
        {"uuid", "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"},
        {"email", "^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\\.[A-Za-z0-9-]{1,63}){1,8}$"},
        {"ipv4", "^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$"},
    };
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++)
        if (is_str(f, fmts[i][0])) return fmts[i][1];
    return NULL;
}

static void string_body(gb *b, const dspex_val *node, int32_t from, int32_t to) {
    const dspex_val *pat = get(node, "pattern");
    const char *fmt = format_regex(get(node, "format"));
    if (pat || fmt) {
        if (pat && pat->kind != DSPEX_V_STR) {
            gb_fail(b, "schema: pattern must be a string");
            return;
        }
        int32_t s = gb_state(b), e = gb_state(b);
        gb_byte(b, from, '"', s);
        if (pat) gr_pattern(b, pat->s, pat->slen, s, e);
        else gr_pattern(b, fmt, strlen(fmt), s, e);
        gb_byte(b, e, '"', to);
        return;
    }
    long mn = count_kw(b, node, "minLength"), mx = count_kw(b, node, "maxLength");
    if (b->failed) return;
    if (mn <= 0 && mx < 0) {
        gb_ref(b, (gkey){GK_STRING, NULL, NULL, 0}, from, to);
        return;
    }
    if (mx >= 0 && mx < mn) return;
    string_len(b, mn < 0 ? 0 : mn, mx, from, to);
}

/* minimum / maximum / exclusive* into gdec bounds (a bound beyond 1e18 is dropped) */
static void bounds(gb *b, const dspex_val *node, gdec *lo, gdec *hi) {
    memset(lo, 0, sizeof *lo);
    memset(hi, 0, sizeof *hi);
    static const char *const kws[4] = {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"};
    for (int i = 0; i < 4; i++) {
        const dspex_val *v = get(node, kws[i]);
        if (v == NULL || v->kind == DSPEX_V_BOOL) continue;
        if (v->kind != DSPEX_V_INT && v->kind != DSPEX_V_FLOAT) {
            gb_fail(b, "schema: %s must be a number", kws[i]);
            return;
        }
        dspex_buf t;
        dspex_buf_init(&t);
        dspex_json_dumps(v, -1, &t);
        gdec d;
        int ok = !t.oom && gn_parse(t.p, t.len, &d) == 0;
        dspex_buf_free(&t);
        if (!ok) continue;
        d.excl = i & 1;
        gdec *slot = i < 2 ? lo : hi;
        /* keep the tighter of minimum / exclusiveMinimum (rarely both) */
        if (!slot->set || i & 1) *slot = d;
    }
    /* draft 4: exclusiveMinimum: true modifies minimum */
    const dspex_val *xl = get(node, "exclusiveMinimum"), *xh = get(node, "exclusiveMaximum");
    if (xl && xl->kind == DSPEX_V_BOOL && xl->b && lo->set) lo->excl = 1;
    if (xh && xh->kind == DSPEX_V_BOOL && xh->b && hi->set) hi->excl = 1;
}

static int type_is(const dspex_val *t, const char *name) {
    if (t == NULL) return 0;
    if (t->kind == DSPEX_V_STR) return is_str(t, name);
    if (t->kind == DSPEX_V_LIST)
        for (size_t i = 0; i < t->n; i++)
            if (is_str(t->items[i], name)) return 1;
    return 0;
}

static void typed(gb *b, const dspex_val *node, const dspex_val *doc, int rdepth, const char *type, int32_t from,
                  int32_t to) {
    if (strcmp(type, "object") == 0) {
        object_body(b, node, doc, rdepth, from, to);
    } else if (strcmp(type, "array") == 0) {
        array_body(b, node, doc, rdepth, from, to);
    } else if (strcmp(type, "string") == 0) {
        string_body(b, node, from, to);
    } else if (strcmp(type, "integer") == 0 || strcmp(type, "number") == 0) {
        gdec lo, hi;
        bounds(b, node, &lo, &hi);
        if (type[0] == 'i') gn_integer(b, &lo, &hi, from, to);
        else gn_number(b, &lo, &hi, from, to);
    } else if (strcmp(type, "boolean") == 0) {
        gb_lits(b, from, "true", to);
        gb_lits(b, from, "false", to);
    } else if (strcmp(type, "null") == 0) {
        gb_lits(b, from, "null", to);
    } else {
        gb_fail(b, "schema: unknown type \"%s\"", type);
    }
}

/* allOf: the members' keywords merged into one object (properties and required joined). */
static const dspex_val *merge_all_of(gb *b, const dspex_val *node, const dspex_val *doc) {
    const dspex_val *all = get(node, "allOf");
    if (all->kind != DSPEX_V_LIST || all->n == 0) {
        gb_fail(b, "schema: allOf must be a non-empty array");
        return NULL;
    }
    /* collect members: node itself (without allOf) + each member (refs resolved) */
    size_t cap = node->n + 8;
    dspex_val *m = dspex_val_new(b->a, DSPEX_V_DICT);
    dspex_val *props = dspex_val_new(b->a, DSPEX_V_DICT), *req = dspex_val_new(b->a, DSPEX_V_LIST);
    if (!m || !props || !req) goto oom;
    size_t pcap = 0, rcap = 0;
    m->keys = dspex_arena_alloc(b->a, cap * sizeof(dspex_val *));
    m->items = dspex_arena_alloc(b->a, cap * sizeof(dspex_val *));
    if (!m->keys || !m->items) goto oom;
    const dspex_val *parts[65];
    size_t np = 0;
    parts[np++] = node;
    for (size_t i = 0; i < all->n && np < 65; i++) {
        const dspex_val *p = all->items[i];
        for (int hop = 0; p && get(p, "$ref") && hop < 16; hop++) p = resolve(b, doc, get(p, "$ref"));
        if (b->failed) return NULL;
        if (p == NULL || p->kind != DSPEX_V_DICT) {
            gb_fail(b, "schema: allOf members must be objects");
            return NULL;
        }
        if (get(p, "allOf") || get(p, "anyOf") || get(p, "oneOf")) {
            gb_fail(b, "schema: allOf members with their own allOf/anyOf/oneOf are not supported");
            return NULL;
        }
        parts[np++] = p;
    }
    for (size_t pi = 0; pi < np; pi++) {
        const dspex_val *p = parts[pi];
        for (size_t i = 0; i < p->n; i++) {
            const dspex_val *k = p->keys[i], *v = p->items[i];
            if (k->kind != DSPEX_V_STR || is_str(k, "allOf")) continue;
            if (is_str(k, "properties") && v->kind == DSPEX_V_DICT) {
                for (size_t j = 0; j < v->n; j++) {
                    if (props->n == pcap) {
                        size_t nc = pcap ? pcap * 2 : 16;
                        dspex_val **nk = dspex_arena_alloc(b->a, nc * sizeof(dspex_val *));
                        dspex_val **nv = dspex_arena_alloc(b->a, nc * sizeof(dspex_val *));
                        if (!nk || !nv) goto oom;
                        if (props->n) {
                            memcpy(nk, props->keys, props->n * sizeof(dspex_val *));
                            memcpy(nv, props->items, props->n * sizeof(dspex_val *));
                        }
                        props->keys = nk;
                        props->items = nv;
                        pcap = nc;
                    }
                    size_t at = props->n;
                    for (size_t q = 0; q < props->n; q++)
                        if (props->keys[q]->slen == v->keys[j]->slen &&
                            memcmp(props->keys[q]->s, v->keys[j]->s, v->keys[j]->slen) == 0)
                            at = q;
                    props->keys[at] = v->keys[j];
                    props->items[at] = v->items[j];
                    if (at == props->n) props->n++;
                }
                continue;
            }
            if (is_str(k, "required") && v->kind == DSPEX_V_LIST) {
                for (size_t j = 0; j < v->n; j++) {
                    if (req->n == rcap) {
                        size_t nc = rcap ? rcap * 2 : 16;
                        dspex_val **ni = dspex_arena_alloc(b->a, nc * sizeof(dspex_val *));
                        if (!ni) goto oom;
                        if (req->n) memcpy(ni, req->items, req->n * sizeof(dspex_val *));
                        req->items = ni;
                        rcap = nc;
                    }
                    req->items[req->n++] = v->items[j];
                }
                continue;
            }
            size_t at = m->n;
            for (size_t q = 0; q < m->n; q++)
                if (m->keys[q]->slen == k->slen && memcmp(m->keys[q]->s, k->s, k->slen) == 0) at = q;
            if (at == m->n) {
                if (m->n + 3 >= cap) {
                    size_t nc = cap * 2;
                    dspex_val **nk = dspex_arena_alloc(b->a, nc * sizeof(dspex_val *));
                    dspex_val **nv = dspex_arena_alloc(b->a, nc * sizeof(dspex_val *));
                    if (!nk || !nv) goto oom;
                    memcpy(nk, m->keys, m->n * sizeof(dspex_val *));
                    memcpy(nv, m->items, m->n * sizeof(dspex_val *));
                    m->keys = nk;
                    m->items = nv;
                    cap = nc;
                }
                m->n++;
            } else if (is_str(k, "type") && m->items[at]->kind == DSPEX_V_STR && v->kind == DSPEX_V_STR &&
                       !(m->items[at]->slen == v->slen && memcmp(m->items[at]->s, v->s, v->slen) == 0)) {
                gb_fail(b, "schema: allOf members have conflicting types");
                return NULL;
            }
            m->keys[at] = (dspex_val *)k;
            m->items[at] = (dspex_val *)v;
        }
    }
    if (props->n) {
        m->keys[m->n] = dspex_val_str(b->a, "properties", 10);
        m->items[m->n++] = props;
    }
    if (req->n) {
        m->keys[m->n] = dspex_val_str(b->a, "required", 8);
        m->items[m->n++] = req;
    }
    return m;
oom:
    gb_fail(b, "out of memory");
    return NULL;
}

static void schema(gb *b, const dspex_val *node, const dspex_val *doc, int rdepth, int32_t from, int32_t to) {
    if (b->failed) return;
    if (++b->nest > G_MAX_NEST) {
        gb_fail(b, "schema: nested more than %d levels", G_MAX_NEST);
        return;
    }
    if (node->kind == DSPEX_V_BOOL) {
        if (node->b) gj_any_value(b, b->lim.json_depth, from, to);
        goto out; /* false: no value */
    }
    if (node->kind != DSPEX_V_DICT) {
        gb_fail(b, "schema: a schema must be an object or a boolean");
        goto out;
    }
    const dspex_val *v;
    if ((v = get(node, "$ref"))) {
        const dspex_val *t = resolve(b, doc, v);
        if (t == NULL) goto out;
        int rec = reaches_itself(b, t, doc);
        int d = rec ? rdepth + 1 : 0;
        if (rec && d > b->lim.ref_depth) goto out; /* recursion cut: this branch has no value */
        gb_ref(b, (gkey){GK_REF, t, doc, d}, from, to);
        goto out;
    }
    if ((v = get(node, "const"))) {
        literal_value(b, v, from, to);
        goto out;
    }
    if ((v = get(node, "enum"))) {
        if (v->kind != DSPEX_V_LIST) {
            gb_fail(b, "schema: enum must be an array");
            goto out;
        }
        for (size_t i = 0; i < v->n && !b->failed; i++) literal_value(b, v->items[i], from, to);
        goto out;
    }
    if ((v = get(node, "allOf"))) {
        const dspex_val *m = merge_all_of(b, node, doc);
        if (m) schema(b, m, doc, rdepth, from, to);
        goto out;
    }
    if ((v = get(node, "anyOf")) || (v = get(node, "oneOf"))) {
        if (v->kind != DSPEX_V_LIST || v->n == 0) {
            gb_fail(b, "schema: anyOf/oneOf must be a non-empty array");
            goto out;
        }
        for (size_t i = 0; i < v->n && !b->failed; i++) schema(b, v->items[i], doc, rdepth, from, to);
        goto out;
    }
    const dspex_val *nullable = get(node, "nullable");
    if (nullable && nullable->kind == DSPEX_V_BOOL && nullable->b) gb_lits(b, from, "null", to);
    const dspex_val *t = get(node, "type");
    if (t) {
        if (t->kind == DSPEX_V_STR) {
            char name[16];
            size_t k = t->slen < sizeof name - 1 ? t->slen : sizeof name - 1;
            memcpy(name, t->s, k);
            name[k] = 0;
            typed(b, node, doc, rdepth, name, from, to);
        } else if (t->kind == DSPEX_V_LIST) {
            static const char *const all[] = {"object", "array", "string", "integer", "number", "boolean", "null"};
            for (size_t i = 0; i < t->n; i++)
                if (t->items[i]->kind != DSPEX_V_STR) gb_fail(b, "schema: type must be a string or an array of strings");
            for (size_t i = 0; i < 7 && !b->failed; i++)
                if (type_is(t, all[i])) typed(b, node, doc, rdepth, all[i], from, to);
        } else {
            gb_fail(b, "schema: type must be a string or an array of strings");
        }
        goto out;
    }
    /* no type: implied by the keywords, else any value */
    int obj = get(node, "properties") || get(node, "required") || get(node, "additionalProperties");
    int arr = get(node, "items") || get(node, "prefixItems") || get(node, "minItems") || get(node, "maxItems");
    int str = get(node, "minLength") || get(node, "maxLength") || get(node, "pattern") || get(node, "format");
    int num = get(node, "minimum") || get(node, "maximum") || get(node, "exclusiveMinimum") ||
              get(node, "exclusiveMaximum");
    if (obj) typed(b, node, doc, rdepth, "object", from, to);
    if (arr) typed(b, node, doc, rdepth, "array", from, to);
    if (str) typed(b, node, doc, rdepth, "string", from, to);
    if (num) typed(b, node, doc, rdepth, "number", from, to);
    if (!obj && !arr && !str && !num) gj_any_value(b, b->lim.json_depth, from, to);
out:
    b->nest--;
}

void gj_schema(gb *b, const void *node, const void *doc, int rdepth, int32_t from, int32_t to) {
    schema(b, node, doc, rdepth, from, to);
}

/* ---------------------------------------------------------------- rule bodies */
void g_emit_body(gb *b, gkey key, int32_t from, int32_t to) {
    switch (key.kind) {
    case GK_STRING: {
        int32_t in = gb_state(b);
        gb_byte(b, from, '"', in);
        gj_char(b, in, in);
        gb_byte(b, in, '"', to);
        break;
    }
    case GK_GOBJ: dict_body(b, NULL, NULL, 0, key.depth, from, to); break;
    case GK_GARR: array_any_body(b, key.depth, from, to); break;
    case GK_REF: schema(b, key.node, key.doc, key.depth, from, to); break;
    case GK_TEXT: gl_text_body(b, from, to); break;
    default: gb_fail(b, "internal error: a rule of unknown kind"); break;
    }
}
