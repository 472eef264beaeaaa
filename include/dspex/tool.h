/* DSPy's dspy.Tool as a prompt sees it (dspy/adapters/types/tool.py): the argument
 * schemas derived from the parameters' types (type.h) and the tool's text.
 *
 *   args  = {name: schema} in parameter order, schema = pydantic's JSON schema of the
 *           parameter's type with its $refs inlined (dspex_type_json_schema_inline_val),
 *           then "default" (when the parameter has one) and "description" (when given);
 *   text  = "{name}, whose description is <desc>{desc}</desc>. It takes arguments {args}."
 *           (newlines in desc become two spaces; without a desc: "{name}. It takes ...")
 *           with args written as a Python dict (repr).
 *
 * Values live in the caller's arena. No global state. */
#ifndef DSPEX_TOOL_H
#define DSPEX_TOOL_H

#include <stddef.h>

#include "dspex/arena.h"
#include "dspex/buf.h"
#include "dspex/type.h"
#include "dspex/value.h"

#define DSPEX_TOOL_MAX_PARAMS 256 /* parameters of one tool */

typedef struct {
    const char *name; /* UTF-8 */
    size_t name_len;
    const dspex_type *type;
    const dspex_val *default_value; /* NULL: no default */
    const char *desc;               /* NULL: no description */
    size_t desc_len;
} dspex_tool_param;

/* Tool.args as a DICT value; NULL when out of memory. */
dspex_val *dspex_tool_args(const dspex_tool_param *params, size_t n, dspex_arena *a);
/* str(Tool). 0, or -1 when out of memory. */
int dspex_tool_text(const char *name, size_t name_len, const char *desc, size_t desc_len,
                    const dspex_tool_param *params, size_t n, dspex_arena *a, dspex_buf *out);

#endif
