/* Unit tests for dspy.Tool's argument schemas and text (c_src/core/signature/tool.c) and
 * the inlined pydantic-order JSON schema it builds on (jsonschema.c). Expected strings are
 * what DSPy 3.3.1 prints for the equivalent Python functions. */
#include <string.h>

#include "ctest.h"
#include "adapter_builders.h"
#include "dspex/adapter.h"
#include "dspex/pytext.h"
#include "dspex/tool.h"

static const char *text_of(const char *name, const char *desc, const dspex_tool_param *ps, size_t n, dspex_arena *a,
                           char *out, size_t cap) {
    dspex_buf b;
    dspex_buf_init(&b);
    int rc = dspex_tool_text(name, strlen(name), desc, desc ? strlen(desc) : 0, ps, n, a, &b);
    snprintf(out, cap, "%s", rc != 0 || b.oom ? "(oom)" : b.p ? b.p : "");
    dspex_buf_free(&b);
    return out;
}

static dspex_tool_param P(const char *name, const dspex_type *t, const dspex_val *def, const char *desc) {
    dspex_tool_param p = {name, strlen(name), t, def, desc, desc ? strlen(desc) : 0};
    return p;
}

CTEST(tool_text_matches_dspy) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    char t[1024];
    /* def search(query: str, k: int = 3): """Search the web.\n    more""" */
    dspex_tool_param ps[] = {P("query", T(&a, DSPEX_T_STR), NULL, NULL),
                             P("k", T(&a, DSPEX_T_INT), dspex_val_int(&a, 3), NULL)};
    CHECK_STREQ(text_of("search", "Search the web.\n    more", ps, 2, &a, t, sizeof t),
                "search, whose description is <desc>Search the web.      more</desc>. It takes arguments "
                "{'query': {'type': 'string'}, 'k': {'type': 'integer', 'default': 3}}.");
    CHECK_STREQ(text_of("now", NULL, NULL, 0, &a, t, sizeof t), "now. It takes arguments {}.");
    CHECK_STREQ(text_of("now", "", NULL, 0, &a, t, sizeof t), "now. It takes arguments {}.");
    dspex_arena_free(&a);
}

CTEST(arg_schemas_are_pydantic_order_with_default_and_description_last) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    char t[2048];
    dspex_val *none = dspex_val_new(&a, DSPEX_V_NONE), *yes = dspex_val_new(&a, DSPEX_V_BOOL);
    yes->b = 1;
    dspex_val *cf[] = {S(&a, "C"), S(&a, "F")};
    dspex_type *dict_sf = T(&a, DSPEX_T_DICT);
    dict_sf->args = dspex_arena_alloc(&a, 2 * sizeof(dspex_type *));
    dict_sf->args[0] = T(&a, DSPEX_T_STR);
    dict_sf->args[1] = T(&a, DSPEX_T_FLOAT);
    dict_sf->nargs = 2;
    dspex_tool_param ps[] = {
        P("keys", T1(&a, DSPEX_T_LIST, T(&a, DSPEX_T_STR)), NULL, "The keys"),
        P("limit", OPT(&a, T(&a, DSPEX_T_INT)), none, NULL),
        P("unit", dspex_type_literal(&a, cf, 2), S(&a, "C"), NULL),
        P("exact", T(&a, DSPEX_T_BOOL), yes, NULL),
        P("weights", dict_sf, NULL, NULL),
        P("extra", T(&a, DSPEX_T_ANY), none, NULL),
    };
    CHECK_STREQ(text_of("lookup", NULL, ps, 6, &a, t, sizeof t),
                "lookup. It takes arguments {'keys': {'items': {'type': 'string'}, 'type': 'array', 'description': "
                "'The keys'}, 'limit': {'anyOf': [{'type': 'integer'}, {'type': 'null'}], 'default': None}, "
                "'unit': {'enum': ['C', 'F'], 'type': 'string', 'default': 'C'}, 'exact': {'type': 'boolean', "
                "'default': True}, 'weights': {'additionalProperties': {'type': 'number'}, 'type': 'object'}, "
                "'extra': {'default': None}}.");
    dspex_arena_free(&a);
}

CTEST(refs_are_inlined_and_defs_dropped) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    /* list[Color] with enum Color: pydantic writes {"$defs": {...}, "items": {"$ref": ...}} */
    dspex_type *color = T(&a, DSPEX_T_ENUM);
    dspex_val *vals[] = {S(&a, "red"), S(&a, "blue")};
    color->vals = vals;
    color->names = vals;
    color->nvals = 2;
    color->name = "Color";
    color->name_len = 5;
    dspex_val *s = dspex_type_json_schema_inline_val(T1(&a, DSPEX_T_LIST, color), &a);
    CHECK(s != NULL);
    dspex_buf b;
    dspex_buf_init(&b);
    dspex_py_repr(s, &b);
    CHECK_STREQ(b.p, "{'items': {'enum': ['red', 'blue'], 'title': 'Color', 'type': 'string'}, 'type': 'array'}");
    dspex_buf_free(&b);
    /* DSPy's own order is unchanged: "type" first, then "$defs" */
    dspex_buf_init(&b);
    CHECK(dspex_type_json_schema(T1(&a, DSPEX_T_LIST, color), &a, &b) == 0);
    CHECK_STREQ(b.p, "{\"type\": \"array\", \"$defs\": {\"Color\": {\"type\": \"string\", \"enum\": [\"red\", "
                     "\"blue\"], \"title\": \"Color\"}}, \"items\": {\"$ref\": \"#/$defs/Color\"}}");
    dspex_buf_free(&b);
    dspex_arena_free(&a);
}

static const char *validated(const char *text, dspex_arena *a, char *out, size_t cap) {
    dspex_val *v = NULL, *r = NULL;
    dxa_err err;
    err.message[0] = 0;
    if (dxa_pyliteral(text, strlen(text), 1, a, &v) != 0) return "(not a value)";
    int rc = dxa_validate(T(a, DSPEX_T_TOOL_CALLS), v, a, &r, &err);
    if (rc != 0) {
        snprintf(out, cap, "error: %s", err.message);
        return out;
    }
    dspex_buf b;
    dspex_buf_init(&b);
    dspex_json_dumps(r, -1, &b);
    snprintf(out, cap, "%s", b.p ? b.p : "");
    dspex_buf_free(&b);
    return out;
}

CTEST(tool_calls_validate_like_dspy) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    char t[512];
    CHECK_STREQ(validated("{\"tool_calls\": [{\"name\": \"f\", \"args\": {\"x\": 1}}]}", &a, t, sizeof t),
                "{\"tool_calls\": [{\"id\": null, \"name\": \"f\", \"args\": {\"x\": 1}}]}");
    CHECK_STREQ(validated("[{\"name\": \"f\", \"arguments\": \"{\\\"x\\\": 2\"}]", &a, t, sizeof t),
                "{\"tool_calls\": [{\"id\": null, \"name\": \"f\", \"args\": {\"x\": 2}}]}");
    CHECK_STREQ(validated("{\"id\": \"c1\", \"function\": {\"name\": \"g\", \"arguments\": \"{}\"}}", &a, t, sizeof t),
                "{\"tool_calls\": [{\"id\": \"c1\", \"name\": \"g\", \"args\": {}}]}");
    CHECK_STREQ(validated("{\"name\": \"f\"}", &a, t, sizeof t),
                "error: Received invalid value for `dspy.ToolCalls`");
    CHECK_STREQ(validated("{\"tool_calls\": [{\"name\": 3, \"args\": {}}]}", &a, t, sizeof t),
                "error: name: Input should be a valid string");
    CHECK_STREQ(validated("{\"tool_calls\": \"f(x)\"}", &a, t, sizeof t),
                "error: Received invalid value for `dspy.ToolCalls`");
    dspex_arena_free(&a);
}

int main(void) { return ctest_run(); }
