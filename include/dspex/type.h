/* The type model: DSPy field types as one C tree, and every rule about them.
 *
 * Each rule exists once, here (c_src/core/signature/type.c, jsonschema.c); the signature
 * string parser (signature.h) builds these trees, the NIF converts them from and to
 * Elixir type terms (DSPex.Signature.Field), and the adapters render and parse with them:
 *
 *   - construction and normalisation: typing.Union flattening and de-duplication (None
 *     stays where it is written), PEP 604 `X | Y` (types.UnionType), typing.Literal
 *     de-duplication;
 *   - equality, None-admission (DSPy's annotation_allows_none);
 *   - the name DSPy shows in prompts (get_annotation_name): "list[str]",
 *     "Union[int, NoneType]", "UnionType[int, NoneType]", "Literal['a', 'b']";
 *   - the signature-string syntax that parses back to the same tree;
 *   - pydantic's JSON schema with DSPy's key order (jsonschema.c).
 *
 * Types live in a dspex_arena. Nesting is bounded by DSPEX_TYPE_MAX_DEPTH and the width
 * of one node by DSPEX_TYPE_MAX_MEMBERS; every walk is depth-bounded. No global state. */
#ifndef DSPEX_TYPE_H
#define DSPEX_TYPE_H

#include <stddef.h>

#include "dspex/arena.h"
#include "dspex/buf.h"
#include "dspex/value.h"

#define DSPEX_TYPE_MAX_DEPTH 32     /* nested type levels */
#define DSPEX_TYPE_MAX_MEMBERS 256  /* members of one union, arguments of one generic,
                                       values of one Literal or Enum */

typedef enum {
    DSPEX_T_STR = 0,
    DSPEX_T_INT,
    DSPEX_T_FLOAT,
    DSPEX_T_BOOL,
    DSPEX_T_ANY,
    DSPEX_T_NONE,     /* NoneType: only as a union member (a bare None field is allowed too) */
    DSPEX_T_HISTORY,  /* dspy.History */
    DSPEX_T_DATETIME, /* datetime.datetime */
    DSPEX_T_DATE,     /* datetime.date */
    DSPEX_T_LIST,     /* args: 0 (bare) or 1 */
    DSPEX_T_SET,      /* args: 0 (bare) or 1 */
    DSPEX_T_FROZENSET,/* args: 0 (bare) or 1 */
    DSPEX_T_DICT,     /* args: 0 (bare) or 2 */
    DSPEX_T_TUPLE,    /* args: 0 (bare) or >= 1; DSPEX_TF_VARIADIC: tuple[T, ...] */
    DSPEX_T_LITERAL,  /* vals: >= 1 distinct values (str, int, float, bool, None) */
    DSPEX_T_UNION,    /* args: >= 2 distinct members, none of them a union; NONE where written */
    DSPEX_T_ENUM,     /* name, vals (str or int values), names (member names) */
    DSPEX_T_TOOL,       /* dspy.Tool: an input; its value is the tool's text (str(tool)) */
    DSPEX_T_TOOL_CALLS, /* dspy.ToolCalls: {"tool_calls": [{"id"?, "name", "args"}]} */
    DSPEX_T_IMAGE,      /* dspy.Image: an input; its value is the image's content-part marker text */
    DSPEX_T_MODEL       /* a pydantic BaseModel (DSPex.Schema): name, desc, fields, module */
} dspex_type_kind;

/* flags */
#define DSPEX_TF_VARIADIC 1u /* TUPLE: tuple[T, ...] (nargs == 1) */
#define DSPEX_TF_PIPE 2u     /* UNION: types.UnionType (PEP 604 `X | Y` in a class body) */
#define DSPEX_TF_ALIAS 4u    /* generic written as typing.List/Dict/Set/FrozenSet/Tuple */

#define DSPEX_MODEL_MAX_FIELDS 1024 /* fields of one model */

typedef struct {
    const char *key; /* gt ge lt le min_length max_length multiple_of allow_inf_nan */
    dspex_val *value;
} dspex_constraint;

typedef struct dspex_type dspex_type;

/* One field of a MODEL, as pydantic's Field() declares it. */
typedef struct {
    const char *name; /* UTF-8, NUL-terminated */
    size_t name_len;
    dspex_type *type;
    const char *desc; /* NULL: none (pydantic's description) */
    size_t desc_len;
    dspex_val *default_value; /* NULL: required */
    dspex_constraint *constraints;
    size_t nconstraints;
} dspex_model_field;

struct dspex_type {
    dspex_type_kind kind;
    unsigned flags;
    size_t nargs;
    dspex_type **args;
    size_t nvals;
    dspex_val **vals;      /* LITERAL values; ENUM member values */
    dspex_val **names;     /* ENUM member names (STR), parallel to vals */
    const char *name;      /* ENUM / MODEL class name (NUL-terminated) */
    size_t name_len;
    /* MODEL */
    dspex_model_field *fields;
    size_t nfields;
    const char *desc;      /* the class docstring (pydantic's model description); NULL: none */
    size_t desc_len;
    const char *module;    /* the Elixir module that declares it ("Elixir.MyApp.Invoice") */
    size_t module_len;
};

dspex_type *dspex_type_new(dspex_arena *a, dspex_type_kind kind);

/* typing.Union[members] (pipe = 0) or functools.reduce(operator.or_, members)
 * (pipe = 1): nested unions flattened, equal members dropped (the first one stays), a
 * single remaining member returned as is. A PEP 604 union with a member that is a typing
 * special form (Literal, typing.Union/Optional, typing.List & co) is a typing.Union, as in
 * Python. NULL when out of memory or when more than DSPEX_TYPE_MAX_MEMBERS remain. */
dspex_type *dspex_type_union(dspex_arena *a, dspex_type *const *members, size_t n, int pipe);
/* typing.Literal[vals]: equal values of the same type dropped. */
dspex_type *dspex_type_literal(dspex_arena *a, dspex_val *const *vals, size_t n);

int dspex_type_equal(const dspex_type *x, const dspex_type *y);
/* annotation_allows_none: None, Any, or a union with a None-admitting member. */
int dspex_type_allows_none(const dspex_type *t);
/* Whether t is a typing special form (see dspex_type_union). */
int dspex_type_is_special(const dspex_type *t);

/* get_annotation_name(T): the name DSPy shows in prompts. */
void dspex_type_name(const dspex_type *t, dspex_buf *out);
/* The type in the signature-string syntax ("list[str]", "Optional[int]",
 * "Union[None, int]", "tuple[int, ...]", "datetime.datetime", "int | None" for a PEP 604
 * union), which parses back to an equal type. An Enum is written as the Literal of its
 * values (strings have no enums). */
void dspex_type_string(const dspex_type *t, dspex_buf *out);

/* pydantic TypeAdapter(T).json_schema() with DSPy's key order ("type" first, then
 * alphabetical, recursively), dumped like json.dumps(ensure_ascii=False). -1 on OOM. */
int dspex_type_json_schema(const dspex_type *t, dspex_arena *a, dspex_buf *out);
/* The schema as a value tree (dicts with keys already in DSPy's order); NULL on OOM. */
dspex_val *dspex_type_json_schema_val(const dspex_type *t, dspex_arena *a);
/* pydantic's own schema of the type as dspy.Tool keeps it for an argument: pydantic's key
 * order (sorted, "properties" in declaration order), every "$ref" replaced by its
 * definition and "$defs" dropped (_resolve_json_schema_reference). NULL on OOM. */
dspex_val *dspex_type_json_schema_inline_val(const dspex_type *t, dspex_arena *a);

#endif
