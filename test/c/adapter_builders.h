/* Builders for the adapter core's C tests (test_parse.c, test_render.c): type trees
 * and signature fields allocated in a test arena. */
#ifndef DSPEX_TEST_ADAPTER_BUILDERS_H
#define DSPEX_TEST_ADAPTER_BUILDERS_H

#include <string.h>

#include "dspex/adapter.h"

static inline dxa_type *T(dspex_arena *a, dxa_tkind k) { return dxa_type_new(a, k); }

/* A one-argument generic such as list[T]. */
static inline dxa_type *T1(dspex_arena *a, dxa_tkind k, dxa_type *arg) {
    dxa_type *t = dxa_type_new(a, k);
    t->args = dspex_arena_alloc(a, sizeof(dxa_type *));
    t->args[0] = arg;
    t->nargs = 1;
    return t;
}

static inline void field(dxa_field *f, const char *name, int in, dxa_type *t) {
    memset(f, 0, sizeof *f);
    f->name = name;
    f->name_len = strlen(name);
    f->is_input = in;
    f->type = t;
}

#endif
