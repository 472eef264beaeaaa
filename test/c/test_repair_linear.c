/* Repair and extraction cost stays linear in the input on hostile shapes (issue 8 #5).
 *
 * No absolute timings (the machine is shared and this runs under ASan): each shape is
 * timed in CPU seconds at 256 KiB and 4 MiB and must keep its per-byte cost flat (at most
 * FLAT_FACTOR times the small size's), and its per-byte cost must stay within
 * BASELINE_FACTOR of an ordinary faulty document's, timed in the same run. A quadratic
 * path shows as a 16x growth between the sizes; a path that costs max_depth per byte
 * (512 by default, the 8 #5 defect) shows as hundreds of times the baseline.
 *
 * Each shape is written as: prefix, then `unit` repeated `reps` times (0: to the size),
 * then `fill` repeated to the size, then `suffix`. */
#include "ctest.h"
#include "dspex/repair.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SMALL (256u * 1024)
#define LARGE (4u * 1024 * 1024)
/* 16x more input may cost at most 16 * FLAT_FACTOR times more (noise allowance). */
#define FLAT_FACTOR 4.0
/* Per-byte cost at most this many times a faulty document's. Every shape below runs at
 * 2.5x or less; the 8 #5 defects ran at 100-500x. */
#define BASELINE_FACTOR 20.0

typedef struct {
    const char *name, *prefix, *unit;
    int reps;
    const char *fill, *suffix;
} shape;

/* clang-format off */
static const shape SHAPES[] = {
    /* issue 8 #5: a call wrapper, objects nested to the depth limit, then whitespace */
    {"cb( + objects to max_depth + spaces",       "cb(",         "{\"a\":[",  256, " ", ""},
    {"NumberLong( + objects to max_depth + spaces", "NumberLong(", "{\"a\":[", 256, " ", ""},
    {"cb( + objects up to max_depth + spaces",    "cb(",         "{\"a\":",   511, " ", ""},
    {"cb( + objects to max_depth + newlines",     "cb(",         "{\"a\":[",  256, "\n", ""},
    {"objects past max_depth + spaces",           "",            "{\"a\":",   600, " ", ""},
    {"arrays past max_depth + words",             "",            "[",         600, "a ", ""},
    {"nested wrappers",                           "",            "cb(",         0, "", ""},
    {"nested wrappers past max_depth + spaces",   "",            "cb(",       600, " ", ""},
    {"wrapper + unquoted words",                  "{\"a\":",     "x\"cb(",     0, "", ""},
    {"deep nesting then garbage",                 "",            "{\"a\":[",  200, "x\" ,:", ""},
    {"deep nesting then unclosed strings",        "",            "[",         500, "\"a, ", ""},
    {"repeated unclosed strings",                 "{\"a\": \"",  "x, \"y",      0, "", ""},
    {"strings that read to the end, then restart", "[\\\"",      ",x",        511, ", \"a(", "\"a\""},
    {"one unclosed string per line, then ,{",     "",           "\"x\n",       0, "", ",{"},
    {"unclosed strings in an array",              "[",           "\"a, ",       0, "", ""},
    {"quotes after closers",                      "{\"a\": \"",  "x] \"",       0, "", ""},
    {"array continuations after spaces",          "{\"a\": [",   " ",       60000, "],[", ""},
    {"missing commas before long spaces",         "[",           "1",           1, "    1", ""},
    {"unquoted words and spaces",                 "[",           "a",           0, "", ""},
    {"words then spaces then a call",             "[",           "a",           1, " ", "("},
    {"prose without JSON",                        "",            "no json here ", 0, "", ""},
    {"prose then a brace at the end",             "",            "words ",      0, "", "{"},
    {"digits that are not a number",              "[",           "1",           0, "", "x"},
    {"open comment",                              "[1, /*",      " ",           0, "", ""},
    {"fences",                                    "",            "```\n",       0, "", ""},
    {"python fences",                             "",            "```python\nx\n", 0, "", ""},
    {"escaped quotes",                            "{\"a\": \"",  "\\\" ",       0, "", ""},
    {"keys without colons",                       "{",           "\"k\" ",      0, "", ""},
    {"set literal",                               "{",           "'a', ",       0, "", ""},
    {"regex",                                     "[/",          "a",           0, "", ""},
    {"string concatenation",                      "",            "\"a\" + ",    0, "", ""},
};
/* clang-format on */

static size_t build(const shape *s, char *b, size_t n) {
    size_t o = 0, lp = strlen(s->prefix), lu = strlen(s->unit), lf = strlen(s->fill), ls = strlen(s->suffix);
    memcpy(b, s->prefix, lp);
    o = lp;
    for (int r = 0; (s->reps == 0 || r < s->reps) && o + lu + ls <= n; r++) {
        memcpy(b + o, s->unit, lu);
        o += lu;
    }
    while (lf && o + lf + ls <= n) {
        memcpy(b + o, s->fill, lf);
        o += lf;
    }
    memcpy(b + o, s->suffix, ls);
    return o + ls;
}

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Runs repair (mode 0), extract of the first value (1) or extract of every value (2),
 * the way the NIF and the adapter walk values: with one re-parse budget for the walk. */
static void run(const char *in, size_t n, int mode) {
    dspex_repair_result r;
    if (mode == 0) {
        dspex_json_repair(in, n, NULL, &r);
        dspex_repair_result_free(&r);
        return;
    }
    dspex_repair_opts o;
    dspex_repair_opts_init(&o);
    size_t budget = dspex_repair_rescan_budget(n);
    o.rescan_budget = &budget;
    for (size_t from = 0; from < n;) {
        int rc = dspex_json_extract(in, n, from, &o, &r);
        size_t end = r.end;
        dspex_repair_result_free(&r);
        if (rc != DSPEX_REPAIR_OK || mode == 1 || end <= from) break;
        from = end;
    }
}

/* Best of `runs`: CPU seconds per input byte. */
static double per_byte(const char *in, size_t n, int mode, int runs) {
    double best = 1e30;
    for (int k = 0; k < runs; k++) {
        double t0 = cpu_now();
        run(in, n, mode);
        double dt = cpu_now() - t0;
        if (dt < best) best = dt;
    }
    return best / (double)(n ? n : 1);
}

static int large_ok(double large, double small, double base) {
    return large <= FLAT_FACTOR * small && large <= BASELINE_FACTOR * base;
}

CTEST(cost_per_byte_is_flat_from_256k_to_4m_on_every_shape) {
    static const char *modes[] = {"repair", "extract", "extract all"};
    char *b = malloc(LARGE + 64);
    CHECK(b != NULL);
    if (b == NULL) return;
    /* the baseline: an ordinary faulty document (a fault every ~50 bytes) */
    size_t n = 0;
    b[n++] = '[';
    while (n + 64 < SMALL) n += (size_t)snprintf(b + n, 64, "{'k%zu': 'v', b: [1,2,],},\n", n);
    double base = per_byte(b, n, 0, 3);
    for (size_t i = 0; i < sizeof(SHAPES) / sizeof(SHAPES[0]); i++) {
        for (int mode = 0; mode < 3; mode++) {
            size_t ns = build(&SHAPES[i], b, SMALL);
            double small = per_byte(b, ns, mode, 3);
            int ok = small <= BASELINE_FACTOR * base;
            double large = 0;
            if (ok) { /* a shape already far off at 256 KiB would take minutes at 4 MiB */
                size_t nl = build(&SHAPES[i], b, LARGE);
                large = per_byte(b, nl, mode, 1);
                if (!large_ok(large, small, base)) large = per_byte(b, nl, mode, 2); /* noise? try again */
                ok = large_ok(large, small, base);
            }
            if (!ok)
                fprintf(stderr, "  %s, %s: %.1f ns/B at 256 KiB, %.1f ns/B at 4 MiB (baseline %.1f ns/B)\n",
                        SHAPES[i].name, modes[mode], small * 1e9, large * 1e9, base * 1e9);
            CHECK(ok);
        }
    }
    free(b);
}

int main(void) { return ctest_run(); }
