/* libFuzzer target: ChatAdapter / JSONAdapter parsing of arbitrary completion text
 * against a signature with typed outputs (nested containers, unions, Literal, datetime,
 * dspy.ToolCalls, an output with a default). The first byte picks the adapter. */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
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
