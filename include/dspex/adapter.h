/* DSPy 3.3.1 ChatAdapter / JSONAdapter in C: signature type trees, prompt rendering
 * (render.c), type names and pydantic JSON schemas (jsonschema.c), LM output parsing and
 * validation (parse.c) and a lenient JSON / Python-literal reader (pyliteral.c). */
#ifndef DSPEX_ADAPTER_H
#define DSPEX_ADAPTER_H

#include "dspex/pyvalue.h"

typedef enum {
    DXT_STR = 0,
    DXT_INT,
    DXT_FLOAT,
    DXT_BOOL,
    DXT_ANY,
    DXT_NONE,
    DXT_HISTORY,
    DXT_LIST,     /* nargs 0 = bare `list` */
    DXT_DICT,     /* nargs 0 or 2 */
    DXT_TUPLE,    /* nargs 0 = bare */
    DXT_SET,      /* nargs 0 = bare */
    DXT_LITERAL,  /* lits */
    DXT_OPTIONAL, /* args[0] */
    DXT_UNION,    /* args */
    DXT_ENUM      /* enum_name, enum_vals */
} dxa_tkind;

typedef struct dxa_type dxa_type;
struct dxa_type {
    dxa_tkind kind;
    dxa_type **args;
    size_t nargs;
    int variadic; /* DXT_TUPLE: tuple[T, ...] (args[0] = T) */
    dxa_val **lits;
    size_t nlits;
    const char *enum_name;
    dxa_val **enum_vals; /* DXA_STR values */
    size_t nenum;
};

typedef struct {
    const char *key; /* gt ge lt le min_length max_length multiple_of allow_inf_nan */
    dxa_val *value;
} dxa_constraint;

typedef struct {
    const char *name;
    size_t name_len;
    int is_input;
    dxa_type *type;
    const char *desc; /* NULL = no description */
    size_t desc_len;
    dxa_constraint *constraints;
    size_t nconstraints;
} dxa_field;

typedef struct {
    const char *instructions;
    size_t instructions_len;
    dxa_field *fields; /* inputs first, then outputs */
    size_t nfields;
    size_t ninputs;
} dxa_sig;

typedef enum { DXA_CHAT = 0, DXA_JSON = 1 } dxa_adapter;
typedef enum { DXA_ROLE_SYSTEM = 0, DXA_ROLE_USER, DXA_ROLE_ASSISTANT } dxa_role;

typedef struct {
    dxa_role role;
    char *content;
    size_t len;
} dxa_msg;

typedef struct {
    dxa_msg *msgs;
    size_t n;
} dxa_msgs;

dxa_type *dxa_type_new(dspex_arena *a, dxa_tkind kind);

/* get_annotation_name(): "str", "list[str]", "Union[int, NoneType]", "Literal['a', 'b']". */
void dxa_type_name(const dxa_type *t, dspex_buf *out);
/* pydantic TypeAdapter(T).json_schema() with DSPy's key order, dumped like json.dumps. */
int dxa_json_schema(const dxa_type *t, dspex_arena *a, dspex_buf *out);
/* Value tree form of the schema (dicts with keys already in DSPy order). */
dxa_val *dxa_json_schema_val(const dxa_type *t, dspex_arena *a);

/* Adapter.format: system, demos, history, current user turn. Returns 0, -1 on OOM. */
int dxa_format(dxa_adapter ad, const dxa_sig *sig, dxa_val *const *demos, size_t ndemos,
               const dxa_val *inputs, dspex_arena *a, dxa_msgs *out);
/* format_assistant_message_content(signature, outputs, missing_field_message). */
int dxa_format_assistant(dxa_adapter ad, const dxa_sig *sig, const dxa_val *outputs,
                         const char *missing, dspex_buf *out);

/* ---------------------------------------------------------------- parsing */
typedef struct {
    char message[4096]; /* short messages, and the first 4 KiB of long ones */
    char *full;         /* dxa_parse: the whole message (arena memory) when longer */
    size_t full_len;
} dxa_err;

/* Parses completion text. On success returns 0 and sets out[i] for every output field
 * (i counts outputs from 0); a missing Optional output is a DXA_NONE value. On failure
 * returns 1 with err->message set to DSPy's AdapterParseError text; -1 on OOM. */
int dxa_parse(dxa_adapter ad, const dxa_sig *sig, const char *text, size_t len, dspex_arena *a,
              dxa_val **out, dxa_err *err);

/* DSPy's parse_value(value_text, annotation) for one field. 0 ok, 1 invalid (msg set). */
int dxa_parse_value(const dxa_type *t, const char *s, size_t n, dspex_arena *a, dxa_val **out,
                    dxa_err *err);
/* pydantic-lax validation of an already parsed value against t. 0 ok, 1 invalid. */
int dxa_validate(const dxa_type *t, const dxa_val *v, dspex_arena *a, dxa_val **out, dxa_err *err);

/* Lenient reader, approximating json_repair.loads followed by ast.literal_eval: first the
 * whole text as JSON or a Python literal (single quotes, True/False/None, tuples, bare
 * `1, 2` tuples, 0x1F, 1_000); then, when `scan` is set and the text holds a container,
 * the core JSON repair (repair.h: prose, fences, comments, missing commas, unescaped
 * quotes; a repeated object replaces the previous one); then an own lenient reader
 * (open containers, barewords) from the first '{' or '['. Returns 0 and *out on
 * success, 1 when the text is not a value (callers fall back to the raw string), -1 on
 * OOM. Nesting is bounded by DXA_MAX_DEPTH and work is linear in the input. */
#define DXA_MAX_DEPTH 256
int dxa_pyliteral(const char *s, size_t n, int scan, dspex_arena *a, dxa_val **out);
/* Finds the first balanced {...} span (strings aware). 0 found, 1 none. */
int dxa_find_object(const char *s, size_t n, size_t *start, size_t *end);

#endif
