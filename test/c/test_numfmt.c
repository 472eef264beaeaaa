/* Shortest round-trip number text (c_src/core/base/numfmt.c): Python repr() layout,
 * JSON layout, and round-tripping of random doubles. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "dspex/numfmt.h"

static const struct {
    double d;
    const char *py;
} PY[] = {
    {0.1, "0.1"},
    {1e-05, "1e-05"},
    {1e+16, "1e+16"},
    {1.0, "1.0"},
    {-2.5, "-2.5"},
    {123.456, "123.456"},
    {1e+22, "1e+22"},
    {3.0, "3.0"},
    {0.0, "0.0"},
    {-0.0, "-0.0"},
    {2.5e-07, "2.5e-07"},
    {5e-324, "5e-324"},
    {1.7976931348623157e+308, "1.7976931348623157e+308"},
    {0.0001, "0.0001"},
    {9007199254740992.0, "9007199254740992.0"},
    {0.0001, "0.0001"},
    {1.2345678901234568e+17, "1.2345678901234568e+17"},
    {0.30000000000000004, "0.30000000000000004"},
    {2.2250738585072014e-308, "2.2250738585072014e-308"},
    {1000000000000000.0, "1000000000000000.0"},
    {1e+16, "1e+16"},
};

CTEST(python_repr_layout) {
    char out[DSPEX_NUMFMT_MAX];
    for (size_t i = 0; i < sizeof PY / sizeof PY[0]; i++) {
        dspex_fmt_double(out, PY[i].d, DSPEX_FLOAT_PY);
        CHECK_STREQ(out, PY[i].py);
    }
    dspex_fmt_double(out, INFINITY, DSPEX_FLOAT_PY);
    CHECK_STREQ(out, "inf");
    dspex_fmt_double(out, -INFINITY, DSPEX_FLOAT_PY);
    CHECK_STREQ(out, "-inf");
    dspex_fmt_double(out, NAN, DSPEX_FLOAT_PY);
    CHECK_STREQ(out, "nan");
}

CTEST(json_layout) {
    char out[DSPEX_NUMFMT_MAX];
    dspex_fmt_double(out, 1e20, DSPEX_FLOAT_JSON);
    CHECK_STREQ(out, "1.0e20");
    dspex_fmt_double(out, 1.5e-7, DSPEX_FLOAT_JSON);
    CHECK_STREQ(out, "1.5e-7");
    dspex_fmt_double(out, 100.0, DSPEX_FLOAT_JSON);
    CHECK_STREQ(out, "100.0");
    dspex_fmt_double(out, -0.0, DSPEX_FLOAT_JSON);
    CHECK_STREQ(out, "-0.0");
    CHECK(dspex_fmt_double(out, NAN, DSPEX_FLOAT_JSON) == -1);
}

CTEST(int64) {
    char out[DSPEX_NUMFMT_MAX];
    dspex_fmt_int64(out, INT64_MIN);
    CHECK_STREQ(out, "-9223372036854775808");
    dspex_fmt_int64(out, 0);
    CHECK_STREQ(out, "0");
}

/* xorshift64*: deterministic random bit patterns */
static uint64_t next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

CTEST(random_doubles_round_trip_in_at_most_17_digits) {
    uint64_t s = 88172645463325252ULL;
    char out[DSPEX_NUMFMT_MAX];
    for (int i = 0; i < 200000; i++) {
        uint64_t bits = next(&s);
        double d;
        memcpy(&d, &bits, 8);
        if (!isfinite(d)) continue;
        int n = dspex_fmt_double(out, d, i & 1 ? DSPEX_FLOAT_PY : DSPEX_FLOAT_JSON);
        CHECK(n > 0 && n < DSPEX_NUMFMT_MAX);
        CHECK(strtod(out, NULL) == d);
        int digits = 0;
        for (const char *p = out; *p && *p != 'e'; p++) digits += *p >= '0' && *p <= '9';
        CHECK(digits <= 17 + 16); /* plain layout pads zeros below 1e16 */
    }
}

/* Significant digits of a decimal text (no leading/trailing zeros) and the decimal
 * exponent of the first, e.g. "0.0125" -> "125", -2; "3.5e+20" -> "35", 20. */
static void significant(const char *t, char *dig, int *exp10) {
    int n = 0, point = -1, first = -1, pos = 0;
    const char *p = t;
    if (*p == '-') p++;
    for (; *p && *p != 'e'; p++) {
        if (*p == '.') {
            point = pos;
            continue;
        }
        if (first < 0 && *p == '0') {
            pos++;
            continue;
        }
        if (first < 0) first = pos;
        dig[n++] = *p;
        pos++;
    }
    if (point < 0) point = pos;
    while (n > 1 && dig[n - 1] == '0') n--;
    dig[n] = 0;
    *exp10 = (first < 0 ? 0 : point - first - 1) + (*p == 'e' ? atoi(p + 1) : 0);
}

/* The fast exact path (doubles in about [1e-4, 1e37)) gives the same digits as the C
 * library's correctly rounded output at the fewest digits that read back. */
CTEST(fast_path_matches_the_shortest_correctly_rounded_digits) {
    uint64_t s = 1234567ULL;
    char out[DSPEX_NUMFMT_MAX], ref[40], d1[40], d2[40];
    for (int i = 0; i < 150000; i++) {
        uint64_t r = next(&s);
        double d;
        switch (i % 5) {
        case 0: d = (double)(r >> 11) / 9007199254740992.0; break;                   /* [0, 1) */
        case 1: d = (double)(r >> 11) / 9007199254740992.0 * 1e6; break;            /* [0, 1e6) */
        case 2: d = (double)(r % 2000001) * 0.5; break;                             /* halves */
        case 3: d = ldexp((double)(r >> 11), (int)(r % 140) - 60 - 53); break; /* 2^-113..2^80 */
        default: d = (double)(r % 100000000) / pow(10.0, (double)(r % 23)); break; /* short decimals */
        }
        if (d == 0.0) continue;
        dspex_fmt_double(out, d, DSPEX_FLOAT_PY);
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(ref, sizeof ref, "%.*e", prec - 1, d);
            if (strtod(ref, NULL) == d) break;
        }
        int e1, e2;
        significant(out, d1, &e1);
        significant(ref, d2, &e2);
        CHECK_STREQ(d1, d2);
        CHECK(e1 == e2);
    }
}

int main(void) { return ctest_run(); }
