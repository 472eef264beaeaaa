/* Value tree and the Python text rules used by DSPy's prompts. */
#include "dspex/pyvalue.h"
#include "dspex/numfmt.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- values */
dxa_val *dxa_val_new(dspex_arena *a, dxa_vkind kind) {
    dxa_val *v = dspex_arena_alloc(a, sizeof *v);
    if (v) v->kind = kind;
    return v;
}

dxa_val *dxa_val_str(dspex_arena *a, const char *s, size_t n) {
    dxa_val *v = dxa_val_new(a, DXA_STR);
    if (v == NULL) return NULL;
    char *c = dspex_arena_strndup(a, s, n);
    if (c == NULL) return NULL;
    v->s = c;
    v->slen = n;
    return v;
}

dxa_val *dxa_dict_get(const dxa_val *d, const char *key, size_t klen) {
    if (d == NULL || d->kind != DXA_DICT) return NULL;
    for (size_t i = 0; i < d->n; i++) {
        const dxa_val *k = d->keys[i];
        if (k->kind == DXA_STR && k->slen == klen && memcmp(k->s, key, klen) == 0) return d->items[i];
    }
    return NULL;
}

int dxa_dict_has(const dxa_val *d, const char *key, size_t klen) {
    if (d == NULL || d->kind != DXA_DICT) return 0;
    for (size_t i = 0; i < d->n; i++) {
        const dxa_val *k = d->keys[i];
        if (k->kind == DXA_STR && k->slen == klen && memcmp(k->s, key, klen) == 0) return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- float repr */
void dxa_float_repr(double d, dspex_buf *out) {
    char tmp[DSPEX_NUMFMT_MAX];
    int n = dspex_fmt_double(tmp, d, DSPEX_FLOAT_PY);
    dspex_buf_put(out, tmp, (size_t)n);
}

/* ---------------------------------------------------------------- json.dumps */
void dxa_json_string(const char *s, size_t n, dspex_buf *out) {
    dspex_buf_putc(out, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char ubuf[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20) {
                snprintf(ubuf, sizeof ubuf, "\\u%04x", c);
                esc = ubuf;
            }
        }
        if (esc) {
            dspex_buf_put(out, s + run, i - run);
            dspex_buf_puts(out, esc);
            run = i + 1;
        }
    }
    dspex_buf_put(out, s + run, n - run);
    dspex_buf_putc(out, '"');
}

static void json_float(double d, dspex_buf *out) {
    if (isnan(d))
        dspex_buf_puts(out, "NaN");
    else if (isinf(d))
        dspex_buf_puts(out, d < 0 ? "-Infinity" : "Infinity");
    else
        dxa_float_repr(d, out);
}

static void json_key(const dxa_val *k, dspex_buf *out) {
    switch (k->kind) {
    case DXA_STR: dxa_json_string(k->s, k->slen, out); break;
    case DXA_INT:
        if (k->s) { /* big integer kept as decimal text */
            dspex_buf_putc(out, '"');
            dspex_buf_put(out, k->s, k->slen);
            dspex_buf_putc(out, '"');
        } else {
            dspex_buf_printf(out, "\"%lld\"", k->i);
        }
        break;
    case DXA_FLOAT:
        dspex_buf_putc(out, '"');
        json_float(k->f, out);
        dspex_buf_putc(out, '"');
        break;
    case DXA_BOOL: dspex_buf_puts(out, k->b ? "\"true\"" : "\"false\""); break;
    case DXA_NONE: dspex_buf_puts(out, "\"null\""); break;
    default: {
        /* not a valid JSON key in Python; render its text form */
        dspex_buf tmp;
        dspex_buf_init(&tmp);
        dxa_py_str(k, &tmp);
        dxa_json_string(tmp.p ? tmp.p : "", tmp.len, out);
        if (tmp.oom) out->oom = 1;
        dspex_buf_free(&tmp);
    }
    }
}

static void newline_indent(dspex_buf *out, int indent, int level) {
    dspex_buf_putc(out, '\n');
    for (int i = 0; i < indent * level; i++) dspex_buf_putc(out, ' ');
}

/* An int: its exact source digits when kept (big ints), else the machine value. */
static void put_int(const dxa_val *v, dspex_buf *out) {
    if (v->s)
        dspex_buf_put(out, v->s, v->slen);
    else
        dspex_buf_printf(out, "%lld", v->i);
}

/* Before item i of a container at `level`: the separator, then (indent >= 0) a new line. */
static void item_start(dspex_buf *out, int indent, int level, size_t i) {
    if (i) dspex_buf_puts(out, indent < 0 ? ", " : ",");
    if (indent >= 0) newline_indent(out, indent, level + 1);
}

/* After the last item of a container at `level`: its closing bracket on its own line. */
static void container_end(dspex_buf *out, int indent, int level, char close) {
    if (indent >= 0) newline_indent(out, indent, level);
    dspex_buf_putc(out, close);
}

static void dumps_rec(const dxa_val *v, int indent, int level, dspex_buf *out) {
    if (level > 4096) return;
    switch (v->kind) {
    case DXA_NONE: dspex_buf_puts(out, "null"); break;
    case DXA_BOOL: dspex_buf_puts(out, v->b ? "true" : "false"); break;
    case DXA_INT: put_int(v, out); break;
    case DXA_FLOAT: json_float(v->f, out); break;
    case DXA_STR: dxa_json_string(v->s, v->slen, out); break;
    case DXA_LIST:
    case DXA_TUPLE:
    case DXA_SET:
        if (v->n == 0) {
            dspex_buf_puts(out, "[]");
            break;
        }
        dspex_buf_putc(out, '[');
        for (size_t i = 0; i < v->n; i++) {
            item_start(out, indent, level, i);
            dumps_rec(v->items[i], indent, level + 1, out);
        }
        container_end(out, indent, level, ']');
        break;
    case DXA_DICT:
        if (v->n == 0) {
            dspex_buf_puts(out, "{}");
            break;
        }
        dspex_buf_putc(out, '{');
        for (size_t i = 0; i < v->n; i++) {
            item_start(out, indent, level, i);
            json_key(v->keys[i], out);
            dspex_buf_puts(out, ": ");
            dumps_rec(v->items[i], indent, level + 1, out);
        }
        container_end(out, indent, level, '}');
        break;
    case DXA_HISTORY: {
        /* pydantic dump of dspy.History: {"messages": [...]} */
        dxa_val list = *v;
        list.kind = DXA_LIST;
        dspex_buf_putc(out, '{');
        item_start(out, indent, level, 0);
        dspex_buf_puts(out, "\"messages\": ");
        dumps_rec(&list, indent, level + 1, out);
        container_end(out, indent, level, '}');
        break;
    }
    }
}

void dxa_json_dumps(const dxa_val *v, int indent, dspex_buf *out) { dumps_rec(v, indent, 0, out); }

void dxa_py_str(const dxa_val *v, dspex_buf *out) {
    switch (v->kind) {
    case DXA_NONE: dspex_buf_puts(out, "None"); break;
    case DXA_BOOL: dspex_buf_puts(out, v->b ? "True" : "False"); break;
    case DXA_INT: put_int(v, out); break;
    case DXA_FLOAT: dxa_float_repr(v->f, out); break;
    case DXA_STR: dspex_buf_put(out, v->s, v->slen); break;
    default: dxa_json_dumps(v, -1, out); break;
    }
}

/* ---------------------------------------------------------------- str.splitlines */
/* Length of a line break starting at s[i] (0 when none). */
static size_t linebreak_at(const char *s, size_t n, size_t i) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\r') return (i + 1 < n && s[i + 1] == '\n') ? 2 : 1;
    if (c == '\n' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d || c == 0x1e) return 1;
    if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] == 0x85) return 2;
    if (c == 0xe2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
        ((unsigned char)s[i + 2] == 0xa8 || (unsigned char)s[i + 2] == 0xa9))
        return 3;
    return 0;
}

size_t dxa_splitlines(dspex_arena *a, const char *s, size_t n, const char ***lines, size_t **lens) {
    size_t count = 0;
    for (size_t i = 0; i < n;) {
        size_t lb = linebreak_at(s, n, i);
        if (lb) {
            count++;
            i += lb;
        } else {
            i++;
        }
    }
    size_t cap = count + 1;
    const char **ls = dspex_arena_alloc(a, cap * sizeof *ls);
    size_t *ln = dspex_arena_alloc(a, cap * sizeof *ln);
    if (ls == NULL || ln == NULL) {
        *lines = NULL;
        *lens = NULL;
        return (size_t)-1;
    }
    size_t k = 0, start = 0;
    for (size_t i = 0; i < n;) {
        size_t lb = linebreak_at(s, n, i);
        if (lb) {
            ls[k] = s + start;
            ln[k] = i - start;
            k++;
            i += lb;
            start = i;
        } else {
            i++;
        }
    }
    if (start < n) {
        ls[k] = s + start;
        ln[k] = n - start;
        k++;
    }
    *lines = ls;
    *lens = ln;
    return k;
}

/* ---------------------------------------------------------------- str.strip */
static size_t space_at(const unsigned char *s, size_t n, size_t i) {
    unsigned char c = s[i];
    if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) return 1;
    if (c == 0xc2 && i + 1 < n && (s[i + 1] == 0x85 || s[i + 1] == 0xa0)) return 2;
    if (c == 0xe1 && i + 2 < n && s[i + 1] == 0x9a && s[i + 2] == 0x80) return 3;
    if (c == 0xe2 && i + 2 < n) {
        unsigned char c1 = s[i + 1], c2 = s[i + 2];
        if (c1 == 0x80 && ((c2 >= 0x80 && c2 <= 0x8a) || c2 == 0xa8 || c2 == 0xa9 || c2 == 0xaf))
            return 3;
        if (c1 == 0x81 && c2 == 0x9f) return 3;
    }
    if (c == 0xe3 && i + 2 < n && s[i + 1] == 0x80 && s[i + 2] == 0x80) return 3;
    return 0;
}

void dxa_pystrip(const char **sp, size_t *np) {
    const unsigned char *s = (const unsigned char *)*sp;
    size_t n = *np, i = 0;
    while (i < n) {
        size_t k = space_at(s, n, i);
        if (!k) break;
        i += k;
    }
    size_t end = n;
    while (end > i) {
        /* find the start of the last code point */
        size_t j = end - 1;
        while (j > i && (s[j] & 0xc0) == 0x80) j--;
        size_t k = space_at(s, end, j);
        if (k && j + k == end)
            end = j;
        else
            break;
    }
    *sp = (const char *)s + i;
    *np = end - i;
}

/* ---------------------------------------------------------------- textwrap.dedent */
char *dxa_dedent(dspex_arena *a, const char *s, size_t n, size_t *outlen) {
    /* pass 1: margin = longest common prefix of the [ \t]* indents of non-blank lines */
    const char *margin = NULL;
    size_t mlen = 0;
    size_t i = 0;
    while (i <= n) {
        size_t e = i;
        while (e < n && s[e] != '\n') e++;
        size_t k = i;
        while (k < e && (s[k] == ' ' || s[k] == '\t')) k++;
        if (k < e) { /* has a non-blank char */
            if (margin == NULL) {
                margin = s + i;
                mlen = k - i;
            } else {
                size_t m = 0;
                while (m < mlen && m < k - i && margin[m] == s[i + m]) m++;
                mlen = m;
            }
        }
        if (e >= n) break;
        i = e + 1;
    }
    char *out = dspex_arena_alloc(a, n + 1);
    if (out == NULL) return NULL;
    size_t o = 0;
    i = 0;
    while (i <= n) {
        size_t e = i;
        while (e < n && s[e] != '\n') e++;
        size_t k = i;
        while (k < e && (s[k] == ' ' || s[k] == '\t')) k++;
        if (k == e) {
            /* whitespace-only (or empty) line becomes empty */
        } else {
            size_t skip = (margin && mlen <= e - i && memcmp(s + i, margin, mlen) == 0) ? mlen : 0;
            memcpy(out + o, s + i + skip, e - i - skip);
            o += e - i - skip;
        }
        if (e >= n) break;
        out[o++] = '\n';
        i = e + 1;
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

/* ---------------------------------------------------------------- repr() */
void dxa_py_repr_str(const char *s, size_t n, dspex_buf *out) {
    int has_s = memchr(s, '\'', n) != NULL, has_d = memchr(s, '"', n) != NULL;
    char q = (has_s && !has_d) ? '"' : '\'';
    dspex_buf_putc(out, q);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\')
            dspex_buf_puts(out, "\\\\");
        else if (c == (unsigned char)q) {
            dspex_buf_putc(out, '\\');
            dspex_buf_putc(out, (char)c);
        } else if (c == '\n')
            dspex_buf_puts(out, "\\n");
        else if (c == '\r')
            dspex_buf_puts(out, "\\r");
        else if (c == '\t')
            dspex_buf_puts(out, "\\t");
        else if (c < 0x20 || c == 0x7f)
            dspex_buf_printf(out, "\\x%02x", c);
        else
            dspex_buf_putc(out, (char)c);
    }
    dspex_buf_putc(out, q);
}

static void repr_rec(const dxa_val *v, dspex_buf *out, int depth) {
    if (depth > 4096) return;
    switch (v->kind) {
    case DXA_STR: dxa_py_repr_str(v->s, v->slen, out); break;
    case DXA_LIST:
    case DXA_TUPLE:
    case DXA_SET:
        if (v->kind == DXA_SET && v->n == 0) {
            dspex_buf_puts(out, "set()");
            break;
        }
        dspex_buf_putc(out, v->kind == DXA_TUPLE ? '(' : v->kind == DXA_SET ? '{' : '[');
        for (size_t i = 0; i < v->n; i++) {
            if (i) dspex_buf_puts(out, ", ");
            repr_rec(v->items[i], out, depth + 1);
        }
        if (v->kind == DXA_TUPLE && v->n == 1) dspex_buf_putc(out, ',');
        dspex_buf_putc(out, v->kind == DXA_TUPLE ? ')' : v->kind == DXA_SET ? '}' : ']');
        break;
    case DXA_DICT:
        dspex_buf_putc(out, '{');
        for (size_t i = 0; i < v->n; i++) {
            if (i) dspex_buf_puts(out, ", ");
            repr_rec(v->keys[i], out, depth + 1);
            dspex_buf_puts(out, ": ");
            repr_rec(v->items[i], out, depth + 1);
        }
        dspex_buf_putc(out, '}');
        break;
    case DXA_HISTORY: {
        /* repr of a pydantic model: History(messages=[...]) */
        dxa_val l = *v;
        l.kind = DXA_LIST;
        dspex_buf_puts(out, "History(messages=");
        repr_rec(&l, out, depth + 1);
        dspex_buf_putc(out, ')');
        break;
    }
    default: dxa_py_str(v, out); break;
    }
}

void dxa_py_repr(const dxa_val *v, dspex_buf *out) { repr_rec(v, out, 0); }
