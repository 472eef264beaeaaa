/* Unit tests for the JSON repair core (c_src/core/json/repair.c). */
#include "ctest.h"
#include "dspex/repair.h"

#include <stdlib.h>
#include <string.h>

/* Repairs s; returns a malloc'd copy of the output or NULL on error. */
static char *rep(const char *s) {
    dspex_repair_result r;
    if (dspex_json_repair(s, strlen(s), NULL, &r) != DSPEX_REPAIR_OK) return NULL;
    return r.out; /* caller frees */
}

#define CHECK_REPAIR(in, want)                   \
    do {                                         \
        char *got_ = rep(in);                    \
        CHECK_STREQ(got_, want);                 \
        free(got_);                              \
    } while (0)

#define CHECK_REPAIR_FAILS(in)                   \
    do {                                         \
        char *got_ = rep(in);                    \
        CHECK(got_ == NULL);                     \
        free(got_);                              \
    } while (0)

CTEST(valid_json_is_copied_byte_for_byte) {
    CHECK_REPAIR("{\"a\": [1, 2.5e3, \"x\\u00e9\", true, null]}", "{\"a\": [1, 2.5e3, \"x\\u00e9\", true, null]}");
    CHECK_REPAIR("  [ 1 ,\n 2 ]  ", "  [ 1 ,\n 2 ]  ");
    dspex_repair_result r;
    CHECK(dspex_json_repair("{}", 2, NULL, &r) == 0);
    CHECK(r.repaired == 0);
    dspex_repair_result_free(&r);
}

CTEST(validator) {
    const char *ok = "{\"a\":[1,-0.5e+3,\"\\n\"]}";
    CHECK(dspex_json_is_valid(ok, strlen(ok), 0));
    CHECK(!dspex_json_is_valid("{\"a\":01}", 8, 0));
    CHECK(!dspex_json_is_valid("[1,]", 4, 0));
    CHECK(!dspex_json_is_valid("\"\xff\"", 3, 0));
    CHECK(!dspex_json_is_valid("[[[]]]", 6, 2));
    CHECK(!dspex_json_is_valid("", 0, 0));
}

CTEST(quotes_keys_and_python_constants) {
    CHECK_REPAIR("{'a':'foo'}", "{\"a\":\"foo\"}");
    CHECK_REPAIR("{a: 2}", "{\"a\": 2}");
    CHECK_REPAIR("{\"a\": None, \"b\": True, \"c\": False, \"d\": undefined}",
                 "{\"a\": null, \"b\": true, \"c\": false, \"d\": null}");
    CHECK_REPAIR("{\xe2\x80\x9c" "a\xe2\x80\x9d:\xe2\x80\x9c" "b\xe2\x80\x9d}", "{\"a\":\"b\"}");
    CHECK_REPAIR("'Double \" quote'", "\"Double \\\" quote\"");
}

CTEST(commas_colons_and_closers) {
    CHECK_REPAIR("[1,2,3,]", "[1,2,3]");
    CHECK_REPAIR("[1,2,3,\n]", "[1,2,3\n]");
    CHECK_REPAIR("{\"a\":2\n\"b\":3\nc:4}", "{\"a\":2,\n\"b\":3,\n\"c\":4}");
    CHECK_REPAIR("{\"a\" \"b\"}", "{\"a\": \"b\"}");
    CHECK_REPAIR("{\"a\":}", "{\"a\":null}");
    CHECK_REPAIR("{\"a\": 1}}]}", "{\"a\": 1}");
    CHECK_REPAIR("[{\"b\":2\n]", "[{\"b\":2}\n]");
}

CTEST(truncated_output_is_closed) {
    CHECK_REPAIR("{\"text\":\"Hello Sergey,I hop", "{\"text\":\"Hello Sergey,I hop\"}");
    CHECK_REPAIR("{\"a\": [1, {\"b\": \"c", "{\"a\": [1, {\"b\": \"c\"}]}");
    CHECK_REPAIR("2.", "2.0");
    CHECK_REPAIR("{\"a\":2e", "{\"a\":2e0}");
    CHECK_REPAIR("-", "-0");
    CHECK_REPAIR("{\"a\":", "{\"a\":null}");
    CHECK_REPAIR("{\"foo\":\"bar\\u20", "{\"foo\":\"bar\"}");
}

CTEST(comments_fences_and_prose) {
    CHECK_REPAIR("{\"a\":\"foo\",/*hello*/\"b\":\"bar\"}", "{\"a\":\"foo\",\"b\":\"bar\"}");
    CHECK_REPAIR("{} // comment", "{} ");
    CHECK_REPAIR("# c\n{\"a\":1}", "\n{\"a\":1}");
    CHECK_REPAIR("```json\n{\"a\":\"b\"}\n```", "\n{\"a\":\"b\"}\n");
    CHECK_REPAIR("Here you go:\n```json\n{\"a\": 1}\n```\nThanks!", "\n{\"a\": 1}\n\n");
    CHECK_REPAIR("The answer is {\"a\": 2} as requested.", "{\"a\": 2} ");
    CHECK_REPAIR("{\"a\":2}foo", "{\"a\":2}");
    CHECK_REPAIR("Code:\n```python\nprint({1: 2})\n```\nResult:\n```json\n{\"a\": 1}\n```", "\n{\"a\": 1}\n");
    CHECK_REPAIR("```python\n{\"a\":\"b\"}\n```", "\n{\"a\":\"b\"}\n");
    CHECK_REPAIR_FAILS("```bash\nls -la\n```");
}

CTEST(wrappers_and_specials) {
    CHECK_REPAIR("callback_123({\"a\":1});", "{\"a\":1}");
    CHECK_REPAIR("{\"_id\":ObjectId(\"123\"), \"n\": NumberLong(2)}", "{\"_id\":\"123\", \"n\": 2}");
    CHECK_REPAIR("\"hello\" + \" world\"", "\"hello world\"");
    CHECK_REPAIR("{\\\"a\\\":\\\"b\\\"}", "{\"a\":\"b\"}");
    CHECK_REPAIR("[1,2,3,...]", "[1,2,3]");
    CHECK_REPAIR("{\"n\": 05}", "{\"n\": \"05\"}");
    CHECK_REPAIR("{url:https://example.com/x?y=1}", "{\"url\":\"https://example.com/x?y=1\"}");
    CHECK_REPAIR("/[a-z]_/", "\"/[a-z]_/\"");
    CHECK_REPAIR("(1, 2)", "[1, 2]");
    CHECK_REPAIR("\"a\x01" "b\"", "\"a\\u0001b\"");
    CHECK_REPAIR("{\"a\":\xc2\xa0\"b\"}", "{\"a\": \"b\"}");
    CHECK_REPAIR("[\"\\udddd\", \"\\ud83d\\ude00\",]", "[\"\\ufffd\", \"\\ud83d\\ude00\"]");
    CHECK_REPAIR("{\"a\"}, \"x\": 1}", "{ \"x\": 1}");
}

/* Inputs the fuzzer once turned into invalid output. */
static void check_valid_repair(int *ctest_failed, const char *in, size_t n) {
    dspex_repair_result r;
    if (dspex_json_repair(in, n, NULL, &r) == 0) CHECK(dspex_json_is_valid(r.out, r.out_len, 100000));
    dspex_repair_result_free(&r);
    for (size_t from = 0; from < n;) {
        if (dspex_json_extract(in, n, from, NULL, &r) != 0) break;
        CHECK(dspex_json_is_valid(r.out, r.out_len, 100000));
        CHECK(r.end > from);
        from = r.end;
        dspex_repair_result_free(&r);
    }
    dspex_repair_result_free(&r);
}

CTEST(fuzz_regressions) {
    static const char a[] = "\x01nned .8\x00" "5,0_56,-, .5070789]";
    static const char b[] = "\"://o*#\x00\x00\x00\xdc? l({/\"a\"://o*,*\x00";
    static const char c[] = "{\"k\":[]\r[][[[[[ft[t[[";
    static const char d[] = "{\"b[: it'\xdf][";
    static const char e[] = "{\"a\"} ,\"x\": 1}";
    static const char f[] = "[\"\\udddd\"]";
    check_valid_repair(ctest_failed, a, sizeof(a) - 1);
    check_valid_repair(ctest_failed, b, sizeof(b) - 1);
    check_valid_repair(ctest_failed, c, sizeof(c) - 1);
    check_valid_repair(ctest_failed, d, sizeof(d) - 1);
    check_valid_repair(ctest_failed, e, sizeof(e) - 1);
    check_valid_repair(ctest_failed, f, sizeof(f) - 1);
    CHECK_REPAIR("[0_56]", "[\"0_56\"]");
    CHECK_REPAIR("{\"v\": 1_234.5}", "{\"v\": 1234.5}");
}

CTEST(several_values) {
    CHECK_REPAIR("1\n2", "[\n1,\n2\n]");
    CHECK_REPAIR("{\"a\":2}{\"b\":3}", "[\n{\"a\":2},{\"b\":3}\n]");
    CHECK_REPAIR("{\"a\": 1}\n\nI hope this helps!", "{\"a\": 1}\n\n");
}

CTEST(unescaped_quotes) {
    CHECK_REPAIR("{\"key\": \"apple \"bee\" carrot\"}", "{\"key\": \"apple \\\"bee\\\" carrot\"}");
    CHECK_REPAIR("{a:\"b,c,\"d\":\"e\"}", "{\"a\":\"b,c\",\"d\":\"e\"}");
    CHECK_REPAIR("\"The TV has a 24\" screen\"", "\"The TV has a 24\\\" screen\"");
}

CTEST(errors_and_limits) {
    CHECK_REPAIR_FAILS("");
    CHECK_REPAIR_FAILS("   ");
    CHECK_REPAIR_FAILS("{:2}");
    dspex_repair_result r;
    dspex_repair_opts o;
    dspex_repair_opts_init(&o);
    o.max_depth = 8;
    const char *deep = "[[[[[[[[[[1]]]]]]]]]]";
    CHECK(dspex_json_repair(deep, strlen(deep), &o, &r) == DSPEX_REPAIR_ERR_DEPTH);
    CHECK(r.out == NULL);
    const char *deep2 = "[[[[[[[[[[1";
    CHECK(dspex_json_repair(deep2, strlen(deep2), &o, &r) == DSPEX_REPAIR_ERR_DEPTH);
    CHECK(r.err_msg != NULL);
}

CTEST(extract_walks_values) {
    const char *t = "First {\"a\": 1} then ```json\n[2, 3]\n``` and {'b': True";
    size_t n = strlen(t), from = 0;
    const char *want[] = {"{\"a\": 1}", "[2, 3]", "{\"b\": true}"};
    for (int k = 0; k < 3; k++) {
        dspex_repair_result r;
        CHECK(dspex_json_extract(t, n, from, NULL, &r) == 0);
        if (r.out) {
            /* trailing whitespace of the value may be kept */
            size_t l = r.out_len;
            while (l && (r.out[l - 1] == ' ' || r.out[l - 1] == '\n')) l--;
            r.out[l] = 0;
            CHECK_STREQ(r.out, want[k]);
        }
        CHECK(r.end > from);
        from = r.end;
        dspex_repair_result_free(&r);
    }
    dspex_repair_result r;
    CHECK(dspex_json_extract(t, n, from, NULL, &r) == DSPEX_REPAIR_ERR_EMPTY);
}

/* extract flags a value that is only prose (unquoted text outside any object or array):
 * DSPex.JSON.extract reports "no JSON value" for it (issue 8 #12). */
static int extract_bare(const char *s, const char *want) {
    dspex_repair_result r;
    int bare = -1;
    if (dspex_json_extract(s, strlen(s), 0, NULL, &r) == DSPEX_REPAIR_OK) {
        bare = r.bare_text;
        if (want && strcmp(r.out, want) != 0) bare = -2;
    }
    dspex_repair_result_free(&r);
    return bare;
}

CTEST(extract_marks_bare_text) {
    CHECK(extract_bare("no json here", NULL) == 1);
    CHECK(extract_bare("The answer is 42.", NULL) == 1);
    CHECK(extract_bare("true story", NULL) == 1);
    CHECK(extract_bare("Hello (world)", NULL) == 1); /* words(...) is not a call with JSON */
    CHECK(extract_bare("https://example.com", NULL) == 1);
    CHECK(extract_bare("42 apples", "42 ") == 0);
    CHECK(extract_bare("None", "null") == 0);
    CHECK(extract_bare("NumberLong(2)", "2") == 0);
    CHECK(extract_bare("\"Paris\"", "\"Paris\"") == 0);
    CHECK(extract_bare("Sure: {\"a\": x}", "{\"a\": \"x\"}") == 0); /* unquoted inside an object */
    CHECK(extract_bare("```json\n42\n```", "42\n") == 0); /* the opening fence is not a closing one */
    CHECK(extract_bare("```\nhello\n```", NULL) == -1); /* no value at all */
}

/* {"a": [1], [2]} continues the array; whether the previous one was empty is recorded,
 * not found by scanning back over its whitespace (quadratic on repeated continuations). */
CTEST(array_continuations) {
    CHECK_REPAIR("{\"a\": [1], [2]}", "{\"a\": [1,2]}");
    CHECK_REPAIR("{\"a\": [], [], [2]}", "{\"a\": [2]}");
    CHECK_REPAIR("{\"a\": [ ], [ ],[]}", "{\"a\": [  ]}");
    CHECK_REPAIR("{\"a\": [1, [2]], [3]}", "{\"a\": [1, [2],3]}");
    CHECK_REPAIR("{\"a\": [...], [4]}", "{\"a\": [4]}");
}

/* String re-parses are bounded (issue 8 #5 follow-up): a run of strings that each read to
 * the end of the input still repairs, into valid JSON. */
CTEST(string_rescans_are_bounded) {
    size_t n = 300000;
    char *b = malloc(n + 16);
    CHECK(b != NULL);
    if (b == NULL) return;
    size_t o = (size_t)snprintf(b, 16, "{\"a\":[\\\"");
    while (o + 2 < n) {
        memcpy(b + o, ",\xff", 2);
        o += 2;
    }
    dspex_repair_result r;
    CHECK(dspex_json_repair(b, o, NULL, &r) == DSPEX_REPAIR_OK);
    if (r.out) CHECK(dspex_json_is_valid(r.out, r.out_len, 1000));
    dspex_repair_result_free(&r);
    o = 1;
    b[0] = '[';
    while (o + 4 < n) {
        memcpy(b + o, "\"a, ", 4);
        o += 4;
    }
    CHECK(dspex_json_repair(b, o, NULL, &r) == DSPEX_REPAIR_OK);
    if (r.out) CHECK(dspex_json_is_valid(r.out, r.out_len, 1000));
    dspex_repair_result_free(&r);
    free(b);
}

/* Output stays within a constant factor of the input, on every input shape. */
CTEST(output_size_is_bounded) {
    unsigned seed = 12345;
    const char alphabet[] = "{}[]\"':,\n \\/*#-.0123456789eEaZtruefalsnN()+`\x01\xc2\xa0\xe2\x80\x9c";
    char buf[512];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = (size_t)(iter % 300) + 1;
        for (size_t k = 0; k < n; k++) {
            seed = seed * 1103515245u + 12345u;
            buf[k] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }
        dspex_repair_result r;
        if (dspex_json_repair(buf, n, NULL, &r) == 0) {
            CHECK(r.out_len <= 8 * n + 16);
            CHECK(dspex_json_is_valid(r.out, r.out_len, 100000));
            if (!dspex_json_is_valid(r.out, r.out_len, 100000)) {
                fprintf(stderr, "  invalid output for input: %.*s\n  output: %s\n", (int)n, buf, r.out);
                dspex_repair_result_free(&r);
                return;
            }
        }
        dspex_repair_result_free(&r);
    }
}

/* A 1 MB input with a fault every ~50 bytes, and pathological shapes, complete; output
 * stays proportional to the input. */
CTEST(large_faulty_inputs) {
    size_t cap = 1 << 20;
    char *b = malloc(cap + 64);
    CHECK(b != NULL);
    if (!b) return;
    size_t n = 0;
    b[n++] = '[';
    while (n < cap) n += (size_t)snprintf(b + n, 64, "{'k%zu': 'v', b: [1,2,],},\n", n);
    dspex_repair_result r;
    CHECK(dspex_json_repair(b, n, NULL, &r) == 0);
    CHECK(r.out_len < 2 * n);
    dspex_repair_result_free(&r);
    /* an unclosed string followed by comma fragments */
    n = 0;
    b[n++] = '{';
    b[n++] = '"';
    b[n++] = 'a';
    b[n++] = '"';
    b[n++] = ':';
    b[n++] = '"';
    while (n < cap) {
        memcpy(b + n, "x, \"y", 5);
        n += 5;
    }
    CHECK(dspex_json_repair(b, n, NULL, &r) == 0);
    CHECK(r.out_len < 3 * n);
    dspex_repair_result_free(&r);
    /* long whitespace runs before inserted tokens */
    memset(b, ' ', cap);
    b[0] = '[';
    b[1] = '1';
    b[cap - 1] = '2';
    CHECK(dspex_json_repair(b, cap, NULL, &r) == 0);
    CHECK(r.out_len < cap + 16);
    dspex_repair_result_free(&r);
    free(b);
}

int main(void) { return ctest_run(); }
