/* Unit tests for the JSON core (c_src/core/json/json.c). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cjson_bridge.h"
#include "ctest.h"
#include "dspex/json.h"

/* Renders the event stream of s as a compact string, e.g. "{k:a i:1 }" , or "ERR@off". */
static char *events(const char *s, size_t len, unsigned depth, char *out, size_t cap) {
    dspex_json_parser p;
    dspex_json_event ev;
    dspex_json_parser_init(&p, s, len, depth);
    size_t o = 0;
    out[0] = 0;
    for (;;) {
        int t = dspex_json_next(&p, &ev);
        char tmp[512];
        tmp[0] = 0;
        switch (t) {
        case DSPEX_JSON_EV_ERROR: snprintf(tmp, sizeof(tmp), "ERR@%zu", p.err_offset); break;
        case DSPEX_JSON_EV_END: break;
        case DSPEX_JSON_EV_NULL: snprintf(tmp, sizeof(tmp), "n "); break;
        case DSPEX_JSON_EV_TRUE: snprintf(tmp, sizeof(tmp), "t "); break;
        case DSPEX_JSON_EV_FALSE: snprintf(tmp, sizeof(tmp), "f "); break;
        case DSPEX_JSON_EV_INT: snprintf(tmp, sizeof(tmp), "i:%lld ", (long long)ev.i); break;
        case DSPEX_JSON_EV_BIGINT: snprintf(tmp, sizeof(tmp), "b:%.*s ", (int)ev.len, ev.str); break;
        case DSPEX_JSON_EV_FLOAT: snprintf(tmp, sizeof(tmp), "d:%.17g ", ev.d); break;
        case DSPEX_JSON_EV_STRING: snprintf(tmp, sizeof(tmp), "s:%.*s ", (int)ev.len, ev.str); break;
        case DSPEX_JSON_EV_KEY: snprintf(tmp, sizeof(tmp), "k:%.*s ", (int)ev.len, ev.str); break;
        case DSPEX_JSON_EV_OBJECT_START: snprintf(tmp, sizeof(tmp), "{ "); break;
        case DSPEX_JSON_EV_OBJECT_END: snprintf(tmp, sizeof(tmp), "} "); break;
        case DSPEX_JSON_EV_ARRAY_START: snprintf(tmp, sizeof(tmp), "[ "); break;
        case DSPEX_JSON_EV_ARRAY_END: snprintf(tmp, sizeof(tmp), "] "); break;
        }
        size_t l = strlen(tmp);
        if (o + l < cap) {
            memcpy(out + o, tmp, l + 1);
            o += l;
        }
        if (t == DSPEX_JSON_EV_ERROR || t == DSPEX_JSON_EV_END) break;
    }
    dspex_json_parser_free(&p);
    return out;
}

#define EV(s) events((s), strlen(s), 0, buf, sizeof(buf))

/* xorshift for deterministic random doubles */
static uint64_t rng(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}


static size_t err_offset(const char *s, char *msg, size_t cap) {
    size_t off = (size_t)-1;
    int rc = dspex_json_validate(s, strlen(s), 0, msg, cap, &off);
    return rc == 0 ? (size_t)-1 : off;
}

CTEST(scalars) {
    char buf[1024];
    CHECK_STREQ(EV("null"), "n ");
    CHECK_STREQ(EV(" true "), "t ");
    CHECK_STREQ(EV("false"), "f ");
    CHECK_STREQ(EV("0"), "i:0 ");
    CHECK_STREQ(EV("-0"), "i:0 ");
    CHECK_STREQ(EV("-12"), "i:-12 ");
    CHECK_STREQ(EV("\"hi\""), "s:hi ");
    CHECK_STREQ(EV("1.5"), "d:1.5 ");
    CHECK_STREQ(EV("-2.5e3"), "d:-2500 ");
    CHECK_STREQ(EV("1E2"), "d:100 ");
}

CTEST(containers) {
    char buf[1024];
    CHECK_STREQ(EV("[]"), "[ ] ");
    CHECK_STREQ(EV("{}"), "{ } ");
    CHECK_STREQ(EV(" { \"a\" : [1, {\"b\": null}] , \"c\":\"d\" } "), "{ k:a [ i:1 { k:b n } ] k:c s:d } ");
    CHECK_STREQ(EV("[[[]]]"), "[ [ [ ] ] ] ");
}

CTEST(integers_exact) {
    char buf[1024];
    CHECK_STREQ(EV("9223372036854775807"), "i:9223372036854775807 ");
    CHECK_STREQ(EV("-9223372036854775808"), "i:-9223372036854775808 ");
    CHECK_STREQ(EV("9223372036854775808"), "b:9223372036854775808 ");
    CHECK_STREQ(EV("-9223372036854775809"), "b:-9223372036854775809 ");
    CHECK_STREQ(EV("123456789012345678901234567890"), "b:123456789012345678901234567890 ");
    CHECK_STREQ(EV("999999999999999999"), "i:999999999999999999 ");
}

CTEST(floats_exact) {
    const char *cases[] = {"0.1", "3.141592653589793", "2.2250738585072014e-308", "1.7976931348623157e308",
                           "5e-324", "123456789012345678.9", "0.30000000000000004", "1e22", "1e23",
                           "9007199254740993.0", "4.9406564584124654e-324", "0.000000000000000000000000001"};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        dspex_json_parser p;
        dspex_json_event ev;
        dspex_json_parser_init(&p, cases[k], strlen(cases[k]), 0);
        int t = dspex_json_next(&p, &ev);
        CHECK(t == DSPEX_JSON_EV_FLOAT);
        CHECK(ev.d == strtod(cases[k], NULL));
        dspex_json_parser_free(&p);
    }
}

CTEST(floats_random_match_strtod) {
    uint64_t s = 0xDEADBEEFCAFEF00DULL;
    int bad = 0;
    for (int k = 0; k < 300000; k++) {
        char txt[64];
        uint64_t a = rng(&s), b = rng(&s);
        int digits = 1 + (int)(a % 19);
        uint64_t m = b % 10000000000000000000ULL;
        char md[24];
        int ml = snprintf(md, sizeof md, "%llu", (unsigned long long)m);
        if (ml > digits) ml = digits;
        md[ml] = 0;
        int e = (int)((a >> 8) % 60) - 30;
        int point = (int)((a >> 20) % (unsigned)(ml + 1));
        /* mantissa with a decimal point inside, then an exponent */
        snprintf(txt, sizeof txt, "%.*s.%s0e%d", point ? point : 1, point ? md : "0", md + point, e);
        double want = strtod(txt, NULL);
        dspex_json_parser p;
        dspex_json_event ev;
        dspex_json_parser_init(&p, txt, strlen(txt), 0);
        int t = dspex_json_next(&p, &ev);
        if (t != DSPEX_JSON_EV_FLOAT || memcmp(&ev.d, &want, 8) != 0) {
            if (bad < 5) fprintf(stderr, "  %s: got %.17g want %.17g (t=%d)\n", txt, ev.d, want, t);
            bad++;
        }
        dspex_json_parser_free(&p);
    }
    CHECK(bad == 0);
}

CTEST(float_negative_zero) {
    dspex_json_parser p;
    dspex_json_event ev;
    dspex_json_parser_init(&p, "-0.0", 4, 0);
    CHECK(dspex_json_next(&p, &ev) == DSPEX_JSON_EV_FLOAT);
    CHECK(ev.d == 0.0 && signbit(ev.d));
    dspex_json_parser_free(&p);
}

CTEST(strings_escapes) {
    char buf[1024];
    CHECK_STREQ(EV("\"a\\nb\""), "s:a\nb ");
    CHECK_STREQ(EV("\"\\\"\\\\\\/\\b\\f\\r\\t\""), "s:\"\\/\b\f\r\t ");
    CHECK_STREQ(EV("\"\\u00e9\""), "s:\xC3\xA9 ");
    CHECK_STREQ(EV("\"\\u20AC\""), "s:\xE2\x82\xAC ");
    CHECK_STREQ(EV("\"\\ud83d\\ude00\""), "s:\xF0\x9F\x98\x80 ");
    CHECK_STREQ(EV("\"x\xF0\x9F\x98\x80y\""), "s:x\xF0\x9F\x98\x80y ");
    /* a long plain string exercises the 8-byte scan */
    CHECK_STREQ(EV("\"abcdefghijklmnopqrstuvwxyz0123456789\""), "s:abcdefghijklmnopqrstuvwxyz0123456789 ");
}

CTEST(string_nul_escape) {
    dspex_json_parser p;
    dspex_json_event ev;
    const char *s = "\"a\\u0000b\"";
    dspex_json_parser_init(&p, s, strlen(s), 0);
    CHECK(dspex_json_next(&p, &ev) == DSPEX_JSON_EV_STRING);
    CHECK(ev.len == 3 && memcmp(ev.str, "a\0b", 3) == 0);
    CHECK(ev.in_input == 0);
    dspex_json_parser_free(&p);
}

CTEST(errors_with_offsets) {
    char msg[256];
    CHECK(err_offset("{\"a\": 1 x}", msg, sizeof msg) == 8);
    CHECK_STREQ(msg, "unexpected character 'x' at byte 8, expected ',' or '}'");
    CHECK(err_offset("[1,]", msg, sizeof msg) == 3);
    CHECK_STREQ(msg, "unexpected character ']' at byte 3, expected a value");
    CHECK(err_offset("{\"a\":1,}", msg, sizeof msg) == 7);
    CHECK(err_offset("01", msg, sizeof msg) == 0);
    CHECK(strstr(msg, "leading zeros") != NULL);
    CHECK(err_offset("[1] x", msg, sizeof msg) == 4);
    CHECK(err_offset("", msg, sizeof msg) == 0);
    CHECK_STREQ(msg, "unexpected end of input at byte 0, expected a value");
    CHECK(err_offset("[1", msg, sizeof msg) == 2);
    CHECK(err_offset("\"abc", msg, sizeof msg) == 0);
    CHECK(strstr(msg, "unterminated string") != NULL);
    CHECK(err_offset("\"a\nb\"", msg, sizeof msg) == 2);
    CHECK(strstr(msg, "control character") != NULL);
    CHECK(err_offset("\"\\x\"", msg, sizeof msg) == 1);
    CHECK(err_offset("\"\\ud800\"", msg, sizeof msg) == 1);
    CHECK(strstr(msg, "lone surrogate") != NULL);
    CHECK(err_offset("\"\\udc00\"", msg, sizeof msg) == 1);
    CHECK(err_offset("\"\\u12g4\"", msg, sizeof msg) == 1);
    CHECK(err_offset("// c\n1", msg, sizeof msg) == 0);
    CHECK(err_offset("1.", msg, sizeof msg) == 2);
    CHECK(err_offset("1e", msg, sizeof msg) == 2);
    CHECK(err_offset("-", msg, sizeof msg) == 1);
    CHECK(err_offset("tru", msg, sizeof msg) == 3);
    CHECK(err_offset("nul1", msg, sizeof msg) == 3);
    CHECK(err_offset("{1:2}", msg, sizeof msg) == 1);
    CHECK(err_offset("{\"a\" 1}", msg, sizeof msg) == 5);
    CHECK(err_offset("1e400", msg, sizeof msg) == 0);
    CHECK(strstr(msg, "out of range") != NULL);
    CHECK(err_offset("'a'", msg, sizeof msg) == 0);
    CHECK(err_offset("NaN", msg, sizeof msg) == 0);
    CHECK(err_offset("[1 2]", msg, sizeof msg) == 3);
    CHECK(err_offset("1e-400", msg, sizeof msg) == (size_t)-1);
}

CTEST(invalid_utf8) {
    char msg[256];
    const char *bad[] = {"\"\xC0\xAF\"", "\"\xED\xA0\x80\"", "\"\xF5\x80\x80\x80\"", "\"\xE2\x82\"",
                         "\"\x80\"",      "\"\xF0\x8F\xBF\xBF\"", "\"\xF4\x90\x80\x80\"", "\"\xC3\""};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        CHECK(err_offset(bad[k], msg, sizeof msg) == 1);
        CHECK(strstr(msg, "UTF-8") != NULL || strstr(msg, "unterminated") != NULL);
    }
    CHECK(err_offset("\"\xF4\x8F\xBF\xBF\"", msg, sizeof msg) == (size_t)-1);
    CHECK(err_offset("\"\xEF\xBF\xBF\"", msg, sizeof msg) == (size_t)-1);
}

/* The string (or key) of a one-string document in lenient mode, or "ERR". */
static const char *lenient(const char *s, size_t len, char *out, size_t cap) {
    dspex_json_parser p;
    dspex_json_event ev;
    dspex_json_parser_init(&p, s, len, 0);
    p.flags = DSPEX_JSON_PARSE_REPLACE_INVALID;
    int t = dspex_json_next(&p, &ev);
    if (t == DSPEX_JSON_EV_OBJECT_START) t = dspex_json_next(&p, &ev);
    if ((t == DSPEX_JSON_EV_STRING || t == DSPEX_JSON_EV_KEY) && ev.len < cap) {
        memcpy(out, ev.str, ev.len);
        out[ev.len] = 0;
    } else {
        snprintf(out, cap, "ERR");
    }
    dspex_json_parser_free(&p);
    return out;
}

#define LENIENT(s) lenient((s), sizeof(s) - 1, buf, sizeof buf)
#define FFFD "\xEF\xBF\xBD"

CTEST(lenient_unicode_replaces_lone_surrogates) {
    char buf[256];
    CHECK_STREQ(LENIENT("\"\\ud83d\""), FFFD);
    CHECK_STREQ(LENIENT("\"a\\ud83db\""), "a" FFFD "b");
    CHECK_STREQ(LENIENT("\"\\udc00x\""), FFFD "x");
    CHECK_STREQ(LENIENT("\"\\ud83d\\u0041\""), FFFD "A");
    CHECK_STREQ(LENIENT("\"\\ud83d\\ud83d\\ude00\""), FFFD "\xF0\x9F\x98\x80");
    CHECK_STREQ(LENIENT("\"\\ud83d\\ude00\""), "\xF0\x9F\x98\x80"); /* pairs still decode */
    CHECK_STREQ(LENIENT("{\"k\\udfff\": 1}"), "k" FFFD);                /* keys too */
    /* the rest stays strict */
    CHECK_STREQ(LENIENT("\"\\x\""), "ERR");
    CHECK_STREQ(LENIENT("\"\\u12g4\""), "ERR");
    CHECK_STREQ(LENIENT("\"a\nb\""), "ERR");
    CHECK_STREQ(LENIENT("\"\\ud83d"), "ERR");
}

/* Each maximal subpart of an ill-formed sequence becomes one U+FFFD (WHATWG decoder). */
CTEST(lenient_unicode_replaces_invalid_utf8) {
    char buf[256];
    CHECK_STREQ(LENIENT("\"\xff\""), FFFD);
    CHECK_STREQ(LENIENT("\"a\xE2\x82\""), "a" FFFD);                 /* truncated: one */
    CHECK_STREQ(LENIENT("\"\xE2\x82x\xE2\x82\xAC\""), FFFD "x\xE2\x82\xAC");
    CHECK_STREQ(LENIENT("\"\xF0\x9F\x98\""), FFFD);
    CHECK_STREQ(LENIENT("\"\xC0\xAF\""), FFFD FFFD);                  /* overlong */
    CHECK_STREQ(LENIENT("\"\xED\xA0\x80\""), FFFD FFFD FFFD);         /* encoded surrogate */
    CHECK_STREQ(LENIENT("\"\xF4\x90\x80\x80\""), FFFD FFFD FFFD FFFD); /* above U+10FFFF */
    CHECK_STREQ(LENIENT("\"\x80\x80\\n\""), FFFD FFFD "\n");
    /* valid text is untouched and still points into the input */
    dspex_json_parser p;
    dspex_json_event ev;
    const char *ok = "\"plain \xC3\xA9\"";
    dspex_json_parser_init(&p, ok, strlen(ok), 0);
    p.flags = DSPEX_JSON_PARSE_REPLACE_INVALID;
    CHECK(dspex_json_next(&p, &ev) == DSPEX_JSON_EV_STRING);
    CHECK(ev.in_input == 1 && ev.len == 8);
    dspex_json_parser_free(&p);
    /* strict mode still rejects */
    char msg[256];
    CHECK(err_offset("\"\xff\"", msg, sizeof msg) == 1);
}

CTEST(depth_limit) {
    char msg[256];
    size_t off = 0;
    char deep[2100];
    for (int k = 0; k < 1000; k++) deep[k] = '[';
    for (int k = 0; k < 1000; k++) deep[1000 + k] = ']';
    CHECK(dspex_json_validate(deep, 2000, 0, msg, sizeof msg, &off) == DSPEX_JSON_ERR_DEPTH);
    CHECK(off == 512);
    CHECK(strstr(msg, "max_depth (512)") != NULL);
    CHECK(dspex_json_validate(deep, 2000, 1000, msg, sizeof msg, &off) == DSPEX_JSON_OK);
    CHECK(dspex_json_validate(deep + 499, 1002, 0, msg, sizeof msg, &off) == DSPEX_JSON_OK); /* 501 deep */
}

CTEST(bigint_bytes_round_trip) {
    const char *ds[] = {"0", "1", "255", "256", "4294967296", "18446744073709551616",
                        "123456789012345678901234567890123456789012345678901234567890"};
    for (size_t k = 0; k < sizeof(ds) / sizeof(ds[0]); k++) {
        unsigned char bytes[64];
        char back[128];
        size_t nb = dspex_json_decimal_to_bytes(ds[k], strlen(ds[k]), bytes, sizeof bytes);
        CHECK(nb > 0);
        size_t nd = dspex_json_bytes_to_decimal(bytes, nb, back, sizeof back - 1);
        back[nd] = 0;
        CHECK_STREQ(back, ds[k]);
    }
    unsigned char b[16];
    CHECK(dspex_json_decimal_to_bytes("256", 3, b, 16) == 2 && b[0] == 0 && b[1] == 1);
    CHECK(dspex_json_decimal_to_bytes("18446744073709551616", 20, b, 16) == 9 && b[8] == 1);
    CHECK(dspex_json_decimal_to_bytes("18446744073709551616", 20, b, 4) == 0); /* too small */
}

CTEST(bigint_long) {
    /* 3000 digits round trip */
    size_t n = 3000;
    char *d = malloc(n + 1), *back = malloc(n + 16);
    unsigned char *bytes = malloc(n);
    for (size_t k = 0; k < n; k++) d[k] = (char)('1' + (k * 7) % 9);
    d[n] = 0;
    size_t nb = dspex_json_decimal_to_bytes(d, n, bytes, n);
    size_t nd = dspex_json_bytes_to_decimal(bytes, nb, back, n + 8);
    back[nd] = 0;
    CHECK(nd == n);
    CHECK(strcmp(back, d) == 0);
    free(d);
    free(back);
    free(bytes);
}

static const char *fmt(double d, char *out) {
    int n = dspex_json_format_double(out, d);
    if (n < 0) strcpy(out, "ERR");
    return out;
}

CTEST(format_double_layout) {
    char b[40];
    CHECK_STREQ(fmt(0.1, b), "0.1");
    CHECK_STREQ(fmt(1.0, b), "1.0");
    CHECK_STREQ(fmt(-1.0, b), "-1.0");
    CHECK_STREQ(fmt(0.0, b), "0.0");
    CHECK_STREQ(fmt(-0.0, b), "-0.0");
    CHECK_STREQ(fmt(100.0, b), "100.0");
    CHECK_STREQ(fmt(1.0e20, b), "1.0e20");
    CHECK_STREQ(fmt(1.0e16, b), "1.0e16");
    CHECK_STREQ(fmt(1.0e15, b), "1000000000000000.0");
    CHECK_STREQ(fmt(1.5e-7, b), "1.5e-7");
    CHECK_STREQ(fmt(0.0001, b), "0.0001");
    CHECK_STREQ(fmt(0.00001, b), "1.0e-5");
    CHECK_STREQ(fmt(0.000123, b), "0.000123");
    CHECK_STREQ(fmt(3.14159, b), "3.14159");
    CHECK_STREQ(fmt(1.0 / 3.0, b), "0.3333333333333333");
    CHECK_STREQ(fmt(0.1 + 0.2, b), "0.30000000000000004");
    CHECK_STREQ(fmt(1.7976931348623157e308, b), "1.7976931348623157e308");
    CHECK_STREQ(fmt(5e-324, b), "4.94065645841247e-324");
    CHECK_STREQ(fmt(2.5e300, b), "2.5e300");
    CHECK_STREQ(fmt(123456.789, b), "123456.789");
    CHECK_STREQ(fmt(NAN, b), "ERR");
    CHECK_STREQ(fmt(INFINITY, b), "ERR");
}


CTEST(format_double_round_trips) {
    uint64_t s = 0x9E3779B97F4A7C15ULL;
    int bad = 0;
    for (int k = 0; k < 200000; k++) {
        uint64_t bits = rng(&s);
        double d;
        if (k % 2) {
            memcpy(&d, &bits, 8);
        } else {
            d = (double)(bits % 1000000) / (double)(1 + rng(&s) % 10000);
        }
        if (!isfinite(d)) continue;
        char out[40];
        int n = dspex_json_format_double(out, d);
        if (n <= 0) {
            bad++;
            continue;
        }
        /* parse back through the JSON parser */
        dspex_json_parser p;
        dspex_json_event ev;
        dspex_json_parser_init(&p, out, (size_t)n, 0);
        int t = dspex_json_next(&p, &ev);
        if (t != DSPEX_JSON_EV_FLOAT || memcmp(&ev.d, &d, 8) != 0) {
            if (bad < 5) fprintf(stderr, "  round trip failed: %.17g -> %s\n", d, out);
            bad++;
        }
        dspex_json_parser_free(&p);
    }
    CHECK(bad == 0);
}

/* Reference: fewest of 15/16/17 significant digits via the C library. */
static int ref_digits(double a, char *D, int *x) {
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, a);
        if (prec == 17 || strtod(buf, NULL) == a) break;
    }
    int nd = 0;
    const char *s = buf;
    while (*s && *s != 'e') {
        if (*s >= '0' && *s <= '9') D[nd++] = *s;
        s++;
    }
    *x = atoi(s + 1);
    while (nd > 1 && D[nd - 1] == '0') nd--;
    D[nd] = 0;
    return nd;
}

/* Significant digits of formatted output (strip sign, point, exponent, leading zeros). */
static int out_digits(const char *o) {
    int nd = 0, lead = 1, trailing = 0;
    for (const char *s = o; *s && *s != 'e'; s++) {
        if (*s < '0' || *s > '9') continue;
        if (lead && *s == '0') continue;
        lead = 0;
        nd++;
        trailing = *s == '0' ? trailing + 1 : 0;
    }
    return nd - trailing;
}

CTEST(format_double_is_shortest) {
    uint64_t s = 0x1234567887654321ULL;
    int longer = 0;
    for (int k = 0; k < 200000; k++) {
        uint64_t bits = rng(&s);
        double d;
        if (k % 3 == 0) {
            memcpy(&d, &bits, 8);
        } else if (k % 3 == 1) {
            d = (double)(bits % 100000000) / 1e4;
        } else {
            d = (double)(bits >> 11) / 9007199254740992.0 * 1000.0;
        }
        if (!isfinite(d) || d == 0) continue;
        char out[40], D[40];
        int x;
        dspex_json_format_double(out, d);
        int rn = ref_digits(fabs(d), D, &x);
        if (out_digits(out) > rn) {
            if (longer < 5) fprintf(stderr, "  longer than reference: %s vs %s e%d\n", out, D, x);
            longer++;
        }
    }
    CHECK(longer == 0);
}

CTEST(escape) {
    size_t bad = 0;
    const char *s = "a\"b\\c\n\x01\xC3\xA9\xF0\x9F\x98\x80";
    size_t n = strlen(s);
    size_t el = dspex_json_escaped_len((const unsigned char *)s, n, 0, &bad);
    char out[128];
    CHECK(dspex_json_escape(out, (const unsigned char *)s, n, 0, &bad) == el);
    out[el] = 0;
    CHECK_STREQ(out, "a\\\"b\\\\c\\n\\u0001\xC3\xA9\xF0\x9F\x98\x80");
    el = dspex_json_escaped_len((const unsigned char *)s, n, DSPEX_JSON_ESCAPE_UNICODE, &bad);
    CHECK(dspex_json_escape(out, (const unsigned char *)s, n, DSPEX_JSON_ESCAPE_UNICODE, &bad) == el);
    out[el] = 0;
    CHECK_STREQ(out, "a\\\"b\\\\c\\n\\u0001\\u00e9\\ud83d\\ude00");
    CHECK(dspex_json_escaped_len((const unsigned char *)"ab\xFF", 3, 0, &bad) == SIZE_MAX);
    CHECK(bad == 2);
    CHECK(dspex_json_escaped_len((const unsigned char *)"plain ascii text!", 17, 0, &bad) == 17);
    bad = 0;
    CHECK(dspex_json_escape(out, (const unsigned char *)"a\nb\xC3", 4, 0, &bad) == SIZE_MAX);
    CHECK(bad == 3);
    CHECK(dspex_json_escape(out, (const unsigned char *)"\xE2\x82", 2, DSPEX_JSON_ESCAPE_UNICODE, &bad) == SIZE_MAX);
    CHECK(bad == 0);
}

CTEST(format_int64) {
    char b[24];
    dspex_json_format_int64(b, INT64_MIN);
    CHECK_STREQ(b, "-9223372036854775808");
    dspex_json_format_int64(b, 0);
    CHECK_STREQ(b, "0");
    dspex_json_format_int64(b, 42);
    CHECK_STREQ(b, "42");
}

CTEST(cjson_bridge) {
    char msg[128];
    size_t off = 0;
    const char *s = "{\"a\":[1,2.5,\"x\"],\"b\":{\"c\":null}}";
    cJSON *j = json_to_cjson(s, strlen(s), 0, msg, sizeof msg, &off);
    CHECK(j != NULL);
    if (j) {
        cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "a");
        CHECK(cJSON_IsArray(a) && cJSON_GetArraySize(a) == 3);
        CHECK(cJSON_GetArrayItem(a, 1)->valuedouble == 2.5);
        CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "b"), "c")));
        cJSON_Delete(j);
    }
    CHECK(json_to_cjson("[1,", 3, 0, msg, sizeof msg, &off) == NULL);
    CHECK(off == 3);
}

int main(void) { return ctest_run(); }
