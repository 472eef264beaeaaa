/* Python text rules. See include/dspex/pytext.h. */
#include "dspex/pytext.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dspex/numfmt.h"
#include "dspex/utf8.h"

/* ---------------------------------------------------------------- code points */
uint32_t dspex_utf8_next(const char *s, size_t n, size_t *i) {
    const unsigned char *u = (const unsigned char *)s;
    unsigned char c = u[*i];
    if (c < 0x80) {
        (*i)++;
        return c;
    }
    size_t k = dspex_utf8_seq(u, n, *i);
    uint32_t cp;
    switch (k) {
    case 2: cp = ((uint32_t)(c & 0x1F) << 6) | (u[*i + 1] & 0x3F); break;
    case 3: cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(u[*i + 1] & 0x3F) << 6) | (u[*i + 2] & 0x3F); break;
    case 4:
        cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(u[*i + 1] & 0x3F) << 12) | ((uint32_t)(u[*i + 2] & 0x3F) << 6) |
             (u[*i + 3] & 0x3F);
        break;
    default: (*i)++; return c;
    }
    *i += k;
    return cp;
}

static void put_cp(dspex_buf *out, uint32_t cp) {
    char o[4];
    dspex_buf_put(out, o, dspex_utf8_encode(o, cp));
}

/* Python's str.isprintable() for one code point (see the header for the coverage). */
static int printable(uint32_t c) {
    if (c < 0x20 || (c >= 0x7F && c <= 0xA0)) return 0; /* Cc, and NBSP (Zs) */
    if (c < 0xAD) return 1;
    if (c == 0xAD) return 0; /* soft hyphen (Cf) */
    if (c < 0x600) return 1;
    if ((c >= 0x600 && c <= 0x605) || c == 0x61C || c == 0x6DD || c == 0x70F || c == 0x890 || c == 0x891 ||
        c == 0x8E2 || c == 0x1680 || c == 0x180E)
        return 0;
    if (c >= 0x2000 && c <= 0x200F) return 0; /* spaces, ZWSP, ZWNJ, ZWJ, LRM, RLM */
    if (c >= 0x2028 && c <= 0x202F) return 0; /* line/para separators, embeddings, NNBSP */
    if (c >= 0x205F && c <= 0x206F) return 0; /* MMSP, word joiner, invisible operators */
    if (c == 0x3000) return 0;
    if (c >= 0xD800 && c <= 0xF8FF) return 0;  /* surrogates, private use */
    if (c >= 0xFDD0 && c <= 0xFDEF) return 0;  /* noncharacters */
    if (c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB)) return 0;
    if ((c & 0xFFFE) == 0xFFFE) return 0;      /* U+xFFFE, U+xFFFF */
    if (c == 0x110BD || c == 0x110CD || (c >= 0x13430 && c <= 0x1343F) || (c >= 0x1BCA0 && c <= 0x1BCA3) ||
        (c >= 0x1D173 && c <= 0x1D17A) || c == 0xE0001 || (c >= 0xE0020 && c <= 0xE007F))
        return 0;
    if (c >= 0xF0000) return 0; /* supplementary private use */
    return 1;
}

/* ---------------------------------------------------------------- case */
/* Upper- and lower-case partners of a code point (itself when uncased or unknown). */
static uint32_t to_upper(uint32_t c) {
    if (c >= 'a' && c <= 'z') return c - 32;
    if (c < 0x80) return c;
    if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
    if (c == 0xFF) return 0x178;
    if (c == 0xB5) return 0x39C;
    if (c >= 0x100 && c <= 0x17F) {
        if (c == 0x131) return 'I';
        if (c == 0x17F) return 'S';
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c & 1) ? c : c - 1;
        if (c == 0x130 || c == 0x138 || c == 0x149 || c == 0x178) return c;
        return (c & 1) ? c - 1 : c;
    }
    if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
    if (c == 0x3C2) return 0x3A3;
    if (c >= 0x3AC && c <= 0x3AF) return c == 0x3AC ? 0x386 : c - 37;
    if (c >= 0x430 && c <= 0x44F) return c - 32;
    if (c >= 0x450 && c <= 0x45F) return c - 80;
    return c;
}

static uint32_t to_lower(uint32_t c) {
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c < 0x80) return c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
    if (c == 0x178) return 0xFF;
    if (c >= 0x100 && c <= 0x17F) {
        if (c == 0x130) return 'i';
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c & 1) ? c + 1 : c;
        if (c == 0x131 || c == 0x138 || c == 0x149 || c == 0x17F) return c;
        return (c & 1) ? c : c + 1;
    }
    if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
    if (c == 0x386) return 0x3AC;
    if (c >= 0x388 && c <= 0x38A) return c + 37;
    if (c >= 0x410 && c <= 0x42F) return c + 32;
    if (c >= 0x400 && c <= 0x40F) return c + 80;
    return c;
}

static int is_lower_cp(uint32_t c) { return to_upper(c) != c || c == 0xDF || c == 0x138 || c == 0x149; }
static int is_upper_cp(uint32_t c) { return to_lower(c) != c; }

int dspex_py_isupper(const char *s, size_t n) {
    int cased = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c = dspex_utf8_next(s, n, &i);
        if (is_lower_cp(c)) return 0;
        if (is_upper_cp(c)) cased = 1;
    }
    return cased;
}

void dspex_py_capitalize(const char *s, size_t n, dspex_buf *out) {
    for (size_t i = 0; i < n;) {
        size_t at = i;
        uint32_t c = dspex_utf8_next(s, n, &i);
        if (at == 0) {
            if (c == 0xDF) { /* 'ß'.capitalize() == 'Ss' */
                dspex_buf_puts(out, "Ss");
                continue;
            }
            put_cp(out, to_upper(c));
        } else {
            put_cp(out, to_lower(c));
        }
    }
}

/* ---------------------------------------------------------------- str / repr */
void dspex_py_float(double d, dspex_buf *out) {
    char tmp[DSPEX_NUMFMT_MAX];
    int n = dspex_fmt_double(tmp, d, DSPEX_FLOAT_PY);
    dspex_buf_put(out, tmp, (size_t)n);
}

/* An int: its decimal digits when it exceeds 64 bits, else the machine value. */
static void put_int(const dspex_val *v, dspex_buf *out) {
    if (v->s) {
        dspex_buf_put(out, v->s, v->slen);
    } else {
        char tmp[DSPEX_NUMFMT_MAX];
        dspex_buf_put(out, tmp, (size_t)dspex_fmt_int64(tmp, v->i));
    }
}

void dspex_py_repr_str(const char *s, size_t n, dspex_buf *out) {
    int has_s = memchr(s, '\'', n) != NULL, has_d = memchr(s, '"', n) != NULL;
    char q = (has_s && !has_d) ? '"' : '\'';
    dspex_buf_putc(out, q);
    size_t run = 0;
    for (size_t i = 0; i < n;) {
        size_t at = i;
        uint32_t c = dspex_utf8_next(s, n, &i);
        const char *esc = NULL;
        char ubuf[12];
        if (c == '\\')
            esc = "\\\\";
        else if (c == (uint32_t)q)
            esc = q == '\'' ? "\\'" : "\\\"";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c >= 0x20 && c < 0x7F)
            continue;
        else if (!printable(c)) {
            if (c < 0x100)
                snprintf(ubuf, sizeof ubuf, "\\x%02x", c);
            else if (c < 0x10000)
                snprintf(ubuf, sizeof ubuf, "\\u%04x", c);
            else
                snprintf(ubuf, sizeof ubuf, "\\U%08x", c);
            esc = ubuf;
        }
        if (esc) {
            dspex_buf_put(out, s + run, at - run);
            dspex_buf_puts(out, esc);
            run = i;
        }
    }
    dspex_buf_put(out, s + run, n - run);
    dspex_buf_putc(out, q);
}

/* Fields of an ISO 8601 datetime/date text ("YYYY-MM-DD[THH:MM[:SS[.ffffff]]][Z|+HH:MM]"). */
typedef struct {
    int y, mo, d, h, mi, s, us, has_time, tz, tzsec;
} iso_parts;

static int num_at(const char *s, size_t n, size_t at, size_t len, int *out) {
    if (at + len > n) return -1;
    int v = 0;
    for (size_t k = 0; k < len; k++) {
        if (s[at + k] < '0' || s[at + k] > '9') return -1;
        v = v * 10 + (s[at + k] - '0');
    }
    *out = v;
    return 0;
}

static int iso_split(const char *s, size_t n, iso_parts *p) {
    memset(p, 0, sizeof *p);
    if (num_at(s, n, 0, 4, &p->y) || n < 10 || s[4] != '-' || num_at(s, n, 5, 2, &p->mo) || s[7] != '-' ||
        num_at(s, n, 8, 2, &p->d))
        return -1;
    size_t i = 10;
    if (i == n) return 0;
    if (s[i] != 'T' && s[i] != ' ') return -1;
    p->has_time = 1;
    if (num_at(s, n, i + 1, 2, &p->h) || i + 3 >= n || s[i + 3] != ':' || num_at(s, n, i + 4, 2, &p->mi)) return -1;
    i += 6;
    if (i < n && s[i] == ':') {
        if (num_at(s, n, i + 1, 2, &p->s)) return -1;
        i += 3;
        if (i < n && s[i] == '.') {
            i++;
            int digits = 0;
            while (i < n && s[i] >= '0' && s[i] <= '9') {
                if (digits < 6) p->us = p->us * 10 + (s[i] - '0');
                digits++;
                i++;
            }
            for (; digits < 6; digits++) p->us *= 10;
        }
    }
    if (i == n) return 0;
    if (s[i] == 'Z' && i + 1 == n) {
        p->tz = 1;
        return 0;
    }
    if ((s[i] == '+' || s[i] == '-') && i + 6 == n && s[i + 3] == ':') {
        int hh, mm;
        if (num_at(s, n, i + 1, 2, &hh) || num_at(s, n, i + 4, 2, &mm)) return -1;
        p->tz = 1;
        p->tzsec = (hh * 3600 + mm * 60) * (s[i] == '-' ? -1 : 1);
        return 0;
    }
    return -1;
}

/* repr(datetime) / repr(date), e.g. datetime.datetime(2024, 1, 2, 3, 4, 5). */
static void repr_datetime(const dspex_val *v, dspex_buf *out) {
    iso_parts p;
    if (iso_split(v->s, v->slen, &p) != 0) {
        dspex_py_repr_str(v->s, v->slen, out);
        return;
    }
    if (v->kind == DSPEX_V_DATE) {
        dspex_buf_printf(out, "datetime.date(%d, %d, %d)", p.y, p.mo, p.d);
        return;
    }
    dspex_buf_printf(out, "datetime.datetime(%d, %d, %d, %d, %d", p.y, p.mo, p.d, p.h, p.mi);
    if (p.s || p.us) dspex_buf_printf(out, ", %d", p.s);
    if (p.us) dspex_buf_printf(out, ", %d", p.us);
    if (p.tz) {
        if (p.tzsec == 0)
            dspex_buf_puts(out, ", tzinfo=datetime.timezone.utc");
        else if (p.tzsec < 0)
            dspex_buf_printf(out, ", tzinfo=datetime.timezone(datetime.timedelta(days=-1, seconds=%d))",
                             86400 + p.tzsec);
        else
            dspex_buf_printf(out, ", tzinfo=datetime.timezone(datetime.timedelta(seconds=%d))", p.tzsec);
    }
    dspex_buf_putc(out, ')');
}

static void repr_rec(const dspex_val *v, dspex_buf *out, int depth) {
    if (depth > DSPEX_PYTEXT_MAX_DEPTH) return;
    switch (v->kind) {
    case DSPEX_V_NONE: dspex_buf_puts(out, "None"); break;
    case DSPEX_V_BOOL: dspex_buf_puts(out, v->b ? "True" : "False"); break;
    case DSPEX_V_INT: put_int(v, out); break;
    case DSPEX_V_FLOAT: dspex_py_float(v->f, out); break;
    case DSPEX_V_STR: dspex_py_repr_str(v->s, v->slen, out); break;
    case DSPEX_V_DATETIME:
    case DSPEX_V_DATE: repr_datetime(v, out); break;
    case DSPEX_V_LIST:
    case DSPEX_V_TUPLE:
    case DSPEX_V_SET:
    case DSPEX_V_FROZENSET: {
        int set = v->kind == DSPEX_V_SET || v->kind == DSPEX_V_FROZENSET;
        if (v->kind == DSPEX_V_FROZENSET) dspex_buf_puts(out, "frozenset(");
        if (set && v->n == 0) {
            dspex_buf_puts(out, v->kind == DSPEX_V_SET ? "set()" : ")");
            break;
        }
        dspex_buf_putc(out, v->kind == DSPEX_V_TUPLE ? '(' : set ? '{' : '[');
        for (size_t i = 0; i < v->n; i++) {
            if (i) dspex_buf_puts(out, ", ");
            repr_rec(v->items[i], out, depth + 1);
        }
        if (v->kind == DSPEX_V_TUPLE && v->n == 1) dspex_buf_putc(out, ',');
        dspex_buf_putc(out, v->kind == DSPEX_V_TUPLE ? ')' : set ? '}' : ']');
        if (v->kind == DSPEX_V_FROZENSET) dspex_buf_putc(out, ')');
        break;
    }
    case DSPEX_V_DICT:
        dspex_buf_putc(out, '{');
        for (size_t i = 0; i < v->n; i++) {
            if (i) dspex_buf_puts(out, ", ");
            repr_rec(v->keys[i], out, depth + 1);
            dspex_buf_puts(out, ": ");
            repr_rec(v->items[i], out, depth + 1);
        }
        dspex_buf_putc(out, '}');
        break;
    case DSPEX_V_HISTORY: {
        /* repr of the pydantic model: History(messages=[...]) */
        dspex_val l = *v;
        l.kind = DSPEX_V_LIST;
        dspex_buf_puts(out, "History(messages=");
        repr_rec(&l, out, depth + 1);
        dspex_buf_putc(out, ')');
        break;
    }
    }
}

void dspex_py_repr(const dspex_val *v, dspex_buf *out) { repr_rec(v, out, 0); }

void dspex_py_str(const dspex_val *v, dspex_buf *out) {
    switch (v->kind) {
    case DSPEX_V_NONE: dspex_buf_puts(out, "None"); break;
    case DSPEX_V_BOOL: dspex_buf_puts(out, v->b ? "True" : "False"); break;
    case DSPEX_V_INT: put_int(v, out); break;
    case DSPEX_V_FLOAT: dspex_py_float(v->f, out); break;
    case DSPEX_V_STR:
    case DSPEX_V_DATETIME:
    case DSPEX_V_DATE: dspex_buf_put(out, v->s, v->slen); break;
    default: dspex_json_dumps(v, -1, out); break;
    }
}

/* ---------------------------------------------------------------- json.dumps */
void dspex_json_string(const char *s, size_t n, dspex_buf *out) {
    dspex_buf_putc(out, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        const char *esc;
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
            snprintf(ubuf, sizeof ubuf, "\\u%04x", c);
            esc = ubuf;
        }
        dspex_buf_put(out, s + run, i - run);
        dspex_buf_puts(out, esc);
        run = i + 1;
    }
    dspex_buf_put(out, s + run, n - run);
    dspex_buf_putc(out, '"');
}

static void json_float(double d, dspex_buf *out) {
    if (d != d)
        dspex_buf_puts(out, "NaN");
    else if (d > 1.7976931348623157e308 || d < -1.7976931348623157e308)
        dspex_buf_puts(out, d < 0 ? "-Infinity" : "Infinity");
    else
        dspex_py_float(d, out);
}

/* A dict key as pydantic's JSON mode writes it (DSPy serializes values with pydantic
 * before json.dumps): None -> "None", booleans -> "true"/"false", floats as repr
 * (non-finite ones -> "None"), tuples as their items joined by ",". */
static void key_text(const dspex_val *k, dspex_buf *out, int depth) {
    switch (k->kind) {
    case DSPEX_V_STR:
    case DSPEX_V_DATETIME:
    case DSPEX_V_DATE: dspex_buf_put(out, k->s, k->slen); break;
    case DSPEX_V_INT: put_int(k, out); break;
    case DSPEX_V_FLOAT:
        if (k->f != k->f || k->f > 1.7976931348623157e308 || k->f < -1.7976931348623157e308)
            dspex_buf_puts(out, "None");
        else
            dspex_py_float(k->f, out);
        break;
    case DSPEX_V_BOOL: dspex_buf_puts(out, k->b ? "true" : "false"); break;
    case DSPEX_V_NONE: dspex_buf_puts(out, "None"); break;
    case DSPEX_V_TUPLE:
        for (size_t i = 0; i < k->n && depth < DSPEX_PYTEXT_MAX_DEPTH; i++) {
            if (i) dspex_buf_putc(out, ',');
            key_text(k->items[i], out, depth + 1);
        }
        break;
    default: dspex_py_str(k, out); /* not hashable in Python; its text form */
    }
}

static void json_key(const dspex_val *k, dspex_buf *out) {
    if (k->kind == DSPEX_V_STR) {
        dspex_json_string(k->s, k->slen, out);
        return;
    }
    dspex_buf tmp;
    dspex_buf_init(&tmp);
    key_text(k, &tmp, 0);
    dspex_json_string(tmp.p ? tmp.p : "", tmp.len, out);
    if (tmp.oom) out->oom = 1;
    dspex_buf_free(&tmp);
}

static void newline_indent(dspex_buf *out, int indent, int level) {
    dspex_buf_putc(out, '\n');
    for (int i = 0; i < indent * level; i++) dspex_buf_putc(out, ' ');
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

static void dumps_rec(const dspex_val *v, int indent, int level, dspex_buf *out) {
    if (level > DSPEX_PYTEXT_MAX_DEPTH) return;
    switch (v->kind) {
    case DSPEX_V_NONE: dspex_buf_puts(out, "null"); break;
    case DSPEX_V_BOOL: dspex_buf_puts(out, v->b ? "true" : "false"); break;
    case DSPEX_V_INT: put_int(v, out); break;
    case DSPEX_V_FLOAT: json_float(v->f, out); break;
    case DSPEX_V_STR:
    case DSPEX_V_DATETIME:
    case DSPEX_V_DATE: dspex_json_string(v->s, v->slen, out); break;
    case DSPEX_V_LIST:
    case DSPEX_V_TUPLE:
    case DSPEX_V_SET:
    case DSPEX_V_FROZENSET:
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
    case DSPEX_V_DICT:
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
    case DSPEX_V_HISTORY: {
        /* pydantic dump of dspy.History: {"messages": [...]} */
        dspex_val list = *v;
        list.kind = DSPEX_V_LIST;
        dspex_buf_putc(out, '{');
        item_start(out, indent, level, 0);
        dspex_buf_puts(out, "\"messages\": ");
        dumps_rec(&list, indent, level + 1, out);
        container_end(out, indent, level, '}');
        break;
    }
    }
}

void dspex_json_dumps(const dspex_val *v, int indent, dspex_buf *out) { dumps_rec(v, indent, 0, out); }

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

size_t dspex_py_splitlines(dspex_arena *a, const char *s, size_t n, const char ***lines, size_t **lens) {
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
/* Byte length of a str.isspace() character at s[i] (0 when none). */
static size_t space_at(const unsigned char *s, size_t n, size_t i) {
    unsigned char c = s[i];
    if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) return 1;
    if (c == 0xc2 && i + 1 < n && (s[i + 1] == 0x85 || s[i + 1] == 0xa0)) return 2;
    if (c == 0xe1 && i + 2 < n && s[i + 1] == 0x9a && s[i + 2] == 0x80) return 3;
    if (c == 0xe2 && i + 2 < n) {
        unsigned char c1 = s[i + 1], c2 = s[i + 2];
        if (c1 == 0x80 && ((c2 >= 0x80 && c2 <= 0x8a) || c2 == 0xa8 || c2 == 0xa9 || c2 == 0xaf)) return 3;
        if (c1 == 0x81 && c2 == 0x9f) return 3;
    }
    if (c == 0xe3 && i + 2 < n && s[i + 1] == 0x80 && s[i + 2] == 0x80) return 3;
    return 0;
}

void dspex_py_strip(const char **sp, size_t *np) {
    const unsigned char *s = (const unsigned char *)*sp;
    size_t n = *np, i = 0;
    while (i < n) {
        size_t k = space_at(s, n, i);
        if (!k) break;
        i += k;
    }
    size_t end = n;
    while (end > i) {
        /* the start of the last code point */
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
char *dspex_py_dedent(dspex_arena *a, const char *s, size_t n, size_t *outlen) {
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
        if (k < e) { /* a whitespace-only line becomes empty */
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

/* ---------------------------------------------------------------- inspect.cleandoc */
/* str.expandtabs() (tab size 8; the column restarts after \n and \r), counted in code
 * points, into out. */
static void expandtabs(const char *s, size_t n, dspex_buf *out) {
    size_t col = 0, run = 0;
    for (size_t i = 0; i < n;) {
        size_t at = i;
        uint32_t c = dspex_utf8_next(s, n, &i);
        if (c == '\t') {
            dspex_buf_put(out, s + run, at - run);
            size_t pad = 8 - col % 8;
            for (size_t k = 0; k < pad; k++) dspex_buf_putc(out, ' ');
            col += pad;
            run = i;
        } else if (c == '\n' || c == '\r') {
            col = 0;
        } else {
            col++;
        }
    }
    dspex_buf_put(out, s + run, n - run);
}

/* Code points of leading str.isspace() characters of line [s, s+n), and their bytes. */
static size_t leading_space(const char *s, size_t n, size_t *bytes) {
    size_t i = 0, cps = 0;
    while (i < n) {
        size_t k = space_at((const unsigned char *)s, n, i);
        if (!k) break;
        i += k;
        cps++;
    }
    *bytes = i;
    return cps;
}

/* Byte offset of code point index cp in [s, s+n) (n when beyond). */
static size_t cp_offset(const char *s, size_t n, size_t cp) {
    size_t i = 0;
    while (cp > 0 && i < n) {
        dspex_utf8_next(s, n, &i);
        cp--;
    }
    return i;
}

void dspex_py_cleandoc(const char *src, size_t srcn, dspex_buf *out) {
    dspex_buf t;
    dspex_buf_init(&t);
    expandtabs(src, srcn, &t);
    const char *s = t.p ? t.p : "";
    size_t n = t.len;
    if (t.oom) {
        out->oom = 1;
        dspex_buf_free(&t);
        return;
    }
    /* margin over lines after the first that have non-space content */
    size_t margin = (size_t)-1;
    size_t first_end = 0;
    while (first_end < n && s[first_end] != '\n') first_end++;
    for (size_t i = first_end; i < n;) {
        size_t ls = i + 1, le = ls;
        while (le < n && s[le] != '\n') le++;
        size_t bytes, cps = leading_space(s + ls, le - ls, &bytes);
        if (bytes < le - ls && cps < margin) margin = cps;
        i = le;
        if (i >= n) break;
    }
    /* lines: the first stripped on the left, the others cut by the margin */
    typedef struct {
        const char *p;
        size_t n;
    } span;
    size_t nlines = 1;
    for (size_t i = 0; i < n; i++) nlines += s[i] == '\n';
    span small[64];
    span *lines = nlines <= 64 ? small : malloc(nlines * sizeof *lines);
    if (lines == NULL) {
        out->oom = 1;
        dspex_buf_free(&t);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i <= n;) {
        size_t e = i;
        while (e < n && s[e] != '\n') e++;
        const char *lp = s + i;
        size_t ln = e - i;
        if (k == 0) {
            size_t b;
            leading_space(lp, ln, &b);
            lp += b;
            ln -= b;
        } else if (margin != (size_t)-1) {
            size_t off = cp_offset(lp, ln, margin);
            lp += off;
            ln -= off;
        }
        lines[k].p = lp;
        lines[k].n = ln;
        k++;
        if (e >= n) break;
        i = e + 1;
    }
    size_t lo = 0, hi = k;
    while (hi > lo && lines[hi - 1].n == 0) hi--;
    while (lo < hi && lines[lo].n == 0) lo++;
    for (size_t i = lo; i < hi; i++) {
        if (i > lo) dspex_buf_putc(out, '\n');
        dspex_buf_put(out, lines[i].p, lines[i].n);
    }
    if (lines != small) free(lines);
    dspex_buf_free(&t);
}
