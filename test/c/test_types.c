/* Unit tests for the type model (c_src/core/signature/type.c, jsonschema.c): union and
 * Literal normalisation, equality, None-admission, names and JSON schemas. */
#include <string.h>

#include "ctest.h"
#include "adapter_builders.h"

static const char *name_of(const dspex_type *t, char *out, size_t cap) {
    dspex_buf b;
    dspex_buf_init(&b);
    dspex_type_name(t, &b);
    snprintf(out, cap, "%s", b.p ? b.p : "");
    dspex_buf_free(&b);
    return out;
}

static const char *schema_of(const dspex_type *t, dspex_arena *a, char *out, size_t cap) {
    dspex_buf b;
    dspex_buf_init(&b);
    if (dspex_type_json_schema(t, a, &b) != 0) snprintf(out, cap, "(oom)");
    else snprintf(out, cap, "%s", b.p ? b.p : "");
    dspex_buf_free(&b);
    return out;
}

CTEST(unions_flatten_dedupe_and_keep_none_where_written) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    char t[256];
    dspex_type *i = T(&a, DSPEX_T_INT), *s = T(&a, DSPEX_T_STR), *n = T(&a, DSPEX_T_NONE);
    dspex_type *m1[] = {n, i, s, i};
    CHECK_STREQ(name_of(dspex_type_union(&a, m1, 4, 0), t, sizeof t), "Union[NoneType, int, str]");
    dspex_type *inner[] = {s, n};
    dspex_type *m2[] = {i, dspex_type_union(&a, inner, 2, 0)};
    CHECK_STREQ(name_of(dspex_type_union(&a, m2, 2, 0), t, sizeof t), "Union[int, str, NoneType]");
    dspex_type *m3[] = {i, i};
    CHECK(dspex_type_union(&a, m3, 2, 0) == i);
    dspex_type *m4[] = {i, n};
    dspex_type *pipe = dspex_type_union(&a, m4, 2, 1);
    CHECK_STREQ(name_of(pipe, t, sizeof t), "UnionType[int, NoneType]");
    CHECK(dspex_type_allows_none(pipe) && !dspex_type_allows_none(T(&a, DSPEX_T_ANY)));
    /* Union[int, str] == Union[str, int] (members compare as sets) */
    dspex_type *ab[] = {i, s}, *ba[] = {s, i};
    CHECK(dspex_type_equal(T1(&a, DSPEX_T_LIST, dspex_type_union(&a, ab, 2, 0)),
                           T1(&a, DSPEX_T_LIST, dspex_type_union(&a, ba, 2, 0))));
    dspex_arena_free(&a);
}

CTEST(literals_dedupe_by_value_and_type) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    char t[256];
    dspex_val *one = dspex_val_int(&a, 1), *tru = dspex_val_new(&a, DSPEX_V_BOOL), *f1 = dspex_val_new(&a, DSPEX_V_FLOAT);
    tru->b = 1;
    f1->f = 1.0;
    dspex_val *vals[] = {one, tru, f1, dspex_val_int(&a, 1), S(&a, "it's")};
    dspex_type *lit = dspex_type_literal(&a, vals, 5);
    CHECK(lit->nvals == 4);
    CHECK_STREQ(name_of(lit, t, sizeof t), "Literal[1, True, 1.0, \"it's\"]");
    dspex_arena_free(&a);
}

CTEST(json_schemas_like_pydantic) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    char t[512];
    dspex_type *opt = OPT(&a, T1(&a, DSPEX_T_LIST, T(&a, DSPEX_T_STR)));
    CHECK_STREQ(schema_of(opt, &a, t, sizeof t),
                "{\"anyOf\": [{\"type\": \"array\", \"items\": {\"type\": \"string\"}}, {\"type\": \"null\"}]}");
    /* dict[Literal['a', 'b'], int] names its keys */
    dspex_val *ks[] = {S(&a, "a"), S(&a, "b")};
    dspex_type *d = T(&a, DSPEX_T_DICT);
    d->args = dspex_arena_alloc(&a, 2 * sizeof(dspex_type *));
    d->args[0] = dspex_type_literal(&a, ks, 2);
    d->args[1] = T(&a, DSPEX_T_INT);
    d->nargs = 2;
    CHECK_STREQ(schema_of(d, &a, t, sizeof t),
                "{\"type\": \"object\", \"additionalProperties\": {\"type\": \"integer\"}, \"propertyNames\": "
                "{\"enum\": [\"a\", \"b\"]}}");
    d->args[0] = T(&a, DSPEX_T_DATE);
    CHECK_STREQ(schema_of(d, &a, t, sizeof t),
                "{\"type\": \"object\", \"additionalProperties\": {\"type\": \"integer\"}, \"propertyNames\": "
                "{\"format\": \"date\"}}");
    /* an int-valued enum below the top level is a $ref into $defs */
    dspex_type *e = T(&a, DSPEX_T_ENUM);
    e->name = "Level";
    e->name_len = 5;
    e->vals = dspex_arena_alloc(&a, 2 * sizeof(dspex_val *));
    e->names = dspex_arena_alloc(&a, 2 * sizeof(dspex_val *));
    e->vals[0] = dspex_val_int(&a, 1);
    e->names[0] = S(&a, "LOW");
    e->vals[1] = dspex_val_int(&a, 3);
    e->names[1] = S(&a, "HIGH");
    e->nvals = 2;
    CHECK_STREQ(schema_of(T1(&a, DSPEX_T_LIST, e), &a, t, sizeof t),
                "{\"type\": \"array\", \"$defs\": {\"Level\": {\"type\": \"integer\", \"enum\": [1, 3], "
                "\"title\": \"Level\"}}, \"items\": {\"$ref\": \"#/$defs/Level\"}}");
    CHECK_STREQ(schema_of(T(&a, DSPEX_T_DATETIME), &a, t, sizeof t), "{\"type\": \"string\", \"format\": \"date-time\"}");
    CHECK_STREQ(schema_of(T1(&a, DSPEX_T_FROZENSET, T(&a, DSPEX_T_INT)), &a, t, sizeof t),
                "{\"type\": \"array\", \"items\": {\"type\": \"integer\"}, \"uniqueItems\": true}");
    dspex_arena_free(&a);
}

CTEST(type_strings_round_trip) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    const char *srcs[] = {"list[str]", "Optional[int]", "Union[None, int, str]", "Optional[Union[int, str]]",
                          "tuple[int, ...]", "datetime.datetime", "frozenset[Literal['a', 1, None]]",
                          "dict[str, Literal['it\\'s', \"q\\\"\"]]", "int | None", "Literal['\\u200b']"};
    for (size_t i = 0; i < sizeof srcs / sizeof srcs[0]; i++) {
        dspex_type *t = NULL, *back = NULL;
        dspex_sig_error err;
        CHECK(dspex_sig_parse_type(srcs[i], strlen(srcs[i]), DSPEX_SIG_CLASS, &a, &t, &err) == DSPEX_SIG_OK);
        if (!t) continue;
        dspex_buf b;
        dspex_buf_init(&b);
        dspex_type_string(t, &b);
        CHECK(dspex_sig_parse_type(b.p, b.len, DSPEX_SIG_CLASS, &a, &back, &err) == DSPEX_SIG_OK);
        CHECK(back && dspex_type_equal(t, back));
        dspex_buf_free(&b);
    }
    dspex_arena_free(&a);
}

int main(void) { return ctest_run(); }
