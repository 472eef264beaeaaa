/* Numbers as automata: integer ranges (exact, digit by digit) and decimal ranges for
 * JSON Schema `minimum`/`maximum`/`exclusive*`. Integers are at most 18 digits (they
 * must fit the parsers' int64 exactly); a bounded number is written without exponent,
 * with at most 18 integer and 15 fraction digits (more when a bound needs them); an
 * unbounded one may carry a two-digit exponent (no inf: the parsers reject it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar_int.h"

#define INT_CAP 999999999999999999ull /* 10^18 - 1 */

/* ---------------------------------------------------------------- parsing bounds */
int gn_parse(const char *s, size_t n, gdec *out) {
    memset(out, 0, sizeof *out);
    size_t i = 0;
    if (i < n && s[i] == '-') {
        out->neg = 1;
        i++;
    }
    char digits[96];
    size_t nd = 0, nint = 0;
    int any = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        if (nd < sizeof digits - 1) digits[nd++] = s[i];
        else return -1;
        nint++;
        i++;
        any = 1;
    }
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (nd < sizeof digits - 1) digits[nd++] = s[i];
            else return -1;
            i++;
            any = 1;
        }
    }
    if (!any) return -1;
    long e = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int es = 1;
        if (i < n && (s[i] == '+' || s[i] == '-')) es = s[i++] == '-' ? -1 : 1;
        if (i >= n) return -1;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (e < 100000) e = e * 10 + (s[i] - '0');
            i++;
        }
        e *= es;
    }
    if (i != n) return -1;
    /* value = 0.digits * 10^(nint + e): the integer part is digits[0 .. nint + e) */
    long point = (long)nint + e;
    if (point > 19) return -1; /* beyond 1e18: the caller drops the bound */
    size_t ip = 0, fp = 0;
    for (long k = 0; k < point; k++) {
        char c = k < (long)nd ? digits[k] : '0';
        if (ip == 0 && c == '0') continue;
        out->ip[ip++] = c;
    }
    if (ip == 0) out->ip[ip++] = '0';
    out->ip[ip] = 0;
    if (ip > 19 || (ip == 19 && strcmp(out->ip, "1000000000000000000") > 0)) return -1;
    for (long k = point < 0 ? point : 0; k < (long)nd; k++) {
        if (k < point) continue;
        char c = k < 0 ? '0' : digits[k];
        if (fp < sizeof out->fp - 1) out->fp[fp++] = c;
    }
    while (fp > 0 && out->fp[fp - 1] == '0') fp--;
    out->fp[fp] = 0;
    if (strcmp(out->ip, "0") == 0 && fp == 0) out->neg = 0;
    out->set = 1;
    return 0;
}

static uint64_t ipval(const gdec *d) { return strtoull(d->ip, NULL, 10); }
static int is_zero(const gdec *d) { return strcmp(d->ip, "0") == 0 && d->fp[0] == 0; }

/* Magnitude comparison. */
static int mag_cmp(const gdec *a, const gdec *b) {
    uint64_t x = ipval(a), y = ipval(b);
    if (x != y) return x < y ? -1 : 1;
    size_t la = strlen(a->fp), lb = strlen(b->fp), l = la > lb ? la : lb;
    for (size_t i = 0; i < l; i++) {
        char p = i < la ? a->fp[i] : '0', q = i < lb ? b->fp[i] : '0';
        if (p != q) return p < q ? -1 : 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- integers */
static void any_digits(gb *b, int32_t from, int n, int32_t to) {
    int32_t cur = from;
    for (int i = 0; i < n; i++) {
        int32_t nx = i + 1 == n ? to : gb_state(b);
        gb_range(b, cur, '0', '9', nx);
        cur = nx;
    }
    if (n == 0) gb_eps(b, from, to);
}

static int all_of(const char *s, size_t n, char c) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != c) return 0;
    return 1;
}

/* Digit strings x..y of the same length n (x <= y). */
static void fixed(gb *b, const char *x, const char *y, size_t n, int32_t from, int32_t to) {
    if (b->failed) return;
    if (n == 1) {
        gb_range(b, from, (unsigned char)x[0], (unsigned char)y[0], to);
        return;
    }
    if (x[0] == y[0]) {
        int32_t m = gb_state(b);
        gb_byte(b, from, (unsigned char)x[0], m);
        fixed(b, x + 1, y + 1, n - 1, m, to);
        return;
    }
    char lo = x[0], hi = y[0];
    int xz = all_of(x + 1, n - 1, '0'), y9 = all_of(y + 1, n - 1, '9');
    char mlo = xz ? lo : (char)(lo + 1), mhi = y9 ? hi : (char)(hi - 1);
    if (!xz) {
        char nines[24];
        memset(nines, '9', n - 1);
        int32_t m = gb_state(b);
        gb_byte(b, from, (unsigned char)lo, m);
        fixed(b, x + 1, nines, n - 1, m, to);
    }
    if (mlo <= mhi) {
        int32_t m = gb_state(b);
        gb_range(b, from, (unsigned char)mlo, (unsigned char)mhi, m);
        any_digits(b, m, (int)n - 1, to);
    }
    if (!y9) {
        char zeros[24];
        memset(zeros, '0', n - 1);
        int32_t m = gb_state(b);
        gb_byte(b, from, (unsigned char)hi, m);
        fixed(b, zeros, y + 1, n - 1, m, to);
    }
}

/* Decimal integers a..b without leading zeros, 0 <= a <= b <= 10^18 - 1. */
static void uint_range(gb *b, uint64_t a, uint64_t bb, int32_t from, int32_t to) {
    if (a > bb) return;
    uint64_t p = 1;
    for (int len = 1; len <= 18 && !b->failed; len++, p *= 10) {
        uint64_t lo = len == 1 ? 0 : p, hi = p * 10 - 1;
        if (lo < a) lo = a;
        if (hi > bb) hi = bb;
        if (lo > hi) continue;
        char x[24], y[24];
        snprintf(x, sizeof x, "%llu", (unsigned long long)lo);
        snprintf(y, sizeof y, "%llu", (unsigned long long)hi);
        fixed(b, x, y, (size_t)len, from, to);
    }
}

static void int_range(gb *b, long long lo, long long hi, int32_t from, int32_t to) {
    if (lo > hi) return;
    if (hi < 0) {
        int32_t m = gb_state(b);
        gb_byte(b, from, '-', m);
        uint_range(b, (uint64_t)-hi, (uint64_t)-lo, m, to);
    } else if (lo >= 0) {
        uint_range(b, (uint64_t)lo, (uint64_t)hi, from, to);
    } else {
        int32_t m = gb_state(b);
        gb_byte(b, from, '-', m);
        uint_range(b, 1, (uint64_t)-lo, m, to);
        uint_range(b, 0, (uint64_t)hi, from, to);
    }
}

/* floor / ceil of a bound, clamped to +-(10^18 - 1) */
static long long bound_floor(const gdec *d) {
    uint64_t v = ipval(d);
    int frac = d->fp[0] != 0;
    long long r = d->neg ? -(long long)v - frac : (long long)v;
    return r;
}
static long long bound_ceil(const gdec *d) {
    uint64_t v = ipval(d);
    int frac = d->fp[0] != 0;
    return d->neg ? -(long long)v : (long long)v + frac;
}

void gn_integer(gb *b, const gdec *lo, const gdec *hi, int32_t from, int32_t to) {
    long long l = -(long long)INT_CAP, h = (long long)INT_CAP;
    if (lo && lo->set) {
        long long v = lo->excl ? bound_floor(lo) + 1 : bound_ceil(lo);
        if (v > l) l = v;
    }
    if (hi && hi->set) {
        long long v = hi->excl ? bound_ceil(hi) - 1 : bound_floor(hi);
        if (v < h) h = v;
    }
    int_range(b, l, h, from, to);
}

/* ---------------------------------------------------------------- decimals */
typedef struct {
    const char *L, *U; /* fraction digit bounds (NULL = none) */
    int lx, ux;        /* exclusive */
    size_t ll, ul;
    int maxd;          /* most fraction digits */
    int32_t to;
    int32_t free_st[48]; /* free_st[r]: up to r more digits, may end (0 = not built) */
} fracctx;

static int32_t free_state(gb *b, fracctx *f, int r) {
    if (f->free_st[r]) return f->free_st[r];
    int32_t s = gb_state(b);
    gb_eps(b, s, f->to);
    if (r > 0) gb_range(b, s, '0', '9', free_state(b, f, r - 1));
    f->free_st[r] = s;
    return s;
}

/* Whether the fraction may end after k digits given the equality flags. */
static int may_end(const fracctx *f, size_t k, int leq, int heq) {
    if (leq) {
        if (!(k >= f->ll || all_of(f->L + k, f->ll - k, '0'))) return 0; /* d < L */
        if (f->lx) return 0;                                             /* d == L */
    }
    if (heq) {
        if (k >= f->ul || all_of(f->U + k, f->ul - k, '0'))
            if (f->ux) return 0; /* d == U */
    }
    return 1;
}

/* State s: k fraction digits written (k >= 1 when end_ok), equality with L / U so far. */
static void frac_gen(gb *b, fracctx *f, int32_t s, int k, int leq, int heq, int end_ok) {
    if (b->failed) return;
    if (end_ok && may_end(f, (size_t)k, leq, heq)) gb_eps(b, s, f->to);
    if (k >= f->maxd) return;
    if (!leq && !heq) {
        gb_range(b, s, '0', '9', free_state(b, f, f->maxd - k - 1));
        return;
    }
    char lo = leq ? ((size_t)k < f->ll ? f->L[k] : '0') : '0';
    char hi = heq ? ((size_t)k < f->ul ? f->U[k] : '0') : '9';
    if (lo > hi) return;
    if (lo == hi) {
        int32_t t = gb_state(b);
        gb_byte(b, s, (unsigned char)lo, t);
        frac_gen(b, f, t, k + 1, leq, heq, 1);
        return;
    }
    int32_t t = gb_state(b);
    gb_byte(b, s, (unsigned char)lo, t);
    frac_gen(b, f, t, k + 1, leq, 0, 1);
    if (lo + 1 <= hi - 1) gb_range(b, s, (unsigned char)(lo + 1), (unsigned char)(hi - 1), free_state(b, f, f->maxd - k - 1));
    t = gb_state(b);
    gb_byte(b, s, (unsigned char)hi, t);
    frac_gen(b, f, t, k + 1, 0, heq, 1);
}

/* Optional ".digits" after an integer part, constrained by L/U (see frac_gen). */
static void frac_emit(gb *b, const char *L, int lx, const char *U, int ux, int32_t from, int32_t to) {
    fracctx f;
    memset(&f, 0, sizeof f);
    f.L = L;
    f.U = U;
    f.lx = lx;
    f.ux = ux;
    f.ll = L ? strlen(L) : 0;
    f.ul = U ? strlen(U) : 0;
    f.maxd = G_MAX_FRAC_DIGITS;
    if ((int)f.ll > f.maxd) f.maxd = (int)f.ll;
    if ((int)f.ul > f.maxd) f.maxd = (int)f.ul;
    if (f.maxd > 46) f.maxd = 46;
    f.to = to;
    int leq = L != NULL, heq = U != NULL;
    if (may_end(&f, 0, leq, heq)) gb_eps(b, from, to);
    int32_t dot = gb_state(b);
    gb_byte(b, from, '.', dot);
    frac_gen(b, &f, dot, 0, leq, heq, 0);
}

/* Unsigned decimals in [a, b] (magnitudes; a <= b checked by the caller). */
static void mag_range(gb *b, const gdec *a, const gdec *bb, int32_t from, int32_t to) {
    uint64_t ai = ipval(a), bi = ipval(bb);
    if (ai == bi) {
        int32_t m = gb_state(b);
        gb_lits(b, from, a->ip, m);
        frac_emit(b, a->fp, a->excl, bb->fp, bb->excl, m, to);
        return;
    }
    int32_t m = gb_state(b);
    gb_lits(b, from, a->ip, m);
    frac_emit(b, a->fp, a->excl, NULL, 0, m, to);
    if (ai + 1 <= bi - 1) {
        int32_t m2 = gb_state(b);
        uint_range(b, ai + 1, bi - 1 > INT_CAP ? INT_CAP : bi - 1, from, m2);
        frac_emit(b, NULL, 0, NULL, 0, m2, to);
    }
    if (bi <= INT_CAP && !(bb->excl && bb->fp[0] == 0)) {
        int32_t m3 = gb_state(b);
        gb_lits(b, from, bb->ip, m3);
        frac_emit(b, NULL, 0, bb->fp, bb->excl, m3, to);
    }
}

static void generic_number(gb *b, int32_t from, int32_t to) {
    int32_t s1 = gb_state(b), s2 = gb_state(b), s3 = gb_state(b);
    gb_eps(b, from, s1);
    gb_byte(b, from, '-', s1);
    gb_byte(b, s1, '0', s2);
    int32_t d1 = gb_state(b);
    gb_range(b, s1, '1', '9', d1);
    any_digits(b, d1, 0, s2);
    /* up to 17 more integer digits */
    int32_t cur = d1;
    for (int i = 0; i < G_MAX_INT_DIGITS - 1; i++) {
        int32_t nx = gb_state(b);
        gb_range(b, cur, '0', '9', nx);
        gb_eps(b, nx, s2);
        cur = nx;
    }
    /* fraction */
    gb_eps(b, s2, s3);
    int32_t dot = gb_state(b);
    gb_byte(b, s2, '.', dot);
    cur = dot;
    for (int i = 0; i < G_MAX_FRAC_DIGITS; i++) {
        int32_t nx = gb_state(b);
        gb_range(b, cur, '0', '9', nx);
        gb_eps(b, nx, s3);
        cur = nx;
    }
    /* exponent */
    gb_eps(b, s3, to);
    int32_t e = gb_state(b), es = gb_state(b), e1 = gb_state(b), e2 = gb_state(b);
    gb_range(b, s3, 'E', 'E', e);
    gb_range(b, s3, 'e', 'e', e);
    gb_eps(b, e, es);
    gb_byte(b, e, '+', es);
    gb_byte(b, e, '-', es);
    gb_range(b, es, '0', '9', e1);
    gb_eps(b, e1, to);
    gb_range(b, e1, '0', '9', e2);
    gb_eps(b, e2, to);
}

void gn_number(gb *b, const gdec *lo, const gdec *hi, int32_t from, int32_t to) {
    if ((!lo || !lo->set) && (!hi || !hi->set)) {
        generic_number(b, from, to);
        return;
    }
    /* unbounded sides: +-10^18 exclusive */
    gdec L, H;
    if (lo && lo->set) L = *lo;
    else {
        memset(&L, 0, sizeof L);
        strcpy(L.ip, "1000000000000000000");
        L.neg = 1;
        L.excl = 1;
        L.set = 1;
    }
    if (hi && hi->set) H = *hi;
    else {
        memset(&H, 0, sizeof H);
        strcpy(H.ip, "1000000000000000000");
        H.excl = 1;
        H.set = 1;
    }
    /* negative part: magnitudes in (max(0, -H), -L] */
    int lo_neg = L.neg && !is_zero(&L);
    int hi_neg = H.neg && !is_zero(&H);
    if (lo_neg) {
        gdec a, bb = L;
        bb.neg = 0;
        if (hi_neg) {
            a = H;
            a.neg = 0;
        } else {
            memset(&a, 0, sizeof a);
            strcpy(a.ip, "0");
            a.excl = 1;
            a.set = 1;
        }
        int c = mag_cmp(&a, &bb);
        if (c < 0 || (c == 0 && !a.excl && !bb.excl)) {
            int32_t m = gb_state(b);
            gb_byte(b, from, '-', m);
            mag_range(b, &a, &bb, m, to);
        }
    }
    /* non-negative part: [max(0, L), H] */
    if (!hi_neg) {
        gdec a, bb = H;
        if (!lo_neg) a = L;
        else {
            memset(&a, 0, sizeof a);
            strcpy(a.ip, "0");
            a.set = 1;
        }
        int c = mag_cmp(&a, &bb);
        if (c < 0 || (c == 0 && !a.excl && !bb.excl)) mag_range(b, &a, &bb, from, to);
    }
}
