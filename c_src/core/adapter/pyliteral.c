/* A lenient reader for values an LM writes: JSON, Python literals (single-quoted strings,
 * True/False/None, tuples, set literals, set()), trailing commas, unquoted object keys
 * and barewords inside containers, and containers left open at the end of the text. It
 * approximates what DSPy gets from json_repair.loads followed by ast.literal_eval: valid
 * JSON reads as json.loads would; other text as json_repair's parser would (a set literal
 * or a tuple is a list, a string inside a container that ends in a newline loses its
 * trailing whitespace); what json_repair cannot read, as ast.literal_eval would.
 * Recursion is bounded by DXA_MAX_DEPTH; work is linear in the input. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/adapter.h"
#include "dspex/json.h"
#include "dspex/pytext.h"
#include "dspex/repair.h"
#include "dspex/utf8.h"

typedef struct {
    const char *s;
    size_t n, i;
    dspex_arena *a;
    int oom;
    int lenient; /* allow open containers at EOF, barewords */
    int repair;  /* json_repair's reading: an unquoted dict key is its text, minus a leading '-' */
} rd;

static void skip_ws(rd *r) {
    while (r->i < r->n) {
        char c = r->s[r->i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v')
            r->i++;
        else
            break;
    }
}

static int is_ident(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.' || c >= 0x80;
}

static void put_utf8(dspex_buf *b, unsigned long cp) {
    char o[4];
    dspex_buf_put(b, o, dspex_utf8_encode(o, (uint32_t)cp));
}

static unsigned long read_hex(rd *r, int digits, int *ok) {
    unsigned long v = 0;
    for (int k = 0; k < digits; k++) {
        if (r->i >= r->n || dspex_hexval((unsigned char)r->s[r->i]) < 0) {
            *ok = 0;
            return 0;
        }
        v = v * 16 + (unsigned long)dspex_hexval((unsigned char)r->s[r->i++]);
    }
    *ok = 1;
    return v;
}

/* Reads a quoted string; returns 0 ok, 1 malformed. */
static int read_string(rd *r, dspex_val **out) {
    char q = r->s[r->i++];
    dspex_buf b;
    dspex_buf_init(&b);
    int closed = 0;
    while (r->i < r->n) {
        char c = r->s[r->i];
        if (c == q) {
            r->i++;
            closed = 1;
            break;
        }
        if (c == '\\' && r->i + 1 < r->n) {
            char e = r->s[r->i + 1];
            r->i += 2;
            int ok = 1;
            switch (e) {
            case 'n': dspex_buf_putc(&b, '\n'); break;
            case 't': dspex_buf_putc(&b, '\t'); break;
            case 'r': dspex_buf_putc(&b, '\r'); break;
            case 'b': dspex_buf_putc(&b, '\b'); break;
            case 'f': dspex_buf_putc(&b, '\f'); break;
            case '0': dspex_buf_putc(&b, '\0'); break;
            case 'x': {
                unsigned long v = read_hex(r, 2, &ok);
                if (ok) put_utf8(&b, v);
                break;
            }
            case 'u': {
                unsigned long v = read_hex(r, 4, &ok);
                if (ok && v >= 0xd800 && v <= 0xdbff && r->i + 6 <= r->n && r->s[r->i] == '\\' &&
                    r->s[r->i + 1] == 'u') {
                    size_t save = r->i;
                    r->i += 2;
                    int ok2;
                    unsigned long lo = read_hex(r, 4, &ok2);
                    if (ok2 && lo >= 0xdc00 && lo <= 0xdfff)
                        v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
                    else
                        r->i = save;
                }
                if (ok) put_utf8(&b, (v >= 0xd800 && v <= 0xdfff) ? 0xfffd : v);
                break;
            }
            case '\n': break; /* line continuation */
            default: dspex_buf_putc(&b, e); break;
            }
            if (!ok) {
                dspex_buf_putc(&b, '\\');
                dspex_buf_putc(&b, e);
            }
            continue;
        }
        dspex_buf_putc(&b, c);
        r->i++;
    }
    if (!closed && !r->lenient) {
        dspex_buf_free(&b);
        return 1;
    }
    if (b.oom) {
        r->oom = 1;
        dspex_buf_free(&b);
        return 1;
    }
    *out = dspex_val_str(r->a, b.p ? b.p : "", b.len);
    dspex_buf_free(&b);
    if (*out == NULL) r->oom = 1;
    return *out ? 0 : 1;
}

/* Python integer literals with a base prefix: 0x1F, 0o17, 0b101 (underscores allowed). */
static int read_based_int(rd *r, dspex_val **out) {
    size_t st = r->i;
    int neg = 0;
    if (r->i < r->n && (r->s[r->i] == '-' || r->s[r->i] == '+')) neg = r->s[r->i++] == '-';
    if (r->i + 2 > r->n || r->s[r->i] != '0') {
        r->i = st;
        return 1;
    }
    char p = r->s[r->i + 1];
    int base = (p == 'x' || p == 'X') ? 16 : (p == 'o' || p == 'O') ? 8 : (p == 'b' || p == 'B') ? 2 : 0;
    if (!base) {
        r->i = st;
        return 1;
    }
    r->i += 2;
    unsigned long long v = 0;
    int nd = 0;
    while (r->i < r->n) {
        char c = r->s[r->i];
        if (c == '_' && nd > 0) {
            r->i++;
            continue;
        }
        int d = dspex_hexval((unsigned char)c);
        if (d < 0 || d >= base) break;
        if (v > (~0ULL >> 5)) { /* too large for 64 bits */
            r->i = st;
            return 1;
        }
        v = v * (unsigned)base + (unsigned)d;
        nd++;
        r->i++;
    }
    if (nd == 0 || v > (unsigned long long)9223372036854775807LL) {
        r->i = st;
        return 1;
    }
    dspex_val *x = dspex_val_new(r->a, DSPEX_V_INT);
    if (x == NULL) {
        r->oom = 1;
        return 1;
    }
    x->i = neg ? -(long long)v : (long long)v;
    *out = x;
    return 0;
}

static int read_number(rd *r, dspex_val **out) {
    if (read_based_int(r, out) == 0) return 0;
    if (r->oom) return 1;
    size_t st = r->i;
    if (r->i < r->n && (r->s[r->i] == '-' || r->s[r->i] == '+')) r->i++;
    size_t ds = r->i;
    int underscores = 0;
    while (r->i < r->n && ((r->s[r->i] >= '0' && r->s[r->i] <= '9') ||
                           (r->s[r->i] == '_' && r->i > ds && r->i + 1 < r->n && r->s[r->i + 1] >= '0' &&
                            r->s[r->i + 1] <= '9'))) {
        if (r->s[r->i] == '_') underscores = 1;
        r->i++;
    }
    int isf = 0;
    if (r->i < r->n && r->s[r->i] == '.') {
        isf = 1;
        r->i++;
        while (r->i < r->n && r->s[r->i] >= '0' && r->s[r->i] <= '9') r->i++;
    }
    if (r->i == ds || (r->i == ds + 1 && r->s[ds] == '.')) {
        r->i = st;
        return 1;
    }
    if (r->i < r->n && (r->s[r->i] == 'e' || r->s[r->i] == 'E')) {
        size_t save = r->i;
        r->i++;
        if (r->i < r->n && (r->s[r->i] == '-' || r->s[r->i] == '+')) r->i++;
        size_t es = r->i;
        while (r->i < r->n && r->s[r->i] >= '0' && r->s[r->i] <= '9') r->i++;
        if (r->i == es)
            r->i = save;
        else
            isf = 1;
    }
    char tmp[64];
    size_t len = 0;
    for (size_t k = st; k < r->i && len < sizeof tmp - 1; k++)
        if (!(underscores && r->s[k] == '_')) tmp[len++] = r->s[k];
    tmp[len] = '\0';
    dspex_val *v = NULL;
    if (!isf) {
        errno = 0;
        long long x = strtoll(tmp, NULL, 10);
        if (errno == ERANGE || r->i - st >= sizeof tmp) {
            /* beyond 64 bits: a Python int, kept as decimal text (Python caps at 4300 digits) */
            dspex_buf b;
            dspex_buf_init(&b);
            for (size_t k = st; k < r->i; k++)
                if (r->s[k] != '_' && r->s[k] != '+') dspex_buf_putc(&b, r->s[k]);
            size_t ndig = b.len - (b.len && b.p[0] == '-');
            if (!b.oom && ndig <= 4300) {
                v = dspex_val_new(r->a, DSPEX_V_INT);
                if (v) {
                    v->s = dspex_arena_strndup(r->a, b.p, b.len);
                    v->slen = b.len;
                    v->i = b.p[0] == '-' ? -9223372036854775807LL - 1 : 9223372036854775807LL;
                    if (v->s == NULL) v = NULL;
                }
                dspex_buf_free(&b);
                if (v == NULL) {
                    r->oom = 1;
                    return 1;
                }
                *out = v;
                return 0;
            }
            dspex_buf_free(&b);
            r->i = st;
            return 1;
        }
        v = dspex_val_new(r->a, DSPEX_V_INT);
        if (v) v->i = x;
    }
    if (isf) {
        v = dspex_val_new(r->a, DSPEX_V_FLOAT);
        if (v) v->f = strtod(tmp, NULL);
    }
    if (v == NULL) {
        r->oom = 1;
        return 1;
    }
    *out = v;
    return 0;
}

static int word_is(rd *r, size_t st, size_t en, const char *w) {
    size_t l = strlen(w);
    return en - st == l && memcmp(r->s + st, w, l) == 0;
}

static int read_value(rd *r, dspex_val **out, int depth);

static int read_seq(rd *r, dspex_val **out, char close, dspex_vkind kind, int depth) {
    r->i++;
    size_t cap = 8, n = 0;
    dspex_val **items = dspex_arena_alloc(r->a, cap * sizeof *items);
    dspex_val **keys = kind == DSPEX_V_DICT ? dspex_arena_alloc(r->a, cap * sizeof *keys) : NULL;
    if (items == NULL || (kind == DSPEX_V_DICT && keys == NULL)) {
        r->oom = 1;
        return 1;
    }
    for (;;) {
        skip_ws(r);
        if (r->i >= r->n) {
            if (!r->lenient) return 1;
            break;
        }
        char c = r->s[r->i];
        if (c == close) {
            r->i++;
            break;
        }
        if (c == ',') { /* tolerate stray/trailing commas */
            r->i++;
            continue;
        }
        if (c == ']' || c == '}' || c == ')') {
            if (!r->lenient) return 1;
            r->i++; /* mismatched closer: treat as ours */
            break;
        }
        dspex_val *k = NULL, *v = NULL;
        if (kind == DSPEX_V_DICT) {
            if (c == '"' || c == '\'') {
                if (read_string(r, &k)) return 1;
            } else if (((c >= '0' && c <= '9') || c == '-') && !r->repair) {
                if (read_number(r, &k)) return 1;
            } else {
                if (r->repair && c == '-') r->i++;
                size_t st = r->i;
                while (r->i < r->n && r->s[r->i] != ':' && r->s[r->i] != close && r->s[r->i] != ',' &&
                       r->s[r->i] != '\n')
                    r->i++;
                size_t en = r->i;
                while (en > st && (r->s[en - 1] == ' ' || r->s[en - 1] == '\t')) en--;
                if (en == st) return 1;
                k = dspex_val_str(r->a, r->s + st, en - st);
                if (k == NULL) {
                    r->oom = 1;
                    return 1;
                }
            }
            skip_ws(r);
            if (r->i < r->n && r->s[r->i] == ':') {
                r->i++;
                skip_ws(r);
                if (r->i >= r->n || r->s[r->i] == close || r->s[r->i] == ',') {
                    if (!r->lenient) return 1;
                    v = dspex_val_new(r->a, DSPEX_V_NONE);
                    if (v == NULL) {
                        r->oom = 1;
                        return 1;
                    }
                } else if (read_value(r, &v, depth + 1)) {
                    return 1;
                }
            } else {
                if (!r->lenient) return 1;
                v = dspex_val_new(r->a, DSPEX_V_NONE);
                if (v == NULL) {
                    r->oom = 1;
                    return 1;
                }
            }
        } else {
            if (read_value(r, &v, depth + 1)) return 1;
        }
        if (n == cap) {
            size_t nc = cap * 2;
            dspex_val **ni = dspex_arena_alloc(r->a, nc * sizeof *ni);
            dspex_val **nk = kind == DSPEX_V_DICT ? dspex_arena_alloc(r->a, nc * sizeof *nk) : NULL;
            if (ni == NULL || (kind == DSPEX_V_DICT && nk == NULL)) {
                r->oom = 1;
                return 1;
            }
            memcpy(ni, items, n * sizeof *ni);
            if (nk) memcpy(nk, keys, n * sizeof *nk);
            items = ni;
            keys = nk;
            cap = nc;
        }
        if (kind == DSPEX_V_DICT) {
            /* Python dict: a repeated key keeps its first position and takes the last value */
            size_t j;
            for (j = 0; j < n; j++)
                if (keys[j]->kind == k->kind && k->kind == DSPEX_V_STR && keys[j]->slen == k->slen &&
                    memcmp(keys[j]->s, k->s, k->slen) == 0)
                    break;
            if (j < n) {
                items[j] = v;
                continue;
            }
            keys[n] = k;
        }
        items[n++] = v;
        skip_ws(r);
        if (r->i < r->n && r->s[r->i] != ',' && r->s[r->i] != close && !r->lenient) return 1;
    }
    dspex_val *v = dspex_val_new(r->a, kind);
    if (v == NULL) {
        r->oom = 1;
        return 1;
    }
    v->items = items;
    v->keys = keys;
    v->n = n;
    *out = v;
    return 0;
}

static int read_value(rd *r, dspex_val **out, int depth) {
    if (depth > DXA_MAX_DEPTH) return 1;
    skip_ws(r);
    if (r->i >= r->n) return 1;
    char c = r->s[r->i];
    if (c == '{') {
        size_t st = r->i;
        if (read_seq(r, out, '}', DSPEX_V_DICT, depth) == 0 || r->oom || r->lenient) return r->oom || r->lenient;
        /* {a, b}: a set literal (json_repair reads it as a list) */
        r->i = st;
        return read_seq(r, out, '}', DSPEX_V_LIST, depth);
    }
    if (c == '[') return read_seq(r, out, ']', DSPEX_V_LIST, depth);
    if (c == '(') return read_seq(r, out, ')', DSPEX_V_LIST, depth);
    if (c == '"' || c == '\'') return read_string(r, out);
    if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.') {
        if (read_number(r, out) == 0) return 0;
        if (r->oom) return 1;
    }
    size_t st = r->i;
    while (r->i < r->n && is_ident((unsigned char)r->s[r->i])) r->i++;
    size_t en = r->i;
    if (en == st) return 1;
    dspex_val *v = NULL;
    if (word_is(r, st, en, "true") || word_is(r, st, en, "True")) {
        v = dspex_val_new(r->a, DSPEX_V_BOOL);
        if (v) v->b = 1;
    } else if (word_is(r, st, en, "false") || word_is(r, st, en, "False")) {
        v = dspex_val_new(r->a, DSPEX_V_BOOL);
    } else if (word_is(r, st, en, "null") || word_is(r, st, en, "None")) {
        v = dspex_val_new(r->a, DSPEX_V_NONE);
    } else if (word_is(r, st, en, "set") && en + 1 < r->n && r->s[en] == '(' && r->s[en + 1] == ')') {
        /* set(): ast.literal_eval's empty set */
        r->i = en + 2;
        v = dspex_val_new(r->a, DSPEX_V_SET);
    } else if (word_is(r, st, en, "frozenset") && en + 2 < r->n && r->s[en] == '(' && r->s[en + 1] != ')') {
        /* frozenset({...}): json_repair reads the inner collection, as a list */
        r->i = en + 1;
        dspex_val *inner = NULL;
        if (read_value(r, &inner, depth + 1)) return 1;
        skip_ws(r);
        if (r->i >= r->n || r->s[r->i] != ')' || !dspex_val_is_container(inner) || inner->kind == DSPEX_V_DICT) {
            r->i = st;
            return 1;
        }
        r->i++;
        inner->kind = DSPEX_V_LIST;
        v = inner;
    } else if (r->lenient && depth > 0) {
        /* bareword inside a container: a string up to the next delimiter */
        while (r->i < r->n && r->s[r->i] != ',' && r->s[r->i] != ']' && r->s[r->i] != '}' &&
               r->s[r->i] != ')' && r->s[r->i] != '\n')
            r->i++;
        en = r->i;
        while (en > st && (r->s[en - 1] == ' ' || r->s[en - 1] == '\t')) en--;
        v = dspex_val_str(r->a, r->s + st, en - st);
    } else {
        r->i = st;
        return 1;
    }
    if (v == NULL) {
        r->oom = 1;
        return 1;
    }
    *out = v;
    return 0;
}

static int read_whole(const char *s, size_t n, int lenient, int repair, dspex_arena *a, dspex_val **out, int *oom) {
    rd r = {.s = s, .n = n, .i = 0, .a = a, .lenient = lenient, .repair = repair};
    dspex_val *v = NULL;
    int rc = read_value(&r, &v, 0);
    *oom = r.oom;
    if (rc || r.oom) return 1;
    skip_ws(&r);
    if (!lenient && r.i < r.n && r.s[r.i] == ',') {
        /* a bare Python tuple: `1, 2, 3` */
        size_t cap = 8;
        dspex_val *t = dspex_val_new(a, DSPEX_V_TUPLE);
        if (t) t->items = dspex_arena_alloc(a, cap * sizeof(dspex_val *));
        if (t == NULL || t->items == NULL) {
            *oom = 1;
            return 1;
        }
        t->items[t->n++] = v;
        while (r.i < r.n && r.s[r.i] == ',') {
            r.i++;
            skip_ws(&r);
            if (r.i >= r.n) break; /* trailing comma */
            dspex_val *x = NULL;
            if (read_value(&r, &x, 1)) {
                *oom = r.oom;
                return 1;
            }
            if (t->n == cap) {
                dspex_val **ni = dspex_arena_alloc(a, 2 * cap * sizeof(dspex_val *));
                if (ni == NULL) {
                    *oom = 1;
                    return 1;
                }
                memcpy(ni, t->items, cap * sizeof(dspex_val *));
                t->items = ni;
                cap *= 2;
            }
            t->items[t->n++] = x;
            skip_ws(&r);
        }
        v = t;
    }
    if (r.i != r.n) return 1;
    *out = v;
    return 0;
}

static int falsy(const dspex_val *v) {
    switch (v->kind) {
    case DSPEX_V_NONE: return 1;
    case DSPEX_V_BOOL: return !v->b;
    case DSPEX_V_INT: return v->i == 0;
    case DSPEX_V_FLOAT: return v->f == 0.0;
    case DSPEX_V_STR: return v->slen == 0;
    default: return v->n == 0;
    }
}

/* json_repair's ObjectComparer.is_same_object: same types, same keys, same list lengths,
 * recursively (scalar values themselves may differ). */
static int same_object(const dspex_val *x, const dspex_val *y, int depth) {
    if (x->kind != y->kind || depth > DXA_MAX_DEPTH) return 0;
    if (x->kind == DSPEX_V_DICT) {
        if (x->n != y->n) return 0;
        for (size_t i = 0; i < x->n; i++) {
            const dspex_val *k = x->keys[i];
            if (k->kind != DSPEX_V_STR) return 0;
            const dspex_val *o = dspex_dict_get(y, k->s, k->slen);
            if (o == NULL || !same_object(x->items[i], o, depth + 1)) return 0;
        }
        return 1;
    }
    if (x->kind == DSPEX_V_LIST) {
        if (x->n != y->n) return 0;
        for (size_t i = 0; i < x->n; i++)
            if (!same_object(x->items[i], y->items[i], depth + 1)) return 0;
    }
    return 1;
}

/* json_repair.loads' stage, on the core repair (repair.c): every top-level JSON value in
 * the text, repaired; a value repeating the previous object's keys replaces it (an LM
 * "retry"); one value is returned as is, several as a list. 0 ok, 1 none, -1 OOM. */
static int repair_stage(const char *s, size_t n, dspex_arena *a, dspex_val **out) {
    dspex_val *vals[64];
    size_t nv = 0, from = 0, calls = 0;
    int oom = 0;
    /* bounded: at most 64 top-level values are considered */
    while (from < n && nv < 64 && calls++ < 64) {
        dspex_repair_result rr;
        memset(&rr, 0, sizeof rr);
        int rc = dspex_json_extract(s, n, from, NULL, &rr);
        if (rc == DSPEX_REPAIR_ERR_NOMEM) {
            dspex_repair_result_free(&rr);
            return -1;
        }
        if (rc != DSPEX_REPAIR_OK || rr.out == NULL || rr.end <= from) {
            dspex_repair_result_free(&rr);
            break;
        }
        from = rr.end;
        dspex_val *v = NULL;
        int r2 = read_whole(rr.out, rr.out_len, 0, 1, a, &v, &oom);
        dspex_repair_result_free(&rr);
        if (oom) return -1;
        if (r2 != 0) break;
        /* after a failed strict parse, json_repair only picks up objects and arrays */
        if (v->kind != DSPEX_V_DICT && v->kind != DSPEX_V_LIST) continue;
        if (nv > 0 && (same_object(vals[nv - 1], v, 0) || falsy(vals[nv - 1])))
            vals[nv - 1] = v;
        else if (!falsy(v) || nv == 0)
            vals[nv++] = v;
    }
    if (nv == 0) return 1;
    if (nv == 1) {
        *out = vals[0];
        return 0;
    }
    dspex_val *l = dspex_val_new(a, DSPEX_V_LIST);
    if (l == NULL) return -1;
    l->items = dspex_arena_alloc(a, nv * sizeof(dspex_val *));
    if (l->items == NULL) return -1;
    memcpy(l->items, vals, nv * sizeof(dspex_val *));
    l->n = nv;
    *out = l;
    return 0;
}

/* Whether s is RFC 8259 JSON (what json.loads takes before json_repair repairs anything);
 * -1 when out of memory. */
static int valid_json(const char *s, size_t n) {
    dspex_json_parser p;
    dspex_json_event ev;
    dspex_json_parser_init(&p, s, n, DXA_MAX_DEPTH);
    int rc;
    for (;;) {
        int t = dspex_json_next(&p, &ev);
        if (t == DSPEX_JSON_EV_END) {
            rc = 1;
            break;
        }
        if (t == DSPEX_JSON_EV_ERROR) {
            rc = p.err_code == DSPEX_JSON_ERR_NOMEM ? -1 : 0;
            break;
        }
    }
    dspex_json_parser_free(&p);
    return rc;
}

/* json_repair's parser rstrips a string that ends in a newline (strings inside a
 * container; the top-level value is json_repair's own concern). */
static void repair_strings(dspex_val *v, int depth) {
    if (depth > DXA_MAX_DEPTH) return;
    if (v->kind == DSPEX_V_STR) {
        if (depth > 0 && v->slen > 0 && v->s[v->slen - 1] == '\n') {
            const char *s = v->s;
            size_t n = v->slen;
            dspex_py_strip(&s, &n);
            /* rstrip only: keep what precedes the text (all of it is whitespace: empty) */
            v->slen = n == 0 ? 0 : (size_t)(s - v->s) + n;
        }
        return;
    }
    if (v->kind == DSPEX_V_DICT)
        for (size_t i = 0; i < v->n; i++) repair_strings(v->keys[i], depth + 1);
    if (dspex_val_is_container(v))
        for (size_t i = 0; i < v->n; i++) repair_strings(v->items[i], depth + 1);
}

int dxa_pyliteral(const char *s, size_t n, int scan, dspex_arena *a, dspex_val **out) {
    int oom = 0;
    int json = valid_json(s, n);
    if (json < 0) return -1;
    if (read_whole(s, n, 0, !json, a, out, &oom) == 0) {
        /* not JSON but a container json_repair reads (not a bare `1, 2` tuple, which only
         * ast.literal_eval takes: read it again as a Python literal) */
        if (!json && (*out)->kind == DSPEX_V_TUPLE && read_whole(s, n, 0, 0, a, out, &oom) != 0) return oom ? -1 : 1;
        if (!json && (*out)->kind != DSPEX_V_TUPLE) repair_strings(*out, 0);
        return 0;
    }
    if (oom) return -1;
    if (!scan) return 1;
    /* a container first, then prose: json_repair reads the container and drops the rest */
    size_t lead = 0;
    while (lead < n && (s[lead] == ' ' || s[lead] == '\t' || s[lead] == '\n' || s[lead] == '\r')) lead++;
    if (lead < n && s[lead] == '(') {
        rd r = {.s = s, .n = n, .i = lead, .a = a, .repair = 1};
        dspex_val *v = NULL;
        if (read_value(&r, &v, 0) == 0 && memchr(s + r.i, '{', n - r.i) == NULL &&
            memchr(s + r.i, '[', n - r.i) == NULL) {
            repair_strings(v, 0);
            *out = v;
            return 0;
        }
        if (r.oom) return -1;
    }
    if (memchr(s, '{', n) != NULL || memchr(s, '[', n) != NULL) {
        int rc = repair_stage(s, n, a, out);
        if (rc < 0) return -1;
        if (rc == 0 && ((*out)->kind == DSPEX_V_DICT || (*out)->kind == DSPEX_V_LIST)) {
            repair_strings(*out, 0);
            return 0;
        }
    }
    /* own lenient reader: open containers, barewords; leading prose skipped */
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '{' || s[i] == '[') {
            rd r = {.s = s, .n = n, .i = i, .a = a, .lenient = 1};
            dspex_val *v = NULL;
            int rc = read_value(&r, &v, 0);
            if (r.oom) return -1;
            if (rc == 0) {
                *out = v;
                return 0;
            }
            return 1;
        }
    }
    return 1;
}

int dxa_find_object(const char *s, size_t n, size_t *start, size_t *end) {
    /* leftmost '{' that has a balanced '}' (brace counting only, like DSPy's regex) */
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '{') cnt++;
    if (cnt == 0) return 1;
    size_t *stack = malloc(cnt * sizeof *stack);
    if (stack == NULL) return -1;
    size_t sp = 0, best_s = (size_t)-1, best_e = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '{') {
            stack[sp++] = i;
        } else if (s[i] == '}' && sp > 0) {
            size_t o = stack[--sp];
            if (o < best_s) {
                best_s = o;
                best_e = i + 1;
            }
        }
    }
    free(stack);
    if (best_s == (size_t)-1) return 1;
    *start = best_s;
    *end = best_e;
    return 0;
}
