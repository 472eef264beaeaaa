/* The NFA builder: front ends add states and edges between states they name, so a
 * fragment can be shared by several predecessors when its continuation is the same (the
 * object-property construction in schema.c relies on that to stay linear). Errors are
 * sticky: after the first one every call returns at once and b->err says what failed. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar_int.h"

void gb_fail(gb *b, const char *fmt, ...) {
    if (b->failed) return;
    b->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err, sizeof b->err, fmt, ap);
    va_end(ap);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem, size_t max) {
    if (need <= *cap) return 0;
    if (need > max) return -1;
    size_t nc = *cap ? *cap * 2 : 64;
    while (nc < need) nc *= 2;
    if (nc > max) nc = max;
    void *q = realloc(*p, nc * elem);
    if (q == NULL) return -1;
    *p = q;
    *cap = nc;
    return 0;
}

static int32_t state_in(gb *b, int32_t rule) {
    if (b->failed) return 0;
    if (grow((void **)&b->srule, &b->cap_s, b->ns + 1, sizeof(int32_t), G_MAX_NFA_STATES) != 0) {
        gb_fail(b, "the grammar is too large (more than %zu automaton states before determinization)",
                (size_t)G_MAX_NFA_STATES);
        return 0;
    }
    b->srule[b->ns] = rule;
    return (int32_t)b->ns++;
}

int32_t gb_state(gb *b) { return state_in(b, b->cur); }

static void edge(gb *b, int32_t from, int32_t to, int32_t kind, unsigned lo, unsigned hi) {
    if (b->failed) return;
    if (grow((void **)&b->e, &b->cap_e, b->ne + 1, sizeof(gb_edge), G_MAX_NFA_EDGES) != 0) {
        gb_fail(b, "the grammar is too large (more than %zu automaton edges before determinization)",
                (size_t)G_MAX_NFA_EDGES);
        return;
    }
    b->e[b->ne++] = (gb_edge){from, to, kind, (uint8_t)lo, (uint8_t)hi};
}

void gb_eps(gb *b, int32_t from, int32_t to) {
    if (from != to) edge(b, from, to, GE_EPS, 0, 0);
}

void gb_range(gb *b, int32_t from, unsigned lo, unsigned hi, int32_t to) {
    if (lo <= hi && hi <= 255) edge(b, from, to, GE_BYTES, lo, hi);
}

void gb_byte(gb *b, int32_t from, unsigned c, int32_t to) { gb_range(b, from, c, c, to); }

void gb_lit(gb *b, int32_t from, const char *s, size_t n, int32_t to) {
    if (n == 0) {
        gb_eps(b, from, to);
        return;
    }
    int32_t cur = from;
    for (size_t i = 0; i < n && !b->failed; i++) {
        int32_t nx = i + 1 == n ? to : gb_state(b);
        gb_byte(b, cur, (unsigned char)s[i], nx);
        cur = nx;
    }
}

void gb_lits(gb *b, int32_t from, const char *s, int32_t to) { gb_lit(b, from, s, strlen(s), to); }

/* UTF-8 encoding of cp into out; returns the length. */
static int utf8_enc(uint32_t cp, uint8_t *out) {
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Code point range -> byte-range chains: split at encoding-length boundaries and the
 * surrogates, then until every continuation position spans a full or aligned range
 * (the classic construction RE2 and Rust's utf8-ranges use). */
void gb_cp_range(gb *b, int32_t from, uint32_t lo, uint32_t hi, int32_t to) {
    if (b->failed || lo > hi) return;
    if (hi > 0x10FFFF) hi = 0x10FFFF;
    if (lo > hi) return;
    if (lo <= 0xDFFF && hi >= 0xD800) { /* surrogates are not characters */
        if (lo < 0xD800) gb_cp_range(b, from, lo, 0xD7FF, to);
        if (hi > 0xDFFF) gb_cp_range(b, from, 0xE000, hi, to);
        return;
    }
    static const uint32_t bounds[] = {0x7F, 0x7FF, 0xFFFF};
    for (int i = 0; i < 3; i++)
        if (lo <= bounds[i] && hi > bounds[i]) {
            gb_cp_range(b, from, lo, bounds[i], to);
            gb_cp_range(b, from, bounds[i] + 1, hi, to);
            return;
        }
    if (hi < 0x80) {
        gb_range(b, from, lo, hi, to);
        return;
    }
    uint8_t x[4], y[4];
    int n = utf8_enc(lo, x);
    for (int i = 1; i < n; i++) {
        uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if ((lo & m) != 0) {
                gb_cp_range(b, from, lo, lo | m, to);
                gb_cp_range(b, from, (lo | m) + 1, hi, to);
                return;
            }
            if ((hi & m) != m) {
                gb_cp_range(b, from, lo, (hi & ~m) - 1, to);
                gb_cp_range(b, from, hi & ~m, hi, to);
                return;
            }
        }
    }
    utf8_enc(hi, y);
    int32_t cur = from;
    for (int i = 0; i < n; i++) {
        int32_t nx = i + 1 == n ? to : gb_state(b);
        gb_range(b, cur, x[i], y[i], nx);
        cur = nx;
    }
}

int gkey_eq(gkey x, gkey y) { return x.kind == y.kind && x.node == y.node && x.doc == y.doc && x.depth == y.depth; }

static int is_inline(const gb *b, gkey k) {
    for (size_t i = 0; i < b->ninl; i++)
        if (gkey_eq(b->inl[i], k)) return 1;
    return 0;
}

void gb_ref(gb *b, gkey key, int32_t from, int32_t to) {
    if (b->failed) return;
    if (is_inline(b, key)) {
        if (++b->nest > G_MAX_NEST) {
            gb_fail(b, "the grammar nests more than %d levels", G_MAX_NEST);
            return;
        }
        g_emit_body(b, key, from, to);
        b->nest--;
        return;
    }
    size_t r;
    for (r = 0; r < b->nr; r++)
        if (gkey_eq(b->rules[r].key, key)) break;
    if (r == b->nr) {
        if (grow((void **)&b->rules, &b->cap_r, b->nr + 1, sizeof(gb_rule), G_MAX_RULES) != 0) {
            gb_fail(b, "the grammar needs more than %d rules", G_MAX_RULES);
            return;
        }
        int32_t id = (int32_t)b->nr;
        b->rules[b->nr++] = (gb_rule){key, 0, 0};
        b->rules[id].start = state_in(b, id);
        b->rules[id].end = state_in(b, id);
    }
    edge(b, from, to, (int32_t)r, 0, 0);
}
