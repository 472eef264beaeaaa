/* Unit tests for the metrics core (c_src/core/metrics/). Expected values were produced
 * by DSPy 3.3.1 on Python 3.11 (the full golden set runs in ExUnit from
 * test/fixtures/metrics/); these cover each rule and the error paths. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ctest.h"
#include "dspex/metrics.h"
#include "sha256.h"
#include "dspex/utf8.h"
#include "metrics/text.h"

static const char *norm(const char *s, size_t len, dspex_buf *b) {
    b->len = 0;
    if (b->p) b->p[0] = '\0';
    size_t off = 0;
    int rc = dspex_normalize_text(s, len, b, &off);
    if (rc != DSPEX_METRICS_OK) return "<error>";
    return b->p ? b->p : "";
}

static const struct {
    const char *in, *out;
} NORMALIZE_CASES[] = {
    {"No_answer!", "noanswer"},
    /* final sigma, word-final in each word */
    {"\xce\x9f\xce\x94\xce\x9f\xce\xa3 \xce\xa3\xce\x91\xce\xa3", "\xce\xbf\xce\xb4\xce\xbf\xcf\x82 \xcf\x83\xce\xb1\xcf\x82"},
    /* RLE/PDF are not whitespace */
    {"\xe2\x80\xab""1 January 2000\xe2\x80\xac", "\xe2\x80\xab""1 january 2000\xe2\x80\xac"},
    {"The The", ""},
    /* after NFD a combining mark is a non-word character: the article check sees "a" */
    {"\xc3\x81", "\xcc\x81"},
    {"Th\xc3\xa9", "\xcc\x81"},
    {"\xc3\x85sa", "\xcc\x8asa"},
    {"a\xc3\xb1", "\xcc\x83"},
    {"a\xe2\x80\x99s", "\xe2\x80\x99s"},
    {"a\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},
    {"the\xe2\x80\x8b""cat", "\xe2\x80\x8b""cat"},
    {"a\xc2\xb2", "a\xc2\xb2"},
    {"a1", "a1"},
    {"the2", "the2"},
    {"theater", "theater"},
    /* full lowercase mapping of I WITH DOT ABOVE (after NFD: I + U+0307) */
    {"\xc4\xb0stanbul", "i\xcc\x87stanbul"},
    {"\xe1\xba\x9e", "\xc3\x9f"},
    /* final sigma looks through combining marks; a modifier letter is case-ignorable */
    {"A\xce\xa3\xcc\x81", "a\xcf\x82\xcc\x81"},
    {"\xe1\xb5\x83\xce\xa3", "\xe1\xb5\x83\xcf\x83"},
    {"Node.js", "nodejs"},
    /* deleting punctuation is not followed by re-normalization */
    {"x\xcc\x81.\xcc\xa3", "x\xcc\x81\xcc\xa3"},
    /* compatibility forms stay */
    {"\xef\xac\x81 \xef\xbc\xb4\xef\xbd\x88\xef\xbd\x85 \xef\xbc\x91\xef\xbc\x92\xef\xbc\x93 \xc2\xb2 \xc2\xbd",
     "\xef\xac\x81 \xef\xbd\x94\xef\xbd\x88\xef\xbd\x85 \xef\xbc\x91\xef\xbc\x92\xef\xbc\x93 \xc2\xb2 \xc2\xbd"},
    /* canonical singletons fold: KELVIN, ANGSTROM, OHM */
    {"\xe2\x84\xaa\xe2\x84\xab\xe2\x84\xa6", "ka\xcc\x8a\xcf\x89"},
    /* Hangul syllables split into jamo */
    {"\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4",
     "\xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab\xe1\x84\x80\xe1\x85\xae\xe1\x86\xa8\xe1\x84\x8b\xe1\x85\xa5"},
    /* str.split() whitespace: NBSP, FIGURE SPACE, NNBSP, U+001C */
    {"a\xc2\xa0""b\xe2\x80\x87""c\xe2\x80\xaf""d\x1c""e", "b c d e"},
    {"\xce\xa3", "\xcf\x83"},
    {"'\xce\xa3'", "\xcf\x83"},
    {"A\xce\xa3'", "a\xcf\x82"},
    {"hello   world\x09\x0a", "hello world"},
    {"\xc7\x85", "\xc7\x86"},
    {"the-cat", "thecat"},
    {"An apple, the pear; a plum", "apple pear plum"},
    {"\xe1\xba\x9e\xc4\xb0\xce\xa3\xcd\x85", "\xc3\x9fi\xcc\x87\xcf\x82\xcd\x85"},
    /* canonical reordering: dot below (220) before acute (230) */
    {"\xc3\xa9\xcc\xa3\xcc\x81", "e\xcc\xa3\xcc\x81\xcc\x81"},
    {"", ""},
    {"   \t ", ""},
};

CTEST(normalize_matches_dspy) {
    dspex_buf b;
    dspex_buf_init(&b);
    for (size_t i = 0; i < sizeof NORMALIZE_CASES / sizeof NORMALIZE_CASES[0]; i++) {
        const char *got = norm(NORMALIZE_CASES[i].in, strlen(NORMALIZE_CASES[i].in), &b);
        CHECK_STREQ(got, NORMALIZE_CASES[i].out);
    }
    dspex_buf_free(&b);
}

CTEST(normalize_keeps_nul_bytes) {
    dspex_buf b;
    dspex_buf_init(&b);
    CHECK(dspex_normalize_text("X\0Y", 3, &b, NULL) == DSPEX_METRICS_OK);
    CHECK(b.len == 3 && memcmp(b.p, "x\0y", 3) == 0);
    dspex_buf_free(&b);
}

CTEST(normalize_rejects_invalid_utf8_with_offset) {
    static const struct {
        const char *s;
        size_t off;
    } bad[] = {{"ab\xff", 2}, {"x\xc3", 1}, {"\xed\xa0\x80", 0}, {"ok \xc0\xaf", 3}, {"\xf4\x90\x80\x80", 0},
               {"\xe2\x82", 0}, {"caf\xc3\xa9\x80", 5}};
    dspex_buf b;
    dspex_buf_init(&b);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t off = 99;
        b.len = 0;
        CHECK(dspex_normalize_text(bad[i].s, strlen(bad[i].s), &b, &off) == DSPEX_METRICS_EUTF8);
        CHECK(off == bad[i].off);
    }
    dspex_buf_free(&b);
}

CTEST(normalize_rejects_oversized_input_before_reading_it) {
    size_t n = DSPEX_METRICS_MAX_TEXT + 1;
    char *big = malloc(n);
    CHECK(big != NULL);
    if (big == NULL) return;
    memset(big, 'a', n);
    dspex_buf b;
    dspex_buf_init(&b);
    CHECK(dspex_normalize_text(big, n, &b, NULL) == DSPEX_METRICS_ETOOBIG);
    dspex_buf_free(&b);
    free(big);
}

/* 40 alternating acute (230) / dot below (220): a run longer than the insertion-sort
 * cut-off goes through the counting sort and must stay stable. */
CTEST(long_combining_runs_sort_stably) {
    dspex_buf in, b;
    dspex_buf_init(&in);
    dspex_buf_init(&b);
    dspex_buf_puts(&in, "X");
    for (int i = 0; i < 20; i++) dspex_buf_puts(&in, "\xcc\x81\xcc\xa3");
    dspex_buf expect;
    dspex_buf_init(&expect);
    dspex_buf_puts(&expect, "x");
    for (int i = 0; i < 20; i++) dspex_buf_puts(&expect, "\xcc\xa3");
    for (int i = 0; i < 20; i++) dspex_buf_puts(&expect, "\xcc\x81");
    CHECK_STREQ(norm(in.p, in.len, &b), expect.p);
    dspex_buf_free(&in);
    dspex_buf_free(&b);
    dspex_buf_free(&expect);
}

static double score(dspex_metric k, const char *pred, const char *const *golds, size_t ng, int *rc) {
    dspex_metrics m;
    dspex_metrics_init(&m);
    dspex_text p = {pred, strlen(pred)};
    dspex_text g[8];
    for (size_t i = 0; i < ng; i++) g[i] = (dspex_text){golds[i], strlen(golds[i])};
    double s = -1.0;
    *rc = dspex_metrics_score(&m, k, &p, 1, g, ng, &s);
    dspex_metrics_free(&m);
    return s;
}

static int same_double(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

#define SCORE1(k, p, g, want)                                                        \
    do {                                                                             \
        const char *gs_[] = {g};                                                     \
        int rc_;                                                                     \
        double got_ = score(k, p, gs_, 1, &rc_);                                     \
        CHECK(rc_ == DSPEX_METRICS_OK);                                              \
        if (!same_double(got_, want)) fprintf(stderr, "  got %.17g\n", got_);        \
        CHECK(same_double(got_, want));                                              \
    } while (0)

CTEST(f1_is_bit_exact) {
    SCORE1(DSPEX_METRIC_F1, "the Eiffel Tower", "Eiffel Tower", 1.0);
    SCORE1(DSPEX_METRIC_F1, "Eiffel Tower is in Paris", "Paris", 0.33333333333333337);
    SCORE1(DSPEX_METRIC_F1, "a b c", "b c d e", 0.6666666666666666);
    SCORE1(DSPEX_METRIC_F1, "x x y", "x y y z", 0.5714285714285715);
    SCORE1(DSPEX_METRIC_F1, "", "", 0.0);
    SCORE1(DSPEX_METRIC_F1, "apple", "pear", 0.0);
}

CTEST(em_hotpot_precision) {
    SCORE1(DSPEX_METRIC_EM, "The Eiffel Tower", "eiffel tower!", 1.0);
    SCORE1(DSPEX_METRIC_EM, "paris", "Paris, France", 0.0);
    SCORE1(DSPEX_METRIC_HOTPOT_F1, "yes", "no", 0.0);
    SCORE1(DSPEX_METRIC_HOTPOT_F1, "no-answer", "No_answer!", 1.0);
    SCORE1(DSPEX_METRIC_HOTPOT_F1, "yes", "yes yes", 0.0);
    SCORE1(DSPEX_METRIC_HOTPOT_F1, "no answer", "answer", 0.6666666666666666);
    SCORE1(DSPEX_METRIC_PRECISION, "eiffel tower in paris", "eiffel tower", 0.5);
}

CTEST(gold_lists_take_the_max) {
    const char *golds[] = {"Louvre", "Eiffel Tower", "Tower"};
    int rc;
    CHECK(same_double(score(DSPEX_METRIC_EM, "The Eiffel Tower", golds, 3, &rc), 1.0) && rc == 0);
    CHECK(same_double(score(DSPEX_METRIC_F1, "Tower of Pisa", golds, 3, &rc), 0.5) && rc == 0);
}

static int passage(const char *const *ps, size_t np, const char *const *as, size_t na) {
    dspex_metrics m;
    dspex_metrics_init(&m);
    dspex_text p[4], a[4];
    for (size_t i = 0; i < np; i++) p[i] = (dspex_text){ps[i], strlen(ps[i])};
    for (size_t i = 0; i < na; i++) a[i] = (dspex_text){as[i], strlen(as[i])};
    double s = -1;
    int rc = dspex_metrics_score(&m, DSPEX_METRIC_PASSAGE_MATCH, p, np, a, na, &s);
    dspex_metrics_free(&m);
    return rc != DSPEX_METRICS_OK ? -1 : s == 1.0;
}

#define PM(ps, as, want)                                                              \
    do {                                                                              \
        const char *p_[] = {ps}, *a_[] = {as};                                        \
        CHECK(passage(p_, sizeof p_ / sizeof *p_, a_, sizeof a_ / sizeof *a_) == want); \
    } while (0)

CTEST(passage_match_follows_dpr_tokens) {
    PM("The city of York is old.", "york", 1);
    PM("Yorkshire pudding", "york", 0);
    PM("paris\xe2\x80\x94" "france", "paris france", 0);
    PM("paris france", "Paris, France!", 1);
    PM("", "", 1);
    PM("", "the", 1);
    PM("x", "!!!", 1);
    PM("I like \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd a lot", "\xf0\x9f\x91\x8d", 1);
    PM("I like \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd a lot", "\xf0\x9f\x8f\xbd lot", 1);
    PM("\xe6\x9d\xb1\xe4\xba\xac\xe3\x82\xbf\xe3\x83\xaf\xe3\x83\xbc", "\xe6\x9d\xb1\xe4\xba\xac", 0);
    /* the passage is re-normalized (NFD) before tokenizing: marks come back in order */
    PM("x\xcc\x81.\xcc\xa3 y", "x\xcc\xa3\xcc\x81", 1);
    PM("one", "four", 0);
    const char *ps[] = {"one", "two three"}, *as[] = {"four", "Three"};
    CHECK(passage(ps, 2, as, 2) == 1);
    CHECK(passage(ps, 0, as, 2) == 0);
    CHECK(passage(ps, 2, as, 0) == 0);
}

CTEST(passage_match_kmp_handles_partial_overlaps) {
    PM("a a a b a a b a a c", "a a b a a c", 1);
    PM("x y x y x z", "x y x z", 1);
    PM("x y x y x", "x y x z", 0);
}

CTEST(errors_say_where) {
    dspex_metrics m;
    dspex_metrics_init(&m);
    dspex_text p = {"ok", 2};
    dspex_text g[2] = {{"fine", 4}, {"bad \xff", 5}};
    double s = 0;
    CHECK(dspex_metrics_score(&m, DSPEX_METRIC_F1, &p, 1, g, 2, &s) == DSPEX_METRICS_EUTF8);
    CHECK(m.err.gold == 1 && m.err.index == 1 && m.err.offset == 4);
    CHECK(dspex_metrics_score(&m, DSPEX_METRIC_F1, &p, 1, g, 0, &s) == DSPEX_METRICS_ENOGOLDS);
    CHECK(dspex_metrics_score(&m, DSPEX_METRIC_EM, g, 2, &p, 1, &s) == DSPEX_METRICS_EARG);
    /* passage match still rejects invalid UTF-8 after a match was found */
    dspex_text ps[2] = {{"ok then", 7}, {"\xc3(", 2}};
    CHECK(dspex_metrics_score(&m, DSPEX_METRIC_PASSAGE_MATCH, ps, 2, &p, 1, &s) == DSPEX_METRICS_EUTF8);
    CHECK(m.err.gold == 0 && m.err.index == 1 && m.err.offset == 0);
    CHECK(strcmp(dspex_metrics_strerror(DSPEX_METRICS_EUTF8), "invalid UTF-8") == 0);
    CHECK(strcmp(dspex_metrics_unicode_version(), "14.0.0") == 0);
    dspex_metrics_free(&m);
}

/* A megabyte of mixed text (ASCII, Greek, marks, Hangul, emoji, bad sigma contexts):
 * linear time, no sanitizer report, and idempotent. */
CTEST(large_mixed_input) {
    static const char *parts[] = {"The ", "\xce\xa3\xce\xa3 ", "\xcc\x81\xcc\xa3", "\xed\x95\x9c", "\xf0\x9f\x98\x80",
                                  "an ", "a.b ", "\xc4\xb0", "'", "\xe2\x80\x8b"};
    dspex_buf in, a, b;
    dspex_buf_init(&in);
    dspex_buf_init(&a);
    dspex_buf_init(&b);
    uint32_t x = 12345;
    while (in.len < (1u << 20)) {
        x = x * 1103515245u + 12345u;
        dspex_buf_puts(&in, parts[(x >> 16) % (sizeof parts / sizeof parts[0])]);
    }
    CHECK(dspex_normalize_text(in.p, in.len, &a, NULL) == DSPEX_METRICS_OK);
    CHECK(dspex_normalize_text(a.p, a.len, &b, NULL) == DSPEX_METRICS_OK);
    dspex_metrics m;
    dspex_metrics_init(&m);
    dspex_text t = {in.p, in.len};
    double s = 0;
    CHECK(dspex_metrics_score(&m, DSPEX_METRIC_F1, &t, 1, &t, 1, &s) == DSPEX_METRICS_OK && s == 1.0);
    CHECK(dspex_metrics_score(&m, DSPEX_METRIC_PASSAGE_MATCH, &t, 1, &t, 1, &s) == DSPEX_METRICS_OK && s == 1.0);
    dspex_metrics_free(&m);
    dspex_buf_free(&in);
    dspex_buf_free(&a);
    dspex_buf_free(&b);
}

/* test/fixtures/metrics/sweep.jsonl (tools/gen_metric_fixtures.py): every code point,
 * 256 per line inside the generator's context snippet; the hashes of DSPy's
 * normalize_text and DPR tokens must match. Covers the whole generated table. */
#define SWEEP_PATH "test/fixtures/metrics/sweep.jsonl"

static void hex24(const char *s, size_t len, char out[25]) {
    unsigned char d[DSPEX_SHA256_DIGEST_LEN];
    dspex_sha256(s, len, d);
    for (int i = 0; i < 12; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void sweep_text(uint32_t start, uint32_t end, dspex_buf *b) {
    char c[4];
    for (uint32_t cp = start; cp < end; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        size_t n = dspex_utf8_encode(c, cp);
        dspex_buf_puts(b, "A");
        dspex_buf_put(b, c, n);
        dspex_buf_puts(b, "\xce\xa3");
        dspex_buf_put(b, c, n);
        dspex_buf_puts(b, " a");
        dspex_buf_put(b, c, n);
        dspex_buf_puts(b, ".the");
        dspex_buf_put(b, c, n);
        dspex_buf_puts(b, "\xcc\xa3");
        dspex_buf_put(b, c, n);
        dspex_buf_puts(b, "_x");
        dspex_buf_put(b, c, n);
        dspex_buf_puts(b, " ");
    }
}

CTEST(sweep_of_every_code_point_matches_dspy) {
    FILE *f = fopen(SWEEP_PATH, "r");
    CHECK(f != NULL);
    if (f == NULL) return;
    char line[512];
    int lines = 0, bad = 0;
    dspex_buf text, norm, toks;
    dspex_buf_init(&text);
    dspex_buf_init(&norm);
    dspex_buf_init(&toks);
    while (fgets(line, sizeof line, f)) {
        cJSON *j = cJSON_Parse(line);
        CHECK(j != NULL);
        if (j == NULL) break;
        uint32_t start = (uint32_t)cJSON_GetObjectItem(j, "start")->valuedouble;
        uint32_t end = (uint32_t)cJSON_GetObjectItem(j, "end")->valuedouble;
        const char *want_norm = cJSON_GetObjectItem(j, "normalize")->valuestring;
        const char *want_dpr = cJSON_GetObjectItem(j, "dpr")->valuestring;
        text.len = norm.len = toks.len = 0;
        sweep_text(start, end, &text);
        char got[25];
        CHECK(dspex_normalize_text(text.p, text.len, &norm, NULL) == DSPEX_METRICS_OK);
        hex24(norm.p ? norm.p : "", norm.len, got);
        if (strcmp(got, want_norm) != 0) {
            if (bad++ < 10) fprintf(stderr, "  normalize differs in U+%04X..U+%04X\n", start, end - 1);
        }
        CHECK(dspex_mt_dpr_join(norm.p ? norm.p : "", norm.len, &toks) == DSPEX_METRICS_OK);
        hex24(toks.p ? toks.p : "", toks.len, got);
        if (strcmp(got, want_dpr) != 0) {
            if (bad++ < 10) fprintf(stderr, "  DPR tokens differ in U+%04X..U+%04X\n", start, end - 1);
        }
        cJSON_Delete(j);
        lines++;
    }
    fclose(f);
    CHECK(bad == 0);
    CHECK(lines == 4344);
    dspex_buf_free(&text);
    dspex_buf_free(&norm);
    dspex_buf_free(&toks);
}

int main(void) { return ctest_run(); }
