/* Python-shaped values: the tree the adapters render and parse into (None, bool, int,
 * float, str, list, tuple, set, frozenset, dict, dspy.History, datetime, date), and the
 * Literal/Enum values of the type model (type.h).
 *
 * A value and everything it points to live in one dspex_arena (released at once with
 * dspex_arena_free). Strings are UTF-8 bytes with a length (not necessarily
 * NUL-terminated) and may point into caller memory (e.g. an Erlang binary) for the
 * duration of one call. No global state. */
#ifndef DSPEX_VALUE_H
#define DSPEX_VALUE_H

#include <stddef.h>

#include "dspex/arena.h"

typedef enum {
    DSPEX_V_NONE = 0,
    DSPEX_V_BOOL,
    DSPEX_V_INT,
    DSPEX_V_FLOAT,
    DSPEX_V_STR,
    DSPEX_V_LIST,
    DSPEX_V_TUPLE,
    DSPEX_V_SET,
    DSPEX_V_FROZENSET,
    DSPEX_V_DICT,
    DSPEX_V_HISTORY,  /* dspy.History: items are DICT messages */
    DSPEX_V_DATETIME, /* s: ISO 8601 text as pydantic writes it ("2024-01-02T03:04:05Z") */
    DSPEX_V_DATE      /* s: "2024-01-02" */
} dspex_vkind;

typedef struct dspex_val dspex_val;
struct dspex_val {
    dspex_vkind kind;
    int b;           /* BOOL */
    long long i;     /* INT (saturated when s holds the digits of a bigger integer) */
    double f;        /* FLOAT */
    const char *s;   /* STR, DATETIME, DATE: the text; INT: decimal digits beyond 64 bits, else NULL */
    size_t slen;
    dspex_val **items; /* LIST/TUPLE/SET/FROZENSET/HISTORY items, DICT values */
    dspex_val **keys;  /* DICT keys (insertion order) */
    size_t n;
};

dspex_val *dspex_val_new(dspex_arena *a, dspex_vkind kind);
dspex_val *dspex_val_str(dspex_arena *a, const char *s, size_t n); /* copies s */
dspex_val *dspex_val_int(dspex_arena *a, long long i);
/* A deep copy of v in arena a, strings included (for values that outlive the memory they
 * point into); NULL when out of memory or nested more than 512 levels. */
dspex_val *dspex_val_copy(const dspex_val *v, dspex_arena *a);
/* The value of a string key in a DICT, or NULL when absent. */
dspex_val *dspex_dict_get(const dspex_val *dict, const char *key, size_t klen);
/* Python ==: numbers compare by value across int/float/bool, strings by bytes, None == None;
 * containers compare item by item (depth-bounded). */
int dspex_val_equal(const dspex_val *a, const dspex_val *b);
/* A set/frozenset kind (hashable containers are compared by membership). */
int dspex_val_is_container(const dspex_val *v);

#endif
