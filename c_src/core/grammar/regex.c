/* JSON Schema `pattern` (an ECMAScript regex subset) -> NFA, inside a JSON string: the
 * pattern describes the decoded string, the automaton emits its JSON source, so `"`,
 * `\` and control characters come out escaped. Supported: literals (UTF-8), escapes
 * (\d \w \s \D \W \S \t \n \r \f \v \0 \xXX \uXXXX \u{...} and escaped punctuation),
 * classes with ranges and negation, `.`, groups (capturing, (?:...), named), `|`,
 * quantifiers * + ? {m} {m,} {m,n} (lazy forms accepted), `^` at the start and `$` at
 * the end. An unanchored side matches any text there (JSON Schema patterns search).
 * Backreferences, lookaround and anchors elsewhere are errors. Work is bounded: pattern
 * length 4096, nesting 64, counts 1000, and the builder's state limits. */
#include <stdlib.h>
#include <string.h>

#include "grammar_int.h"

#define RX_MAX_LEN 4096
#define RX_MAX_COUNT 1000

enum { RX_SET, RX_CAT, RX_ALT, RX_REP, RX_EMPTY };

typedef struct rnode rnode;
struct rnode {
    int kind;
    rnode **kids;
    size_t n;
    int min, max;   /* RX_REP; max -1 = unbounded */
    uint32_t *rng;  /* RX_SET: sorted, merged [lo, hi] pairs */
    size_t nr;
};

typedef struct {
    gb *b;
    const char *p;
    size_t n, i;
    int depth;
} rx;

static rnode *node(rx *r, int kind) {
    rnode *x = dspex_arena_alloc(r->b->a, sizeof(rnode));
    if (x == NULL) gb_fail(r->b, "out of memory");
    else x->kind = kind;
    return x;
}

static int err(rx *r, const char *what) {
    gb_fail(r->b, "pattern: %s at offset %zu", what, r->i);
    return -1;
}

/* ---------------------------------------------------------------- code point sets */
typedef struct {
    uint32_t *v; /* pairs */
    size_t n, cap;
} cpset;

static int cs_add(rx *r, cpset *s, uint32_t lo, uint32_t hi) {
    if (s->n + 2 > s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        uint32_t *q = dspex_arena_alloc(r->b->a, nc * sizeof(uint32_t));
        if (q == NULL) return err(r, "out of memory");
        if (s->n) memcpy(q, s->v, s->n * sizeof(uint32_t));
        s->v = q;
        s->cap = nc;
    }
    s->v[s->n++] = lo;
    s->v[s->n++] = hi;
    return 0;
}

static int cmp_pair(const void *a, const void *b) {
    const uint32_t *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

static void cs_norm(cpset *s) {
    if (s->n < 4) return;
    qsort(s->v, s->n / 2, 2 * sizeof(uint32_t), cmp_pair);
    size_t w = 0;
    for (size_t i = 0; i < s->n; i += 2) {
        if (w && s->v[i] <= s->v[w - 1] + 1) {
            if (s->v[i + 1] > s->v[w - 1]) s->v[w - 1] = s->v[i + 1];
        } else {
            s->v[w++] = s->v[i];
            s->v[w++] = s->v[i + 1];
        }
    }
    s->n = w;
}

static int cs_negate(rx *r, cpset *s) {
    cs_norm(s);
    cpset o = {0, 0, 0};
    uint32_t next = 0;
    for (size_t i = 0; i < s->n; i += 2) {
        if (s->v[i] > next && cs_add(r, &o, next, s->v[i] - 1) != 0) return -1;
        next = s->v[i + 1] + 1;
    }
    if (next <= 0x10FFFF && cs_add(r, &o, next, 0x10FFFF) != 0) return -1;
    *s = o;
    return 0;
}

static int class_escape(rx *r, char c, cpset *s) {
    switch (c) {
    case 'd': return cs_add(r, s, '0', '9');
    case 'w':
        if (cs_add(r, s, '0', '9') || cs_add(r, s, 'A', 'Z') || cs_add(r, s, 'a', 'z')) return -1;
        return cs_add(r, s, '_', '_');
    case 's':
        if (cs_add(r, s, '\t', '\r') || cs_add(r, s, ' ', ' ') || cs_add(r, s, 0xA0, 0xA0)) return -1;
        return cs_add(r, s, 0xFEFF, 0xFEFF);
    default: {
        cpset t = {0, 0, 0};
        if (class_escape(r, (char)(c + ('a' - 'A')), &t) != 0 || cs_negate(r, &t) != 0) return -1;
        for (size_t i = 0; i < t.n; i += 2)
            if (cs_add(r, s, t.v[i], t.v[i + 1]) != 0) return -1;
        return 0;
    }
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* One code point from the pattern (UTF-8). */
static int next_cp(rx *r, uint32_t *out) {
    const unsigned char *s = (const unsigned char *)r->p + r->i;
    size_t left = r->n - r->i;
    uint32_t c = s[0];
    size_t k = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (k == 0 || k > left) return err(r, "invalid UTF-8");
    if (k > 1) c &= 0xFFu >> (k + 1);
    for (size_t j = 1; j < k; j++) {
        if ((s[j] & 0xC0) != 0x80) return err(r, "invalid UTF-8");
        c = (c << 6) | (s[j] & 0x3F);
    }
    r->i += k;
    *out = c;
    return 0;
}

/* An escape after '\': a single code point (*cp) or a class (added to s, *cp = -1). */
static int escape(rx *r, long *cp, cpset *s) {
    if (r->i >= r->n) return err(r, "a trailing backslash");
    char c = r->p[r->i++];
    switch (c) {
    case 'd': case 'w': case 's': case 'D': case 'W': case 'S':
        *cp = -1;
        return class_escape(r, c, s);
    case 't': *cp = '\t'; return 0;
    case 'n': *cp = '\n'; return 0;
    case 'r': *cp = '\r'; return 0;
    case 'f': *cp = '\f'; return 0;
    case 'v': *cp = '\v'; return 0;
    case '0': *cp = 0; return 0;
    case 'x':
        if (r->i + 2 > r->n || hexval(r->p[r->i]) < 0 || hexval(r->p[r->i + 1]) < 0) return err(r, "a bad \\x escape");
        *cp = hexval(r->p[r->i]) * 16 + hexval(r->p[r->i + 1]);
        r->i += 2;
        return 0;
    case 'u': {
        long v = 0;
        if (r->i < r->n && r->p[r->i] == '{') {
            r->i++;
            int nd = 0;
            while (r->i < r->n && r->p[r->i] != '}' && nd < 7) {
                int h = hexval(r->p[r->i++]);
                if (h < 0) return err(r, "a bad \\u{} escape");
                v = v * 16 + h;
                nd++;
            }
            if (r->i >= r->n || r->p[r->i] != '}' || nd == 0 || v > 0x10FFFF) return err(r, "a bad \\u{} escape");
            r->i++;
        } else {
            if (r->i + 4 > r->n) return err(r, "a bad \\u escape");
            for (int k = 0; k < 4; k++) {
                int h = hexval(r->p[r->i + (size_t)k]);
                if (h < 0) return err(r, "a bad \\u escape");
                v = v * 16 + h;
            }
            r->i += 4;
        }
        *cp = v;
        return 0;
    }
    case 'b': case 'B': return err(r, "word boundaries are not supported");
    default:
        if (c >= '1' && c <= '9') return err(r, "backreferences are not supported");
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return err(r, "an unknown escape");
        r->i--;
        {
            uint32_t u;
            if (next_cp(r, &u) != 0) return -1;
            *cp = u;
        }
        return 0;
    }
}

static rnode *set_node(rx *r, cpset *s) {
    cs_norm(s);
    rnode *x = node(r, RX_SET);
    if (x) {
        x->rng = s->v;
        x->nr = s->n / 2;
    }
    return x;
}

static rnode *parse_class(rx *r) {
    cpset s = {0, 0, 0};
    int neg = 0;
    if (r->i < r->n && r->p[r->i] == '^') {
        neg = 1;
        r->i++;
    }
    int first = 1;
    for (;;) {
        if (r->i >= r->n) {
            err(r, "an unterminated class");
            return NULL;
        }
        if (r->p[r->i] == ']' && !first) {
            r->i++;
            break;
        }
        first = 0;
        long lo;
        if (r->p[r->i] == '\\') {
            r->i++;
            if (r->i < r->n && r->p[r->i] == 'b') {
                r->i++;
                lo = '\b';
            } else if (escape(r, &lo, &s) != 0) {
                return NULL;
            }
        } else {
            uint32_t u;
            if (next_cp(r, &u) != 0) return NULL;
            lo = u;
        }
        if (lo < 0) continue; /* a class escape was added */
        long hi = lo;
        if (r->i + 1 < r->n && r->p[r->i] == '-' && r->p[r->i + 1] != ']') {
            r->i++;
            if (r->p[r->i] == '\\') {
                r->i++;
                cpset t = {0, 0, 0};
                if (escape(r, &hi, &t) != 0) return NULL;
                if (hi < 0) {
                    err(r, "a class escape as a range end");
                    return NULL;
                }
            } else {
                uint32_t u;
                if (next_cp(r, &u) != 0) return NULL;
                hi = u;
            }
            if (hi < lo) {
                err(r, "a reversed range");
                return NULL;
            }
        }
        if (cs_add(r, &s, (uint32_t)lo, (uint32_t)hi) != 0) return NULL;
    }
    if (neg && cs_negate(r, &s) != 0) return NULL;
    return set_node(r, &s);
}

static rnode *parse_alt(rx *r);

static int read_int(rx *r, int *out) {
    int v = 0, nd = 0;
    while (r->i < r->n && r->p[r->i] >= '0' && r->p[r->i] <= '9') {
        v = v * 10 + (r->p[r->i++] - '0');
        if (v > RX_MAX_COUNT) return err(r, "a repetition count above 1000");
        nd++;
    }
    *out = v;
    return nd ? 0 : -1;
}

static rnode *parse_atom(rx *r) {
    char c = r->p[r->i];
    if (c == '(') {
        r->i++;
        if (r->i < r->n && r->p[r->i] == '?') {
            r->i++;
            if (r->i < r->n && r->p[r->i] == ':') {
                r->i++;
            } else if (r->i + 1 < r->n && (r->p[r->i] == '<' || r->p[r->i] == 'P') && r->p[r->i + 1] != '=' &&
                       r->p[r->i + 1] != '!') {
                while (r->i < r->n && r->p[r->i] != '>') r->i++;
                if (r->i >= r->n) {
                    err(r, "an unterminated group name");
                    return NULL;
                }
                r->i++;
            } else {
                err(r, "lookaround is not supported");
                return NULL;
            }
        }
        if (++r->depth > G_MAX_NEST) {
            err(r, "groups nested too deeply");
            return NULL;
        }
        rnode *x = parse_alt(r);
        r->depth--;
        if (x == NULL) return NULL;
        if (r->i >= r->n || r->p[r->i] != ')') {
            err(r, "an unbalanced parenthesis");
            return NULL;
        }
        r->i++;
        return x;
    }
    if (c == '[') {
        r->i++;
        return parse_class(r);
    }
    cpset s = {0, 0, 0};
    if (c == '.') {
        r->i++;
        if (cs_add(r, &s, 0, '\n' - 1) || cs_add(r, &s, '\n' + 1, '\r' - 1) || cs_add(r, &s, '\r' + 1, 0x2027) ||
            cs_add(r, &s, 0x202A, 0x10FFFF))
            return NULL;
        return set_node(r, &s);
    }
    if (c == '^' || c == '$') {
        err(r, "anchors are supported only at the start and the end");
        return NULL;
    }
    if (c == '*' || c == '+' || c == '?' || c == '{' || c == ')' || c == ']' || c == '}') {
        if (c == '{' || c == '}' || c == ']') { /* a literal, as in Annex B */
            r->i++;
            if (cs_add(r, &s, (uint32_t)c, (uint32_t)c) != 0) return NULL;
            return set_node(r, &s);
        }
        err(r, "a quantifier without anything to repeat");
        return NULL;
    }
    long cp;
    if (c == '\\') {
        r->i++;
        if (escape(r, &cp, &s) != 0) return NULL;
    } else {
        uint32_t u;
        if (next_cp(r, &u) != 0) return NULL;
        cp = u;
    }
    if (cp >= 0 && cs_add(r, &s, (uint32_t)cp, (uint32_t)cp) != 0) return NULL;
    return set_node(r, &s);
}

static rnode *parse_rep(rx *r) {
    rnode *a = parse_atom(r);
    while (a && r->i < r->n) {
        char c = r->p[r->i];
        int mn, mx;
        if (c == '*') {
            mn = 0, mx = -1;
            r->i++;
        } else if (c == '+') {
            mn = 1, mx = -1;
            r->i++;
        } else if (c == '?') {
            mn = 0, mx = 1;
            r->i++;
        } else if (c == '{') {
            size_t save = r->i;
            r->i++;
            if (read_int(r, &mn) != 0) {
                if (r->b->failed) return NULL;
                r->i = save; /* not a quantifier: a literal brace */
                break;
            }
            mx = mn;
            if (r->i < r->n && r->p[r->i] == ',') {
                r->i++;
                if (r->i < r->n && r->p[r->i] == '}') mx = -1;
                else if (read_int(r, &mx) != 0) {
                    err(r, "a bad repetition count");
                    return NULL;
                }
            }
            if (r->i >= r->n || r->p[r->i] != '}') {
                err(r, "an unterminated repetition");
                return NULL;
            }
            r->i++;
            if (mx >= 0 && mx < mn) {
                err(r, "a repetition {m,n} with n < m");
                return NULL;
            }
        } else {
            break;
        }
        if (r->i < r->n && (r->p[r->i] == '?' || r->p[r->i] == '+')) r->i++; /* lazy / possessive: same language */
        rnode *x = node(r, RX_REP);
        if (x == NULL) return NULL;
        x->kids = dspex_arena_alloc(r->b->a, sizeof(rnode *));
        if (x->kids == NULL) return NULL;
        x->kids[0] = a;
        x->n = 1;
        x->min = mn;
        x->max = mx;
        a = x;
    }
    return a;
}

static rnode *parse_cat(rx *r) {
    rnode *x = node(r, RX_CAT);
    if (x == NULL) return NULL;
    size_t cap = 0;
    while (r->i < r->n && r->p[r->i] != '|' && r->p[r->i] != ')') {
        if (r->p[r->i] == '$' && r->i + 1 == r->n && r->depth == 0) break;
        rnode *k = parse_rep(r);
        if (k == NULL) return NULL;
        if (x->n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            rnode **q = dspex_arena_alloc(r->b->a, nc * sizeof(rnode *));
            if (q == NULL) return NULL;
            if (x->n) memcpy(q, x->kids, x->n * sizeof(rnode *));
            x->kids = q;
            cap = nc;
        }
        x->kids[x->n++] = k;
    }
    return x;
}

static rnode *parse_alt(rx *r) {
    rnode *first = parse_cat(r);
    if (first == NULL || r->i >= r->n || r->p[r->i] != '|') return first;
    rnode *x = node(r, RX_ALT);
    if (x == NULL) return NULL;
    size_t cap = 8;
    x->kids = dspex_arena_alloc(r->b->a, cap * sizeof(rnode *));
    if (x->kids == NULL) return NULL;
    x->kids[x->n++] = first;
    while (r->i < r->n && r->p[r->i] == '|') {
        r->i++;
        rnode *k = parse_cat(r);
        if (k == NULL) return NULL;
        if (x->n == cap) {
            rnode **q = dspex_arena_alloc(r->b->a, cap * 2 * sizeof(rnode *));
            if (q == NULL) return NULL;
            memcpy(q, x->kids, x->n * sizeof(rnode *));
            x->kids = q;
            cap *= 2;
        }
        x->kids[x->n++] = k;
    }
    return x;
}

/* ---------------------------------------------------------------- emission */
/* One character of the set, written as JSON string source. */
static void emit_set(gb *b, const uint32_t *rng, size_t nr, int32_t from, int32_t to) {
    static const char *const short_esc[32] = {[8] = "\\b", [9] = "\\t", [10] = "\\n", [12] = "\\f", [13] = "\\r"};
    for (size_t i = 0; i < nr && !b->failed; i++) {
        uint32_t lo = rng[2 * i], hi = rng[2 * i + 1];
        for (uint32_t c = lo; c <= hi && c < 0x20; c++) {
            char u[8] = "\\u00";
            const char *hx = "0123456789abcdef";
            u[4] = hx[c >> 4];
            u[5] = hx[c & 15];
            u[6] = 0;
            gb_lits(b, from, short_esc[c] ? short_esc[c] : u, to);
        }
        if (lo < 0x20) lo = 0x20;
        if (lo > hi) continue;
        /* printable ASCII: '"' and '\' escaped */
        uint32_t a = lo, z = hi < 0x7F ? hi : 0x7F;
        for (uint32_t x = a; x <= z;) {
            if (x == '"' || x == '\\') {
                gb_lits(b, from, x == '"' ? "\\\"" : "\\\\", to);
                x++;
                continue;
            }
            uint32_t y = x;
            while (y + 1 <= z && y + 1 != '"' && y + 1 != '\\') y++;
            gb_range(b, from, x, y, to);
            x = y + 1;
        }
        if (hi >= 0x80) gb_cp_range(b, from, lo < 0x80 ? 0x80 : lo, hi, to);
    }
}

static void emit(gb *b, const rnode *x, int32_t from, int32_t to, int depth) {
    if (b->failed) return;
    if (depth > G_MAX_NEST) {
        gb_fail(b, "pattern: nested too deeply");
        return;
    }
    switch (x->kind) {
    case RX_SET: emit_set(b, x->rng, x->nr, from, to); break;
    case RX_EMPTY: gb_eps(b, from, to); break;
    case RX_CAT: {
        int32_t cur = from;
        for (size_t i = 0; i < x->n; i++) {
            int32_t nx = i + 1 == x->n ? to : gb_state(b);
            emit(b, x->kids[i], cur, nx, depth + 1);
            cur = nx;
        }
        if (x->n == 0) gb_eps(b, from, to);
        break;
    }
    case RX_ALT:
        for (size_t i = 0; i < x->n; i++) emit(b, x->kids[i], from, to, depth + 1);
        break;
    case RX_REP: {
        int32_t cur = from;
        for (int i = 0; i < x->min && !b->failed; i++) {
            int32_t nx = gb_state(b);
            emit(b, x->kids[0], cur, nx, depth + 1);
            cur = nx;
        }
        if (x->max < 0) {
            int32_t loop = gb_state(b), back = gb_state(b);
            gb_eps(b, cur, loop);
            emit(b, x->kids[0], loop, back, depth + 1);
            gb_eps(b, back, loop);
            gb_eps(b, loop, to);
        } else {
            for (int i = x->min; i < x->max && !b->failed; i++) {
                int32_t nx = gb_state(b);
                gb_eps(b, cur, to);
                emit(b, x->kids[0], cur, nx, depth + 1);
                cur = nx;
            }
            gb_eps(b, cur, to);
        }
        break;
    }
    }
}

void gr_pattern(gb *b, const char *pat, size_t n, int32_t from, int32_t to) {
    if (n > RX_MAX_LEN) {
        gb_fail(b, "pattern: longer than %d bytes", RX_MAX_LEN);
        return;
    }
    rx r = {b, pat, n, 0, 0};
    int start = n > 0 && pat[0] == '^';
    if (start) r.i = 1;
    rnode *x = parse_alt(&r);
    if (x == NULL || b->failed) {
        if (!b->failed) gb_fail(b, "pattern: out of memory");
        return;
    }
    int end = 0;
    if (r.i < r.n && pat[r.i] == '$' && r.i + 1 == r.n) {
        end = 1;
        r.i++;
    }
    if (r.i != r.n) {
        err(&r, "an unbalanced parenthesis");
        return;
    }
    uint32_t any[2] = {0, 0x10FFFF};
    int32_t s = from, e = to;
    if (!start) { /* any text before */
        s = gb_state(b);
        int32_t back = gb_state(b);
        gb_eps(b, from, s);
        emit_set(b, any, 1, s, back);
        gb_eps(b, back, s);
    }
    if (!end) {
        e = gb_state(b);
        int32_t back = gb_state(b);
        gb_eps(b, e, to);
        emit_set(b, any, 1, e, back);
        gb_eps(b, back, e);
    }
    emit(b, x, s, e, 0);
}
