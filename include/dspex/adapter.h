/* DSPy 3.3.1's ChatAdapter and JSONAdapter in C: prompt rendering (render.c), LM output
 * parsing and pydantic-style validation (parse.c), and a lenient JSON / Python-literal
 * reader (pyliteral.c). They run on a dspex_signature (signature.h) and Python-shaped
 * values (value.h), with the text rules of pytext.h and the type rules of type.h.
 *
 * All memory of one call lives in the caller's arena. Work is linear in the input
 * (values, completion text) and nesting is bounded by DXA_MAX_DEPTH. No global state. */
#ifndef DSPEX_ADAPTER_H
#define DSPEX_ADAPTER_H

#include "dspex/buf.h"
#include "dspex/signature.h"
#include "dspex/value.h"

#define DXA_MAX_DEPTH 256 /* nesting of values read from LM text */

typedef enum { DXA_CHAT = 0, DXA_JSON = 1 } dxa_adapter;
typedef enum { DXA_ROLE_SYSTEM = 0, DXA_ROLE_USER, DXA_ROLE_ASSISTANT } dxa_role;

typedef struct {
    dxa_role role;
    const char *content;
    size_t len;
} dxa_msg;

typedef struct {
    dxa_msg *msgs;
    size_t n;
    size_t ndemo; /* msgs[1 .. 1 + ndemo) render the demos (they depend on nothing else) */
} dxa_msgs;

/* The parts of a prompt that depend only on the signature and the adapter, rendered once
 * (a compiled signature keeps them): the system message and the output reminder that
 * ends the current user turn. */
typedef struct {
    char *system;
    size_t system_len;
    char *reminder;
    size_t reminder_len;
} dxa_prepared;

/* Renders the prepared parts into arena a. 0, or -1 when out of memory. */
int dxa_prepare(dxa_adapter ad, const dspex_signature *sig, dspex_arena *a, dxa_prepared *out);

/* Adapter.format: system message, demos (incomplete ones first), History turns, current
 * user turn. `prep` may be NULL (then prepared on the fly). The system message lives in
 * prep, the others one after another in `text` (the caller's buffer, appended to; free it
 * with dspex_buf_free), scratch in arena a. 0, or -1 when out of memory. */
int dxa_format(dxa_adapter ad, const dspex_signature *sig, const dxa_prepared *prep, dspex_val *const *demos,
               size_t ndemos, const dspex_val *inputs, dspex_arena *a, dspex_buf *text, dxa_msgs *out);
/* format_user_message_content(signature, inputs): the input blocks present in inputs,
 * joined by "\n\n", stripped; no output reminder (both adapters write it alike). 0, or -1
 * when out of memory. */
int dxa_format_user(const dspex_signature *sig, const dspex_val *inputs, dspex_buf *out);
/* format_assistant_message_content(signature, outputs, missing_field_message). */
int dxa_format_assistant(dxa_adapter ad, const dspex_signature *sig, const dspex_val *outputs, const char *missing,
                         dspex_buf *out);

/* ---------------------------------------------------------------- parsing */
/* How each output field came out of a parse. */
typedef enum {
    DXA_OUT_MISSING = 0, /* not in the reply (or its value failed to parse) */
    DXA_OUT_PARSED,      /* vals[k] holds the value */
    DXA_OUT_DEFAULT,     /* not in the reply; the field's default applies (the caller has it) */
    DXA_OUT_NONE         /* not in the reply; the type admits None */
} dxa_out;

typedef struct {
    char message[4096]; /* short messages, and the first 4 KiB of long ones */
    char *full;         /* dxa_parse: the whole message (arena memory) when longer */
    size_t full_len;
    const char *response; /* the LM response the message quotes (JSON: the object found) */
    size_t response_len;
    const dspex_field *bad_field; /* dxa_parse: the output whose value did not parse or
                                     validate (NULL when outputs were missing) */
    char reason[1024];            /* ...and why ("items[2].price: Input should be ...") */
} dxa_err;

/* Parses completion text. vals and how have one slot per output field (k counts outputs
 * from 0). Returns 0 when every output is PARSED, DEFAULT or NONE; 1 with err filled
 * (DSPy's AdapterParseError text) when one is missing or fails to parse; -1 when out of
 * memory. */
int dxa_parse(dxa_adapter ad, const dspex_signature *sig, const char *text, size_t len, dspex_arena *a,
              dspex_val **vals, dxa_out *how, dxa_err *err);

/* DSPy's parse_value(value_text, annotation) for one field: 0 ok, 1 invalid (message in
 * err), -1 when out of memory. */
int dxa_parse_value(const dspex_type *t, const char *s, size_t n, dspex_arena *a, dspex_val **out, dxa_err *err);
/* pydantic validation (smart-mode unions, lax scalars) of a parsed value against t. */
int dxa_validate(const dspex_type *t, const dspex_val *v, dspex_arena *a, dspex_val **out, dxa_err *err);

/* Lenient reader, approximating json_repair.loads followed by ast.literal_eval: first the
 * whole text as JSON or a Python literal (single quotes, True/False/None, tuples, bare
 * `1, 2` tuples, 0x1F, 1_000); then, when `scan` is set and the text holds a container,
 * the core JSON repair (repair.h); then an own lenient reader (open containers, barewords)
 * from the first '{' or '['. Returns 0 and *out on success, 1 when the text is not a
 * value (callers fall back to the raw string), -1 when out of memory. */
int dxa_pyliteral(const char *s, size_t n, int scan, dspex_arena *a, dspex_val **out);
/* Finds the first balanced {...} span. 0 found, 1 none, -1 out of memory. */
int dxa_find_object(const char *s, size_t n, size_t *start, size_t *end);

#endif
