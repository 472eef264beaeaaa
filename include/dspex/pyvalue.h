/* Python-shaped values for the adapters: a small value
 * tree (None/bool/int/float/str/list/tuple/set/dict/History) and the Python text rules
 * DSPy's prompts depend on (str(), float repr, json.dumps(ensure_ascii=False),
 * str.splitlines, str.strip, textwrap.dedent).
 *
 * Everything allocated while rendering or parsing one call lives in one dspex_arena and is
 * released at once with dspex_arena_free. Allocation failure is reported by NULL / -1 and
 * is sticky on a dspex_buf (buf.oom). No global mutable state. */
#ifndef DSPEX_PYVALUE_H
#define DSPEX_PYVALUE_H

#include <stddef.h>
#include <stdint.h>

#include "dspex/arena.h"
#include "dspex/buf.h"

/* ---------------------------------------------------------------- values */
typedef enum {
    DXA_NONE = 0,
    DXA_BOOL,
    DXA_INT,
    DXA_FLOAT,
    DXA_STR,
    DXA_LIST,
    DXA_TUPLE,
    DXA_SET,
    DXA_DICT,
    DXA_HISTORY /* dspy.History: items are DXA_DICT messages */
} dxa_vkind;

typedef struct dxa_val dxa_val;
struct dxa_val {
    dxa_vkind kind;
    int b;
    long long i;
    double f;
    const char *s; /* DXA_STR: UTF-8 bytes (not necessarily NUL-terminated);
                      DXA_INT: decimal text of an integer beyond 64 bits (else NULL) */
    size_t slen;
    dxa_val **items; /* LIST/TUPLE/SET/HISTORY items, DICT values */
    dxa_val **keys;  /* DICT keys */
    size_t n;
};

dxa_val *dxa_val_new(dspex_arena *a, dxa_vkind kind);
dxa_val *dxa_val_str(dspex_arena *a, const char *s, size_t n); /* copies */
/* Looks a string key up in a DICT; NULL when absent. */
dxa_val *dxa_dict_get(const dxa_val *dict, const char *key, size_t klen);
int dxa_dict_has(const dxa_val *dict, const char *key, size_t klen);

/* ---------------------------------------------------------------- Python text rules */
/* repr(float) / str(float): shortest round-trip, '1e-05', '0.1', '1.0', 'inf', 'nan'. */
void dxa_float_repr(double d, dspex_buf *out);
/* str(value) for scalars; json.dumps(ensure_ascii=False) for containers (what DSPy's
 * format_field_value does). */
void dxa_py_str(const dxa_val *v, dspex_buf *out);
/* json.dumps(v, ensure_ascii=False); indent < 0 = one line with ", " / ": ". */
void dxa_json_dumps(const dxa_val *v, int indent, dspex_buf *out);
void dxa_json_string(const char *s, size_t n, dspex_buf *out);
/* Python repr() (strings quoted, containers as Python literals). */
void dxa_py_repr(const dxa_val *v, dspex_buf *out);
void dxa_py_repr_str(const char *s, size_t n, dspex_buf *out);

/* Python str.splitlines(): returns line count, lines stored in arena arrays. */
size_t dxa_splitlines(dspex_arena *a, const char *s, size_t n, const char ***lines, size_t **lens);
/* Python str.strip() on UTF-8: returns the stripped span. */
void dxa_pystrip(const char **s, size_t *n);
/* textwrap.dedent */
char *dxa_dedent(dspex_arena *a, const char *s, size_t n, size_t *outlen);

#endif
