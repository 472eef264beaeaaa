/* Python-shaped values for the adapters: an arena, a growable byte buffer, a small value
 * tree (None/bool/int/float/str/list/tuple/set/dict/History) and the Python text rules
 * DSPy's prompts depend on (str(), float repr, json.dumps(ensure_ascii=False),
 * str.splitlines, str.strip, textwrap.dedent).
 *
 * Everything allocated while rendering or parsing one call lives in one dxa_arena and is
 * released at once with dxa_arena_free. Allocation failure is reported by NULL / -1 and
 * is sticky on a dxa_buf (buf.oom). No global mutable state. */
#ifndef DSPEX_PYVALUE_H
#define DSPEX_PYVALUE_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- arena */
typedef struct dxa_chunk dxa_chunk;
typedef struct {
    dxa_chunk *head;
    size_t bytes;     /* total bytes handed out (for bounding work) */
    size_t limit;     /* 0 = unlimited; allocations past it fail */
} dxa_arena;

void dxa_arena_init(dxa_arena *a, size_t limit);
/* Like dxa_arena_init, but the first chunk is the caller's buf (e.g. on the stack). */
void dxa_arena_init_buf(dxa_arena *a, size_t limit, void *buf, size_t size);
void *dxa_alloc(dxa_arena *a, size_t n);               /* zeroed, 8-aligned; NULL on failure */
char *dxa_strndup(dxa_arena *a, const char *s, size_t n); /* NUL-terminated copy */
void dxa_arena_free(dxa_arena *a);

/* ---------------------------------------------------------------- buffer */
typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} dxa_buf;

void dxa_buf_init(dxa_buf *b);
void dxa_buf_free(dxa_buf *b);
void dxa_buf_put(dxa_buf *b, const char *s, size_t n);
void dxa_buf_puts(dxa_buf *b, const char *s);
void dxa_buf_putc(dxa_buf *b, char c);
void dxa_buf_printf(dxa_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes the contents into the arena as a NUL-terminated string and resets the buffer. */
char *dxa_buf_take(dxa_buf *b, dxa_arena *a, size_t *len);

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

dxa_val *dxa_val_new(dxa_arena *a, dxa_vkind kind);
dxa_val *dxa_val_str(dxa_arena *a, const char *s, size_t n); /* copies */
/* Looks a string key up in a DICT; NULL when absent. */
dxa_val *dxa_dict_get(const dxa_val *dict, const char *key, size_t klen);
int dxa_dict_has(const dxa_val *dict, const char *key, size_t klen);

/* ---------------------------------------------------------------- Python text rules */
/* repr(float) / str(float): shortest round-trip, '1e-05', '0.1', '1.0', 'inf', 'nan'. */
void dxa_float_repr(double d, dxa_buf *out);
/* str(value) for scalars; json.dumps(ensure_ascii=False) for containers (what DSPy's
 * format_field_value does). */
void dxa_py_str(const dxa_val *v, dxa_buf *out);
/* json.dumps(v, ensure_ascii=False); indent < 0 = one line with ", " / ": ". */
void dxa_json_dumps(const dxa_val *v, int indent, dxa_buf *out);
void dxa_json_string(const char *s, size_t n, dxa_buf *out);
/* Python repr() (strings quoted, containers as Python literals). */
void dxa_py_repr(const dxa_val *v, dxa_buf *out);
void dxa_py_repr_str(const char *s, size_t n, dxa_buf *out);

/* Python str.splitlines(): returns line count, lines stored in arena arrays. */
size_t dxa_splitlines(dxa_arena *a, const char *s, size_t n, const char ***lines, size_t **lens);
/* Python str.strip() on UTF-8: returns the stripped span. */
void dxa_pystrip(const char **s, size_t *n);
/* textwrap.dedent */
char *dxa_dedent(dxa_arena *a, const char *s, size_t n, size_t *outlen);

#endif
