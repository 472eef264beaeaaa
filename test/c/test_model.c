/* Unit tests for model types (DSPex.Schema's pydantic models in the type model):
 * pydantic's model_json_schema with DSPy's order, validation with defaults, constraints
 * and the path of a failure. */
#include <string.h>

#include "ctest.h"
#include "adapter_builders.h"
#include "dspex/adapter.h"
#include "dspex/pytext.h"

/* Item{name: str, qty: int = Field(1, ge=1)}; Order{items: list[Item], tag: Optional[str]} */
static dspex_type *order_type(dspex_arena *a) {
    dspex_type *item = T(a, DSPEX_T_MODEL), *order = T(a, DSPEX_T_MODEL);
    dspex_model_field *ifs = dspex_arena_alloc(a, 2 * sizeof *ifs), *ofs = dspex_arena_alloc(a, 2 * sizeof *ofs);
    dspex_constraint *ge = dspex_arena_alloc(a, sizeof *ge);
    memset(ifs, 0, 2 * sizeof *ifs);
    memset(ofs, 0, 2 * sizeof *ofs);
    *ge = (dspex_constraint){"ge", dspex_val_int(a, 1)};
    ifs[0] = (dspex_model_field){"name", 4, T(a, DSPEX_T_STR), "The name", 8, NULL, NULL, 0};
    ifs[1] = (dspex_model_field){"qty", 3, T(a, DSPEX_T_INT), NULL, 0, dspex_val_int(a, 1), ge, 1};
    *item = (dspex_type){.kind = DSPEX_T_MODEL, .name = "Item", .name_len = 4, .fields = ifs, .nfields = 2,
                         .desc = "A line.", .desc_len = 7, .module = "Elixir.Item", .module_len = 11};
    ofs[0] = (dspex_model_field){"items", 5, T1(a, DSPEX_T_LIST, item), NULL, 0, NULL, NULL, 0};
    ofs[1] = (dspex_model_field){"tag", 3, OPT(a, T(a, DSPEX_T_STR)), NULL, 0, dspex_val_new(a, DSPEX_V_NONE), NULL, 0};
    *order = (dspex_type){.kind = DSPEX_T_MODEL, .name = "Order", .name_len = 5, .fields = ofs, .nfields = 2,
                          .module = "Elixir.Order", .module_len = 12};
    return order;
}

CTEST(model_schema_is_pydantic_with_dspy_order) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    dspex_buf b;
    dspex_buf_init(&b);
    CHECK(dspex_type_json_schema(order_type(&a), &a, &b) == 0);
    CHECK_STREQ(b.p, "{\"type\": \"object\", \"$defs\": {\"Item\": {\"type\": \"object\", \"description\": \"A line.\", "
                     "\"properties\": {\"name\": {\"type\": \"string\", \"description\": \"The name\", \"title\": \"Name\"}, "
                     "\"qty\": {\"type\": \"integer\", \"default\": 1, \"minimum\": 1, \"title\": \"Qty\"}}, \"required\": "
                     "[\"name\"], \"title\": \"Item\"}}, \"properties\": {\"items\": {\"type\": \"array\", \"items\": "
                     "{\"$ref\": \"#/$defs/Item\"}, \"title\": \"Items\"}, \"tag\": {\"anyOf\": [{\"type\": \"string\"}, "
                     "{\"type\": \"null\"}], \"default\": null, \"title\": \"Tag\"}}, \"required\": [\"items\"], \"title\": "
                     "\"Order\"}");
    dspex_buf_free(&b);
    dspex_arena_free(&a);
}

static const char *validated(const char *text, dspex_arena *a, char *out, size_t cap) {
    dspex_val *v = NULL;
    dxa_err err;
    memset(&err, 0, sizeof err);
    int rc = dxa_parse_value(order_type(a), text, strlen(text), a, &v, &err);
    if (rc != 0) {
        snprintf(out, cap, "error: %s", err.reason);
        return out;
    }
    dspex_buf b;
    dspex_buf_init(&b);
    dspex_json_dumps(v, -1, &b);
    snprintf(out, cap, "%s", b.p ? b.p : "");
    dspex_buf_free(&b);
    return out;
}

CTEST(model_validation_fills_defaults_coerces_and_names_paths) {
    dspex_arena a;
    dspex_arena_init(&a, 0);
    char t[512];
    CHECK_STREQ(validated("{\"items\": [{\"name\": \"a\"}, {\"name\": \"b\", \"qty\": \"3\"}], \"x\": 1}", &a, t, sizeof t),
                "{\"items\": [{\"name\": \"a\", \"qty\": 1}, {\"name\": \"b\", \"qty\": 3}], \"tag\": null}");
    CHECK_STREQ(validated("{\"items\": [{\"name\": \"a\"}, {\"name\": \"b\", \"qty\": 0}]}", &a, t, sizeof t),
                "error: items[1].qty: Input should be greater than or equal to 1");
    CHECK_STREQ(validated("{\"items\": [{\"qty\": 2}]}", &a, t, sizeof t), "error: items[0].name: Field required");
    CHECK_STREQ(validated("{\"items\": \"none\"}", &a, t, sizeof t), "error: items: Input should be a valid list");
    dspex_arena_free(&a);
}

int main(void) { return ctest_run(); }
