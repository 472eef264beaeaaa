/* Grammar-constrained decoding (c_src/core/grammar): the languages the grammars accept
 * (JSON Schema keywords, number ranges exhaustively, patterns, the adapters' layouts),
 * random sampling through the matcher always ending in a complete output that the
 * adapters / the JSON parser accept, the length budget, and hostile schemas. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_builders.h"
#include "ctest.h"
#include "dspex/infer/grammar_adapter.h"
#include "dspex/json.h"

/* ---------------------------------------------------------------- a test vocabulary */
/* 256 single bytes, multi-byte tokens that cross rule boundaries, and one EOG token. */
static const char *const extra_tokens[] = {
    "{\"", "\":", "\": ", "\",", "\"}", "\"},", "}}", "}]", "],", "]}", "[[", " ##", "## ]]", " ## ]]\n", "\n\n",
    "\n\n[[", "[[ ## ", "completed", "answer", "reasoning", "true", "false", "null", "None", "True", "False", "12",
    "345", "0.", ".5", "-1", "e+", "hello", " world", "\\n", "\\u00", "\"a\"", "\"b\"", ", ", ",\n  ", "\n  \"",
    "é", "\xe2\x82", "\xac", "[1", "[\"", "{}", "[]", "ab", "abc", "abcd", "x\"", "y\",\"", "0123", "99", "1e5",
    "\xf0\x9f", "\x98\x80", "[[ ## answer ## ]]\n", "\n[[ ## completed ## ]]",
};

static dspex_gvocab *test_vocab(void) {
    size_t ne = sizeof extra_tokens / sizeof extra_tokens[0];
    int32_t n = (int32_t)(256 + ne + 1);
    const char **p = calloc((size_t)n, sizeof(char *));
    size_t *l = calloc((size_t)n, sizeof(size_t));
    uint8_t *eog = calloc((size_t)n, 1);
    static char bytes[256];
    for (int i = 0; i < 256; i++) {
        bytes[i] = (char)i;
        p[i] = &bytes[i];
        l[i] = 1;
    }
    for (size_t i = 0; i < ne; i++) {
        p[256 + i] = extra_tokens[i];
        l[256 + i] = strlen(extra_tokens[i]);
    }
    p[n - 1] = "";
    eog[n - 1] = 1;
    char err[256];
    dspex_gvocab *gv = dspex_gvocab_from_pieces(p, l, eog, n, err, sizeof err);
    free(p), free(l), free(eog);
    return gv;
}

static dspex_grammar *schema_g(dspex_gvocab *gv, const char *schema, char *err) {
    return dspex_grammar_json_schema(schema, strlen(schema), gv, NULL, err, 256);
}

static int m(const dspex_grammar *g, const char *s) { return dspex_grammar_match(g, s, strlen(s), NULL); }

/* ---------------------------------------------------------------- sampling */
static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Samples up to budget tokens with random logits under the grammar; the text in out.
 * Returns 1 when it ended with EOG, 2 when the budget ran out, 0 on a matcher failure. */
static int sample(dspex_grammar *g, dspex_gvocab *gv, uint64_t seed, int budget, dspex_buf *out) {
    int32_t n = dspex_gvocab_size(gv);
    float *logits = malloc((size_t)n * sizeof(float));
    int32_t *gen = malloc((size_t)(budget + 1) * sizeof(int32_t));
    dspex_matcher *mt = dspex_matcher_new(g, budget);
    uint64_t s = seed * 2654435761u + 1;
    int rc = 2;
    for (int k = 0; k < budget; k++) {
        for (int32_t t = 0; t < n; t++) logits[t] = (float)(rng_next(&s) % 10000) / 1000.0f;
        dspex_matcher_hook(mt, logits, n, gen, (size_t)k); /* accepts gen[0..k) first */
        int32_t best = -1;
        for (int32_t t = 0; t < n; t++)
            if (logits[t] != -INFINITY && (best < 0 || logits[t] > logits[best])) best = t;
        if (best < 0) {
            rc = 0;
            break;
        }
        if (best == n - 1) { /* EOG */
            rc = dspex_matcher_can_end(mt) ? 1 : 0;
            break;
        }
        gen[k] = best;
        if (best < 256) dspex_buf_putc(out, (char)best);
        else dspex_buf_puts(out, extra_tokens[best - 256]);
    }
    if (dspex_matcher_failed(mt)) rc = 0;
    dspex_matcher_free(mt);
    free(logits);
    free(gen);
    return rc;
}

/* ---------------------------------------------------------------- JSON Schema */
CTEST(object_properties_required_and_order) {
    dspex_gvocab *gv = test_vocab();
    char err[256];
    dspex_grammar *g = schema_g(gv, "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},"
                                    "\"b\":{\"type\":\"string\"}},\"required\":[\"a\"]}", err);
    CHECK(g != NULL);
    if (g) {
        CHECK(m(g, "{\"a\": 1}") == 2);
        CHECK(m(g, "{\"a\":1,\"b\":\"x\"}") == 2);
        CHECK(m(g, "{\n  \"a\": -12,\n  \"b\": \"h\\u00e9 \\\"q\\\"\"\n}") == 2);
        CHECK(m(g, "{\"b\":\"x\"}") == 0);             /* a is required */
        CHECK(m(g, "{\"a\": 1, \"c\": 2}") == 0);      /* no additional properties */
        CHECK(m(g, "{\"b\":\"x\",\"a\":1}") == 0);     /* schema order */
        CHECK(m(g, "{\"a\": 01}") == 0);              /* no leading zeros */
        CHECK(m(g, "{\"a") == 1);
        CHECK(m(g, "{\"a\": 1} ") == 0);
        CHECK(m(g, " {\"a\": 1}\n") == 2);
        CHECK(m(g, "{\"a\": 1, \"b\": \"\x01\"}") == 0); /* raw control character */
        CHECK(m(g, "{\"a\": 1, \"b\": \"\\ud800\"}") == 0); /* surrogate escape */
        CHECK(m(g, "{\"a\": 1, \"b\": \"\xc3\"}") == 0);    /* broken UTF-8 */
        dspex_grammar_release(g);
    }
    g = schema_g(gv, "{\"properties\":{\"x\":{\"type\":\"boolean\"},\"y\":{\"type\":\"null\"},\"z\":{}}}", err);
    CHECK(g != NULL);
    if (g) {
        CHECK(m(g, "{}") == 2);
        CHECK(m(g, "{\"y\": null}") == 2);
        CHECK(m(g, "{\"x\": true, \"z\": [1, {\"k\": [null]}]}") == 2);
        CHECK(m(g, "{\"x\": 1}") == 0);
        dspex_grammar_release(g);
    }
    dspex_gvocab_release(gv);
}

CTEST(enum_const_anyof_nullable) {
    dspex_gvocab *gv = test_vocab();
    char err[256];
    dspex_grammar *g = schema_g(gv, "{\"enum\":[\"red\",\"green\",1,null,{\"a\":[1,2]}]}", err);
    CHECK(g != NULL);
    if (g) {
        CHECK(m(g, "\"red\"") == 2);
        CHECK(m(g, "\"green\"") == 2);
        CHECK(m(g, "1") == 2);
        CHECK(m(g, "null") == 2);
        CHECK(m(g, "{\"a\": [1, 2]}") == 2);
        CHECK(m(g, "\"blue\"") == 0);
        CHECK(m(g, "\"gre") == 1);
        dspex_grammar_release(g);
    }
    g = schema_g(gv, "{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"null\"},{\"type\":\"string\",\"maxLength\":2}]}", err);
    CHECK(g != NULL);
    if (g) {
        CHECK(m(g, "5") == 2);
        CHECK(m(g, "null") == 2);
        CHECK(m(g, "\"ab\"") == 2);
        CHECK(m(g, "\"abc\"") == 0);
        dspex_grammar_release(g);
    }
    g = schema_g(gv, "{\"type\":\"string\",\"nullable\":true,\"const\":\"x\"}", err);
    CHECK(g != NULL && m(g, "\"x\"") == 2 && m(g, "\"y\"") == 0);
    dspex_grammar_release(g);
    /* a string and an enum of strings in one anyOf: the string rule is inlined */
    g = schema_g(gv, "{\"anyOf\":[{\"type\":\"string\"},{\"enum\":[\"a\"]},{\"type\":\"array\",\"items\":"
                     "{\"anyOf\":[{\"type\":\"object\"},{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"string\"}}}]}}]}",
                 err);
    CHECK(g != NULL);
    if (g) {
        CHECK(m(g, "\"anything\"") == 2);
        CHECK(m(g, "[{\"q\": \"v\"}, {\"z\": 1}]") == 2);
        dspex_grammar_release(g);
    } else {
        fprintf(stderr, "  %s\n", err);
    }
    dspex_gvocab_release(gv);
}

CTEST(arrays_tuples_and_lengths) {
    dspex_gvocab *gv = test_vocab();
    char err[256];
    dspex_grammar *g =
        schema_g(gv, "{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":2,\"maxItems\":3}", err);
    CHECK(g != NULL);
    if (g) {
        CHECK(m(g, "[1]") == 0);
        CHECK(m(g, "[1, 2]") == 2);
        CHECK(m(g, "[1,2,3]") == 2);
        CHECK(m(g, "[1,2,3,4]") == 0);
        CHECK(m(g, "[\n  1,\n  2\n]") == 2);
        dspex_grammar_release(g);
    }
    g = schema_g(gv, "{\"type\":\"array\",\"prefixItems\":[{\"type\":\"string\"},{\"type\":\"boolean\"}],"
                     "\"minItems\":2,\"maxItems\":2}", err);
    CHECK(g != NULL && m(g, "[\"a\", true]") == 2 && m(g, "[true, \"a\"]") == 0 && m(g, "[\"a\"]") == 0);
    dspex_grammar_release(g);
    g = schema_g(gv, "{\"type\":\"array\",\"items\":{\"type\":\"string\"}}", err);
    CHECK(g != NULL && m(g, "[]") == 2 && m(g, "[ ]") == 2 && m(g, "[\"a\",\"b\",\"c\"]") == 2 && m(g, "[1]") == 0);
    dspex_grammar_release(g);
    g = schema_g(gv, "{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", err);
    CHECK(g != NULL && m(g, "\"a\"") == 0 && m(g, "\"ab\"") == 2 && m(g, "\"\\nb\"") == 2 && m(g, "\"abcd\"") == 0);
    dspex_grammar_release(g);
    g = schema_g(gv, "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}", err);
    CHECK(g != NULL && m(g, "{\"x\": 1, \"y\": 2}") == 2 && m(g, "{\"x\": \"1\"}") == 0 && m(g, "{}") == 2);
    dspex_grammar_release(g);
    dspex_gvocab_release(gv);
}

CTEST(refs_defs_and_recursion) {
    dspex_gvocab *gv = test_vocab();
    char err[256];
    const char *tree = "{\"$defs\":{\"Node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},"
                       "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/Node\"}}},\"required\":[\"v\"]}},"
                       "\"$ref\":\"#/$defs/Node\"}";
    dspex_grammar *g = schema_g(gv, tree, err);
    CHECK(g != NULL);
    if (g) {
        CHECK(m(g, "{\"v\": 1}") == 2);
        CHECK(m(g, "{\"v\": 1, \"kids\": [{\"v\": 2, \"kids\": [{\"v\": 3}]}, {\"v\": 4}]}") == 2);
        CHECK(m(g, "{\"v\": 1, \"kids\": [{\"w\": 2}]}") == 0);
        /* unrolled to ref_depth (6) levels */
        char deep[512] = "";
        for (int i = 0; i < 5; i++) strcat(deep, "{\"v\": 1, \"kids\": [");
        strcat(deep, "{\"v\": 1}");
        for (int i = 0; i < 5; i++) strcat(deep, "]}");
        CHECK(m(g, deep) == 2);
        char deeper[600] = "";
        for (int i = 0; i < 7; i++) strcat(deeper, "{\"v\": 1, \"kids\": [");
        CHECK(m(g, deeper) == 0);
        dspex_grammar_release(g);
    } else {
        fprintf(stderr, "  %s\n", err);
    }
    /* a non-recursive chain of refs longer than ref_depth is not cut */
    g = schema_g(gv, "{\"definitions\":{\"A\":{\"$ref\":\"#/definitions/B\"},\"B\":{\"$ref\":\"#/definitions/C\"},"
                     "\"C\":{\"$ref\":\"#/definitions/D\"},\"D\":{\"$ref\":\"#/definitions/E\"},\"E\":{\"$ref\":"
                     "\"#/definitions/F\"},\"F\":{\"$ref\":\"#/definitions/G\"},\"G\":{\"$ref\":\"#/definitions/H\"},"
                     "\"H\":{\"type\":\"integer\"}},\"$ref\":\"#/definitions/A\"}",
                 err);
    CHECK(g != NULL && m(g, "42") == 2);
    dspex_grammar_release(g);
    /* allOf merges objects */
    g = schema_g(gv, "{\"$defs\":{\"B\":{\"properties\":{\"b\":{\"type\":\"integer\"}},\"required\":[\"b\"]}},"
                     "\"allOf\":[{\"$ref\":\"#/$defs/B\"},{\"properties\":{\"c\":{\"type\":\"string\"}}}],"
                     "\"type\":\"object\"}",
                 err);
    CHECK(g != NULL && m(g, "{\"b\": 1, \"c\": \"x\"}") == 2 && m(g, "{\"c\": \"x\"}") == 0);
    dspex_grammar_release(g);
    dspex_gvocab_release(gv);
}

CTEST(integer_ranges_exhaustive) {
    dspex_gvocab *gv = test_vocab();
    char err[256], s[64];
    static const struct {
        const char *schema;
        long lo, hi;
    } cases[] = {
        {"{\"type\":\"integer\",\"minimum\":-37,\"maximum\":123}", -37, 123},
        {"{\"type\":\"integer\",\"exclusiveMinimum\":-1,\"exclusiveMaximum\":10}", 0, 9},
        {"{\"type\":\"integer\",\"minimum\":0.5,\"maximum\":99.9}", 1, 99},
        {"{\"type\":\"integer\",\"minimum\":-250}", -250, 100000},
        {"{\"type\":\"integer\",\"maximum\":-7}", -100000, -7},
        {"{\"type\":\"integer\",\"minimum\":100,\"maximum\":100}", 100, 100},
        {"{\"type\":\"integer\",\"minimum\":7,\"maximum\":3}", 1, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        dspex_grammar *g = schema_g(gv, cases[c].schema, err);
        if (cases[c].lo > cases[c].hi) {
            CHECK(g == NULL && strstr(err, "admits no value") != NULL);
            continue;
        }
        CHECK(g != NULL);
        if (g == NULL) continue;
        for (long i = -400; i <= 400; i++) {
            snprintf(s, sizeof s, "%ld", i);
            int want = i >= cases[c].lo && i <= cases[c].hi ? 2 : 0;
            int got = m(g, s);
            if (got == 1) got = 0;
            if (got != want) fprintf(stderr, "  case %zu: %ld -> %d\n", c, i, got);
            CHECK(got == want);
        }
        CHECK(m(g, "-0") != 2);
        CHECK(m(g, "00") != 2);
        dspex_grammar_release(g);
    }
    dspex_gvocab_release(gv);
}

CTEST(number_ranges) {
    dspex_gvocab *gv = test_vocab();
    char err[256];
    static const struct {
        const char *schema;
        double lo, hi;
        int lx, hx;
    } cases[] = {
        {"{\"type\":\"number\",\"minimum\":0.5,\"exclusiveMaximum\":2.25}", 0.5, 2.25, 0, 1},
        {"{\"type\":\"number\",\"minimum\":0,\"maximum\":1}", 0, 1, 0, 0},
        {"{\"type\":\"number\",\"exclusiveMinimum\":-1.5,\"maximum\":-0.25}", -1.5, -0.25, 1, 0},
        {"{\"type\":\"number\",\"minimum\":-3.75,\"maximum\":12}", -3.75, 12, 0, 0},
        {"{\"type\":\"number\",\"exclusiveMinimum\":0}", 0, 1e18, 1, 1},
    };
    static const char *const texts[] = {
        "0", "0.5", "0.49", "0.499999", "0.50", "1", "2", "2.25", "2.2499", "2.250", "2.26", "-0.5", "-1.5",
        "-1.49", "-0.25", "-0.24", "-0.26", "-3.75", "-3.751", "-3.7", "12", "12.0", "12.01", "11.999", "1.0",
        "0.0", "0.001", "-0.0", "5", "100", "0.75", "1.25", "-1", "-2", "3.5",
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        dspex_grammar *g = schema_g(gv, cases[c].schema, err);
        CHECK(g != NULL);
        if (g == NULL) {
            fprintf(stderr, "  %s\n", err);
            continue;
        }
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
            double x = strtod(texts[i], NULL);
            int in = (cases[c].lx ? x > cases[c].lo : x >= cases[c].lo) && (cases[c].hx ? x < cases[c].hi : x <= cases[c].hi);
            if (strcmp(texts[i], "-0.0") == 0) in = 0; /* zero is written without sign */
            int got = m(g, texts[i]) == 2;
            if (got != in) fprintf(stderr, "  case %zu: %s -> %d, want %d\n", c, texts[i], got, in);
            CHECK(got == in);
        }
        dspex_grammar_release(g);
    }
    dspex_grammar *g = schema_g(gv, "{\"type\":\"number\"}", err);
    CHECK(g != NULL && m(g, "-12.5e+10") == 2 && m(g, "1E5") == 2 && m(g, "1e999") == 0 && m(g, ".5") == 0 &&
          m(g, "1.") == 1);
    dspex_grammar_release(g);
    dspex_gvocab_release(gv);
}

CTEST(patterns_and_formats) {
    dspex_gvocab *gv = test_vocab();
    char err[256];
    dspex_grammar *g = schema_g(gv, "{\"type\":\"string\",\"pattern\":\"^[A-Z]{2}-\\\\d{3}(x|yz)?$\"}", err);
    CHECK(g != NULL);
    if (g) {
        CHECK(m(g, "\"AB-123\"") == 2);
        CHECK(m(g, "\"AB-123yz\"") == 2);
        CHECK(m(g, "\"ab-123\"") == 0);
        CHECK(m(g, "\"AB-12\"") == 0);
        dspex_grammar_release(g);
    }
    g = schema_g(gv, "{\"type\":\"string\",\"pattern\":\"q[^\\\"a]\"}", err); /* unanchored: search */
    CHECK(g != NULL && m(g, "\"xxqbyy\"") == 2 && m(g, "\"qa\"") == 0 && m(g, "\"q\\\"\"") == 0);
    dspex_grammar_release(g);
    g = schema_g(gv, "{\"type\":\"string\",\"pattern\":\"^a\\\"b\\\\\\\\c$\"}", err); /* a"b\c */
    CHECK(g != NULL && m(g, "\"a\\\"b\\\\c\"") == 2);
    dspex_grammar_release(g);
    g = schema_g(gv, "{\"type\":\"string\",\"format\":\"date\"}", err);
    CHECK(g != NULL && m(g, "\"2024-02-29\"") == 2 && m(g, "\"2024-13-01\"") == 0);
    dspex_grammar_release(g);
    g = schema_g(gv, "{\"type\":\"string\",\"format\":\"uuid\"}", err);
    CHECK(g != NULL && m(g, "\"123e4567-e89b-12d3-a456-426614174000\"") == 2);
    dspex_grammar_release(g);
    static const char *const bad[] = {"a(?=b)", "(a", "a\\\\1", "x^y", "[z-a]", "a{2,1}", "a{1001}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char schema[128];
        snprintf(schema, sizeof schema, "{\"type\":\"string\",\"pattern\":\"%s\"}", bad[i]);
        g = schema_g(gv, schema, err);
        CHECK(g == NULL && strncmp(err, "pattern:", 8) == 0);
        dspex_grammar_release(g);
    }
    dspex_gvocab_release(gv);
}

/* ---------------------------------------------------------------- adapters */
static dspex_signature *outputs_sig(dspex_arena *a, int nout, const char **names, dspex_type **types) {
    dspex_field *f = dspex_arena_alloc(a, (size_t)(nout + 1) * sizeof(dspex_field));
    field(&f[0], "question", 1, T(a, DSPEX_T_STR));
    for (int i = 0; i < nout; i++) field(&f[1 + i], names[i], 0, types[i]);
    dspex_signature *s = dspex_arena_alloc(a, sizeof *s);
    *s = sig_of(f, (size_t)nout + 1, 1, NULL);
    return s;
}

static dspex_type *literal_ab(dspex_arena *a) {
    dspex_val *v[3] = {S(a, "yes"), S(a, "no way"), dspex_val_int(a, 1)};
    return dspex_type_literal(a, v, 3);
}

CTEST(chat_layout_language) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    dspex_gvocab *gv = test_vocab();
    const char *names[] = {"reasoning", "answer", "n"};
    dspex_type *types[] = {T(&a, DSPEX_T_STR), literal_ab(&a), T(&a, DSPEX_T_INT)};
    dspex_signature *sig = outputs_sig(&a, 3, names, types);
    char err[256];
    dspex_grammar *g = dspex_grammar_adapter(DXA_CHAT, sig, gv, NULL, err, sizeof err);
    CHECK(g != NULL);
    if (g) {
        CHECK(m(g, "[[ ## reasoning ## ]]\nBecause.\n\n[[ ## answer ## ]]\nyes\n\n[[ ## n ## ]]\n-3\n\n"
                   "[[ ## completed ## ]]") == 2);
        CHECK(m(g, "[[ ## reasoning ## ]]\nline one\n  line [two]\n[[ ## answer ## ]]\nno way\n[[ ## n ## ]]\n0\n\n"
                   "[[ ## completed ## ]]\n") == 2);
        CHECK(m(g, "[[ ## reasoning ## ]]\n [x\n\n[[ ## answer ## ]]\nyes\n\n[[ ## n ## ]]\n1\n\n[[ ## completed ## ]]") ==
              0); /* a value starts with a visible character */
        CHECK(m(g, "[[ ## reasoning ## ]]\nsee [[ here\n\n[[ ## answer ## ]]") == 0);     /* no "[[" in text */
        CHECK(m(g, " [[ ## reasoning ## ]]\nok") == 0); /* DSPy would leak "]" into the value */
        CHECK(m(g, "[[ ## reasoning ## ]]\nok\n\n[[ ## answer ## ]]\n1\n") == 0);          /* int literal: never parses */
        CHECK(m(g, "[[ ## reasoning ## ]]\nok\n\n[[ ## answer ## ]]\nyes\n\n[[ ## n ## ]]\n1.5") == 0);
        CHECK(m(g, "[[ ## reasoning ## ]]\nok\n\n[[ ## answer ## ]]\nyes\n\n[[ ## completed ## ]]") == 0);
        dspex_grammar_release(g);
    }
    dspex_gvocab_release(gv);
    dspex_arena_free(&a);
}

/* Every type DSPy's adapters parse, sampled with random logits many times: each output
 * ends complete and parses with the adapter's own parser. */
CTEST(random_sampling_always_parses) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    dspex_gvocab *gv = test_vocab();
    dspex_type *dict = T(&a, DSPEX_T_DICT);
    dict->args = dspex_arena_alloc(&a, 2 * sizeof(dspex_type *));
    dict->args[0] = T(&a, DSPEX_T_STR);
    dict->args[1] = T(&a, DSPEX_T_INT);
    dict->nargs = 2;
    dspex_type *opt = OPT(&a, T(&a, DSPEX_T_FLOAT));
    const char *names[] = {"reasoning", "answer", "score", "ok", "choice", "items", "table", "maybe", "anything"};
    dspex_type *types[] = {T(&a, DSPEX_T_STR),  T(&a, DSPEX_T_INT),  T(&a, DSPEX_T_FLOAT), T(&a, DSPEX_T_BOOL), literal_ab(&a),
                         T1(&a, DSPEX_T_LIST, T(&a, DSPEX_T_STR)), dict, opt, T(&a, DSPEX_T_DICT)};
    dspex_signature *sig = outputs_sig(&a, 9, names, types);
    size_t nout = 9;
    for (int ad = 0; ad < 2; ad++) {
        char err[256];
        dspex_grammar *g = dspex_grammar_adapter(ad ? DXA_JSON : DXA_CHAT, sig, gv, NULL, err, sizeof err);
        CHECK(g != NULL);
        if (g == NULL) {
            fprintf(stderr, "  %s\n", err);
            continue;
        }
        int ended = 0;
        for (uint64_t seed = 1; seed <= 40; seed++) {
            dspex_buf out;
            dspex_buf_init(&out);
            int budget = 240 + (int)(seed % 5) * 60; /* the shortest output is 215 bytes */
            int rc = sample(g, gv, seed, budget, &out);
            CHECK(rc != 0);
            ended += rc == 1;
            CHECK(dspex_grammar_match(g, out.p ? out.p : "", out.len, NULL) == 2);
            dspex_arena pa;
            dspex_arena_init(&pa, 0);
            dspex_val **vals = dspex_arena_alloc(&pa, nout * sizeof(dspex_val *));
            dxa_out *how = dspex_arena_alloc(&pa, nout * sizeof(dxa_out));
            dxa_err *e = dspex_arena_alloc(&pa, sizeof(dxa_err));
            int prc = dxa_parse(ad ? DXA_JSON : DXA_CHAT, sig, out.p ? out.p : "", out.len, &pa, vals, how, e);
            if (prc != 0) fprintf(stderr, "  adapter %d seed %llu: %s\n--\n%s\n--\n", ad, (unsigned long long)seed,
                                  e->message, out.p ? out.p : "");
            CHECK(prc == 0);
            dspex_arena_free(&pa);
            dspex_buf_free(&out);
        }
        CHECK(ended > 0);
        dspex_grammar_stats st;
        dspex_grammar_get_stats(g, &st);
        CHECK(st.masks > 0 && st.cache_entries > 0);
        dspex_grammar_release(g);
    }
    dspex_gvocab_release(gv);
    dspex_arena_free(&a);
}

CTEST(random_sampling_json_schemas) {
    dspex_gvocab *gv = test_vocab();
    static const char *const schemas[] = {
        "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":\"integer\","
        "\"minimum\":0,\"maximum\":150},\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"a\",\"b\"]},"
        "\"maxItems\":3},\"address\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},"
        "\"zip\":{\"type\":\"string\",\"pattern\":\"^[0-9]{5}$\"}},\"required\":[\"city\",\"zip\"]}},"
        "\"required\":[\"name\",\"age\",\"address\"]}",
        "true",
        "{\"type\":\"object\"}",
        "{\"$defs\":{\"N\":{\"type\":\"object\",\"properties\":{\"k\":{\"type\":\"array\",\"items\":"
        "{\"$ref\":\"#/$defs/N\"}}}}},\"$ref\":\"#/$defs/N\"}",
        "{\"type\":\"array\",\"items\":{\"type\":\"number\",\"minimum\":-1,\"maximum\":1},\"minItems\":1}",
    };
    for (size_t i = 0; i < sizeof schemas / sizeof schemas[0]; i++) {
        char err[256];
        dspex_grammar *g = schema_g(gv, schemas[i], err);
        CHECK(g != NULL);
        if (g == NULL) {
            fprintf(stderr, "  schema %zu: %s\n", i, err);
            continue;
        }
        for (uint64_t seed = 1; seed <= 25; seed++) {
            dspex_buf out;
            dspex_buf_init(&out);
            int rc = sample(g, gv, seed * 7 + i, 150, &out);
            CHECK(rc != 0);
            char msg[192];
            int ok = dspex_json_validate(out.p ? out.p : "", out.len, 0, msg, sizeof msg, NULL) == 0;
            if (!ok) fprintf(stderr, "  schema %zu seed %llu: %s\n%s\n", i, (unsigned long long)seed, msg, out.p);
            CHECK(ok);
            CHECK(dspex_grammar_match(g, out.p ? out.p : "", out.len, NULL) == 2);
            dspex_buf_free(&out);
        }
        dspex_grammar_release(g);
    }
    dspex_gvocab_release(gv);
}

CTEST(budget_forces_completion) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    dspex_gvocab *gv = test_vocab();
    const char *names[] = {"reasoning", "answer"};
    dspex_type *types[] = {T(&a, DSPEX_T_STR), T(&a, DSPEX_T_STR)};
    dspex_signature *sig = outputs_sig(&a, 2, names, types);
    char err[256];
    dspex_grammar *g = dspex_grammar_adapter(DXA_CHAT, sig, gv, NULL, err, sizeof err);
    CHECK(g != NULL);
    /* the shortest output is 81 bytes; with 90 tokens the text must close early */
    for (uint64_t seed = 1; seed <= 20 && g; seed++) {
        dspex_buf out;
        dspex_buf_init(&out);
        sample(g, gv, seed, 90, &out);
        CHECK(dspex_grammar_match(g, out.p ? out.p : "", out.len, NULL) == 2);
        dspex_buf_free(&out);
    }
    dspex_grammar_release(g);
    dspex_gvocab_release(gv);
    dspex_arena_free(&a);
}

CTEST(hostile_schemas) {
    dspex_gvocab *gv = test_vocab();
    char err[256];
    /* nesting beyond 64 */
    dspex_buf s;
    dspex_buf_init(&s);
    for (int i = 0; i < 100; i++) dspex_buf_puts(&s, "{\"type\":\"array\",\"items\":");
    dspex_buf_puts(&s, "{\"type\":\"integer\"}");
    for (int i = 0; i < 100; i++) dspex_buf_putc(&s, '}');
    dspex_grammar *g = dspex_grammar_json_schema(s.p, s.len, gv, NULL, err, sizeof err);
    CHECK(g == NULL && strstr(err, "nested") != NULL);
    /* a huge enum: compiles within the limits (or says which limit), never hangs */
    s.len = 0;
    dspex_buf_puts(&s, "{\"enum\":[");
    for (int i = 0; i < 20000; i++) dspex_buf_printf(&s, "%s\"value-%d-%x\"", i ? "," : "", i, i * 2654435761u);
    dspex_buf_puts(&s, "]}");
    g = dspex_grammar_json_schema(s.p, s.len, gv, NULL, err, sizeof err);
    CHECK(g != NULL);
    if (g) {
        CHECK(m(g, "\"value-19999-4a2f8a5f\"") == 2 || m(g, "\"value-0-0\"") == 2);
        dspex_grammar_release(g);
    }
    /* a tight memory budget gives a clear error */
    dspex_grammar_limits lim = dspex_grammar_default_limits();
    lim.max_bytes = 1 << 16;
    g = dspex_grammar_json_schema(s.p, s.len, gv, &lim, err, sizeof err);
    CHECK(g == NULL && strstr(err, "too large") != NULL);
    dspex_buf_free(&s);
    static const struct {
        const char *schema, *want;
    } bad[] = {
        {"{\"$ref\":\"#/$defs/Missing\"}", "does not resolve"},
        {"{\"$ref\":\"http://x/y.json\"}", "only local"},
        {"{\"$defs\":{\"L\":{\"type\":\"object\",\"properties\":{\"n\":{\"$ref\":\"#/$defs/L\"}},\"required\":[\"n\"]}},"
         "\"$ref\":\"#/$defs/L\"}",
         "admits no value"},
        {"{\"type\":\"array\",\"maxItems\":1000000000}", "maxItems"},
        {"{\"type\":\"wat\"}", "unknown type"},
        {"{\"type\":\"object\",\"properties\":{},\"required\":[\"x\"],\"additionalProperties\":false}", "required"},
        {"[1,2", "not valid JSON"},
        {"false", "admits no value"},
        {"{\"anyOf\":[]}", "anyOf"},
        {"{\"type\":\"string\",\"minLength\":-1}", "minLength"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g = schema_g(gv, bad[i].schema, err);
        if (g != NULL || strstr(err, bad[i].want) == NULL) fprintf(stderr, "  bad %zu: %s\n", i, g ? "compiled" : err);
        CHECK(g == NULL && strstr(err, bad[i].want) != NULL);
        dspex_grammar_release(g);
    }
    /* generic JSON nesting is bounded by json_depth */
    g = schema_g(gv, "{}", err);
    CHECK(g != NULL);
    if (g) {
        CHECK(m(g, "[[[[[[[[[[[[1]]]]]]]]]]]]") == 2);   /* 12 levels */
        CHECK(m(g, "[[[[[[[[[[[[[1]]]]]]]]]]]]]") == 0); /* 13 */
        dspex_grammar_release(g);
    }
    dspex_gvocab_release(gv);
}

CTEST(matcher_rejects_and_fails_safe) {
    dspex_gvocab *gv = test_vocab();
    char err[256];
    dspex_grammar *g = schema_g(gv, "{\"type\":\"boolean\"}", err);
    CHECK(g != NULL);
    dspex_matcher *mt = dspex_matcher_new(g, 0);
    CHECK(dspex_matcher_accept(mt, 't') == 0);
    CHECK(!dspex_matcher_can_end(mt));
    CHECK(dspex_matcher_remaining(mt) == 3);
    CHECK(dspex_matcher_accept(mt, 'x') == -1 && dspex_matcher_failed(mt));
    /* a failed matcher allows only end-of-generation */
    int32_t n = dspex_gvocab_size(gv);
    float *lg = calloc((size_t)n + 5, sizeof(float));
    dspex_matcher_mask(mt, lg, n + 5, 2);
    int allowed = 0;
    for (int32_t t = 0; t < n + 5; t++) allowed += lg[t] != -INFINITY;
    CHECK(allowed == 1 && lg[n - 1] == 0.0f);
    dspex_matcher_free(mt);
    free(lg);
    dspex_grammar_release(g);
    dspex_gvocab_release(gv);
}

int main(void) { return ctest_run(); }
