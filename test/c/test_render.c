/* Unit tests for the adapter rendering core (render.c, jsonschema.c, pyvalue.c). */
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "adapter_builders.h"

static dxa_val *S(dspex_arena *a, const char *s) { return dxa_val_str(a, s, strlen(s)); }

static dxa_val *dict(dspex_arena *a, size_t n, const char **keys, dxa_val **vals) {
    dxa_val *d = dxa_val_new(a, DXA_DICT);
    d->keys = dspex_arena_alloc(a, (n + 1) * sizeof(dxa_val *));
    d->items = dspex_arena_alloc(a, (n + 1) * sizeof(dxa_val *));
    for (size_t i = 0; i < n; i++) {
        d->keys[i] = S(a, keys[i]);
        d->items[i] = vals[i];
    }
    d->n = n;
    return d;
}

static const char *repr(double d, char *out) {
    dspex_buf b;
    dspex_buf_init(&b);
    dxa_float_repr(d, &b);
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
    dxa_val *l = dxa_val_new(&a, DXA_LIST);
    l->items = dspex_arena_alloc(&a, 2 * sizeof(dxa_val *));
    l->items[l->n++] = dxa_val_new(&a, DXA_NONE);
    l->items[l->n++] = S(&a, "tab\t\"q\"\x01");
    dxa_val *vals[] = {l, dxa_val_new(&a, DXA_BOOL)};
    dxa_val *d = dict(&a, 2, keys, vals);
    dspex_buf b;
    dspex_buf_init(&b);
    dxa_json_dumps(d, -1, &b);
    CHECK_STREQ(b.p, "{\"k\": [null, \"tab\\t\\\"q\\\"\\u0001\"], \"\xc3\xa9\": false}");
    b.len = 0;
    dxa_json_dumps(d, 2, &b);
    CHECK_STREQ(b.p, "{\n  \"k\": [\n    null,\n    \"tab\\t\\\"q\\\"\\u0001\"\n  ],\n  \"\xc3\xa9\": false\n}");
    dspex_buf_free(&b);
    dspex_arena_free(&a);
}

CTEST(type_names_and_schemas) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    dspex_buf b;
    dspex_buf_init(&b);
    dxa_type *opt = T1(&a, DXT_OPTIONAL, T1(&a, DXT_LIST, T(&a, DXT_STR)));
    dxa_type_name(opt, &b);
    CHECK_STREQ(b.p, "Union[list[str], NoneType]");
    b.len = 0;
    CHECK(dxa_json_schema(opt, &a, &b) == 0);
    CHECK_STREQ(b.p, "{\"anyOf\": [{\"type\": \"array\", \"items\": {\"type\": \"string\"}}, {\"type\": \"null\"}]}");
    b.len = 0;
    dxa_type *e = T(&a, DXT_ENUM);
    e->enum_name = "Color";
    e->enum_vals = dspex_arena_alloc(&a, 2 * sizeof(dxa_val *));
    e->enum_vals[e->nenum++] = S(&a, "red");
    e->enum_vals[e->nenum++] = S(&a, "green");
    CHECK(dxa_json_schema(T1(&a, DXT_LIST, e), &a, &b) == 0);
    CHECK_STREQ(b.p, "{\"type\": \"array\", \"$defs\": {\"Color\": {\"type\": \"string\", \"enum\": [\"red\", \"green\"], "
                     "\"title\": \"Color\"}}, \"items\": {\"$ref\": \"#/$defs/Color\"}}");
    b.len = 0;
    dxa_type *lit = T(&a, DXT_LITERAL);
    lit->lits = dspex_arena_alloc(&a, 2 * sizeof(dxa_val *));
    lit->lits[lit->nlits++] = S(&a, "it's");
    lit->lits[lit->nlits++] = S(&a, "b");
    dxa_type_name(lit, &b);
    CHECK_STREQ(b.p, "Literal[\"it's\", 'b']");
    dspex_buf_free(&b);
    dspex_arena_free(&a);
}

CTEST(chat_format_basic) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    dxa_field f[2];
    field(&f[0], "question", 1, T(&a, DXT_STR));
    field(&f[1], "answer", 0, T(&a, DXT_INT));
    dxa_sig sig = {.instructions = "Answer.", .instructions_len = 7, .fields = f, .nfields = 2, .ninputs = 1};
    const char *k[] = {"question"};
    dxa_val *v[] = {S(&a, "2+2?")};
    dxa_val *inputs = dict(&a, 1, k, v);
    dxa_msgs m;
    CHECK(dxa_format(DXA_CHAT, &sig, NULL, 0, inputs, &a, &m) == 0);
    CHECK(m.n == 2);
    CHECK_STREQ(m.msgs[0].content,
                "Your input fields are:\n1. `question` (str):\nYour output fields are:\n1. `answer` (int):\n"
                "All interactions will be structured in the following way, with the appropriate values filled in.\n\n"
                "[[ ## question ## ]]\n{question}\n\n[[ ## answer ## ]]\n{answer}        # note: the value you produce "
                "must be a single int value\n\n[[ ## completed ## ]]\nIn adhering to this structure, your objective is: "
                "\n        Answer.");
    CHECK_STREQ(m.msgs[1].content,
                "[[ ## question ## ]]\n2+2?\n\nRespond with the corresponding output fields, starting with the field "
                "`[[ ## answer ## ]]` (must be formatted as a valid Python int), and then ending with the marker for "
                "`[[ ## completed ## ]]`.");
    CHECK(m.msgs[0].role == DXA_ROLE_SYSTEM && m.msgs[1].role == DXA_ROLE_USER);
    dspex_arena_free(&a);
}

CTEST(demos_incomplete_first_and_blobs) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    dxa_field f[2];
    field(&f[0], "passages", 1, T(&a, DXT_STR));
    field(&f[1], "answer", 0, T(&a, DXT_STR));
    dxa_sig sig = {.instructions = "", .fields = f, .nfields = 2, .ninputs = 1};
    dxa_val *l = dxa_val_new(&a, DXA_LIST);
    l->items = dspex_arena_alloc(&a, 2 * sizeof(dxa_val *));
    l->items[l->n++] = S(&a, "one");
    l->items[l->n++] = S(&a, "two\nlines");
    const char *k2[] = {"passages", "answer"};
    dxa_val *v2[] = {l, S(&a, "ok")};
    dxa_val *complete = dict(&a, 2, k2, v2);
    dxa_val *v3[] = {S(&a, "p"), dxa_val_new(&a, DXA_NONE)};
    dxa_val *incomplete = dict(&a, 2, k2, v3);
    dxa_val *demos[] = {complete, incomplete};
    dxa_val *inputs = dict(&a, 0, NULL, NULL);
    dxa_msgs m;
    CHECK(dxa_format(DXA_CHAT, &sig, demos, 2, inputs, &a, &m) == 0);
    CHECK(m.n == 6);
    CHECK_STREQ(m.msgs[1].content,
                "This is an example of the task, though some input or output fields are not supplied.\n\n"
                "[[ ## passages ## ]]\np");
    CHECK_STREQ(m.msgs[2].content, "[[ ## answer ## ]]\nNone\n\n[[ ## completed ## ]]\n");
    CHECK_STREQ(m.msgs[3].content,
                "[[ ## passages ## ]]\n[1] \xc2\xabone\xc2\xbb\n[2] \xc2\xab\xc2\xab\xc2\xab\n    two\n    lines\n"
                "\xc2\xbb\xc2\xbb\xc2\xbb");
    CHECK_STREQ(m.msgs[5].content,
                "Respond with the corresponding output fields, starting with the field `[[ ## answer ## ]]`, and then "
                "ending with the marker for `[[ ## completed ## ]]`.");
    dspex_arena_free(&a);
}

CTEST(dedent_and_splitlines) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    size_t n;
    const char *src = "    a\n\n      b\n    \n    c";
    char *d = dxa_dedent(&a, src, strlen(src), &n);
    CHECK_STREQ(d, "a\n\n  b\n\nc");
    const char **lines;
    size_t *lens;
    const char *t = "x\r\ny\rz\xe2\x80\xa8w\n";
    CHECK(dxa_splitlines(&a, t, strlen(t), &lines, &lens) == 4);
    CHECK(lens[3] == 1 && lines[3][0] == 'w');
    const char *s = "\xe3\x80\x80 hi \xc2\xa0";
    size_t sn = strlen(s);
    dxa_pystrip(&s, &sn);
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
