/* Builders for the C tests of the type model and the adapters (test_types.c,
 * test_parse.c, test_render.c): types, values and signature fields in a test arena. */
#ifndef DSPEX_TEST_ADAPTER_BUILDERS_H
#define DSPEX_TEST_ADAPTER_BUILDERS_H

#include <string.h>

#include "dspex/adapter.h"
#include "dspex/pytext.h"

static inline dspex_type *T(dspex_arena *a, dspex_type_kind k) { return dspex_type_new(a, k); }

/* A one-argument generic such as list[T]. */
static inline dspex_type *T1(dspex_arena *a, dspex_type_kind k, dspex_type *arg) {
    dspex_type *t = dspex_type_new(a, k);
    t->args = dspex_arena_alloc(a, sizeof(dspex_type *));
    t->args[0] = arg;
    t->nargs = 1;
    return t;
}

/* Optional[t]: typing.Union[t, None]. */
static inline dspex_type *OPT(dspex_arena *a, dspex_type *t) {
    dspex_type *m[2] = {t, dspex_type_new(a, DSPEX_T_NONE)};
    return dspex_type_union(a, m, 2, 0);
}

static inline dspex_val *S(dspex_arena *a, const char *s) { return dspex_val_str(a, s, strlen(s)); }

static inline void field(dspex_field *f, const char *name, int in, dspex_type *t) {
    memset(f, 0, sizeof *f);
    f->name = name;
    f->name_len = strlen(name);
    f->is_input = in;
    f->type = t;
    f->type_defined = 1;
}

/* A signature over caller-owned fields (its arena unused). */
static inline dspex_signature sig_of(dspex_field *f, size_t n, size_t ninputs, const char *instructions) {
    dspex_signature s;
    memset(&s, 0, sizeof s);
    s.fields = f;
    s.nfields = n;
    s.ninputs = ninputs;
    s.instructions = instructions;
    s.instructions_len = instructions ? strlen(instructions) : 0;
    return s;
}

static inline dspex_val *dict(dspex_arena *a, size_t n, const char **keys, dspex_val **vals) {
    dspex_val *d = dspex_val_new(a, DSPEX_V_DICT);
    d->keys = dspex_arena_alloc(a, (n + 1) * sizeof(dspex_val *));
    d->items = dspex_arena_alloc(a, (n + 1) * sizeof(dspex_val *));
    for (size_t i = 0; i < n; i++) {
        d->keys[i] = S(a, keys[i]);
        d->items[i] = vals[i];
    }
    d->n = n;
    return d;
}

#endif
