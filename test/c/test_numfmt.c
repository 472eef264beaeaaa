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

int main(void) { return ctest_run(); }
