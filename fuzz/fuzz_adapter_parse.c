/* libFuzzer target: ChatAdapter / JSONAdapter parsing of arbitrary completion text
 * against a signature with typed outputs. The first byte picks the adapter. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dspex/adapter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static dxa_type *T1(dspex_arena *a, dxa_tkind k, dxa_type *arg) {
    dxa_type *t = dxa_type_new(a, k);
    if (t == NULL) return NULL;
    t->args = dspex_arena_alloc(a, 2 * sizeof(dxa_type *));
    if (t->args == NULL) return NULL;
    t->args[0] = arg;
    t->nargs = 1;
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    dspex_arena a;
    dspex_arena_init(&a, 64u << 20);
    static const char *names[] = {"q", "answer", "n", "tags", "d", "opt", "lit", "t"};
    dxa_field f[8];
    memset(f, 0, sizeof f);
    dxa_type *dict = dxa_type_new(&a, DXT_DICT);
    dxa_type *lit = dxa_type_new(&a, DXT_LITERAL);
    dxa_type *tup = dxa_type_new(&a, DXT_TUPLE);
    if (dict == NULL || lit == NULL || tup == NULL) goto done;
    dict->args = dspex_arena_alloc(&a, 2 * sizeof(dxa_type *));
    lit->lits = dspex_arena_alloc(&a, 2 * sizeof(dxa_val *));
    tup->args = dspex_arena_alloc(&a, 2 * sizeof(dxa_type *));
    if (dict->args == NULL || lit->lits == NULL || tup->args == NULL) goto done;
    dict->args[0] = dxa_type_new(&a, DXT_STR);
    dict->args[1] = T1(&a, DXT_LIST, dxa_type_new(&a, DXT_FLOAT));
    dict->nargs = 2;
    lit->lits[0] = dxa_val_str(&a, "yes", 3);
    lit->lits[1] = dxa_val_new(&a, DXA_INT);
    lit->nlits = 2;
    tup->args[0] = dxa_type_new(&a, DXT_BOOL);
    tup->args[1] = dxa_type_new(&a, DXT_ANY);
    tup->nargs = 2;
    dxa_type *types[] = {dxa_type_new(&a, DXT_STR), dxa_type_new(&a, DXT_STR), dxa_type_new(&a, DXT_INT),
                         T1(&a, DXT_LIST, dxa_type_new(&a, DXT_STR)), dict,
                         T1(&a, DXT_OPTIONAL, dxa_type_new(&a, DXT_INT)), lit, tup};
    for (int i = 0; i < 8; i++) {
        if (types[i] == NULL || (types[i]->nargs && types[i]->args[0] == NULL)) goto done;
        f[i].name = names[i];
        f[i].name_len = strlen(names[i]);
        f[i].is_input = i == 0;
        f[i].type = types[i];
    }
    if (lit->lits[0] == NULL || lit->lits[1] == NULL || dict->args[0] == NULL || dict->args[1] == NULL ||
        tup->args[0] == NULL || tup->args[1] == NULL)
        goto done;
    dxa_sig sig = {.fields = f, .nfields = 8, .ninputs = 1};
    dxa_val *out[7];
    dxa_err err;
    dxa_parse((data[0] & 1) ? DXA_JSON : DXA_CHAT, &sig, (const char *)data + 1, size - 1, &a, out, &err);
done:
    dspex_arena_free(&a);
    return 0;
}
