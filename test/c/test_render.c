/* Unit tests for the adapter rendering core (render.c) and the Python text rules it
 * uses (pytext.c). */
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "adapter_builders.h"

static const char *repr(double d, char *out) {
    dspex_buf b;
    dspex_buf_init(&b);
    dspex_py_float(d, &b);
    strcpy(out, b.p);
    dspex_buf_free(&b);
    return out;
}

CTEST(float_repr_matches_python) {
    char t[64];
    CHECK_STREQ(repr(0.1, t), "0.1");
    CHECK_STREQ(repr(1.0, t), "1.0");
    CHECK_STREQ(repr(1e-05, t), "1e-05");
    CHECK_STREQ(repr(0.0001, t), "0.0001");
    CHECK_STREQ(repr(1e16, t), "1e+16");
    CHECK_STREQ(repr(1234567890123456.0, t), "1234567890123456.0");
    CHECK_STREQ(repr(-2.5, t), "-2.5");
    CHECK_STREQ(repr(-0.0, t), "-0.0");
    CHECK_STREQ(repr(1.5e-07, t), "1.5e-07");
    CHECK_STREQ(repr(123456789.125, t), "123456789.125");
    CHECK_STREQ(repr(1e22, t), "1e+22");
}

CTEST(json_dumps_like_python) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    const char *keys[] = {"k", "\xc3\xa9"};
    dspex_val *l = dspex_val_new(&a, DSPEX_V_LIST);
    l->items = dspex_arena_alloc(&a, 2 * sizeof(dspex_val *));
    l->items[l->n++] = dspex_val_new(&a, DSPEX_V_NONE);
    l->items[l->n++] = S(&a, "tab\t\"q\"\x01");
    dspex_val *vals[] = {l, dspex_val_new(&a, DSPEX_V_BOOL)};
    dspex_val *d = dict(&a, 2, keys, vals);
    dspex_buf b;
    dspex_buf_init(&b);
    dspex_json_dumps(d, -1, &b);
    CHECK_STREQ(b.p, "{\"k\": [null, \"tab\\t\\\"q\\\"\\u0001\"], \"\xc3\xa9\": false}");
    b.len = 0;
    dspex_json_dumps(d, 2, &b);
    CHECK_STREQ(b.p, "{\n  \"k\": [\n    null,\n    \"tab\\t\\\"q\\\"\\u0001\"\n  ],\n  \"\xc3\xa9\": false\n}");
    dspex_buf_free(&b);
    dspex_arena_free(&a);
}

CTEST(repr_escapes_non_printables_like_python) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    dspex_buf b;
    dspex_buf_init(&b);
    /* ['a\u200bb', '\xa0', "it's", '\U000f0000'] */
    dspex_val *l = dspex_val_new(&a, DSPEX_V_LIST);
    l->items = dspex_arena_alloc(&a, 4 * sizeof(dspex_val *));
    l->items[l->n++] = S(&a, "a\xe2\x80\x8b" "b");
    l->items[l->n++] = S(&a, "\xc2\xa0");
    l->items[l->n++] = S(&a, "it's");
    l->items[l->n++] = S(&a, "\xf3\xb0\x80\x80\xc3\xa9\x7f");
    dspex_py_repr(l, &b);
    CHECK_STREQ(b.p, "['a\\u200bb', '\\xa0', \"it's\", '\\U000f0000\xc3\xa9\\x7f']");
    b.len = 0;
    dspex_val *fs = dspex_val_new(&a, DSPEX_V_FROZENSET);
    dspex_py_repr(fs, &b);
    CHECK_STREQ(b.p, "frozenset()");
    b.len = 0;
    dspex_val *dt = S(&a, "2024-01-02T03:04:05.000123+02:00");
    dt->kind = DSPEX_V_DATETIME;
    dspex_py_repr(dt, &b);
    CHECK_STREQ(b.p, "datetime.datetime(2024, 1, 2, 3, 4, 5, 123, "
                     "tzinfo=datetime.timezone(datetime.timedelta(seconds=7200)))");
    dspex_buf_free(&b);
    dspex_arena_free(&a);
}

CTEST(cleandoc_like_inspect) {
    const char *cases[][2] = {
        {"  Answer the question.\n    Be brief.\n      Really.\n\n", "Answer the question.\nBe brief.\n  Really."},
        {"\tA\n\t\tB", "A\nB"},
        {"   ", ""},
        {"\n\nLeading blanks.\n", "Leading blanks."},
        {"x\n  \n  y", "x\n\ny"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dspex_buf b;
        dspex_buf_init(&b);
        dspex_py_cleandoc(cases[i][0], strlen(cases[i][0]), &b);
        CHECK_STREQ(b.p ? b.p : "", cases[i][1]);
        dspex_buf_free(&b);
    }
}

CTEST(chat_format_basic) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    dspex_field f[2];
    field(&f[0], "question", 1, T(&a, DSPEX_T_STR));
    field(&f[1], "answer", 0, T(&a, DSPEX_T_INT));
    dspex_signature sig = sig_of(f, 2, 1, "Answer.");
    const char *k[] = {"question"};
    dspex_val *v[] = {S(&a, "2+2?")};
    dspex_val *inputs = dict(&a, 1, k, v);
    dxa_msgs m;
    dspex_buf text;
    dspex_buf_init(&text);
    CHECK(dxa_format(DXA_CHAT, &sig, NULL, NULL, 0, inputs, &a, &text, &m) == 0);
    CHECK(m.n == 2);
    CHECK(m.msgs[0].len == strlen(m.msgs[0].content));
    CHECK_STREQ(m.msgs[0].content,
                "Your input fields are:\n1. `question` (str):\nYour output fields are:\n1. `answer` (int):\n"
                "All interactions will be structured in the following way, with the appropriate values filled in.\n\n"
                "[[ ## question ## ]]\n{question}\n\n[[ ## answer ## ]]\n{answer}        # note: the value you produce "
                "must be a single int value\n\n[[ ## completed ## ]]\nIn adhering to this structure, your objective is: "
                "\n        Answer.");
    CHECK(m.msgs[1].len == strlen("[[ ## question ## ]]\n2+2?\n\nRespond with the corresponding output fields, "
                                  "starting with the field `[[ ## answer ## ]]` (must be formatted as a valid Python "
                                  "int), and then ending with the marker for `[[ ## completed ## ]]`."));
    CHECK(memcmp(m.msgs[1].content, "[[ ## question ## ]]\n2+2?\n\nRespond", 34) == 0);
    CHECK(m.msgs[0].role == DXA_ROLE_SYSTEM && m.msgs[1].role == DXA_ROLE_USER);
    dspex_buf_free(&text);
    dspex_arena_free(&a);
}

/* message i as a NUL-terminated copy (contents share one buffer, unterminated) */
static const char *msg(dspex_arena *a, const dxa_msgs *m, size_t i) {
    return dspex_arena_strndup(a, m->msgs[i].content, m->msgs[i].len);
}

CTEST(demos_incomplete_first_and_blobs) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    dspex_field f[2];
    field(&f[0], "passages", 1, T(&a, DSPEX_T_STR));
    field(&f[1], "answer", 0, T(&a, DSPEX_T_STR));
    dspex_signature sig = sig_of(f, 2, 1, "");
    dspex_val *l = dspex_val_new(&a, DSPEX_V_LIST);
    l->items = dspex_arena_alloc(&a, 2 * sizeof(dspex_val *));
    l->items[l->n++] = S(&a, "one");
    l->items[l->n++] = S(&a, "two\nlines");
    const char *k2[] = {"passages", "answer"};
    dspex_val *v2[] = {l, S(&a, "ok")};
    dspex_val *complete = dict(&a, 2, k2, v2);
    dspex_val *v3[] = {S(&a, "p"), dspex_val_new(&a, DSPEX_V_NONE)};
    dspex_val *incomplete = dict(&a, 2, k2, v3);
    dspex_val *demos[] = {complete, incomplete};
    dspex_val *inputs = dict(&a, 0, NULL, NULL);
    dxa_msgs m;
    dspex_buf text;
    dspex_buf_init(&text);
    CHECK(dxa_format(DXA_CHAT, &sig, NULL, demos, 2, inputs, &a, &text, &m) == 0);
    CHECK(m.n == 6);
    CHECK_STREQ(msg(&a, &m, 1),
                "This is an example of the task, though some input or output fields are not supplied.\n\n"
                "[[ ## passages ## ]]\np");
    CHECK_STREQ(msg(&a, &m, 2), "[[ ## answer ## ]]\nNone\n\n[[ ## completed ## ]]\n");
    CHECK_STREQ(msg(&a, &m, 3),
                "[[ ## passages ## ]]\n[1] \xc2\xabone\xc2\xbb\n[2] \xc2\xab\xc2\xab\xc2\xab\n    two\n    lines\n"
                "\xc2\xbb\xc2\xbb\xc2\xbb");
    CHECK_STREQ(msg(&a, &m, 5),
                "Respond with the corresponding output fields, starting with the field `[[ ## answer ## ]]`, and then "
                "ending with the marker for `[[ ## completed ## ]]`.");
    dspex_buf_free(&text);
    dspex_arena_free(&a);
}

CTEST(dedent_and_splitlines) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    size_t n;
    const char *src = "    a\n\n      b\n    \n    c";
    char *d = dspex_py_dedent(&a, src, strlen(src), &n);
    CHECK_STREQ(d, "a\n\n  b\n\nc");
    const char **lines;
    size_t *lens;
    const char *t = "x\r\ny\rz\xe2\x80\xa8w\n";
    CHECK(dspex_py_splitlines(&a, t, strlen(t), &lines, &lens) == 4);
    CHECK(lens[3] == 1 && lines[3][0] == 'w');
    const char *s = "\xe3\x80\x80 hi \xc2\xa0";
    size_t sn = strlen(s);
    dspex_py_strip(&s, &sn);
    CHECK(sn == 2 && memcmp(s, "hi", 2) == 0);
    dspex_arena_free(&a);
}

CTEST(arena_limit_reports_oom) {
    dspex_arena a;
    dspex_arena_init(&a, 64);
    CHECK(dspex_arena_alloc(&a, 32) != NULL);
    CHECK(dspex_arena_alloc(&a, 64) == NULL);
    dspex_arena_free(&a);
}

CTEST(arena_borrowed_first_chunk) {
    unsigned char stack[1024];
    dspex_arena a;
    dspex_arena_init_buf(&a, 0, stack, sizeof stack);
    void *p = dspex_arena_alloc(&a, 64);
    CHECK(p != NULL && (unsigned char *)p > stack && (unsigned char *)p < stack + sizeof stack);
    void *q = dspex_arena_alloc(&a, 4096); /* spills into a malloc'd chunk */
    CHECK(q != NULL && ((unsigned char *)q < stack || (unsigned char *)q >= stack + sizeof stack));
    dspex_arena_free(&a);
}

int main(void) { return ctest_run(); }
