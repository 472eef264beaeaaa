/* Unit tests for the adapter parsing core (parse.c, validate.c, pyliteral.c). */
#include <string.h>

#include "ctest.h"
#include "adapter_builders.h"

static int lit(const char *s, dspex_arena *a, dspex_val **v) { return dxa_pyliteral(s, strlen(s), 1, a, v); }

CTEST(pyliteral_json_and_python) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    dspex_val *v;
    CHECK(lit("{'a': [1, 2.5, None, True], \"b\": (1,)}", &a, &v) == 0);
    CHECK(v->kind == DSPEX_V_DICT && v->n == 2);
    CHECK(v->items[0]->kind == DSPEX_V_LIST && v->items[0]->n == 4);
    CHECK(v->items[0]->items[1]->kind == DSPEX_V_FLOAT && v->items[0]->items[1]->f == 2.5);
    CHECK(v->items[0]->items[2]->kind == DSPEX_V_NONE);
    CHECK(v->items[0]->items[3]->kind == DSPEX_V_BOOL && v->items[0]->items[3]->b == 1);
    CHECK(lit("[1, 2", &a, &v) == 0 && v->n == 2);
    CHECK(lit("1, 2, 3", &a, &v) == 0 && v->kind == DSPEX_V_TUPLE && v->n == 3);
    CHECK(lit("0x1F", &a, &v) == 0 && v->kind == DSPEX_V_INT && v->i == 31);
    CHECK(lit("1_000", &a, &v) == 0 && v->i == 1000);
    CHECK(lit("'\\u00e9\\n'", &a, &v) == 0 && v->slen == 3 && memcmp(v->s, "\xc3\xa9\n", 3) == 0);
    CHECK(lit("prose then {\"k\": 1} more", &a, &v) == 0 && v->kind == DSPEX_V_DICT);
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
    dspex_val *v;
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
    dspex_val *v;
    CHECK(dxa_parse_value(T(&a, DSPEX_T_INT), " 42 ", 4, &a, &v, &err) == 0 && v->i == 42);
    CHECK(dxa_parse_value(T(&a, DSPEX_T_INT), "3.5", 3, &a, &v, &err) == 1);
    CHECK(dxa_parse_value(T(&a, DSPEX_T_BOOL), "yes", 3, &a, &v, &err) == 0 && v->b == 1);
    CHECK(dxa_parse_value(T(&a, DSPEX_T_FLOAT), "7", 1, &a, &v, &err) == 0 && v->kind == DSPEX_V_FLOAT && v->f == 7.0);
    CHECK(dxa_parse_value(T1(&a, DSPEX_T_LIST, T(&a, DSPEX_T_STR)), "['a', \"b\"]", 10, &a, &v, &err) == 0 && v->n == 2);
    CHECK(dxa_parse_value(OPT(&a, T(&a, DSPEX_T_STR)), "None", 4, &a, &v, &err) == 0 && v->kind == DSPEX_V_STR);
    dspex_val *pos = dspex_val_str(&a, "pos", 3);
    dspex_type *l = dspex_type_literal(&a, &pos, 1);
    CHECK(dxa_parse_value(l, "Literal['pos']", 14, &a, &v, &err) == 0 && v->slen == 3);
    CHECK(dxa_parse_value(l, "neg", 3, &a, &v, &err) == 1);
    CHECK(strstr(err.message, "'neg' is not one of ('pos',)") != NULL);
    /* an integer beyond 64 bits in a quoted string keeps its digits */
    CHECK(dxa_parse_value(T(&a, DSPEX_T_INT), "\"99999999999999999999\"", 22, &a, &v, &err) == 0);
    CHECK(v->s != NULL && v->slen == 20 && memcmp(v->s, "99999999999999999999", 20) == 0);
    /* nested sets stay sets */
    CHECK(dxa_parse_value(T1(&a, DSPEX_T_LIST, T1(&a, DSPEX_T_SET, T(&a, DSPEX_T_INT))), "[[1, 1, 2]]", 11, &a, &v,
                          &err) == 0);
    CHECK(v->n == 1 && v->items[0]->kind == DSPEX_V_SET && v->items[0]->n == 2);
    /* datetimes come out in Python's isoformat */
    CHECK(dxa_parse_value(T(&a, DSPEX_T_DATETIME), "2024-01-02 03:04:05Z", 20, &a, &v, &err) == 0);
    CHECK(v->kind == DSPEX_V_DATETIME && v->slen == 25 && memcmp(v->s, "2024-01-02T03:04:05+00:00", 25) == 0);
    CHECK(dxa_parse_value(T(&a, DSPEX_T_DATE), "2024-02-30", 10, &a, &v, &err) == 1);
    dspex_arena_free(&a);
}

CTEST(smart_unions_prefer_an_exact_match) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    dxa_err err;
    dspex_val *v;
    /* Union[float, int] with 7 is 7 (pydantic's smart mode), not 7.0 */
    dspex_type *fi[] = {T(&a, DSPEX_T_FLOAT), T(&a, DSPEX_T_INT)};
    CHECK(dxa_parse_value(dspex_type_union(&a, fi, 2, 0), "7", 1, &a, &v, &err) == 0 && v->kind == DSPEX_V_INT);
    /* Union[int, bool, str, None] with JSON false is False */
    dspex_type *ibs[] = {T(&a, DSPEX_T_INT), T(&a, DSPEX_T_BOOL), T(&a, DSPEX_T_STR), T(&a, DSPEX_T_NONE)};
    dspex_val f = {.kind = DSPEX_V_BOOL};
    CHECK(dxa_validate(dspex_type_union(&a, ibs, 4, 0), &f, &a, &v, &err) == 0 && v->kind == DSPEX_V_BOOL);
    dspex_arena_free(&a);
}

CTEST(enum_by_value_then_name) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    dxa_err err;
    dspex_val *v;
    dspex_type *e = T(&a, DSPEX_T_ENUM);
    e->name = "Level";
    e->name_len = 5;
    e->vals = dspex_arena_alloc(&a, 2 * sizeof(dspex_val *));
    e->names = dspex_arena_alloc(&a, 2 * sizeof(dspex_val *));
    e->vals[0] = dspex_val_int(&a, 1);
    e->names[0] = S(&a, "LOW");
    e->vals[1] = dspex_val_int(&a, 2);
    e->names[1] = S(&a, "HIGH");
    e->nvals = 2;
    CHECK(dxa_parse_value(e, "HIGH", 4, &a, &v, &err) == 0 && v->kind == DSPEX_V_INT && v->i == 2);
    CHECK(dxa_parse_value(e, "2", 1, &a, &v, &err) == 1); /* DSPy compares the text to the int values */
    CHECK(strstr(err.message, "2 is not a valid name or value for the enum Level") != NULL);
    dspex_arena_free(&a);
}

CTEST(chat_parse_sections) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    dspex_field f[3];
    field(&f[0], "q", 1, T(&a, DSPEX_T_STR));
    field(&f[1], "answer", 0, T(&a, DSPEX_T_STR));
    field(&f[2], "n", 0, OPT(&a, T(&a, DSPEX_T_INT)));
    dspex_signature sig = sig_of(f, 3, 1, NULL);
    dspex_val *out[2];
    dxa_out how[2];
    dxa_err err;
    const char *t = "pre\n[[ ## answer ## ]] first\nsecond  \n[[ ## answer ## ]]\nignored\n[[ ## completed ## ]]";
    CHECK(dxa_parse(DXA_CHAT, &sig, t, strlen(t), &a, out, how, &err) == 0);
    CHECK(how[0] == DXA_OUT_PARSED && out[0]->slen == 12 && memcmp(out[0]->s, "first\nsecond", 12) == 0);
    CHECK(how[1] == DXA_OUT_NONE);
    const char *u = "[[ ## n ## ]]\n5";
    CHECK(dxa_parse(DXA_CHAT, &sig, u, strlen(u), &a, out, how, &err) == 1);
    CHECK(how[0] == DXA_OUT_MISSING && how[1] == DXA_OUT_PARSED);
    CHECK_STREQ(err.message, "Adapter ChatAdapter failed to parse the LM response. \n\nLM Response: [[ ## n ## ]]\n5 \n\n"
                             "Expected to find output fields in the LM response: [answer, n] \n\n"
                             "Actual output fields parsed from the LM response: [n] \n\n");
    /* an output with a default may be missing */
    f[1].has_default = 1;
    CHECK(dxa_parse(DXA_CHAT, &sig, u, strlen(u), &a, out, how, &err) == 0 && how[0] == DXA_OUT_DEFAULT);
    dspex_arena_free(&a);
}

CTEST(json_parse_object) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    dspex_field f[2];
    field(&f[0], "q", 1, T(&a, DSPEX_T_STR));
    field(&f[1], "n", 0, T(&a, DSPEX_T_INT));
    dspex_signature sig = sig_of(f, 2, 1, NULL);
    dspex_val *out[1];
    dxa_out how[1];
    dxa_err err;
    const char *t = "Sure:\n```json\n{\"n\": \"12\", \"x\": 1}\n```";
    CHECK(dxa_parse(DXA_JSON, &sig, t, strlen(t), &a, out, how, &err) == 0 && out[0]->i == 12);
    CHECK(dxa_parse(DXA_JSON, &sig, "nope", 4, &a, out, how, &err) == 1);
    CHECK(strstr(err.message, "LM response cannot be serialized to a JSON object.") == err.message);
    dspex_arena_free(&a);
}

int main(void) { return ctest_run(); }
