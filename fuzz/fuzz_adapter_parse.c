/* libFuzzer target: ChatAdapter / JSONAdapter parsing of arbitrary completion text
 * against a signature with typed outputs (nested containers, unions, Literal, datetime,
 * dspy.ToolCalls, an output with a default). The first byte picks the adapter (bit 0),
 * or (bit 1) a typed-struct value parsed and validated on its own. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dspex/adapter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static const char SIG[] =
    "q -> answer, n: int, tags: list[str], d: dict[str, list[float]], opt: Optional[int], "
    "lit: Literal['yes', 0], t: tuple[bool, Any], u: Union[float, int, None], s: set[frozenset[int]], "
    "when: datetime.datetime, day: datetime.date, calls: dspy.ToolCalls, mc: list[ToolCalls], "
    "k: dict[Literal['a', 'b'], Union[None, str]]";

/* A DSPex.Schema-like model: Order{items: list[Item], note: Optional[str] = None},
 * Item{name: str (min_length 1), qty: int (ge 1), price: float (gt 0, multiple_of 0.5)}. */
static dspex_type *model_type(dspex_arena *a) {
    dspex_type *str = dspex_type_new(a, DSPEX_T_STR), *i = dspex_type_new(a, DSPEX_T_INT);
    dspex_type *f = dspex_type_new(a, DSPEX_T_FLOAT), *none = dspex_type_new(a, DSPEX_T_NONE);
    dspex_type *item = dspex_type_new(a, DSPEX_T_MODEL), *order = dspex_type_new(a, DSPEX_T_MODEL);
    dspex_type *list = dspex_type_new(a, DSPEX_T_LIST);
    dspex_model_field *ifs = dspex_arena_alloc(a, 3 * sizeof *ifs), *ofs = dspex_arena_alloc(a, 2 * sizeof *ofs);
    dspex_constraint *cs = dspex_arena_alloc(a, 4 * sizeof *cs);
    if (!str || !i || !f || !none || !item || !order || !list || !ifs || !ofs || !cs) return NULL;
    memset(ifs, 0, 3 * sizeof *ifs);
    memset(ofs, 0, 2 * sizeof *ofs);
    dspex_val *one = dspex_val_int(a, 1), *zero = dspex_val_int(a, 0), *half = dspex_val_new(a, DSPEX_V_FLOAT);
    if (!one || !zero || !half) return NULL;
    half->f = 0.5;
    cs[0] = (dspex_constraint){"min_length", one};
    cs[1] = (dspex_constraint){"ge", one};
    cs[2] = (dspex_constraint){"gt", zero};
    cs[3] = (dspex_constraint){"multiple_of", half};
    ifs[0] = (dspex_model_field){"name", 4, str, NULL, 0, NULL, &cs[0], 1};
    ifs[1] = (dspex_model_field){"qty", 3, i, "how many", 8, NULL, &cs[1], 1};
    ifs[2] = (dspex_model_field){"price", 5, f, NULL, 0, NULL, &cs[2], 2};
    item->fields = ifs;
    item->nfields = 3;
    item->name = "Item";
    item->name_len = 4;
    item->module = "Elixir.Item";
    item->module_len = 11;
    list->args = dspex_arena_alloc(a, sizeof(dspex_type *));
    if (list->args == NULL) return NULL;
    list->args[0] = item;
    list->nargs = 1;
    dspex_type *m[2] = {str, none};
    dspex_type *opt = dspex_type_union(a, m, 2, 0);
    if (opt == NULL) return NULL;
    ofs[0] = (dspex_model_field){"items", 5, list, NULL, 0, NULL, NULL, 0};
    ofs[1] = (dspex_model_field){"note", 4, opt, NULL, 0, dspex_val_new(a, DSPEX_V_NONE), NULL, 0};
    order->fields = ofs;
    order->nfields = 2;
    order->name = "Order";
    order->name_len = 5;
    order->module = "Elixir.Order";
    order->module_len = 12;
    return order;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (data[0] & 2) {
        /* a typed-struct value: parse_value + pydantic validation with paths */
        dspex_arena a;
        dspex_arena_init(&a, 64u << 20);
        dspex_type *t = model_type(&a);
        dspex_val *v = NULL;
        dxa_err err;
        if (t) dxa_parse_value(t, (const char *)data + 1, size - 1, &a, &v, &err);
        dspex_arena_free(&a);
        return 0;
    }
    dspex_signature *sig = NULL;
    dspex_sig_error serr;
    if (dspex_sig_parse(SIG, sizeof SIG - 1, DSPEX_SIG_STRING, &sig, &serr) != DSPEX_SIG_OK) return 0;
    sig->fields[sig->nfields - 1].has_default = 1;
    dspex_arena a;
    dspex_arena_init(&a, 64u << 20);
    size_t nout = sig->nfields - sig->ninputs;
    dspex_val **out = dspex_arena_alloc(&a, nout * sizeof *out);
    dxa_out *how = dspex_arena_alloc(&a, nout * sizeof *how);
    dxa_err *err = dspex_arena_alloc(&a, sizeof *err);
    if (out && how && err)
        dxa_parse((data[0] & 1) ? DXA_JSON : DXA_CHAT, sig, (const char *)data + 1, size - 1, &a, out, how, err);
    dspex_arena_free(&a);
    dspex_sig_free(sig);
    return 0;
}
