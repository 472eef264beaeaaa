/* Integer and shortest round-trip float text. See include/dspex/numfmt.h. */
#include "dspex/numfmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned __int128 u128;

/* 10^0 .. 10^19: every power of ten a uint64_t holds. */
const uint64_t dspex_pow10_u64[20] = {1ULL,
                                 10ULL,
                                 100ULL,
                                 1000ULL,
                                 10000ULL,
                                 100000ULL,
                                 1000000ULL,
                                 10000000ULL,
                                 100000000ULL,
                                 1000000000ULL,
                                 10000000000ULL,
                                 100000000000ULL,
                                 1000000000000ULL,
                                 10000000000000ULL,
                                 100000000000000ULL,
                                 1000000000000000ULL,
                                 10000000000000000ULL,
                                 100000000000000000ULL,
                                 1000000000000000000ULL,
                                 10000000000000000000ULL};

int dspex_fmt_int64(char *out, int64_t v) {
    char tmp[24];
    int n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    int len = 0;
    if (v < 0) out[len++] = '-';
    while (n) out[len++] = tmp[--n];
    out[len] = 0;
    return len;
}

/* Bits needed to hold x (0 for 0). */
static int bitlen128(u128 x) {
    uint64_t hi = (uint64_t)(x >> 64), lo = (uint64_t)x;
    if (hi) return 128 - __builtin_clzll(hi);
    return lo ? 64 - __builtin_clzll(lo) : 0;
}

/* Exact shortest digits for a positive normal double in roughly [1e-4, 1e37), using
 * 128-bit integer arithmetic. The rounding interval of a is scaled by 10^k so that it
 * spans integers around 10^17; the shortest output is the multiple of the largest power
 * of ten inside the interval, and among those the one nearest the exact value. Returns
 * the digit count (digits in D, decimal exponent in *x), or 0 when a is out of range. */
static int shortest_exact(double a, char *D, int *x) {
    uint64_t bits;
    memcpy(&bits, &a, 8);
    int be = (int)((bits >> 52) & 0x7FF);
    uint64_t frac = bits & ((1ULL << 52) - 1);
    if (be == 0 || be == 0x7FF) return 0;
    uint64_t m = frac | (1ULL << 52);
    int q = be - 1075 - 2; /* units of 2^q: value = 4m */
    u128 v4 = (u128)m << 2;
    u128 hi = v4 + 2;
    u128 lo = (frac == 0 && be > 1) ? v4 - 1 : v4 - 2;
    int incl = (m & 1) == 0; /* round-half-even: the interval ends belong to an even m */
    /* E is floor(log10(a)) or one less, so a * 10^k lies in [1e16, 1e18). */
    int E = (int)floor((be - 1023) * 0.30102999566398120);
    int k = 16 - E;
    if (k > 21 || k < -38) return 0;
    u128 N = 1, Dv = 1;
    int shift = -1; /* Dv == 2^shift when >= 0 */
    if (k >= 0)
        N = (u128)dspex_pow10_u64[k > 19 ? 19 : k] * (k > 19 ? dspex_pow10_u64[k - 19] : 1);
    else
        Dv = (u128)dspex_pow10_u64[-k > 19 ? 19 : -k] * (-k > 19 ? dspex_pow10_u64[-k - 19] : 1);
    if (q >= 0) {
        if (q > 120) return 0;
        if (bitlen128(N) + q > 127) return 0;
        N <<= q;
    } else {
        if (k < 0 || -q > 120) return 0;
        Dv = (u128)1 << -q;
        shift = -q;
    }
    /* no 128-bit division here: it would cost more than the rest (products < 2^128) */
    if (bitlen128(N) + bitlen128(hi) > 128) return 0;
    u128 nlo = lo * N, nhi = hi * N, nv = v4 * N;
    u128 L, H, vq, vr;
    if (shift >= 0) {
        u128 mask = Dv - 1;
        L = incl ? (nlo + mask) >> shift : (nlo >> shift) + 1;
        H = incl ? nhi >> shift : (nhi - 1) >> shift;
        vq = nv >> shift;
        vr = nv & mask;
    } else {
        L = incl ? (nlo + Dv - 1) / Dv : nlo / Dv + 1;
        H = incl ? nhi / Dv : (nhi - 1) / Dv;
        vq = nv / Dv;
        vr = nv % Dv;
    }
    if (L > H || H >= (u128)dspex_pow10_u64[19]) return 0;
    uint64_t l = (uint64_t)L, h = (uint64_t)H, v = (uint64_t)vq;
    /* v + vr/Dv is the exact value; nearest integer, ties to even */
    int v_up = (vr > Dv - vr) || (vr == Dv - vr && (v & 1));
    int v_exact = vr == 0;
    /* Largest j such that a multiple of 10^j lies in [l, h]: first/last are the indexes
     * ceil(l / 10^j) and floor(h / 10^j), updated by constant divisions by 10. */
    int j = 0;
    uint64_t first = l, last = h;
    while (j < 19) {
        uint64_t nf = first / 10 + (first % 10 != 0), nl = last / 10;
        if (nf > nl) break;
        first = nf;
        last = nl;
        j++;
    }
    uint64_t P = dspex_pow10_u64[j];
    /* nearest multiple index to (v + vr/Dv) / 10^j */
    uint64_t idx = v, rem = 0;
    for (int t = 0; t < j; t++) idx /= 10;
    rem = v - idx * P;
    if (P == 1) {
        if (v_up) idx++;
    } else if (rem > P - rem || (rem == P - rem && (!v_exact || (idx & 1)))) {
        idx++;
    }
    if (idx < first) idx = first;
    if (idx > last) idx = last;
    int nd = dspex_fmt_int64(D, (int64_t)idx);
    int tz = 0;
    while (nd > 1 && D[nd - 1] == '0') {
        nd--;
        tz++;
    }
    *x = nd + tz - 1 + j - k;
    return nd;
}

/* Values with at most 15 significant digits and at most 15 decimals (0.5, 3.25, 1e-7,
 * most numbers people and models write): the decimal m / 10^k, m < 10^15, reads back
 * as a exactly when the IEEE division m / 10^k (both operands exact, the quotient
 * correctly rounded, as strtod rounds) gives a; and two different decimals of at most 15
 * significant digits are further apart than a's rounding interval (2^-52 a), so m, with
 * the smallest such k, is the shortest round-trip text. 0 when there is none. */
static int short_decimal(double a, char *D, int *x) {
    if (a < 1e-15 || a >= 1e15) return 0;
    /* If a is m / 10^k, a * 10^K is an integer for the largest K with a * 10^K < 1e15 as
     * well: one multiplication rules out the usual 17-digit values (a false "no" only
     * sends a to the exact path). */
    uint64_t bits;
    memcpy(&bits, &a, 8);
    int E = (int)floor((double)((int)((bits >> 52) & 0x7FF) - 1023) * 0.30102999566398120), K = 14 - E;
    if (K > 15) K = 15;
    if (K >= 0) {
        double m = a * (double)dspex_pow10_u64[K];
        if (m >= 1e15 && K > 0) m = a * (double)dspex_pow10_u64[--K];
        if (m != floor(m)) return 0;
    }
    for (int k = 0; k <= 15; k++) {
        double m = a * (double)dspex_pow10_u64[k];
        if (m >= 1e15) return 0;
        if (m != floor(m) || m / (double)dspex_pow10_u64[k] != a) continue;
        int nd = dspex_fmt_int64(D, (int64_t)m);
        *x = nd - 1 - k;
        while (nd > 1 && D[nd - 1] == '0') nd--;
        return nd;
    }
    return 0;
}

/* Significant digits of a > 0 (no trailing zeros) and the decimal exponent of the first.
 * min_prec: the fewest digits the slow path tries (see dspex_fmt_double). */
static int digits_of(double a, char *D, int *x, int min_prec) {
    int nd;
    /* Integral values below 2^53: exact digits (unique in their rounding interval). */
    if (a < 9007199254740992.0 && a == floor(a)) {
        nd = dspex_fmt_int64(D, (int64_t)a);
        *x = nd - 1;
        while (nd > 1 && D[nd - 1] == '0') nd--;
        return nd;
    }
    nd = short_decimal(a, D, x);
    if (nd > 0) return nd;
    nd = shortest_exact(a, D, x);
    if (nd > 0) return nd;
    /* Elsewhere (tiny, subnormal, huge; rare): the fewest significant digits that read
     * back exactly, correctly rounded by the C library (up to 17 snprintf calls). */
    char buf[40];
    for (int prec = min_prec; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, a);
        if (prec == 17 || strtod(buf, NULL) == a) break;
    }
    /* buf: "d.dddde[+-]XX" */
    nd = 0;
    const char *s = buf;
    while (*s && *s != 'e') {
        if (*s >= '0' && *s <= '9') D[nd++] = *s;
        s++;
    }
    *x = atoi(s + 1);
    while (nd > 1 && D[nd - 1] == '0') nd--;
    return nd;
}

/* Lays out significant digits D (nd of them, no trailing zeros) with decimal exponent x
 * (value = D[0].D[1..] * 10^x). Both styles write plain decimals for -4 <= x < 16. */
static int layout(char *out, int neg, const char *D, int nd, int x, dspex_float_style style) {
    int len = 0;
    if (neg) out[len++] = '-';
    if (x >= -4 && x < 16) {
        if (x >= 0) {
            for (int k = 0; k <= x; k++) out[len++] = k < nd ? D[k] : '0';
            out[len++] = '.';
            if (nd > x + 1)
                for (int k = x + 1; k < nd; k++) out[len++] = D[k];
            else
                out[len++] = '0';
        } else {
            out[len++] = '0';
            out[len++] = '.';
            for (int k = 0; k < -x - 1; k++) out[len++] = '0';
            for (int k = 0; k < nd; k++) out[len++] = D[k];
        }
        out[len] = 0;
        return len;
    }
    out[len++] = D[0];
    if (nd > 1) {
        out[len++] = '.';
        for (int k = 1; k < nd; k++) out[len++] = D[k];
    } else if (style == DSPEX_FLOAT_JSON) {
        out[len++] = '.';
        out[len++] = '0';
    }
    out[len++] = 'e';
    int ax = x < 0 ? -x : x;
    if (x < 0)
        out[len++] = '-';
    else if (style == DSPEX_FLOAT_PY)
        out[len++] = '+';
    if (style == DSPEX_FLOAT_PY && ax < 10) out[len++] = '0'; /* Python: at least two digits */
    len += dspex_fmt_int64(out + len, ax);
    return len;
}

int dspex_fmt_double(char *out, double d, dspex_float_style style) {
    if (!isfinite(d)) {
        if (style == DSPEX_FLOAT_JSON) return -1;
        const char *t = isnan(d) ? "nan" : d < 0 ? "-inf" : "inf";
        size_t n = strlen(t);
        memcpy(out, t, n + 1);
        return (int)n;
    }
    int neg = signbit(d) ? 1 : 0;
    double a = fabs(d);
    if (a == 0.0) return layout(out, neg, "0", 1, 0, style);
    char D[24];
    int x = 0;
    /* JSON keeps the 15..17-digit slow path it has always written (DSPex.JSON output is
     * stable); Python's repr is the true shortest there too. */
    int nd = digits_of(a, D, &x, style == DSPEX_FLOAT_JSON ? 15 : 1);
    return layout(out, neg, D, nd, x, style);
}
