/* Unit tests for the adapter parsing core (parse.c, pyliteral.c). */
#include <string.h>

#include "ctest.h"
#include "adapter_builders.h"

static int lit(const char *s, dspex_arena *a, dxa_val **v) { return dxa_pyliteral(s, strlen(s), 1, a, v); }

CTEST(pyliteral_json_and_python) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    dxa_val *v;
    CHECK(lit("{'a': [1, 2.5, None, True], \"b\": (1,)}", &a, &v) == 0);
    CHECK(v->kind == DXA_DICT && v->n == 2);
    CHECK(v->items[0]->kind == DXA_LIST && v->items[0]->n == 4);
    CHECK(v->items[0]->items[1]->kind == DXA_FLOAT && v->items[0]->items[1]->f == 2.5);
    CHECK(v->items[0]->items[2]->kind == DXA_NONE);
    CHECK(v->items[0]->items[3]->kind == DXA_BOOL && v->items[0]->items[3]->b == 1);
    CHECK(lit("[1, 2", &a, &v) == 0 && v->n == 2);
    CHECK(lit("1, 2, 3", &a, &v) == 0 && v->kind == DXA_TUPLE && v->n == 3);
    CHECK(lit("0x1F", &a, &v) == 0 && v->kind == DXA_INT && v->i == 31);
    CHECK(lit("1_000", &a, &v) == 0 && v->i == 1000);
    CHECK(lit("'\\u00e9\\n'", &a, &v) == 0 && v->slen == 3 && memcmp(v->s, "\xc3\xa9\n", 3) == 0);
    CHECK(lit("prose then {\"k\": 1} more", &a, &v) == 0 && v->kind == DXA_DICT);
    CHECK(lit("hello", &a, &v) == 1);
    CHECK(lit("", &a, &v) == 1);
    dspex_arena_free(&a);
}

CTEST(pyliteral_depth_is_bounded) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    char deep[2000];
    memset(deep, '[', sizeof deep - 1);
    deep[sizeof deep - 1] = '\0';
    dxa_val *v;
    CHECK(dxa_pyliteral(deep, strlen(deep), 1, &a, &v) == 1);
    dspex_arena_free(&a);
}

CTEST(find_object_balanced) {
    size_t s, e;
    const char *t = "x { {a} y";
    CHECK(dxa_find_object(t, strlen(t), &s, &e) == 0 && s == 4 && e == 7);
    const char *u = "{a{b}c} {d}";
    CHECK(dxa_find_object(u, strlen(u), &s, &e) == 0 && s == 0 && e == 7);
    CHECK(dxa_find_object("none", 4, &s, &e) == 1);
}

CTEST(parse_value_coerces) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    dxa_err err;
    dxa_val *v;
    CHECK(dxa_parse_value(T(&a, DXT_INT), " 42 ", 4, &a, &v, &err) == 0 && v->i == 42);
    CHECK(dxa_parse_value(T(&a, DXT_INT), "3.5", 3, &a, &v, &err) == 1);
    CHECK(dxa_parse_value(T(&a, DXT_BOOL), "yes", 3, &a, &v, &err) == 0 && v->b == 1);
    CHECK(dxa_parse_value(T(&a, DXT_FLOAT), "7", 1, &a, &v, &err) == 0 && v->kind == DXA_FLOAT && v->f == 7.0);
    CHECK(dxa_parse_value(T1(&a, DXT_LIST, T(&a, DXT_STR)), "['a', \"b\"]", 10, &a, &v, &err) == 0 && v->n == 2);
    CHECK(dxa_parse_value(T1(&a, DXT_OPTIONAL, T(&a, DXT_STR)), "None", 4, &a, &v, &err) == 0 && v->kind == DXA_STR);
    dxa_type *l = T(&a, DXT_LITERAL);
    l->lits = dspex_arena_alloc(&a, sizeof(dxa_val *));
    l->lits[l->nlits++] = dxa_val_str(&a, "pos", 3);
    CHECK(dxa_parse_value(l, "Literal['pos']", 14, &a, &v, &err) == 0 && v->slen == 3);
    CHECK(dxa_parse_value(l, "neg", 3, &a, &v, &err) == 1);
    CHECK(strstr(err.message, "'neg' is not one of ('pos',)") != NULL);
    dspex_arena_free(&a);
}

CTEST(chat_parse_sections) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    dxa_field f[3];
    field(&f[0], "q", 1, T(&a, DXT_STR));
    field(&f[1], "answer", 0, T(&a, DXT_STR));
    field(&f[2], "n", 0, T1(&a, DXT_OPTIONAL, T(&a, DXT_INT)));
    dxa_sig sig = {.fields = f, .nfields = 3, .ninputs = 1};
    dxa_val *out[2];
    dxa_err err;
    const char *t = "pre\n[[ ## answer ## ]] first\nsecond  \n[[ ## answer ## ]]\nignored\n[[ ## completed ## ]]";
    CHECK(dxa_parse(DXA_CHAT, &sig, t, strlen(t), &a, out, &err) == 0);
    CHECK(out[0]->slen == 12 && memcmp(out[0]->s, "first\nsecond", 12) == 0);
    CHECK(out[1]->kind == DXA_NONE);
    const char *u = "[[ ## n ## ]]\n5";
    CHECK(dxa_parse(DXA_CHAT, &sig, u, strlen(u), &a, out, &err) == 1);
    CHECK_STREQ(err.message, "Adapter ChatAdapter failed to parse the LM response. \n\nLM Response: [[ ## n ## ]]\n5 \n\n"
                             "Expected to find output fields in the LM response: [answer, n] \n\n"
                             "Actual output fields parsed from the LM response: [n] \n\n");
    dspex_arena_free(&a);
}

CTEST(json_parse_object) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    dxa_field f[2];
    field(&f[0], "q", 1, T(&a, DXT_STR));
    field(&f[1], "n", 0, T(&a, DXT_INT));
    dxa_sig sig = {.fields = f, .nfields = 2, .ninputs = 1};
    dxa_val *out[1];
    dxa_err err;
    const char *t = "Sure:\n```json\n{\"n\": \"12\", \"x\": 1}\n```";
    CHECK(dxa_parse(DXA_JSON, &sig, t, strlen(t), &a, out, &err) == 0 && out[0]->i == 12);
    CHECK(dxa_parse(DXA_JSON, &sig, "nope", 4, &a, out, &err) == 1);
    CHECK(strstr(err.message, "LM response cannot be serialized to a JSON object.") == err.message);
    dspex_arena_free(&a);
}

int main(void) { return ctest_run(); }
